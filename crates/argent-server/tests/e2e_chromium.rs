//! End to end in a real browser: the server on a 127.0.0.1 socket (`argent_server::serve`,
//! over the shared fixture's SQLite store), Debian's headless Chromium driven through
//! chromedriver (WebDriver, with `fantoccini`). A collector signs in through the form,
//! approves one item, edits another (checked first: the preview must say `allow`) and
//! rejects a third; compliance then finds all three in the audit trail, filtered by actor.
//! A reviewer works a 50-item queue by keyboard and bulk approval. Issue #15's other pages
//! are each driven by the role that uses them, their key content asserted and a screenshot
//! taken (`pages-<role>-<nn>-<what>.png`): a policy draft's activation refused by the gate
//! and the gate page saying why, a passing draft's gate (tests, rule-by-rule diff, "not
//! covered", impact with the flipped items), the diff page, the four-eyes request and a
//! compliance approval, a rollback the same way; the evaluator's run list and pass-rate
//! trend, a run, a case, two runs compared and a case A beside B; the admin's user page
//! (create, a lockout lifted, a password reset, disable); an item's plan editor, the
//! customer's whole thread and a checked plan.
//! Screenshots (PNG) go to `$ARGENT_E2E_OUT`, or else `target/e2e/` under the workspace,
//! beside chromedriver's log.
//!
//! The browser is `/usr/bin/chromium` and the driver `/usr/bin/chromedriver` (Debian's
//! `chromium` and `chromium-driver`; `ARGENT_CHROMIUM` / `ARGENT_CHROMEDRIVER` point
//! elsewhere). When either is missing the tests print a notice and pass, unless
//! `ARGENT_E2E_REQUIRED=1` (CI sets it), when they fail. chromedriver runs in a process
//! group of its own, killed with the browser in it when the test ends, however it ends;
//! every wait has a limit and so has the whole test.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::net::{Ipv4Addr, TcpListener as StdListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use argent_agent::testing::ann_plan_20_percent;
use argent_server::AppState;
use argent_store::ApprovalStatus;
use common::*;

/// How long one page or element may take to appear.
const WAIT: Duration = Duration::from_secs(15);
/// How long a whole browser test may take, start to finish.
const WHOLE_TEST: Duration = Duration::from_secs(180);
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 900;

// ---------------------------------------------------------------------------------------
// The browser, the driver and the server

struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

/// The browser and its driver, or `None` (after a notice) when either is missing and the
/// test is not required to run. Panics when it is.
fn tools() -> Option<Tools> {
    let path = |var: &str, default: &str| {
        PathBuf::from(std::env::var_os(var).unwrap_or_else(|| default.into()))
    };
    let tools = Tools {
        chromium: path("ARGENT_CHROMIUM", "/usr/bin/chromium"),
        chromedriver: path("ARGENT_CHROMEDRIVER", "/usr/bin/chromedriver"),
    };
    let missing: Vec<String> = [&tools.chromium, &tools.chromedriver]
        .into_iter()
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    if missing.is_empty() {
        return Some(tools);
    }
    let why = format!(
        "the headless-Chromium tests need {} (Debian: apt-get install chromium chromium-driver)",
        missing.join(" and ")
    );
    if std::env::var("ARGENT_E2E_REQUIRED").as_deref() == Ok("1") {
        panic!("{why}; ARGENT_E2E_REQUIRED=1 makes that a failure");
    }
    eprintln!("SKIPPED: {why}; set ARGENT_E2E_REQUIRED=1 to make that a failure");
    None
}

