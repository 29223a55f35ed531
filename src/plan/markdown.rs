//! Markdown for reports a CI bot posts on a pull request or an issue
//! (`drift --format markdown`, `plan --format markdown`): code spans and
//! fences that survive any value, collapsible sections, and a size bound —
//! a comment has a limit (GitHub: 65,536 characters), and a report cut off
//! by the platform loses its ending; this one stops early and says what it
//! left out.

use std::fmt::Write as _;

/// A code span of `text` that is safe inside a table cell.
pub fn code(text: &str) -> String {
    let text = text.replace('|', "\\|").replace('\n', " ");
    let ticks = "`".repeat(longest_run(&text, '`') + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{ticks}{pad}{text}{pad}{ticks}")
}

/// A fenced block whose fence is longer than any run of backticks inside.
pub fn fenced(language: &str, body: &str) -> String {
    let fence = "`".repeat(longest_run(body, '`').max(2) + 1);
    let newline = if body.ends_with('\n') { "" } else { "\n" };
    format!("{fence}{language}\n{body}{newline}{fence}\n")
}

/// `text` as HTML code (Markdown is not rendered inside `<summary>`).
pub fn html_code(text: &str) -> String {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!("<code>{escaped}</code>")
}

/// A collapsed section: `summary` (HTML) shown, `body` (Markdown) on a
/// click.
pub fn details(summary: &str, body: &str) -> String {
    format!("<details><summary>{summary}</summary>\n\n{body}\n</details>\n\n")
}

fn longest_run(text: &str, wanted: char) -> usize {
    let (mut longest, mut run) = (0, 0);
    for c in text.chars() {
        run = if c == wanted { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

/// A report that stays within `max_bytes`, keeping room for its ending and
/// a note about what it left out.
pub struct Bounded {
    out: String,
    max_bytes: usize,
    /// Items not shown (rows, or sections), and what they are.
    left_out: Vec<(usize, &'static str)>,
}

/// Room kept for the ending and the truncation note.
const RESERVED: usize = 400;

impl Bounded {
    pub fn new(max_bytes: usize) -> Bounded {
        Bounded {
            out: String::new(),
            max_bytes,
            left_out: Vec::new(),
        }
    }

    fn room(&self) -> usize {
        self.max_bytes
            .saturating_sub(RESERVED)
            .saturating_sub(self.out.len())
    }

    /// Text that is always shown (the title, a table's header).
    pub fn head(&mut self, text: &str) {
        self.out.push_str(text);
    }

    /// A line shown if it fits.
    pub fn line(&mut self, text: &str) {
        if text.len() <= self.room() {
            self.out.push_str(text);
        }
    }

    /// As many table rows as fit, in order; how many were shown. Half the
    /// room at most goes to rows, so the first sections have room too.
    pub fn rows(&mut self, rows: &[String], what: &'static str) -> usize {
        let budget = self.out.len() + self.room() / 2;
        let mut shown = 0;
        for row in rows {
            if self.out.len() + row.len() > budget {
                break;
            }
            self.out.push_str(row);
            shown += 1;
        }
        if shown < rows.len() {
            self.left_out.push((rows.len() - shown, what));
        }
        shown
    }

    /// As many sections as fit, in order (empty ones cost nothing).
    pub fn sections(&mut self, sections: &[String]) {
        let mut left_out = 0;
        for section in sections.iter().filter(|s| !s.is_empty()) {
            if left_out == 0 && section.len() <= self.room() {
                self.out.push_str(section);
            } else {
                left_out += 1;
            }
        }
        if left_out > 0 {
            self.left_out.push((left_out, "detail section(s)"));
        }
    }

    /// The report with `ending`, and a note naming what was left out and
    /// `whole` (where to see all of it).
    pub fn finish(mut self, ending: &str, whole: &str) -> String {
        if !self.left_out.is_empty() {
            if !self.out.ends_with("\n\n") {
                self.out.push('\n');
            }
            let parts: Vec<String> = self
                .left_out
                .iter()
                .map(|(count, what)| format!("{count} {what}"))
                .collect();
            let _ = writeln!(
                self.out,
                "> **Truncated** to stay within {} bytes: {} not shown; {whole}.\n",
                self.max_bytes,
                parts.join(" and ")
            );
        }
        self.out.push_str(ending);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_spans_and_fences_outgrow_the_backticks_inside() {
        assert_eq!(code("a|b"), "`a\\|b`");
        assert_eq!(code("x ``y`` z"), "```x ``y`` z```");
        assert_eq!(code("`edge"), "`` `edge ``");
        assert_eq!(fenced("diff", "- a\n"), "```diff\n- a\n```\n");
        assert_eq!(fenced("", "```\n"), "````\n```\n````\n");
        assert_eq!(html_code("a[\"<b>\"]"), "<code>a[\"&lt;b&gt;\"]</code>");
    }

    #[test]
    fn a_bounded_report_stops_early_and_says_what_it_left_out() {
        let rows: Vec<String> = (0..1000).map(|i| format!("| row {i} |\n")).collect();
        let sections: Vec<String> = (0..1000).map(|i| details(&i.to_string(), "body")).collect();
        let mut report = Bounded::new(4000);
        report.head("# title\n");
        let shown = report.rows(&rows, "resource(s)");
        report.sections(&sections[..shown]);
        let text = report.finish("the end\n", "run the command");
        assert!(text.len() <= 4000, "{}", text.len());
        assert!(shown > 0 && shown < 1000);
        assert!(
            text.contains(&format!("{} resource(s)", 1000 - shown)),
            "{text}"
        );
        assert!(text.ends_with("the end\n"));
        assert!(text.contains("run the command"));
    }
}
