//! The tamper suite: every kind of direct database edit an insider with write access could
//! make, played against a store the agent really worked (an email queued, a plan approved,
//! documents seeded, two signed checkpoints taken), on SQLite and — when
//! `ARGENT_TEST_POSTGRES_URL` is set — PostgreSQL. Each edit must be detected with the
//! right diagnosis, or refused where it would take effect; the one edit that cannot be
//! detected (a correctly chained event appended after the newest checkpoint) is asserted
//! as undetectable, so the limit is written down where it is tested.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use argent_agent::outbox::DirMailer;
use argent_agent::testing::ann_plan_20_percent;
use argent_agent::{
    Agent, AgentConfig, CallStatus, Clock, DocumentSet, OfflineModel, Reviewer, Trigger,
};
use argent_core::Role;
use argent_llm::{ChatModel, ScriptedModel, ToolCall};
use argent_store::anchor::{Checkpoint, CheckpointFinding, SigningKey};
use argent_store::checkpoint::read_checkpoint_file;
use argent_store::testkit::{TestStore, raw_execute, two_consumer_portfolio};
use argent_store::{
    ApprovalStatus, AuditEvent, AuditFilter, AuditVerification, Backend, CheckpointSink, DocKind,
    FileSink, GENESIS_HASH, Store, StoreError, audit_chain_hash, body_sha256,
};

const NOW: &str = "2026-11-20T18:00:00Z"; // noon in Chicago

fn now() -> DateTime<Utc> {
    NOW.parse().unwrap()
}

fn repo(dir: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir)
}

fn inbound(body: &str) -> Trigger {
    Trigger::Inbound {
        from: "ann@mail.example".into(),
        subject: "My account".into(),
        body: body.into(),
        received_at: now(),
        message_id: None,
        references: Vec::new(),
        mail: None,
    }
}

/// A SQL string literal.
fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A store the agent worked: documents seeded from the repository, Ann's promise and the
/// email confirming it (queued, pending), a plan for Ann approved by collector alice, and
/// two checkpoints: `first` after the documents were seeded, the second at the head.
struct Fixture {
    ts: TestStore,
    agent: Agent,
    key: SigningKey,
    sink: FileSink,
    _dir: tempfile::TempDir,
    /// The first checkpoint's sequence number.
    first: i64,
    /// The head at the second checkpoint.
    head: i64,
}

fn agent_with(store: &Store, docs: &DocumentSet, model: Arc<dyn ChatModel>) -> Agent {
    let config = AgentConfig {
        clock: Clock::Fixed(now()),
        ..Default::default()
    };
    Agent::from_documents(store.clone(), model, docs, config).unwrap()
}

async fn fixture(ts: TestStore) -> Fixture {
    let store = ts.store.clone();
    store
        .import_portfolio(&two_consumer_portfolio(), "test")
        .await
        .unwrap();
    let files = DocumentSet::from_dirs(&repo("prompts"), &repo("policies")).unwrap();
    store
        .seed_documents(&files.entries(), "seed")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sink = FileSink::new(dir.path().join("checkpoints.jsonl"));
    let key = SigningKey::from_bytes(&[7; 32]);
    let first = store
        .write_checkpoint(&key, &sink, now(), false)
        .await
        .unwrap()
        .unwrap()
        .checkpoint
        .seq;

    let docs = DocumentSet::from_versions(&store.active_documents().await.unwrap());
    let plan = ScriptedModel::new();
    plan.push_tool_calls(vec![ToolCall::new(
        "c0",
        "propose_plan",
        ann_plan_20_percent().to_string(),
    )]);
    plan.push_text("Done.");
    let planner = agent_with(&store, &docs, Arc::new(plan));
    let out = planner
        .start("C-ANN", inbound("Could I get 20% off?"))
        .await
        .unwrap();
    assert_eq!(out.calls[0].status, CallStatus::Queued, "{:?}", out.calls);
    let id = store.approvals(None, 10, 0).await.unwrap()[0].id.clone();
    planner
        .approve(
            &id,
            &Reviewer {
                name: "alice".into(),
                role: Role::Collector,
            },
            Some("ok"),
        )
        .await
        .unwrap();

    let agent = agent_with(&store, &docs, Arc::new(OfflineModel));
    let out = agent
        .start(
            "C-ANN",
            inbound("Sorry for the delay. I will pay $1,200.00 on December 4th."),
        )
        .await
        .unwrap();
    assert!(
        out.calls
            .iter()
            .any(|c| c.tool == "send_email" && c.status == CallStatus::Executed),
        "{:?}",
        out.calls
    );
    assert_eq!(store.pending_emails(10).await.unwrap().len(), 1);
    let head = store
        .write_checkpoint(&key, &sink, now(), false)
        .await
        .unwrap()
        .unwrap()
        .checkpoint
        .seq;
    assert!(first > 3 && head > first + 5, "{first} {head}");
    let f = Fixture {
        ts,
        agent,
        key,
        sink,
        _dir: dir,
        first,
        head,
    };
    assert_eq!(
        f.detect().await,
        Vec::<String>::new(),
        "{}: untouched",
        f.label()
    );
    f
}

