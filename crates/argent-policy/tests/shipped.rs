#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
use std::path::PathBuf;

fn policies_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies")
}

#[test]
fn shipped_packs_load() {
    let set = argent_policy::PolicySet::load_dir(&policies_dir()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(set.policies.len(), 3);
}

#[test]
fn shipped_policy_tests_pass() {
    let report = argent_policy::run_policy_tests(&policies_dir()).unwrap_or_else(|e| panic!("{e}"));
    println!("{report}");
    assert!(report.success(), "{report}");
}
