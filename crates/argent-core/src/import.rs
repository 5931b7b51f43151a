//! The AR aging export format: one CSV row per invoice, customer columns repeated.
//!
//! Parsing is pure (bytes in, a [`Portfolio`] and where each row came from, or the first
//! error out: [`parse`], which never panics whatever the bytes); the store writes a parsed
//! portfolio in one transaction after checking it against what it already holds
//! ([`check_against_stored`]), so a bad file changes nothing.
//!
//! **Limits** (each refused with its line and column): the file at most
//! [`MAX_FILE_BYTES`] (64 MiB); every field at most [`MAX_FIELD_BYTES`] (1 KiB); customer
//! and contact names at most [`MAX_NAME_CHARS`] (200) characters; customer ids and invoice
//! numbers at most [`MAX_ID_CHARS`] (64, what a tool call may name); e-mail addresses at
//! most [`MAX_EMAIL_CHARS`] (254). Currencies are active ISO 4217 codes. Dates are within
//! [`bounds::MIN_DATE`]..=[`bounds::MAX_DATE`]; an amount is at most
//! [`bounds::MAX_AMOUNT_MINOR`] minor units, and one customer's invoices in one currency
//! add up to at most [`bounds::MAX_CUSTOMER_TOTAL_MINOR`] (in the file, and with what the
//! ledger already holds).

use std::collections::{HashMap, HashSet};
use std::fmt;

use chrono::NaiveDate;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::bounds::{self, MAX_CUSTOMER_TOTAL_MINOR, MAX_DATE, MIN_DATE};
use crate::customer::{Channel, Contact, Customer, CustomerFlags, Jurisdiction, Tier};
use crate::invoice::{Invoice, Payment};
use crate::money::{Currency, Money};

/// The largest file [`parse`] reads: 64 MiB, about 300,000 invoice rows. A larger ledger
/// imports in several files (rows are upserted, so files split by customer add up).
pub const MAX_FILE_BYTES: usize = 64 * 1024 * 1024;
/// The largest field, in bytes.
pub const MAX_FIELD_BYTES: usize = 1024;
/// The longest customer or contact name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// The longest customer id or invoice number, in characters: what a tool call may name
/// ([`crate::action::MAX_ID_LEN`]), so the agent can refer to every imported id.
pub const MAX_ID_CHARS: usize = crate::action::MAX_ID_LEN;
/// The longest e-mail address, in characters (RFC 5321's path limit).
pub const MAX_EMAIL_CHARS: usize = 254;

/// Columns every file must have.
pub const REQUIRED_COLUMNS: &[&str] = &[
    "customer_id",
    "customer_name",
    "tier",
    "jurisdiction",
    "time_zone",
    "email",
    "invoice_number",
    "invoice_date",
    "due_date",
    "currency",
    "amount",
];
/// Columns a file may have; an empty cell means "none".
pub const OPTIONAL_COLUMNS: &[&str] = &[
    "contact_name",
    "phone",
    "opt_out",
    "flags",
    "disputed",
    "paid_amount",
    "paid_date",
];
/// The order [`to_csv`] writes.
pub const ALL_COLUMNS: &[&str] = &[
    "customer_id",
    "customer_name",
    "tier",
    "jurisdiction",
    "time_zone",
    "contact_name",
    "email",
    "phone",
    "opt_out",
    "flags",
    "invoice_number",
    "invoice_date",
    "due_date",
    "currency",
    "amount",
    "disputed",
    "paid_amount",
    "paid_date",
];
/// The columns that describe the customer and so must agree on every row of one customer.
const CUSTOMER_COLUMNS: &[&str] = &[
    "customer_name",
    "tier",
    "jurisdiction",
    "time_zone",
    "contact_name",
    "email",
    "phone",
    "opt_out",
    "flags",
];

/// Everything one import brings in.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Portfolio {
    pub customers: Vec<Customer>,
    pub invoices: Vec<Invoice>,
    pub payments: Vec<Payment>,
}

/// A parsed file: the portfolio, and where each of its rows came from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImportFile {
    pub portfolio: Portfolio,
    pub source: SourceMap,
}

/// Where the rows of a parsed file came from, so a problem found after parsing (against
/// the stored ledger, [`check_against_stored`]) is reported at its line and column. The
/// default (a portfolio not read from a file) knows no positions: its errors name the
/// invoice and the field only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceMap {
    /// 1-based column of each known column the file has.
    columns: HashMap<&'static str, usize>,
    /// Invoice number → 1-based line of its row (its payment is on the same row).
    invoice_lines: HashMap<String, u64>,
}

impl SourceMap {
    /// An error about the row of invoice `number`, at column `col`.
    pub fn error(
        &self,
        number: &str,
        col: &'static str,
        message: impl Into<String>,
    ) -> ImportError {
        ImportError {
            line: self.invoice_lines.get(number).copied().unwrap_or(0),
            column: Some((self.columns.get(col).copied().unwrap_or(0), col.to_string())),
            message: message.into(),
        }
    }
}

