//! Prompts are handlebars templates under `prompts/`, rendered in strict mode: a variable
//! the template names but the context lacks is an error, never an empty string.
//!
//! Layout: `system.hbs`, `user_inbound.hbs`, `user_step.hbs`, and one partial per tier
//! (`tier/<tier>.hbs`), tone (`tone/<tone>.hbs`), procedure step (`step/<step>.hbs`) and
//! required footer (`disclosure/<jurisdiction>-<initial|subsequent>.hbs`). The agent picks
//! the partials for the account and renders them into the system prompt.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use handlebars::Handlebars;
use serde::Serialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PromptError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: template does not parse: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("no prompt template '{0}' (looked for prompts/{0}.hbs)")]
    Missing(String),
    #[error("rendering prompt '{name}': {reason}")]
    Render {
        name: String,
        reason: String,
        /// Where in `name`'s template rendering failed, when handlebars knows.
        line: Option<usize>,
        column: Option<usize>,
        /// What went wrong, without the position.
        message: String,
    },
    #[error("{0}: no templates found (is this the prompts/ directory?)")]
    Empty(PathBuf),
}

/// A loaded, versioned set of prompt templates.
pub struct PromptSet {
    hb: Handlebars<'static>,
    /// First 16 hex digits of SHA-256 over every template's path and text.
    version: String,
    /// Where the templates came from (a directory, or `prompts` for documents).
    dir: PathBuf,
}

impl std::fmt::Debug for PromptSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromptSet")
            .field("dir", &self.dir)
            .field("version", &self.version)
            .finish()
    }
}

/// Reads every `*.hbs` under `dir` (recursively) into `out`, named by its path relative to
/// `base` without the extension (`tone/firm`).
pub(crate) fn collect(
    dir: &Path,
    base: &Path,
    out: &mut BTreeMap<String, String>,
) -> Result<(), PromptError> {
    let entries = std::fs::read_dir(dir).map_err(|source| PromptError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| PromptError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if path.is_dir() {
            collect(&path, base, out)?;
        } else if path.extension().is_some_and(|e| e == "hbs") {
            let text = std::fs::read_to_string(&path).map_err(|source| PromptError::Io {
                path: path.clone(),
                source,
            })?;
            let rel = path.strip_prefix(base).unwrap_or(&path).with_extension("");
            let name = rel.to_string_lossy().replace('\\', "/");
            out.insert(name, text);
        }
    }
    Ok(())
}

/// The version of a set of templates: the first 16 hex digits of SHA-256 over every
/// template's name, a NUL, its text and a NUL, in name order.
pub fn prompt_version(templates: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    for (name, text) in templates {
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(text.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())[..16].to_string()
}

impl PromptSet {
    pub fn load(dir: &Path) -> Result<PromptSet, PromptError> {
        let mut files = BTreeMap::new();
        collect(dir, dir, &mut files)?;
        PromptSet::build(&files, dir)
    }

    /// Templates given by name (`system`, `tone/firm`, …) and text, e.g. from the database.
    /// The version is the one [`PromptSet::load`] gives a directory holding the same
    /// templates; errors name each template as the file `prompts/<name>.hbs`.
    pub fn from_map(templates: BTreeMap<String, String>) -> Result<PromptSet, PromptError> {
        PromptSet::build(&templates, Path::new("prompts"))
    }

    fn build(files: &BTreeMap<String, String>, dir: &Path) -> Result<PromptSet, PromptError> {
        if files.is_empty() {
            return Err(PromptError::Empty(dir.to_path_buf()));
        }
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        hb.register_escape_fn(handlebars::no_escape);
        for (name, text) in files {
            hb.register_template_string(name, text)
                .map_err(|e| PromptError::Parse {
                    path: dir.join(format!("{name}.hbs")),
                    reason: e.to_string(),
                })?;
        }
        let version = prompt_version(files);
        Ok(PromptSet {
            hb,
            version,
            dir: dir.to_path_buf(),
        })
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn has(&self, name: &str) -> bool {
        self.hb.has_template(name)
    }

    pub fn render<T: Serialize>(&self, name: &str, data: &T) -> Result<String, PromptError> {
        if !self.hb.has_template(name) {
            return Err(PromptError::Missing(name.to_string()));
        }
        self.hb.render(name, data).map_err(|e| PromptError::Render {
            name: name.to_string(),
            reason: e.to_string(),
            line: e.line_no,
            column: e.column_no,
            message: match e.reason() {
                handlebars::RenderErrorReason::MissingVariable(Some(var)) => {
                    format!("'{var}' is not a variable this template is given")
                }
                other => other.to_string(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(files: &[(&str, &str)]) -> (tempfile::TempDir, Result<PromptSet, PromptError>) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = dir.path().join(format!("{name}.hbs"));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let s = PromptSet::load(dir.path());
        (dir, s)
    }

    #[test]
    fn a_missing_variable_is_an_error_not_an_empty_string() {
        let (_d, s) = set(&[("system", "Hello {{customer.name}}, you owe {{balance}}.")]);
        let s = s.unwrap();
        let ok = s.render(
            "system",
            &serde_json::json!({"customer": {"name": "Ann"}, "balance": "USD 5.00"}),
        );
        assert_eq!(ok.unwrap(), "Hello Ann, you owe USD 5.00.");
        let err = s
            .render("system", &serde_json::json!({"customer": {"name": "Ann"}}))
            .unwrap_err();
        assert!(err.to_string().contains("balance"), "{err}");
        assert!(matches!(
            s.render("nope", &()),
            Err(PromptError::Missing(_))
        ));
    }

    #[test]
    fn version_changes_with_any_template() {
        let (_a, a) = set(&[("system", "x"), ("tier/small", "y")]);
        let (_b, b) = set(&[("system", "x"), ("tier/small", "y!")]);
        let (_c, c) = set(&[("system", "x"), ("tier/small", "y")]);
        assert_ne!(a.as_ref().unwrap().version(), b.unwrap().version());
        assert_eq!(a.unwrap().version(), c.unwrap().version());
    }

    #[test]
    fn a_template_that_does_not_parse_names_its_file() {
        let (_d, s) = set(&[("tone/firm", "{{#if x}}unclosed")]);
        let err = s.unwrap_err().to_string();
        assert!(err.contains("tone/firm.hbs"), "{err}");
    }

    #[test]
    fn shipped_prompts_load_and_have_every_partial() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../prompts");
        let s = PromptSet::load(&dir).unwrap();
        for name in [
            "system",
            "user_inbound",
            "user_step",
            "tier/strategic",
            "tier/standard",
            "tier/small",
            "tone/courteous",
            "tone/firm",
            "tone/careful",
            "step/inbound_reply",
            "step/overdue_notice",
        ] {
            assert!(s.has(name), "missing {name}");
        }
        for j in argent_core::Jurisdiction::ALL {
            for k in ["initial", "subsequent"] {
                assert!(
                    s.has(&format!("disclosure/{j}-{k}")),
                    "missing disclosure for {j} {k}"
                );
            }
        }
    }
}