impl Fixture {
    fn store(&self) -> &Store {
        &self.ts.store
    }

    fn label(&self) -> &'static str {
        self.ts.label
    }

    async fn sql(&self, sql: &str) {
        raw_execute(self.store(), sql)
            .await
            .unwrap_or_else(|e| panic!("{}: {sql}: {e}", self.label()));
    }

    /// Everything `argent audit verify --checkpoints` reports, one line per problem,
    /// prefixed by its kind.
    async fn detect(&self) -> Vec<String> {
        let store = self.store();
        let mut out = Vec::new();
        if let AuditVerification::Broken { seq, reason } = store.audit_verify().await.unwrap() {
            out.push(format!("chain: broken at {seq}: {reason}"));
        }
        let entries = read_checkpoint_file(self.sink.path()).unwrap();
        let j = store
            .check_checkpoints(&entries, &self.key.verifying_key())
            .await
            .unwrap();
        // Each finding's text starts with its kind ("truncation: …", "outbox content: …").
        for f in j.findings {
            assert!(f.to_string().starts_with(f.kind()), "{f}");
            out.push(f.to_string());
        }
        for m in store.audit_cross_check().await.unwrap() {
            out.push(m.to_string());
        }
        out
    }

    async fn events(&self) -> Vec<AuditEvent> {
        self.store()
            .audit_events(&AuditFilter::default())
            .await
            .unwrap()
    }

    /// Plays an attacker who can switch the append-only triggers off.
    async fn drop_audit_triggers(&self) {
        match self.store().backend() {
            Backend::Sqlite => {
                self.sql(
                    "DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete; \
                     DROP TRIGGER audit_head_forward_only; DROP TRIGGER audit_head_no_delete;",
                )
                .await
            }
            Backend::Postgres => {
                self.sql(
                    "ALTER TABLE audit_events DISABLE TRIGGER USER; \
                     ALTER TABLE audit_head DISABLE TRIGGER USER;",
                )
                .await
            }
        }
    }

    async fn drop_document_triggers(&self) {
        match self.store().backend() {
            Backend::Sqlite => self.sql("DROP TRIGGER documents_version_immutable").await,
            Backend::Postgres => self.sql("ALTER TABLE documents DISABLE TRIGGER USER").await,
        }
    }

    /// Rewrites event `seq` with `edit` and, with `rechain`, recomputes every later event's
    /// link and hash and the head, as a careful attacker would: the chain then verifies.
    async fn rewrite(&self, seq: i64, rechain: bool, edit: impl Fn(&mut AuditEvent)) {
        let events = self.events().await;
        let mut prev = events
            .iter()
            .find(|e| e.seq == seq - 1)
            .map_or(GENESIS_HASH.to_string(), |e| e.hash.clone());
        let mut sql = String::new();
        for e in events.iter().filter(|e| e.seq >= seq) {
            let mut e = e.clone();
            if e.seq == seq {
                edit(&mut e);
            } else if !rechain {
                break;
            }
            e.prev_hash = prev.clone();
            let canonical = e.canonical_text();
            e.hash = audit_chain_hash(&e.prev_hash, &canonical);
            sql.push_str(&format!(
                "UPDATE audit_events SET canonical = {}, prev_hash = {}, hash = {} WHERE seq = {};\n",
                q(&canonical),
                q(&e.prev_hash),
                q(&e.hash),
                e.seq
            ));
            prev = e.hash.clone();
        }
        if rechain {
            sql.push_str(&format!(
                "UPDATE audit_head SET hash = {} WHERE id = 1;",
                q(&prev)
            ));
        }
        self.sql(&sql).await;
    }

    /// Deletes events after `keep` and moves the head back onto event `keep`.
    async fn truncate_to(&self, keep: i64) {
        let hash = self
            .events()
            .await
            .iter()
            .find(|e| e.seq == keep)
            .map_or(GENESIS_HASH.to_string(), |e| e.hash.clone());
        self.sql(&format!(
            "DELETE FROM audit_events WHERE seq > {keep}; \
             UPDATE audit_head SET seq = {keep}, hash = {} WHERE id = 1;",
            q(&hash)
        ))
        .await;
    }

    async fn cleanup(self) {
        self.ts.cleanup().await;
    }
}

