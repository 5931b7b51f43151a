//! The account-facts file, and the one way a fact is written as text.
//!
//! A facts file is separate from the aging export (which never touches facts): a long-format
//! CSV with one fact per row, so a collections team can send just the facts it knows, for
//! any number of customers, from a spreadsheet or a case system:
//!
//! ```text
//! customer_id,fact,value,invoice_number
//! C-1001,validation_notice.sent_on,2026-01-05,
//! C-1001,validation_notice.channel,letter,
//! C-1001,inconvenient_times,12:00-13:00; 21:00-08:00,
//! C-1001,invoice_acknowledged_on,2024-02-01,INV-7
//! C-1002,customer_offer.amount,GBP 120.00,
//! C-1002,customer_offer.received_on,2026-01-10,
//! C-1002,limits.max_discount_bps,15%,
//! ```
//!
//! Columns: `customer_id`, `fact`, `value` (required) and `invoice_number` (only for
//! `invoice_acknowledged_on`, which needs it). Unknown columns are refused. Each fact's name
//! is its path in [`AccountFacts`]'s JSON (see [`FACTS`]); its value is written as
//! [`FactKind`] says: dates `YYYY-MM-DD`, booleans `true`/`false` (`yes`/`no`), channels
//! (`email`, `phone`, `sms`, `letter`), local windows `HH:MM-HH:MM` separated by `;`, e-mail
//! addresses separated by `;`, money as `GBP 120.00`, whole days, basis points (`1500`) or
//! a percentage (`15%`, `12.5%`). An **empty value clears** the fact (a boolean becomes
//! false; clearing a required part of a group — the notice's date, the offer's amount —
//! clears the whole group).
//!
//! A file **merges** into each customer's stored facts: facts it does not name are kept.
//! One customer may name a fact (and an invoice) once per file. Parsing ([`parse`]) checks
//! every row's form; [`FactsFile::apply`] merges one customer's rows into their stored facts
//! and checks the result ([`AccountFacts::check`]), naming the line of the row at fault; the
//! store does that for every customer before it writes anything, in one transaction.
//!
//! The same text form is what [`rows`] writes (`argent facts show`) and what the account
//! page's form posts ([`from_form`]), so a fact is parsed in one place.

use std::collections::{BTreeMap, HashMap};

use chrono::{NaiveDate, NaiveTime};
use serde_json::{Map, Value};

use crate::bounds::{self, MAX_DATE, MIN_DATE};
use crate::customer::Channel;
use crate::facts::AccountFacts;
use crate::import::{ImportError, MAX_FIELD_BYTES, MAX_FILE_BYTES, MAX_ID_CHARS};
use crate::money::{Currency, Money};

/// How a fact's value is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FactKind {
    /// `true`/`false` (also `yes`/`no`, `1`/`0`); empty is false.
    Bool,
    /// `YYYY-MM-DD`.
    Date,
    /// Free text (at most [`crate::facts::MAX_FACT_TEXT`] characters).
    Text,
    /// `email`, `phone`, `sms` or `letter`.
    Channel,
    /// `HH:MM-HH:MM` windows of the customer's local day, separated by `;`.
    Windows,
    /// E-mail addresses separated by `;`.
    Emails,
    /// `GBP 120.00`: sets `amount_minor` and `currency` beside it.
    Money,
    /// A whole number of days (or of instalments).
    Count,
    /// Basis points (`1500`) or a percentage (`15%`, `12.5%`).
    Bps,
}

impl FactKind {
    /// How a value of this kind is written, for messages and the form.
    pub fn syntax(self) -> &'static str {
        match self {
            FactKind::Bool => "true or false",
            FactKind::Date => "a date YYYY-MM-DD",
            FactKind::Text => "text",
            FactKind::Channel => "email, phone, sms or letter",
            FactKind::Windows => "HH:MM-HH:MM windows separated by ;",
            FactKind::Emails => "e-mail addresses separated by ;",
            FactKind::Money => "a currency and an amount, e.g. GBP 120.00",
            FactKind::Count => "a whole number",
            FactKind::Bps => "basis points (1500) or a percentage (15%)",
        }
    }
}

/// One fact as the file, the form and `argent facts show` name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FactSpec {
    /// The path of the fact in [`AccountFacts`]'s JSON, `.` between levels.
    pub name: &'static str,
    pub kind: FactKind,
    /// A required part of an optional group: clearing it clears the group.
    pub required_part: bool,
    /// Needs an invoice number (a map keyed by invoice).
    pub per_invoice: bool,
    /// What the account page calls it.
    pub label: &'static str,
}

const fn fact(name: &'static str, kind: FactKind, label: &'static str) -> FactSpec {
    FactSpec {
        name,
        kind,
        required_part: false,
        per_invoice: false,
        label,
    }
}

const fn part(name: &'static str, kind: FactKind, label: &'static str) -> FactSpec {
    FactSpec {
        required_part: true,
        ..fact(name, kind, label)
    }
}

