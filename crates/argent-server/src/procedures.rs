//! The dunning procedures' JSON API: one account's place in its procedure
//! (`GET /api/customers/{id}/procedure`) and, for managers, per procedure the accounts at
//! each step, in each status, paused by reason and due today (`GET /api/procedures/summary`).
//! Read-only: the scheduler (`argent tick`) is the only writer of procedure state.

use axum::Json;
use axum::extract::State;
use chrono::{Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use argent_procedure::State as ProcedureState;
use argent_store::{ProcedureSummary, Store};

use crate::auth::{Allowed, DashboardRead, FactsRead};
use crate::error::{AppError, AppResult};
use crate::extract::{ApiPath, ApiQuery};

#[derive(Debug, Serialize)]
pub struct CustomerProcedure {
    pub customer_id: String,
    /// `null` until the scheduler has planned the account.
    pub state: Option<ProcedureState>,
}

/// `GET /api/customers/{id}/procedure`.
pub async fn customer(
    State(store): State<Store>,
    _: Allowed<FactsRead>,
    ApiPath(id): ApiPath<String>,
) -> AppResult<Json<CustomerProcedure>> {
    store.customer(&id).await?;
    let state = store.procedure_state(&id).await?;
    Ok(Json(CustomerProcedure {
        customer_id: id,
        state,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryQuery {
    /// The day "due today" means (UTC, YYYY-MM-DD); default today.
    pub day: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub day: NaiveDate,
    pub procedures: Vec<ProcedureSummary>,
}

/// `GET /api/procedures/summary`.
pub async fn summary(
    State(store): State<Store>,
    _: Allowed<DashboardRead>,
    ApiQuery(q): ApiQuery<SummaryQuery>,
) -> AppResult<Json<Summary>> {
    let day = match q.day.as_deref() {
        None => Utc::now().date_naive(),
        Some(s) => s
            .parse::<NaiveDate>()
            .map_err(|_| AppError::BadRequest(format!("day: '{s}' is not a date (YYYY-MM-DD)")))?,
    };
    let start = day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let procedures = store
        .procedure_summary(start, start + Duration::days(1))
        .await?;
    Ok(Json(Summary { day, procedures }))
}
