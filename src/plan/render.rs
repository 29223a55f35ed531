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

pub fn render(plan: &Plan, schemas: &SchemaCatalog, options: RenderOptions) -> String {
    let mut out = String::new();
    let mut shown = 0;
    for change in &plan.changes {
        let schema = match schemas.lookup(change.mode, &change.type_name) {
            SchemaLookup::Found(schema) => Some(schema),
            _ => None,
        };
        match change.action {
            Action::NoOp => continue,
            Action::Read if !deferred_read(change, schema) => continue,
            _ => {}
        }
        if shown == 0 {
            out.push_str("infra will perform the following actions:\n\n");
        }
        shown += 1;
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
        out.push_str(&printer.out);
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
            ("+", _, Some(new)) => {
                let text = printer.value(name, new);
                printer.line("+", name, width, &format!("{text}{suffix}"));
            }
            ("-", Some(old), _) => {
                let text = printer.value(name, old);
                printer.line("-", name, width, &format!("{text} -> null"));
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
