//! Users and sign-in: the lockout is keyed by user name *and* client address (an attacker
//! cannot lock a colleague out), an admin lifts it, and admins manage users in the API and
//! the web, every change audited with the admin as the actor.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use argent_server::ServerConfig;
use argent_store::{AuditFilter, UserChange};
use common::*;

/// `POST /api/login` through the router as if from TCP peer `peer`, with an optional
/// `X-Forwarded-For`.
async fn login_from(
    f: &Fixture,
    peer: &str,
    forwarded: Option<&str>,
    name: &str,
    password: &str,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("/api/login")
        .header("content-type", "application/json");
    if let Some(x) = forwarded {
        req = req.header("x-forwarded-for", x);
    }
    let mut req = req
        .body(Body::from(
            json!({"name": name, "password": password}).to_string(),
        ))
        .unwrap();
    let addr: SocketAddr = SocketAddr::new(peer.parse::<IpAddr>().unwrap(), 40000);
    req.extensions_mut().insert(ConnectInfo(addr));
    let res = f.app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn user_events(f: &Fixture, kind: &str) -> Vec<argent_store::AuditEvent> {
    f.store()
        .audit_events(&AuditFilter {
            kind: Some(kind.into()),
            ..Default::default()
        })
        .await
        .unwrap()
}

/// Over a real socket: the attacker connects from 127.0.0.2, the owner from 127.0.0.3 (both
/// loopback addresses on Linux), to the server as `argent serve` runs it.
#[tokio::test]
async fn an_attacker_at_one_address_cannot_lock_out_the_owner_at_another() {
    let f = fixture().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(argent_server::serve(listener, f.state.clone()));
    // argent-llm switches reqwest's rustls on without a crypto provider (plain HTTP here,
    // but the client wants one).
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let client = |ip: [u8; 4]| {
        reqwest::Client::builder()
            .local_address(IpAddr::from(ip))
            .build()
            .unwrap()
    };
    let attacker = client([127, 0, 0, 2]);
    let owner = client([127, 0, 0, 3]);
    let login = |c: &reqwest::Client, password: &str| {
        let req = c
            .post(format!("{base}/api/login"))
            .header("content-type", "application/json")
            .body(json!({"name": "alice", "password": password}).to_string());
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let body: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
            (status, body)
        }
    };
    for _ in 0..5 {
        assert_eq!(login(&attacker, "guess guess").await.0, 401);
    }
    // The attacker's address is locked out, even with the right password…
    let (s, body) = login(&attacker, PASSWORD).await;
    assert_eq!(s, 429, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("from this address")
    );
    // …and alice, from her own machine, signs in as usual, again and again.
    for _ in 0..3 {
        let (s, body) = login(&owner, PASSWORD).await;
        assert_eq!(s, 200, "{body}");
    }
    // More guesses from the attacker change nothing for her.
    for _ in 0..10 {
        assert_eq!(login(&attacker, "guess guess").await.0, 429);
    }
    assert_eq!(login(&owner, PASSWORD).await.0, 200);

    // The admin sees where alice is locked out from, and lifts it.
    let root = owner
        .get(format!("{base}/api/users"))
        .bearer_auth(&f.tokens["root"])
        .send()
        .await
        .unwrap();
    assert_eq!(root.status().as_u16(), 200);
    let users: Value = serde_json::from_str(&root.text().await.unwrap()).unwrap();
    let alice = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "alice")
        .unwrap();
    let lockouts = alice["lockouts"].as_array().unwrap();
    assert_eq!(lockouts.len(), 1, "{alice}");
    assert_eq!(lockouts[0]["address"], "127.0.0.2");
    assert_eq!(lockouts[0]["failures"], 5);
    let unlocked = owner
        .post(format!("{base}/api/users/alice/unlock"))
        .bearer_auth(&f.tokens["root"])
        .send()
        .await
        .unwrap();
    assert_eq!(unlocked.status().as_u16(), 200);
    // Unlocked: the right password works from that address too.
    assert_eq!(login(&attacker, PASSWORD).await.0, 200);
    let events = user_events(&f, "user.unlock").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor, "admin:root");
    assert_eq!(events[0].payload["name"], "alice");
    server.abort();
}

