//! Prompts and policies as documents: the texts an agent is built from, wherever they are
//! kept (files in the repository, versions in the database), their validation with
//! positions a person can act on, and line diffs between two versions.
//!
//! A prompt is named by its path under `prompts/` without `.hbs` (`system`, `tone/firm`,
//! `disclosure/us-consumer-initial`); a policy by its file name under `policies/` without
//! `.toml` (`us-consumer`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use serde::Serialize;

use argent_core::{AccountFacts, CustomerOffer, LimitOverride, LocalWindow, ValidationNotice};
use argent_core::{
    Case, CaseKind, CaseStatus, Channel, Contact, Currency, Customer, CustomerFlags, Invoice,
    Jurisdiction, Money, Payment, PromiseStatus, PromiseToPay, RiskSegment, Tier,
};
use argent_policy::{PolicyError, PolicySet, PriorContact};
use argent_store::{DocKind, DocumentVersion};

use crate::context::Account;
use crate::prompt::{PromptError, PromptSet, Shape, collect, include_problems, prompt_version};
use crate::run::{Trigger, render_run_prompts, tone};
use crate::{AgentError, policy_version};

/// The prompt templates and policy documents an agent is built from, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DocumentSet {
    /// Template name (`tone/firm`) → handlebars text.
    pub prompts: BTreeMap<String, String>,
    /// Policy name (`us-consumer`) → TOML text.
    pub policies: BTreeMap<String, String>,
    /// Procedure name (`standard`, and `assignment`) → TOML text.
    pub procedures: BTreeMap<String, String>,
}

impl DocumentSet {
    /// Every `*.hbs` under `prompts_dir` (recursively) and every `*.toml` directly under
    /// `policies_dir` (not `tests/`), as [`PromptSet::load`] and [`PolicySet::load_dir`]
    /// read them; and the procedures in the `procedures/` directory beside `policies_dir`,
    /// if there is one (see [`DocumentSet::from_dirs_with_procedures`]).
    pub fn from_dirs(prompts_dir: &Path, policies_dir: &Path) -> Result<DocumentSet, AgentError> {
        let procedures = policies_dir
            .parent()
            .map(|p| p.join("procedures"))
            .filter(|p| p.is_dir());
        DocumentSet::from_dirs_with_procedures(prompts_dir, policies_dir, procedures.as_deref())
    }

    /// As [`DocumentSet::from_dirs`], with the procedures (every `*.toml` directly under
    /// `procedures_dir`) from the directory given, or none.
    pub fn from_dirs_with_procedures(
        prompts_dir: &Path,
        policies_dir: &Path,
        procedures_dir: Option<&Path>,
    ) -> Result<DocumentSet, AgentError> {
        let mut prompts = BTreeMap::new();
        collect(prompts_dir, prompts_dir, &mut prompts)?;
        Ok(DocumentSet {
            prompts,
            policies: DocumentSet::read_policies(policies_dir)?,
            procedures: match procedures_dir {
                Some(d) => DocumentSet::read_policies(d)?,
                None => BTreeMap::new(),
            },
        })
    }

    pub(crate) fn read_policies(dir: &Path) -> Result<BTreeMap<String, String>, AgentError> {
        let entries = std::fs::read_dir(dir).map_err(|source| PolicyError::Io {
            file: dir.to_path_buf(),
            source,
        })?;
        let mut out = BTreeMap::new();
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if !(path.is_file() && path.extension().is_some_and(|e| e == "toml")) {
                continue;
            }
            let Some(name) = path.file_stem().map(|s| s.to_string_lossy().into_owned()) else {
                continue;
            };
            let text = std::fs::read_to_string(&path).map_err(|source| PolicyError::Io {
                file: path.clone(),
                source,
            })?;
            out.insert(name, text);
        }
        Ok(out)
    }

    /// The given versions' texts by kind and name (e.g. the database's active documents).
    /// Should two versions of one document be given, the later in the slice wins.
    pub fn from_versions(versions: &[DocumentVersion]) -> DocumentSet {
        let mut set = DocumentSet::default();
        for v in versions {
            set.insert(v.kind, &v.name, &v.body);
        }
        set
    }

    fn insert(&mut self, kind: DocKind, name: &str, body: &str) {
        let map = match kind {
            DocKind::Prompt => &mut self.prompts,
            DocKind::Policy => &mut self.policies,
            DocKind::Procedure => &mut self.procedures,
        };
        map.insert(name.to_string(), body.to_string());
    }

    /// This set with one document replaced (or added): e.g. the active documents with a
    /// draft in place.
    pub fn with_document(&self, kind: DocKind, name: &str, body: &str) -> DocumentSet {
        let mut set = self.clone();
        set.insert(kind, name, body);
        set
    }

    /// One document's text.
    pub fn get(&self, kind: DocKind, name: &str) -> Option<&str> {
        match kind {
            DocKind::Prompt => self.prompts.get(name),
            DocKind::Policy => self.policies.get(name),
            DocKind::Procedure => self.procedures.get(name),
        }
        .map(String::as_str)
    }

    /// Every document as `(kind, name, text)`, prompts, then policies, then procedures:
    /// what `Store::seed_documents` takes.
    pub fn entries(&self) -> Vec<(DocKind, String, String)> {
        let prompts = self
            .prompts
            .iter()
            .map(|(n, t)| (DocKind::Prompt, n.clone(), t.clone()));
        let policies = self
            .policies
            .iter()
            .map(|(n, t)| (DocKind::Policy, n.clone(), t.clone()));
        let procedures = self
            .procedures
            .iter()
            .map(|(n, t)| (DocKind::Procedure, n.clone(), t.clone()));
        prompts.chain(policies).chain(procedures).collect()
    }

    /// Writes the set as files, `dir/prompts/<name>.hbs`, `dir/policies/<name>.toml` and
    /// `dir/procedures/<name>.toml`, for code that takes directories (the eval runner);
    /// returns the prompt and policy directories (the procedures sit beside them).
    /// Refuses names that are not document names (so a name cannot escape `dir`).
    pub fn write_to(&self, dir: &Path) -> Result<(PathBuf, PathBuf), AgentError> {
        let io = |p: &Path, e: std::io::Error| AgentError::Io(format!("{}: {e}", p.display()));
        let prompts_dir = dir.join("prompts");
        let policies_dir = dir.join("policies");
        let procedures_dir = dir.join("procedures");
        for d in [&prompts_dir, &policies_dir, &procedures_dir] {
            std::fs::create_dir_all(d).map_err(|e| io(d, e))?;
        }
        for (kind, name, text) in self.entries() {
            check_name(kind, &name).map_err(AgentError::Io)?;
            let path = match kind {
                DocKind::Prompt => prompts_dir.join(format!("{name}.hbs")),
                DocKind::Policy => policies_dir.join(format!("{name}.toml")),
                DocKind::Procedure => procedures_dir.join(format!("{name}.toml")),
            };
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
            }
            std::fs::write(&path, text).map_err(|e| io(&path, e))?;
        }
        Ok((prompts_dir, policies_dir))
    }

    /// The prompts, compiled.
    pub fn prompt_set(&self) -> Result<PromptSet, PromptError> {
        PromptSet::from_map(self.prompts.clone())
    }

    /// The policies, loaded and validated (errors name `policies/<name>.toml`).
    pub fn policy_set(&self) -> Result<PolicySet, PolicyError> {
        PolicySet::from_sources(self.policies.iter().map(|(n, t)| (n.as_str(), t.as_str())))
    }

    /// The policies as packs compiled when first needed ([`argent_policy::Packs`]): only
    /// for documents validated in full before, as a database's active documents are.
    pub fn validated_packs(&self) -> Result<argent_policy::Packs, PolicyError> {
        argent_policy::Packs::from_validated_sources(
            self.policies.iter().map(|(n, t)| (n.as_str(), t.as_str())),
        )
    }

    /// The procedures, validated as a set (each document, the assignment naming existing
    /// procedures, every prompt a step names existing among the prompts): errors as
    /// `procedures/<name>.toml:line:column: problem`.
    pub fn procedure_set(&self) -> Result<argent_procedure::ProcedureSet, String> {
        self.procedure_set_versions(&BTreeMap::new())
    }

    /// [`DocumentSet::procedure_set`] with each procedure's version (1 where not given).
    pub fn procedure_set_versions(
        &self,
        versions: &BTreeMap<String, i64>,
    ) -> Result<argent_procedure::ProcedureSet, String> {
        let mut problems: Vec<(String, LineError)> = procedure_problems(self)
            .into_iter()
            .map(|(_, n, e)| (n, e))
            .collect();
        if problems.is_empty() {
            match argent_procedure::ProcedureSet::from_sources(self.procedures.iter().map(
                |(n, b)| {
                    (
                        n.as_str(),
                        versions.get(n).copied().unwrap_or(1),
                        b.as_str(),
                    )
                },
            )) {
                Ok(set) => return Ok(set),
                Err(ps) => problems.extend(ps.into_iter().map(|(n, p)| (n, line_error(p)))),
            }
        }
        Err(problems
            .iter()
            .map(|(n, e)| match e.line {
                Some(_) => format!("procedures/{n}.toml:{e}"),
                None => format!("procedures/{n}.toml: {e}"),
            })
            .collect::<Vec<_>>()
            .join("\n"))
    }

    /// What `agent.prompts.version()` is for an agent built from this set.
    pub fn prompt_version(&self) -> String {
        prompt_version(&self.prompts)
    }

    /// What `agent.policy_version` is for an agent built from this set.
    pub fn policy_version(&self) -> String {
        policy_version(&self.policies)
    }
}

