//! The eval-set format: one TOML file per case under `evals/<set>/`, loaded and validated
//! into [`EvalCase`]. Every error names the file, the key and the problem.
//!
//! The format is documented for authors in `evals/README.md`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use argent_core::{
    CaseKind, Channel, Contact, Currency, Customer, CustomerFlags, Invoice, Jurisdiction, Money,
    Payment, RiskSegment, Tier, ToolName,
};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::outcome::CallStatus;

/// One problem with one key of a case file. `key` is a dotted path such as
/// `expect.args[1].pointer`; empty for the document as a whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyProblem {
    pub key: String,
    pub problem: String,
}

impl fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.problem)
        } else {
            write!(f, "{}: {}", self.key, self.problem)
        }
    }
}

/// Why a case file or an eval set could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("{}: cannot read: {source}", file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {}", file.display(), join_problems(problems))]
    Invalid {
        file: PathBuf,
        problems: Vec<KeyProblem>,
    },
    #[error("{}", join_errors(.0))]
    Many(Vec<CaseError>),
}

fn join_problems(problems: &[KeyProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn join_errors(errors: &[CaseError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl CaseError {
    fn invalid(file: &Path, key: impl Into<String>, problem: impl Into<String>) -> CaseError {
        CaseError::Invalid {
            file: file.to_path_buf(),
            problems: vec![KeyProblem {
                key: key.into(),
                problem: problem.into(),
            }],
        }
    }

    /// Every (file, key, problem) in this error, flattened.
    pub fn problems(&self) -> Vec<(PathBuf, KeyProblem)> {
        match self {
            CaseError::Io { file, source } => vec![(
                file.clone(),
                KeyProblem {
                    key: String::new(),
                    problem: format!("cannot read: {source}"),
                },
            )],
            CaseError::Invalid { file, problems } => {
                problems.iter().map(|p| (file.clone(), p.clone())).collect()
            }
            CaseError::Many(errors) => errors.iter().flat_map(CaseError::problems).collect(),
        }
    }
}

// ---- The validated case ------------------------------------------------------------------

/// One inbound message, fed to the agent as a trigger, in file order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundMessage {
    pub from: String,
    pub subject: String,
    pub body: String,
}

/// Which of a tool's calls an expectation must hold for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Applies {
    /// Every call (or email) in scope must satisfy it; vacuous when there is none.
    #[default]
    All,
    /// At least one call (or email) in scope must satisfy it.
    Any,
}

/// A bound of a `min`/`max` argument constraint: a calendar date or an exact decimal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    Date(NaiveDate),
    /// Exact decimal scaled by 10^6 (no floats).
    Micros(i128),
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bound::Date(d) => write!(f, "{d}"),
            Bound::Micros(m) => f.write_str(&format_micros(*m)),
        }
    }
}

