//! Test support for crates that drive the agent: `propose_plan` arguments for the
//! two-consumer fixture in `argent_store::testkit::two_consumer_portfolio`.

use serde_json::{Value, json};

/// `propose_plan` arguments in USD starting 2026-11-20.
pub fn plan_args(
    customer: &str,
    balance: &str,
    discount: &str,
    down: &str,
    installments: &[(&str, &str)],
) -> Value {
    json!({
        "customer_id": customer, "currency": "USD", "balance": balance, "discount": discount,
        "down_payment": down, "start_date": "2026-11-20",
        "installments": installments.iter().map(|(d, a)| json!({"due_date": d, "amount": a})).collect::<Vec<_>>(),
    })
}

/// 20% off Ann's 1200.00: inside the hard ceiling, outside what may run unreviewed; a
/// collector may approve it.
pub fn ann_plan_20_percent() -> Value {
    plan_args(
        "C-ANN",
        "1200.00",
        "240.00",
        "96.00",
        &[
            ("2026-12-20", "288.00"),
            ("2027-01-20", "288.00"),
            ("2027-02-20", "288.00"),
        ],
    )
}
