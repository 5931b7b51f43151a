#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Conformance (SQLite, and PostgreSQL when ARGENT_TEST_POSTGRES_URL is set): tasks are
//! created, assigned, commented on and closed with audit events in the same transaction,
//! within the role rules; listings filter by role, assignee, customer, status, due time and
//! what a viewer may see; cases are taken (open → in progress, with an owner) and listed.

use chrono::{DateTime, Utc};

use argent_core::{Case, CaseKind, CaseStatus, Role, TaskKind, TaskStatus};
use argent_store::testkit::{TestStore, two_consumer_portfolio};
use argent_store::{
    AuditFilter, AuditVerification, CaseFilter, NOT_PERMITTED, NewTask, Store, StoreError,
    TaskActor, TaskFilter,
};

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

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn new_task(id: &str, customer: &str, role: Role, due: Option<&str>) -> NewTask {
    NewTask {
        id: id.into(),
        kind: TaskKind::Escalation,
        customer_id: customer.into(),
        owner_role: role,
        assignee: None,
        title: format!("look at {customer}"),
        body: "the customer asked for a person".into(),
        due_at: due.map(at),
        source: format!("run-1/0/{id}"),
        created_at: at("2026-11-02T10:00:00Z"),
        actor: "agent".into(),
    }
}

fn who(name: &str, role: Role) -> TaskActor {
    TaskActor {
        name: name.into(),
        role,
    }
}

async fn task_events(store: &Store) -> Vec<(String, String)> {
    store
        .audit_events(&AuditFilter::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind.starts_with("task.") || e.kind.starts_with("case."))
        .map(|e| (e.kind, e.actor))
        .collect()
}

async fn seeded(store: &Store) {
    store
        .import_portfolio(&two_consumer_portfolio(), "t")
        .await
        .unwrap();
    let mut tx = store.begin().await.unwrap();
    for t in [
        new_task("T1", "C-ANN", Role::Collector, Some("2026-11-02T14:00:00Z")),
        new_task("T2", "C-BO", Role::Manager, Some("2026-11-03T10:00:00Z")),
        new_task("T3", "C-ANN", Role::Collector, None),
        new_task("T4", "C-BO", Role::Collector, Some("2026-11-05T10:00:00Z")),
    ] {
        tx.create_task(&t).await.unwrap();
    }
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_task_is_created_taken_commented_and_closed_with_audit_events() {
    on_every_backend(|store, label| async move {
        seeded(&store).await;
        let t = store.task("T1").await.unwrap();
        assert_eq!(t.status, TaskStatus::Open, "{label}");
        assert_eq!(t.due_at, Some(at("2026-11-02T14:00:00Z")), "{label}");
        assert_eq!(t.owner_role, Role::Collector);
        assert_eq!(t.source, "run-1/0/T1");

        let cara = who("cara", Role::Collector);
        let t = store.assign_task("T1", &cara, "cara").await.unwrap();
        assert_eq!(
            (t.status, t.assignee.as_deref()),
            (TaskStatus::InProgress, Some("cara"))
        );
        store
            .comment_task("T1", &cara, "left a voicemail")
            .await
            .unwrap();
        let t = store
            .close_task(
                "T1",
                &cara,
                TaskStatus::Done,
                "customer called back; promise logged",
            )
            .await
            .unwrap();
        assert_eq!(t.status, TaskStatus::Done);
        let stored = store.task("T1").await.unwrap();
        assert_eq!(stored.status, TaskStatus::Done, "{label}");
        assert_eq!(
            stored.outcome.as_deref(),
            Some("customer called back; promise logged")
        );
        let comments = store.task_comments("T1").await.unwrap();
        assert_eq!(comments.len(), 1);
        assert_eq!(
            (comments[0].author.as_str(), comments[0].body.as_str()),
            ("cara", "left a voicemail")
        );

        // A closed task does not change again.
        let e = store
            .close_task(
                "T1",
                &who("mia", Role::Manager),
                TaskStatus::Cancelled,
                "again",
            )
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Conflict(_)), "{label}: {e:?}");
        let e = store.assign_task("T1", &cara, "cara").await.unwrap_err();
        assert!(matches!(e, StoreError::Conflict(_)), "{label}: {e:?}");

        let ev = task_events(&store).await;
        let t1: Vec<(&str, &str)> = ev
            .iter()
            .map(|(k, a)| (k.as_str(), a.as_str()))
            .filter(|(k, _)| *k != "task.created")
            .collect();
        assert_eq!(
            t1,
            [
                ("task.assigned", "cara"),
                ("task.commented", "cara"),
                ("task.closed", "cara")
            ],
            "{label}"
        );
        assert_eq!(ev.iter().filter(|(k, _)| k == "task.created").count(), 4);
        assert!(matches!(
            store.audit_verify().await.unwrap(),
            AuditVerification::Intact { .. }
        ));
    })
    .await;
}

