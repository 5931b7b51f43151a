//! `argent facts`: import a facts file, show one customer's facts.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;

use argent_agent::facts::{FactsError, import_facts};
use argent_core::facts_import::{self, parse};
use argent_store::Store;

use crate::logincmd::{AuthArgs, reviewer};

#[derive(Subcommand, Debug)]
pub enum FactsCommand {
    /// Import an account-facts file (CSV: customer_id,fact,value[,invoice_number]; see
    /// README "Account facts"), merged into each customer's facts, all or nothing, audited
    /// as the signed-in user (changing negotiation limits needs a manager or admin).
    Import {
        file: PathBuf,
        #[command(flatten)]
        auth: AuthArgs,
    },
    /// Print a customer's facts: in plain words, then as a facts file (`--csv`: only the
    /// file, which `argent facts import` reads back).
    Show {
        customer: String,
        #[arg(long)]
        csv: bool,
    },
}

pub async fn facts(store: Store, command: FactsCommand) -> Result<()> {
    match command {
        FactsCommand::Import { file, auth } => {
            let data =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let parsed =
                parse(&data).with_context(|| format!("{} is not imported", file.display()))?;
            let who = reviewer(&store, &auth).await?;
            let name = file.display().to_string();
            let changes = import_facts(&store, &parsed, &who, &name)
                .await
                .map_err(|e| match e {
                    FactsError::Store(e) => anyhow::Error::new(e),
                    other => anyhow::anyhow!("{other}"),
                })
                .with_context(|| format!("{name} is not imported; the database is unchanged"))?;
            println!(
                "imported {name}: {} rows for {} customers, {} changed",
                parsed.row_count(),
                parsed.customers.len(),
                changes.len()
            );
            for c in &changes {
                let fields: Vec<String> =
                    argent_core::AccountFacts::changed_fields(&c.before, &c.after)
                        .into_keys()
                        .collect();
                println!("  {}: {}", c.customer_id, fields.join(", "));
            }
        }
        FactsCommand::Show { customer, csv } => {
            let c = store.customer(&customer).await?;
            if csv {
                print!("{}", facts_import::to_csv(&c.id, &c.facts));
            } else {
                println!("{} ({})", c.name, c.id);
                for line in c.facts.describe() {
                    println!("  {line}");
                }
                println!();
                print!("{}", facts_import::to_csv(&c.id, &c.facts));
            }
        }
    }
    Ok(())
}
