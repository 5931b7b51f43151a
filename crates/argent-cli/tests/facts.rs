//! `argent facts import` and `argent facts show` on the embedded SQLite store.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn argent(db: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_argent"))
        .arg("--database")
        .arg(db)
        .args(args)
        .env_remove("ARGENT_DATABASE_URL")
        .env_remove("ARGENT_TOKEN")
        .env("ARGENT_TOKEN_FILE", db.with_extension("token"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run argent");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
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

fn failed(out: Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected a refusal: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

const LEDGER: &str = "customer_id,customer_name,tier,jurisdiction,time_zone,email,invoice_number,invoice_date,due_date,currency,amount\n\
     C1,Acme Ltd,standard,b2b,Europe/London,ap@acme.example,I1,2026-09-01,2026-10-01,GBP,1500.00\n\
     C2,Ann Lee,standard,us-consumer,America/Chicago,ann@mail.example,I2,2026-09-01,2026-10-01,USD,200.00\n";

#[test]
fn a_facts_file_is_imported_all_or_nothing_as_a_signed_in_user() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("f.db");
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let ledger = write("ledger.csv", LEDGER);
    ok(argent(&db, &["import", &ledger], None));
    for (name, role) in [("alice", "collector"), ("mo", "manager")] {
        ok(argent(
            &db,
            &["users", "add", name, "--role", role, "--password-stdin"],
            Some(&format!("{name}'s long password\n")),
        ));
    }
    let as_user = |name: &str, file: &str| {
        argent(
            &db,
            &["facts", "import", file, "--user", name, "--password-stdin"],
            Some(&format!("{name}'s long password\n")),
        )
    };
    let good = write(
        "facts.csv",
        "customer_id,fact,value,invoice_number\n\
         C2,validation_notice.sent_on,2026-01-05,\n\
         C2,validation_notice.channel,letter,\n\
         C1,litigation_authorised,true,\n\
         C1,invoice_acknowledged_on,2026-02-01,I1\n\
         C1,limits.max_discount_bps,15%,\n",
    );
    let unknown = write(
        "unknown.csv",
        "customer_id,fact,value\nC1,region,england\nC9,region,NY\n",
    );
    let bad = write(
        "bad.csv",
        "customer_id,fact,value\nC1,region,NY\nC2,preferred_channel,pigeon\n",
    );

    // Not signed in: refused before anything is read from the database.
    let err = failed(argent(&db, &["facts", "import", &good], None));
    assert!(err.contains("not signed in"), "{err}");
    // A collector may not set the limits: the whole file is refused at that line.
    let err = failed(as_user("alice", &good));
    assert!(
        err.contains("line 6, column 2 (fact): only a manager or admin"),
        "{err}"
    );
    assert!(err.contains("the database is unchanged"), "{err}");
    let err = failed(as_user("alice", &unknown));
    assert!(
        err.contains("line 3, column 1 (customer_id): no customer C9"),
        "{err}"
    );
    let err = failed(as_user("alice", &bad));
    assert!(
        err.contains("line 3, column 3 (value): 'pigeon' is not a channel"),
        "{err}"
    );
    let shown = ok(argent(&db, &["facts", "show", "C1", "--csv"], None));
    assert_eq!(
        shown, "customer_id,fact,value,invoice_number\n",
        "nothing was written"
    );

    let out = ok(as_user("mo", &good));
    assert!(out.contains("5 rows for 2 customers, 2 changed"), "{out}");
    let shown = ok(argent(&db, &["facts", "show", "C2"], None));
    assert!(
        shown.contains(
            "Validation notice sent 2026-01-05 by letter; validation period ends 2026-02-09."
        ),
        "{shown}"
    );
    // What `show --csv` prints imports back as the same facts (nothing changes).
    let csv = ok(argent(&db, &["facts", "show", "C1", "--csv"], None));
    assert!(csv.contains("C1,limits.max_discount_bps,1500,\n"), "{csv}");
    assert!(
        csv.contains("C1,invoice_acknowledged_on,2026-02-01,I1\n"),
        "{csv}"
    );
    let again = write("again.csv", &csv);
    let out = ok(as_user("alice", &again));
    assert!(out.contains("0 changed"), "{out}");
    let err = failed(argent(&db, &["facts", "show", "C9"], None));
    assert!(err.contains("customer C9 not found"), "{err}");
}
