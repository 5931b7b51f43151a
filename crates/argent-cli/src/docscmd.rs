//! `argent docs`: the prompts, policies and procedures the database holds as versioned
//! documents.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};

use argent_agent::validate_document;
use argent_store::{DocKind, Store};

#[derive(Subcommand, Debug)]
pub enum DocsCommand {
    /// List the documents in the database: kind, name, active and latest version.
    List,
    /// List activation requests (four eyes): pending ones, or with --all every one. They
    /// are approved or rejected on /documents or through /api/document-requests.
    Requests {
        #[arg(long)]
        all: bool,
    },
    /// Check a prompt template, policy or procedure document file as the web editor does before a
    /// draft is saved: prints `FILE:LINE:COLUMN: problem` for each problem and exits
    /// non-zero if there is any. Does not open the database.
    Validate {
        kind: KindArg,
        file: PathBuf,
        /// The document's name (`tone/firm`, `us-consumer`). Default: from the file's path
        /// (under a `prompts/` directory for a prompt; the file name for a policy).
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    Prompt,
    Policy,
    Procedure,
}

impl From<KindArg> for DocKind {
    fn from(k: KindArg) -> DocKind {
        match k {
            KindArg::Prompt => DocKind::Prompt,
            KindArg::Policy => DocKind::Policy,
            KindArg::Procedure => DocKind::Procedure,
        }
    }
}

/// A document's name from its file: `…/prompts/tone/firm.hbs` → `tone/firm`,
/// `…/us-consumer.toml` → `us-consumer`.
fn name_from_path(kind: DocKind, file: &Path) -> Option<String> {
    let stem = file.with_extension("");
    if kind == DocKind::Prompt {
        let parts: Vec<&str> = stem
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => s.to_str(),
                _ => None,
            })
            .collect();
        if let Some(i) = parts.iter().rposition(|p| *p == "prompts")
            && i + 1 < parts.len()
        {
            return Some(parts[i + 1..].join("/"));
        }
    }
    stem.file_name()
        .and_then(|s| s.to_str())
        .map(str::to_string)
}

pub async fn docs(database: &str, cmd: DocsCommand) -> Result<()> {
    match cmd {
        DocsCommand::List => {
            let store = Store::open(database)
                .await
                .with_context(|| format!("opening database {database}"))?;
            let docs = store.documents().await?;
            if docs.is_empty() {
                println!(
                    "no documents yet: the first run, resume or serve on this database seeds them \
                     from --prompts and --policies"
                );
                return Ok(());
            }
            println!(
                "{:<9} {:<34} {:>6} {:>6} {:>8}",
                "kind", "name", "active", "latest", "versions"
            );
            for d in &docs {
                let active = d
                    .active_version
                    .map_or_else(|| "-".to_string(), |v| v.to_string());
                println!(
                    "{:<9} {:<34} {:>6} {:>6} {:>8}",
                    d.kind.as_str(),
                    d.name,
                    active,
                    d.latest_version,
                    d.versions
                );
            }
            println!("{} document(s)", docs.len());
        }
        DocsCommand::Requests { all } => {
            let store = Store::open(database)
                .await
                .with_context(|| format!("opening database {database}"))?;
            let status = (!all).then_some(argent_store::DocRequestStatus::Pending);
            let reqs = store.document_requests(status, None).await?;
            for r in &reqs {
                let from = r
                    .from_version
                    .map_or_else(|| "-".to_string(), |v| v.to_string());
                println!(
                    "{}  {:<9} {} {} → {}{}  {}  by {}:{}  “{}”",
                    r.id,
                    r.kind.as_str(),
                    r.name,
                    from,
                    r.version,
                    if r.rollback { " (rollback)" } else { "" },
                    r.status.as_str(),
                    r.requested_role,
                    r.requested_by,
                    r.reason
                );
            }
            println!("{} request(s)", reqs.len());
        }
        DocsCommand::Validate { kind, file, name } => {
            let kind = DocKind::from(kind);
            let body = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let Some(name) = name.or_else(|| name_from_path(kind, &file)) else {
                bail!(
                    "cannot tell the document's name from {}; give --name",
                    file.display()
                );
            };
            let errors = validate_document(kind, &name, &body);
            if errors.is_empty() {
                println!("ok  {} ({kind} {name})", file.display());
                return Ok(());
            }
            for e in &errors {
                match e.line {
                    Some(_) => println!("{}:{e}", file.display()),
                    None => println!("{}: {e}", file.display()),
                }
            }
            bail!(
                "{} problem(s) in {} ({kind} {name})",
                errors.len(),
                file.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_path() {
        let n = |k, p: &str| name_from_path(k, Path::new(p));
        assert_eq!(
            n(DocKind::Prompt, "/x/prompts/tone/firm.hbs").as_deref(),
            Some("tone/firm")
        );
        assert_eq!(
            n(DocKind::Prompt, "prompts/system.hbs").as_deref(),
            Some("system")
        );
        assert_eq!(n(DocKind::Prompt, "draft.hbs").as_deref(), Some("draft"));
        assert_eq!(
            n(DocKind::Policy, "../policies/us-consumer.toml").as_deref(),
            Some("us-consumer")
        );
    }
}
