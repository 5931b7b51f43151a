//! Conformance tests for web users and sign-in tokens, on SQLite and (when
//! ARGENT_TEST_POSTGRES_URL is set) PostgreSQL.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use argent_store::testkit::{TestStore, raw_execute};
use argent_store::{NewUser, TokenKind};
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
