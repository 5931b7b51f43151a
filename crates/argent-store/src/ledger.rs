//! Customers, invoices and payments: the transactional import and the reads behind aging.

use chrono::NaiveDate;
use sqlx::Row;

use argent_core::import::{ImportFile, SourceMap, check_against_stored, keep_stored_opt_outs};
use argent_core::{Contact, Currency, Customer, CustomerFlags, Invoice, Money, Payment, Portfolio};

use crate::{Backend, Result, Store, StoreError, dispatch, eq_or_all, from_json, parse_col};

/// Rows per multi-row INSERT; well under both backends' bind-parameter limits.
pub(crate) const CHUNK: usize = 500;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportStats {
    pub customers: usize,
    pub invoices: usize,
    pub payments: usize,
}

/// The whole ledger, as read for aging and segmentation.
#[derive(Clone, Debug, Default)]
pub struct LedgerSnapshot {
    pub customers: Vec<Customer>,
    pub invoices: Vec<Invoice>,
    pub payments: Vec<Payment>,
}

/// Writes a portfolio's rows (upserting by key) and an import-log entry through `$conn`, a
/// `&mut` connection of either backend that is inside a transaction.
macro_rules! import_rows {
    ($conn:expr, $portfolio:expr, $source:expr) => {{
        let tx = $conn;
        let p: &::argent_core::Portfolio = $portfolio;
        let now = ::chrono::Utc::now();
        for chunk in p.customers.chunks($crate::ledger::CHUNK) {
            let mut q = ::sqlx::QueryBuilder::new(
                "INSERT INTO customers (id, name, tier, jurisdiction, time_zone, contacts, cease_contact, \
                 disputed, bankrupt, attorney_represented, facts, updated_at) ",
            );
            q.push_values(chunk, |mut b, c| {
                b.push_bind(c.id.as_str())
                    .push_bind(c.name.as_str())
                    .push_bind(c.tier.as_str())
                    .push_bind(c.jurisdiction.as_str())
                    .push_bind(c.time_zone.name())
                    .push_bind($crate::to_json(&c.contacts))
                    .push_bind(c.flags.cease_contact)
                    .push_bind(c.flags.disputed)
                    .push_bind(c.flags.bankrupt)
                    .push_bind(c.flags.attorney_represented)
                    // A new customer's facts as given (an aging CSV carries none); a
                    // re-import never overwrites stored facts (not in the update below).
                    .push_bind($crate::to_json(&c.facts))
                    .push_bind(now);
            });
            q.push(
                " ON CONFLICT (id) DO UPDATE SET name = excluded.name, tier = excluded.tier, \
                 jurisdiction = excluded.jurisdiction, time_zone = excluded.time_zone, \
                 contacts = excluded.contacts, cease_contact = excluded.cease_contact, \
                 disputed = excluded.disputed, bankrupt = excluded.bankrupt, \
                 attorney_represented = excluded.attorney_represented, updated_at = excluded.updated_at",
            );
            q.build().execute(&mut *tx).await?;
        }
        for chunk in p.invoices.chunks($crate::ledger::CHUNK) {
            let mut q = ::sqlx::QueryBuilder::new(
                "INSERT INTO invoices (number, customer_id, issue_date, due_date, currency, amount_minor, disputed) ",
            );
            q.push_values(chunk, |mut b, i| {
                b.push_bind(i.number.as_str())
                    .push_bind(i.customer_id.as_str())
                    .push_bind(i.issue_date)
                    .push_bind(i.due_date)
                    .push_bind(i.amount.currency.as_str())
                    .push_bind(i.amount.minor)
                    .push_bind(i.disputed);
            });
            q.push(
                " ON CONFLICT (number) DO UPDATE SET customer_id = excluded.customer_id, \
                 issue_date = excluded.issue_date, due_date = excluded.due_date, currency = excluded.currency, \
                 amount_minor = excluded.amount_minor, disputed = excluded.disputed",
            );
            q.build().execute(&mut *tx).await?;
        }
        for chunk in p.payments.chunks($crate::ledger::CHUNK) {
            let mut q = ::sqlx::QueryBuilder::new(
                "INSERT INTO payments (id, customer_id, invoice_number, currency, amount_minor, received_on) ",
            );
            q.push_values(chunk, |mut b, pay| {
                b.push_bind(pay.id.as_str())
                    .push_bind(pay.customer_id.as_str())
                    .push_bind(pay.invoice_number.as_str())
                    .push_bind(pay.amount.currency.as_str())
                    .push_bind(pay.amount.minor)
                    .push_bind(pay.received_on);
            });
            q.push(
                " ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id, \
                 invoice_number = excluded.invoice_number, currency = excluded.currency, \
                 amount_minor = excluded.amount_minor, received_on = excluded.received_on",
            );
            q.build().execute(&mut *tx).await?;
        }
        ::sqlx::query(
            "INSERT INTO imports (source, customers, invoices, payments, imported_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind($source)
        .bind(p.customers.len() as i64)
        .bind(p.invoices.len() as i64)
        .bind(p.payments.len() as i64)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }};
}
pub(crate) use import_rows;

/// The stored rows an import is checked against ([`check_against_stored`]), read through
/// `$conn` (a `&mut` connection of either backend, inside the import's transaction): the
/// invoices with a number in the import or of a customer in it, and the payments on the
/// import's invoices, as `(Vec<InvoiceRow>, Vec<PaymentRow>)`. Read in chunks of
/// [`CHUNK`] keys per `IN (...)`.
macro_rules! stored_for_import {
    ($conn:expr, $portfolio:expr) => {{
        let tx = $conn;
        let p: &::argent_core::Portfolio = $portfolio;
        let numbers: Vec<&str> = p.invoices.iter().map(|i| i.number.as_str()).collect();
        let mut customers: Vec<&str> = p.invoices.iter().map(|i| i.customer_id.as_str()).collect();
        customers.sort_unstable();
        customers.dedup();
        let mut invoices: ::std::collections::BTreeMap<String, $crate::ledger::InvoiceRow> =
            ::std::collections::BTreeMap::new();
        for (column, keys) in [("number", &numbers), ("customer_id", &customers)] {
            for chunk in keys.chunks($crate::ledger::CHUNK) {
                let mut q = ::sqlx::QueryBuilder::new(format!(
                    "SELECT number, customer_id, issue_date, due_date, currency, amount_minor, \
                     disputed FROM invoices WHERE {column} IN ("
                ));
                let mut list = q.separated(", ");
                for k in chunk {
                    list.push_bind(*k);
                }
                list.push_unseparated(")");
                for r in q.build().fetch_all(&mut *tx).await? {
                    let row: $crate::ledger::InvoiceRow = $crate::ledger::invoice_row!(r);
                    invoices.insert(row.0.clone(), row);
                }
            }
        }
        let mut payments: Vec<$crate::ledger::PaymentRow> = Vec::new();
        for chunk in numbers.chunks($crate::ledger::CHUNK) {
            let mut q = ::sqlx::QueryBuilder::new(
                "SELECT id, customer_id, invoice_number, currency, amount_minor, received_on \
                 FROM payments WHERE invoice_number IN (",
            );
            let mut list = q.separated(", ");
            for k in chunk {
                list.push_bind(*k);
            }
            list.push_unseparated(")");
            for r in q.build().fetch_all(&mut *tx).await? {
                payments.push($crate::ledger::payment_row!(r));
            }
        }
        (invoices.into_values().collect::<Vec<_>>(), payments)
    }};
}

pub(crate) struct CustomerRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) tier: String,
    pub(crate) jurisdiction: String,
    pub(crate) time_zone: String,
    pub(crate) contacts: String,
    pub(crate) flags: CustomerFlags,
    pub(crate) facts: String,
}

