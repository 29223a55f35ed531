//! Recovery: a file is parsed region by region, so that after a syntax
//! error the parser resumes at the next top-level block — a line that opens
//! a block in column 0 (a name, labels, `{`), whatever its kind.

use super::*;

/// Parsing of one file, region by region (to resume after an error).
pub(super) struct Region<'t> {
    pub(super) file: FileId,
    /// The source, for spans, names and literal text.
    pub(super) text: &'t str,
    /// The source with heredoc literal text masked: what pest parses.
    pub(super) masked: &'t str,
    pub(super) comment_starts_by_end: &'t [Comment],
}

impl Region<'_> {
    pub(super) fn parse(
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
pub(super) fn starts_block_header(text: &str) -> bool {
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

pub(super) fn top_level_line_at_or_before(text: &str, start: usize, position: usize) -> usize {
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

pub(super) fn top_level_line_after(text: &str, position: usize, end: usize) -> Option<usize> {
    let mut cursor = position;
    while let Some(newline) = text[cursor..end].find('\n') {
        cursor += newline + 1;
        if cursor < end && starts_block_header(&text[cursor..end]) {
            return Some(cursor);
        }
    }
    None
}
