//! # argent-evals — offline evals against recorded threads
//!
//! * [`EvalSet`] / [`EvalCase`]: the eval-set format, one TOML file per case under
//!   `evals/<set>/` (documented in `evals/README.md`), validated on load; every error names
//!   the file, the key and the problem.
//! * [`CaseRunner`]: the boundary with the agent. The agent integration seeds a fresh store
//!   with a case, feeds its inbound messages as triggers and reports a [`CaseOutcome`].
//! * [`score`] / [`score_with`]: pure scoring of one outcome against one case.
//! * [`run_set`]: runs cases concurrently (bounded), `repeat` times each, into a [`Report`]
//!   (JSON via [`Report::write_json`], self-contained HTML via [`Report::to_html`], an
//!   embeddable fragment via [`Report::to_html_fragment`]; [`report_summary`] for lists).
//! * [`compare`]: flips and metric deltas between two reports, gated by a [`Gate`];
//!   [`Comparison::regressed`] tells a CI step to fail; [`Comparison::to_html_fragment`]
//!   renders it for a page.
//! * [`run_documents`]: the same run against prompts and policies held as documents (a
//!   draft from the database), for comparing a draft with the active versions.
//! * [`CaseTrace`]: one case of a run in full (messages, calls with arguments, status,
//!   rules and what the model was told, replies, drafts); [`run_set_traced`] and
//!   [`run_documents_traced`] return the traces beside the report.
//!
//! * [`compliance`]: the content compliance check's eval set (`evals/compliance/`),
//!   precision and recall per category ([`run_compliance`], [`score_compliance`]).
//!
//! Executed policy violations are defined in [`score`](crate::score) (module docs).

pub mod agent_runner;
pub mod case;
pub mod compare;
pub mod compliance;
pub mod documents;
pub mod gate;
pub mod outcome;
pub mod report;
pub mod run;
pub mod score;
pub mod trace;

use std::collections::BTreeSet;
use std::path::Path;

pub use agent_runner::{AgentRunner, ModelChoice, cassette_in, cassette_path};
pub use case::{
    Applies, ArgCheck, ArgConstraint, Bound, CaseError, EmailExpectation, EndExpectation, EvalCase,
    EvalSet, Expectations, InboundMessage, KeyProblem, PromiseExpectation, StatusExpectation,
};
pub use compare::{Comparison, Flip, Gate, MetricDelta, compare};
pub use compliance::{
    ComplianceReport, Counts, DraftResult, Label, LabelledDraft, load_compliance_set,
    run_compliance, score_compliance,
};
pub use documents::{deny_rule_ids_in_documents, run_documents, run_documents_traced};
pub use gate::{EvalStatus, FailingTest, GateOptions, GateReport, TestsSummary, activation_gate};
pub use outcome::{
    CallRecord, CallStatus, CaseOutcome, CaseRunner, DraftEmail, EndState, PromiseState,
};
pub use report::{
    AttemptReport, CaseReport, Labels, REPORT_CSS, REPORT_FORMAT, REPORT_VERSION, Report,
    ReportError, ReportSummary, TagTotals, Totals, report_summary,
};
pub use run::{RunOptions, progress_bar, run_set, run_set_traced};
pub use score::{CaseScore, executed_violations, score, score_with};
pub use trace::{AttemptTrace, CaseTrace, TRACE_VERSION, TracedReport};

/// Ids of the rules in a policy document (TOML text) whose effect is `deny`: every table
/// with an `id` and `effect = "deny"`, plus every negotiation `ceiling` (a ceiling is a
/// hard limit nobody may approve). Feed the union over the packs under test to
/// [`RunOptions::deny_rules`].
pub fn deny_rule_ids(policy_toml: &str) -> Result<BTreeSet<String>, toml::de::Error> {
    let table: toml::Table = toml::from_str(policy_toml)?;
    let mut out = BTreeSet::new();
    walk(&toml::Value::Table(table), false, &mut out);
    Ok(out)
}

/// [`deny_rule_ids`] over every `*.toml` directly under `dir`.
pub fn deny_rule_ids_in_dir(dir: &Path) -> Result<BTreeSet<String>, CaseError> {
    let entries = std::fs::read_dir(dir).map_err(|source| CaseError::Io {
        file: dir.to_path_buf(),
        source,
    })?;
    let mut out = BTreeSet::new();
    for e in entries.filter_map(Result::ok) {
        let p = e.path();
        if !(p.is_file() && p.extension().is_some_and(|x| x == "toml")) {
            continue;
        }
        let text = std::fs::read_to_string(&p).map_err(|source| CaseError::Io {
            file: p.clone(),
            source,
        })?;
        let ids = deny_rule_ids(&text).map_err(|e| CaseError::Invalid {
            file: p.clone(),
            problems: vec![KeyProblem {
                key: String::new(),
                problem: e.message().to_string(),
            }],
        })?;
        out.extend(ids);
    }
    Ok(out)
}

fn walk(v: &toml::Value, is_ceiling: bool, out: &mut BTreeSet<String>) {
    match v {
        toml::Value::Table(t) => {
            if let Some(id) = t.get("id").and_then(toml::Value::as_str) {
                let deny = t.get("effect").and_then(toml::Value::as_str) == Some("deny");
                if deny || is_ceiling {
                    out.insert(id.to_string());
                }
            }
            for (k, child) in t {
                walk(child, k == "ceiling", out);
            }
        }
        toml::Value::Array(items) => {
            for i in items {
                walk(i, false, out);
            }
        }
        _ => {}
    }
}