/// Where screenshots and chromedriver's log go (created).
fn out_dir() -> PathBuf {
    let dir = match std::env::var_os("ARGENT_E2E_OUT") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => repo("target/e2e"),
    };
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir.canonicalize().unwrap()
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> u16 {
    StdListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// chromedriver, in a process group of its own (so the browser it starts is in it too),
/// killed with that group on drop.
struct ChromeDriver {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl ChromeDriver {
    async fn start(tools: &Tools, out: &Path, name: &str) -> ChromeDriver {
        let port = free_port();
        let log = out.join(format!("{name}.chromedriver.log"));
        let child = Command::new(&tools.chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", tools.chromedriver.display()));
        let mut driver = ChromeDriver { child, port, log };
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if let Some(status) = driver.child.try_wait().unwrap() {
                panic!(
                    "chromedriver exited ({status}); see {}",
                    driver.log.display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on port {port} within {WAIT:?}; see {}",
                driver.log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        driver
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The group's id is chromedriver's pid (process_group(0)); `kill -KILL -- -<pgid>`
        // ends chromedriver and every browser process it started, and nothing else.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session on a served app. Dropping it stops the server and kills the
/// driver and the browser; [`E2e::finish`] closes the session politely first.
struct E2e {
    client: Client,
    base: String,
    out: PathBuf,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    // Dropped after the client: the driver, then the browser's profile directory.
    _driver: ChromeDriver,
    _profile: tempfile::TempDir,
}

impl E2e {
    async fn start(tools: &Tools, state: AppState, name: &str) -> E2e {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(argent_server::serve(listener, state));

        let out = out_dir();
        let driver = ChromeDriver::start(tools, &out, name).await;
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "timeouts": {"pageLoad": WAIT.as_millis() as u64, "script": 10_000, "implicit": 0},
            "goog:chromeOptions": {
                "binary": tools.chromium,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.path().display()),
                    format!("--window-size={WIDTH},{HEIGHT}"),
                ],
            },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "no WebDriver session from chromedriver: {e}; see {}",
                    driver.log.display()
                )
            });
        E2e {
            client,
            base,
            out,
            server,
            _driver: driver,
            _profile: profile,
        }
    }

    /// Ends the browser session (the browser quits), then everything else on drop.
    async fn finish(self) {
        let _ = tokio::time::timeout(WAIT, self.client.clone().close()).await;
    }

    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    }

    /// The path and query of the page the browser shows.
    async fn location(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// The first element matching `css`, waiting for it up to [`WAIT`]; a failure names
    /// the page and what it said.
    async fn find(&self, css: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(el) => el,
            Err(e) => {
                let at = self.location().await;
                let h1 = match self.client.find(Locator::Css("h1")).await {
                    Ok(h) => h.text().await.unwrap_or_default(),
                    Err(_) => String::new(),
                };
                panic!("{css} not found on {at} (heading {h1:?}) within {WAIT:?}: {e}")
            }
        }
    }

    async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    async fn fill(&self, css: &str, value: &str) {
        let el = self.find(css).await;
        el.clear().await.unwrap();
        el.send_keys(value).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    /// Waits until the browser shows a page whose path and query start with `prefix`.
    async fn wait_location(&self, prefix: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let at = self.location().await;
            if at.starts_with(prefix) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "expected a page at {prefix}, still at {at} after {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Signs in through the login form and waits for the signed-in page.
    async fn sign_in(&self, name: &str) {
        self.goto("/login").await;
        self.fill("#name", name).await;
        self.fill("#password", PASSWORD).await;
        self.click("#sign-in").await;
        let who = self.text("#signed-in-as").await;
        assert!(who.starts_with(&format!("{name} (")), "signed in as {who}");
    }

    async fn sign_out(&self) {
        self.click("#logout").await;
        self.find("#sign-in").await;
        assert_eq!(self.location().await, "/login");
    }

    /// A PNG of the viewport, written to the output directory as `<name>.png`.
    async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        let (w, h) = png_size(&png);
        // The viewport: the window's width, its height less what headless Chromium keeps
        // for the browser's own frame.
        assert!(
            w == WIDTH && (HEIGHT / 2..=HEIGHT).contains(&h),
            "a {w}x{h} screenshot from a {WIDTH}x{HEIGHT} window"
        );
        let path = self.out.join(format!("{name}.png"));
        std::fs::write(&path, &png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        println!("screenshot: {} ({w}x{h})", path.display());
        path
    }
}

impl Drop for E2e {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Width and height from a PNG's IHDR chunk; panics when `png` is not a PNG.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(
        png.len() > 24 && png.starts_with(b"\x89PNG\r\n\x1a\n") && &png[12..16] == b"IHDR",
        "not a PNG ({} bytes)",
        png.len()
    );
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&png[16..20]), be(&png[20..24]))
}

/// Runs `body` with the whole-test limit.
async fn within_limit<F: std::future::Future<Output = ()>>(body: F) {
    within(WHOLE_TEST, body).await
}

/// Runs `body` with a limit of `limit`.
async fn within<F: std::future::Future<Output = ()>>(limit: Duration, body: F) {
    tokio::time::timeout(limit, body)
        .await
        .unwrap_or_else(|_| panic!("the browser test took longer than {limit:?}"));
}

// ---------------------------------------------------------------------------------------
// The tests

/// On the queue page the browser shows, clicks the first Ann item not in `taken` and
/// waits for its page; returns its id.
async fn open_next_item(e: &E2e, ann: &[String], taken: &[String]) -> String {
    e.find("#queue").await;
    let links = e
        .client
        .find_all(Locator::Css("a.item-link"))
        .await
        .unwrap();
    for link in links {
        let id = link.text().await.unwrap();
        if ann.contains(&id) && !taken.contains(&id) {
            link.click().await.unwrap();
            e.find("#item-status").await;
            assert_eq!(e.location().await, format!("/queue/{id}"));
            assert_eq!(e.text("#item-status").await, "pending");
            return id;
        }
    }
    panic!("no undecided item of Ann's on {}", e.location().await)
}

