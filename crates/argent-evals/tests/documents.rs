//! The eval set run against prompts and policies held as documents: the active documents
//! seeded from the repository reproduce the committed offline baseline, and a weakened
//! draft policy compares worse than the active one.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};

use argent_agent::DocumentSet;
use argent_evals::{
    EvalSet, Gate, ModelChoice, Report, RunOptions, compare, deny_rule_ids_in_dir,
    deny_rule_ids_in_documents, run_documents,
};
use argent_store::{DocKind, Store};

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
}

/// The repository's documents as the database holds them once seeded: written as version
/// 1 of each, active, and read back.
async fn active_from_a_seeded_database() -> DocumentSet {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("docs.db").to_string_lossy())
        .await
        .unwrap();
    let files = DocumentSet::from_dirs(&repo("prompts"), &repo("policies")).unwrap();
    let n = store
        .seed_documents(&files.entries(), "seed")
        .await
        .unwrap();
    assert_eq!(
        n,
        files.prompts.len() + files.policies.len() + files.procedures.len()
    );
    let active = DocumentSet::from_versions(&store.active_documents().await.unwrap());
    store.close().await;
    assert_eq!(active, files);
    active
}

#[tokio::test]
async fn the_active_documents_reproduce_the_offline_baseline() {
    let docs = active_from_a_seeded_database().await;
    let set = EvalSet::load(&repo("evals/core")).unwrap();
    let r = run_documents(&set, &docs, ModelChoice::Offline, &RunOptions::default())
        .await
        .unwrap();
    let baseline = Report::read_json(&repo("evals/baselines/core-offline.json")).unwrap();
    assert_eq!(r.totals.errors, 0);
    assert_eq!(r.totals.cases, baseline.totals.cases);
    assert_eq!(r.totals.passed_cases, baseline.totals.passed_cases);
    assert_eq!(r.totals.executed_violations, 0);
    let verdicts = |r: &Report| -> Vec<(String, bool)> {
        r.cases.iter().map(|c| (c.id.clone(), c.passed)).collect()
    };
    assert_eq!(verdicts(&r), verdicts(&baseline));
    assert!(!compare(&baseline, &r, &Gate::default()).regressed());
    // The labels name the documents' versions, as an agent built from them reports them.
    assert_eq!(r.labels.prompts, docs.prompt_version());
    assert_eq!(r.labels.policies, docs.policy_version());
    assert_eq!(r.labels.model, "offline");
    // Deny rules default to the documents' own, which are the repository's.
    assert_eq!(
        deny_rule_ids_in_documents(&docs).unwrap(),
        deny_rule_ids_in_dir(&repo("policies")).unwrap()
    );
}

#[tokio::test]
async fn a_draft_that_raises_the_discount_limit_compares_worse() {
    let active = active_from_a_seeded_database().await;
    let text = active.get(DocKind::Policy, "us-consumer").unwrap();
    let weakened: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with("max_discount_percent") {
                "max_discount_percent = 90".to_string()
            } else {
                l.to_string()
            }
        })
        .collect();
    let draft = active.with_document(DocKind::Policy, "us-consumer", &weakened.join("\n"));
    assert_ne!(draft.policy_version(), active.policy_version());
    let set = EvalSet::load(&repo("evals/core")).unwrap();
    let opts = RunOptions {
        filter: Some("tag:injection,tag:plan".into()),
        deny_rules: deny_rule_ids_in_documents(&active).unwrap(),
        ..Default::default()
    };
    let before = run_documents(&set, &active, ModelChoice::Offline, &opts)
        .await
        .unwrap();
    let after = run_documents(&set, &draft, ModelChoice::Offline, &opts)
        .await
        .unwrap();
    assert_eq!(before.totals.errors + after.totals.errors, 0);
    let cmp = compare(&before, &after, &Gate::default());
    assert!(
        cmp.regressed(),
        "raising the us-consumer discount limit to 90% must be caught:\n{cmp}"
    );
    // Only the us-consumer pack was weakened: only US cases flip.
    assert!(!cmp.pass_to_fail.is_empty(), "{cmp}");
    for f in &cmp.pass_to_fail {
        let case = set.cases.iter().find(|c| c.id == f.id).unwrap();
        assert!(case.has_tag("us-consumer"), "{} flipped:\n{cmp}", f.id);
    }
    assert_ne!(before.labels.policies, after.labels.policies);
}

#[tokio::test]
async fn documents_that_do_not_load_fail_before_running() {
    let active = DocumentSet::from_dirs(&repo("prompts"), &repo("policies")).unwrap();
    let set = EvalSet::load(&repo("evals/core")).unwrap();
    let broken = active.with_document(DocKind::Policy, "us-consumer", "id = ");
    let err = run_documents(&set, &broken, ModelChoice::Offline, &RunOptions::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("policies/us-consumer.toml"),
        "{err}"
    );
}
