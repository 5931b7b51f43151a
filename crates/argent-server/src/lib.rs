//! argent's web server: a JSON API and server-rendered pages over the agent and the store.
//!
//! Every `/api` route except `POST /api/login` needs `Authorization: Bearer <token>`; every
//! page except `/login` needs a session cookie, and every form post carries a CSRF token
//! bound to that session ([`web`]). Every handler checks the caller's role against its
//! endpoint's list in [`perm`]. Errors are one type, [`AppError`], answered as JSON with the
//! request id under `/api` and as an HTML page elsewhere; internal errors are logged and
//! answered with an opaque 500. Every response, errors included, carries the headers of
//! [`security`]: no framing by other sites, no type sniffing, no `Referer`, and a
//! Content-Security-Policy under which a page loads only this site's stylesheet. The server
//! knows no SQL (it calls the store) and no policy (it calls the agent, which re-judges
//! every decision).

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::http::header::CONTENT_TYPE;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, get, post, put};

use argent_agent::Agent;
use argent_store::Store;

mod api;
pub mod auth;
mod cases;
mod desk;
pub mod error;
mod extract;
pub mod inbound;
pub mod limits;
mod procedures;
pub mod request_id;
pub mod security;
mod tasks;
pub mod web;

pub use auth::{
    Allowed, AuthUser, ClientAddr, Permission, UserRole, add_user, create_user, hash_password,
    perm, reset_password, verify_password,
};
pub use error::{AppError, AppResult};

/// Settings the handlers need beyond the store and the agent.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// How long a bearer token from `POST /api/login` stays valid.
    pub token_ttl: chrono::Duration,
    /// How long a browser session lasts after signing in.
    pub session_ttl: chrono::Duration,
    /// Failed sign-ins a user name may have from one client address within `login_window`
    /// before further attempts from that address are refused for the rest of it (see
    /// [`auth::LoginThrottle`]).
    pub login_max_failures: usize,
    /// Reverse proxies whose `X-Forwarded-For` names the client ([`auth::ClientAddr`]);
    /// empty (the default): the TCP peer is the client and the header is ignored.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The eval set web eval runs use (`None`: eval runs from the web are off).
    pub evals_dir: Option<std::path::PathBuf>,
    /// Which cases of it they run (`tag:NAME` or id substrings, comma-separated).
    pub eval_filter: Option<String>,
    pub login_window: std::time::Duration,
    /// Mark the session cookie `Secure` (set it when the server is behind HTTPS; a browser
    /// will not send a `Secure` cookie over plain HTTP, so it is off for 127.0.0.1).
    pub secure_cookies: bool,
    /// CPU-heavy pieces of work (validation, exports, eval runs) run at once, on blocking
    /// threads ([`limits::CpuSlots`]; default: cores − 1, at least 1).
    pub cpu_slots: usize,
    /// Eval runs from the web or the API one user may have going at once (default 1).
    pub eval_runs_per_user: usize,
    /// Eval runs from the web or the API going at once in all (default 2).
    pub eval_runs_total: usize,
    /// The bearer token of `POST /api/inbound` (`ARGENT_INBOUND_TOKEN`), separate from
    /// users' tokens; `None`: the webhook refuses everything.
    pub inbound_token: Option<String>,
    /// The largest raw message `POST /api/inbound` accepts (default 10 MiB).
    pub inbound_max_bytes: usize,
    /// Process a message `POST /api/inbound` stored right away, in the background
    /// (`argent serve` turns it on; off by default so a test can look at a stored message
    /// before anything acts on it).
    pub process_inbound: bool,
    /// Who approves a document activation request, per document kind, and who may roll
    /// back in an emergency (default: `governance/four_eyes.toml` as compiled in).
    pub four_eyes: argent_agent::FourEyes,
    /// The shipped policy tests (`policies/tests`) a policy draft must pass before it is
    /// activated, with the tests policy documents carry (`argent_evals::gate`); `None`:
    /// only the documents' own tests run.
    pub policy_tests_dir: Option<std::path::PathBuf>,
    /// Days of audited decisions the activation gate's impact replay judges again
    /// (default 30; `?days=` on the gate page overrides it).
    pub impact_days: u32,
    /// The model's price per 1,000 tokens (`argent serve --token-price`,
    /// `ARGENT_TOKEN_PRICE`): the dashboard's estimated model cost; `None`: tokens only.
    pub token_price: Option<argent_core::format::TokenPrice>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            token_ttl: chrono::Duration::hours(12),
            session_ttl: chrono::Duration::hours(12),
            secure_cookies: false,
            login_max_failures: 5,
            trusted_proxies: Vec::new(),
            evals_dir: None,
            eval_filter: None,
            login_window: std::time::Duration::from_secs(15 * 60),
            cpu_slots: limits::default_cpu_slots(),
            eval_runs_per_user: 1,
            eval_runs_total: 2,
            inbound_token: None,
            inbound_max_bytes: argent_mail::raw::DEFAULT_MAX_BYTES,
            process_inbound: false,
            four_eyes: argent_agent::FourEyes::repository_default(),
            policy_tests_dir: None,
            impact_days: 30,
            token_price: None,
        }
    }
}

