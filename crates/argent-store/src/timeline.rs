//! The customer's timeline: everything that happened to one account, newest first, each
//! entry linked to the audit events that record it.
//!
//! **Shape.** A timeline is built from *sources*. Each source is one reader: it reads its
//! rows for one customer and turns each into [`TimelineEntry`]s with a pure function
//! (`*_entries` below, unit-tested without a database). An entry says when (`at`, UTC),
//! what (`kind`, a stable dotted name), where it comes from (`source` table and row id),
//! a one-line title, the actor when known, a JSON detail, and the audit references it
//! answers for ([`AuditRef`]: a tool call, approval, signal, case, outbox email, logged
//! call, promise or run). [`merge`] (pure) then:
//!
//! 1. links every audit event of the customer to each entry whose references it carries
//!    (`payload.call_id`, `approval_id`, `signal_id`, `case_id`, `outbox_id`, `log_id`,
//!    `promise_id`; and the event's run for events of a run that name no call), so every
//!    entry lists the `seq`s of its events;
//! 2. turns each audit event that no entry claimed into an entry of its own (kind
//!    `audit.<event kind>`; `facts.*` and `case.*` events are read as entries by
//!    [`audit_entries`] first) — so a new kind of event (a procedure step, a task) is on
//!    the timeline the day it is audited, before anyone writes a reader for it;
//! 3. orders newest first: by `at` descending, then by the entry's key (source, id, kind)
//!    descending, a total order, so a page boundary never drops or repeats an entry;
//! 4. cuts one page after the cursor. A cursor is the last entry's `at` (microseconds)
//!    and key, hex-encoded: opaque, URL-safe, and an entry that arrives later never shifts
//!    a page already read (it sorts before the cursor).
//!
//! Adding a source (tasks, procedure steps) is one more reader: a query and a pure
//! function producing entries with their references; [`Store::timeline`] calls it beside
//! the others. Calendar dates (invoice issue and due dates, payments, promised dates) are
//! placed at the start of that day in the customer's time zone (never the server's).
//!
//! Reads only: nothing here writes, and no migration was needed (every source is read
//! through an index on its customer column).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::Row;

use argent_core::{Case, Customer, Invoice, Payment, PromiseStatus, PromiseToPay};

use crate::{AuditEvent, AuditFilter, Result, SignalRecord, Store, StoreError, dispatch};

/// Most entries one timeline page holds.
pub const MAX_PAGE: usize = 500;

/// What an entry answers for in the audit trail.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "ref", content = "id", rename_all = "snake_case")]
pub enum AuditRef {
    /// Events naming this tool call (`payload.call_id`).
    Call(String),
    /// Events naming this approval item (`payload.approval_id`).
    Approval(String),
    /// Events naming this signal (`payload.signal_id`).
    Signal(String),
    /// Events naming this case (`payload.case_id`).
    Case(String),
    /// Events naming this outbox email (`payload.outbox_id`).
    Outbox(String),
    /// Events naming this logged call (`payload.log_id`).
    CallLog(String),
    /// Events naming this promise (`payload.promise_id`).
    Promise(String),
    /// Events naming this received message (`payload.inbound_id`).
    Inbound(String),
    /// Events of this run that name no tool call (run started/finished, model calls).
    Run(String),
}

/// A reference and which event kinds under it belong to the entry (empty: all).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditLink {
    #[serde(flatten)]
    pub r: AuditRef,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
}

impl AuditLink {
    pub fn all(r: AuditRef) -> AuditLink {
        AuditLink {
            r,
            kinds: Vec::new(),
        }
    }

    pub fn of(r: AuditRef, kinds: &[&str]) -> AuditLink {
        AuditLink {
            r,
            kinds: kinds.iter().map(|k| k.to_string()).collect(),
        }
    }
}

/// One thing that happened to the account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    /// `at` in the customer's time zone, RFC 3339 with its offset (set by [`merge`]).
    #[serde(default)]
    pub at_local: String,
    /// Stable dotted name: `invoice.issued`, `email.sent`, `approval.decided`, …
    pub kind: String,
    /// The table (or `audit_events`) the entry comes from.
    pub source: String,
    /// The row's id in that table.
    pub source_id: String,
    pub title: String,
    /// Who acted, when known (a user, `agent`, the customer's address).
    pub actor: Option<String>,
    pub detail: Value,
    /// The references whose events are this entry's (not serialized; see `audit_seqs`).
    #[serde(skip)]
    pub links: Vec<AuditLink>,
    /// The audit events that record it, ascending (set by [`merge`]).
    #[serde(default)]
    pub audit_seqs: Vec<i64>,
    /// When the first and the last of those events were recorded (set by [`merge`]): the
    /// window `/audit?customer_id=…&since=…&until=…` shows them in.
    #[serde(default)]
    pub audit_first_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub audit_last_at: Option<DateTime<Utc>>,
}

impl TimelineEntry {
    pub fn new(
        at: DateTime<Utc>,
        kind: &str,
        source: &str,
        source_id: &str,
        title: String,
    ) -> TimelineEntry {
        TimelineEntry {
            at,
            at_local: String::new(),
            kind: kind.to_string(),
            source: source.to_string(),
            source_id: source_id.to_string(),
            title,
            actor: None,
            detail: Value::Null,
            links: Vec::new(),
            audit_seqs: Vec::new(),
            audit_first_at: None,
            audit_last_at: None,
        }
    }

    fn with_actor(mut self, actor: Option<String>) -> Self {
        self.actor = actor;
        self
    }

    fn with_detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }

    fn link(mut self, l: AuditLink) -> Self {
        self.links.push(l);
        self
    }

    /// The tie-breaker after `at`: unique per entry.
    pub fn key(&self) -> String {
        format!("{}\u{1f}{}\u{1f}{}", self.source, self.source_id, self.kind)
    }
}

