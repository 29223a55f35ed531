//! A light pass over the raw text, before pest: it collects comments (which
//! the grammar skips) for the formatter, rejects nesting deeper than
//! [`MAX_NESTING`] so that no input can exhaust the parser's stack, and finds
//! where each heredoc ends.
//!
//! Heredocs are the one construct a PEG cannot delimit without pest's stack
//! (`PUSH`/`POP` of the marker), and using the stack makes pest snapshot it
//! around every choice of the grammar. So the scanner delimits heredocs, and
//! the parser masks their literal text before pest sees it (see
//! [`Scan::masked`]).
//!
//! It knows just enough of the lexical grammar to tell code from strings,
//! heredocs and comments; everything else is pest's job.

use super::{Comment, FileId, Span};

/// How deeply brackets, braces, parentheses and interpolations may nest.
pub const MAX_NESTING: usize = 64;

pub struct Scan {
    pub comments: Vec<Comment>,
    /// Where nesting first went past [`MAX_NESTING`].
    pub too_deep: Option<Span>,
    /// Byte ranges of heredoc literal text: from the end of the opening
    /// marker to the end of the closing marker, minus the `${…}`
    /// interpolations and `%{…}` directives inside.
    pub heredoc_literals: Vec<std::ops::Range<usize>>,
    /// A heredoc whose closing marker never comes: the span of its opener.
    pub unterminated_heredoc: Option<Span>,
    /// In that heredoc, the first line that starts with its marker followed
    /// by more (`EOT)`): what the writer likely meant as the closer.
    pub marker_not_alone: Option<Span>,
}

/// Replaces heredoc literal text by this byte, so that the grammar can match
/// a heredoc body without knowing its marker.
pub const HEREDOC_MASK: u8 = 0x01;

impl Scan {
    /// The text pest parses: heredoc literal text replaced byte for byte by
    /// [`HEREDOC_MASK`] (so every offset is unchanged and the text stays
    /// UTF-8). Borrowed when there are no heredocs.
    pub fn masked<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        if self.heredoc_literals.is_empty() {
            return std::borrow::Cow::Borrowed(text);
        }
        let mut bytes = text.as_bytes().to_vec();
        for range in &self.heredoc_literals {
            bytes[range.clone()].fill(HEREDOC_MASK);
        }
        std::borrow::Cow::Owned(
            String::from_utf8(bytes).expect("masking whole UTF-8 sequences with ASCII keeps UTF-8"),
        )
    }
}

#[derive(Debug, PartialEq)]
enum Context {
    /// Code inside a bracket, brace or parenthesis (or the top level).
    Code,
    /// Code inside `${ … }` or `%{ … }`, ended by `}` back into a string or
    /// heredoc.
    Interpolation,
    Quoted,
    /// Inside a heredoc; `opener` is the span of `<<EOT`.
    Heredoc {
        marker: Vec<u8>,
        opener: (usize, usize),
    },
}

pub fn scan(file: FileId, text: &str) -> Scan {
    let bytes = text.as_bytes();
    let mut comments = Vec::new();
    let mut stack = vec![Context::Code];
    let mut at = 0;
    let mut line_start = true;
    let mut heredoc_literals = Vec::new();
    // Where the current heredoc literal run started, while in a heredoc.
    let mut literal_start: Option<usize> = None;
    let mut marker_not_alone = None;
    while at < bytes.len() {
        let byte = bytes[at];
        let next = bytes.get(at + 1).copied();
        let top = stack.last().unwrap_or(&Context::Code);
        match top {
            Context::Code | Context::Interpolation => {
                if byte == b'#' || (byte == b'/' && next == Some(b'/')) {
                    let end = find_line_end(bytes, at);
                    comments.push(comment(file, text, at, end));
                    at = end;
                    continue;
                }
                if byte == b'/' && next == Some(b'*') {
                    let end = text[at + 2..]
                        .find("*/")
                        .map(|found| at + 2 + found + 2)
                        .unwrap_or(bytes.len());
                    comments.push(comment(file, text, at, end));
                    at = end;
                    continue;
                }
                match byte {
                    b'"' => stack.push(Context::Quoted),
                    b'<' if next == Some(b'<') => {
                        if let Some((marker, marker_end, body_start)) = heredoc_header(bytes, at) {
                            marker_not_alone = None;
                            stack.push(Context::Heredoc {
                                marker,
                                opener: (at, marker_end),
                            });
                            literal_start = Some(marker_end);
                            at = body_start;
                            line_start = true;
                            continue;
                        }
                    }
                    b'(' | b'[' | b'{' => stack.push(Context::Code),
                    b')' | b']' if stack.len() > 1 && *top == Context::Code => {
                        stack.pop();
                    }
                    b'}' if stack.len() > 1 => {
                        let closed = stack.pop();
                        // Back from `${…}` into a heredoc: its literal text resumes.
                        if closed == Some(Context::Interpolation)
                            && matches!(stack.last(), Some(Context::Heredoc { .. }))
                        {
                            literal_start = Some(at + 1);
                        }
                    }
                    _ => {}
                }
            }
            Context::Quoted => match byte {
                b'\\' => at += 1,
                b'"' | b'\n' => {
                    stack.pop();
                }
                // `$${` and `%%{` are literal; `${` and `%{` open code.
                b'$' | b'%' if next == Some(byte) && bytes.get(at + 2) == Some(&b'{') => at += 2,
                b'$' | b'%' if next == Some(b'{') => {
                    stack.push(Context::Interpolation);
                    at += 1;
                }
                _ => {}
            },
            Context::Heredoc { marker, .. } => {
                if line_start && let Some(end) = heredoc_close(bytes, at, marker) {
                    stack.pop();
                    if let Some(start) = literal_start.take() {
                        heredoc_literals.push(start..end);
                    }
                    at = end;
                    line_start = false;
                    continue;
                }
                if line_start
                    && marker_not_alone.is_none()
                    && let Some(end) = marker_then_more(bytes, at, marker)
                {
                    marker_not_alone = Some(Span::new(file, at, find_line_end(bytes, end)));
                }
                match byte {
                    b'$' | b'%' if next == Some(byte) && bytes.get(at + 2) == Some(&b'{') => {
                        at += 2;
                    }
                    b'$' | b'%' if next == Some(b'{') => {
                        if let Some(start) = literal_start.take() {
                            heredoc_literals.push(start..at);
                        }
                        stack.push(Context::Interpolation);
                        at += 1;
                    }
                    _ => {}
                }
            }
        }
        if stack.len() > MAX_NESTING + 1 {
            let end = (at + 1).min(bytes.len());
            return Scan {
                comments,
                too_deep: Some(Span::new(file, at, end)),
                heredoc_literals,
                unterminated_heredoc: None,
                marker_not_alone: None,
            };
        }
        line_start = byte == b'\n';
        at += 1;
    }
    // A heredoc still open at the end of the file never closed.
    let unterminated_heredoc = stack.iter().rev().find_map(|context| match context {
        Context::Heredoc { opener, .. } => Some(Span::new(file, opener.0, opener.1)),
        _ => None,
    });
    if let Some(start) = literal_start.filter(|_| unterminated_heredoc.is_some()) {
        heredoc_literals.push(start..bytes.len());
    }
    Scan {
        comments,
        too_deep: None,
        heredoc_literals,
        marker_not_alone: marker_not_alone.filter(|_| unterminated_heredoc.is_some()),
        unterminated_heredoc,
    }
}

