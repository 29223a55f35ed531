//! No input — malformed, binary, huge or deeply nested — may panic or hang
//! the parser, evaluator or formatter. A bounded property test mutates every
//! fixture; targeted tests cover nesting and size limits.

use std::path::PathBuf;

use infra::check::{CheckOptions, check};
use infra::diagnostics::Code;
use infra::format::format_source;
use infra::syntax::{FileId, MAX_NESTING, parse_file};
use proptest::prelude::*;

fn corpus() -> Vec<String> {
    let mut texts = Vec::new();
    let mut stack = vec![PathBuf::from("tests/fixtures"), PathBuf::from("examples")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "infra") {
                texts.push(std::fs::read_to_string(path).expect("read"));
            }
        }
    }
    texts.sort();
    texts
}

/// Loads and evaluates `content` as the one file of a configuration.
fn check_file(content: &[u8]) -> infra::check::Checked {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("main.infra"), content).expect("write");
    check(&CheckOptions {
        dir: dir.path().to_path_buf(),
        ..CheckOptions::default()
    })
}

/// Fails unless some diagnostic's message contains `expected`.
fn assert_says(checked: &infra::check::Checked, expected: &str) {
    let found = messages(checked);
    assert!(
        found.iter().any(|m| m.contains(expected)),
        "no message says {expected:?}: {found:?}"
    );
}

fn messages(checked: &infra::check::Checked) -> Vec<&str> {
    checked
        .diagnostics
        .iter()
        .map(|d| d.message.as_str())
        .collect()
}

