//! Prompts are handlebars templates under `prompts/`, rendered in strict mode: a variable
//! the template names but the context lacks is an error, never an empty string.
//!
//! Layout: `system.hbs`, `user_inbound.hbs`, `user_step.hbs`, and one partial per tier
//! (`tier/<tier>.hbs`), tone (`tone/<tone>.hbs`), procedure step (`step/<step>.hbs`) and
//! required footer (`disclosure/<jurisdiction>-<initial|subsequent>.hbs`). The agent picks
//! the partials for the account and renders them into the system prompt.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use handlebars::Handlebars;
use serde::Serialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

pub(crate) mod shape;

pub use shape::{Include, MAX_NESTING, Shape, ShapeProblem, shape};

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
    /// Something a template may not do (nest too deep, include itself, …), where it is.
    #[error("{path}:{line}:{column}: {message}")]
    Shape {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

/// How deep `{{> partial}}` includes may nest: a template may include one that includes
/// another, and so on, this many templates deep (the one rendered counts as the first).
pub const MAX_PARTIAL_DEPTH: usize = 8;

/// How deep rendering may recurse through includes, in levels: each block, subexpression
/// and include counts one, along the deepest chain of includes from a template.
pub const MAX_RENDER_DEPTH: usize = 64;

/// A problem with how the templates of a set include each other, in template `name` at
/// the include that causes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncludeProblem {
    pub name: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// What is wrong with how the templates whose shapes are given include each other: every
/// include that closes a cycle (a template that includes itself, directly or through
/// others), and every include from which the chain goes more than [`MAX_PARTIAL_DEPTH`]
/// templates or [`MAX_RENDER_DEPTH`] levels deep. An include of a template not in the set
/// is not judged here (rendering reports it). Linear in the set's templates and includes,
/// plus one search per reported cycle.
pub fn include_problems(shapes: &BTreeMap<String, Shape>) -> Vec<IncludeProblem> {
    let names: Vec<&String> = shapes.keys().collect();
    let index: BTreeMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    // Edges per template: (include, target).
    let edges: Vec<Vec<(&Include, usize)>> = shapes
        .values()
        .map(|s| {
            s.includes
                .iter()
                .filter_map(|inc| index.get(inc.name.as_str()).map(|t| (inc, *t)))
                .collect()
        })
        .collect();
    let n = names.len();
    let comp = components(&edges);
    let mut out = Vec::new();
    // Cycles: an include whose target is in its template's component closes one.
    for (u, es) in edges.iter().enumerate() {
        for (inc, v) in es {
            if comp[u] != comp[*v] || out.len() >= 100 {
                continue;
            }
            let mut chain = vec![names[u].as_str()];
            chain.extend(
                path(&edges, &comp, *v, u)
                    .into_iter()
                    .map(|i| names[i].as_str()),
            );
            out.push(IncludeProblem {
                name: names[u].clone(),
                line: inc.line,
                column: inc.column,
                message: format!(
                    "{{{{> {}}}}} includes this template again: {} (a template may not include \
                     itself, directly or through other templates)",
                    inc.name,
                    chain.join(" → ")
                ),
            });
        }
    }
    // Depth, over the templates in no cycle, sinks first: `levels` counts templates along
    // the longest chain of includes, `render` the levels of recursion; `via` is the
    // include each comes from.
    let mut size = vec![0_usize; n];
    let mut self_loop = vec![false; n];
    for (u, es) in edges.iter().enumerate() {
        size[comp[u]] += 1;
        self_loop[comp[u]] |= es.iter().any(|(_, v)| *v == u);
    }
    let cyclic: Vec<bool> = (0..n)
        .map(|u| size[comp[u]] > 1 || self_loop[comp[u]])
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|u| std::cmp::Reverse(comp[*u]));
    let mut levels = vec![1_usize; n];
    let mut render = vec![0_usize; n];
    let mut via: Vec<Option<usize>> = vec![None; n];
    for &u in &order {
        if cyclic[u] {
            continue;
        }
        render[u] = shapes[names[u]].max_depth;
        for (k, (inc, v)) in edges[u].iter().enumerate() {
            if cyclic[*v] {
                continue;
            }
            let deeper =
                (1 + levels[*v]).max(levels[u]) > levels[u] || inc.depth + render[*v] > render[u];
            levels[u] = levels[u].max(1 + levels[*v]);
            render[u] = render[u].max(inc.depth + render[*v]);
            if deeper {
                via[u] = Some(k);
            }
        }
    }
    for u in 0..n {
        if cyclic[u] || (levels[u] <= MAX_PARTIAL_DEPTH && render[u] <= MAX_RENDER_DEPTH) {
            continue;
        }
        let Some(k) = via[u] else { continue };
        let inc = edges[u][k].0;
        let mut chain = vec![names[u].as_str()];
        let mut w = u;
        while let Some(k) = via[w] {
            w = edges[w][k].1;
            chain.push(names[w].as_str());
            if chain.len() > n {
                break;
            }
        }
        let message = if levels[u] > MAX_PARTIAL_DEPTH {
            format!(
                "includes nest {} templates deep from here: {} (at most {MAX_PARTIAL_DEPTH})",
                levels[u],
                chain.join(" → ")
            )
        } else {
            format!(
                "rendering goes {} levels deep through the includes from here: {} (each block, \
                 subexpression and include counts; at most {MAX_RENDER_DEPTH})",
                render[u],
                chain.join(" → ")
            )
        };
        out.push(IncludeProblem {
            name: names[u].clone(),
            line: inc.line,
            column: inc.column,
            message,
        });
    }
    out
}