fn has(found: &[String], prefix: &str, needles: &[&str]) -> bool {
    found
        .iter()
        .any(|f| f.starts_with(prefix) && needles.iter().all(|n| f.contains(n)))
}

/// Runs `case` on a fresh fixture on every backend.
macro_rules! each_store {
    (|$f:ident| $body:block) => {
        for ts in TestStore::all().await.unwrap() {
            let $f = fixture(ts).await;
            $body
            $f.cleanup().await;
        }
    };
}

// ---------------------------------------------------------------------------------------
// The chain

/// A correctly chained event appended at the head — an INSERT and a head update, which the
/// triggers allow — is indistinguishable from one the agent appended: the chain verifies,
/// every checkpoint still matches (it signed an earlier head), and the next checkpoint
/// signs it in. Checkpoints fix the past; they do not authenticate new appends.
#[tokio::test]
async fn a_forged_append_after_the_newest_checkpoint_is_not_detectable() {
    each_store!(|f| {
        let last = f.events().await.pop().unwrap();
        let forged = AuditEvent {
            seq: last.seq + 1,
            at: last.at,
            run_id: None,
            customer_id: Some("C-ANN".into()),
            actor: "manager:mallory".into(),
            kind: "note".into(),
            payload: json!({"text": "customer agreed to a full write-off"}),
            prev_hash: last.hash.clone(),
            hash: String::new(),
        };
        let canonical = forged.canonical_text();
        let hash = audit_chain_hash(&forged.prev_hash, &canonical);
        f.sql(&format!(
            "INSERT INTO audit_events (seq, at, run_id, customer_id, actor, kind, rule_ids, canonical, \
             prev_hash, hash) SELECT {seq}, at, NULL, 'C-ANN', 'manager:mallory', 'note', '', {c}, {p}, {h} \
             FROM audit_events WHERE seq = {last}; \
             UPDATE audit_head SET seq = {seq}, hash = {h} WHERE id = 1;",
            seq = forged.seq,
            c = q(&canonical),
            p = q(&forged.prev_hash),
            h = q(&hash),
            last = last.seq
        ))
        .await;
        assert_eq!(f.detect().await, Vec::<String>::new(), "{}", f.label());
        let signed = f
            .store()
            .write_checkpoint(&f.key, &f.sink, now(), true)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            signed.checkpoint.seq,
            forged.seq,
            "{}: signed in",
            f.label()
        );
    });
}

