//! Users, roles, passwords and bearer tokens.
//!
//! Passwords are hashed with argon2id (a random salt each, PHC strings in the store).
//! `POST /api/login` answers a random 256-bit token; the store keeps only its SHA-256, so a
//! copy of the database signs nobody in. [`AuthUser`] is the extractor every protected
//! handler takes: no valid token, no call (401). Each handler then checks the caller's
//! role against its endpoint's list in [`perm`] (403).

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::Json;
use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use argent_core::Role;
use argent_store::{NewUser, Store, TokenKind, UserChange, UserRecord};

use crate::ServerConfig;
use crate::error::{AppError, AppResult};
use crate::extract::ApiJson;

/// A web user's role. The four that can review the approval queue map onto
/// [`argent_core::Role`] (the roles policy rules name as approvers); `evaluator` exists only
/// here: evaluators look at eval runs and never touch the queue or the policy's approvals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    Collector,
    Manager,
    Compliance,
    Evaluator,
    Admin,
}

impl UserRole {
    pub const ALL: &'static [UserRole] = &[
        UserRole::Collector,
        UserRole::Manager,
        UserRole::Compliance,
        UserRole::Evaluator,
        UserRole::Admin,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            UserRole::Collector => "collector",
            UserRole::Manager => "manager",
            UserRole::Compliance => "compliance",
            UserRole::Evaluator => "evaluator",
            UserRole::Admin => "admin",
        }
    }

    /// The role this user reviews approval items as; `None` for evaluators.
    pub fn reviewer_role(&self) -> Option<Role> {
        match self {
            UserRole::Collector => Some(Role::Collector),
            UserRole::Manager => Some(Role::Manager),
            UserRole::Compliance => Some(Role::Compliance),
            UserRole::Admin => Some(Role::Admin),
            UserRole::Evaluator => None,
        }
    }
}

impl fmt::Display for UserRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UserRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UserRole::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "'{s}' is not a role (expected one of: collector, manager, compliance, evaluator, admin)"
                )
            })
    }
}

/// Who may call what. Every protected handler checks one of these lists.
pub mod perm {
    use super::UserRole::{self, Admin, Collector, Compliance, Evaluator, Manager};

