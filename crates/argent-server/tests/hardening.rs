//! What an attacker or a careless operator tried at the server's edge (issue #11): parallel
//! password guessing, open redirects after sign-in, same-site attacks on the session and
//! the login form, framing, extreme dates, and a database that was briefly read-only.
//! Through the router (`oneshot`), on a real SQLite file store.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

use argent_server::ServerConfig;
use common::*;

/// Sends `req` and returns status, headers and the body as text.
async fn send(app: &axum::Router, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&bytes).into())
}

fn set_cookies(h: &HeaderMap) -> Vec<cookie::Cookie<'static>> {
    h.get_all("set-cookie")
        .iter()
        .map(|v| cookie::Cookie::parse(v.to_str().unwrap().to_string()).unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------------
// 6. The login throttle counts an attempt before the password is checked

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_parallel_guesses_reach_the_password_check_at_most_five_times() {
    let f = fixture().await;
    let mut guesses = tokio::task::JoinSet::new();
    for i in 0..40 {
        let app = f.app.clone();
        guesses.spawn(async move {
            call(
                &app,
                Method::POST,
                "/api/login",
                None,
                Some(json!({"name": "alice", "password": format!("guess number {i}")})),
            )
            .await
            .0
        });
    }
    let (mut checked, mut refused) = (0, 0);
    while let Some(status) = guesses.join_next().await {
        match status.unwrap() {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        checked <= 5,
        "{checked} of 40 parallel guesses reached the password check (at most 5 may)"
    );
    assert_eq!(checked + refused, 40);
    // The right password is refused too, until the window passes.
    let (s, _, _) = call(
        &f.app,
        Method::POST,
        "/api/login",
        None,
        Some(json!({"name": "alice", "password": PASSWORD})),
    )
    .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_guesses_through_the_sign_in_form_are_throttled_alike() {
    let f = fixture().await;
    let mut guesses = tokio::task::JoinSet::new();
    for i in 0..20 {
        let app = f.app.clone();
        guesses.spawn(async move {
            let mut b = Browser::new(&app);
            let token = csrf(&b.get("/login").await.body);
            let password = format!("guess number {i}");
            b.post(
                "/login",
                &[("_csrf", &token), ("name", "mo"), ("password", &password)],
            )
            .await
            .status
        });
    }
    let mut checked = 0;
    while let Some(status) = guesses.join_next().await {
        match status.unwrap() {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!(checked <= 5, "{checked} of 20 reached the password check");
}

// ---------------------------------------------------------------------------------------
// 7 and 18. Only a path on this site is followed after sign-in

/// `next` values as the form posts them (already decoded once), each of which a browser
/// would follow off the site (or which is no path at all).
const OFF_SITE: &[&str] = &[
    "/\t/evil.example",
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/%5Cevil.example",
    "/%5cevil.example",
    "/%2F/evil.example",
    "/%2f%2fevil.example",
    "/%09/evil.example",
    "/%0A/evil.example",
    "/%252F/evil.example",
    "https://evil.example/",
    "https:evil.example",
    "http:/evil.example",
    "javascript:alert(1)",
    "evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "/\r/evil.example",
    "/ /evil.example",
    "/\u{b}/evil.example",
    "/\u{0}/evil.example",
    "/\u{7f}/evil.example",
    "/\u{3000}/evil.example",
    "/\u{200b}/evil.example",
    " /queue",
    "\t//evil.example",
];

#[tokio::test]
async fn after_sign_in_only_a_path_on_this_site_is_followed() {
    let f = fixture().await;
    for next in OFF_SITE {
        let mut b = Browser::new(&f.app);
        // The link an attacker sends: the form must not carry the value on.
        let link = format!("/login?next={}", encode(next));
        let form = b.get(&link).await;
        assert_eq!(form.status, StatusCode::OK, "{next:?}: {}", form.body);
        assert!(
            form.body.contains("name=\"next\" value=\"\""),
            "{next:?} is not carried in the form: {}",
            form.body
        );
        // And posting it directly is no better.
        let token = csrf(&form.body);
        let res = b
            .post(
                "/login",
                &[
                    ("_csrf", &token),
                    ("name", "cy"),
                    ("password", PASSWORD),
                    ("next", next),
                ],
            )
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{next:?}: {}", res.body);
        assert_eq!(res.location.as_deref(), Some("/audit"), "{next:?}");
        // Signed in, the login page redirects at once: to the home page, not to `next`.
        let res = b.get(&link).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{next:?}");
        assert_eq!(res.location.as_deref(), Some("/audit"), "{next:?}");
    }
}

#[tokio::test]
async fn paths_on_this_site_are_still_followed() {
    let f = fixture().await;
    for next in [
        "/queue?status=pending",
        "/documents/prompt/tone%2Ffirm",
        "/audit?since=2026-11-01&kind=executed",
        "/",
    ] {
        let mut b = Browser::new(&f.app);
        let form = b.get(&format!("/login?next={}", encode(next))).await;
        let token = csrf(&form.body);
        let res = b
            .post(
                "/login",
                &[
                    ("_csrf", &token),
                    ("name", "root"),
                    ("password", PASSWORD),
                    ("next", next),
                ],
            )
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{next}: {}", res.body);
        assert_eq!(res.location.as_deref(), Some(next));
    }
}

/// 18: a newline in `next` made the redirect's `Location` header invalid, and axum
/// answered a plain-text 500.
#[tokio::test]
async fn a_newline_in_next_is_the_normal_redirect_not_a_plain_500() {
    let f = fixture().await;
    let mut b = Browser::new(&f.app);
    let token = csrf(&b.get("/login").await.body);
    let res = b
        .post(
            "/login",
            &[
                ("_csrf", &token),
                ("name", "alice"),
                ("password", PASSWORD),
                ("next", "/queue\nSet-Cookie: x=y"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.location.as_deref(), Some("/queue"));
    assert!(b.cookies.contains_key("argent_session"));
    assert!(!b.cookies.contains_key("x"));
}

fn encode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .unwrap()
        .trim_start_matches('=')
        .to_string()
}

// ---------------------------------------------------------------------------------------
// 12. Same-site attacks: login CSRF, session override, framing

const HEADERS: &[(&str, &str)] = &[
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
];

fn assert_security_headers(what: &str, h: &HeaderMap) {
    for (name, value) in HEADERS {
        assert_eq!(
            h.get(*name).map(|v| v.to_str().unwrap()),
            Some(*value),
            "{what}: {name}"
        );
    }
    let csp = h
        .get("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no content-security-policy"))
        .to_str()
        .unwrap();
    for directive in [
        "default-src 'none'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(directive), "{what}: {directive} in {csp}");
    }
    assert!(!csp.contains("unsafe"), "{what}: {csp}");
    // Scripts only from this site's own files (the workbench's shortcuts): no inline
    // script, no eval, no other origin.
    let scripts = csp
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("script-src"))
        .unwrap_or_else(|| panic!("{what}: no script-src in {csp}"));
    assert_eq!(scripts, "script-src 'self'", "{what}: {csp}");
}

#[tokio::test]
async fn every_response_forbids_framing_sniffing_referrers_and_foreign_scripts() {
    let f = fixture().await;
    let alice = Browser::sign_in(&f.app, "alice").await;
    let session = alice.cookies["argent_session"].clone();
    let get = |uri: &str, cookie: Option<&str>, token: Option<&str>| {
        let mut r = Request::builder().uri(uri);
        if let Some(c) = cookie {
            r = r.header("cookie", format!("argent_session={c}"));
        }
        if let Some(t) = token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        r.body(Body::empty()).unwrap()
    };
    let token = f.tokens["alice"].as_str();
    let cases: Vec<(&str, Request<Body>, StatusCode)> = vec![
        ("login page", get("/login", None, None), StatusCode::OK),
        (
            "a page",
            get("/queue", Some(&session), None),
            StatusCode::OK,
        ),
        (
            "a redirect to sign in",
            get("/queue", None, None),
            StatusCode::SEE_OTHER,
        ),
        (
            "a page's 404",
            get("/no/such/page", Some(&session), None),
            StatusCode::NOT_FOUND,
        ),
        (
            "a page's 403",
            get("/audit", Some(&session), None),
            StatusCode::FORBIDDEN,
        ),
        (
            "a page's 400",
            get("/queue?status=nope", Some(&session), None),
            StatusCode::BAD_REQUEST,
        ),
        (
            "the stylesheet",
            get("/static/app.css", None, None),
            StatusCode::OK,
        ),
        (
            "an API answer",
            get("/api/me", None, Some(token)),
            StatusCode::OK,
        ),
        (
            "an API 401",
            get("/api/me", None, None),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "an API 404",
            get("/api/no/such", None, Some(token)),
            StatusCode::NOT_FOUND,
        ),
        (
            "an API 405",
            Request::builder()
                .method(Method::DELETE)
                .uri("/api/me")
                .body(Body::empty())
                .unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            "the OpenAPI document",
            get("/openapi.json", None, None),
            StatusCode::OK,
        ),
    ];
    for (what, req, want) in cases {
        let (status, headers, body) = send(&f.app, req).await;
        assert_eq!(status, want, "{what}: {body}");
        assert_security_headers(what, &headers);
    }
}

/// The CSP allows no inline styles or scripts, so no page may use them.
#[test]
fn no_template_has_inline_styles_or_scripts() {
    assert!(is_own_script_tag(
        r#"<script src="/static/workbench.js" defer></script>"#
    ));
    assert!(!is_own_script_tag(r#"<script>alert(1)</script>"#));
    assert!(!is_own_script_tag(
        r#"<script src="https://cdn.example/x.js"></script>"#
    ));
    assert!(!is_own_script_tag(
        r#"<script src="/static/a.js">alert(1)</script>"#
    ));
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap().to_lowercase();
        for bad in ["<style", "style=", "<script", "javascript:", " on"] {
            let hits: Vec<&str> = text
                .lines()
                .filter(|l| match bad {
                    // An event handler attribute: ` onclick=` and the like.
                    " on" => l.split_whitespace().any(|w| {
                        w.starts_with("on")
                            && w.contains('=')
                            && w[2..w.find('=').unwrap()]
                                .chars()
                                .all(|c| c.is_ascii_alphabetic())
                    }),
                    // Only an empty tag loading this site's own script file.
                    "<script" => l.contains(bad) && !is_own_script_tag(l),
                    _ => l.contains(bad),
                })
                .collect();
            assert!(hits.is_empty(), "{}: {bad}: {hits:?}", path.display());
        }
    }
}

/// `<script src="/static/NAME.js" defer></script>` and nothing else on the line.
fn is_own_script_tag(line: &str) -> bool {
    let l = line.trim();
    l.strip_prefix("<script src=\"/static/")
        .and_then(|rest| rest.strip_suffix(".js\" defer></script>"))
        .is_some_and(|name| name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

/// The login form's double-submit: a post needs the cookie the form set and the same
/// value in its `_csrf` field; a post from another origin — including a sibling subdomain
/// of the same site, which SameSite cookies do not stop — is refused outright.
#[tokio::test]
async fn a_sign_in_posted_from_another_origin_or_without_the_form_pair_is_refused() {
    let f = fixture().await;
    let mut b = Browser::new(&f.app);
    let token = csrf(&b.get("/login").await.body);
    let cookie = b.cookies["argent_login"].clone();
    let post = |cookie: Option<&str>, field: Option<&str>, extra: &[(&str, &str)]| {
        let mut form = vec![("name", "alice"), ("password", PASSWORD)];
        if let Some(v) = field {
            form.push(("_csrf", v));
        }
        let mut r = Request::builder()
            .method(Method::POST)
            .uri("/login")
            .header("host", "argent.example.com")
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            r = r.header("cookie", format!("argent_login={c}"));
        }
        for (k, v) in extra {
            r = r.header(*k, *v);
        }
        r.body(Body::from(serde_urlencoded::to_string(&form).unwrap()))
            .unwrap()
    };
    let refused: Vec<(&str, Request<Body>)> = vec![
        ("no cookie", post(None, Some(&token), &[])),
        ("no field", post(Some(&cookie), None, &[])),
        (
            "a field that is not the cookie",
            post(Some(&cookie), Some(&"0".repeat(64)), &[]),
        ),
        ("an empty pair", post(Some(""), Some(""), &[])),
        (
            "a cross-site post",
            post(
                Some(&cookie),
                Some(&token),
                &[
                    ("origin", "https://evil.example"),
                    ("sec-fetch-site", "cross-site"),
                ],
            ),
        ),
        (
            "a sibling subdomain's post (same site, other origin)",
            post(
                Some(&cookie),
                Some(&token),
                &[
                    ("origin", "https://evil.example.com"),
                    ("sec-fetch-site", "same-site"),
                ],
            ),
        ),
        (
            "a post from another origin (Origin alone)",
            post(
                Some(&cookie),
                Some(&token),
                &[("origin", "https://evil.example.com")],
            ),
        ),
        (
            "Sec-Fetch-Site alone",
            post(
                Some(&cookie),
                Some(&token),
                &[("sec-fetch-site", "same-site")],
            ),
        ),
        (
            "an opaque origin",
            post(Some(&cookie), Some(&token), &[("origin", "null")]),
        ),
    ];
    for (what, req) in refused {
        let (status, headers, body) = send(&f.app, req).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {body}");
        assert!(
            !set_cookies(&headers)
                .iter()
                .any(|c| c.name().ends_with("argent_session")),
            "{what}: no session"
        );
    }
    // The same post from the page's own origin signs in.
    for extra in [
        &[][..],
        &[
            ("origin", "https://argent.example.com"),
            ("sec-fetch-site", "same-origin"),
        ][..],
        &[("origin", "http://argent.example.com")][..],
    ] {
        let (status, headers, body) = send(&f.app, post(Some(&cookie), Some(&token), extra)).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{extra:?}: {body}");
        assert!(
            set_cookies(&headers)
                .iter()
                .any(|c| c.name() == "argent_session" && !c.value().is_empty()),
            "{extra:?}"
        );
    }
}

/// Every form post of a signed-in user is refused from another origin too, even with the
/// session's CSRF token (which a same-site page cannot read, but defence in depth).
#[tokio::test]
async fn a_form_posted_from_a_sibling_origin_is_refused() {
    let f = fixture().await;
    let mut alice = Browser::sign_in(&f.app, "alice").await;
    let token = csrf(&alice.get("/queue").await.body);
    let id = &f.ann[0];
    let form = serde_urlencoded::to_string([("_csrf", token.as_str()), ("note", "ok")]).unwrap();
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("/queue/{id}/approve"))
        .header("host", "argent.example.com")
        .header("origin", "https://evil.example.com")
        .header("sec-fetch-site", "same-site")
        .header(
            "cookie",
            format!("argent_session={}", alice.cookies["argent_session"]),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .unwrap();
    let (status, _, body) = send(&f.app, req).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        f.store().approval(id).await.unwrap().status,
        argent_store::ApprovalStatus::Pending
    );
}

/// A session cookie planted by a sibling subdomain (`Domain=` the parent, `Path=/queue`, so
/// the browser sends it first on `/queue`) would sign the victim in as the attacker there.
/// Two session cookies are refused, never guessed between.
#[tokio::test]
async fn a_second_session_cookie_is_refused_not_guessed_between() {
    let f = fixture().await;
    let alice = Browser::sign_in(&f.app, "alice").await;
    let mo = Browser::sign_in(&f.app, "mo").await;
    let (a, m) = (
        alice.cookies["argent_session"].clone(),
        mo.cookies["argent_session"].clone(),
    );
    for jar in [
        format!("argent_session={m}; argent_session={a}"),
        format!("argent_session={a}; argent_session={m}"),
        format!("argent_session=forged; argent_session={a}"),
    ] {
        let req = Request::builder()
            .uri("/queue")
            .header("cookie", jar.as_str())
            .body(Body::empty())
            .unwrap();
        let (status, _, body) = send(&f.app, req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{jar}: {body}");
        assert!(
            !body.contains("(manager)") && !body.contains("(collector)"),
            "{body}"
        );
        assert!(body.contains("more than one session cookie"), "{body}");
    }
    // The same cookie twice is still one session.
    let req = Request::builder()
        .uri("/queue")
        .header("cookie", format!("argent_session={a}; argent_session={a}"))
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(&f.app, req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Signing in starts a fresh session and ends the one the browser came with (whoever's it
/// was), so a planted or old session token does not live on beside the new one.
#[tokio::test]
async fn signing_in_ends_the_session_the_browser_came_with() {
    let f = fixture().await;
    let mut b = Browser::sign_in(&f.app, "mo").await;
    let old = b.cookies["argent_session"].clone();
    // (Signed in, the login page redirects; the form of another tab signs in again.)
    let mut form = Browser::new(&f.app);
    let token2 = csrf(&form.get("/login").await.body);
    b.cookies
        .insert("argent_login".into(), form.cookies["argent_login"].clone());
    let res = b
        .post(
            "/login",
            &[
                ("_csrf", &token2),
                ("name", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let new = b.cookies["argent_session"].clone();
    assert_ne!(new, old, "a fresh session token");
    let mut stale = Browser::new(&f.app);
    stale.cookies.insert("argent_session".into(), old);
    assert_eq!(
        stale.get("/dashboard").await.status,
        StatusCode::SEE_OTHER,
        "the old session was ended"
    );
    assert!(b.get("/queue").await.body.contains("alice (collector)"));
}

/// Behind HTTPS (`--secure-cookies`) both cookies carry the `__Host-` prefix, which a
/// browser accepts only from this very host (Secure, `Path=/`, no `Domain`), so a sibling
/// subdomain cannot plant one; the unprefixed name is then no session at all.
#[tokio::test]
async fn with_secure_cookies_the_cookies_are_host_prefixed() {
    let f = fixture_with(ServerConfig {
        secure_cookies: true,
        ..ServerConfig::default()
    })
    .await;
    let (status, headers, body) = send(
        &f.app,
        Request::builder()
            .uri("/login")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let login = set_cookies(&headers);
    assert_eq!(login.len(), 1);
    let c = &login[0];
    assert_eq!(c.name(), "__Host-argent_login");
    assert_eq!(c.secure(), Some(true));
    assert_eq!(c.path(), Some("/"));
    assert_eq!(c.domain(), None);
    let token = csrf(&body);
    let form = serde_urlencoded::to_string([
        ("_csrf", token.as_str()),
        ("name", "alice"),
        ("password", PASSWORD),
    ])
    .unwrap();
    let post = |cookie_name: &str| {
        Request::builder()
            .method(Method::POST)
            .uri("/login")
            .header("cookie", format!("{cookie_name}={token}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(form.clone()))
            .unwrap()
    };
    // The unprefixed login cookie (which a sibling could set) is not the form's pair.
    let (status, _, _) = send(&f.app, post("argent_login")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, headers, body) = send(&f.app, post("__Host-argent_login")).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let cookies = set_cookies(&headers);
    let session = cookies
        .iter()
        .find(|c| c.name() == "__Host-argent_session")
        .unwrap_or_else(|| panic!("{cookies:?}"));
    assert_eq!(session.secure(), Some(true));
    assert_eq!(session.path(), Some("/"));
    assert_eq!(session.domain(), None);
    assert_eq!(session.http_only(), Some(true));
    let value = session.value().to_string();
    let page = |name: &str| {
        Request::builder()
            .uri("/queue")
            .header("cookie", format!("{name}={value}"))
            .body(Body::empty())
            .unwrap()
    };
    let (status, _, body) = send(&f.app, page("__Host-argent_session")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, headers, _) = send(&f.app, page("argent_session")).await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "the plain name is no session"
    );
    assert!(
        headers["location"].to_str().unwrap().starts_with("/login"),
        "{headers:?}"
    );
}

#[tokio::test]
async fn without_secure_cookies_the_cookies_keep_their_plain_names() {
    let f = fixture().await;
    let (_, headers, _) = send(
        &f.app,
        Request::builder()
            .uri("/login")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let c = set_cookies(&headers);
    assert_eq!(c[0].name(), "argent_login");
    assert_eq!(c[0].secure(), None);
    let b = Browser::sign_in(&f.app, "alice").await;
    assert!(b.cookies.contains_key("argent_session"));
    assert!(!b.cookies.keys().any(|k| k.starts_with("__Host-")));
}

// ---------------------------------------------------------------------------------------
// 11. Extreme dates and periods are 400s naming the parameter

#[tokio::test]
async fn extreme_dates_and_periods_are_400s_naming_the_parameter() {
    let f = fixture().await;
    let range = "1970-01-01..=2199-12-31";
    let api: &[(&str, &str, &str)] = &[
        ("/api/aging?as_of=-262143-01-01", "as_of", range),
        ("/api/aging?as_of=%2B262142-12-31", "as_of", range),
        ("/api/aging?as_of=1969-12-31", "as_of", range),
        ("/api/aging?as_of=2200-01-01", "as_of", range),
        ("/api/aging?dso_days=4294967295", "dso_days", "1..=3660"),
        ("/api/aging?dso_days=99999999999", "dso_days", "1..=3660"),
        ("/api/aging?dso_days=-1", "dso_days", "1..=3660"),
        ("/api/dashboard?as_of=-262143-01-01", "as_of", range),
        ("/api/dashboard?as_of=2200-01-01", "as_of", range),
        (
            "/api/dashboard?period_days=4294967295",
            "period_days",
            "1..=3660",
        ),
        // Not even an integer of the parameter's type: named, with what is wrong.
        (
            "/api/dashboard?period_days=99999999999999999999",
            "period_days",
            "too large",
        ),
        ("/api/dashboard?period_days=0", "period_days", "1..=3660"),
        (
            "/api/dashboard?as_of=1970-01-01&period_days=3661",
            "period_days",
            "1..=3660",
        ),
        ("/api/audit?since=2200-01-01T00:00:00Z", "since", range),
        ("/api/audit?until=1969-12-31T23:59:59Z", "until", range),
        ("/api/audit?since=%2B10000-01-01T00:00:00Z", "since", range),
        (
            "/api/audit/export?until=9999-12-31T00:00:00Z",
            "until",
            range,
        ),
        (
            "/api/audit/export?since=0001-01-01T00:00:00Z",
            "since",
            range,
        ),
    ];
    for (uri, name, allowed) in api {
        let user = if uri.starts_with("/api/audit") {
            "cy"
        } else {
            "mo"
        };
        let (s, b) = f.as_user(user, Method::GET, uri, None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}: {b}");
        let msg = b["error"].as_str().unwrap();
        assert!(msg.contains(name), "{uri}: names {name}: {msg}");
        assert!(msg.contains(allowed), "{uri}: says {allowed}: {msg}");
    }
    // The edges themselves are fine.
    for uri in [
        "/api/aging?as_of=1970-01-01&dso_days=3660",
        "/api/aging?as_of=2199-12-31&dso_days=3660",
        "/api/dashboard?as_of=1970-01-01&period_days=3660",
        "/api/dashboard?as_of=2199-12-31&period_days=3660",
    ] {
        let (s, b) = f.as_user("mo", Method::GET, uri, None).await;
        assert_eq!(s, StatusCode::OK, "{uri}: {b}");
    }
    let (s, b) = f
        .as_user(
            "cy",
            Method::GET,
            "/api/audit?since=1970-01-01T00:00:00Z&until=2199-12-31T23:59:59Z",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    let mut mo = Browser::sign_in(&f.app, "mo").await;
    let mut cy = Browser::sign_in(&f.app, "cy").await;
    for (who, uri, name) in [
        ("mo", "/dashboard?as_of=-262143-01-01", "as_of"),
        ("mo", "/dashboard?period_days=99999999999", "period_days"),
        ("cy", "/audit?since=-262143-01-01", "since"),
        ("cy", "/audit?until=2200-01-01", "until"),
        // In range where it was written, past the end in UTC.
        ("cy", "/audit?since=2199-12-31T23:00:00-05:00", "since"),
        ("cy", "/audit/export?since=0001-01-01", "since"),
    ] {
        let b = if who == "mo" { &mut mo } else { &mut cy };
        let res = b.get(uri).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{uri}: {}", res.body);
        assert!(res.content_type.starts_with("text/html"), "{uri}");
        let text = html_unescape(&res.body);
        assert!(text.contains(name), "{uri}: {text}");
        assert!(
            text.contains("1..=3660") || text.contains(range),
            "{uri}: {text}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 13. After a brief read-only database, signing in works again without a restart

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_works_again_once_a_read_only_database_is_writable_again() {
    let f = fixture().await;
    let path = f.ts.sqlite_path().unwrap().to_path_buf();
    let Some(ro) = argent_store::testkit::ReadOnlyFile::make(&path).unwrap() else {
        eprintln!("notice: this process cannot make a file read-only; test skipped");
        return;
    };
    let login = |name: &'static str| {
        let app = f.app.clone();
        async move {
            call(
                &app,
                Method::POST,
                "/api/login",
                None,
                Some(json!({"name": name, "password": PASSWORD})),
            )
            .await
            .0
        }
    };
    // Pages and API calls go on meanwhile (so the pool opens connections), and signing in,
    // which writes a token, fails: a 500 is fine while the file cannot be written.
    for _ in 0..3 {
        let mut reads = tokio::task::JoinSet::new();
        for _ in 0..12 {
            let app = f.app.clone();
            let token = f.tokens["alice"].clone();
            reads.spawn(async move {
                call(&app, Method::GET, "/api/approvals", Some(&token), None)
                    .await
                    .0
            });
        }
        while let Some(s) = reads.join_next().await {
            assert_eq!(s.unwrap(), StatusCode::OK, "reading works throughout");
        }
        let s = login("mo").await;
        assert!(
            s == StatusCode::INTERNAL_SERVER_ERROR || s == StatusCode::OK,
            "{s}"
        );
    }
    ro.restore();
    for name in [
        "alice", "mo", "cy", "eve", "root", "alice", "mo", "cy", "eve", "root",
    ] {
        assert_eq!(login(name).await, StatusCode::OK, "{name} signs in again");
    }
    let mut b = Browser::sign_in(&f.app, "alice").await;
    assert_eq!(b.get("/queue").await.status, StatusCode::OK);
}
