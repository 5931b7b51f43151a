//! Server-rendered pages for the four roles: handlebars templates compiled into the binary
//! (`templates/`), plain HTML forms, no JavaScript.
//!
//! **Sessions.** `POST /login` sets `argent_session`, a random 256-bit token (HttpOnly,
//! SameSite=Strict; with `--secure-cookies` it is `Secure` and named
//! `__Host-argent_session`, so a sibling subdomain cannot plant one); the store keeps only
//! its SHA-256, as for API tokens, with kind `session`. Signing in ends the session the
//! browser came with and starts a fresh one; a request with two different session cookies
//! is refused rather than guessed between. Pages accept only the cookie and `/api` only
//! bearer tokens, so a cookie never authorizes an API call.
//!
//! **CSRF.** Every form carries `_csrf`, the SHA-256 of a fixed label and the session
//! token: a page from another origin can neither read the cookie nor compute it, and
//! [`Posted`] refuses a post without it (403) before the handler runs. The login form,
//! which has no session yet, uses a double-submit cookie instead. Every form post, the
//! login form's included, is also refused when the browser says it came from another
//! origin ([`check_same_origin`]): a sibling subdomain is the same *site*, so SameSite
//! cookies alone do not stop it.
//!
//! **Roles.** Each page handler takes [`Page<P>`] or [`Posted<P, T>`] with a
//! [`Permission`] from [`crate::perm`], exactly like the JSON API; a signed-out visitor is
//! sent to `/login?next=…`, a signed-in one without the role gets a 403 page.

use std::marker::PhantomData;
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, HOST, ORIGIN};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::Utc;
use handlebars::Handlebars;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use argent_store::{Store, TokenKind};

use crate::auth::{Permission, UserRole, perm};
use crate::error::{AppError, AppResult};
use crate::{AppState, ServerConfig};

mod account;
mod audit;
mod dashboard;
mod desk;
mod documents;
mod evals;
mod history;
mod mail;
mod queue;
mod search;
pub mod session;
mod signals;
pub(crate) mod svg;
pub(crate) mod tasks;
mod today;
mod users;

pub(crate) use account::{api_get as facts_api_get, api_put as facts_api_put};
pub use dashboard::PROMISE_GRACE_DAYS;
pub(crate) use dashboard::api as dashboard_api;
pub(crate) use documents::{
    api_activate, api_approve_request, api_create, api_gate, api_list, api_reject_request,
    api_requests, api_rollback, api_validate, api_version, api_versions,
};
pub(crate) use evals::{
    api_case as evals_api_case, api_list as evals_api_list, api_run as evals_api_run,
    api_run_draft, api_show as evals_api_show,
};
pub(crate) use history::{api_contacts, api_timeline};
pub(crate) use mail::{api_assign as mail_api_assign, api_list as mail_api_list};
pub(crate) use search::api_search;
pub use session::{SECURE_SESSION_COOKIE, SESSION_COOKIE, session_cookie_name};
pub(crate) use signals::{
    api_clear as signals_api_clear, api_confirm as signals_api_confirm,
    api_list as signals_api_list,
};
pub(crate) use users::{
    api_create as users_api_create, api_disable as users_api_disable,
    api_enable as users_api_enable, api_list as users_api_list, api_password as users_api_password,
    api_role as users_api_role, api_unlock as users_api_unlock,
};