/// Every fact that can be imported and edited. A new field of [`AccountFacts`] needs a line
/// here (a test fails until it has one) and, for the account page, one in
/// [`crate::facts::AccountFacts::describe`].
pub const FACTS: &[FactSpec] = &[
    fact(
        "cease_contact_pending",
        FactKind::Bool,
        "Asked us to stop contacting them (not yet confirmed)",
    ),
    fact(
        "attorney_suspected",
        FactKind::Bool,
        "Mentioned a lawyer (representation not confirmed)",
    ),
    fact(
        "attorney_name",
        FactKind::Text,
        "Attorney's name and contact",
    ),
    fact(
        "dispute_pending",
        FactKind::Bool,
        "Disputed the debt (not yet opened or cleared)",
    ),
    fact(
        "bankruptcy_reported",
        FactKind::Bool,
        "Reported bankruptcy or insolvency (not yet confirmed)",
    ),
    fact(
        "deceased_reported",
        FactKind::Bool,
        "Reported deceased (not yet confirmed)",
    ),
    fact(
        "third_party_writer",
        FactKind::Bool,
        "Last message came from a third party",
    ),
    part(
        "validation_notice.sent_on",
        FactKind::Date,
        "Validation notice sent on",
    ),
    part(
        "validation_notice.channel",
        FactKind::Channel,
        "Validation notice sent by",
    ),
    fact(
        "region",
        FactKind::Text,
        "Region for the limitation period (state, nation)",
    ),
    fact(
        "acknowledged_on",
        FactKind::Date,
        "Last written acknowledgement of the debt",
    ),
    FactSpec {
        per_invoice: true,
        ..fact(
            "invoice_acknowledged_on",
            FactKind::Date,
            "Last written acknowledgement of invoice",
        )
    },
    fact(
        "litigation_authorised",
        FactKind::Bool,
        "The creditor has authorised legal proceedings",
    ),
    fact(
        "inconvenient_times",
        FactKind::Windows,
        "Inconvenient times (customer's local time)",
    ),
    fact(
        "no_workplace_contact",
        FactKind::Bool,
        "No contact at the workplace",
    ),
    fact(
        "workplace_addresses",
        FactKind::Emails,
        "Workplace e-mail addresses",
    ),
    fact("preferred_channel", FactKind::Channel, "Preferred channel"),
    fact(
        "contact_paused_until",
        FactKind::Date,
        "Away until (out-of-office reply): no contact before",
    ),
    fact(
        "undeliverable_emails",
        FactKind::Emails,
        "Undeliverable e-mail addresses (bounced)",
    ),
    part(
        "customer_offer.amount",
        FactKind::Money,
        "Customer's own offer: amount",
    ),
    fact(
        "customer_offer.every_days",
        FactKind::Count,
        "Customer's own offer: every (days)",
    ),
    fact(
        "customer_offer.income_expenditure",
        FactKind::Bool,
        "Customer's own offer: backed by an income and expenditure statement",
    ),
    part(
        "customer_offer.received_on",
        FactKind::Date,
        "Customer's own offer: received on",
    ),
    fact(
        "limits.max_discount_bps",
        FactKind::Bps,
        "Account limit: largest discount",
    ),
    fact(
        "limits.max_installments",
        FactKind::Count,
        "Account limit: most instalments",
    ),
    fact(
        "limits.min_down_payment_bps",
        FactKind::Bps,
        "Account limit: smallest down payment",
    ),
    fact(
        "limits.max_plan_days",
        FactKind::Count,
        "Account limit: longest plan (days)",
    ),
    fact("limits.note", FactKind::Text, "Account limits: why"),
];

/// The fact called `name`, if there is one.
pub fn spec(name: &str) -> Option<&'static FactSpec> {
    FACTS.iter().find(|s| s.name == name)
}

/// Columns a facts file must have.
pub const REQUIRED_COLUMNS: &[&str] = &["customer_id", "fact", "value"];
/// Columns a facts file may have.
pub const OPTIONAL_COLUMNS: &[&str] = &["invoice_number"];

/// One row: set (or clear) one fact of one customer.
#[derive(Clone, Debug, PartialEq)]
pub struct FactRow {
    /// 1-based line in the file (0: not from a file).
    pub line: u64,
    pub spec: &'static FactSpec,
    pub invoice: Option<String>,
    /// The value as JSON, `None` to clear.
    value: Option<Value>,
}

/// The rows of one customer, in file order.
#[derive(Clone, Debug, PartialEq)]
pub struct CustomerRows {
    pub customer_id: String,
    /// The line of the customer's first row.
    pub line: u64,
    pub rows: Vec<FactRow>,
}

/// A parsed facts file: every row's form checked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FactsFile {
    /// Customers in the order they first appear.
    pub customers: Vec<CustomerRows>,
    /// 1-based column of each column the file has.
    columns: HashMap<&'static str, usize>,
}

