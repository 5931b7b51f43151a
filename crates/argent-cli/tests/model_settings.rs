//! Model settings through the binary: `argent model show` (precedence flags > env > file >
//! preset > defaults, with the source of each value), `argent prompt size`, a run refused
//! for its context window, and `argent eval run --model openai` against a fake endpoint on
//! 127.0.0.1 (the endpoint's concurrency, per-case progress, the settings in the report).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

#[path = "../../argent-worker/tests/common/fake_openai.rs"]
mod fake_openai;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use fake_openai::FakeOpenAi;
use serde_json::Value;

/// Variables of the developer's shell that would change what is tested.
const CLEARED: [&str; 8] = [
    "ARGENT_DATABASE_URL",
    "ARGENT_MODEL_CONFIG",
    "ARGENT_LLM_TEMPERATURE",
    "ARGENT_LLM_PRESET",
    "ARGENT_LLM_CONTEXT_WINDOW",
    "ARGENT_LLM_MAX_OUTPUT_TOKENS",
    "ARGENT_LLM_CONCURRENCY",
    "ARGENT_CHECK_MODEL",
];

fn argent(db: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_argent"));
    c.arg("--database").arg(db).args(args);
    for k in CLEARED {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run argent")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "argent failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn model_show_resolves_flags_over_env_over_file_over_preset() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let file = dir.path().join("model.toml");
    std::fs::write(
        &file,
        "preset = \"ollama\"\n[agent]\ntemperature = 0.5\nmax_output_tokens = 600\n[compliance]\nmax_output_tokens = 300\n",
    )
    .unwrap();
    let out = ok(argent(
        &db,
        &["--temperature", "0.1", "model", "show", "--format", "json"],
        &[
            ("ARGENT_MODEL_CONFIG", file.display().to_string()),
            ("ARGENT_LLM_MAX_RETRIES", "5".into()),
            ("ARGENT_LLM_MAX_OUTPUT_TOKENS", "650".into()),
        ],
    ));
    let v: Value = serde_json::from_str(&out).unwrap();
    let agent = &v["agent"];
    assert_eq!(agent["settings"]["temperature"], 0.1);
    assert_eq!(agent["sources"]["temperature"], "flag");
    assert_eq!(agent["settings"]["max_output_tokens"], 650);
    assert_eq!(agent["sources"]["max_output_tokens"], "env ARGENT_LLM_*");
    assert_eq!(agent["settings"]["max_retries"], 5);
    assert_eq!(agent["settings"]["concurrency"], 1);
    assert_eq!(agent["sources"]["concurrency"], "preset ollama");
    assert_eq!(agent["settings"]["timeout_secs"], 600.0);
    let check = &v["compliance"];
    assert_eq!(check["settings"]["temperature"], 0.0);
    assert_eq!(check["settings"]["max_output_tokens"], 300);
    assert_eq!(check["settings"]["max_retries"], 5);
    assert!(!db.exists(), "showing settings opens no database");

    // The table names the sources too; a bad file names itself and the key.
    let table = ok(argent(
        &db,
        &["--model-config", file.to_str().unwrap(), "model", "show"],
        &[],
    ));
    assert!(table.contains("preset ollama"), "{table}");
    assert!(table.contains("[agent]"), "{table}");
    std::fs::write(&file, "[agent]\ntemprature = 1\n").unwrap();
    let bad = argent(
        &db,
        &["--model-config", file.to_str().unwrap(), "model", "show"],
        &[],
    );
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("model.toml") && err.contains("temprature"),
        "{err}"
    );
}

