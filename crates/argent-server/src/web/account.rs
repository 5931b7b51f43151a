//! The account page (`/accounts/{id}`): the customer, flags, every account fact in plain
//! words, open invoices and cases, and the form a collector edits the facts with; and the
//! facts API (`GET`/`PUT /api/customers/{id}/facts`). Every change goes through
//! [`argent_agent::facts`], the one audited write (`facts.updated`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{Html, Redirect};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use argent_agent::facts::{FactsError, MAY_CHANGE_LIMITS, edit_facts, replace_facts};
use argent_agent::{Agent, Reviewer};
use argent_core::facts_import::{FACTS, FactKind, INVOICE_FIELD_SEP, from_form, value_text};
use argent_core::{AccountFacts, CaseStatus};

use super::{Page, Posted, SessionUser, page};
use crate::api::reviewer_for;
use crate::auth::{Allowed, FactsEdit, FactsRead, UserRole};
use crate::error::{AppError, AppResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

impl From<FactsError> for AppError {
    fn from(e: FactsError) -> Self {
        match e {
            FactsError::Invalid(problems) => AppError::Unprocessable(problems.join("; ")),
            FactsError::NotPermitted(why) => AppError::Forbidden(why),
            FactsError::File(e) => AppError::Unprocessable(e.to_string()),
            FactsError::Store(e) => e.into(),
        }
    }
}

fn editor(name: &str, role: UserRole) -> AppResult<Reviewer> {
    reviewer_for(name, role)
}

// ---------------------------------------------------------------------------------------
// API

/// `GET /api/customers/{id}/facts`: the customer's whole `AccountFacts`.
pub async fn api_get(
    State(agent): State<Arc<Agent>>,
    _: Allowed<FactsRead>,
    ApiPath(id): ApiPath<String>,
) -> AppResult<Json<AccountFacts>> {
    Ok(Json(agent.store.customer(&id).await?.facts))
}

/// What a `PUT` answers: the facts as stored and the fields it changed.
#[derive(Debug, Serialize)]
pub struct FactsUpdated {
    pub facts: AccountFacts,
    pub changed: Vec<String>,
}

/// `PUT /api/customers/{id}/facts`: replaces the whole `AccountFacts`; 422 naming the bad
/// field, 404 for an unknown customer, 403 for a collector changing the limits.
pub async fn api_put(
    State(agent): State<Arc<Agent>>,
    Allowed(user, _): Allowed<FactsEdit>,
    ApiPath(id): ApiPath<String>,
    ApiJson(facts): ApiJson<AccountFacts>,
) -> AppResult<Json<FactsUpdated>> {
    let who = editor(&user.name, user.role)?;
    let change = replace_facts(&agent.store, &id, facts.clone(), &who).await?;
    let changed: Vec<String> = change
        .map(|c| {
            AccountFacts::changed_fields(&c.before, &c.after)
                .into_keys()
                .collect()
        })
        .unwrap_or_default();
    Ok(Json(FactsUpdated { facts, changed }))
}

// ---------------------------------------------------------------------------------------
// The page

#[derive(Debug, Default, Deserialize)]
pub struct AccountQuery {
    /// Set after a save: how many fields changed.
    pub saved: Option<usize>,
}

/// The form's fields: one per fact, typed by its kind, with the stored value as text.
fn form_fields(facts: &AccountFacts, invoices: &[String], may_change_limits: bool) -> Vec<Value> {
    let mut out = Vec::new();
    for spec in FACTS {
        if spec.per_invoice {
            let mut numbers: Vec<String> = invoices.to_vec();
            for n in facts.invoice_acknowledged_on.keys() {
                if !numbers.contains(n) {
                    numbers.push(n.clone());
                }
            }
            for n in numbers {
                let value = facts
                    .invoice_acknowledged_on
                    .get(&n)
                    .map(ToString::to_string)
                    .unwrap_or_default();
                out.push(json!({
                    "name": format!("{}{INVOICE_FIELD_SEP}{n}", spec.name),
                    "label": format!("{} {n}", spec.label),
                    "value": value,
                    "checked": false,
                    "checkbox": false,
                    "input": "date",
                    "hint": spec.kind.syntax(),
                    "readonly": false,
                }));
            }
            continue;
        }
        let value = value_text(facts, spec);
        let input = match spec.kind {
            FactKind::Bool => "checkbox",
            FactKind::Date => "date",
            _ => "text",
        };
        out.push(json!({
            "name": spec.name,
            "label": spec.label,
            "checked": value == "true",
            "checkbox": input == "checkbox",
            "value": value,
            "input": input,
            "hint": spec.kind.syntax(),
            // Shown to everyone; only a manager or admin may change them.
            "readonly": spec.name.starts_with("limits.") && !may_change_limits,
        }));
    }
    out
}

/// `GET /accounts/{id}`.
pub async fn show(
    State(agent): State<Arc<Agent>>,
    Page(user, _): Page<FactsRead>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<AccountQuery>,
) -> AppResult<Html<String>> {
    let account = agent.load_account(&id, agent.now()).await?;
    let c = &account.customer;
    let flags: Vec<&str> = [
        (c.flags.cease_contact, "cease contact"),
        (c.flags.disputed, "disputed"),
        (c.flags.bankrupt, "bankrupt"),
        (c.flags.attorney_represented, "attorney represented"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, s)| *s)
    .collect();
    let invoices = account.open_invoices_json();
    let numbers: Vec<String> = invoices
        .iter()
        .filter_map(|i| i["number"].as_str().map(str::to_string))
        .collect();
    let cases: Vec<Value> = account
        .cases
        .iter()
        .filter(|k| matches!(k.status, CaseStatus::Open | CaseStatus::InProgress))
        .map(|k| {
            json!({
                "id": k.id,
                "kind": k.kind.as_str(),
                "invoices": k.invoice_numbers.join(", "),
                "opened": k.opened_at.date_naive().to_string(),
            })
        })
        .collect();
    let contacts: Vec<Value> = c
        .contacts
        .iter()
        .map(|k| {
            json!({
                "name": k.name,
                "email": k.email,
                "phone": k.phone,
                "opted_out": k.opted_out.iter().map(|ch| ch.as_str()).collect::<Vec<_>>().join(", "),
            })
        })
        .collect();
    let may_edit = crate::perm::FACTS_EDIT.contains(&user.role);
    let may_change_limits = user
        .role
        .reviewer_role()
        .is_some_and(|r| MAY_CHANGE_LIMITS.contains(&r));
    let title = format!("Account {}", c.name);
    page(
        &user,
        "account",
        &title,
        json!({
            "customer": {
                "id": c.id,
                "name": c.name,
                "tier": c.tier.as_str(),
                "jurisdiction": c.jurisdiction.as_str(),
                "time_zone": c.time_zone.name(),
            },
            "segment": account.risk.segment.as_str(),
            "balance": account.balance_text(),
            "contacts": contacts,
            "flags": flags,
            "facts": c.facts.describe(),
            "invoices": invoices,
            "cases": cases,
            "fields": form_fields(&c.facts, &numbers, may_change_limits),
            "may_edit": may_edit,
            "action": format!("/accounts/{}/facts", super::encode_query(&c.id)),
            "may_change_limits": may_change_limits,
            "saved": q.saved.map(|n| match n {
                0 => "Nothing changed.".to_string(),
                1 => "Saved: 1 field changed.".to_string(),
                n => format!("Saved: {n} fields changed."),
            }),
        }),
    )
}

/// `POST /accounts/{id}/facts`: the form, merged into the stored facts and saved as one
/// audited change (`facts.updated`). A collector who changes the limits gets a 403 and
/// nothing is saved.
pub async fn save(
    State(agent): State<Arc<Agent>>,
    ApiPath(id): ApiPath<String>,
    Posted(user, form, _): Posted<FactsEdit, Vec<(String, String)>>,
) -> AppResult<Redirect> {
    let who = session_editor(&user)?;
    let change = edit_facts(&agent.store, &id, &who, |current| {
        from_form(current, &form).map_err(|m| FactsError::Invalid(vec![m]))
    })
    .await?;
    let n = change.map_or(0, |c| {
        AccountFacts::changed_fields(&c.before, &c.after).len()
    });
    Ok(Redirect::to(&format!(
        "/accounts/{}?saved={n}",
        super::encode_query(&id)
    )))
}

fn session_editor(user: &SessionUser) -> AppResult<Reviewer> {
    editor(&user.name, user.role)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_read_only_for_a_collector_and_every_fact_has_a_field() {
        let fields = form_fields(&AccountFacts::default(), &["INV-1".into()], false);
        let names: Vec<&str> = fields.iter().filter_map(|f| f["name"].as_str()).collect();
        for spec in FACTS.iter().filter(|s| !s.per_invoice) {
            assert!(names.contains(&spec.name), "{} has no field", spec.name);
        }
        assert!(names.contains(&"invoice_acknowledged_on/INV-1"));
        for f in &fields {
            let limits = f["name"].as_str().unwrap_or("").starts_with("limits.");
            assert_eq!(f["readonly"].as_bool(), Some(limits), "{f}");
        }
    }
}
