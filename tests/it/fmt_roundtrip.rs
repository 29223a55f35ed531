//! `infra fmt` over every fixture and example: idempotent, it changes
//! layout only (`parse(fmt(x)) == parse(x)`), and keeps every comment.

use std::path::{Path, PathBuf};

use infra::format::{format_source, tree_shape};
use infra::syntax::{FileId, parse_file};

fn infra_files_under(root: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            infra_files_under(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "infra") {
            out.push(path);
        }
    }
}

fn all_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    infra_files_under(Path::new("tests/fixtures"), &mut files);
    infra_files_under(Path::new("examples"), &mut files);
    files.sort();
    files
}

#[test]
fn fmt_is_idempotent_and_preserves_meaning_and_comments() {
    let file = FileId(0);
    let mut checked = 0;
    for path in all_files() {
        let text = std::fs::read_to_string(&path).expect("read");
        let (tree, errors) = parse_file(file, &text);
        if !errors.is_empty() {
            assert!(
                format_source(file, &text).is_err(),
                "{}: fmt must refuse a file with syntax errors",
                path.display()
            );
            continue;
        }
        let formatted =
            format_source(file, &text).unwrap_or_else(|_| panic!("{}: fmt failed", path.display()));
        let (reparsed, errors) = parse_file(file, &formatted);
        assert!(
            errors.is_empty(),
            "{}: formatted output does not parse:\n{formatted}",
            path.display()
        );
        assert_eq!(
            tree_shape(&tree.body),
            tree_shape(&reparsed.body),
            "{}: fmt changed the meaning",
            path.display()
        );
        let comments: Vec<&str> = tree.comments.iter().map(|c| c.text.trim_end()).collect();
        let kept: Vec<&str> = reparsed
            .comments
            .iter()
            .map(|c| c.text.trim_end())
            .collect();
        assert_eq!(
            comments,
            kept,
            "{}: fmt lost or reordered comments",
            path.display()
        );
        let again = format_source(file, &formatted).expect("formatted output formats");
        assert_eq!(
            formatted,
            again,
            "{}: fmt is not idempotent",
            path.display()
        );
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} files were checked");
}

#[test]
fn examples_are_already_formatted() {
    let mut files = Vec::new();
    infra_files_under(Path::new("examples"), &mut files);
    assert!(!files.is_empty());
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read");
        let formatted = format_source(FileId(0), &text).expect("example parses");
        assert_eq!(
            text,
            formatted,
            "{} is not in canonical layout; run `infra fmt`",
            path.display()
        );
    }
}

#[test]
fn fmt_applies_the_canonical_layout() {
    let input = "variable   \"env\" {\ntype=string   # why\n    default =    \"x\"\n}\nresource a b {\n  x=1\n  longer=[1,2]\n  lifecycle { create_before_destroy=true }\n}\n";
    let expected = "variable \"env\" {\n  type    = string # why\n  default = \"x\"\n}\n\nresource a b {\n  x      = 1\n  longer = [1, 2]\n  lifecycle {\n    create_before_destroy = true\n  }\n}\n";
    assert_eq!(
        format_source(FileId(0), input).ok().as_deref(),
        Some(expected)
    );
}

/// Shapes that once broke idempotence or wrote what HCL readers reject: a
/// heredoc's closing marker followed by `,` `)` or an operator on its line,
/// and attributes at the top level (always a blank line apart, so never
/// aligned as a run).
#[test]
fn fmt_never_writes_text_after_a_heredoc_marker_and_is_idempotent() {
    let cases = [
        "locals {\n  a = [<<EOT\nx\nEOT\n  , \"b\"]\n}\n",
        "locals {\n  c = f(<<EOT\ny\nEOT\n  , 2)\n}\n",
        "locals {\n  d = <<EOT\nz\nEOT\n  == \"z\\n\" ? 1 : 2\n}\n",
        "locals {\n  e = { k = <<-EOT\n    w\n    EOT\n  }\n}\n",
        "a = 1\nbb = 2\n",
    ];
    for input in cases {
        let once = format_source(FileId(0), input).unwrap_or_else(|_| panic!("parses: {input}"));
        for line in once.lines() {
            let trimmed = line.trim_start();
            assert!(
                !["EOT", "EOT,", "EOT)"]
                    .iter()
                    .any(|m| trimmed.starts_with(m) && trimmed.len() > 3),
                "text after a closing marker in:\n{once}"
            );
        }
        let (reparsed, errors) = parse_file(FileId(0), &once);
        assert!(errors.is_empty(), "does not parse:\n{once}");
        let (original, _) = parse_file(FileId(0), input);
        assert_eq!(tree_shape(&original.body), tree_shape(&reparsed.body));
        let twice = format_source(FileId(0), &once).expect("formatted text parses");
        assert_eq!(once, twice, "a second fmt changed:\n{once}");
    }
}
