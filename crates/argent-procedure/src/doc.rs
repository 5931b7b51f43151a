//! Procedure documents: parsing and validation, with every problem placed at the
//! `line:column` of the key it is about.
//!
//! A procedure document (`procedures/standard.toml`) is a ladder of steps; the document
//! named [`ASSIGNMENT`] (`procedures/assignment.toml`) says which procedure an account
//! gets from its risk segment, tier and jurisdiction. Invariants a valid set keeps:
//!
//! - every key is known (a misspelt key is an error, not ignored);
//! - step ids are unique within a procedure and are document-name-like (they go into
//!   work-item keys);
//! - each step has exactly one anchor: `due_days` (days from the oldest open invoice's due
//!   date; negative is before it), `after_previous_days` (days after the previous step
//!   that ran) or `after_broken_promise_days` (the follow-up of a broken promise; at most
//!   one per procedure, outside the ladder); the first ladder step is anchored by
//!   `due_days`;
//! - a drafted kind (`email`, `call_task`, `formal_demand`) names a prompt template
//!   (`step/...`), and the template exists in the prompt set it is checked with
//!   ([`ProcedureSet::check_prompts`]);
//! - a minimum balance names real currencies and positive minor-unit amounts;
//! - business hours are a non-empty window inside a day;
//! - every procedure the assignment names exists, and every risk segment but `in_review`
//!   (where a person decides) is assigned for every tier and jurisdiction.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::str::FromStr;

use argent_core::{Currency, Jurisdiction, RiskSegment, Tier};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::StepKind;

/// The name of the assignment document among the procedure documents.
pub const ASSIGNMENT: &str = "assignment";

/// The largest procedure document accepted, in bytes (the shipped ones are under 4 KiB).
pub const MAX_PROCEDURE_BYTES: usize = 64 * 1024;

/// One problem in a procedure document: `line` and `column` are 1-based, `None` when the
/// problem is about the document as a whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{l}:{c}: {}", self.message),
            (Some(l), None) => write!(f, "{l}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
    (line, column)
}

fn at(text: &str, span: Range<usize>, message: impl Into<String>) -> Problem {
    let (l, c) = line_col(text, span.start);
    Problem {
        line: Some(l),
        column: Some(c),
        message: message.into(),
    }
}

