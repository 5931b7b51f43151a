//! User administration for admins: the page `/users` and its API (`/api/users…`). List
//! users (with the addresses each is locked out from), create one, disable and enable,
//! change a role, reset a password, lift a sign-in lockout. Every change is audited with
//! the admin as the actor (`user.create`, `user.disable`, `user.enable`, `user.role`,
//! `user.password_reset`, `user.unlock`), in the transaction that makes it; a change that
//! would leave no enabled admin is refused (409), whoever makes it.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use argent_store::{Store, UserChange, UserRecord};

use super::{Page, Posted, encode_query, page};
use crate::auth::{
    Allowed, Lockout, LoginThrottle, UserRole, UsersAdmin, add_user, reset_password, unlock_user,
};
use crate::error::{AppError, AppResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

/// One user as the API and the page show them (never the password hash).
#[derive(Clone, Debug, Serialize)]
pub struct UserView {
    pub name: String,
    pub role: String,
    pub created_at: String,
    pub disabled: bool,
    pub disabled_at: Option<String>,
    pub disabled_by: Option<String>,
    pub unlocked_at: Option<String>,
    /// Addresses this user's name is refused from now (too many failed sign-ins).
    pub lockouts: Vec<LockoutView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LockoutView {
    pub address: String,
    pub failures: usize,
    pub retry_after_secs: u64,
}

fn view(u: &UserRecord, lockouts: &[Lockout]) -> UserView {
    let key = u.name.trim().to_lowercase();
    UserView {
        name: u.name.clone(),
        role: u.role.clone(),
        created_at: u.created_at.to_rfc3339(),
        disabled: u.is_disabled(),
        disabled_at: u.disabled_at.map(|t| t.to_rfc3339()),
        disabled_by: u.disabled_by.clone(),
        unlocked_at: u.unlocked_at.map(|t| t.to_rfc3339()),
        lockouts: lockouts
            .iter()
            .filter(|l| l.name == key)
            .map(|l| LockoutView {
                address: l.address.clone(),
                failures: l.failures,
                retry_after_secs: l.retry_after_secs,
            })
            .collect(),
    }
}

async fn views(store: &Store, throttle: &LoginThrottle) -> AppResult<Vec<UserView>> {
    let lockouts = throttle.lockouts();
    Ok(store
        .users()
        .await?
        .iter()
        .map(|u| view(u, &lockouts))
        .collect())
}

#[derive(Debug, Serialize)]
pub struct UserList {
    pub users: Vec<UserView>,
}

#[derive(Debug, Deserialize)]
pub struct NewUserBody {
    pub name: String,
    pub role: UserRole,
    pub password: String,
}

#[derive(Debug, Deserialize)]
pub struct RoleBody {
    pub role: UserRole,
}

#[derive(Debug, Deserialize)]
pub struct PasswordBody {
    pub password: String,
}

/// The change a path's last segment names.
async fn apply(
    store: &Store,
    throttle: &LoginThrottle,
    actor: &str,
    name: &str,
    change: UserChange,
) -> AppResult<UserView> {
    let user = match change {
        UserChange::Unlock => unlock_user(store, throttle, actor, name).await?,
        other => store.change_user(name, &other, actor).await?,
    };
    Ok(view(&user, &throttle.lockouts()))
}

async fn one(store: &Store, throttle: &LoginThrottle, name: &str) -> AppResult<UserView> {
    let user = store
        .user(name)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("user {name} not found")))?;
    Ok(view(&user, &throttle.lockouts()))
}

// ---------------------------------------------------------------------------------------
// API

/// `GET /api/users`.
pub async fn api_list(
    State(store): State<Store>,
    State(throttle): State<Arc<LoginThrottle>>,
    Allowed(_, _): Allowed<UsersAdmin>,
) -> AppResult<Json<UserList>> {
    Ok(Json(UserList {
        users: views(&store, &throttle).await?,
    }))
}

