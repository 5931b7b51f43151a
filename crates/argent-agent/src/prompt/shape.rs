//! The shape of a template before it is compiled: what it includes (`{{> name}}`), how deep
//! its blocks and subexpressions nest, how many tags it holds, and what prompts may not
//! use. argent's own reading of handlebars' tags (comments, raw blocks, escapes, blocks,
//! `else if` links, includes, subexpressions), in one pass over the text: nothing here
//! recurses.
//!
//! Why before compiling: handlebars compiles subexpressions recursively, so a few thousand
//! nested `(…)` overflow the stack of the thread compiling them (a request thread in the
//! server), and renders blocks, subexpressions and includes recursively too. A template
//! whose nesting is within [`MAX_NESTING`] is compiled and rendered in bounded stack; how
//! templates include each other is then checked across the set ([`super::include_problems`]).

/// How deep blocks (`{{#if}}`, `{{#each}}`, each `{{else if}}` of a chain) and
/// subexpressions (`(helper …)`) may nest, together, at any point of one template.
pub const MAX_NESTING: usize = 32;

/// One `{{> name}}` (or `{{#> name}}…{{/name}}`) in a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Include {
    /// The template it names, exactly as handlebars looks it up.
    pub name: String,
    /// Where its `{{` is (1-based; the column counts characters).
    pub line: usize,
    pub column: usize,
    /// Blocks and subexpressions open around it.
    pub depth: usize,
}

/// Something a template may not do, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeProblem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// What a template that parses includes, and how deep it nests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    pub includes: Vec<Include>,
    /// The deepest nesting of blocks and subexpressions anywhere in it.
    pub max_depth: usize,
}

/// The partial block handlebars renders in place of `{{> @partial-block}}`: the content the
/// including template gave, not a template.
const PARTIAL_BLOCK: &str = "@partial-block";

/// How many `{{…}}` tags one prompt template may hold. Compiling a template costs time in
/// proportion to its size for each tag (handlebars locates every tag by counting from the
/// start of the text), so bounding the tags makes validation linear in the template's
/// size; the shipped templates hold at most a few dozen.
pub const MAX_TAGS: usize = 2_000;

/// What one pass over a template gathers.
struct Scan<'a> {
    pos: Cursor<'a>,
    problems: Vec<ShapeProblem>,
    deep_reported: bool,
}

impl Scan<'_> {
    fn problem(&mut self, at: usize, message: String) {
        let (line, column) = self.pos.at(at);
        self.problems.push(ShapeProblem {
            line,
            column,
            message,
        });
    }

    /// Reports (once per template) nesting deeper than [`MAX_NESTING`] at `at`.
    fn depth(&mut self, depth: usize, at: usize) {
        if depth > MAX_NESTING && !self.deep_reported {
            self.deep_reported = true;
            self.problem(
                at,
                format!(
                    "blocks and subexpressions nest more than {MAX_NESTING} deep here \
                     (each {{{{#…}}}}, {{{{else if …}}}} and (…) inside another counts)"
                ),
            );
        }
    }

    fn finish(self, shape: Option<Shape>) -> Result<Option<Shape>, Vec<ShapeProblem>> {
        if self.problems.is_empty() {
            Ok(shape)
        } else {
            Err(self.problems)
        }
    }
}

/// The first `pat` in `bytes` at or after `from`.
fn find(bytes: &[u8], from: usize, pat: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(pat.len())
        .position(|w| w == pat)
        .map(|p| p + from)
}

/// Where the tag whose text starts at `from` closes (`}}`, or `}}}` for a triple stash),
/// skipping string literals: the offset of the closing braces and their length.
fn tag_end(bytes: &[u8], from: usize, triple: bool) -> Option<(usize, usize)> {
    let close: &[u8] = if triple { b"}}}" } else { b"}}" };
    let mut i = from;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if bytes[i..].starts_with(close) => return Some((i, close.len())),
            None => {}
        }
        i += 1;
    }
    None
}

