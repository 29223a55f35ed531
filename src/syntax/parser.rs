//! pest pairs → [`ast`](super::ast) nodes, and syntax errors → diagnostics.
//!
//! A file with syntax errors still yields a tree: after an error the parser
//! skips to the next top-level block (a line that opens a block in column 0:
//! a name, its labels, `{`) and carries on, so one run reports the errors of
//! every block. Like the rest of the syntax layer, recovery knows the shape
//! of a block, not which kinds of blocks exist.

use std::num::NonZeroUsize;

use pest::Parser as _;
use pest::iterators::Pair;

use super::ast::*;
use super::scanner::{self, MAX_NESTING};
use super::{FileId, Span};
use crate::diagnostics::{Code, Diagnostic};

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
        diagnostics.push(
            Diagnostic::error(Code::Syntax, format!("heredoc `{marker}` is never closed"))
                .with_label(opener, "opened here")
                .with_help(format!("end it with a line holding only `{marker}`")),
        );
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

/// Parsing of one file, region by region (to resume after an error).
struct Region<'t> {
    file: FileId,
    /// The source, for spans, names and literal text.
    text: &'t str,
    /// The source with heredoc literal text masked: what pest parses.
    masked: &'t str,
    comment_starts_by_end: &'t [Comment],
}

impl Region<'_> {
    fn parse(
        &mut self,
        start: usize,
        end: usize,
        items: &mut Vec<Item>,
        diagnostics: &mut Vec<Diagnostic>,
        errors_left: &mut usize,
    ) {
        let (file, text, comment_starts_by_end) =
            (self.file, self.text, self.comment_starts_by_end);
        let region = &self.masked[start..end];
        set_call_limit(region.len());
        match InfraParser::parse(Rule::file, region) {
            Ok(mut pairs) => {
                let mut builder = Builder {
                    file,
                    offset: start,
                    diagnostics: Vec::new(),
                    text,
                    comment_starts_by_end,
                };
                let file_pair = pairs.next().expect("file pair");
                for pair in file_pair.into_inner() {
                    if pair.as_rule() == Rule::body {
                        items.extend(builder.body(pair).items);
                    }
                }
                diagnostics.extend(builder.diagnostics);
            }
            Err(error) => {
                if *errors_left == 0 {
                    return;
                }
                *errors_left -= 1;
                let diagnostic = syntax_error(file, text, start, region, Rule::file, &error);
                let position = diagnostic
                    .primary_span()
                    .map(|span| span.start as usize)
                    .unwrap_or(start);
                diagnostics.push(diagnostic);
                // An error at the very end is an unclosed block or string: the
                // blocks before it are inside it, so there is nothing to resume.
                if position >= end {
                    return;
                }
                let block_start = top_level_line_at_or_before(text, start, position);
                if block_start > start {
                    self.parse(start, block_start, items, diagnostics, errors_left);
                }
                if let Some(next) = top_level_line_after(text, position, end) {
                    self.parse(next, end, items, diagnostics, errors_left);
                }
            }
        }
    }
}

/// Whether `text` starts with a block header in column 0: a name, then
/// labels (names or quoted strings), then `{` — `resource "a" "b" {`.
fn starts_block_header(text: &str) -> bool {
    let line = text.split('\n').next().unwrap_or("");
    let is_name_start = |c: char| c.is_ascii_alphabetic() || c == '_';
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if !line.starts_with(is_name_start) {
        return false;
    }
    let mut rest = line.trim_start_matches(is_name);
    loop {
        let trimmed = rest.trim_start_matches([' ', '\t']);
        if trimmed.starts_with('{') {
            return true;
        }
        if trimmed.len() == rest.len() {
            // A name must be followed by a space, a label or `{`.
            return false;
        }
        rest = if let Some(quoted) = trimmed.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => &quoted[end + 1..],
                None => return false,
            }
        } else if trimmed.starts_with(is_name_start) {
            trimmed.trim_start_matches(is_name)
        } else {
            return false;
        };
    }
}

