//! The pure parts of the activation gate for a policy draft: what the draft changes rule
//! by rule (the semantic diff), the policy tests it must pass (the shipped test files plus
//! the tests policy documents carry), which loosened or deleted rules no test or eval case
//! exercises, and the aggregation of an impact replay (how many items flip between allow,
//! needs_approval and deny, by rule, by segment and by amount band).
//!
//! Nothing here reads the store or the clock; the replay itself (which items, judged
//! how) is `argent_agent::impact`, and the gate that puts the parts together is
//! `argent_evals::gate`.
//!
//! **Tests a policy document carries.** A policy document may hold its own cases under
//! `[tests]`, in the format of a test file (`policies/tests/*.toml`) without the `policy`
//! key (it is the document itself):
//!
//! ```toml
//! [tests.context]                  # the base context of every case below
//! now = "2026-03-10T15:00:00Z"
//! ...
//! [[tests.case]]
//! name = "an attorney-represented consumer may be emailed (house counsel agreed)"
//! replaces = "us-consumer.toml: an attorney-represented consumer is not emailed"
//! expect = "allow"
//! action = { ... }
//! ```
//!
//! `replaces = "FILE: CASE NAME"` stands the case in for a shipped case, which is then not
//! counted (it is still run under both sets, so the change it asserts counts as
//! exercised); a `replaces` that names no shipped case is an error. A shipped case can
//! only be taken out by stating what should happen instead, in the document a reviewer
//! reads and diffs.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use argent_core::{Currency, Outcome};

use crate::PolicySet;
use crate::error::PolicyError;
use crate::testing::{CaseResult, TestFile, TestReport, parse_test_text, run_doc};

// ---------------------------------------------------------------------------------------
// Semantic diff

/// Which way a change moves what the policy lets through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Fewer actions get through (or through with less review).
    Tightened,
    /// More actions get through, or with less review.
    Loosened,
    /// It changes what the rule decides, but not clearly one way (a regex edited, the
    /// segments a rule applies to changed, changes both ways).
    Unclear,
    /// Only words a person reads (message, citation, title): no decision changes.
    Wording,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Tightened => "tightened",
            Direction::Loosened => "loosened",
            Direction::Unclear => "changed",
            Direction::Wording => "wording",
        }
    }

    /// A change a reviewer must see covered by a test: anything that may let more through.
    pub fn may_loosen(self) -> bool {
        matches!(self, Direction::Loosened | Direction::Unclear)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

/// One field of a rule that differs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// The key in the rule's table (`max_discount_percent`, `patterns`, `effect`, …).
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
    /// For lists (patterns, actions, approvers, …): the items added and removed.
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub direction: Direction,
    /// In words: `max_discount_percent 20% → 90% (loosened)`.
    pub summary: String,
}

/// What a draft does to one rule (a table with an `id`; a section without one is named
/// `[section]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleChange {
    pub id: String,
    /// The section the rule sits in: `stop`, `negotiation`, `negotiation.ceiling`, …
    pub section: String,
    pub change: ChangeKind,
    pub direction: Direction,
    /// The rule's `effect` (`deny` / `needs_approval`) before, or after for a new rule; a
    /// negotiation ceiling is a deny.
    pub effect: Option<String>,
    pub fields: Vec<FieldChange>,
    pub summary: String,
}

/// Rule by rule, what a new version of a policy document changes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SemanticDiff {
    pub rules: Vec<RuleChange>,
    /// The `[tests]` the document carries differ.
    pub tests_changed: bool,
}

impl SemanticDiff {
    /// The rules the draft deletes, or changes in a way that may let more through.
    pub fn loosening(&self) -> impl Iterator<Item = &RuleChange> {
        self.rules
            .iter()
            .filter(|r| r.change == ChangeKind::Removed || r.direction.may_loosen())
    }
}

/// One rule as the document states it: its fields (keys other than `id` and nested rules).
struct RuleEntry {
    id: String,
    section: String,
    fields: BTreeMap<String, toml::Value>,
}

impl RuleEntry {
    fn effect(&self) -> Option<String> {
        match self.fields.get("effect").and_then(toml::Value::as_str) {
            Some(e) => Some(e.to_string()),
            None if self.section.ends_with(".ceiling") => Some("deny".into()),
            None => None,
        }
    }
}

/// Keys of the document itself, not rules.
const DOCUMENT_KEYS: [&str; 5] = ["id", "title", "version", "jurisdiction", "description"];

fn collect_rules(doc: &toml::Table) -> Vec<RuleEntry> {
    let mut out = Vec::new();
    let mut meta = BTreeMap::new();
    for key in DOCUMENT_KEYS.iter().skip(1) {
        if let Some(v) = doc.get(*key) {
            meta.insert((*key).to_string(), v.clone());
        }
    }
    out.push(RuleEntry {
        id: "(document)".into(),
        section: "document".into(),
        fields: meta,
    });
    for (key, value) in doc {
        if DOCUMENT_KEYS.contains(&key.as_str()) || key == "tests" {
            continue;
        }
        match value {
            toml::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let toml::Value::Table(t) = item {
                        walk_rule(key, t, &format!("[{key}] #{}", i + 1), &mut out);
                    }
                }
            }
            toml::Value::Table(t) => walk_rule(key, t, &format!("[{key}]"), &mut out),
            other => {
                out.push(RuleEntry {
                    id: format!("[{key}]"),
                    section: key.clone(),
                    fields: BTreeMap::from([(key.clone(), other.clone())]),
                });
            }
        }
    }
    out
}