/// The deepest subexpression nesting in `bytes[from..to]` (strings skipped), added to
/// `base`; nesting past the bound is reported at the `(` that passes it.
fn parens(scan: &mut Scan, bytes: &[u8], from: usize, to: usize, base: usize) -> usize {
    let mut depth = 0_usize;
    let mut deepest = base;
    let mut quote: Option<u8> = None;
    for (i, &b) in bytes.iter().enumerate().take(to).skip(from) {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'(' => {
                depth += 1;
                deepest = deepest.max(base + depth);
                scan.depth(base + depth, i);
            }
            None if b == b')' => depth = depth.saturating_sub(1),
            None => {}
        }
    }
    deepest
}

/// The shape of `body`, or what is wrong with it, from one pass over the text (argent's
/// own reading of handlebars' tags: comments, raw blocks, escapes, blocks, `else if`
/// links, includes, subexpressions). `Ok(None)`: a tag is not closed, so the text does not
/// compile and the compiler says where; its nesting up to there has been checked.
pub fn shape(body: &str) -> Result<Option<Shape>, Vec<ShapeProblem>> {
    let bytes = body.as_bytes();
    let mut scan = Scan {
        pos: Cursor::new(body),
        problems: Vec::new(),
        deep_reported: false,
    };
    let mut out = Shape::default();
    // Blocks open, each with the `{{else if}}` links of its chain so far.
    let mut blocks: Vec<usize> = Vec::new();
    let mut block_depth = 0_usize;
    let mut tags = 0_usize;
    let mut i = 0;
    while let Some(start) = find(bytes, i, b"{{") {
        // `\{{` is text.
        if start > 0 && bytes[start - 1] == b'\\' {
            i = start + 2;
            continue;
        }
        tags += 1;
        if tags == MAX_TAGS + 1 {
            scan.problem(
                start,
                format!(
                    "a prompt template may hold at most {MAX_TAGS} {{{{…}}}} tags and this \
                     is one more: split it into templates included with {{{{> name}}}}"
                ),
            );
        }
        let rest = &bytes[start + 2..];
        let tilde = usize::from(rest.first() == Some(&b'~'));
        // Comments, whatever they contain: `{{!-- … --}}` and `{{! … }}`.
        if rest.get(tilde) == Some(&b'!') {
            let body_from = start + 3 + tilde;
            let end = if bytes.get(body_from..).is_some_and(|r| r.starts_with(b"--")) {
                let mut j = body_from + 2;
                loop {
                    let Some(d) = find(bytes, j, b"--") else {
                        break None;
                    };
                    let after = &bytes[d + 2..];
                    if after.starts_with(b"}}") {
                        break Some(d + 4);
                    }
                    if after.starts_with(b"~}}") {
                        break Some(d + 5);
                    }
                    j = d + 1;
                }
            } else {
                find(bytes, body_from, b"}}").map(|e| e + 2)
            };
            match end {
                Some(e) => {
                    i = e;
                    continue;
                }
                None => return scan.finish(None),
            }
        }
        // Raw blocks `{{{{name}}}} … {{{{/name}}}}`: the inside is text.
        if rest.starts_with(b"{{") {
            let Some(open_end) = find(bytes, start + 4, b"}}}}") else {
                return scan.finish(None);
            };
            let name = body
                .get(start + 4..open_end)
                .and_then(|t| t.split_whitespace().next())
                .unwrap_or("");
            let close = format!("{{{{{{{{/{name}}}}}}}}}");
            scan.depth(block_depth + 1, start);
            out.max_depth = out.max_depth.max(block_depth + 1);
            match find(bytes, open_end + 4, close.as_bytes()) {
                Some(c) => {
                    i = c + close.len();
                    continue;
                }
                None => return scan.finish(None),
            }
        }
        let triple = rest.first() == Some(&b'{');
        let inner_start = start + 2 + usize::from(triple);
        let Some((inner_end, close_len)) = tag_end(bytes, inner_start, triple) else {
            parens(&mut scan, bytes, inner_start, bytes.len(), block_depth);
            return scan.finish(None);
        };
        let tag = body.get(inner_start..inner_end).unwrap_or("");
        let tag = tag.strip_prefix('~').unwrap_or(tag);
        let tag = tag.strip_suffix('~').unwrap_or(tag).trim_start();
        let mut include: Option<&str> = None;
        if triple {
            // `{{{expr}}}`: an expression; nothing opens or closes.
        } else if let Some(after) = tag.strip_prefix('#') {
            blocks.push(0);
            block_depth += 1;
            if let Some(name) = after.strip_prefix('>') {
                include = Some(name);
            } else if after.starts_with('*') {
                scan.problem(start, DECORATORS.to_string());
            }
        } else if let Some(after) = tag.strip_prefix('^') {
            if !after.trim().is_empty() {
                // `{{^name}}` opens an inverted block; a bare `{{^}}` is an else.
                blocks.push(0);
                block_depth += 1;
            }
        } else if tag.starts_with('/') {
            let links = blocks.pop().unwrap_or(0);
            block_depth = block_depth.saturating_sub(1 + links);
        } else if let Some(name) = tag.strip_prefix('>') {
            include = Some(name);
        } else if tag.starts_with('*') {
            scan.problem(start, DECORATORS.to_string());
        } else if let Some(after) = tag.strip_prefix("else")
            && after.starts_with(char::is_whitespace)
            && !after.trim().is_empty()
            && let Some(links) = blocks.last_mut()
        {
            // `{{else if …}}`: a link of the chain, one deeper in the compiled template.
            *links += 1;
            block_depth += 1;
        }
        scan.depth(block_depth, start);
        out.max_depth = out.max_depth.max(block_depth);
        let deepest = parens(&mut scan, bytes, inner_start, inner_end, block_depth);
        out.max_depth = out.max_depth.max(deepest);
        if let Some(name) = include {
            let literal = name
                .split_whitespace()
                .next()
                .filter(|n| !n.starts_with(['(', '"', '\'', '[']));
            match literal {
                Some(PARTIAL_BLOCK) => {}
                Some(n) => {
                    let (line, column) = scan.pos.at(start);
                    // The include renders at the depth around it, and counts as a level of
                    // its own.
                    out.includes.push(Include {
                        name: n.to_string(),
                        line,
                        column,
                        depth: block_depth + 1,
                    });
                }
                None => scan.problem(
                    start,
                    "an include must name its template literally ({{> tone/firm}}): a name \
                     computed while rendering could name any template, this one too"
                        .into(),
                ),
            }
        }
        i = inner_end + close_len;
    }
    scan.finish(Some(out))
}

