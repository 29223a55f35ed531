//! pest pairs → [`ast`](crate::syntax::ast) nodes, with spans in the
//! file's coordinates. Expressions with operators are in
//! `precedence.rs`, templates and heredocs in `templates.rs`.

use super::*;

/// Builds AST nodes from pest pairs of one region of a file.
pub(super) struct Builder<'t> {
    pub(super) file: FileId,
    pub(super) offset: usize,
    pub(super) diagnostics: Vec<Diagnostic>,
    /// The whole file, to trim spans.
    pub(super) text: &'t str,
    /// Comment end offset → start offset, to trim comments off span ends.
    pub(super) comment_starts_by_end: &'t [Comment],
}

impl Builder<'_> {
    /// The span of a pair, without the whitespace and comments pest's
    /// implicit skipping may leave at its end.
    pub(super) fn span(&self, pair: &Pair<Rule>) -> Span {
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

    pub(super) fn ident(&self, pair: Pair<Rule>) -> Ident {
        Ident {
            span: self.span(&pair),
            name: pair.as_str().to_string(),
        }
    }

    pub(super) fn body(&mut self, pair: Pair<Rule>) -> Body {
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

    pub(super) fn attribute(&mut self, pair: Pair<Rule>) -> Attribute {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let name = self.ident(inner.next().expect("attribute name"));
        let value = self.expression(inner.next().expect("attribute value"));
        Attribute { name, value, span }
    }

    pub(super) fn block(&mut self, pair: Pair<Rule>) -> Block {
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
                    if raw.replace("$${", "").contains("${") {
                        self.diagnostics.push(
                            Diagnostic::error(
                                Code::Syntax,
                                "a block label cannot interpolate: it names the block",
                            )
                            .with_label(label_span, "`${…}` in a label")
                            .with_help(
                                "write the label literally; for many alike blocks, use `count` or `for_each` and set the varying value as an argument",
                            ),
                        );
                    }
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

    pub(super) fn step(&mut self, pair: Pair<Rule>, span: Span) -> Step {
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

    pub(super) fn primary(&mut self, pair: Pair<Rule>) -> Expr {
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

    pub(super) fn for_intro(&mut self, pair: Pair<Rule>) -> ForIntro {
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

    pub(super) fn for_condition(&mut self, pair: Pair<Rule>) -> Expr {
        let condition = pair
            .into_inner()
            .find(|p| p.as_rule() == Rule::expression)
            .expect("for condition");
        self.expression(condition)
    }
}