/// One event in the middle rewritten. Without re-chaining, the chain itself breaks there;
/// re-chained (triggers dropped, every later hash and the head recomputed), the chain
/// verifies and only the checkpoint that signed a later head shows it — bounded by the
/// newest earlier checkpoint that still matches.
#[tokio::test]
async fn a_rewritten_event_in_the_middle_is_detected() {
    each_store!(|f| {
        f.drop_audit_triggers().await;
        let target = f.first + 2;
        let edit = |e: &mut AuditEvent| {
            e.payload["forged"] = json!("the reviewer was manager:mallory");
        };
        f.rewrite(target, false, edit).await;
        let found = f.detect().await;
        assert!(
            has(
                &found,
                "chain",
                &[&format!("broken at {}", target + 1), "does not chain"]
            ) || has(
                &found,
                "chain",
                &[&format!("broken at {target}"), "altered"]
            ),
            "{}: {found:?}",
            f.label()
        );
        f.rewrite(target, true, edit).await;
        let found = f.detect().await;
        assert!(
            !found.iter().any(|x| x.starts_with("chain")),
            "{}: {found:?}",
            f.label()
        );
        assert!(
            has(
                &found,
                "rewrite",
                &[
                    &format!("event {} is not the event", f.head),
                    &format!("within events {}..={}", f.first + 1, f.head)
                ]
            ),
            "{}: {found:?}",
            f.label()
        );
        assert_eq!(found.len(), 1, "{}: {found:?}", f.label());
        // And a checkpoint is not signed on top of the rewritten history.
        let err = f
            .store()
            .write_checkpoint(&f.key, &f.sink, now(), false)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("history was rewritten"),
            "{}: {err}",
            f.label()
        );
    });
}

/// The newest events rewritten and the head moved onto the new last hash.
#[tokio::test]
async fn a_rewritten_tail_is_detected() {
    each_store!(|f| {
        f.drop_audit_triggers().await;
        f.rewrite(f.head, true, |e| {
            e.payload["note"] = json!("nothing happened")
        })
        .await;
        let found = f.detect().await;
        assert!(
            has(&found, "rewrite", &[&format!("event {} is not", f.head)]),
            "{}: {found:?}",
            f.label()
        );
        assert_eq!(found.len(), 1, "{}: {found:?}", f.label());
    });
}

#[tokio::test]
async fn a_truncated_tail_is_detected() {
    each_store!(|f| {
        f.drop_audit_triggers().await;
        let keep = f.head - 3;
        f.truncate_to(keep).await;
        let found = f.detect().await;
        assert!(
            !found.iter().any(|x| x.starts_with("chain")),
            "{}: the shortened chain itself verifies: {found:?}",
            f.label()
        );
        assert!(
            has(
                &found,
                "truncation",
                &[&format!(
                    "signed event {}, but the chain now ends at event {keep}",
                    f.head
                )]
            ),
            "{}: {found:?}",
            f.label()
        );
    });
}

#[tokio::test]
async fn a_wiped_trail_is_detected() {
    each_store!(|f| {
        f.drop_audit_triggers().await;
        f.truncate_to(0).await;
        assert!(matches!(
            f.store().audit_verify().await.unwrap(),
            AuditVerification::Intact { events: 0, .. }
        ));
        let found = f.detect().await;
        assert!(
            has(&found, "wipe", &[&format!("signed {} events", f.head)])
                && has(&found, "wipe", &[&format!("signed {} events", f.first)]),
            "{}: {found:?}",
            f.label()
        );
    });
}

/// A middle event deleted: the chain breaks at the gap; deleted and the rest renumbered
/// and re-chained, the chain verifies but is one event shorter than the newest checkpoint
/// signed, and the event at the older checkpoint's number is another one.
#[tokio::test]
async fn a_deleted_middle_event_is_detected() {
    each_store!(|f| {
        f.drop_audit_triggers().await;
        let gone = f.first - 1;
        f.sql(&format!("DELETE FROM audit_events WHERE seq = {gone}"))
            .await;
        let found = f.detect().await;
        assert!(
            has(&found, "chain", &[&format!("broken at {gone}"), "missing"]),
            "{}: {found:?}",
            f.label()
        );
        // Renumber the rest down by one, then re-chain from the gap.
        f.sql(&format!(
            "UPDATE audit_events SET seq = -seq WHERE seq > {gone}; \
             UPDATE audit_events SET seq = -seq - 1 WHERE seq < 0; \
             UPDATE audit_head SET seq = seq - 1 WHERE id = 1;"
        ))
        .await;
        // The canonical texts still carry the old numbers: rewrite each with its new one.
        let events = f.events().await;
        let mut prev = events
            .iter()
            .find(|e| e.seq == gone - 1)
            .unwrap()
            .hash
            .clone();
        let mut sql = String::new();
        // (Events read back carry the number their canonical text says: the old one.)
        for e in events.iter().filter(|e| e.seq > gone) {
            let mut moved = e.clone();
            moved.seq -= 1;
            moved.prev_hash = prev.clone();
            let canonical = moved.canonical_text();
            moved.hash = audit_chain_hash(&moved.prev_hash, &canonical);
            sql.push_str(&format!(
                "UPDATE audit_events SET canonical = {}, prev_hash = {}, hash = {} WHERE seq = {};\n",
                q(&canonical),
                q(&moved.prev_hash),
                q(&moved.hash),
                moved.seq
            ));
            prev = moved.hash.clone();
        }
        sql.push_str(&format!(
            "UPDATE audit_head SET hash = {} WHERE id = 1;",
            q(&prev)
        ));
        f.sql(&sql).await;
        let found = f.detect().await;
        assert!(
            !found.iter().any(|x| x.starts_with("chain")),
            "{}: {found:?}",
            f.label()
        );
        assert!(
            has(&found, "truncation", &[&format!("signed event {}", f.head)])
                && has(&found, "rewrite", &[&format!("event {} is not", f.first)]),
            "{}: {found:?}",
            f.label()
        );
    });
}

