//! The audited write of account facts, on SQLite and (when ARGENT_TEST_POSTGRES_URL is set)
//! PostgreSQL.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use argent_core::AccountFacts;
use argent_core::demo::{DemoConfig, generate};
use argent_core::facts_import;
use argent_store::testkit::TestStore;
use argent_store::{AuditFilter, Store, StoreError};
use serde_json::json;

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

async fn seeded(store: &Store) -> Vec<String> {
    let p = generate(&DemoConfig {
        customers: 3,
        ..Default::default()
    });
    store.import_portfolio(&p, "test").await.unwrap();
    p.customers.iter().map(|c| c.id.clone()).collect()
}

async fn events(store: &Store, kind: &str) -> Vec<argent_store::AuditEvent> {
    store
        .audit_events(&AuditFilter {
            kind: Some(kind.into()),
            ..Default::default()
        })
        .await
        .unwrap()
}

fn facts(v: serde_json::Value) -> AccountFacts {
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn an_edit_writes_the_facts_with_one_audit_event_naming_the_changed_fields() {
    on_every_backend(|store, label| async move {
        let ids = seeded(&store).await;
        let id = ids[0].as_str();
        let new = facts(json!({"region": "NY", "litigation_authorised": true}));
        let changes = store
            .edit_customer_facts::<StoreError, _>(
                &[id],
                "collector:ann",
                "facts.updated",
                &json!({}),
                |_, before| {
                    assert_eq!(before, Some(&AccountFacts::default()));
                    Ok(new.clone())
                },
            )
            .await
            .unwrap();
        assert_eq!(changes.len(), 1, "{label}");
        assert_eq!(store.customer(id).await.unwrap().facts, new, "{label}");
        let ev = events(&store, "facts.updated").await;
        assert_eq!(ev.len(), 1, "{label}");
        assert_eq!(ev[0].actor, "collector:ann");
        assert_eq!(ev[0].customer_id.as_deref(), Some(id));
        assert_eq!(
            ev[0].payload["changed"],
            json!({
                "region": {"before": null, "after": "NY"},
                "litigation_authorised": {"before": false, "after": true}
            }),
            "{label}"
        );
        // The same facts again change nothing and audit nothing.
        let again = store
            .edit_customer_facts::<StoreError, _>(
                &[id],
                "collector:ann",
                "facts.updated",
                &json!({}),
                |_, _| Ok(new.clone()),
            )
            .await
            .unwrap();
        assert!(again.is_empty(), "{label}");
        assert_eq!(events(&store, "facts.updated").await.len(), 1, "{label}");
        assert!(store.audit_verify().await.is_ok());
    })
    .await;
}

#[tokio::test]
async fn one_refused_customer_leaves_every_customer_as_it_was() {
    on_every_backend(|store, label| async move {
        let ids = seeded(&store).await;
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        // The second edit fails: the first is not written either.
        let err = store
            .edit_customer_facts::<StoreError, _>(
                &refs,
                "importer",
                "facts.imported",
                &json!({"source": "f.csv"}),
                |i, _| {
                    if i == 1 {
                        Err(StoreError::Invalid("refused".into()))
                    } else {
                        Ok(facts(json!({"region": "CA"})))
                    }
                },
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("refused"), "{label}: {err}");
        // Facts that fail check() are refused, naming the field.
        let err = store
            .edit_customer_facts::<StoreError, _>(
                &refs[..1],
                "importer",
                "facts.imported",
                &json!({}),
                |_, _| Ok(facts(json!({"limits": {"max_discount_bps": 20000}}))),
            )
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("/limits/max_discount_bps"),
            "{label}: {err}"
        );
        // An unknown customer: the edit sees None, and without an error of its own it is
        // NotFound.
        let err = store
            .edit_customer_facts::<StoreError, _>(
                &["NOBODY"],
                "importer",
                "facts.imported",
                &json!({}),
                |_, before| {
                    assert!(before.is_none());
                    Ok(AccountFacts::default())
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)), "{label}: {err}");
        for id in &ids {
            assert_eq!(
                store.customer(id).await.unwrap().facts,
                AccountFacts::default(),
                "{label}"
            );
        }
        assert!(events(&store, "facts.imported").await.is_empty(), "{label}");
    })
    .await;
}

#[tokio::test]
async fn a_facts_file_applied_through_the_store_merges_per_customer() {
    on_every_backend(|store, label| async move {
        let ids = seeded(&store).await;
        let stored = facts(json!({"region": "NY", "dispute_pending": true}));
        store
            .edit_customer_facts::<StoreError, _>(
                &[ids[0].as_str()],
                "collector:ann",
                "facts.updated",
                &json!({}),
                |_, _| Ok(stored.clone()),
            )
            .await
            .unwrap();
        let csv = format!(
            "customer_id,fact,value\n{a},region,england\n{b},preferred_channel,letter\n",
            a = ids[0],
            b = ids[1]
        );
        let file = facts_import::parse(csv.as_bytes()).unwrap();
        let targets: Vec<&str> = file
            .customers
            .iter()
            .map(|c| c.customer_id.as_str())
            .collect();
        let changes = store
            .edit_customer_facts::<StoreError, _>(
                &targets,
                "manager:max",
                "facts.imported",
                &json!({"source": "f.csv"}),
                |i, before| {
                    let before = before.cloned().unwrap_or_default();
                    Ok(file.apply(&file.customers[i], &before)?)
                },
            )
            .await
            .unwrap();
        assert_eq!(changes.len(), 2, "{label}");
        let a = store.customer(&ids[0]).await.unwrap().facts;
        assert_eq!(a.region.as_deref(), Some("england"), "{label}");
        assert!(a.dispute_pending, "{label}: merged, not replaced");
        let ev = events(&store, "facts.imported").await;
        assert_eq!(ev.len(), 2, "{label}");
        assert_eq!(ev[0].payload["source"], "f.csv");
        assert_eq!(
            ev[0].payload["changed"],
            json!({"region": {"before": "NY", "after": "england"}})
        );
    })
    .await;
}
