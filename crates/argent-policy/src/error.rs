use std::fmt;
use std::path::PathBuf;

use thiserror::Error;

/// One problem in a document: the key path (e.g. `negotiation[0].max_discount_percent`,
/// empty for the whole document) and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyProblem {
    pub key: String,
    pub problem: String,
}

impl fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = if self.key.is_empty() {
            "(document)"
        } else {
            &self.key
        };
        write!(f, "{key}: {}", self.problem)
    }
}

/// Errors loading policies or policy tests. Operator-facing: they name the file, the key
/// and the problem.
#[derive(Debug, Error)]
pub enum PolicyError {
    #[error("{}: cannot read: {source}", file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render_invalid(file, problems))]
    Invalid {
        file: PathBuf,
        problems: Vec<KeyProblem>,
    },
}

fn render_invalid(file: &std::path::Path, problems: &[KeyProblem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("{}: {p}", file.display()));
    }
    out
}

impl PolicyError {
    pub(crate) fn invalid(
        file: impl Into<PathBuf>,
        key: impl Into<String>,
        problem: impl Into<String>,
    ) -> PolicyError {
        PolicyError::Invalid {
            file: file.into(),
            problems: vec![KeyProblem {
                key: key.into(),
                problem: problem.into(),
            }],
        }
    }

    /// The problems, for an `Invalid` error.
    pub fn problems(&self) -> &[KeyProblem] {
        match self {
            PolicyError::Invalid { problems, .. } => problems,
            PolicyError::Io { .. } => &[],
        }
    }

    pub fn file(&self) -> &std::path::Path {
        match self {
            PolicyError::Io { file, .. } | PolicyError::Invalid { file, .. } => file,
        }
    }
}

/// Turns a JSON pointer (`/negotiation/0/ceiling`) into a TOML-style key path
/// (`negotiation[0].ceiling`).
pub(crate) fn pointer_to_key(pointer: &str) -> String {
    let mut out = String::new();
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(&seg);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
        }
    }
    out
}

/// Line and column (1-based) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_become_key_paths() {
        assert_eq!(pointer_to_key(""), "");
        assert_eq!(
            pointer_to_key("/negotiation/0/ceiling/max_discount_percent"),
            "negotiation[0].ceiling.max_discount_percent"
        );
        assert_eq!(line_col("a\nbc\nd", 4), (2, 3));
    }
}
