//! Policy tests, in the spirit of `opa test`: tables of action + context + expected
//! decision, kept beside the policies in `policies/tests/*.toml`.
//!
//! ```toml
//! policy = "us-consumer"            # policies/us-consumer.toml
//! [context]                         # base context for every case in the file
//! now = "2026-03-10T15:00:00Z"
//! ...
//! [[case]]
//! name = "a polite reminder with the disclosures is allowed"
//! expect = "allow"                  # allow | needs_approval | deny
//! rules = []                        # exactly the rule ids expected to fire
//! context = { initial_communication_sent = false }   # optional, merged into the base
//! action = { tool = "read_aging", args = { customer_id = "C1" } }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use argent_core::{Action, Decision, Outcome, Role};

use crate::context::Context;
use crate::error::{PolicyError, line_col};
use crate::eval::evaluate;
use crate::policy::Policy;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    policy: String,
    #[serde(default)]
    context: Option<toml::Table>,
    #[serde(rename = "case")]
    cases: Vec<TestCaseDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestCaseDoc {
    name: String,
    expect: Outcome,
    #[serde(default)]
    rules: Vec<String>,
    #[serde(default)]
    approvers: Option<Vec<Role>>,
    #[serde(default)]
    context: Option<toml::Table>,
    action: toml::Value,
}

/// One case's result.
#[derive(Clone, Debug)]
pub struct CaseResult {
    pub file: PathBuf,
    pub name: String,
    pub policy: String,
    pub expected: Outcome,
    pub expected_rules: Vec<String>,
    pub decision: Decision,
    /// Why the case failed; `None` when it passed.
    pub failure: Option<String>,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// The result of running every policy test file in a directory.
#[derive(Clone, Debug, Default)]
pub struct TestReport {
    pub cases: Vec<CaseResult>,
}

impl TestReport {
    pub fn total(&self) -> usize {
        self.cases.len()
    }
    pub fn passed(&self) -> usize {
        self.cases.iter().filter(|c| c.passed()).count()
    }
    pub fn failed(&self) -> usize {
        self.total() - self.passed()
    }
    /// True when at least one case ran and none failed.
    pub fn success(&self) -> bool {
        self.total() > 0 && self.failed() == 0
    }
    /// How many cases expect each outcome.
    pub fn expected_counts(&self) -> BTreeMap<Outcome, usize> {
        let mut m = BTreeMap::new();
        for c in &self.cases {
            *m.entry(c.expected).or_insert(0) += 1;
        }
        m
    }
    /// Share of cases expected to be allowed, in percent (0 when there are none).
    pub fn allow_percent(&self) -> f64 {
        let allow = self
            .expected_counts()
            .get(&Outcome::Allow)
            .copied()
            .unwrap_or(0);
        if self.cases.is_empty() {
            0.0
        } else {
            allow as f64 * 100.0 / self.cases.len() as f64
        }
    }
}

impl fmt::Display for TestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.cases {
            let file = c.file.file_name().map_or_else(
                || c.file.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            match &c.failure {
                None => writeln!(f, "PASS {file}: {} ({})", c.name, c.expected)?,
                Some(why) => {
                    writeln!(f, "FAIL {file}: {}", c.name)?;
                    for line in why.lines() {
                        writeln!(f, "     {line}")?;
                    }
                }
            }
        }
        let counts = self.expected_counts();
        let n = |o: Outcome| counts.get(&o).copied().unwrap_or(0);
        writeln!(
            f,
            "expected outcomes: {} allow ({:.0}%), {} needs_approval, {} deny",
            n(Outcome::Allow),
            self.allow_percent(),
            n(Outcome::NeedsApproval),
            n(Outcome::Deny)
        )?;
        write!(f, "{} passed, {} failed", self.passed(), self.failed())
    }
}

/// Deep-merges `over` into `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Table, over: &toml::Table) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Runs every `tests/*.toml` under `policies_dir` against the policy it names
/// (`policies_dir/<policy>.toml`). Errors are for files that cannot be read or are not
/// valid test files or policies; a case that does not get its expected decision is a
/// failure in the report, not an error.
pub fn run_policy_tests(policies_dir: &Path) -> Result<TestReport, PolicyError> {
    let tests_dir = policies_dir.join("tests");
    let read_dir = std::fs::read_dir(&tests_dir).map_err(|source| PolicyError::Io {
        file: tests_dir.clone(),
        source,
    })?;
    let mut files: Vec<PathBuf> = read_dir
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let mut policies: BTreeMap<String, Policy> = BTreeMap::new();
    let mut report = TestReport::default();
    for file in files {
        run_file(policies_dir, &file, &mut policies, &mut report)?;
    }
    Ok(report)
}

fn run_file(
    policies_dir: &Path,
    file: &Path,
    policies: &mut BTreeMap<String, Policy>,
    report: &mut TestReport,
) -> Result<(), PolicyError> {
    let text = std::fs::read_to_string(file).map_err(|source| PolicyError::Io {
        file: file.to_path_buf(),
        source,
    })?;
    let doc: TestFile = toml::from_str(&text).map_err(|e| {
        let key = e
            .span()
            .map(|s| {
                let (l, c) = line_col(&text, s.start);
                format!("(line {l}, column {c})")
            })
            .unwrap_or_default();
        PolicyError::invalid(file, key, e.message().to_string())
    })?;
    if !policies.contains_key(&doc.policy) {
        let safe = !doc.policy.is_empty()
            && doc
                .policy
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !safe {
            return Err(PolicyError::invalid(
                file,
                "policy",
                format!("'{}' is not a policy name", doc.policy),
            ));
        }
        let policy = Policy::load(&policies_dir.join(format!("{}.toml", doc.policy)))?;
        policies.insert(doc.policy.clone(), policy);
    }
    let Some(policy) = policies.get(&doc.policy) else {
        return Ok(());
    };
    let base = doc.context.unwrap_or_default();
    for (i, case) in doc.cases.into_iter().enumerate() {
        let key = |k: &str| format!("case[{i}].{k}");
        let mut ctx_table = base.clone();
        if let Some(over) = &case.context {
            merge(&mut ctx_table, over);
        }
        let ctx: Context =
            toml::Value::Table(ctx_table)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    PolicyError::invalid(file, key("context"), e.message().to_string())
                })?;
        let action: Action = case.action.try_into().map_err(|e: toml::de::Error| {
            PolicyError::invalid(file, key("action"), e.message().to_string())
        })?;
        let decision = evaluate(policy, &action, &ctx);
        let mut problems = Vec::new();
        if decision.outcome != case.expect {
            problems.push(format!(
                "expected {}, got {}",
                case.expect, decision.outcome
            ));
        }
        let mut got: Vec<&str> = decision.rule_ids();
        got.sort_unstable();
        got.dedup();
        let mut want: Vec<&str> = case.rules.iter().map(String::as_str).collect();
        want.sort_unstable();
        want.dedup();
        if got != want {
            problems.push(format!("expected rules {want:?}, got {got:?}"));
        }
        if let Some(approvers) = &case.approvers {
            let got = decision.approvers();
            if &got != approvers {
                problems.push(format!("expected approvers {approvers:?}, got {got:?}"));
            }
        }
        let failure = (!problems.is_empty())
            .then(|| format!("{}\ndecision: {decision}", problems.join("; ")));
        report.cases.push(CaseResult {
            file: file.to_path_buf(),
            name: case.name,
            policy: doc.policy.clone(),
            expected: case.expect,
            expected_rules: case.rules,
            decision,
            failure,
        });
    }
    Ok(())
}
