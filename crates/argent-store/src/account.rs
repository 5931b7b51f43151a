//! One customer's account as the agent reads it before judging an action.

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments, Row};

use argent_core::{Case, Customer, Invoice, Payment, PaymentPlan, PromiseToPay};

use crate::agent::{
    ApprovalRow, CONTACTS_SQL, approval_row, customer_approvals_sql, refused_tool_calls_sql,
    tool_call_record, tool_call_row,
};
use crate::ledger::{
    customer_from, customer_row, customer_sql, invoice_row, invoices_from, invoices_sql,
    payment_row, payments_from, payments_sql,
};
use crate::records::{
    case_row, cases_from, cases_sql, plan_row, plans_from, plans_sql, promise_row, promises_from,
    promises_sql,
};
use crate::tx::{Arg, ReadConn, rows_of_statements, split_by_statement};
use crate::{ApprovalItem, Pool, Result, Store, StoreError, ToolCallRecord, pg_text_literal};

const EMAILED_SQL: &str = "SELECT COUNT(*) AS n FROM outbox WHERE customer_id = $1";

/// Each of `$rows` through a row macro, collected (the macro's `?` returns from the caller).
macro_rules! each {
    ($rows:expr, |$r:ident| $row:expr) => {{
        let mut out = Vec::with_capacity($rows.len());
        for $r in &$rows {
            out.push($row);
        }
        out
    }};
}

/// PostgreSQL: the prefix of the names under which each session prepares the account's
/// reads (`argent_account_0` … `_9`), once, the first time it is asked for them.
const ACCOUNT_STATEMENT: &str = "argent_account_";

/// PostgreSQL: the rows of a multi-statement simple query, split by statement.
async fn rows_by_statement(
    conn: &mut sqlx::PgConnection,
    sql: &str,
) -> std::result::Result<Vec<Vec<sqlx::postgres::PgRow>>, sqlx::Error> {
    match split_by_statement(sqlx::raw_sql(sql).fetch_many(conn), |_| {}).await {
        (_, Some(e)) => Err(e),
        (parts, None) => Ok(parts),
    }
}

/// How many of a customer's pending or rejected approval items, and of their refused tool
/// calls, [`Store::account_records`] reads (the newest).
pub const ACCOUNT_RECENT: i64 = 50;

/// Everything stored about one customer that a policy decision may look at.
#[derive(Clone, Debug)]
pub struct AccountRecords {
    pub customer: Customer,
    pub invoices: Vec<Invoice>,
    pub payments: Vec<Payment>,
    pub cases: Vec<Case>,
    pub promises: Vec<PromiseToPay>,
    /// The contact log as (at, channel, whether a conversation took place), oldest first.
    pub contacts: Vec<(DateTime<Utc>, String, bool)>,
    /// Whether any email to the customer was ever put in the outbox.
    pub emailed: bool,
    /// The customer's payment plans, as [`Store::plans`] orders them.
    pub plans: Vec<PaymentPlan>,
    /// The customer's approval items that are pending or were rejected, newest first, at
    /// most [`ACCOUNT_RECENT`] (as [`Store::customer_approvals`]).
    pub approvals: Vec<ApprovalItem>,
    /// The customer's refused tool calls, newest first, at most [`ACCOUNT_RECENT`] (as
    /// [`Store::refused_tool_calls`]).
    pub refused_calls: Vec<ToolCallRecord>,
}