/// A rule table: its own entry (named by its `id`, else `fallback`), with each nested
/// table that has an `id` (a negotiation's `ceiling`, `offers.ambiguous`) as a rule of
/// its own and other nested tables flattened into dotted fields.
fn walk_rule(section: &str, t: &toml::Table, fallback: &str, out: &mut Vec<RuleEntry>) {
    let id = t
        .get("id")
        .and_then(toml::Value::as_str)
        .map_or_else(|| fallback.to_string(), str::to_string);
    let mut fields = BTreeMap::new();
    let mut nested = Vec::new();
    for (k, v) in t {
        if k == "id" {
            continue;
        }
        match v {
            toml::Value::Table(sub) if sub.get("id").and_then(toml::Value::as_str).is_some() => {
                nested.push((format!("{section}.{k}"), sub));
            }
            toml::Value::Table(sub) => flatten(k, sub, &mut fields),
            other => {
                fields.insert(k.clone(), other.clone());
            }
        }
    }
    out.push(RuleEntry {
        id: id.clone(),
        section: section.to_string(),
        fields,
    });
    for (sec, sub) in nested {
        walk_rule(&sec, sub, &format!("{id}.{sec}"), out);
    }
}

fn flatten(prefix: &str, t: &toml::Table, fields: &mut BTreeMap<String, toml::Value>) {
    for (k, v) in t {
        let key = format!("{prefix}.{k}");
        match v {
            toml::Value::Table(sub) => flatten(&key, sub, fields),
            other => {
                fields.insert(key, other.clone());
            }
        }
    }
}

/// The last segment of a dotted field name.
fn leaf(field: &str) -> &str {
    field.rsplit('.').next().unwrap_or(field)
}

/// Numbers whose rise lets more through.
const UP_LOOSENS: [&str; 8] = [
    "max_discount_percent",
    "max_installments",
    "max_plan_days",
    "max_days_ahead",
    "max",
    "min_words",
    "amount_over",
    "latest",
];
/// Numbers whose rise lets less through.
const UP_TIGHTENS: [&str; 5] = [
    "min_down_payment_percent",
    "window_days",
    "after_conversation_days",
    "earliest",
    "receipt_days",
];
/// Lists whose items each widen what the rule covers (an item removed loosens).
const LIST_COVERS: [&str; 4] = ["actions", "patterns", "channels", "kinds"];
/// Lists of who may release a hold (an item added loosens).
const LIST_RELEASES: [&str; 1] = ["approvers"];
const WORDING: [&str; 5] = ["message", "citation", "title", "description", "version"];

fn show(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        other => other.to_string(),
    }
}

fn with_unit(field: &str, v: &str) -> String {
    if leaf(field).ends_with("_percent") {
        format!("{v}%")
    } else {
        v.to_string()
    }
}

/// Compares two plain decimals (`5000`, `5000.00`, `0.5`) without floating point;
/// `None` when either is not one.
fn cmp_decimal(a: &str, b: &str) -> Option<Ordering> {
    fn parts(s: &str) -> Option<(String, String)> {
        let s = s.trim();
        let (i, f) = s.split_once('.').unwrap_or((s, ""));
        if i.is_empty() || !i.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        if !f.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let i = i.trim_start_matches('0').to_string();
        let f = f.trim_end_matches('0').to_string();
        Some((i, f))
    }
    let (ai, af) = parts(a)?;
    let (bi, bf) = parts(b)?;
    Some(
        ai.len()
            .cmp(&bi.len())
            .then_with(|| ai.cmp(&bi))
            .then_with(|| af.cmp(&bf)),
    )
}

fn order_of(a: &toml::Value, b: &toml::Value) -> Option<Ordering> {
    match (a, b) {
        (toml::Value::Integer(x), toml::Value::Integer(y)) => Some(x.cmp(y)),
        (toml::Value::Float(x), toml::Value::Float(y)) => x.partial_cmp(y),
        (toml::Value::Integer(x), toml::Value::Float(y)) => (*x as f64).partial_cmp(y),
        (toml::Value::Float(x), toml::Value::Integer(y)) => x.partial_cmp(&(*y as f64)),
        // "08:00" < "09:30": times as the schema writes them compare as text.
        (toml::Value::String(x), toml::Value::String(y)) => {
            cmp_decimal(x, y).or_else(|| (x.len() == y.len()).then(|| x.cmp(y)))
        }
        _ => None,
    }
}

fn string_list(v: &toml::Value) -> Option<Vec<String>> {
    v.as_array()?
        .iter()
        .map(|i| i.as_str().map(str::to_string))
        .collect()
}

