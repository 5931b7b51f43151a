//! argent's policy engine.
//!
//! Policies are TOML documents (see `policies/` and its README) validated on load against
//! `policies/policy.schema.json` and by semantic checks (regexes compile, ranges are sane,
//! rule ids are unique); errors name the file, the key and the problem. [`evaluate`] judges
//! one typed [`argent_core::Action`] in a [`Context`] and returns a
//! [`argent_core::Decision`]: pure, synchronous, no I/O, regexes precompiled at load.
//! [`run_policy_tests`] runs the policy tests kept in `policies/tests/`.

pub mod consistency;
mod contact;
pub mod context;
pub mod diagnose;
pub mod error;
pub mod eval;
pub mod gate;
pub mod grounding;
pub mod inbound;
pub mod legal;
pub mod packs;
pub mod policy;
pub mod recent;
mod scan;
pub mod testing;
pub mod text;
pub mod words;

use std::collections::BTreeMap;
use std::path::Path;

pub use argent_core::{Decision, FiredRule, Outcome, Role};
pub use context::{Context, OpenInvoice, PriorContact};
pub use diagnose::{Diagnostic, diagnose, locate_key, locate_keys};
pub use error::{KeyProblem, PolicyError};
pub use eval::{
    RULE_CONFIRMATION_MISMATCH, RULE_CUSTOMER_MISMATCH, RULE_DUPLICATE_PROMISE,
    RULE_HELD_WITH_ACTION, RULE_INVALID_ARGUMENTS, RULE_INVISIBLE_CHARACTERS,
    RULE_JURISDICTION_MISMATCH, RULE_PLAN_BALANCE_MISMATCH, RULE_UNBACKED_CONFIRMATION,
    RULE_UNKNOWN_INVOICE, evaluate, statutory_interest,
};
pub use packs::Packs;
pub use policy::{Effect, MessageKind, POLICY_SCHEMA, Policy, RuleMeta, StopCondition};
pub use recent::{RecentAction, RecentKind, RecentStatus};
pub use testing::{CaseResult, Failures, TestReport, run_policy_tests, run_policy_tests_in};

use argent_core::Jurisdiction;

/// `compile` applied to each of `items`, the results in their order, each document on a
/// thread of its own: compiling a pack's patterns is CPU work of tens of milliseconds, and
/// it was most of a process's start-up (issue #16). The first error in order is the one a
/// caller reports, as when they were compiled one after another.
fn compile_all<T: Sync, R: Send>(items: &[T], compile: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if items.len() < 2 {
        return items.iter().map(&compile).collect();
    }
    std::thread::scope(|scope| {
        let compile = &compile;
        let handles: Vec<_> = items
            .iter()
            .map(|item| scope.spawn(move || compile(item)))
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(r) => r,
                // A panic while compiling is a bug; it goes on up as it would have.
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// A second document with a policy id another document has.
fn duplicate_id(file: std::path::PathBuf, id: &str) -> PolicyError {
    PolicyError::Invalid {
        file,
        problems: vec![KeyProblem {
            key: "id".into(),
            problem: format!("policy id '{id}' is used by another document"),
        }],
    }
}

/// Every policy document in a directory (`*.toml`, not recursing into `tests/`), by id.
#[derive(Clone, Debug, Default)]
pub struct PolicySet {
    pub policies: BTreeMap<String, Policy>,
}

/// Stored policy documents `(name, text)` as the files they stand for
/// (`policies/{name}.toml`, so errors name a file as they do for a directory), in file order.
pub(crate) fn named_sources<'a, I>(sources: I) -> Vec<(std::path::PathBuf, &'a str)>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut files: Vec<(std::path::PathBuf, &str)> = sources
        .into_iter()
        .map(|(name, text)| (Path::new("policies").join(format!("{name}.toml")), text))
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}

impl PolicySet {
    /// Loads and validates every `*.toml` directly under `dir`. Fails on the first invalid
    /// document, or when two documents share an id.
    pub fn load_dir(dir: &Path) -> Result<PolicySet, PolicyError> {
        let entries = std::fs::read_dir(dir).map_err(|source| PolicyError::Io {
            file: dir.to_path_buf(),
            source,
        })?;
        let mut files: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        let loaded = compile_all(&files, |file| Policy::load(file));
        let mut set = PolicySet::default();
        for (file, p) in files.into_iter().zip(loaded) {
            set.insert(p?, file)?;
        }
        Ok(set)
    }

    /// Loads and validates documents given as `(name, TOML text)` pairs, e.g. from the
    /// database, as if each were the file `policies/<name>.toml` (that is the name errors
    /// give). The same checks as [`PolicySet::load_dir`], in the same order.
    pub fn from_sources<'a, I>(sources: I) -> Result<PolicySet, PolicyError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let files = named_sources(sources);
        let compiled = compile_all(&files, |(file, text)| Policy::from_toml_str(text, file));
        let mut set = PolicySet::default();
        for ((file, _), p) in files.into_iter().zip(compiled) {
            set.insert(p?, file)?;
        }
        Ok(set)
    }

    fn insert(&mut self, p: Policy, file: std::path::PathBuf) -> Result<(), PolicyError> {
        if self.policies.contains_key(&p.id) {
            return Err(duplicate_id(file, &p.id));
        }
        self.policies.insert(p.id.clone(), p);
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<&Policy> {
        self.policies.get(id)
    }

    /// The policy that governs a jurisdiction (the first by id, if several do).
    pub fn for_jurisdiction(&self, j: Jurisdiction) -> Option<&Policy> {
        self.policies.values().find(|p| p.jurisdiction == j)
    }
}
