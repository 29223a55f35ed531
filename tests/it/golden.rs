//! Golden tests: every directory in `tests/fixtures/` is a configuration;
//! its rendered diagnostics (no-colour theme) and, when valid, its evaluated
//! configuration must equal `expected.txt`. Regenerate with
//! `UPDATE_EXPECT=1 cargo test --test it golden` and review the diff.
//!
//! A fixture may hold `vars` (one `NAME=VALUE` per line, passed as `-var`)
//! and `*.infravars` files (passed as `-var-file`).

use std::path::{Path, PathBuf};

use infra::check::{CheckOptions, check};

use crate::support;
use infra::diagnostics::{Code, ReportStyle, render_all};
use infra::eval::{BlockSchema, SchemaCatalog};

fn fixture_dirs() -> Vec<PathBuf> {
    support::directories_in("tests/fixtures")
}

fn options_for(dir: &Path) -> CheckOptions {
    let vars = std::fs::read_to_string(dir.join("vars"))
        .map(|text| {
            text.lines()
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let mut var_files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read fixture")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "infravars"))
        .collect();
    var_files.sort();
    CheckOptions {
        dir: dir.to_path_buf(),
        display_dir: PathBuf::new(),
        vars,
        var_files,
        schemas: std::sync::Arc::new(test_catalog()),
        ..CheckOptions::default()
    }
}

/// A fictional provider `test`, to exercise schema checks: the engine's real
/// catalog comes from the providers. It covers only `test_*` types, so the
/// other fixtures are not checked against it.
fn test_catalog() -> SchemaCatalog {
    use infra::eval::{AttributeSchema as A, TypeConstraint as T};
    let network = BlockSchema {
        attributes: [
            ("cidr".to_string(), A::required(T::String)),
            ("name".to_string(), A::optional(T::String)),
            ("id".to_string(), A::computed(T::String)),
            ("tags".to_string(), A::optional(T::Map(Box::new(T::String)))),
        ]
        .into(),
        blocks: Default::default(),
        set: false,
    };
    let rule = BlockSchema {
        attributes: [("port".to_string(), A::required(T::Number))].into(),
        blocks: Default::default(),
        set: false,
    };
    let server = BlockSchema {
        attributes: [
            ("image".to_string(), A::required(T::String)),
            ("size".to_string(), A::optional(T::Number)),
            ("network_id".to_string(), A::optional(T::String)),
            ("id".to_string(), A::computed(T::String)),
            ("address".to_string(), A::computed(T::String)),
        ]
        .into(),
        blocks: [("rule".to_string(), rule)].into(),
        set: false,
    };
    support::test_provider_catalog(network, server)
}

fn render_case(dir: &Path) -> String {
    let checked = check(&options_for(dir));
    let mut out = render_all(&checked.diagnostics, &checked.sources, ReportStyle::Plain);
    out.push_str(&format!(
        "=== {} error(s), {} warning(s)\n",
        checked.diagnostics.error_count(),
        checked.diagnostics.warning_count()
    ));
    if !checked.diagnostics.has_errors()
        && let Some(evaluated) = &checked.evaluated
    {
        out.push_str(&evaluated.render());
    }
    out
}

#[test]
fn fixtures_match_their_expected_output() {
    let dirs = fixture_dirs();
    assert!(
        dirs.len() >= 10,
        "expected the fixture set, found {}",
        dirs.len()
    );
    for dir in dirs {
        support::golden(&dir.join("expected.txt"), &render_case(&dir));
    }
}

/// Every error kind LANGUAGE.md promises has at least one fixture.
#[test]
fn every_error_kind_has_a_fixture() {
    let all: String = fixture_dirs()
        .iter()
        .map(|dir| std::fs::read_to_string(dir.join("expected.txt")).unwrap_or_default())
        .collect();
    for code in [
        "infra::syntax",
        "infra::unknown_reference",
        "infra::unknown_attribute",
        "infra::unknown_function",
        "infra::unknown_block",
        "infra::unknown_argument",
        "infra::type_mismatch",
        "infra::missing_variable",
        "infra::missing_argument",
        "infra::duplicate",
        "infra::cycle",
        "infra::module_cycle",
        "infra::module_source",
        "infra::invalid_type",
        "infra::unknown_value",
        "infra::invalid_duration",
        "infra::unknown_strategy",
        "infra::unknown_resource_type",
        "infra::computed_argument",
        "infra::unexpected_block",
        "infra::unknown_backend",
        "infra::reserved_name",
        "infra::invalid_query",
        "infra::function_arity",
        "infra::unexpected_attribute",
        "infra::block_labels",
        "infra::count_and_for_each",
        "infra::division_by_zero",
        "infra::invalid_index",
        "infra::function_error",
        "infra::invalid_reference",
        "infra::undeclared_variable",
    ] {
        assert!(all.contains(code), "no fixture produces `{code}`");
    }
}

/// The README documents every function; docs/diagnostics.md every
/// diagnostic code, with the meaning the catalogue gives it, and no other.
#[test]
fn readme_lists_every_function_and_the_docs_every_diagnostic_code() {
    let readme = std::fs::read_to_string("README.md").expect("README.md");
    let rows = function_table(&readme);
    for name in infra::eval::function_names() {
        assert!(
            rows.iter()
                .any(|(signature, _, _)| signature.starts_with(&format!("{name}("))),
            "README's function table lacks `{name}`"
        );
    }
    let docs = std::fs::read_to_string("docs/diagnostics.md").expect("docs/diagnostics.md");
    let documented: Vec<&str> = docs
        .lines()
        .filter_map(|line| line.strip_prefix("| `infra::"))
        .filter_map(|rest| rest.split('`').next())
        .collect();
    let catalogue: Vec<&str> = Code::ALL
        .iter()
        .map(|code| code.as_str().trim_start_matches("infra::"))
        .collect();
    assert_eq!(
        documented, catalogue,
        "docs/diagnostics.md lists the catalogue, in order"
    );
    for code in Code::ALL {
        let row = format!("| `{code}` | {} |", code.summary());
        assert!(
            docs.contains(&row),
            "docs/diagnostics.md lacks the row {row}"
        );
    }
}

/// The rows of README's function table: signature, example, result.
fn function_table(readme: &str) -> Vec<(String, String, String)> {
    let section = readme
        .split("\n### Functions\n")
        .nth(1)
        .expect("README has a `### Functions` section");
    section
        .lines()
        .skip_while(|line| !line.starts_with("| Function |"))
        .skip(2)
        .take_while(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line
                .trim_matches('|')
                .split(" | ")
                .map(|cell| cell.trim().trim_matches('`'))
                .collect();
            assert_eq!(cells.len(), 3, "a row of three cells: {line}");
            (cells[0].into(), cells[1].into(), cells[2].into())
        })
        .collect()
}

/// Every example of README's function table, evaluated in a module beside
/// the files of `tests/function_table/`, gives the result the table shows
/// (`(sensitive value)` for a secret, `(known after apply)` for what only
/// apply knows).
#[test]
fn readme_function_examples_give_their_results() {
    let readme = std::fs::read_to_string("README.md").expect("README.md");
    let rows = function_table(&readme);
    assert!(rows.len() >= 80, "the table has every function");
    let dir = tempfile::tempdir().expect("tempdir");
    support::copy_dir(Path::new("tests/function_table"), dir.path());
    let mut config = String::new();
    for (index, (_, example, _)) in rows.iter().enumerate() {
        config.push_str(&format!(
            "output f{index:03} {{\n  value = {example}\n}}\n\n"
        ));
    }
    std::fs::write(dir.path().join("main.infra"), config).expect("write");
    let checked = check(&CheckOptions {
        dir: dir.path().to_path_buf(),
        ..CheckOptions::default()
    });
    let problems: Vec<String> = checked
        .diagnostics
        .iter()
        .map(|d| d.message.clone())
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
    let outputs = &checked.evaluated.expect("evaluated").outputs;
    for (index, (signature, example, result)) in rows.iter().enumerate() {
        let output = &outputs[&format!("f{index:03}")];
        let shown = if output.sensitive {
            "(sensitive value)".to_string()
        } else {
            output.value.to_string()
        };
        assert_eq!(&shown, result, "README: `{signature}`: `{example}`");
    }
}

/// Every diagnostic code is produced by some test: it appears in a golden
/// file (fixtures, plan cases), in the assertions of a test that runs the
/// binary (`infra::NAME` on its own line, as rendered), or as `Code::Name`
/// in a test of the library.
#[test]
fn every_diagnostic_code_is_produced_by_a_test() {
    let texts: String = support::files_under("tests", "")
        .into_iter()
        .filter(|(path, _)| !path.ends_with("golden.rs"))
        .map(|(_, text)| text)
        .collect();
    let produced = |code: &Code| {
        let rendered = code.as_str();
        let named = format!("Code::{code:?}");
        texts.match_indices(rendered).any(|(at, _)| {
            // `infra::apply` in `use infra::apply::…` is not the code.
            !texts[at + rendered.len()..]
                .starts_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':')
        }) || texts.match_indices(&named).any(|(at, _)| {
            !texts[at + named.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
        })
    };
    let untested: Vec<&str> = Code::ALL
        .iter()
        .filter(|code| !produced(code))
        .map(|code| code.as_str())
        .collect();
    assert!(untested.is_empty(), "no test produces {untested:?}");
}