fn whole(message: impl Into<String>) -> Problem {
    Problem {
        line: None,
        column: None,
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------------------
// The raw TOML shapes (with spans).

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProcedure {
    description: Option<String>,
    /// Days after a promise's date before it counts as broken (and dunning resumes).
    promise_grace_days: Option<Spanned<i64>>,
    hours: Option<Spanned<RawHours>>,
    steps: Spanned<Vec<RawStep>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHours {
    start: u32,
    end: u32,
    #[serde(default)]
    weekends: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    id: Spanned<String>,
    kind: StepKind,
    prompt: Option<Spanned<String>>,
    due_days: Option<Spanned<i64>>,
    after_previous_days: Option<Spanned<i64>>,
    after_broken_promise_days: Option<Spanned<i64>>,
    skip_after_days: Option<i64>,
    #[serde(default)]
    min_gap_days: Option<Spanned<i64>>,
    when: Option<RawWhen>,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWhen {
    min_balance: Option<Spanned<BTreeMap<String, Spanned<i64>>>>,
    min_days_past_due: Option<i64>,
    tiers: Option<Vec<Tier>>,
    jurisdictions: Option<Vec<Jurisdiction>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAssignment {
    description: Option<String>,
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    segment: Option<RiskSegment>,
    tier: Option<Tier>,
    jurisdiction: Option<Jurisdiction>,
    procedure: Spanned<String>,
}

// ---------------------------------------------------------------------------------------
// The validated model.

/// When a step falls due.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "from", content = "days")]
pub enum Anchor {
    /// Days from the oldest open invoice's due date (negative: before it).
    DueDate(i64),
    /// Days after the previous step that ran in this cycle.
    PreviousStep(i64),
    /// Days after a promise was found broken (the day after its date plus grace).
    BrokenPromise(i64),
}

/// Conditions a step needs; a step whose conditions do not hold is skipped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conditions {
    /// Minimum overdue collectible balance, per currency, in minor units. A currency not
    /// listed does not meet it.
    pub min_balance: BTreeMap<Currency, i64>,
    /// Not before the oldest overdue invoice is this many days past due.
    pub min_days_past_due: Option<i64>,
    /// Only for these tiers (empty: all).
    pub tiers: Vec<Tier>,
    /// Only for these jurisdictions (empty: all).
    pub jurisdictions: Vec<Jurisdiction>,
}

impl Conditions {
    /// Whether a minimum balance is met by `overdue` (per currency, minor units).
    pub fn balance_ok(&self, overdue: &BTreeMap<Currency, i64>) -> bool {
        self.min_balance.is_empty()
            || self
                .min_balance
                .iter()
                .any(|(c, min)| overdue.get(c).is_some_and(|have| have >= min))
    }
}

/// One rung of a ladder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub id: String,
    pub kind: StepKind,
    /// The prompt template (`step/overdue_notice`) for drafted kinds.
    pub prompt: Option<String>,
    pub anchor: Anchor,
    /// Skipped once the oldest open invoice is more than this many days past due when the
    /// step is reached (a pre-due reminder is pointless after the due date).
    pub skip_after_days: Option<i64>,
    /// A contact step waits until this many days after the last contact of any kind.
    pub min_gap_days: i64,
    pub when: Conditions,
    pub description: Option<String>,
}

/// Local business hours contact steps are scheduled into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hours {
    /// First hour (local, 0-23) a contact may be made.
    pub start: u32,
    /// Hour (local, 1-24) by which contacts stop: the window is `[start, end)`.
    pub end: u32,
    /// Whether Saturdays and Sundays are business days.
    pub weekends: bool,
}

impl Default for Hours {
    fn default() -> Self {
        Hours {
            start: 9,
            end: 17,
            weekends: false,
        }
    }
}

/// The default grace after a promise's date before it is judged broken.
pub const DEFAULT_PROMISE_GRACE_DAYS: i64 = 3;

/// A validated procedure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Procedure {
    pub name: String,
    pub description: Option<String>,
    pub promise_grace_days: i64,
    pub hours: Hours,
    /// The ladder, in order (steps anchored to a broken promise are not in it).
    pub ladder: Vec<Step>,
    /// The follow-up of a broken promise, if the procedure has one.
    pub broken_promise: Option<Step>,
}

impl Procedure {
    /// The ladder step with `id` and its position.
    pub fn ladder_step(&self, id: &str) -> Option<(usize, &Step)> {
        self.ladder.iter().enumerate().find(|(_, s)| s.id == id)
    }

    /// Every step: the ladder, then the broken-promise follow-up.
    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        self.ladder.iter().chain(self.broken_promise.iter())
    }
}

/// One assignment rule: the first rule whose given fields all match an account names its
/// procedure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub segment: Option<RiskSegment>,
    pub tier: Option<Tier>,
    pub jurisdiction: Option<Jurisdiction>,
    pub procedure: String,
}

/// Segment, tier and jurisdiction → procedure.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub description: Option<String>,
    pub rules: Vec<Rule>,
}

impl Assignment {
    /// The procedure for an account, `None` when no rule matches (or the segment is
    /// `in_review`, which a person decides and no rule may name).
    pub fn procedure_for(
        &self,
        segment: RiskSegment,
        tier: Tier,
        jurisdiction: Jurisdiction,
    ) -> Option<&str> {
        if segment == RiskSegment::InReview {
            return None;
        }
        self.rules
            .iter()
            .find(|r| {
                r.segment.is_none_or(|s| s == segment)
                    && r.tier.is_none_or(|t| t == tier)
                    && r.jurisdiction.is_none_or(|j| j == jurisdiction)
            })
            .map(|r| r.procedure.as_str())
    }
}

fn toml_error(text: &str, e: toml::de::Error) -> Problem {
    let message = e.message().trim_end().to_string();
    match e.span() {
        Some(s) => at(text, s, message),
        None => whole(message),
    }
}

fn size_check(body: &str) -> Result<(), Vec<Problem>> {
    if body.len() > MAX_PROCEDURE_BYTES {
        return Err(vec![whole(format!(
            "the document is {} bytes; at most {MAX_PROCEDURE_BYTES} bytes (64 KiB) are accepted",
            body.len()
        ))]);
    }
    Ok(())
}