/// Every page route. `/api` is nested beside it in [`crate::router`].
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/queue", get(queue::list))
        .route("/queue/bulk-approve", post(queue::bulk_approve))
        .route("/queue/{id}", get(queue::show))
        .route("/queue/{id}/approve", post(queue::approve))
        .route("/queue/{id}/reject", post(queue::reject))
        .route("/queue/{id}/preview", post(queue::preview))
        .route("/queue/{id}/edit", post(queue::edit))
        .route("/accounts/{id}", get(account::show))
        .route("/accounts/{id}/facts", post(account::save))
        .route("/accounts/{id}/contacts", get(history::contacts_page))
        .route("/search", get(search::show))
        .route("/mail/unmatched", get(mail::list))
        .route("/mail/{id}/assign", post(mail::assign_page))
        .route("/signals", get(signals::list))
        .route("/signals/{id}/confirm", post(signals::confirm_page))
        .route("/signals/{id}/clear", post(signals::clear_page))
        .route("/today", get(today::show))
        .route("/today/calls/{id}", post(today::outcome))
        .route("/tasks", get(tasks::list))
        .route("/tasks/{id}", get(tasks::show))
        .route("/tasks/{id}/assign", post(tasks::assign_page))
        .route("/tasks/{id}/comment", post(tasks::comment_page))
        .route("/tasks/{id}/close", post(tasks::close_page))
        .route("/cases", get(tasks::cases))
        .route("/cases/{id}/take", post(tasks::take_case_page))
        .route("/cases/{id}/step", post(tasks::step_case_page))
        .route("/promises", get(tasks::promises))
        .route("/desk", get(desk::show))
        .route("/desk/referrals/{id}/approve", post(desk::approve))
        .route("/desk/referrals/{id}/reject", post(desk::reject))
        .route("/desk/referrals/{id}/package", get(desk::package))
        .route("/audit", get(audit::list))
        .route("/audit/export", get(audit::export))
        .route("/rules/{id}", get(audit::rule))
        .route("/dashboard", get(dashboard::show))
        .route("/documents", get(documents::list))
        .route(
            "/documents/{kind}/{name}",
            get(documents::show).post(documents::save),
        )
        .route("/documents/{kind}/{name}/edit", get(documents::edit_form))
        .route("/documents/{kind}/{name}/diff", get(documents::diff))
        .route(
            "/documents/{kind}/{name}/{version}/activate",
            post(documents::activate_page),
        )
        .route(
            "/documents/{kind}/{name}/rollback",
            post(documents::rollback_page),
        )
        .route(
            "/document-requests/{id}/approve",
            post(documents::approve_page),
        )
        .route(
            "/document-requests/{id}/reject",
            post(documents::reject_page),
        )
        .route(
            "/documents/{kind}/{name}/{version}/eval",
            post(evals::run_draft),
        )
        .route(
            "/documents/{kind}/{name}/{version}/gate",
            get(documents::gate_page),
        )
        .route("/evals", get(evals::list).post(evals::run_active))
        .route("/evals/compare", get(evals::compare_page))
        .route("/evals/compare/{case}", get(evals::compare_case_page))
        .route("/evals/{id}", get(evals::show))
        .route("/evals/{id}/cases/{case}", get(evals::case_page))
        .route("/users", get(users::list).post(users::create_page))
        .route("/users/{name}/disable", post(users::disable_page))
        .route("/users/{name}/enable", post(users::enable_page))
        .route("/users/{name}/unlock", post(users::unlock_page))
        .route("/users/{name}/role", post(users::role_page))
        .route("/users/{name}/password", post(users::password_page))
        .route("/static/app.css", get(stylesheet))
        .route("/static/workbench.js", get(workbench_js))
}

pub(crate) async fn not_found() -> AppError {
    AppError::NotFound("no such page".into())
}

pub(crate) async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}

/// The pages' styles and, scoped under `.argent-report`, the eval reports'.
static STYLESHEET: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{}\n{}",
        include_str!("../../static/app.css"),
        argent_evals::REPORT_CSS
    )
});

async fn stylesheet() -> Response {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "max-age=3600"),
        ],
        STYLESHEET.as_str(),
    )
        .into_response()
}

/// The approval workbench's keyboard shortcuts: progressive enhancement, the pages work
/// without it (the Content-Security-Policy allows this site's own scripts only, never
/// inline ones).
async fn workbench_js() -> Response {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("../../static/workbench.js"),
    )
        .into_response()
}

/// `/`: the signed-in user's start page.
async fn home(Page(user, _): Page<crate::auth::SignedIn>) -> Redirect {
    Redirect::to(user.role.home())
}

// ---------------------------------------------------------------------------------------
// Templates

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../templates/", $name, ".hbs")))),*]
    };
}