/// The text an edit-form field shows for a JSON value (see `fields` in web/queue.rs:
/// strings bare, everything else as JSON).
fn field_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_approves_edits_and_rejects_in_chromium_and_compliance_sees_all_three() {
    let Some(tools) = tools() else { return };
    let f = fixture().await;
    let collector = user_of(argent_server::UserRole::Collector);
    let compliance = user_of(argent_server::UserRole::Compliance);
    let e = E2e::start(&tools, f.state.clone(), "queue").await;
    within_limit(async {
        e.sign_in(collector).await;
        e.wait_location("/queue").await;
        let mut done: Vec<String> = Vec::new();

        // Approve, with a note.
        let a = open_next_item(&e, &f.ann, &done).await;
        e.fill("#approve-note", "fine by me").await;
        e.click("#approve").await;
        assert_eq!(e.text("#flash").await, format!("{a} approved."));
        done.push(a.clone());

        // Edit: the fair terms in place of the 20% off in the plan editor (5% off, 120.00
        // down, three monthly instalments: recomputed), checked, then submitted.
        let b = open_next_item(&e, &f.ann, &done).await;
        let (proposed, fair) = (ann_plan_20_percent(), ann_plan_fair());
        assert_eq!(e.text("#plan-currency").await, "USD");
        assert_eq!(
            e.find("#plan-discount").await.prop("value").await.unwrap(),
            proposed["discount"].as_str().map(str::to_string)
        );
        e.fill("#plan-discount", &field_text(&fair["discount"]))
            .await;
        e.fill("#plan-down-payment", &field_text(&fair["down_payment"]))
            .await;
        e.fill("#plan-count", "3").await;
        e.fill("#edit-note", "5% is what we can do").await;
        e.click("#preview").await;
        assert_eq!(e.text("#preview-outcome").await, "allow");
        assert_eq!(
            e.location().await,
            format!("/queue/{b}/preview"),
            "a preview is its own page"
        );
        e.click("#submit-edit").await;
        assert_eq!(e.text("#flash").await, format!("{b} edited."));
        done.push(b.clone());

        // Reject, with a note.
        let c = open_next_item(&e, &f.ann, &done).await;
        e.fill("#reject-note", "Ask for a call first").await;
        e.click("#reject").await;
        assert_eq!(e.text("#flash").await, format!("{c} rejected."));
        done.push(c.clone());

        // The pending queue no longer lists them.
        let listed: Vec<String> = {
            let mut ids = Vec::new();
            for l in e
                .client
                .find_all(Locator::Css("a.item-link"))
                .await
                .unwrap()
            {
                ids.push(l.text().await.unwrap());
            }
            ids
        };
        assert_eq!(listed.len(), ANN_ITEMS + 1 - 3, "{listed:?}");
        assert!(done.iter().all(|id| !listed.contains(id)), "{listed:?}");
        e.screenshot("queue").await;

        // The store agrees.
        let store = f.store();
        let item = store.approval(&a).await.unwrap();
        assert_eq!(item.status, ApprovalStatus::Approved);
        assert_eq!(item.decided_by.as_deref(), Some(collector));
        assert_eq!(item.note.as_deref(), Some("fine by me"));
        assert_eq!(item.final_action.as_ref(), Some(&item.action));
        let item = store.approval(&b).await.unwrap();
        assert_eq!(item.status, ApprovalStatus::Approved);
        assert_eq!(item.decided_by.as_deref(), Some(collector));
        assert_eq!(item.note.as_deref(), Some("5% is what we can do"));
        let executed = item.final_action.unwrap();
        for (key, value) in fair.as_object().unwrap() {
            assert_eq!(executed[key], *value, "{key}: approved as edited");
        }
        let item = store.approval(&c).await.unwrap();
        assert_eq!(item.status, ApprovalStatus::Rejected);
        assert_eq!(item.decided_by.as_deref(), Some(collector));
        assert_eq!(item.note.as_deref(), Some("Ask for a call first"));
        assert_eq!(item.final_action, None);

        // Compliance finds all three in the trail, filtered by the collector.
        e.sign_out().await;
        e.sign_in(compliance).await;
        e.wait_location("/audit").await;
        let actor = format!("collector:{collector}");
        e.fill("#filter-actor", &actor).await;
        e.click("#apply-filters").await;
        e.wait_location("/audit?").await;
        assert!(
            e.location().await.contains("actor=collector%3A"),
            "{}",
            e.location().await
        );
        let chain = e.text("#chain-status").await;
        assert!(chain.starts_with("Chain intact"), "{chain}");
        let trail = e.text("#audit").await;
        for id in [&a, &b, &c] {
            assert!(trail.contains(id.as_str()), "{id} in the trail:\n{trail}");
        }
        let rows = e
            .client
            .find_all(Locator::Css("#audit tbody tr[data-actor]"))
            .await
            .unwrap();
        assert!(rows.len() >= 3, "{} rows", rows.len());
        for row in rows {
            assert_eq!(row.attr("data-actor").await.unwrap(), Some(actor.clone()));
        }
        e.screenshot("audit").await;
    })
    .await;
    e.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_dashboard_renders_in_chromium() {
    let Some(tools) = tools() else { return };
    let f = fixture().await;
    let manager = user_of(argent_server::UserRole::Manager);
    let e = E2e::start(&tools, f.state.clone(), "dashboard").await;
    within_limit(async {
        e.sign_in(manager).await;
        e.goto("/dashboard").await;
        e.find("#dashboard").await;
        assert_eq!(e.location().await, "/dashboard");
        e.screenshot("dashboard").await;
    })
    .await;
    e.finish().await;
}

// ---------------------------------------------------------------------------------------
// The workbench at speed: a 50-item queue worked with the keyboard and bulk approval

/// How many items the scripted reviewer works.
const WORKBENCH_ITEMS: usize = 50;
/// How many of them by keyboard (the rest by bulk approval); every fifth is rejected.
const BY_KEYBOARD: usize = 30;
const REJECT_REASON: &str = "Not without a call first";

/// A store with `n` pending `propose_plan` items a collector may approve (one per
/// customer of `consumer_portfolio(n)`, queued through the registry, the policy and the
/// loop's own approval item: `argent_agent::testing::seed_plan_queue`), a user of every
/// role, the repository's prompts and policies as active documents; and the state served.
async fn queue_of(n: usize) -> (argent_store::testkit::TestStore, AppState) {
    use argent_agent::{Agent, AgentConfig, Clock};
    let ts = argent_store::testkit::TestStore::sqlite().await.unwrap();
    let store = ts.store.clone();
    let agent = Agent::from_dirs(
        store.clone(),
        std::sync::Arc::new(argent_llm::ScriptedModel::new()),
        &repo("prompts"),
        &repo("policies"),
        AgentConfig {
            clock: Clock::Fixed(now()),
            ..Default::default()
        },
    )
    .unwrap();
    let ids = argent_agent::testing::seed_plan_queue(
        &agent,
        &argent_store::testkit::consumer_portfolio(n),
    )
    .await
    .unwrap();
    assert_eq!(ids.len(), n);
    for (name, role) in USERS {
        argent_server::create_user(&store, name, *role, PASSWORD)
            .await
            .unwrap();
    }
    let docs = argent_agent::DocumentSet::from_dirs(&repo("prompts"), &repo("policies")).unwrap();
    store.seed_documents(&docs.entries(), "seed").await.unwrap();
    let state = AppState::new(
        std::sync::Arc::new(agent),
        argent_server::ServerConfig::default(),
    );
    (ts, state)
}

impl E2e {
    /// Presses and releases each key of `keys` (a character, or a WebDriver key code such
    /// as `\u{e007}` for Enter) on whatever has the focus, as a person types.
    async fn keys(&self, keys: &str) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let mut seq = KeyActions::new("keyboard".into());
        for k in keys.chars() {
            seq = seq
                .then(KeyAction::Down { value: k })
                .then(KeyAction::Up { value: k });
        }
        self.client.perform_actions(seq).await.unwrap();
    }

    /// Waits until the browser shows exactly `path` (path and query) and the page's
    /// shortcuts are ready (workbench.js marks the help once its handler is in place).
    async fn wait_at(&self, path: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let at = self.location().await;
            if at == path {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "expected {path}, still at {at} after {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.find("#kb-help[data-enhanced=\"1\"]").await;
    }

    /// The `data-id` of the row the list's keyboard highlight is on.
    async fn highlighted(&self) -> String {
        self.find("#queue tbody tr.kb-current")
            .await
            .attr("data-id")
            .await
            .unwrap()
            .unwrap()
    }
}

/// Screenshots taken while the clock runs, and how long they took (not counted as the
/// reviewer's time).
struct Shots {
    n: usize,
    spent: Duration,
}

impl Shots {
    async fn take(&mut self, e: &E2e, what: &str) {
        let t = Instant::now();
        self.n += 1;
        e.screenshot(&format!("workbench-{:02}-{what}", self.n))
            .await;
        self.spent += t.elapsed();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_works_a_50_item_queue_by_keyboard_and_bulk_approval_in_chromium() {
    let Some(tools) = tools() else { return };
    let (ts, state) = queue_of(WORKBENCH_ITEMS).await;
    let store = ts.store.clone();
    let collector = user_of(argent_server::UserRole::Collector);
    // Queue order under "I can approve", as the pages follow it.
    let order: Vec<String> = store
        .queue_page(
            &argent_store::QueueFilter {
                status: Some(ApprovalStatus::Pending),
                approvable_by: Some("collector".into()),
                ..Default::default()
            },
            100,
            0,
        )
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(
        order.len(),
        WORKBENCH_ITEMS,
        "a collector may approve every item"
    );
    let item = |i: usize| format!("/queue/{}?mine=1", order[i]);
    let e = E2e::start(&tools, state, "workbench").await;
    within_limit(async {
        e.sign_in(collector).await;
        let mut shots = Shots {
            n: 0,
            spent: Duration::ZERO,
        };
        let started = Instant::now();

        // The list: j, j, k move the highlight; o opens the highlighted item.
        e.goto("/queue?mine=1").await;
        e.wait_at("/queue?mine=1").await;
        assert_eq!(e.text("#queue-total").await, WORKBENCH_ITEMS.to_string());
        shots.take(&e, "queue").await;
        e.keys("j").await;
        assert_eq!(e.highlighted().await, order[0]);
        e.keys("j").await;
        assert_eq!(e.highlighted().await, order[1]);
        e.keys("k").await;
        assert_eq!(e.highlighted().await, order[0]);
        e.keys("o").await;
        e.wait_at(&item(0)).await;
        shots.take(&e, "item").await;
        // On an item: j and k go to the next and previous undecided item.
        e.keys("j").await;
        e.wait_at(&item(1)).await;
        shots.take(&e, "item-j").await;
        e.keys("k").await;
        e.wait_at(&item(0)).await;
        shots.take(&e, "item-k").await;

        // a: approve & next; every fifth, r: the reason, Enter: reject & next.
        let (mut approved, mut rejected) = (Vec::new(), Vec::new());
        for (i, id) in order.iter().enumerate().take(BY_KEYBOARD) {
            assert_eq!(e.text("#item-status").await, "pending", "{id}");
            if i % 5 == 4 {
                e.keys("r").await;
                e.keys(&format!("{REJECT_REASON}\u{e007}")).await;
                rejected.push(id.clone());
            } else {
                e.keys("a").await;
                approved.push(id.clone());
            }
            e.wait_at(&item(i + 1)).await;
            shots.take(&e, "next").await;
        }

        // The rest from the list: j and x tick each row; one bulk approval.
        e.click("#back-to-queue").await;
        e.wait_at("/queue?mine=1").await;
        let left = WORKBENCH_ITEMS - BY_KEYBOARD;
        assert_eq!(e.text("#queue-total").await, left.to_string());
        shots.take(&e, "queue-rest").await;
        for _ in 0..left {
            e.keys("jx").await;
        }
        let ticked = e
            .client
            .find_all(Locator::Css("#queue input.tick:checked"))
            .await
            .unwrap()
            .len();
        assert_eq!(ticked, left, "every remaining row ticked by keyboard");
        shots.take(&e, "ticked").await;
        e.click("#bulk-approve").await;
        let flash = e.text("#flash").await;
        assert!(flash.starts_with(&format!("{left} approved.")), "{flash}");
        assert_eq!(e.text("#queue-total").await, "0");
        let elapsed = started.elapsed();
        shots.take(&e, "done").await;

        // The store agrees: every item decided once, as the keys said, by the collector.
        for id in &approved {
            let it = store.approval(id).await.unwrap();
            assert_eq!(it.status, ApprovalStatus::Approved, "{id}");
            assert_eq!(it.decided_by.as_deref(), Some(collector));
        }
        for id in &rejected {
            let it = store.approval(id).await.unwrap();
            assert_eq!(it.status, ApprovalStatus::Rejected, "{id}");
            assert_eq!(it.note.as_deref(), Some(REJECT_REASON));
        }
        for id in &order[BY_KEYBOARD..] {
            assert_eq!(
                store.approval(id).await.unwrap().status,
                ApprovalStatus::Approved,
                "{id}: bulk"
            );
        }
        assert_eq!(
            store
                .count_approvals(Some(ApprovalStatus::Pending))
                .await
                .unwrap(),
            0
        );

        let working = elapsed.saturating_sub(shots.spent);
        let per_hour = WORKBENCH_ITEMS as f64 / working.as_secs_f64() * 3600.0;
        println!(
            "scripted reviewer: {WORKBENCH_ITEMS} items ({} approved and {} rejected by keyboard, {left} bulk-approved) in {:.1} s of browsing ({:.1} s of {} screenshots not counted): {:.0} items per hour",
            approved.len(),
            rejected.len(),
            working.as_secs_f64(),
            shots.spent.as_secs_f64(),
            shots.n,
            per_hour
        );
    })
    .await;
    e.finish().await;
    ts.cleanup().await;
}

// ---------------------------------------------------------------------------------------
// Issue #15's other pages, each driven as the role that uses it and screenshotted:
// `pages-<role>-<nn>-<what>.png`

impl E2e {
    /// Clicks `css` (a link or a form's button) and waits until the browser has left the
    /// page it was on, so what is read next is read from the page that answered (which
    /// may have the same address and the same elements, a flash for one).
    async fn go_by(&self, css: &str) {
        let old = self.find("html").await;
        self.click(css).await;
        let deadline = Instant::now() + WAIT;
        while old.tag_name().await.is_ok() {
            assert!(
                Instant::now() < deadline,
                "{css} led to no new page within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The texts of every element matching `css` (none is an empty list, not a wait).
    async fn texts(&self, css: &str) -> Vec<String> {
        let mut out = Vec::new();
        for el in self.client.find_all(Locator::Css(css)).await.unwrap() {
            out.push(el.text().await.unwrap());
        }
        out
    }

    /// Attributes `a` and `b` of every element matching `css`, in page order.
    async fn attr_pairs(&self, css: &str, a: &str, b: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for el in self.client.find_all(Locator::Css(css)).await.unwrap() {
            let get = async |name: &str| {
                el.attr(name)
                    .await
                    .unwrap()
                    .unwrap_or_else(|| panic!("{css} without {name}"))
            };
            out.push((get(a).await, get(b).await));
        }
        out
    }

    /// Sets a field's value as a paste would (a whole policy file is too long to type).
    async fn set_value(&self, css: &str, value: &str) {
        let el = self.find(css).await;
        let el = serde_json::to_value(el).unwrap();
        self.client
            .execute(
                "arguments[0].value = arguments[1];",
                vec![el, Value::String(value.into())],
            )
            .await
            .unwrap();
    }

    /// Scrolls the first element matching `css` to the top of the viewport, then takes a
    /// screenshot: a section further down the page, in view.
    async fn screenshot_at(&self, css: &str, name: &str) -> PathBuf {
        let el = serde_json::to_value(self.find(css).await).unwrap();
        self.client
            .execute("arguments[0].scrollIntoView({block: 'start'});", vec![el])
            .await
            .unwrap();
        self.screenshot(name).await
    }

    /// The page's text as a person reads it (what `<body>` renders).
    async fn page_text(&self) -> String {
        self.text("body").await
    }
}

/// Asserts `text` contains every one of `wanted`, naming what is missing and where.
#[track_caller]
fn shows(text: &str, wanted: &[&str], page: &str) {
    for w in wanted {
        assert!(text.contains(w), "{page} shows {w:?}; it says:\n{text}");
    }
}

/// The active version of us-consumer in the store.
async fn active_us_consumer(store: &argent_store::Store) -> i64 {
    store
        .document_versions(argent_store::DocKind::Policy, "us-consumer")
        .await
        .unwrap()
        .into_iter()
        .find(|v| v.status == argent_store::DocStatus::Active)
        .unwrap()
        .version
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_change_goes_through_the_gate_four_eyes_and_a_rollback_in_chromium() {
    use common::gate::{CARRIED, FAILING, gate_store, loosened};
    let Some(tools) = tools() else { return };
    let ts = argent_store::testkit::TestStore::sqlite().await.unwrap();
    let store = ts.store.clone();
    let g = gate_store(&store).await;
    let v1 = store
        .document(argent_store::DocKind::Policy, "us-consumer", 1)
        .await
        .unwrap();
    let doc = "/documents/policy/us-consumer";
    let e = E2e::start(&tools, g.state.clone(), "pages-documents").await;
    // The gate runs the shipped policy tests (448 cases) at each of four steps: about a
    // minute alone, twice that beside the other browser tests on two cores.
    within(WHOLE_TEST * 2, async {
        // The manager pastes a draft that deletes the attorney stop and loosens the ceiling.
        e.sign_in("mo").await;
        e.goto(&format!("{doc}/edit?from=1")).await;
        e.set_value("#doc-body", &loosened(&v1.body)).await;
        e.fill("#doc-note", "simplify").await;
        e.go_by("#save-draft").await;
        e.wait_location(&format!("{doc}?v=2")).await;
        shows(&e.text("#doc-status").await, &["draft"], "the saved draft");
        e.screenshot("pages-manager-01-draft").await;

        // Its activation is refused: three shipped policy tests fail.
        e.fill("#request-activation input[name=reason]", "simplify")
            .await;
        e.go_by("#activate").await;
        let refused = e.text("#error-message").await;
        shows(
            &refused,
            &["activation refused: 3 policy test(s) fail with policy us-consumer version 2"],
            "the refused request",
        );
        for case in FAILING {
            shows(&refused, &[case], "the refused request");
        }
        e.screenshot("pages-manager-02-activation-refused").await;

        // The gate page says so, lists the failing cases and offers no activation.
        e.goto(&format!("{doc}?v=2")).await;
        e.go_by("#gate").await;
        e.wait_location(&format!("{doc}/2/gate")).await;
        shows(
            &e.text("#gate-verdict").await,
            &[
                "Activation is refused:",
                "3 policy test(s) fail with this version.",
            ],
            "the blocked gate",
        );
        let failing = e.texts("#failing-tests tbody tr").await;
        assert_eq!(failing.len(), 3, "{failing:?}");
        for case in FAILING {
            assert!(
                failing.iter().any(|row| row.contains(case)),
                "{case} in {failing:?}"
            );
        }
        assert!(e.texts("#activate").await.is_empty(), "no activate button");
        e.screenshot("pages-manager-03-gate-blocked").await;

        // The same change carrying tests for those cases: the gate passes and shows what
        // it changes, what flips and what no test covers.
        e.goto(&format!("{doc}/edit?from=2")).await;
        e.set_value("#doc-body", &format!("{}{CARRIED}", loosened(&v1.body)))
            .await;
        e.fill("#doc-note", "simplify, tests changed").await;
        e.go_by("#save-draft").await;
        e.wait_location(&format!("{doc}?v=3")).await;
        e.go_by("#gate").await;
        e.wait_location(&format!("{doc}/3/gate")).await;
        shows(
            &e.text("#gate-verdict").await,
            &["The policy tests pass with this version"],
            "the passing gate",
        );
        let replaced = e.text("#replaced-tests").await;
        for case in FAILING {
            shows(&replaced, &[case], "the replaced tests");
        }
        let rules = e.texts("#semantic-diff tbody tr").await;
        assert_eq!(rules.len(), 2, "{rules:?}");
        shows(
            &rules[0],
            &["us.attorney-represented", "rule removed (was deny)"],
            "the semantic diff",
        );
        shows(
            &rules[1],
            &[
                "us.plan.high-risk.ceiling",
                "max_discount_percent 20% → 90% (loosened)",
            ],
            "the semantic diff",
        );
        assert_eq!(
            e.texts("#not-covered li").await,
            ["us.plan.high-risk.ceiling: max_discount_percent 20% → 90% (loosened) not covered"]
        );
        e.screenshot("pages-manager-04-gate-passing").await;
        assert_eq!(e.text("#flipped").await, "2");
        assert_eq!(
            e.texts("#transitions li").await,
            ["deny → needs_approval: 2"]
        );
        let flipped = e.texts("#flipped-items tbody tr").await;
        assert_eq!(flipped.len(), 2, "{flipped:?}");
        shows(
            &flipped[0],
            &[
                &g.ann_item,
                "C-ANN",
                "propose_plan",
                "deny",
                "needs_approval",
            ],
            "the flipped pending item",
        );
        shows(
            &flipped[1],
            &[&g.bo_call, "C-BO", "high", "deny", "needs_approval"],
            "the flipped decision",
        );
        let link = e
            .find("#flipped-items tbody tr a")
            .await
            .attr("href")
            .await
            .unwrap();
        assert_eq!(
            link.as_deref(),
            Some(format!("/queue/{}", g.ann_item).as_str())
        );
        e.screenshot_at("#impact-summary", "pages-manager-05-gate-impact")
            .await;

        // The diff against the active version: rule changes above the changed hunks.
        e.goto(&format!("{doc}/diff?a=1&b=3")).await;
        shows(
            &e.text("#semantic-diff").await,
            &["us.attorney-represented", "rule removed (was deny)"],
            "the diff page",
        );
        let text = e.page_text().await;
        let (semantic, hunk) = (
            text.find("rule removed (was deny)").unwrap(),
            text.find("@@ -")
                .unwrap_or_else(|| panic!("a hunk header:\n{text}")),
        );
        assert!(semantic < hunk, "the rule changes come first:\n{text}");
        shows(
            &text,
            &["communicate with the attorney, not the consumer"],
            "the removed stop's lines",
        );
        assert!(
            !text.contains("reading the aging"),
            "only the changed hunks, not the whole file"
        );
        e.screenshot("pages-manager-06-diff").await;

        // The manager asks for the activation from the gate page, with a reason; it
        // waits for a second person.
        e.goto(&format!("{doc}/3/gate")).await;
        e.fill("#activate-reason", "simplify, with the tests changed")
            .await;
        e.go_by("#activate").await;
        e.wait_location(&format!("{doc}?v=3")).await;
        let waiting = e.text("#doc-requests").await;
        shows(
            &waiting,
            &["simplify, with the tests changed", "mo", "Withdraw"],
            "the request as its author sees it",
        );
        assert!(!waiting.contains("Approve and activate"), "{waiting}");
        assert_eq!(active_us_consumer(&store).await, 1, "requested, not active");
        e.screenshot("pages-manager-07-requested").await;

        // Compliance approves it from the documents list: version 3 is active.
        e.sign_out().await;
        e.sign_in("cy").await;
        e.goto("/documents").await;
        let row = "#doc-requests tbody tr";
        shows(
            &e.text(row).await,
            &[
                "us-consumer",
                "simplify, with the tests changed",
                "Approve and activate",
            ],
            "the request as compliance sees it",
        );
        e.screenshot("pages-compliance-01-request").await;
        e.fill(&format!("{row} input[name=note]"), "tests reviewed")
            .await;
        e.go_by(&format!("{row} button.approve")).await;
        e.wait_location(&format!("{doc}?v=3")).await;
        assert_eq!(e.text("#doc-status").await, "active");
        shows(
            &e.page_text().await,
            &["by compliance:cy"],
            "the activated version",
        );
        assert_eq!(active_us_consumer(&store).await, 3);
        e.screenshot("pages-compliance-02-approved").await;

        // The manager asks for a rollback (four eyes again); compliance approves it.
        e.sign_out().await;
        e.sign_in("mo").await;
        e.goto(doc).await;
        shows(
            &e.text("#rollback-button").await,
            &["Roll back to version 1"],
            "the rollback form",
        );
        e.fill("#rollback input[name=reason]", "the ceiling is too loose")
            .await;
        e.go_by("#rollback-button").await;
        e.wait_location(doc).await;
        shows(
            &e.text("#doc-requests").await,
            &["rollback", "the ceiling is too loose"],
            "the rollback request",
        );
        assert_eq!(active_us_consumer(&store).await, 3, "still, until approved");
        e.screenshot("pages-manager-08-rollback-requested").await;
        e.sign_out().await;
        e.sign_in("cy").await;
        e.goto("/documents").await;
        e.go_by("#doc-requests tbody tr button.approve").await;
        e.wait_location(&format!("{doc}?v=1")).await;
        assert_eq!(e.text("#doc-status").await, "active");
        assert_eq!(active_us_consumer(&store).await, 1);
        e.screenshot("pages-compliance-03-rolled-back").await;
    })
    .await;
    e.finish().await;
    ts.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evaluator_reads_runs_a_case_a_comparison_and_the_trend_in_chromium() {
    use common::eval_runs::{CASE, OTHER, store_run};
    let Some(tools) = tools() else { return };
    let f = fixture().await;
    let a = store_run(f.store(), "eval-a", true, None, None).await;
    store_run(f.store(), "eval-b", false, Some(("eval-a", &a)), Some(2)).await;
    let e = E2e::start(&tools, f.state.clone(), "pages-evals").await;
    within_limit(async {
        e.sign_in(user_of(argent_server::UserRole::Evaluator)).await;
        e.wait_location("/evals").await;
        // The list: a verdict, the model and the documents per run; the trend per set.
        let b = e.text("#evals tr[data-id=\"eval-b\"]").await;
        shows(
            &b,
            &["regression", "offline", "policy b2b v2 (draft)", "0 / 2"],
            "eval-b's row",
        );
        shows(
            &e.text("#evals tr[data-id=\"eval-a\"]").await,
            &["fail", "policy b2b v1", "1 / 2"],
            "eval-a's row",
        );
        shows(&e.text("#trend-core").await, &["Set core"], "the trend");
        let rates = e
            .attr_pairs("#trend-core circle.point", "data-run", "data-rate")
            .await;
        assert_eq!(
            rates,
            [
                ("eval-a".to_string(), "0.5000".to_string()),
                ("eval-b".to_string(), "0.0000".to_string())
            ]
        );
        e.screenshot("pages-evaluator-01-runs-and-trend").await;

        // A run, then one of its cases.
        e.go_by("#evals tr[data-id=\"eval-b\"] a[href=\"/evals/eval-b\"]")
            .await;
        e.wait_location("/evals/eval-b").await;
        assert_eq!(e.text("#eval-status").await, "done");
        assert_eq!(e.text("#verdict").await, "regressed");
        shows(&e.text("#cases").await, &[CASE, OTHER], "the run's cases");
        e.screenshot("pages-evaluator-02-run").await;
        e.go_by(&format!("#cases a[href=\"/evals/eval-b/cases/{CASE}\"]"))
            .await;
        e.wait_location(&format!("/evals/eval-b/cases/{CASE}"))
            .await;
        assert_eq!(e.text("#case-id").await, CASE);
        shows(
            &e.text("#messages").await,
            &["Ratenzahlung / instalment request INV-9120"],
            "what the customer wrote",
        );
        let seen = e.attr_pairs("div.call", "data-tool", "data-status").await;
        assert_eq!(
            seen,
            [
                ("read_aging".to_string(), "invalid".to_string()),
                ("propose_plan".to_string(), "queued".to_string()),
                ("send_email".to_string(), "executed".to_string()),
            ]
        );
        shows(
            &e.page_text().await,
            &[
                "b2b.approval.large-plan-eur",
                "queued for approval: plans over EUR 20,000.00 need a manager",
                "{customer: B-3301",
            ],
            "the case's calls",
        );
        e.screenshot("pages-evaluator-03-case").await;

        // Two runs ticked and compared, then one case A beside B.
        e.goto("/evals").await;
        e.click("input[name=run][value=\"eval-a\"]").await;
        e.click("input[name=run][value=\"eval-b\"]").await;
        e.go_by("#compare").await;
        e.wait_location("/evals/compare?").await;
        assert_eq!(e.text("#verdict").await, "regressed");
        let changed = e
            .text(&format!("#compare-cases tr[data-case=\"{CASE}\"].changed"))
            .await;
        shows(
            &changed,
            &["pass", "fail", "A beside B"],
            "the changed case",
        );
        e.screenshot("pages-evaluator-04-compare").await;
        e.go_by(&format!("#compare-cases tr[data-case=\"{CASE}\"] a"))
            .await;
        e.wait_location(&format!("/evals/compare/{CASE}?a=eval-a&b=eval-b"))
            .await;
        let side_a = e.text("#side-a[data-run=\"eval-a\"]").await;
        let side_b = e.text("#side-b[data-run=\"eval-b\"]").await;
        shows(&side_a, &["pass", "\"down_payment\": \"6000.00\""], "A");
        shows(
            &side_b,
            &[
                "fail",
                "\"down_payment\": \"6000.01\"",
                "b2b.approval.large-plan-eur",
                "policy b2b v2 (draft)",
            ],
            "B",
        );
        e.screenshot("pages-evaluator-05-a-beside-b").await;
    })
    .await;
    e.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_creates_unlocks_resets_and_disables_a_user_in_chromium() {
    let Some(tools) = tools() else { return };
    let f = fixture().await;
    let admin = user_of(argent_server::UserRole::Admin);
    let max_failures = argent_server::ServerConfig::default().login_max_failures;
    let e = E2e::start(&tools, f.state.clone(), "pages-users").await;
    let row = "#users tr[data-name=\"pat\"]";
    within_limit(async {
        e.sign_in(admin).await;
        e.goto("/users").await;
        for (name, role) in USERS {
            let r = e.find(&format!("#users tr[data-name=\"{name}\"]")).await;
            assert_eq!(
                r.attr("data-role").await.unwrap().as_deref(),
                Some(role.as_str())
            );
        }
        // Create.
        e.fill("#new-user input[name=name]", "pat").await;
        e.find("#new-user select[name=role] option[value=compliance]")
            .await
            .click()
            .await
            .unwrap();
        e.fill("#new-user input[name=password]", "a fine password")
            .await;
        e.go_by("#new-user button").await;
        assert_eq!(e.text("#flash").await, "pat created.");
        let pat = e.find(row).await;
        assert_eq!(
            pat.attr("data-role").await.unwrap().as_deref(),
            Some("compliance")
        );
        e.screenshot("pages-admin-01-user-created").await;

        // Someone guesses pat's password until pat is locked out from this address.
        e.sign_out().await;
        for _ in 0..max_failures {
            e.fill("#name", "pat").await;
            e.fill("#password", "not the password").await;
            e.go_by("#sign-in").await;
            e.find("#login-error").await;
        }
        e.fill("#name", "pat").await;
        e.fill("#password", "a fine password").await;
        e.go_by("#sign-in").await;
        shows(
            &e.text("#login-error").await,
            &["too many failed sign-ins for this user from this address"],
            "the right password, too late",
        );
        assert!(e.texts("#signed-in-as").await.is_empty(), "not signed in");

        // The admin sees the lockout and lifts it.
        e.sign_in(admin).await;
        e.goto("/users").await;
        assert_eq!(e.text("#locked-count").await, "1");
        shows(
            &e.text(row).await,
            &["127.0.0.1", &format!("{max_failures} failures")],
            "pat's lockout",
        );
        e.screenshot("pages-admin-02-locked-out").await;
        e.go_by(&format!("{row} button.unlock")).await;
        assert_eq!(
            e.text("#flash").await,
            "pat unlocked: earlier failed sign-ins no longer count."
        );
        shows(&e.text(row).await, &["nowhere"], "pat, unlocked");
        assert!(e.texts("#locked-count").await.is_empty());

        // A new password, then disabled.
        e.fill(&format!("{row} input[name=password]"), "another fine one")
            .await;
        e.go_by(&format!("{row} button.password")).await;
        assert_eq!(
            e.text("#flash").await,
            "pat given a new password and signed out everywhere."
        );
        e.go_by(&format!("{row} button.disable")).await;
        assert_eq!(
            e.text("#flash").await,
            "pat disabled and signed out everywhere."
        );
        let pat = e.find(row).await;
        assert_eq!(
            pat.attr("data-disabled").await.unwrap().as_deref(),
            Some("true")
        );
        shows(
            &pat.text().await.unwrap(),
            &["disabled", &format!("by admin:{admin}")],
            "pat, disabled",
        );
        e.screenshot("pages-admin-03-reset-and-disabled").await;

        // The store agrees; every change is the admin's in the trail.
        let stored = f.store().user("pat").await.unwrap().unwrap();
        assert!(stored.is_disabled());
        assert_eq!(stored.role, "compliance");
        let kinds: Vec<String> = f
            .store()
            .audit_events(&argent_store::AuditFilter::default())
            .await
            .unwrap()
            .into_iter()
            .filter(|ev| ev.kind.starts_with("user."))
            .map(|ev| format!("{} {}", ev.actor, ev.kind))
            .collect();
        let by = format!("admin:{admin}");
        assert_eq!(
            kinds,
            [
                "user.create",
                "user.unlock",
                "user.password_reset",
                "user.disable"
            ]
            .map(|k| format!("{by} {k}"))
        );
    })
    .await;
    e.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_reads_the_whole_thread_and_checks_a_plan_in_the_editor_in_chromium() {
    let Some(tools) = tools() else { return };
    let f = fixture().await;
    common::earlier_thread(f.store()).await;
    let id = f.ann[0].clone();
    let e = E2e::start(&tools, f.state.clone(), "pages-item").await;
    within_limit(async {
        e.sign_in(user_of(argent_server::UserRole::Collector)).await;
        e.goto(&format!("/queue/{id}")).await;
        // The plan editor: terms, not JSON.
        assert_eq!(e.text("#plan-currency").await, "USD");
        assert_eq!(e.text("#plan-balance").await, "1,200.00 USD");
        for (field, value) in [
            ("#plan-discount", "240.00"),
            ("#plan-down-payment", "96.00"),
            ("#plan-count", "3"),
            ("#plan-start-date", "2026-11-20"),
        ] {
            assert_eq!(
                e.find(field).await.prop("value").await.unwrap().as_deref(),
                Some(value),
                "{field}"
            );
        }
        e.screenshot("pages-collector-01-item").await;

        // The whole thread, oldest first, in the customer's time zone.
        let thread = e.text("#thread").await;
        let at = |needle: &str| {
            thread
                .find(needle)
                .unwrap_or_else(|| panic!("{needle} in the thread:\n{thread}"))
        };
        assert!(
            at("Is INV-ANN-1 the right amount?") < at("Yes, 1,200.00 is right.")
                && at("Yes, 1,200.00 is right.") < at("Could I get 20% off?"),
            "{thread}"
        );
        shows(
            &thread,
            &[
                "2026-11-02 09:30 CST",
                "2026-11-03 08:00 CST",
                "2026-11-20 12:00 CST",
            ],
            "the thread's local times",
        );
        shows(
            &e.page_text().await,
            &["Times are the customer's local time, America/Chicago."],
            "the item page",
        );
        e.screenshot_at("#thread", "pages-collector-02-thread")
            .await;

        // Seven weekly instalments, checked: 864.00 does not divide by 7, yet sums exactly.
        e.fill("#plan-count", "7").await;
        e.find("#plan-frequency option[value=weekly]")
            .await
            .click()
            .await
            .unwrap();
        e.go_by("#preview").await;
        e.wait_location(&format!("/queue/{id}/preview")).await;
        let plan = e.texts("#preview-plan .instalment").await;
        assert_eq!(plan.len(), 7, "{plan:?}");
        shows(&plan[0], &["123.43 due 2026-11-27"], "the first instalment");
        shows(&plan[6], &["123.42 due 2027-01-08"], "the last instalment");
        assert!(
            ["allow", "needs_approval"].contains(&e.text("#preview-outcome").await.as_str()),
            "checked by policy"
        );
        assert_eq!(
            f.store().approval(&id).await.unwrap().status,
            ApprovalStatus::Pending,
            "checking acts on nothing"
        );
        e.screenshot("pages-collector-03-plan-checked").await;
    })
    .await;
    e.finish().await;
}