impl FactsFile {
    /// An error at `line`, column `col`.
    pub fn error(&self, line: u64, col: &'static str, message: impl Into<String>) -> ImportError {
        ImportError {
            line,
            column: Some((self.columns.get(col).copied().unwrap_or(0), col.to_string())),
            message: message.into(),
        }
    }

    /// How many rows the file has.
    pub fn row_count(&self) -> usize {
        self.customers.iter().map(|c| c.rows.len()).sum()
    }

    /// `customer`'s stored facts with its rows merged in, checked; an error names the line
    /// of the row at fault.
    pub fn apply(
        &self,
        customer: &CustomerRows,
        current: &AccountFacts,
    ) -> Result<AccountFacts, ImportError> {
        merge(current, &customer.rows).map_err(|(line, message)| {
            let line = if line == 0 { customer.line } else { line };
            self.error(line, "value", message)
        })
    }
}

/// The JSON path of a row's fact.
fn path(row: &FactRow) -> Vec<String> {
    let mut p: Vec<String> = row.spec.name.split('.').map(str::to_string).collect();
    if let Some(n) = &row.invoice {
        p.push(n.clone());
    }
    p
}

/// Merges rows into facts; an error is `(line, message)`.
fn merge(current: &AccountFacts, rows: &[FactRow]) -> Result<AccountFacts, (u64, String)> {
    let mut doc = match serde_json::to_value(current) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    // The line of the first row that touched each top-level key.
    let mut touched: BTreeMap<String, u64> = BTreeMap::new();
    for row in rows {
        let p = path(row);
        let Some((top, rest)) = p.split_first() else {
            continue;
        };
        touched.entry(top.clone()).or_insert(row.line);
        match &row.value {
            None if row.spec.required_part => {
                doc.insert(top.clone(), Value::Null);
            }
            None => {
                let cleared = match row.spec.kind {
                    FactKind::Bool => Value::Bool(false),
                    FactKind::Windows | FactKind::Emails => Value::Array(Vec::new()),
                    _ => Value::Null,
                };
                match rest.split_last() {
                    None => {
                        doc.insert(top.clone(), cleared);
                    }
                    Some((last, middle)) => {
                        // Inside a group (or a map): an unset part is absent, so its
                        // default applies.
                        if let Some(Value::Object(group)) = doc.get_mut(top)
                            && let Some(obj) = descend(group, middle)
                        {
                            if cleared.is_null() {
                                obj.remove(last);
                            } else {
                                obj.insert(last.clone(), cleared);
                            }
                        }
                    }
                }
            }
            Some(v) => set(&mut doc, &p, v.clone(), row.spec.kind),
        }
    }
    // Each group on its own, so a problem names the row that touched it.
    for (key, line) in &touched {
        let mut one = Map::new();
        one.insert(key.clone(), doc.get(key).cloned().unwrap_or(Value::Null));
        if let Err(e) = serde_json::from_value::<AccountFacts>(Value::Object(one)) {
            return Err((*line, group_problem(key, &e.to_string())));
        }
    }
    let facts: AccountFacts = serde_json::from_value(Value::Object(doc))
        .map_err(|e| (rows.first().map_or(0, |r| r.line), e.to_string()))?;
    if let Err(problems) = facts.check() {
        let first = problems.first().cloned().unwrap_or_default();
        let key = first
            .trim_start_matches('/')
            .split(['/', ':'])
            .next()
            .unwrap_or("");
        let line = touched.get(key).copied().unwrap_or(0);
        return Err((line, problems.join("; ")));
    }
    Ok(facts)
}

/// A missing part of a group, in the file's words.
fn group_problem(key: &str, serde: &str) -> String {
    match serde
        .split("missing field `")
        .nth(1)
        .and_then(|r| r.split('`').next())
    {
        Some(field) => {
            let needed = FACTS
                .iter()
                .filter(|s| s.required_part && s.name.starts_with(&format!("{key}.")))
                .map(|s| s.name)
                .find(|n| n.ends_with(field) || (field == "amount_minor" && n.ends_with("amount")))
                .map_or_else(|| format!("{key}.{field}"), str::to_string);
            format!("{key} also needs {needed} (not stored and not in this file)")
        }
        None => format!("{key}: {serde}"),
    }
}

/// The object at `path` below `obj`, if every step is an object.
fn descend<'m>(
    obj: &'m mut Map<String, Value>,
    path: &[String],
) -> Option<&'m mut Map<String, Value>> {
    let mut cur = obj;
    for k in path {
        cur = cur.get_mut(k)?.as_object_mut()?;
    }
    Some(cur)
}

/// Sets `value` at `path`, making objects on the way (a `null` group becomes `{}`). Money
/// sets `amount_minor` and `currency` beside the fact's name.
fn set(doc: &mut Map<String, Value>, path: &[String], value: Value, kind: FactKind) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = doc;
    for k in parents {
        let slot = cur.entry(k.clone()).or_insert(Value::Null);
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        let Value::Object(next) = slot else {
            return;
        };
        cur = next;
    }
    match (kind, value) {
        (FactKind::Money, Value::Object(parts)) => {
            for (k, v) in parts {
                cur.insert(k, v);
            }
        }
        (_, v) => {
            cur.insert(last.clone(), v);
        }
    }
}

