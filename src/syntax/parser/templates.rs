//! String templates and heredocs: literal text (escapes decoded, common
//! indentation of `<<-` heredocs removed), `${…}` interpolations and the
//! `%{ if }`/`%{ for }` directives, nested here from the flat sequence the
//! grammar reads, with the whitespace their `~` strip markers remove.

use super::*;

/// A piece of a template as written, before directives are nested.
enum Token {
    Literal(String),
    Interpolation {
        expr: Expr,
        strip: Strip,
    },
    Directive {
        kind: Directive,
        strip: Strip,
        span: Span,
    },
}

/// The `~` markers of an interpolation or directive: `${~` strips the
/// whitespace before it, `~}` the whitespace after.
#[derive(Clone, Copy, Default)]
struct Strip {
    before: bool,
    after: bool,
}

enum Directive {
    If(Expr),
    Else,
    EndIf,
    For(ForIntro),
    EndFor,
}

/// A directive still open while nesting, with what it holds so far.
enum Open {
    If {
        condition: Expr,
        span: Span,
        /// The `then` parts, once `%{ else }` is read.
        then: Option<Vec<TemplatePart>>,
    },
    For {
        intro: ForIntro,
        span: Span,
    },
}

/// `<<-`: removes the indentation common to every non-blank line.
fn strip_common_indent(lines: &mut [Vec<Token>]) {
    let indent_of = |line: &Vec<Token>| -> Option<usize> {
        match line.first() {
            None => None,
            Some(Token::Literal(text)) => {
                let indent = text.len() - text.trim_start_matches([' ', '\t']).len();
                let blank = indent == text.len() && line.len() == 1;
                (!blank).then_some(indent)
            }
            Some(_) => Some(0),
        }
    };
    let common = lines.iter().filter_map(indent_of).min().unwrap_or(0);
    for line in lines.iter_mut() {
        if let Some(Token::Literal(text)) = line.first_mut() {
            let removable = text.len() - text.trim_start_matches([' ', '\t']).len();
            text.drain(..common.min(removable));
            if text.is_empty() {
                line.remove(0);
            }
        }
    }
}

pub(super) fn push_literal(parts: &mut Vec<TemplatePart>, text: &str) {
    if text.is_empty() {
        return;
    }
    if let Some(TemplatePart::Literal(last)) = parts.last_mut() {
        last.push_str(text);
    } else {
        parts.push(TemplatePart::Literal(text.to_string()));
    }
}

fn push_literal_token(tokens: &mut Vec<Token>, text: &str) {
    if let Some(Token::Literal(last)) = tokens.last_mut() {
        last.push_str(text);
    } else {
        tokens.push(Token::Literal(text.to_string()));
    }
}