#[tokio::test]
async fn a_collector_cannot_touch_a_managers_task_or_a_colleagues() {
    on_every_backend(|store, label| async move {
        seeded(&store).await;
        let cara = who("cara", Role::Collector);
        let before = task_events(&store).await.len();
        // T2 belongs to the manager role.
        for e in [
            store
                .close_task("T2", &cara, TaskStatus::Done, "done")
                .await
                .unwrap_err(),
            store.assign_task("T2", &cara, "cara").await.unwrap_err(),
            store.comment_task("T2", &cara, "hello").await.unwrap_err(),
        ] {
            assert!(
                matches!(&e, StoreError::Invalid(m) if m.starts_with(NOT_PERMITTED)),
                "{label}: {e:?}"
            );
        }
        // Colin takes T4; Cara may then neither take nor close it, nor assign anything
        // to anyone else.
        let colin = who("colin", Role::Collector);
        store.assign_task("T4", &colin, "colin").await.unwrap();
        let e = store
            .close_task("T4", &cara, TaskStatus::Done, "x")
            .await
            .unwrap_err();
        assert!(
            matches!(&e, StoreError::Invalid(m) if m.contains("assigned to colin")),
            "{e:?}"
        );
        let e = store.assign_task("T3", &cara, "colin").await.unwrap_err();
        assert!(
            matches!(&e, StoreError::Invalid(m) if m.contains("only take")),
            "{e:?}"
        );
        let t4 = store.task("T4").await.unwrap();
        assert_eq!(t4.assignee.as_deref(), Some("colin"), "{label}");
        assert_eq!(t4.status, TaskStatus::InProgress);
        // Only Colin's take was recorded.
        assert_eq!(task_events(&store).await.len(), before + 1, "{label}");
        // A manager reassigns and closes anything.
        let mia = who("mia", Role::Manager);
        store.assign_task("T4", &mia, "cara").await.unwrap();
        store
            .close_task("T4", &cara, TaskStatus::Done, "paid")
            .await
            .unwrap();
        store
            .close_task("T2", &mia, TaskStatus::Cancelled, "duplicate of T1")
            .await
            .unwrap();
        assert_eq!(
            store.task("T2").await.unwrap().status,
            TaskStatus::Cancelled
        );
    })
    .await;
}

#[tokio::test]
async fn listings_filter_by_role_assignee_customer_status_due_time_and_viewer() {
    on_every_backend(|store, label| async move {
        seeded(&store).await;
        let ids = |v: Vec<argent_store::Task>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
        // Soonest due first; no due time last.
        assert_eq!(
            ids(store.tasks(&TaskFilter::open()).await.unwrap()),
            ["T1", "T2", "T4", "T3"],
            "{label}"
        );
        let mut f = TaskFilter::open();
        f.owner_role = Some(Role::Manager);
        assert_eq!(ids(store.tasks(&f).await.unwrap()), ["T2"]);
        let mut f = TaskFilter::open();
        f.customer_id = Some("C-ANN".into());
        assert_eq!(ids(store.tasks(&f).await.unwrap()), ["T1", "T3"]);
        let mut f = TaskFilter::open();
        f.due_before = Some(at("2026-11-03T10:00:00Z"));
        assert_eq!(ids(store.tasks(&f).await.unwrap()), ["T1", "T2"], "{label}");

        // A manager assigns the manager task to Cara: she now sees it, Colin does not.
        store
            .assign_task("T2", &who("mia", Role::Manager), "cara")
            .await
            .unwrap();
        let mut f = TaskFilter::open();
        f.visible_to = Some(who("cara", Role::Collector));
        assert_eq!(
            ids(store.tasks(&f).await.unwrap()),
            ["T1", "T2", "T4", "T3"]
        );
        f.visible_to = Some(who("colin", Role::Collector));
        assert_eq!(
            ids(store.tasks(&f).await.unwrap()),
            ["T1", "T4", "T3"],
            "{label}"
        );
        f.visible_to = Some(who("cy", Role::Compliance));
        assert_eq!(store.tasks(&f).await.unwrap().len(), 4);
        let mut f = TaskFilter::open();
        f.assignee = Some("cara".into());
        assert_eq!(ids(store.tasks(&f).await.unwrap()), ["T2"]);
        let f = TaskFilter {
            statuses: vec![TaskStatus::InProgress],
            ..TaskFilter::default()
        };
        assert_eq!(ids(store.tasks(&f).await.unwrap()), ["T2"]);

        // Counts per role and status, with the overdue ones as of a given instant.
        let counts = store.task_counts(at("2026-11-04T00:00:00Z")).await.unwrap();
        let got: Vec<(Role, TaskStatus, i64, i64)> = counts
            .iter()
            .map(|c| (c.owner_role, c.status, c.count, c.overdue))
            .collect();
        assert_eq!(
            got,
            [
                (Role::Collector, TaskStatus::Open, 3, 1),
                (Role::Manager, TaskStatus::InProgress, 1, 1),
            ],
            "{label}"
        );
    })
    .await;
}