/// Where the next page starts: strictly after the entry it was made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub at: DateTime<Utc>,
    pub key: String,
}

impl Cursor {
    pub fn of(e: &TimelineEntry) -> Cursor {
        Cursor {
            at: e.at,
            key: e.key(),
        }
    }

    /// `<microseconds>.<hex of the key>`.
    pub fn encode(&self) -> String {
        format!(
            "{}.{}",
            self.at.timestamp_micros(),
            hex::encode(self.key.as_bytes())
        )
    }

    /// Reads a cursor made by [`Cursor::encode`]; `Invalid` naming the problem otherwise.
    pub fn parse(s: &str) -> Result<Cursor> {
        let bad = |why: &str| StoreError::Invalid(format!("cursor '{s}': {why}"));
        let (micros, key) = s.split_once('.').ok_or_else(|| bad("expected TIME.KEY"))?;
        let micros: i64 = micros
            .parse()
            .map_err(|_| bad("the time is not a number"))?;
        let at = DateTime::<Utc>::from_timestamp_micros(micros)
            .ok_or_else(|| bad("the time is out of range"))?;
        let key = hex::decode(key)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| bad("the key is not hex-encoded text"))?;
        Ok(Cursor { at, key })
    }
}

/// Which page of a timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineQuery {
    /// Entries per page, 1..=[`MAX_PAGE`].
    pub limit: usize,
    /// Start after this entry (`None`: the newest).
    pub after: Option<Cursor>,
    /// The day promises are judged at (kept / broken / open), in the customer's zone.
    pub as_of: NaiveDate,
    /// Days after a promised date before an unpaid promise is broken.
    pub promise_grace_days: i64,
}

/// One page of a customer's timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimelinePage {
    pub customer_id: String,
    pub customer_name: String,
    pub time_zone: String,
    /// Entries on the whole timeline.
    pub total: usize,
    pub entries: Vec<TimelineEntry>,
    /// The cursor of the next page; `None` on the last.
    pub next: Option<String>,
}

/// The audit references an event carries.
pub fn event_refs(e: &AuditEvent) -> Vec<AuditRef> {
    let s = |k: &str| e.payload.get(k).and_then(Value::as_str).map(str::to_string);
    let mut out = Vec::new();
    let call = s("call_id");
    if let Some(c) = &call {
        out.push(AuditRef::Call(c.clone()));
    }
    for (k, f) in [
        ("approval_id", AuditRef::Approval as fn(String) -> AuditRef),
        ("signal_id", AuditRef::Signal),
        ("case_id", AuditRef::Case),
        ("outbox_id", AuditRef::Outbox),
        ("log_id", AuditRef::CallLog),
        ("promise_id", AuditRef::Promise),
        ("inbound_id", AuditRef::Inbound),
    ] {
        if let Some(v) = s(k) {
            out.push(f(v));
        }
    }
    if call.is_none()
        && let Some(run) = &e.run_id
    {
        out.push(AuditRef::Run(run.clone()));
    }
    out
}

/// The start of `d` in `tz` (the earliest instant that is that local midnight; for a day
/// that starts in a DST gap, the gap's end).
pub fn local_midnight(d: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let naive = d.and_time(chrono::NaiveTime::MIN);
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            t.with_timezone(&Utc)
        }
        chrono::LocalResult::None => (1..=3)
            .find_map(|h| {
                tz.from_local_datetime(&(naive + chrono::Duration::hours(h)))
                    .earliest()
            })
            .map_or_else(|| naive.and_utc(), |t| t.with_timezone(&Utc)),
    }
}

/// `at` in `tz` as RFC 3339 with the offset, to the second.
pub fn local_text(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// Links events to entries, makes entries of the unclaimed events, orders newest first
/// and cuts the page after `q.after`. Pure.
pub fn merge(
    customer: &Customer,
    mut entries: Vec<TimelineEntry>,
    audit: &[AuditEvent],
    limit: usize,
    after: Option<&Cursor>,
) -> TimelinePage {
    // Which entries answer for each reference.
    let mut by_ref: BTreeMap<&AuditRef, Vec<(usize, &[String])>> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        for l in &e.links {
            by_ref
                .entry(&l.r)
                .or_default()
                .push((i, l.kinds.as_slice()));
        }
    }
    let mut seqs: Vec<BTreeSet<i64>> = vec![BTreeSet::new(); entries.len()];
    // Events an entry was made from are claimed by it.
    let preset: BTreeSet<i64> = entries
        .iter()
        .flat_map(|e| e.audit_seqs.iter().copied())
        .collect();
    let at_of: BTreeMap<i64, DateTime<Utc>> = audit.iter().map(|e| (e.seq, e.at)).collect();
    let mut unclaimed = Vec::new();
    for ev in audit {
        let mut claimed = preset.contains(&ev.seq);
        for r in event_refs(ev) {
            for (i, kinds) in by_ref.get(&r).map(Vec::as_slice).unwrap_or(&[]) {
                if kinds.is_empty() || kinds.contains(&ev.kind) {
                    seqs[*i].insert(ev.seq);
                    claimed = true;
                }
            }
        }
        if !claimed {
            unclaimed.push(ev);
        }
    }
    for (e, mut s) in entries.iter_mut().zip(seqs) {
        // An entry made from an event keeps it.
        s.extend(e.audit_seqs.iter().copied());
        e.audit_seqs = s.into_iter().collect();
        let ats: Vec<DateTime<Utc>> = e
            .audit_seqs
            .iter()
            .filter_map(|q| at_of.get(q).copied())
            .collect();
        e.audit_first_at = ats.iter().min().copied();
        e.audit_last_at = ats.iter().max().copied();
    }
    for ev in unclaimed {
        let mut e = generic_entry(ev);
        e.audit_first_at = Some(ev.at);
        e.audit_last_at = Some(ev.at);
        entries.push(e);
    }
    for e in &mut entries {
        e.at_local = local_text(e.at, customer.time_zone);
    }
    entries.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| b.key().cmp(&a.key())));
    let total = entries.len();
    let start = match after {
        None => 0,
        Some(c) => entries
            .iter()
            .position(|e| (e.at, e.key()) < (c.at, c.key.clone()))
            .unwrap_or(total),
    };
    let limit = limit.clamp(1, MAX_PAGE);
    let end = start.saturating_add(limit).min(total);
    let page: Vec<TimelineEntry> = entries.drain(start..end).collect();
    let next = (end < total)
        .then(|| page.last().map(|e| Cursor::of(e).encode()))
        .flatten();
    TimelinePage {
        customer_id: customer.id.clone(),
        customer_name: customer.name.clone(),
        time_zone: customer.time_zone.name().to_string(),
        total,
        entries: page,
        next,
    }
}