/// What an argument constraint checks at its pointer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArgCheck {
    /// Equal as JSON; decimal strings and numbers compare by value ("450" = "450.00"),
    /// other strings compare case-insensitively after trimming.
    Equals(Value),
    /// Equal (as for `equals`) to one of these.
    OneOf(Vec<Value>),
    /// Within inclusive bounds: dates compare as dates, numbers/decimal strings by value,
    /// arrays by their length.
    Range {
        min: Option<Bound>,
        max: Option<Bound>,
    },
    /// A `YYYY-MM-DD` value at most `days` days away from `date`.
    DateWithinDays { date: NaiveDate, days: u32 },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArgConstraint {
    pub tool: ToolName,
    /// JSON pointer into the call's arguments, e.g. `/installments/0/amount`.
    pub pointer: String,
    pub check: ArgCheck,
    /// Calls of `tool` with these statuses are in scope (default: executed, queued).
    pub statuses: Vec<CallStatus>,
    pub applies: Applies,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusExpectation {
    pub tool: ToolName,
    /// `tool` was called, and every call of it that was not `invalid` ended in one of these.
    pub one_of: Vec<CallStatus>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailExpectation {
    /// Case-insensitive substrings every in-scope email's subject+body must contain.
    pub must_contain: Vec<String>,
    /// Regexes every in-scope email's subject+body must match.
    pub must_match: Vec<String>,
    /// Regexes no in-scope email's subject+body may match.
    pub must_not_match: Vec<String>,
    /// Every in-scope email must go to this address (case-insensitive).
    pub to: Option<String>,
    /// At least one email must be in scope.
    pub required: bool,
    /// Emails with these statuses are in scope (default: executed, queued).
    pub statuses: Vec<CallStatus>,
    /// `all` (default): each in-scope email must satisfy must_contain/must_match;
    /// `any`: at least one must. `must_not_match` and `to` always apply to all.
    pub applies: Applies,
}

/// The expected promise in the end state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromiseExpectation {
    /// At least one promise was logged.
    Any,
    /// No promise was logged.
    None,
    /// At least one logged promise matches every given field.
    Match {
        amount_minor: Option<i64>,
        currency: Option<String>,
        date: Option<NaiveDate>,
        within_days: u32,
        earliest: Option<NaiveDate>,
        latest: Option<NaiveDate>,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndExpectation {
    pub promise_logged: Option<PromiseExpectation>,
    /// Each of these case kinds must be among the opened cases.
    pub case_opened: Vec<CaseKind>,
    /// No case at all was opened.
    pub no_case_opened: bool,
    /// Nothing left or waits to leave: no email executed or queued, outbox empty.
    pub no_email_sent: bool,
    /// No executed send_email and an empty outbox (a queued or refused draft is fine).
    pub contact_stopped: bool,
    /// Whether the account must (true) or must not (false) end escalated.
    pub escalated: Option<bool>,
    /// At most this many plans executed without approval.
    pub max_plans_executed: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Expectations {
    pub must_call: Vec<ToolName>,
    pub must_not_call: Vec<ToolName>,
    pub must_not_execute: Vec<ToolName>,
    pub args: Vec<ArgConstraint>,
    pub statuses: Vec<StatusExpectation>,
    pub email: Option<EmailExpectation>,
    pub end: EndExpectation,
}

/// One validated eval case.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalCase {
    pub id: String,
    pub title: String,
    pub tags: Vec<String>,
    /// The file it was loaded from.
    pub file: PathBuf,
    pub customer: Customer,
    /// Forces the risk segment instead of deriving it from the ledger.
    pub segment: Option<RiskSegment>,
    /// Whether the initial communication (US: with the validation notice) was already sent.
    pub initial_communication_sent: bool,
    pub invoices: Vec<Invoice>,
    pub payments: Vec<Payment>,
    /// The instant the run happens at.
    pub now: DateTime<Utc>,
    pub messages: Vec<InboundMessage>,
    /// Recorded model exchanges for replay, resolved against the case file's directory.
    pub cassette: Option<PathBuf>,
    pub expect: Expectations,
}

impl EvalCase {
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// Whether the case is selected by `filter`: comma-separated terms, any of which may
    /// match; `tag:NAME` matches a tag exactly, any other term is a substring of the id.
    pub fn matches(&self, filter: &str) -> bool {
        let terms: Vec<&str> = filter
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        terms.is_empty()
            || terms.iter().any(|t| match t.strip_prefix("tag:") {
                Some(tag) => self.has_tag(tag),
                None => self.id.contains(t),
            })
    }

    /// Reads and validates one case file.
    pub fn load(path: &Path) -> Result<EvalCase, CaseError> {
        let text = std::fs::read_to_string(path).map_err(|source| CaseError::Io {
            file: path.to_path_buf(),
            source,
        })?;
        EvalCase::from_toml_str(&text, path)
    }

    /// Parses and validates a case; `file` names the source in errors and anchors a
    /// relative `cassette` path.
    pub fn from_toml_str(text: &str, file: &Path) -> Result<EvalCase, CaseError> {
        let de = toml::Deserializer::parse(text).map_err(|e| {
            CaseError::invalid(file, span_key(text, e.span()), e.message().to_string())
        })?;
        let raw: RawCase = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let root = path == "." || path.is_empty();
            // serde names a missing field only in the message; make it the key.
            let missing = inner
                .message()
                .strip_prefix("missing field `")
                .and_then(|r| r.split_once('`'))
                .map(|(f, _)| f.to_string());
            let key = match (missing, root) {
                (Some(f), true) => f,
                (Some(f), false) => format!("{path}.{f}"),
                (None, true) => span_key(text, inner.span()),
                (None, false) => path,
            };
            CaseError::invalid(file, key, inner.message().to_string())
        })?;
        let mut v = Validator {
            problems: Vec::new(),
        };
        let case = v.case(raw, file);
        match case {
            Some(c) if v.problems.is_empty() => Ok(c),
            _ => Err(CaseError::Invalid {
                file: file.to_path_buf(),
                problems: v.problems,
            }),
        }
    }
}

fn span_key(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(s) => {
            let before = &text[..s.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("(line {line}, column {col})")
        }
        None => String::new(),
    }
}

/// A named set of cases: every `*.toml` directly under one directory.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalSet {
    /// The directory's name, e.g. `core`.
    pub name: String,
    pub dir: PathBuf,
    /// Sorted by file name.
    pub cases: Vec<EvalCase>,
}