/// Parses, formats and fully evaluates `text` as a one-file configuration.
fn exercise(text: &str) {
    let (_tree, _diagnostics) = parse_file(FileId(0), text);
    let _ = format_source(FileId(0), text);
    let checked = check_file(text.as_bytes());
    for diagnostic in checked.diagnostics.iter() {
        assert!(!diagnostic.message.is_empty());
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Insert(usize, String),
    Delete(usize, usize),
    Duplicate(usize, usize),
    Truncate(usize),
}

fn apply(text: &str, mutation: &Mutation) -> String {
    let bytes = text.as_bytes();
    let clamp = |at: usize| at % (bytes.len() + 1);
    let mut out: Vec<u8> = match mutation {
        Mutation::Insert(at, piece) => {
            let at = clamp(*at);
            [&bytes[..at], piece.as_bytes(), &bytes[at..]].concat()
        }
        Mutation::Delete(at, len) => {
            let at = clamp(*at);
            let end = (at + len).min(bytes.len());
            [&bytes[..at], &bytes[end..]].concat()
        }
        Mutation::Duplicate(at, len) => {
            let at = clamp(*at);
            let end = (at + len).min(bytes.len());
            [&bytes[..end], &bytes[at..]].concat()
        }
        Mutation::Truncate(at) => bytes[..clamp(*at)].to_vec(),
    };
    // Keep it text: mutations may split a UTF-8 sequence.
    out = String::from_utf8_lossy(&out).into_owned().into_bytes();
    String::from_utf8(out).expect("lossy conversion yields UTF-8")
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let pieces = prop::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        "(",
        ")",
        "\"",
        "${",
        "<<EOT\n",
        "<<-X\n",
        "\nEOT\n",
        "#",
        "/*",
        "*/",
        "=",
        "==",
        "?",
        ":",
        ",",
        "...",
        "[*]",
        ".",
        "\n",
        "for x in",
        "=>",
        "count.index",
        "each.key",
        "var.",
        "local.a",
        "-",
        "!",
        "\\",
        "\u{0}",
        "é",
        "😀",
        "\u{1}",
        "<<EOT\né\nEOT\n",
        "99999999999999999999",
        "resource a b {",
        "module m { source = \"./m\" }",
    ]);
    prop_oneof![
        (any::<usize>(), pieces.prop_map(String::from)).prop_map(|(at, p)| Mutation::Insert(at, p)),
        (any::<usize>(), 0usize..40).prop_map(|(at, len)| Mutation::Delete(at, len)),
        (any::<usize>(), 0usize..200).prop_map(|(at, len)| Mutation::Duplicate(at, len)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn mutated_fixtures_never_panic(seed in 0usize..10_000, mutations in prop::collection::vec(mutation(), 1..6)) {
        let corpus = corpus();
        let mut text = corpus[seed % corpus.len()].clone();
        for m in &mutations {
            text = apply(&text, m);
        }
        exercise(&text);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        exercise(&text);
    }
}

#[test]
fn deep_nesting_is_a_clear_error_not_a_crash() {
    for (open, close) in [("[", "]"), ("(", ")"), ("{ a = ", " }"), ("\"${", "}\"")] {
        let depth = 100_000;
        let text = format!(
            "locals {{\n  x = {}1{}\n}}\n",
            open.repeat(depth),
            close.repeat(depth)
        );
        let (_, diagnostics) = parse_file(FileId(0), &text);
        assert!(
            diagnostics
                .iter()
                .any(|d| d.message == "nesting is too deep" && d.code == Code::TooDeep),
            "{open}: {diagnostics:?}"
        );
    }
    let within = format!(
        "locals {{\n  x = {}1{}\n}}\n",
        "[".repeat(MAX_NESTING - 2),
        "]".repeat(MAX_NESTING - 2)
    );
    let (_, diagnostics) = parse_file(FileId(0), &within);
    assert!(
        diagnostics.is_empty(),
        "{} levels are allowed: {diagnostics:?}",
        MAX_NESTING - 2
    );
}

#[test]
fn long_operator_chains_are_bounded() {
    let text = format!(
        "locals {{\n  x = 1{}\n  y = {}1\n}}\n",
        " + 1".repeat(100_000),
        "!".repeat(100_000)
    );
    let (_, diagnostics) = parse_file(FileId(0), &text);
    assert_eq!(
        diagnostics
            .iter()
            .filter(|d| d.message == "expression has too many operators" && d.code == Code::TooDeep)
            .count(),
        2
    );
    exercise(&format!("locals {{\n  x = 1{}\n}}\n", " + 1".repeat(400)));
}

#[test]
fn binary_and_huge_inputs_are_refused_cleanly() {
    let checked = check_file(&[0xff, 0xfe, 0x00, 0x41, 0x80]);
    assert!(
        messages(&checked).contains(&"`main.infra` is not UTF-8 text"),
        "{:?}",
        messages(&checked)
    );
    assert!(checked.diagnostics.iter().any(|d| d.code == Code::NotUtf8));

    let huge = "x".repeat(infra::syntax::MAX_FILE_BYTES + 1);
    let (_, diagnostics) = parse_file(FileId(0), &huge);
    assert!(diagnostics[0].message.starts_with("file is too large"));
    assert_eq!(diagnostics[0].code, Code::FileTooLarge);
}

#[test]
fn exponential_evaluation_is_bounded() {
    let text = "locals {\n  a = range(1000)\n  b = [for x in local.a : [for y in local.a : [for z in local.a : z]]]\n}\n";
    let checked = check_file(text.as_bytes());
    assert!(
        messages(&checked).contains(&"evaluation is too large"),
        "{:?}",
        messages(&checked)
    );
    assert!(
        checked
            .diagnostics
            .iter()
            .any(|d| d.code == Code::EvaluationTooLarge)
    );
}

/// A diagnostic far out on a very long line (a column over 65,535 overflowed the
/// renderer's layout and panicked) names its location instead of showing
/// the line, in `validate` and in `fmt --check`.
#[test]
fn a_diagnostic_on_a_line_too_long_to_show_names_its_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let line = format!("{}x = = 1\n", " ".repeat(65_536));
    std::fs::write(dir.path().join("main.infra"), &line).expect("write");
    for args in [&["validate"][..], &["fmt", "--check"][..]] {
        let output = crate::support::command(Some(dir.path()), args)
            .output()
            .expect("run infra");
        let err = crate::support::text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("main.infra:1:65541") && err.contains("a line of 65543 characters"),
            "{args:?}: {err}"
        );
        assert!(err.len() < 10_000, "the line itself is not printed");
    }
}

/// `n` locals, each a list of the previous one twice: 2^n values built
/// from shared parts in n lines.
fn doubling_lists(n: usize, then: &str) -> String {
    let mut text = String::from("locals {\n  l0 = [\"x\", \"y\"]\n");
    for i in 1..=n {
        text.push_str(&format!("  l{i} = [local.l{}, local.l{}]\n", i - 1, i - 1));
    }
    text.push_str(then);
    text.push_str("}\n");
    text
}

