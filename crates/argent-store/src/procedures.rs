//! Where each account stands in its dunning procedure (`procedure_state`, migration
//! `0012_procedures`), and the reads and writes of the scheduler (`argent tick`).
//!
//! Invariants:
//!
//! - **Batches by customer id.** The scheduler reads customers in id order, a page at a
//!   time ([`Store::tick_batch`]), with everything the planner needs about them (all their
//!   invoices and payments, cases, promises, the last contact, the stored state) in one
//!   range query per table, so a tick over N customers is N / page round trips per table,
//!   not N.
//! - **One transaction per batch** ([`StoreTx::apply_tick`]): promises judged kept or
//!   broken, the new states, the enqueued steps and their audit events commit together or
//!   not at all.
//! - **Idempotent under concurrency.** A promise is marked only while it is still `open`
//!   (a conditional update), and only the transaction that changed it appends its
//!   `promise.broken` / `promise.kept` event; steps are enqueued through the work items'
//!   unique `dedupe_key` (`ON CONFLICT DO NOTHING`), and only the items this transaction
//!   inserted are audited (`procedure.step_enqueued`). So two ticks at once mark each
//!   promise once and enqueue (and audit) each step once; both write the same states,
//!   planned from the same facts.
//! - States are upserted only when they changed (the caller compares), so a quiet tick
//!   writes little.

use std::collections::{BTreeMap, HashMap};

use argent_core::{Case, Customer, Invoice, Payment, PromiseToPay};
use argent_procedure::{PromiseOutcome, State};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;

use crate::ledger::{CUSTOMER_COLS, CustomerRow, customer_row};
use crate::records::{case_row, cases_from, promise_row, promises_from};
use crate::tx::dispatch_tx;
use crate::{
    NewAuditEvent, NewWorkItem, Result, Store, StoreTx, dispatch, from_json, micros, parse_col,
    to_json, work_id,
};

/// Rows per multi-row statement.
const CHUNK: usize = 500;

/// One page of customers and what the planner needs about them.
#[derive(Clone, Debug, Default)]
pub struct TickBatch {
    /// In id order.
    pub customers: Vec<Customer>,
    pub invoices: HashMap<String, Vec<Invoice>>,
    pub payments: HashMap<String, Vec<Payment>>,
    pub cases: HashMap<String, Vec<Case>>,
    pub promises: HashMap<String, Vec<PromiseToPay>>,
    pub last_contact: HashMap<String, DateTime<Utc>>,
    pub states: HashMap<String, State>,
}

/// What one batch of a tick writes.
#[derive(Clone, Debug, Default)]
pub struct TickWrite {
    /// New or changed states.
    pub states: Vec<State>,
    /// Promises judged kept or broken, by customer.
    pub promises: Vec<(String, PromiseOutcome)>,
    /// Steps to enqueue (kind `procedure_step`).
    pub work: Vec<NewWorkItem>,
    /// Customers whose cycle ended: their queued steps are cancelled.
    pub ended: Vec<String>,
    /// Customers that became paused, with why: their queued steps are cancelled (a step
    /// enqueued before a dispute, case, promise or stop flag must not run after it).
    pub paused: Vec<(String, String)>,
}

/// What a batch's transaction changed (the rest was already there).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickWritten {
    pub states: usize,
    pub promises_broken: usize,
    pub promises_kept: usize,
    /// Ids of the work items this transaction inserted.
    pub enqueued: Vec<String>,
    pub cancelled: u64,
}

/// Accounts at one step (or in one status, or paused for one reason).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepCount {
    pub key: String,
    pub accounts: i64,
}

/// One procedure's accounts: at each step, in each status, paused by reason, due today.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcedureSummary {
    /// The procedure (`-` for accounts without one).
    pub procedure: String,
    pub accounts: i64,
    /// By the last step planned (`-`: none yet in this cycle).
    pub at_step: Vec<StepCount>,
    pub by_status: Vec<StepCount>,
    pub paused_by_reason: Vec<StepCount>,
    /// Accounts with a step planned for, or falling due, in the day asked about.
    pub due_today: i64,
}