/// Every template, by name. `layout` is the page frame the others render inside.
const TEMPLATES: &[(&str, &str)] = templates![
    "layout",
    "error",
    "login",
    "queue",
    "item",
    "preview",
    "audit",
    "rule",
    "dashboard",
    "documents",
    "document",
    "document_edit",
    "document_diff",
    "document_gate",
    "evals",
    "eval",
    "eval_compare",
    "eval_case",
    "account",
    "signals",
    "mail",
    "contacts",
    "search",
    "tasks",
    "task",
    "cases",
    "promises",
    "today",
    "desk",
    "users",
];

static REGISTRY: LazyLock<Result<Handlebars<'static>, String>> = LazyLock::new(|| {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    for (name, text) in TEMPLATES {
        hb.register_template_string(name, *text)
            .map_err(|e| format!("template {name}: {e}"))?;
    }
    hb.register_partial("layout", TEMPLATES[0].1)
        .map_err(|e| format!("partial layout: {e}"))?;
    Ok(hb)
});

/// Renders `name` with `data` (HTML-escaped).
pub(crate) fn render(name: &str, data: &Value) -> AppResult<String> {
    let hb = REGISTRY.as_ref().map_err(AppError::internal)?;
    hb.render(name, data)
        .map_err(|e| AppError::internal(format!("rendering {name}: {e}")))
}

/// A page for a signed-in user: the template's data under `page`, the frame's under
/// `chrome` (user, navigation, CSRF token).
pub(crate) fn page(
    user: &SessionUser,
    name: &str,
    title: &str,
    data: Value,
) -> AppResult<Html<String>> {
    let data = json!({"title": title, "chrome": chrome(user, name), "page": data});
    render(name, &data).map(Html)
}

#[derive(Serialize)]
struct NavLink {
    href: &'static str,
    label: &'static str,
    current: bool,
}

fn chrome(user: &SessionUser, current: &str) -> Value {
    let links: &[(&str, &str, &[UserRole], &[&str])] = &[
        (
            "/queue",
            "Approval queue",
            perm::QUEUE_READ,
            &["queue", "item", "preview", "account"],
        ),
        ("/search", "Search", perm::SEARCH, &["search", "contacts"]),
        ("/today", "Today", perm::TASKS_READ, &["today"]),
        ("/tasks", "Tasks", perm::TASKS_READ, &["tasks", "task"]),
        ("/cases", "Cases", perm::CASES_READ, &["cases"]),
        ("/promises", "Promises", perm::LEDGER_READ, &["promises"]),
        (
            "/desk",
            "Holds & referrals",
            perm::CREDIT_HOLDS_READ,
            &["desk"],
        ),
        (
            "/signals",
            "Customer signals",
            perm::SIGNALS_READ,
            &["signals"],
        ),
        (
            "/mail/unmatched",
            "Unmatched mail",
            perm::MAIL_READ,
            &["mail"],
        ),
        (
            "/dashboard",
            "Dashboard",
            perm::DASHBOARD_READ,
            &["dashboard"],
        ),
        (
            "/documents",
            "Prompts & policies",
            perm::DOCS_READ,
            &[
                "documents",
                "document",
                "document_edit",
                "document_diff",
                "document_gate",
            ],
        ),
        (
            "/evals",
            "Evals",
            perm::EVALS_READ,
            &["evals", "eval", "eval_compare", "eval_case"],
        ),
        (
            "/audit",
            "Audit trail",
            perm::AUDIT_READ,
            &["audit", "rule"],
        ),
        ("/users", "Users", perm::USERS_ADMIN, &["users"]),
    ];
    let nav: Vec<NavLink> = links
        .iter()
        .filter(|(_, _, roles, _)| roles.contains(&user.role))
        .map(|(href, label, _, pages)| NavLink {
            href,
            label,
            current: pages.contains(&current),
        })
        .collect();
    json!({
        "user": {"name": user.name, "role": user.role.as_str()},
        "nav": nav,
        "csrf": user.csrf,
    })
}

