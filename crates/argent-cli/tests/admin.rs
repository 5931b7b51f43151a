//! `argent users …` (user administration, audited), `argent docs export|import` (a
//! database's documents as files and back as drafts) on SQLite and, when
//! ARGENT_TEST_POSTGRES_URL is set, PostgreSQL; and the queue `argent demo` leaves.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

#[path = "common/db.rs"]
mod db;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use argent_store::{AuditFilter, DocKind, DocStatus};
use db::Db;

fn argent(url: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_argent"))
        .arg("--database")
        .arg(url)
        .args(args)
        .env_remove("ARGENT_DATABASE_URL")
        .env("USER", "tester")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run argent");
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "argent failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(out: Output) -> String {
    assert!(
        !out.status.success(),
        "argent should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[tokio::test(flavor = "multi_thread")]
async fn users_are_administered_from_the_command_line_and_audited() {
    for db in Db::all("cli_users").await {
        let u = db.url.as_str();
        let l = db.label;
        ok(argent(
            u,
            &[
                "users",
                "add",
                "root",
                "--role",
                "admin",
                "--password-stdin",
            ],
            Some("root password\n"),
        ));
        ok(argent(
            u,
            &[
                "users",
                "add",
                "alice",
                "--role",
                "collector",
                "--password-stdin",
            ],
            Some("alice password\n"),
        ));
        assert!(
            fails(argent(
                u,
                &[
                    "users",
                    "add",
                    "bob",
                    "--role",
                    "collector",
                    "--password-stdin"
                ],
                Some("short\n"),
            ))
            .contains("at least 8 characters")
        );
        ok(argent(u, &["users", "role", "alice", "manager"], None));
        let out = ok(argent(u, &["users", "disable", "alice"], None));
        assert!(out.contains("alice (manager) disabled"), "{l}: {out}");
        let list = ok(argent(u, &["users", "list"], None));
        let alice = list.lines().find(|x| x.starts_with("alice")).unwrap();
        assert!(
            alice.contains("manager") && alice.contains("disabled") && alice.contains("cli:tester"),
            "{l}: {list}"
        );
        // A disabled user cannot sign in from the command line either.
        let err = fails(argent(
            u,
            &["login", "alice", "--password-stdin"],
            Some("alice password\n"),
        ));
        assert!(err.contains("wrong user name or password"), "{l}: {err}");
        ok(argent(u, &["users", "enable", "alice"], None));
        ok(argent(
            u,
            &["users", "reset-password", "alice", "--password-stdin"],
            Some("a new password\n"),
        ));
        ok(argent(u, &["users", "unlock", "alice"], None));
        // The last admin stays.
        let err = fails(argent(u, &["users", "disable", "root"], None));
        assert!(err.contains("last enabled admin"), "{l}: {err}");
        let err = fails(argent(u, &["users", "role", "root", "collector"], None));
        assert!(err.contains("last enabled admin"), "{l}: {err}");
        assert!(fails(argent(u, &["users", "disable", "ghost"], None)).contains("not found"));

        let store = db.store().await;
        let alice = store.user("alice").await.unwrap().unwrap();
        assert!(argent_server::verify_password(
            "a new password",
            &alice.password_hash
        ));
        assert!(alice.unlocked_at.is_some());
        let events: Vec<String> = store
            .audit_events(&AuditFilter {
                actor: Some("cli:tester".into()),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_iter()
            .map(|e| format!("{} {}", e.kind, e.payload["name"].as_str().unwrap()))
            .collect();
        assert_eq!(
            events,
            [
                "user.create root",
                "user.create alice",
                "user.role alice",
                "user.disable alice",
                "user.enable alice",
                "user.password_reset alice",
                "user.unlock alice",
            ],
            "{l}"
        );
        store.close().await;
        db.drop_schema().await;
    }
}

/// Every file under `dir`, by path relative to it, with its bytes.
fn tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = Default::default();
    walk(dir, dir, &mut out);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn documents_round_trip_through_files_as_drafts() {
    let files =
        argent_agent::DocumentSet::from_dirs(&repo().join("prompts"), &repo().join("policies"))
            .unwrap();
    for db in Db::all("cli_docs").await {
        let u = db.url.as_str();
        let l = db.label;
        let tmp = tempfile::tempdir().unwrap();
        let store = db.store().await;
        let err = fails(argent(
            u,
            &["docs", "export", tmp.path().join("none").to_str().unwrap()],
            None,
        ));
        assert!(err.contains("no documents yet"), "{l}: {err}");
        store
            .seed_documents(&files.entries(), "seed")
            .await
            .unwrap();

        // Export: exactly the seeded texts, in the layout the directories have.
        let out1 = tmp.path().join("v1");
        let printed = ok(argent(u, &["docs", "export", out1.to_str().unwrap()], None));
        assert!(printed.contains(&format!("exported {} document(s)", files.entries().len())));
        let exported = tree(&out1);
        assert_eq!(exported.len(), files.entries().len(), "{l}");
        for (kind, name, body) in files.entries() {
            let rel = match kind {
                DocKind::Prompt => format!("prompts/{name}.hbs"),
                DocKind::Policy => format!("policies/{name}.toml"),
                DocKind::Procedure => format!("procedures/{name}.toml"),
            };
            assert_eq!(
                exported
                    .get(&rel)
                    .map(|b| String::from_utf8_lossy(b).into_owned()),
                Some(body),
                "{l}: {rel}"
            );
        }
        // The repository's policy tests run against the database's policies.
        let tests = repo().join("policies/tests");
        let report = ok(argent(
            u,
            &[
                "policy",
                "test",
                "--dir",
                out1.join("policies").to_str().unwrap(),
                "--tests",
                tests.to_str().unwrap(),
                "--quiet",
            ],
            None,
        ));
        assert!(report.contains(" passed, 0 failed"), "{l}: {report}");
        // Exporting over an earlier export is refused.
        let err = fails(argent(u, &["docs", "export", out1.to_str().unwrap()], None));
        assert!(err.contains("is not empty"), "{l}: {err}");

        // Edit two files and import: two drafts, nothing activated, audited.
        let b2b = out1.join("policies/b2b.toml");
        let edited_policy = std::fs::read_to_string(&b2b).unwrap() + "\n# reviewed by legal\n";
        std::fs::write(&b2b, &edited_policy).unwrap();
        let system = out1.join("prompts/system.hbs");
        let edited_prompt = std::fs::read_to_string(&system).unwrap() + "\n";
        std::fs::write(&system, &edited_prompt).unwrap();
        let printed = ok(argent(u, &["docs", "import", out1.to_str().unwrap()], None));
        assert!(printed.contains("2 draft(s) saved"), "{l}: {printed}");
        let b2b_versions = store
            .document_versions(DocKind::Policy, "b2b")
            .await
            .unwrap();
        assert_eq!(b2b_versions.len(), 2, "{l}");
        assert_eq!(b2b_versions[0].status, DocStatus::Draft);
        assert_eq!(b2b_versions[0].body, edited_policy);
        assert_eq!(b2b_versions[0].author, "cli:tester");
        assert_eq!(
            b2b_versions[1].status,
            DocStatus::Active,
            "{l}: not activated"
        );
        let drafts = store
            .audit_events(&AuditFilter {
                kind: Some("document.draft".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(drafts.len(), 2, "{l}");
        assert!(drafts.iter().all(|e| e.actor == "cli:tester"));
        assert!(
            store
                .document_versions(DocKind::Prompt, "system")
                .await
                .unwrap()[0]
                .body
                == edited_prompt
        );
        // Importing the same files again changes nothing.
        let printed = ok(argent(u, &["docs", "import", out1.to_str().unwrap()], None));
        assert!(printed.contains("0 draft(s) saved"), "{l}: {printed}");

        // A broken file refuses the whole import, naming the file and line.
        std::fs::write(
            out1.join("policies/uk-consumer.toml"),
            "id = \"uk-consumer\"\nthis is not toml\n",
        )
        .unwrap();
        std::fs::write(&b2b, edited_policy.clone() + "# again\n").unwrap();
        let out = argent(u, &["docs", "import", out1.to_str().unwrap()], None);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(fails(out).contains("nothing imported"));
        assert!(
            stdout.contains("policies/uk-consumer.toml:"),
            "{l}: {stdout}"
        );
        assert_eq!(
            store
                .document_versions(DocKind::Policy, "b2b")
                .await
                .unwrap()
                .len(),
            2,
            "{l}: unchanged"
        );

        // Export a given version, or the newest of each: the draft comes back out.
        let out2 = tmp.path().join("v2");
        ok(argent(
            u,
            &[
                "docs",
                "export",
                out2.to_str().unwrap(),
                "--version",
                "policy:b2b=2",
            ],
            None,
        ));
        assert_eq!(
            std::fs::read_to_string(out2.join("policies/b2b.toml")).unwrap(),
            edited_policy
        );
        assert_eq!(
            std::fs::read_to_string(out2.join("prompts/system.hbs")).unwrap(),
            files.prompts["system"],
            "{l}: the active prompt, not its draft"
        );
        let out3 = tmp.path().join("v3");
        ok(argent(
            u,
            &["docs", "export", out3.to_str().unwrap(), "--latest"],
            None,
        ));
        assert_eq!(
            std::fs::read_to_string(out3.join("prompts/system.hbs")).unwrap(),
            edited_prompt
        );
        let err = fails(argent(
            u,
            &[
                "docs",
                "export",
                tmp.path().join("v4").to_str().unwrap(),
                "--version",
                "policy:b2b=9",
            ],
            None,
        ));
        assert!(err.contains("not found"), "{l}: {err}");
        let err = fails(argent(
            u,
            &[
                "docs",
                "export",
                tmp.path().join("v5").to_str().unwrap(),
                "--version",
                "b2b",
            ],
            None,
        ));
        assert!(err.contains("KIND:NAME=VERSION"), "{l}: {err}");
        assert!(ok(argent(u, &["audit", "verify"], None)).contains("intact"));
        store.close().await;
        db.drop_schema().await;
    }
}

/// After `argent demo` (its defaults), `argent serve` on the database has real work: 20+
/// pending approval items across tools and the roles that approve them.
#[test]
fn the_demo_leaves_a_queue_to_work() {
    let dir = tempfile::tempdir().unwrap();
    let demo_db = dir.path().join("demo.db");
    let out = ok(Command::new(env!("CARGO_BIN_EXE_argent"))
        .args(["demo", "--db", demo_db.to_str().unwrap()])
        .env("ARGENT_DEMO_QUIET", "1")
        .current_dir(repo())
        .output()
        .unwrap());
    assert!(out.contains("approval queue at the end:"), "{out}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = argent_store::Store::open(demo_db.to_str().unwrap())
            .await
            .unwrap();
        let pending = s
            .approvals(Some(argent_store::ApprovalStatus::Pending), 10_000, 0)
            .await
            .unwrap();
        let tools: std::collections::BTreeSet<&str> =
            pending.iter().map(|i| i.tool.as_str()).collect();
        let roles: std::collections::BTreeSet<&str> =
            pending.iter().map(|i| i.required_role.as_str()).collect();
        assert!(pending.len() >= 20, "{} pending: {out}", pending.len());
        assert!(tools.len() >= 3, "tools {tools:?}");
        assert!(tools.contains("send_email"), "tools {tools:?}");
        assert!(roles.len() >= 2, "roles {roles:?}");
        s.close().await;
    });
}
