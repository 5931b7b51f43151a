//! The compliance check's own eval set (`evals/compliance/*.toml`): email drafts labelled
//! compliant or not (with the category and the jurisdiction), run through a
//! [`ComplianceCheck`], scored for precision and recall per category and overall.
//!
//! A file holds any number of drafts:
//!
//! ```toml
//! [[draft]]
//! id = "us-urgency-48h"                 # unique in the set
//! jurisdiction = "us-consumer"          # us-consumer | uk-consumer | b2b
//! label = "not_compliant"               # compliant | not_compliant
//! category = "false_urgency"            # required for not_compliant; see Category
//! subject = "Your account"
//! body = """..."""
//! inbound = "..."                       # optional: the customer's message it answers
//! note = "why the label is what it is"  # optional
//! ```
//!
//! **Scoring** ([`score_compliance`], pure). A draft is *held* when the check answers a
//! concern or fails (an error or timeout holds the draft in the agent, so it counts as
//! held here too). Overall: a true positive is a not-compliant draft held, a false
//! positive a compliant draft held, a false negative a not-compliant draft passed.
//! Per category C: a true positive is a draft labelled C held *with category C*; a false
//! negative a draft labelled C not held with C (passed, or held under another category);
//! a false positive a draft held with C that is not labelled C (compliant, or another
//! category). Precision is TP ÷ (TP + FP), recall TP ÷ (TP + FN); `None` when the
//! denominator is 0.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use argent_agent::Category;
use argent_agent::compliance::{CheckRequest, ComplianceCheck, Verdict, run_check};
use argent_core::Jurisdiction;

use crate::case::{CaseError, KeyProblem};

/// What a draft is labelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    Compliant,
    NotCompliant,
}

/// One labelled draft of the set.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabelledDraft {
    pub id: String,
    pub jurisdiction: Jurisdiction,
    pub label: Label,
    /// What is wrong with it (not-compliant drafts only).
    #[serde(default)]
    pub category: Option<Category>,
    pub subject: String,
    pub body: String,
    #[serde(default)]
    pub inbound: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
    /// The file it came from (set on load).
    #[serde(skip)]
    pub file: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    #[serde(rename = "draft")]
    drafts: Vec<DraftDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DraftDoc {
    id: String,
    jurisdiction: Jurisdiction,
    label: Label,
    #[serde(default)]
    category: Option<String>,
    subject: String,
    body: String,
    #[serde(default)]
    inbound: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

/// Loads every `*.toml` directly under `dir`, in file-name order. Errors name the file,
/// the draft's key and the problem: a not-compliant draft without a known category, a
/// compliant one with a category, an id used twice, an empty body.
pub fn load_compliance_set(dir: &Path) -> Result<Vec<LabelledDraft>, CaseError> {
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
    let mut out: Vec<LabelledDraft> = Vec::new();
    let mut ids: BTreeSet<String> = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|source| CaseError::Io {
            file: file.clone(),
            source,
        })?;
        let doc: FileDoc = toml::from_str(&text).map_err(|e| CaseError::Invalid {
            file: file.clone(),
            problems: vec![KeyProblem {
                key: String::new(),
                problem: e.message().to_string(),
            }],
        })?;
        let mut problems = Vec::new();
        for (i, d) in doc.drafts.into_iter().enumerate() {
            let key = |k: &str| format!("draft[{i}].{k}");
            if !ids.insert(d.id.clone()) {
                problems.push(KeyProblem {
                    key: key("id"),
                    problem: format!("'{}' is used by another draft", d.id),
                });
            }
            if d.body.trim().is_empty() {
                problems.push(KeyProblem {
                    key: key("body"),
                    problem: "must not be empty".into(),
                });
            }
            let category = match (d.label, d.category.as_deref()) {
                (Label::Compliant, None) => None,
                (Label::Compliant, Some(_)) => {
                    problems.push(KeyProblem {
                        key: key("category"),
                        problem: "a compliant draft has no category".into(),
                    });
                    None
                }
                (Label::NotCompliant, None) => {
                    problems.push(KeyProblem {
                        key: key("category"),
                        problem: "a not_compliant draft must name its category".into(),
                    });
                    None
                }
                (Label::NotCompliant, Some(c)) => match Category::parse(c) {
                    Some(c) if c != Category::Other => Some(c),
                    _ => {
                        problems.push(KeyProblem {
                            key: key("category"),
                            problem: format!(
                                "'{c}' is not a category (one of: {})",
                                Category::ALL
                                    .iter()
                                    .filter(|c| **c != Category::Other)
                                    .map(|c| c.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        });
                        None
                    }
                },
            };
            out.push(LabelledDraft {
                id: d.id,
                jurisdiction: d.jurisdiction,
                label: d.label,
                category,
                subject: d.subject,
                body: d.body,
                inbound: d.inbound,
                note: d.note,
                file: file.clone(),
            });
        }
        if !problems.is_empty() {
            return Err(CaseError::Invalid { file, problems });
        }
    }
    Ok(out)
}

/// What the check made of one draft.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DraftResult {
    pub id: String,
    pub jurisdiction: Jurisdiction,
    pub label: Label,
    pub expected_category: Option<Category>,
    /// Held for a person: a concern, an error or a timeout.
    pub held: bool,
    /// The concern's category (`None` when passed or when the check failed).
    pub category: Option<Category>,
    /// The concern's reason or the error.
    pub reason: Option<String>,
    pub error: bool,
    pub latency_us: u64,
}

