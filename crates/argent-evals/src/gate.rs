//! The activation gate of a policy draft: what must hold, and what a person must see,
//! before a draft version of a policy becomes the one the agent works from.
//!
//! [`activation_gate`] puts together, for one stored version:
//! 1. **Policy tests** — the shipped test files (`policies/tests`, [`GateOptions::tests_dir`])
//!    and the `[tests]` every policy document of the draft set carries
//!    ([`argent_policy::gate::run_suite`]) run against the active set with the draft in
//!    place. A failing case (or a test file that does not load) **blocks** activation;
//!    [`GateReport::refusal`] names the cases.
//! 2. **Impact replay** — pending approvals and the audited decisions of the last
//!    [`GateOptions::days`] days judged now under the active and the draft policies
//!    ([`argent_agent::impact`]), with the flips counted by rule, segment and amount band.
//! 3. **Eval set** — the latest eval run of this draft (started from the document's page,
//!    `POST …/eval`), its verdict and link; not run here (it takes minutes).
//! 4. **Semantic diff and coverage** — the rules the draft adds, removes or changes, and
//!    the deleted or loosened ones that no test case and no eval case exercises ("not
//!    covered"): a case exercises a change when its decision for that rule differs
//!    between the active set and the draft.
//!
//! Only a policy draft is gated; for a prompt or procedure the report says it does not
//! apply. Nothing here writes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::Value;

use argent_agent::impact::ReplayOptions;
use argent_agent::{Agent, AgentError, DocumentSet};
use argent_policy::gate::{
    Impact, NotCovered, Replacement, SemanticDiff, Suite, aggregate, case_label, exercised,
    not_covered, run_suite, semantic_diff,
};
use argent_policy::testing::CaseResult;
use argent_store::{DocKind, EvalRunStatus};

use crate::report::Report;

/// What the gate reads.
#[derive(Clone, Debug)]
pub struct GateOptions {
    /// The shipped policy tests (`policies/tests`); `None`: only the tests documents carry.
    pub tests_dir: Option<PathBuf>,
    /// Audited decisions of this many days back are replayed (default 30).
    pub days: u32,
    /// At most this many audited decisions (the newest) and pending items are replayed.
    pub max_decisions: usize,
    pub max_pending: usize,
    /// Run the impact replay (default). Activation itself needs only the tests and turns
    /// it off; the gate page and API run it.
    pub replay: bool,
}

impl Default for GateOptions {
    fn default() -> Self {
        GateOptions {
            tests_dir: None,
            days: 30,
            max_decisions: 5_000,
            max_pending: 5_000,
            replay: true,
        }
    }
}

/// A policy test case that fails under the draft.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FailingTest {
    /// `FILE: CASE NAME` (`us-consumer.toml#tests: …` for a case a document carries).
    pub case: String,
    pub why: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TestsSummary {
    pub total: usize,
    pub passed: usize,
    pub failed: usize,
    /// The shipped tests directory, when one is configured.
    pub shipped_dir: Option<String>,
    pub shipped_files: usize,
    /// Cases carried in policy documents (`[tests]`).
    pub carried: usize,
    /// Shipped cases the documents' cases stand in for.
    pub replaced: Vec<Replacement>,
}

/// The latest eval run of the draft, as the gate shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalStatus {
    pub id: String,
    pub status: String,
    pub href: String,
    /// The stored summary (pass counts, violations, the comparison's verdict).
    pub summary: Option<Value>,
    /// Whether its reports say which rules fired (reports written before they did not).
    pub rules_known: bool,
}