    /// Read the approval queue and its items. Compliance reads everything.
    pub const QUEUE_READ: &[UserRole] = &[Collector, Manager, Compliance, Admin];
    /// Approve, edit, reject, and preview an edit's decision. Compliance decides nothing.
    /// (Which of these roles may approve a given item is then the policy's decision.)
    pub const QUEUE_DECIDE: &[UserRole] = &[Collector, Manager, Admin];
    /// Read the audit trail and verify its chain.
    pub const AUDIT_READ: &[UserRole] = &[Compliance, Manager, Admin];
    /// Read the ledger's aging report.
    pub const LEDGER_READ: &[UserRole] = &[Collector, Manager, Compliance, Admin];
    /// The dashboard: aging, DSO, CEI, days delinquent, promises, by segment.
    pub const DASHBOARD_READ: &[UserRole] = &[Manager, Collector, Compliance, Admin];
    /// Read prompt and policy documents, their versions and diffs.
    pub const DOCS_READ: &[UserRole] = &[Manager, Compliance, Evaluator, Admin];
    /// Write drafts of documents, request the activation of a version or a rollback (and,
    /// as `argent_agent::FourEyes` allows, roll back at once in an emergency).
    pub const DOCS_WRITE: &[UserRole] = &[Manager, Admin];
    /// Approve or reject another person's activation request; which of these roles may
    /// decide a given document kind is `argent_agent::FourEyes` (`governance/four_eyes.toml`:
    /// policies compliance, prompts a second manager). A requester may withdraw their own.
    pub const DOCS_DECIDE: &[UserRole] = &[Manager, Compliance, Admin];
    /// Read eval runs, their reports and comparisons.
    pub const EVALS_READ: &[UserRole] = &[Evaluator, Manager, Compliance, Admin];
    /// Start eval runs (on the active documents or on a draft).
    pub const EVALS_RUN: &[UserRole] = &[Evaluator, Manager, Admin];
    /// Read an account's page and its facts.
    pub const FACTS_READ: &[UserRole] = &[Collector, Manager, Compliance, Admin];
    /// Edit an account's facts (the negotiation limits: only a manager or admin, which
    /// `argent_agent::facts` enforces).
    pub const FACTS_EDIT: &[UserRole] = &[Collector, Manager, Admin];
    /// Read the signals recognised in customers' messages (`/signals`).
    pub const SIGNALS_READ: &[UserRole] = &[Collector, Manager, Compliance, Admin];
    /// Confirm or clear a signal. Compliance reads, decides nothing.
    pub const SIGNALS_DECIDE: &[UserRole] = &[Collector, Manager, Admin];
    /// The unmatched-mail queue (`/mail/unmatched`).
    pub const MAIL_READ: &[UserRole] = &[Collector, Manager, Compliance, Admin];
    /// Assign an unmatched message to a customer (audited, then processed). Compliance reads.
    pub const MAIL_ASSIGN: &[UserRole] = &[Collector, Manager, Admin];
    /// A customer's timeline (`/accounts/{id}`, `/api/customers/{id}/timeline`).
    pub const TIMELINE_READ: &[UserRole] = &[Collector, Manager, Compliance, Admin];
    /// Search customers by name, id, invoice number or email.
    pub const SEARCH: &[UserRole] = &[Collector, Manager, Compliance, Admin];
    /// The contact-history report (every attempt, body hashes, decisions, approvers) and its
    /// exports: a compliance record. Collectors work from the timeline and do not export it.
    pub const CONTACTS_EXPORT: &[UserRole] = &[Compliance, Manager, Admin];
    /// See the tasks and escalations inbox and the collectors' day. Which tasks a role
    /// sees, takes or closes is then `argent_core::check_task_act` (collectors: their
    /// role's and their own; compliance sees all; managers and admins act on any).
    pub const TASKS_READ: &[UserRole] = &[Collector, Manager, Compliance, Admin];
    /// Assign, comment on and close tasks (within `check_task_act`).
    pub const TASKS_WORK: &[UserRole] = &[Collector, Manager, Compliance, Admin];
    /// The case list.
    pub const CASES_READ: &[UserRole] = &[Collector, Manager, Compliance, Admin];
    /// Record how a call went (and through it a promise, dispute or hardship claim, which
    /// policy then judges as it judges the agent's). Compliance reads, records nothing.
    pub const CALLS_WORK: &[UserRole] = &[Collector, Manager, Admin];
    /// Anyone signed in: their start page, the text of a policy rule.
    pub const SIGNED_IN: &[UserRole] = UserRole::ALL;
    /// Read the credit holds procedure steps placed (the ERP export).
    pub const CREDIT_HOLDS_READ: &[UserRole] = &[Collector, Manager, Compliance, Admin];
    /// Read agency referrals and their documentation packages.
    pub const REFERRALS_READ: &[UserRole] = &[Manager, Compliance, Admin];
    /// Approve or reject an agency referral: a manager only.
    pub const REFERRALS_DECIDE: &[UserRole] = &[Manager];
    /// Manage users: list, create, disable and enable, change roles, reset passwords,
    /// lift sign-in lockouts (`/users`, `/api/users`).
    pub const USERS_ADMIN: &[UserRole] = &[Admin];
}

/// An endpoint's permission: the roles that may call it. Handlers take [`Allowed<P>`], so
/// the check runs before the request body is even read (a refused caller learns nothing
/// about what a valid body looks like).
pub trait Permission: Send + Sync + 'static {
    const ROLES: &'static [UserRole];
}