fn field_change(
    field: &str,
    old: Option<&toml::Value>,
    new: Option<&toml::Value>,
) -> Option<FieldChange> {
    if old == new {
        return None;
    }
    let name = leaf(field);
    let mut fc = FieldChange {
        field: field.to_string(),
        old: old.map(show),
        new: new.map(show),
        added: Vec::new(),
        removed: Vec::new(),
        direction: Direction::Unclear,
        summary: String::new(),
    };
    let (old_list, new_list) = (
        old.map_or(Some(Vec::new()), string_list),
        new.map_or(Some(Vec::new()), string_list),
    );
    if WORDING.contains(&name) {
        fc.direction = Direction::Wording;
        fc.summary = format!("{field} reworded");
        return Some(fc);
    }
    if let (Some(o), Some(n)) = (&old_list, &new_list)
        && (old.is_some_and(toml::Value::is_array) || new.is_some_and(toml::Value::is_array))
    {
        let (os, ns): (BTreeSet<&String>, BTreeSet<&String>) =
            (o.iter().collect(), n.iter().collect());
        fc.added = ns.difference(&os).map(|s| (*s).clone()).collect();
        fc.removed = os.difference(&ns).map(|s| (*s).clone()).collect();
        let (grew, shrank) = (!fc.added.is_empty(), !fc.removed.is_empty());
        fc.direction = match (grew, shrank) {
            (false, false) => Direction::Wording, // reordered
            (true, true) => Direction::Unclear,
            (true, false) if LIST_COVERS.contains(&name) => Direction::Tightened,
            (false, true) if LIST_COVERS.contains(&name) => Direction::Loosened,
            (true, false) if LIST_RELEASES.contains(&name) => Direction::Loosened,
            (false, true) if LIST_RELEASES.contains(&name) => Direction::Tightened,
            _ => Direction::Unclear,
        };
        let mut parts = Vec::new();
        if grew {
            parts.push(format!("added {}", quoted(&fc.added)));
        }
        if shrank {
            parts.push(format!("removed {}", quoted(&fc.removed)));
        }
        if parts.is_empty() {
            parts.push("reordered".into());
        }
        fc.summary = format!("{field}: {} ({})", parts.join("; "), fc.direction.as_str());
        return Some(fc);
    }
    fc.direction = match (name, old, new) {
        ("effect", Some(o), Some(n)) => match (o.as_str(), n.as_str()) {
            (Some("deny"), Some("needs_approval")) => Direction::Loosened,
            (Some("needs_approval"), Some("deny")) => Direction::Tightened,
            _ => Direction::Unclear,
        },
        (_, Some(o), Some(n)) => match order_of(o, n) {
            Some(ord) if UP_LOOSENS.contains(&name) => match ord {
                Ordering::Less => Direction::Loosened,
                Ordering::Greater => Direction::Tightened,
                Ordering::Equal => Direction::Wording,
            },
            Some(ord) if UP_TIGHTENS.contains(&name) => match ord {
                Ordering::Less => Direction::Tightened,
                Ordering::Greater => Direction::Loosened,
                Ordering::Equal => Direction::Wording,
            },
            _ => Direction::Unclear,
        },
        // An optional limit dropped lets more through; one added, less.
        (_, Some(_), None) if UP_LOOSENS.contains(&name) || UP_TIGHTENS.contains(&name) => {
            Direction::Loosened
        }
        (_, None, Some(_)) if UP_LOOSENS.contains(&name) || UP_TIGHTENS.contains(&name) => {
            Direction::Tightened
        }
        _ => Direction::Unclear,
    };
    if matches!(
        name,
        "pattern" | "demand" | "instruction" | "balance_context"
    ) {
        fc.added = fc.new.iter().cloned().collect();
        fc.removed = fc.old.iter().cloned().collect();
    }
    let o = fc
        .old
        .as_deref()
        .map_or("(none)".to_string(), |v| with_unit(field, v));
    let n = fc
        .new
        .as_deref()
        .map_or("(none)".to_string(), |v| with_unit(field, v));
    fc.summary = format!("{field} {o} → {n} ({})", fc.direction.as_str());
    Some(fc)
}

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The overall direction of a rule's field changes.
fn fold(fields: &[FieldChange]) -> Direction {
    let dirs: BTreeSet<Direction> = fields
        .iter()
        .map(|f| f.direction)
        .filter(|d| *d != Direction::Wording)
        .collect();
    match dirs.len() {
        0 => Direction::Wording,
        1 => dirs.into_iter().next().unwrap_or(Direction::Unclear),
        _ => Direction::Unclear,
    }
}

/// What `new` changes in the policy document `old`, rule by rule (rules are matched by
/// `id`). Errors when either text is not TOML.
pub fn semantic_diff(old: &str, new: &str) -> Result<SemanticDiff, String> {
    let parse = |which: &str, text: &str| {
        toml::from_str::<toml::Table>(text)
            .map_err(|e| format!("the {which} version is not TOML: {}", e.message()))
    };
    let (old_doc, new_doc) = (parse("old", old)?, parse("new", new)?);
    let (old_rules, new_rules) = (collect_rules(&old_doc), collect_rules(&new_doc));
    let old_by_id: BTreeMap<&str, &RuleEntry> =
        old_rules.iter().map(|r| (r.id.as_str(), r)).collect();
    let new_ids: BTreeSet<&str> = new_rules.iter().map(|r| r.id.as_str()).collect();
    let mut rules = Vec::new();
    // Document order of the old version, then what the new one adds.
    for o in &old_rules {
        if !new_ids.contains(o.id.as_str()) {
            let effect = o.effect();
            rules.push(RuleChange {
                id: o.id.clone(),
                section: o.section.clone(),
                change: ChangeKind::Removed,
                direction: Direction::Loosened,
                summary: format!(
                    "rule removed{}",
                    effect
                        .as_deref()
                        .map(|e| format!(" (was {e})"))
                        .unwrap_or_default()
                ),
                effect,
                fields: Vec::new(),
            });
            continue;
        }
        let Some(n) = new_rules.iter().find(|n| n.id == o.id) else {
            continue;
        };
        let keys: BTreeSet<&String> = o.fields.keys().chain(n.fields.keys()).collect();
        let fields: Vec<FieldChange> = keys
            .into_iter()
            .filter_map(|k| field_change(k, o.fields.get(k), n.fields.get(k)))
            .collect();
        if fields.is_empty() {
            continue;
        }
        let direction = fold(&fields);
        rules.push(RuleChange {
            id: o.id.clone(),
            section: n.section.clone(),
            change: ChangeKind::Changed,
            direction,
            effect: o.effect(),
            summary: fields
                .iter()
                .map(|f| f.summary.clone())
                .collect::<Vec<_>>()
                .join("; "),
            fields,
        });
    }
    for n in &new_rules {
        if !old_by_id.contains_key(n.id.as_str()) {
            let effect = n.effect();
            rules.push(RuleChange {
                id: n.id.clone(),
                section: n.section.clone(),
                change: ChangeKind::Added,
                direction: Direction::Tightened,
                summary: format!(
                    "rule added{}",
                    effect
                        .as_deref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                ),
                effect,
                fields: Vec::new(),
            });
        }
    }
    // Removed first, then changed, then added (each in the order the old, then the new,
    // document gives, which is key order unless `toml` keeps the document's).
    let rank = |c: ChangeKind| match c {
        ChangeKind::Removed => 0,
        ChangeKind::Changed => 1,
        ChangeKind::Added => 2,
    };
    rules.sort_by_key(|r| rank(r.change));
    Ok(SemanticDiff {
        rules,
        tests_changed: old_doc.get("tests") != new_doc.get("tests"),
    })
}