/// Everything the gate found for one draft version.
#[derive(Clone, Debug, Serialize)]
pub struct GateReport {
    pub kind: String,
    pub name: String,
    pub version: i64,
    /// Only policy drafts are gated.
    pub applies: bool,
    /// Activation must be refused: a policy test fails or does not load.
    pub blocked: bool,
    pub failing_tests: Vec<FailingTest>,
    /// A test file or a document's `[tests]` that does not load (blocks).
    pub test_error: Option<String>,
    pub tests: TestsSummary,
    /// What the draft changes against the active version (every rule "added" for a new
    /// document).
    pub diff: SemanticDiff,
    /// The version the diff and the replay compare with (`None`: nothing active yet).
    pub active_version: Option<i64>,
    pub days: u32,
    pub since: DateTime<Utc>,
    pub impact: Impact,
    pub eval: Option<EvalStatus>,
    pub not_covered: Vec<NotCovered>,
}

impl GateReport {
    /// The error activation answers with when the gate blocks: the failing cases by name.
    pub fn refusal(&self) -> Option<String> {
        if !self.blocked {
            return None;
        }
        let what = format!("{} {} version {}", self.kind, self.name, self.version);
        if let Some(e) = &self.test_error {
            return Some(format!(
                "activation refused: the policy tests do not load with {what}: {e}"
            ));
        }
        let names: Vec<&str> = self.failing_tests.iter().map(|f| f.case.as_str()).collect();
        Some(format!(
            "activation refused: {} policy test(s) fail with {what}: {}",
            names.len(),
            names.join("; ")
        ))
    }
}

/// The shipped test files of `dir` (`*.toml`, by name).
fn read_tests_dir(dir: &Path) -> Result<Vec<(String, String)>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            std::fs::read_to_string(&p)
                .map(|t| (name, t))
                .map_err(|e| format!("{}: {e}", p.display()))
        })
        .collect()
}

fn all_cases(s: &Suite) -> Vec<CaseResult> {
    s.report
        .cases
        .iter()
        .cloned()
        .chain(s.replaced.iter().map(|(_, c)| c.clone()))
        .collect()
}

/// What the tests found: the suite under the draft, the changes they exercise, or why
/// they could not run.
struct TestOutcome {
    suite: Result<Suite, String>,
    exercised: BTreeSet<String>,
    shipped_files: usize,
}

fn run_tests(active: &DocumentSet, draft: &DocumentSet, tests_dir: Option<&Path>) -> TestOutcome {
    let shipped = match tests_dir.map(read_tests_dir).transpose() {
        Ok(files) => files.unwrap_or_default(),
        Err(e) => {
            return TestOutcome {
                suite: Err(e),
                exercised: BTreeSet::new(),
                shipped_files: 0,
            };
        }
    };
    let shipped_files = shipped.len();
    let carriers: Vec<(String, String)> = draft
        .policies
        .iter()
        .map(|(n, t)| (n.clone(), t.clone()))
        .collect();
    let after = draft
        .policy_set()
        .map_err(|e| e.to_string())
        .and_then(|set| run_suite(&set, &shipped, &carriers).map_err(|e| e.to_string()));
    let exercised = match (&after, active.policy_set()) {
        (Ok(after), Ok(set)) => match run_suite(&set, &shipped, &carriers) {
            Ok(before) => exercised(&all_cases(&before), &all_cases(after)),
            Err(_) => BTreeSet::new(),
        },
        _ => BTreeSet::new(),
    };
    TestOutcome {
        suite: after,
        exercised,
        shipped_files,
    }
}

/// Rules whose firing differs, case by case, between the baseline and the draft reports
/// of an eval run (the rules of all attempts of a case together).
fn eval_exercised(baseline: &Report, draft: &Report) -> BTreeSet<String> {
    let rules = |r: &Report| -> BTreeMap<String, BTreeSet<String>> {
        r.cases
            .iter()
            .map(|c| {
                (
                    c.id.clone(),
                    c.attempts
                        .iter()
                        .flat_map(|a| a.rules.iter().cloned())
                        .collect(),
                )
            })
            .collect()
    };
    let (b, d) = (rules(baseline), rules(draft));
    let mut out = BTreeSet::new();
    for (case, before) in &b {
        let after = d.get(case).cloned().unwrap_or_default();
        out.extend(before.symmetric_difference(&after).cloned());
    }
    out
}