#[test]
fn prompt_size_measures_each_jurisdiction_and_trigger() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let table = ok(argent(&db, &["prompt", "size"], &[]));
    for part in [
        "us-consumer",
        "uk-consumer",
        "b2b",
        "inbound email",
        "step overdue_notice",
        "shared prefix",
    ] {
        assert!(table.contains(part), "{part}:\n{table}");
    }
    let rows = |compact: bool| -> Vec<Value> {
        let mut args = vec!["prompt", "size", "--format", "json"];
        if compact {
            args.push("--compact");
        }
        serde_json::from_str(&ok(argent(&db, &args, &[]))).unwrap()
    };
    let (standard, compact) = (rows(false), rows(true));
    assert_eq!(standard.len(), compact.len());
    assert!(
        standard.len() >= 3 * 5,
        "three jurisdictions, several triggers"
    );
    for (s, c) in standard.iter().zip(&compact) {
        let (s_max, c_max) = (
            s["max"]["total"].as_u64().unwrap(),
            c["max"]["total"].as_u64().unwrap(),
        );
        assert!(
            c_max < s_max,
            "{} {}: compact {c_max} vs {s_max}",
            s["jurisdiction"],
            s["trigger"]
        );
        assert!(s["shared_prefix"].as_u64().unwrap() > 200, "{s}");
    }
}

#[test]
fn a_run_that_cannot_fit_the_context_window_is_refused_with_the_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let csv = dir.path().join("r.csv");
    std::fs::write(
        &csv,
        "customer_id,customer_name,tier,jurisdiction,time_zone,email,invoice_number,invoice_date,due_date,currency,amount,paid_amount,paid_date\n\
         C1,Acme Ltd,standard,b2b,Europe/London,ap@acme.example,I1,2026-09-01,2026-10-01,GBP,1500.00,,\n",
    )
    .unwrap();
    ok(argent(&db, &["import", csv.to_str().unwrap()], &[]));
    let run = |extra: &[&str]| {
        let mut args = vec!["--now", "2026-11-20T14:00:00Z"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["run", "--customer", "C1", "--step", "overdue_notice"]);
        argent(&db, &args, &[])
    };
    let refused = run(&["--context-window", "2048", "--max-output-tokens", "512"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("was not started")
            && err.contains("context window is 2048")
            && err.contains("leaving 1536"),
        "{err}"
    );
    let runs = |db: &Path| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let s = argent_store::Store::open(db.to_str().unwrap())
                .await
                .unwrap();
            let n = s.runs(None).await.unwrap().len();
            s.close().await;
            n
        })
    };
    assert_eq!(runs(&db), 0);
    ok(run(&[
        "--context-window",
        "16384",
        "--max-output-tokens",
        "512",
    ]));
    assert_eq!(runs(&db), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_run_against_an_endpoint_keeps_to_its_concurrency_and_reports_the_settings() {
    let fake = FakeOpenAi::start(Duration::from_millis(5), 0).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("e.db");
    let out = dir.path().join("report.json");
    let env = vec![
        ("ARGENT_LLM_BASE_URL", fake.base_url.clone()),
        ("ARGENT_LLM_MODEL", "fake-model".to_string()),
        ("ARGENT_LLM_API_KEY", "test-key".to_string()),
    ];
    let args = vec![
        "--model".to_string(),
        "openai".into(),
        "--llm-concurrency".into(),
        "1".into(),
        "--temperature".into(),
        "0.3".into(),
        "eval".into(),
        "run".into(),
        "core".into(),
        "--filter".into(),
        "promise-explicit-date-us,auto-reply-ticket-uk".into(),
        "--concurrency".into(),
        "4".into(),
        "--out".into(),
        out.display().to_string(),
    ];
    let db2 = db.clone();
    let output = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        argent(&db2, &args, &env)
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(
        output.status.success(),
        "{stderr}\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(stderr.contains("running 1 case(s) at once"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(lines.len(), 2, "one line per case:\n{stderr}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("[1/2] ") && l.contains(" s (")),
        "{stderr}"
    );
    assert!(
        lines.iter().any(|l| l.contains("promise-explicit-date-us")),
        "{stderr}"
    );
    assert!(fake.agent_requests() >= 2);

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let extra = &report["labels"]["extra"];
    let settings: Value = serde_json::from_str(extra["model_settings"].as_str().unwrap()).unwrap();
    assert_eq!(settings["concurrency"], 1);
    assert_eq!(settings["temperature"], 0.3);
    assert!(
        extra["endpoint"]
            .as_str()
            .unwrap()
            .contains("fake-model at http://127.0.0.1:")
    );
}