/// Reads one value of `spec`'s kind; `Ok(None)` clears. The error says what is wrong.
pub fn parse_value(spec: &FactSpec, raw: &str) -> Result<Option<Value>, String> {
    let v = raw.trim();
    if v.is_empty() || (v.eq_ignore_ascii_case("none") && spec.kind != FactKind::Text) {
        return Ok(None);
    }
    let out = match spec.kind {
        FactKind::Bool => match v.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Value::Bool(true),
            "false" | "no" | "0" => Value::Bool(false),
            _ => return Err(format!("'{}' is not true or false", shown(v))),
        },
        FactKind::Date => Value::String(date(v)?.to_string()),
        FactKind::Text => Value::String(v.to_string()),
        FactKind::Channel => {
            let c: Channel = v.to_ascii_lowercase().parse()?;
            Value::String(c.as_str().to_string())
        }
        FactKind::Windows => {
            let mut out = Vec::new();
            for w in v.split(';').map(str::trim).filter(|w| !w.is_empty()) {
                let (from, to) = w
                    .split_once('-')
                    .ok_or_else(|| format!("'{}' is not a window HH:MM-HH:MM", shown(w)))?;
                let (from, to) = match (time(from), time(to)) {
                    (Ok(a), Ok(b)) => (a, b),
                    _ => return Err(format!("'{}' is not a window HH:MM-HH:MM", shown(w))),
                };
                out.push(serde_json::json!({
                    "from": from.format("%H:%M:%S").to_string(),
                    "to": to.format("%H:%M:%S").to_string(),
                }));
            }
            Value::Array(out)
        }
        FactKind::Emails => Value::Array(
            v.split(';')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(|a| Value::String(a.to_string()))
                .collect(),
        ),
        FactKind::Money => {
            let (code, amount) = v.split_once(char::is_whitespace).ok_or_else(|| {
                format!(
                    "'{}' is not a currency and an amount, e.g. GBP 120.00",
                    shown(v)
                )
            })?;
            let currency: Currency = code
                .trim()
                .to_ascii_uppercase()
                .parse()
                .map_err(|e| format!("{e}"))?;
            let m = Money::parse(amount.trim(), currency).map_err(|e| e.to_string())?;
            bounds::check_amount("amount", m).map_err(|e| e.to_string())?;
            if m.minor <= 0 {
                return Err(format!("{m} is not more than zero"));
            }
            serde_json::json!({"amount_minor": m.minor, "currency": currency.as_str()})
        }
        FactKind::Count => {
            let n: u32 = v
                .parse()
                .map_err(|_| format!("'{}' is not a whole number", shown(v)))?;
            Value::from(n)
        }
        FactKind::Bps => Value::from(bps(v)?),
    };
    Ok(Some(out))
}

fn date(v: &str) -> Result<NaiveDate, String> {
    let d = NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map_err(|_| format!("'{}' is not a date (expected YYYY-MM-DD)", shown(v)))?;
    bounds::check_date("date", d).map_err(|_| {
        format!("{d} is outside the dates argent accepts ({MIN_DATE} to {MAX_DATE})")
    })?;
    Ok(d)
}

fn time(v: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(v.trim(), "%H:%M")
        .map_err(|_| format!("'{}' is not a time HH:MM", shown(v.trim())))
}

/// `1500` → 1500; `15%` → 1500; `12.5%` → 1250 (at most two decimals).
fn bps(v: &str) -> Result<u32, String> {
    let bad = || {
        format!(
            "'{}' is not basis points (1500) or a percentage (15%)",
            shown(v)
        )
    };
    match v.strip_suffix('%') {
        None => v.parse().map_err(|_| bad()),
        Some(p) => {
            let p = p.trim();
            let (whole, frac) = p.split_once('.').unwrap_or((p, ""));
            if whole.is_empty()
                || frac.len() > 2
                || !(whole
                    .bytes()
                    .chain(frac.bytes())
                    .all(|b| b.is_ascii_digit()))
            {
                return Err(bad());
            }
            let whole: u32 = whole.parse().map_err(|_| bad())?;
            let frac: u32 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
            whole
                .checked_mul(100)
                .and_then(|w| w.checked_add(frac))
                .ok_or_else(bad)
        }
    }
}