impl CustomerRow {
    pub(crate) fn into_customer(self) -> Result<Customer> {
        let id = self.id;
        let contacts: Vec<Contact> = from_json("customer contacts", &id, &self.contacts)?;
        Ok(Customer {
            tier: parse_col("customer tier", &id, &self.tier)?,
            jurisdiction: parse_col("customer jurisdiction", &id, &self.jurisdiction)?,
            time_zone: parse_col("customer time zone", &id, &self.time_zone)?,
            name: self.name,
            contacts,
            flags: self.flags,
            facts: from_json("customer facts", &id, &self.facts)?,
            id,
        })
    }
}

macro_rules! customer_row {
    ($r:expr) => {
        $crate::ledger::CustomerRow {
            id: $r.try_get("id")?,
            name: $r.try_get("name")?,
            tier: $r.try_get("tier")?,
            jurisdiction: $r.try_get("jurisdiction")?,
            time_zone: $r.try_get("time_zone")?,
            contacts: $r.try_get("contacts")?,
            flags: ::argent_core::CustomerFlags {
                cease_contact: $r.try_get("cease_contact")?,
                disputed: $r.try_get("disputed")?,
                bankrupt: $r.try_get("bankrupt")?,
                attorney_represented: $r.try_get("attorney_represented")?,
            },
            facts: $r.try_get("facts")?,
        }
    };
}
pub(crate) use customer_row;

