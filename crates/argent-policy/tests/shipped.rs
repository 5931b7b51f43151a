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

#[test]
fn sources_load_like_the_directory_and_name_their_file() {
    let dir = policies_dir();
    let texts: Vec<(String, String)> = ["us-consumer", "uk-consumer", "b2b"]
        .iter()
        .map(|n| {
            let t = std::fs::read_to_string(dir.join(format!("{n}.toml"))).unwrap();
            (n.to_string(), t)
        })
        .collect();
    let set =
        argent_policy::PolicySet::from_sources(texts.iter().map(|(n, t)| (n.as_str(), t.as_str())))
            .unwrap();
    let from_dir = argent_policy::PolicySet::load_dir(&dir).unwrap();
    assert_eq!(
        set.policies.keys().collect::<Vec<_>>(),
        from_dir.policies.keys().collect::<Vec<_>>()
    );
    for (id, p) in &set.policies {
        assert_eq!(p.rule_ids(), from_dir.policies[id].rule_ids());
    }

    let err = argent_policy::PolicySet::from_sources([("us-consumer", "id = ")]).unwrap_err();
    assert!(
        err.to_string().starts_with("policies/us-consumer.toml: "),
        "{err}"
    );
    // Two documents with one id: the later file is named, at its id.
    let us = &texts[0].1;
    let err = argent_policy::PolicySet::from_sources([("a", us.as_str()), ("b", us.as_str())])
        .unwrap_err();
    assert_eq!(err.file(), std::path::Path::new("policies/b.toml"));
    assert_eq!(err.problems()[0].key, "id");
}