fn top_level_line_at_or_before(text: &str, start: usize, position: usize) -> usize {
    let mut line_start = text[..position].rfind('\n').map(|at| at + 1).unwrap_or(0);
    loop {
        if line_start <= start {
            return start;
        }
        if starts_block_header(&text[line_start..]) {
            return line_start;
        }
        line_start = text[..line_start - 1]
            .rfind('\n')
            .map(|at| at + 1)
            .unwrap_or(0);
    }
}

fn top_level_line_after(text: &str, position: usize, end: usize) -> Option<usize> {
    let mut cursor = position;
    while let Some(newline) = text[cursor..end].find('\n') {
        cursor += newline + 1;
        if cursor < end && starts_block_header(&text[cursor..end]) {
            return Some(cursor);
        }
    }
    None
}

/// Turns a pest error into a diagnostic: the token found, what was expected.
fn syntax_error(
    file: FileId,
    text: &str,
    offset: usize,
    region: &str,
    rule: Rule,
    error: &pest::error::Error<Rule>,
) -> Diagnostic {
    let local = match error.location {
        pest::error::InputLocation::Pos(at) => at,
        pest::error::InputLocation::Span((at, _)) => at,
    };
    let mut expected: Vec<String> = Vec::new();
    if let pest::error::ErrorVariant::ParsingError { positives, .. } = &error.variant {
        for rule in positives {
            if let Some(description) = describe_rule(*rule) {
                push_unique(&mut expected, description.to_string());
            }
        }
    }
    // Re-parse with pest's detailed tracking to learn which literal tokens
    // (`=`, `}`, `]` …) would have been accepted; it is slower, so only now.
    pest::set_error_detail(true);
    if let Err(detailed) = InfraParser::parse(rule, region)
        && let Some(attempts) = detailed.parse_attempts()
        && attempts.max_position == local
    {
        for token in attempts.expected_tokens() {
            if let Some(description) = describe_literal(&token.to_string()) {
                push_unique(&mut expected, description);
            }
        }
    }
    pest::set_error_detail(false);
    expected.sort_by_key(|description| expected_order(description));

    let at = char_boundary_at_or_before(text, offset + local);
    let (found, found_len) = token_at(text, at);
    let span = Span::new(file, at, at + found_len);
    let expected_text = join_alternatives(&expected);
    let message = format!("syntax error: unexpected {found}");
    let label = if expected_text.is_empty() {
        "not expected here".to_string()
    } else {
        format!("expected {expected_text}")
    };
    let help = syntax_help(text, at, &found, &expected);
    Diagnostic::error(Code::Syntax, message)
        .with_label(span, label)
        .with_help(help)
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

fn expected_order(description: &str) -> (u8, String) {
    let rank = match description {
        "`=`" => 0,
        "a block or attribute" => 1,
        "an expression" => 2,
        "an operator" => 8,
        "end of file" => 9,
        _ => 5,
    };
    (rank, description.to_string())
}

fn join_alternatives(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

/// What the user sees for a rule pest expected; `None` hides internal rules.
fn describe_rule(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::attribute | Rule::block => "a block or attribute",
        Rule::identifier => "a name",
        Rule::quoted_label => "a label",
        Rule::block_open => "`{`",
        Rule::block_close => "`}`",
        Rule::close_bracket => "`]`",
        Rule::close_paren => "`)`",
        Rule::expression
        | Rule::number
        | Rule::name_or_call
        | Rule::for_list
        | Rule::for_object
        | Rule::list
        | Rule::object
        | Rule::heredoc
        | Rule::template
        | Rule::parenthesized => "an expression",
        Rule::op_or
        | Rule::op_and
        | Rule::op_eq
        | Rule::op_ne
        | Rule::op_le
        | Rule::op_ge
        | Rule::op_lt
        | Rule::op_gt
        | Rule::op_add
        | Rule::op_sub
        | Rule::op_mul
        | Rule::op_div
        | Rule::op_mod => "an operator",
        Rule::object_item | Rule::object_key => "an object key",
        Rule::kw_in => "`in`",
        Rule::kw_if => "`if`",
        Rule::EOI => "end of file",
        Rule::interpolation => "`${`",
        _ => return None,
    })
}

