//! Sensitivity marks: which parts of a value are secrets.
//!
//! A mark travels with a value through evaluation, beside it rather than
//! inside it (so functions, providers and the state see plain values, and a
//! configuration without secrets pays nothing): [`Marks`] lists the paths
//! of a value's sensitive parts. Structure keeps marks where they are — an
//! object literal `{ user = "app", password = var.db }` marks `password`
//! only, and reading `.user` from it gives a clear value — while anything
//! that computes a new value from a marked one (a function, an operator, a
//! string template, a condition) marks its whole result.
//!
//! At a resource's boundary the marks become [`SensitivePath`] strings
//! (`result`, `template.env.DB_PASSWORD`, `rule[0].password`), which plans
//! redact, `state show` hides and the state seals one by one.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use super::value::{Value, is_bare_key};

/// One step into a value: a map key or a list index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// The sensitive parts of a value, as paths from its root; the empty path
/// marks the whole value. Clear (no path) costs no allocation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Marks(Option<Arc<Vec<Vec<Segment>>>>);

impl Marks {
    pub fn clear() -> Marks {
        Marks(None)
    }

    pub fn whole() -> Marks {
        Marks(Some(Arc::new(vec![Vec::new()])))
    }

    pub fn is_clear(&self) -> bool {
        self.0.is_none()
    }

    pub fn is_whole(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|paths| paths.iter().any(Vec::is_empty))
    }

    /// The paths of the sensitive parts (`[[]]` when the whole is).
    pub fn paths(&self) -> &[Vec<Segment>] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }

    fn from_paths(mut paths: Vec<Vec<Segment>>) -> Marks {
        if paths.is_empty() {
            return Marks::clear();
        }
        if paths.iter().any(Vec::is_empty) {
            return Marks::whole();
        }
        paths.sort();
        // A part inside a marked part adds nothing (sorted, a path comes
        // right after its prefixes).
        let mut kept: Vec<Vec<Segment>> = Vec::with_capacity(paths.len());
        for path in paths {
            if !kept.last().is_some_and(|last| path.starts_with(last)) {
                kept.push(path);
            }
        }
        Marks(Some(Arc::new(kept)))
    }

    /// Whole if any part is marked: what a value computed from this one
    /// (by a function, an operator, a template) carries.
    pub fn collapsed(&self) -> Marks {
        if self.is_clear() {
            Marks::clear()
        } else {
            Marks::whole()
        }
    }

    /// The marks of a collection's keys: secrets when the whole collection is.
    pub fn of_keys(&self) -> Marks {
        if self.is_whole() {
            Marks::whole()
        } else {
            Marks::clear()
        }
    }

    /// The marks of the part reached by `step`.
    pub fn child(&self, step: &Segment) -> Marks {
        let Some(paths) = &self.0 else {
            return Marks::clear();
        };
        let mut inner = Vec::new();
        for path in paths.iter() {
            match path.split_first() {
                None => return Marks::whole(),
                Some((first, rest)) if first == step => inner.push(rest.to_vec()),
                Some(_) => {}
            }
        }
        Marks::from_paths(inner)
    }

    pub fn key(&self, key: &str) -> Marks {
        if self.is_clear() {
            return Marks::clear();
        }
        self.child(&Segment::Key(key.to_string()))
    }

    pub fn index(&self, index: usize) -> Marks {
        if self.is_clear() {
            return Marks::clear();
        }
        self.child(&Segment::Index(index))
    }

    /// These marks, for a value placed at `step` of a larger one.
    pub fn under(&self, step: Segment) -> Marks {
        let Some(paths) = &self.0 else {
            return Marks::clear();
        };
        Marks(Some(Arc::new(
            paths
                .iter()
                .map(|path| {
                    let mut placed = Vec::with_capacity(path.len() + 1);
                    placed.push(step.clone());
                    placed.extend(path.iter().cloned());
                    placed
                })
                .collect(),
        )))
    }

    /// The parts marked in either.
    pub fn union(&self, other: &Marks) -> Marks {
        match (&self.0, &other.0) {
            (None, _) => other.clone(),
            (_, None) => self.clone(),
            (Some(a), Some(b)) => Marks::from_paths(a.iter().chain(b.iter()).cloned().collect()),
        }
    }

    /// Collects the marks of a value's parts: `add(step, marks)` for each.
    pub fn gather() -> MarksBuilder {
        MarksBuilder(Vec::new())
    }

    /// The sensitive paths of an attribute named `name` with these marks.
    pub fn attribute_paths(&self, name: &str) -> Vec<String> {
        self.under(Segment::Key(name.to_string()))
            .paths()
            .iter()
            .map(|path| SensitivePath(path.clone()).to_string())
            .collect()
    }
}

/// Builds the marks of a list or object from those of its parts.
pub struct MarksBuilder(Vec<Vec<Segment>>);