/// Values that double at every step are cheap to build (their parts are
/// shared) and exponential to walk: comparing, encoding, sorting or
/// flattening them, or saving one as an output, ran for minutes and took
/// gigabytes. Each is now an `evaluation_too_large` error at the
/// expression, found within the step budget.
#[test]
fn values_that_double_at_every_step_are_bounded() {
    let cases = [
        ("  eq = local.l40 == local.l40\n", "comparing"),
        (
            "  j = jsonencode(local.l40)\n",
            "`jsonencode` here would walk",
        ),
        (
            "  s = sort(flatten(local.l40))\n",
            "`flatten` here would walk",
        ),
        ("  d = distinct(local.l40)\n", "`distinct` here would walk"),
        (
            "  r = replace(join(\"\", flatten(local.l15)), \"\", join(\"\", flatten(local.l15)))\n",
            "over the 16 MiB",
        ),
    ];
    for (then, expected) in cases {
        let checked = check_file(doubling_lists(40, then).as_bytes());
        let found = messages(&checked);
        assert!(
            found.iter().any(|m| m.contains(expected)),
            "{then}: {found:?}"
        );
        assert!(
            checked
                .diagnostics
                .iter()
                .any(|d| d.code == Code::EvaluationTooLarge || d.code == Code::FunctionError),
            "{then}"
        );
    }
    let mut output = doubling_lists(40, "");
    output.push_str("output all {\n  value = local.l40\n}\n");
    let checked = check_file(output.as_bytes());
    assert_says(&checked, "this value holds more than 1000000 values");
    // A string that doubles at every step.
    let mut text = String::from("locals {\n  s0 = \"xxxxxxxxxxxxxxxx\"\n");
    for i in 1..=40 {
        text.push_str(&format!(
            "  s{i} = \"${{local.s{}}}${{local.s{}}}\"\n",
            i - 1,
            i - 1
        ));
    }
    text.push_str("}\n");
    let checked = check_file(text.as_bytes());
    assert_says(&checked, "over the 16 MiB a value may have");
}

/// `file()` of a device or a FIFO is refused before reading (`/dev/zero`
/// read until memory ran out).
#[test]
fn file_reads_only_regular_files_and_at_most_its_limit() {
    let checked = check_file(b"locals {\n  z = file(\"/dev/zero\")\n}\n");
    assert_says(&checked, "is not a regular file");
}

/// A module that calls the next one twice, 20 levels deep, is 2^21 module
/// instances: refused once the configuration loads 10,000.
#[test]
fn a_module_tree_that_doubles_at_every_level_is_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    for level in 0..20 {
        let module = dir.path().join(format!("m{level}"));
        std::fs::create_dir(&module).unwrap();
        let body = if level < 19 {
            format!(
                "module a {{\n  source = \"../m{0}\"\n}}\n\nmodule b {{\n  source = \"../m{0}\"\n}}\n",
                level + 1
            )
        } else {
            "locals {\n  x = 1\n}\n".to_string()
        };
        std::fs::write(module.join("main.infra"), body).unwrap();
    }
    std::fs::write(
        dir.path().join("main.infra"),
        "module a {\n  source = \"./m0\"\n}\n",
    )
    .unwrap();
    let checked = check(&CheckOptions {
        dir: dir.path().to_path_buf(),
        ..CheckOptions::default()
    });
    assert_says(&checked, "more than 10000 module instances");
}

/// A function that rejects a value computed from a secret does not quote
/// it: the diagnostic keeps its code, place and help, and hides the rest.
#[test]
fn errors_about_secret_values_do_not_quote_them() {
    let text = r#"
variable token {
  type      = string
  sensitive = true
  default   = "hunter2-do-not-print"
}

locals {
  port = tonumber(var.token)
  plain = tonumber("not-a-secret")
}

resource local_file f {
  path    = "out.txt"
  content = format("%d", "${var.token}-suffix")
}
"#;
    let checked = check_file(text.as_bytes());
    let found = messages(&checked);
    assert!(
        found.iter().all(|m| !m.contains("hunter2")),
        "a secret is quoted: {found:?}"
    );
    let hidden = checked
        .diagnostics
        .iter()
        .filter(|d| {
            d.message
                .contains("computed from a sensitive value (details hidden)")
        })
        .count();
    assert_eq!(hidden, 2, "{found:?}");
    assert!(
        found.iter().any(|m| m.contains("not-a-secret")),
        "other values are still quoted: {found:?}"
    );
}
