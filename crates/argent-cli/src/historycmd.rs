//! `argent timeline` and `argent contacts report`: a customer's history from the command
//! line, read by the store exactly as the web pages read it (`argent_store::timeline`,
//! `argent_store::contacts`). Reads only; whoever can open the database can read it, so no
//! sign-in is asked for (as with `argent audit export`).

use anyhow::{Context, Result, bail};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Subcommand, ValueEnum};

use argent_store::timeline::MAX_PAGE;
use argent_store::{Cursor, Store, TimelineQuery, contacts_to_csv, contacts_to_jsonl};

use crate::args;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TimelineFormat {
    Table,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ContactsFormat {
    Csv,
    Jsonl,
}

#[derive(Subcommand, Debug)]
pub enum ContactsCommand {
    /// The contact-history report of one customer: one row per attempt (emails drafted,
    /// sent, held, rejected or refused; calls logged), newest first, times in the debtor's
    /// zone. The period is in the debtor's calendar, both days included.
    Report {
        #[arg(long)]
        customer: String,
        #[arg(long, value_parser = args::date)]
        from: Option<NaiveDate>,
        #[arg(long, value_parser = args::date)]
        to: Option<NaiveDate>,
        #[arg(long, value_enum, default_value = "csv")]
        format: ContactsFormat,
    },
}

/// `argent timeline --customer ID [--limit N] [--after CURSOR] [--format table|json]`.
pub async fn timeline(
    store: &Store,
    now: DateTime<Utc>,
    customer: &str,
    limit: usize,
    after: Option<&str>,
    format: TimelineFormat,
) -> Result<()> {
    if !(1..=MAX_PAGE).contains(&limit) {
        bail!("--limit {limit} is not within 1..={MAX_PAGE}");
    }
    let after = after.map(Cursor::parse).transpose()?;
    let c = store.customer(customer).await?;
    let as_of = now.with_timezone(&c.time_zone).date_naive();
    let page = store
        .timeline(
            customer,
            &TimelineQuery {
                limit,
                after,
                as_of,
                promise_grace_days: argent_server::web::PROMISE_GRACE_DAYS,
            },
        )
        .await
        .with_context(|| format!("reading the timeline of {customer}"))?;
    if format == TimelineFormat::Json {
        println!("{}", serde_json::to_string_pretty(&page)?);
        return Ok(());
    }
    println!(
        "{} ({}) — {} entries, newest first, times in {}",
        page.customer_name, page.customer_id, page.total, page.time_zone
    );
    for e in &page.entries {
        let seqs: Vec<String> = e.audit_seqs.iter().map(i64::to_string).collect();
        let who = e
            .actor
            .as_deref()
            .map(|a| format!(" [{a}]"))
            .unwrap_or_default();
        let audit = if seqs.is_empty() {
            String::new()
        } else {
            format!("  (audit {})", seqs.join(","))
        };
        println!("{}  {:<20} {}{who}{audit}", e.at_local, e.kind, e.title);
    }
    if let Some(n) = &page.next {
        println!("more: argent timeline --customer {customer} --after {n}");
    }
    Ok(())
}

pub async fn contacts(store: &Store, command: ContactsCommand) -> Result<()> {
    match command {
        ContactsCommand::Report {
            customer,
            from,
            to,
            format,
        } => {
            let rows = store
                .contact_history(&customer, from, to)
                .await
                .with_context(|| format!("the contact history of {customer}"))?;
            match format {
                ContactsFormat::Csv => print!("{}", contacts_to_csv(&rows)?),
                ContactsFormat::Jsonl => print!("{}", contacts_to_jsonl(&rows)),
            }
        }
    }
    Ok(())
}
