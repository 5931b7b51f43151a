//! One customer's account as the agent reads it before judging an action.

use chrono::{DateTime, Utc};
use sqlx::Row;

use argent_core::{Case, Customer, Invoice, Payment, PromiseToPay};

use crate::agent::select_contacts;
use crate::ledger::{
    customer_from, customer_sql, invoices_from, invoices_sql, payments_from, payments_sql,
    select_customer, select_invoices, select_payments,
};
use crate::records::{
    cases_from, cases_sql, promises_from, promises_sql, select_cases, select_promises,
};
use crate::{Result, Store, dispatch};

/// Everything stored about one customer that a policy decision may look at.
#[derive(Clone, Debug)]
pub struct AccountRecords {
    pub customer: Customer,
    pub invoices: Vec<Invoice>,
    pub payments: Vec<Payment>,
    pub cases: Vec<Case>,
    pub promises: Vec<PromiseToPay>,
    /// The contact log as (at, channel), oldest first.
    pub contacts: Vec<(DateTime<Utc>, String)>,
    /// Whether any email to the customer was ever put in the outbox.
    pub emailed: bool,
}

impl Store {
    /// The customer (`NotFound` if there is none), their invoices, payments, cases,
    /// promises, contact log and whether they were ever emailed — each ordered as by the
    /// single-table reads — read one after the other on one pooled connection: one pool
    /// checkout instead of seven. Each read sees what was committed when it ran, exactly
    /// as the separate reads it replaces did (a read transaction for one snapshot was
    /// measured: two more round trips to the connection's thread, about 8% of the approve
    /// API's throughput on SQLite).
    pub async fn account_records(&self, customer_id: &str) -> Result<AccountRecords> {
        let (customer_sql, invoices_sql, payments_sql, cases_sql, promises_sql) = (
            customer_sql(),
            invoices_sql(Some(customer_id)),
            payments_sql(Some(customer_id)),
            cases_sql(Some(customer_id)),
            promises_sql(Some(customer_id)),
        );
        let emailed_sql = "SELECT COUNT(*) AS n FROM outbox WHERE customer_id = $1";
        let (customer, invoices, payments, cases, promises, contacts, emails) =
            dispatch!(self, |pool| {
                let mut conn = pool.acquire().await?;
                let customer = select_customer!(&mut *conn, &customer_sql, customer_id);
                let invoices = select_invoices!(&mut *conn, &invoices_sql, Some(customer_id));
                let payments = select_payments!(&mut *conn, &payments_sql, Some(customer_id));
                let cases = select_cases!(&mut *conn, &cases_sql, Some(customer_id));
                let promises = select_promises!(&mut *conn, &promises_sql, Some(customer_id));
                let contacts = select_contacts!(&mut *conn, customer_id);
                let emails: i64 = sqlx::query(emailed_sql)
                    .bind(customer_id)
                    .fetch_one(&mut *conn)
                    .await?
                    .try_get("n")?;
                (
                    customer, invoices, payments, cases, promises, contacts, emails,
                )
            });
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
