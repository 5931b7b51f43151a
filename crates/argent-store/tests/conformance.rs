//! The store conformance suite: every test runs on SQLite and, when
//! ARGENT_TEST_POSTGRES_URL is set, on PostgreSQL too.

use argent_core::demo::{DemoConfig, generate};
use argent_core::import::parse;
use argent_core::ledger::aging_report;
use argent_core::{
    Case, CaseKind, CaseStatus, Currency, DashboardInput, Installment, Invoice, Money, PaymentPlan,
    PlanStatus, Portfolio, PromiseStatus, PromiseToPay, dashboard,
};
use argent_store::testkit::TestStore;
use argent_store::{Store, StoreError};

async fn on_every_backend<F, Fut>(test: F)
where
    F: Fn(Store, &'static str) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for ts in TestStore::all().await.expect("open test stores") {
        test(ts.store.clone(), ts.label).await;
        ts.cleanup().await;
    }
}

fn sample(customers: usize) -> Portfolio {
    generate(&DemoConfig {
        customers,
        ..Default::default()
    })
}

fn sorted(mut p: Portfolio) -> Portfolio {
    p.customers.sort_by(|a, b| a.id.cmp(&b.id));
    p.invoices
        .sort_by(|a, b| (a.due_date, &a.number).cmp(&(b.due_date, &b.number)));
    p.payments
        .sort_by(|a, b| (a.received_on, &a.id).cmp(&(b.received_on, &b.id)));
    p
}

#[tokio::test]
async fn import_round_trips_the_ledger() {
    on_every_backend(|store, label| async move {
        let p = sample(30);
        let stats = store.import_portfolio(&p, "test").await.unwrap();
        assert_eq!(stats.invoices, p.invoices.len());
        let want = sorted(p);
        let got = store.ledger().await.unwrap();
        assert_eq!(got.customers, want.customers, "{label}");
        assert_eq!(got.invoices, want.invoices, "{label}");
        assert_eq!(got.payments, want.payments, "{label}");
        let one = store.customer(&want.customers[3].id).await.unwrap();
        assert_eq!(one, want.customers[3], "{label}");
        let theirs = store.invoices(Some(&one.id)).await.unwrap();
        assert!(
            !theirs.is_empty() && theirs.iter().all(|i| i.customer_id == one.id),
            "{label}"
        );
    })
    .await;
}

