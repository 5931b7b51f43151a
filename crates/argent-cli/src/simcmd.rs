//! `argent demo`'s second part: the desk over simulated days (`argent_worker::sim`), and
//! its report. Glue: the simulation is in `argent_worker::sim`, the debtors' model in
//! `argent_core::debtors`.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use chrono::NaiveDate;

use argent_agent::tick::active_procedures;
use argent_agent::{Clock, ManualClock};
use argent_store::Store;
use argent_worker::sim::{SimConfig, SimReport, simulate};

use crate::agentcmd::{ModelArgs, build_agent};

/// Runs `days` simulated days from `start` and prints what happened.
pub async fn simulate_days(
    store: Store,
    models: &ModelArgs,
    db: &Path,
    start: NaiveDate,
    days: u32,
    seed: u64,
    unreviewed_last_days: u32,
) -> Result<SimReport> {
    crate::tickcmd::seed_procedures(&store, models).await?;
    let set = active_procedures(&store).await?;
    let clock = ManualClock::leak(start.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    let agent = Arc::new(build_agent(store.clone(), models, Clock::Manual(clock)).await?);
    let mut outbox = db.as_os_str().to_owned();
    outbox.push(".outbox");
    let cfg = SimConfig {
        days,
        start,
        seed,
        hours: vec![0, 3, 6, 9, 12, 15, 18, 21],
        outbox_dir: outbox.into(),
        from: "ar@argent.example".into(),
        review_hour: 15,
        unreviewed_last_days,
        concurrency: 4,
    };
    println!(
        "{days} simulated days from {start}: the scheduler ticks and a worker runs what is due every 3 hours;"
    );
    println!(
        "the DEBTORS ARE SIMULATED (a seeded model of how accounts in each risk segment answer: seed {seed}),"
    );
    if unreviewed_last_days == 0 {
        println!(
            "and a simulated reviewer approves what the agent held for a person at 15:00 UTC each day."
        );
    } else {
        println!(
            "and a simulated reviewer approves what the agent held for a person at 15:00 UTC each day but the last {unreviewed_last_days}"
        );
        println!(
            "(what was held then is left pending: the approval queue `argent serve` shows on this database)."
        );
    }
    let report = simulate(&store, agent, clock, &set, &cfg, |day, line| {
        if std::env::var_os("ARGENT_DEMO_QUIET").is_none() {
            println!("  {day}  {line}");
        }
    })
    .await?;
    print_report(&report, &cfg);
    Ok(report)
}

fn print_report(r: &SimReport, cfg: &SimConfig) {
    println!();
    println!("procedure steps (enqueued / done / cancelled / failed / still open):");
    for (step, s) in &r.steps {
        println!(
            "  {step:<34} {:>5} {:>5} {:>5} {:>5} {:>5}",
            s.enqueued, s.done, s.cancelled, s.failed, s.open
        );
    }
    println!();
    println!(
        "per risk segment (simulated debtors): accounts, overdue on day 0, emails, replies, promises (kept / broken / of those partly paid), disputes, hardship, accounts paying after a contact, invoices paid unprompted, accounts cleared"
    );
    for (seg, s) in &r.segments {
        let paid: Vec<String> = s
            .paid
            .iter()
            .map(|(c, m)| format!("{c} {}", minor_to_major(*m)))
            .collect();
        println!(
            "  {seg:<10} {:>4} {:>4} {:>5} {:>4} {:>4} ({} / {} / {}) {:>3} {:>3} {:>4} {:>4} {:>4}  paid {}",
            s.accounts,
            s.overdue_at_start,
            s.emails,
            s.replies,
            s.promises,
            s.promises_kept,
            s.promises_broken,
            s.promises_partial,
            s.disputes,
            s.hardship,
            s.payments,
            s.paid_unprompted,
            s.cleared,
            if paid.is_empty() {
                "nothing".to_string()
            } else {
                paid.join(", ")
            }
        );
    }
    println!();
    if r.paused_at_end.is_empty() {
        println!("accounts paused on the last day: none");
    } else {
        let p: Vec<String> = r
            .paused_at_end
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        println!("accounts paused on the last day: {}", p.join(", "));
    }
    println!(
        "emails delivered: {} (into {}); held items approved by the simulated reviewer: {}, refused on re-judgement: {}, pending at the end: {}",
        r.emails_delivered,
        cfg.outbox_dir.display(),
        r.approvals_approved,
        r.approvals_refused,
        r.approvals_pending_at_end
    );
    println!(
        "promises marked broken by the scheduler: {}; invoices issued during the simulation: {}; worker failures: {}",
        r.promises_broken_marked, r.invoices_issued, r.worker_failures
    );
    println!();
    println!("DSO (90-day period) per currency, day 0 -> last day:");
    for d in &r.dso {
        let f = |x: Option<f64>| x.map_or("n/a".to_string(), |v| format!("{v:.1}"));
        println!(
            "  {}  {} -> {} days  (receivables {} -> {})",
            d.currency,
            f(d.start),
            f(d.end),
            minor_to_major(d.open_start),
            minor_to_major(d.open_end)
        );
    }
}

/// Minor units as a two-decimal figure (every demo currency has two decimals).
fn minor_to_major(m: i64) -> String {
    let sign = if m < 0 { "-" } else { "" };
    let a = m.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}