macro_rules! permission {
    ($name:ident, $roles:path, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug)]
        pub struct $name;
        impl Permission for $name {
            const ROLES: &'static [UserRole] = $roles;
        }
    };
}
permission!(QueueRead, perm::QUEUE_READ, "See [`perm::QUEUE_READ`].");
permission!(
    QueueDecide,
    perm::QUEUE_DECIDE,
    "See [`perm::QUEUE_DECIDE`]."
);
permission!(AuditRead, perm::AUDIT_READ, "See [`perm::AUDIT_READ`].");
permission!(LedgerRead, perm::LEDGER_READ, "See [`perm::LEDGER_READ`].");
permission!(SignedIn, perm::SIGNED_IN, "See [`perm::SIGNED_IN`].");
permission!(
    CreditHoldsRead,
    perm::CREDIT_HOLDS_READ,
    "See [`perm::CREDIT_HOLDS_READ`]."
);
permission!(
    ReferralsRead,
    perm::REFERRALS_READ,
    "See [`perm::REFERRALS_READ`]."
);
permission!(
    ReferralsDecide,
    perm::REFERRALS_DECIDE,
    "See [`perm::REFERRALS_DECIDE`]."
);
permission!(
    DashboardRead,
    perm::DASHBOARD_READ,
    "See [`perm::DASHBOARD_READ`]."
);
permission!(DocsRead, perm::DOCS_READ, "See [`perm::DOCS_READ`].");
permission!(DocsWrite, perm::DOCS_WRITE, "See [`perm::DOCS_WRITE`].");
permission!(DocsDecide, perm::DOCS_DECIDE, "See [`perm::DOCS_DECIDE`].");
permission!(EvalsRead, perm::EVALS_READ, "See [`perm::EVALS_READ`].");
permission!(EvalsRun, perm::EVALS_RUN, "See [`perm::EVALS_RUN`].");
permission!(FactsRead, perm::FACTS_READ, "See [`perm::FACTS_READ`].");
permission!(FactsEdit, perm::FACTS_EDIT, "See [`perm::FACTS_EDIT`].");
permission!(
    SignalsRead,
    perm::SIGNALS_READ,
    "See [`perm::SIGNALS_READ`]."
);
permission!(MailRead, perm::MAIL_READ, "See [`perm::MAIL_READ`].");
permission!(MailAssign, perm::MAIL_ASSIGN, "See [`perm::MAIL_ASSIGN`].");
permission!(TasksRead, perm::TASKS_READ, "See [`perm::TASKS_READ`].");
permission!(TasksWork, perm::TASKS_WORK, "See [`perm::TASKS_WORK`].");
permission!(CasesRead, perm::CASES_READ, "See [`perm::CASES_READ`].");
permission!(CallsWork, perm::CALLS_WORK, "See [`perm::CALLS_WORK`].");
permission!(
    TimelineRead,
    perm::TIMELINE_READ,
    "See [`perm::TIMELINE_READ`]."
);
permission!(Search, perm::SEARCH, "See [`perm::SEARCH`].");
permission!(
    ContactsExport,
    perm::CONTACTS_EXPORT,
    "See [`perm::CONTACTS_EXPORT`]."
);
permission!(UsersAdmin, perm::USERS_ADMIN, "See [`perm::USERS_ADMIN`].");
permission!(
    SignalsDecide,
    perm::SIGNALS_DECIDE,
    "See [`perm::SIGNALS_DECIDE`]."
);

/// A signed-in caller whose role `P` admits: 401 without a valid token, 403 for a role
/// `P` does not list.
#[derive(Debug)]
pub struct Allowed<P: Permission>(pub AuthUser, pub(crate) PhantomData<P>);

impl<S, P> FromRequestParts<S> for Allowed<P>
where
    Store: FromRef<S>,
    S: Send + Sync,
    P: Permission,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        user.require(P::ROLES)?;
        Ok(Allowed(user, PhantomData))
    }
}

/// The signed-in caller, from `Authorization: Bearer <token>`.
#[derive(Clone, Debug)]
pub struct AuthUser {
    pub name: String,
    pub role: UserRole,
    token_hash: String,
}

impl AuthUser {
    /// How the audit trail names this user: `role:name`, as the agent names reviewers.
    pub fn actor(&self) -> String {
        format!("{}:{}", self.role, self.name)
    }

    /// 403 unless the caller's role is in `allowed`.
    pub fn require(&self, allowed: &[UserRole]) -> AppResult<()> {
        if allowed.contains(&self.role) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "role {} may not do this",
                self.role
            )))
        }
    }
}

impl<S> FromRequestParts<S> for AuthUser
where
    Store: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| {
                let (scheme, rest) = h.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(AppError::Unauthorized)?;
        let (name, role, token_hash) =
            token_owner(&Store::from_ref(state), token, TokenKind::Api).await?;
        Ok(AuthUser {
            name,
            role,
            token_hash,
        })
    }
}

