//! pest pairs → [`ast`](super::ast) nodes, and syntax errors → diagnostics.
//!
//! A file with syntax errors still yields a tree: after an error the parser
//! skips to the next top-level block (a line that opens a block in column 0:
//! a name, its labels, `{`) and carries on, so one run reports the errors of
//! every block. Like the rest of the syntax layer, recovery knows the shape
//! of a block, not which kinds of blocks exist.
//!
//! This file holds the entry points (`parse_file`, `parse_expression`) and
//! their limits; `recovery.rs` resumes after errors, `errors.rs` words
//! them, `builder.rs` builds the tree, `precedence.rs` orders operators,
//! `templates.rs` reads strings and heredocs.

mod builder;
mod errors;
mod precedence;
mod recovery;
mod templates;

use std::num::NonZeroUsize;

use pest::Parser as _;
use pest::iterators::Pair;

use super::ast::*;
use super::scanner::{self, MAX_NESTING};
use super::{FileId, Span};
use crate::diagnostics::{Code, Diagnostic};

use builder::Builder;
use errors::syntax_error;
use recovery::Region;
use templates::unescape;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/infra.pest"]
struct InfraParser;

/// Larger files are refused with a diagnostic rather than read.
pub const MAX_FILE_BYTES: usize = 64 << 20;
/// Binary and unary operators allowed in one expression (bounds tree depth).
pub const MAX_EXPRESSION_OPERATORS: usize = 512;
/// Syntax errors reported per file before giving up on it.
const MAX_SYNTAX_ERRORS_PER_FILE: usize = 20;

/// Parses one file. Never fails: problems come back as diagnostics next to
/// whatever part of the tree could be built.
pub fn parse_file(file: FileId, text: &str) -> (File, Vec<Diagnostic>) {
    let whole = Span::new(file, 0, text.len());
    let mut diagnostics = Vec::new();
    let empty = |comments| File {
        body: Body {
            items: Vec::new(),
            span: whole,
        },
        comments,
    };
    if text.len() > MAX_FILE_BYTES {
        diagnostics.push(
            Diagnostic::error(
                Code::FileTooLarge,
                format!("file is too large ({} bytes)", text.len()),
            )
            .with_label(Span::new(file, 0, 0), "this file")
            .with_help(format!(
                "split the configuration into several files of at most {} MiB",
                MAX_FILE_BYTES >> 20
            )),
        );
        return (empty(Vec::new()), diagnostics);
    }
    let scan = scanner::scan(file, text);
    if let Some(span) = scan.too_deep {
        diagnostics.push(
            Diagnostic::error(Code::TooDeep, "nesting is too deep")
                .with_label(span, format!("more than {MAX_NESTING} levels deep here"))
                .with_help("flatten the expression, e.g. move inner parts into `locals`"),
        );
        return (empty(scan.comments), diagnostics);
    }
    let mut items = Vec::new();
    let mut errors_left = MAX_SYNTAX_ERRORS_PER_FILE;
    let comment_starts_by_end: &[Comment] = &scan.comments;
    let masked = scan.masked(text);
    let mut region = Region {
        file,
        text,
        masked: &masked,
        comment_starts_by_end,
    };
    // A byte-order mark is not part of the configuration.
    let start = if text.starts_with('\u{FEFF}') { 3 } else { 0 };
    region.parse(
        start,
        text.len(),
        &mut items,
        &mut diagnostics,
        &mut errors_left,
    );
    if let Some(opener) = scan.unterminated_heredoc {
        // The heredoc ran to the end of the file; any "unexpected end of
        // file" is a consequence, not a second problem.
        diagnostics.retain(|d| {
            d.code != Code::Syntax
                || d.primary_span()
                    .is_none_or(|s| (s.start as usize) < text.len())
        });
        let marker = text[opener.range()]
            .trim_start_matches("<<")
            .trim_start_matches('-')
            .to_string();
        let mut diagnostic =
            Diagnostic::error(Code::Syntax, format!("heredoc `{marker}` is never closed"))
                .with_label(opener, "opened here")
                .with_help(format!("end it with a line holding only `{marker}`"));
        if let Some(line) = scan.marker_not_alone {
            let after = text[line.range()]
                .trim_start()
                .trim_start_matches(marker.as_str());
            diagnostic = diagnostic
                .with_label(line, format!("not a closing marker: `{marker}` is followed by `{after}`"))
                .with_help(format!(
                    "the closing `{marker}` must be alone on its line: move `{after}` to the next line"
                ));
        }
        diagnostics.push(diagnostic);
    }
    items.sort_by_key(|item| item.span().start);
    let file = File {
        body: Body { items, span: whole },
        comments: scan.comments,
    };
    (file, diagnostics)
}

