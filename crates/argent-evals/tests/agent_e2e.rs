//! The shipped eval set through the real planner loop: with the offline model against a
//! committed baseline, by replaying recorded cassettes, and against a weakened policy.
//!
//! Re-baseline after an intended change to prompts, policies or the offline model with
//! `ARGENT_UPDATE_EVALS=1 cargo test -p argent-evals --test agent_e2e` (rewrites
//! evals/baselines/core-offline.json and the cassettes under evals/core/cassettes/).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::sync::Arc;

use argent_evals::{
    AgentRunner, EvalSet, Gate, Labels, ModelChoice, Report, RunOptions, compare,
    deny_rule_ids_in_dir, run_set,
};

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
}

fn updating() -> bool {
    std::env::var("ARGENT_UPDATE_EVALS").is_ok_and(|v| v == "1")
}

async fn run(model: ModelChoice, prompts: &Path, policies: &Path, filter: Option<&str>) -> Report {
    let set = EvalSet::load(&repo("evals/core")).unwrap();
    let runner = Arc::new(AgentRunner::new(prompts, policies, model.clone()));
    let opts = RunOptions {
        concurrency: 4,
        filter: filter.map(str::to_string),
        deny_rules: deny_rule_ids_in_dir(&repo("policies")).unwrap(),
        labels: Labels {
            model: model.label().into(),
            prompts: "repo".into(),
            policies: "repo".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    run_set(&set, runner, opts, None).await
}

fn failures(r: &Report) -> String {
    r.cases
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{}: {}", c.id, c.first_failures().join(" | ")))
        .collect::<Vec<_>>()
        .join("\n")
}

fn verdicts(r: &Report) -> Vec<(String, bool)> {
    r.cases.iter().map(|c| (c.id.clone(), c.passed)).collect()
}

#[tokio::test]
async fn offline_model_does_not_regress_from_the_baseline() {
    let r = run(
        ModelChoice::Offline,
        &repo("prompts"),
        &repo("policies"),
        None,
    )
    .await;
    eprintln!("{}\n{}", r.summary(), failures(&r));
    assert_eq!(r.totals.errors, 0, "{}", failures(&r));
    assert_eq!(
        r.totals.executed_violations, 0,
        "no executed policy violations"
    );
    assert!(r.cases.len() >= 50);
    let baseline_path = repo("evals/baselines/core-offline.json");
    if updating() {
        std::fs::create_dir_all(baseline_path.parent().unwrap()).unwrap();
        r.write_json(&baseline_path).unwrap();
    }
    let baseline = Report::read_json(&baseline_path).unwrap();
    let cmp = compare(&baseline, &r, &Gate::default());
    assert!(!cmp.regressed(), "{cmp}");
    assert_eq!(
        verdicts(&baseline),
        verdicts(&r),
        "the offline model is deterministic"
    );
}

#[tokio::test]
async fn replaying_the_recorded_cassettes_reproduces_the_offline_run() {
    if updating() {
        let rec = run(
            ModelChoice::RecordOffline,
            &repo("prompts"),
            &repo("policies"),
            None,
        )
        .await;
        assert_eq!(rec.totals.errors, 0, "{}", failures(&rec));
    }
    let replayed = run(
        ModelChoice::Replay,
        &repo("prompts"),
        &repo("policies"),
        None,
    )
    .await;
    assert_eq!(replayed.totals.errors, 0, "{}", failures(&replayed));
    let offline = run(
        ModelChoice::Offline,
        &repo("prompts"),
        &repo("policies"),
        None,
    )
    .await;
    assert_eq!(verdicts(&replayed), verdicts(&offline));
    assert_eq!(replayed.totals.executed_violations, 0);
}

#[tokio::test]
async fn replay_fails_loudly_when_the_prompt_changed() {
    if updating() {
        return; // the cassettes are being rewritten by another test right now
    }
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo("prompts"), dir.path());
    let system = dir.path().join("system.hbs");
    let text = std::fs::read_to_string(&system).unwrap();
    std::fs::write(
        &system,
        text.replace("You act only through tools.", "You act through tools."),
    )
    .unwrap();
    let r = run(
        ModelChoice::Replay,
        dir.path(),
        &repo("policies"),
        Some("promise-explicit-date-us"),
    )
    .await;
    assert_eq!(r.cases.len(), 1);
    assert_eq!(r.totals.errors, 1, "{}", failures(&r));
    let why = failures(&r);
    assert!(
        why.contains("does not match the recorded exchange"),
        "{why}"
    );
}

#[tokio::test]
async fn a_weakened_policy_makes_compare_fail() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo("policies"), dir.path());
    for pack in ["us-consumer.toml", "uk-consumer.toml", "b2b.toml"] {
        let p = dir.path().join(pack);
        let text = std::fs::read_to_string(&p).unwrap();
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
        std::fs::write(&p, weakened.join("\n")).unwrap();
    }
    let filter = Some("tag:injection,tag:plan");
    let before = run(
        ModelChoice::Offline,
        &repo("prompts"),
        &repo("policies"),
        filter,
    )
    .await;
    let after = run(ModelChoice::Offline, &repo("prompts"), dir.path(), filter).await;
    let cmp = compare(&before, &after, &Gate::default());
    assert!(
        cmp.regressed(),
        "raising the discount limit to 90% must be caught:\n{cmp}"
    );
    let flipped = before
        .cases
        .iter()
        .zip(&after.cases)
        .any(|(b, a)| b.passed && !a.passed);
    assert!(flipped, "{cmp}");
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let p = entry.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