/// Confusion counts and the figures derived from them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub tp: u32,
    pub fp: u32,
    pub fn_: u32,
    pub tn: u32,
}

fn ratio(num: u32, den: u32) -> Option<f64> {
    (den > 0).then(|| f64::from(num) / f64::from(den))
}

impl Counts {
    pub fn precision(&self) -> Option<f64> {
        ratio(self.tp, self.tp + self.fp)
    }
    pub fn recall(&self) -> Option<f64> {
        ratio(self.tp, self.tp + self.fn_)
    }
    /// Drafts labelled positive (TP + FN).
    pub fn support(&self) -> u32 {
        self.tp + self.fn_
    }
}

/// The figures of one run over the set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComplianceReport {
    pub checker: String,
    pub results: Vec<DraftResult>,
    pub overall: Counts,
    pub by_category: BTreeMap<Category, Counts>,
    /// Latency of the check per draft, microseconds.
    pub latency_median_us: u64,
    pub latency_p95_us: u64,
    pub latency_max_us: u64,
}

/// The nearest-rank percentile `p` (0..=100) of sorted values; 0 when empty.
fn percentile(sorted: &[u64], p: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[(rank - 1).min(sorted.len() - 1)]
}

/// Scores results (see the module docs for the definitions). Pure.
pub fn score_compliance(checker: &str, results: Vec<DraftResult>) -> ComplianceReport {
    let mut overall = Counts::default();
    let mut by_category: BTreeMap<Category, Counts> = BTreeMap::new();
    let categories: BTreeSet<Category> = results
        .iter()
        .flat_map(|r| [r.expected_category, r.category])
        .flatten()
        .collect();
    for r in &results {
        let positive = r.label == Label::NotCompliant;
        match (positive, r.held) {
            (true, true) => overall.tp += 1,
            (true, false) => overall.fn_ += 1,
            (false, true) => overall.fp += 1,
            (false, false) => overall.tn += 1,
        }
        for c in &categories {
            let labelled = r.expected_category == Some(*c);
            let flagged = r.held && r.category == Some(*c);
            let counts = by_category.entry(*c).or_default();
            match (labelled, flagged) {
                (true, true) => counts.tp += 1,
                (true, false) => counts.fn_ += 1,
                (false, true) => counts.fp += 1,
                (false, false) => counts.tn += 1,
            }
        }
    }
    let mut latencies: Vec<u64> = results.iter().map(|r| r.latency_us).collect();
    latencies.sort_unstable();
    ComplianceReport {
        checker: checker.to_string(),
        overall,
        by_category,
        latency_median_us: percentile(&latencies, 50),
        latency_p95_us: percentile(&latencies, 95),
        latency_max_us: latencies.last().copied().unwrap_or(0),
        results,
    }
}