const STATE_COLS: &str = "customer_id, status, procedure, version, cycle, anchor_due, cycle_started, \
     current_step, current_index, current_at, last_step_at, next_step, next_at, paused_reason, \
     detail, followed_promises, updated_at";

const STATE_UPSERT: &str = " ON CONFLICT (customer_id) DO UPDATE SET status = excluded.status, \
     procedure = excluded.procedure, version = excluded.version, cycle = excluded.cycle, \
     anchor_due = excluded.anchor_due, cycle_started = excluded.cycle_started, \
     current_step = excluded.current_step, current_index = excluded.current_index, \
     current_at = excluded.current_at, last_step_at = excluded.last_step_at, \
     next_step = excluded.next_step, next_at = excluded.next_at, \
     paused_reason = excluded.paused_reason, detail = excluded.detail, \
     followed_promises = excluded.followed_promises, updated_at = excluded.updated_at";

struct StateRow {
    customer_id: String,
    status: String,
    procedure: Option<String>,
    version: i64,
    cycle: i64,
    anchor_due: Option<NaiveDate>,
    cycle_started: Option<NaiveDate>,
    current_step: Option<String>,
    current_index: Option<i64>,
    current_at: Option<DateTime<Utc>>,
    last_step_at: Option<DateTime<Utc>>,
    next_step: Option<String>,
    next_at: Option<DateTime<Utc>>,
    paused_reason: Option<String>,
    detail: Option<String>,
    followed_promises: String,
}

macro_rules! state_row {
    ($r:expr) => {
        StateRow {
            customer_id: $r.try_get("customer_id")?,
            status: $r.try_get("status")?,
            procedure: $r.try_get("procedure")?,
            version: $r.try_get("version")?,
            cycle: $r.try_get("cycle")?,
            anchor_due: $r.try_get("anchor_due")?,
            cycle_started: $r.try_get("cycle_started")?,
            current_step: $r.try_get("current_step")?,
            current_index: $r.try_get("current_index")?,
            current_at: $r.try_get("current_at")?,
            last_step_at: $r.try_get("last_step_at")?,
            next_step: $r.try_get("next_step")?,
            next_at: $r.try_get("next_at")?,
            paused_reason: $r.try_get("paused_reason")?,
            detail: $r.try_get("detail")?,
            followed_promises: $r.try_get("followed_promises")?,
        }
    };
}

impl StateRow {
    fn into_state(self) -> Result<State> {
        let id = self.customer_id;
        Ok(State {
            status: parse_col("procedure state status", &id, &self.status)?,
            paused_reason: match self.paused_reason {
                Some(r) => Some(parse_col("procedure state pause reason", &id, &r)?),
                None => None,
            },
            followed_promises: from_json("procedure state promises", &id, &self.followed_promises)?,
            procedure: self.procedure,
            version: self.version,
            cycle: self.cycle,
            anchor_due: self.anchor_due,
            cycle_started: self.cycle_started,
            current_step: self.current_step,
            current_index: self.current_index,
            current_at: self.current_at,
            last_step_at: self.last_step_at,
            next_step: self.next_step,
            next_at: self.next_at,
            detail: self.detail,
            customer_id: id,
        })
    }
}

fn group<T>(items: Vec<T>, key: impl Fn(&T) -> &str) -> HashMap<String, Vec<T>> {
    let mut out: HashMap<String, Vec<T>> = HashMap::new();
    for i in items {
        out.entry(key(&i).to_string()).or_default().push(i);
    }
    out
}

