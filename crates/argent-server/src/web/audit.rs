//! Compliance's pages: the audit trail with filters, the chain's status, exports, and the
//! text of every policy rule a decision names.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{Html, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use argent_agent::Agent;
use argent_store::{AuditEvent, AuditVerification, Store};

use super::{Page, encode_query, page};
use crate::api::{AuditQuery, ExportQuery, export_response};
use crate::auth::{AuditRead, SignedIn};
use crate::error::{AppError, AppResult};
use crate::extract::{ApiPath, ApiQuery};

/// Events per audit page.
pub const AUDIT_PAGE: i64 = 100;

#[derive(Debug, Default, Deserialize)]
pub struct AuditPageQuery {
    pub customer_id: Option<String>,
    pub run_id: Option<String>,
    pub actor: Option<String>,
    pub kind: Option<String>,
    pub rule_id: Option<String>,
    /// `YYYY-MM-DD` or RFC 3339; a bare date means its start in UTC.
    pub since: Option<String>,
    pub until: Option<String>,
    pub page: Option<i64>,
}

fn instant(field: &str, s: Option<&str>) -> AppResult<Option<chrono::DateTime<chrono::Utc>>> {
    let Some(s) = s.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        let t = t.with_timezone(&chrono::Utc);
        return Ok(Some(argent_core::bounds::check_instant(field, t)?));
    }
    if let Ok(d) = s.parse::<chrono::NaiveDate>() {
        let d = argent_core::bounds::check_date(field, d)?;
        if let Some(t) = d.and_hms_opt(0, 0, 0) {
            return Ok(Some(t.and_utc()));
        }
    }
    Err(AppError::BadRequest(format!(
        "{field}: '{s}' is neither a date (YYYY-MM-DD) nor an RFC 3339 instant"
    )))
}

impl AuditPageQuery {
    fn to_api(&self) -> AppResult<AuditQuery> {
        Ok(AuditQuery {
            customer_id: self.customer_id.clone(),
            run_id: self.run_id.clone(),
            actor: self.actor.clone(),
            kind: self.kind.clone(),
            rule_id: self.rule_id.clone(),
            since: instant("since", self.since.as_deref())?,
            until: instant("until", self.until.as_deref())?,
            limit: None,
            offset: None,
        })
    }

