//! Promises to pay, cases and payment plans: the records the agent's tools create.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row;

use argent_core::{Case, Installment, Money, PaymentPlan, PromiseToPay};

use crate::tx::{dispatch_tx, tx_write};
use crate::{Result, Store, StoreTx, dispatch, eq_or_all, from_json, parse_col, to_json};

impl Store {
    pub async fn insert_promise(&self, p: &PromiseToPay) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.insert_promise(p).await?;
        tx.commit().await
    }

    pub async fn set_promise_status(
        &self,
        id: &str,
        status: argent_core::PromiseStatus,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let changed = tx.set_promise_status(id, status).await?;
        tx.commit().await?;
        Ok(changed)
    }

    pub async fn insert_case(&self, c: &Case) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.insert_case(c).await?;
        tx.commit().await
    }

    pub async fn insert_plan(&self, p: &PaymentPlan) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.insert_plan(p).await?;
        tx.commit().await
    }
}

impl StoreTx {
    pub async fn insert_promise(&mut self, p: &PromiseToPay) -> Result<()> {
        let sql = "INSERT INTO promises (id, customer_id, invoice_numbers, currency, amount_minor, promised_date, \
                   created_at, status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        tx_write!(
            self,
            sql,
            [
                p.id.as_str(),
                p.customer_id.as_str(),
                to_json(&p.invoice_numbers),
                p.amount.currency.as_str(),
                p.amount.minor,
                p.promised_date,
                p.created_at,
                p.status.as_str(),
            ]
        );
        Ok(())
    }

    pub async fn set_promise_status(
        &mut self,
        id: &str,
        status: argent_core::PromiseStatus,
    ) -> Result<bool> {
        let n = dispatch_tx!(self, |conn| {
            sqlx::query("UPDATE promises SET status = $1 WHERE id = $2")
                .bind(status.as_str())
                .bind(id)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    pub async fn insert_case(&mut self, c: &Case) -> Result<()> {
        let sql = "INSERT INTO cases (id, customer_id, kind, status, invoice_numbers, disputed_currency, \
                   disputed_minor, summary, opened_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
        tx_write!(
            self,
            sql,
            [
                c.id.as_str(),
                c.customer_id.as_str(),
                c.kind.as_str(),
                c.status.as_str(),
                to_json(&c.invoice_numbers),
                c.disputed_amount.map(|m| m.currency.as_str().to_string()),
                c.disputed_amount.map(|m| m.minor),
                c.summary.as_str(),
                c.opened_at,
            ]
        );
        Ok(())
    }

    pub async fn insert_plan(&mut self, p: &PaymentPlan) -> Result<()> {
        let sql = "INSERT INTO payment_plans (id, customer_id, currency, balance_minor, discount_minor, \
                   down_payment_minor, start_date, installments, status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
        tx_write!(
            self,
            sql,
            [
                p.id.as_str(),
                p.customer_id.as_str(),
                p.currency.as_str(),
                p.balance_minor,
                p.discount_minor,
                p.down_payment_minor,
                p.start_date,
                to_json(&p.installments),
                p.status.as_str(),
            ]
        );
        Ok(())
    }
}

pub(crate) type PromiseRow = (
    String,
    String,
    String,
    String,
    i64,
    NaiveDate,
    DateTime<Utc>,
    String,
);

pub(crate) fn promises_sql(customer_id: Option<&str>) -> String {
    format!(
        "SELECT id, customer_id, invoice_numbers, currency, amount_minor, promised_date, created_at, status \
         FROM promises WHERE {} ORDER BY created_at, id",
        eq_or_all("customer_id", customer_id)
    )
}

/// One row of `select_promises`'s query, as its tuple.
macro_rules! promise_row {
    ($r:expr) => {
        (
            $r.try_get("id")?,
            $r.try_get("customer_id")?,
            $r.try_get("invoice_numbers")?,
            $r.try_get("currency")?,
            $r.try_get("amount_minor")?,
            $r.try_get("promised_date")?,
            $r.try_get("created_at")?,
            $r.try_get("status")?,
        )
    };
}
pub(crate) use promise_row;

/// The rows of [`promises_sql`] through executor `$ex` of either backend.
macro_rules! select_promises {
    ($ex:expr, $sql:expr, $customer:expr) => {{
        let mut out: Vec<$crate::records::PromiseRow> = Vec::new();
        for r in ::sqlx::query($sql).bind($customer).fetch_all($ex).await? {
            out.push($crate::records::promise_row!(r));
        }
        out
    }};
}

pub(crate) fn promises_from(rows: Vec<PromiseRow>) -> Result<Vec<PromiseToPay>> {
    rows.into_iter()
        .map(
            |(id, customer_id, inv, cur, minor, promised_date, created_at, status)| {
                Ok(PromiseToPay {
                    invoice_numbers: from_json("promise invoices", &id, &inv)?,
                    amount: Money::new(minor, parse_col("promise currency", &id, &cur)?),
                    status: parse_col("promise status", &id, &status)?,
                    customer_id,
                    promised_date,
                    created_at,
                    id,
                })
            },
        )
        .collect()
}

pub(crate) type CaseRow = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<i64>,
    String,
    DateTime<Utc>,
);

pub(crate) fn cases_sql(customer_id: Option<&str>) -> String {
    format!(
        "SELECT id, customer_id, kind, status, invoice_numbers, disputed_currency, disputed_minor, \
         summary, opened_at FROM cases WHERE {} ORDER BY opened_at, id",
        eq_or_all("customer_id", customer_id)
    )
}

/// One row of `select_cases`'s query, as its tuple.
macro_rules! case_row {
    ($r:expr) => {
        (
            $r.try_get("id")?,
            $r.try_get("customer_id")?,
            $r.try_get("kind")?,
            $r.try_get("status")?,
            $r.try_get("invoice_numbers")?,
            $r.try_get("disputed_currency")?,
            $r.try_get("disputed_minor")?,
            $r.try_get("summary")?,
            $r.try_get("opened_at")?,
        )
    };
}
pub(crate) use case_row;

/// The rows of [`cases_sql`] through executor `$ex` of either backend.
macro_rules! select_cases {
    ($ex:expr, $sql:expr, $customer:expr) => {{
        let mut out: Vec<$crate::records::CaseRow> = Vec::new();
        for r in ::sqlx::query($sql).bind($customer).fetch_all($ex).await? {
            out.push($crate::records::case_row!(r));
        }
        out
    }};
}

pub(crate) fn cases_from(rows: Vec<CaseRow>) -> Result<Vec<Case>> {
    rows.into_iter()
        .map(
            |(id, customer_id, kind, status, inv, cur, minor, summary, opened_at)| {
                let disputed_amount = match (cur, minor) {
                    (Some(c), Some(m)) => Some(Money::new(m, parse_col("case currency", &id, &c)?)),
                    _ => None,
                };
                Ok(Case {
                    kind: parse_col("case kind", &id, &kind)?,
                    status: parse_col("case status", &id, &status)?,
                    invoice_numbers: from_json("case invoices", &id, &inv)?,
                    disputed_amount,
                    customer_id,
                    summary,
                    opened_at,
                    id,
                })
            },
        )
        .collect()
}

pub(crate) fn plans_sql(customer_id: Option<&str>) -> String {
    format!(
        "SELECT id, customer_id, currency, balance_minor, discount_minor, down_payment_minor, start_date, \
               installments, status FROM payment_plans WHERE {} ORDER BY start_date, id",
        eq_or_all("customer_id", customer_id)
    )
}

pub(crate) type PlanRow = (
    String,
    String,
    String,
    i64,
    i64,
    i64,
    NaiveDate,
    String,
    String,
);

/// One row of [`plans_sql`]'s query, as its tuple.
macro_rules! plan_row {
    ($r:expr) => {
        (
            $r.try_get("id")?,
            $r.try_get("customer_id")?,
            $r.try_get("currency")?,
            $r.try_get("balance_minor")?,
            $r.try_get("discount_minor")?,
            $r.try_get("down_payment_minor")?,
            $r.try_get("start_date")?,
            $r.try_get("installments")?,
            $r.try_get("status")?,
        )
    };
}
pub(crate) use plan_row;

pub(crate) fn plans_from(rows: Vec<PlanRow>) -> Result<Vec<PaymentPlan>> {
    rows.into_iter()
        .map(
            |(id, customer_id, cur, balance, discount, down, start_date, inst, status)| {
                let installments: Vec<Installment> = from_json("plan installments", &id, &inst)?;
                Ok(PaymentPlan {
                    currency: parse_col("plan currency", &id, &cur)?,
                    status: parse_col("plan status", &id, &status)?,
                    balance_minor: balance,
                    discount_minor: discount,
                    down_payment_minor: down,
                    customer_id,
                    start_date,
                    installments,
                    id,
                })
            },
        )
        .collect()
}

impl Store {
    pub async fn promises(&self, customer_id: Option<&str>) -> Result<Vec<PromiseToPay>> {
        let sql = promises_sql(customer_id);
        let rows = dispatch!(self, |pool| select_promises!(pool, &sql, customer_id));
        promises_from(rows)
    }

    pub async fn cases(&self, customer_id: Option<&str>) -> Result<Vec<Case>> {
        let sql = cases_sql(customer_id);
        let rows = dispatch!(self, |pool| select_cases!(pool, &sql, customer_id));
        cases_from(rows)
    }

    pub async fn plans(&self, customer_id: Option<&str>) -> Result<Vec<PaymentPlan>> {
        let sql = plans_sql(customer_id);
        let rows: Vec<PlanRow> = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql).bind(customer_id).fetch_all(pool).await? {
                out.push(plan_row!(r));
            }
            out
        });
        plans_from(rows)
    }
}
