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
//! rules = []                        # optional: exactly the rule ids expected to fire
//! context = { initial_communication_sent = false }   # optional, merged into the base
//! action = { tool = "read_aging", args = { customer_id = "C1" } }
//!
//! [[case]]
//! name = "a threat of court on a time-barred debt is denied"
//! expect = "deny"                   # the outcome alone may be the whole assertion ...
//! must_fire = ["uk.time-barred.threat"]        # ... with ids that must be among those fired
//! must_not_fire = ["uk.required.debt-advice"]  # ... and ids that must not be
//! action = { ... }
//! ```
//!
//! `rules` keeps meaning "exactly these" (old files use it everywhere). A case without
//! `rules` asserts only its outcome and its `must_fire` / `must_not_fire` lists, the way a
//! compliance officer states a case. Every id in those lists must be a rule of the policy
//! (or an engine invariant, [`crate::eval::ENGINE_RULES`]): a misspelt `must_not_fire` id
//! would otherwise pass for ever, so an unknown id fails the case. An id in both lists is
//! a failure too.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use argent_core::{Action, Decision, Outcome, Role};

use crate::context::Context;
use crate::error::PolicyError;
use crate::eval::evaluate;
use crate::policy::Policy;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestFile {
    pub(crate) policy: String,
    #[serde(default)]
    pub(crate) context: Option<toml::Table>,
    #[serde(rename = "case")]
    pub(crate) cases: Vec<TestCaseDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestCaseDoc {
    pub(crate) name: String,
    /// Tests carried in a policy document only (`[[tests.case]]`): the shipped case this
    /// one stands in for, as `FILE: CASE NAME` (see [`crate::gate::run_suite`]).
    #[serde(default)]
    pub(crate) replaces: Option<String>,
    expect: Outcome,
    /// Exactly the rule ids that must fire, when given.
    #[serde(default)]
    rules: Option<Vec<String>>,
    /// Rule ids that must be among those fired.
    #[serde(default)]
    must_fire: Vec<String>,
    /// Rule ids that must not fire.
    #[serde(default)]
    must_not_fire: Vec<String>,
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
    /// Exactly these rules must fire (`rules = [...]`), when the case says so.
    pub expected_rules: Option<Vec<String>>,
    /// Rules that must be among those fired.
    pub must_fire: Vec<String>,
    /// Rules that must not fire.
    pub must_not_fire: Vec<String>,
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

impl TestReport {
    /// The failing cases only, each as in the full report (no totals).
    pub fn failures(&self) -> Failures<'_> {
        Failures(self)
    }
}

/// The failing cases of a [`TestReport`], for `--quiet` output.
pub struct Failures<'a>(&'a TestReport);

impl fmt::Display for Failures<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.cases.iter().filter(|c| !c.passed()) {
            write_case(f, c)?;
        }
        Ok(())
    }
}

fn write_case(f: &mut fmt::Formatter<'_>, c: &CaseResult) -> fmt::Result {
    let file = c.file.file_name().map_or_else(
        || c.file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    match &c.failure {
        None => writeln!(f, "PASS {file}: {} ({})", c.name, c.expected),
        Some(why) => {
            writeln!(f, "FAIL {file}: {}", c.name)?;
            for line in why.lines() {
                writeln!(f, "     {line}")?;
            }
            Ok(())
        }
    }
}

/// Every case, a line of expected outcomes, and the totals as the last line (no newline
/// after it: print it with `println!`).
impl fmt::Display for TestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.cases {
            write_case(f, c)?;
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
    run_policy_tests_in(policies_dir, &policies_dir.join("tests"))
}

/// [`run_policy_tests`] with the test files from `tests_dir` instead of
/// `policies_dir/tests`: e.g. the repository's tests against policies exported from a
/// database (`argent docs export`).
pub fn run_policy_tests_in(
    policies_dir: &Path,
    tests_dir: &Path,
) -> Result<TestReport, PolicyError> {
    let tests_dir = tests_dir.to_path_buf();
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
    let doc = parse_test_text(file, &text)?;
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
    for (replaces, case) in run_doc(file, doc, policy)? {
        if replaces.is_some() {
            return Err(PolicyError::invalid(
                file,
                "case.replaces",
                "`replaces` is only for tests carried in a policy document ([[tests.case]])",
            ));
        }
        report.cases.push(case);
    }
    Ok(())
}

/// A policy test file's text, parsed (errors at their line and column).
pub(crate) fn parse_test_text(file: &Path, text: &str) -> Result<TestFile, PolicyError> {
    toml::from_str(text)
        .map_err(|e| PolicyError::invalid(file, crate::policy::toml_at(text, &e), e.message()))
}

/// Runs every case of `doc` against `policy`; each result with the case's `replaces`.
/// `file` names the source in errors and results.
pub(crate) fn run_doc(
    file: &Path,
    doc: TestFile,
    policy: &Policy,
) -> Result<Vec<(Option<String>, CaseResult)>, PolicyError> {
    let mut out = Vec::with_capacity(doc.cases.len());
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
        problems.extend(rule_problems(
            policy,
            &decision,
            case.rules.as_deref(),
            &case.must_fire,
            &case.must_not_fire,
        ));
        if let Some(approvers) = &case.approvers {
            let got = decision.approvers();
            if &got != approvers {
                problems.push(format!("expected approvers {approvers:?}, got {got:?}"));
            }
        }
        let failure = (!problems.is_empty())
            .then(|| format!("{}\ndecision: {decision}", problems.join("; ")));
        out.push((
            case.replaces,
            CaseResult {
                file: file.to_path_buf(),
                name: case.name,
                policy: doc.policy.clone(),
                expected: case.expect,
                expected_rules: case.rules,
                must_fire: case.must_fire,
                must_not_fire: case.must_not_fire,
                decision,
                failure,
            },
        ));
    }
    Ok(out)
}