/// An audit event no reader claimed, as an entry of its own.
fn generic_entry(ev: &AuditEvent) -> TimelineEntry {
    let mut e = TimelineEntry::new(
        ev.at,
        &format!("audit.{}", ev.kind),
        "audit_events",
        &ev.seq.to_string(),
        format!("Audit event {}", ev.kind),
    )
    .with_actor(Some(ev.actor.clone()))
    .with_detail(ev.payload.clone());
    e.audit_seqs = vec![ev.seq];
    e
}

// ---------------------------------------------------------------------------------------
// Pure readers: rows → entries

/// Invoices: issued, and due (each at the start of its day in the customer's zone).
pub fn invoice_entries(invoices: &[Invoice], tz: Tz) -> Vec<TimelineEntry> {
    let mut out = Vec::new();
    for i in invoices {
        let detail = json!({
            "number": i.number,
            "amount": i.amount.to_string(),
            "issue_date": i.issue_date,
            "due_date": i.due_date,
            "disputed": i.disputed,
        });
        out.push(
            TimelineEntry::new(
                local_midnight(i.issue_date, tz),
                "invoice.issued",
                "invoices",
                &i.number,
                format!("Invoice {} issued: {}", i.number, i.amount),
            )
            .with_detail(detail.clone()),
        );
        out.push(
            TimelineEntry::new(
                local_midnight(i.due_date, tz),
                "invoice.due",
                "invoices",
                &i.number,
                format!("Invoice {} due: {}", i.number, i.amount),
            )
            .with_detail(detail),
        );
    }
    out
}

/// Payments received.
pub fn payment_entries(payments: &[Payment], tz: Tz) -> Vec<TimelineEntry> {
    payments
        .iter()
        .map(|p| {
            TimelineEntry::new(
                local_midnight(p.received_on, tz),
                "payment",
                "payments",
                &p.id,
                format!("Payment of {} on invoice {}", p.amount, p.invoice_number),
            )
            .with_detail(json!({
                "id": p.id,
                "invoice": p.invoice_number,
                "amount": p.amount.to_string(),
                "received_on": p.received_on,
            }))
        })
        .collect()
}

/// Promises to pay: made, and their outcome as of `as_of` — kept on the first day the
/// payments cover it, broken on the day after its promised date plus the grace period
/// (judged by [`PromiseToPay::assess`], the rule the dashboard uses).
pub fn promise_entries(
    promises: &[PromiseToPay],
    payments: &[Payment],
    as_of: NaiveDate,
    grace_days: i64,
    tz: Tz,
) -> Vec<TimelineEntry> {
    let mut days: Vec<NaiveDate> = payments.iter().map(|p| p.received_on).collect();
    days.sort();
    days.dedup();
    let mut out = Vec::new();
    for p in promises {
        let outcome = p.assess(payments, as_of, grace_days);
        let detail = json!({
            "id": p.id,
            "amount": p.amount.to_string(),
            "promised_date": p.promised_date,
            "invoices": p.invoice_numbers,
            "stored_status": p.status.as_str(),
            "outcome": outcome.as_str(),
        });
        out.push(
            TimelineEntry::new(
                p.created_at,
                "promise.made",
                "promises",
                &p.id,
                format!(
                    "Promise to pay {} by {} ({})",
                    p.amount,
                    p.promised_date,
                    outcome.as_str()
                ),
            )
            .with_detail(detail.clone())
            .link(AuditLink::all(AuditRef::Promise(p.id.clone()))),
        );
        let when = match outcome {
            PromiseStatus::Kept => days
                .iter()
                .copied()
                .filter(|d| *d <= as_of)
                .find(|d| p.assess(payments, *d, grace_days) == PromiseStatus::Kept),
            PromiseStatus::Broken => chrono::Duration::try_days(grace_days.saturating_add(1))
                .and_then(|g| p.promised_date.checked_add_signed(g)),
            _ => None,
        };
        if let Some(day) = when {
            out.push(
                TimelineEntry::new(
                    local_midnight(day, tz),
                    &format!("promise.{}", outcome.as_str()),
                    "promises",
                    &p.id,
                    format!(
                        "Promise of {} due {} {}",
                        p.amount,
                        p.promised_date,
                        outcome.as_str()
                    ),
                )
                .with_detail(detail),
            );
        }
    }
    out
}

/// Cases as opened (their later status changes are the `case.*` audit events).
pub fn case_entries(cases: &[Case]) -> Vec<TimelineEntry> {
    cases
        .iter()
        .map(|c| {
            TimelineEntry::new(
                c.opened_at,
                "case.opened",
                "cases",
                &c.id,
                format!(
                    "Case {} opened ({}, now {}): {}",
                    c.id,
                    c.kind.as_str(),
                    c.status.as_str(),
                    c.summary
                ),
            )
            .with_detail(json!({
                "id": c.id,
                "kind": c.kind.as_str(),
                "status": c.status.as_str(),
                "invoices": c.invoice_numbers,
                "disputed_amount": c.disputed_amount.map(|m| m.to_string()),
                "summary": c.summary,
            }))
            // Events naming the case (its status changes are entries of their own).
            .link(AuditLink::all(AuditRef::Case(c.id.clone())))
        })
        .collect()
}

