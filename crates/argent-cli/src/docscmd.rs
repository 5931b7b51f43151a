//! `argent docs`: the prompts, policies and procedures the database holds as versioned
//! documents.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};

use argent_agent::documents::check_name;
use argent_agent::{DocumentSet, validate_document, validate_set};
use argent_store::{DocKind, DocStatus, DocumentVersion, Store};

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
    /// Write the database's documents as files: DIR/prompts/<name>.hbs,
    /// DIR/policies/<name>.toml, DIR/procedures/<name>.toml — the active version of each
    /// (or the one --version or --latest picks) — so a database version can be tested
    /// with `argent policy test --dir DIR/policies --tests policies/tests` or run with
    /// `--prompts DIR/prompts --policies DIR/policies`. DIR must be empty or not exist.
    Export {
        dir: PathBuf,
        /// Export this version of one document instead of its active one (repeatable):
        /// KIND:NAME=VERSION, e.g. policy:us-consumer=3 or prompt:tone/firm=2.
        #[arg(long = "version", value_name = "KIND:NAME=VERSION")]
        versions: Vec<String>,
        /// Export every document's newest version (drafts included) instead of its
        /// active one.
        #[arg(long, conflicts_with = "versions")]
        latest: bool,
    },
    /// Read DIR/prompts, DIR/policies and DIR/procedures (as `export` writes them) and
    /// save each file that differs from its document's newest version as a new draft
    /// (audited as `document.draft`). Never activates anything: a person activates drafts
    /// in the web. The set is validated first (with the drafts in place of the active
    /// versions); any problem refuses the whole import.
    Import {
        dir: PathBuf,
        /// The drafts' note (default: "imported from DIR").
        #[arg(long)]
        note: Option<String>,
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
        DocsCommand::Export {
            dir,
            versions,
            latest,
        } => {
            let store = open(database).await?;
            export(&store, &dir, &versions, latest).await?;
        }
        DocsCommand::Import { dir, note } => {
            let store = open(database).await?;
            let note = note.unwrap_or_else(|| format!("imported from {}", dir.display()));
            import(&store, &dir, &note, &crate::servecmd::cli_actor()).await?;
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

async fn open(database: &str) -> Result<Store> {
    Store::open(database)
        .await
        .with_context(|| format!("opening database {database}"))
}

fn kind_of(s: &str) -> Option<DocKind> {
    s.parse::<DocKind>().ok()
}

/// `KIND:NAME=VERSION` → (kind, name, version).
fn parse_pick(s: &str) -> Result<(DocKind, String, i64)> {
    let bad = || {
        anyhow::anyhow!(
            "--version {s}: expected KIND:NAME=VERSION (KIND prompt, policy or procedure), e.g. policy:us-consumer=3"
        )
    };
    let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
    let (name, version) = rest.rsplit_once('=').ok_or_else(bad)?;
    let kind = kind_of(kind).ok_or_else(bad)?;
    let version: i64 = version.parse().map_err(|_| bad())?;
    if name.is_empty() || version < 1 {
        return Err(bad());
    }
    Ok((kind, name.to_string(), version))
}

/// `argent docs export DIR`.
pub async fn export(store: &Store, dir: &Path, picks: &[String], latest: bool) -> Result<()> {
    if dir.exists() {
        let mut entries =
            std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} is not empty: export into a new directory (a stale file from an earlier export would pass for a document)",
                dir.display()
            );
        }
    }
    let summaries = store.documents().await?;
    if summaries.is_empty() {
        bail!("the database has no documents yet: the first run, resume or serve on it seeds them");
    }
    let mut chosen: Vec<DocumentVersion> = Vec::new();
    if latest {
        for d in &summaries {
            chosen.push(store.document(d.kind, &d.name, d.latest_version).await?);
        }
    } else {
        // The active versions, as the agent loads them (checked against the audit trail).
        chosen = store.active_documents().await?;
        for pick in picks {
            let (kind, name, version) = parse_pick(pick)?;
            let v = store
                .document(kind, &name, version)
                .await
                .with_context(|| format!("--version {pick}"))?;
            chosen.retain(|c| !(c.kind == kind && c.name == name));
            chosen.push(v);
        }
    }
    chosen.sort_by(|a, b| (a.kind.as_str(), &a.name).cmp(&(b.kind.as_str(), &b.name)));
    let set = DocumentSet::from_versions(&chosen);
    set.write_to(dir)
        .with_context(|| format!("writing the documents under {}", dir.display()))?;
    for v in &chosen {
        println!(
            "{:<9} {:<34} v{:<4} {:<7} {}",
            v.kind.as_str(),
            v.name,
            v.version,
            v.status.as_str(),
            &v.sha256[..12.min(v.sha256.len())]
        );
    }
    println!(
        "exported {} document(s) to {} (prompts/, policies/, procedures/)",
        chosen.len(),
        dir.display()
    );
    println!(
        "test the policies: argent policy test --dir {} --tests policies/tests",
        dir.join("policies").display()
    );
    Ok(())
}

