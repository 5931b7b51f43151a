//! Conformance tests for versioned documents (prompts and policies), on SQLite and (when
//! ARGENT_TEST_POSTGRES_URL is set) PostgreSQL.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use argent_store::testkit::{TestStore, raw_execute};
use argent_store::{AuditFilter, AuditVerification, DocKind, DocStatus, Store, StoreError};

async fn events(s: &Store, kind: &str) -> Vec<argent_store::AuditEvent> {
    s.audit_events(&AuditFilter {
        kind: Some(kind.into()),
        ..Default::default()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn drafts_are_numbered_per_document_and_audited_with_their_author() {
    for ts in TestStore::all().await.unwrap() {
        let s = &ts.store;
        let l = ts.label;
        let v1 = s
            .create_document_version(DocKind::Prompt, "tone/firm", "Be firm.", "maria", None)
            .await
            .unwrap();
        let v2 = s
            .create_document_version(
                DocKind::Prompt,
                "tone/firm",
                "Be firm, and fair.",
                "omar",
                Some("softer"),
            )
            .await
            .unwrap();
        // Another document, and the same name under the other kind, start at 1.
        let other = s
            .create_document_version(DocKind::Prompt, "system", "You are…", "maria", None)
            .await
            .unwrap();
        let pol = s
            .create_document_version(DocKind::Policy, "tone/firm", "id = 'x'", "maria", None)
            .await
            .unwrap();
        assert_eq!(
            (v1.version, v2.version, other.version, pol.version),
            (1, 2, 1, 1),
            "{l}"
        );
        assert_eq!(v2.status, DocStatus::Draft);
        // printf 'Be firm, and fair.' | sha256sum
        assert_eq!(
            v2.sha256, "fe6eb380514b160a71f2b35d306efb32c284af7c7062d6f1fa46911ad20a435a",
            "{l}"
        );
        assert_eq!(argent_store::body_sha256("Be firm, and fair."), v2.sha256);

        // Read back exactly as written, newest first.
        let versions = s
            .document_versions(DocKind::Prompt, "tone/firm")
            .await
            .unwrap();
        assert_eq!(versions, vec![v2.clone(), v1.clone()], "{l}");
        assert_eq!(
            s.document(DocKind::Prompt, "tone/firm", 1).await.unwrap(),
            v1
        );
        assert!(matches!(
            s.document(DocKind::Prompt, "tone/firm", 3).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(
            s.document_versions(DocKind::Policy, "nope")
                .await
                .unwrap()
                .is_empty()
        );

        // One audit event per draft, the author as actor, naming the version and hash.
        let drafts = events(s, "document.draft").await;
        assert_eq!(drafts.len(), 4, "{l}");
        let e = &drafts[1];
        assert_eq!(e.actor, "omar");
        assert_eq!(e.payload["kind"], "prompt");
        assert_eq!(e.payload["name"], "tone/firm");
        assert_eq!(e.payload["version"], 2);
        assert_eq!(e.payload["sha256"], v2.sha256.as_str());
        assert_eq!(e.payload["note"], "softer");

        let summary = s.documents().await.unwrap();
        let rows: Vec<(DocKind, &str, Option<i64>, i64, i64)> = summary
            .iter()
            .map(|d| {
                (
                    d.kind,
                    d.name.as_str(),
                    d.active_version,
                    d.latest_version,
                    d.versions,
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                (DocKind::Policy, "tone/firm", None, 1, 1),
                (DocKind::Prompt, "system", None, 1, 1),
                (DocKind::Prompt, "tone/firm", None, 2, 2),
            ],
            "{l}"
        );
        assert!(s.active_documents().await.unwrap().is_empty());
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn activating_retires_the_previous_version_and_is_audited() {
    for ts in TestStore::all().await.unwrap() {
        let s = &ts.store;
        let l = ts.label;
        for body in ["v1", "v2", "v3"] {
            s.create_document_version(DocKind::Policy, "us-consumer", body, "maria", None)
                .await
                .unwrap();
        }
        let a1 = s
            .activate_document(DocKind::Policy, "us-consumer", 1, "boss")
            .await
            .unwrap();
        assert_eq!(a1.status, DocStatus::Active);
        assert_eq!(a1.activated_by.as_deref(), Some("boss"));
        assert!(a1.activated_at.is_some());
        let a3 = s
            .activate_document(DocKind::Policy, "us-consumer", 3, "ceo")
            .await
            .unwrap();
        assert_eq!(a3.body, "v3");
        let statuses: Vec<(i64, DocStatus)> = s
            .document_versions(DocKind::Policy, "us-consumer")
            .await
            .unwrap()
            .iter()
            .map(|v| (v.version, v.status))
            .collect();
        assert_eq!(
            statuses,
            vec![
                (3, DocStatus::Active),
                (2, DocStatus::Draft),
                (1, DocStatus::Retired)
            ],
            "{l}"
        );
        // Read back as the activation returned it.
        assert_eq!(
            s.document(DocKind::Policy, "us-consumer", 3).await.unwrap(),
            a3,
            "{l}"
        );

        // Activating the active version again is a conflict; a missing one is not found.
        assert!(
            matches!(
                s.activate_document(DocKind::Policy, "us-consumer", 3, "ceo")
                    .await,
                Err(StoreError::Conflict(_))
            ),
            "{l}"
        );
        assert!(matches!(
            s.activate_document(DocKind::Policy, "us-consumer", 9, "ceo")
                .await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            s.activate_document(DocKind::Prompt, "us-consumer", 1, "ceo")
                .await,
            Err(StoreError::NotFound(_))
        ));

        // Rolling back to a retired version works.
        s.activate_document(DocKind::Policy, "us-consumer", 1, "boss")
            .await
            .unwrap();
        let active = s.active_documents().await.unwrap();
        assert_eq!(active.len(), 1);
        assert_eq!((active[0].version, active[0].body.as_str()), (1, "v1"));
        let summary = s.documents().await.unwrap();
        assert_eq!(summary[0].active_version, Some(1));
        assert_eq!(summary[0].latest_version, 3);

        let acts = events(s, "document.activate").await;
        let seen: Vec<(String, i64, Option<i64>)> = acts
            .iter()
            .map(|e| {
                (
                    e.actor.clone(),
                    e.payload["version"].as_i64().unwrap(),
                    e.payload["previous_version"].as_i64(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                ("boss".to_string(), 1, None),
                ("ceo".to_string(), 3, Some(1)),
                ("boss".to_string(), 1, Some(3)),
            ],
            "{l}: failed activations are not audited"
        );
        assert!(matches!(
            s.audit_verify().await.unwrap(),
            AuditVerification::Intact { .. }
        ));
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn the_database_keeps_versions_append_only_and_one_active() {
    for ts in TestStore::all().await.unwrap() {
        let s = &ts.store;
        let l = ts.label;
        s.create_document_version(DocKind::Prompt, "system", "one", "maria", None)
            .await
            .unwrap();
        s.create_document_version(DocKind::Prompt, "system", "two", "maria", None)
            .await
            .unwrap();
        s.activate_document(DocKind::Prompt, "system", 1, "maria")
            .await
            .unwrap();
        let refused = [
            "UPDATE documents SET body = 'evil' WHERE version = 1",
            "UPDATE documents SET author = 'someone' WHERE version = 1",
            "DELETE FROM documents WHERE version = 2",
            // A second active version of the same document.
            "UPDATE documents SET status = 'active' WHERE version = 2",
            // Back to draft after activation.
            "UPDATE documents SET status = 'draft' WHERE version = 1",
            "INSERT INTO documents (kind, name, version, body, sha256, status, author, created_at) \
             VALUES ('template', 'x', 1, 'b', '0000000000000000000000000000000000000000000000000000000000000000', 'draft', 'a', '2026-01-01T00:00:00Z')",
        ];
        for sql in refused {
            assert!(
                raw_execute(s, sql).await.is_err(),
                "{l}: the database must refuse: {sql}"
            );
        }
        let v1 = s.document(DocKind::Prompt, "system", 1).await.unwrap();
        assert_eq!(
            (v1.body.as_str(), v1.status),
            ("one", DocStatus::Active),
            "{l}"
        );
        assert_eq!(
            s.document_versions(DocKind::Prompt, "system")
                .await
                .unwrap()
                .len(),
            2
        );
        // Names are checked before anything is written.
        assert!(matches!(
            s.create_document_version(DocKind::Prompt, " system", "x", "maria", None)
                .await,
            Err(StoreError::Invalid(_))
        ));
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn seeding_writes_only_missing_documents_and_is_idempotent() {
    for ts in TestStore::all().await.unwrap() {
        let s = &ts.store;
        let l = ts.label;
        // A document a manager already wrote (not active) is not touched by seeding.
        s.create_document_version(DocKind::Prompt, "tone/firm", "managed", "maria", None)
            .await
            .unwrap();
        let docs = vec![
            (DocKind::Prompt, "system".to_string(), "sys".to_string()),
            (DocKind::Prompt, "tone/firm".to_string(), "file".to_string()),
            (
                DocKind::Policy,
                "us-consumer".to_string(),
                "id = 'us'".to_string(),
            ),
        ];
        assert_eq!(s.seed_documents(&docs, "seed").await.unwrap(), 2, "{l}");
        assert_eq!(
            s.seed_documents(&docs, "seed").await.unwrap(),
            0,
            "{l}: idempotent"
        );
        let active: Vec<(DocKind, String, i64, String)> = s
            .active_documents()
            .await
            .unwrap()
            .into_iter()
            .map(|d| (d.kind, d.name, d.version, d.author))
            .collect();
        assert_eq!(
            active,
            vec![
                (DocKind::Policy, "us-consumer".into(), 1, "seed".into()),
                (DocKind::Prompt, "system".into(), 1, "seed".into()),
            ],
            "{l}"
        );
        let firm = s
            .document_versions(DocKind::Prompt, "tone/firm")
            .await
            .unwrap();
        assert_eq!(firm.len(), 1);
        assert_eq!(
            (firm[0].body.as_str(), firm[0].status),
            ("managed", DocStatus::Draft)
        );
        let seeded = events(s, "document.seed").await;
        assert_eq!(seeded.len(), 2, "{l}");
        assert!(seeded.iter().all(|e| e.actor == "seed"));
        assert_eq!(seeded[0].payload["name"], "system");
        assert_eq!(seeded[0].payload["version"], 1);
        // The next draft of a seeded document is version 2.
        let v2 = s
            .create_document_version(DocKind::Prompt, "system", "sys 2", "maria", None)
            .await
            .unwrap();
        assert_eq!(v2.version, 2);
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn concurrent_writers_number_drafts_densely_and_leave_one_active() {
    for ts in TestStore::all().await.unwrap() {
        let l = ts.label;
        let a = ts.store.clone();
        let b = ts.reopen().await.unwrap();
        // Drafts from two pools at once: versions 1..=10 with no gaps or duplicates.
        let mut tasks = Vec::new();
        for i in 0..10 {
            let s = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                s.create_document_version(
                    DocKind::Policy,
                    "b2b",
                    &format!("body {i}"),
                    &format!("author{i}"),
                    None,
                )
                .await
                .map(|d| d.version)
            }));
        }
        let mut got = Vec::new();
        for t in tasks {
            got.push(t.await.unwrap().unwrap());
        }
        got.sort_unstable();
        assert_eq!(got, (1..=10).collect::<Vec<i64>>(), "{l}");

        // Activations of different versions at once: all succeed (they serialize), and
        // exactly one version is active afterwards, the last one audited.
        let mut tasks = Vec::new();
        for v in 1..=10_i64 {
            let s = if v % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                s.activate_document(DocKind::Policy, "b2b", v, "boss").await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let active: Vec<i64> = a
            .document_versions(DocKind::Policy, "b2b")
            .await
            .unwrap()
            .iter()
            .filter(|d| d.status == DocStatus::Active)
            .map(|d| d.version)
            .collect();
        assert_eq!(active.len(), 1, "{l}: {active:?}");
        let acts = events(&a, "document.activate").await;
        assert_eq!(acts.len(), 10);
        assert_eq!(
            acts.last().unwrap().payload["version"].as_i64(),
            Some(active[0]),
            "{l}: the last activation audited is the one in force"
        );
        // Every activation after the first names the one it replaced.
        for w in acts.windows(2) {
            assert_eq!(
                w[1].payload["previous_version"], w[0].payload["version"],
                "{l}"
            );
        }
        b.close().await;
        ts.cleanup().await;
    }
}
