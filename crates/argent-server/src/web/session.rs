//! Signing in and out in the browser.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use serde::Deserialize;
use serde_json::json;

use argent_store::{Store, TokenKind};

use super::{Posted, check_csrf, cookie_value, render};
use crate::ServerConfig;
use crate::auth::{LoginThrottle, SignedIn, UserRole, check_credentials, issue_token, new_token};
use crate::error::{AppError, AppResult};
use crate::extract::ApiQuery;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "argent_session";
/// The login form's double-submit CSRF cookie.
const LOGIN_COOKIE: &str = "argent_login";

fn cookie(
    name: &'static str,
    value: String,
    config: &ServerConfig,
    max_age: Option<i64>,
) -> String {
    let mut c = Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(config.secure_cookies);
    if let Some(secs) = max_age {
        c = c.max_age(cookie::time::Duration::seconds(secs));
    }
    c.build().to_string()
}

/// Only a path on this site: `/queue`, never `//evil.example` or `https://…`.
fn safe_next(next: Option<&str>) -> Option<String> {
    next.filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains('\\'))
        .map(str::to_string)
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    pub next: Option<String>,
}

fn login_form(
    config: &ServerConfig,
    status: StatusCode,
    next: Option<&str>,
    name: &str,
    error: Option<&str>,
) -> AppResult<Response> {
    let csrf = new_token();
    let html = render(
        "login",
        &json!({
            "title": "Sign in",
            "chrome": null,
            "csrf": csrf,
            "next": next.unwrap_or(""),
            "name": name,
            "error": error,
        }),
    )?;
    let mut res = (status, Html(html)).into_response();
    if let Ok(v) = cookie(LOGIN_COOKIE, csrf, config, Some(3600)).parse() {
        res.headers_mut().append(SET_COOKIE, v);
    }
    Ok(res)
}

/// `GET /login`: the form, or straight on for someone already signed in.
pub async fn login_page(
    State(store): State<Store>,
    State(config): State<Arc<ServerConfig>>,
    ApiQuery(q): ApiQuery<LoginQuery>,
    headers: HeaderMap,
) -> AppResult<Response> {
    let next = safe_next(q.next.as_deref());
    if let Some(role) = signed_in(&store, &headers).await? {
        let to = next.unwrap_or_else(|| role.home().to_string());
        return Ok(Redirect::to(&to).into_response());
    }
    login_form(&config, StatusCode::OK, next.as_deref(), "", None)
}

/// The role of whoever the request's session cookie belongs to, if anyone's.
async fn signed_in(store: &Store, headers: &HeaderMap) -> AppResult<Option<UserRole>> {
    let Some(token) = cookie_value(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    match crate::auth::token_owner(store, &token, TokenKind::Session).await {
        Ok((_, role, _)) => Ok(Some(role)),
        Err(AppError::Unauthorized) => Ok(None),
        Err(e) => Err(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub password: String,
    pub next: Option<String>,
}

/// `POST /login`: checks the password and starts a session.
pub async fn login(
    State(store): State<Store>,
    State(config): State<Arc<ServerConfig>>,
    State(throttle): State<Arc<LoginThrottle>>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    let expected = cookie_value(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() {
        return Err(AppError::Forbidden(
            "the sign-in form has expired (or cookies are off); reload the page".into(),
        ));
    }
    check_csrf(&body, &expected)?;
    let form: LoginForm = serde_urlencoded::from_bytes(&body)
        .map_err(|e| AppError::BadRequest(format!("the sign-in form is malformed: {e}")))?;
    let next = safe_next(form.next.as_deref().filter(|n| !n.is_empty()));
    let (name, role) = match check_credentials(&store, &throttle, &form.name, &form.password).await
    {
        Ok(u) => u,
        Err(e @ (AppError::BadCredentials | AppError::TooManyAttempts { .. })) => {
            return login_form(
                &config,
                e.status(),
                next.as_deref(),
                &form.name,
                Some(&e.to_string()),
            );
        }
        Err(e) => return Err(e),
    };
    let (token, _) = issue_token(&store, &name, TokenKind::Session, config.session_ttl).await?;
    tracing::info!(user = %name, role = %role, "signed in (browser)");
    let to = next.unwrap_or_else(|| role.home().to_string());
    let mut res = Redirect::to(&to).into_response();
    let ttl = config.session_ttl.num_seconds();
    for c in [
        cookie(SESSION_COOKIE, token, &config, Some(ttl)),
        cookie(LOGIN_COOKIE, String::new(), &config, Some(0)),
    ] {
        if let Ok(v) = c.parse() {
            res.headers_mut().append(SET_COOKIE, v);
        }
    }
    Ok(res)
}

/// `POST /logout`: ends the session (the token is deleted, not just the cookie).
pub async fn logout(
    State(store): State<Store>,
    State(config): State<Arc<ServerConfig>>,
    Posted(user, _, _): Posted<SignedIn, Vec<(String, String)>>,
) -> AppResult<Response> {
    store.delete_token(&user.token_hash).await?;
    let mut res = Redirect::to("/login").into_response();
    if let Ok(v) = cookie(SESSION_COOKIE, String::new(), &config, Some(0)).parse() {
        res.headers_mut().append(SET_COOKIE, v);
    }
    Ok(res)
}
