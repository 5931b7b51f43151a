//! The one audited write of account facts (`argent_core::facts`), used by the API, the
//! account page and the facts import alike.

use serde_json::{Map, Value, json};
use sqlx::Row;

use argent_core::AccountFacts;

use crate::tx::dispatch_tx;
use crate::{Backend, NewAuditEvent, Result, Store, StoreError, StoreTx, from_json};

/// One customer's facts before and after a change that was written.
#[derive(Clone, Debug, PartialEq)]
pub struct FactsChange {
    pub customer_id: String,
    pub before: AccountFacts,
    pub after: AccountFacts,
}

impl FactsChange {
    /// The fields that changed, each `{"before": …, "after": …}`: the audit payload's
    /// `changed`.
    pub fn changed_json(&self) -> Value {
        let mut out = Map::new();
        for (k, (b, a)) in AccountFacts::changed_fields(&self.before, &self.after) {
            out.insert(k, json!({"before": b, "after": a}));
        }
        Value::Object(out)
    }
}

impl StoreTx {
    /// A customer's facts, read inside this transaction (on PostgreSQL the row is locked
    /// until it ends, so a concurrent edit waits rather than being lost; a SQLite write
    /// transaction already excludes other writers). `None` if there is no such customer.
    pub async fn customer_facts(&mut self, customer_id: &str) -> Result<Option<AccountFacts>> {
        let sql = match self.backend() {
            Backend::Sqlite => "SELECT facts FROM customers WHERE id = $1",
            Backend::Postgres => "SELECT facts FROM customers WHERE id = $1 FOR UPDATE",
        };
        let text: Option<String> = dispatch_tx!(self, |conn| {
            match sqlx::query(sql)
                .bind(customer_id)
                .fetch_optional(&mut *conn)
                .await?
            {
                Some(r) => Some(r.try_get::<String, _>("facts")?),
                None => None,
            }
        });
        text.map(|t| from_json("customer facts", customer_id, &t))
            .transpose()
    }
}

impl Store {
    /// Changes the facts of each customer in `customer_ids`, in ONE write transaction:
    /// reads every customer's stored facts (`None` for an unknown id), asks `edit(index,
    /// stored)` for the new facts, and only when every customer's edit succeeded writes
    /// those that differ, each with one audit event (`kind`, `actor`, the customer,
    /// payload `{"changed": {field: {"before", "after"}}}` plus `extra`'s fields). The
    /// first error (from `edit`, or new facts that fail [`AccountFacts::check`], as
    /// [`StoreError::Invalid`] naming the fields) leaves everything as it was. Returns the
    /// changes written (an edit that changes nothing writes nothing and is not returned).
    pub async fn edit_customer_facts<E, F>(
        &self,
        customer_ids: &[&str],
        actor: &str,
        kind: &str,
        extra: &Value,
        mut edit: F,
    ) -> Result<Vec<FactsChange>, E>
    where
        E: From<StoreError>,
        F: FnMut(usize, Option<&AccountFacts>) -> Result<AccountFacts, E>,
    {
        let mut tx = self.begin().await?;
        let mut changes = Vec::new();
        for (i, id) in customer_ids.iter().enumerate() {
            let before = tx.customer_facts(id).await?;
            let after = edit(i, before.as_ref())?;
            let Some(before) = before else {
                return Err(StoreError::NotFound(format!("customer {id}")).into());
            };
            if let Err(problems) = after.check() {
                return Err(StoreError::Invalid(format!(
                    "customer {id}'s facts: {}",
                    problems.join("; ")
                ))
                .into());
            }
            if before != after {
                changes.push(FactsChange {
                    customer_id: id.to_string(),
                    before,
                    after,
                });
            }
        }
        let mut events = Vec::with_capacity(changes.len());
        for c in &changes {
            tx.set_customer_facts(&c.customer_id, &c.after).await?;
            let mut payload = Map::new();
            payload.insert("changed".into(), c.changed_json());
            if let Value::Object(extra) = extra {
                for (k, v) in extra {
                    payload.insert(k.clone(), v.clone());
                }
            }
            events.push(NewAuditEvent {
                run_id: None,
                customer_id: Some(c.customer_id.clone()),
                actor: actor.to_string(),
                kind: kind.to_string(),
                payload: Value::Object(payload),
            });
        }
        tx.audit_append_many(events).await?;
        tx.commit().await?;
        Ok(changes)
    }
}
