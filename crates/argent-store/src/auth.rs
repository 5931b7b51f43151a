//! Web users and the tokens they sign in with.
//!
//! The store keeps what it is given: a user's role as text (the server knows what roles
//! mean; the database only refuses names outside the known set), the password as an
//! already-computed hash string, and a token as an already-computed hash. Nothing secret
//! is ever stored in a form that could be used to sign in.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;

use crate::tx::dispatch_tx;
use crate::{
    Backend, NewAuditEvent, Result, Store, StoreError, StoreTx, dispatch, micros, now, str_enum,
};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewUser {
    pub name: String,
    /// `collector`, `manager`, `compliance`, `evaluator` or `admin`.
    pub role: String,
    /// A password hash (PHC string); never a password.
    pub password_hash: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub name: String,
    pub role: String,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
    /// When an admin disabled the user (`None`: enabled). A disabled user cannot sign in
    /// and no token of theirs is accepted.
    pub disabled_at: Option<DateTime<Utc>>,
    /// Who disabled them (the audit actor).
    pub disabled_by: Option<String>,
    /// When an admin last lifted the user's sign-in lockout: failed attempts counted
    /// before it no longer count.
    pub unlocked_at: Option<DateTime<Utc>>,
}

impl UserRecord {
    pub fn is_disabled(&self) -> bool {
        self.disabled_at.is_some()
    }
}

/// The audit event kinds of user administration (the actor is the admin).
pub const USER_CREATE: &str = "user.create";
pub const USER_DISABLE: &str = "user.disable";
pub const USER_ENABLE: &str = "user.enable";
pub const USER_ROLE: &str = "user.role";
pub const USER_PASSWORD_RESET: &str = "user.password_reset";
pub const USER_UNLOCK: &str = "user.unlock";

/// What a token is for: an API bearer token, or a browser session cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Api,
    Session,
}
str_enum!(TokenKind {
    Api => "api",
    Session => "session",
});

const USER_COLS: &str =
    "name, role, password_hash, created_at, disabled_at, disabled_by, unlocked_at";

macro_rules! user_row {
    ($r:expr) => {
        UserRecord {
            name: $r.try_get("name")?,
            role: $r.try_get("role")?,
            password_hash: $r.try_get("password_hash")?,
            created_at: $r.try_get("created_at")?,
            disabled_at: $r.try_get("disabled_at")?,
            disabled_by: $r.try_get("disabled_by")?,
            unlocked_at: $r.try_get("unlocked_at")?,
        }
    };
}

impl Store {
    /// Adds a user. `false` (and nothing changed) if the name is taken.
    pub async fn create_user(&self, u: &NewUser) -> Result<bool> {
        let _writer = self.write_lock().await?;
        let sql = "INSERT INTO users (name, role, password_hash, created_at) VALUES ($1, $2, $3, $4) \
                   ON CONFLICT (name) DO NOTHING";
        let n = dispatch!(self, |pool| {
            sqlx::query(sql)
                .bind(u.name.as_str())
                .bind(u.role.as_str())
                .bind(u.password_hash.as_str())
                .bind(now())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    pub async fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE name = $1");
        Ok(dispatch!(self, |pool| {
            match sqlx::query(&sql).bind(name).fetch_optional(pool).await? {
                Some(r) => Some(user_row!(r)),
                None => None,
            }
        }))
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<UserRecord>> {
        let sql = format!("SELECT {USER_COLS} FROM users ORDER BY name");
        Ok(dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql).fetch_all(pool).await? {
                out.push(user_row!(r));
            }
            out
        }))
    }

    /// Replaces a user's password hash and signs them out everywhere (their tokens are
    /// deleted in the same transaction). `false` if there is no such user.
    pub async fn set_user_password(&self, name: &str, password_hash: &str) -> Result<bool> {
        let _writer = self.write_lock().await?;
        let n = dispatch!(self, |pool| {
            let mut tx = pool.begin().await?;
            let n = sqlx::query("UPDATE users SET password_hash = $1 WHERE name = $2")
                .bind(password_hash)
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM auth_tokens WHERE user_name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            n
        });
        Ok(n == 1)
    }