#[tokio::test]
async fn task_ids_and_customers_are_checked_in_the_transaction() {
    on_every_backend(|store, label| async move {
        seeded(&store).await;
        // The same id again (a replayed execution) fails and leaves nothing behind.
        let mut tx = store.begin().await.unwrap();
        let dup = tx
            .create_task(&new_task("T1", "C-ANN", Role::Collector, None))
            .await;
        let failed = match dup {
            Err(_) => true,
            Ok(_) => tx.commit().await.is_err(),
        };
        assert!(failed, "{label}");
        assert_eq!(store.tasks(&TaskFilter::default()).await.unwrap().len(), 4);
        // An unknown customer is refused.
        assert!(
            store
                .create_task(&new_task("T9", "C-NOBODY", Role::Collector, None))
                .await
                .is_err(),
            "{label}"
        );
        assert!(matches!(
            store.task("T9").await,
            Err(StoreError::NotFound(_))
        ));
    })
    .await;
}

#[tokio::test]
async fn a_case_is_taken_into_progress_and_listed_with_its_owner() {
    on_every_backend(|store, label| async move {
        store
            .import_portfolio(&two_consumer_portfolio(), "t")
            .await
            .unwrap();
        for (id, kind, cust, opened) in [
            ("K1", CaseKind::Dispute, "C-ANN", "2026-11-01T10:00:00Z"),
            (
                "K2",
                CaseKind::PaymentClaimed,
                "C-BO",
                "2026-11-02T10:00:00Z",
            ),
            ("K3", CaseKind::Question, "C-BO", "2026-11-03T10:00:00Z"),
        ] {
            store
                .insert_case(&Case {
                    id: id.into(),
                    customer_id: cust.into(),
                    kind,
                    status: CaseStatus::Open,
                    invoice_numbers: vec![format!("INV-{cust}")],
                    disputed_amount: None,
                    summary: "why".into(),
                    opened_at: at(opened),
                })
                .await
                .unwrap();
        }
        let c = store.take_case("K1", "cara", "cara").await.unwrap();
        assert_eq!(c.status, CaseStatus::InProgress);
        // An in-progress dispute still pauses collection.
        assert!(c.pauses("INV-C-ANN"), "{label}");
        // Taking it again is not a step.
        assert!(matches!(
            store.take_case("K1", "colin", "colin").await,
            Err(StoreError::Invalid(_))
        ));
        // A payment claim that does not stand is rejected; a dispute never is.
        store
            .advance_case("K2", CaseStatus::Rejected, "mia", Some("no payment found"))
            .await
            .unwrap();
        assert!(matches!(
            store
                .advance_case("K1", CaseStatus::Rejected, "mia", Some("no"))
                .await,
            Err(StoreError::Invalid(_))
        ));
        store
            .advance_case(
                "K1",
                CaseStatus::VerificationSent,
                "cara",
                Some("sent by post"),
            )
            .await
            .unwrap();

        let all = store.case_list(&CaseFilter::default()).await.unwrap();
        let rows: Vec<(&str, CaseStatus, Option<&str>)> = all
            .iter()
            .map(|l| (l.case.id.as_str(), l.case.status, l.owner.as_deref()))
            .collect();
        assert_eq!(
            rows,
            [
                ("K1", CaseStatus::VerificationSent, Some("cara")),
                ("K2", CaseStatus::Rejected, None),
                ("K3", CaseStatus::Open, None),
            ],
            "{label}"
        );
        let active = store
            .case_list(&CaseFilter {
                statuses: vec![
                    CaseStatus::Open,
                    CaseStatus::InProgress,
                    CaseStatus::VerificationSent,
                ],
                ..CaseFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(active.len(), 2);
        let mine = store
            .case_list(&CaseFilter {
                owner: Some("cara".into()),
                kinds: vec![CaseKind::Dispute],
                ..CaseFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].case.id, "K1");
        let bo = store
            .case_list(&CaseFilter {
                customer_id: Some("C-BO".into()),
                limit: Some(1),
                offset: 1,
                ..CaseFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(bo.len(), 1);
        assert_eq!(bo[0].case.id, "K3", "{label}");
        let ev = task_events(&store).await;
        assert!(
            ev.iter()
                .any(|(k, a)| k == "case.in_progress" && a == "cara"),
            "{label}: {ev:?}"
        );
    })
    .await;
}