#[tokio::test]
async fn x_forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
    let f = fixture_with(ServerConfig {
        trusted_proxies: vec!["10.0.0.1".parse().unwrap()],
        ..Default::default()
    })
    .await;
    // Behind the trusted proxy: each client its own count (the right-most address the
    // proxy appended; what the client wrote further left is not believed).
    for _ in 0..5 {
        let (s, _) = login_from(
            &f,
            "10.0.0.1",
            Some("198.51.100.1, 203.0.113.7"),
            "mo",
            "guess guess",
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, _) = login_from(&f, "10.0.0.1", Some("203.0.113.7"), "mo", PASSWORD).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    // A forged left-hand entry does not get the attacker a fresh count…
    let (s, _) = login_from(
        &f,
        "10.0.0.1",
        Some("192.0.2.99, 203.0.113.7"),
        "mo",
        PASSWORD,
    )
    .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    // …and mo, behind the same proxy at another address, signs in.
    let (s, b) = login_from(&f, "10.0.0.1", Some("198.51.100.9"), "mo", PASSWORD).await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // From a peer that is not a trusted proxy, the header is ignored: changing it does not
    // escape the count of the peer's own address.
    for i in 0..5 {
        let xff = format!("198.51.100.{i}");
        let (s, _) = login_from(&f, "192.0.2.5", Some(&xff), "cy", "guess guess").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, _) = login_from(&f, "192.0.2.5", Some("198.51.100.200"), "cy", PASSWORD).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    let (s, _) = login_from(&f, "192.0.2.6", None, "cy", PASSWORD).await;
    assert_eq!(s, StatusCode::OK);
}