const DECORATORS: &str = "decorators ({{*…}}, {{#*inline}}) are not allowed in prompts: put a \
                          shared piece in a template of its own and include it with {{> name}}";

/// Line and column of byte offsets met in increasing order, walking the text once: what
/// handlebars' errors give (a column counts characters; `\r\n` is one line break),
/// without counting from the start for each one.
pub(crate) struct Cursor<'a> {
    text: &'a str,
    offset: usize,
    line: usize,
    column: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(text: &'a str) -> Cursor<'a> {
        Cursor {
            text,
            offset: 0,
            line: 1,
            column: 1,
        }
    }

    /// Line and column of `offset` (clamped to the text); an offset before the last one
    /// asked for starts again from the top.
    pub(crate) fn at(&mut self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        if offset < self.offset {
            *self = Cursor::new(self.text);
        }
        let Some(slice) = self.text.get(self.offset..offset) else {
            return (self.line, self.column);
        };
        let mut chars = slice.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' if chars.peek() == Some(&'\n') => {
                    chars.next();
                    self.line += 1;
                    self.column = 1;
                }
                '\n' => {
                    self.line += 1;
                    self.column = 1;
                }
                _ => self.column += 1,
            }
        }
        self.offset = offset;
        (self.line, self.column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn includes(body: &str) -> Vec<(String, usize, usize, usize)> {
        shape(body)
            .unwrap()
            .unwrap()
            .includes
            .into_iter()
            .map(|i| (i.name, i.line, i.column, i.depth))
            .collect()
    }

    #[test]
    fn includes_are_found_where_they_are_with_the_depth_around_them() {
        assert_eq!(
            includes(
                "a {{> tone/firm}}\n{{#if x}}\n  {{#> disclosure/b2b-initial}}fallback{{/disclosure/b2b-initial}}\n{{/if}}"
            ),
            vec![
                ("tone/firm".to_string(), 1, 3, 1),
                // Inside the `if` and its own block: rendered three levels down.
                ("disclosure/b2b-initial".to_string(), 3, 3, 3),
            ]
        );
        // Not includes: text that looks like one, a comment, an escaped tag, the block.
        assert_eq!(
            includes("{{!-- {{> a}} --}} \\{{> b}} {{#> c}}{{> @partial-block}}{{/c}}"),
            vec![("c".to_string(), 1, 29, 2)]
        );
        // Subexpressions around an include's arguments count.
        assert_eq!(
            shape("{{#if (eq (len x) 1)}}{{/if}}")
                .unwrap()
                .unwrap()
                .max_depth,
            3
        );
        // A tag that never closes is left to the compiler.
        assert_eq!(shape("text {{#if x"), Ok(None));
    }

    #[test]
    fn nesting_is_bounded_before_anything_recurses() {
        let deep = |n: usize| "{{#if x}}".repeat(n) + &"{{/if}}".repeat(n);
        assert!(shape(&deep(MAX_NESTING)).is_ok());
        let errs = shape(&deep(MAX_NESTING + 1)).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!((errs[0].line, errs[0].column), (1, 9 * MAX_NESTING + 1));
        // An else-if chain nests in the compiled template, and counts.
        let chain = "{{#if a}}".to_string() + &"{{else if a}}".repeat(MAX_NESTING) + "{{/if}}";
        assert!(shape(&chain).is_err());
        // Thousands of nested subexpressions (which overflowed the compiler's stack) are
        // refused; deeper still, the parser itself gives up.
        for n in [MAX_NESTING + 1, 1_000, 30_000] {
            let body = "{{not ".to_string() + &"(not ".repeat(n) + "x" + &")".repeat(n) + "}}";
            assert!(!matches!(shape(&body), Ok(Some(_))), "{n}");
        }
    }

    /// Line and column counted from the start, the slow way: `\n` (or `\r\n`) ends a
    /// line; a lone `\r` is a character like any other.
    fn line_col(text: &str, offset: usize) -> (usize, usize) {
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }

    #[test]
    fn the_cursor_agrees_with_counting_from_the_start() {
        let text = "ab\r\ncd\n\ré€x\r\n\n{{y}}";
        let mut cursor = Cursor::new(text);
        for (offset, _) in text.char_indices() {
            // Inside a `\r\n` pair is not a place anything starts.
            if text[..offset].ends_with('\r') && text[offset..].starts_with('\n') {
                continue;
            }
            assert_eq!(cursor.at(offset), line_col(text, offset), "at {offset}");
        }
        assert_eq!(cursor.at(0), (1, 1));
    }

    #[test]
    fn more_tags_than_the_bound_are_refused_where_the_first_extra_one_is() {
        let body = "{{company}}\n".repeat(MAX_TAGS + 1);
        let errs = shape(&body).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!((errs[0].line, errs[0].column), (MAX_TAGS + 1, 1));
        assert!(errs[0].message.contains(&MAX_TAGS.to_string()), "{errs:?}");
        assert!(shape(&"{{company}}\n".repeat(MAX_TAGS)).is_ok());
        // Comments, escaped tags and raw blocks' insides are text, not tags.
        let quiet =
            "{{!-- {{a}} {{b}} --}}\\{{c}} {{{{raw}}}}{{d}}{{{{/raw}}}}".repeat(MAX_TAGS / 2);
        assert!(shape(&quiet).is_ok());
    }

    #[test]
    fn unclosed_and_odd_tags_never_panic() {
        for body in [
            "{{",
            "{{!",
            "{{!--",
            "{{!-- x --",
            "{{{{",
            "{{{{raw}}}}",
            "{{{x}}",
            "{{#if \"}}",
            "{{> }}",
            "{{#> }}",
            "{{else if}}",
            "{{/}}",
            "\\{{",
            "{{~}}",
            "{{((((",
            "é{{é",
        ] {
            let _ = shape(body);
        }
        assert_eq!(
            shape("{{#if x}}"),
            Ok(Some(Shape {
                includes: vec![],
                max_depth: 1
            }))
        );
        assert_eq!(shape("{{#if (x"), Ok(None));
    }
}