/// Who holds `token` (of `kind`, unexpired): name, role and the token's hash;
/// [`AppError::Unauthorized`] for anyone else.
pub(crate) async fn token_owner(
    store: &Store,
    token: &str,
    kind: TokenKind,
) -> AppResult<(String, UserRole, String)> {
    let token_hash = hash_token(token);
    let user = store
        .token_user(&token_hash, kind, Utc::now())
        .await?
        .ok_or(AppError::Unauthorized)?;
    let role = user
        .role
        .parse()
        .map_err(|e| AppError::internal(format!("stored role of user {}: {e}", user.name)))?;
    Ok((user.name, role, token_hash))
}

/// The hex SHA-256 of a token: what the store keeps.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub(crate) fn new_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// An argon2id PHC string for `password`, with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, AppError> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(AppError::internal)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(AppError::internal)
}

/// Whether `password` matches a PHC string made by [`hash_password`]. An unreadable hash
/// matches nothing.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash no password matches, verified against when the user does not exist so that an
/// unknown name takes as long to refuse as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password(&new_token()).unwrap_or_default())
}

const MIN_PASSWORD_CHARS: usize = 8;

/// `name` as a user name: 1-64 of letters, digits, `.`, `_`, `-`, `@`.
pub fn check_user_name(name: &str) -> AppResult<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
    {
        return Err(AppError::BadRequest(format!(
            "'{name}' is not a user name (1-64 of letters, digits, '.', '_', '-', '@')"
        )));
    }
    Ok(())
}

/// Checks a new password's length and hashes it (on a blocking thread: argon2 is slow on
/// purpose).
async fn hash_new_password(password: &str) -> AppResult<String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AppError::BadRequest(format!(
            "the password must be at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    let password = password.to_string();
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(AppError::internal)?
}

/// Checks a new user's name and password and stores them (the password hashed), without
/// an audit event: for setting up test databases. People add users with [`add_user`].
/// `Conflict` if the name is taken.
pub async fn create_user(
    store: &Store,
    name: &str,
    role: UserRole,
    password: &str,
) -> AppResult<()> {
    check_user_name(name)?;
    let password_hash = hash_new_password(password).await?;
    let created = store
        .create_user(&NewUser {
            name: name.to_string(),
            role: role.as_str().to_string(),
            password_hash,
        })
        .await?;
    if created {
        Ok(())
    } else {
        Err(AppError::Conflict(format!("user {name} already exists")))
    }
}

/// As [`create_user`], audited as `user.create` by `actor` (an admin, `role:name`, or
/// `cli:…` from the command line) in the same transaction.
pub async fn add_user(
    store: &Store,
    actor: &str,
    name: &str,
    role: UserRole,
    password: &str,
) -> AppResult<()> {
    check_user_name(name)?;
    let password_hash = hash_new_password(password).await?;
    let created = store
        .create_user_audited(
            &NewUser {
                name: name.to_string(),
                role: role.as_str().to_string(),
                password_hash,
            },
            actor,
        )
        .await?;
    if created {
        Ok(())
    } else {
        Err(AppError::Conflict(format!("user {name} already exists")))
    }
}

/// Gives `name` a new password (checked and hashed), signs them out everywhere, audited
/// as `user.password_reset` by `actor`.
pub async fn reset_password(
    store: &Store,
    actor: &str,
    name: &str,
    password: &str,
) -> AppResult<UserRecord> {
    let hash = hash_new_password(password).await?;
    Ok(store
        .change_user(name, &UserChange::Password(hash), actor)
        .await?)
}

/// Lifts `name`'s sign-in lockout at every address: recorded in the database (audited as
/// `user.unlock` by `actor`, and seen by every server process), and forgotten in this
/// process's `throttle` at once. Returns the user.
pub async fn unlock_user(
    store: &Store,
    throttle: &LoginThrottle,
    actor: &str,
    name: &str,
) -> AppResult<UserRecord> {
    let user = store.change_user(name, &UserChange::Unlock, actor).await?;
    throttle.unlock(name, None);
    Ok(user)
}

#[derive(Debug, Deserialize)]
pub struct LoginRequest {
    pub name: String,
    pub password: String,
}

#[derive(Debug, Serialize)]
pub struct Me {
    pub name: String,
    pub role: UserRole,
}

#[derive(Debug, Serialize)]
pub struct LoginResponse {
    pub token: String,
    pub token_type: &'static str,
    pub expires_at: DateTime<Utc>,
    pub user: Me,
}

/// Sign-in attempts, per user name **and client address** ([`ClientAddr`]). Each attempt
/// is counted *before* its password is checked, in the same locked step that decides
/// whether it may be checked at all ([`LoginThrottle::begin`]), so parallel guesses cannot
/// all pass the check before any failure is recorded: after `max_failures` attempts within
/// `window` that did not succeed, every attempt for that name *from that address* is
/// refused ([`AppError::TooManyAttempts`], 429) until the oldest leaves the window — even
/// with the right password, so guessing faster gains nothing. Attempts from one address
/// never refuse another: someone guessing a colleague's password locks out only
/// themselves, and the colleague signs in from their own machine as usual.
///
/// A success forgets the name's count at that address; an attempt that ends without a
/// verdict (an internal error, or a request dropped before it was answered, which tells
/// its sender nothing) is taken back. An admin's unlock (`POST /api/users/{name}/unlock`,
/// `argent users unlock`) forgets the name's counts at every address: directly in this
/// process, and through the user's `unlocked_at` in the database for every other server
/// process (attempts counted before it stop counting the next time one would refuse).
/// Counts live in memory (one server process); a restart forgets them.
#[derive(Debug)]
pub struct LoginThrottle {
    attempts: std::sync::Mutex<std::collections::HashMap<ThrottleKey, Vec<Counted>>>,
    max_failures: usize,
    window: std::time::Duration,
}

/// (lower-cased trimmed user name, client address).
type ThrottleKey = (String, String);

/// One attempt counted: when, on the monotonic clock (for the window) and the wall clock
/// (to compare with an admin's unlock, stored in the database).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Counted {
    at: std::time::Instant,
    wall: DateTime<Utc>,
}

