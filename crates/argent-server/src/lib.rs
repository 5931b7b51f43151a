//! argent's web server: a JSON API over the agent and the store.
//!
//! Every `/api` route except `POST /api/login` needs `Authorization: Bearer <token>`, and
//! every handler checks the caller's role against its endpoint's list in [`perm`]. Errors
//! are one type, [`AppError`], answered as JSON with the request id; internal errors are
//! logged and answered with an opaque 500. The server knows no SQL (it calls the store)
//! and no policy (it calls the agent, which re-judges every decision).

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

pub use auth::{
    Allowed, AuthUser, Permission, UserRole, create_user, hash_password, perm, verify_password,
};
pub use error::{AppError, AppResult};

/// Settings the handlers need beyond the store and the agent.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// How long a bearer token from `POST /api/login` stays valid.
    pub token_ttl: chrono::Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            token_ttl: chrono::Duration::hours(12),
        }
    }
}

/// What every handler may extract: the store, the agent, the configuration.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub agent: Arc<Agent>,
    pub config: Arc<ServerConfig>,
}

impl AppState {
    /// State over an agent and the store it works on.
    pub fn new(agent: Arc<Agent>, config: ServerConfig) -> AppState {
        AppState {
            store: agent.store.clone(),
            agent,
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
        .route("/aging", get(api::aging))
        .method_not_allowed_fallback(method_not_allowed);
    Router::new()
        .nest("/api", api)
        .fallback(not_found)
        .with_state(state)
        .layer(middleware::from_fn(request_id::with_request_id))
}

async fn not_found() -> AppError {
    AppError::NotFound("no such endpoint".into())
}

async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}

/// Serves `router(state)` on `listener` until the process is stopped.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}
