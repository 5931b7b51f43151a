//! The policy packs a working process judges with, each compiled when it is first needed.
//!
//! Compiling a pack (its language set and regexes) costs tens of milliseconds of CPU, and
//! a process that judges one account (`argent run`) needs one pack of three; compiling
//! every pack at start-up was most of a process's fixed start-up cost (issue #16). So
//! [`Packs`] reads only each document's header (`id`, `jurisdiction`) when it is built and
//! compiles a pack the first time a caller asks for it; a long-running process can compile
//! them all ahead of need with [`Packs::compile_now`] on a thread of its own.
//!
//! Invariants:
//! - Only documents that were validated in full already are loaded lazily: the active
//!   documents in a database were checked when they were activated (or seeded). A pack
//!   that does not compile when first needed (a document activated by another version of
//!   argent) gives the same `PolicyError` the full check would have given, at every use;
//!   the caller judges nothing with it (fail closed). It is never retried and never
//!   partly used.
//! - A pack is compiled at most once (concurrent first users wait for the one compile) and
//!   what it compiles to is exactly what [`Policy::from_toml_str`] gives for its text.
//! - Which pack governs a jurisdiction depends on the headers alone, and is the answer
//!   [`PolicySet::for_jurisdiction`] gives for the same documents (the first by id).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use argent_core::Jurisdiction;
use serde::Deserialize;

use crate::error::{KeyProblem, PolicyError};
use crate::policy::{Policy, toml_error};
use crate::{PolicySet, compile_all, duplicate_id};

/// Policy packs by id, each compiled on first need (see the module docs).
#[derive(Debug, Default)]
pub struct Packs {
    packs: BTreeMap<String, Pack>,
}

#[derive(Debug)]
struct Pack {
    jurisdiction: Jurisdiction,
    file: PathBuf,
    /// The document's text; empty for a pack that was compiled when it was loaded.
    text: String,
    compiled: OnceLock<Result<Policy, Vec<KeyProblem>>>,
}

/// What is read of a document before its pack is needed.
#[derive(Deserialize)]
struct Header {
    id: String,
    jurisdiction: Jurisdiction,
}

impl Pack {
    fn policy(&self) -> Result<&Policy, PolicyError> {
        let compiled = self.compiled.get_or_init(|| {
            Policy::from_toml_str(&self.text, &self.file).map_err(|e| e.problems().to_vec())
        });
        compiled.as_ref().map_err(|problems| PolicyError::Invalid {
            file: self.file.clone(),
            problems: problems.clone(),
        })
    }
}