/// One sign-in attempt, already counted against its name and address (see
/// [`LoginThrottle::begin`]). [`Attempt::succeeded`] clears the count, [`Attempt::failed`]
/// keeps the attempt counted; dropped without either, the attempt is taken back.
#[derive(Debug)]
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    key: ThrottleKey,
    at: std::time::Instant,
    settled: bool,
}

/// A name locked out from an address, for the admins' user page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Lockout {
    pub name: String,
    pub address: String,
    pub failures: usize,
    pub retry_after_secs: u64,
}

impl LoginThrottle {
    pub fn new(max_failures: usize, window: std::time::Duration) -> LoginThrottle {
        LoginThrottle {
            attempts: Default::default(),
            max_failures: max_failures.max(1),
            window,
        }
    }

    fn name_key(name: &str) -> String {
        name.trim().to_lowercase()
    }

    fn map(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<ThrottleKey, Vec<Counted>>> {
        self.attempts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets what has left the window, so unknown names cannot pile up for ever.
    fn sweep(
        &self,
        map: &mut std::collections::HashMap<ThrottleKey, Vec<Counted>>,
        now: std::time::Instant,
    ) {
        map.retain(|_, times| {
            times.retain(|t| now.duration_since(t.at) < self.window);
            !times.is_empty()
        });
    }

    /// Counts an attempt for `name` from `address` and decides whether it may go on to the
    /// password check, in one step under the lock: `Err(TooManyAttempts)` (nothing
    /// counted) while the pair has `max_failures` attempts in the window that did not
    /// succeed.
    pub fn begin(&self, name: &str, address: &str) -> AppResult<Attempt<'_>> {
        let now = std::time::Instant::now();
        let key = (Self::name_key(name), address.to_string());
        let mut map = self.map();
        self.sweep(&mut map, now);
        let times = map.entry(key.clone()).or_default();
        if times.len() >= self.max_failures {
            let oldest = times.iter().map(|t| t.at).min().unwrap_or(now);
            let wait = self.window.saturating_sub(now.duration_since(oldest));
            return Err(AppError::TooManyAttempts {
                retry_after_secs: wait.as_secs().max(1),
            });
        }
        times.push(Counted {
            at: now,
            wall: Utc::now(),
        });
        Ok(Attempt {
            throttle: self,
            key,
            at: now,
            settled: false,
        })
    }

    /// Forgets `name`'s attempts (from every address) counted at or before `before`
    /// (everything, with `None`); returns how many were forgotten.
    pub fn unlock(&self, name: &str, before: Option<DateTime<Utc>>) -> usize {
        let name = Self::name_key(name);
        let mut map = self.map();
        let mut forgotten = 0;
        for ((n, _), times) in map.iter_mut() {
            if *n != name {
                continue;
            }
            let n0 = times.len();
            times.retain(|t| before.is_some_and(|b| t.wall > b));
            forgotten += n0 - times.len();
        }
        map.retain(|_, times| !times.is_empty());
        forgotten
    }

    /// The (name, address) pairs refused now, by name then address.
    pub fn lockouts(&self) -> Vec<Lockout> {
        let now = std::time::Instant::now();
        let mut map = self.map();
        self.sweep(&mut map, now);
        let mut out: Vec<Lockout> = map
            .iter()
            .filter(|(_, times)| times.len() >= self.max_failures)
            .map(|((name, address), times)| {
                let oldest = times.iter().map(|t| t.at).min().unwrap_or(now);
                Lockout {
                    name: name.clone(),
                    address: address.clone(),
                    failures: times.len(),
                    retry_after_secs: self
                        .window
                        .saturating_sub(now.duration_since(oldest))
                        .as_secs()
                        .max(1),
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.name, &a.address).cmp(&(&b.name, &b.address)));
        out
    }
}

impl Attempt<'_> {
    /// The password was right: the name's count at this address starts again.
    pub fn succeeded(mut self) {
        self.settled = true;
        self.throttle.map().remove(&self.key);
    }

    /// The password was wrong: the attempt stays counted.
    pub fn failed(mut self) {
        self.settled = true;
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let mut map = self.throttle.map();
        if let Some(times) = map.get_mut(&self.key)
            && let Some(i) = times.iter().position(|t| t.at == self.at)
        {
            times.swap_remove(i);
        }
    }
}

/// Where a request came from, for the sign-in throttle: the TCP peer's IP address; when
/// that peer is one of [`ServerConfig::trusted_proxies`], the right-most address of
/// `X-Forwarded-For` that is not itself a trusted proxy (what the last trusted proxy saw
/// connecting to it; entries further left are whatever the client wrote). Without a peer
/// address (a router called in-process, as tests do) it is `unknown`, one address for all
/// such requests. Never refuses a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub String);

impl ClientAddr {
    /// The client address of a request with `peer` as TCP peer and `headers`.
    pub fn resolve(
        peer: Option<std::net::IpAddr>,
        headers: &axum::http::HeaderMap,
        trusted: &[std::net::IpAddr],
    ) -> ClientAddr {
        let Some(peer) = peer else {
            return ClientAddr("unknown".into());
        };
        let peer = canonical_ip(peer);
        if !trusted.contains(&peer) {
            return ClientAddr(peer.to_string());
        }
        let forwarded: Vec<std::net::IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|h| h.to_str().ok())
            .flat_map(|h| h.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<std::net::IpAddr>().map(canonical_ip))
            .collect::<Result<_, _>>()
            // An unreadable entry: trust none of the header, only the peer.
            .unwrap_or_default();
        let client = forwarded
            .iter()
            .rev()
            .find(|ip| !trusted.contains(ip))
            .copied()
            .unwrap_or(peer);
        ClientAddr(client.to_string())
    }
}