/// The HTML answer for an error on a page request (see [`AppError`]'s `IntoResponse`).
pub(crate) fn error_page(
    e: &AppError,
    status: StatusCode,
    page: &str,
    request_id: &str,
) -> Response {
    if matches!(e, AppError::Unauthorized) {
        let to = format!("/login?next={}", encode_query(page));
        return Redirect::to(&to).into_response();
    }
    let rules = match e {
        AppError::Denied { rules, .. } => serde_json::to_value(rules).unwrap_or_default(),
        _ => json!([]),
    };
    let data = json!({
        "title": status.canonical_reason().unwrap_or("Error"),
        "chrome": null,
        "status": status.as_u16(),
        "message": e.to_string(),
        "rules": rules,
        "request_id": request_id,
    });
    match render("error", &data) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => (status, format!("{e} (request {request_id})")).into_response(),
    }
}

pub(crate) fn encode_query(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|q| q.trim_start_matches('=').to_string())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Sessions and CSRF

/// A user signed in through the browser.
#[derive(Clone, Debug)]
pub struct SessionUser {
    pub name: String,
    pub role: UserRole,
    /// What every form this user posts must carry as `_csrf`.
    pub csrf: String,
    pub(crate) token_hash: String,
}

impl SessionUser {
    /// How the audit trail names this user: `role:name`, as the agent names reviewers.
    pub fn actor(&self) -> String {
        format!("{}:{}", self.role, self.name)
    }
}

/// The CSRF token bound to a session token.
pub(crate) fn csrf_for(session_token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"argent-csrf\0");
    h.update(session_token.as_bytes());
    hex::encode(h.finalize())
}

/// Equality that takes as long wherever the strings differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Every distinct value of the cookie `name` the request carries, in the order sent.
pub(crate) fn cookie_values(headers: &HeaderMap, name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(|c| c.name() == name)
    {
        if !out.iter().any(|v| v == c.value()) {
            out.push(c.value().to_string());
        }
    }
    out
}

/// The value of the cookie `name` (`what` it is, for the error). Two different values are
/// refused (400), never chosen between: a sibling subdomain of the same site can set a
/// cookie of this name for the whole site with a longer path, which the browser then
/// sends first — signing the victim in as the attacker on that path.
pub(crate) fn cookie_value(
    headers: &HeaderMap,
    name: &str,
    what: &str,
) -> AppResult<Option<String>> {
    let mut values = cookie_values(headers, name);
    if values.len() > 1 {
        return Err(AppError::BadRequest(format!(
            "the request carries more than one {what} ({name}) with different values; another \
             site may have set one. Sign out, clear this site's cookies and sign in again"
        )));
    }
    Ok(values.pop())
}

/// Refuses (403) a form post that a browser says came from another origin: a
/// `Sec-Fetch-Site` other than `same-origin` (a sibling subdomain is `same-site`, which
/// SameSite cookies let through), or — from a browser that does not send that header — an
/// `Origin` whose host is not the request's. A request with neither (not a browser, or a
/// very old one) is left to the CSRF token.
pub(crate) fn check_same_origin(headers: &HeaderMap) -> AppResult<()> {
    let refused = || {
        AppError::Forbidden(
            "this form was posted from another site; open the page here and submit it again".into(),
        )
    };
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" | b"none" => Ok(()),
            _ => Err(refused()),
        };
    }
    if let Some(origin) = headers.get(ORIGIN) {
        let host = headers.get(HOST).and_then(|h| h.to_str().ok());
        let authority = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, a)| a);
        return match (authority, host) {
            (Some(a), Some(h)) if a.eq_ignore_ascii_case(h) => Ok(()),
            _ => Err(refused()),
        };
    }
    Ok(())
}

impl<S> FromRequestParts<S> for SessionUser
where
    Store: FromRef<S>,
    Arc<ServerConfig>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let config = Arc::<ServerConfig>::from_ref(state);
        let name = session::session_cookie_name(&config);
        let token = cookie_value(&parts.headers, name, "session cookie")?
            .filter(|t| !t.is_empty())
            .ok_or(AppError::Unauthorized)?;
        let (name, role, token_hash) =
            crate::auth::token_owner(&Store::from_ref(state), &token, TokenKind::Session).await?;
        Ok(SessionUser {
            name,
            role,
            csrf: csrf_for(&token),
            token_hash,
        })
    }
}

/// A signed-in browser user whose role `P` admits (see the module docs).
#[derive(Debug)]
pub struct Page<P: Permission>(pub SessionUser, PhantomData<P>);