/// Signals recognised in the customer's messages, and a person's decision on each.
/// A message the customer (or someone in their thread) sent us, as processing settled it:
/// who from, the subject, what kind it is, how it was matched and the
/// `Authentication-Results` verdicts (never the text).
pub fn inbound_entries(mails: &[crate::mail_in::InboundMail]) -> Vec<TimelineEntry> {
    mails
        .iter()
        .map(|m| {
            let auth = m
                .auth
                .as_ref()
                .and_then(Value::as_object)
                .map(|o| {
                    ["spf", "dkim", "dmarc"]
                        .iter()
                        .filter_map(|k| {
                            o.get(*k)
                                .and_then(Value::as_str)
                                .map(|v| format!("{k}={v}"))
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| "no authentication results".to_string());
            let auth_failed = m.auth.as_ref().and_then(Value::as_object).is_some_and(|o| {
                o.values()
                    .filter_map(Value::as_str)
                    .any(|v| matches!(v, "fail" | "softfail" | "permerror"))
            });
            TimelineEntry::new(
                m.received_at,
                "mail.received",
                "inbound_mail",
                &m.id,
                format!(
                    "Email from {}: {} ({}; {auth})",
                    m.from_addr.as_deref().unwrap_or("unknown sender"),
                    m.subject.as_deref().unwrap_or("(no subject)"),
                    m.kind.as_deref().unwrap_or("not parsed"),
                ),
            )
            .with_actor(m.from_addr.clone())
            .with_detail(json!({
                "id": m.id,
                "message_id": m.message_id,
                "status": m.status,
                "kind": m.kind,
                "matched_by": m.matched_by,
                "auth": m.auth,
                "auth_summary": auth,
                "auth_failed": auth_failed,
                "run_id": m.run_id,
                "error": m.error,
            }))
            .link(AuditLink::of(AuditRef::Inbound(m.id.clone()), &[]))
        })
        .collect()
}

pub fn signal_entries(signals: &[SignalRecord]) -> Vec<TimelineEntry> {
    let mut out = Vec::new();
    for s in signals {
        out.push(
            TimelineEntry::new(
                s.detected_at,
                "signal.recognised",
                "account_signals",
                &s.id,
                format!("Signal recognised: {} — “{}”", s.kind.as_str(), s.excerpt),
            )
            .with_actor(s.contact.clone())
            .with_detail(json!({
                "id": s.id,
                "kind": s.kind.as_str(),
                "excerpt": s.excerpt,
                "message_sha256": s.message_sha256,
                "run_id": s.run_id,
                "status": s.status.as_str(),
            }))
            .link(AuditLink::of(
                AuditRef::Signal(s.id.clone()),
                &["signal.recognised"],
            )),
        );
        if let Some(at) = s.decided_at {
            out.push(
                TimelineEntry::new(
                    at,
                    &format!("signal.{}", s.status.as_str()),
                    "account_signals",
                    &s.id,
                    format!("Signal {} {}", s.kind.as_str(), s.status.as_str()),
                )
                .with_actor(s.decided_by.as_ref().map(|b| match &s.decided_role {
                    Some(r) => format!("{r}:{b}"),
                    None => b.clone(),
                }))
                .with_detail(json!({"id": s.id, "kind": s.kind.as_str(), "note": s.note}))
                .link(AuditLink::of(
                    AuditRef::Signal(s.id.clone()),
                    &["signal.confirmed", "signal.cleared"],
                )),
            );
        }
    }
    out
}

/// A run's row, as the timeline reads it (not its checkpoint).
#[derive(Clone, Debug, PartialEq)]
pub struct RunRow {
    pub id: String,
    pub trigger: Value,
    pub status: String,
    pub model: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Runs: an inbound email (the run it started) or a run for a dunning step or other cause.
pub fn run_entries(runs: &[RunRow]) -> Vec<TimelineEntry> {
    runs.iter()
        .map(|r| {
            let t = |k: &str| r.trigger.get(k).and_then(Value::as_str).unwrap_or("");
            let link = AuditLink::all(AuditRef::Run(r.id.clone()));
            let detail = json!({"run_id": r.id, "status": r.status, "model": r.model, "finished_at": r.updated_at});
            if t("kind") == "inbound" {
                let body = t("body");
                let mut excerpt: String = body.chars().take(500).collect();
                if excerpt.len() < body.len() {
                    excerpt.push('…');
                }
                let at = r
                    .trigger
                    .get("received_at")
                    .and_then(|v| serde_json::from_value::<DateTime<Utc>>(v.clone()).ok())
                    .unwrap_or(r.created_at);
                let mut detail = detail;
                detail["from"] = json!(t("from"));
                detail["subject"] = json!(t("subject"));
                detail["body"] = json!(excerpt);
                TimelineEntry::new(
                    at,
                    "inbound",
                    "runs",
                    &r.id,
                    format!("Email received from {}: {}", t("from"), t("subject")),
                )
                .with_actor(Some(t("from").to_string()))
                .with_detail(detail)
                .link(link)
            } else {
                let why = match t("kind") {
                    "step" => format!("dunning step {}", t("step")),
                    "" => "no trigger recorded".to_string(),
                    other => other.to_string(),
                };
                TimelineEntry::new(
                    r.created_at,
                    "run",
                    "runs",
                    &r.id,
                    format!("Agent run for {why} ({})", r.status),
                )
                .with_actor(Some("agent".into()))
                .with_detail(detail)
                .link(link)
            }
        })
        .collect()
}

/// A tool call's row.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolCallRow {
    pub call_id: String,
    pub run_id: String,
    pub name: String,
    pub arguments: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
}

/// What the agent tried: every tool call (an email drafted, a promise logged, a case
/// opened, a call requested, …) with its status — executed, queued for approval,
/// refused, rejected, invalid — and every audit event of the call.
pub fn tool_call_entries(calls: &[ToolCallRow]) -> Vec<TimelineEntry> {
    calls
        .iter()
        .map(|c| {
            let args: Value = serde_json::from_str(&c.arguments).unwrap_or(Value::Null);
            let what = match c.name.as_str() {
                "send_email" => format!(
                    "Email drafted to {}: {}",
                    args["to"].as_str().unwrap_or("?"),
                    args["subject"].as_str().unwrap_or("?")
                ),
                "log_promise" => "Promise to pay proposed".to_string(),
                "open_case" => format!("Case proposed ({})", args["kind"].as_str().unwrap_or("?")),
                "propose_plan" => "Payment plan proposed".to_string(),
                "escalate" => "Escalation proposed".to_string(),
                "request_call" => "Call requested".to_string(),
                "read_aging" => "Aging read".to_string(),
                other => format!("Tool {other}"),
            };
            let kind = if c.name == "send_email" {
                "email.drafted".to_string()
            } else {
                format!("tool.{}", c.name)
            };
            TimelineEntry::new(
                c.created_at,
                &kind,
                "tool_calls",
                &c.call_id,
                format!("{what} — {}", c.status),
            )
            .with_actor(Some("agent".into()))
            .with_detail(json!({
                "call_id": c.call_id,
                "run_id": c.run_id,
                "tool": c.name,
                "status": c.status,
                "arguments": if args.is_null() { json!(c.arguments) } else { args },
            }))
            .link(AuditLink::all(AuditRef::Call(c.call_id.clone())))
        })
        .collect()
}

/// An approval item's row.
#[derive(Clone, Debug, PartialEq)]
pub struct ApprovalRow {
    pub id: String,
    pub call_id: String,
    pub tool: String,
    pub status: String,
    pub required_role: String,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decided_by: Option<String>,
    pub decided_role: Option<String>,
    pub note: Option<String>,
    pub bundle_of: Option<String>,
}

/// Approvals: queued for a person, and decided (who, with which role, the verdict).
pub fn approval_entries(items: &[ApprovalRow]) -> Vec<TimelineEntry> {
    let mut out = Vec::new();
    for a in items {
        let detail = json!({
            "approval_id": a.id,
            "call_id": a.call_id,
            "tool": a.tool,
            "status": a.status,
            "required_role": a.required_role,
            "held_with": a.bundle_of,
            "note": a.note,
        });
        out.push(
            TimelineEntry::new(
                a.created_at,
                "approval.requested",
                "approvals",
                &a.id,
                format!(
                    "{} queued for approval ({} or above)",
                    a.tool, a.required_role
                ),
            )
            .with_actor(Some("agent".into()))
            .with_detail(detail.clone())
            .link(AuditLink::of(
                AuditRef::Approval(a.id.clone()),
                &["approval_requested"],
            )),
        );
        if let Some(at) = a.decided_at {
            let who = match (&a.decided_role, &a.decided_by) {
                (Some(r), Some(b)) => Some(format!("{r}:{b}")),
                (None, Some(b)) => Some(b.clone()),
                _ => None,
            };
            out.push(
                TimelineEntry::new(
                    at,
                    "approval.decided",
                    "approvals",
                    &a.id,
                    format!(
                        "{} {} by {}",
                        a.tool,
                        a.status,
                        who.as_deref().unwrap_or("?")
                    ),
                )
                .with_actor(who)
                .with_detail(detail)
                .link(AuditLink::of(
                    AuditRef::Approval(a.id.clone()),
                    &["approval_decided"],
                )),
            );
        }
    }
    out
}

/// An outbox email's row (what is or was to be sent).
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxRow {
    pub id: String,
    pub call_id: String,
    pub to_addr: String,
    pub subject: String,
    pub body_sha256: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// Emails queued in the outbox, and sent.
pub fn outbox_entries(emails: &[OutboxRow]) -> Vec<TimelineEntry> {
    let mut out = Vec::new();
    for m in emails {
        let detail = json!({
            "outbox_id": m.id,
            "call_id": m.call_id,
            "to": m.to_addr,
            "subject": m.subject,
            "body_sha256": m.body_sha256,
            "status": m.status,
        });
        out.push(
            TimelineEntry::new(
                m.created_at,
                "email.queued",
                "outbox",
                &m.id,
                format!("Email queued to {}: {}", m.to_addr, m.subject),
            )
            .with_detail(detail.clone())
            .link(AuditLink::of(
                AuditRef::Call(m.call_id.clone()),
                &["executed"],
            )),
        );
        if let Some(at) = m.sent_at {
            out.push(
                TimelineEntry::new(
                    at,
                    "email.sent",
                    "outbox",
                    &m.id,
                    format!("Email sent to {}: {}", m.to_addr, m.subject),
                )
                .with_detail(detail)
                .link(AuditLink::of(
                    AuditRef::Outbox(m.id.clone()),
                    &["email_delivered"],
                )),
            );
        }
    }
    out
}

/// A contact log row.
#[derive(Clone, Debug, PartialEq)]
pub struct ContactRow {
    pub id: i64,
    pub channel: String,
    pub at: DateTime<Utc>,
    pub call_id: String,
    pub conversation: bool,
}

/// Telephone contacts collectors logged (attempts and conversations). Email contacts are
/// the outbox's entries and are not repeated.
pub fn contact_entries(contacts: &[ContactRow]) -> Vec<TimelineEntry> {
    contacts
        .iter()
        .filter(|c| c.channel != "email")
        .map(|c| {
            let what = if c.conversation {
                "conversation"
            } else {
                "attempt"
            };
            TimelineEntry::new(
                c.at,
                "call.logged",
                "contact_log",
                &c.id.to_string(),
                format!("{} call logged ({what})", c.channel),
            )
            .with_detail(
                json!({"channel": c.channel, "log_id": c.call_id, "conversation": c.conversation}),
            )
            .link(AuditLink::of(
                AuditRef::CallLog(c.call_id.clone()),
                &["call.logged"],
            ))
        })
        .collect()
}

/// Call tasks the agent asked a collector to make.
pub fn call_task_entries(tasks: &[crate::CallTask]) -> Vec<TimelineEntry> {
    let mut out = Vec::new();
    for t in tasks {
        out.push(
            TimelineEntry::new(
                t.created_at,
                "call_task.created",
                "call_tasks",
                &t.id,
                format!("Call task: {}", t.reason),
            )
            .with_actor(Some("agent".into()))
            .with_detail(json!({
                "id": t.id,
                "call_id": t.call_id,
                "reason": t.reason,
                "script": t.script,
                "not_before": t.not_before,
                "status": t.status.as_str(),
            })),
        );
        if let Some(at) = t.done_at {
            out.push(
                TimelineEntry::new(
                    at,
                    "call_task.done",
                    "call_tasks",
                    &t.id,
                    format!("Call task done: {}", t.reason),
                )
                .with_detail(json!({"id": t.id})),
            );
        }
    }
    out
}

/// Audit events that are themselves the record of a change: account facts (`facts.*`,
/// naming each field before and after and who changed it) and case status changes
/// (`case.*`).
pub fn audit_entries(events: &[AuditEvent]) -> Vec<TimelineEntry> {
    events
        .iter()
        .filter_map(|ev| {
            let title = if ev.kind.starts_with("facts.") {
                let fields: Vec<String> = ev
                    .payload
                    .get("changed")
                    .and_then(Value::as_object)
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default();
                format!("Account facts changed: {}", fields.join(", "))
            } else if let Some(to) = ev.kind.strip_prefix("case.")
                && to != "opened"
            {
                format!(
                    "Case {} {} → {}",
                    ev.payload["case_id"].as_str().unwrap_or("?"),
                    ev.payload["from"].as_str().unwrap_or("?"),
                    to
                )
            } else {
                return None;
            };
            let mut e =
                TimelineEntry::new(ev.at, &ev.kind, "audit_events", &ev.seq.to_string(), title)
                    .with_actor(Some(ev.actor.clone()))
                    .with_detail(ev.payload.clone());
            // Claims exactly its own event (by seq, below), whatever the payload names.
            e.audit_seqs = vec![ev.seq];
            Some(e)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The store side: one query per source, all by an index on the customer.

/// id, trigger (JSON text), status, model, created_at, updated_at.
type RawRun = (String, String, String, String, DateTime<Utc>, DateTime<Utc>);

impl Store {
    /// One page of customer `id`'s timeline (`NotFound` for an unknown customer).
    pub async fn timeline(&self, id: &str, q: &TimelineQuery) -> Result<TimelinePage> {
        let customer = self.customer(id).await?;
        let tz = customer.time_zone;
        let audit = self
            .audit_events(&AuditFilter {
                customer_id: Some(id.to_string()),
                ..Default::default()
            })
            .await?;
        let payments = self.payments(Some(id)).await?;
        let mut entries = Vec::new();
        entries.extend(invoice_entries(&self.invoices(Some(id)).await?, tz));
        entries.extend(payment_entries(&payments, tz));
        entries.extend(promise_entries(
            &self.promises(Some(id)).await?,
            &payments,
            q.as_of,
            q.promise_grace_days,
            tz,
        ));
        entries.extend(case_entries(&self.cases(Some(id)).await?));
        entries.extend(signal_entries(
            &self.signals(None, Some(id), i64::MAX, 0).await?,
        ));
        entries.extend(run_entries(&self.timeline_runs(id).await?));
        entries.extend(tool_call_entries(&self.timeline_tool_calls(id).await?));
        entries.extend(approval_entries(&self.timeline_approvals(id).await?));
        entries.extend(outbox_entries(&self.timeline_outbox(id).await?));
        entries.extend(contact_entries(&self.timeline_contacts(id).await?));
        entries.extend(call_task_entries(&self.call_tasks(Some(id), false).await?));
        entries.extend(inbound_entries(&self.inbound_for_customer(id).await?));
        // Events read as entries claim themselves; the rest are linked or listed by `merge`.
        entries.extend(audit_entries(&audit));
        Ok(merge(&customer, entries, &audit, q.limit, q.after.as_ref()))
    }

    pub(crate) async fn timeline_runs(&self, id: &str) -> Result<Vec<RunRow>> {
        let sql = "SELECT id, run_trigger, status, model, created_at, updated_at FROM runs \
                   WHERE customer_id = $1 ORDER BY created_at, id";
        let rows: Vec<RawRun> = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(sql).bind(id).fetch_all(pool).await? {
                out.push((
                    r.try_get("id")?,
                    r.try_get("run_trigger")?,
                    r.try_get("status")?,
                    r.try_get("model")?,
                    r.try_get("created_at")?,
                    r.try_get("updated_at")?,
                ));
            }
            out
        });
        rows.into_iter()
            .map(|(id, trigger, status, model, created_at, updated_at)| {
                Ok(RunRow {
                    trigger: crate::from_json("run trigger", &id, &trigger)?,
                    id,
                    status,
                    model,
                    created_at,
                    updated_at,
                })
            })
            .collect()
    }

    pub(crate) async fn timeline_tool_calls(&self, id: &str) -> Result<Vec<ToolCallRow>> {
        let sql = "SELECT call_id, run_id, name, arguments, status, created_at FROM tool_calls \
                   WHERE customer_id = $1 ORDER BY created_at, call_id";
        Ok(dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(sql).bind(id).fetch_all(pool).await? {
                out.push(ToolCallRow {
                    call_id: r.try_get("call_id")?,
                    run_id: r.try_get("run_id")?,
                    name: r.try_get("name")?,
                    arguments: r.try_get("arguments")?,
                    status: r.try_get("status")?,
                    created_at: r.try_get("created_at")?,
                });
            }
            out
        }))
    }

    pub(crate) async fn timeline_approvals(&self, id: &str) -> Result<Vec<ApprovalRow>> {
        let sql = "SELECT id, call_id, tool, status, required_role, created_at, decided_at, \
                   decided_by, decided_role, note, bundle_of FROM approvals \
                   WHERE customer_id = $1 ORDER BY created_at, id";
        Ok(dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(sql).bind(id).fetch_all(pool).await? {
                out.push(ApprovalRow {
                    id: r.try_get("id")?,
                    call_id: r.try_get("call_id")?,
                    tool: r.try_get("tool")?,
                    status: r.try_get("status")?,
                    required_role: r.try_get("required_role")?,
                    created_at: r.try_get("created_at")?,
                    decided_at: r.try_get("decided_at")?,
                    decided_by: r.try_get("decided_by")?,
                    decided_role: r.try_get("decided_role")?,
                    note: r.try_get("note")?,
                    bundle_of: r.try_get("bundle_of")?,
                });
            }
            out
        }))
    }

    pub(crate) async fn timeline_outbox(&self, id: &str) -> Result<Vec<OutboxRow>> {
        Ok(self
            .emails(Some(id))
            .await?
            .into_iter()
            .map(|m| OutboxRow {
                body_sha256: crate::contacts::sha256_hex(&m.body),
                id: m.id,
                call_id: m.call_id,
                to_addr: m.to_addr,
                subject: m.subject,
                status: m.status,
                created_at: m.created_at,
                sent_at: m.sent_at,
            })
            .collect())
    }

    pub(crate) async fn timeline_contacts(&self, id: &str) -> Result<Vec<ContactRow>> {
        let sql = "SELECT id, channel, at, call_id, conversation FROM contact_log \
                   WHERE customer_id = $1 ORDER BY at, id";
        Ok(dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(sql).bind(id).fetch_all(pool).await? {
                out.push(ContactRow {
                    id: r.try_get("id")?,
                    channel: r.try_get("channel")?,
                    at: r.try_get("at")?,
                    call_id: r.try_get("call_id")?,
                    conversation: r.try_get("conversation")?,
                });
            }
            out
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use argent_core::{Currency, CustomerFlags, Jurisdiction, Money, Tier};

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn customer() -> Customer {
        Customer {
            id: "C-1".into(),
            name: "Ann".into(),
            tier: Tier::Small,
            jurisdiction: Jurisdiction::UsConsumer,
            time_zone: chrono_tz::America::Chicago,
            contacts: vec![],
            flags: CustomerFlags::default(),
            facts: Default::default(),
        }
    }

    fn event(seq: i64, kind: &str, run: Option<&str>, payload: Value) -> AuditEvent {
        AuditEvent {
            seq,
            at: t("2026-11-01T12:00:00Z") + chrono::Duration::seconds(seq),
            run_id: run.map(str::to_string),
            customer_id: Some("C-1".into()),
            actor: "agent".into(),
            kind: kind.into(),
            payload,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn dates_are_placed_at_the_customers_local_midnight() {
        // Chicago is UTC−5 in November (after DST ends on 2026-11-01), UTC−5 … −6.
        assert_eq!(
            local_midnight(d("2026-11-10"), chrono_tz::America::Chicago),
            t("2026-11-10T06:00:00Z")
        );
        assert_eq!(
            local_midnight(d("2026-07-10"), chrono_tz::America::Chicago),
            t("2026-07-10T05:00:00Z")
        );
        assert_eq!(
            local_text(t("2026-07-10T05:00:00Z"), chrono_tz::America::Chicago),
            "2026-07-10T00:00:00-05:00"
        );
    }

    #[test]
    fn events_link_to_the_entries_that_name_them_and_the_rest_become_entries() {
        let calls = vec![ToolCallRow {
            call_id: "r1/0/a".into(),
            run_id: "r1".into(),
            name: "send_email".into(),
            arguments: json!({"to": "ann@x", "subject": "Hi", "body": "b"}).to_string(),
            status: "queued".into(),
            created_at: t("2026-11-01T12:00:02Z"),
        }];
        let runs = vec![RunRow {
            id: "r1".into(),
            trigger: json!({"kind": "step", "step": "overdue_notice"}),
            status: "finished".into(),
            model: "scripted".into(),
            created_at: t("2026-11-01T12:00:00Z"),
            updated_at: t("2026-11-01T12:00:09Z"),
        }];
        let approvals = vec![ApprovalRow {
            id: "ap1".into(),
            call_id: "r1/0/a".into(),
            tool: "send_email".into(),
            status: "approved".into(),
            required_role: "collector".into(),
            created_at: t("2026-11-01T12:00:05Z"),
            decided_at: Some(t("2026-11-02T09:00:00Z")),
            decided_by: Some("carol".into()),
            decided_role: Some("manager".into()),
            note: None,
            bundle_of: None,
        }];
        let audit = vec![
            event(1, "run_started", Some("r1"), json!({})),
            event(2, "model_call", Some("r1"), json!({})),
            event(3, "tool_call", Some("r1"), json!({"call_id": "r1/0/a"})),
            event(
                4,
                "policy_decision",
                Some("r1"),
                json!({"call_id": "r1/0/a"}),
            ),
            event(
                5,
                "approval_requested",
                Some("r1"),
                json!({"call_id": "r1/0/a", "approval_id": "ap1"}),
            ),
            event(6, "run_finished", Some("r1"), json!({})),
            event(
                7,
                "approval_decided",
                Some("r1"),
                json!({"call_id": "r1/0/a", "approval_id": "ap1"}),
            ),
            event(8, "something_new", None, json!({"x": 1})),
        ];
        let mut entries = run_entries(&runs);
        entries.extend(tool_call_entries(&calls));
        entries.extend(approval_entries(&approvals));
        let page = merge(&customer(), entries, &audit, 50, None);
        let by_kind = |k: &str| page.entries.iter().find(|e| e.kind == k).unwrap();
        assert_eq!(by_kind("run").audit_seqs, vec![1, 2, 6]);
        assert_eq!(by_kind("email.drafted").audit_seqs, vec![3, 4, 5, 7]);
        assert_eq!(by_kind("approval.requested").audit_seqs, vec![5]);
        let decided = by_kind("approval.decided");
        assert_eq!(decided.audit_seqs, vec![7]);
        assert_eq!(decided.actor.as_deref(), Some("manager:carol"));
        // The unclaimed event is an entry of its own.
        assert_eq!(by_kind("audit.something_new").audit_seqs, vec![8]);
        assert_eq!(page.total, 5);
        // Newest first.
        let ats: Vec<_> = page.entries.iter().map(|e| e.at).collect();
        let mut sorted = ats.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(ats, sorted);
        assert_eq!(page.entries[0].kind, "approval.decided");
        assert_eq!(page.entries[0].at_local, "2026-11-02T03:00:00-06:00");
    }

    #[test]
    fn pages_follow_each_other_without_gaps_or_repeats_even_for_equal_times() {
        // Ten entries, several at the same instant.
        let entries: Vec<TimelineEntry> = (0..10)
            .map(|i| {
                TimelineEntry::new(
                    t("2026-11-01T00:00:00Z") + chrono::Duration::hours(i / 3),
                    "x",
                    "s",
                    &format!("id{i}"),
                    String::new(),
                )
            })
            .collect();
        let c = customer();
        let mut seen = Vec::new();
        let mut after: Option<Cursor> = None;
        loop {
            let page = merge(&c, entries.clone(), &[], 3, after.as_ref());
            assert_eq!(page.total, 10);
            seen.extend(page.entries.iter().map(|e| e.source_id.clone()));
            match page.next {
                Some(n) => after = Some(Cursor::parse(&n).unwrap()),
                None => break,
            }
        }
        let all = merge(&c, entries, &[], 100, None);
        let expected: Vec<String> = all.entries.iter().map(|e| e.source_id.clone()).collect();
        assert_eq!(seen, expected);
        assert_eq!(seen.len(), 10);
        // id9 is the newest (hour 3); equal times order by key, descending.
        assert_eq!(seen[0], "id9");
        assert_eq!(&seen[1..4], &["id8", "id7", "id6"]);
    }

    #[test]
    fn a_bad_cursor_is_refused_naming_the_problem() {
        for bad in ["", "abc", "12.zz", "x.00", "99999999999999999999.00"] {
            let e = Cursor::parse(bad).unwrap_err();
            assert!(e.to_string().contains("cursor"), "{bad}: {e}");
        }
        let c = Cursor {
            at: t("2026-11-01T00:00:00.123456Z"),
            key: "a\u{1f}b/é".into(),
        };
        assert_eq!(Cursor::parse(&c.encode()).unwrap(), c);
    }

    #[test]
    fn promise_outcomes_are_dated_when_they_happened() {
        let usd = |m| Money::new(m, Currency::USD);
        let promise = |id: &str, by: &str| PromiseToPay {
            id: id.into(),
            customer_id: "C-1".into(),
            invoice_numbers: vec![],
            amount: usd(100_00),
            promised_date: d(by),
            created_at: t("2026-10-01T15:00:00Z"),
            status: PromiseStatus::Open,
        };
        let payments = vec![
            Payment {
                id: "p1".into(),
                customer_id: "C-1".into(),
                invoice_number: "I".into(),
                amount: usd(60_00),
                received_on: d("2026-10-05"),
            },
            Payment {
                id: "p2".into(),
                customer_id: "C-1".into(),
                invoice_number: "I".into(),
                amount: usd(40_00),
                received_on: d("2026-10-08"),
            },
        ];
        let tz = chrono_tz::UTC;
        let kept = promise_entries(
            &[promise("k", "2026-10-10")],
            &payments,
            d("2026-11-01"),
            3,
            tz,
        );
        let k = kept.iter().find(|e| e.kind == "promise.kept").unwrap();
        assert_eq!(k.at, t("2026-10-08T00:00:00Z"));
        // Promised earlier than the second payment: broken the day after date + grace.
        let broken = promise_entries(
            &[promise("b", "2026-10-02")],
            &payments,
            d("2026-11-01"),
            3,
            tz,
        );
        let b = broken.iter().find(|e| e.kind == "promise.broken").unwrap();
        assert_eq!(b.at, t("2026-10-06T00:00:00Z"));
        // Still open: no outcome entry.
        let open = promise_entries(
            &[promise("o", "2026-12-01")],
            &payments[..1],
            d("2026-11-01"),
            3,
            tz,
        );
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].detail["outcome"], "open");
    }

    #[test]
    fn facts_and_case_events_are_entries_with_their_actor() {
        let mut f = event(
            3,
            "facts.updated",
            None,
            json!({"changed": {"preferred_channel": {"before": null, "after": "email"}}}),
        );
        f.actor = "collector:carol".into();
        let c = event(
            4,
            "case.verification_sent",
            None,
            json!({"case_id": "K1", "from": "open", "to": "verification_sent"}),
        );
        let other = event(5, "run_started", Some("r"), json!({}));
        let entries = audit_entries(&[f, c, other]);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].title, "Account facts changed: preferred_channel");
        assert_eq!(entries[0].actor.as_deref(), Some("collector:carol"));
        assert_eq!(entries[0].audit_seqs, vec![3]);
        assert_eq!(entries[1].title, "Case K1 open → verification_sent");
    }
}
