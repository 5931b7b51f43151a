//! A browser over the router for page tests: a cookie jar, forms posted with their CSRF
//! token, redirects checked rather than followed.

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::PASSWORD;

pub struct Resp {
    pub status: StatusCode,
    pub location: Option<String>,
    pub content_type: String,
    pub body: String,
}

/// A browser over the router: a cookie jar and nothing else.
pub struct Browser {
    pub app: Router,
    pub cookies: HashMap<String, String>,
}

impl Browser {
    pub fn new(app: &Router) -> Browser {
        Browser {
            app: app.clone(),
            cookies: HashMap::new(),
        }
    }

    pub async fn send(&mut self, method: Method, uri: &str, form: Option<String>) -> Resp {
        let mut req = Request::builder().method(method).uri(uri);
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header("cookie", jar.join("; "));
        }
        let req = match form {
            Some(f) => req
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(f)),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let res = self.app.clone().oneshot(req).await.unwrap();
        for sc in res.headers().get_all("set-cookie") {
            let c = cookie::Cookie::parse(sc.to_str().unwrap().to_string()).unwrap();
            let expired = c.max_age().is_some_and(|a| a.is_zero());
            if expired || c.value().is_empty() {
                self.cookies.remove(c.name());
            } else {
                self.cookies
                    .insert(c.name().to_string(), c.value().to_string());
            }
        }
        let status = res.status();
        let location = res
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string());
        let content_type = res
            .headers()
            .get("content-type")
            .map(|l| l.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        Resp {
            status,
            location,
            content_type,
            body: String::from_utf8_lossy(&bytes).into(),
        }
    }

    pub async fn get(&mut self, uri: &str) -> Resp {
        self.send(Method::GET, uri, None).await
    }

    pub async fn post(&mut self, uri: &str, pairs: &[(&str, &str)]) -> Resp {
        let form = serde_urlencoded::to_string(pairs).unwrap();
        self.send(Method::POST, uri, Some(form)).await
    }

    /// Posts a form the way the page would: with the CSRF token of the page at `page`.
    pub async fn submit(&mut self, page: &str, action: &str, pairs: &[(&str, &str)]) -> Resp {
        let html = self.get(page).await;
        assert_eq!(html.status, StatusCode::OK, "{page}: {}", html.body);
        let csrf = csrf(&html.body);
        let mut all = vec![("_csrf", csrf.as_str())];
        all.extend_from_slice(pairs);
        self.post(action, &all).await
    }

    pub async fn sign_in(app: &Router, name: &str) -> Browser {
        let mut b = Browser::new(app);
        let form = b.get("/login").await;
        assert_eq!(form.status, StatusCode::OK);
        let token = csrf(&form.body);
        let res = b
            .post(
                "/login",
                &[("_csrf", &token), ("name", name), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        assert!(b.cookies.contains_key("argent_session"));
        b
    }
}

/// The value of the first `_csrf` hidden field on a page.
pub fn csrf(html: &str) -> String {
    let at = html
        .find("name=\"_csrf\" value=\"")
        .unwrap_or_else(|| panic!("no _csrf field in {html}"));
    let rest = &html[at + "name=\"_csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// The edit form's fields for `args`, as the page names them.
pub fn edit_fields(args: &Value) -> Vec<(String, String)> {
    args.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => (format!("t.{k}"), s.clone()),
            Value::Number(n) => (format!("n.{k}"), n.to_string()),
            other => (format!("j.{k}"), other.to_string()),
        })
        .collect()
}

pub fn pairs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

pub fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#x3D;", "=")
        .replace("&#x60;", "`")
        .replace("&amp;", "&")
}