/// An IPv4 address mapped into IPv6 (`::ffff:10.0.0.1`) as the IPv4 address it is.
fn canonical_ip(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
        v4 => v4,
    }
}

impl<S> FromRequestParts<S> for ClientAddr
where
    Arc<ServerConfig>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let config = Arc::<ServerConfig>::from_ref(state);
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(ClientAddr::resolve(
            peer,
            &parts.headers,
            &config.trusted_proxies,
        ))
    }
}

/// The user `name` if `password` is theirs (and they are not disabled);
/// [`AppError::BadCredentials`] otherwise, in the same time whether or not the user exists;
/// [`AppError::TooManyAttempts`] while the name is throttled at `address` (decided before
/// the password is looked at, unless an admin unlocked the name since).
pub(crate) async fn check_credentials(
    store: &Store,
    throttle: &LoginThrottle,
    name: &str,
    password: &str,
    address: &ClientAddr,
) -> AppResult<(String, UserRole)> {
    let attempt = match throttle.begin(name, &address.0) {
        Ok(a) => a,
        Err(refused) => {
            // An admin may have unlocked the name through another process (the CLI, a
            // second server): attempts counted before that no longer count.
            let unlocked = store.user(name.trim()).await?.and_then(|u| u.unlocked_at);
            if unlocked.is_none() || throttle.unlock(name, unlocked) == 0 {
                return Err(refused);
            }
            throttle.begin(name, &address.0)?
        }
    };
    let found = verify_credentials(store, name, password).await;
    match &found {
        Ok(_) => attempt.succeeded(),
        Err(AppError::BadCredentials) => attempt.failed(),
        Err(_) => drop(attempt),
    }
    found
}