/// What is wrong with the rules `decision` fired against a case's rule assertions:
/// `exact` (every id fired, no other), `must_fire` (each among those fired) and
/// `must_not_fire` (none fired). Ids that are no rule of `policy` nor an engine invariant,
/// and ids in both lists, are problems in themselves.
fn rule_problems(
    policy: &Policy,
    decision: &Decision,
    exact: Option<&[String]>,
    must_fire: &[String],
    must_not_fire: &[String],
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut got: Vec<&str> = decision.rule_ids();
    got.sort_unstable();
    got.dedup();
    if let Some(exact) = exact {
        let mut want: Vec<&str> = exact.iter().map(String::as_str).collect();
        want.sort_unstable();
        want.dedup();
        if got != want {
            problems.push(format!("expected rules {want:?}, got {got:?}"));
        }
    }
    let known = policy.rule_ids();
    let unknown: Vec<&str> = must_fire
        .iter()
        .chain(must_not_fire)
        .map(String::as_str)
        .filter(|id| !known.contains(id) && !crate::eval::ENGINE_RULES.contains(id))
        .collect();
    if !unknown.is_empty() {
        problems.push(format!(
            "{unknown:?}: not a rule of policy '{}' nor an engine rule",
            policy.id
        ));
    }
    let both: Vec<&str> = must_fire
        .iter()
        .filter(|id| must_not_fire.contains(id))
        .map(String::as_str)
        .collect();
    if !both.is_empty() {
        problems.push(format!("{both:?}: both in must_fire and must_not_fire"));
    }
    let missing: Vec<&str> = must_fire
        .iter()
        .map(String::as_str)
        .filter(|id| !got.contains(id))
        .collect();
    if !missing.is_empty() {
        problems.push(format!("expected {missing:?} to fire, got {got:?}"));
    }
    let unwanted: Vec<&str> = must_not_fire
        .iter()
        .map(String::as_str)
        .filter(|id| got.contains(id))
        .collect();
    if !unwanted.is_empty() {
        problems.push(format!("expected {unwanted:?} not to fire, got {got:?}"));
    }
    problems
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const BASE: &str = r#"
policy = "us-consumer"
[context]
now = "2026-03-10T15:00:00Z"
segment = "medium"
initial_communication_sent = true
[context.customer]
id = "C1"
name = "Dana Reyes"
tier = "standard"
jurisdiction = "us-consumer"
time_zone = "America/New_York"
contacts = [{ name = "Dana Reyes", email = "dana@example.com", opted_out = [] }]
flags = { cease_contact = false, disputed = false, bankrupt = false, attorney_represented = false }
[[context.invoices]]
number = "INV-1"
currency = "USD"
amount_minor = 120000
open_minor = 120000
due_date = "2026-01-15"
"#;

    /// An email that threatens arrest and lacks the subsequent disclosure: it fires
    /// `us.threat-arrest` and `us.subsequent-disclosure` (and is denied).
    const THREAT: &str = r#"
[case.action]
tool = "send_email"
[case.action.args]
customer_id = "C1"
to = "dana@example.com"
subject = "Your account"
body = "Pay now or you will be arrested. To stop receiving these emails, reply STOP."
"#;

    /// Runs one test file of `cases` (each a `[[case]]` header's keys, then `THREAT`'s
    /// action) against a copy of the shipped us-consumer pack; the report's cases.
    fn run(cases: &[&str]) -> Vec<CaseResult> {
        let dir = tempfile::tempdir().unwrap();
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
        std::fs::copy(
            shipped.join("us-consumer.toml"),
            dir.path().join("us-consumer.toml"),
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("tests")).unwrap();
        let mut text = BASE.to_string();
        for (i, keys) in cases.iter().enumerate() {
            text.push_str(&format!(
                "\n[[case]]\nname = \"case {i}\"\n{keys}\n{THREAT}"
            ));
        }
        std::fs::write(dir.path().join("tests/t.toml"), text).unwrap();
        run_policy_tests(dir.path()).unwrap().cases
    }

    fn verdicts(cases: &[&str]) -> Vec<bool> {
        run(cases).iter().map(CaseResult::passed).collect()
    }

    #[test]
    fn the_outcome_alone_is_an_assertion() {
        assert_eq!(
            verdicts(&["expect = \"deny\"", "expect = \"allow\""]),
            [true, false]
        );
    }

    #[test]
    fn rules_keeps_meaning_exactly_these() {
        let got = verdicts(&[
            r#"expect = "deny"
rules = ["us.threat-arrest", "us.subsequent-disclosure"]"#,
            // One fired rule missing from the list.
            r#"expect = "deny"
rules = ["us.threat-arrest"]"#,
            // The old "nothing fires" form still means nothing.
            r#"expect = "deny"
rules = []"#,
        ]);
        assert_eq!(got, [true, false, false]);
    }

    #[test]
    fn must_fire_is_a_subset_and_must_not_fire_excludes() {
        let got = verdicts(&[
            r#"expect = "deny"
must_fire = ["us.threat-arrest"]"#,
            r#"expect = "deny"
must_fire = ["us.threat-arrest", "us.abusive-language"]"#,
            r#"expect = "deny"
must_not_fire = ["us.abusive-language"]"#,
            r#"expect = "deny"
must_not_fire = ["us.subsequent-disclosure"]"#,
            r#"expect = "deny"
must_fire = ["us.threat-arrest"]
must_not_fire = ["us.abusive-language", "us.false-urgency"]"#,
            // The outcome still counts when the rule lists hold.
            r#"expect = "needs_approval"
must_fire = ["us.threat-arrest"]"#,
        ]);
        assert_eq!(got, [true, false, true, false, true, false]);
    }

    #[test]
    fn rules_and_must_lists_combine() {
        let got = verdicts(&[
            r#"expect = "deny"
rules = ["us.threat-arrest", "us.subsequent-disclosure"]
must_fire = ["us.threat-arrest"]"#,
            r#"expect = "deny"
rules = ["us.threat-arrest", "us.subsequent-disclosure"]
must_not_fire = ["us.threat-arrest"]"#,
        ]);
        assert_eq!(got, [true, false]);
    }

    #[test]
    fn unknown_or_contradictory_ids_fail_the_case_and_say_why() {
        let cases = run(&[
            // A misspelt id would make must_not_fire pass for ever.
            r#"expect = "deny"
must_not_fire = ["us.threat-arest"]"#,
            r#"expect = "deny"
must_fire = ["us.threat-arrest"]
must_not_fire = ["us.threat-arrest"]"#,
            // Engine invariants are known ids.
            r#"expect = "deny"
must_not_fire = ["engine.customer-mismatch"]"#,
        ]);
        let why: Vec<String> = cases
            .iter()
            .map(|c| c.failure.clone().unwrap_or_default())
            .collect();
        assert!(
            why[0].contains("us.threat-arest") && why[0].contains("not a rule"),
            "{why:?}"
        );
        assert!(
            why[1].contains("both in must_fire and must_not_fire"),
            "{why:?}"
        );
        assert!(cases[2].passed(), "{why:?}");
    }

    #[test]
    fn an_unknown_case_key_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
        std::fs::copy(
            shipped.join("us-consumer.toml"),
            dir.path().join("us-consumer.toml"),
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("tests")).unwrap();
        let text =
            format!("{BASE}\n[[case]]\nname = \"x\"\nexpect = \"deny\"\nmust_fires = []\n{THREAT}");
        std::fs::write(dir.path().join("tests/t.toml"), text).unwrap();
        let err = run_policy_tests(dir.path()).unwrap_err().to_string();
        assert!(err.contains("must_fires"), "{err}");
    }

    #[test]
    fn the_report_ends_with_its_totals_on_their_own_line() {
        let report = TestReport {
            cases: run(&["expect = \"deny\"", "expect = \"allow\""]),
        };
        let text = report.to_string();
        let last = text.lines().last().unwrap();
        assert_eq!(last, "1 passed, 1 failed");
        assert!(text.contains("PASS t.toml: case 0 (deny)"), "{text}");
        assert!(text.contains("FAIL t.toml: case 1"), "{text}");
        let failures = report.failures().to_string();
        assert!(!failures.contains("PASS"), "{failures}");
        assert!(failures.contains("FAIL t.toml: case 1"), "{failures}");
    }
}