/// Where a file is wrong: the 1-based line, the 1-based column and its name, and why.
/// Line 0 (and column 0) mean "not known": a portfolio that was not read from a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportError {
    pub line: u64,
    pub column: Option<(usize, String)>,
    pub message: String,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.column, self.line) {
            (Some((n, name)), line) if line > 0 && *n > 0 => {
                write!(f, "line {line}, column {n} ({name}): {}", self.message)
            }
            (Some((_, name)), line) if line > 0 => {
                write!(f, "line {line} ({name}): {}", self.message)
            }
            (None, line) if line > 0 => write!(f, "line {line}: {}", self.message),
            (Some((_, name)), _) => write!(f, "{name}: {}", self.message),
            (None, _) => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ImportError {}

fn csv_error(e: &csv::Error) -> ImportError {
    let line = e.position().map_or(0, |p| p.line());
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("expected {expected_len} fields like the header, found {len}")
        }
        csv::ErrorKind::Utf8 { err, .. } => format!("field {} is not valid UTF-8", err.field() + 1),
        _ => e.to_string(),
    };
    ImportError {
        line,
        column: None,
        message,
    }
}

struct Row<'r> {
    record: &'r csv::StringRecord,
    index: &'r HashMap<&'static str, usize>,
    headers: &'r [String],
    line: u64,
}