#[tokio::test]
async fn reimport_updates_in_place() {
    on_every_backend(|store, label| async move {
        let mut p = sample(10);
        store.import_portfolio(&p, "first").await.unwrap();
        let before = store.counts().await.unwrap();
        p.invoices[0].amount = Money::new(
            p.invoices[0].amount.minor + 1,
            p.invoices[0].amount.currency,
        );
        p.customers[0].flags.cease_contact = true;
        store.import_portfolio(&p, "second").await.unwrap();
        assert_eq!(
            store.counts().await.unwrap(),
            before,
            "{label}: re-import must not duplicate"
        );
        let inv = store
            .invoices(Some(&p.invoices[0].customer_id))
            .await
            .unwrap();
        assert!(inv.contains(&p.invoices[0]), "{label}");
        assert!(
            store
                .customer(&p.customers[0].id)
                .await
                .unwrap()
                .flags
                .cease_contact,
            "{label}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_failing_import_leaves_nothing_behind() {
    on_every_backend(|store, label| async move {
        let good = sample(5);
        store.import_portfolio(&good, "good").await.unwrap();
        let before = store.ledger().await.unwrap();
        // 40 new customers write fine; the 1001st invoice names a customer that does not
        // exist, so the database rejects it after thousands of rows were already sent.
        let mut bad = generate(&DemoConfig {
            customers: 60,
            seed: 99,
            ..Default::default()
        });
        for c in &mut bad.customers {
            c.id = format!("N{}", c.id);
        }
        for i in &mut bad.invoices {
            i.customer_id = format!("N{}", i.customer_id);
            i.number = format!("N{}", i.number);
        }
        bad.payments.clear();
        bad.invoices[1000].customer_id = "NOBODY".into();
        let err = store.import_portfolio(&bad, "bad").await.unwrap_err();
        assert!(matches!(err, StoreError::Db(_)), "{label}: {err}");
        let after = store.ledger().await.unwrap();
        assert_eq!(after.customers, before.customers, "{label}");
        assert_eq!(after.invoices, before.invoices, "{label}");
        assert_eq!(after.payments, before.payments, "{label}");
    })
    .await;
}

/// The manager dashboard is computed from what the store already serves: `ledger()` and
/// `promises(None)`. From the store it must equal the dashboard of the data imported.
#[tokio::test]
async fn dashboard_from_the_store_matches_the_dashboard_of_the_data() {
    on_every_backend(|store, label| async move {
        let cfg = DemoConfig {
            customers: 40,
            ..Default::default()
        };
        let p = generate(&cfg);
        store.import_portfolio(&p, "t").await.unwrap();
        // Promises from a few customers: made two weeks ago for a week ago, and for next week.
        let made = cfg.as_of.and_hms_opt(15, 0, 0).unwrap().and_utc() - chrono::Duration::days(14);
        let mut promises = Vec::new();
        for (k, c) in p.customers.iter().take(12).enumerate() {
            let currency = p
                .invoices
                .iter()
                .find(|i| i.customer_id == c.id)
                .map_or(Currency::USD, |i| i.amount.currency);
            let promise = PromiseToPay {
                id: format!("PTP-{k}"),
                customer_id: c.id.clone(),
                invoice_numbers: vec![],
                amount: Money::new(100_00 * (k as i64 + 1), currency),
                promised_date: cfg.as_of + chrono::Duration::days(if k % 2 == 0 { -7 } else { 7 }),
                created_at: made,
                status: PromiseStatus::Open,
            };
            store.insert_promise(&promise).await.unwrap();
            promises.push(promise);
        }
        let expected = dashboard(&DashboardInput {
            customers: &p.customers,
            invoices: &p.invoices,
            payments: &p.payments,
            promises: &promises,
            as_of: cfg.as_of,
            period_days: 90,
            promise_grace_days: 3,
        })
        .unwrap();
        let l = store.ledger().await.unwrap();
        let stored_promises = store.promises(None).await.unwrap();
        let got = dashboard(&DashboardInput {
            customers: &l.customers,
            invoices: &l.invoices,
            payments: &l.payments,
            promises: &stored_promises,
            as_of: cfg.as_of,
            period_days: 90,
            promise_grace_days: 3,
        })
        .unwrap();
        assert_eq!(got, expected, "{label}");
        assert!(got.rows.len() >= 3, "{label}: the sample spans segments");
        let counted: usize = got
            .totals
            .iter()
            .map(|t| t.promises_kept + t.promises_broken + t.promises_open)
            .sum();
        assert_eq!(counted, 12, "{label}");
    })
    .await;
}

#[tokio::test]
async fn aging_from_the_store_matches_aging_from_the_file() {
    on_every_backend(|store, label| async move {
        let cfg = DemoConfig {
            customers: 40,
            ..Default::default()
        };
        let p = generate(&cfg);
        store.import_portfolio(&p, "t").await.unwrap();
        let l = store.ledger().await.unwrap();
        let from_store = aging_report(&l.invoices, &l.payments, cfg.as_of, 90).unwrap();
        let from_file = aging_report(&p.invoices, &p.payments, cfg.as_of, 90).unwrap();
        assert_eq!(from_store, from_file, "{label}");
        assert!(
            from_store.totals.iter().any(|t| t.buckets[4] > 0),
            "{label}: sample has 90+ debt"
        );
    })
    .await;
}

#[tokio::test]
async fn promises_cases_and_plans_round_trip() {
    on_every_backend(|store, label| async move {
        let p = sample(3);
        store.import_portfolio(&p, "t").await.unwrap();
        let cust = p.customers[0].id.clone();
        let inv: Vec<&Invoice> = p
            .invoices
            .iter()
            .filter(|i| i.customer_id == cust)
            .collect();
        let promise = PromiseToPay {
            id: "PTP-1".into(),
            customer_id: cust.clone(),
            invoice_numbers: vec![inv[0].number.clone()],
            amount: Money::new(250_00, Currency::USD),
            promised_date: "2026-12-01".parse().unwrap(),
            created_at: "2026-11-20T14:03:07Z".parse().unwrap(),
            status: PromiseStatus::Open,
        };
        store.insert_promise(&promise).await.unwrap();
        assert_eq!(
            store.promises(Some(&cust)).await.unwrap(),
            vec![promise.clone()],
            "{label}"
        );
        assert!(
            store
                .set_promise_status("PTP-1", PromiseStatus::Broken)
                .await
                .unwrap()
        );
        assert!(
            !store
                .set_promise_status("PTP-404", PromiseStatus::Broken)
                .await
                .unwrap()
        );
        assert_eq!(
            store.promises(None).await.unwrap()[0].status,
            PromiseStatus::Broken,
            "{label}"
        );

        let case = Case {
            id: "CASE-1".into(),
            customer_id: cust.clone(),
            kind: CaseKind::Dispute,
            status: CaseStatus::Open,
            invoice_numbers: vec![inv[0].number.clone()],
            disputed_amount: Some(Money::new(99_95, Currency::GBP)),
            summary: "Goods arrived damaged".into(),
            opened_at: "2026-11-21T09:00:00Z".parse().unwrap(),
        };
        store.insert_case(&case).await.unwrap();
        assert_eq!(
            store.cases(Some(&cust)).await.unwrap(),
            vec![case],
            "{label}"
        );
        assert!(
            store.cases(Some("C99999")).await.unwrap().is_empty(),
            "{label}"
        );

        let plan = PaymentPlan {
            id: "PLAN-1".into(),
            customer_id: cust.clone(),
            currency: Currency::USD,
            balance_minor: 900_00,
            discount_minor: 0,
            down_payment_minor: 300_00,
            start_date: "2026-12-01".parse().unwrap(),
            installments: vec![
                Installment {
                    due_date: "2027-01-01".parse().unwrap(),
                    amount_minor: 300_00,
                },
                Installment {
                    due_date: "2027-02-01".parse().unwrap(),
                    amount_minor: 300_00,
                },
            ],
            status: PlanStatus::Proposed,
        };
        store.insert_plan(&plan).await.unwrap();
        assert_eq!(store.plans(None).await.unwrap(), vec![plan], "{label}");
    })
    .await;
}

#[tokio::test]
async fn missing_rows_and_bad_urls_are_named() {
    on_every_backend(|store, label| async move {
        let err = store.customer("C404").await.unwrap_err();
        assert_eq!(err.to_string(), "customer C404 not found", "{label}");
    })
    .await;
    let err = Store::open("mysql://localhost/x").await.unwrap_err();
    assert!(err.to_string().contains("mysql://localhost/x"), "{err}");
}

#[tokio::test]
async fn sqlite_database_is_one_file_in_wal_mode() {
    let ts = TestStore::sqlite().await.unwrap();
    let path = ts.sqlite_path().unwrap().to_path_buf();
    ts.store.import_portfolio(&sample(2), "t").await.unwrap();
    assert!(path.exists());
    // Reopening an existing database migrates nothing and keeps the rows.
    let again = Store::open(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    assert_eq!(
        again.counts().await.unwrap(),
        ts.store.counts().await.unwrap()
    );
    let wal = std::path::PathBuf::from(format!("{}-wal", path.display()));
    assert!(wal.exists(), "journal mode is WAL");
    again.close().await;
    ts.cleanup().await;
}

const REIMPORT_HEADER: &str = "customer_id,customer_name,tier,jurisdiction,time_zone,email,invoice_number,invoice_date,due_date,currency,amount,paid_amount,paid_date\n";

fn reimport_csv(rows: &[&str]) -> Vec<u8> {
    let mut s = REIMPORT_HEADER.to_string();
    for r in rows {
        s.push_str(r);
        s.push('\n');
    }
    s.into_bytes()
}

/// A re-import that would move an invoice, change its currency under a payment, lower it
/// below what was paid, or push a customer over the bound is refused at its line and
/// column, and nothing of it is written (the good row before the bad one included).
#[tokio::test]
async fn a_reimport_that_contradicts_the_stored_ledger_is_refused() {
    on_every_backend(|store, label| async move {
        let first = reimport_csv(&[
            "C1,Acme,standard,b2b,UTC,a@acme.example,INV-1,2026-01-01,2026-01-31,USD,100.00,40.00,2026-02-01",
            "C2,Bolt,standard,b2b,UTC,b@bolt.example,INV-2,2026-01-01,2026-01-31,USD,50.00,,",
        ]);
        store
            .import_file(&parse(&first).unwrap(), "first")
            .await
            .unwrap();
        let before = store.ledger().await.unwrap();
        let cases = [
            (
                "C2,Bolt,standard,b2b,UTC,b@bolt.example,INV-1,2026-01-01,2026-01-31,USD,100.00,40.00,2026-02-01",
                "line 3, column 1 (customer_id): invoice INV-1 belongs to customer C1 in the \
                 ledger; a re-import cannot move it to customer C2",
            ),
            (
                "C1,Acme,standard,b2b,UTC,a@acme.example,INV-1,2026-01-01,2026-01-31,EUR,100.00,,",
                "line 3, column 10 (currency): invoice INV-1 is recorded in USD with USD 40.00 \
                 paid on it; a re-import cannot change its currency to EUR",
            ),
            (
                "C1,Acme,standard,b2b,UTC,a@acme.example,INV-1,2026-01-01,2026-01-31,USD,30.00,,",
                "line 3, column 11 (amount): invoice INV-1 has USD 40.00 paid on it; a \
                 re-import cannot lower its amount to USD 30.00",
            ),
        ];
        for (bad, want) in cases {
            let data = reimport_csv(&[
                "C3,Cole,standard,b2b,UTC,c@cole.example,INV-3,2026-01-01,2026-01-31,USD,10.00,,",
                bad,
            ]);
            let err = store
                .import_file(&parse(&data).unwrap(), "bad")
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::Import(_)), "{label}: {err:?}");
            assert_eq!(err.to_string(), want, "{label}");
            let after = store.ledger().await.unwrap();
            assert_eq!(after.customers, before.customers, "{label}");
            assert_eq!(after.invoices, before.invoices, "{label}");
            assert_eq!(after.payments, before.payments, "{label}");
        }

        // The per-customer bound counts what is stored: C2 holds 50.00 and 99 invoices of
        // 100 billion; one more of 100 billion passes 10^15 minor units.
        let mut rows: Vec<String> = (0..99)
            .map(|k| format!("C2,Bolt,standard,b2b,UTC,b@bolt.example,BIG-{k},2026-01-01,2026-01-31,USD,100000000000.00,,"))
            .collect();
        let refs: Vec<&str> = rows.iter().map(String::as_str).collect();
        store
            .import_file(&parse(&reimport_csv(&refs)).unwrap(), "big")
            .await
            .unwrap();
        let before = store.ledger().await.unwrap();
        rows.clear();
        let err = store
            .import_file(
                &parse(&reimport_csv(&[
                    "C3,Cole,standard,b2b,UTC,c@cole.example,INV-3,2026-01-01,2026-01-31,USD,10.00,,",
                    "C2,Bolt,standard,b2b,UTC,b@bolt.example,BIG-X,2026-01-01,2026-01-31,USD,100000000000.00,,",
                ]))
                .unwrap(),
                "one too many",
            )
            .await
            .unwrap_err();
        assert!(
            err.to_string().starts_with(
                "line 3, column 11 (amount): invoice BIG-X: customer C2's invoices in USD would \
                 add up to USD 10000000000050.00"
            ),
            "{label}: {err}"
        );
        let after = store.ledger().await.unwrap();
        assert_eq!(after.invoices, before.invoices, "{label}");
        assert_eq!(after.customers, before.customers, "{label}");

        // A portfolio built in code meets the same checks; its error names the invoice.
        let mut moved = store.ledger().await.unwrap();
        moved.customers.retain(|c| c.id == "C2");
        moved.invoices.retain(|i| i.number == "INV-1");
        moved.invoices[0].customer_id = "C2".into();
        moved.payments.clear();
        let p = Portfolio {
            customers: moved.customers,
            invoices: moved.invoices,
            payments: moved.payments,
        };
        let err = store.import_portfolio(&p, "code").await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with("customer_id: invoice INV-1 belongs to customer C1"),
            "{label}: {err}"
        );
    })
    .await;
}

#[tokio::test]
async fn account_facts_round_trip_and_survive_a_reimport() {
    on_every_backend(|store, label| async move {
        let p = sample(4);
        store.import_portfolio(&p, "first").await.unwrap();
        let id = p.customers[1].id.clone();
        assert_eq!(
            store.customer(&id).await.unwrap().facts,
            argent_core::AccountFacts::default(),
            "{label}: an imported customer has no facts"
        );
        let facts: argent_core::AccountFacts = serde_json::from_value(serde_json::json!({
            "cease_contact_pending": true,
            "validation_notice": {"sent_on": "2026-01-05", "channel": "letter"},
            "region": "NY",
            "invoice_acknowledged_on": {"INV-1": "2024-02-01"},
            "inconvenient_times": [{"from": "12:00:00", "to": "13:00:00"}],
            "limits": {"max_discount_bps": 1500, "note": "agreed with the account manager"}
        }))
        .unwrap();
        let mut tx = store.begin().await.unwrap();
        tx.set_customer_facts(&id, &facts).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(store.customer(&id).await.unwrap().facts, facts, "{label}");
        assert_eq!(
            store.account_records(&id).await.unwrap().customer.facts,
            facts,
            "{label}"
        );
        // An aging re-import carries no facts and must not erase them.
        store.import_portfolio(&p, "second").await.unwrap();
        assert_eq!(store.customer(&id).await.unwrap().facts, facts, "{label}");
        // An unknown customer is NotFound (on the SQLite writer, from the commit).
        let mut tx = store.begin().await.unwrap();
        let err = match tx.set_customer_facts("NOBODY", &facts).await {
            Err(e) => e,
            Ok(()) => tx.commit().await.unwrap_err(),
        };
        assert!(matches!(err, StoreError::NotFound(_)), "{label}: {err}");
    })
    .await;
}

#[tokio::test]
async fn a_reimport_keeps_the_opt_outs_recorded_since() {
    // An opt-out recognised in a customer's "STOP" (or set by a person) is stored on the
    // contact; the next aging export knows nothing of it and must not erase it.
    on_every_backend(|store, label| async move {
        let p = sample(3);
        store.import_portfolio(&p, "first").await.unwrap();
        let id = p.customers[0].id.clone();
        let mut contacts = store.customer(&id).await.unwrap().contacts;
        contacts[0].opted_out.push(argent_core::Channel::Email);
        let mut tx = store.begin().await.unwrap();
        tx.set_customer_contacts(&id, &contacts).await.unwrap();
        tx.commit().await.unwrap();
        store.import_portfolio(&p, "second").await.unwrap();
        let after = store.customer(&id).await.unwrap();
        assert!(
            after.contacts[0]
                .opted_out
                .contains(&argent_core::Channel::Email),
            "{label}: the re-import erased the opt-out: {:?}",
            after.contacts
        );
        assert_eq!(after.contacts.len(), contacts.len(), "{label}");
    })
    .await;
}
