//! Rendering diagnostics: miette's graphical report for people, JSON for
//! editors and CI.
//!
//! Labels may point into several files; miette shows one source per report,
//! so labels in other files than the primary one become related reports.

use std::fmt;

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError, MietteSpanContents,
    SourceCode, SourceSpan, SpanContents,
};

use super::{Code, Diagnostic, Diagnostics, Severity};
use crate::syntax::{FileId, SourceFile, SourceMap};

/// How to draw reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportStyle {
    /// Unicode, no colour: stable text for logs and golden tests.
    Plain,
    /// Unicode with ANSI colour, for a terminal.
    Colored,
}

/// Renders every diagnostic, separated by blank lines.
pub fn render_all(diagnostics: &Diagnostics, sources: &SourceMap, style: ReportStyle) -> String {
    let mut out = String::new();
    for diagnostic in diagnostics.iter() {
        out.push_str(&render(diagnostic, sources, style));
    }
    out
}

/// Renders one diagnostic as miette's graphical report.
pub fn render(diagnostic: &Diagnostic, sources: &SourceMap, style: ReportStyle) -> String {
    let theme = match style {
        ReportStyle::Plain => GraphicalTheme::unicode_nocolor(),
        ReportStyle::Colored => GraphicalTheme::unicode(),
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_links(false)
        .with_context_lines(1);
    let report = Report::new(diagnostic, sources);
    let mut out = String::new();
    if handler.render_report(&mut out, &report).is_err() {
        out = format!("{}: {}\n", diagnostic.severity.as_str(), diagnostic.message);
    }
    // miette indents nothing after the last line; keep one blank line between reports.
    let trimmed = out.trim_end().to_string();
    trimmed + "\n\n"
}

/// A diagnostic viewed through miette's traits.
struct Report<'a> {
    message: String,
    severity: Severity,
    /// A continuation in another file, not a problem of its own.
    is_related: bool,
    code: Code,
    help: Option<String>,
    source: Option<FileSource<'a>>,
    labels: Vec<LabeledSpan>,
    related: Vec<Report<'a>>,
}

impl<'a> Report<'a> {
    fn new(diagnostic: &Diagnostic, sources: &'a SourceMap) -> Report<'a> {
        let mut message = diagnostic.message.clone();
        for note in &diagnostic.notes {
            message.push_str("\n  note: ");
            message.push_str(note);
        }
        // A label on a line too long to show is a location in the message
        // instead (miette's layout overflows on columns over 65,535, and
        // nobody reads such a snippet).
        let mut files: Vec<FileId> = Vec::new();
        for label in &diagnostic.labels {
            let source = sources.file(label.span.file);
            if let Some(columns) = too_long_to_show(source, label.span.range()) {
                message.push_str(&format!(
                    "\n  at {}: {}(a line of {columns} characters, too long to show)",
                    sources.location(label.span),
                    if label.message.is_empty() {
                        String::new()
                    } else {
                        format!("{} ", label.message)
                    },
                ));
            } else if !files.contains(&label.span.file) {
                files.push(label.span.file);
            }
        }
        let mut report = Report {
            message,
            severity: diagnostic.severity,
            is_related: false,
            code: diagnostic.code,
            help: diagnostic.help.clone(),
            source: None,
            labels: Vec::new(),
            related: Vec::new(),
        };
        for (index, file) in files.iter().enumerate() {
            let source = sources.file(*file);
            let labels = diagnostic
                .labels
                .iter()
                .filter(|label| label.span.file == *file)
                .filter(|label| too_long_to_show(source, label.span.range()).is_none())
                .map(|label| {
                    let start = (label.span.start as usize).min(source.text.len());
                    let len = label.span.len().min(source.text.len() - start);
                    let text = (!label.message.is_empty()).then(|| label.message.clone());
                    LabeledSpan::new_with_span(text, SourceSpan::from((start, len)))
                })
                .collect();
            let named = FileSource(source);
            if index == 0 {
                report.source = Some(named);
                report.labels = labels;
            } else {
                report.related.push(Report {
                    message: format!("and in `{}`:", source.name),
                    severity: diagnostic.severity,
                    is_related: true,
                    code: diagnostic.code,
                    help: None,
                    source: Some(named),
                    labels,
                    related: Vec::new(),
                });
            }
        }
        report
    }
}

/// The longest line a snippet shows, in bytes.
const LONGEST_SHOWN_LINE: usize = 4096;

/// The length in characters of the longest line `range` touches, if it is
/// over [`LONGEST_SHOWN_LINE`] bytes.
fn too_long_to_show(source: &SourceFile, range: std::ops::Range<usize>) -> Option<usize> {
    let (window, _) = source.lines_around(range, 0, 0);
    let text = source.text.get(window)?;
    text.split('\n')
        .filter(|line| line.len() > LONGEST_SHOWN_LINE)
        .map(|line| line.chars().count())
        .max()
}

/// A source file as miette reads it. miette's own `[u8]` source counts lines
/// from the top of the file for every span it reads; this one hands it only
/// the lines around the span (found through the file's line index), so that
/// ten thousand reports on a large file stay linear.
struct FileSource<'a>(&'a SourceFile);

