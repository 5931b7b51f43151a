//! Web users and the tokens they sign in with.
//!
//! The store keeps what it is given: a user's role as text (the server knows what roles
//! mean; the database only refuses names outside the known set), the password as an
//! already-computed hash string, and a token as an already-computed hash. Nothing secret
//! is ever stored in a form that could be used to sign in.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::{Result, Store, dispatch, micros, now, str_enum};

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
}

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

const USER_COLS: &str = "name, role, password_hash, created_at";

macro_rules! user_row {
    ($r:expr) => {
        UserRecord {
            name: $r.try_get("name")?,
            role: $r.try_get("role")?,
            password_hash: $r.try_get("password_hash")?,
            created_at: $r.try_get("created_at")?,
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

    /// The user a token of `kind` belongs to, if the token exists and has not expired at
    /// `at`.
    pub async fn token_user(
        &self,
        token_hash: &str,
        kind: TokenKind,
        at: DateTime<Utc>,
    ) -> Result<Option<UserRecord>> {
        let sql = "SELECT u.name, u.role, u.password_hash, u.created_at FROM auth_tokens t \
                   JOIN users u ON u.name = t.user_name \
                   WHERE t.token_hash = $1 AND t.kind = $2 AND t.expires_at > $3";
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