/// Whether `s` is usable as a step id or procedure name: ASCII letters, digits, `-`, `_`.
fn id_like(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Parses and validates the procedure document `name` (not the assignment): every problem
/// found, each at its position, or the procedure.
pub fn parse_procedure(name: &str, body: &str) -> Result<Procedure, Vec<Problem>> {
    size_check(body)?;
    if name == ASSIGNMENT {
        return Err(vec![whole(format!(
            "'{ASSIGNMENT}' is the assignment document, not a procedure"
        ))]);
    }
    if !id_like(name) {
        return Err(vec![whole(format!(
            "'{name}' is not a procedure name: letters, digits, '-' and '_'"
        ))]);
    }
    let raw: RawProcedure = toml::from_str(body).map_err(|e| vec![toml_error(body, e)])?;
    let mut problems = Vec::new();
    let grace = match raw.promise_grace_days {
        Some(g) if !(0..=60).contains(g.get_ref()) => {
            problems.push(at(
                body,
                g.span(),
                format!(
                    "promise_grace_days: {} is out of range (0 to 60 days)",
                    g.get_ref()
                ),
            ));
            DEFAULT_PROMISE_GRACE_DAYS
        }
        Some(g) => g.into_inner(),
        None => DEFAULT_PROMISE_GRACE_DAYS,
    };
    let hours = match raw.hours {
        Some(h) => {
            let span = h.span();
            let h = h.into_inner();
            if h.start >= h.end || h.end > 24 {
                problems.push(at(
                    body,
                    span,
                    format!(
                        "hours: start {} and end {} must make a window inside a day (0 <= start < end <= 24)",
                        h.start, h.end
                    ),
                ));
            }
            Hours {
                start: h.start,
                end: h.end,
                weekends: h.weekends,
            }
        }
        None => Hours::default(),
    };
    let steps_span = raw.steps.span();
    let raw_steps = raw.steps.into_inner();
    if raw_steps.is_empty() {
        problems.push(at(
            body,
            steps_span.clone(),
            "steps: a procedure needs at least one step",
        ));
    }
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut ladder = Vec::new();
    let mut broken_promise: Option<Step> = None;
    for s in raw_steps {
        let id_span = s.id.span();
        let id = s.id.into_inner();
        if !id_like(&id) {
            problems.push(at(
                body,
                id_span.clone(),
                format!("id: '{id}' is not a step id: letters, digits, '-' and '_'"),
            ));
        }
        if !seen.insert(id.clone()) {
            problems.push(at(
                body,
                id_span.clone(),
                format!("id: the step id '{id}' is used twice in this procedure"),
            ));
        }
        let drafted = matches!(
            s.kind,
            StepKind::Email | StepKind::CallTask | StepKind::FormalDemand
        );
        let prompt = match (&s.prompt, drafted) {
            (None, true) => {
                problems.push(at(
                    body,
                    id_span.clone(),
                    format!(
                        "step '{id}': a {} step is drafted by the agent and needs a prompt (e.g. prompt = \"step/{id}\")",
                        s.kind
                    ),
                ));
                None
            }
            (Some(p), _) => {
                let v = p.get_ref();
                let ok = v.strip_prefix("step/").is_some_and(id_like);
                if !ok {
                    problems.push(at(
                        body,
                        p.span(),
                        format!(
                            "prompt: '{v}' is not a step prompt template name (step/<name>, a file under prompts/step/)"
                        ),
                    ));
                }
                if !drafted {
                    problems.push(at(
                        body,
                        p.span(),
                        format!(
                            "prompt: a {} step is not drafted; remove the prompt",
                            s.kind
                        ),
                    ));
                }
                Some(v.clone())
            }
            (None, false) => None,
        };
        let anchors: Vec<(Anchor, Range<usize>)> = [
            s.due_days
                .as_ref()
                .map(|d| (Anchor::DueDate(*d.get_ref()), d.span())),
            s.after_previous_days
                .as_ref()
                .map(|d| (Anchor::PreviousStep(*d.get_ref()), d.span())),
            s.after_broken_promise_days
                .as_ref()
                .map(|d| (Anchor::BrokenPromise(*d.get_ref()), d.span())),
        ]
        .into_iter()
        .flatten()
        .collect();
        let anchor = match anchors.as_slice() {
            [(a, span)] => {
                let days = match a {
                    Anchor::DueDate(d) | Anchor::PreviousStep(d) | Anchor::BrokenPromise(d) => *d,
                };
                let ok = match a {
                    Anchor::DueDate(_) => (-60..=730).contains(&days),
                    _ => (0..=365).contains(&days),
                };
                if !ok {
                    problems.push(at(
                        body,
                        span.clone(),
                        format!(
                            "step '{id}': {days} days is out of range (due_days: -60 to 730; after_*: 0 to 365)"
                        ),
                    ));
                }
                *a
            }
            [] => {
                problems.push(at(
                    body,
                    id_span.clone(),
                    format!(
                        "step '{id}': say when it is due with one of due_days, after_previous_days, after_broken_promise_days"
                    ),
                ));
                Anchor::DueDate(0)
            }
            [_, (_, span), ..] => {
                problems.push(at(
                    body,
                    span.clone(),
                    format!(
                        "step '{id}': give only one of due_days, after_previous_days, after_broken_promise_days"
                    ),
                ));
                anchors[0].0
            }
        };
        let min_gap_days = match s.min_gap_days {
            Some(g) if !(0..=365).contains(g.get_ref()) => {
                problems.push(at(
                    body,
                    g.span(),
                    format!("min_gap_days: {} is out of range (0 to 365)", g.get_ref()),
                ));
                0
            }
            Some(g) => g.into_inner(),
            None => 0,
        };
        let mut when = Conditions::default();
        if let Some(w) = s.when {
            if let Some(mb) = w.min_balance {
                let span = mb.span();
                let map = mb.into_inner();
                if map.is_empty() {
                    problems.push(at(
                        body,
                        span,
                        "when.min_balance: name at least one currency (e.g. { USD = 500_00 })",
                    ));
                }
                for (code, amount) in map {
                    match Currency::from_str(&code) {
                        Ok(c) => {
                            let a = *amount.get_ref();
                            if a <= 0 {
                                problems.push(at(
                                    body,
                                    amount.span(),
                                    format!(
                                        "when.min_balance.{code}: {a} must be a positive amount in minor units"
                                    ),
                                ));
                            }
                            when.min_balance.insert(c, a);
                        }
                        Err(e) => problems.push(at(
                            body,
                            amount.span(),
                            format!("when.min_balance: '{code}': {e}"),
                        )),
                    }
                }
            }
            when.min_days_past_due = w.min_days_past_due;
            when.tiers = w.tiers.unwrap_or_default();
            when.jurisdictions = w.jurisdictions.unwrap_or_default();
        }
        let step = Step {
            id: id.clone(),
            kind: s.kind,
            prompt,
            anchor,
            skip_after_days: s.skip_after_days,
            min_gap_days,
            when,
            description: s.description,
        };
        match anchor {
            Anchor::BrokenPromise(_) => {
                if broken_promise.is_some() {
                    problems.push(at(
                        body,
                        id_span,
                        format!(
                            "step '{id}': a procedure has at most one step after a broken promise"
                        ),
                    ));
                }
                broken_promise = Some(step);
            }
            Anchor::PreviousStep(_) if ladder.is_empty() => {
                problems.push(at(
                    body,
                    id_span,
                    format!(
                        "step '{id}': the first step of the ladder has no previous step; anchor it with due_days"
                    ),
                ));
                ladder.push(step);
            }
            _ => ladder.push(step),
        }
    }
    if ladder.is_empty() && problems.is_empty() {
        problems.push(at(
            body,
            steps_span,
            "steps: the ladder is empty (only a broken-promise follow-up)",
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Procedure {
        name: name.to_string(),
        description: raw.description,
        promise_grace_days: grace,
        hours,
        ladder,
        broken_promise,
    })
}

/// Parses the assignment document on its own (the procedures it names are checked by
/// [`ProcedureSet::from_sources`]). Keeps each rule's procedure span for that check.
fn parse_assignment_raw(body: &str) -> Result<(Assignment, Vec<Range<usize>>), Vec<Problem>> {
    size_check(body)?;
    let raw: RawAssignment = toml::from_str(body).map_err(|e| vec![toml_error(body, e)])?;
    let mut problems = Vec::new();
    let mut spans = Vec::new();
    let mut rules = Vec::new();
    for r in raw.rules {
        if r.segment == Some(RiskSegment::InReview) {
            problems.push(at(
                body,
                r.procedure.span(),
                "segment: in_review accounts are decided by a person; no procedure may be assigned to them",
            ));
        }
        spans.push(r.procedure.span());
        rules.push(Rule {
            segment: r.segment,
            tier: r.tier,
            jurisdiction: r.jurisdiction,
            procedure: r.procedure.into_inner(),
        });
    }
    if rules.is_empty() {
        problems.push(whole("rules: the assignment needs at least one rule"));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok((
        Assignment {
            description: raw.description,
            rules,
        },
        spans,
    ))
}

/// Parses the assignment document on its own.
pub fn parse_assignment(body: &str) -> Result<Assignment, Vec<Problem>> {
    parse_assignment_raw(body).map(|(a, _)| a)
}

/// The problems in one procedure document (or the assignment) on its own.
pub fn validate(name: &str, body: &str) -> Vec<Problem> {
    let r = if name == ASSIGNMENT {
        parse_assignment(body).map(|_| ())
    } else {
        parse_procedure(name, body).map(|_| ())
    };
    r.err().unwrap_or_default()
}

/// The active procedures and their assignment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcedureSet {
    /// Procedure name → (version, procedure).
    pub procedures: BTreeMap<String, (i64, Procedure)>,
    pub assignment: Assignment,
}

impl ProcedureSet {
    /// Builds the set from `(name, version, body)` documents; every problem as `(document
    /// name, problem)`: each document's own, then the assignment naming a procedure that is
    /// not there, or leaving a risk segment, tier and jurisdiction without one.
    pub fn from_sources<'a>(
        docs: impl IntoIterator<Item = (&'a str, i64, &'a str)>,
    ) -> Result<ProcedureSet, Vec<(String, Problem)>> {
        let mut problems = Vec::new();
        let mut procedures = BTreeMap::new();
        let mut assignment = None;
        for (name, version, body) in docs {
            if name == ASSIGNMENT {
                match parse_assignment_raw(body) {
                    Ok(a) => assignment = Some((a, body)),
                    Err(ps) => problems.extend(ps.into_iter().map(|p| (name.to_string(), p))),
                }
                continue;
            }
            match parse_procedure(name, body) {
                Ok(p) => {
                    procedures.insert(name.to_string(), (version, p));
                }
                Err(ps) => problems.extend(ps.into_iter().map(|p| (name.to_string(), p))),
            }
        }
        let Some(((assignment, spans), text)) = assignment else {
            if problems.is_empty() {
                problems.push((
                    ASSIGNMENT.to_string(),
                    whole(format!(
                        "there is no '{ASSIGNMENT}' document saying which procedure each risk segment gets"
                    )),
                ));
            }
            return Err(problems);
        };
        if problems.is_empty() {
            for (rule, span) in assignment.rules.iter().zip(spans) {
                if !procedures.contains_key(&rule.procedure) {
                    problems.push((
                        ASSIGNMENT.to_string(),
                        at(
                            text,
                            span,
                            format!(
                                "procedure: there is no procedure '{}' (procedures/{}.toml)",
                                rule.procedure, rule.procedure
                            ),
                        ),
                    ));
                }
            }
            for segment in [RiskSegment::Low, RiskSegment::Medium, RiskSegment::High] {
                for tier in Tier::ALL {
                    for j in Jurisdiction::ALL {
                        if assignment.procedure_for(segment, *tier, *j).is_none() {
                            problems.push((
                                ASSIGNMENT.to_string(),
                                whole(format!(
                                    "no rule assigns a procedure to {segment}-risk {tier} {j} accounts"
                                )),
                            ));
                        }
                    }
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(ProcedureSet {
            procedures,
            assignment,
        })
    }

    /// The problems of steps whose prompt template is not among `prompt_names`, each at
    /// the step's `prompt` key in `bodies` (name → text).
    pub fn check_prompts(
        bodies: &BTreeMap<String, String>,
        prompt_exists: impl Fn(&str) -> bool,
    ) -> Vec<(String, Problem)> {
        let mut out = Vec::new();
        for (name, body) in bodies {
            if name == ASSIGNMENT {
                continue;
            }
            let Ok(raw) = toml::from_str::<RawProcedure>(body) else {
                continue;
            };
            for s in raw.steps.into_inner() {
                if let Some(p) = s.prompt
                    && !prompt_exists(p.get_ref())
                {
                    out.push((
                        name.clone(),
                        at(
                            body,
                            p.span(),
                            format!(
                                "prompt: there is no prompt template '{}' (prompts/{}.hbs)",
                                p.get_ref(),
                                p.get_ref()
                            ),
                        ),
                    ));
                }
            }
        }
        out
    }

    /// The procedure an account gets, with its version.
    pub fn for_account(
        &self,
        segment: RiskSegment,
        tier: Tier,
        jurisdiction: Jurisdiction,
    ) -> Option<(i64, &Procedure)> {
        let name = self.assignment.procedure_for(segment, tier, jurisdiction)?;
        self.procedures.get(name).map(|(v, p)| (*v, p))
    }

    /// The procedure named `name`, with its version.
    pub fn get(&self, name: &str) -> Option<(i64, &Procedure)> {
        self.procedures.get(name).map(|(v, p)| (*v, p))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const OK: &str = r#"
description = "test"
promise_grace_days = 2

[[steps]]
id = "first"
kind = "email"
prompt = "step/overdue_notice"
due_days = 1

[[steps]]
id = "hold"
kind = "credit_hold"
after_previous_days = 7
when = { min_balance = { USD = 500_00 }, tiers = ["standard"] }

[[steps]]
id = "bp"
kind = "email"
prompt = "step/broken_promise"
after_broken_promise_days = 1
"#;

    #[test]
    fn a_valid_procedure_parses() {
        let p = parse_procedure("t", OK).unwrap();
        assert_eq!(p.ladder.len(), 2);
        assert_eq!(p.promise_grace_days, 2);
        assert_eq!(p.broken_promise.as_ref().unwrap().id, "bp");
        assert_eq!(p.ladder[1].anchor, Anchor::PreviousStep(7));
        assert_eq!(
            p.ladder[1].when.min_balance.get(&Currency::USD),
            Some(&500_00)
        );
    }

    fn problems(body: &str) -> Vec<Problem> {
        parse_procedure("t", body).unwrap_err()
    }

    #[test]
    fn unknown_keys_and_kinds_are_placed() {
        let bad = OK.replace("due_days = 1", "due_dayz = 1");
        let p = problems(&bad);
        assert_eq!(p.len(), 1);
        assert!(p[0].message.contains("due_dayz"), "{p:?}");
        assert_eq!(p[0].line, Some(9), "{p:?}");
        let bad = OK.replace("kind = \"credit_hold\"", "kind = \"fax\"");
        let p = problems(&bad);
        assert!(p[0].message.contains("fax"), "{p:?}");
        assert_eq!(p[0].line, Some(13));
    }

    #[test]
    fn duplicate_ids_missing_prompts_and_anchors_are_errors() {
        let bad = OK.replace("id = \"hold\"", "id = \"first\"");
        let p = problems(&bad);
        assert!(
            p.iter()
                .any(|p| p.message.contains("used twice") && p.line == Some(12))
        );
        let bad = OK.replace("prompt = \"step/overdue_notice\"\n", "");
        let p = problems(&bad);
        assert!(
            p.iter()
                .any(|p| p.message.contains("needs a prompt") && p.line == Some(6))
        );
        let bad = OK.replace(
            "after_previous_days = 7",
            "after_previous_days = 7\ndue_days = 3",
        );
        let p = problems(&bad);
        assert!(p.iter().any(|p| p.message.contains("only one of")));
        let bad = OK.replace("due_days = 1", "after_previous_days = 1");
        let p = problems(&bad);
        assert!(p.iter().any(|p| p.message.contains("first step")));
        let bad = OK.replace("USD = 500_00", "XXQ = 500_00");
        let p = problems(&bad);
        assert!(
            p.iter()
                .any(|p| p.message.contains("XXQ") && p.line == Some(15)),
            "{p:?}"
        );
    }

    #[test]
    fn the_assignment_must_name_existing_procedures_and_cover_every_segment() {
        let assignment =
            "[[rules]]\nsegment = \"low\"\nprocedure = \"t\"\n\n[[rules]]\nprocedure = \"nope\"\n";
        let err =
            ProcedureSet::from_sources([("t", 1, OK), (ASSIGNMENT, 1, assignment)]).unwrap_err();
        assert_eq!(err.len(), 1, "{err:?}");
        assert_eq!(err[0].1.line, Some(6));
        assert!(err[0].1.message.contains("nope"));
        let partial = "[[rules]]\nsegment = \"low\"\nprocedure = \"t\"\n";
        let err = ProcedureSet::from_sources([("t", 1, OK), (ASSIGNMENT, 1, partial)]).unwrap_err();
        assert!(err.iter().any(|(_, p)| p.message.contains("medium-risk")));
        let in_review = "[[rules]]\nsegment = \"in_review\"\nprocedure = \"t\"\n";
        assert!(parse_assignment(in_review).is_err());
    }

    #[test]
    fn prompts_are_checked_against_the_prompt_set() {
        let bodies: BTreeMap<String, String> = [("t".to_string(), OK.to_string())].into();
        let missing = ProcedureSet::check_prompts(&bodies, |p| p == "step/overdue_notice");
        assert_eq!(missing.len(), 1);
        assert!(missing[0].1.message.contains("step/broken_promise"));
        assert_eq!(missing[0].1.line, Some(20));
    }
}