/// Shows at most 40 characters of `s`, for messages that echo what a file holds.
fn shown(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

impl Row<'_> {
    /// Refuses a field over its size limit, before anything reads (or echoes) it.
    fn check_sizes(&self) -> Result<(), ImportError> {
        for (i, field) in self.record.iter().enumerate() {
            let name = self.headers.get(i).map(String::as_str).unwrap_or("");
            let at = |message: String| ImportError {
                line: self.line,
                column: Some((i + 1, name.to_string())),
                message,
            };
            if field.len() > MAX_FIELD_BYTES {
                return Err(at(format!(
                    "is {} bytes long; a field may have at most {MAX_FIELD_BYTES}",
                    field.len()
                )));
            }
            let max_chars = match name {
                "customer_name" | "contact_name" => MAX_NAME_CHARS,
                "customer_id" | "invoice_number" => MAX_ID_CHARS,
                "email" => MAX_EMAIL_CHARS,
                _ => continue,
            };
            let chars = field.trim().chars().count();
            if chars > max_chars {
                return Err(at(format!(
                    "is {chars} characters long; at most {max_chars} are allowed"
                )));
            }
        }
        Ok(())
    }

    fn get(&self, col: &'static str) -> &str {
        self.index
            .get(col)
            .and_then(|&i| self.record.get(i))
            .unwrap_or("")
            .trim()
    }

    fn err(&self, col: &'static str, message: impl Into<String>) -> ImportError {
        let column = self.index.get(col).map(|&i| (i + 1, col.to_string()));
        ImportError {
            line: self.line,
            column,
            message: message.into(),
        }
    }

    fn required(&self, col: &'static str) -> Result<&str, ImportError> {
        let v = self.get(col);
        if v.is_empty() {
            Err(self.err(col, "is empty"))
        } else {
            Ok(v)
        }
    }

    fn optional(&self, col: &'static str) -> Option<&str> {
        Some(self.get(col)).filter(|v| !v.is_empty())
    }

    fn parse<T: std::str::FromStr>(&self, col: &'static str) -> Result<T, ImportError>
    where
        T::Err: fmt::Display,
    {
        self.required(col)?
            .parse()
            .map_err(|e: T::Err| self.err(col, e.to_string()))
    }

    fn date(&self, col: &'static str) -> Result<NaiveDate, ImportError> {
        let v = self.required(col)?;
        let d = NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map_err(|_| self.err(col, format!("'{v}' is not a date (expected YYYY-MM-DD)")))?;
        bounds::check_date(col, d).map_err(|_| {
            self.err(
                col,
                format!("{d} is outside the dates argent accepts ({MIN_DATE} to {MAX_DATE})"),
            )
        })
    }

    fn money(&self, col: &'static str, currency: Currency) -> Result<Money, ImportError> {
        let v = self.required(col)?;
        let m = Money::parse(v, currency).map_err(|e| self.err(col, e.to_string()))?;
        bounds::check_amount(col, m).map_err(|_| self.err(col, too_large(m)))
    }
}

fn too_large(m: Money) -> String {
    format!(
        "{m} is more than the largest amount argent accepts ({})",
        Money::new(bounds::MAX_AMOUNT_MINOR, m.currency)
    )
}

fn over_customer_bound(customer: &str, total: i128, currency: Currency) -> String {
    let total = i64::try_from(total).map_or_else(
        |_| format!("more than {}", Money::new(i64::MAX, currency)),
        |t| Money::new(t, currency).to_string(),
    );
    format!(
        "customer {customer}'s invoices in {currency} would add up to {total}, more than \
         argent accepts for one customer ({})",
        Money::new(MAX_CUSTOMER_TOTAL_MINOR, currency)
    )
}

/// Parses an aging export. Returns the first problem found, with its position.
pub fn parse_aging_csv(data: &[u8]) -> Result<Portfolio, ImportError> {
    parse(data).map(|f| f.portfolio)
}

/// Parses an aging export into the portfolio and where its rows came from. Returns the
/// first problem found, with its position. Never panics, whatever the bytes (the fuzz
/// target's entry point).
pub fn parse(data: &[u8]) -> Result<ImportFile, ImportError> {
    if data.len() > MAX_FILE_BYTES {
        return Err(ImportError {
            line: 0,
            column: None,
            message: format!(
                "the file is {} bytes; argent imports at most {} MiB per file (split a \
                 larger ledger by customer into several files)",
                data.len(),
                MAX_FILE_BYTES / (1024 * 1024)
            ),
        });
    }
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(data);
    let headers = reader.headers().map_err(|e| csv_error(&e))?.clone();
    let header_names: Vec<String> = headers.iter().map(|h| shown(h.trim())).collect();
    let mut index: HashMap<&'static str, usize> = HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        let h = h.trim();
        let known = REQUIRED_COLUMNS
            .iter()
            .chain(OPTIONAL_COLUMNS)
            .find(|c| **c == h);
        let column = Some((i + 1, shown(h)));
        match known {
            Some(c) if index.contains_key(c) => {
                return Err(ImportError {
                    line: 1,
                    column,
                    message: "column appears twice".into(),
                });
            }
            Some(c) => {
                index.insert(c, i);
            }
            None => {
                return Err(ImportError {
                    line: 1,
                    column,
                    message: format!("unknown column (expected: {})", ALL_COLUMNS.join(", ")),
                });
            }
        }
    }
    if let Some(missing) = REQUIRED_COLUMNS.iter().find(|c| !index.contains_key(*c)) {
        return Err(ImportError {
            line: 1,
            column: None,
            message: format!("required column '{missing}' is missing"),
        });
    }

    let mut portfolio = Portfolio::default();
    // customer id -> (index in portfolio.customers, first line, raw customer cells)
    let mut customers: HashMap<String, (usize, u64, Vec<String>)> = HashMap::new();
    let mut invoice_lines: HashMap<String, u64> = HashMap::new();
    // (customer id, currency) -> the customer's invoices so far (each under 10^13 and
    // the total checked against 10^15 at every row, so no overflow).
    let mut customer_totals: HashMap<(String, Currency), i64> = HashMap::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_error(&e)),
        }
        let line = record.position().map_or(0, |p| p.line());
        let row = Row {
            record: &record,
            index: &index,
            headers: &header_names,
            line,
        };
        row.check_sizes()?;
        if record.iter().all(|f| f.trim().is_empty()) {
            continue; // blank line
        }
        let customer_id = row.required("customer_id")?.to_string();
        let cells: Vec<String> = CUSTOMER_COLUMNS
            .iter()
            .map(|c| row.get(c).to_string())
            .collect();
        match customers.get(&customer_id) {
            Some((_, first_line, first)) => {
                if let Some(i) = (0..cells.len()).find(|&i| cells[i] != first[i]) {
                    let col = CUSTOMER_COLUMNS[i];
                    return Err(row.err(
                        col,
                        format!(
                            "customer {customer_id} has '{}' here but '{}' on line {first_line}",
                            cells[i], first[i]
                        ),
                    ));
                }
            }
            None => {
                let customer = parse_customer(&row, &customer_id)?;
                customers.insert(
                    customer_id.clone(),
                    (portfolio.customers.len(), line, cells),
                );
                portfolio.customers.push(customer);
            }
        }

        let number = row.required("invoice_number")?.to_string();
        if let Some(first) = invoice_lines.get(&number) {
            return Err(row.err(
                "invoice_number",
                format!("invoice {number} already appears on line {first}"),
            ));
        }
        invoice_lines.insert(number.clone(), line);
        let currency: Currency = row.parse("currency")?;
        let issue_date = row.date("invoice_date")?;
        let due_date = row.date("due_date")?;
        if due_date < issue_date {
            return Err(row.err(
                "due_date",
                format!("due date {due_date} is before the invoice date {issue_date}"),
            ));
        }
        let amount = row.money("amount", currency)?;
        if !amount.is_positive() {
            return Err(row.err(
                "amount",
                "must be greater than zero (credit notes are not imported)",
            ));
        }
        let total = customer_totals
            .entry((customer_id.clone(), currency))
            .or_insert(0);
        let new_total = i128::from(*total) + i128::from(amount.minor);
        if new_total > i128::from(MAX_CUSTOMER_TOTAL_MINOR) {
            return Err(row.err(
                "amount",
                over_customer_bound(&customer_id, new_total, currency),
            ));
        }
        *total = i64::try_from(new_total).unwrap_or(MAX_CUSTOMER_TOTAL_MINOR);
        let disputed = match row.optional("disputed") {
            None => false,
            Some("true" | "yes" | "1") => true,
            Some("false" | "no" | "0") => false,
            Some(v) => return Err(row.err("disputed", format!("'{v}' is not true/false"))),
        };
        match (row.optional("paid_amount"), row.optional("paid_date")) {
            (None, None) => {}
            (Some(_), None) => return Err(row.err("paid_date", "is empty but paid_amount is set")),
            (None, Some(_)) => return Err(row.err("paid_amount", "is empty but paid_date is set")),
            (Some(_), Some(_)) => {
                let paid = row.money("paid_amount", currency)?;
                if paid.minor < 0 {
                    return Err(row.err("paid_amount", "must not be negative"));
                }
                if paid.minor > amount.minor {
                    return Err(row.err(
                        "paid_amount",
                        format!("{paid} is more than the invoice amount {amount}"),
                    ));
                }
                let received_on = row.date("paid_date")?;
                if received_on < issue_date {
                    return Err(row.err("paid_date", "is before the invoice date"));
                }
                if paid.minor > 0 {
                    portfolio.payments.push(Payment {
                        id: format!("import:{number}"),
                        customer_id: customer_id.clone(),
                        invoice_number: number.clone(),
                        amount: paid,
                        received_on,
                    });
                }
            }
        }
        portfolio.invoices.push(Invoice {
            number,
            customer_id,
            issue_date,
            due_date,
            amount,
            disputed,
        });
    }
    Ok(ImportFile {
        portfolio,
        source: SourceMap {
            columns: index.iter().map(|(c, i)| (*c, i + 1)).collect(),
            invoice_lines,
        },
    })
}

