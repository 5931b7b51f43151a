//! Validate one propose_plan argument object from raw model text to a typed Action
//! (target: < 5 µs median).

use std::hint::black_box;

use argent_tools::Registry;
use criterion::{Criterion, criterion_group, criterion_main};

const PLAN: &str = r#"{"customer_id":"C1","currency":"USD","balance":"1500.50","discount":"0",
  "down_payment":"200.50","start_date":"2026-03-10",
  "installments":[{"due_date":"2026-04-10","amount":"260.00"},{"due_date":"2026-05-10","amount":"260.00"},
  {"due_date":"2026-06-10","amount":"260.00"},{"due_date":"2026-07-10","amount":"260.00"},
  {"due_date":"2026-08-10","amount":"260.00"}],"note":"Customer asked for five monthly payments."}"#;

fn bench(c: &mut Criterion) {
    let registry = Registry::builtin().expect("registry");
    assert!(registry.parse("propose_plan", PLAN).is_ok());
    let value: serde_json::Value = serde_json::from_str(PLAN).expect("json");
    c.bench_function("validate propose_plan (raw text -> Action)", |b| {
        b.iter(|| registry.parse(black_box("propose_plan"), black_box(PLAN)))
    });
    c.bench_function("validate propose_plan (parsed JSON -> Action)", |b| {
        b.iter(|| registry.parse_value(black_box("propose_plan"), black_box(value.clone())))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