/// Whether `name` can name a document of `kind`: `/`-separated segments (prompts; a policy
/// has one) of ASCII letters, digits, `-`, `_` and `.`, none empty or starting with a dot.
pub fn check_name(kind: DocKind, name: &str) -> Result<(), String> {
    let segments: Vec<&str> = name.split('/').collect();
    let ok_segment = |s: &&str| {
        !s.is_empty()
            && !s.starts_with('.')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if !segments.iter().all(ok_segment) || (kind != DocKind::Prompt && segments.len() != 1) {
        let what = match kind {
            DocKind::Prompt => {
                "a prompt name is a path like 'tone/firm': letters, digits, '-', '_' and '.', separated by '/'"
            }
            DocKind::Policy => {
                "a policy name is like 'us-consumer': letters, digits, '-', '_' and '.'"
            }
            DocKind::Procedure => {
                "a procedure name is like 'standard': letters, digits, '-', '_' and '.'"
            }
        };
        return Err(format!("'{name}' is not a {kind} name: {what}"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Validation.

/// One problem in a document, where it is: `line` and `column` are 1-based, `None` when
/// the problem is about the document as a whole (or its place could not be found).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LineError {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl LineError {
    fn whole(message: impl Into<String>) -> LineError {
        LineError {
            line: None,
            column: None,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for LineError {
    /// `line:column: message`, `line: message` or `message`, for appending to a file name.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{l}:{c}: {}", self.message),
            (Some(l), None) => write!(f, "{l}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

/// The largest document (prompt or policy) accepted, in bytes of UTF-8: 64 KiB. The shipped
/// prompts together are under 5 KiB and the largest policy under 10 KiB, so a collections
/// team's real documents fit with room to spare; a larger one is refused before it is
/// parsed (the web API answers 413).
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// The problem with a document of `len` bytes, if it is over [`MAX_DOCUMENT_BYTES`].
pub fn size_problem(len: usize) -> Option<String> {
    (len > MAX_DOCUMENT_BYTES).then(|| {
        format!(
            "the document is {len} bytes; at most {MAX_DOCUMENT_BYTES} bytes (64 KiB) are accepted"
        )
    })
}

/// The problems in one document on its own; empty means it is valid.
///
/// A policy: TOML syntax (with the position the parser gives), the JSON Schema and the
/// semantic checks (each placed at the line of the key it names), and its `id` must be its
/// name. A prompt: handlebars syntax, then a strict-mode render of the template in the
/// role its name gives it (`system`, `user_inbound`, `user_step`, a tier, tone, step or
/// disclosure partial) against sample accounts of every jurisdiction, tier and risk
/// segment, so a variable the agent does not provide is caught before activation. The
/// other templates are stood in for by empty ones; [`validate_in_set`] checks the draft
/// with the real ones.
///
/// Any text is safe to give it: a document over [`MAX_DOCUMENT_BYTES`] is refused unread,
/// nothing recurses without bound (nesting is checked before a template is compiled, and
/// includes before anything is rendered), and the work is linear in the text's size.
pub fn validate_document(kind: DocKind, name: &str, body: &str) -> Vec<LineError> {
    if let Some(e) = size_problem(body.len()) {
        return vec![LineError::whole(e)];
    }
    match kind {
        DocKind::Policy => validate_policy(name, body),
        DocKind::Procedure => validate_procedure(name, body),
        DocKind::Prompt => {
            if let Err(own) = prompt_syntax(name, body) {
                return own;
            }
            let set = stub_prompts().with_document(DocKind::Prompt, name, body);
            prompt_problems(&set)
                .into_iter()
                .filter(|(k, n, _)| *k == DocKind::Prompt && n == name)
                .map(|(_, _, e)| e)
                .collect()
        }
    }
}

/// The problems in `set` with `body` in place as document `(kind, name)`: that document's
/// own problems, plus problems of the set as a whole that it causes or leaves (a policy id
/// used twice, a template the agent needs and cannot find, a jurisdiction no policy
/// covers), reported against it. Empty means activating it leaves a working set.
pub fn validate_in_set(set: &DocumentSet, kind: DocKind, name: &str, body: &str) -> Vec<LineError> {
    let with = set.with_document(kind, name, body);
    validate_set(&with)
        .into_iter()
        .filter(|(k, n, _)| (*k == kind && n == name) || n.is_empty())
        .map(|(_, _, e)| e)
        .collect()
}

/// Every problem in a whole set, as `(kind, document name, problem)`; a problem of the set
/// as a whole (a missing template, an uncovered jurisdiction) has an empty name. Empty
/// means an agent built from the set works for every kind of account.
pub fn validate_set(set: &DocumentSet) -> Vec<(DocKind, String, LineError)> {
    let mut out = Vec::new();
    for (name, body) in &set.policies {
        let errors = match size_problem(body.len()) {
            Some(e) => vec![LineError::whole(e)],
            None => validate_policy(name, body),
        };
        for e in errors {
            out.push((DocKind::Policy, name.clone(), e));
        }
    }
    let policies_ok = out.is_empty();
    if policies_ok {
        match set.policy_set() {
            Ok(policies) => {
                for j in Jurisdiction::ALL {
                    if policies.for_jurisdiction(*j).is_none() {
                        out.push((
                            DocKind::Policy,
                            String::new(),
                            LineError::whole(format!(
                                "no policy covers jurisdiction {j}: the agent cannot work its accounts"
                            )),
                        ));
                    }
                }
            }
            Err(e) => {
                // Each document loads alone, so this is a problem between documents: an
                // id used twice. Blame the later file, at its id.
                let name = e
                    .file()
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let text = set.policies.get(&name).map_or("", String::as_str);
                let keys: Vec<&str> = e.problems().iter().map(|p| p.key.as_str()).collect();
                let positions = argent_policy::locate_keys(text, &keys);
                for (p, pos) in e.problems().iter().zip(positions) {
                    out.push((
                        DocKind::Policy,
                        name.clone(),
                        LineError {
                            line: pos.map(|(l, _)| l),
                            column: pos.map(|(_, c)| c),
                            message: p.to_string(),
                        },
                    ));
                }
            }
        }
    }
    out.extend(prompt_problems(set));
    out.extend(procedure_problems(set));
    if !set.procedures.is_empty()
        && out.iter().all(|(k, _, _)| *k != DocKind::Procedure)
        && let Err(ps) = argent_procedure::ProcedureSet::from_sources(
            set.procedures
                .iter()
                .map(|(n, b)| (n.as_str(), 1, b.as_str())),
        )
    {
        for (n, p) in ps {
            out.push((DocKind::Procedure, n, line_error(p)));
        }
    }
    out
}

fn line_error(p: argent_procedure::Problem) -> LineError {
    LineError {
        line: p.line,
        column: p.column,
        message: p.message,
    }
}

/// Each procedure document's own problems, and steps naming a prompt template the set
/// does not have.
fn procedure_problems(set: &DocumentSet) -> Vec<(DocKind, String, LineError)> {
    let mut out = Vec::new();
    for (name, body) in &set.procedures {
        for e in validate_procedure(name, body) {
            out.push((DocKind::Procedure, name.clone(), e));
        }
    }
    if out.is_empty() {
        let missing = argent_procedure::ProcedureSet::check_prompts(&set.procedures, |p| {
            set.prompts.contains_key(p)
        });
        for (n, p) in missing {
            out.push((DocKind::Procedure, n, line_error(p)));
        }
    }
    out
}

fn validate_procedure(name: &str, body: &str) -> Vec<LineError> {
    if let Err(e) = check_name(DocKind::Procedure, name) {
        return vec![LineError::whole(e)];
    }
    argent_procedure::validate(name, body)
        .into_iter()
        .map(line_error)
        .collect()
}

/// Every problem of the prompts of `set`: each template's own (size, name, syntax,
/// nesting); if there are none, how they include each other (cycles, depth); if that is
/// sound too, what rendering them as runs do shows.
fn prompt_problems(set: &DocumentSet) -> Vec<(DocKind, String, LineError)> {
    let mut out = Vec::new();
    let mut shapes = BTreeMap::new();
    for (name, body) in &set.prompts {
        match prompt_syntax(name, body) {
            Ok(shape) => {
                shapes.insert(name.clone(), shape);
            }
            Err(errors) => {
                out.extend(
                    errors
                        .into_iter()
                        .map(|e| (DocKind::Prompt, name.clone(), e)),
                );
            }
        }
    }
    if !out.is_empty() {
        return out;
    }
    for p in include_problems(&shapes) {
        out.push((
            DocKind::Prompt,
            p.name,
            LineError {
                line: Some(p.line),
                column: Some(p.column),
                message: p.message,
            },
        ));
    }
    if out.is_empty() {
        out.extend(render_check(set));
    }
    out
}

fn validate_policy(name: &str, body: &str) -> Vec<LineError> {
    if let Err(e) = check_name(DocKind::Policy, name) {
        return vec![LineError::whole(e)];
    }
    let mut out: Vec<LineError> = argent_policy::diagnose(body)
        .into_iter()
        .map(|d| LineError {
            line: d.line,
            column: d.column,
            message: d.to_string(),
        })
        .collect();
    if out.is_empty()
        && let Ok(policy) = argent_policy::Policy::from_toml_str(body, Path::new("policy.toml"))
        && policy.id != name
    {
        let id = policy.id;
        let pos = argent_policy::locate_key(body, "id");
        out.push(LineError {
            line: pos.map(|(l, _)| l),
            column: pos.map(|(_, c)| c),
            message: format!(
                "id: the policy id '{id}' must be the document's name '{name}' (policies/{name}.toml)"
            ),
        });
    }
    out
}

/// The size, the name, the nesting and the handlebars syntax of one template; its shape
/// (what it includes) when they are sound.
fn prompt_syntax(name: &str, body: &str) -> Result<Shape, Vec<LineError>> {
    if let Some(e) = size_problem(body.len()) {
        return Err(vec![LineError::whole(e)]);
    }
    if let Err(e) = check_name(DocKind::Prompt, name) {
        return Err(vec![LineError::whole(e)]);
    }
    // Nesting first: compiling recurses into subexpressions.
    let shape = match crate::prompt::shape(body) {
        Ok(shape) => shape,
        Err(problems) => {
            return Err(problems
                .into_iter()
                .map(|p| LineError {
                    line: Some(p.line),
                    column: Some(p.column),
                    message: p.message,
                })
                .collect());
        }
    };
    match handlebars::Template::compile(body) {
        Ok(_) => Ok(shape.unwrap_or_default()),
        Err(e) => {
            let pos = e.pos();
            // The parser notices an unclosed block only at the end of the text; point at
            // the block that was opened instead.
            let at_end = pos.is_some_and(|(l, _)| l >= body.trim_end().lines().count());
            if at_end && let Some((line, column, helper)) = unclosed_block(body) {
                return Err(vec![LineError {
                    line: Some(line),
                    column: Some(column),
                    message: format!(
                        "template does not parse: {{{{#{helper}}}}} is never closed (expected {{{{/{helper}}}}})"
                    ),
                }]);
            }
            Err(vec![LineError {
                line: pos.map(|(l, _)| l),
                column: pos.map(|(_, c)| c),
                message: format!("template does not parse: {}", e.reason()),
            }])
        }
    }
}

/// The innermost block helper (`{{#if …}}`, `{{#each …}}`) that is opened and not closed,
/// with its line and column: a best-effort scan of block tags, for error messages.
fn unclosed_block(body: &str) -> Option<(usize, usize, String)> {
    static TAG: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let tag = TAG
        .get_or_init(|| regex::Regex::new(r"\{\{~?\s*([#/])\s*([A-Za-z0-9_.\-]+)").ok())
        .as_ref()?;
    let mut open: Vec<(usize, &str)> = Vec::new();
    for c in tag.captures_iter(body) {
        let (Some(whole), Some(kind), Some(name)) = (c.get(0), c.get(1), c.get(2)) else {
            continue;
        };
        if kind.as_str() == "#" {
            open.push((whole.start(), name.as_str()));
        } else if open.last().is_some_and(|(_, n)| *n == name.as_str()) {
            open.pop();
        }
    }
    let (offset, name) = open.pop()?;
    let before = &body[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    Some((line, column, name.to_string()))
}

/// Every template the agent renders, empty: what a single template is checked among.
fn stub_prompts() -> DocumentSet {
    let mut set = DocumentSet::default();
    let mut names: Vec<String> = [
        "system",
        "user_inbound",
        "user_step",
        crate::compliance::COMPLIANCE_PROMPT,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    names.extend(Tier::ALL.iter().map(|t| format!("tier/{t}")));
    names.extend(
        SEGMENTS
            .iter()
            .map(|s| format!("tone/{}", tone(*s)))
            .collect::<BTreeSet<_>>(),
    );
    names.extend(
        [
            "inbound_reply",
            "overdue_notice",
            "pre_due_reminder",
            "formal_demand",
        ]
        .iter()
        .map(|s| format!("step/{s}")),
    );
    for j in Jurisdiction::ALL {
        for k in ["initial", "subsequent"] {
            names.push(format!("disclosure/{j}-{k}"));
        }
    }
    for n in names {
        set.prompts.insert(n, String::new());
    }
    set
}

const SEGMENTS: [RiskSegment; 4] = [
    RiskSegment::Low,
    RiskSegment::Medium,
    RiskSegment::High,
    RiskSegment::InReview,
];

/// The company name templates are rendered with during validation.
const SAMPLE_COMPANY: &str = "Argent Supplies";

/// Renders the prompts the way runs do, for sample accounts of every jurisdiction, tier
/// and risk segment, before and after the initial communication, for an inbound email and
/// every dunning step the set has a template for. Each template the agent renders on its
/// own (tier, tone, step and disclosure partials, `user_inbound`, `user_step`) is also
/// rendered alone, so one failing partial does not hide another. Problems are reported
/// once per template and position, with the first sample that showed them.
fn render_check(set: &DocumentSet) -> Vec<(DocKind, String, LineError)> {
    let prompts = match set.prompt_set() {
        Ok(p) => p,
        Err(PromptError::Empty(_)) => {
            return vec![(
                DocKind::Prompt,
                String::new(),
                LineError::whole("there are no prompt templates"),
            )];
        }
        // Syntax was checked before; anything else is reported as it is.
        Err(e) => {
            return vec![(
                DocKind::Prompt,
                String::new(),
                LineError::whole(e.to_string()),
            )];
        }
    };
    let mut found = Findings::default();
    let company = serde_json::json!({"company": SAMPLE_COMPANY});
    for name in set.prompts.keys() {
        let alone = if ["tier/", "tone/", "step/", "disclosure/"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            Some(company.clone())
        } else if name == "user_inbound" {
            Some(serde_json::json!({
                "from": "ann@mail.example", "subject": "Re: invoice",
                "body": "I will pay on Friday.", "received_at": "2026-11-20T15:00:00+00:00"
            }))
        } else if name == "user_step" {
            Some(serde_json::json!({"step_name": "overdue_notice"}))
        } else if name == crate::compliance::COMPLIANCE_PROMPT {
            // Rendered by the agent's content check, per jurisdiction.
            for j in Jurisdiction::ALL {
                let data =
                    serde_json::json!({"company": SAMPLE_COMPANY, "jurisdiction": j.as_str()});
                if let Err(e) = prompts.render(name, &data) {
                    found.add(e, &format!("rendering '{name}' for {j}"));
                }
            }
            None
        } else {
            None
        };
        if let Some(data) = alone
            && let Err(e) = prompts.render(name, &data)
        {
            found.add(e, &format!("rendering '{name}' on its own"));
        }
    }
    let steps: Vec<String> = set
        .prompts
        .keys()
        .filter_map(|n| n.strip_prefix("step/"))
        .filter(|s| *s != "inbound_reply")
        .map(str::to_string)
        .collect();
    let triggers = sample_triggers(&steps);
    let compact = [false]
        .into_iter()
        .chain(prompts.has(crate::budget::COMPACT_SYSTEM).then_some(true))
        .collect::<Vec<_>>();
    for j in Jurisdiction::ALL {
        for tier in Tier::ALL {
            for segment in SEGMENTS {
                for initial_sent in [false, true] {
                    // Fixed sample amounts: assembling cannot fail (no sum overflows).
                    let Ok(account) = sample_account(*j, *tier, segment, initial_sent) else {
                        continue;
                    };
                    for (what, trigger) in &triggers {
                        for compact in &compact {
                            if let Err(e) = render_run_prompts(
                                &prompts,
                                SAMPLE_COMPANY,
                                &account,
                                trigger,
                                *compact,
                            ) {
                                let context = format!(
                                    "for a sample {j} account, tier {tier}, segment {segment}, {}, on {what}{}",
                                    if initial_sent {
                                        "after the initial communication"
                                    } else {
                                        "initial communication"
                                    },
                                    if *compact { ", compact prompts" } else { "" }
                                );
                                found.add(e, &context);
                            }
                        }
                    }
                }
            }
        }
    }
    found.0
}

/// The triggers prompts are rendered for in validation and `argent prompt size`: an
/// inbound email, then each dunning step in `steps`.
pub(crate) fn sample_triggers(steps: &[String]) -> Vec<(String, Trigger)> {
    let mut triggers = vec![(
        "an inbound email".to_string(),
        Trigger::Inbound {
            from: "customer@mail.example".into(),
            subject: "Re: your invoice".into(),
            body: "Hello, I can pay half now and the rest next month.".into(),
            received_at: sample_now(),
            message_id: None,
            references: Vec::new(),
            mail: None,
        },
    )];
    for s in steps {
        triggers.push((
            format!("the dunning step {s}"),
            Trigger::Step { step: s.clone() },
        ));
    }
    triggers
}

#[derive(Default)]
struct Findings(Vec<(DocKind, String, LineError)>);

impl Findings {
    fn add(&mut self, e: PromptError, context: &str) {
        let (name, line, column, message) = match e {
            PromptError::Render {
                name,
                line,
                column,
                message,
                ..
            } => (name, line, column, message),
            PromptError::Missing(missing) => (
                String::new(),
                None,
                None,
                format!("the agent needs the prompt template '{missing}' and there is none"),
            ),
            other => (String::new(), None, None, other.to_string()),
        };
        let duplicate = self.0.iter().any(|(_, n, le)| {
            *n == name && le.line == line && le.column == column && le.message.starts_with(&message)
        });
        if !duplicate {
            self.0.push((
                DocKind::Prompt,
                name,
                LineError {
                    line,
                    column,
                    message: format!("{message} ({context})"),
                },
            ));
        }
    }
}

fn sample_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 15, 0, 0)
        .single()
        .unwrap_or_default()
}

/// Facts a sample account of `jurisdiction` would have, so a prompt is validated with the
/// `facts` entry of its context filled in.
fn sample_facts(jurisdiction: Jurisdiction, currency: Currency, today: NaiveDate) -> AccountFacts {
    let days_ago = |n: i64| today - Duration::days(n);
    let time = |h: u32| chrono::NaiveTime::from_hms_opt(h, 0, 0).unwrap_or_default();
    match jurisdiction {
        Jurisdiction::UsConsumer => AccountFacts {
            validation_notice: Some(ValidationNotice {
                sent_on: days_ago(60),
                channel: Channel::Letter,
            }),
            region: Some("IL".into()),
            inconvenient_times: vec![LocalWindow {
                from: time(12),
                to: time(13),
            }],
            no_workplace_contact: true,
            preferred_channel: Some(Channel::Email),
            ..AccountFacts::default()
        },
        Jurisdiction::UkConsumer => AccountFacts {
            region: Some("england".into()),
            acknowledged_on: Some(days_ago(400)),
            customer_offer: Some(CustomerOffer {
                amount_minor: 50_00,
                currency,
                every_days: 30,
                income_expenditure: true,
                received_on: days_ago(3),
            }),
            ..AccountFacts::default()
        },
        Jurisdiction::B2b => AccountFacts {
            litigation_authorised: true,
            limits: Some(LimitOverride {
                max_discount_bps: Some(500),
                max_installments: Some(4),
                note: Some("long-standing customer".into()),
                ..LimitOverride::default()
            }),
            ..AccountFacts::default()
        },
    }
}

/// A realistic account for rendering: six months of paid history, two overdue invoices
/// (one disputed, under an open dispute case), one not yet due, an open promise to pay and
/// earlier contacts; the risk segment as asked.
pub(crate) fn sample_account(
    jurisdiction: Jurisdiction,
    tier: Tier,
    segment: RiskSegment,
    initial_sent: bool,
) -> Result<Account, AgentError> {
    let (currency, tz, name, email) = match jurisdiction {
        Jurisdiction::UsConsumer => (
            Currency::USD,
            chrono_tz::America::Chicago,
            "Ann Lee",
            "ann@mail.example",
        ),
        Jurisdiction::UkConsumer => (
            Currency::GBP,
            chrono_tz::Europe::London,
            "Olivia Brown",
            "olivia@mail.example",
        ),
        Jurisdiction::B2b => (
            Currency::EUR,
            chrono_tz::Europe::Berlin,
            "Hansa Werkzeuge GmbH",
            "ap@hansa.example",
        ),
    };
    let now = sample_now();
    let today = now.date_naive();
    let id = "C-SAMPLE";
    let customer = Customer {
        id: id.into(),
        name: name.into(),
        tier,
        jurisdiction,
        time_zone: tz,
        contacts: vec![Contact {
            name: name.into(),
            email: Some(email.into()),
            phone: Some("+1 555 0100".into()),
            opted_out: vec![],
        }],
        flags: CustomerFlags::default(),
        facts: sample_facts(jurisdiction, currency, today),
    };
    let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or(today);
    let invoice = |number: &str, issued: NaiveDate, due: NaiveDate, minor: i64, disputed| Invoice {
        number: number.into(),
        customer_id: id.into(),
        issue_date: issued,
        due_date: due,
        amount: Money::new(minor, currency),
        disputed,
    };
    let mut invoices = Vec::new();
    let mut payments = Vec::new();
    for k in 0..6 {
        let issued = day("2026-03-02") + Duration::days(30 * k);
        let number = format!("INV-H{k}");
        invoices.push(invoice(
            &number,
            issued,
            issued + Duration::days(30),
            480_00,
            false,
        ));
        payments.push(Payment {
            id: format!("pay-{k}"),
            customer_id: id.into(),
            invoice_number: number,
            amount: Money::new(480_00, currency),
            received_on: issued + Duration::days(35),
        });
    }
    invoices.push(invoice(
        "INV-1042",
        day("2026-09-01"),
        day("2026-10-01"),
        1_250_00,
        false,
    ));
    invoices.push(invoice(
        "INV-1051",
        day("2026-09-15"),
        day("2026-10-15"),
        310_50,
        true,
    ));
    invoices.push(invoice(
        "INV-1090",
        day("2026-11-10"),
        day("2026-12-10"),
        720_00,
        false,
    ));
    // A partial payment on the oldest open invoice.
    payments.push(Payment {
        id: "pay-partial".into(),
        customer_id: id.into(),
        invoice_number: "INV-1042".into(),
        amount: Money::new(250_00, currency),
        received_on: day("2026-10-20"),
    });
    let cases = vec![Case {
        id: "CASE-7".into(),
        customer_id: id.into(),
        kind: CaseKind::Dispute,
        status: CaseStatus::Open,
        invoice_numbers: vec!["INV-1051".into()],
        disputed_amount: Some(Money::new(310_50, currency)),
        summary: "Says the goods arrived damaged.".into(),
        opened_at: now - Duration::days(12),
    }];
    let promises = vec![PromiseToPay {
        id: "PTP-3".into(),
        customer_id: id.into(),
        invoice_numbers: vec!["INV-1042".into()],
        amount: Money::new(500_00, currency),
        promised_date: day("2026-11-28"),
        created_at: now - Duration::days(3),
        status: PromiseStatus::Open,
    }];
    let contacts = vec![
        PriorContact {
            at: now - Duration::days(9),
            channel: Channel::Email,
            conversation: false,
        },
        PriorContact {
            at: now - Duration::days(3),
            channel: Channel::Phone,
            conversation: false,
        },
    ];
    let mut account = Account::assemble(
        customer,
        invoices,
        payments,
        cases,
        promises,
        contacts,
        initial_sent,
        now,
    )?;
    account.risk.segment = segment;
    Ok(account)
}

// ---------------------------------------------------------------------------------------
// Diffs.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffTag {
    Equal,
    Insert,
    Delete,
}

/// One line of a line diff. `old_line` / `new_line` are 1-based line numbers in the old
/// and new text (`None` for an inserted / deleted line); `text` is the line without its
/// line ending.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DiffLine {
    pub tag: DiffTag,
    pub old_line: Option<usize>,
    pub new_line: Option<usize>,
    pub text: String,
}

/// The line diff from `old` to `new` (Myers, by the `similar` crate), every line of both
/// texts in order: equal lines once, deletions before the insertions that replace them.
pub fn diff_lines(old: &str, new: &str) -> Vec<DiffLine> {
    let diff = similar::TextDiff::from_lines(old, new);
    diff.iter_all_changes().map(diff_line).collect()
}

fn diff_line(c: similar::Change<&str>) -> DiffLine {
    DiffLine {
        tag: match c.tag() {
            similar::ChangeTag::Equal => DiffTag::Equal,
            similar::ChangeTag::Insert => DiffTag::Insert,
            similar::ChangeTag::Delete => DiffTag::Delete,
        },
        old_line: c.old_index().map(|i| i + 1),
        new_line: c.new_index().map(|i| i + 1),
        text: c
            .value()
            .trim_end_matches('\n')
            .trim_end_matches('\r')
            .to_string(),
    }
}

/// One changed region of a line diff with its context lines, as in a unified diff:
/// `@@ -old_start,old_len +new_start,new_len @@` (1-based starts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DiffHunk {
    pub old_start: usize,
    pub old_len: usize,
    pub new_start: usize,
    pub new_len: usize,
    pub lines: Vec<DiffLine>,
}

impl DiffHunk {
    /// `@@ -12,7 +12,6 @@`.
    pub fn header(&self) -> String {
        format!(
            "@@ -{},{} +{},{} @@",
            self.old_start, self.old_len, self.new_start, self.new_len
        )
    }
}

/// The changed hunks of the line diff from `old` to `new`, each with up to `context`
/// unchanged lines before and after (hunks whose context would overlap are one); no hunk
/// when the texts are equal.
pub fn diff_hunks(old: &str, new: &str, context: usize) -> Vec<DiffHunk> {
    let diff = similar::TextDiff::from_lines(old, new);
    diff.grouped_ops(context)
        .into_iter()
        .filter_map(|group| {
            let (first, last) = (group.first()?, group.last()?);
            let old_range = first.old_range().start..last.old_range().end;
            let new_range = first.new_range().start..last.new_range().end;
            let lines = group
                .iter()
                .flat_map(|op| diff.iter_changes(op))
                .map(diff_line)
                .collect();
            Some(DiffHunk {
                old_start: old_range.start + 1,
                old_len: old_range.len(),
                new_start: new_range.start + 1,
                new_len: new_range.len(),
                lines,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(p: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
    }

    #[test]
    fn hunks_hold_the_changes_with_three_lines_of_context() {
        let old: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        let new = old
            .replace("line 5\n", "line five\n")
            .replace("line 16\n", "");
        let hunks = diff_hunks(&old, &new, 3);
        assert_eq!(hunks.len(), 2);
        assert_eq!(hunks[0].header(), "@@ -2,7 +2,7 @@");
        assert_eq!(hunks[0].lines.first().unwrap().text, "line 2");
        assert_eq!(hunks[0].lines.last().unwrap().text, "line 8");
        let changed: Vec<(&DiffTag, &str)> = hunks[0]
            .lines
            .iter()
            .filter(|l| l.tag != DiffTag::Equal)
            .map(|l| (&l.tag, l.text.as_str()))
            .collect();
        assert_eq!(
            changed,
            [
                (&DiffTag::Delete, "line 5"),
                (&DiffTag::Insert, "line five")
            ]
        );
        assert_eq!(hunks[1].header(), "@@ -13,7 +13,6 @@");
        // Changes closer than twice the context are one hunk; equal texts have none.
        let near = old.replace("line 5\n", "x\n").replace("line 9\n", "y\n");
        assert_eq!(diff_hunks(&old, &near, 3).len(), 1);
        assert!(diff_hunks(&old, &old, 3).is_empty());
    }

    fn shipped() -> DocumentSet {
        DocumentSet::from_dirs(&repo("prompts"), &repo("policies")).unwrap()
    }

    /// The 1-based number of the first line of `text` that satisfies `pred`.
    fn line_of(text: &str, pred: impl Fn(&str) -> bool) -> usize {
        text.lines().position(pred).unwrap() + 1
    }

    #[test]
    fn documents_give_the_versions_the_directories_give() {
        let docs = shipped();
        assert!(docs.prompts.contains_key("disclosure/us-consumer-initial"));
        assert!(docs.prompts.contains_key("tone/firm"));
        assert_eq!(
            docs.policies.keys().collect::<Vec<_>>(),
            ["b2b", "uk-consumer", "us-consumer"],
            "tests/ is not a policy"
        );
        let loaded = PromptSet::load(&repo("prompts")).unwrap();
        assert_eq!(docs.prompt_version(), loaded.version());
        assert_eq!(docs.prompt_set().unwrap().version(), loaded.version());
        let (_, policy_version) = crate::load_policies(&repo("policies")).unwrap();
        assert_eq!(docs.policy_version(), policy_version);
        assert_eq!(docs.policy_set().unwrap().policies.len(), 3);
        // A different text is a different version.
        let changed = docs.with_document(DocKind::Policy, "b2b", "id = 'b2b'");
        assert_ne!(changed.policy_version(), policy_version);
        assert_eq!(changed.prompt_version(), docs.prompt_version());
    }

    #[test]
    fn procedures_are_validated_with_the_prompts_and_procedures_they_name() {
        let docs = shipped();
        let problems: Vec<_> = validate_set(&docs)
            .into_iter()
            .filter(|(k, _, _)| *k == DocKind::Procedure)
            .collect();
        assert!(problems.is_empty(), "{problems:?}");
        let body = docs.procedures["standard"].replace("step/due_today", "step/nope");
        let errors = validate_in_set(&docs, DocKind::Procedure, "standard", &body);
        let line = line_of(&body, |l| l.contains("step/nope"));
        assert!(
            errors
                .iter()
                .any(|e| e.message.contains("step/nope") && e.line == Some(line)),
            "{errors:?}"
        );
        let body = docs.procedures["standard"].replacen("min_gap_days", "min_gap", 1);
        let errors = validate_document(DocKind::Procedure, "standard", &body);
        let line = line_of(&body, |l| l.starts_with("min_gap ="));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].line, Some(line), "{errors:?}");
        let a = docs.procedures["assignment"].replace("\"gentle\"", "\"soft\"");
        assert!(validate_document(DocKind::Procedure, "assignment", &a).is_empty());
        let errors = validate_in_set(&docs, DocKind::Procedure, "assignment", &a);
        assert!(
            errors.iter().any(|e| e.message.contains("'soft'")),
            "{errors:?}"
        );
        assert!(docs.procedure_set().is_ok());
        assert!(
            docs.with_document(DocKind::Procedure, "assignment", &a)
                .procedure_set()
                .unwrap_err()
                .starts_with("procedures/assignment.toml:")
        );
    }

    #[test]
    fn a_set_round_trips_through_versions_and_files() {
        let docs = shipped();
        let entries = docs.entries();
        assert!(!docs.procedures.is_empty(), "procedures/ beside policies/");
        assert_eq!(
            entries.len(),
            docs.prompts.len() + docs.policies.len() + docs.procedures.len()
        );
        assert_eq!(entries[0].0, DocKind::Prompt);
        assert_eq!(entries.last().unwrap().0, DocKind::Procedure);
        let versions: Vec<DocumentVersion> = entries
            .iter()
            .enumerate()
            .map(|(i, (kind, name, body))| DocumentVersion {
                kind: *kind,
                name: name.clone(),
                version: i as i64 + 1,
                body: body.clone(),
                sha256: argent_store::body_sha256(body),
                status: argent_store::DocStatus::Active,
                author: "seed".into(),
                note: None,
                created_at: sample_now(),
                activated_at: None,
                activated_by: None,
            })
            .collect();
        assert_eq!(DocumentSet::from_versions(&versions), docs);

        let dir = tempfile::tempdir().unwrap();
        let draft = docs.with_document(DocKind::Prompt, "tone/firm", "Be firm.");
        let (p, q) = draft.write_to(dir.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(p.join("tone/firm.hbs")).unwrap(),
            "Be firm."
        );
        assert_eq!(DocumentSet::from_dirs(&p, &q).unwrap(), draft);
        assert_eq!(draft.get(DocKind::Prompt, "tone/firm"), Some("Be firm."));

        // A name cannot escape the directory.
        for bad in ["../evil", "/etc/x", "a//b", ".hidden"] {
            let set = DocumentSet::default().with_document(DocKind::Prompt, bad, "x");
            assert!(set.write_to(dir.path()).is_err(), "{bad}");
        }
        let set = DocumentSet::default().with_document(DocKind::Policy, "us/consumer", "x");
        assert!(set.write_to(dir.path()).is_err());
    }

    #[test]
    fn the_shipped_documents_are_valid_one_by_one_and_together() {
        let docs = shipped();
        for (kind, name, body) in docs.entries() {
            let errors = validate_document(kind, &name, &body);
            assert!(errors.is_empty(), "{kind} {name}: {errors:?}");
        }
        assert_eq!(validate_set(&docs), vec![]);
    }

    #[test]
    fn a_toml_syntax_error_is_reported_at_its_line() {
        let text = std::fs::read_to_string(repo("policies/us-consumer.toml")).unwrap();
        let target = line_of(&text, |l| l.starts_with("id = \"us.email-opt-out\""));
        let broken: Vec<String> = text
            .lines()
            .enumerate()
            .map(|(i, l)| {
                if i + 1 == target {
                    "id = \"us.email-opt-out".to_string()
                } else {
                    l.to_string()
                }
            })
            .collect();
        let errors = validate_document(DocKind::Policy, "us-consumer", &broken.join("\n"));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].line, Some(target), "{errors:?}");
        assert!(errors[0].column.is_some());
        assert!(errors[0].message.contains("not valid TOML"), "{errors:?}");
    }

    #[test]
    fn a_schema_violation_points_at_the_key_that_breaks_it() {
        let text = std::fs::read_to_string(repo("policies/us-consumer.toml")).unwrap();
        let target = line_of(&text, |l| l.starts_with("max_discount_percent"));
        let mut done = false;
        let changed: Vec<String> = text
            .lines()
            .map(|l| {
                if !done && l.starts_with("max_discount_percent") {
                    done = true;
                    "max_discount_percent = 150".to_string()
                } else {
                    l.to_string()
                }
            })
            .collect();
        let errors = validate_document(DocKind::Policy, "us-consumer", &changed.join("\n"));
        assert!(!errors.is_empty());
        for e in &errors {
            assert_eq!(e.line, Some(target), "{errors:?}");
            assert!(e.message.contains("max_discount_percent"), "{errors:?}");
        }
        assert!(
            errors.iter().any(|e| e.message.contains("150")),
            "{errors:?}"
        );
    }

    #[test]
    fn semantic_problems_and_names_are_placed_too() {
        let text = std::fs::read_to_string(repo("policies/us-consumer.toml")).unwrap();
        // A quiet-hours window that ends before it starts: schema-valid, semantically not.
        let target = line_of(&text, |l| l.starts_with("latest = \"21:00\""));
        let changed = text.replacen("latest = \"21:00\"", "latest = \"07:00\"", 1);
        let errors = validate_document(DocKind::Policy, "us-consumer", &changed);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].line, Some(target), "{errors:?}");
        assert!(errors[0].message.starts_with("quiet_hours[0].latest"));

        // The id must be the document's name.
        let errors = validate_document(DocKind::Policy, "us-consumer-2", &text);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            errors[0].line,
            Some(line_of(&text, |l| l.starts_with("id = ")))
        );

        // Two documents with one id: the set check names it.
        let docs = shipped().with_document(DocKind::Policy, "zz-copy", &text);
        let problems = validate_set(&docs);
        assert!(
            problems
                .iter()
                .any(|(k, n, e)| *k == DocKind::Policy && n == "zz-copy" && e.line.is_some()),
            "{problems:?}"
        );
        assert!(!validate_in_set(&shipped(), DocKind::Policy, "zz-copy", &text).is_empty());
    }

    #[test]
    fn an_unclosed_block_is_reported_at_its_line() {
        let body = "Tone: firm.\nBe direct.\n{{#if overdue}}\nAsk for a date.\n";
        let errors = validate_document(DocKind::Prompt, "tone/firm", body);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            (errors[0].line, errors[0].column),
            (Some(3), Some(1)),
            "{errors:?}"
        );
        assert!(
            errors[0].message.contains("{{#if}} is never closed"),
            "{errors:?}"
        );
        // Nested: the inner block is the unclosed one.
        let body = "{{#each invoices}}\n  {{#if this.paused}}paused\n{{/each}}\n";
        let errors = validate_document(DocKind::Prompt, "system", body);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].line, Some(2), "{errors:?}");
        // A template that does not close on one line is reported at that line.
        let errors = validate_document(DocKind::Prompt, "tone/firm", "a\nb {{ c\nd");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].line, Some(3), "{errors:?}");
    }

    #[test]
    fn a_variable_the_agent_does_not_provide_is_caught_by_rendering() {
        let system = std::fs::read_to_string(repo("prompts/system.hbs")).unwrap();
        let target = line_of(&system, |l| l.starts_with("- open cases:"));
        let changed: Vec<String> = system
            .lines()
            .enumerate()
            .map(|(i, l)| {
                if i + 1 == target {
                    format!("{l} (owner: {{{{customer.nonexistent}}}})")
                } else {
                    l.to_string()
                }
            })
            .collect();
        let body = changed.join("\n") + "\n";
        let errors = validate_document(DocKind::Prompt, "system", &body);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].line, Some(target), "{errors:?}");
        assert!(errors[0].column.is_some());
        assert!(
            errors[0].message.contains("customer.nonexistent"),
            "{errors:?}"
        );
        assert!(errors[0].message.contains("sample"), "{errors:?}");
        // In the shipped set, too.
        let in_set = validate_in_set(&shipped(), DocKind::Prompt, "system", &body);
        assert_eq!(in_set.len(), 1, "{in_set:?}");
        assert_eq!(in_set[0].line, Some(target));

        // A partial is rendered with what partials get: the company, not the account.
        let errors = validate_document(
            DocKind::Prompt,
            "tone/firm",
            "Firm.\nAddress {{customer.name}} by name.",
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].line, Some(2));
        let ok = validate_document(DocKind::Prompt, "tone/firm", "Firm, for {{company}}.");
        assert!(ok.is_empty(), "{ok:?}");
        // Variables inside blocks that only render for some accounts are still seen.
        let in_each = system.replace("{{this.days_past_due}}", "{{this.days_late}}");
        assert!(!validate_document(DocKind::Prompt, "system", &in_each).is_empty());
    }

    #[test]
    fn a_template_that_includes_itself_is_refused_at_the_include() {
        // At the top of the template, and inside a block (where handlebars' own check
        // does not see it and rendering recursed until the stack overflowed).
        for (body, line, column) in [
            ("Be firm.\nSay so: {{> tone/firm}}\n", 2, 9),
            (
                "Be firm.\n{{#if company}}\n  Again: {{> tone/firm}}\n{{/if}}\n",
                3,
                10,
            ),
        ] {
            let errors = validate_document(DocKind::Prompt, "tone/firm", body);
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_eq!(
                (errors[0].line, errors[0].column),
                (Some(line), Some(column)),
                "{errors:?}"
            );
            assert!(
                errors[0].message.contains("tone/firm → tone/firm"),
                "the chain is named: {errors:?}"
            );
        }
    }

    #[test]
    fn a_cycle_through_two_templates_is_refused_in_the_set() {
        let set = shipped().with_document(
            DocKind::Prompt,
            "tone/careful",
            "Careful.\n{{#if company}}{{> tone/firm}}{{/if}}\n",
        );
        let body = "Firm.\n\n  {{> tone/careful}}\n";
        // Alone the other template is an empty stand-in: no cycle, nothing wrong.
        assert_eq!(
            validate_document(DocKind::Prompt, "tone/firm", body),
            vec![]
        );
        let errors = validate_in_set(&set, DocKind::Prompt, "tone/firm", body);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            (errors[0].line, errors[0].column),
            (Some(3), Some(3)),
            "at the include that closes the cycle: {errors:?}"
        );
        assert!(
            errors[0]
                .message
                .contains("tone/firm → tone/careful → tone/firm"),
            "{errors:?}"
        );
        // The whole set names both ends of the cycle.
        let problems = validate_set(&set.with_document(DocKind::Prompt, "tone/firm", body));
        let names: BTreeSet<&str> = problems.iter().map(|(_, n, _)| n.as_str()).collect();
        assert!(
            names.contains("tone/firm") && names.contains("tone/careful"),
            "{problems:?}"
        );
    }

    #[test]
    fn partials_nest_only_so_deep() {
        // A chain of includes longer than the limit: tone/firm → p1 → p2 → … → pN.
        // p1 → p2 → … → pN, as long a chain as allowed.
        let mut set = shipped();
        let n = crate::prompt::MAX_PARTIAL_DEPTH;
        for i in 1..n {
            set = set.with_document(
                DocKind::Prompt,
                &format!("p{i}"),
                &format!("{{{{> p{}}}}}", i + 1),
            );
        }
        set = set.with_document(DocKind::Prompt, &format!("p{n}"), "end");
        assert_eq!(validate_set(&set), vec![]);
        // A template that includes p1 makes it one too long.
        let errors = validate_in_set(&set, DocKind::Prompt, "tone/firm", "Firm. {{> p1}}");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!((errors[0].line, errors[0].column), (Some(1), Some(7)));
        assert!(errors[0].message.contains("nest"), "{errors:?}");
        assert!(
            errors[0].message.contains("tone/firm → p1 → p2"),
            "{errors:?}"
        );
        // One level less is fine.
        let ok = validate_in_set(&set, DocKind::Prompt, "tone/firm", "Firm. {{> p2}}");
        assert_eq!(ok, vec![]);
    }

    #[test]
    fn includes_must_name_a_template() {
        // A name computed at render time could name anything, the template itself too;
        // inline partials are templates nobody can see in the list.
        for (body, what) in [
            ("Firm. {{> (lookup this \"company\")}}", "literally"),
            ("{{#*inline \"x\"}}{{> x}}{{/inline}}{{> x}}", "inline"),
        ] {
            let errors = validate_document(DocKind::Prompt, "tone/firm", body);
            assert!(!errors.is_empty(), "{body}");
            assert!(
                errors
                    .iter()
                    .any(|e| e.message.contains(what) && e.line == Some(1)),
                "{body}: {errors:?}"
            );
        }
    }

    /// A `tone/firm` draft of `bytes` bytes or a little less: paragraphs with a variable
    /// and a block each, as a long real prompt has.
    fn long_partial(bytes: usize) -> String {
        let para = "When you write for {{company}}, be brief.\n{{#if company}}Name the amount and the date; ask for a reply.{{/if}}\n\n";
        para.repeat(bytes / para.len())
    }

    /// Compiling costs, for each tag, time in proportion to the text before it (handlebars
    /// counts from the start to place every tag), so the validation of a template is linear
    /// in its size only because its tags are bounded: a draft with more is refused by the
    /// one-pass shape check, before anything compiles it (`prompt::shape::MAX_TAGS`).
    #[test]
    fn a_template_with_more_tags_than_the_bound_is_refused_before_compiling() {
        let max = crate::prompt::shape::MAX_TAGS;
        let at_the_bound = long_partial(64 * 1024);
        assert_eq!(
            validate_document(DocKind::Prompt, "tone/firm", &at_the_bound),
            vec![],
            "a 64 KiB prompt as dense in tags as the shipped ones validates"
        );
        let body = "{{company}} ".repeat(max + 1);
        let errors = validate_document(DocKind::Prompt, "tone/firm", &body);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].message.contains(&format!("at most {max}")),
            "{errors:?}"
        );
        assert_eq!(errors[0].line, Some(1));
    }

    #[test]
    fn a_set_missing_a_template_the_agent_needs_is_invalid() {
        let mut docs = shipped();
        docs.prompts.remove("disclosure/b2b-subsequent");
        let problems = validate_set(&docs);
        assert!(
            problems.iter().any(|(_, n, e)| n.is_empty()
                && e.message.contains("disclosure/b2b-subsequent")
                && e.message.contains("b2b")),
            "{problems:?}"
        );
        let mut docs = shipped();
        docs.policies.remove("b2b");
        let problems = validate_set(&docs);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].2.message.contains("jurisdiction b2b"));
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(check_name(DocKind::Prompt, "disclosure/us-consumer-initial").is_ok());
        assert!(check_name(DocKind::Policy, "us-consumer").is_ok());
        for bad in ["", "a/../b", "../x", "a b", "/x", "x/"] {
            assert!(check_name(DocKind::Prompt, bad).is_err(), "{bad}");
        }
        assert!(check_name(DocKind::Policy, "us/consumer").is_err());
        assert_eq!(
            validate_document(DocKind::Prompt, "../system", "x").len(),
            1
        );
    }

    #[test]
    fn diffs_number_lines_in_both_texts() {
        let old = "id = \"us\"\nmax = 10\nmin = 1\nend\n";
        let new = "id = \"us\"\nmax = 90\nmin = 1\nend\nextra";
        let d = diff_lines(old, new);
        let got: Vec<(DiffTag, Option<usize>, Option<usize>, &str)> = d
            .iter()
            .map(|l| (l.tag, l.old_line, l.new_line, l.text.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (DiffTag::Equal, Some(1), Some(1), "id = \"us\""),
                (DiffTag::Delete, Some(2), None, "max = 10"),
                (DiffTag::Insert, None, Some(2), "max = 90"),
                (DiffTag::Equal, Some(3), Some(3), "min = 1"),
                (DiffTag::Equal, Some(4), Some(4), "end"),
                (DiffTag::Insert, None, Some(5), "extra"),
            ]
        );
        assert!(
            diff_lines("a\r\nb\r\n", "a\r\nb\r\n")
                .iter()
                .all(|l| l.tag == DiffTag::Equal && !l.text.contains('\r'))
        );
        assert_eq!(diff_lines("", "").len(), 0);
        assert_eq!(
            serde_json::to_value(&d[1]).unwrap(),
            serde_json::json!({"tag": "delete", "old_line": 2, "new_line": null, "text": "max = 10"})
        );
    }
}
