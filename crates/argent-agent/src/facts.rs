//! Who may change an account's facts, and how: every change (the API, the account page,
//! the facts import) goes through here to the store's one audited write
//! ([`argent_store::Store::edit_customer_facts`]): one transaction per request, one audit
//! event per customer changed (`facts.updated` for an edit, `facts.imported` for a file),
//! naming the actor and each changed field before and after.
//!
//! A collector, manager or admin may edit facts; the per-account negotiation `limits` only
//! a manager or admin (a collector's attempt changes nothing). Compliance reads, never
//! edits.

use serde_json::json;

use argent_core::facts_import::FactsFile;
use argent_core::{AccountFacts, ImportError, Role};
use argent_store::{FactsChange, Store, StoreError};

use crate::Reviewer;

/// Roles that may edit an account's facts.
pub const MAY_EDIT: &[Role] = &[Role::Collector, Role::Manager, Role::Admin];
/// Roles that may change an account's negotiation limits.
pub const MAY_CHANGE_LIMITS: &[Role] = &[Role::Manager, Role::Admin];

/// The audit kind of an edit (API, page).
pub const UPDATED: &str = "facts.updated";
/// The audit kind of an import.
pub const IMPORTED: &str = "facts.imported";

#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    /// The facts fail [`AccountFacts::check`]; each problem names its field (`/path`).
    #[error("invalid facts: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// This role may not make this change; nothing was written.
    #[error("not permitted: {0}")]
    NotPermitted(String),
    /// A row of a facts file, at its line and column; nothing was written.
    #[error(transparent)]
    File(ImportError),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for FactsError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Import(e) => FactsError::File(e),
            other => FactsError::Store(other),
        }
    }
}

fn actor(who: &Reviewer) -> String {
    format!("{}:{}", who.role, who.name)
}

fn may_edit(who: &Reviewer) -> Result<(), FactsError> {
    if MAY_EDIT.contains(&who.role) {
        Ok(())
    } else {
        Err(FactsError::NotPermitted(format!(
            "a {} may not edit account facts",
            who.role
        )))
    }
}

/// Whether `who` may go from `before` to `after`: changing the limits needs a manager or
/// admin.
fn limits_allowed(who: &Reviewer, before: &AccountFacts, after: &AccountFacts) -> bool {
    before.limits == after.limits || MAY_CHANGE_LIMITS.contains(&who.role)
}

fn limits_refused(who: &Reviewer) -> String {
    format!(
        "only a manager or admin may change an account's negotiation limits (you are {})",
        who.role
    )
}

/// Replaces `customer_id`'s facts with `new` (the API's `PUT`). `Ok(None)` when nothing
/// changed.
pub async fn replace_facts(
    store: &Store,
    customer_id: &str,
    new: AccountFacts,
    who: &Reviewer,
) -> Result<Option<FactsChange>, FactsError> {
    new.check().map_err(FactsError::Invalid)?;
    edit_facts(store, customer_id, who, |_| Ok(new)).await
}

/// Changes `customer_id`'s facts to what `edit` makes of the stored ones, read in the same
/// transaction (the account page merges its form this way). `Ok(None)` when nothing
/// changed; `NotFound` for an unknown customer.
pub async fn edit_facts<F>(
    store: &Store,
    customer_id: &str,
    who: &Reviewer,
    edit: F,
) -> Result<Option<FactsChange>, FactsError>
where
    F: FnOnce(&AccountFacts) -> Result<AccountFacts, FactsError>,
{
    may_edit(who)?;
    let mut edit = Some(edit);
    let changes = store
        .edit_customer_facts(
            &[customer_id],
            &actor(who),
            UPDATED,
            &json!({}),
            |_, before| {
                let before = before
                    .ok_or_else(|| StoreError::NotFound(format!("customer {customer_id}")))?;
                let edit = edit
                    .take()
                    .ok_or_else(|| FactsError::Store(StoreError::Invalid("edited twice".into())))?;
                let after = edit(before)?;
                after.check().map_err(FactsError::Invalid)?;
                if !limits_allowed(who, before, &after) {
                    return Err(FactsError::NotPermitted(limits_refused(who)));
                }
                Ok(after)
            },
        )
        .await?;
    Ok(changes.into_iter().next())
}

/// Applies a facts file ([`argent_core::facts_import::parse`]) in one transaction: every
/// customer's rows are merged into their stored facts and checked before anything is
/// written; an unknown customer, a bad merge or a limits change by a collector is an
/// error naming the line. `source` (the file's name) goes into each audit event.
pub async fn import_facts(
    store: &Store,
    file: &FactsFile,
    who: &Reviewer,
    source: &str,
) -> Result<Vec<FactsChange>, FactsError> {
    may_edit(who)?;
    let ids: Vec<&str> = file
        .customers
        .iter()
        .map(|c| c.customer_id.as_str())
        .collect();
    store
        .edit_customer_facts(
            &ids,
            &actor(who),
            IMPORTED,
            &json!({"source": source}),
            |i, before| {
                let rows = file.customers.get(i).ok_or_else(|| {
                    FactsError::Store(StoreError::Invalid("customer index out of range".into()))
                })?;
                let Some(before) = before else {
                    return Err(FactsError::File(file.error(
                        rows.line,
                        "customer_id",
                        format!(
                            "no customer {} (import the aging export first)",
                            rows.customer_id
                        ),
                    )));
                };
                let after = file.apply(rows, before).map_err(FactsError::File)?;
                if !limits_allowed(who, before, &after) {
                    let line = rows
                        .rows
                        .iter()
                        .find(|r| r.spec.name.starts_with("limits."))
                        .map_or(rows.line, |r| r.line);
                    return Err(FactsError::File(file.error(
                        line,
                        "fact",
                        limits_refused(who),
                    )));
                }
                Ok(after)
            },
        )
        .await
}
