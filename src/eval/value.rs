//! [`Value`]: what expressions evaluate to, including *unknown* values that
//! stand for what only `apply` will know (an id the cloud assigns).

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(f64),
    /// Shared text: reading `var.x` or `local.x` clones a pointer, not text.
    String(Arc<str>),
    List(Arc<Vec<Value>>),
    /// Maps and objects alike; keys are ordered, so output is deterministic.
    Map(Arc<BTreeMap<String, Value>>),
    /// Known only after apply; anything computed from it is unknown too.
    Unknown,
}

impl Value {
    pub fn list(items: Vec<Value>) -> Value {
        Value::List(Arc::new(items))
    }

    pub fn map(entries: BTreeMap<String, Value>) -> Value {
        Value::Map(Arc::new(entries))
    }

    pub fn string(text: impl AsRef<str>) -> Value {
        Value::String(Arc::from(text.as_ref()))
    }

    /// The name used in type errors.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::List(_) => "list",
            Value::Map(_) => "object",
            Value::Unknown => "unknown value",
        }
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self, Value::Unknown)
    }

    /// How many values this one is made of (itself, and every element and
    /// attribute at any depth, strings counting one per 64 bytes), if that
    /// is at most `limit`; `None` as soon as it is more. Values share their
    /// parts (`[local.x, local.x]` copies a pointer), so a small
    /// configuration can build one that is exponentially large; whatever
    /// walks a value whole costs this much, and this walk stops at `limit`.
    pub fn size_within(&self, limit: u64) -> Option<u64> {
        let mut count: u64 = 0;
        let mut stack: Vec<&Value> = vec![self];
        while let Some(value) = stack.pop() {
            count += match value {
                Value::String(text) => 1 + text.len() as u64 / 64,
                _ => 1,
            };
            if count > limit {
                return None;
            }
            match value {
                Value::List(items) => stack.extend(items.iter()),
                Value::Map(entries) => stack.extend(entries.values()),
                _ => {}
            }
        }
        Some(count)
    }

    /// True when no part of the value is unknown.
    pub fn is_wholly_known(&self) -> bool {
        match self {
            Value::Unknown => false,
            Value::List(items) => items.iter().all(Value::is_wholly_known),
            Value::Map(entries) => entries.values().all(Value::is_wholly_known),
            _ => true,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    /// A string form for interpolation and string conversion; `None` for
    /// values that have no string form (lists, objects, null).
    pub fn to_interpolated(&self) -> Option<String> {
        match self {
            Value::String(text) => Some(text.to_string()),
            Value::Number(number) => Some(format_number(*number)),
            Value::Bool(flag) => Some(flag.to_string()),
            _ => None,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null | Value::Unknown => serde_json::Value::Null,
            Value::Bool(flag) => serde_json::Value::Bool(*flag),
            Value::Number(number) => {
                if number.fract() == 0.0 && number.abs() < 9.0e15 {
                    serde_json::Value::from(*number as i64)
                } else {
                    serde_json::Number::from_f64(*number)
                        .map(serde_json::Value::Number)
                        .unwrap_or(serde_json::Value::Null)
                }
            }
            Value::String(text) => serde_json::Value::String(text.to_string()),
            Value::List(items) => items.iter().map(Value::to_json).collect(),
            Value::Map(entries) => entries
                .iter()
                .map(|(key, value)| (key.clone(), value.to_json()))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }

    pub fn from_json(json: &serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(flag) => Value::Bool(*flag),
            serde_json::Value::Number(number) => Value::Number(number.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::String(text) => Value::string(text),
            serde_json::Value::Array(items) => {
                Value::list(items.iter().map(Value::from_json).collect())
            }
            serde_json::Value::Object(entries) => Value::map(
                entries
                    .iter()
                    .map(|(key, value)| (key.clone(), Value::from_json(value)))
                    .collect(),
            ),
        }
    }
}

/// Integers print without a fraction: `3`, not `3.0`.
pub fn format_number(number: f64) -> String {
    if number.fract() == 0.0 && number.abs() < 1.0e15 {
        format!("{}", number as i64)
    } else {
        format!("{number}")
    }
}

/// Writes a string as a quoted `.infra` string literal.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '$' => out.push('$'),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    // `${` and `%{` would start an interpolation or a directive.
    out.replace("${", "$${").replace("%{", "%%{")
}

/// Whether a key is written bare (`name`), not quoted (`"a b"`).
pub(super) fn is_bare_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Values print in `.infra` syntax: `"text"`, `[1, 2]`, `{ a = 1 }`.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(flag) => write!(f, "{flag}"),
            Value::Number(number) => f.write_str(&format_number(*number)),
            Value::String(text) => f.write_str(&quote(text)),
            Value::Unknown => f.write_str("(known after apply)"),
            Value::List(items) => {
                f.write_str("[")?;
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Value::Map(entries) => {
                if entries.is_empty() {
                    return f.write_str("{}");
                }
                f.write_str("{ ")?;
                for (index, (key, value)) in entries.iter().enumerate() {
                    if index > 0 {
                        f.write_str(", ")?;
                    }
                    if is_bare_key(key) {
                        write!(f, "{key} = {value}")?;
                    } else {
                        write!(f, "{} = {value}", quote(key))?;
                    }
                }
                f.write_str(" }")
            }
        }
    }
}
