//! Conformance tests for web users and sign-in tokens, on SQLite and (when
//! ARGENT_TEST_POSTGRES_URL is set) PostgreSQL.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use argent_store::testkit::{TestStore, raw_execute};
use argent_store::{AuditFilter, AuditVerification, NewUser, StoreError, TokenKind, UserChange};
use chrono::{DateTime, Duration, Utc};

fn user(name: &str, role: &str) -> NewUser {
    NewUser {
        name: name.into(),
        role: role.into(),
        password_hash: format!("$argon2id$v=19$fake${name}"),
    }
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

#[tokio::test]
async fn users_are_unique_by_name_and_read_back_as_written() {
    for ts in TestStore::all().await.unwrap() {
        let s = &ts.store;
        assert!(s.create_user(&user("alice", "collector")).await.unwrap());
        assert!(s.create_user(&user("eve", "evaluator")).await.unwrap());
        assert!(
            !s.create_user(&user("alice", "admin")).await.unwrap(),
            "{}: a taken name is refused",
            ts.label
        );
        let alice = s.user("alice").await.unwrap().unwrap();
        assert_eq!(alice.role, "collector", "{}: the first one stays", ts.label);
        assert_eq!(alice.password_hash, "$argon2id$v=19$fake$alice");
        assert!(s.user("nobody").await.unwrap().is_none());
        let names: Vec<String> = s
            .users()
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.name)
            .collect();
        assert_eq!(names, ["alice", "eve"]);
        // The database itself refuses a role nobody knows.
        assert!(s.create_user(&user("mallory", "root")).await.is_err());
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn a_token_names_its_user_until_it_expires_or_is_revoked() {
    for ts in TestStore::all().await.unwrap() {
        let s = &ts.store;
        s.create_user(&user("alice", "collector")).await.unwrap();
        let exp = t("2026-11-20T12:00:00.123456Z");
        s.insert_token("h1", "alice", TokenKind::Api, exp)
            .await
            .unwrap();
        s.insert_token("h2", "alice", TokenKind::Session, exp)
            .await
            .unwrap();
        let before = t("2026-11-20T11:59:59.999Z");
        let u = s
            .token_user("h1", TokenKind::Api, before)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((u.name.as_str(), u.role.as_str()), ("alice", "collector"));
        assert!(
            s.token_user("h1", TokenKind::Session, before)
                .await
                .unwrap()
                .is_none(),
            "{}: an API token is not a session cookie",
            ts.label
        );
        assert!(
            s.token_user("h1", TokenKind::Api, exp)
                .await
                .unwrap()
                .is_none(),
            "{}: expired at its expiry instant",
            ts.label
        );
        assert!(
            s.token_user("h1", TokenKind::Api, exp + Duration::days(1))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            s.token_user("nope", TokenKind::Api, before)
                .await
                .unwrap()
                .is_none()
        );

        assert!(s.delete_token("h1").await.unwrap());
        assert!(!s.delete_token("h1").await.unwrap());
        assert!(
            s.token_user("h1", TokenKind::Api, before)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            s.purge_expired_tokens(exp).await.unwrap(),
            1,
            "{}",
            ts.label
        );
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn changing_a_password_signs_the_user_out_everywhere() {
    for ts in TestStore::all().await.unwrap() {
        let s = &ts.store;
        s.create_user(&user("alice", "collector")).await.unwrap();
        s.create_user(&user("bob", "manager")).await.unwrap();
        let exp = t("2030-01-01T00:00:00Z");
        let now = t("2026-11-20T00:00:00Z");
        s.insert_token("a1", "alice", TokenKind::Api, exp)
            .await
            .unwrap();
        s.insert_token("b1", "bob", TokenKind::Api, exp)
            .await
            .unwrap();
        assert!(s.set_user_password("alice", "$argon2id$new").await.unwrap());
        assert!(!s.set_user_password("nobody", "x").await.unwrap());
        assert_eq!(
            s.user("alice").await.unwrap().unwrap().password_hash,
            "$argon2id$new"
        );
        assert!(
            s.token_user("a1", TokenKind::Api, now)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            s.token_user("b1", TokenKind::Api, now)
                .await
                .unwrap()
                .is_some(),
            "{}: other users stay signed in",
            ts.label
        );
        // A token cannot name a user who does not exist.
        assert!(
            s.insert_token("x", "ghost", TokenKind::Api, exp)
                .await
                .is_err()
        );
        // Deleting a user takes their tokens with them.
        raw_execute(s, "DELETE FROM users WHERE name = 'bob'")
            .await
            .unwrap();
        assert!(
            s.token_user("b1", TokenKind::Api, now)
                .await
                .unwrap()
                .is_none()
        );
        ts.cleanup().await;
    }
}

async fn kinds_by(s: &argent_store::Store, actor: &str) -> Vec<(String, serde_json::Value)> {
    s.audit_events(&AuditFilter {
        actor: Some(actor.into()),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_iter()
    .map(|e| (e.kind, e.payload))
    .collect()
}

#[tokio::test]
async fn admin_changes_to_users_are_audited_in_their_transaction() {
    for ts in TestStore::all().await.unwrap() {
        let s = &ts.store;
        let l = ts.label;
        assert!(
            s.create_user_audited(&user("root", "admin"), "cli:ops")
                .await
                .unwrap()
        );
        assert!(
            s.create_user_audited(&user("alice", "collector"), "admin:root")
                .await
                .unwrap()
        );
        assert!(
            !s.create_user_audited(&user("alice", "manager"), "admin:root")
                .await
                .unwrap(),
            "{l}: a taken name"
        );
        let exp = t("2030-01-01T00:00:00Z");
        let now = t("2026-11-20T00:00:00Z");
        s.insert_token("a1", "alice", TokenKind::Api, exp)
            .await
            .unwrap();
        s.insert_token("a2", "alice", TokenKind::Session, exp)
            .await
            .unwrap();

        let u = s
            .change_user("alice", &UserChange::Role("manager".into()), "admin:root")
            .await
            .unwrap();
        assert_eq!(u.role, "manager");
        assert!(
            s.token_user("a1", TokenKind::Api, now)
                .await
                .unwrap()
                .is_some(),
            "{l}: a new role keeps the user signed in"
        );
        assert!(matches!(
            s.change_user("alice", &UserChange::Role("manager".into()), "admin:root")
                .await,
            Err(StoreError::Conflict(_))
        ));
        assert!(
            s.change_user("alice", &UserChange::Role("root".into()), "admin:root")
                .await
                .is_err(),
            "{l}: the database refuses a role nobody knows"
        );

        let u = s
            .change_user("alice", &UserChange::Disable, "admin:root")
            .await
            .unwrap();
        assert!(u.is_disabled());
        assert_eq!(u.disabled_by.as_deref(), Some("admin:root"));
        for token in ["a1", "a2"] {
            assert!(
                s.token_user(token, TokenKind::Api, now)
                    .await
                    .unwrap()
                    .is_none()
            );
        }
        // A token written for a disabled user (by a process that checked before the
        // disable) is refused all the same.
        s.insert_token("a3", "alice", TokenKind::Api, exp)
            .await
            .unwrap();
        assert!(
            s.token_user("a3", TokenKind::Api, now)
                .await
                .unwrap()
                .is_none(),
            "{l}"
        );
        assert!(matches!(
            s.change_user("alice", &UserChange::Disable, "admin:root")
                .await,
            Err(StoreError::Conflict(_))
        ));
        let u = s
            .change_user("alice", &UserChange::Enable, "admin:root")
            .await
            .unwrap();
        assert!(!u.is_disabled());
        assert_eq!(u.disabled_by, None);
        assert!(
            s.token_user("a3", TokenKind::Api, now)
                .await
                .unwrap()
                .is_some(),
            "{l}: enabled again"
        );

        let u = s
            .change_user(
                "alice",
                &UserChange::Password("$argon2id$v2".into()),
                "admin:root",
            )
            .await
            .unwrap();
        assert_eq!(u.password_hash, "$argon2id$v2");
        assert!(
            s.token_user("a3", TokenKind::Api, now)
                .await
                .unwrap()
                .is_none(),
            "{l}: a new password signs out"
        );
        assert_eq!(u.unlocked_at, None);
        let u = s
            .change_user("alice", &UserChange::Unlock, "admin:root")
            .await
            .unwrap();
        assert!(u.unlocked_at.is_some());
        assert!(matches!(
            s.change_user("ghost", &UserChange::Unlock, "admin:root")
                .await,
            Err(StoreError::NotFound(_))
        ));

        let events = kinds_by(s, "admin:root").await;
        let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "user.create",
                "user.role",
                "user.disable",
                "user.enable",
                "user.password_reset",
                "user.unlock"
            ],
            "{l}: refused changes are not audited"
        );
        assert_eq!(events[1].1["from"], "collector");
        assert_eq!(events[1].1["to"], "manager");
        assert!(
            !events[4].1.to_string().contains("argon2"),
            "{l}: never the hash"
        );
        assert_eq!(kinds_by(s, "cli:ops").await[0].0, "user.create");
        assert!(matches!(
            s.audit_verify().await.unwrap(),
            AuditVerification::Intact { .. }
        ));
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn no_change_leaves_the_database_without_an_enabled_admin() {
    for ts in TestStore::all().await.unwrap() {
        let s = &ts.store;
        let l = ts.label;
        s.create_user(&user("root", "admin")).await.unwrap();
        s.create_user(&user("ada", "admin")).await.unwrap();
        s.create_user(&user("mo", "manager")).await.unwrap();
        // Two admins: one may go.
        s.change_user("ada", &UserChange::Disable, "admin:root")
            .await
            .unwrap();
        // The last one may neither be disabled nor demoted, by themselves or anyone.
        for change in [UserChange::Disable, UserChange::Role("manager".into())] {
            for actor in ["admin:root", "cli:ops"] {
                let r = s.change_user("root", &change, actor).await;
                assert!(
                    matches!(&r, Err(StoreError::Conflict(m)) if m.contains("last enabled admin")),
                    "{l}: {change:?} by {actor}: {r:?}"
                );
            }
        }
        let root = s.user("root").await.unwrap().unwrap();
        assert_eq!(root.role, "admin");
        assert!(!root.is_disabled(), "{l}: rolled back");
        // A disabled admin does not count; enabling one lets the other step down.
        s.change_user("ada", &UserChange::Enable, "admin:root")
            .await
            .unwrap();
        s.change_user("root", &UserChange::Role("manager".into()), "admin:root")
            .await
            .unwrap();
        assert!(matches!(
            s.change_user("ada", &UserChange::Role("collector".into()), "admin:ada")
                .await,
            Err(StoreError::Conflict(_))
        ));
        // Changes to non-admins are never refused for this.
        s.change_user("mo", &UserChange::Disable, "admin:ada")
            .await
            .unwrap();
        let kinds: Vec<String> = s
            .audit_events(&AuditFilter::default())
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds,
            ["user.disable", "user.enable", "user.role", "user.disable"],
            "{l}"
        );
        ts.cleanup().await;
    }
}

/// Two admins demoting each other at the same moment: exactly one succeeds (the other
/// would leave no admin).
#[tokio::test]
async fn two_admins_demoting_each_other_at_once_leave_one_admin() {
    for ts in TestStore::all().await.unwrap() {
        let s = &ts.store;
        for _ in 0..5 {
            raw_execute(s, "DELETE FROM users").await.unwrap();
            s.create_user(&user("a", "admin")).await.unwrap();
            s.create_user(&user("b", "admin")).await.unwrap();
            let demote = UserChange::Role("manager".into());
            let (x, y) = tokio::join!(
                s.change_user("b", &demote, "admin:a"),
                s.change_user("a", &UserChange::Disable, "admin:b"),
            );
            assert!(
                x.is_ok() != y.is_ok(),
                "{}: exactly one wins: {x:?} {y:?}",
                ts.label
            );
            let admins = s
                .users()
                .await
                .unwrap()
                .into_iter()
                .filter(|u| u.role == "admin" && !u.is_disabled())
                .count();
            assert_eq!(admins, 1, "{}", ts.label);
        }
        ts.cleanup().await;
    }
}