pub(crate) const CUSTOMER_COLS: &str = "id, name, tier, jurisdiction, time_zone, contacts, cease_contact, disputed, \
                             bankrupt, attorney_represented, facts";

fn money(what: &'static str, id: &str, currency: &str, minor: i64) -> Result<Money> {
    let c: Currency = parse_col(what, id, currency)?;
    Ok(Money::new(minor, c))
}

pub(crate) fn customer_sql() -> String {
    format!("SELECT {CUSTOMER_COLS} FROM customers WHERE id = $1")
}

/// The customer `$id`, if stored, through executor `$ex` of either backend.
macro_rules! select_customer {
    ($ex:expr, $sql:expr, $id:expr) => {
        match ::sqlx::query($sql).bind($id).fetch_optional($ex).await? {
            Some(r) => Some($crate::ledger::customer_row!(r)),
            None => None,
        }
    };
}
pub(crate) use select_customer;

pub(crate) fn customer_from(id: &str, row: Option<CustomerRow>) -> Result<Customer> {
    row.ok_or_else(|| StoreError::NotFound(format!("customer {id}")))?
        .into_customer()
}

pub(crate) type InvoiceRow = (String, String, NaiveDate, NaiveDate, String, i64, bool);

pub(crate) fn invoices_sql(customer_id: Option<&str>) -> String {
    format!(
        "SELECT number, customer_id, issue_date, due_date, currency, amount_minor, disputed \
         FROM invoices WHERE {} ORDER BY due_date, number",
        eq_or_all("customer_id", customer_id)
    )
}

/// One row of `select_invoices`'s query, as its tuple.
macro_rules! invoice_row {
    ($r:expr) => {
        (
            $r.try_get("number")?,
            $r.try_get("customer_id")?,
            $r.try_get("issue_date")?,
            $r.try_get("due_date")?,
            $r.try_get("currency")?,
            $r.try_get("amount_minor")?,
            $r.try_get("disputed")?,
        )
    };
}
pub(crate) use invoice_row;

/// The rows of [`invoices_sql`] through executor `$ex` of either backend.
macro_rules! select_invoices {
    ($ex:expr, $sql:expr, $customer:expr) => {{
        let mut out: Vec<$crate::ledger::InvoiceRow> = Vec::new();
        for r in ::sqlx::query($sql).bind($customer).fetch_all($ex).await? {
            out.push($crate::ledger::invoice_row!(r));
        }
        out
    }};
}