    /// The query string of these filters (without the page).
    fn query_string(&self) -> String {
        let pairs: Vec<(&str, &str)> = [
            ("customer_id", &self.customer_id),
            ("run_id", &self.run_id),
            ("actor", &self.actor),
            ("kind", &self.kind),
            ("rule_id", &self.rule_id),
            ("since", &self.since),
            ("until", &self.until),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().filter(|v| !v.is_empty()).map(|v| (k, v)))
        .collect();
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

/// The rules an event's payload names (`rules` or `decision.rules`: ids, or objects with
/// id, message and citation).
fn event_rules(payload: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for rules in [
        payload.get("rules"),
        payload.get("decision").and_then(|d| d.get("rules")),
    ]
    .into_iter()
    .flatten()
    .filter_map(Value::as_array)
    {
        for r in rules {
            let (id, citation, outcome) = match r {
                Value::String(id) => (id.as_str(), "", ""),
                obj => (
                    obj["id"].as_str().unwrap_or(""),
                    obj["citation"].as_str().unwrap_or(""),
                    obj["outcome"].as_str().unwrap_or(""),
                ),
            };
            if !id.is_empty() {
                out.push(json!({
                    "id": id,
                    "citation": citation,
                    "outcome": outcome,
                    "href": format!("/rules/{}", encode_query(id)),
                }));
            }
        }
    }
    out
}

fn event_view(e: &AuditEvent) -> Value {
    let mut payload = serde_json::to_string(&e.payload).unwrap_or_default();
    if payload.len() > 600 {
        let cut = (0..=600)
            .rev()
            .find(|i| payload.is_char_boundary(*i))
            .unwrap_or(0);
        payload.truncate(cut);
        payload.push('…');
    }
    json!({
        "seq": e.seq,
        "at": e.at.to_rfc3339(),
        "actor": e.actor,
        "kind": e.kind,
        "customer_id": e.customer_id,
        "customer_href": e.customer_id.as_ref().map(|c| format!("/audit?customer_id={}", encode_query(c))),
        "account_href": e.customer_id.as_ref().map(|c| format!("/accounts/{}", encode_query(c))),
        "run_id": e.run_id,
        "run_href": e.run_id.as_ref().map(|r| format!("/audit?run_id={}", encode_query(r))),
        "payload": payload,
        "rules": event_rules(&e.payload),
        "hash": &e.hash[..e.hash.len().min(12)],
    })
}

fn chain_view(v: &AuditVerification) -> Value {
    match v {
        AuditVerification::Intact { events, head } => json!({
            "intact": true,
            "text": format!("Chain intact: {events} events, head {}", &head[..head.len().min(16)]),
        }),
        AuditVerification::Broken { seq, reason } => json!({
            "intact": false,
            "text": format!("Chain BROKEN at event {seq}: {reason}"),
        }),
    }
}

/// `GET /audit?customer_id=&run_id=&actor=&kind=&rule_id=&since=&until=&page=`.
pub async fn list(
    State(store): State<Store>,
    Page(user, _): Page<AuditRead>,
    ApiQuery(q): ApiQuery<AuditPageQuery>,
) -> AppResult<Html<String>> {
    let page_no = q.page.unwrap_or(1);
    if page_no < 1 {
        return Err(AppError::BadRequest("page must be 1 or more".into()));
    }
    let filter = q.to_api()?.filter(
        Some(AUDIT_PAGE + 1),
        Some(super::page_offset(page_no, AUDIT_PAGE)?),
    );
    let mut events = store.audit_events(&filter).await?;
    let more = events.len() as i64 > AUDIT_PAGE;
    events.truncate(AUDIT_PAGE as usize);
    let chain = store.audit_verify().await?;
    let qs = q.query_string();
    let link = |p: i64| {
        if qs.is_empty() {
            format!("/audit?page={p}")
        } else {
            format!("/audit?{qs}&page={p}")
        }
    };
    let export = |format: &str| {
        if qs.is_empty() {
            format!("/audit/export?format={format}")
        } else {
            format!("/audit/export?format={format}&{qs}")
        }
    };
    page(
        &user,
        "audit",
        "Audit trail",
        json!({
            "chain": chain_view(&chain),
            "events": events.iter().map(event_view).collect::<Vec<_>>(),
            "filters": {
                "customer_id": q.customer_id.as_deref().unwrap_or(""),
                "run_id": q.run_id.as_deref().unwrap_or(""),
                "actor": q.actor.as_deref().unwrap_or(""),
                "kind": q.kind.as_deref().unwrap_or(""),
                "rule_id": q.rule_id.as_deref().unwrap_or(""),
                "since": q.since.as_deref().unwrap_or(""),
                "until": q.until.as_deref().unwrap_or(""),
            },
            "filtered": !qs.is_empty(),
            "page": page_no,
            "prev": (page_no > 1).then(|| link(page_no - 1)),
            "next": more.then(|| link(page_no.saturating_add(1))),
            "export_jsonl": export("jsonl"),
            "export_csv": export("csv"),
        }),
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct ExportPageQuery {
    pub format: Option<String>,
    #[serde(flatten)]
    pub filters: AuditPageQuery,
}

/// `GET /audit/export?format=jsonl|csv&<the page's filters>`: a download.
pub async fn export(
    State(store): State<Store>,
    State(cpu): State<crate::limits::CpuSlots>,
    _: Page<AuditRead>,
    ApiQuery(q): ApiQuery<ExportPageQuery>,
) -> AppResult<Response> {
    let filter = q.filters.to_api()?;
    export_response(
        &store,
        &cpu,
        ExportQuery {
            format: q.format,
            filter,
        },
    )
    .await
}

/// `GET /rules/{id}`: a rule of the active policies, with its citation and the packs that
/// define it.
pub async fn rule(
    State(agent): State<Arc<Agent>>,
    Page(user, _): Page<SignedIn>,
    ApiPath(id): ApiPath<String>,
) -> AppResult<Html<String>> {
    let found: Vec<Value> = agent
        .policies
        .all()
        // A pack that does not compile defines no rule anyone can see fire.
        .filter_map(|(_, p)| p.ok())
        .filter_map(|p| {
            p.rule(&id).map(|r| {
                json!({
                    "policy": p.id,
                    "jurisdiction": p.jurisdiction.as_str(),
                    "effect": r.effect.as_str(),
                    "message": r.message,
                    "citation": r.citation,
                    "approvers": r.approvers.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", "),
                })
            })
        })
        .collect();
    if found.is_empty() {
        return Err(AppError::NotFound(format!(
            "no rule '{id}' in the active policies"
        )));
    }
    page(
        &user,
        "rule",
        &format!("Rule {id}"),
        json!({
            "id": id,
            "definitions": found,
            "audit_href": format!("/audit?rule_id={}", encode_query(&id)),
            "may_audit": crate::perm::AUDIT_READ.contains(&user.role),
            "policy_version": agent.policy_version,
        }),
    )
}