impl Store {
    /// Up to `limit` customers with ids after `after` (`""`: from the first), in id order,
    /// with their invoices, payments, cases, promises, last contact and procedure state.
    pub async fn tick_batch(&self, after: &str, limit: i64) -> Result<TickBatch> {
        let csql =
            format!("SELECT {CUSTOMER_COLS} FROM customers WHERE id > $1 ORDER BY id LIMIT $2");
        let rows: Vec<CustomerRow> = dispatch!(self, |p| {
            let mut out = Vec::new();
            for r in sqlx::query(&csql)
                .bind(after)
                .bind(limit.max(1))
                .fetch_all(p)
                .await?
            {
                out.push(customer_row!(r));
            }
            out
        });
        let customers: Vec<Customer> = rows
            .into_iter()
            .map(CustomerRow::into_customer)
            .collect::<Result<_>>()?;
        let (Some(lo), Some(hi)) = (customers.first(), customers.last()) else {
            return Ok(TickBatch::default());
        };
        let (lo, hi) = (lo.id.as_str(), hi.id.as_str());
        let range = "customer_id >= $1 AND customer_id <= $2";
        let isql = format!(
            "SELECT number, customer_id, issue_date, due_date, currency, amount_minor, disputed \
             FROM invoices WHERE {range} ORDER BY customer_id, due_date, number"
        );
        let psql = format!(
            "SELECT id, customer_id, invoice_number, currency, amount_minor, received_on \
             FROM payments WHERE {range} ORDER BY customer_id, received_on, id"
        );
        let ksql = format!(
            "SELECT id, customer_id, kind, status, invoice_numbers, disputed_currency, disputed_minor, \
             summary, opened_at FROM cases WHERE {range} ORDER BY customer_id, opened_at, id"
        );
        let msql = format!(
            "SELECT id, customer_id, invoice_numbers, currency, amount_minor, promised_date, created_at, status \
             FROM promises WHERE {range} ORDER BY customer_id, created_at, id"
        );
        let lsql = format!(
            "SELECT customer_id, MAX(at) AS last_at FROM contact_log WHERE {range} GROUP BY customer_id"
        );
        let ssql = format!("SELECT {STATE_COLS} FROM procedure_state WHERE {range}");
        let (inv, pay, cases, proms, last, states) = dispatch!(self, |p| {
            let mut inv: Vec<crate::ledger::InvoiceRow> = Vec::new();
            for r in sqlx::query(&isql).bind(lo).bind(hi).fetch_all(p).await? {
                inv.push(crate::ledger::invoice_row!(r));
            }
            let mut pay: Vec<crate::ledger::PaymentRow> = Vec::new();
            for r in sqlx::query(&psql).bind(lo).bind(hi).fetch_all(p).await? {
                pay.push(crate::ledger::payment_row!(r));
            }
            let mut cases: Vec<crate::records::CaseRow> = Vec::new();
            for r in sqlx::query(&ksql).bind(lo).bind(hi).fetch_all(p).await? {
                cases.push(case_row!(r));
            }
            let mut proms: Vec<crate::records::PromiseRow> = Vec::new();
            for r in sqlx::query(&msql).bind(lo).bind(hi).fetch_all(p).await? {
                proms.push(promise_row!(r));
            }
            let mut last: Vec<(String, Option<DateTime<Utc>>)> = Vec::new();
            for r in sqlx::query(&lsql).bind(lo).bind(hi).fetch_all(p).await? {
                last.push((r.try_get("customer_id")?, r.try_get("last_at")?));
            }
            let mut states: Vec<StateRow> = Vec::new();
            for r in sqlx::query(&ssql).bind(lo).bind(hi).fetch_all(p).await? {
                states.push(state_row!(r));
            }
            (inv, pay, cases, proms, last, states)
        });
        let invoices = crate::ledger::invoices_from(inv)?;
        let payments = crate::ledger::payments_from(pay)?;
        let mut states_by = HashMap::new();
        for s in states {
            let s = s.into_state()?;
            states_by.insert(s.customer_id.clone(), s);
        }
        Ok(TickBatch {
            invoices: group(invoices, |i| &i.customer_id),
            payments: group(payments, |p| &p.customer_id),
            cases: group(cases_from(cases)?, |c| &c.customer_id),
            promises: group(promises_from(proms)?, |p| &p.customer_id),
            last_contact: last
                .into_iter()
                .filter_map(|(c, t)| t.map(|t| (c, t)))
                .collect(),
            states: states_by,
            customers,
        })
    }

