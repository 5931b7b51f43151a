//! A policy document as a manager (or anyone who can reach the validate endpoint) might
//! write it: the line-located diagnosis and the loader must both answer, never panic,
//! and agree on whether the text is valid.
#![no_main]

use argent_policy::PolicySet;
use argent_policy::diagnose::diagnose;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let problems = diagnose(text);
    let loaded = PolicySet::from_sources([("fuzz", text)]);
    if loaded.is_ok() {
        assert!(
            problems.is_empty(),
            "the loader accepts a text diagnose rejects: {problems:?}"
        );
    }
});
