//! argent's policy engine.
//!
//! Policies are TOML documents (see `policies/` and its README) validated on load against
//! `policies/policy.schema.json` and by semantic checks (regexes compile, ranges are sane,
//! rule ids are unique); errors name the file, the key and the problem. [`evaluate`] judges
//! one typed [`argent_core::Action`] in a [`Context`] and returns a
//! [`argent_core::Decision`]: pure, synchronous, no I/O, regexes precompiled at load.
//! [`run_policy_tests`] runs the policy tests kept in `policies/tests/`.

pub mod context;
pub mod error;
pub mod eval;
pub mod policy;
pub mod testing;

use std::collections::BTreeMap;
use std::path::Path;

pub use argent_core::{Decision, FiredRule, Outcome, Role};
pub use context::{Context, OpenInvoice, PriorContact};
pub use error::{KeyProblem, PolicyError};
pub use eval::evaluate;
pub use policy::{Effect, MessageKind, POLICY_SCHEMA, Policy, RuleMeta, StopCondition};
pub use testing::{CaseResult, TestReport, run_policy_tests};

use argent_core::Jurisdiction;

/// Every policy document in a directory (`*.toml`, not recursing into `tests/`), by id.
#[derive(Clone, Debug, Default)]
pub struct PolicySet {
    pub policies: BTreeMap<String, Policy>,
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
        let mut set = PolicySet::default();
        for file in files {
            let p = Policy::load(&file)?;
            if set.policies.contains_key(&p.id) {
                return Err(PolicyError::Invalid {
                    file,
                    problems: vec![KeyProblem {
                        key: "id".into(),
                        problem: format!("policy id '{}' is used by another document", p.id),
                    }],
                });
            }
            set.policies.insert(p.id.clone(), p);
        }
        Ok(set)
    }

    pub fn get(&self, id: &str) -> Option<&Policy> {
        self.policies.get(id)
    }

    /// The policy that governs a jurisdiction (the first by id, if several do).
    pub fn for_jurisdiction(&self, j: Jurisdiction) -> Option<&Policy> {
        self.policies.values().find(|p| p.jurisdiction == j)
    }
}