/// Strongly connected components (Kosaraju, without recursion): the component of each
/// node, numbered so that an edge between two components goes from a lower number to a
/// higher one.
fn components(edges: &[Vec<(&Include, usize)>]) -> Vec<usize> {
    let n = edges.len();
    // Finish order of a depth-first search.
    let mut seen = vec![false; n];
    let mut finished = Vec::with_capacity(n);
    for start in 0..n {
        if seen[start] {
            continue;
        }
        seen[start] = true;
        let mut stack = vec![(start, 0_usize)];
        while let Some((u, next)) = stack.last_mut() {
            let u = *u;
            if let Some((_, v)) = edges[u].get(*next) {
                *next += 1;
                if !seen[*v] {
                    seen[*v] = true;
                    stack.push((*v, 0));
                }
            } else {
                finished.push(u);
                stack.pop();
            }
        }
    }
    let mut reverse: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (u, es) in edges.iter().enumerate() {
        for (_, v) in es {
            reverse[*v].push(u);
        }
    }
    let mut comp = vec![usize::MAX; n];
    let mut count = 0;
    for &root in finished.iter().rev() {
        if comp[root] != usize::MAX {
            continue;
        }
        comp[root] = count;
        let mut stack = vec![root];
        while let Some(u) = stack.pop() {
            for &w in &reverse[u] {
                if comp[w] == usize::MAX {
                    comp[w] = count;
                    stack.push(w);
                }
            }
        }
        count += 1;
    }
    comp
}