fn describe_literal(token: &str) -> Option<String> {
    match token {
        "=" | "}" | "]" | ")" | ":" | "?" | "," | "=>" | "{" | "\"" => Some(format!("`{token}`")),
        _ => None,
    }
}

/// The token at a byte offset, for "unexpected …", and its length.
fn token_at(text: &str, at: usize) -> (String, usize) {
    let rest = &text[at.min(text.len())..];
    let Some(first) = rest.chars().next() else {
        return ("end of file".to_string(), 0);
    };
    if first == '\n' || first == '\r' {
        return ("end of line".to_string(), 1);
    }
    if first.is_alphanumeric() || first == '_' {
        let word: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
            .take(40)
            .collect();
        return (format!("`{word}`"), word.len());
    }
    if first == '"' {
        return ("`\"`".to_string(), 1);
    }
    if first.is_control() {
        return (
            format!("character U+{:04X}", first as u32),
            first.len_utf8(),
        );
    }
    (format!("`{first}`"), first.len_utf8())
}

fn syntax_help(text: &str, at: usize, found: &str, expected: &[String]) -> String {
    let line_start = text[..at].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line_before = &text[line_start..at];
    let in_open_string = line_before.matches('"').count() % 2 == 1;
    if found == "end of line" && in_open_string {
        return "a quoted string must end on the line it starts: close it with `\"`, or use a heredoc (`<<EOT`) for several lines".into();
    }
    if found == "end of file" && expected.iter().any(|e| e == "`}`") {
        return "a block or object is not closed: add the missing `}`".into();
    }
    if found == "end of file" {
        return "the file ends in the middle of an expression: complete it".into();
    }
    if found == "`:`" && expected.iter().any(|e| e == "`=`") {
        return "attributes and object entries are written `name = value`".into();
    }
    if expected.iter().any(|e| e == "`]`") && !expected.iter().any(|e| e == "`=`") {
        return "a list or index is not closed: add `]` (or a `,` before the next element)".into();
    }
    if expected.iter().any(|e| e == "`)`") && !expected.iter().any(|e| e == "`=`") {
        return "a call or parenthesis is not closed: add `)` (or a `,` before the next argument)"
            .into();
    }
    if expected.iter().any(|e| e == "`=`") {
        return "an attribute is written `name = value`; a block is `kind label { … }`".into();
    }
    if expected.iter().any(|e| e == "an expression") {
        return "write a value here: a string, number, list, object, reference or function call"
            .into();
    }
    format!("remove {found} or insert what is expected before it")
}

/// Builds AST nodes from pest pairs of one region of a file.
struct Builder<'t> {
    file: FileId,
    offset: usize,
    diagnostics: Vec<Diagnostic>,
    /// The whole file, to trim spans.
    text: &'t str,
    /// Comment end offset → start offset, to trim comments off span ends.
    comment_starts_by_end: &'t [Comment],
}

