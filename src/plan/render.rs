//! A plan as people read it: grouped per resource, attribute by attribute.
//!
//! ```text
//!   # test_network.main must be replaced
//! -/+ resource "test_network" "main" {
//!       ~ cidr = "10.0.0.0/16" -> "10.9.0.0/16" # forces replacement
//!       ~ id   = "net-1" -> (known after apply)
//!         # (1 unchanged attribute hidden)
//!     }
//! ```
//!
//! Values print in `.infra` syntax; unknown ones as `(known after apply)`,
//! sensitive ones (per the schema, or computed from sensitive values) as `(sensitive value)`, multi-line strings
//! as a line diff. Colour only when asked for (a terminal).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::diff::{Action, Change, Plan};
use crate::config::ResourceMode;
use crate::deploy::record::Status;
use crate::eval::{BlockSchema, SchemaCatalog, SchemaLookup, Value};

#[derive(Debug, Clone, Copy, Default)]
pub struct RenderOptions {
    pub color: bool,
}

const GREEN: &str = "\u{1b}[32m";
const YELLOW: &str = "\u{1b}[33m";
const RED: &str = "\u{1b}[31m";
const CYAN: &str = "\u{1b}[36m";
const BOLD: &str = "\u{1b}[1m";
const RESET: &str = "\u{1b}[0m";

struct Printer<'a> {
    out: String,
    options: RenderOptions,
    schema: Option<&'a BlockSchema>,
    /// Sensitive beyond the schema (computed from sensitive values).
    sensitive: &'a [String],
}

fn color_of(sign: &str) -> &'static str {
    match sign {
        "+" => GREEN,
        "~" => YELLOW,
        "-" => RED,
        "<=" => CYAN,
        _ => YELLOW,
    }
}