/// The agent the server works with, replaceable while the server runs: activating a new
/// prompt or policy version builds a new agent and swaps it in. A request takes the agent
/// current when it starts and keeps it to the end, so one request never sees two versions.
#[derive(Clone)]
pub struct AgentHandle(Arc<std::sync::RwLock<Arc<Agent>>>);

impl AgentHandle {
    pub fn new(agent: Arc<Agent>) -> AgentHandle {
        AgentHandle(Arc::new(std::sync::RwLock::new(agent)))
    }

    /// The agent now.
    pub fn current(&self) -> Arc<Agent> {
        // A writer cannot panic while holding the lock (it only assigns), so a poisoned
        // lock still holds a whole agent.
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Makes `agent` the one later requests get.
    pub fn replace(&self, agent: Arc<Agent>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = agent;
    }
}

/// What every handler may extract: the store, the agent, the configuration.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub agent: AgentHandle,
    pub config: Arc<ServerConfig>,
    pub throttle: Arc<auth::LoginThrottle>,
    /// Where CPU-heavy work runs ([`limits`]).
    pub cpu: limits::CpuSlots,
    /// Eval runs going, per user and in all ([`limits`]).
    pub evals: Arc<limits::EvalSlots>,
}

impl AppState {
    /// State over an agent and the store it works on.
    pub fn new(agent: Arc<Agent>, config: ServerConfig) -> AppState {
        AppState {
            store: agent.store.clone(),
            agent: AgentHandle::new(agent),
            throttle: Arc::new(auth::LoginThrottle::new(
                config.login_max_failures,
                config.login_window,
            )),
            cpu: limits::CpuSlots::new(config.cpu_slots),
            evals: limits::EvalSlots::new(config.eval_runs_per_user, config.eval_runs_total),
            config: Arc::new(config),
        }
    }
}

impl FromRef<AppState> for Store {
    fn from_ref(s: &AppState) -> Store {
        s.store.clone()
    }
}

impl FromRef<AppState> for Arc<Agent> {
    fn from_ref(s: &AppState) -> Arc<Agent> {
        s.agent.current()
    }
}

impl FromRef<AppState> for Arc<auth::LoginThrottle> {
    fn from_ref(s: &AppState) -> Arc<auth::LoginThrottle> {
        s.throttle.clone()
    }
}

impl FromRef<AppState> for limits::CpuSlots {
    fn from_ref(s: &AppState) -> limits::CpuSlots {
        s.cpu.clone()
    }
}

impl FromRef<AppState> for AgentHandle {
    fn from_ref(s: &AppState) -> AgentHandle {
        s.agent.clone()
    }
}

impl FromRef<AppState> for Arc<ServerConfig> {
    fn from_ref(s: &AppState) -> Arc<ServerConfig> {
        s.config.clone()
    }
}