impl<S, P> FromRequestParts<S> for Page<P>
where
    Store: FromRef<S>,
    Arc<ServerConfig>: FromRef<S>,
    S: Send + Sync,
    P: Permission,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let user = SessionUser::from_request_parts(parts, state).await?;
        if !P::ROLES.contains(&user.role) {
            return Err(AppError::Forbidden(format!(
                "role {} may not see this page",
                user.role
            )));
        }
        Ok(Page(user, PhantomData))
    }
}

/// A form post (`application/x-www-form-urlencoded`) from a signed-in user whose role `P`
/// admits, with the session's CSRF token checked before `T` is even parsed.
#[derive(Debug)]
pub struct Posted<P: Permission, T>(pub SessionUser, pub T, PhantomData<P>);

#[derive(serde::Deserialize)]
struct CsrfField {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

const MAX_FORM_BYTES: usize = 256 * 1024;

impl<S, P, T> FromRequest<S> for Posted<P, T>
where
    Store: FromRef<S>,
    Arc<ServerConfig>: FromRef<S>,
    S: Send + Sync,
    P: Permission,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let Page::<P>(user, _) = Page::from_request_parts(&mut parts, state).await?;
        check_same_origin(&parts.headers)?;
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| {
                AppError::PayloadTooLarge(format!(
                    "the form is larger than the {} KiB this server reads",
                    MAX_FORM_BYTES / 1024
                ))
            })?;
        check_csrf(&bytes, &user.csrf)?;
        let form = serde_urlencoded::from_bytes::<T>(&bytes).map_err(|e| {
            AppError::BadRequest(format!("the form is not what this page sends: {e}"))
        })?;
        Ok(Posted(user, form, PhantomData))
    }
}

pub(crate) fn check_csrf(body: &Bytes, expected: &str) -> AppResult<()> {
    let field: CsrfField = serde_urlencoded::from_bytes(body).unwrap_or(CsrfField { csrf: None });
    match field.csrf {
        Some(c) if same_secret(&c, expected) => Ok(()),
        _ => Err(AppError::Forbidden(
            "the form's CSRF token is missing or wrong; reload the page and try again".into(),
        )),
    }
}

impl UserRole {
    /// Where this role lands after signing in.
    pub fn home(&self) -> &'static str {
        match self {
            UserRole::Collector | UserRole::Admin => "/queue",
            UserRole::Manager => "/dashboard",
            UserRole::Compliance => "/audit",
            UserRole::Evaluator => "/evals",
        }
    }
}

// ---------------------------------------------------------------------------------------
// Formatting shared by the pages

/// `USD 1,200.00` from minor units and a currency code; the bare number when the code is
/// not a currency.
pub(crate) fn money(minor: i64, currency: &str) -> String {
    match currency.parse::<argent_core::Currency>() {
        Ok(currency) => argent_core::Money { minor, currency }.to_string(),
        Err(_) if currency.is_empty() => String::new(),
        Err(_) => format!("{minor} {currency}"),
    }
}

/// "3 h", "2 d": how long ago, for queue ages.
pub(crate) fn age(since: chrono::DateTime<Utc>, now: chrono::DateTime<Utc>) -> String {
    let d = now - since;
    if d.num_days() >= 1 {
        format!("{} d", d.num_days())
    } else if d.num_hours() >= 1 {
        format!("{} h", d.num_hours())
    } else {
        format!("{} min", d.num_minutes().max(0))
    }
}

/// The offset of page `page_no` (1-based) of `per_page` rows; a page so far out that its
/// offset does not fit is a 400, not an overflow.
pub(crate) fn page_offset(page_no: i64, per_page: i64) -> Result<i64, crate::error::AppError> {
    page_no
        .checked_sub(1)
        .and_then(|p| p.checked_mul(per_page))
        .ok_or_else(|| {
            crate::error::AppError::BadRequest(format!("page: {page_no} is past the last page"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_file_is_registered_and_compiles() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "hbs"))
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let mut registered: Vec<String> = TEMPLATES.iter().map(|(n, _)| n.to_string()).collect();
        registered.sort();
        assert_eq!(files, registered);
        assert!(REGISTRY.is_ok(), "{:?}", REGISTRY.as_ref().err());
    }
}