// ---------------------------------------------------------------------------------------
// Policy tests: shipped files plus the tests documents carry

/// A shipped case a document's case stands in for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Replacement {
    /// `FILE: CASE NAME` of the shipped case.
    pub shipped: String,
    /// The policy document whose `[tests]` hold the case that replaces it, and its name.
    pub by_policy: String,
    pub by_case: String,
}

/// The cases a set's tests ran and their results.
#[derive(Clone, Debug, Default)]
pub struct Suite {
    /// The cases that count: shipped ones not replaced, then the documents' own.
    pub report: TestReport,
    /// Shipped cases replaced by a document's case, with their result under this set
    /// (not counted; kept to see what changed).
    pub replaced: Vec<(Replacement, CaseResult)>,
    /// How many counted cases came from documents' `[tests]`.
    pub embedded: usize,
}

/// Where a document's tests are named in results and errors.
fn carried_file(policy: &str) -> PathBuf {
    Path::new("policies").join(format!("{policy}.toml#tests"))
}

/// The `[tests]` a policy document carries, as a test file for that policy; `None` when
/// it has none.
fn carried_tests(policy: &str, text: &str) -> Result<Option<TestFile>, PolicyError> {
    let file = carried_file(policy);
    let table: toml::Table = toml::from_str(text)
        .map_err(|e| PolicyError::invalid(&file, "", format!("not valid TOML: {}", e.message())))?;
    let Some(tests) = table.get("tests") else {
        return Ok(None);
    };
    let toml::Value::Table(tests) = tests else {
        return Err(PolicyError::invalid(&file, "tests", "must be a table"));
    };
    let mut doc = tests.clone();
    if doc.contains_key("policy") {
        return Err(PolicyError::invalid(
            &file,
            "tests.policy",
            "tests in a policy document are for that document: leave out `policy`",
        ));
    }
    doc.insert("policy".into(), toml::Value::String(policy.to_string()));
    toml::Value::Table(doc)
        .try_into::<TestFile>()
        .map(Some)
        .map_err(|e| PolicyError::invalid(&file, "tests", e.message().to_string()))
}

/// Runs the policy tests against `set`: every shipped test file (`(file name, text)`,
/// e.g. the files of `policies/tests/`) and the `[tests]` of every policy document in
/// `carriers` (`(name, text)`: the documents of the set under test). A document's case
/// with `replaces` stands in for that shipped case. Errors for a file that does not parse,
/// a test of a policy the set lacks, or a `replaces` that names no shipped case.
pub fn run_suite(
    set: &PolicySet,
    shipped: &[(String, String)],
    carriers: &[(String, String)],
) -> Result<Suite, PolicyError> {
    let mut carried = Vec::new();
    let mut replacing: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (name, text) in carriers {
        if let Some(doc) = carried_tests(name, text)? {
            for (i, case) in doc.cases.iter().enumerate() {
                if let Some(r) = &case.replaces {
                    let by = (name.clone(), case.name.clone());
                    if replacing.insert(r.trim().to_string(), by).is_some() {
                        return Err(PolicyError::invalid(
                            carried_file(name),
                            format!("tests.case[{i}].replaces"),
                            format!("'{r}' is replaced twice"),
                        ));
                    }
                }
            }
            carried.push((name.clone(), doc));
        }
    }
    let mut suite = Suite::default();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for (file_name, text) in shipped {
        let file = Path::new("policies/tests").join(file_name);
        let doc = parse_test_text(&file, text)?;
        let policy = set.get(&doc.policy).ok_or_else(|| {
            PolicyError::invalid(
                &file,
                "policy",
                format!("no policy '{}' in the set under test", doc.policy),
            )
        })?;
        for (replaces, case) in run_doc(&file, doc, policy)? {
            if replaces.is_some() {
                return Err(PolicyError::invalid(
                    &file,
                    "case.replaces",
                    "`replaces` is only for tests carried in a policy document ([[tests.case]])",
                ));
            }
            let key = format!("{file_name}: {}", case.name);
            match replacing.get(&key) {
                Some((by_policy, by_case)) => {
                    seen.insert(key.clone());
                    suite.replaced.push((
                        Replacement {
                            shipped: key,
                            by_policy: by_policy.clone(),
                            by_case: by_case.clone(),
                        },
                        case,
                    ));
                }
                None => suite.report.cases.push(case),
            }
        }
    }
    if let Some((missing, (by_policy, by_case))) =
        replacing.iter().find(|(k, _)| !seen.contains(*k))
    {
        return Err(PolicyError::invalid(
            carried_file(by_policy),
            "tests.case.replaces",
            format!(
                "case '{by_case}' replaces '{missing}', which is no shipped test case (write `FILE: CASE NAME`, e.g. `us-consumer.toml: reading the aging is always allowed`)"
            ),
        ));
    }
    for (name, doc) in carried {
        let file = carried_file(&name);
        let policy = set.get(&name).ok_or_else(|| {
            PolicyError::invalid(
                &file,
                "tests",
                format!("no policy '{name}' in the set under test"),
            )
        })?;
        for (_, case) in run_doc(&file, doc, policy)? {
            suite.embedded += 1;
            suite.report.cases.push(case);
        }
    }
    Ok(suite)
}