impl Printer<'_> {
    fn sign(&self, sign: &str) -> String {
        if self.options.color && sign.trim() != "" {
            format!("{}{sign}{RESET}", color_of(sign.trim()))
        } else {
            sign.to_string()
        }
    }

    /// Whether the attribute is a secret whole.
    fn is_sensitive(&self, name: &str) -> bool {
        crate::eval::names_whole_attribute(name, self.sensitive)
            || self
                .schema
                .and_then(|s| s.attributes.get(name))
                .is_some_and(|a| a.sensitive)
    }

    /// Whether any part of the attribute is a secret.
    fn holds_secret(&self, name: &str) -> bool {
        self.is_sensitive(name) || crate::eval::has_nested_paths(name, self.sensitive)
    }

    /// The attribute as shown: secrets (whole or in part) redacted.
    fn value(&self, name: &str, value: &Value) -> String {
        if self.is_sensitive(name) && !matches!(value, Value::Null | Value::Unknown) {
            crate::eval::REDACTED.into()
        } else {
            crate::eval::shown_redacted(value, name, self.sensitive)
        }
    }

    fn line(&mut self, sign: &str, name: &str, width: usize, text: &str) {
        let sign = if sign.is_empty() {
            " ".to_string()
        } else {
            self.sign(sign)
        };
        let _ = writeln!(self.out, "      {sign} {name:width$} = {text}");
    }

    /// The inside of a changed map or list, `indent` columns in, one
    /// element per line: only what changed is shown (`~ key = a -> b`,
    /// `+ key = …`, `- …`), nested maps and lists of the same kind are
    /// opened in turn, and what did not change is counted. Lists are
    /// compared element by element along their longest common run, so one
    /// rule inserted in a list shows as one `+`, not as every rule moved.
    fn nested(&mut self, indent: usize, old: &Value, new: &Value) {
        let pad = " ".repeat(indent);
        let mut unchanged = 0;
        match (old, new) {
            (Value::Map(before), Value::Map(after)) => {
                let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
                let label = |key: &str| {
                    if key
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
                        && !key.is_empty()
                    {
                        key.to_string()
                    } else {
                        Value::string(key).to_string()
                    }
                };
                let width = keys
                    .iter()
                    .map(|k| label(k).chars().count())
                    .max()
                    .unwrap_or(0);
                for key in keys {
                    let name = label(key);
                    match (before.get(key), after.get(key)) {
                        (Some(a), Some(b)) if a == b && b.is_wholly_known() => unchanged += 1,
                        (None, Some(b)) => {
                            self.added(indent, &format!("{name:width$} = "), b, "");
                        }
                        (Some(a), None) => {
                            let _ = writeln!(
                                self.out,
                                "{pad}{} {name:width$} = {a} -> null",
                                self.sign("-")
                            );
                        }
                        (Some(a), Some(b)) => {
                            self.nested_element(&pad, &format!("{name:width$} = "), a, b, "");
                        }
                        (None, None) => {}
                    }
                }
                self.unchanged(&pad, unchanged, "element");
            }
            (Value::List(before), Value::List(after)) => {
                let old_text: Vec<String> = before.iter().map(Value::to_string).collect();
                let new_text: Vec<String> = after.iter().map(Value::to_string).collect();
                let ops =
                    similar::capture_diff_slices(similar::Algorithm::Myers, &old_text, &new_text);
                for op in ops {
                    let (tag, old_range, new_range) = op.as_tag_tuple();
                    match tag {
                        similar::DiffTag::Equal => {
                            let known = new_range.clone().all(|i| after[i].is_wholly_known());
                            if known {
                                unchanged += new_range.len();
                                continue;
                            }
                            for (i, j) in old_range.zip(new_range) {
                                self.nested_element(&pad, "", &before[i], &after[j], ",");
                            }
                        }
                        similar::DiffTag::Delete => {
                            for i in old_range {
                                let _ =
                                    writeln!(self.out, "{pad}{} {},", self.sign("-"), before[i]);
                            }
                        }
                        similar::DiffTag::Insert => {
                            for j in new_range {
                                self.added(indent, "", &after[j], ",");
                            }
                        }
                        similar::DiffTag::Replace => {
                            for pair in pair_up(&before[old_range], &after[new_range]) {
                                match pair {
                                    (Some(a), Some(b)) => self.nested_element(&pad, "", a, b, ","),
                                    (Some(a), None) => {
                                        let _ = writeln!(self.out, "{pad}{} {a},", self.sign("-"));
                                    }
                                    (None, Some(b)) => {
                                        let _ = writeln!(self.out, "{pad}{} {b},", self.sign("+"));
                                    }
                                    (None, None) => {}
                                }
                            }
                        }
                    }
                }
                self.unchanged(&pad, unchanged, "element");
            }
            _ => {}
        }
    }

    /// A value being added, `indent` columns in after `label`: a long list
    /// or map (generated blocks, rules) opened one element per line, at
    /// every depth; anything else on the line.
    fn added(&mut self, indent: usize, label: &str, value: &Value, comma: &str) {
        let pad = " ".repeat(indent);
        let sign = self.sign("+");
        let long =
            matches!(value, Value::List(_) | Value::Map(_)) && value.to_string().len() > LONG_VALUE;
        if !long {
            let _ = writeln!(self.out, "{pad}{sign} {label}{value}{comma}");
            return;
        }
        let (opener, empty, closer) = if matches!(value, Value::Map(_)) {
            ("{", Value::map(Default::default()), "}")
        } else {
            ("[", Value::list(Vec::new()), "]")
        };
        let _ = writeln!(self.out, "{pad}{sign} {label}{opener}");
        self.nested(indent + 4, &empty, value);
        let _ = writeln!(self.out, "{pad}  {closer}{comma}");
    }

    /// One changed element: opened if both sides are maps (or both lists),
    /// `a -> b` otherwise.
    fn nested_element(&mut self, pad: &str, label: &str, old: &Value, new: &Value, comma: &str) {
        let sign = self.sign("~");
        let same_kind = matches!(
            (old, new),
            (Value::Map(_), Value::Map(_)) | (Value::List(_), Value::List(_))
        );
        if same_kind {
            let (opener, closer) = if matches!(new, Value::Map(_)) {
                ("{", "}")
            } else {
                ("[", "]")
            };
            let _ = writeln!(self.out, "{pad}{sign} {label}{opener}");
            self.nested(pad.len() + 4, old, new);
            let _ = writeln!(self.out, "{pad}  {closer}{comma}");
        } else {
            let _ = writeln!(self.out, "{pad}{sign} {label}{old} -> {new}{comma}");
        }
    }

    fn unchanged(&mut self, pad: &str, count: usize, what: &str) {
        if count > 0 {
            let plural = if count == 1 { "" } else { "s" };
            let _ = writeln!(
                self.out,
                "{pad}  # ({count} unchanged {what}{plural} hidden)"
            );
        }
    }

    /// A multi-line string change as a line diff inside a heredoc.
    fn text_diff(&mut self, sign: &str, name: &str, width: usize, before: &str, after: &str) {
        let opener = self.sign(sign);
        let _ = writeln!(self.out, "      {opener} {name:width$} = <<-EOT");
        let diff = similar::TextDiff::from_lines(before, after);
        for change in diff.iter_all_changes() {
            let line = change.value().trim_end_matches('\n');
            let mark = match change.tag() {
                similar::ChangeTag::Delete => self.sign("-"),
                similar::ChangeTag::Insert => self.sign("+"),
                similar::ChangeTag::Equal => " ".into(),
            };
            let _ = writeln!(self.out, "          {mark} {line}");
        }
        let _ = writeln!(self.out, "        EOT");
    }
}

