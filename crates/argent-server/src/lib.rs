//! argent's web server: a JSON API and server-rendered pages over the agent and the store.
//!
//! Every `/api` route except `POST /api/login` needs `Authorization: Bearer <token>`; every
//! page except `/login` needs a session cookie, and every form post carries a CSRF token
//! bound to that session ([`web`]). Every handler checks the caller's role against its
//! endpoint's list in [`perm`]. Errors are one type, [`AppError`], answered as JSON with the
//! request id under `/api` and as an HTML page elsewhere; internal errors are logged and
//! answered with an opaque 500. The server knows no SQL (it calls the store) and no policy
//! (it calls the agent, which re-judges every decision).

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::middleware;
use axum::routing::{get, post};

use argent_agent::Agent;
use argent_store::Store;

mod api;
pub mod auth;
pub mod error;
mod extract;
pub mod request_id;
pub mod web;

pub use auth::{
    Allowed, AuthUser, Permission, UserRole, create_user, hash_password, perm, verify_password,
};
pub use error::{AppError, AppResult};

/// Settings the handlers need beyond the store and the agent.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// How long a bearer token from `POST /api/login` stays valid.
    pub token_ttl: chrono::Duration,
    /// How long a browser session lasts after signing in.
    pub session_ttl: chrono::Duration,
    /// Mark the session cookie `Secure` (set it when the server is behind HTTPS; a browser
    /// will not send a `Secure` cookie over plain HTTP, so it is off for 127.0.0.1).
    pub secure_cookies: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            token_ttl: chrono::Duration::hours(12),
            session_ttl: chrono::Duration::hours(12),
            secure_cookies: false,
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
}

impl AppState {
    /// State over an agent and the store it works on.
    pub fn new(agent: Arc<Agent>, config: ServerConfig) -> AppState {
        AppState {
            store: agent.store.clone(),
            agent: AgentHandle::new(agent),
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

/// The whole application.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/login", post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/me", get(auth::me))
        .route("/approvals", get(api::list_approvals))
        .route("/approvals/{id}", get(api::get_approval))
        .route("/approvals/{id}/approve", post(api::approve))
        .route("/approvals/{id}/edit", post(api::edit))
        .route("/approvals/{id}/reject", post(api::reject))
        .route("/approvals/{id}/preview", post(api::preview))
        .route("/audit", get(api::audit))
        .route("/audit/verify", get(api::audit_verify))
        .route("/audit/export", get(api::audit_export))
        .route("/aging", get(api::aging))
        .fallback(api_not_found)
        .method_not_allowed_fallback(api_method_not_allowed);
    Router::new()
        .nest("/api", api)
        .merge(web::routes())
        .fallback(web::not_found)
        .method_not_allowed_fallback(web::method_not_allowed)
        .with_state(state)
        .layer(middleware::from_fn(request_id::with_request_id))
}

async fn api_not_found() -> AppError {
    AppError::NotFound("no such endpoint".into())
}

async fn api_method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}

/// Serves `router(state)` on `listener` until the process is stopped.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}