/// Runs `check` over `drafts` one by one (each with `timeout`, as the agent does) and
/// scores the answers. `instructions` gives the rendered `compliance_check` prompt for a
/// jurisdiction (the model-based check needs it; `None` makes that check fail, which holds).
pub async fn run_compliance(
    check: &dyn ComplianceCheck,
    drafts: &[LabelledDraft],
    instructions: &(dyn Fn(Jurisdiction) -> Option<String> + Sync),
    timeout: Duration,
) -> ComplianceReport {
    let mut results = Vec::with_capacity(drafts.len());
    for d in drafts {
        let prompt = instructions(d.jurisdiction);
        let req = CheckRequest {
            jurisdiction: d.jurisdiction,
            subject: &d.subject,
            body: &d.body,
            inbound: d.inbound.as_deref(),
            instructions: prompt.as_deref(),
        };
        let o = run_check(check, &req, timeout).await;
        let (category, error) = match &o.result {
            Ok(Verdict::Concern { category, .. }) => (Some(*category), false),
            Ok(Verdict::Compliant) => (None, false),
            Err(_) => (None, true),
        };
        results.push(DraftResult {
            id: d.id.clone(),
            jurisdiction: d.jurisdiction,
            label: d.label,
            expected_category: d.category,
            held: o.holds(),
            category,
            reason: o.reason(),
            error,
            latency_us: u64::try_from(o.latency.as_micros()).unwrap_or(u64::MAX),
        });
    }
    score_compliance(&check.name(), results)
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{:.1}%", v * 100.0))
}

impl fmt::Display for ComplianceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "compliance check: {}", self.checker)?;
        writeln!(
            f,
            "{:<24} {:>4} {:>4} {:>4} {:>4} {:>10} {:>8}",
            "category", "n", "tp", "fp", "fn", "precision", "recall"
        )?;
        for (c, k) in &self.by_category {
            writeln!(
                f,
                "{:<24} {:>4} {:>4} {:>4} {:>4} {:>10} {:>8}",
                c.as_str(),
                k.support(),
                k.tp,
                k.fp,
                k.fn_,
                pct(k.precision()),
                pct(k.recall())
            )?;
        }
        let o = &self.overall;
        writeln!(
            f,
            "{:<24} {:>4} {:>4} {:>4} {:>4} {:>10} {:>8}",
            "overall (held or not)",
            o.support(),
            o.tp,
            o.fp,
            o.fn_,
            pct(o.precision()),
            pct(o.recall())
        )?;
        writeln!(
            f,
            "{} drafts ({} compliant); errors: {}",
            self.results.len(),
            self.results
                .iter()
                .filter(|r| r.label == Label::Compliant)
                .count(),
            self.results.iter().filter(|r| r.error).count()
        )?;
        write!(
            f,
            "latency per draft: median {} µs, p95 {} µs, max {} µs",
            self.latency_median_us, self.latency_p95_us, self.latency_max_us
        )
    }
}

impl ComplianceReport {
    /// The drafts the check got wrong: `(id, what happened)`.
    pub fn misses(&self) -> Vec<(String, String)> {
        self.results
            .iter()
            .filter_map(|r| {
                let why = match (r.label, r.held) {
                    (Label::Compliant, true) => format!(
                        "compliant draft held ({})",
                        r.reason.as_deref().unwrap_or("")
                    ),
                    (Label::NotCompliant, false) => format!(
                        "{} draft passed",
                        r.expected_category.map_or("not-compliant", |c| c.as_str())
                    ),
                    (Label::NotCompliant, true) if r.category != r.expected_category => format!(
                        "{} draft held as {}",
                        r.expected_category.map_or("-", |c| c.as_str()),
                        r.category.map_or("an error", |c| c.as_str())
                    ),
                    _ => return None,
                };
                Some((r.id.clone(), why))
            })
            .collect()
    }
}