/// Parses a lone expression (a `-var` value). `file` holds the text.
pub fn parse_expression(file: FileId, text: &str) -> Result<Expr, Diagnostic> {
    let scan = scanner::scan(file, text);
    if let Some(span) = scan.too_deep {
        return Err(Diagnostic::error(Code::TooDeep, "nesting is too deep")
            .with_label(span, format!("more than {MAX_NESTING} levels deep here")));
    }
    set_call_limit(text.len());
    let masked = scan.masked(text);
    match InfraParser::parse(Rule::expression_only, &masked) {
        Ok(mut pairs) => {
            let comment_starts_by_end: &[Comment] = &scan.comments;
            let mut builder = Builder {
                file,
                offset: 0,
                diagnostics: Vec::new(),
                text,
                comment_starts_by_end,
            };
            let only = pairs.next().expect("expression_only pair");
            let expression = only.into_inner().next().expect("expression pair");
            let expr = builder.expression(expression);
            match builder.diagnostics.into_iter().next() {
                Some(diagnostic) => Err(diagnostic),
                None => Ok(expr),
            }
        }
        Err(error) => Err(syntax_error(
            file,
            text,
            0,
            &masked,
            Rule::expression_only,
            &error,
        )),
    }
}

/// Parses the text of a template file (`templatefile`): literal text,
/// interpolations and directives. Brackets nested deeper than
/// [`MAX_NESTING`] anywhere in it are refused, as in a configuration.
pub fn parse_template(file: FileId, text: &str) -> Result<Vec<TemplatePart>, Diagnostic> {
    let mut depth = 0usize;
    for (at, byte) in text.bytes().enumerate() {
        match byte {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > MAX_NESTING {
            return Err(
                Diagnostic::error(Code::TooDeep, "nesting is too deep").with_label(
                    Span::new(file, at, at + 1),
                    format!("more than {MAX_NESTING} levels deep here"),
                ),
            );
        }
    }
    set_call_limit(text.len());
    match InfraParser::parse(Rule::template_file, text) {
        Ok(mut pairs) => {
            let mut builder = Builder {
                file,
                offset: 0,
                diagnostics: Vec::new(),
                text,
                comment_starts_by_end: &[],
            };
            let parts = builder.template_file(pairs.next().expect("template_file pair"));
            match builder.diagnostics.into_iter().next() {
                Some(diagnostic) => Err(diagnostic),
                None => Ok(parts),
            }
        }
        Err(error) => Err(syntax_error(
            file,
            text,
            0,
            text,
            Rule::template_file,
            &error,
        )),
    }
}

/// Bounds pest's work so that no input makes it run for ever.
fn set_call_limit(len: usize) {
    let limit = len.saturating_mul(400).saturating_add(100_000);
    pest::set_call_limit(NonZeroUsize::new(limit));
}

/// pest reports offsets in the masked text (see `scanner.rs`), where every
/// byte of a masked heredoc is one character. Masks start and end on ASCII,
/// so offsets agree with the source, but should the scanner and the grammar
/// ever disagree about a heredoc in malformed input, an offset could fall
/// inside a multi-byte character of the source: snap it back.
fn char_boundary_at_or_before(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Where the comment ending at `end` starts. Comments are in source order and
/// do not overlap, so their ends are sorted too.
fn comment_start_ending_at(comments: &[Comment], end: usize) -> Option<usize> {
    comments
        .binary_search_by_key(&end, |c| c.span.end as usize)
        .ok()
        .map(|index| comments[index].span.start as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use recovery::starts_block_header;

    /// The literal value of `x = <heredoc or string>` when it has no interpolation.
    fn value_of(source: &str) -> Vec<TemplatePart> {
        let (file, diagnostics) = parse_file(FileId(0), source);
        assert!(diagnostics.is_empty(), "{source:?}: {diagnostics:?}");
        match &file.body.items[0] {
            Item::Attribute(attribute) => match &attribute.value.kind {
                ExprKind::Template(parts) => parts.clone(),
                other => panic!("not a template: {other:?}"),
            },
            other => panic!("not an attribute: {other:?}"),
        }
    }

    fn literal(text: &str) -> Vec<TemplatePart> {
        vec![TemplatePart::Literal(text.to_string())]
    }

    #[test]
    fn heredocs_keep_their_text_exactly() {
        assert_eq!(
            value_of("x = <<EOT\nhello\n  world\nEOT\n"),
            literal("hello\n  world\n")
        );
        assert_eq!(
            value_of("x = <<EOT\nEOT\n"),
            Vec::<TemplatePart>::new(),
            "empty heredoc"
        );
        assert_eq!(
            value_of("x = <<EOT  \nline\nEOT"),
            literal("line\n"),
            "spaces after the opener, no newline at the end"
        );
        assert_eq!(
            value_of("x = <<EOT\nEOTX\nEOT_\n  EOT\n"),
            literal("EOTX\nEOT_\n"),
            "the marker must stand alone; it may be indented"
        );
        assert_eq!(
            value_of("x = <<EOT\r\na\r\nEOT\r\n"),
            literal("a\n"),
            "CRLF files give LF content"
        );
        assert_eq!(
            value_of("x = <<EOT\ncost: $${price} $5\nEOT\n"),
            literal("cost: ${price} $5\n")
        );
        assert_eq!(
            value_of("x = <<EOT\n# not a comment\n\"quotes\" \\n stay\nEOT\n"),
            literal("# not a comment\n\"quotes\" \\n stay\n")
        );
        assert_eq!(
            value_of("x = <<EOT\nnested <<EOF\nfi\nEOF\nEOT\n"),
            literal("nested <<EOF\nfi\nEOF\n"),
            "lines that are other words do not end it"
        );
    }

    #[test]
    fn indented_heredocs_strip_common_indentation() {
        assert_eq!(
            value_of("x = <<-EOT\n    a\n      b\n\n    c\n  EOT\n"),
            literal("a\n  b\n\nc\n")
        );
    }

    #[test]
    fn heredoc_interpolations_are_expressions() {
        // `}` inside a string inside `${…}` does not end the interpolation.
        let parts = value_of("x = <<-EOT\n  ${a}\n  mid ${ \"}\" } end\n  ${b}\n  EOT\n");
        assert_eq!(parts.len(), 6, "{parts:?}");
        assert!(matches!(parts[0], TemplatePart::Interpolation(_)));
        assert!(matches!(parts[2], TemplatePart::Interpolation(_)));
        assert!(matches!(parts[4], TemplatePart::Interpolation(_)));
        assert_eq!(parts[1], TemplatePart::Literal("\nmid ".into()));
        assert_eq!(parts[3], TemplatePart::Literal(" end\n".into()));
        assert_eq!(parts[5], TemplatePart::Literal("\n".into()));
    }

    #[test]
    fn a_heredoc_in_a_list_and_after_it() {
        let (file, diagnostics) =
            parse_file(FileId(0), "x = [<<EOT\none\nEOT\n, \"two\"]\ny = 1\n");
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        assert_eq!(file.body.items.len(), 2);
    }

    #[test]
    fn an_unclosed_heredoc_is_one_clear_error() {
        let (_, diagnostics) = parse_file(FileId(0), "locals {\n  x = <<EOT\n  text\n}\n");
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        assert_eq!(diagnostics[0].message, "heredoc `EOT` is never closed");
        assert_eq!(
            diagnostics[0].primary_span().map(|s| (s.start, s.end)),
            Some((15, 20))
        );
    }

    #[test]
    fn offsets_inside_masked_multibyte_text_never_slice_a_character() {
        // A heredoc opener where no expression may start, with multi-byte
        // text after it: pest fails on the opener, the parser recovers.
        for source in [
            "locals {\n  x = 1 <<EOT\n  é€😀\nEOT\n}\n",
            "x = \"a\" <<EOT\né\nEOT\n\"é\"",
            "<<EOT\n€\nEOT",
            "x = [<<-A\n  é\n  A\n, <<B\n😀${\"é\"}\nB\n]\n",
        ] {
            let (_, diagnostics) = parse_file(FileId(0), source);
            for diagnostic in &diagnostics {
                for label in &diagnostic.labels {
                    assert!(
                        source.is_char_boundary(label.span.start as usize),
                        "{source:?}: {diagnostic:?}"
                    );
                    assert!(
                        source.is_char_boundary(label.span.end as usize),
                        "{source:?}: {diagnostic:?}"
                    );
                }
            }
        }
        for position in 0..12 {
            assert!("é€😀".is_char_boundary(char_boundary_at_or_before("é€😀", position)));
        }
    }

    #[test]
    fn spans_exclude_trailing_whitespace_and_comments() {
        let source = "a = 1 + 2   # note\nb = \"x\" /* c */\n";
        let (file, diagnostics) = parse_file(FileId(0), source);
        assert!(diagnostics.is_empty());
        let spans: Vec<&str> = file
            .body
            .items
            .iter()
            .map(|item| &source[item.span().range()])
            .collect();
        assert_eq!(spans, ["a = 1 + 2", "b = \"x\""]);
    }

    #[test]
    fn recovery_finds_block_headers_by_their_shape() {
        for header in [
            "resource \"aws_vpc\" \"main\" {",
            "resource aws_vpc main {",
            "locals {",
            "strategy canary{",
            "anything_at_all \"x\" {\n",
        ] {
            assert!(starts_block_header(header), "{header}");
        }
        for not_header in [
            "  resource aws_vpc main {",
            "x = {",
            "resource aws_vpc main",
            "resource \"unclosed {",
            "}",
            "# resource a b {",
        ] {
            assert!(!starts_block_header(not_header), "{not_header}");
        }
    }

    #[test]
    fn operators_bind_by_precedence() {
        let (file, _) = parse_file(FileId(0), "x = !a || b && c == 1 + 2 * -3 ? y : z\n");
        let Item::Attribute(attribute) = &file.body.items[0] else {
            panic!()
        };
        assert_eq!(
            crate::format::tree_shape(&Body {
                items: vec![Item::Attribute(attribute.clone())],
                span: attribute.span
            }),
            "(attr x (? (|| (! a) (&& b (== c (+ 1 (* 2 (- 3)))))) y z))"
        );
    }
}