/// Every JSON API operation: method, path under `/api`, handler. The router is built from
/// this table and a test checks it against `openapi.json`, so the document lists exactly
/// what is served.
fn api_table() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("POST", "/login", post(auth::login)),
        ("POST", "/logout", post(auth::logout)),
        ("GET", "/me", get(auth::me)),
        ("GET", "/approvals", get(api::list_approvals)),
        ("GET", "/approvals/{id}", get(api::get_approval)),
        ("POST", "/approvals/{id}/approve", post(api::approve)),
        ("POST", "/approvals/{id}/edit", post(api::edit)),
        ("POST", "/approvals/{id}/reject", post(api::reject)),
        ("POST", "/approvals/{id}/preview", post(api::preview)),
        ("GET", "/audit", get(api::audit)),
        ("GET", "/audit/verify", get(api::audit_verify)),
        ("GET", "/audit/export", get(api::audit_export)),
        ("GET", "/aging", get(api::aging)),
        ("GET", "/customers/{id}/facts", get(web::facts_api_get)),
        ("PUT", "/customers/{id}/facts", put(web::facts_api_put)),
        ("GET", "/customers/{id}/timeline", get(web::api_timeline)),
        ("GET", "/customers/{id}/contacts", get(web::api_contacts)),
        ("GET", "/search", get(web::api_search)),
        (
            "GET",
            "/customers/{id}/procedure",
            get(procedures::customer),
        ),
        ("GET", "/procedures/summary", get(procedures::summary)),
        ("GET", "/dashboard", get(web::dashboard_api)),
        ("GET", "/documents", get(web::api_list)),
        ("GET", "/documents/{kind}/{name}", get(web::api_versions)),
        ("POST", "/documents/{kind}/{name}", post(web::api_create)),
        (
            "POST",
            "/documents/{kind}/{name}/validate",
            post(web::api_validate),
        ),
        (
            "GET",
            "/documents/{kind}/{name}/{version}",
            get(web::api_version),
        ),
        (
            "POST",
            "/documents/{kind}/{name}/{version}/activate",
            post(web::api_activate),
        ),
        (
            "POST",
            "/documents/{kind}/{name}/{version}/eval",
            post(web::api_run_draft),
        ),
        (
            "POST",
            "/documents/{kind}/{name}/rollback",
            post(web::api_rollback),
        ),
        ("GET", "/document-requests", get(web::api_requests)),
        (
            "POST",
            "/document-requests/{id}/approve",
            post(web::api_approve_request),
        ),
        (
            "POST",
            "/document-requests/{id}/reject",
            post(web::api_reject_request),
        ),
        (
            "GET",
            "/documents/{kind}/{name}/{version}/gate",
            get(web::api_gate),
        ),
        ("GET", "/evals", get(web::evals_api_list)),
        ("POST", "/evals", post(web::evals_api_run)),
        ("GET", "/evals/{id}", get(web::evals_api_show)),
        ("GET", "/evals/{id}/cases/{case}", get(web::evals_api_case)),
        (
            "POST",
            "/cases/{id}/verification",
            post(cases::verification),
        ),
        ("POST", "/cases/{id}/resolve", post(cases::resolve)),
        ("GET", "/cases", get(tasks::api_cases)),
        ("POST", "/cases/{id}/take", post(tasks::api_take_case)),
        ("GET", "/tasks", get(tasks::api_list)),
        ("GET", "/tasks/{id}", get(tasks::api_show)),
        ("POST", "/tasks/{id}/assign", post(tasks::api_assign)),
        ("POST", "/tasks/{id}/comment", post(tasks::api_comment)),
        ("POST", "/tasks/{id}/close", post(tasks::api_close)),
        ("GET", "/promises", get(tasks::api_promises)),
        ("GET", "/today", get(tasks::api_today)),
        ("POST", "/calls/{id}/outcome", post(tasks::api_call_outcome)),
        ("GET", "/queues", get(tasks::api_counts)),
        ("GET", "/signals", get(web::signals_api_list)),
        (
            "POST",
            "/signals/{id}/confirm",
            post(web::signals_api_confirm),
        ),
        ("POST", "/signals/{id}/clear", post(web::signals_api_clear)),
        ("GET", "/mail/unmatched", get(web::mail_api_list)),
        ("POST", "/mail/{id}/assign", post(web::mail_api_assign)),
        ("GET", "/credit-holds", get(desk::credit_holds)),
        ("GET", "/referrals", get(desk::referrals)),
        ("GET", "/referrals/{id}/package", get(desk::package)),
        ("POST", "/referrals/{id}/approve", post(desk::approve)),
        ("POST", "/referrals/{id}/reject", post(desk::reject)),
        ("POST", "/inbound", post(inbound::receive)),
        ("GET", "/users", get(web::users_api_list)),
        ("POST", "/users", post(web::users_api_create)),
        (
            "POST",
            "/users/{name}/disable",
            post(web::users_api_disable),
        ),
        ("POST", "/users/{name}/enable", post(web::users_api_enable)),
        ("POST", "/users/{name}/unlock", post(web::users_api_unlock)),
        ("POST", "/users/{name}/role", post(web::users_api_role)),
        (
            "POST",
            "/users/{name}/password",
            post(web::users_api_password),
        ),
    ]
}

/// `(method, path)` of every JSON API operation, paths as the OpenAPI document writes them
/// (`/api/approvals/{id}`).
pub fn api_operations() -> Vec<(&'static str, String)> {
    api_table()
        .into_iter()
        .map(|(m, p, _)| (m, format!("/api{p}")))
        .collect()
}

/// The OpenAPI 3.1 document of the JSON API, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

async fn openapi() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], OPENAPI)
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    let mut api = Router::new();
    for (_, path, handler) in api_table() {
        api = api.route(path, handler);
    }
    let api = api
        .fallback(api_not_found)
        .method_not_allowed_fallback(api_method_not_allowed);
    Router::new()
        .nest("/api", api)
        .route("/openapi.json", get(openapi))
        .merge(web::routes())
        .fallback(web::not_found)
        .method_not_allowed_fallback(web::method_not_allowed)
        .with_state(state)
        // No body is read past this (413 as it streams in); see `limits`.
        .layer(DefaultBodyLimit::max(limits::MAX_REQUEST_BYTES))
        .layer(middleware::from_fn(request_id::with_request_id))
        .layer(middleware::from_fn(security::with_security_headers))
}

async fn api_not_found() -> AppError {
    AppError::NotFound("no such endpoint".into())
}

async fn api_method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}

/// Serves `router(state)` on `listener` until the process is stopped. Each request
/// carries its TCP peer's address (`ConnectInfo`), which the sign-in throttle keys on
/// ([`auth::ClientAddr`]).
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .await
}
