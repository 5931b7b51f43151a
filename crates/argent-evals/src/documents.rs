//! Running an eval set against prompts and policies held as documents (e.g. the active
//! versions in the database with a manager's draft in place), so a draft can be compared
//! with what is active before anyone activates it.

use std::collections::BTreeSet;
use std::sync::Arc;

use argent_agent::{AgentError, DocumentSet};

use crate::agent_runner::{AgentRunner, ModelChoice};
use crate::case::EvalSet;
use crate::report::Report;
use crate::run::{RunOptions, run_set_traced};
use crate::trace::TracedReport;

/// Runs the cases `opts` selects from `set` with an agent built from `docs`: the documents
/// are written to a temporary directory (removed afterwards) and run by the usual
/// [`AgentRunner`], so the result is what the same texts as files would give.
///
/// Empty labels in `opts` are filled in: the model's label and the documents' prompt and
/// policy versions. Empty `opts.deny_rules` are taken from `docs`; to compare a draft
/// with the active documents, pass the active documents' deny rules
/// ([`deny_rule_ids_in_documents`]) to both runs, so a draft that weakens a deny rule
/// still has its executions counted as violations.
///
/// Fails before running anything when the documents do not load.
pub async fn run_documents(
    set: &EvalSet,
    docs: &DocumentSet,
    model: ModelChoice,
    opts: &RunOptions,
) -> Result<Report, AgentError> {
    Ok(run_documents_traced(set, docs, model, opts).await?.report)
}

/// [`run_documents`], keeping each case's trace beside the report (what the server stores
/// for its per-case pages).
pub async fn run_documents_traced(
    set: &EvalSet,
    docs: &DocumentSet,
    model: ModelChoice,
    opts: &RunOptions,
) -> Result<TracedReport, AgentError> {
    // Fail once, clearly, rather than once per case.
    docs.prompt_set()?;
    docs.policy_set()?;
    let dir = tempfile::tempdir().map_err(|e| AgentError::Io(format!("temp dir: {e}")))?;
    let (prompts_dir, policies_dir) = docs.write_to(dir.path())?;
    let mut opts = opts.clone();
    if opts.labels.model.is_empty() {
        opts.labels.model = model.label().into();
    }
    if opts.labels.prompts.is_empty() {
        opts.labels.prompts = docs.prompt_version();
    }
    if opts.labels.policies.is_empty() {
        opts.labels.policies = docs.policy_version();
    }
    if opts.deny_rules.is_empty() {
        opts.deny_rules = deny_rule_ids_in_documents(docs)?;
    }
    let runner = Arc::new(AgentRunner::new(&prompts_dir, &policies_dir, model));
    let traced = run_set_traced(set, runner, opts, None).await;
    drop(dir);
    Ok(traced)
}

/// [`crate::deny_rule_ids`] over every policy in `docs`.
pub fn deny_rule_ids_in_documents(docs: &DocumentSet) -> Result<BTreeSet<String>, AgentError> {
    let mut out = BTreeSet::new();
    for (name, text) in &docs.policies {
        let ids = crate::deny_rule_ids(text)
            .map_err(|e| AgentError::Io(format!("policies/{name}.toml: {}", e.message())))?;
        out.extend(ids);
    }
    Ok(out)
}