/// Shows at most 40 characters of `s`, for messages that echo what a file holds.
fn shown(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn csv_error(e: &csv::Error) -> ImportError {
    ImportError {
        line: e.position().map_or(0, |p| p.line()),
        column: None,
        message: match e.kind() {
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => format!("expected {expected_len} fields like the header, found {len}"),
            csv::ErrorKind::Utf8 { err, .. } => {
                format!("field {} is not valid UTF-8", err.field() + 1)
            }
            _ => e.to_string(),
        },
    }
}

/// Parses a facts file. Returns the first problem, at its line and column. Never panics,
/// whatever the bytes.
pub fn parse(data: &[u8]) -> Result<FactsFile, ImportError> {
    let at = |line: u64, column: Option<(usize, String)>, message: String| ImportError {
        line,
        column,
        message,
    };
    if data.len() > MAX_FILE_BYTES {
        return Err(at(
            0,
            None,
            format!(
                "the file is {} bytes; argent imports at most {} MiB per file",
                data.len(),
                MAX_FILE_BYTES / (1024 * 1024)
            ),
        ));
    }
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(data);
    let headers = reader.headers().map_err(|e| csv_error(&e))?.clone();
    let mut index: HashMap<&'static str, usize> = HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        let h = h.trim();
        let column = Some((i + 1, shown(h)));
        match REQUIRED_COLUMNS
            .iter()
            .chain(OPTIONAL_COLUMNS)
            .find(|c| **c == h)
        {
            Some(c) if index.contains_key(c) => {
                return Err(at(1, column, "column appears twice".into()));
            }
            Some(c) => {
                index.insert(c, i);
            }
            None => {
                return Err(at(
                    1,
                    column,
                    "unknown column (expected: customer_id, fact, value, invoice_number)".into(),
                ));
            }
        }
    }
    if let Some(missing) = REQUIRED_COLUMNS.iter().find(|c| !index.contains_key(*c)) {
        return Err(at(
            1,
            None,
            format!("required column '{missing}' is missing"),
        ));
    }
    let mut file = FactsFile {
        customers: Vec::new(),
        columns: index.iter().map(|(c, i)| (*c, i + 1)).collect(),
    };
    let mut by_customer: HashMap<String, usize> = HashMap::new();
    // (customer, fact, invoice) -> line
    let mut seen: HashMap<(String, &'static str, Option<String>), u64> = HashMap::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_error(&e)),
        }
        let line = record.position().map_or(0, |p| p.line());
        let err = |col: &'static str, message: String| file.error(line, col, message);
        for (i, field) in record.iter().enumerate() {
            if field.len() > MAX_FIELD_BYTES {
                let name = headers.get(i).map(|h| shown(h.trim())).unwrap_or_default();
                return Err(at(
                    line,
                    Some((i + 1, name)),
                    format!(
                        "is {} bytes long; a field may have at most {MAX_FIELD_BYTES}",
                        field.len()
                    ),
                ));
            }
        }
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let get = |col: &'static str| {
            index
                .get(col)
                .and_then(|&i| record.get(i))
                .unwrap_or("")
                .trim()
        };
        let customer_id = get("customer_id");
        if customer_id.is_empty() {
            return Err(err("customer_id", "is empty".into()));
        }
        if customer_id.chars().count() > MAX_ID_CHARS {
            return Err(err(
                "customer_id",
                format!("is longer than {MAX_ID_CHARS} characters"),
            ));
        }
        let name = get("fact");
        let Some(spec) = spec(name) else {
            return Err(err(
                "fact",
                format!(
                    "'{}' is not a fact (expected one of: {})",
                    shown(name),
                    FACTS.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        let invoice = Some(get("invoice_number"))
            .filter(|n| !n.is_empty())
            .map(str::to_string);
        match (&invoice, spec.per_invoice) {
            (None, true) => {
                return Err(err(
                    "invoice_number",
                    format!("{} needs an invoice number", spec.name),
                ));
            }
            (Some(_), false) => {
                return Err(err(
                    "invoice_number",
                    format!(
                        "{} is about the whole account; leave the invoice number empty",
                        spec.name
                    ),
                ));
            }
            (Some(n), true) if n.chars().count() > MAX_ID_CHARS => {
                return Err(err(
                    "invoice_number",
                    format!("is longer than {MAX_ID_CHARS} characters"),
                ));
            }
            _ => {}
        }
        let value = parse_value(spec, get("value")).map_err(|m| err("value", m))?;
        let key = (customer_id.to_string(), spec.name, invoice.clone());
        if let Some(first) = seen.get(&key) {
            return Err(err(
                "fact",
                format!(
                    "customer {customer_id}'s {} is already set on line {first}",
                    spec.name
                ),
            ));
        }
        seen.insert(key, line);
        let row = FactRow {
            line,
            spec,
            invoice,
            value,
        };
        match by_customer.get(customer_id) {
            Some(&i) => file.customers[i].rows.push(row),
            None => {
                by_customer.insert(customer_id.to_string(), file.customers.len());
                file.customers.push(CustomerRows {
                    customer_id: customer_id.to_string(),
                    line,
                    rows: vec![row],
                });
            }
        }
    }
    Ok(file)
}

// ---------------------------------------------------------------------------------------
// Facts as text

/// The value at `path` in `doc`.
fn at_path<'v>(doc: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(doc, |v, k| v.get(k))
}

/// `spec`'s value in `doc` (the facts' JSON) as the file writes it; `None` when it is not
/// set (false, empty, absent). Not for per-invoice facts (see [`rows`]).
fn text_of(doc: &Value, spec: &FactSpec) -> Option<String> {
    if spec.kind == FactKind::Money {
        let (group, _) = spec.name.rsplit_once('.')?;
        let g = at_path(doc, group)?;
        let currency: Currency = g.get("currency")?.as_str()?.parse().ok()?;
        let minor = g.get("amount_minor")?.as_i64()?;
        return Some(Money::new(minor, currency).to_string());
    }
    let v = at_path(doc, spec.name)?;
    match (spec.kind, v) {
        (_, Value::Null) => None,
        (FactKind::Bool, Value::Bool(b)) => b.then(|| "true".to_string()),
        (FactKind::Windows, Value::Array(ws)) => {
            let parts: Vec<String> = ws
                .iter()
                .map(|w| {
                    let t = |k: &str| {
                        w.get(k)
                            .and_then(Value::as_str)
                            .map(|s| s.get(..5).unwrap_or(s).to_string())
                            .unwrap_or_default()
                    };
                    format!("{}-{}", t("from"), t("to"))
                })
                .collect();
            (!parts.is_empty()).then(|| parts.join("; "))
        }
        (FactKind::Emails, Value::Array(xs)) => {
            let parts: Vec<&str> = xs.iter().filter_map(Value::as_str).collect();
            (!parts.is_empty()).then(|| parts.join("; "))
        }
        (_, Value::String(s)) => Some(s.clone()),
        (_, Value::Number(n)) => Some(n.to_string()),
        (_, other) => Some(other.to_string()),
    }
}

/// One fact as text: `(fact, invoice number, value)`.
pub type TextRow = (&'static str, Option<String>, String);

/// Every fact that is set, as `(fact, invoice number, value)` in [`FACTS`] order: what a
/// facts file for this customer would hold (`argent facts show`), and what the account
/// page's form starts from.
pub fn rows(facts: &AccountFacts) -> Vec<TextRow> {
    let doc = serde_json::to_value(facts).unwrap_or(Value::Null);
    let mut out = Vec::new();
    for spec in FACTS {
        if spec.per_invoice {
            if let Some(Value::Object(m)) = at_path(&doc, spec.name) {
                for (n, d) in m {
                    if let Some(d) = d.as_str() {
                        out.push((spec.name, Some(n.clone()), d.to_string()));
                    }
                }
            }
        } else if let Some(v) = text_of(&doc, spec) {
            out.push((spec.name, None, v));
        }
    }
    out
}

/// `spec`'s value as text, empty when not set (for the form).
pub fn value_text(facts: &AccountFacts, spec: &FactSpec) -> String {
    let doc = serde_json::to_value(facts).unwrap_or(Value::Null);
    text_of(&doc, spec).unwrap_or_default()
}

/// `customer_id`'s facts as a facts file (CSV, header first).
pub fn to_csv(customer_id: &str, facts: &AccountFacts) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut write = |r: [&str; 4]| w.write_record(r).is_ok();
    let mut ok = write(["customer_id", "fact", "value", "invoice_number"]);
    for (f, n, v) in rows(facts) {
        ok &= write([customer_id, f, &v, n.as_deref().unwrap_or("")]);
    }
    let bytes = if ok {
        w.into_inner().unwrap_or_default()
    } else {
        Vec::new()
    };
    String::from_utf8(bytes).unwrap_or_default()
}

/// The prefix of a form field for one invoice's acknowledgement: `invoice_acknowledged_on/INV-7`.
pub const INVOICE_FIELD_SEP: char = '/';

/// The facts a form posts: every fact of [`FACTS`] by name (a missing field is empty, so an
/// unticked box is false), and per-invoice facts as `NAME/INVOICE` (only the invoices
/// posted change). Merged into `current` and checked; an error names the field.
pub fn from_form(
    current: &AccountFacts,
    form: &[(String, String)],
) -> Result<AccountFacts, String> {
    let mut rows = Vec::new();
    for spec in FACTS.iter().filter(|s| !s.per_invoice) {
        let raw = form
            .iter()
            .find(|(k, _)| k == spec.name)
            .map_or("", |(_, v)| v.as_str());
        let value = parse_value(spec, raw).map_err(|m| format!("{}: {m}", spec.label))?;
        rows.push(FactRow {
            line: 0,
            spec,
            invoice: None,
            value,
        });
    }
    for (k, raw) in form {
        let Some((name, invoice)) = k.split_once(INVOICE_FIELD_SEP) else {
            continue;
        };
        let Some(spec) = spec(name).filter(|s| s.per_invoice) else {
            continue;
        };
        let invoice = invoice.trim();
        if invoice.is_empty() || invoice.chars().count() > MAX_ID_CHARS {
            return Err(format!(
                "{}: '{}' is not an invoice number",
                spec.label,
                shown(invoice)
            ));
        }
        let value = parse_value(spec, raw).map_err(|m| format!("{} {invoice}: {m}", spec.label))?;
        rows.push(FactRow {
            line: 0,
            spec,
            invoice: Some(invoice.to_string()),
            value,
        });
    }
    merge(current, &rows).map_err(|(_, m)| m)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: &str = include_str!("../fixtures/facts.csv");

    fn full() -> AccountFacts {
        serde_json::from_value(serde_json::json!({
            "cease_contact_pending": true,
            "attorney_suspected": true,
            "attorney_name": "J. Law, 1 Court St",
            "dispute_pending": true,
            "bankruptcy_reported": true,
            "deceased_reported": true,
            "third_party_writer": true,
            "validation_notice": {"sent_on": "2026-01-05", "channel": "letter"},
            "region": "NY",
            "acknowledged_on": "2024-02-01",
            "invoice_acknowledged_on": {"INV-1": "2023-05-01", "INV-2": "2023-06-01"},
            "litigation_authorised": true,
            "inconvenient_times": [{"from": "12:00:00", "to": "13:00:00"}, {"from": "21:00:00", "to": "08:00:00"}],
            "no_workplace_contact": true,
            "workplace_addresses": ["me@work.example"],
            "preferred_channel": "letter",
            "contact_paused_until": "2026-02-01",
            "undeliverable_emails": ["old@home.example"],
            "customer_offer": {"amount_minor": 12000, "currency": "GBP", "every_days": 14, "income_expenditure": true, "received_on": "2026-01-10"},
            "limits": {"max_discount_bps": 1250, "max_installments": 6, "min_down_payment_bps": 500, "max_plan_days": 180, "note": "agreed"}
        }))
        .unwrap()
    }

    #[test]
    fn every_field_of_account_facts_has_a_fact() {
        // A new field of AccountFacts must be importable and editable: add it to FACTS.
        let doc = serde_json::to_value(full()).unwrap();
        let all = serde_json::to_value(AccountFacts::default()).unwrap();
        for key in all.as_object().unwrap().keys() {
            assert!(
                FACTS
                    .iter()
                    .any(|s| s.name == key || s.name.starts_with(&format!("{key}."))),
                "AccountFacts::{key} has no entry in facts_import::FACTS"
            );
        }
        // And `full()` sets every field (so the round trip below covers them all).
        for (k, v) in doc.as_object().unwrap() {
            assert_ne!(Some(v), all.get(k), "full() leaves {k} at its default");
        }
    }

    #[test]
    fn every_fact_round_trips_through_a_file() {
        let facts = full();
        let csv = to_csv("C-1", &facts);
        let file = parse(csv.as_bytes()).unwrap();
        assert_eq!(file.customers.len(), 1);
        let back = file
            .apply(&file.customers[0], &AccountFacts::default())
            .unwrap();
        assert_eq!(back, facts, "{csv}");
    }

    #[test]
    fn the_sample_file_parses_and_applies() {
        let file = parse(SAMPLE.as_bytes()).unwrap();
        assert!(file.row_count() >= 10);
        for c in &file.customers {
            file.apply(c, &AccountFacts::default()).unwrap();
        }
    }

    #[test]
    fn a_file_merges_into_the_stored_facts_and_empty_clears() {
        let stored = full();
        let csv = "customer_id,fact,value,invoice_number\n\
                   C,region,,\n\
                   C,cease_contact_pending,false,\n\
                   C,invoice_acknowledged_on,,INV-1\n\
                   C,limits.max_discount_bps,15%,\n\
                   C,validation_notice.channel,EMAIL,\n";
        let file = parse(csv.as_bytes()).unwrap();
        let after = file.apply(&file.customers[0], &stored).unwrap();
        assert_eq!(after.region, None);
        assert!(!after.cease_contact_pending);
        assert!(after.attorney_suspected, "untouched facts are kept");
        assert_eq!(after.invoice_acknowledged_on.len(), 1);
        assert_eq!(after.limits.as_ref().unwrap().max_discount_bps, Some(1500));
        assert_eq!(after.limits.as_ref().unwrap().max_installments, Some(6));
        let notice = after.validation_notice.unwrap();
        assert_eq!(
            (notice.sent_on.to_string(), notice.channel),
            ("2026-01-05".into(), Channel::Email)
        );
        // Clearing a required part clears the group.
        let file = parse(b"customer_id,fact,value\nC,customer_offer.amount,\n").unwrap();
        assert_eq!(
            file.apply(&file.customers[0], &stored)
                .unwrap()
                .customer_offer,
            None
        );
    }

    #[test]
    fn errors_name_the_line_and_column() {
        let cases: &[(&str, &str)] = &[
            (
                "customer_id,fact,value,colour\n",
                "line 1, column 4 (colour): unknown column",
            ),
            ("customer_id,fact\n", "required column 'value'"),
            (
                "customer_id,fact,value\nC,cease_contact_pendin,true\n",
                "line 2, column 2 (fact): 'cease_contact_pendin' is not a fact",
            ),
            (
                "customer_id,fact,value\nC,cease_contact_pending,maybe\n",
                "line 2, column 3 (value): 'maybe' is not true or false",
            ),
            (
                "customer_id,fact,value\nC,acknowledged_on,2026-13-01\n",
                "line 2, column 3 (value): '2026-13-01' is not a date",
            ),
            (
                "customer_id,fact,value\nC,acknowledged_on,1900-01-01\n",
                "outside the dates",
            ),
            (
                "customer_id,fact,value\nC,inconvenient_times,12-13\n",
                "line 2, column 3 (value): '12-13' is not a window",
            ),
            (
                "customer_id,fact,value\nC,preferred_channel,pigeon\n",
                "'pigeon' is not a channel",
            ),
            (
                "customer_id,fact,value\nC,customer_offer.amount,120\n",
                "is not a currency and an amount",
            ),
            (
                "customer_id,fact,value\nC,customer_offer.amount,GBP 1.234\n",
                "line 2, column 3 (value)",
            ),
            (
                "customer_id,fact,value\nC,limits.max_discount_bps,12.345%\n",
                "is not basis points",
            ),
            (
                "customer_id,fact,value\nC,invoice_acknowledged_on,2024-01-01\n",
                "needs an invoice number",
            ),
            (
                "customer_id,fact,value,invoice_number\nC,region,NY,INV-1\n",
                "leave the invoice number empty",
            ),
            (
                "customer_id,fact,value\nC,region,NY\nC,region,CA\n",
                "line 3, column 2 (fact): customer C's region is already set on line 2",
            ),
            (
                "customer_id,fact,value\n,region,NY\n",
                "line 2, column 1 (customer_id): is empty",
            ),
            (
                "customer_id,fact,value\nC,region\n",
                "line 2: expected 3 fields",
            ),
        ];
        for (csv, want) in cases {
            let e = parse(csv.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(want), "{csv:?}: {e}");
        }
    }

    #[test]
    fn problems_found_when_merging_name_the_row() {
        let csv = "customer_id,fact,value\nC,region,NY\nC,validation_notice.channel,letter\n";
        let file = parse(csv.as_bytes()).unwrap();
        let e = file
            .apply(&file.customers[0], &AccountFacts::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "line 3, column 3 (value): validation_notice also needs validation_notice.sent_on"
            ),
            "{e}"
        );
        let csv = "customer_id,fact,value\nC,region,NY\nC,limits.max_discount_bps,20000\n";
        let file = parse(csv.as_bytes()).unwrap();
        let e = file
            .apply(&file.customers[0], &AccountFacts::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("line 3, column 3 (value): /limits/max_discount_bps"),
            "{e}"
        );
        let csv = "customer_id,fact,value\nC,workplace_addresses,nobody\n";
        let file = parse(csv.as_bytes()).unwrap();
        let e = file
            .apply(&file.customers[0], &AccountFacts::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("line 2, column 3 (value): /workplace_addresses/0"),
            "{e}"
        );
    }

    #[test]
    fn the_form_posts_every_fact_and_a_missing_box_is_false() {
        let current = full();
        let mut form: Vec<(String, String)> = FACTS
            .iter()
            .filter(|s| !s.per_invoice)
            .map(|s| (s.name.to_string(), value_text(&current, s)))
            .collect();
        assert_eq!(
            from_form(&current, &form).unwrap(),
            current,
            "an unchanged form changes nothing"
        );
        form.retain(|(k, _)| k != "dispute_pending");
        form.push(("invoice_acknowledged_on/INV-3".into(), "2025-01-01".into()));
        form.push(("invoice_acknowledged_on/INV-1".into(), String::new()));
        let after = from_form(&current, &form).unwrap();
        assert!(!after.dispute_pending);
        assert_eq!(
            after.invoice_acknowledged_on.keys().collect::<Vec<_>>(),
            ["INV-2", "INV-3"]
        );
        form.push(("region".into(), "x".repeat(300)));
        form.retain(|(k, v)| k != "region" || v.len() == 300);
        let e = from_form(&current, &form).unwrap_err();
        assert!(e.contains("/region: longer than"), "{e}");
    }

    proptest! {
        #[test]
        fn the_parser_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&data);
        }

        #[test]
        fn well_formed_rows_with_any_values_never_panic(
            rows in proptest::collection::vec((0usize..FACTS.len(), "[ -~]{0,24}", proptest::option::of("[A-Z0-9-]{1,8}")), 0..12)
        ) {
            let mut csv = String::from("customer_id,fact,value,invoice_number\n");
            for (i, v, n) in &rows {
                let v = v.replace('"', "");
                csv.push_str(&format!("C,{},\"{v}\",{}\n", FACTS[*i].name, n.clone().unwrap_or_default()));
            }
            if let Ok(file) = parse(csv.as_bytes()) {
                for c in &file.customers {
                    let _ = file.apply(c, &AccountFacts::default());
                }
            }
        }
    }
}