    /// The stored procedure state of `customer_id`, if the scheduler has planned it.
    pub async fn procedure_state(&self, customer_id: &str) -> Result<Option<State>> {
        let sql = format!("SELECT {STATE_COLS} FROM procedure_state WHERE customer_id = $1");
        let row = dispatch!(self, |p| {
            match sqlx::query(&sql)
                .bind(customer_id)
                .fetch_optional(p)
                .await?
            {
                Some(r) => Some(state_row!(r)),
                None => None,
            }
        });
        row.map(StateRow::into_state).transpose()
    }

    /// Per procedure: accounts at each step, in each status, paused by reason, and with a
    /// step planned or falling due in `[day_start, day_end)`.
    pub async fn procedure_summary(
        &self,
        day_start: DateTime<Utc>,
        day_end: DateTime<Utc>,
    ) -> Result<Vec<ProcedureSummary>> {
        let sql = "SELECT COALESCE(procedure, '-') AS procedure, status, \
                   COALESCE(current_step, '-') AS step, COALESCE(paused_reason, '') AS reason, \
                   SUM(CASE WHEN (current_at >= $1 AND current_at < $2) \
                       OR (next_at >= $1 AND next_at < $2) THEN 1 ELSE 0 END) AS today, \
                   COUNT(*) AS n \
                   FROM procedure_state GROUP BY procedure, status, current_step, paused_reason";
        let rows: Vec<(String, String, String, String, i64, i64)> = dispatch!(self, |p| {
            let mut out = Vec::new();
            for r in sqlx::query(sql)
                .bind(micros(day_start))
                .bind(micros(day_end))
                .fetch_all(p)
                .await?
            {
                out.push((
                    r.try_get("procedure")?,
                    r.try_get("status")?,
                    r.try_get("step")?,
                    r.try_get("reason")?,
                    r.try_get("today")?,
                    r.try_get("n")?,
                ));
            }
            out
        });
        type Acc = (
            i64,
            BTreeMap<String, i64>,
            BTreeMap<String, i64>,
            BTreeMap<String, i64>,
            i64,
        );
        let mut by: BTreeMap<String, Acc> = BTreeMap::new();
        for (procedure, status, step, reason, today, n) in rows {
            let e = by.entry(procedure).or_default();
            e.0 += n;
            *e.1.entry(step).or_default() += n;
            *e.2.entry(status).or_default() += n;
            if !reason.is_empty() {
                *e.3.entry(reason).or_default() += n;
            }
            e.4 += today;
        }
        let counts = |m: BTreeMap<String, i64>| {
            m.into_iter()
                .map(|(key, accounts)| StepCount { key, accounts })
                .collect()
        };
        Ok(by
            .into_iter()
            .map(
                |(procedure, (n, steps, status, reasons, today))| ProcedureSummary {
                    procedure,
                    accounts: n,
                    at_step: counts(steps),
                    by_status: counts(status),
                    paused_by_reason: counts(reasons),
                    due_today: today,
                },
            )
            .collect())
    }
}

