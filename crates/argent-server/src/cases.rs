//! The case lifecycle over the API: record the verification sent to the customer, then
//! resolve or uphold a dispute; resolve or reject a payment claim or hardship request
//! (taking a case and the case list are in `tasks`). Each step is one audited store transaction, conditional
//! on the case's current status.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use argent_core::{Case, CaseStatus, action::MAX_NOTE_LEN};
use argent_store::{Store, StoreError};

use crate::auth::{Allowed, QueueDecide};
use crate::error::{AppError, AppResult};
use crate::extract::{ApiJson, ApiPath};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerificationBody {
    /// What was sent to the customer, how and when.
    pub note: String,
}

/// How a dispute ends.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Closed, the debt stands (only after the verification is recorded).
    Resolved,
    /// The customer was right: the disputed debt is never collected.
    Upheld,
    /// A payment claim or hardship request that did not stand; collection resumes.
    Rejected,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    pub outcome: Outcome,
    pub note: String,
}

#[derive(Debug, Serialize)]
pub struct CaseStep {
    pub case_id: String,
    pub customer_id: String,
    pub kind: String,
    pub status: String,
}

impl From<Case> for CaseStep {
    fn from(c: Case) -> CaseStep {
        CaseStep {
            case_id: c.id,
            customer_id: c.customer_id,
            kind: c.kind.as_str().to_string(),
            status: c.status.as_str().to_string(),
        }
    }
}

fn check_note(note: &str) -> AppResult<()> {
    if note.trim().is_empty() {
        return Err(AppError::Unprocessable(
            "/note: say what was done (it is recorded in the audit trail)".into(),
        ));
    }
    if note.chars().count() > MAX_NOTE_LEN {
        return Err(AppError::Unprocessable(format!(
            "/note: longer than {MAX_NOTE_LEN} characters"
        )));
    }
    Ok(())
}

/// Moves case `id` to `to` with a note, as `actor` (the API and the `/cases` page).
pub(crate) async fn advance(
    store: &Store,
    id: &str,
    to: CaseStatus,
    actor: &str,
    note: &str,
) -> AppResult<Case> {
    check_note(note)?;
    match store.advance_case(id, to, actor, Some(note)).await {
        Ok(case) => Ok(case),
        Err(StoreError::Invalid(why)) => Err(AppError::Unprocessable(why)),
        Err(e) => Err(e.into()),
    }
}

async fn step(
    store: &Store,
    id: &str,
    to: CaseStatus,
    actor: &str,
    note: &str,
) -> AppResult<Json<CaseStep>> {
    Ok(Json(advance(store, id, to, actor, note).await?.into()))
}

/// `POST /api/cases/{id}/verification {note}`: the verification of a disputed debt was
/// sent to the customer; collection on it may resume.
pub async fn verification(
    State(store): State<Store>,
    Allowed(user, _): Allowed<QueueDecide>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<VerificationBody>,
) -> AppResult<Json<CaseStep>> {
    step(
        &store,
        &id,
        CaseStatus::VerificationSent,
        &user.name,
        &body.note,
    )
    .await
}

/// `POST /api/cases/{id}/resolve {outcome, note}`: close the case (`resolved`, a dispute
/// only after its verification), uphold a dispute (`upheld`), or reject a payment claim
/// or hardship request (`rejected`).
pub async fn resolve(
    State(store): State<Store>,
    Allowed(user, _): Allowed<QueueDecide>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ResolveBody>,
) -> AppResult<Json<CaseStep>> {
    let to = match body.outcome {
        Outcome::Resolved => CaseStatus::Resolved,
        Outcome::Upheld => CaseStatus::Upheld,
        Outcome::Rejected => CaseStatus::Rejected,
    };
    step(&store, &id, to, &user.name, &body.note).await
}
