//! Shared fixtures for the worker tests: a small b2b ledger, an agent over the repository's
//! prompts and policies at a fixed instant, step work items.

#![allow(dead_code)] // each test binary uses a different part
#![allow(clippy::unwrap_used)] // test support: a failure here should panic the test

pub mod fake_openai;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use argent_agent::{Agent, AgentConfig, Clock, OfflineModel};
use argent_llm::ChatModel;
use argent_procedure::{StepKind, StepWork, WORK_KIND};
use argent_store::{NewWorkItem, Store};
use argent_worker::{LeaseConfig, StepExecutor, Worker, WorkerConfig, WorkerReport};

/// 2026-11-20 14:00 UTC: a weekday afternoon in London, the customers' zone.
pub fn now() -> DateTime<Utc> {
    "2026-11-20T14:00:00Z".parse().unwrap()
}

/// Customers C1..=Cn (b2b, Europe/London), each with three paid invoices and one overdue.
pub fn ledger_csv(n: usize) -> String {
    let mut csv = String::from(
        "customer_id,customer_name,tier,jurisdiction,time_zone,email,invoice_number,invoice_date,due_date,currency,amount,paid_amount,paid_date\n",
    );
    for i in 1..=n {
        let c = format!("C{i}");
        let name = format!("Customer {i} Ltd");
        let mail = format!("ap@c{i}.example");
        for (k, (issued, due, paid)) in [
            ("2026-03-01", "2026-03-31", "2026-03-30"),
            ("2026-05-01", "2026-05-31", "2026-05-30"),
            ("2026-07-01", "2026-07-31", "2026-07-29"),
        ]
        .iter()
        .enumerate()
        {
            csv.push_str(&format!(
                "{c},{name},standard,b2b,Europe/London,{mail},H{i}-{k},{issued},{due},GBP,100.00,100.00,{paid}\n"
            ));
        }
        csv.push_str(&format!(
            "{c},{name},standard,b2b,Europe/London,{mail},I{i},2026-09-01,2026-10-01,GBP,1500.00,,\n"
        ));
    }
    csv
}

pub async fn import(store: &Store, n: usize) {
    let parsed = argent_core::import::parse(ledger_csv(n).as_bytes()).unwrap();
    store.import_file(&parsed, "test").await.unwrap();
}

pub fn repo(dir: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir)
}

pub fn agent_with(store: Store, model: Arc<dyn ChatModel>) -> Arc<Agent> {
    Arc::new(
        Agent::from_dirs(
            store,
            model,
            &repo("prompts"),
            &repo("policies"),
            AgentConfig {
                clock: Clock::Fixed(now()),
                ..Default::default()
            },
        )
        .unwrap(),
    )
}

pub fn agent(store: Store) -> Arc<Agent> {
    agent_with(store, Arc::new(OfflineModel))
}

pub fn step(kind: StepKind, step: &str, prompt: Option<&str>, invoices: &[&str]) -> StepWork {
    StepWork {
        procedure: "standard".into(),
        version: 1,
        step: step.into(),
        kind,
        cycle: 1,
        prompt: prompt.map(str::to_string),
        invoices: invoices.iter().map(|s| s.to_string()).collect(),
        promise_id: None,
        reason: "12 days past the oldest due date".into(),
    }
}

pub fn item(customer: &str, work: &StepWork) -> NewWorkItem {
    NewWorkItem {
        kind: WORK_KIND.into(),
        dedupe_key: work.dedupe_key(customer),
        customer_id: customer.into(),
        payload: serde_json::to_value(work).unwrap(),
        due_at: now(),
    }
}

pub fn config(owner: &str, concurrency: usize) -> WorkerConfig {
    let mut c = WorkerConfig::new(owner);
    c.concurrency = concurrency;
    c.lease = LeaseConfig {
        retry_base: Duration::from_millis(10),
        retry_max: Duration::from_millis(100),
        poll_min: Duration::from_millis(20),
        poll_max: Duration::from_millis(100),
        ..LeaseConfig::default()
    }
    .with_lease(Duration::from_secs(30));
    c.due_at = Some(now());
    c.once = true;
    c
}

/// Runs a worker over `agent`'s store until nothing is due.
pub async fn run_once(agent: Arc<Agent>, config: WorkerConfig) -> WorkerReport {
    let store = agent.store.clone();
    let exec = Arc::new(StepExecutor::new(agent));
    let worker = Arc::new(Worker::new(store, exec, config).unwrap());
    let (_tx, rx) = tokio::sync::watch::channel(false);
    tokio::time::timeout(Duration::from_secs(120), worker.run(rx))
        .await
        .unwrap()
}