/// An attacker's own checkpoint of a rewritten head (another key), and a real checkpoint
/// line edited to sign a later head, prove nothing and are reported.
#[tokio::test]
async fn forged_checkpoints_are_reported() {
    each_store!(|f| {
        let text = std::fs::read_to_string(f.sink.path()).unwrap();
        let edited = text.lines().last().unwrap().replace(
            &format!("\"seq\":{}", f.head),
            &format!("\"seq\":{}", f.head + 1),
        );
        let theirs = Checkpoint {
            seq: f.head,
            head: "ab".repeat(32),
            events: f.head,
            at: now(),
        }
        .sign(&SigningKey::from_bytes(&[8; 32]));
        f.sink.append(&theirs).unwrap();
        std::fs::write(
            f.sink.path(),
            format!(
                "{}{edited}\n",
                std::fs::read_to_string(f.sink.path()).unwrap()
            ),
        )
        .unwrap();
        let found = f.detect().await;
        assert!(
            has(
                &found,
                "checkpoint from another key",
                &["line 3", &format!("event {}", f.head)]
            ) && has(
                &found,
                "bad signature",
                &["line 4", &format!("event {}", f.head + 1)]
            ),
            "{}: {found:?}",
            f.label()
        );
        assert_eq!(found.len(), 2, "{}: {found:?}", f.label());
        // The writer refuses to sign on top of a last line it did not sign.
        let err = f
            .store()
            .write_checkpoint(&f.key, &f.sink, now(), false)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("does not verify"),
            "{}: {err}",
            f.label()
        );
        let entries = read_checkpoint_file(f.sink.path()).unwrap();
        let j = f
            .store()
            .check_checkpoints(&entries, &SigningKey::from_bytes(&[8; 32]).verifying_key())
            .await
            .unwrap();
        assert!(
            j.findings
                .iter()
                .any(|x| matches!(x, CheckpointFinding::Rewritten { .. })),
            "{}: under the attacker's key, their checkpoint does not match the chain: {:?}",
            f.label(),
            j.findings
        );
    });
}

// ---------------------------------------------------------------------------------------
// What executes is what was audited

async fn deliver(f: &Fixture) -> argent_agent::outbox::Delivery {
    let dir = tempfile::tempdir().unwrap();
    let d = f
        .agent
        .deliver_outbox(
            &DirMailer {
                dir: dir.path().to_path_buf(),
            },
            "ar@argent.example",
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path()).map_or(0, |d| d.count()),
        d.sent,
        "{}: a file per email sent",
        f.label()
    );
    d
}