/// Old and new elements of a changed run of a list, in order: an old
/// element goes with the first later new one that shares the most entries
/// with it (a rule whose CIDR changed is the same rule), the others are
/// removed or added where they stand.
fn pair_up<'v>(
    before: &'v [Value],
    after: &'v [Value],
) -> Vec<(Option<&'v Value>, Option<&'v Value>)> {
    fn shared(a: &Value, b: &Value) -> usize {
        match (a, b) {
            (Value::Map(a), Value::Map(b)) => {
                a.iter().filter(|(k, v)| b.get(*k) == Some(*v)).count()
            }
            _ => 0,
        }
    }
    let mut pairs = Vec::new();
    let mut next = 0;
    for old in before {
        let best = (next..after.len())
            .map(|j| (shared(old, &after[j]), j))
            .filter(|(score, _)| *score > 0)
            .max_by(|(a, i), (b, j)| a.cmp(b).then(j.cmp(i)));
        match best {
            Some((_, j)) => {
                pairs.extend(after[next..j].iter().map(|new| (None, Some(new))));
                pairs.push((Some(old), Some(&after[j])));
                next = j + 1;
            }
            None => pairs.push((Some(old), None)),
        }
    }
    pairs.extend(after[next..].iter().map(|new| (None, Some(new))));
    pairs
}

fn header_name(change: &Change) -> (String, String) {
    let marker = format!("{}.", change.type_name);
    let rest = change
        .address
        .rfind(&marker)
        .map(|at| &change.address[at + marker.len()..])
        .unwrap_or(&change.address);
    // `x[0]` and `x (deposed 1a2b3c4d)` are both instances of block `x`.
    let name = rest.split(['[', ' ']).next().unwrap_or(rest).to_string();
    (change.type_name.clone(), name)
}

fn description(action: Action) -> &'static str {
    match action {
        Action::Create => "will be created",
        Action::Update => "will be updated in place",
        Action::Replace {
            create_before_destroy: false,
        } => "must be replaced",
        Action::Replace {
            create_before_destroy: true,
        } => "must be replaced (the new one is created before the old one is destroyed)",
        Action::Delete => "will be destroyed",
        Action::Read => "will be read during apply",
        Action::NoOp => "is unchanged",
    }
}

/// Whether a data source must wait for apply: one of its arguments is
/// unknown. Others are read while planning and are not shown.
fn deferred_read(change: &Change, schema: Option<&BlockSchema>) -> bool {
    change.after.as_ref().is_some_and(|after| {
        after.iter().any(|(name, value)| {
            let is_argument = schema
                .and_then(|s| s.attributes.get(name))
                .is_none_or(|a| a.is_settable());
            is_argument && !value.is_wholly_known()
        })
    })
}

/// Past this many characters, a list or map being added is shown one
/// element per line.
const LONG_VALUE: usize = 80;

/// The plan for people: each change shown, then the outputs that change,
/// then the summary.
pub fn render(plan: &Plan, schemas: &SchemaCatalog, options: RenderOptions) -> String {
    let mut out = String::new();
    let mut shown = 0;
    for change in &plan.changes {
        let Some(block) = change_block(plan, change, schemas, options) else {
            continue;
        };
        if shown == 0 {
            out.push_str("infra will perform the following actions:\n\n");
        }
        shown += 1;
        out.push_str(&block);
        out.push('\n');
    }
    if !plan.outputs.is_empty() {
        out.push_str("Changes to Outputs:\n");
        let width = plan.outputs.iter().map(|o| o.name.len()).max().unwrap_or(0);
        for output in &plan.outputs {
            let _ = writeln!(out, "{}", output.line(width));
        }
        out.push('\n');
    }
    let summary = plan.summary();
    if options.color && plan.has_changes() {
        let _ = writeln!(out, "{BOLD}{summary}{RESET}");
    } else if plan.has_changes() {
        let _ = writeln!(out, "{summary}");
    } else {
        let _ = writeln!(
            out,
            "No changes. The infrastructure matches the configuration."
        );
    }
    out
}

