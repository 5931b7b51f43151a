//! The desk page (`/desk`): the credit holds procedure steps placed (what the ERP export
//! reads) and the agency referrals waiting for a manager, with approve / reject forms and
//! each referral's documentation package. Every handler goes through the same store calls
//! as the JSON API (`crate::desk`); forms carry the session's CSRF token ([`Posted`]).

use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use argent_store::{ReferralStatus, Store};

use super::{Page, Posted, page};
use crate::auth::{CreditHoldsRead, ReferralsDecide, ReferralsRead};
use crate::error::{AppError, AppResult};
use crate::extract::ApiPath;
use crate::perm;

const FMT: &str = "%Y-%m-%d %H:%M UTC";

/// `GET /desk`.
pub async fn show(
    State(store): State<Store>,
    Page(user, _): Page<CreditHoldsRead>,
) -> AppResult<Html<String>> {
    let holds: Vec<Value> = store
        .credit_holds(true)
        .await?
        .iter()
        .map(|h| {
            json!({
                "id": h.id,
                "customer_id": h.customer_id,
                "reason": h.reason,
                "placed_by": h.placed_by,
                "placed_at": h.placed_at.format(FMT).to_string(),
            })
        })
        .collect();
    let sees_referrals = perm::REFERRALS_READ.contains(&user.role);
    let decides = perm::REFERRALS_DECIDE.contains(&user.role);
    let referrals: Vec<Value> = if sees_referrals {
        store
            .referrals(None)
            .await?
            .iter()
            .take(200)
            .map(|r| {
                let pending = r.status == ReferralStatus::Pending;
                json!({
                    "id": r.id,
                    "customer_id": r.customer_id,
                    "status": r.status.as_str(),
                    "reason": r.reason,
                    "created_at": r.created_at.format(FMT).to_string(),
                    "decided": r.decided_by.as_ref().map(|by| format!(
                        "{by}, {}",
                        r.decided_at.map(|t| t.format(FMT).to_string()).unwrap_or_default()
                    )),
                    "note": r.note,
                    "sha": r.package_sha256.get(..16).unwrap_or(&r.package_sha256),
                    "can_decide": pending && decides,
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    page(
        &user,
        "desk",
        "Credit holds and referrals",
        json!({
            "holds": holds,
            "hold_count": holds.len(),
            "sees_referrals": sees_referrals,
            "referrals": referrals,
        }),
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct NoteForm {
    #[serde(default)]
    pub note: String,
}

async fn decide(
    store: &Store,
    id: &str,
    approve: bool,
    who: &str,
    note: &str,
) -> AppResult<Response> {
    let note = Some(note.trim()).filter(|n| !n.is_empty());
    // The API's own check: a rejection says why, no note over the limit.
    crate::desk::check_note(note, !approve)?;
    store
        .decide_referral(id, approve, who, note, Utc::now())
        .await?;
    Ok(Redirect::to("/desk").into_response())
}

/// `POST /desk/referrals/{id}/approve`: a manager approves (as `POST /api/referrals/{id}/approve`).
pub async fn approve(
    State(store): State<Store>,
    ApiPath(id): ApiPath<String>,
    Posted(user, form, _): Posted<ReferralsDecide, NoteForm>,
) -> AppResult<Response> {
    decide(&store, &id, true, &user.name, &form.note).await
}

/// `POST /desk/referrals/{id}/reject`: a manager rejects, saying why.
pub async fn reject(
    State(store): State<Store>,
    ApiPath(id): ApiPath<String>,
    Posted(user, form, _): Posted<ReferralsDecide, NoteForm>,
) -> AppResult<Response> {
    decide(&store, &id, false, &user.name, &form.note).await
}

/// `GET /desk/referrals/{id}/package`: the documentation package as a JSON download.
pub async fn package(
    State(store): State<Store>,
    Page(_, _): Page<ReferralsRead>,
    ApiPath(id): ApiPath<String>,
) -> AppResult<Response> {
    let r = store.referral(&id).await?;
    let body = serde_json::to_string_pretty(&json!({
        "referral_id": r.id,
        "customer_id": r.customer_id,
        "status": r.status.as_str(),
        "package_sha256": r.package_sha256,
        "package": r.package,
    }))
    .map_err(AppError::internal)?;
    let name = format!(
        "attachment; filename=\"referral-{}.json\"",
        r.id.replace(['"', '\\', '/'], "_")
    );
    Ok((
        [
            (CONTENT_TYPE, "application/json".to_string()),
            (CONTENT_DISPOSITION, name),
        ],
        body,
    )
        .into_response())
}