async fn refused_email(f: &Fixture, edit: &str, what: &str) {
    f.sql(edit).await;
    let email = f.store().pending_emails(10).await.unwrap().remove(0);
    let d = deliver(f).await;
    assert_eq!(d.sent, 0, "{}: {what}: not sent", f.label());
    assert_eq!(d.refused.len(), 1, "{}: {what}", f.label());
    let r = &d.refused[0];
    assert_eq!(r.outbox_id, email.id);
    assert_eq!(r.stored, email.content_sha256(), "{}", f.label());
    let audited = r.audited.clone().unwrap();
    assert_ne!(audited, r.stored);
    assert!(
        r.to_string().contains(&audited) && r.to_string().contains(&r.stored),
        "{}: both hashes named: {r}",
        f.label()
    );
    assert_eq!(
        f.store().pending_emails(10).await.unwrap().len(),
        1,
        "{}",
        f.label()
    );
    let refusals = f
        .store()
        .audit_events(&AuditFilter {
            kind: Some("email_refused".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(refusals.len(), 1, "{}: the refusal is audited", f.label());
    assert_eq!(refusals[0].payload["audited_sha256"], json!(audited));
    let found = f.detect().await;
    assert!(
        has(&found, "outbox content", &[&email.id, &audited, &r.stored]),
        "{}: {what}: {found:?}",
        f.label()
    );
}

#[tokio::test]
async fn a_queued_email_whose_body_was_changed_is_not_sent() {
    each_store!(|f| {
        refused_email(
            &f,
            "UPDATE outbox SET body = body || ' Pay by gift card to avoid arrest.'",
            "body",
        )
        .await;
    });
}

#[tokio::test]
async fn a_queued_email_whose_recipient_was_changed_is_not_sent() {
    each_store!(|f| {
        refused_email(
            &f,
            "UPDATE outbox SET to_addr = 'mallory@evil.example'",
            "recipient",
        )
        .await;
    });
}

/// An email marked sent in the database without its `email_delivered` event is reported;
/// delivered by the outbox, it is marked sent with its event in one transaction.
#[tokio::test]
async fn an_email_marked_sent_without_its_event_is_reported() {
    each_store!(|f| {
        let email = f.store().pending_emails(10).await.unwrap().remove(0);
        f.sql("UPDATE outbox SET status = 'sent', sent_at = created_at")
            .await;
        let found = f.detect().await;
        assert!(
            has(
                &found,
                "outbox status",
                &[&email.id, "marked sent but no `email_delivered`"]
            ),
            "{}: {found:?}",
            f.label()
        );
        assert_eq!(found.len(), 1, "{}: {found:?}", f.label());
        f.sql("UPDATE outbox SET status = 'pending', sent_at = NULL")
            .await;
        let d = deliver(&f).await;
        assert_eq!((d.sent, d.refused.len()), (1, 0), "{}", f.label());
        assert_eq!(f.detect().await, Vec::<String>::new(), "{}", f.label());
        // A row added around the agent, already "sent".
        f.sql(
            "INSERT INTO outbox (id, call_id, customer_id, to_addr, subject, body, created_at, status, sent_at) \
             SELECT 'EM-forged', 'forged-call', customer_id, to_addr, subject, body, created_at, 'sent', sent_at \
             FROM outbox",
        )
        .await;
        let found = f.detect().await;
        assert!(
            has(
                &found,
                "outbox status",
                &["EM-forged", "marked sent but no `email_delivered`"]
            ) && has(
                &found,
                "outbox content",
                &["EM-forged", "no `executed` audit event"]
            ),
            "{}: {found:?}",
            f.label()
        );
    });
}

async fn refused_documents(f: &Fixture, needles: &[&str]) {
    let err = f.store().active_documents().await.unwrap_err();
    assert!(
        matches!(err, StoreError::Tampered(_)),
        "{}: {err}",
        f.label()
    );
    let text = err.to_string();
    for n in needles {
        assert!(text.contains(n), "{}: {n:?} in {text}", f.label());
    }
    let refusals = f
        .store()
        .audit_events(&AuditFilter {
            kind: Some("integrity.refused".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(refusals.len(), 1, "{}: the refusal is audited", f.label());
    let found = f.detect().await;
    for n in needles {
        assert!(
            has(&found, &format!("document: {}", needles[0]), &[n]),
            "{}: {n:?} in {found:?}",
            f.label()
        );
    }
}

/// The text of an active document changed in place (the immutability trigger dropped, the
/// sha256 column updated to match): the agent is not built from it.
async fn changed_in_place(f: &Fixture, kind: DocKind, name: &str) {
    f.drop_document_triggers().await;
    let before = f.store().document(kind, name, 1).await.unwrap();
    let body = format!("{}\n# changed in the database\n", before.body);
    let sha = body_sha256(&body);
    f.sql(&format!(
        "UPDATE documents SET body = {}, sha256 = {} WHERE kind = {} AND name = {} AND version = 1",
        q(&body),
        q(&sha),
        q(kind.as_str()),
        q(name)
    ))
    .await;
    refused_documents(
        f,
        &[
            &format!("{} '{name}' version 1", kind.as_str()),
            &sha,
            &before.sha256,
        ],
    )
    .await;
}

#[tokio::test]
async fn an_active_policy_changed_in_the_database_is_not_loaded() {
    each_store!(|f| {
        changed_in_place(&f, DocKind::Policy, "us-consumer").await;
    });
}

#[tokio::test]
async fn a_prompt_changed_in_the_database_is_not_loaded() {
    each_store!(|f| {
        changed_in_place(&f, DocKind::Prompt, "system").await;
    });
}

/// No trigger needs dropping to insert a new version and switch it active: the trail has
/// no event for it, and its last activation names version 1.
#[tokio::test]
async fn a_policy_version_written_around_the_store_is_not_loaded() {
    each_store!(|f| {
        let v1 = f
            .store()
            .document(DocKind::Policy, "us-consumer", 1)
            .await
            .unwrap();
        let body = v1
            .body
            .replace("max_discount_percent = 20", "max_discount_percent = 90");
        f.sql(&format!(
            "UPDATE documents SET status = 'retired' WHERE kind = 'policy' AND name = 'us-consumer'; \
             INSERT INTO documents (kind, name, version, body, sha256, status, author, note, created_at, \
             activated_at, activated_by) SELECT kind, name, 2, {}, {}, 'active', 'maria', NULL, created_at, \
             activated_at, 'maria' FROM documents WHERE kind = 'policy' AND name = 'us-consumer' AND version = 1",
            q(&body),
            q(&body_sha256(&body))
        ))
        .await;
        refused_documents(
            &f,
            &[
                "policy 'us-consumer' version 2",
                "no document.seed or document.draft audit event",
                "last activation of policy 'us-consumer' is version 1",
            ],
        )
        .await;
    });
}

/// An approval row's decider or verdict changed after the fact.
#[tokio::test]
async fn an_approval_row_changed_after_the_decision_is_reported() {
    each_store!(|f| {
        let item = f
            .store()
            .approvals(Some(ApprovalStatus::Approved), 10, 0)
            .await
            .unwrap()
            .remove(0);
        f.sql(&format!(
            "UPDATE approvals SET decided_by = 'mallory', decided_role = 'admin' WHERE id = {}",
            q(&item.id)
        ))
        .await;
        let found = f.detect().await;
        assert!(
            has(
                &found,
                "approval decision",
                &[
                    &item.id,
                    "approved by admin:mallory",
                    "says approved by collector:alice"
                ]
            ),
            "{}: {found:?}",
            f.label()
        );
        f.sql(&format!(
            "UPDATE approvals SET status = 'rejected', decided_by = 'alice', decided_role = 'collector' \
             WHERE id = {}",
            q(&item.id)
        ))
        .await;
        let found = f.detect().await;
        assert!(
            has(
                &found,
                "approval decision",
                &[&item.id, "rejected by collector:alice", "says approved"]
            ),
            "{}: {found:?}",
            f.label()
        );
        // A pending item whose action was changed before anyone decided it.
        f.sql(&format!(
            "UPDATE approvals SET status = 'pending', decided_by = NULL, decided_role = NULL, \
             decided_at = NULL, action = replace(action, '240.00', '1080.00') WHERE id = {}",
            q(&item.id)
        ))
        .await;
        let found = f.detect().await;
        assert!(
            has(&found, "approval decision", &[&item.id, "pending, but"])
                && has(
                    &found,
                    "approval action",
                    &[&item.id, "not the one `tool_call` event"]
                ),
            "{}: {found:?}",
            f.label()
        );
    });
}
