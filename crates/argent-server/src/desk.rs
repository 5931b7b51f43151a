//! The collections desk over the API: credit holds for the ERP export, and agency
//! referrals with their documentation packages, decided by a manager. Every decision is
//! one audited store transaction, conditional on the referral still being pending.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use argent_core::action::MAX_NOTE_LEN;
use argent_store::{CreditHold, Referral, ReferralStatus, Store};

use crate::auth::{Allowed, CreditHoldsRead, ReferralsDecide, ReferralsRead};
use crate::error::{AppError, AppResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldsQuery {
    /// `active` (default) or `all`.
    pub status: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct HoldList {
    pub holds: Vec<CreditHold>,
}

/// `GET /api/credit-holds[?status=active|all]`: the credit holds, newest first.
pub async fn credit_holds(
    State(store): State<Store>,
    Allowed(_, _): Allowed<CreditHoldsRead>,
    ApiQuery(q): ApiQuery<HoldsQuery>,
) -> AppResult<Json<HoldList>> {
    let active_only = match q.status.as_deref() {
        None | Some("active") => true,
        Some("all") => false,
        Some(other) => {
            return Err(AppError::BadRequest(format!(
                "status: '{other}' is not active or all"
            )));
        }
    };
    Ok(Json(HoldList {
        holds: store.credit_holds(active_only).await?,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferralsQuery {
    /// `pending` (default), `approved`, `rejected` or `all`.
    pub status: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ReferralList {
    pub referrals: Vec<Referral>,
}

/// `GET /api/referrals[?status=…]`: agency referrals, newest first, without packages.
pub async fn referrals(
    State(store): State<Store>,
    Allowed(_, _): Allowed<ReferralsRead>,
    ApiQuery(q): ApiQuery<ReferralsQuery>,
) -> AppResult<Json<ReferralList>> {
    let status = match q.status.as_deref() {
        None | Some("pending") => Some(ReferralStatus::Pending),
        Some("approved") => Some(ReferralStatus::Approved),
        Some("rejected") => Some(ReferralStatus::Rejected),
        Some("all") => None,
        Some(other) => {
            return Err(AppError::BadRequest(format!(
                "status: '{other}' is not pending, approved, rejected or all"
            )));
        }
    };
    Ok(Json(ReferralList {
        referrals: store.referrals(status).await?,
    }))
}

#[derive(Debug, Serialize)]
pub struct Package {
    pub referral_id: String,
    pub customer_id: String,
    pub status: ReferralStatus,
    pub package_sha256: String,
    pub package: Value,
}

/// `GET /api/referrals/{id}/package`: the documentation package of a referral.
pub async fn package(
    State(store): State<Store>,
    Allowed(_, _): Allowed<ReferralsRead>,
    ApiPath(id): ApiPath<String>,
) -> AppResult<Json<Package>> {
    let r = store.referral(&id).await?;
    Ok(Json(Package {
        referral_id: r.id,
        customer_id: r.customer_id,
        status: r.status,
        package_sha256: r.package_sha256,
        package: r.package,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideBody {
    pub note: Option<String>,
}

pub(crate) fn check_note(note: Option<&str>, required: bool) -> AppResult<()> {
    match note {
        None | Some("") if required => Err(AppError::Unprocessable(
            "/note: say why (it is recorded in the audit trail)".into(),
        )),
        Some(n) if n.chars().count() > MAX_NOTE_LEN => Err(AppError::Unprocessable(format!(
            "/note: longer than {MAX_NOTE_LEN} characters"
        ))),
        _ => Ok(()),
    }
}

/// `POST /api/referrals/{id}/approve {note?}`: a manager approves the referral.
pub async fn approve(
    State(store): State<Store>,
    Allowed(user, _): Allowed<ReferralsDecide>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<DecideBody>,
) -> AppResult<Json<Referral>> {
    check_note(body.note.as_deref(), false)?;
    let mut r = store
        .decide_referral(
            &id,
            true,
            &user.name,
            body.note.as_deref(),
            chrono::Utc::now(),
        )
        .await?;
    r.package = Value::Null;
    Ok(Json(r))
}

/// `POST /api/referrals/{id}/reject {note}`: a manager rejects the referral.
pub async fn reject(
    State(store): State<Store>,
    Allowed(user, _): Allowed<ReferralsDecide>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<DecideBody>,
) -> AppResult<Json<Referral>> {
    check_note(body.note.as_deref(), true)?;
    let mut r = store
        .decide_referral(
            &id,
            false,
            &user.name,
            body.note.as_deref(),
            chrono::Utc::now(),
        )
        .await?;
    r.package = Value::Null;
    Ok(Json(r))
}