/// The nodes after `from` on a shortest path from `from` to `to` within their component,
/// `from` first and `to` last (just `[to]` when they are one node).
fn path(edges: &[Vec<(&Include, usize)>], comp: &[usize], from: usize, to: usize) -> Vec<usize> {
    let mut prev: BTreeMap<usize, usize> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    let mut found = from == to;
    while let Some(u) = queue.pop_front() {
        if found {
            break;
        }
        for (_, v) in &edges[u] {
            if comp[*v] != comp[from] || *v == from || prev.contains_key(v) {
                continue;
            }
            prev.insert(*v, u);
            if *v == to {
                found = true;
                break;
            }
            queue.push_back(*v);
        }
    }
    let mut out = vec![to];
    let mut w = to;
    while w != from {
        match prev.get(&w) {
            Some(&p) => {
                out.push(p);
                w = p;
            }
            None => break,
        }
    }
    out.reverse();
    out
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
        // Every template's shape first (nothing is compiled before its nesting is known to
        // be bounded), then how they include each other: a set that could recurse without
        // bound, or deeper than the limits, is never built, so rendering never does.
        let path_of = |name: &str| dir.join(format!("{name}.hbs"));
        let mut shapes = BTreeMap::new();
        for (name, text) in files {
            match shape(text) {
                Ok(Some(s)) => {
                    shapes.insert(name.clone(), s);
                }
                // Does not parse: compiling reports where, without recursing.
                Ok(None) => {}
                Err(problems) => {
                    if let Some(p) = problems.into_iter().next() {
                        return Err(PromptError::Shape {
                            path: path_of(name),
                            line: p.line,
                            column: p.column,
                            message: p.message,
                        });
                    }
                }
            }
        }
        if let Some(p) = include_problems(&shapes).into_iter().next() {
            return Err(PromptError::Shape {
                path: path_of(&p.name),
                line: p.line,
                column: p.column,
                message: p.message,
            });
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
    fn a_set_whose_templates_include_each_other_in_a_cycle_is_never_built() {
        let map: BTreeMap<String, String> = [
            ("system", "Hello.\n{{> a}}"),
            ("a", "{{#if x}}{{> b}}{{/if}}"),
            ("b", "B: {{> a}}"),
        ]
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
        match PromptSet::from_map(map) {
            Err(e) => {
                let text = e.to_string();
                assert!(text.contains("a → b → a"), "{text}");
                assert!(text.contains("prompts/a.hbs:1:10"), "{text}");
            }
            // Rendering it recursed until the stack overflowed.
            Ok(set) => panic!(
                "built a cyclic set; rendering it gives {:?}",
                set.render("system", &serde_json::json!({"x": true}))
            ),
        }
    }

    #[test]
    fn include_chains_are_bounded_in_templates_and_levels() {
        let shapes = |texts: &[(&str, String)]| -> BTreeMap<String, Shape> {
            texts
                .iter()
                .map(|(n, t)| (n.to_string(), shape(t).unwrap().unwrap()))
                .collect()
        };
        // A chain as long as allowed is fine; one more template is not.
        let chain = |len: usize| -> Vec<(String, String)> {
            (1..=len)
                .map(|i| {
                    let text = if i < len {
                        format!("{{{{> t{}}}}}", i + 1)
                    } else {
                        "end".into()
                    };
                    (format!("t{i}"), text)
                })
                .collect()
        };
        let owned = |v: Vec<(String, String)>| -> BTreeMap<String, Shape> {
            v.iter()
                .map(|(n, t)| (n.clone(), shape(t).unwrap().unwrap()))
                .collect()
        };
        assert_eq!(include_problems(&owned(chain(MAX_PARTIAL_DEPTH))), vec![]);
        let problems = include_problems(&owned(chain(MAX_PARTIAL_DEPTH + 1)));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].name, "t1");
        assert!(problems[0].message.contains("t1 → t2"), "{problems:?}");
        // Few templates, each nesting deep around the next include: too many levels.
        let nest = |inner: &str| "{{#if x}}".repeat(30) + inner + &"{{/if}}".repeat(30);
        let deep = shapes(&[
            ("a", nest("{{> b}}")),
            ("b", nest("{{> c}}")),
            ("c", nest("")),
        ]);
        let problems = include_problems(&deep);
        assert!(
            problems
                .iter()
                .any(|p| p.name == "a" && p.message.contains("levels")),
            "{problems:?}"
        );
        assert!(problems.iter().all(|p| p.name != "c"), "{problems:?}");
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