/// Checks an import against what the ledger already holds, before it is written: a
/// re-import may not move an invoice to another customer, change its currency while
/// payments are recorded on it, or lower its amount below what will have been paid on it
/// (the stored payments it does not replace plus its own); and no customer's invoices in
/// one currency may add up to more than [`MAX_CUSTOMER_TOTAL_MINOR`], counting the stored
/// invoices it does not replace. It also applies the bounds of amounts and dates to every
/// row (a portfolio built in code, not parsed, meets them here first). The first problem,
/// in the portfolio's order, is returned at its line and column (from `source`).
///
/// `stored_invoices` must hold every stored invoice with a number in the import or of a
/// customer in it; `stored_payments`, every stored payment on an invoice in the import.
pub fn check_against_stored(
    portfolio: &Portfolio,
    source: &SourceMap,
    stored_invoices: &[Invoice],
    stored_payments: &[Payment],
) -> Result<(), ImportError> {
    let p = portfolio;
    for inv in &p.invoices {
        let n = inv.number.as_str();
        for (col, d) in [("invoice_date", inv.issue_date), ("due_date", inv.due_date)] {
            if bounds::check_date(col, d).is_err() {
                return Err(source.error(
                    n,
                    col,
                    format!("invoice {n}: {d} is outside the dates argent accepts ({MIN_DATE} to {MAX_DATE})"),
                ));
            }
        }
        if bounds::check_amount("amount", inv.amount).is_err() {
            return Err(source.error(
                n,
                "amount",
                format!("invoice {n}: {}", too_large(inv.amount)),
            ));
        }
    }
    for pay in &p.payments {
        let n = pay.invoice_number.as_str();
        if bounds::check_date("paid_date", pay.received_on).is_err() {
            return Err(source.error(
                n,
                "paid_date",
                format!(
                    "payment {}: {} is outside the dates argent accepts ({MIN_DATE} to {MAX_DATE})",
                    pay.id, pay.received_on
                ),
            ));
        }
        if bounds::check_amount("paid_amount", pay.amount).is_err() {
            return Err(source.error(
                n,
                "paid_amount",
                format!("payment {}: {}", pay.id, too_large(pay.amount)),
            ));
        }
    }

    let stored: HashMap<&str, &Invoice> = stored_invoices
        .iter()
        .map(|i| (i.number.as_str(), i))
        .collect();
    let replaced: HashSet<&str> = p.payments.iter().map(|x| x.id.as_str()).collect();
    let mut recorded: HashMap<&str, Vec<&Payment>> = HashMap::new();
    for pay in stored_payments {
        recorded
            .entry(pay.invoice_number.as_str())
            .or_default()
            .push(pay);
    }
    let mut incoming: HashMap<&str, Vec<&Payment>> = HashMap::new();
    for pay in &p.payments {
        incoming
            .entry(pay.invoice_number.as_str())
            .or_default()
            .push(pay);
    }
    // Sums of i64 amounts in i128: exact, no overflow.
    let sum = |pays: &[&Payment], currency: Currency| -> i128 {
        pays.iter()
            .filter(|x| x.amount.currency == currency)
            .map(|x| i128::from(x.amount.minor))
            .sum()
    };
    let shown_sum = |total: i128, currency: Currency| match i64::try_from(total) {
        Ok(t) => Money::new(t, currency).to_string(),
        Err(_) => format!("more than {}", Money::new(i64::MAX, currency)),
    };

    for inv in &p.invoices {
        let n = inv.number.as_str();
        let Some(old) = stored.get(n) else {
            continue;
        };
        if old.customer_id != inv.customer_id {
            return Err(source.error(
                n,
                "customer_id",
                format!(
                    "invoice {n} belongs to customer {} in the ledger; a re-import cannot move \
                     it to customer {}",
                    old.customer_id, inv.customer_id
                ),
            ));
        }
        let on_record = recorded.get(n).map(Vec::as_slice).unwrap_or_default();
        let new_cur = inv.amount.currency;
        if old.amount.currency != new_cur && !on_record.is_empty() {
            let old_cur = old.amount.currency;
            return Err(source.error(
                n,
                "currency",
                format!(
                    "invoice {n} is recorded in {old_cur} with {} paid on it; a re-import \
                     cannot change its currency to {new_cur}",
                    shown_sum(sum(on_record, old_cur), old_cur)
                ),
            ));
        }
        let kept: Vec<&Payment> = on_record
            .iter()
            .copied()
            .filter(|x| !replaced.contains(x.id.as_str()))
            .collect();
        let own = incoming.get(n).map(Vec::as_slice).unwrap_or_default();
        let paid = sum(&kept, new_cur) + sum(own, new_cur);
        if paid > i128::from(inv.amount.minor) {
            return Err(source.error(
                n,
                "amount",
                format!(
                    "invoice {n} has {} paid on it; a re-import cannot lower its amount to {}",
                    shown_sum(paid, new_cur),
                    inv.amount
                ),
            ));
        }
    }

    // Each customer's total per currency: the stored invoices the import does not replace,
    // then the import's, in its order.
    let importing: HashSet<&str> = p.invoices.iter().map(|i| i.number.as_str()).collect();
    let customers: HashSet<&str> = p.invoices.iter().map(|i| i.customer_id.as_str()).collect();
    let mut totals: HashMap<(&str, Currency), i128> = HashMap::new();
    for old in stored_invoices {
        if customers.contains(old.customer_id.as_str()) && !importing.contains(old.number.as_str())
        {
            *totals
                .entry((old.customer_id.as_str(), old.amount.currency))
                .or_default() += i128::from(old.amount.minor);
        }
    }
    for inv in &p.invoices {
        let cur = inv.amount.currency;
        let t = totals.entry((inv.customer_id.as_str(), cur)).or_default();
        *t += i128::from(inv.amount.minor);
        if *t > i128::from(MAX_CUSTOMER_TOTAL_MINOR) {
            return Err(source.error(
                &inv.number,
                "amount",
                format!(
                    "invoice {}: {}",
                    inv.number,
                    over_customer_bound(&inv.customer_id, *t, cur)
                ),
            ));
        }
    }
    Ok(())
}