/// A case's name as the gate reports it: `FILE: NAME`.
pub fn case_label(c: &CaseResult) -> String {
    let file = c.file.to_string_lossy();
    let file = file.strip_prefix("policies/tests/").unwrap_or(&file);
    format!("{file}: {}", c.name)
}

// ---------------------------------------------------------------------------------------
// Coverage

/// Rule ids whose decision differs for some case between two runs of the same cases
/// (`before` under the active set, `after` under the draft, matched by file and name):
/// the rule fired in one and not the other, or with another outcome, or the case's
/// outcome changed while it fired. These are the changes the cases exercise.
pub fn exercised(before: &[CaseResult], after: &[CaseResult]) -> BTreeSet<String> {
    let after_by: BTreeMap<(&Path, &str), &CaseResult> = after
        .iter()
        .map(|c| ((c.file.as_path(), c.name.as_str()), c))
        .collect();
    let mut out = BTreeSet::new();
    for b in before {
        let Some(a) = after_by.get(&(b.file.as_path(), b.name.as_str())) else {
            continue;
        };
        let fired = |c: &CaseResult| -> BTreeSet<(String, Outcome)> {
            c.decision
                .rules
                .iter()
                .map(|r| (r.id.clone(), r.outcome))
                .collect()
        };
        let (fb, fa) = (fired(b), fired(a));
        out.extend(fb.symmetric_difference(&fa).map(|(id, _)| id.clone()));
        if b.decision.outcome != a.decision.outcome {
            out.extend(fb.iter().chain(&fa).map(|(id, _)| id.clone()));
        }
    }
    out
}

/// A rule the draft deletes or loosens that no case exercises.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NotCovered {
    pub id: String,
    pub change: ChangeKind,
    pub direction: Direction,
    pub summary: String,
}