/// One change as `render` shows it (`  # random_id.x will be created` and
/// its attributes), or none for a change that is not shown (no-op, a data
/// source read while planning).
pub fn change_block(
    plan: &Plan,
    change: &Change,
    schemas: &SchemaCatalog,
    options: RenderOptions,
) -> Option<String> {
    let schema = match schemas.lookup(change.mode, &change.type_name) {
        SchemaLookup::Found(schema) => Some(schema),
        _ => None,
    };
    match change.action {
        Action::NoOp => return None,
        Action::Read if !deferred_read(change, schema) => return None,
        _ => {}
    }
    let mut printer = Printer {
        out: String::new(),
        options,
        schema,
        sensitive: &change.sensitive,
    };
    render_change(&mut printer, change);
    if let Some(rollout) = plan.rollouts.get(&change.address) {
        for line in rollout.to_string().lines() {
            let _ = writeln!(printer.out, "    # {line}");
        }
        if let Some(recorded) = &rollout.recorded {
            let _ = writeln!(printer.out, "    # {}", recorded.summary());
            let next = match recorded.status {
                Status::Paused => format!(
                    "`infra rollout promote {0}` continues it, `infra rollout abort {0}` rolls it back",
                    change.address
                ),
                Status::Running => "apply resumes it at that step".to_string(),
                Status::RolledBack | Status::Failed => {
                    "apply starts it again from the first step".to_string()
                }
            };
            let _ = writeln!(printer.out, "    # {next}");
        }
    }
    Some(printer.out)
}

fn render_change(printer: &mut Printer, change: &Change) {
    let (type_name, name) = header_name(change);
    let requested =
        if matches!(change.action, Action::Replace { .. }) && change.replaced_because.is_empty() {
            ", as requested with --replace"
        } else {
            ""
        };
    let _ = writeln!(
        printer.out,
        "  # {} {}{requested}",
        change.address,
        description(change.action)
    );
    // Header signs are right-aligned in three columns: `  +`, `-/+`, ` <=`.
    let sign = format!("{:>3}", change.action.symbol());
    // A deployment reads as the block the user wrote: `deployment "web"`.
    let deployment = change
        .type_name
        .ends_with("_deployment")
        .then(|| change.address.rsplit_once("deployment."))
        .flatten()
        .map(|(_, name)| name.split(['[', ' ']).next().unwrap_or(name).to_string());
    let keyword = if change.mode == ResourceMode::Data {
        "data"
    } else if deployment.is_some() {
        "deployment"
    } else {
        "resource"
    };
    let colored = if printer.options.color {
        let color = match change.action {
            Action::Create => GREEN,
            Action::Update | Action::Replace { .. } => YELLOW,
            Action::Delete => RED,
            _ => CYAN,
        };
        format!("{color}{sign}{RESET}")
    } else {
        sign.clone()
    };
    let labels = match deployment {
        Some(name) => format!("\"{name}\""),
        None => format!("\"{type_name}\" \"{name}\""),
    };
    let _ = writeln!(printer.out, "{colored} {keyword} {labels} {{");
    let empty = Default::default();
    let before = change.before.as_deref().unwrap_or(&empty);
    let after = change.after.as_deref().unwrap_or(&empty);
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let forced: BTreeSet<&str> = change.replaced_because.iter().map(String::as_str).collect();
    let mut lines: Vec<(&str, &str, Option<&Value>, Option<&Value>)> = Vec::new();
    let mut hidden = 0;
    for name in names {
        let old = before.get(name).filter(|v| !matches!(v, Value::Null));
        let new = after.get(name).filter(|v| !matches!(v, Value::Null));
        let sign = match change.action {
            Action::Create | Action::Read => "+",
            Action::Delete => "-",
            _ => match (old, new) {
                (None, None) => continue,
                (None, Some(_)) => "+",
                (Some(_), None) => "-",
                (Some(a), Some(b)) if a == b && b.is_wholly_known() => {
                    hidden += 1;
                    continue;
                }
                _ => "~",
            },
        };
        if (sign == "+" && new.is_none()) || (sign == "-" && old.is_none()) {
            continue;
        }
        lines.push((sign, name, old, new));
    }
    let width = lines
        .iter()
        .map(|(_, name, _, _)| name.chars().count())
        .max()
        .unwrap_or(0);
    for (sign, name, old, new) in lines {
        let suffix = if forced.contains(name) {
            " # forces replacement"
        } else {
            ""
        };
        match (sign, old, new) {
            ("~", Some(Value::String(a)), Some(Value::String(b)))
                if (a.contains('\n') || b.contains('\n')) && !printer.holds_secret(name) =>
            {
                printer.text_diff("~", name, width, a, b);
            }
            ("+", _, Some(Value::String(b))) if b.contains('\n') && !printer.holds_secret(name) => {
                printer.text_diff("+", name, width, "", b);
            }
            // A long list or map (generated blocks, rules) one element per
            // line, as a change to it would show.
            ("+", _, Some(new)) if !printer.holds_secret(name) && suffix.is_empty() => {
                printer.added(6, &format!("{name:width$} = "), new, "");
            }
            ("+", _, Some(new)) => {
                let text = printer.value(name, new);
                printer.line("+", name, width, &format!("{text}{suffix}"));
            }
            ("-", Some(old), _) => {
                let text = printer.value(name, old);
                printer.line("-", name, width, &format!("{text} -> null"));
            }
            (_, Some(old @ (Value::Map(_) | Value::List(_))), Some(new))
                if std::mem::discriminant(old) == std::mem::discriminant(new)
                    && !printer.holds_secret(name) =>
            {
                let opener = if matches!(new, Value::Map(_)) {
                    "{"
                } else {
                    "["
                };
                let sign = printer.sign("~");
                let _ = writeln!(printer.out, "      {sign} {name:width$} = {opener}{suffix}");
                printer.nested(10, old, new);
                let closer = if matches!(new, Value::Map(_)) {
                    "}"
                } else {
                    "]"
                };
                let _ = writeln!(printer.out, "        {closer}");
            }
            (_, Some(old), Some(new)) => {
                let text = format!(
                    "{} -> {}{suffix}",
                    printer.value(name, old),
                    printer.value(name, new)
                );
                printer.line("~", name, width, &text);
            }
            _ => {}
        }
    }
    if hidden > 0 {
        let plural = if hidden == 1 { "" } else { "s" };
        let _ = writeln!(
            printer.out,
            "        # ({hidden} unchanged attribute{plural} hidden)"
        );
    }
    let _ = writeln!(printer.out, "    }}");
}

