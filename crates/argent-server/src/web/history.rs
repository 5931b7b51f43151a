//! A customer's history: the timeline (`GET /api/customers/{id}/timeline`, shown on the
//! account page) and the contact-history report for compliance
//! (`GET /api/customers/{id}/contacts`, the page `/accounts/{id}/contacts`, CSV and JSON
//! Lines downloads). Both are read by the store (`argent_store::timeline`,
//! `argent_store::contacts`); this module checks the query, picks the format and renders.
//!
//! Timeline entries link to the audit trail by a window: `/audit?customer_id=…&since=…
//! &until=…` covering exactly the instants of the entry's first and last event (the seqs
//! are listed beside the link); only roles that may read the trail get the link.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use argent_agent::Agent;
use argent_core::bounds;
use argent_store::timeline::{MAX_PAGE, TimelineEntry};
use argent_store::{
    ContactAttempt, Cursor, StoreError, TimelinePage, TimelineQuery, contacts_to_csv,
    contacts_to_jsonl,
};

use super::{Page, encode_query, page};
use crate::auth::{Allowed, ContactsExport, TimelineRead};
use crate::error::{AppError, AppResult};
use crate::extract::{ApiPath, ApiQuery};

/// Entries per timeline page unless `limit` says otherwise.
pub const DEFAULT_TIMELINE_PAGE: usize = 100;