/// The deleted or loosened rules of `diff` that neither the policy tests nor the eval
/// cases exercise (`evals`: `None` when no eval run of the draft is known, so only the
/// tests count).
pub fn not_covered(
    diff: &SemanticDiff,
    tests: &BTreeSet<String>,
    evals: Option<&BTreeSet<String>>,
) -> Vec<NotCovered> {
    diff.loosening()
        .filter(|r| r.section != "document")
        .filter(|r| !tests.contains(&r.id) && !evals.is_some_and(|e| e.contains(&r.id)))
        .map(|r| NotCovered {
            id: r.id.clone(),
            change: r.change,
            direction: r.direction,
            summary: r.summary.clone(),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Impact replay: aggregation

/// A decision as the replay compares it: the outcome and every rule that fired with its
/// outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Judgement {
    pub outcome: Outcome,
    pub rules: Vec<(String, Outcome)>,
}

impl From<&argent_core::Decision> for Judgement {
    fn from(d: &argent_core::Decision) -> Self {
        Judgement {
            outcome: d.outcome,
            rules: d.rules.iter().map(|r| (r.id.clone(), r.outcome)).collect(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplaySource {
    /// An item waiting in the approval queue.
    Pending,
    /// A tool call the audit trail recorded a decision for.
    Decision,
}

/// One replayed item: judged now under the active set (`before`) and the draft (`after`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReplayedItem {
    pub source: ReplaySource,
    /// The approval id (pending) or the tool call id (decision).
    pub id: String,
    /// Where a person sees it.
    pub href: String,
    pub customer_id: String,
    pub tool: String,
    pub segment: String,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub at: DateTime<Utc>,
    /// What was decided when it happened (from the trail), if known.
    pub recorded: Option<Outcome>,
    pub before: Judgement,
    pub after: Judgement,
}

impl ReplayedItem {
    pub fn flipped(&self) -> bool {
        self.before.outcome != self.after.outcome
    }

    /// The rules a flip is down to: those that fired (or with that outcome) on one side
    /// only; when none do, every rule that fired on either side.
    pub fn flip_rules(&self) -> Vec<String> {
        let b: BTreeSet<&(String, Outcome)> = self.before.rules.iter().collect();
        let a: BTreeSet<&(String, Outcome)> = self.after.rules.iter().collect();
        let mut ids: BTreeSet<String> = b
            .symmetric_difference(&a)
            .map(|(id, _)| id.clone())
            .collect();
        if ids.is_empty() {
            ids = b.union(&a).map(|(id, _)| id.clone()).collect();
        }
        ids.into_iter().collect()
    }

    /// `allow → deny`.
    pub fn transition(&self) -> String {
        format!("{} → {}", self.before.outcome, self.after.outcome)
    }
}

/// Flips counted under one key (a rule, a segment, an amount band).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Breakdown {
    pub key: String,
    pub flipped: usize,
    /// `(transition, count)`, e.g. `("deny → allow", 3)`.
    pub transitions: Vec<(String, usize)>,
}

/// The impact replay's answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Impact {
    /// Items replayed: pending approvals and audited decisions.
    pub pending: usize,
    pub decisions: usize,
    pub flipped: usize,
    pub transitions: Vec<(String, usize)>,
    pub by_rule: Vec<Breakdown>,
    pub by_segment: Vec<Breakdown>,
    pub by_band: Vec<Breakdown>,
    /// The flipped items, pending first, then newest first.
    pub items: Vec<ReplayedItem>,
    /// Items that could not be judged, each with why (they are not counted).
    pub skipped: Vec<String>,
    /// More decisions fell in the window than the replay reads; the oldest were left out.
    pub truncated: bool,
}

/// The amount band of a figure, in its currency's major units: `no amount`,
/// `under 100 USD`, `100–1,000 USD`, `1,000–10,000 USD`, `10,000 USD and over`.
pub fn amount_band(amount_minor: Option<i64>, currency: Option<&str>) -> String {
    let (Some(minor), Some(code)) = (amount_minor, currency.filter(|c| !c.is_empty())) else {
        return "no amount".into();
    };
    let exp = code.parse::<Currency>().map_or(2, |c| c.exponent());
    let unit = 10_i64.checked_pow(exp).unwrap_or(1);
    let major = minor / unit;
    match major {
        m if m < 100 => format!("under 100 {code}"),
        m if m < 1_000 => format!("100–1,000 {code}"),
        m if m < 10_000 => format!("1,000–10,000 {code}"),
        _ => format!("10,000 {code} and over"),
    }
}

fn breakdown(groups: BTreeMap<String, BTreeMap<String, usize>>) -> Vec<Breakdown> {
    let mut out: Vec<Breakdown> = groups
        .into_iter()
        .map(|(key, t)| Breakdown {
            key,
            flipped: t.values().sum(),
            transitions: t.into_iter().collect(),
        })
        .collect();
    out.sort_by(|a, b| b.flipped.cmp(&a.flipped).then_with(|| a.key.cmp(&b.key)));
    out
}

/// Counts the flips among `items` (every replayed item, flipped or not).
pub fn aggregate(items: Vec<ReplayedItem>, skipped: Vec<String>, truncated: bool) -> Impact {
    let mut impact = Impact {
        skipped,
        truncated,
        ..Impact::default()
    };
    let mut transitions: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_rule: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut by_segment: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut by_band: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for item in items {
        match item.source {
            ReplaySource::Pending => impact.pending += 1,
            ReplaySource::Decision => impact.decisions += 1,
        }
        if !item.flipped() {
            continue;
        }
        impact.flipped += 1;
        let t = item.transition();
        *transitions.entry(t.clone()).or_default() += 1;
        for rule in item.flip_rules() {
            *by_rule
                .entry(rule)
                .or_default()
                .entry(t.clone())
                .or_default() += 1;
        }
        *by_segment
            .entry(item.segment.clone())
            .or_default()
            .entry(t.clone())
            .or_default() += 1;
        *by_band
            .entry(amount_band(item.amount_minor, item.currency.as_deref()))
            .or_default()
            .entry(t)
            .or_default() += 1;
        impact.items.push(item);
    }
    impact.items.sort_by(|a, b| {
        let rank = |i: &ReplayedItem| matches!(i.source, ReplaySource::Decision);
        rank(a)
            .cmp(&rank(b))
            .then_with(|| b.at.cmp(&a.at))
            .then_with(|| a.id.cmp(&b.id))
    });
    impact.transitions = transitions.into_iter().collect();
    impact.by_rule = breakdown(by_rule);
    impact.by_segment = breakdown(by_segment);
    impact.by_band = breakdown(by_band);
    impact
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn repo(p: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
    }

    fn shipped_policy(name: &str) -> String {
        std::fs::read_to_string(repo(&format!("policies/{name}.toml"))).unwrap()
    }

    fn shipped_tests() -> Vec<(String, String)> {
        let mut files: Vec<_> = std::fs::read_dir(repo("policies/tests"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read_to_string(&p).unwrap(),
                )
            })
            .collect()
    }

    const ATTORNEY_STOP: &str = r#"[[stop]]
id = "us.attorney-represented"
when = "attorney_represented"
actions = ["send_email", "propose_plan", "request_call"]
effect = "deny"
message = "The consumer is represented by an attorney; communicate with the attorney, not the consumer."
citation = "15 U.S.C. 1692c(a)(2); 12 CFR 1006.6(b)(2)"
"#;

    const HIGH_RISK_CEILING: &str = "id = \"us.plan.high-risk.ceiling\"\nmax_discount_percent = 20";

    /// The shipped us-consumer pack without the attorney stop and with the high-risk
    /// ceiling's discount raised from 20% to 90%.
    fn loosened() -> String {
        let text = shipped_policy("us-consumer");
        assert!(text.contains(ATTORNEY_STOP) && text.contains(HIGH_RISK_CEILING));
        text.replace(ATTORNEY_STOP, "").replace(
            HIGH_RISK_CEILING,
            "id = \"us.plan.high-risk.ceiling\"\nmax_discount_percent = 90",
        )
    }

    /// Cases standing in for the three shipped ones that assert the attorney stop.
    const CARRIED: &str = include_str!("../tests/fixtures/gate-carried-attorney.toml");

    fn set_with(us: &str) -> (PolicySet, Vec<(String, String)>) {
        let docs: Vec<(String, String)> = vec![
            ("b2b".into(), shipped_policy("b2b")),
            ("uk-consumer".into(), shipped_policy("uk-consumer")),
            ("us-consumer".into(), us.to_string()),
        ];
        let set =
            PolicySet::from_sources(docs.iter().map(|(n, t)| (n.as_str(), t.as_str()))).unwrap();
        (set, docs)
    }

    #[test]
    fn the_semantic_diff_names_removed_rules_and_threshold_changes() {
        let old = shipped_policy("us-consumer");
        let diff = semantic_diff(&old, &loosened()).unwrap();
        assert_eq!(diff.rules.len(), 2, "{diff:#?}");
        let removed = &diff.rules[0];
        assert_eq!(removed.id, "us.attorney-represented");
        assert_eq!(removed.change, ChangeKind::Removed);
        assert_eq!(removed.section, "stop");
        assert_eq!(removed.summary, "rule removed (was deny)");
        let ceiling = &diff.rules[1];
        assert_eq!(ceiling.id, "us.plan.high-risk.ceiling");
        assert_eq!(ceiling.section, "negotiation.ceiling");
        assert_eq!(ceiling.direction, Direction::Loosened);
        assert_eq!(ceiling.summary, "max_discount_percent 20% → 90% (loosened)");
        assert!(!diff.tests_changed);
        // The same texts: nothing.
        assert!(semantic_diff(&old, &old).unwrap().rules.is_empty());
    }

    #[test]
    fn the_semantic_diff_reads_direction_from_the_field() {
        let old = r#"
id = "x"
title = "X"
version = "1"
jurisdiction = "us-consumer"
[[prohibited]]
id = "x.threat"
patterns = ["arrest", "jail"]
effect = "deny"
message = "No threats."
citation = "c"
[[approval]]
id = "x.big"
actions = ["propose_plan"]
amount_over = "5000.00"
effect = "needs_approval"
approvers = ["manager"]
message = "m"
citation = "c"
[[frequency]]
id = "x.freq"
channels = ["email"]
max = 3
window_days = 7
effect = "deny"
message = "m"
citation = "c"
"#;
        let new = old
            .replace(r#"["arrest", "jail"]"#, r#"["arrest", "prison"]"#)
            .replace("\"5000.00\"", "\"500.00\"")
            .replace(
                "approvers = [\"manager\"]",
                "approvers = [\"manager\", \"collector\"]",
            )
            .replace("max = 3", "max = 7")
            .replace("window_days = 7", "window_days = 30")
            .replace("message = \"No threats.\"", "message = \"Never threaten.\"");
        let diff = semantic_diff(old, &new).unwrap();
        let by_id: BTreeMap<&str, &RuleChange> =
            diff.rules.iter().map(|r| (r.id.as_str(), r)).collect();
        let threat = by_id["x.threat"];
        // A phrase swapped for another: which way is unclear; the message is wording.
        assert_eq!(threat.direction, Direction::Unclear);
        let patterns = threat
            .fields
            .iter()
            .find(|f| f.field == "patterns")
            .unwrap();
        assert_eq!(patterns.added, ["prison"]);
        assert_eq!(patterns.removed, ["jail"]);
        assert!(
            threat
                .fields
                .iter()
                .any(|f| f.field == "message" && f.direction == Direction::Wording)
        );
        // A lower amount threshold holds more; one more approver role releases more.
        let big = by_id["x.big"];
        assert_eq!(big.direction, Direction::Unclear, "{big:#?}");
        let amount = big
            .fields
            .iter()
            .find(|f| f.field == "amount_over")
            .unwrap();
        assert_eq!(amount.direction, Direction::Tightened);
        let approvers = big.fields.iter().find(|f| f.field == "approvers").unwrap();
        assert_eq!(approvers.direction, Direction::Loosened);
        assert_eq!(approvers.added, ["collector"]);
        // More emails allowed in a longer window: both ways.
        let freq = by_id["x.freq"];
        assert_eq!(
            freq.fields.iter().map(|f| f.direction).collect::<Vec<_>>(),
            [Direction::Loosened, Direction::Tightened]
        );
        assert_eq!(freq.direction, Direction::Unclear);
        // Only the message: wording, not loosening.
        let reworded = old.replace("message = \"No threats.\"", "message = \"Never.\"");
        let diff = semantic_diff(old, &reworded).unwrap();
        assert_eq!(diff.rules[0].direction, Direction::Wording);
        assert_eq!(diff.loosening().count(), 0);
        // Effect deny → needs_approval loosens; a removed phrase loosens.
        let softer = old
            .replacen(
                "effect = \"deny\"",
                "effect = \"needs_approval\"\napprovers = [\"manager\"]",
                1,
            )
            .replace(r#"["arrest", "jail"]"#, r#"["arrest"]"#);
        let diff = semantic_diff(old, &softer).unwrap();
        assert_eq!(diff.rules[0].id, "x.threat");
        assert_eq!(diff.rules[0].direction, Direction::Loosened, "{diff:#?}");
    }

    #[test]
    fn decimals_compare_without_floats() {
        assert_eq!(cmp_decimal("5000.00", "500"), Some(Ordering::Greater));
        assert_eq!(cmp_decimal("0500", "500.0"), Some(Ordering::Equal));
        assert_eq!(cmp_decimal("10.5", "10.25"), Some(Ordering::Greater));
        assert_eq!(cmp_decimal("1e3", "10"), None);
    }

    #[test]
    fn a_draft_deleting_a_stop_fails_the_shipped_tests_naming_them() {
        let (set, docs) = set_with(&loosened());
        let suite = run_suite(&set, &shipped_tests(), &docs).unwrap();
        let mut failing: Vec<String> = suite
            .report
            .cases
            .iter()
            .filter(|c| !c.passed())
            .map(case_label)
            .collect();
        failing.sort();
        assert_eq!(
            failing,
            [
                "us-consumer-contact.toml: a call to an attorney-represented consumer is denied",
                "us-consumer-signals.toml: once confirmed, the flag's own rule stops the email (attorney_represented)",
                "us-consumer.toml: an attorney-represented consumer is not emailed",
            ]
        );
        // The active pack passes them all.
        let (active, docs) = set_with(&shipped_policy("us-consumer"));
        let suite = run_suite(&active, &shipped_tests(), &docs).unwrap();
        assert!(suite.report.success(), "{}", suite.report.failures());
    }

    #[test]
    fn tests_the_draft_carries_replace_shipped_cases_and_coverage_follows() {
        let draft = format!("{}{CARRIED}", loosened());
        let (set, docs) = set_with(&draft);
        let shipped = shipped_tests();
        let after = run_suite(&set, &shipped, &docs).unwrap();
        assert!(after.report.success(), "{}", after.report.failures());
        assert_eq!(after.embedded, 3);
        assert_eq!(after.replaced.len(), 3);
        assert!(
            after
                .replaced
                .iter()
                .all(|(r, _)| r.by_policy == "us-consumer")
        );
        // The same cases under the active set.
        let (active, _) = set_with(&shipped_policy("us-consumer"));
        let before = run_suite(&active, &shipped, &docs).unwrap();
        let all = |s: &Suite| -> Vec<CaseResult> {
            s.report
                .cases
                .iter()
                .cloned()
                .chain(s.replaced.iter().map(|(_, c)| c.clone()))
                .collect()
        };
        let ex = exercised(&all(&before), &all(&after));
        assert!(ex.contains("us.attorney-represented"), "{ex:?}");
        assert!(!ex.contains("us.plan.high-risk.ceiling"), "{ex:?}");
        let diff = semantic_diff(&shipped_policy("us-consumer"), &draft).unwrap();
        assert!(diff.tests_changed);
        let flagged = not_covered(&diff, &ex, None);
        assert_eq!(
            flagged.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(),
            ["us.plan.high-risk.ceiling"]
        );
        // An eval case that exercised it covers it.
        let evals = BTreeSet::from(["us.plan.high-risk.ceiling".to_string()]);
        assert!(not_covered(&diff, &ex, Some(&evals)).is_empty());
    }

    #[test]
    fn a_replacement_naming_no_shipped_case_is_an_error_naming_it() {
        let draft = format!(
            "{}{}",
            loosened(),
            CARRIED.replace(
                "us-consumer.toml: an attorney-represented consumer is not emailed",
                "us-consumer.toml: no such case"
            )
        );
        let (set, docs) = set_with(&draft);
        let err = run_suite(&set, &shipped_tests(), &docs)
            .unwrap_err()
            .to_string();
        assert!(err.contains("us-consumer.toml: no such case"), "{err}");
        assert!(err.contains("policies/us-consumer.toml#tests"), "{err}");
    }

    #[test]
    fn carried_tests_must_not_name_another_policy() {
        let draft = format!(
            "{}\n[tests]\npolicy = \"b2b\"\n{}",
            loosened(),
            "[[tests.case]]\nname = \"x\"\nexpect = \"allow\"\naction = { tool = \"read_aging\", args = { customer_id = \"C1\" } }\n"
        );
        let Err(err) = carried_tests("us-consumer", &draft) else {
            panic!("`policy` in [tests] was accepted");
        };
        let err = err.to_string();
        assert!(err.contains("leave out `policy`"), "{err}");
    }

    fn item(
        id: &str,
        source: ReplaySource,
        seg: &str,
        amount: Option<i64>,
        before: (Outcome, &[&str]),
        after: (Outcome, &[&str]),
    ) -> ReplayedItem {
        let j = |(o, rules): (Outcome, &[&str])| Judgement {
            outcome: o,
            rules: rules.iter().map(|r| (r.to_string(), o)).collect(),
        };
        ReplayedItem {
            source,
            id: id.into(),
            href: format!("/queue/{id}"),
            customer_id: "C1".into(),
            tool: "send_email".into(),
            segment: seg.into(),
            amount_minor: amount,
            currency: amount.map(|_| "USD".into()),
            at: DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            recorded: None,
            before: j(before),
            after: j(after),
        }
    }

    #[test]
    fn flips_are_counted_by_transition_rule_segment_and_band() {
        use Outcome::*;
        let items = vec![
            item(
                "a",
                ReplaySource::Pending,
                "low",
                Some(1_500_00),
                (Deny, &["us.attorney-represented"]),
                (Allow, &[]),
            ),
            item(
                "b",
                ReplaySource::Decision,
                "high",
                Some(50_00),
                (Deny, &["us.attorney-represented", "us.quiet-hours"]),
                (Deny, &["us.quiet-hours"]),
            ),
            item(
                "c",
                ReplaySource::Decision,
                "high",
                Some(20_000_00),
                (Deny, &["us.plan.high-risk.ceiling"]),
                (NeedsApproval, &["us.plan.high-risk"]),
            ),
            item(
                "d",
                ReplaySource::Pending,
                "low",
                None,
                (NeedsApproval, &["x"]),
                (NeedsApproval, &["x"]),
            ),
        ];
        let impact = aggregate(items, vec!["skipped one".into()], false);
        assert_eq!(
            (impact.pending, impact.decisions, impact.flipped),
            (2, 2, 2)
        );
        assert_eq!(
            impact.transitions,
            [
                ("deny → allow".to_string(), 1),
                ("deny → needs_approval".to_string(), 1)
            ]
        );
        let rules: Vec<(&str, usize)> = impact
            .by_rule
            .iter()
            .map(|b| (b.key.as_str(), b.flipped))
            .collect();
        assert_eq!(
            rules,
            [
                ("us.attorney-represented", 1),
                ("us.plan.high-risk", 1),
                ("us.plan.high-risk.ceiling", 1)
            ]
        );
        let segs: Vec<(&str, usize)> = impact
            .by_segment
            .iter()
            .map(|b| (b.key.as_str(), b.flipped))
            .collect();
        assert_eq!(segs, [("high", 1), ("low", 1)]);
        let bands: Vec<&str> = impact.by_band.iter().map(|b| b.key.as_str()).collect();
        assert_eq!(bands, ["1,000–10,000 USD", "10,000 USD and over"]);
        // Pending first; the unflipped ones are not listed.
        assert_eq!(
            impact
                .items
                .iter()
                .map(|i| i.id.as_str())
                .collect::<Vec<_>>(),
            ["a", "c"]
        );
        assert_eq!(impact.skipped, ["skipped one"]);
    }

    #[test]
    fn amount_bands_use_the_currencys_minor_units() {
        assert_eq!(amount_band(Some(99_99), Some("USD")), "under 100 USD");
        assert_eq!(amount_band(Some(100_00), Some("USD")), "100–1,000 USD");
        // JPY has no minor unit.
        assert_eq!(
            amount_band(Some(100_000), Some("JPY")),
            "10,000 JPY and over"
        );
        assert_eq!(amount_band(Some(5), None), "no amount");
        assert_eq!(amount_band(None, Some("USD")), "no amount");
    }
}