/// `POST /api/users {name, role, password}` → 201.
pub async fn api_create(
    State(store): State<Store>,
    State(throttle): State<Arc<LoginThrottle>>,
    Allowed(admin, _): Allowed<UsersAdmin>,
    ApiJson(body): ApiJson<NewUserBody>,
) -> AppResult<Response> {
    add_user(
        &store,
        &admin.actor(),
        &body.name,
        body.role,
        &body.password,
    )
    .await?;
    let v = one(&store, &throttle, &body.name).await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// `POST /api/users/{name}/disable`.
pub async fn api_disable(
    State(store): State<Store>,
    State(throttle): State<Arc<LoginThrottle>>,
    Allowed(admin, _): Allowed<UsersAdmin>,
    ApiPath(name): ApiPath<String>,
) -> AppResult<Json<UserView>> {
    Ok(Json(
        apply(
            &store,
            &throttle,
            &admin.actor(),
            &name,
            UserChange::Disable,
        )
        .await?,
    ))
}

/// `POST /api/users/{name}/enable`.
pub async fn api_enable(
    State(store): State<Store>,
    State(throttle): State<Arc<LoginThrottle>>,
    Allowed(admin, _): Allowed<UsersAdmin>,
    ApiPath(name): ApiPath<String>,
) -> AppResult<Json<UserView>> {
    Ok(Json(
        apply(&store, &throttle, &admin.actor(), &name, UserChange::Enable).await?,
    ))
}

/// `POST /api/users/{name}/unlock`.
pub async fn api_unlock(
    State(store): State<Store>,
    State(throttle): State<Arc<LoginThrottle>>,
    Allowed(admin, _): Allowed<UsersAdmin>,
    ApiPath(name): ApiPath<String>,
) -> AppResult<Json<UserView>> {
    Ok(Json(
        apply(&store, &throttle, &admin.actor(), &name, UserChange::Unlock).await?,
    ))
}

/// `POST /api/users/{name}/role {role}`.
pub async fn api_role(
    State(store): State<Store>,
    State(throttle): State<Arc<LoginThrottle>>,
    Allowed(admin, _): Allowed<UsersAdmin>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<RoleBody>,
) -> AppResult<Json<UserView>> {
    let change = UserChange::Role(body.role.as_str().to_string());
    Ok(Json(
        apply(&store, &throttle, &admin.actor(), &name, change).await?,
    ))
}

/// `POST /api/users/{name}/password {password}`: the user is signed out everywhere.
pub async fn api_password(
    State(store): State<Store>,
    State(throttle): State<Arc<LoginThrottle>>,
    Allowed(admin, _): Allowed<UsersAdmin>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<PasswordBody>,
) -> AppResult<Json<UserView>> {
    let user = reset_password(&store, &admin.actor(), &name, &body.password).await?;
    Ok(Json(view(&user, &throttle.lockouts())))
}

// ---------------------------------------------------------------------------------------
// Pages

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// What just happened, shown once.
    pub done: Option<String>,
    pub name: Option<String>,
}

/// `GET /users`.
pub async fn list(
    State(store): State<Store>,
    State(throttle): State<Arc<LoginThrottle>>,
    Page(user, _): Page<UsersAdmin>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> AppResult<Html<String>> {
    let users = views(&store, &throttle).await?;
    let flash = match (q.done.as_deref(), q.name.as_deref()) {
        (Some(done), Some(name)) => {
            let what = match done {
                "created" => "created",
                "disabled" => "disabled and signed out everywhere",
                "enabled" => "enabled",
                "role" => "given a new role",
                "password" => "given a new password and signed out everywhere",
                "unlocked" => "unlocked: earlier failed sign-ins no longer count",
                _ => "changed",
            };
            Some(format!("{name} {what}."))
        }
        _ => None,
    };
    let roles: Vec<&str> = UserRole::ALL.iter().map(UserRole::as_str).collect();
    let rows: Vec<serde_json::Value> = users
        .iter()
        .map(|u| {
            let mut v = serde_json::to_value(u).unwrap_or_default();
            v["roles"] = json!(
                roles
                    .iter()
                    .map(|r| json!({"name": r, "selected": *r == u.role}))
                    .collect::<Vec<_>>()
            );
            v["href"] = json!(encode_path(&u.name));
            v["is_me"] = json!(u.name == user.name);
            v
        })
        .collect();
    page(
        &user,
        "users",
        "Users",
        json!({
            "users": rows,
            "roles": roles,
            "flash": flash,
            "locked": users.iter().filter(|u| !u.lockouts.is_empty()).count(),
        }),
    )
}

/// A user name as a path segment (names are letters, digits, `.`, `_`, `-`, `@`; `@` is
/// the one that needs encoding in some clients).
fn encode_path(name: &str) -> String {
    encode_query(name)
}

fn done(name: &str, what: &str) -> Response {
    Redirect::to(&format!("/users?done={what}&name={}", encode_query(name))).into_response()
}

#[derive(Debug, Deserialize)]
pub struct NewUserForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub password: String,
}