/// `argent users unlock` writes the unlock to the database; a running server honours it at
/// the next refused attempt, without being told.
#[tokio::test]
async fn an_unlock_recorded_by_another_process_lifts_the_lockout() {
    let f = fixture().await;
    for _ in 0..5 {
        let (s, _) = login_from(&f, "192.0.2.1", None, "alice", "guess guess").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, _) = login_from(&f, "192.0.2.1", None, "alice", PASSWORD).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    f.store()
        .change_user("alice", &UserChange::Unlock, "cli:ops")
        .await
        .unwrap();
    let (s, b) = login_from(&f, "192.0.2.1", None, "alice", PASSWORD).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // Failures after the unlock count again from zero.
    for _ in 0..5 {
        let (s, _) = login_from(&f, "192.0.2.1", None, "alice", "guess guess").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, _) = login_from(&f, "192.0.2.1", None, "alice", PASSWORD).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn admins_manage_users_and_every_change_is_audited() {
    let f = fixture().await;
    let login = |name: &'static str, password: &'static str| {
        let app = f.app.clone();
        async move {
            call(
                &app,
                Method::POST,
                "/api/login",
                None,
                Some(json!({"name": name, "password": password})),
            )
            .await
        }
    };
    // Only admins.
    for who in ["alice", "mo", "cy", "eve"] {
        let (s, _) = f.as_user(who, Method::GET, "/api/users", None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{who}");
        let (s, _) = f
            .as_user(
                who,
                Method::POST,
                "/api/users",
                Some(json!({"name": "x1", "role": "admin", "password": "long enough"})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{who}");
    }
    let (s, list) = f.as_user("root", Method::GET, "/api/users", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["users"].as_array().unwrap().len(), USERS.len());
    assert!(
        !list.to_string().contains("argon2"),
        "no password hash leaves"
    );

    // Create.
    let (s, u) = f
        .as_user(
            "root",
            Method::POST,
            "/api/users",
            Some(json!({"name": "newbie", "role": "collector", "password": "first password"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    assert_eq!(u["role"], "collector");
    assert_eq!(u["disabled"], false);
    for (body, want) in [
        (
            json!({"name": "newbie", "role": "collector", "password": "first password"}),
            StatusCode::CONFLICT,
        ),
        (
            json!({"name": "bad name", "role": "collector", "password": "first password"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "shorty", "role": "collector", "password": "short"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "odd", "role": "superuser", "password": "long enough"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (s, b) = f
            .as_user("root", Method::POST, "/api/users", Some(body))
            .await;
        assert_eq!(s, want, "{b}");
    }
    let (s, _, b) = login("newbie", "first password").await;
    assert_eq!(s, StatusCode::OK);
    let token = b["token"].as_str().unwrap().to_string();
    let me = |token: String| {
        let app = f.app.clone();
        async move { call(&app, Method::GET, "/api/me", Some(&token), None).await }
    };

    // A new role takes effect on the next request.
    let (s, u) = f
        .as_user(
            "root",
            Method::POST,
            "/api/users/newbie/role",
            Some(json!({"role": "manager"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    let (s, _, b) = me(token.clone()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["role"], "manager");
    let (s, _) = f
        .as_user(
            "root",
            Method::POST,
            "/api/users/newbie/role",
            Some(json!({"role": "manager"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "the role they have");

    // A new password signs them out everywhere; the old one no longer works.
    let (s, _) = f
        .as_user(
            "root",
            Method::POST,
            "/api/users/newbie/password",
            Some(json!({"password": "second password"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me(token.clone()).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        login("newbie", "first password").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (s, _, b) = login("newbie", "second password").await;
    assert_eq!(s, StatusCode::OK);
    let token = b["token"].as_str().unwrap().to_string();

    // Disabled: the token stops working and signing in is refused as a wrong password.
    let (s, u) = f
        .as_user("root", Method::POST, "/api/users/newbie/disable", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(u["disabled"], true);
    assert_eq!(u["disabled_by"], "admin:root");
    assert_eq!(me(token).await.0, StatusCode::UNAUTHORIZED);
    let (s, _, b) = login("newbie", "second password").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(b["error"], "unknown user or wrong password");
    let (s, _) = f
        .as_user("root", Method::POST, "/api/users/newbie/disable", None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = f
        .as_user("root", Method::POST, "/api/users/newbie/enable", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(login("newbie", "second password").await.0, StatusCode::OK);
    let (s, _) = f
        .as_user("root", Method::POST, "/api/users/nobody/disable", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Every change, in order, by the admin; never the password.
    let mut kinds = Vec::new();
    for e in f
        .store()
        .audit_events(&AuditFilter {
            actor: Some("admin:root".into()),
            ..Default::default()
        })
        .await
        .unwrap()
    {
        assert_eq!(e.payload["name"], "newbie", "{:?}", e.payload);
        assert!(!e.payload.to_string().contains("password\":"));
        kinds.push(e.kind);
    }
    assert_eq!(
        kinds,
        [
            "user.create",
            "user.role",
            "user.password_reset",
            "user.disable",
            "user.enable"
        ]
    );
    let role = &user_events(&f, "user.role").await[0];
    assert_eq!(role.payload["from"], "collector");
    assert_eq!(role.payload["to"], "manager");
    assert!(matches!(
        f.store().audit_verify().await.unwrap(),
        argent_store::AuditVerification::Intact { .. }
    ));
}

#[tokio::test]
async fn the_last_admin_cannot_disable_or_demote_themselves() {
    let f = fixture().await;
    let (s, b) = f
        .as_user("root", Method::POST, "/api/users/root/disable", None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert!(b["error"].as_str().unwrap().contains("last enabled admin"));
    let (s, _) = f
        .as_user(
            "root",
            Method::POST,
            "/api/users/root/role",
            Some(json!({"role": "manager"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    // Nothing changed, nothing audited.
    let (s, me) = f.as_user("root", Method::GET, "/api/me", None).await;
    assert_eq!((s, me["role"].as_str()), (StatusCode::OK, Some("admin")));
    assert!(user_events(&f, "user.role").await.is_empty());
    assert!(user_events(&f, "user.disable").await.is_empty());

    // With a second admin, root may step down; then the other is the last one.
    let (s, _) = f
        .as_user(
            "root",
            Method::POST,
            "/api/users/mo/role",
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = f
        .as_user(
            "root",
            Method::POST,
            "/api/users/root/role",
            Some(json!({"role": "manager"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = f.as_user("root", Method::GET, "/api/users", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "root is a manager now");
    let (s, _) = f
        .as_user("mo", Method::POST, "/api/users/mo/disable", None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
}

#[tokio::test]
async fn the_users_page_works_without_javascript() {
    let f = fixture().await;
    let mut collector = Browser::sign_in(&f.app, "alice").await;
    assert_eq!(collector.get("/users").await.status, StatusCode::FORBIDDEN);
    assert!(
        !collector
            .get("/queue")
            .await
            .body
            .contains("href=\"/users\"")
    );

    let mut admin = Browser::sign_in(&f.app, "root").await;
    let page = admin.get("/users").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("href=\"/users\""), "in the navigation");
    for (name, _) in USERS {
        assert!(
            page.body.contains(&format!("data-name=\"{name}\"")),
            "{name}"
        );
    }
    let res = admin
        .submit(
            "/users",
            "/users",
            &[
                ("name", "pat"),
                ("role", "compliance"),
                ("password", "a fine password"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let page = admin.get(res.location.as_deref().unwrap()).await;
    assert!(page.body.contains("pat created."), "{}", page.body);
    assert!(
        page.body
            .contains("data-name=\"pat\" data-role=\"compliance\"")
    );
    let res = admin
        .submit("/users", "/users/pat/role", &[("role", "manager")])
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let res = admin.submit("/users", "/users/pat/disable", &[]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let page = admin.get("/users").await;
    assert!(
        page.body
            .contains("data-name=\"pat\" data-role=\"manager\" data-disabled=\"true\""),
        "{}",
        page.body
    );
    // A post without the page's CSRF token changes nothing.
    let res = admin.post("/users/pat/enable", &[]).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let pat = f.store().user("pat").await.unwrap().unwrap();
    assert!(pat.is_disabled());
    assert_eq!(pat.role, "manager");
    // The last admin's own disable button answers why not.
    let res = admin.submit("/users", "/users/root/disable", &[]).await;
    assert_eq!(res.status, StatusCode::CONFLICT);
    assert!(res.body.contains("last enabled admin"), "{}", res.body);
    let actors: Vec<String> = f
        .store()
        .audit_events(&AuditFilter::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind.starts_with("user."))
        .map(|e| format!("{} {}", e.actor, e.kind))
        .collect();
    assert_eq!(
        actors,
        [
            "admin:root user.create",
            "admin:root user.role",
            "admin:root user.disable"
        ]
    );
}