/// A store refusal of the caller's input is the caller's 400.
fn input(e: StoreError) -> AppError {
    match e {
        StoreError::Invalid(why) => AppError::BadRequest(why),
        other => other.into(),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct TimelineParams {
    /// Entries per page, 1..=500 (default 100).
    pub limit: Option<i64>,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
}

/// The store's query for `p`, promises judged as of the agent's today in the customer's
/// zone.
pub(crate) async fn timeline_page(
    agent: &Agent,
    id: &str,
    limit: Option<i64>,
    after: Option<&str>,
) -> AppResult<TimelinePage> {
    let limit = match limit {
        None => DEFAULT_TIMELINE_PAGE,
        Some(n) if (1..=MAX_PAGE as i64).contains(&n) => n as usize,
        Some(n) => {
            return Err(AppError::BadRequest(format!(
                "limit: {n} is not within 1..={MAX_PAGE}"
            )));
        }
    };
    let after = after
        .filter(|a| !a.is_empty())
        .map(Cursor::parse)
        .transpose()
        .map_err(input)?;
    let customer = agent.store.customer(id).await?;
    let as_of = agent.now().with_timezone(&customer.time_zone).date_naive();
    agent
        .store
        .timeline(
            id,
            &TimelineQuery {
                limit,
                after,
                as_of,
                promise_grace_days: super::PROMISE_GRACE_DAYS,
            },
        )
        .await
        .map_err(input)
}

/// `GET /api/customers/{id}/timeline?limit=&after=`: newest first.
pub async fn api_timeline(
    State(agent): State<Arc<Agent>>,
    _: Allowed<TimelineRead>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<TimelineParams>,
) -> AppResult<Json<TimelinePage>> {
    Ok(Json(
        timeline_page(&agent, &id, q.limit, q.after.as_deref()).await?,
    ))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The audit-trail window of an entry's events.
fn audit_href(customer_id: &str, e: &TimelineEntry) -> Option<String> {
    let (first, last) = (e.audit_first_at?, e.audit_last_at?);
    let until = last + chrono::Duration::microseconds(1);
    Some(format!(
        "/audit?customer_id={}&since={}&until={}",
        encode_query(customer_id),
        encode_query(&rfc3339(first)),
        encode_query(&rfc3339(until)),
    ))
}

/// The timeline as the account page shows it.
pub(crate) fn timeline_view(p: &TimelinePage, may_audit: bool, self_href: &str) -> Value {
    let entries: Vec<Value> = p
        .entries
        .iter()
        .map(|e| {
            json!({
                "at_local": e.at_local,
                "kind": e.kind,
                "title": e.title,
                "actor": e.actor,
                "seqs": e.audit_seqs.iter().map(i64::to_string).collect::<Vec<_>>().join(", "),
                "audit_href": if may_audit { audit_href(&p.customer_id, e) } else { None },
            })
        })
        .collect();
    json!({
        "entries": entries,
        "total": p.total,
        "time_zone": p.time_zone,
        "next": p.next.as_ref().map(|n| format!("{self_href}?after={}#timeline", encode_query(n))),
    })
}

// ---------------------------------------------------------------------------------------
// The contact-history report

#[derive(Debug, Default, Deserialize)]
pub struct ContactsParams {
    /// First day, in the debtor's time zone (inclusive).
    pub from: Option<NaiveDate>,
    /// Last day, in the debtor's time zone (inclusive).
    pub to: Option<NaiveDate>,
    /// `json` (default), `csv` or `jsonl` (the page: `html` by default).
    pub format: Option<String>,
}

/// The report as JSON.
#[derive(Debug, Serialize)]
pub struct ContactReport {
    pub customer_id: String,
    pub customer_name: String,
    pub time_zone: String,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub attempts: Vec<ContactAttempt>,
}

async fn report(agent: &Agent, id: &str, q: &ContactsParams) -> AppResult<ContactReport> {
    let from = q.from.map(|d| bounds::check_date("from", d)).transpose()?;
    let to = q.to.map(|d| bounds::check_date("to", d)).transpose()?;
    let customer = agent.store.customer(id).await?;
    let attempts = agent
        .store
        .contact_history(id, from, to)
        .await
        .map_err(input)?;
    Ok(ContactReport {
        customer_id: customer.id,
        customer_name: customer.name,
        time_zone: customer.time_zone.name().to_string(),
        from,
        to,
        attempts,
    })
}

fn download(r: &ContactReport, format: &str) -> AppResult<Response> {
    let (mime, ext, body) = match format {
        "csv" => (
            "text/csv; charset=utf-8",
            "csv",
            contacts_to_csv(&r.attempts).map_err(AppError::internal)?,
        ),
        "jsonl" => (
            "application/x-ndjson",
            "jsonl",
            contacts_to_jsonl(&r.attempts),
        ),
        other => {
            return Err(AppError::BadRequest(format!(
                "format '{other}' is not one of: json, csv, jsonl"
            )));
        }
    };
    // The file name carries only the id's safe characters.
    let safe: String = r
        .customer_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok((
        [
            (header::CONTENT_TYPE, mime.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"argent-contacts-{safe}.{ext}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// `GET /api/customers/{id}/contacts?from=&to=&format=json|csv|jsonl`.
pub async fn api_contacts(
    State(agent): State<Arc<Agent>>,
    _: Allowed<ContactsExport>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ContactsParams>,
) -> AppResult<Response> {
    let format = q.format.clone().unwrap_or_else(|| "json".into());
    if !matches!(format.as_str(), "json" | "csv" | "jsonl") {
        return Err(AppError::BadRequest(format!(
            "format '{format}' is not one of: json, csv, jsonl"
        )));
    }
    let r = report(&agent, &id, &q).await?;
    if format == "json" {
        return Ok(Json(r).into_response());
    }
    download(&r, &format)
}

/// `GET /accounts/{id}/contacts?from=&to=&format=html|csv|jsonl`: the report as a page, or
/// a download.
pub async fn contacts_page(
    State(agent): State<Arc<Agent>>,
    Page(user, _): Page<ContactsExport>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ContactsParams>,
) -> AppResult<Response> {
    let format = q.format.clone().unwrap_or_else(|| "html".into());
    if !matches!(format.as_str(), "html" | "csv" | "jsonl") {
        return Err(AppError::BadRequest(format!(
            "format '{format}' is not one of: html, csv, jsonl"
        )));
    }
    let r = report(&agent, &id, &q).await?;
    if format != "html" {
        return download(&r, &format);
    }
    let mut qs: Vec<(&str, String)> = Vec::new();
    if let Some(f) = r.from {
        qs.push(("from", f.to_string()));
    }
    if let Some(t) = r.to {
        qs.push(("to", t.to_string()));
    }
    let base = format!("/accounts/{}/contacts", encode_query(&r.customer_id));
    let export = |fmt: &str| {
        let mut pairs = qs.clone();
        pairs.push(("format", fmt.to_string()));
        format!(
            "{base}?{}",
            serde_urlencoded::to_string(&pairs).unwrap_or_default()
        )
    };
    let rows: Vec<Value> = r
        .attempts
        .iter()
        .map(|a| {
            json!({
                "at_local": a.at_local,
                "channel": a.channel,
                "recipient": a.recipient,
                "subject": a.subject,
                "sha": a.body_sha256.get(..12).unwrap_or(""),
                "body_sha256": a.body_sha256,
                "delivered": a.delivered,
                "status": a.status,
                "decision": a.decision,
                "rules": a.rule_ids.join(", "),
                "approval": a.approval,
                "decided_by": a.decided_by,
                "seqs": a.audit_seqs.iter().map(i64::to_string).collect::<Vec<_>>().join(", "),
            })
        })
        .collect();
    let html: Html<String> = page(
        &user,
        "contacts",
        &format!("Contact history: {}", r.customer_name),
        json!({
            "customer_id": r.customer_id,
            "account_href": format!("/accounts/{}", encode_query(&r.customer_id)),
            "time_zone": r.time_zone,
            "from": r.from.map(|d| d.to_string()).unwrap_or_default(),
            "to": r.to.map(|d| d.to_string()).unwrap_or_default(),
            "action": base,
            "rows": rows,
            "count": r.attempts.len(),
            "export_csv": export("csv"),
            "export_jsonl": export("jsonl"),
        }),
    )?;
    Ok(html.into_response())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_audit_window_covers_the_entrys_events_and_is_url_safe() {
        let mut e = TimelineEntry::new(
            "2026-11-01T12:00:00Z".parse().unwrap(),
            "x",
            "s",
            "1",
            String::new(),
        );
        assert_eq!(audit_href("C 1", &e), None);
        e.audit_first_at = Some("2026-11-01T12:00:00Z".parse().unwrap());
        e.audit_last_at = Some("2026-11-01T12:00:03.5Z".parse().unwrap());
        assert_eq!(
            audit_href("C 1&x", &e).unwrap(),
            "/audit?customer_id=C+1%26x&since=2026-11-01T12%3A00%3A00.000000Z&until=2026-11-01T12%3A00%3A03.500001Z"
        );
    }
}
