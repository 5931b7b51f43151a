//! Procedures are a third kind of versioned document (migration 0012 widened the kind; on
//! SQLite by rebuilding the table): drafted, activated and seeded like prompts and
//! policies, and as append-only. On SQLite, and PostgreSQL when ARGENT_TEST_POSTGRES_URL
//! is set.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use argent_store::testkit::{TestStore, raw_execute};
use argent_store::{AuditFilter, DocKind, DocStatus};

#[tokio::test]
async fn procedure_documents_are_versioned_activated_and_append_only() {
    for ts in TestStore::all().await.unwrap() {
        let s = &ts.store;
        let l = ts.label;
        let seeded = s
            .seed_documents(
                &[
                    (DocKind::Prompt, "system".into(), "You are…".into()),
                    (DocKind::Procedure, "standard".into(), "# v1".into()),
                ],
                "seed",
            )
            .await
            .unwrap();
        assert_eq!(seeded, 2, "{l}");
        let v2 = s
            .create_document_version(DocKind::Procedure, "standard", "# v2", "maria", None)
            .await
            .unwrap();
        assert_eq!((v2.version, v2.status), (2, DocStatus::Draft), "{l}");
        s.activate_document(DocKind::Procedure, "standard", 2, "maria")
            .await
            .unwrap();
        let active = s.active_documents().await.unwrap();
        let p: Vec<_> = active
            .iter()
            .filter(|v| v.kind == DocKind::Procedure)
            .collect();
        assert_eq!(p.len(), 1, "{l}");
        assert_eq!((p[0].name.as_str(), p[0].version), ("standard", 2), "{l}");
        assert_eq!(
            s.document(DocKind::Procedure, "standard", 1)
                .await
                .unwrap()
                .status,
            DocStatus::Retired,
            "{l}"
        );
        let listed = s.documents().await.unwrap();
        assert!(
            listed
                .iter()
                .any(|d| d.kind == DocKind::Procedure && d.active_version == Some(2)),
            "{l}"
        );
        for sql in [
            "UPDATE documents SET body = 'evil' WHERE kind = 'procedure' AND version = 1",
            "DELETE FROM documents WHERE kind = 'procedure'",
            "UPDATE documents SET status = 'active' WHERE kind = 'procedure' AND version = 1",
        ] {
            assert!(raw_execute(s, sql).await.is_err(), "{l}: refused: {sql}");
        }
        let activations = s
            .audit_events(&AuditFilter {
                kind: Some("document.activate".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(activations.len(), 1, "{l}");
        assert_eq!(activations[0].payload["kind"], "procedure", "{l}");
        ts.cleanup().await;
    }
}
