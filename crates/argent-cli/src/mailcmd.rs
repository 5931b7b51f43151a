//! `argent mail`: received mail after it arrived (`inbound_mail`): process what is waiting
//! (`argent_agent::mail_in::process_pending`), list the unmatched-mail queue, and assign
//! an unmatched message to its customer (as the signed-in user; audited, then processed).

use anyhow::Result;
use clap::Subcommand;

use argent_agent::Clock;
use argent_agent::mail_in::{assign_unmatched, process_pending};
use argent_store::Store;

use crate::agentcmd::{ModelArgs, build_agent};
use crate::logincmd::{AuthArgs, reviewer};

#[derive(Subcommand, Debug)]
pub enum MailCommand {
    /// Process received messages waiting (`new`): parse, match, act (an agent run for a
    /// person's message from a matched customer).
    Process {
        /// The most messages to process.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// The unmatched-mail queue: messages that matched no customer, newest first.
    Unmatched {
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Assign unmatched message ID to CUSTOMER (audited), then process it as matched.
    Assign {
        id: String,
        customer: String,
        #[command(flatten)]
        auth: AuthArgs,
    },
}

pub async fn mail(store: Store, models: &ModelArgs, clock: Clock, cmd: MailCommand) -> Result<()> {
    match cmd {
        MailCommand::Process { limit } => {
            let agent = build_agent(store, models, clock).await?;
            let r = process_pending(&agent, limit).await?;
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
        MailCommand::Unmatched { limit, json } => {
            let items = store.inbound_list(Some("unmatched"), limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else {
                for m in &items {
                    println!(
                        "{}  {}  {}  {}  {}",
                        m.id,
                        m.received_at.to_rfc3339(),
                        m.from_addr.as_deref().unwrap_or("-"),
                        m.kind.as_deref().unwrap_or("-"),
                        m.subject.as_deref().unwrap_or("-"),
                    );
                }
                println!("{} unmatched message(s)", items.len());
            }
        }
        MailCommand::Assign { id, customer, auth } => {
            let who = reviewer(&store, &auth).await?;
            let agent = build_agent(store.clone(), models, clock).await?;
            let r = assign_unmatched(&agent, &id, &customer, &who).await?;
            let m = store.inbound_mail(&id).await?;
            println!(
                "{id}: {} (customer {}, matched by {})",
                m.status,
                m.customer_id.as_deref().unwrap_or("-"),
                m.matched_by.as_deref().unwrap_or("-")
            );
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
    }
    Ok(())
}