pub(crate) fn invoices_from(rows: Vec<InvoiceRow>) -> Result<Vec<Invoice>> {
    rows.into_iter()
        .map(
            |(number, customer_id, issue_date, due_date, cur, minor, disputed)| {
                let amount = money("invoice currency", &number, &cur, minor)?;
                Ok(Invoice {
                    number,
                    customer_id,
                    issue_date,
                    due_date,
                    amount,
                    disputed,
                })
            },
        )
        .collect()
}

pub(crate) type PaymentRow = (String, String, String, String, i64, NaiveDate);

pub(crate) fn payments_sql(customer_id: Option<&str>) -> String {
    format!(
        "SELECT id, customer_id, invoice_number, currency, amount_minor, received_on \
         FROM payments WHERE {} ORDER BY received_on, id",
        eq_or_all("customer_id", customer_id)
    )
}

/// One row of `select_payments`'s query, as its tuple.
macro_rules! payment_row {
    ($r:expr) => {
        (
            $r.try_get("id")?,
            $r.try_get("customer_id")?,
            $r.try_get("invoice_number")?,
            $r.try_get("currency")?,
            $r.try_get("amount_minor")?,
            $r.try_get("received_on")?,
        )
    };
}
pub(crate) use payment_row;

/// The rows of [`payments_sql`] through executor `$ex` of either backend.
macro_rules! select_payments {
    ($ex:expr, $sql:expr, $customer:expr) => {{
        let mut out: Vec<$crate::ledger::PaymentRow> = Vec::new();
        for r in ::sqlx::query($sql).bind($customer).fetch_all($ex).await? {
            out.push($crate::ledger::payment_row!(r));
        }
        out
    }};
}

pub(crate) fn payments_from(rows: Vec<PaymentRow>) -> Result<Vec<Payment>> {
    rows.into_iter()
        .map(
            |(id, customer_id, invoice_number, cur, minor, received_on)| {
                let amount = money("payment currency", &id, &cur, minor)?;
                Ok(Payment {
                    id,
                    customer_id,
                    invoice_number,
                    amount,
                    received_on,
                })
            },
        )
        .collect()
}

impl Store {
    /// Writes a portfolio in one transaction: every row or none. Customers, invoices and
    /// payments are upserted by their ids, so re-importing a newer export of the same
    /// ledger updates it in place. First, in the same transaction, the portfolio is checked
    /// against what is stored ([`check_against_stored`]: no invoice moved to another
    /// customer, no currency changed under a recorded payment, no amount lowered below
    /// what was paid, no customer over the bound, amounts and dates within theirs); a
    /// refusal is [`StoreError::Import`] naming the invoice and the field, and nothing is
    /// written. [`import_file`](Self::import_file) does the same for a parsed file and
    /// names the line and column.
    pub async fn import_portfolio(
        &self,
        portfolio: &Portfolio,
        source: &str,
    ) -> Result<ImportStats> {
        self.import_checked(portfolio, &SourceMap::default(), source)
            .await
    }

    /// [`import_portfolio`](Self::import_portfolio) for a parsed file
    /// ([`argent_core::import::parse`]): a refusal names the line and column of the row.
    pub async fn import_file(&self, file: &ImportFile, source: &str) -> Result<ImportStats> {
        self.import_checked(&file.portfolio, &file.source, source)
            .await
    }

