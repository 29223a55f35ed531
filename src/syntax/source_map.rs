//! The source files of one run, and the spans that point into them.
//!
//! Every syntax node carries a [`Span`]: a file id and a byte range. The
//! [`SourceMap`] owns the text of every file read, so that diagnostics can be
//! rendered with the offending text underlined long after parsing.

use std::path::PathBuf;

/// Index of a file in the [`SourceMap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u32);

/// A byte range in one source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span {
            file,
            start: start as u32,
            end: end as u32,
        }
    }

    /// The smallest span covering both (which must be in the same file).
    pub fn to(self, other: Span) -> Span {
        Span {
            file: self.file,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    /// Whether `other` lies within this span (in the same file).
    pub fn contains(self, other: Span) -> bool {
        self.file == other.file && self.start <= other.start && other.end <= self.end
    }

    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    pub fn is_empty(self) -> bool {
        self.end == self.start
    }

    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// One source file: its name as shown to the user, its path and its text.
#[derive(Debug)]
pub struct SourceFile {
    /// The name diagnostics print, e.g. `main.infra` or `modules/net/main.infra`.
    pub name: String,
    pub path: PathBuf,
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_index(offset);
        let line_start = self.line_starts[line];
        let column = self
            .text
            .get(line_start..offset)
            .map(|prefix| prefix.chars().count())
            .unwrap_or(offset - line_start);
        (line + 1, column + 1)
    }

    /// 0-based line of a byte offset.
    fn line_index(&self, offset: usize) -> usize {
        match self.line_starts.binary_search(&offset) {
            Ok(line) => line,
            Err(next) => next - 1,
        }
    }

    /// The whole lines from `before` lines above `range` to `after` lines
    /// below it, as a byte range, and the 0-based line it starts on. Lets a
    /// renderer look at a few lines instead of scanning the file from the top.
    pub fn lines_around(
        &self,
        range: std::ops::Range<usize>,
        before: usize,
        after: usize,
    ) -> (std::ops::Range<usize>, usize) {
        let first = self
            .line_index(range.start.min(self.text.len()))
            .saturating_sub(before);
        let last = self.line_index(range.end.min(self.text.len())) + after + 1;
        let end = self
            .line_starts
            .get(last)
            .copied()
            .unwrap_or(self.text.len());
        (self.line_starts[first]..end, first)
    }
}

/// Every file read during a run, addressed by [`FileId`].
#[derive(Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn new() -> SourceMap {
        SourceMap::default()
    }

    pub fn add(&mut self, name: impl Into<String>, path: PathBuf, text: String) -> FileId {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(at, _)| at + 1));
        self.files.push(SourceFile {
            name: name.into(),
            path,
            text,
            line_starts,
        });
        FileId(self.files.len() as u32 - 1)
    }

    pub fn file(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(index, file)| (FileId(index as u32), file))
    }

    /// The text a span covers.
    pub fn snippet(&self, span: Span) -> &str {
        self.file(span.file).text.get(span.range()).unwrap_or("")
    }

    /// `file:line:column` of the start of a span, for chains in messages.
    pub fn location(&self, span: Span) -> String {
        let file = self.file(span.file);
        let (line, column) = file.line_column(span.start as usize);
        format!("{}:{}:{}", file.name, line, column)
    }

    /// `file:line` of the start of a span.
    pub fn file_line(&self, span: Span) -> String {
        let file = self.file(span.file);
        let (line, _) = file.line_column(span.start as usize);
        format!("{}:{}", file.name, line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_around_takes_whole_lines_and_stops_at_the_file_edges() {
        let mut sources = SourceMap::new();
        let id = sources.add(
            "a.infra",
            PathBuf::from("a.infra"),
            "l1\nl2\nl3\nl4\nl5".into(),
        );
        let file = sources.file(id);
        // `l3` is bytes 6..8, on line index 2.
        assert_eq!(file.lines_around(6..8, 1, 1), (3..12, 1));
        assert_eq!(file.lines_around(6..8, 5, 5), (0..14, 0));
        assert_eq!(file.lines_around(13..14, 0, 0), (12..14, 4));
    }
}