    /// Records a token (by its hash) for `user_name`, valid until `expires_at`.
    pub async fn insert_token(
        &self,
        token_hash: &str,
        user_name: &str,
        kind: TokenKind,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        let _writer = self.write_lock().await?;
        let sql = "INSERT INTO auth_tokens (token_hash, user_name, kind, created_at, expires_at) \
                   VALUES ($1, $2, $3, $4, $5)";
        dispatch!(self, |pool| {
            sqlx::query(sql)
                .bind(token_hash)
                .bind(user_name)
                .bind(kind.as_str())
                .bind(now())
                .bind(micros(expires_at))
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The user a token of `kind` belongs to, if the token exists, has not expired at `at`
    /// and its user is not disabled.
    pub async fn token_user(
        &self,
        token_hash: &str,
        kind: TokenKind,
        at: DateTime<Utc>,
    ) -> Result<Option<UserRecord>> {
        let sql = "SELECT u.name, u.role, u.password_hash, u.created_at, u.disabled_at, \
                   u.disabled_by, u.unlocked_at FROM auth_tokens t \
                   JOIN users u ON u.name = t.user_name \
                   WHERE t.token_hash = $1 AND t.kind = $2 AND t.expires_at > $3 \
                   AND u.disabled_at IS NULL";
        Ok(dispatch!(self, |pool| {
            match sqlx::query(sql)
                .bind(token_hash)
                .bind(kind.as_str())
                .bind(micros(at))
                .fetch_optional(pool)
                .await?
            {
                Some(r) => Some(user_row!(r)),
                None => None,
            }
        }))
    }

    /// Revokes one token. `false` if it did not exist.
    pub async fn delete_token(&self, token_hash: &str) -> Result<bool> {
        let _writer = self.write_lock().await?;
        let n = dispatch!(self, |pool| {
            sqlx::query("DELETE FROM auth_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Deletes every token that expired at or before `at`; returns how many.
    pub async fn purge_expired_tokens(&self, at: DateTime<Utc>) -> Result<u64> {
        let _writer = self.write_lock().await?;
        Ok(dispatch!(self, |pool| {
            sqlx::query("DELETE FROM auth_tokens WHERE expires_at <= $1")
                .bind(micros(at))
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}

/// A change an admin makes to a user (see [`Store::change_user`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserChange {
    /// Sign the user out everywhere and refuse their sign-ins and tokens.
    Disable,
    /// Let a disabled user sign in again.
    Enable,
    /// Give the user another role (`collector`, `manager`, …).
    Role(String),
    /// Replace the password hash (the user is signed out everywhere).
    Password(String),
    /// Lift the user's sign-in lockout: attempts counted before now no longer count.
    Unlock,
}

impl UserChange {
    fn kind(&self) -> &'static str {
        match self {
            UserChange::Disable => USER_DISABLE,
            UserChange::Enable => USER_ENABLE,
            UserChange::Role(_) => USER_ROLE,
            UserChange::Password(_) => USER_PASSWORD_RESET,
            UserChange::Unlock => USER_UNLOCK,
        }
    }
}

impl Store {
    /// Adds a user, audited as `user.create` by `actor` in the same transaction. `false`
    /// (and nothing changed or audited) if the name is taken.
    pub async fn create_user_audited(&self, u: &NewUser, actor: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        tx.lock_users().await?;
        if tx.user_in_tx(&u.name).await?.is_some() {
            return Ok(false);
        }
        dispatch_tx!(tx, |conn| {
            sqlx::query(
                "INSERT INTO users (name, role, password_hash, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(u.name.as_str())
            .bind(u.role.as_str())
            .bind(u.password_hash.as_str())
            .bind(now())
            .execute(&mut *conn)
            .await?;
        });
        tx.audit_append(NewAuditEvent {
            run_id: None,
            customer_id: None,
            actor: actor.to_string(),
            kind: USER_CREATE.into(),
            payload: json!({"name": u.name, "role": u.role}),
        })
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Makes `change` to user `name` and audits it (`user.disable`, `user.enable`,
    /// `user.role`, `user.password_reset`, `user.unlock`) with `actor`, in one
    /// transaction; returns the user as changed. Disabling and a new password delete the
    /// user's tokens (signed out everywhere). `NotFound` without such a user; `Conflict`
    /// for a change that changes nothing (disabling a disabled user, the role they have)
    /// or that would leave no enabled admin (whoever asks: an admin cannot disable or
    /// demote the last admin, themselves included).
    pub async fn change_user(
        &self,
        name: &str,
        change: &UserChange,
        actor: &str,
    ) -> Result<UserRecord> {
        let mut tx = self.begin().await?;
        tx.lock_users().await?;
        let Some(before) = tx.user_in_tx(name).await? else {
            return Err(StoreError::NotFound(format!("user {name}")));
        };
        let was_admin = before.role == "admin" && !before.is_disabled();
        let mut payload = json!({"name": name});
        let at = now();
        match change {
            UserChange::Disable => {
                if before.is_disabled() {
                    return Err(StoreError::Conflict(format!(
                        "user {name} is already disabled"
                    )));
                }
                dispatch_tx!(tx, |conn| {
                    sqlx::query(
                        "UPDATE users SET disabled_at = $1, disabled_by = $2 WHERE name = $3",
                    )
                    .bind(at)
                    .bind(actor)
                    .bind(name)
                    .execute(&mut *conn)
                    .await?;
                    sqlx::query("DELETE FROM auth_tokens WHERE user_name = $1")
                        .bind(name)
                        .execute(&mut *conn)
                        .await?;
                });
            }
            UserChange::Enable => {
                if !before.is_disabled() {
                    return Err(StoreError::Conflict(format!("user {name} is not disabled")));
                }
                dispatch_tx!(tx, |conn| {
                    sqlx::query(
                        "UPDATE users SET disabled_at = NULL, disabled_by = NULL WHERE name = $1",
                    )
                    .bind(name)
                    .execute(&mut *conn)
                    .await?;
                });
            }
            UserChange::Role(role) => {
                if *role == before.role {
                    return Err(StoreError::Conflict(format!(
                        "user {name} is already {role}"
                    )));
                }
                dispatch_tx!(tx, |conn| {
                    sqlx::query("UPDATE users SET role = $1 WHERE name = $2")
                        .bind(role.as_str())
                        .bind(name)
                        .execute(&mut *conn)
                        .await?;
                });
                payload = json!({"name": name, "from": before.role, "to": role});
            }
            UserChange::Password(hash) => {
                dispatch_tx!(tx, |conn| {
                    sqlx::query("UPDATE users SET password_hash = $1 WHERE name = $2")
                        .bind(hash.as_str())
                        .bind(name)
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("DELETE FROM auth_tokens WHERE user_name = $1")
                        .bind(name)
                        .execute(&mut *conn)
                        .await?;
                });
            }
            UserChange::Unlock => {
                dispatch_tx!(tx, |conn| {
                    sqlx::query("UPDATE users SET unlocked_at = $1 WHERE name = $2")
                        .bind(at)
                        .bind(name)
                        .execute(&mut *conn)
                        .await?;
                });
            }
        }
        let Some(after) = tx.user_in_tx(name).await? else {
            return Err(StoreError::NotFound(format!("user {name}")));
        };
        let is_admin = after.role == "admin" && !after.is_disabled();
        if was_admin && !is_admin && tx.enabled_admins().await? == 0 {
            tx.rollback().await?;
            return Err(StoreError::Conflict(format!(
                "{name} is the last enabled admin; make another user admin first"
            )));
        }
        tx.audit_append(NewAuditEvent {
            run_id: None,
            customer_id: None,
            actor: actor.to_string(),
            kind: change.kind().into(),
            payload,
        })
        .await?;
        tx.commit().await?;
        Ok(after)
    }
}

impl StoreTx {
    /// On PostgreSQL, serializes user administration (two admins demoting each other at
    /// once must not both see the other still an admin); SQLite transactions are already
    /// serialized.
    async fn lock_users(&mut self) -> Result<()> {
        if self.backend() == Backend::Postgres {
            dispatch_tx!(self, |conn| {
                sqlx::query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
                    .execute(&mut *conn)
                    .await?;
            });
        }
        Ok(())
    }

    async fn user_in_tx(&mut self, name: &str) -> Result<Option<UserRecord>> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE name = $1");
        Ok(dispatch_tx!(self, |conn| {
            match sqlx::query(&sql)
                .bind(name)
                .fetch_optional(&mut *conn)
                .await?
            {
                Some(r) => Some(user_row!(r)),
                None => None,
            }
        }))
    }

    async fn enabled_admins(&mut self) -> Result<i64> {
        Ok(dispatch_tx!(self, |conn| {
            sqlx::query(
                "SELECT COUNT(*) AS n FROM users WHERE role = 'admin' AND disabled_at IS NULL",
            )
            .fetch_one(&mut *conn)
            .await?
            .try_get::<i64, _>("n")?
        }))
    }
}