async fn verify_credentials(
    store: &Store,
    name: &str,
    password: &str,
) -> AppResult<(String, UserRole)> {
    let user = store.user(name).await?;
    let phc = user
        .as_ref()
        .map_or_else(|| decoy_hash().to_string(), |u| u.password_hash.clone());
    let password = password.to_string();
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &phc))
        .await
        .map_err(AppError::internal)?;
    // A disabled user is refused like a wrong password: the answer tells a guesser
    // nothing about whether the password was right.
    let user = match user {
        Some(u) if ok && !u.is_disabled() => u,
        _ => return Err(AppError::BadCredentials),
    };
    let role: UserRole = user
        .role
        .parse()
        .map_err(|e| AppError::internal(format!("stored role of user {}: {e}", user.name)))?;
    Ok((user.name, role))
}

/// Stores a fresh token of `kind` for `user`, valid for `ttl`; returns it and its expiry.
pub(crate) async fn issue_token(
    store: &Store,
    user: &str,
    kind: TokenKind,
    ttl: chrono::Duration,
) -> AppResult<(String, DateTime<Utc>)> {
    let now = Utc::now();
    // Expired tokens are useless; sweep them whenever someone signs in.
    store.purge_expired_tokens(now).await?;
    let token = new_token();
    let expires_at = now
        .checked_add_signed(ttl)
        .ok_or_else(|| AppError::internal(format!("a token lifetime of {ttl} is too long")))?;
    store
        .insert_token(&hash_token(&token), user, kind, expires_at)
        .await?;
    Ok((token, expires_at))
}

/// `POST /api/login {name, password}` → a bearer token.
pub async fn login(
    State(store): State<Store>,
    State(config): State<Arc<ServerConfig>>,
    State(throttle): State<Arc<LoginThrottle>>,
    address: ClientAddr,
    ApiJson(req): ApiJson<LoginRequest>,
) -> AppResult<Json<LoginResponse>> {
    let (name, role) =
        check_credentials(&store, &throttle, &req.name, &req.password, &address).await?;
    let (token, expires_at) = issue_token(&store, &name, TokenKind::Api, config.token_ttl).await?;
    tracing::info!(user = %name, role = %role, "signed in (api)");
    Ok(Json(LoginResponse {
        token,
        token_type: "Bearer",
        expires_at,
        user: Me { name, role },
    }))
}

/// `POST /api/logout`: revokes the token the request came with.
pub async fn logout(State(store): State<Store>, user: AuthUser) -> AppResult<Json<Me>> {
    store.delete_token(&user.token_hash).await?;
    Ok(Json(Me {
        name: user.name,
        role: user.role,
    }))
}

/// `GET /api/me`: who the token belongs to.
pub async fn me(user: AuthUser) -> Json<Me> {
    Json(Me {
        name: user.name,
        role: user.role,
    })
}