impl Packs {
    /// Documents given as `(name, TOML text)` pairs that were validated in full before
    /// (a database's active documents), named in errors as `policies/<name>.toml` as
    /// [`PolicySet::from_sources`] names them. Reads each header only: fails when a
    /// document is not TOML, lacks an `id` or a known `jurisdiction`, or shares its id
    /// with another; everything else is checked when the pack is first needed.
    pub fn from_validated_sources<'a, I>(sources: I) -> Result<Packs, PolicyError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let files = crate::named_sources(sources);
        let mut packs = Packs::default();
        for (file, text) in files {
            let header: Header = toml::from_str(text).map_err(|e| toml_error(text, &file, &e))?;
            if packs.packs.contains_key(&header.id) {
                return Err(duplicate_id(file, &header.id));
            }
            packs.packs.insert(
                header.id,
                Pack {
                    jurisdiction: header.jurisdiction,
                    file,
                    text: text.to_string(),
                    compiled: OnceLock::new(),
                },
            );
        }
        Ok(packs)
    }

    /// Packs compiled already (e.g. [`PolicySet::load_dir`] over files a person may have
    /// edited, which are checked in full before anything uses them).
    pub fn compiled(set: PolicySet) -> Packs {
        let packs = set
            .policies
            .into_iter()
            .map(|(id, policy)| {
                let pack = Pack {
                    jurisdiction: policy.jurisdiction,
                    file: PathBuf::new(),
                    text: String::new(),
                    compiled: OnceLock::from(Ok(policy)),
                };
                (id, pack)
            })
            .collect();
        Packs { packs }
    }

    /// The pack that governs a jurisdiction (the first by id, if several do), compiled;
    /// `None` when no document names the jurisdiction.
    pub fn for_jurisdiction(&self, j: Jurisdiction) -> Option<Result<&Policy, PolicyError>> {
        self.governing(j).map(Pack::policy)
    }

    /// The pack that governs `j` (the first by id, as [`PolicySet::for_jurisdiction`]).
    fn governing(&self, j: Jurisdiction) -> Option<&Pack> {
        self.packs.values().find(|p| p.jurisdiction == j)
    }

    /// Every pack in id order, compiled (those not yet compiled are compiled now, one
    /// after another; see [`Packs::compile_now`] to do it in parallel first).
    pub fn all(&self) -> impl Iterator<Item = (&str, Result<&Policy, PolicyError>)> {
        self.packs.iter().map(|(id, p)| (id.as_str(), p.policy()))
    }

    /// Compiles every pack not compiled yet, each on a thread of its own, and returns the
    /// errors of every pack that does not compile (by id, including any that failed
    /// before). For a long-running process, ahead of its first judgement, so that no
    /// request waits for a compile and a pack that does not compile is reported at
    /// start-up rather than at first use.
    pub fn compile_now(&self) -> Vec<(String, PolicyError)> {
        let pending: Vec<&Pack> = self
            .packs
            .values()
            .filter(|p| p.compiled.get().is_none())
            .collect();
        compile_all(&pending, |p| {
            let _ = p.policy();
        });
        self.all()
            .filter_map(|(id, p)| p.err().map(|e| (id.to_string(), e)))
            .collect()
    }

    /// Whether the pack that governs `j` exists and has not been compiled yet.
    pub fn pending(&self, j: Jurisdiction) -> bool {
        self.governing(j)
            .is_some_and(|p| p.compiled.get().is_none())
    }

    /// How many packs are compiled (for tests and diagnostics).
    pub fn compiled_count(&self) -> usize {
        self.packs
            .values()
            .filter(|p| p.compiled.get().is_some())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn shipped() -> Vec<(String, String)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
        ["b2b", "uk-consumer", "us-consumer"]
            .iter()
            .map(|n| {
                let text = std::fs::read_to_string(dir.join(format!("{n}.toml"))).unwrap();
                (n.to_string(), text)
            })
            .collect()
    }

    fn packs(docs: &[(String, String)]) -> Result<Packs, PolicyError> {
        Packs::from_validated_sources(docs.iter().map(|(n, t)| (n.as_str(), t.as_str())))
    }

    #[test]
    fn a_pack_is_compiled_when_first_needed_and_is_what_a_full_load_gives() {
        let docs = shipped();
        let packs = packs(&docs).unwrap();
        assert_eq!(packs.compiled_count(), 0);
        let set =
            PolicySet::from_sources(docs.iter().map(|(n, t)| (n.as_str(), t.as_str()))).unwrap();
        for j in [Jurisdiction::UsConsumer, Jurisdiction::B2b] {
            let lazy = packs.for_jurisdiction(j).unwrap().unwrap();
            let full = set.for_jurisdiction(j).unwrap();
            assert_eq!(lazy.id, full.id);
            assert_eq!(lazy.rule_ids(), full.rule_ids());
        }
        // Only the two packs asked for were compiled, and asking again compiles nothing.
        assert_eq!(packs.compiled_count(), 2);
        let first: *const Policy = packs.for_jurisdiction(Jurisdiction::B2b).unwrap().unwrap();
        let again: *const Policy = packs.for_jurisdiction(Jurisdiction::B2b).unwrap().unwrap();
        assert_eq!(first, again);
        assert!(packs.compile_now().is_empty());
        assert_eq!(packs.compiled_count(), 3);
        assert_eq!(
            packs.all().map(|(id, _)| id).collect::<Vec<_>>(),
            set.policies.keys().map(String::as_str).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_pack_that_does_not_compile_fails_at_every_use_with_the_full_checks_error() {
        let mut docs = shipped();
        // Valid TOML with a good header, but a rule the full check rejects.
        let broken = docs[2].1.clone() + "\n[[prohibited]]\nid = \"x\"\n";
        docs[2].1 = broken.clone();
        let packs = packs(&docs).unwrap();
        let full = Policy::from_toml_str(&broken, Path::new("policies/us-consumer.toml"))
            .unwrap_err()
            .to_string();
        for _ in 0..2 {
            let err = packs
                .for_jurisdiction(Jurisdiction::UsConsumer)
                .unwrap()
                .unwrap_err();
            assert_eq!(err.to_string(), full);
            assert!(full.starts_with("policies/us-consumer.toml: "), "{full}");
        }
        // The other packs are unaffected, and compile_now names the broken one.
        assert!(packs.for_jurisdiction(Jurisdiction::B2b).unwrap().is_ok());
        let errors = packs.compile_now();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, "us-consumer");
        assert_eq!(errors[0].1.to_string(), full);
    }

    #[test]
    fn headers_are_checked_when_the_packs_are_loaded() {
        let docs = shipped();
        let no_toml = vec![("us-consumer".to_string(), "id = ".to_string())];
        let err = packs(&no_toml).unwrap_err().to_string();
        assert!(
            err.starts_with("policies/us-consumer.toml: (line 1"),
            "{err}"
        );
        assert!(err.contains("not valid TOML"), "{err}");

        let no_jurisdiction = vec![("a".to_string(), "id = \"a\"\n".to_string())];
        let err = packs(&no_jurisdiction).unwrap_err().to_string();
        assert!(err.contains("jurisdiction"), "{err}");

        let twice = vec![
            ("a".to_string(), docs[2].1.clone()),
            ("b".to_string(), docs[2].1.clone()),
        ];
        let err = packs(&twice).unwrap_err().to_string();
        assert!(err.contains("is used by another document"), "{err}");
        assert!(err.starts_with("policies/b.toml: id:"), "{err}");

        assert!(
            packs(&[])
                .unwrap()
                .for_jurisdiction(Jurisdiction::B2b)
                .is_none()
        );
    }
}
