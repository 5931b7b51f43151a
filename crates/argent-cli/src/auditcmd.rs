//! `argent audit`: verify the trail (chain, signed checkpoints, rows against events),
//! create a checkpoint key, write checkpoints, export events; and the periodic
//! checkpoints of `argent serve`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use clap::{Subcommand, ValueEnum};

use argent_store::anchor::{SigningKey, public_key_hex};
use argent_store::checkpoint::{
    create_key_file, read_checkpoint_file, read_key_file, read_public_key,
};
use argent_store::{AuditFilter, AuditVerification, CheckpointError, FileSink, Store};

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Verify the trail: recompute the hash chain, cross-check the rows that act (outbox
    /// emails, approvals, documents) against their events and, with --checkpoints, check
    /// the chain against signed checkpoints kept outside the database. Prints what it
    /// detected; fails if anything was.
    Verify {
        /// A checkpoint file (JSON lines written by `argent audit checkpoint` or
        /// `argent serve --checkpoint-file`).
        #[arg(long, requires = "public_key")]
        checkpoints: Option<PathBuf>,
        /// The checkpoints' public key: 64 hex digits, or a file holding them (as printed
        /// by `argent audit keygen`).
        #[arg(long, requires = "checkpoints")]
        public_key: Option<String>,
    },
    /// Create an Ed25519 key for signing checkpoints: writes it to a new file (mode 0600;
    /// an existing file is never overwritten) and prints its public key. Keep the file
    /// where whoever controls the database cannot read it.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign the chain's head now and append the checkpoint to a file. The chain is
    /// verified first (from the file's last checkpoint, or from the start): a broken chain
    /// is not signed.
    Checkpoint {
        /// The signing key file (from `argent audit keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The checkpoint file to append to (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Export events as JSON lines or CSV.
    Export {
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        #[arg(long)]
        customer: Option<String>,
        #[arg(long)]
        run: Option<String>,
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        kind: Option<String>,
        /// Only events naming this policy rule id.
        #[arg(long)]
        rule: Option<String>,
        /// RFC 3339 instant.
        #[arg(long, value_parser = crate::args::instant)]
        since: Option<DateTime<Utc>>,
        #[arg(long, value_parser = crate::args::instant)]
        until: Option<DateTime<Utc>>,
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

/// `argent audit keygen` without a database: it only writes a file.
pub fn keygen(out: &Path) -> Result<()> {
    use rand::TryRngCore;
    let mut seed = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut seed)
        .context("reading the operating system's random number generator")?;
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    create_key_file(out, &key)?;
    eprintln!(
        "argent: wrote a checkpoint signing key to {} (mode 0600); its public key:",
        out.display()
    );
    println!("{}", public_key_hex(&key.verifying_key()));
    Ok(())
}

pub async fn audit(store: Store, cmd: AuditCommand) -> Result<()> {
    match cmd {
        AuditCommand::Verify {
            checkpoints,
            public_key,
        } => verify(&store, checkpoints.as_deref(), public_key.as_deref()).await?,
        AuditCommand::Keygen { out } => keygen(&out)?,
        AuditCommand::Checkpoint { key, out } => {
            let key = read_key_file(&key)?;
            let sink = FileSink::new(&out);
            match store
                .write_checkpoint(&key, &sink, Utc::now(), false)
                .await?
            {
                Some(c) => println!(
                    "checkpoint: event {} (head {}) signed by {} and appended to {}",
                    c.checkpoint.seq,
                    c.checkpoint.head,
                    c.key,
                    out.display()
                ),
                None => println!("checkpoint: nothing to write"),
            }
        }
        AuditCommand::Export {
            format,
            customer,
            run,
            actor,
            kind,
            rule,
            since,
            until,
            out,
        } => {
            let filter = AuditFilter {
                customer_id: customer,
                run_id: run,
                actor,
                kind,
                rule_id: rule,
                since,
                until,
                limit: None,
                offset: None,
            };
            let events = store.audit_events(&filter).await?;
            let text = match format {
                ExportFormat::Jsonl => argent_store::audit_to_jsonl(&events),
                ExportFormat::Csv => argent_store::audit_to_csv(&events),
            };
            match out {
                Some(p) => {
                    std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?
                }
                None => print!("{text}"),
            }
        }
    }
    Ok(())
}

/// Everything `argent audit verify` checks, printed; an error listing what was detected.
async fn verify(store: &Store, checkpoints: Option<&Path>, public_key: Option<&str>) -> Result<()> {
    let mut problems: Vec<String> = Vec::new();
    match store.audit_verify().await? {
        AuditVerification::Intact { events, head } => {
            println!("audit chain: intact, {events} events, head {head}")
        }
        AuditVerification::Broken { seq, reason } => {
            let p = format!("audit trail BROKEN at event {seq}: {reason}");
            println!("DETECTED {p}");
            problems.push(p);
        }
    }
    match (checkpoints, public_key) {
        (Some(file), Some(pk)) => {
            let key = read_public_key(pk)?;
            let entries = read_checkpoint_file(file)?;
            let j = store.check_checkpoints(&entries, &key).await?;
            for f in &j.findings {
                println!("DETECTED {f}");
                problems.push(f.to_string());
            }
            match &j.newest {
                Some(c) => println!(
                    "checkpoints: {} of {} line(s) in {} verified under {}; the newest signs event {} ({})",
                    j.valid,
                    entries.len(),
                    file.display(),
                    public_key_hex(&key),
                    c.seq,
                    c.at.to_rfc3339()
                ),
                None => println!(
                    "checkpoints: none of the {} line(s) in {} verified",
                    entries.len(),
                    file.display()
                ),
            }
        }
        _ => println!(
            "checkpoints: none given; without them a rewrite that re-chains every later event is \
             not detectable (--checkpoints FILE --public-key KEY)"
        ),
    }
    let mismatches = store.audit_cross_check().await?;
    for m in &mismatches {
        println!("DETECTED {m}");
        problems.push(m.to_string());
    }
    if mismatches.is_empty() {
        println!("cross-check: outbox, approvals and documents match their audit events");
    }
    if !problems.is_empty() {
        bail!(
            "audit verification failed, {} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        );
    }
    println!("audit trail intact");
    Ok(())
}

/// Parses `--checkpoint-every`: a number of seconds, or a number with `s`, `m` or `h`.
pub fn parse_every(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&t[..i], &t[i..]),
        None => (t, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (e.g. 60s, 5m, 1h)"))?;
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        _ => None,
    }
    .ok_or_else(|| format!("'{s}' is not a duration (e.g. 60s, 5m, 1h)"))?;
    if secs == 0 {
        return Err(format!("'{s}': the interval must be at least 1s"));
    }
    Ok(Duration::from_secs(secs))
}

/// For `argent serve`: checks the key and the file now (so a bad key stops the server
/// before it serves), then every `every` signs the chain's head into the file if it moved
/// since the last checkpoint. A failure (a broken chain, an unwritable file) is logged and
/// retried at the next tick; the server keeps serving.
pub async fn spawn_checkpoints(
    store: Store,
    key_file: &Path,
    out: &Path,
    every: Duration,
) -> Result<()> {
    let key = read_key_file(key_file)?;
    let sink = FileSink::new(out);
    let first = store
        .write_checkpoint(&key, &sink, Utc::now(), true)
        .await
        .with_context(|| format!("writing a checkpoint to {}", out.display()))?;
    eprintln!(
        "argent: signing audit checkpoints into {} every {}s (key {}){}",
        out.display(),
        every.as_secs(),
        public_key_hex(&key.verifying_key()),
        first
            .map(|c| format!("; checkpoint of event {}", c.checkpoint.seq))
            .unwrap_or_default()
    );
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            match store.write_checkpoint(&key, &sink, Utc::now(), true).await {
                Ok(Some(c)) => {
                    tracing::info!(seq = c.checkpoint.seq, "audit checkpoint written")
                }
                Ok(None) => {}
                // Once, through the log on standard error (errors show unless
                // `ARGENT_LOG` turns them off); an eprintln beside it printed them twice.
                Err(e @ CheckpointError::ChainBroken { .. }) => {
                    tracing::error!(error = %e, "audit chain broken: no checkpoint signed");
                }
                Err(e) => {
                    tracing::error!(error = %e, "writing an audit checkpoint");
                }
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_read_with_units() {
        assert_eq!(parse_every("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_every("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_every("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_every("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_every("0s").is_err());
        assert!(parse_every("1d").is_err());
        assert!(parse_every("s").is_err());
        assert!(parse_every("99999999999999999999h").is_err());
    }
}