/// The plan for a pull request comment (`plan --format markdown`): the
/// summary as a title, a table of the changes, each change's block as a
/// collapsed `diff` (signs moved to the first column so the platform
/// colours them), the outputs that change; at most `max_bytes` long, with
/// a note counting what it left out.
pub fn render_markdown(plan: &Plan, schemas: &SchemaCatalog, max_bytes: usize) -> String {
    use super::markdown;
    if !plan.has_changes() {
        return "### infra plan: no changes\n\nThe infrastructure matches the configuration.\n"
            .into();
    }
    let plain = RenderOptions { color: false };
    let shown: Vec<(&Change, String)> = plan
        .changes
        .iter()
        .filter_map(|change| Some((change, change_block(plan, change, schemas, plain)?)))
        .collect();
    let mut report = markdown::Bounded::new(max_bytes);
    report.head(&format!("### infra {}\n\n", plan.summary().to_lowercase()));
    if !shown.is_empty() {
        report.head("| Resource | Action |\n|---|---|\n");
    }
    let rows: Vec<String> = shown
        .iter()
        .map(|(change, _)| {
            let action = match change.action {
                Action::Replace {
                    create_before_destroy: true,
                } => "replace (create before destroy)",
                action => action.name(),
            };
            format!("| {} | {action} |\n", markdown::code(&change.address))
        })
        .collect();
    let rows_shown = report.rows(&rows, "change(s)");
    report.line("\n");
    let mut sections: Vec<String> = shown[..rows_shown]
        .iter()
        .map(|(change, block)| {
            markdown::details(
                &format!(
                    "{} {}",
                    markdown::html_code(&change.address),
                    description(change.action)
                ),
                &markdown::fenced("diff", &signs_first(block)),
            )
        })
        .collect();
    if !plan.outputs.is_empty() {
        let width = plan.outputs.iter().map(|o| o.name.len()).max().unwrap_or(0);
        let lines: String = plan
            .outputs
            .iter()
            .map(|output| output.line(width) + "\n")
            .collect();
        sections.push(format!(
            "**Changes to Outputs**\n\n{}\n",
            markdown::fenced("diff", &signs_first(&lines))
        ));
    }
    report.sections(&sections);
    report.finish(
        "`infra apply` makes these changes; a plan saved with `-out FILE` is applied exactly by `infra apply FILE`.\n",
        "run `infra plan` (or `infra show FILE` for a saved plan) for the whole plan",
    )
}

/// Moves each line's leading `+`, `-` or `~` to the first column (keeping
/// the line's width), as a `diff` block wants it.
fn signs_first(block: &str) -> String {
    let mut out = String::with_capacity(block.len());
    for line in block.lines() {
        let indent = line.len() - line.trim_start().len();
        match line[indent..].chars().next() {
            Some(sign @ ('+' | '-' | '~')) if indent > 0 => {
                out.push(sign);
                out.push_str(&line[..indent]);
                out.push_str(&line[indent + 1..]);
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}