    async fn import_checked(
        &self,
        portfolio: &Portfolio,
        positions: &SourceMap,
        source: &str,
    ) -> Result<ImportStats> {
        let _writer = self.write_lock().await?;
        // SQLite: take the database's write lock before reading what the checks need, so
        // another process cannot change it in between. PostgreSQL: lock the two tables
        // the checks read against concurrent writers (readers do not wait).
        let begin = match self.backend() {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        };
        let postgres = self.backend() == Backend::Postgres;
        dispatch!(self, |pool| {
            let mut tx = pool.begin_with(begin).await?;
            if postgres {
                sqlx::query("LOCK TABLE invoices, payments IN SHARE ROW EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await?;
            }
            let (invoice_rows, payment_rows) = stored_for_import!(&mut *tx, portfolio);
            let stored_invoices = invoices_from(invoice_rows)?;
            let stored_payments = payments_from(payment_rows)?;
            // A refusal returns here: the transaction is dropped, so rolled back.
            check_against_stored(portfolio, positions, &stored_invoices, &stored_payments)?;
            // Opt-outs recorded since the last export stay (`keep_stored_opt_outs`).
            let mut stored_contacts: Vec<(String, String)> = Vec::new();
            let ids: Vec<&str> = portfolio.customers.iter().map(|c| c.id.as_str()).collect();
            for chunk in ids.chunks(CHUNK) {
                let mut q =
                    sqlx::QueryBuilder::new("SELECT id, contacts FROM customers WHERE id IN (");
                let mut list = q.separated(", ");
                for k in chunk {
                    list.push_bind(*k);
                }
                list.push_unseparated(")");
                for r in q.build().fetch_all(&mut *tx).await? {
                    stored_contacts.push((r.try_get("id")?, r.try_get("contacts")?));
                }
            }
            let mut merged: Option<Portfolio> = None;
            for (id, json) in &stored_contacts {
                let contacts: Vec<Contact> = from_json("customer contacts", id, json)?;
                if contacts.iter().all(|c| c.opted_out.is_empty()) {
                    continue;
                }
                let p = merged.get_or_insert_with(|| portfolio.clone());
                if let Some(c) = p.customers.iter_mut().find(|c| &c.id == id) {
                    keep_stored_opt_outs(c, &contacts);
                }
            }
            let portfolio = merged.as_ref().unwrap_or(portfolio);
            import_rows!(&mut *tx, portfolio, source);
            tx.commit().await?;
        });
        Ok(ImportStats {
            customers: portfolio.customers.len(),
            invoices: portfolio.invoices.len(),
            payments: portfolio.payments.len(),
        })
    }

    pub async fn customers(&self) -> Result<Vec<Customer>> {
        let sql = format!("SELECT {CUSTOMER_COLS} FROM customers ORDER BY id");
        let rows: Vec<CustomerRow> = dispatch!(self, |p| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql).fetch_all(p).await? {
                out.push(customer_row!(r));
            }
            out
        });
        rows.into_iter().map(CustomerRow::into_customer).collect()
    }

    pub async fn customer(&self, id: &str) -> Result<Customer> {
        let sql = customer_sql();
        let row = dispatch!(self, |p| select_customer!(p, &sql, id));
        customer_from(id, row)
    }

    /// Invoices, all or of one customer, ordered by due date then number.
    pub async fn invoices(&self, customer_id: Option<&str>) -> Result<Vec<Invoice>> {
        let sql = invoices_sql(customer_id);
        let rows = dispatch!(self, |p| select_invoices!(p, &sql, customer_id));
        invoices_from(rows)
    }

    /// Payments, all or of one customer, ordered by date then id.
    pub async fn payments(&self, customer_id: Option<&str>) -> Result<Vec<Payment>> {
        let sql = payments_sql(customer_id);
        let rows = dispatch!(self, |p| select_payments!(p, &sql, customer_id));
        payments_from(rows)
    }

    pub async fn ledger(&self) -> Result<LedgerSnapshot> {
        Ok(LedgerSnapshot {
            customers: self.customers().await?,
            invoices: self.invoices(None).await?,
            payments: self.payments(None).await?,
        })
    }

    /// Row counts of the ledger tables: (customers, invoices, payments).
    pub async fn counts(&self) -> Result<(i64, i64, i64)> {
        let sql = "SELECT (SELECT COUNT(*) FROM customers) AS c, (SELECT COUNT(*) FROM invoices) AS i, \
                   (SELECT COUNT(*) FROM payments) AS p";
        Ok(dispatch!(self, |p| {
            let r = sqlx::query(sql).fetch_one(p).await?;
            (r.try_get("c")?, r.try_get("i")?, r.try_get("p")?)
        }))
    }
}