fn has_rules(r: &Report) -> bool {
    r.cases
        .iter()
        .any(|c| c.attempts.iter().any(|a| !a.rules.is_empty()))
}

/// The latest eval run of `(kind, name, version)` among the newest runs, and the rules its
/// cases exercise when it is done and its reports record them.
async fn latest_eval(
    agent: &Agent,
    kind: DocKind,
    name: &str,
    version: i64,
) -> Result<(Option<EvalStatus>, Option<BTreeSet<String>>), AgentError> {
    let runs = agent.store.eval_runs(200, 0).await?;
    let Some(run) = runs.into_iter().find(|r| {
        r.doc_kind.as_deref() == Some(kind.as_str())
            && r.doc_name.as_deref() == Some(name)
            && r.doc_version == Some(version)
    }) else {
        return Ok((None, None));
    };
    let mut status = EvalStatus {
        id: run.id.clone(),
        status: run.status.as_str().to_string(),
        href: format!("/evals/{}", run.id),
        summary: run.summary.clone(),
        rules_known: false,
    };
    let mut exercised = None;
    if run.status == EvalRunStatus::Done
        && let Some(base_id) = &run.baseline_id
    {
        let report = |v: Option<Value>| v.and_then(|v| serde_json::from_value::<Report>(v).ok());
        let draft = report(agent.store.eval_run(&run.id).await?.report);
        let base = report(agent.store.eval_run(base_id).await?.report);
        if let (Some(b), Some(d)) = (base, draft)
            && (has_rules(&b) || has_rules(&d))
        {
            status.rules_known = true;
            exercised = Some(eval_exercised(&b, &d));
        }
    }
    Ok((Some(status), exercised))
}