/// Decodes the escapes of a quoted string or label.
pub(super) fn unescape(raw: &str) -> String {
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

impl Builder<'_> {
    pub(super) fn template_parts(&mut self, pair: Pair<Rule>) -> Vec<TemplatePart> {
        let mut tokens = Vec::new();
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::template_text => {
                    let text = part.as_str();
                    if text.contains("$${") || text.contains("%%{") {
                        let text = text.replace("$${", "${").replace("%%{", "%{");
                        push_literal_token(&mut tokens, &text);
                    } else {
                        push_literal_token(&mut tokens, text);
                    }
                }
                Rule::template_escape => push_literal_token(&mut tokens, &unescape(part.as_str())),
                Rule::interpolation | Rule::directive => tokens.push(self.code_token(part)),
                _ => {}
            }
        }
        self.nest(tokens)
    }

    /// The text of a template file: as a heredoc's, without the lines
    /// around it.
    pub(super) fn template_file(&mut self, pair: Pair<Rule>) -> Vec<TemplatePart> {
        let mut tokens = Vec::new();
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::template_file_text => {
                    let text = part
                        .as_str()
                        .replace("$${", "${")
                        .replace("%%{", "%{")
                        .replace("\r\n", "\n");
                    push_literal_token(&mut tokens, &text);
                }
                Rule::interpolation | Rule::directive => tokens.push(self.code_token(part)),
                _ => {}
            }
        }
        self.nest(tokens)
    }

    /// An interpolation or a directive, with its strip markers.
    fn code_token(&mut self, pair: Pair<Rule>) -> Token {
        let span = self.span(&pair);
        let directive = pair.as_rule() == Rule::directive;
        let mut strip = Strip::default();
        let mut token = None;
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::strip_before => strip.before = true,
                Rule::strip_after => strip.after = true,
                Rule::expression => {
                    token = Some(Token::Interpolation {
                        expr: self.expression(part),
                        strip,
                    });
                }
                Rule::directive_if => {
                    let condition = part.into_inner().find(|p| p.as_rule() == Rule::expression);
                    let condition = self.expression(condition.expect("if condition"));
                    token = Some(Token::Directive {
                        kind: Directive::If(condition),
                        strip,
                        span,
                    });
                }
                Rule::directive_for => {
                    token = Some(Token::Directive {
                        kind: Directive::For(self.for_intro(part)),
                        strip,
                        span,
                    });
                }
                rule => {
                    let kind = match rule {
                        Rule::directive_else => Directive::Else,
                        Rule::directive_endif => Directive::EndIf,
                        _ => Directive::EndFor,
                    };
                    token = Some(Token::Directive { kind, strip, span });
                }
            }
        }
        let mut token = token.unwrap_or_else(|| {
            panic!(
                "an empty {}",
                if directive {
                    "directive"
                } else {
                    "interpolation"
                }
            )
        });
        // The markers come before and after the content.
        match &mut token {
            Token::Interpolation { strip: s, .. } | Token::Directive { strip: s, .. } => *s = strip,
            Token::Literal(_) => {}
        }
        token
    }

    /// The template's parts from its tokens: the whitespace beside each `~`
    /// removed, then the directives nested. A directive closed by the wrong
    /// end, or never closed, is a syntax error at it.
    fn nest(&mut self, mut tokens: Vec<Token>) -> Vec<TemplatePart> {
        for index in 0..tokens.len() {
            let strip = match &tokens[index] {
                Token::Interpolation { strip, .. } | Token::Directive { strip, .. } => *strip,
                Token::Literal(_) => continue,
            };
            if strip.before
                && index > 0
                && let Token::Literal(text) = &mut tokens[index - 1]
            {
                text.truncate(text.trim_end().len());
            }
            if strip.after
                && let Some(Token::Literal(text)) = tokens.get_mut(index + 1)
            {
                text.drain(..text.len() - text.trim_start().len());
            }
        }
        let reported = self.diagnostics.len();
        let mut stack: Vec<(Open, Vec<TemplatePart>)> = Vec::new();
        let mut parts: Vec<TemplatePart> = Vec::new();
        for token in tokens {
            let current = match stack.last_mut() {
                Some((_, inner)) => inner,
                None => &mut parts,
            };
            match token {
                Token::Literal(text) => push_literal(current, &text),
                Token::Interpolation { expr, .. } => {
                    current.push(TemplatePart::Interpolation(expr));
                }
                Token::Directive { kind, span, .. }
                    if stack.len() >= MAX_NESTING
                        && matches!(kind, Directive::If(_) | Directive::For(_)) =>
                {
                    self.diagnostics.push(
                        Diagnostic::error(Code::TooDeep, "directives are nested too deeply")
                            .with_label(span, format!("more than {MAX_NESTING} levels deep here"))
                            .with_help("flatten the template, e.g. compute parts in `locals`"),
                    );
                    while stack.pop().is_some() {}
                    return parts;
                }
                Token::Directive { kind, span, .. } => match kind {
                    Directive::If(condition) => stack.push((
                        Open::If {
                            condition,
                            span,
                            then: None,
                        },
                        Vec::new(),
                    )),
                    Directive::For(intro) => stack.push((Open::For { intro, span }, Vec::new())),
                    Directive::Else => match stack.last_mut() {
                        Some((
                            Open::If {
                                then: then @ None, ..
                            },
                            inner,
                        )) => {
                            *then = Some(std::mem::take(inner));
                        }
                        _ => self.misplaced(
                            span,
                            "`%{ else }`",
                            "an `%{ if … }` without an else",
                            false,
                        ),
                    },
                    Directive::EndIf => match stack.pop() {
                        Some((
                            Open::If {
                                condition,
                                span,
                                then,
                            },
                            inner,
                        )) => {
                            let (then, otherwise) = match then {
                                Some(then) => (then, inner),
                                None => (inner, Vec::new()),
                            };
                            let part = TemplatePart::If {
                                condition,
                                then,
                                otherwise,
                                span,
                            };
                            Self::innermost(&mut stack, &mut parts).push(part);
                        }
                        other => {
                            stack.extend(other);
                            let inside = stack
                                .iter()
                                .any(|(open, _)| matches!(open, Open::If { .. }));
                            self.misplaced(span, "`%{ endif }`", "an `%{ if … }`", inside);
                        }
                    },
                    Directive::EndFor => match stack.pop() {
                        Some((Open::For { intro, span }, body)) => {
                            let part = TemplatePart::For { intro, body, span };
                            Self::innermost(&mut stack, &mut parts).push(part);
                        }
                        other => {
                            stack.extend(other);
                            let inside = stack
                                .iter()
                                .any(|(open, _)| matches!(open, Open::For { .. }));
                            self.misplaced(span, "`%{ endfor }`", "a `%{ for … }`", inside);
                        }
                    },
                },
            }
        }
        // After a misplaced closer, what stays open is its consequence; of
        // several left open, the innermost is reported (with how many more).
        let misplaced = self.diagnostics.len() > reported;
        let open = stack.len();
        if let Some((innermost, _)) = stack.pop().filter(|_| !misplaced) {
            let (span, what, end) = match innermost {
                Open::If { span, .. } => (span, "`%{ if }`", "%{ endif }"),
                Open::For { span, .. } => (span, "`%{ for }`", "%{ endfor }"),
            };
            let more = match open - 1 {
                0 => String::new(),
                1 => " (and 1 directive around it)".into(),
                others => format!(" (and {others} directives around it)"),
            };
            self.diagnostics.push(
                Diagnostic::error(Code::Syntax, format!("this {what} is never closed{more}"))
                    .with_label(span, "opened here")
                    .with_help(format!("end it with `{end}` in the same string or heredoc")),
            );
        }
        // Dropped one by one: a deep tree would recurse on drop.
        while stack.pop().is_some() {}
        parts
    }

    fn innermost<'p>(
        stack: &'p mut [(Open, Vec<TemplatePart>)],
        parts: &'p mut Vec<TemplatePart>,
    ) -> &'p mut Vec<TemplatePart> {
        match stack.last_mut() {
            Some((_, inner)) => inner,
            None => parts,
        }
    }

    /// A closing directive with nothing of its kind open innermost; `crossed`
    /// when one is open further out (`%{ for }%{ if }%{ endfor }`).
    fn misplaced(&mut self, span: Span, what: &str, needs: &str, crossed: bool) {
        let (message, label) = if crossed {
            (
                format!("{what} closes {needs} while a directive inside it is still open"),
                "close the inner directive first",
            )
        } else {
            (
                format!("{what} without {needs} to close"),
                "nothing open here for it to close",
            )
        };
        self.diagnostics.push(
            Diagnostic::error(Code::Syntax, message)
                .with_label(span, label)
                .with_help(
                    "directives nest: `%{ if c }…%{ else }…%{ endif }`, `%{ for x in xs }…%{ endfor }`; \
                     write `%%{` for a literal `%{`",
                ),
        );
    }

    /// A heredoc's literal text is masked in what pest saw; it is read back
    /// here from the original source by span.
    pub(super) fn heredoc(&mut self, pair: Pair<Rule>) -> Vec<TemplatePart> {
        let mut strip = false;
        let mut pieces: Vec<Token> = Vec::new();
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::heredoc_strip => strip = true,
                Rule::heredoc_text => {
                    let span = part.as_span();
                    let start = char_boundary_at_or_before(self.text, self.offset + span.start());
                    let end =
                        char_boundary_at_or_before(self.text, self.offset + span.end()).max(start);
                    let text = &self.text[start..end];
                    pieces.push(Token::Literal(text.to_string()));
                }
                Rule::interpolation | Rule::directive => pieces.push(self.code_token(part)),
                _ => {}
            }
        }
        // The first literal begins with the rest of the opening line, the
        // last ends with the closing line: neither is content.
        if let Some(Token::Literal(first)) = pieces.first_mut() {
            match first.find('\n') {
                Some(newline) => drop(first.drain(..=newline)),
                None => first.clear(),
            }
        }
        if let Some(Token::Literal(last)) = pieces.last_mut() {
            match last.rfind('\n') {
                Some(newline) => last.truncate(newline + 1),
                None => last.clear(),
            }
        }
        // Content lines, each ending in a newline.
        let mut lines: Vec<Vec<Token>> = vec![Vec::new()];
        for piece in pieces {
            match piece {
                Token::Literal(text) => {
                    // `$${` and `%%{` are literal; CRLF files give LF content.
                    let text = text
                        .replace("$${", "${")
                        .replace("%%{", "%{")
                        .replace("\r\n", "\n");
                    for (index, segment) in text.split('\n').enumerate() {
                        if index > 0 {
                            lines.push(Vec::new());
                        }
                        if !segment.is_empty() {
                            let line = lines.last_mut().expect("a line");
                            push_literal_token(line, segment);
                        }
                    }
                }
                code => lines.last_mut().expect("a line").push(code),
            }
        }
        if lines.last().is_some_and(Vec::is_empty) {
            lines.pop();
        }
        if strip {
            strip_common_indent(&mut lines);
        }
        let mut tokens = Vec::new();
        for line in lines {
            for piece in line {
                match piece {
                    Token::Literal(text) => push_literal_token(&mut tokens, &text),
                    code => tokens.push(code),
                }
            }
            push_literal_token(&mut tokens, "\n");
        }
        self.nest(tokens)
    }
}