impl MarksBuilder {
    pub fn add(&mut self, step: Segment, marks: &Marks) {
        if marks.is_clear() {
            return;
        }
        self.0.extend(marks.under(step).paths().iter().cloned());
    }

    pub fn finish(self) -> Marks {
        Marks::from_paths(self.0)
    }
}

/// Marks from sensitive paths (`password`, `template.env.KEY`) of an
/// object's attributes; a path that does not parse marks its attribute.
pub fn marks_of_paths<'a>(paths: impl IntoIterator<Item = &'a str>) -> Marks {
    Marks::from_paths(
        paths
            .into_iter()
            .map(|text| SensitivePath::parse(text).0)
            .collect(),
    )
}

/// A path to a sensitive part of a resource's attributes, written as in
/// the language: `result`, `template.env.DB_PASSWORD`, `rule[0].secret`,
/// `tags["team name"]`. A plain attribute name is a path too, so states
/// written before paths existed read the same.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SensitivePath(pub Vec<Segment>);

impl SensitivePath {
    /// Reads a path as [`Display`](fmt::Display) writes it. Text that is
    /// not a path is taken as one attribute name (never an error: marking
    /// too much is safe, losing a mark is not).
    pub fn parse(text: &str) -> SensitivePath {
        Self::try_parse(text).unwrap_or_else(|| SensitivePath(vec![Segment::Key(text.to_string())]))
    }

    fn try_parse(text: &str) -> Option<SensitivePath> {
        let mut segments = Vec::new();
        let mut rest = text;
        let mut first = true;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('[') {
                let end = if after.starts_with('"') {
                    closing_quote(after)? + 1
                } else {
                    after.find(']')?
                };
                let inside = &after[..end];
                segments.push(if inside.starts_with('"') {
                    Segment::Key(serde_json::from_str(inside).ok()?)
                } else {
                    Segment::Index(inside.parse().ok()?)
                });
                rest = after[end..].strip_prefix(']')?;
            } else {
                let name_start = if first { rest } else { rest.strip_prefix('.')? };
                let end = name_start.find(['.', '[']).unwrap_or(name_start.len());
                if end == 0 {
                    return None;
                }
                segments.push(Segment::Key(name_start[..end].to_string()));
                rest = &name_start[end..];
            }
            first = false;
        }
        (!segments.is_empty()).then_some(SensitivePath(segments))
    }

    /// The attribute it starts at.
    pub fn attribute(&self) -> Option<&str> {
        match self.0.first() {
            Some(Segment::Key(name)) => Some(name),
            _ => None,
        }
    }

    /// The value at this path inside `attributes`, if there is one.
    pub fn find<'v>(
        &self,
        attributes: &'v std::collections::BTreeMap<String, Value>,
    ) -> Option<&'v Value> {
        let (Segment::Key(name), rest) = self.0.split_first()? else {
            return None;
        };
        let mut value = attributes.get(name)?;
        for step in rest {
            value = match (step, value) {
                (Segment::Key(key), Value::Map(entries)) => entries.get(key)?,
                (Segment::Index(index), Value::List(items)) => items.get(*index)?,
                _ => return None,
            };
        }
        Some(value)
    }
}

impl SensitivePath {
    /// The JSON value at this path inside `attributes` (as the state holds
    /// them), if there is one.
    pub fn find_json<'v>(
        &self,
        attributes: &'v std::collections::BTreeMap<String, serde_json::Value>,
    ) -> Option<&'v serde_json::Value> {
        let (Segment::Key(name), rest) = self.0.split_first()? else {
            return None;
        };
        let mut value = attributes.get(name)?;
        for step in rest {
            value = match step {
                Segment::Key(key) => value.as_object()?.get(key)?,
                Segment::Index(index) => value.as_array()?.get(*index)?,
            };
        }
        Some(value)
    }

    /// [`Self::find_json`], to change the value in place.
    pub fn find_json_mut<'v>(
        &self,
        attributes: &'v mut std::collections::BTreeMap<String, serde_json::Value>,
    ) -> Option<&'v mut serde_json::Value> {
        let (Segment::Key(name), rest) = self.0.split_first()? else {
            return None;
        };
        let mut value = attributes.get_mut(name)?;
        for step in rest {
            value = match step {
                Segment::Key(key) => value.as_object_mut()?.get_mut(key)?,
                Segment::Index(index) => value.as_array_mut()?.get_mut(*index)?,
            };
        }
        Some(value)
    }
}

/// `value` (the attribute `name`) as plans and `state show` print it: all
/// of it `(sensitive value)` when `paths` name it whole, else each part
/// they name.
pub fn shown_redacted(value: &Value, name: &str, paths: &[String]) -> String {
    if names_whole_attribute(name, paths) && !matches!(value, Value::Null | Value::Unknown) {
        return REDACTED.to_string();
    }
    if !has_nested_paths(name, paths) {
        return value.to_string();
    }
    let placeholder = Value::string(REDACTED);
    redact_attribute(value, name, paths, &placeholder)
        .to_string()
        .replace(&format!("\"{REDACTED}\""), REDACTED)
}