fn parse_customer(row: &Row<'_>, id: &str) -> Result<Customer, ImportError> {
    let name = row.required("customer_name")?.to_string();
    let tier: Tier = row.parse("tier")?;
    let jurisdiction: Jurisdiction = row.parse("jurisdiction")?;
    let tz_name = row.required("time_zone")?;
    let time_zone: Tz = tz_name.parse().map_err(|_| {
        row.err(
            "time_zone",
            format!("'{tz_name}' is not an IANA time zone (e.g. America/Chicago)"),
        )
    })?;
    let email = row.optional("email").map(str::to_string);
    if let Some(e) = &email {
        let ok = e
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))
            && !e.contains(char::is_whitespace);
        if !ok {
            return Err(row.err("email", format!("'{e}' is not an email address")));
        }
    }
    let mut opted_out = Vec::new();
    for ch in row
        .get("opt_out")
        .split(';')
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        opted_out.push(ch.parse::<Channel>().map_err(|e| row.err("opt_out", e))?);
    }
    let flags = CustomerFlags::parse_list(row.get("flags")).map_err(|e| row.err("flags", e))?;
    let contact = Contact {
        name: row.optional("contact_name").unwrap_or(&name).to_string(),
        email,
        phone: row.optional("phone").map(str::to_string),
        opted_out,
    };
    Ok(Customer {
        id: id.to_string(),
        name,
        tier,
        jurisdiction,
        time_zone,
        contacts: vec![contact],
        flags,
        facts: Default::default(),
    })
}

/// Writes a portfolio in the export format (every column of [`ALL_COLUMNS`]).
/// Each invoice carries at most one payment: the sum of its payments, dated by the last;
/// an error if that sum does not fit in `i64` minor units.
pub fn to_csv(p: &Portfolio) -> Result<Vec<u8>, crate::money::MoneyError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let customers: HashMap<&str, &Customer> =
        p.customers.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut paid: HashMap<&str, (i64, NaiveDate)> = HashMap::new();
    for pay in &p.payments {
        let e = paid
            .entry(pay.invoice_number.as_str())
            .or_insert((0, pay.received_on));
        Money::add_minor(&mut e.0, pay.amount.minor, pay.amount.currency, || {
            format!("the payments on invoice {}", pay.invoice_number)
        })?;
        e.1 = e.1.max(pay.received_on);
    }
    // Writing to a Vec cannot fail.
    let _ = w.write_record(ALL_COLUMNS);
    for inv in &p.invoices {
        let Some(c) = customers.get(inv.customer_id.as_str()) else {
            continue;
        };
        let contact = c.primary_contact();
        let (paid_amount, paid_date) = match paid.get(inv.number.as_str()) {
            Some((minor, on)) => (
                Money::new(*minor, inv.amount.currency).amount_string(),
                on.to_string(),
            ),
            None => (String::new(), String::new()),
        };
        let opt_out = contact
            .map(|k| {
                k.opted_out
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(";")
            })
            .unwrap_or_default();
        let _ = w.write_record([
            c.id.as_str(),
            &c.name,
            c.tier.as_str(),
            c.jurisdiction.as_str(),
            c.time_zone.name(),
            contact.map_or("", |k| k.name.as_str()),
            contact.and_then(|k| k.email.as_deref()).unwrap_or(""),
            contact.and_then(|k| k.phone.as_deref()).unwrap_or(""),
            &opt_out,
            &c.flags.to_list(),
            &inv.number,
            &inv.issue_date.to_string(),
            &inv.due_date.to_string(),
            inv.amount.currency.as_str(),
            &inv.amount.amount_string(),
            if inv.disputed { "true" } else { "" },
            &paid_amount,
            &paid_date,
        ]);
    }
    Ok(w.into_inner().unwrap_or_default())
}

