//! One customer's account as the agent reads it before judging an action.

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments, Row};

use argent_core::{Case, Customer, Invoice, Payment, PromiseToPay};

use crate::agent::{CONTACTS_SQL, select_contacts};
use crate::ledger::{
    customer_from, customer_row, customer_sql, invoice_row, invoices_from, invoices_sql,
    payment_row, payments_from, payments_sql, select_customer, select_invoices, select_payments,
};
use crate::records::{
    case_row, cases_from, cases_sql, promise_row, promises_from, promises_sql, select_cases,
    select_promises,
};
use crate::tx::run_statements;
use crate::{Pool, Result, Store, StoreError};

const EMAILED_SQL: &str = "SELECT COUNT(*) AS n FROM outbox WHERE customer_id = $1";

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
}

impl Store {
    /// The customer (`NotFound` if there is none), their invoices, payments, cases,
    /// promises, contact log and whether they were ever emailed, each ordered as by the
    /// single-table reads. Each read sees what was committed when it ran, exactly as the
    /// separate reads it replaces did (a read transaction for one snapshot was measured:
    /// two more round trips to the connection's thread, about 8% of the approve API's
    /// throughput on SQLite).
    ///
    /// On SQLite the seven reads go to the connection's thread as one message (one
    /// multi-statement query, every statement binding `$1`) and come back split by
    /// statement; on PostgreSQL they run one after the other on one pooled connection.
    pub async fn account_records(&self, customer_id: &str) -> Result<AccountRecords> {
        let sqls = [
            customer_sql(),
            invoices_sql(Some(customer_id)),
            payments_sql(Some(customer_id)),
            cases_sql(Some(customer_id)),
            promises_sql(Some(customer_id)),
            CONTACTS_SQL.to_string(),
            EMAILED_SQL.to_string(),
        ];
        let (customer, invoices, payments, cases, promises, contacts, emails) = match &self.pool {
            Pool::Sqlite(pool) => {
                let sql = sqls.join(";\n");
                let mut conn = pool.acquire().await?;
                let mut args = SqliteArguments::default();
                args.add(customer_id.to_string()).map_err(|e| {
                    StoreError::Invalid(format!("binding customer id {customer_id}: {e}"))
                })?;
                let steps = run_statements(&mut conn, &sql, args).await;
                if let Some(e) = steps.error {
                    return Err(e.into());
                }
                let mut by_statement = steps.rows.into_iter();
                let mut next = || by_statement.next().unwrap_or_default();
                let (c, i, p, k, pr, co, e) =
                    (next(), next(), next(), next(), next(), next(), next());
                let customer = match c.first() {
                    Some(r) => Some(customer_row!(r)),
                    None => None,
                };
                // Each statement's rows through its row macro (whose `?` needs this scope).
                macro_rules! each {
                    ($rows:expr, |$r:ident| $row:expr) => {{
                        let mut out = Vec::with_capacity($rows.len());
                        for $r in &$rows {
                            out.push($row);
                        }
                        out
                    }};
                }
                let invoices = each!(i, |r| invoice_row!(r));
                let payments = each!(p, |r| payment_row!(r));
                let cases = each!(k, |r| case_row!(r));
                let promises = each!(pr, |r| promise_row!(r));
                let contacts: Vec<(DateTime<Utc>, String, bool)> = each!(co, |r| (
                    r.try_get("at")?,
                    r.try_get("channel")?,
                    r.try_get("conversation")?
                ));
                let emails: i64 = match e.first() {
                    Some(r) => r.try_get("n")?,
                    None => 0,
                };
                (
                    customer, invoices, payments, cases, promises, contacts, emails,
                )
            }
            Pool::Postgres(pool) => {
                let [
                    customer_sql,
                    invoices_sql,
                    payments_sql,
                    cases_sql,
                    promises_sql,
                    _,
                    _,
                ] = &sqls;
                let mut conn = pool.acquire().await?;
                let customer = select_customer!(&mut *conn, customer_sql, customer_id);
                let invoices = select_invoices!(&mut *conn, invoices_sql, Some(customer_id));
                let payments = select_payments!(&mut *conn, payments_sql, Some(customer_id));
                let cases = select_cases!(&mut *conn, cases_sql, Some(customer_id));
                let promises = select_promises!(&mut *conn, promises_sql, Some(customer_id));
                let contacts = select_contacts!(&mut *conn, customer_id);
                let emails: i64 = sqlx::query(EMAILED_SQL)
                    .bind(customer_id)
                    .fetch_one(&mut *conn)
                    .await?
                    .try_get("n")?;
                (
                    customer, invoices, payments, cases, promises, contacts, emails,
                )
            }
        };
        Ok(AccountRecords {
            customer: customer_from(customer_id, customer)?,
            invoices: invoices_from(invoices)?,
            payments: payments_from(payments)?,
            cases: cases_from(cases)?,
            promises: promises_from(promises)?,
            contacts,
            emailed: emails > 0,
        })
    }
}