/// Where the JSON string starting `text` ends (the index of its closing quote).
fn closing_quote(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (at, c) in text.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(at),
            _ => {}
        }
    }
    None
}

impl fmt::Display for SensitivePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        for (position, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if is_bare_key(key) => {
                    if position > 0 {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Segment::Key(key) => {
                    let quoted = serde_json::to_string(key).map_err(|_| fmt::Error)?;
                    let _ = write!(out, "[{quoted}]");
                }
                Segment::Index(index) => {
                    let _ = write!(out, "[{index}]");
                }
            }
        }
        f.write_str(&out)
    }
}

/// What a redacted part shows in plans and `state show`.
pub const REDACTED: &str = "(sensitive value)";

/// `value` (the attribute `name`) with each part that `paths` name
/// replaced by `replacement`; paths of other attributes are ignored.
pub fn redact_attribute(value: &Value, name: &str, paths: &[String], replacement: &Value) -> Value {
    let mut value = value.clone();
    for text in paths {
        let path = SensitivePath::parse(text);
        if path.attribute() != Some(name) {
            continue;
        }
        replace_at(&mut value, &path.0[1..], replacement);
    }
    value
}

/// Whether `paths` name a part of the attribute `name` (not all of it).
pub fn has_nested_paths(name: &str, paths: &[String]) -> bool {
    paths.iter().any(|text| {
        let path = SensitivePath::parse(text);
        path.attribute() == Some(name) && path.0.len() > 1
    })
}

/// Whether `paths` name the whole attribute `name`.
pub fn names_whole_attribute(name: &str, paths: &[String]) -> bool {
    paths.iter().any(|text| text == name)
}

fn replace_at(value: &mut Value, path: &[Segment], replacement: &Value) {
    let Some((step, rest)) = path.split_first() else {
        if !matches!(value, Value::Null | Value::Unknown) {
            *value = replacement.clone();
        }
        return;
    };
    match (step, value) {
        (Segment::Key(key), Value::Map(entries)) => {
            if let Some(inner) = Arc::make_mut(entries).get_mut(key) {
                replace_at(inner, rest, replacement);
            }
        }
        (Segment::Index(index), Value::List(items)) => {
            if let Some(inner) = Arc::make_mut(items).get_mut(*index) {
                replace_at(inner, rest, replacement);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Segment {
        Segment::Key(k.into())
    }

    #[test]
    fn paths_print_as_the_language_writes_them_and_read_back() {
        let cases = [
            (vec![key("result")], "result"),
            (
                vec![key("template"), key("env"), key("DB_PASSWORD")],
                "template.env.DB_PASSWORD",
            ),
            (
                vec![key("rule"), Segment::Index(0), key("secret")],
                "rule[0].secret",
            ),
            (
                vec![key("tags"), key("team name"), key("a\"]b")],
                r#"tags["team name"]["a\"]b"]"#,
            ),
        ];
        for (segments, text) in cases {
            let path = SensitivePath(segments);
            assert_eq!(path.to_string(), text);
            assert_eq!(SensitivePath::parse(text), path, "{text}");
        }
        // Not a path: the whole text is one attribute name.
        assert_eq!(
            SensitivePath::parse("a..b"),
            SensitivePath(vec![key("a..b")])
        );
    }

    #[test]
    fn structure_keeps_marks_where_they_are_and_computation_spreads_them() {
        let mut object = Marks::gather();
        object.add(key("password"), &Marks::whole());
        object.add(key("user"), &Marks::clear());
        let object = object.finish();
        assert!(object.key("user").is_clear());
        assert!(object.key("password").is_whole());
        assert!(!object.is_whole());
        assert!(object.collapsed().is_whole());
        let mut list = Marks::gather();
        list.add(Segment::Index(1), &object);
        let list = list.finish();
        assert_eq!(list.attribute_paths("env"), ["env[1].password"]);
        assert!(list.index(0).is_clear());
        assert!(Marks::whole().key("anything").is_whole());
        assert!(list.union(&Marks::whole()).is_whole());
    }

    #[test]
    fn redaction_replaces_only_the_named_part() {
        let env = Value::map(
            [
                ("USER".to_string(), Value::string("app")),
                ("DB_PASSWORD".to_string(), Value::string("hunter2")),
            ]
            .into(),
        );
        let template = Value::map([("env".to_string(), env)].into());
        let redacted = redact_attribute(
            &template,
            "template",
            &["template.env.DB_PASSWORD".into(), "other".into()],
            &Value::Null,
        );
        assert_eq!(
            redacted.to_string(),
            r#"{ env = { DB_PASSWORD = null, USER = "app" } }"#
        );
    }
}