impl SourceCode for FileSource<'_> {
    fn read_span<'b>(
        &'b self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'b> + 'b>, MietteError> {
        let file = self.0;
        let start = span.offset();
        let (window, first_line) = file.lines_around(
            start..start + span.len(),
            context_lines_before + 1,
            context_lines_after + 1,
        );
        let local = SourceSpan::new((start - window.start).into(), span.len());
        let bytes = &file.text.as_bytes()[window.clone()];
        let inner = bytes.read_span(&local, context_lines_before, context_lines_after)?;
        let contents = MietteSpanContents::new_named(
            file.name.clone(),
            inner.data(),
            SourceSpan::new(
                (inner.span().offset() + window.start).into(),
                inner.span().len(),
            ),
            inner.line() + first_line,
            inner.column(),
            // miette counts these lines from the top of what it was given.
            inner.line_count() + first_line,
        )
        .with_language("infra");
        Ok(Box::new(contents))
    }
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        if self.is_related {
            return None;
        }
        Some(Box::new(self.code.as_str()))
    }

    fn severity(&self) -> Option<miette::Severity> {
        if self.is_related {
            return Some(miette::Severity::Advice);
        }
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|help| Box::new(help) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|s| s as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            None
        } else {
            Some(Box::new(self.labels.iter().cloned()))
        }
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        if self.related.is_empty() {
            None
        } else {
            Some(Box::new(
                self.related.iter().map(|r| r as &dyn miette::Diagnostic),
            ))
        }
    }
}

/// One diagnostic as the JSON object `validate --json` prints.
pub fn to_json(diagnostic: &Diagnostic, sources: &SourceMap) -> serde_json::Value {
    let mut object = serde_json::json!({
        "severity": diagnostic.severity.as_str(),
        "code": diagnostic.code.as_str(),
        "message": diagnostic.message,
        "help": diagnostic.help,
        "notes": diagnostic.notes,
        "file": null,
        "line": null,
        "column": null,
        "span": null,
    });
    if let Some(span) = diagnostic.primary_span() {
        let file = sources.file(span.file);
        let (line, column) = file.line_column(span.start as usize);
        object["file"] = file.name.clone().into();
        object["line"] = line.into();
        object["column"] = column.into();
        object["span"] = serde_json::json!({ "start": span.start, "end": span.end });
    }
    object["labels"] = diagnostic
        .labels
        .iter()
        .map(|label| {
            let file = sources.file(label.span.file);
            let (line, column) = file.line_column(label.span.start as usize);
            serde_json::json!({
                "file": file.name,
                "line": line,
                "column": column,
                "span": { "start": label.span.start, "end": label.span.end },
                "message": label.message,
            })
        })
        .collect();
    object
}