/// The second replay set: cassettes recorded from a real open-weights model
/// (`evals/replays/qwen2.5-coder-1.5b/`, see evals/replays/README.md) replay under the
/// same settings, byte for byte, to the verdicts, calls and rules the recording run
/// scored, with no executed violation; and the set covers every injection case of
/// `evals/core`. It breaks, loudly, when a prompt, a tool schema or the loop changes
/// what is sent: then it is re-recorded from the real model (or the change reconsidered).
#[tokio::test]
async fn the_real_model_replay_set_replays_as_it_was_recorded() {
    let dir = repo("evals/replays/qwen2.5-coder-1.5b");
    let recorded = Report::read_json(&dir.join("report.json")).unwrap();
    let settings: argent_llm::ModelSettings = serde_json::from_str(
        recorded
            .labels
            .extra
            .get("model_settings")
            .expect("the recording's report names its model settings"),
    )
    .unwrap();
    assert_eq!(settings.temperature, Some(0.0));

    let set = EvalSet::load(&repo("evals/core")).unwrap();
    let ids: Vec<String> = recorded.cases.iter().map(|c| c.id.clone()).collect();
    for case in set.cases.iter().filter(|c| c.has_tag("injection")) {
        assert!(
            ids.contains(&case.id),
            "the real-model set misses the injection case {}",
            case.id
        );
    }
    let model = ModelChoice::ReplayFrom(dir.join("cassettes"));
    let runner = Arc::new(
        AgentRunner::new(&repo("prompts"), &repo("policies"), model).with_settings(Some(settings)),
    );
    let opts = RunOptions {
        concurrency: 4,
        filter: Some(ids.join(",")),
        deny_rules: deny_rule_ids_in_dir(&repo("policies")).unwrap(),
        ..Default::default()
    };
    let replayed = run_set(&set, runner, opts, None).await;
    assert_eq!(replayed.totals.errors, 0, "{}", failures(&replayed));
    assert_eq!(replayed.cases.len(), recorded.cases.len());
    for (r, c) in recorded.cases.iter().zip(&replayed.cases) {
        assert_eq!(r.id, c.id);
        let (ra, ca) = (&r.attempts[0], &c.attempts[0]);
        assert_eq!(
            (
                r.passed,
                &ra.calls,
                &ra.rules,
                &ra.failures,
                &ra.violations,
                ra.tokens
            ),
            (
                c.passed,
                &ca.calls,
                &ca.rules,
                &ca.failures,
                &ca.violations,
                ca.tokens
            ),
            "{}: the replay differs from the recording",
            r.id
        );
    }
    assert_eq!(recorded.totals.executed_violations, 0);
    assert_eq!(replayed.totals.executed_violations, 0);
}
