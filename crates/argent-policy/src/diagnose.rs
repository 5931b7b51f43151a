//! Problems in a policy document's text, with the line and column they are on: for an
//! editor that shows a person where to look.
//!
//! TOML syntax errors carry their own position. JSON-Schema and semantic problems name a
//! key path (`negotiation[0].ceiling.max_discount_percent`); [`locate_key`] finds that key
//! in the text by walking the parsed document with its spans, falling back to the nearest
//! enclosing table or array entry it does find.

use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::{PolicyError, line_col};
use crate::policy::Policy;

/// One problem in a policy document. `line` and `column` are 1-based; `None` when the
/// problem is about the document as a whole or its key could not be found in the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The key path the problem is about (empty for the whole document or a syntax error).
    pub key: String,
    pub problem: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.problem)
        } else {
            write!(f, "{}: {}", self.key, self.problem)
        }
    }
}

/// Every problem [`Policy::from_toml_str`] finds in `text`, located in the text. Empty
/// means the document loads.
pub fn diagnose(text: &str) -> Vec<Diagnostic> {
    if let Err(e) = toml::from_str::<toml::Table>(text) {
        let (line, column) = match e.span() {
            Some(s) => {
                let (l, c) = line_col(text, s.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        return vec![Diagnostic {
            line,
            column,
            key: String::new(),
            problem: format!("not valid TOML: {}", e.message().trim_end()),
        }];
    }
    match Policy::from_toml_str(text, Path::new("policy.toml")) {
        Ok(_) => Vec::new(),
        Err(e @ PolicyError::Io { .. }) => vec![Diagnostic {
            line: None,
            column: None,
            key: String::new(),
            problem: e.to_string(),
        }],
        Err(e) => {
            let keys: Vec<&str> = e.problems().iter().map(|p| p.key.as_str()).collect();
            let positions = locate_keys(text, &keys);
            e.problems()
                .iter()
                .zip(positions)
                .map(|(p, pos)| Diagnostic {
                    line: pos.map(|(l, _)| l),
                    column: pos.map(|(_, c)| c),
                    key: p.key.clone(),
                    problem: p.problem.clone(),
                })
                .collect()
        }
    }
}

/// [`locate_key`] for many keys at once: the text is parsed once and walked once to turn
/// offsets into lines and columns, so a document with a problem on every line costs time
/// in proportion to its size, not its size times its problems.
pub fn locate_keys(text: &str, keys: &[&str]) -> Vec<Option<(usize, usize)>> {
    let Ok(parsed) = DeTable::parse(text) else {
        return vec![None; keys.len()];
    };
    let offsets: Vec<Option<usize>> = keys
        .iter()
        .map(|k| locate_in(parsed.get_ref(), k))
        .collect();
    let mut wanted: Vec<usize> = offsets.iter().flatten().copied().collect();
    wanted.sort_unstable();
    wanted.dedup();
    let found = line_cols(text, &wanted);
    offsets
        .into_iter()
        .map(|o| {
            o.and_then(|o| {
                wanted
                    .binary_search(&o)
                    .ok()
                    .and_then(|i| found.get(i).copied())
            })
        })
        .collect()
}

#[cfg(test)]
thread_local! {
    /// Bytes walked by [`line_cols`] on this thread (tests measure work by it).
    static WALKED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// What [`line_col`] gives for each of `offsets` (ascending), in one pass over the text.
fn line_cols(text: &str, offsets: &[usize]) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let (mut at, mut line, mut line_start) = (0_usize, 1_usize, 0_usize);
    offsets
        .iter()
        .map(|&offset| {
            let offset = offset.min(bytes.len());
            #[cfg(test)]
            WALKED.with(|w| w.set(w.get() + offset.saturating_sub(at)));
            while at < offset {
                if bytes[at] == b'\n' {
                    line += 1;
                    line_start = at + 1;
                }
                at += 1;
            }
            (line, offset - line_start + 1)
        })
        .collect()
}

/// Line and column (1-based) of the key path `key` (e.g. `negotiation[0].ceiling.id`) in
/// the TOML `text`: the key itself when it is written in the text, else the nearest
/// enclosing table or array entry that is. `None` for an empty path, text that does not
/// parse, or a path whose first key is not in the document.
pub fn locate_key(text: &str, key: &str) -> Option<(usize, usize)> {
    let parsed = DeTable::parse(text).ok()?;
    locate_in(parsed.get_ref(), key).map(|offset| line_col(text, offset))
}

/// One step of a key path: a key and the array indices after it (`bands[1]` → ("bands", [1])).
fn segments(key: &str) -> Option<Vec<(&str, Vec<usize>)>> {
    let mut out = Vec::new();
    for part in key.split('.') {
        let (name, rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        let mut indices = Vec::new();
        let mut rest = rest;
        while let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            indices.push(r[..end].parse().ok()?);
            rest = &r[end + 1..];
        }
        if !rest.is_empty() {
            return None;
        }
        out.push((name, indices));
    }
    Some(out)
}

/// The byte offset where `key` is written, walking `root` with spans.
fn locate_in(root: &DeTable<'_>, key: &str) -> Option<usize> {
    if key.is_empty() {
        return None;
    }
    let path = segments(key)?;
    let mut table: Option<&DeTable<'_>> = Some(root);
    let mut found: Option<usize> = None;
    for (name, indices) in path {
        let Some(t) = table else { break };
        let Some((k, v)) = t.iter().find(|(k, _)| k.get_ref().as_ref() == name) else {
            break;
        };
        found = Some(k.span().start);
        let mut value: &Spanned<DeValue<'_>> = v;
        let mut complete = true;
        for i in indices {
            match value.get_ref() {
                DeValue::Array(items) if i < items.len() => {
                    value = &items[i];
                    found = Some(value.span().start);
                }
                _ => {
                    complete = false;
                    break;
                }
            }
        }
        if !complete {
            break;
        }
        table = match value.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => None,
        };
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "id = \"x\"\n\
                       title = \"T\"\n\
                       \n\
                       [[negotiation]]\n\
                       id = \"a\"\n\
                       max_discount_percent = 10\n\
                       \n\
                       [negotiation.ceiling]\n\
                       max_discount_percent = 20\n\
                       \n\
                       [[negotiation]]\n\
                       id = \"b\"\n\
                       max_discount_percent = 150\n";

    #[test]
    fn keys_are_found_under_their_table_headers() {
        assert_eq!(locate_key(DOC, "id"), Some((1, 1)));
        assert_eq!(
            locate_key(DOC, "negotiation[0].max_discount_percent"),
            Some((6, 1))
        );
        assert_eq!(
            locate_key(DOC, "negotiation[0].ceiling.max_discount_percent"),
            Some((9, 1))
        );
        assert_eq!(
            locate_key(DOC, "negotiation[1].max_discount_percent"),
            Some((13, 1))
        );
        // A key that is not written falls back to the table it belongs in.
        let (line, _) = locate_key(DOC, "negotiation[1].approvers").unwrap();
        assert!((11..=12).contains(&line), "{line}");
        assert_eq!(locate_key(DOC, ""), None);
        assert_eq!(locate_key(DOC, "nothing.here"), None);
        assert_eq!(locate_key("id = ", "id"), None);
    }

    #[test]
    fn many_keys_are_located_in_one_pass_as_one_by_one() {
        let keys = [
            "negotiation[1].max_discount_percent",
            "id",
            "nothing.here",
            "negotiation[0].ceiling.max_discount_percent",
            "id",
        ];
        let batch = locate_keys(DOC, &keys);
        let single: Vec<_> = keys.iter().map(|k| locate_key(DOC, k)).collect();
        assert_eq!(batch, single);
        assert_eq!(locate_keys("id = ", &["id"]), vec![None]);
        let text = "a = 1\nb = \"é\"\n";
        let offsets: Vec<usize> = text
            .char_indices()
            .map(|(i, _)| i)
            .chain([text.len()])
            .collect();
        let expect: Vec<_> = offsets.iter().map(|o| line_col(text, *o)).collect();
        assert_eq!(line_cols(text, &offsets), expect);
    }

    #[test]
    fn diagnosing_a_document_with_a_problem_per_rule_is_linear() {
        // n rules, each with a value the schema refuses: n problems in a text of size ~n.
        let doc = |n: usize| {
            let mut t = String::from(
                "id = \"x\"\ntitle = \"T\"\nversion = \"1\"\njurisdiction = \"b2b\"\n",
            );
            for i in 0..n {
                t.push_str(&format!(
                    "\n[[stop]]\nid = \"s{i}\"\nwhen = \"bankrupt\"\nactions = [\"send_email\"]\neffect = \"explode\"\nmessage = \"m\"\n"
                ));
            }
            t
        };
        let work = |n: usize| {
            let before = WALKED.with(std::cell::Cell::get);
            let problems = diagnose(&doc(n));
            assert!(problems.len() >= n, "{}", problems.len());
            assert!(problems.iter().all(|p| p.line.is_some()));
            WALKED.with(std::cell::Cell::get) - before
        };
        let (small, large) = (work(200), work(400));
        assert!(large <= 2 * small + small / 8, "{small} → {large}");
    }

    #[test]
    fn key_paths_split_into_keys_and_indices() {
        assert_eq!(
            segments("late_payment.compensation[0].bands[12].below"),
            Some(vec![
                ("late_payment", vec![]),
                ("compensation", vec![0]),
                ("bands", vec![12]),
                ("below", vec![]),
            ])
        );
        assert_eq!(segments("a[x]"), None);
    }
}