fn parse_role(s: &str) -> AppResult<UserRole> {
    s.parse().map_err(AppError::BadRequest)
}

/// `POST /users` (name, role, password).
pub async fn create_page(
    State(store): State<Store>,
    Posted(admin, form, _): Posted<UsersAdmin, NewUserForm>,
) -> AppResult<Response> {
    let role = parse_role(&form.role)?;
    let name = form.name.trim();
    add_user(&store, &admin.actor(), name, role, &form.password).await?;
    Ok(done(name, "created"))
}

/// `POST /users/{name}/disable`.
pub async fn disable_page(
    State(store): State<Store>,
    State(throttle): State<Arc<LoginThrottle>>,
    ApiPath(name): ApiPath<String>,
    Posted(admin, _, _): Posted<UsersAdmin, Vec<(String, String)>>,
) -> AppResult<Response> {
    apply(
        &store,
        &throttle,
        &admin.actor(),
        &name,
        UserChange::Disable,
    )
    .await?;
    Ok(done(&name, "disabled"))
}

/// `POST /users/{name}/enable`.
pub async fn enable_page(
    State(store): State<Store>,
    State(throttle): State<Arc<LoginThrottle>>,
    ApiPath(name): ApiPath<String>,
    Posted(admin, _, _): Posted<UsersAdmin, Vec<(String, String)>>,
) -> AppResult<Response> {
    apply(&store, &throttle, &admin.actor(), &name, UserChange::Enable).await?;
    Ok(done(&name, "enabled"))
}

/// `POST /users/{name}/unlock`.
pub async fn unlock_page(
    State(store): State<Store>,
    State(throttle): State<Arc<LoginThrottle>>,
    ApiPath(name): ApiPath<String>,
    Posted(admin, _, _): Posted<UsersAdmin, Vec<(String, String)>>,
) -> AppResult<Response> {
    apply(&store, &throttle, &admin.actor(), &name, UserChange::Unlock).await?;
    Ok(done(&name, "unlocked"))
}

#[derive(Debug, Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    pub role: String,
}

/// `POST /users/{name}/role` (role).
pub async fn role_page(
    State(store): State<Store>,
    State(throttle): State<Arc<LoginThrottle>>,
    ApiPath(name): ApiPath<String>,
    Posted(admin, form, _): Posted<UsersAdmin, RoleForm>,
) -> AppResult<Response> {
    let role = parse_role(&form.role)?;
    let change = UserChange::Role(role.as_str().to_string());
    apply(&store, &throttle, &admin.actor(), &name, change).await?;
    Ok(done(&name, "role"))
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    pub password: String,
}

/// `POST /users/{name}/password` (password).
pub async fn password_page(
    State(store): State<Store>,
    ApiPath(name): ApiPath<String>,
    Posted(admin, form, _): Posted<UsersAdmin, PasswordForm>,
) -> AppResult<Response> {
    reset_password(&store, &admin.actor(), &name, &form.password).await?;
    Ok(done(&name, "password"))
}