impl Builder<'_> {
    /// The span of a pair, without the whitespace and comments pest's
    /// implicit skipping may leave at its end.
    fn span(&self, pair: &Pair<Rule>) -> Span {
        let span = pair.as_span();
        let start = char_boundary_at_or_before(self.text, self.offset + span.start());
        let mut end = char_boundary_at_or_before(self.text, self.offset + span.end()).max(start);
        loop {
            let trimmed = start + self.text[start..end].trim_end().len();
            end = match comment_start_ending_at(self.comment_starts_by_end, trimmed) {
                Some(comment_start) if comment_start >= start => comment_start,
                _ => {
                    end = trimmed;
                    break;
                }
            };
        }
        Span::new(self.file, start, end)
    }

    fn ident(&self, pair: Pair<Rule>) -> Ident {
        Ident {
            span: self.span(&pair),
            name: pair.as_str().to_string(),
        }
    }

    fn body(&mut self, pair: Pair<Rule>) -> Body {
        let span = self.span(&pair);
        let mut items = Vec::new();
        for item in pair.into_inner() {
            match item.as_rule() {
                Rule::attribute => items.push(Item::Attribute(self.attribute(item))),
                Rule::block => items.push(Item::Block(self.block(item))),
                _ => {}
            }
        }
        Body { items, span }
    }

    fn attribute(&mut self, pair: Pair<Rule>) -> Attribute {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let name = self.ident(inner.next().expect("attribute name"));
        let value = self.expression(inner.next().expect("attribute value"));
        Attribute { name, value, span }
    }

    fn block(&mut self, pair: Pair<Rule>) -> Block {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let kind = self.ident(inner.next().expect("block kind"));
        let mut labels = Vec::new();
        let mut header_span = kind.span;
        let mut body = None;
        for part in inner {
            match part.as_rule() {
                Rule::identifier => {
                    let label_span = self.span(&part);
                    header_span = header_span.to(label_span);
                    labels.push(Label {
                        value: part.as_str().to_string(),
                        quoted: false,
                        span: label_span,
                    });
                }
                Rule::quoted_label => {
                    let label_span = self.span(&part);
                    header_span = header_span.to(label_span);
                    let raw = part.as_str();
                    labels.push(Label {
                        value: unescape(&raw[1..raw.len() - 1]),
                        quoted: true,
                        span: label_span,
                    });
                }
                Rule::body => body = Some(self.body(part)),
                _ => {}
            }
        }
        Block {
            kind,
            labels,
            body: body.expect("block body"),
            span,
            header_span,
        }
    }

    /// Builds an expression from its flat pair: operands (prefix operators,
    /// a primary, steps) separated by binary operators, then optionally the
    /// two branches of `?:`. Precedence climbing uses explicit stacks, so
    /// long chains do not recurse.
    fn expression(&mut self, pair: Pair<Rule>) -> Expr {
        let span = self.span(&pair);
        let mut operands: Vec<Expr> = Vec::new();
        let mut operators: Vec<BinaryOp> = Vec::new();
        let mut pending = PendingOperand::default();
        let mut branches: Vec<Expr> = Vec::new();
        let mut operator_count = 0usize;
        for part in pair.into_inner() {
            // Stop before building a tree deeper than the limit: even
            // dropping one would recurse once per level.
            if operator_count > MAX_EXPRESSION_OPERATORS {
                return self.too_many_operators(span);
            }
            let op = match part.as_rule() {
                Rule::op_not => {
                    pending.prefix.push((UnaryOp::Not, self.span(&part)));
                    operator_count += 1;
                    continue;
                }
                Rule::op_neg => {
                    pending.prefix.push((UnaryOp::Negate, self.span(&part)));
                    operator_count += 1;
                    continue;
                }
                Rule::splat | Rule::index | Rule::get_attr => {
                    let step_span = self.span(&part);
                    pending.steps_end = Some(step_span.end);
                    pending.steps.push(self.step(part, step_span));
                    continue;
                }
                Rule::expression => {
                    if let Some(operand) = pending.finish() {
                        operands.push(operand);
                    }
                    branches.push(self.expression(part));
                    continue;
                }
                Rule::op_or => BinaryOp::Or,
                Rule::op_and => BinaryOp::And,
                Rule::op_eq => BinaryOp::Equal,
                Rule::op_ne => BinaryOp::NotEqual,
                Rule::op_lt => BinaryOp::Less,
                Rule::op_le => BinaryOp::LessEqual,
                Rule::op_gt => BinaryOp::Greater,
                Rule::op_ge => BinaryOp::GreaterEqual,
                Rule::op_add => BinaryOp::Add,
                Rule::op_sub => BinaryOp::Subtract,
                Rule::op_mul => BinaryOp::Multiply,
                Rule::op_div => BinaryOp::Divide,
                Rule::op_mod => BinaryOp::Modulo,
                _ => {
                    pending.primary = Some(self.primary(part));
                    continue;
                }
            };
            operator_count += 1;
            if let Some(operand) = pending.finish() {
                operands.push(operand);
            }
            while let Some(top) = operators.last().copied() {
                if top.precedence() >= op.precedence() {
                    operators.pop();
                    reduce(&mut operands, top);
                } else {
                    break;
                }
            }
            operators.push(op);
        }
        if let Some(operand) = pending.finish() {
            operands.push(operand);
        }
        if operator_count > MAX_EXPRESSION_OPERATORS {
            return self.too_many_operators(span);
        }
        while let Some(op) = operators.pop() {
            reduce(&mut operands, op);
        }
        let condition = operands.pop().unwrap_or(Expr {
            kind: ExprKind::Null,
            span,
        });
        if branches.len() == 2 {
            let otherwise = branches.pop().expect("else branch");
            let then = branches.pop().expect("then branch");
            return Expr {
                kind: ExprKind::Conditional {
                    condition: Box::new(condition),
                    then: Box::new(then),
                    otherwise: Box::new(otherwise),
                },
                span,
            };
        }
        condition
    }

    fn too_many_operators(&mut self, span: Span) -> Expr {
        self.diagnostics.push(
            Diagnostic::error(Code::TooDeep, "expression has too many operators")
                .with_label(
                    span,
                    format!("more than {MAX_EXPRESSION_OPERATORS} operators"),
                )
                .with_help("split the expression into `locals`"),
        );
        Expr {
            kind: ExprKind::Null,
            span,
        }
    }

    fn step(&mut self, pair: Pair<Rule>, span: Span) -> Step {
        match pair.as_rule() {
            Rule::splat => Step::Splat(span),
            Rule::index => {
                let index = pair.into_inner().next().expect("index expression");
                Step::Index(self.expression(index))
            }
            _ => {
                let name = pair.into_inner().next().expect("attribute name");
                Step::Attr(self.ident(name))
            }
        }
    }

    fn primary(&mut self, pair: Pair<Rule>) -> Expr {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::number => ExprKind::Number(pair.as_str().parse().unwrap_or(f64::NAN)),
            Rule::name_or_call => {
                let mut inner = pair.into_inner();
                let name = self.ident(inner.next().expect("name"));
                match inner.next() {
                    None => match name.name.as_str() {
                        "true" => ExprKind::Bool(true),
                        "false" => ExprKind::Bool(false),
                        "null" => ExprKind::Null,
                        _ => ExprKind::Variable(name),
                    },
                    Some(arguments) => {
                        let mut args = Vec::new();
                        let mut expand_final = false;
                        for part in arguments.into_inner() {
                            match part.as_rule() {
                                Rule::expand_final => expand_final = true,
                                Rule::expression => args.push(self.expression(part)),
                                _ => {}
                            }
                        }
                        ExprKind::Call {
                            name: Box::new(name),
                            args,
                            expand_final,
                        }
                    }
                }
            }
            Rule::parenthesized => {
                let inner = self.expression(pair.into_inner().next().expect("inner"));
                ExprKind::Parenthesized(Box::new(inner))
            }
            Rule::list => {
                let items = pair
                    .into_inner()
                    .filter(|item| item.as_rule() == Rule::expression)
                    .map(|item| self.expression(item))
                    .collect();
                ExprKind::List(items)
            }
            Rule::object => {
                let mut items = Vec::new();
                for item in pair.into_inner() {
                    let mut parts = item.into_inner();
                    let key_pair = parts
                        .next()
                        .expect("object key")
                        .into_inner()
                        .next()
                        .expect("key");
                    let key = match key_pair.as_rule() {
                        Rule::identifier => ObjectKey::Name(self.ident(key_pair)),
                        _ => ObjectKey::Expr(self.primary(key_pair)),
                    };
                    let value = self.expression(parts.next().expect("object value"));
                    items.push(ObjectItem { key, value });
                }
                ExprKind::Object(items)
            }
            Rule::template => ExprKind::Template(self.template_parts(pair)),
            Rule::heredoc => ExprKind::Template(self.heredoc(pair)),
            Rule::for_list => {
                let mut inner = pair.into_inner();
                let intro = Box::new(self.for_intro(inner.next().expect("for intro")));
                let value = self.expression(inner.next().expect("for value"));
                let condition = inner
                    .find(|c| c.as_rule() == Rule::for_cond)
                    .map(|c| Box::new(self.for_condition(c)));
                ExprKind::ForList {
                    intro,
                    value: Box::new(value),
                    condition,
                }
            }
            Rule::for_object => {
                let mut inner = pair.into_inner();
                let intro = Box::new(self.for_intro(inner.next().expect("for intro")));
                let key = self.expression(inner.next().expect("for key"));
                let value = self.expression(inner.next().expect("for value"));
                let mut group = false;
                let mut condition = None;
                for part in inner {
                    match part.as_rule() {
                        Rule::for_group => group = true,
                        Rule::for_cond => condition = Some(Box::new(self.for_condition(part))),
                        _ => {}
                    }
                }
                ExprKind::ForObject {
                    intro,
                    key: Box::new(key),
                    value: Box::new(value),
                    group,
                    condition,
                }
            }
            _ => return self.expression(pair),
        };
        Expr { kind, span }
    }

    fn for_intro(&mut self, pair: Pair<Rule>) -> ForIntro {
        let mut names = Vec::new();
        let mut collection = None;
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::identifier => names.push(self.ident(part)),
                Rule::expression => collection = Some(self.expression(part)),
                _ => {}
            }
        }
        let value_var = names.pop().expect("for variable");
        ForIntro {
            key_var: names.pop(),
            value_var,
            collection: Box::new(collection.expect("for collection")),
        }
    }

    fn for_condition(&mut self, pair: Pair<Rule>) -> Expr {
        let condition = pair
            .into_inner()
            .find(|p| p.as_rule() == Rule::expression)
            .expect("for condition");
        self.expression(condition)
    }

    fn template_parts(&mut self, pair: Pair<Rule>) -> Vec<TemplatePart> {
        let mut parts = Vec::new();
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::template_text => {
                    let text = part.as_str();
                    if text.contains("$${") {
                        push_literal(&mut parts, &text.replace("$${", "${"));
                    } else {
                        push_literal(&mut parts, text);
                    }
                }
                Rule::template_escape => push_literal(&mut parts, &unescape(part.as_str())),
                Rule::interpolation => {
                    let inner = part.into_inner().next().expect("interpolation");
                    parts.push(TemplatePart::Interpolation(self.expression(inner)));
                }
                _ => {}
            }
        }
        parts
    }

    /// A heredoc's literal text is masked in what pest saw; it is read back
    /// here from the original source by span.
    fn heredoc(&mut self, pair: Pair<Rule>) -> Vec<TemplatePart> {
        let mut strip = false;
        let mut pieces: Vec<TemplatePart> = Vec::new();
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::heredoc_strip => strip = true,
                Rule::heredoc_text => {
                    let span = part.as_span();
                    let start = char_boundary_at_or_before(self.text, self.offset + span.start());
                    let end =
                        char_boundary_at_or_before(self.text, self.offset + span.end()).max(start);
                    let text = &self.text[start..end];
                    pieces.push(TemplatePart::Literal(text.to_string()));
                }
                Rule::interpolation => {
                    let inner = part.into_inner().next().expect("interpolation");
                    pieces.push(TemplatePart::Interpolation(self.expression(inner)));
                }
                _ => {}
            }
        }
        // The first literal begins with the rest of the opening line, the
        // last ends with the closing line: neither is content.
        if let Some(TemplatePart::Literal(first)) = pieces.first_mut() {
            match first.find('\n') {
                Some(newline) => drop(first.drain(..=newline)),
                None => first.clear(),
            }
        }
        if let Some(TemplatePart::Literal(last)) = pieces.last_mut() {
            match last.rfind('\n') {
                Some(newline) => last.truncate(newline + 1),
                None => last.clear(),
            }
        }
        // Content lines, each ending in a newline.
        let mut lines: Vec<Vec<TemplatePart>> = vec![Vec::new()];
        for piece in pieces {
            match piece {
                TemplatePart::Literal(text) => {
                    // `$${` is a literal `${`; CRLF files give LF content.
                    let text = text.replace("$${", "${").replace("\r\n", "\n");
                    for (index, segment) in text.split('\n').enumerate() {
                        if index > 0 {
                            lines.push(Vec::new());
                        }
                        if !segment.is_empty() {
                            let line = lines.last_mut().expect("a line");
                            push_literal(line, segment);
                        }
                    }
                }
                interpolation => lines.last_mut().expect("a line").push(interpolation),
            }
        }
        if lines.last().is_some_and(Vec::is_empty) {
            lines.pop();
        }
        if strip {
            strip_common_indent(&mut lines);
        }
        let mut parts = Vec::new();
        for line in lines {
            for piece in line {
                match piece {
                    TemplatePart::Literal(text) => push_literal(&mut parts, &text),
                    interpolation => parts.push(interpolation),
                }
            }
            push_literal(&mut parts, "\n");
        }
        parts
    }
}

