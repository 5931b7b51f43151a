//! The AR aging export format: one CSV row per invoice, customer columns repeated.
//!
//! Parsing is pure (bytes in, a [`Portfolio`] or the first error out); the store writes a
//! parsed portfolio in one transaction, so a bad file changes nothing.

use std::collections::HashMap;
use std::fmt;

use chrono::NaiveDate;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::customer::{Channel, Contact, Customer, CustomerFlags, Jurisdiction, Tier};
use crate::invoice::{Invoice, Payment};
use crate::money::{Currency, Money};

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

/// Where a file is wrong: the 1-based line, the 1-based column and its name, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportError {
    pub line: u64,
    pub column: Option<(usize, String)>,
    pub message: String,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some((n, name)) => write!(
                f,
                "line {}, column {} ({}): {}",
                self.line, n, name, self.message
            ),
            None => write!(f, "line {}: {}", self.line, self.message),
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
    line: u64,
}

impl Row<'_> {
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
        NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map_err(|_| self.err(col, format!("'{v}' is not a date (expected YYYY-MM-DD)")))
    }

    fn money(&self, col: &'static str, currency: Currency) -> Result<Money, ImportError> {
        let v = self.required(col)?;
        Money::parse(v, currency).map_err(|e| self.err(col, e.to_string()))
    }
}

/// Parses an aging export. Returns the first problem found, with its position.
pub fn parse_aging_csv(data: &[u8]) -> Result<Portfolio, ImportError> {
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(data);
    let headers = reader.headers().map_err(|e| csv_error(&e))?.clone();
    let mut index: HashMap<&'static str, usize> = HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        let h = h.trim();
        let known = REQUIRED_COLUMNS
            .iter()
            .chain(OPTIONAL_COLUMNS)
            .find(|c| **c == h);
        let column = Some((i + 1, h.to_string()));
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
            line,
        };
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
    Ok(portfolio)
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
    })
}

/// Writes a portfolio in the export format (every column of [`ALL_COLUMNS`]).
/// Each invoice carries at most one payment: the sum of its payments, dated by the last.
pub fn to_csv(p: &Portfolio) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let customers: HashMap<&str, &Customer> =
        p.customers.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut paid: HashMap<&str, (i64, NaiveDate)> = HashMap::new();
    for pay in &p.payments {
        let e = paid
            .entry(pay.invoice_number.as_str())
            .or_insert((0, pay.received_on));
        e.0 += pay.amount.minor;
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
    w.into_inner().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let again = parse_aging_csv(&to_csv(&p)).unwrap();
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
        let err = first_error(
            "C1,Acme,standard,b2b,UTC,a@b.co,INV-2,2026-01-01,2026-01-31,XYZ,1,,\n",
        );
        assert!(err.starts_with("line 3, column 10 (currency): "), "{err}");
    }

    #[test]
    fn oversized_fields_name_line_and_column() {
        let long_name = "N".repeat(201);
        let long_id = "I".repeat(65);
        let long_email = format!("{}@b.co", "a".repeat(1100));
        for (bad, want) in [
            (
                format!("C2,{long_name},standard,b2b,UTC,a@b.co,INV-2,2026-01-01,2026-01-31,USD,1,,\n"),
                "line 3, column 2 (customer_name): ",
            ),
            (
                format!("C1,Acme,standard,b2b,UTC,a@b.co,{long_id},2026-01-01,2026-01-31,USD,1,,\n"),
                "line 3, column 7 (invoice_number): ",
            ),
            (
                format!("C2,Beta,standard,b2b,UTC,{long_email},INV-2,2026-01-01,2026-01-31,USD,1,,\n"),
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
}