impl Store {
    /// The customer (`NotFound` if there is none), their invoices, payments, cases,
    /// promises, contact log, whether they were ever emailed, their payment plans, their
    /// newest pending or rejected approval items and refused tool calls, each ordered as by
    /// the single-table reads. Each read sees what was committed when it ran, exactly as the
    /// separate reads it replaces did (a read transaction for one snapshot was measured:
    /// two more round trips to the connection's thread, about 8% of the approve API's
    /// throughput on SQLite).
    ///
    /// The ten reads are one round trip on both backends: on SQLite one multi-statement
    /// query to the connection's thread, every statement binding `$1`; on PostgreSQL one
    /// simple query of ten `EXECUTE`s of statements the session prepared (once, when the
    /// first `EXECUTE` finds none: SQLSTATE 26000), the customer id written into the text as
    /// hex digits the server decodes (see [`pg_text_literal`]), the rows coming back in the
    /// text format. (The same reads as one simple query are planned every time, which cost
    /// the server more than ten prepared reads one round trip each.) Either way the rows
    /// come back split by statement and are read by the same row macros as the
    /// single-table reads.
    pub async fn account_records(&self, customer_id: &str) -> Result<AccountRecords> {
        let sqls = [
            customer_sql(),
            invoices_sql(Some(customer_id)),
            payments_sql(Some(customer_id)),
            cases_sql(Some(customer_id)),
            promises_sql(Some(customer_id)),
            CONTACTS_SQL.to_string(),
            EMAILED_SQL.to_string(),
            plans_sql(Some(customer_id)),
            customer_approvals_sql(ACCOUNT_RECENT),
            refused_tool_calls_sql(ACCOUNT_RECENT),
        ];
        // Each statement's rows, read by the row macros (whose `?` needs this scope).
        macro_rules! records {
            ($parts:expr) => {{
                let mut by_statement = $parts.into_iter();
                let mut next = || by_statement.next().unwrap_or_default();
                let (c, i, p, k, pr, co, e, pl, ap, rf) = (
                    next(),
                    next(),
                    next(),
                    next(),
                    next(),
                    next(),
                    next(),
                    next(),
                    next(),
                    next(),
                );
                let customer = match c.first() {
                    Some(r) => Some(customer_row!(r)),
                    None => None,
                };
                let emails: i64 = match e.first() {
                    Some(r) => r.try_get("n")?,
                    None => 0,
                };
                let approvals: Vec<ApprovalRow> = each!(ap, |r| approval_row!(r));
                AccountRecords {
                    customer: customer_from(customer_id, customer)?,
                    invoices: invoices_from(each!(i, |r| invoice_row!(r)))?,
                    payments: payments_from(each!(p, |r| payment_row!(r)))?,
                    cases: cases_from(each!(k, |r| case_row!(r)))?,
                    promises: promises_from(each!(pr, |r| promise_row!(r)))?,
                    contacts: each!(co, |r| (
                        r.try_get("at")?,
                        r.try_get("channel")?,
                        r.try_get("conversation")?
                    )),
                    emailed: emails > 0,
                    plans: plans_from(each!(pl, |r| plan_row!(r)))?,
                    approvals: approvals
                        .into_iter()
                        .map(ApprovalRow::into_item)
                        .collect::<Result<_>>()?,
                    refused_calls: each!(rf, |r| tool_call_row!(r))
                        .into_iter()
                        .map(tool_call_record)
                        .collect::<Result<_>>()?,
                }
            }};
        }
        Ok(match &self.pool {
            Pool::Sqlite(pool) => {
                let mut read = ReadConn::take(self, pool).await?;
                let args = [Arg::of(customer_id)];
                let on_handle = read
                    .on_handle(|db| {
                        crate::direct::snapshot(db, |db| {
                            sqls.iter()
                                .map(|sql| crate::direct::query(db, sql, &args))
                                .collect::<rusqlite::Result<Vec<_>>>()
                        })
                    })
                    .await?;
                match on_handle {
                    Some(parts) => records!(parts),
                    None => {
                        let mut bound = SqliteArguments::default();
                        bound.add(customer_id.to_string()).map_err(|e| {
                            StoreError::Invalid(format!("binding customer id {customer_id}: {e}"))
                        })?;
                        let sql = sqls.join(";\n");
                        records!(rows_of_statements(read.conn()?, &sql, bound).await?)
                    }
                }
            }
            Pool::Postgres(pool) => {
                let mut id = String::new();
                pg_text_literal(&mut id, customer_id);
                let execute = (0..sqls.len())
                    .map(|i| format!("EXECUTE {ACCOUNT_STATEMENT}{i}({id})"))
                    .collect::<Vec<_>>()
                    .join("; ");
                let mut conn = pool.acquire().await?;
                let first = rows_by_statement(&mut conn, &execute).await;
                let parts = match first {
                    // This connection has not prepared them yet (once per connection).
                    Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("26000") => {
                        let prepare = sqls
                            .iter()
                            .enumerate()
                            .map(|(i, s)| format!("PREPARE {ACCOUNT_STATEMENT}{i}(text) AS {s}"))
                            .collect::<Vec<_>>()
                            .join("; ");
                        let c: &mut sqlx::PgConnection = &mut conn;
                        match sqlx::Executor::execute(c, sqlx::raw_sql(&prepare)).await {
                            Ok(_) => rows_by_statement(&mut conn, &execute).await,
                            Err(e) => Err(e),
                        }
                    }
                    other => other,
                };
                match parts {
                    Ok(parts) => records!(parts),
                    Err(e) => {
                        // Whatever this session holds (some statements prepared, a plan
                        // the schema outdated) goes with it.
                        conn.close_on_drop();
                        return Err(e.into());
                    }
                }
            }
        })
    }
}