/// The operand being collected: prefix operators, a primary, its steps.
#[derive(Default)]
struct PendingOperand {
    prefix: Vec<(UnaryOp, Span)>,
    primary: Option<Expr>,
    steps: Vec<Step>,
    steps_end: Option<u32>,
}

impl PendingOperand {
    /// The finished operand (and a fresh, empty pending one).
    fn finish(&mut self) -> Option<Expr> {
        let taken = std::mem::take(self);
        let mut expr = taken.primary?;
        if !taken.steps.is_empty() {
            let mut span = expr.span;
            span.end = taken.steps_end.unwrap_or(span.end);
            expr = Expr {
                kind: ExprKind::Traversal {
                    root: Box::new(expr),
                    steps: taken.steps,
                },
                span,
            };
        }
        for (op, op_span) in taken.prefix.into_iter().rev() {
            let span = op_span.to(expr.span);
            expr = Expr {
                kind: ExprKind::Unary {
                    op,
                    operand: Box::new(expr),
                },
                span,
            };
        }
        Some(expr)
    }
}

fn reduce(operands: &mut Vec<Expr>, op: BinaryOp) {
    let (Some(rhs), Some(lhs)) = (operands.pop(), operands.pop()) else {
        return;
    };
    let span = lhs.span.to(rhs.span);
    operands.push(Expr {
        kind: ExprKind::Binary {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        },
        span,
    });
}

