//! The shape of a template before it is compiled: what it includes (`{{> name}}`), how deep
//! its blocks and subexpressions nest, and what prompts may not use. Read with the very
//! parser handlebars compiles with (`handlebars::grammar`, stack-guarded by pest), in one
//! pass over the text.
//!
//! Why before compiling: handlebars compiles subexpressions recursively, so a few thousand
//! nested `(…)` overflow the stack of the thread compiling them (a request thread in the
//! server), and renders blocks, subexpressions and includes recursively too. A template
//! whose nesting is within [`MAX_NESTING`] is compiled and rendered in bounded stack; how
//! templates include each other is then checked across the set ([`super::include_problems`]).

use handlebars::grammar::{HandlebarsParser, Rule};
use pest::Parser;

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

/// The shape of `body`, or what is wrong with it. `Ok(None)`: it does not parse (the
/// parser gives up before recursing deeper than its stack allows), and compiling it
/// reports why without recursing.
pub fn shape(body: &str) -> Result<Option<Shape>, Vec<ShapeProblem>> {
    let Ok(pairs) = HandlebarsParser::parse(Rule::handlebars, body) else {
        return Ok(None);
    };
    let mut pos = Cursor::new(body);
    let mut out = Shape::default();
    let mut problems = Vec::new();
    // Blocks open, each with the `{{else if}}` links of its chain so far.
    let mut blocks: Vec<usize> = Vec::new();
    let mut block_depth = 0_usize;
    // Ends of the subexpressions enclosing the current token.
    let mut subexprs: Vec<usize> = Vec::new();
    let mut deep_reported = false;
    for pair in pairs.flatten() {
        let span = pair.as_span();
        while subexprs.last().is_some_and(|end| *end <= span.start()) {
            subexprs.pop();
        }
        let rule = pair.as_rule();
        match rule {
            Rule::helper_block_start
            | Rule::decorator_block_start
            | Rule::partial_block_start
            | Rule::raw_block_start => {
                blocks.push(0);
                block_depth += 1;
            }
            Rule::invert_chain_tag => {
                if let Some(links) = blocks.last_mut() {
                    *links += 1;
                    block_depth += 1;
                }
            }
            Rule::helper_block_end
            | Rule::decorator_block_end
            | Rule::partial_block_end
            | Rule::raw_block_end => {
                let links = blocks.pop().unwrap_or(0);
                block_depth = block_depth.saturating_sub(1 + links);
            }
            Rule::subexpression => subexprs.push(span.end()),
            _ => {}
        }
        let depth = block_depth + subexprs.len();
        out.max_depth = out.max_depth.max(depth);
        if depth > MAX_NESTING && !deep_reported {
            deep_reported = true;
            let (line, column) = pos.at(span.start());
            problems.push(ShapeProblem {
                line,
                column,
                message: format!(
                    "blocks and subexpressions nest more than {MAX_NESTING} deep here \
                     (each {{{{#…}}}}, {{{{else if …}}}} and (…) inside another counts)"
                ),
            });
        }
        match rule {
            Rule::decorator_expression | Rule::decorator_block_start => {
                let (line, column) = pos.at(span.start());
                problems.push(ShapeProblem {
                    line,
                    column,
                    message: "decorators ({{*…}}, {{#*inline}}) are not allowed in prompts: \
                              put a shared piece in a template of its own and include it \
                              with {{> name}}"
                        .into(),
                });
            }
            Rule::partial_expression | Rule::partial_block_start => {
                let (line, column) = pos.at(span.start());
                let name = pair.clone().into_inner().find(|p| {
                    matches!(
                        p.as_rule(),
                        Rule::partial_identifier | Rule::reference | Rule::subexpression
                    )
                });
                match name {
                    Some(n) if n.as_rule() != Rule::subexpression => {
                        let name = n.as_str().to_string();
                        if name != PARTIAL_BLOCK {
                            // The include renders at the depth around it, and counts as a
                            // level of its own.
                            out.includes.push(Include {
                                name,
                                line,
                                column,
                                depth: depth + 1,
                            });
                        }
                    }
                    _ => problems.push(ShapeProblem {
                        line,
                        column,
                        message: "an include must name its template literally ({{> tone/firm}}): \
                                  a name computed while rendering could name any template, \
                                  this one too"
                            .into(),
                    }),
                }
            }
            _ => {}
        }
    }
    if problems.is_empty() {
        Ok(Some(out))
    } else {
        Err(problems)
    }
}

/// Line and column of byte offsets met in increasing order, walking the text once: what
/// pest's `Position::line_col` gives (a column counts characters; `\r\n` is one line
/// break), without counting from the start for each one.
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
        // Text that does not parse is left to the compiler.
        assert_eq!(shape("{{#if x}}"), Ok(None));
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

    #[test]
    fn the_cursor_agrees_with_pest() {
        let text = "ab\r\ncd\n\ré€x\r\n\n{{y}}";
        let mut cursor = Cursor::new(text);
        for (offset, _) in text.char_indices() {
            let expect = pest::Position::new(text, offset).unwrap().line_col();
            assert_eq!(cursor.at(offset), expect, "at {offset}");
        }
        assert_eq!(cursor.at(0), (1, 1));
    }
}