fn comment(file: FileId, text: &str, start: usize, end: usize) -> Comment {
    let end = text[..end].trim_end_matches('\r').len();
    Comment {
        span: Span::new(file, start, end),
        text: text[start..end].to_string(),
    }
}

fn find_line_end(bytes: &[u8], from: usize) -> usize {
    bytes[from..]
        .iter()
        .position(|b| *b == b'\n')
        .map(|found| from + found)
        .unwrap_or(bytes.len())
}

fn is_identifier_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

/// `<<EOT` or `<<-EOT` then the end of the line: the marker, where the
/// marker ends and where the body starts.
fn heredoc_header(bytes: &[u8], at: usize) -> Option<(Vec<u8>, usize, usize)> {
    let mut cursor = at + 2;
    if bytes.get(cursor) == Some(&b'-') {
        cursor += 1;
    }
    let first = *bytes.get(cursor)?;
    if !(first.is_ascii_alphabetic() || first == b'_') {
        return None;
    }
    let marker_start = cursor;
    while cursor < bytes.len() && is_identifier_byte(bytes[cursor]) {
        cursor += 1;
    }
    let marker = bytes[marker_start..cursor].to_vec();
    let marker_end = cursor;
    while matches!(bytes.get(cursor), Some(b' ' | b'\t' | b'\r')) {
        cursor += 1;
    }
    (bytes.get(cursor) == Some(&b'\n')).then_some((marker, marker_end, cursor + 1))
}

/// If the line at `at` starts with `marker` (after optional indentation),
/// where the marker ends.
fn marker_at(bytes: &[u8], at: usize, marker: &[u8]) -> Option<usize> {
    let mut cursor = at;
    while matches!(bytes.get(cursor), Some(b' ' | b'\t')) {
        cursor += 1;
    }
    let end = cursor + marker.len();
    (bytes.get(cursor..end)? == marker).then_some(end)
}

/// If the line at `at` starts with `marker` followed by something other
/// than a name character or the end of the line (`EOT)`), where the marker
/// ends.
fn marker_then_more(bytes: &[u8], at: usize, marker: &[u8]) -> Option<usize> {
    let end = marker_at(bytes, at, marker)?;
    bytes
        .get(end)
        .is_some_and(|byte| !is_identifier_byte(*byte) && !byte.is_ascii_whitespace())
        .then_some(end)
}

/// If the line at `at` closes the heredoc (the marker alone on it, after
/// optional indentation), where the marker ends.
fn heredoc_close(bytes: &[u8], at: usize, marker: &[u8]) -> Option<usize> {
    let end = marker_at(bytes, at, marker)?;
    // Alone on its line, as in HCL: `EOT,` or `EOT)` is text (other HCL
    // readers reject a closer followed by more, so the formatter never
    // writes one).
    let mut rest = end;
    while matches!(bytes.get(rest), Some(b' ' | b'\t' | b'\r')) {
        rest += 1;
    }
    matches!(bytes.get(rest), None | Some(b'\n')).then_some(end)
}