impl StoreTx {
    /// Writes one batch of a tick (see the module docs): marks promises, upserts states,
    /// cancels the queued steps of accounts whose cycle ended, enqueues steps, and audits
    /// what this transaction changed, as `actor`.
    pub async fn apply_tick(
        &mut self,
        w: &TickWrite,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<TickWritten> {
        let now = micros(now);
        let mut written = TickWritten::default();
        let mut events = Vec::new();
        for (customer_id, o) in &w.promises {
            let n = dispatch_tx!(self, |conn| {
                sqlx::query("UPDATE promises SET status = $1 WHERE id = $2 AND status = 'open'")
                    .bind(o.status.as_str())
                    .bind(o.promise_id.as_str())
                    .execute(&mut *conn)
                    .await?
                    .rows_affected()
            });
            if n == 0 {
                continue;
            }
            let kind = match o.status {
                argent_core::PromiseStatus::Broken => {
                    written.promises_broken += 1;
                    "promise.broken"
                }
                _ => {
                    written.promises_kept += 1;
                    "promise.kept"
                }
            };
            events.push(NewAuditEvent {
                run_id: None,
                customer_id: Some(customer_id.clone()),
                actor: actor.to_string(),
                kind: kind.into(),
                payload: json!({
                    "promise_id": o.promise_id,
                    "amount": o.amount.amount_string(),
                    "currency": o.amount.currency.as_str(),
                    "paid_minor": o.paid_minor,
                    "partially_kept": o.partially_kept,
                    "broken_on": o.broken_on,
                }),
            });
        }
        for c in &w.ended {
            written.cancelled += self
                .cancel_queued_work(c, "the overdue balance was cleared", now)
                .await?;
        }
        for (c, why) in &w.paused {
            written.cancelled += self
                .cancel_queued_work(c, &format!("the account was paused: {why}"), now)
                .await?;
        }
        for chunk in w.states.chunks(CHUNK) {
            dispatch_tx!(self, |conn| {
                let mut q =
                    sqlx::QueryBuilder::new(format!("INSERT INTO procedure_state ({STATE_COLS}) "));
                q.push_values(chunk, |mut b, s| {
                    b.push_bind(s.customer_id.as_str())
                        .push_bind(s.status.as_str())
                        .push_bind(s.procedure.as_deref())
                        .push_bind(s.version)
                        .push_bind(s.cycle)
                        .push_bind(s.anchor_due)
                        .push_bind(s.cycle_started)
                        .push_bind(s.current_step.as_deref())
                        .push_bind(s.current_index)
                        .push_bind(s.current_at.map(micros))
                        .push_bind(s.last_step_at.map(micros))
                        .push_bind(s.next_step.as_deref())
                        .push_bind(s.next_at.map(micros))
                        .push_bind(s.paused_reason.map(|r| r.as_str()))
                        .push_bind(s.detail.as_deref())
                        .push_bind(to_json(&s.followed_promises))
                        .push_bind(now);
                });
                q.push(STATE_UPSERT);
                q.build().execute(&mut *conn).await?;
            });
            written.states += chunk.len();
        }
        let by_key: HashMap<&str, &NewWorkItem> =
            w.work.iter().map(|i| (i.dedupe_key.as_str(), i)).collect();
        for chunk in w.work.chunks(CHUNK) {
            let inserted: Vec<(String, String)> = dispatch_tx!(self, |conn| {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO work_items (id, kind, dedupe_key, customer_id, payload, due_at, \
                     status, attempts, created_at, updated_at) ",
                );
                q.push_values(chunk, |mut b, i| {
                    b.push_bind(work_id(&i.dedupe_key))
                        .push_bind(i.kind.as_str())
                        .push_bind(i.dedupe_key.as_str())
                        .push_bind(i.customer_id.as_str())
                        .push_bind(to_json(&i.payload))
                        .push_bind(micros(i.due_at))
                        .push_bind("queued")
                        .push_bind(0_i64)
                        .push_bind(now)
                        .push_bind(now);
                });
                // No conflict target: the id is derived from the key (see `enqueue_work`).
                q.push(" ON CONFLICT DO NOTHING RETURNING id, dedupe_key");
                let mut out = Vec::new();
                for r in q.build().fetch_all(&mut *conn).await? {
                    out.push((r.try_get("id")?, r.try_get("dedupe_key")?));
                }
                out
            });
            for (id, key) in inserted {
                if let Some(item) = by_key.get(key.as_str()) {
                    events.push(NewAuditEvent {
                        run_id: None,
                        customer_id: Some(item.customer_id.clone()),
                        actor: actor.to_string(),
                        kind: "procedure.step_enqueued".into(),
                        payload: json!({
                            "work_id": id,
                            "due_at": item.due_at,
                            "step": item.payload,
                        }),
                    });
                }
                written.enqueued.push(id);
            }
        }
        self.audit_append_many(events).await?;
        Ok(written)
    }
}
