//! [`Diagnostic`]: an error or warning a user can act on.
//!
//! A diagnostic has a short lowercase message, labelled spans (the first is
//! the primary one), an optional `help` that says how to fix it, and notes.
//! Every stage of the pipeline reports through this one type, so `validate`,
//! `plan` and editors all see the same errors.

use super::Code;
use crate::syntax::Span;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// A span with the text printed under it.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// The kind of problem, shown as `infra::syntax`.
    pub code: Code,
    pub message: String,
    pub help: Option<String>,
    /// The first label is the primary location.
    pub labels: Vec<Label>,
    pub notes: Vec<String>,
}

impl Diagnostic {
    pub fn error(code: Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            help: None,
            labels: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn warning(code: Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    pub fn with_label(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label {
            span,
            message: message.into(),
        });
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Sets the help only when there is one (e.g. a "did you mean").
    pub fn with_optional_help(mut self, help: Option<String>) -> Diagnostic {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    pub fn primary_span(&self) -> Option<Span> {
        self.labels.first().map(|label| label.span)
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// All diagnostics of a run, in the order they were found.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    list: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new() -> Diagnostics {
        Diagnostics::default()
    }

    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.list.push(diagnostic);
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.list.extend(other.list);
    }

    pub fn has_errors(&self) -> bool {
        self.list.iter().any(Diagnostic::is_error)
    }

    pub fn error_count(&self) -> usize {
        self.list.iter().filter(|d| d.is_error()).count()
    }

    pub fn warning_count(&self) -> usize {
        self.list.len() - self.error_count()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Drops the diagnostics after the first `len`.
    pub fn truncate(&mut self, len: usize) {
        self.list.truncate(len);
    }

    /// The diagnostic pushed last, to add to what it says.
    pub fn last_mut(&mut self) -> Option<&mut Diagnostic> {
        self.list.last_mut()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.list.iter()
    }

    /// Hides the details of the diagnostics from the `from`-th on: they
    /// came from an expression computed from a sensitive value, and a
    /// function's or a conversion's message may quote it. The code, the
    /// place and the help stay.
    pub fn redact_from(&mut self, from: usize) {
        for diagnostic in self.list.iter_mut().skip(from) {
            let subject = diagnostic
                .message
                .split_once(": ")
                .map_or("this expression", |(subject, _)| subject);
            diagnostic.message = format!(
                "{subject}: rejects a value computed from a sensitive value (details hidden)"
            );
            for label in &mut diagnostic.labels {
                label.message = "computed from a sensitive value".into();
            }
            diagnostic.notes.clear();
        }
    }

    /// Orders diagnostics by file and position, errors before warnings at the
    /// same place, so that output is stable whatever order they were found in.
    pub fn sort(&mut self) {
        self.list.sort_by_key(|d| {
            let span = d.primary_span();
            (
                span.map(|s| (s.file, s.start)),
                d.severity,
                d.message.clone(),
            )
        });
        self.list.dedup();
    }

    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.list
    }
}

/// Names as a comma-separated list of code spans: `` `a`, `b`, `c` ``.
pub fn code_list<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> String {
    names
        .into_iter()
        .map(|name| format!("`{}`", name.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// "did you mean `x`?" for the candidate closest to `name`, if one is close.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    closest(name, candidates).map(|best| format!("did you mean `{best}`?"))
}

/// The candidate closest to `name` by edit distance, if it is close enough to
/// be a plausible typo (distance ≤ a third of the length, at least 1).
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|candidate| *candidate != name)
        .map(|candidate| (strsim::damerau_levenshtein(name, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min()
        .map(|(_, candidate)| candidate)
}

/// Why a file could not be read, as a diagnostic says it: `no such file`,
/// `permission denied`, `it is not UTF-8 text`.
pub fn io_reason(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::InvalidData => "it is not UTF-8 text".into(),
        _ => error.to_string(),
    }
}