/// `<<-`: removes the indentation common to every non-blank line.
fn strip_common_indent(lines: &mut [Vec<TemplatePart>]) {
    let indent_of = |line: &Vec<TemplatePart>| -> Option<usize> {
        match line.first() {
            None => None,
            Some(TemplatePart::Literal(text)) => {
                let indent = text.len() - text.trim_start_matches([' ', '\t']).len();
                let blank = indent == text.len() && line.len() == 1;
                (!blank).then_some(indent)
            }
            Some(TemplatePart::Interpolation(_)) => Some(0),
        }
    };
    let common = lines.iter().filter_map(indent_of).min().unwrap_or(0);
    for line in lines.iter_mut() {
        if let Some(TemplatePart::Literal(text)) = line.first_mut() {
            let removable = text.len() - text.trim_start_matches([' ', '\t']).len();
            text.drain(..common.min(removable));
            if text.is_empty() {
                line.remove(0);
            }
        }
    }
}

fn push_literal(parts: &mut Vec<TemplatePart>, text: &str) {
    if let Some(TemplatePart::Literal(last)) = parts.last_mut() {
        last.push_str(text);
    } else {
        parts.push(TemplatePart::Literal(text.to_string()));
    }
}

/// Decodes the escapes of a quoted string or label.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(decoded) => out.push(decoded),
                    None => out.push('\u{FFFD}'),
                }
            }
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