/// Every `*.hbs` under `dir` (recursively), named by its path under `dir` without `.hbs`.
fn read_prompts(root: &Path, dir: &Path, out: &mut Vec<(DocKind, String, String)>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("reading {}", dir.display()))?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read_prompts(root, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "hbs") {
            let rel = path.strip_prefix(root).unwrap_or(&path).with_extension("");
            let name = rel
                .components()
                .map(|c| c.as_os_str().to_str())
                .collect::<Option<Vec<&str>>>()
                .map(|parts| parts.join("/"))
                .with_context(|| format!("{}: the name is not UTF-8", path.display()))?;
            out.push((DocKind::Prompt, name, read_text(&path)?));
        }
    }
    Ok(())
}

/// Every `*.toml` directly under `dir` (not `tests/`), named by its file stem.
fn read_tomls(kind: DocKind, dir: &Path, out: &mut Vec<(DocKind, String, String)>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("reading {}", dir.display()))?;
    entries.sort();
    for path in entries {
        if path.is_file() && path.extension().is_some_and(|e| e == "toml") {
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .with_context(|| format!("{}: the name is not UTF-8", path.display()))?
                .to_string();
            out.push((kind, name, read_text(&path)?));
        }
    }
    Ok(())
}

fn read_text(path: &Path) -> Result<String> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if let Some(p) = argent_agent::size_problem(usize::try_from(len).unwrap_or(usize::MAX)) {
        bail!("{}: {p}", path.display());
    }
    std::fs::read_to_string(path)
        .with_context(|| format!("reading {} (UTF-8 text)", path.display()))
}

fn file_of(dir: &Path, kind: DocKind, name: &str) -> PathBuf {
    match kind {
        DocKind::Prompt => dir.join("prompts").join(format!("{name}.hbs")),
        DocKind::Policy => dir.join("policies").join(format!("{name}.toml")),
        DocKind::Procedure => dir.join("procedures").join(format!("{name}.toml")),
    }
}

/// `argent docs import DIR`: drafts, never activations.
pub async fn import(store: &Store, dir: &Path, note: &str, author: &str) -> Result<()> {
    let mut files = Vec::new();
    let mut found_any = false;
    for (sub, kind) in [
        ("prompts", DocKind::Prompt),
        ("policies", DocKind::Policy),
        ("procedures", DocKind::Procedure),
    ] {
        let d = dir.join(sub);
        if !d.is_dir() {
            continue;
        }
        found_any = true;
        match kind {
            DocKind::Prompt => read_prompts(&d, &d, &mut files)?,
            _ => read_tomls(kind, &d, &mut files)?,
        }
    }
    if !found_any {
        bail!(
            "{} has none of prompts/, policies/, procedures/ (as `argent docs export` writes them)",
            dir.display()
        );
    }
    for (kind, name, _) in &files {
        if let Err(e) = check_name(*kind, name) {
            bail!("{}: {e}", file_of(dir, *kind, name).display());
        }
    }
    // What changes: each file that is not its document's newest version.
    let mut changed: Vec<(DocKind, String, String, Option<DocumentVersion>)> = Vec::new();
    let mut unchanged = 0;
    for (kind, name, body) in files {
        let newest = store
            .document_versions(kind, &name)
            .await?
            .into_iter()
            .next();
        if newest.as_ref().is_some_and(|v| v.body == body) {
            unchanged += 1;
            continue;
        }
        changed.push((kind, name, body, newest));
    }
    // The set the drafts would make, activated together: it must validate as a whole.
    let mut set = DocumentSet::from_versions(&store.active_documents().await?);
    for (kind, name, body, _) in &changed {
        set = set.with_document(*kind, name, body);
    }
    let problems: Vec<String> = validate_set(&set)
        .into_iter()
        .filter(|(k, n, _)| n.is_empty() || changed.iter().any(|(ck, cn, _, _)| ck == k && cn == n))
        .map(|(k, n, e)| {
            let file = if n.is_empty() {
                dir.display().to_string()
            } else {
                file_of(dir, k, &n).display().to_string()
            };
            match e.line {
                Some(_) => format!("{file}:{e}"),
                None => format!("{file}: {e}"),
            }
        })
        .collect();
    if !problems.is_empty() {
        for p in &problems {
            println!("{p}");
        }
        bail!(
            "{} problem(s): nothing imported (the database is unchanged)",
            problems.len()
        );
    }
    for (kind, name, body, newest) in &changed {
        let v = store
            .create_document_version(*kind, name, body, author, Some(note))
            .await
            .with_context(|| format!("saving {} {name} as a draft", kind.as_str()))?;
        let active = if newest.is_some() {
            ""
        } else {
            " (a new document: nothing active yet)"
        };
        println!(
            "drafted {:<9} {:<34} v{}{active}",
            kind.as_str(),
            name,
            v.version
        );
        debug_assert_eq!(v.status, DocStatus::Draft);
    }
    println!(
        "{} draft(s) saved, {unchanged} unchanged; nothing is active until a manager or admin activates it (web: /documents)",
        changed.len()
    );
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
