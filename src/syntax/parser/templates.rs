//! String templates and heredocs: literal text (escapes decoded, common
//! indentation of `<<-` heredocs removed) and `${…}` interpolations.

use super::*;

/// `<<-`: removes the indentation common to every non-blank line.
pub(super) fn strip_common_indent(lines: &mut [Vec<TemplatePart>]) {
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

pub(super) fn push_literal(parts: &mut Vec<TemplatePart>, text: &str) {
    if let Some(TemplatePart::Literal(last)) = parts.last_mut() {
        last.push_str(text);
    } else {
        parts.push(TemplatePart::Literal(text.to_string()));
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
    pub(super) fn heredoc(&mut self, pair: Pair<Rule>) -> Vec<TemplatePart> {
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