impl EvalSet {
    /// Loads every `*.toml` directly under `dir`. Reports every invalid file (not only the
    /// first) and duplicate case ids naming both files.
    pub fn load(dir: &Path) -> Result<EvalSet, CaseError> {
        let entries = std::fs::read_dir(dir).map_err(|source| CaseError::Io {
            file: dir.to_path_buf(),
            source,
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        let mut errors = Vec::new();
        let mut cases: Vec<EvalCase> = Vec::new();
        let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
        for file in files {
            match EvalCase::load(&file) {
                Ok(c) => {
                    if let Some(other) = seen.get(&c.id) {
                        errors.push(CaseError::invalid(
                            &file,
                            "id",
                            format!("case id '{}' is also used by {}", c.id, other.display()),
                        ));
                    } else {
                        seen.insert(c.id.clone(), file.clone());
                        cases.push(c);
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(if errors.len() == 1 {
                errors.remove(0)
            } else {
                CaseError::Many(errors)
            });
        }
        if cases.is_empty() {
            return Err(CaseError::invalid(
                dir,
                "",
                "no case files (*.toml) in this directory",
            ));
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        Ok(EvalSet {
            name,
            dir: dir.to_path_buf(),
            cases,
        })
    }

    /// Where the set named by a CLI argument lives: an existing directory as given, else
    /// `<evals_root>/<arg>` (so `argent eval run core` finds `evals/core`).
    pub fn resolve(arg: &str, evals_root: &Path) -> PathBuf {
        let p = PathBuf::from(arg);
        if p.is_dir() { p } else { evals_root.join(arg) }
    }

    /// Every distinct tag, sorted.
    pub fn tags(&self) -> Vec<String> {
        let mut tags: Vec<String> = self.cases.iter().flat_map(|c| c.tags.clone()).collect();
        tags.sort();
        tags.dedup();
        tags
    }
}

// ---- Raw file shapes -----------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    id: String,
    title: String,
    #[serde(default)]
    tags: Vec<String>,
    now: String,
    #[serde(default)]
    cassette: Option<String>,
    customer: RawCustomer,
    invoices: Vec<RawInvoice>,
    #[serde(default)]
    payments: Vec<RawPayment>,
    messages: Vec<InboundMessage>,
    #[serde(default)]
    expect: Option<RawExpect>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCustomer {
    id: String,
    name: String,
    tier: String,
    jurisdiction: String,
    time_zone: String,
    email: String,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    opted_out: Vec<Channel>,
    #[serde(default)]
    segment: Option<RiskSegment>,
    #[serde(default)]
    initial_communication_sent: Option<bool>,
    /// Account facts (`argent_core::AccountFacts`), as a table.
    #[serde(default)]
    facts: argent_core::AccountFacts,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInvoice {
    number: String,
    issue_date: String,
    due_date: String,
    currency: String,
    amount: String,
    #[serde(default)]
    disputed: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPayment {
    #[serde(default)]
    id: Option<String>,
    invoice: String,
    amount: String,
    received_on: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    #[serde(default)]
    must_call: Vec<ToolName>,
    #[serde(default)]
    must_not_call: Vec<ToolName>,
    #[serde(default)]
    must_not_execute: Vec<ToolName>,
    #[serde(default)]
    args: Vec<RawArg>,
    #[serde(default)]
    statuses: Vec<StatusExpectation>,
    #[serde(default)]
    email: Option<RawEmail>,
    #[serde(default)]
    end: Option<RawEnd>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArg {
    tool: ToolName,
    pointer: String,
    #[serde(default)]
    equals: Option<Value>,
    #[serde(default)]
    one_of: Option<Vec<Value>>,
    #[serde(default)]
    min: Option<Value>,
    #[serde(default)]
    max: Option<Value>,
    #[serde(default)]
    date_within_days: Option<RawDateWithin>,
    #[serde(default)]
    statuses: Option<Vec<CallStatus>>,
    #[serde(default)]
    applies: Applies,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDateWithin {
    date: String,
    days: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    #[serde(default)]
    must_contain: Vec<String>,
    #[serde(default)]
    must_match: Vec<String>,
    #[serde(default)]
    must_not_match: Vec<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    statuses: Option<Vec<CallStatus>>,
    #[serde(default)]
    applies: Applies,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnd {
    #[serde(default)]
    promise_logged: Option<RawPromise>,
    #[serde(default)]
    case_opened: Vec<CaseKind>,
    #[serde(default)]
    no_case_opened: bool,
    #[serde(default)]
    no_email_sent: bool,
    #[serde(default)]
    contact_stopped: bool,
    #[serde(default)]
    escalated: Option<bool>,
    #[serde(default)]
    max_plans_executed: Option<u32>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawPromise {
    Flag(bool),
    Spec(RawPromiseSpec),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPromiseSpec {
    #[serde(default)]
    amount: Option<String>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    date: Option<String>,
    #[serde(default)]
    within_days: u32,
    #[serde(default)]
    earliest: Option<String>,
    #[serde(default)]
    latest: Option<String>,
}

// ---- Validation ----------------------------------------------------------------------------

const DEFAULT_SCOPE: [CallStatus; 2] = [CallStatus::Executed, CallStatus::Queued];

struct Validator {
    problems: Vec<KeyProblem>,
}

impl Validator {
    fn problem(&mut self, key: impl Into<String>, problem: impl Into<String>) {
        self.problems.push(KeyProblem {
            key: key.into(),
            problem: problem.into(),
        });
    }

    fn non_empty(&mut self, key: &str, value: &str) {
        if value.trim().is_empty() {
            self.problem(key, "must not be empty");
        }
    }

    fn date(&mut self, key: &str, s: &str) -> Option<NaiveDate> {
        match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(e) => {
                self.problem(
                    key,
                    format!("'{s}' is not a date (expected YYYY-MM-DD): {e}"),
                );
                None
            }
        }
    }

    fn currency(&mut self, key: &str, s: &str) -> Option<Currency> {
        match s.parse::<Currency>() {
            Ok(c) => Some(c),
            Err(e) => {
                self.problem(key, e.to_string());
                None
            }
        }
    }

    fn money(&mut self, key: &str, amount: &str, currency: Currency) -> Option<Money> {
        match Money::parse(amount, currency) {
            Ok(m) => Some(m),
            Err(e) => {
                self.problem(key, e.to_string());
                None
            }
        }
    }

    fn regex(&mut self, key: &str, pattern: &str) {
        if let Err(e) = regex::Regex::new(pattern) {
            self.problem(key, format!("not a valid regex: {e}"));
        }
    }

    fn case(&mut self, raw: RawCase, file: &Path) -> Option<EvalCase> {
        let id_ok = !raw.id.is_empty()
            && raw
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !id_ok {
            self.problem(
                "id",
                format!(
                    "'{}' is not a case id (use letters, digits, '-', '_', '.')",
                    raw.id
                ),
            );
        }
        self.non_empty("title", &raw.title);
        for (i, t) in raw.tags.iter().enumerate() {
            if t.trim().is_empty() || t.contains(char::is_whitespace) {
                self.problem(
                    format!("tags[{i}]"),
                    format!("'{t}' is not a tag (non-empty, no spaces)"),
                );
            }
        }
        let now = match DateTime::parse_from_rfc3339(&raw.now) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(e) => {
                self.problem(
                    "now",
                    format!(
                        "'{}' is not an RFC 3339 instant (e.g. 2026-03-10T15:00:00Z): {e}",
                        raw.now
                    ),
                );
                None
            }
        };
        let cassette = raw.cassette.as_ref().map(|c| {
            if c.trim().is_empty() {
                self.problem("cassette", "must not be empty");
            }
            let p = PathBuf::from(c);
            if p.is_absolute() {
                p
            } else {
                file.parent().unwrap_or(Path::new(".")).join(p)
            }
        });

        let customer = self.customer(&raw.customer);
        let cust_id = raw.customer.id.clone();

        if raw.invoices.is_empty() {
            self.problem("invoices", "a case needs at least one invoice");
        }
        let mut invoices = Vec::new();
        for (i, inv) in raw.invoices.iter().enumerate() {
            let k = |f: &str| format!("invoices[{i}].{f}");
            self.non_empty(&k("number"), &inv.number);
            if invoices.iter().any(|x: &Invoice| x.number == inv.number) {
                self.problem(
                    k("number"),
                    format!("invoice number '{}' appears twice", inv.number),
                );
            }
            let issue = self.date(&k("issue_date"), &inv.issue_date);
            let due = self.date(&k("due_date"), &inv.due_date);
            if let (Some(a), Some(b)) = (issue, due)
                && b < a
            {
                self.problem(k("due_date"), "is before issue_date");
            }
            let cur = self.currency(&k("currency"), &inv.currency);
            let amount = cur.and_then(|c| self.money(&k("amount"), &inv.amount, c));
            if let Some(m) = amount
                && !m.is_positive()
            {
                self.problem(k("amount"), "must be positive");
            }
            if let (Some(issue_date), Some(due_date), Some(amount)) = (issue, due, amount) {
                invoices.push(Invoice {
                    number: inv.number.clone(),
                    customer_id: cust_id.clone(),
                    issue_date,
                    due_date,
                    amount,
                    disputed: inv.disputed,
                });
            }
        }
        let mut payments = Vec::new();
        for (i, p) in raw.payments.iter().enumerate() {
            let k = |f: &str| format!("payments[{i}].{f}");
            let Some(inv) = raw.invoices.iter().find(|x| x.number == p.invoice) else {
                self.problem(
                    k("invoice"),
                    format!("'{}' is not an invoice of this case", p.invoice),
                );
                continue;
            };
            let cur = inv.currency.parse::<Currency>().ok();
            let amount = cur.and_then(|c| self.money(&k("amount"), &p.amount, c));
            if let Some(m) = amount
                && !m.is_positive()
            {
                self.problem(k("amount"), "must be positive");
            }
            let received = self.date(&k("received_on"), &p.received_on);
            if let (Some(amount), Some(received_on)) = (amount, received) {
                payments.push(Payment {
                    id: p
                        .id
                        .clone()
                        .unwrap_or_else(|| format!("{}-P{}", p.invoice, i + 1)),
                    customer_id: cust_id.clone(),
                    invoice_number: p.invoice.clone(),
                    amount,
                    received_on,
                });
            }
        }

        if raw.messages.is_empty() {
            self.problem("messages", "a case needs at least one inbound message");
        }
        for (i, m) in raw.messages.iter().enumerate() {
            self.non_empty(&format!("messages[{i}].from"), &m.from);
            self.non_empty(&format!("messages[{i}].body"), &m.body);
        }

        let default_currency = invoices.first().map(|i| i.amount.currency);
        let expect = self.expect(raw.expect.unwrap_or_default(), default_currency);

        Some(EvalCase {
            id: raw.id,
            title: raw.title,
            tags: raw.tags,
            file: file.to_path_buf(),
            customer: customer?,
            segment: raw.customer.segment,
            initial_communication_sent: raw.customer.initial_communication_sent.unwrap_or(true),
            invoices,
            payments,
            now: now?,
            messages: raw.messages,
            cassette,
            expect,
        })
    }

    fn customer(&mut self, c: &RawCustomer) -> Option<Customer> {
        self.non_empty("customer.id", &c.id);
        self.non_empty("customer.name", &c.name);
        let tier = c
            .tier
            .parse::<Tier>()
            .map_err(|e| self.problem("customer.tier", e))
            .ok();
        let jurisdiction = c
            .jurisdiction
            .parse::<Jurisdiction>()
            .map_err(|e| self.problem("customer.jurisdiction", e))
            .ok();
        let time_zone = c
            .time_zone
            .parse::<Tz>()
            .map_err(|e| {
                self.problem(
                    "customer.time_zone",
                    format!("'{}' is not an IANA time zone: {e}", c.time_zone),
                )
            })
            .ok();
        if !looks_like_email(&c.email) {
            self.problem(
                "customer.email",
                format!("'{}' is not an email address", c.email),
            );
        }
        let flags = CustomerFlags::parse_list(&c.flags.join(";"))
            .map_err(|e| self.problem("customer.flags", e))
            .ok();
        if let Err(problems) = c.facts.check() {
            for p in problems {
                self.problem("customer.facts", p);
            }
        }
        Some(Customer {
            id: c.id.clone(),
            name: c.name.clone(),
            tier: tier?,
            jurisdiction: jurisdiction?,
            time_zone: time_zone?,
            contacts: vec![Contact {
                name: c.name.clone(),
                email: Some(c.email.clone()),
                phone: c.phone.clone(),
                opted_out: c.opted_out.clone(),
            }],
            flags: flags?,
            facts: c.facts.clone(),
        })
    }

    fn expect(&mut self, raw: RawExpect, default_currency: Option<Currency>) -> Expectations {
        for t in &raw.must_call {
            if raw.must_not_call.contains(t) {
                self.problem(
                    "expect.must_not_call",
                    format!("'{t}' is also in must_call"),
                );
            }
        }
        let mut args = Vec::new();
        for (i, a) in raw.args.into_iter().enumerate() {
            let key = format!("expect.args[{i}]");
            if let Some(c) = self.arg(&key, a) {
                args.push(c);
            }
        }
        for (i, s) in raw.statuses.iter().enumerate() {
            if s.one_of.is_empty() {
                self.problem(
                    format!("expect.statuses[{i}].one_of"),
                    "must list at least one status",
                );
            }
        }
        let email = raw.email.map(|e| {
            for (i, p) in e.must_match.iter().enumerate() {
                self.regex(&format!("expect.email.must_match[{i}]"), p);
            }
            for (i, p) in e.must_not_match.iter().enumerate() {
                self.regex(&format!("expect.email.must_not_match[{i}]"), p);
            }
            for (i, s) in e.must_contain.iter().enumerate() {
                self.non_empty(&format!("expect.email.must_contain[{i}]"), s);
            }
            if let Some(to) = &e.to
                && !looks_like_email(to)
            {
                self.problem("expect.email.to", format!("'{to}' is not an email address"));
            }
            let statuses = e.statuses.unwrap_or_else(|| DEFAULT_SCOPE.to_vec());
            if statuses.is_empty() {
                self.problem("expect.email.statuses", "must list at least one status");
            }
            EmailExpectation {
                must_contain: e.must_contain,
                must_match: e.must_match,
                must_not_match: e.must_not_match,
                to: e.to,
                required: e.required,
                statuses,
                applies: e.applies,
            }
        });
        let end = match raw.end {
            None => EndExpectation::default(),
            Some(e) => {
                let promise_logged = e
                    .promise_logged
                    .and_then(|p| self.promise(p, default_currency));
                if e.no_case_opened && !e.case_opened.is_empty() {
                    self.problem(
                        "expect.end.no_case_opened",
                        "contradicts expect.end.case_opened",
                    );
                }
                EndExpectation {
                    promise_logged,
                    case_opened: e.case_opened,
                    no_case_opened: e.no_case_opened,
                    no_email_sent: e.no_email_sent,
                    contact_stopped: e.contact_stopped,
                    escalated: e.escalated,
                    max_plans_executed: e.max_plans_executed,
                }
            }
        };
        for (i, s) in raw.statuses.iter().enumerate() {
            if raw.must_not_call.contains(&s.tool) {
                self.problem(
                    format!("expect.statuses[{i}].tool"),
                    format!("'{}' is also in must_not_call", s.tool),
                );
            }
            if raw.must_not_execute.contains(&s.tool) && s.one_of == [CallStatus::Executed] {
                self.problem(
                    format!("expect.statuses[{i}].one_of"),
                    format!("'{}' must execute but is in must_not_execute", s.tool),
                );
            }
        }
        for (i, a) in args.iter().enumerate() {
            if a.applies == Applies::Any && raw.must_not_call.contains(&a.tool) {
                self.problem(
                    format!("expect.args[{i}].applies"),
                    format!(
                        "'any' needs a call of '{}', which is in must_not_call",
                        a.tool
                    ),
                );
            }
        }
        if email.as_ref().is_some_and(|e| e.required) && end.no_email_sent {
            self.problem(
                "expect.email.required",
                "contradicts expect.end.no_email_sent",
            );
        }
        Expectations {
            must_call: raw.must_call,
            must_not_call: raw.must_not_call,
            must_not_execute: raw.must_not_execute,
            args,
            statuses: raw.statuses,
            email,
            end,
        }
    }

    fn arg(&mut self, key: &str, a: RawArg) -> Option<ArgConstraint> {
        if !(a.pointer.is_empty() || a.pointer.starts_with('/')) {
            self.problem(
                format!("{key}.pointer"),
                format!(
                    "'{}' is not a JSON pointer (expected '' or '/a/0/b')",
                    a.pointer
                ),
            );
        }
        let given = [
            a.equals.is_some(),
            a.one_of.is_some(),
            a.min.is_some() || a.max.is_some(),
            a.date_within_days.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if given != 1 {
            self.problem(
                key,
                "give exactly one check: equals, one_of, min and/or max, or date_within_days",
            );
            return None;
        }
        for (name, v) in [("equals", &a.equals), ("min", &a.min), ("max", &a.max)] {
            if let Some(v) = v
                && is_toml_datetime(v)
            {
                self.problem(
                    format!("{key}.{name}"),
                    "write dates as quoted strings (\"2026-03-20\")",
                );
                return None;
            }
        }
        let check = if let Some(v) = a.equals {
            ArgCheck::Equals(v)
        } else if let Some(vs) = a.one_of {
            if vs.is_empty() {
                self.problem(format!("{key}.one_of"), "must list at least one value");
            }
            if vs.iter().any(is_toml_datetime) {
                self.problem(
                    format!("{key}.one_of"),
                    "write dates as quoted strings (\"2026-03-20\")",
                );
            }
            ArgCheck::OneOf(vs)
        } else if let Some(d) = a.date_within_days {
            let date = self.date(&format!("{key}.date_within_days.date"), &d.date)?;
            ArgCheck::DateWithinDays { date, days: d.days }
        } else {
            let min = a
                .min
                .as_ref()
                .and_then(|v| self.bound(&format!("{key}.min"), v));
            let max = a
                .max
                .as_ref()
                .and_then(|v| self.bound(&format!("{key}.max"), v));
            if let (Some(lo), Some(hi)) = (min, max) {
                match (lo, hi) {
                    (Bound::Date(x), Bound::Date(y)) if x > y => {
                        self.problem(format!("{key}.min"), "is after max")
                    }
                    (Bound::Micros(x), Bound::Micros(y)) if x > y => {
                        self.problem(format!("{key}.min"), "is greater than max")
                    }
                    (Bound::Date(_), Bound::Micros(_)) | (Bound::Micros(_), Bound::Date(_)) => self
                        .problem(
                            format!("{key}.min"),
                            "min and max must both be dates or both be numbers",
                        ),
                    _ => {}
                }
            }
            ArgCheck::Range { min, max }
        };
        let statuses = a.statuses.unwrap_or_else(|| DEFAULT_SCOPE.to_vec());
        if statuses.is_empty() {
            self.problem(format!("{key}.statuses"), "must list at least one status");
        }
        Some(ArgConstraint {
            tool: a.tool,
            pointer: a.pointer,
            check,
            statuses,
            applies: a.applies,
        })
    }

    fn bound(&mut self, key: &str, v: &Value) -> Option<Bound> {
        match v {
            Value::String(s) if NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() => {
                NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .ok()
                    .map(Bound::Date)
            }
            Value::String(s) => match parse_micros(s) {
                Some(m) => Some(Bound::Micros(m)),
                None => {
                    self.problem(
                        key,
                        format!("'{s}' is neither a date (YYYY-MM-DD) nor a decimal number"),
                    );
                    None
                }
            },
            Value::Number(n) if n.is_i64() || n.is_u64() => {
                parse_micros(&n.to_string()).map(Bound::Micros)
            }
            _ => {
                self.problem(
                    key,
                    "must be an integer, a decimal string (\"12.50\") or a date string",
                );
                None
            }
        }
    }

    fn promise(
        &mut self,
        p: RawPromise,
        default_currency: Option<Currency>,
    ) -> Option<PromiseExpectation> {
        let key = "expect.end.promise_logged";
        match p {
            RawPromise::Flag(true) => Some(PromiseExpectation::Any),
            RawPromise::Flag(false) => Some(PromiseExpectation::None),
            RawPromise::Spec(s) => {
                let currency = match &s.currency {
                    Some(c) => self.currency(&format!("{key}.currency"), c),
                    None => default_currency,
                };
                let amount_minor = match (&s.amount, currency) {
                    (Some(a), Some(c)) => {
                        self.money(&format!("{key}.amount"), a, c).map(|m| m.minor)
                    }
                    (Some(_), None) => {
                        self.problem(
                            format!("{key}.currency"),
                            "needed to read the amount (no invoice currency to default to)",
                        );
                        None
                    }
                    (None, _) => None,
                };
                let date = s
                    .date
                    .as_ref()
                    .and_then(|d| self.date(&format!("{key}.date"), d));
                let earliest = s
                    .earliest
                    .as_ref()
                    .and_then(|d| self.date(&format!("{key}.earliest"), d));
                let latest = s
                    .latest
                    .as_ref()
                    .and_then(|d| self.date(&format!("{key}.latest"), d));
                if let (Some(a), Some(b)) = (earliest, latest)
                    && a > b
                {
                    self.problem(format!("{key}.earliest"), "is after latest");
                }
                if s.within_days > 0 && date.is_none() {
                    self.problem(format!("{key}.within_days"), "needs a date");
                }
                Some(PromiseExpectation::Match {
                    amount_minor,
                    currency: s
                        .currency
                        .clone()
                        .or_else(|| s.amount.as_ref().and(currency.map(|c| c.to_string()))),
                    date,
                    within_days: s.within_days,
                    earliest,
                    latest,
                })
            }
        }
    }
}

fn is_toml_datetime(v: &Value) -> bool {
    matches!(v, Value::Object(m) if m.keys().any(|k| k.starts_with("$__toml")))
}

fn looks_like_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// Parses a decimal such as `-12.5` or `450.00` into millionths, exactly. At most six
/// decimals; no exponent, no separators.
pub fn parse_micros(s: &str) -> Option<i128> {
    let s = s.trim();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty()
        || whole.len() > 24
        || frac.len() > 6
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || (digits.contains('.') && frac.is_empty())
    {
        return None;
    }
    let w: i128 = whole.parse().ok()?;
    let f: i128 = if frac.is_empty() {
        0
    } else {
        frac.parse::<i128>().ok()? * 10_i128.pow(6 - frac.len() as u32)
    };
    let v = w.checked_mul(1_000_000)?.checked_add(f)?;
    Some(if neg { -v } else { v })
}

/// Formats millionths back into a short decimal string (`450`, `12.5`).
pub fn format_micros(m: i128) -> String {
    let sign = if m < 0 { "-" } else { "" };
    let a = m.unsigned_abs();
    let whole = a / 1_000_000;
    let frac = a % 1_000_000;
    if frac == 0 {
        format!("{sign}{whole}")
    } else {
        let f = format!("{frac:06}");
        format!("{sign}{whole}.{}", f.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_round_trip() {
        assert_eq!(parse_micros("450"), Some(450_000_000));
        assert_eq!(parse_micros("450.00"), Some(450_000_000));
        assert_eq!(parse_micros("-0.5"), Some(-500_000));
        assert_eq!(parse_micros("1."), None);
        assert_eq!(parse_micros("1e5"), None);
        assert_eq!(format_micros(12_500_000), "12.5");
        assert_eq!(format_micros(-3_000_000), "-3");
    }

    #[test]
    fn filter_terms() {
        let text = r#"
id = "x-1"
title = "t"
tags = ["injection", "b2b"]
now = "2026-03-10T15:00:00Z"
[customer]
id = "C1"
name = "N"
tier = "standard"
jurisdiction = "b2b"
time_zone = "Europe/London"
email = "a@b.co"
[[invoices]]
number = "I1"
issue_date = "2026-01-01"
due_date = "2026-02-01"
currency = "GBP"
amount = "10.00"
[[messages]]
from = "a@b.co"
subject = "s"
body = "b"
"#;
        let c = EvalCase::from_toml_str(text, Path::new("x.toml")).unwrap();
        assert!(c.matches("tag:injection"));
        assert!(c.matches("nope, x-"));
        assert!(!c.matches("tag:us-consumer"));
        assert!(c.matches(""));
        assert!(c.initial_communication_sent);
    }
}