/// Runs the gate for version `version` of `(kind, name)` against what is active now, with
/// `agent` the running (active) agent. Reads only.
pub async fn activation_gate(
    agent: &Agent,
    kind: DocKind,
    name: &str,
    version: i64,
    opts: &GateOptions,
) -> Result<GateReport, AgentError> {
    let store = &agent.store;
    let doc = store.document(kind, name, version).await?;
    let active_versions = store.active_documents().await?;
    let active = DocumentSet::from_versions(&active_versions);
    let active_version = active_versions
        .iter()
        .find(|v| v.kind == kind && v.name == name)
        .map(|v| v.version);
    let since = agent.now() - Duration::days(i64::from(opts.days));
    let mut report = GateReport {
        kind: kind.as_str().to_string(),
        name: name.to_string(),
        version,
        applies: kind == DocKind::Policy,
        blocked: false,
        failing_tests: Vec::new(),
        test_error: None,
        tests: TestsSummary::default(),
        diff: SemanticDiff::default(),
        active_version,
        days: opts.days,
        since,
        impact: Impact::default(),
        eval: None,
        not_covered: Vec::new(),
    };
    if !report.applies {
        return Ok(report);
    }
    let draft = active.with_document(kind, name, &doc.body);
    let old = active.get(kind, name).unwrap_or_default().to_string();
    report.diff = semantic_diff(&old, &doc.body).map_err(AgentError::Io)?;

    let tests_dir = opts.tests_dir.clone();
    let (a, d) = (active.clone(), draft.clone());
    let tests = tokio::task::spawn_blocking(move || run_tests(&a, &d, tests_dir.as_deref()))
        .await
        .map_err(|e| AgentError::Invariant(format!("the policy tests did not finish: {e}")))?;
    report.tests.shipped_dir = opts.tests_dir.as_ref().map(|d| d.display().to_string());
    report.tests.shipped_files = tests.shipped_files;
    match tests.suite {
        Ok(suite) => {
            report.tests.total = suite.report.total();
            report.tests.passed = suite.report.passed();
            report.tests.failed = suite.report.failed();
            report.tests.carried = suite.embedded;
            report.tests.replaced = suite.replaced.iter().map(|(r, _)| r.clone()).collect();
            report.failing_tests = suite
                .report
                .cases
                .iter()
                .filter(|c| !c.passed())
                .map(|c| FailingTest {
                    case: case_label(c),
                    why: c.failure.clone().unwrap_or_default(),
                })
                .collect();
        }
        Err(e) => report.test_error = Some(e),
    }
    report.blocked = report.test_error.is_some() || !report.failing_tests.is_empty();

    // The replay needs the draft set to load; a draft that does not is blocked above.
    if opts.replay
        && let Ok(draft_set) = draft.policy_set()
    {
        let replay = agent
            .replay_under(
                &draft_set,
                &ReplayOptions {
                    since,
                    max_decisions: opts.max_decisions,
                    max_pending: opts.max_pending,
                },
            )
            .await?;
        report.impact = aggregate(replay.items, replay.skipped, replay.truncated);
    }

    let (eval, eval_rules) = latest_eval(agent, kind, name, version).await?;
    report.eval = eval;
    report.not_covered = not_covered(&report.diff, &tests.exercised, eval_rules.as_ref());
    Ok(report)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::report::{AttemptReport, CaseReport, Labels, Totals};

    fn report(cases: &[(&str, &[&str])]) -> Report {
        Report {
            format: "argent-eval-report".into(),
            version: 1,
            set: "core".into(),
            labels: Labels::default(),
            repeat: 1,
            started_at: None,
            duration_ms: 0,
            cases: cases
                .iter()
                .map(|(id, rules)| CaseReport {
                    id: (*id).into(),
                    title: String::new(),
                    tags: Vec::new(),
                    passed: true,
                    attempts: vec![AttemptReport {
                        attempt: 0,
                        passed: true,
                        failures: Vec::new(),
                        violations: Vec::new(),
                        tokens: 0,
                        latency_ms: 0,
                        error: None,
                        calls: Vec::new(),
                        rules: rules.iter().map(|r| (*r).into()).collect(),
                        executed: 0,
                        queued: 0,
                        refused: 0,
                        invalid: 0,
                    }],
                })
                .collect(),
            totals: Totals::default(),
        }
    }

    #[test]
    fn an_eval_case_exercises_the_rules_whose_firing_differs() {
        let base = report(&[
            ("a", &["us.plan.high-risk.ceiling"]),
            ("b", &["us.quiet-hours"]),
        ]);
        let draft = report(&[("a", &["us.plan.high-risk"]), ("b", &["us.quiet-hours"])]);
        let ex = eval_exercised(&base, &draft);
        assert_eq!(
            ex.into_iter().collect::<Vec<_>>(),
            ["us.plan.high-risk", "us.plan.high-risk.ceiling"]
        );
        assert!(has_rules(&base));
        assert!(!has_rules(&report(&[("a", &[])])));
    }

    #[test]
    fn a_blocked_report_refuses_naming_the_cases() {
        let mut r = GateReport {
            kind: "policy".into(),
            name: "us-consumer".into(),
            version: 2,
            applies: true,
            blocked: false,
            failing_tests: Vec::new(),
            test_error: None,
            tests: TestsSummary::default(),
            diff: SemanticDiff::default(),
            active_version: Some(1),
            days: 30,
            since: Utc::now(),
            impact: Impact::default(),
            eval: None,
            not_covered: Vec::new(),
        };
        assert_eq!(r.refusal(), None);
        r.blocked = true;
        r.failing_tests = vec![
            FailingTest {
                case: "us-consumer.toml: an attorney-represented consumer is not emailed".into(),
                why: "expected deny, got allow".into(),
            },
            FailingTest {
                case:
                    "us-consumer-contact.toml: a call to an attorney-represented consumer is denied"
                        .into(),
                why: "expected deny, got allow".into(),
            },
        ];
        let msg = r.refusal().unwrap();
        assert!(
            msg.starts_with(
                "activation refused: 2 policy test(s) fail with policy us-consumer version 2: "
            ),
            "{msg}"
        );
        assert!(msg.contains("us-consumer.toml: an attorney-represented consumer is not emailed; us-consumer-contact.toml"), "{msg}");
    }
}