/// Keeps, on an incoming customer's contacts, the channel opt-outs already stored for the
/// same contact (the same email, case-insensitively; a contact without email: the same
/// name). An aging export knows nothing of an opt-out recorded since (recognised in the
/// customer's own message, or set by a person), and an import must not erase one.
pub fn keep_stored_opt_outs(incoming: &mut Customer, stored: &[Contact]) {
    for c in &mut incoming.contacts {
        let same = stored.iter().find(|s| match (&c.email, &s.email) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            (None, None) => s.name == c.name,
            _ => false,
        });
        if let Some(s) = same {
            for ch in &s.opted_out {
                if !c.opted_out.contains(ch) {
                    c.opted_out.push(*ch);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HEADER: &str = "customer_id,customer_name,tier,jurisdiction,time_zone,email,invoice_number,invoice_date,due_date,currency,amount,paid_amount,paid_date\n";

    fn parse(body: &str) -> Result<Portfolio, ImportError> {
        parse_aging_csv(format!("{HEADER}{body}").as_bytes())
    }

    #[test]
    fn parses_customers_invoices_and_payments() {
        let p = parse(
            "C1,Acme Ltd,strategic,b2b,Europe/London,ap@acme.example,INV-1,2026-01-01,2026-01-31,GBP,1200.50,200,2026-02-03\n\
             C1,Acme Ltd,strategic,b2b,Europe/London,ap@acme.example,INV-2,2026-02-01,2026-03-03,GBP,99.99,,\n",
        )
        .unwrap();
        assert_eq!(p.customers.len(), 1);
        assert_eq!(p.customers[0].time_zone, chrono_tz::Europe::London);
        assert_eq!(p.invoices.len(), 2);
        assert_eq!(p.invoices[0].amount, Money::new(1200_50, Currency::GBP));
        assert_eq!(p.payments.len(), 1);
        assert_eq!(p.payments[0].amount.minor, 200_00);
    }

    #[test]
    fn errors_name_line_column_and_reason() {
        let good = "C1,Acme,standard,b2b,UTC,a@b.co,INV-1,2026-01-01,2026-01-31,USD,10.00,,\n";
        let cases = [
            (
                "C1,Acme,standard,b2b,UTC,a@b.co,INV-2,2026-13-01,2026-01-31,USD,10.00,,\n",
                "line 3, column 8 (invoice_date)",
            ),
            (
                "C1,Acme,standard,b2b,UTC,a@b.co,INV-2,2026-01-01,2026-01-31,USD,-5,,\n",
                "line 3, column 11 (amount)",
            ),
            (
                "C1,Acme,standard,b2b,UTC,a@b.co,INV-2,2026-01-01,2026-01-31,USD,1.234,,\n",
                "line 3, column 11 (amount)",
            ),
            (
                "C1,Acme,gold,b2b,UTC,a@b.co,INV-2,2026-01-01,2026-01-31,USD,1,,\n",
                "line 3, column 3 (tier)",
            ),
            (
                "C2,Beta,standard,b2b,Mars/Base,a@b.co,INV-2,2026-01-01,2026-01-31,USD,1,,\n",
                "line 3, column 5 (time_zone)",
            ),
            (
                "C1,Acme,standard,b2b,UTC,a@b.co,INV-1,2026-01-01,2026-01-31,USD,1,,\n",
                "line 3, column 7 (invoice_number): invoice INV-1 already appears on line 2",
            ),
            (
                "C1,Acme,small,b2b,UTC,a@b.co,INV-2,2026-01-01,2026-01-31,USD,1,,\n",
                "line 3, column 3 (tier): customer C1 has 'small' here but 'standard' on line 2",
            ),
            (
                "C1,Acme,standard,b2b,UTC,a@b.co,INV-2,2026-01-01,2026-01-31,USD,1,2,2026-02-01\n",
                "line 3, column 12 (paid_amount)",
            ),
            (
                "C1,Acme,standard,b2b,UTC,a@b.co,INV-2,2026-01-01,2026-01-31,USD,1\n",
                "line 3: expected 13 fields",
            ),
            (
                "C1,Acme,standard,b2b,UTC,a@b.co,INV-2,2026-02-01,2026-01-31,usd,1,,\n",
                "line 3, column 10 (currency)",
            ),
        ];
        for (bad, want) in cases {
            let err = parse(&format!("{good}{bad}")).unwrap_err().to_string();
            assert!(err.starts_with(want), "got {err:?}, want prefix {want:?}");
        }
    }

    #[test]
    fn header_problems_are_reported_on_line_one() {
        let err = parse_aging_csv(b"customer_id,customer_name\n").unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.message.contains("'tier' is missing"), "{err}");
        let err =
            parse_aging_csv(format!("{},paid_amout\n", HEADER.trim_end()).as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string().split(':').next(),
            Some("line 1, column 14 (paid_amout)")
        );
    }

    #[test]
    fn written_csv_parses_back_to_the_same_portfolio() {
        let p = crate::demo::generate(&crate::demo::DemoConfig {
            customers: 40,
            ..Default::default()
        });
        let again = parse_aging_csv(&to_csv(&p).unwrap()).unwrap();
        assert_eq!(again.customers, p.customers);
        assert_eq!(again.invoices, p.invoices);
        assert_eq!(again.payments, p.payments);
    }

    const GOOD: &str = "C1,Acme,standard,b2b,UTC,a@b.co,INV-1,2026-01-01,2026-01-31,USD,10.00,,\n";

    fn first_error(bad: &str) -> String {
        parse(&format!("{GOOD}{bad}")).unwrap_err().to_string()
    }

    #[test]
    fn amounts_over_the_bound_name_line_and_column() {
        let err = first_error(
            "C1,Acme,standard,b2b,UTC,a@b.co,INV-2,2026-01-01,2026-01-31,USD,100000000000.01,,\n",
        );
        assert!(err.starts_with("line 3, column 11 (amount): "), "{err}");
    }

    #[test]
    fn a_customer_total_over_the_bound_names_the_row_that_crosses_it() {
        let mut body = String::new();
        for i in 0..100 {
            body.push_str(&format!(
                "C1,Acme,standard,b2b,UTC,a@b.co,BIG-{i},2026-01-01,2026-01-31,USD,100000000000.00,,\n"
            ));
        }
        let err = first_error(&body);
        // 10.00 on line 2, then 100 billion per row: row 101 (line 102) crosses 10^15 minor.
        assert!(err.starts_with("line 102, column 11 (amount): "), "{err}");
    }

    #[test]
    fn dates_outside_the_sane_range_name_line_and_column() {
        for (bad, want) in [
            (
                "C1,Acme,standard,b2b,UTC,a@b.co,INV-2,1969-12-31,2026-01-31,USD,1,,\n",
                "line 3, column 8 (invoice_date): ",
            ),
            (
                "C1,Acme,standard,b2b,UTC,a@b.co,INV-2,2026-01-01,2200-01-01,USD,1,,\n",
                "line 3, column 9 (due_date): ",
            ),
            (
                "C1,Acme,standard,b2b,UTC,a@b.co,INV-2,2026-01-01,+262143-01-01,USD,1,,\n",
                "line 3, column 9 (due_date): ",
            ),
            (
                "C1,Acme,standard,b2b,UTC,a@b.co,INV-2,2026-01-01,2026-01-31,USD,1,1,9999-01-01\n",
                "line 3, column 13 (paid_date): ",
            ),
        ] {
            let err = first_error(bad);
            assert!(err.starts_with(want), "got {err:?}, want prefix {want:?}");
        }
    }

    #[test]
    fn currencies_must_be_iso_4217() {
        let err =
            first_error("C1,Acme,standard,b2b,UTC,a@b.co,INV-2,2026-01-01,2026-01-31,XYZ,1,,\n");
        assert!(err.starts_with("line 3, column 10 (currency): "), "{err}");
    }

    #[test]
    fn oversized_fields_name_line_and_column() {
        let long_name = "N".repeat(201);
        let long_id = "I".repeat(65);
        let long_email = format!("{}@b.co", "a".repeat(1100));
        for (bad, want) in [
            (
                format!(
                    "C2,{long_name},standard,b2b,UTC,a@b.co,INV-2,2026-01-01,2026-01-31,USD,1,,\n"
                ),
                "line 3, column 2 (customer_name): ",
            ),
            (
                format!(
                    "C1,Acme,standard,b2b,UTC,a@b.co,{long_id},2026-01-01,2026-01-31,USD,1,,\n"
                ),
                "line 3, column 7 (invoice_number): ",
            ),
            (
                format!(
                    "C2,Beta,standard,b2b,UTC,{long_email},INV-2,2026-01-01,2026-01-31,USD,1,,\n"
                ),
                "line 3, column 6 (email): ",
            ),
        ] {
            let err = first_error(&bad);
            assert!(err.starts_with(want), "got {err:?}, want prefix {want:?}");
        }
    }

    #[test]
    fn a_file_over_the_size_cap_is_refused_before_parsing() {
        let mut data = format!("{HEADER}{GOOD}").into_bytes();
        data.resize(64 * 1024 * 1024 + 1, b'\n');
        let err = parse_aging_csv(&data).unwrap_err();
        assert!(err.to_string().contains("MiB"), "{err}");
    }

    fn file(body: &str) -> ImportFile {
        super::parse(format!("{HEADER}{body}").as_bytes()).unwrap()
    }

    const STORED: &str = "C1,Acme,standard,b2b,UTC,a@b.co,INV-1,2026-01-01,2026-01-31,USD,100.00,40.00,2026-02-01\n\
                          C2,Bolt,standard,b2b,UTC,b@b.co,INV-2,2026-01-01,2026-01-31,USD,50.00,,\n";

    /// The re-import rules, checked against a stored ledger given as data: each refusal
    /// names the line and column of the offending row.
    #[test]
    fn a_reimport_is_checked_against_the_stored_ledger() {
        let stored = file(STORED).portfolio;
        let check = |body: &str| {
            let f = file(body);
            check_against_stored(&f.portfolio, &f.source, &stored.invoices, &stored.payments)
                .map_err(|e| e.to_string())
        };
        let c3 = "C3,Cole,standard,b2b,UTC,c@b.co,INV-3,2026-01-01,2026-01-31,USD,10.00,,\n";
        // The same ledger again, a raised amount, a payment corrected: fine.
        assert_eq!(check(STORED), Ok(()));
        assert_eq!(
            check(
                "C1,Acme,standard,b2b,UTC,a@b.co,INV-1,2026-01-01,2026-01-31,USD,120.00,30.00,2026-02-01\n"
            ),
            Ok(())
        );
        // The row's own payment replaces the stored one of the same id: 30.00 paid of 35.00.
        assert_eq!(
            check(
                "C1,Acme,standard,b2b,UTC,a@b.co,INV-1,2026-01-01,2026-01-31,USD,35.00,30.00,2026-02-01\n"
            ),
            Ok(())
        );
        let moved = check(&format!(
            "{c3}C2,Bolt,standard,b2b,UTC,b@b.co,INV-1,2026-01-01,2026-01-31,USD,100.00,,\n"
        ))
        .unwrap_err();
        assert_eq!(
            moved,
            "line 3, column 1 (customer_id): invoice INV-1 belongs to customer C1 in the \
             ledger; a re-import cannot move it to customer C2"
        );
        let recurrency = check(&format!(
            "{c3}C1,Acme,standard,b2b,UTC,a@b.co,INV-1,2026-01-01,2026-01-31,EUR,100.00,,\n"
        ))
        .unwrap_err();
        assert_eq!(
            recurrency,
            "line 3, column 10 (currency): invoice INV-1 is recorded in USD with USD 40.00 \
             paid on it; a re-import cannot change its currency to EUR"
        );
        // INV-2 has no payment: its currency may be corrected.
        assert_eq!(
            check("C2,Bolt,standard,b2b,UTC,b@b.co,INV-2,2026-01-01,2026-01-31,EUR,50.00,,\n"),
            Ok(())
        );
        let lowered = check(&format!(
            "{c3}C1,Acme,standard,b2b,UTC,a@b.co,INV-1,2026-01-01,2026-01-31,USD,30.00,,\n"
        ))
        .unwrap_err();
        assert_eq!(
            lowered,
            "line 3, column 11 (amount): invoice INV-1 has USD 40.00 paid on it; a re-import \
             cannot lower its amount to USD 30.00"
        );
    }

    /// A customer's stored invoices count toward the per-customer bound of a re-import.
    #[test]
    fn the_customer_bound_counts_the_stored_invoices() {
        let mut stored = file(STORED).portfolio;
        for k in 0..99 {
            let mut big = stored.invoices[0].clone();
            big.number = format!("BIG-{k}");
            big.amount = Money::new(bounds::MAX_AMOUNT_MINOR, Currency::USD);
            stored.invoices.push(big);
        }
        let f = file(
            "C2,Bolt,standard,b2b,UTC,b@b.co,INV-9,2026-01-01,2026-01-31,USD,100000000000.00,,\n\
             C1,Acme,standard,b2b,UTC,a@b.co,INV-8,2026-01-01,2026-01-31,USD,100000000000.00,,\n",
        );
        let err = check_against_stored(&f.portfolio, &f.source, &stored.invoices, &stored.payments)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "line 3, column 11 (amount): invoice INV-8: customer C1's invoices in USD would \
                 add up to USD 10000000000100.00, more than argent accepts for one customer"
            ),
            "{err}"
        );
    }

    /// A portfolio built in code (no file) meets the bounds at the same check, its errors
    /// naming the invoice and the field.
    #[test]
    fn a_portfolio_without_a_file_is_bounded_too() {
        let mut p = file(STORED).portfolio;
        p.invoices[1].amount = Money::new(i64::MAX, Currency::USD);
        let err = check_against_stored(&p, &SourceMap::default(), &[], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("amount: invoice INV-2: USD 92233720368547758.07 is more than"),
            "{err}"
        );
        let mut p = file(STORED).portfolio;
        p.invoices[0].due_date = NaiveDate::MAX;
        let err = check_against_stored(&p, &SourceMap::default(), &[], &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("due_date: invoice INV-1: "), "{err}");
    }

    fn cell() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just("C1".to_string()),
            Just("INV-1".to_string()),
            Just("2026-01-31".to_string()),
            Just("+262143-12-31".to_string()),
            Just("-262144-01-01".to_string()),
            Just("USD".to_string()),
            Just("JPY".to_string()),
            Just("CLF".to_string()),
            Just("99999999999999999999".to_string()),
            Just("100000000000.00".to_string()),
            Just("-0.01".to_string()),
            Just(".5".to_string()),
            Just("\"a,b\"".to_string()),
            Just("\u{feff}".to_string()),
            Just("x".repeat(1100)),
            "[ -~]{0,12}",
            any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// `parse` (the fuzz target) never panics on arbitrary bytes.
        #[test]
        fn parse_never_panics_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = super::parse(&data);
            let mut with_header = HEADER.as_bytes().to_vec();
            with_header.extend_from_slice(&data);
            let _ = super::parse(&with_header);
        }

        /// Nor on rows of plausible and hostile cells under a valid header; and what it
        /// accepts, the re-import check accepts against an empty ledger.
        #[test]
        fn parse_never_panics_on_hostile_rows(
            rows in proptest::collection::vec(proptest::collection::vec(cell(), 13), 0..6)
        ) {
            let mut text = HEADER.to_string();
            for r in rows {
                text.push_str(&r.join(","));
                text.push('\n');
            }
            if let Ok(f) = super::parse(text.as_bytes()) {
                prop_assert!(check_against_stored(&f.portfolio, &f.source, &[], &[]).is_ok());
            }
        }
    }
}
