//! The built-in function library (`length`, `merge`, `cidrsubnet`, …).
//!
//! A function sees evaluated arguments and returns a value or a
//! [`FunctionError`] that names the argument at fault; the evaluator turns it
//! into a diagnostic pointing at that argument.

mod collections;
mod files;
mod strings;
mod time;

use collections::*;
pub(crate) use files::template_text;
use files::*;
use strings::*;
use time::*;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use base64::Engine as _;
use sha2::Digest as _;

use super::value::{Value, format_number};
use crate::diagnostics::io_reason;

/// Lists built by functions (`range`, `format` widths …) are bounded so that
/// no configuration can exhaust memory.
pub const MAX_GENERATED_ELEMENTS: usize = 1_000_000;
/// `replace(string, search, replacement)`: the result's size is worked
/// out before it is built (an empty `search` matches between every two
/// characters: a 1 MB string replaced with itself would be 1 TB).
fn replace(a: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let (text, search, replacement) = (string(a, 0)?, string(a, 1)?, string(a, 2)?);
    let matches = if search.is_empty() {
        text.chars().count() as u64 + 1
    } else {
        text.matches(search).count() as u64
    };
    let size = text.len() as u64 + matches * replacement.len() as u64;
    if size > super::evaluator::MAX_STRING_BYTES as u64 {
        return Err(FunctionError::new(format!(
            "the result would be {size} bytes, over the {} MiB a value may have",
            super::evaluator::MAX_STRING_BYTES >> 20
        )));
    }
    Ok(Value::string(text.replace(search, replacement)))
}

/// `file()` refuses larger files.
const MAX_FILE_FUNCTION_BYTES: u64 = 16 << 20;

pub struct FunctionError {
    pub message: String,
    /// Which argument is wrong, when one is.
    pub argument: Option<usize>,
    pub help: Option<String>,
}

impl FunctionError {
    fn new(message: impl Into<String>) -> FunctionError {
        FunctionError {
            message: message.into(),
            argument: None,
            help: None,
        }
    }

    fn at(argument: usize, message: impl Into<String>) -> FunctionError {
        FunctionError {
            argument: Some(argument),
            ..FunctionError::new(message)
        }
    }

    fn help(mut self, help: impl Into<String>) -> FunctionError {
        self.help = Some(help.into());
        self
    }
}

/// What a function may know of where it is called from.
pub struct CallContext<'a> {
    /// The directory of the module, for `file()`.
    pub module_dir: &'a Path,
    /// During apply; while planning, `timestamp()` and `uuid()` are unknown.
    pub applying: bool,
}

type Implementation = fn(&[Value], &CallContext) -> Result<Value, FunctionError>;

pub struct Function {
    pub name: &'static str,
    pub min_args: usize,
    /// `None`: any number.
    pub max_args: Option<usize>,
    /// Structural functions handle unknown elements themselves (the length of
    /// a list of unknown ids is known); the others return unknown as soon as
    /// any part of an argument is unknown.
    pub structural: bool,
    pub signature: &'static str,
    implementation: Implementation,
}

impl Function {
    pub fn call(&self, args: &[Value], context: &CallContext) -> Result<Value, FunctionError> {
        if args.iter().any(Value::is_unknown) {
            return Ok(Value::Unknown);
        }
        if !self.structural && !args.iter().all(Value::is_wholly_known) {
            return Ok(Value::Unknown);
        }
        (self.implementation)(args, context)
    }
}

macro_rules! functions {
    ($($name:literal, $min:expr, $max:expr, $structural:expr, $signature:literal => $implementation:expr;)*) => {
        pub static FUNCTIONS: &[Function] = &[
            $(Function {
                name: $name,
                min_args: $min,
                max_args: $max,
                structural: $structural,
                signature: $signature,
                implementation: $implementation,
            },)*
        ];
    };
}

functions! {
    "abs", 1, Some(1), false, "abs(number)" => |a, _| Ok(Value::Number(number(a, 0)?.abs()));
    "alltrue", 1, Some(1), false, "alltrue(list)" => alltrue;
    "anytrue", 1, Some(1), false, "anytrue(list)" => anytrue;
    "base64decode", 1, Some(1), false, "base64decode(string)" => base64decode;
    "base64encode", 1, Some(1), false, "base64encode(string)" => |a, _| Ok(Value::string(base64::engine::general_purpose::STANDARD.encode(string(a, 0)?)));
    "basename", 1, Some(1), false, "basename(path)" => basename;
    "can", 1, Some(1), false, "can(expression)" => lazy;
    "ceil", 1, Some(1), false, "ceil(number)" => |a, _| Ok(Value::Number(number(a, 0)?.ceil()));
    "chomp", 1, Some(1), false, "chomp(string)" => chomp;
    "cidrhost", 2, Some(2), false, "cidrhost(prefix, hostnum)" => cidrhost;
    "cidrsubnet", 3, Some(3), false, "cidrsubnet(prefix, newbits, netnum)" => cidrsubnet;
    "cidrsubnets", 2, None, false, "cidrsubnets(prefix, newbits...)" => cidrsubnets;
    "coalesce", 1, None, true, "coalesce(values...)" => coalesce;
    "coalescelist", 1, None, true, "coalescelist(lists...)" => coalescelist;
    "compact", 1, Some(1), true, "compact(list)" => compact;
    "concat", 0, None, true, "concat(lists...)" => concat;
    "contains", 2, Some(2), false, "contains(list, value)" => |a, _| Ok(Value::Bool(list(a, 0)?.contains(&a[1])));
    "dirname", 1, Some(1), false, "dirname(path)" => dirname;
    "distinct", 1, Some(1), false, "distinct(list)" => distinct;
    "element", 2, Some(2), true, "element(list, index)" => element;
    "endswith", 2, Some(2), false, "endswith(string, suffix)" => |a, _| Ok(Value::Bool(string(a, 0)?.ends_with(string(a, 1)?)));
    "env", 1, Some(2), false, "env(name, default?)" => env;
    "file", 1, Some(1), false, "file(path)" => file;
    "filebase64sha256", 1, Some(1), false, "filebase64sha256(path)" => filebase64sha256;
    "fileset", 2, Some(2), false, "fileset(path, pattern)" => fileset;
    "filesha256", 1, Some(1), false, "filesha256(path)" => filesha256;
    "flatten", 1, Some(1), true, "flatten(list)" => flatten;
    "floor", 1, Some(1), false, "floor(number)" => |a, _| Ok(Value::Number(number(a, 0)?.floor()));
    "format", 1, None, false, "format(spec, values...)" => format;
    "formatdate", 2, Some(2), false, "formatdate(spec, timestamp)" => formatdate;
    "formatlist", 1, None, false, "formatlist(spec, values...)" => formatlist;
    "join", 2, Some(2), false, "join(separator, list)" => join;
    "jsondecode", 1, Some(1), false, "jsondecode(string)" => jsondecode;
    "jsonencode", 1, Some(1), false, "jsonencode(value)" => |a, _| Ok(Value::string(a[0].to_json().to_string()));
    "keys", 1, Some(1), true, "keys(map)" => |a, _| Ok(Value::list(map(a, 0)?.keys().map(|k| Value::string(k.clone())).collect()));
    "length", 1, Some(1), true, "length(list, map or string)" => length;
    "lookup", 2, Some(3), true, "lookup(map, key, default?)" => lookup;
    "lower", 1, Some(1), false, "lower(string)" => |a, _| Ok(Value::string(string(a, 0)?.to_lowercase()));
    "max", 1, None, false, "max(numbers...)" => |a, _| min_max(a, f64::max);
    "md5", 1, Some(1), false, "md5(string)" => md5;
    "merge", 0, None, true, "merge(maps...)" => merge;
    "min", 1, None, false, "min(numbers...)" => |a, _| min_max(a, f64::min);
    "nonsensitive", 1, Some(1), true, "nonsensitive(value)" => |a, _| Ok(a[0].clone());
    "one", 1, Some(1), true, "one(list)" => one;
    "pathexpand", 1, Some(1), false, "pathexpand(path)" => pathexpand;
    "range", 1, Some(3), false, "range(start?, limit, step?)" => range;
    "regex", 2, Some(2), false, "regex(pattern, string)" => regex;
    "regexall", 2, Some(2), false, "regexall(pattern, string)" => regexall;
    "replace", 3, Some(3), false, "replace(string, search, replacement)" => replace;
    "reverse", 1, Some(1), true, "reverse(list)" => |a, _| Ok(Value::list(list(a, 0)?.iter().rev().cloned().collect()));
    "sensitive", 1, Some(1), true, "sensitive(value)" => |a, _| Ok(a[0].clone());
    "setintersection", 1, None, false, "setintersection(sets...)" => setintersection;
    "setsubtract", 2, Some(2), false, "setsubtract(set, remove)" => setsubtract;
    "setunion", 1, None, false, "setunion(sets...)" => setunion;
    "sha1", 1, Some(1), false, "sha1(string)" => sha1;
    "sha256", 1, Some(1), false, "sha256(string)" => |a, _| Ok(Value::string(hex(&sha2::Sha256::digest(string(a, 0)?.as_bytes()))));
    "sha512", 1, Some(1), false, "sha512(string)" => sha512;
    "slice", 3, Some(3), true, "slice(list, start, end)" => slice;
    "sort", 1, Some(1), false, "sort(list)" => sort;
    "split", 2, Some(2), false, "split(separator, string)" => split;
    "startswith", 2, Some(2), false, "startswith(string, prefix)" => |a, _| Ok(Value::Bool(string(a, 0)?.starts_with(string(a, 1)?)));
    "substr", 3, Some(3), false, "substr(string, offset, length)" => substr;
    "sum", 1, Some(1), false, "sum(list)" => sum;
    "templatefile", 2, Some(2), false, "templatefile(path, vars)" => lazy;
    "timeadd", 2, Some(2), false, "timeadd(timestamp, duration)" => timeadd;
    "timestamp", 0, Some(0), false, "timestamp()" => timestamp;
    "title", 1, Some(1), false, "title(string)" => title;
    "tobool", 1, Some(1), false, "tobool(value)" => |a, _| super::types::TypeConstraint::Bool.convert(&a[0]).map_err(|m| FunctionError::at(0, m));
    "tolist", 1, Some(1), true, "tolist(list)" => |a, _| Ok(Value::list(list(a, 0)?.to_vec()));
    "tomap", 1, Some(1), true, "tomap(object)" => |a, _| Ok(Value::map(map(a, 0)?.clone()));
    "tonumber", 1, Some(1), false, "tonumber(value)" => |a, _| super::types::TypeConstraint::Number.convert(&a[0]).map_err(|m| FunctionError::at(0, m));
    "toset", 1, Some(1), false, "toset(list)" => |a, _| Ok(Value::list(distinct_sorted(list(a, 0)?.to_vec())));
    "tostring", 1, Some(1), false, "tostring(value)" => |a, _| super::types::TypeConstraint::String.convert(&a[0]).map_err(|m| FunctionError::at(0, m));
    "transpose", 1, Some(1), false, "transpose(map)" => transpose;
    "trimprefix", 2, Some(2), false, "trimprefix(string, prefix)" => |a, _| { let s = string(a, 0)?; Ok(Value::string(s.strip_prefix(string(a, 1)?).unwrap_or(s))) };
    "trimspace", 1, Some(1), false, "trimspace(string)" => |a, _| Ok(Value::string(string(a, 0)?.trim()));
    "trimsuffix", 2, Some(2), false, "trimsuffix(string, suffix)" => |a, _| { let s = string(a, 0)?; Ok(Value::string(s.strip_suffix(string(a, 1)?).unwrap_or(s))) };
    "try", 1, None, false, "try(expressions...)" => lazy;
    "upper", 1, Some(1), false, "upper(string)" => |a, _| Ok(Value::string(string(a, 0)?.to_uppercase()));
    "uuid", 0, Some(0), false, "uuid()" => uuid;
    "values", 1, Some(1), true, "values(map)" => |a, _| Ok(Value::list(map(a, 0)?.values().cloned().collect()));
    "zipmap", 2, Some(2), true, "zipmap(keys, values)" => zipmap;
}

/// `try` and `can` evaluate their arguments themselves (an argument's error
/// is their answer, not a problem), and `templatefile` evaluates a template
/// with an evaluator of its own: the evaluator handles the three, so this is
/// never reached.
fn lazy(_: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    Err(FunctionError::new(
        "`try` and `can` take expressions, not values",
    ))
}

pub fn lookup_function(name: &str) -> Option<&'static Function> {
    FUNCTIONS
        .binary_search_by(|function| function.name.cmp(name))
        .ok()
        .map(|index| &FUNCTIONS[index])
}

pub fn function_names() -> impl Iterator<Item = &'static str> {
    FUNCTIONS.iter().map(|function| function.name)
}

fn type_error(index: usize, wanted: &str, got: &Value) -> FunctionError {
    FunctionError::at(
        index,
        format!(
            "argument {} must be a {wanted}, not a {}",
            index + 1,
            got.type_name()
        ),
    )
}

fn string(args: &[Value], index: usize) -> Result<&str, FunctionError> {
    match &args[index] {
        Value::String(text) => Ok(text),
        other => Err(type_error(index, "string", other)),
    }
}

/// A string argument, also accepting numbers and bools (as interpolation does).
fn stringish(args: &[Value], index: usize) -> Result<String, FunctionError> {
    args[index]
        .to_interpolated()
        .ok_or_else(|| type_error(index, "string", &args[index]))
}

fn number(args: &[Value], index: usize) -> Result<f64, FunctionError> {
    match &args[index] {
        Value::Number(number) => Ok(*number),
        Value::String(text) => text.parse().map_err(|_| {
            FunctionError::at(
                index,
                format!("argument {} must be a number, not `{text}`", index + 1),
            )
        }),
        other => Err(type_error(index, "number", other)),
    }
}

fn integer(args: &[Value], index: usize) -> Result<i64, FunctionError> {
    let value = number(args, index)?;
    if value.fract() != 0.0 || !value.is_finite() {
        return Err(FunctionError::at(
            index,
            format!(
                "argument {} must be a whole number, not {}",
                index + 1,
                format_number(value)
            ),
        ));
    }
    Ok(value as i64)
}

fn list(args: &[Value], index: usize) -> Result<&[Value], FunctionError> {
    match &args[index] {
        Value::List(items) => Ok(items),
        other => Err(type_error(index, "list", other)),
    }
}

fn map(args: &[Value], index: usize) -> Result<&BTreeMap<String, Value>, FunctionError> {
    match &args[index] {
        Value::Map(entries) => Ok(entries),
        other => Err(type_error(index, "map", other)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Removes duplicates and orders elements: how sets are represented.
pub fn distinct_sorted(mut items: Vec<Value>) -> Vec<Value> {
    items.sort_by_key(|item| item.to_string());
    items.dedup();
    items
}

fn base64decode(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(string(args, 0)?)
        .map_err(|error| FunctionError::at(0, format!("not valid base64: {error}")))?;
    String::from_utf8(bytes)
        .map(Value::string)
        .map_err(|_| FunctionError::at(0, "the decoded bytes are not UTF-8 text"))
}

fn coalesce(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    for arg in args {
        match arg {
            Value::Unknown => return Ok(Value::Unknown),
            Value::Null => continue,
            Value::String(text) if text.is_empty() => continue,
            other => return Ok(other.clone()),
        }
    }
    Err(FunctionError::new("no non-null, non-empty argument").help("add a final fallback value"))
}

fn compact(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let items = list(args, 0)?;
    Ok(Value::list(
        items
            .iter()
            .filter(|item| !matches!(item, Value::Null) && item.as_str() != Some(""))
            .cloned()
            .collect(),
    ))
}

fn concat(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let mut out = Vec::new();
    for index in 0..args.len() {
        out.extend(list(args, index)?.iter().cloned());
    }
    Ok(Value::list(out))
}

fn distinct(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let mut out: Vec<Value> = Vec::new();
    for item in list(args, 0)? {
        if !out.contains(item) {
            out.push(item.clone());
        }
    }
    Ok(Value::list(out))
}

fn element(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let items = list(args, 0)?;
    if args[1].is_unknown() {
        return Ok(Value::Unknown);
    }
    let index = integer(args, 1)?;
    if items.is_empty() {
        return Err(FunctionError::at(
            0,
            "cannot take an element of an empty list",
        ));
    }
    if index < 0 {
        return Err(FunctionError::at(1, "the index must not be negative"));
    }
    Ok(items[index as usize % items.len()].clone())
}

fn env(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let name = string(args, 0)?;
    match std::env::var(name) {
        Ok(value) => Ok(Value::string(value)),
        Err(_) if args.len() == 2 => Ok(args[1].clone()),
        Err(_) => Err(
            FunctionError::at(0, format!("environment variable `{name}` is not set")).help(
                format!("set `{name}`, or give a default: env(\"{name}\", \"…\")"),
            ),
        ),
    }
}

fn flatten(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    fn walk(items: &[Value], out: &mut Vec<Value>) {
        for item in items {
            match item {
                Value::List(inner) => walk(inner, out),
                other => out.push(other.clone()),
            }
        }
    }
    let mut out = Vec::new();
    walk(list(args, 0)?, &mut out);
    Ok(Value::list(out))
}

fn format(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let spec = string(args, 0)?;
    let mut out = String::new();
    let mut next_arg = 1;
    let mut chars = spec.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(&d) = chars.peek() {
            if d.is_ascii_digit() || d == '.' || d == '-' || d == '+' {
                flags.push(d);
                chars.next();
            } else {
                break;
            }
        }
        let Some(verb) = chars.next() else {
            return Err(FunctionError::at(0, "the format ends with a lone `%`")
                .help("write `%%` for a literal percent sign"));
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        if next_arg >= args.len() {
            return Err(FunctionError::at(
                0,
                format!("not enough arguments for the format: `%{flags}{verb}` has no value"),
            ));
        }
        let arg = &args[next_arg];
        next_arg += 1;
        let (width, precision) = parse_width(&flags);
        if width > 1000 || precision.unwrap_or(0) > 100 {
            return Err(FunctionError::at(
                0,
                "format width or precision is too large",
            ));
        }
        let text = match verb {
            's' => arg
                .to_interpolated()
                .ok_or_else(|| type_error(next_arg - 1, "string", arg))?,
            'd' => format!("{}", number(args, next_arg - 1)?.trunc() as i64),
            'f' => format!("{:.*}", precision.unwrap_or(6), number(args, next_arg - 1)?),
            'v' => arg.to_interpolated().unwrap_or_else(|| arg.to_string()),
            'q' => super::value::quote(
                &arg.to_interpolated()
                    .ok_or_else(|| type_error(next_arg - 1, "string", arg))?,
            ),
            't' => match arg {
                Value::Bool(flag) => flag.to_string(),
                other => return Err(type_error(next_arg - 1, "bool", other)),
            },
            other => {
                return Err(
                    FunctionError::at(0, format!("unknown format verb `%{other}`"))
                        .help("use %s, %d, %f, %v, %q, %t or %%"),
                );
            }
        };
        let pad = width.saturating_sub(text.chars().count());
        if flags.starts_with('-') {
            out.push_str(&text);
            out.extend(std::iter::repeat_n(' ', pad));
        } else {
            let fill = if flags.starts_with('0') && matches!(verb, 'd' | 'f') {
                '0'
            } else {
                ' '
            };
            out.extend(std::iter::repeat_n(fill, pad));
            out.push_str(&text);
        }
    }
    if next_arg < args.len() {
        return Err(FunctionError::at(
            next_arg,
            "too many arguments for the format",
        ));
    }
    Ok(Value::string(out))
}

fn parse_width(flags: &str) -> (usize, Option<usize>) {
    let flags = flags.trim_start_matches(['-', '+']);
    let (width, precision) = match flags.split_once('.') {
        Some((width, precision)) => (width, Some(precision.parse().unwrap_or(usize::MAX))),
        None => (flags, None),
    };
    (width.parse().unwrap_or(0), precision)
}

fn join(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let separator = string(args, 0)?;
    let mut parts = Vec::new();
    for item in list(args, 1)? {
        parts.push(item.to_interpolated().ok_or_else(|| {
            FunctionError::at(
                1,
                format!("cannot join a list that contains a {}", item.type_name()),
            )
        })?);
    }
    Ok(Value::string(parts.join(separator)))
}

fn jsondecode(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let text = string(args, 0)?;
    let json: serde_json::Value = serde_json::from_str(text)
        .map_err(|error| FunctionError::at(0, format!("not valid JSON: {error}")))?;
    Ok(Value::from_json(&json))
}

fn length(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let length = match &args[0] {
        Value::List(items) => items.len(),
        Value::Map(entries) => entries.len(),
        Value::String(text) => text.chars().count(),
        other => return Err(type_error(0, "list, map or string", other)),
    };
    Ok(Value::Number(length as f64))
}

fn lookup(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let entries = map(args, 0)?;
    if args[1].is_unknown() {
        return Ok(Value::Unknown);
    }
    let key = stringish(args, 1)?;
    match entries.get(&key) {
        Some(value) => Ok(value.clone()),
        None if args.len() == 3 => Ok(args[2].clone()),
        None => Err(FunctionError::at(1, format!("the map has no key `{key}`"))
            .help("give a default as the third argument: lookup(map, key, default)")),
    }
}

fn merge(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let mut out = BTreeMap::new();
    for (index, arg) in args.iter().enumerate() {
        match arg {
            Value::Null => {}
            Value::Map(entries) => out.extend(entries.iter().map(|(k, v)| (k.clone(), v.clone()))),
            other => return Err(type_error(index, "map", other)),
        }
    }
    Ok(Value::map(out))
}

fn min_max(args: &[Value], pick: fn(f64, f64) -> f64) -> Result<Value, FunctionError> {
    let mut best = number(args, 0)?;
    for index in 1..args.len() {
        best = pick(best, number(args, index)?);
    }
    Ok(Value::Number(best))
}

fn range(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let (start, limit, step) = match args.len() {
        1 => (0.0, number(args, 0)?, 1.0),
        2 => (number(args, 0)?, number(args, 1)?, 1.0),
        _ => (number(args, 0)?, number(args, 1)?, number(args, 2)?),
    };
    if step == 0.0 || !step.is_finite() {
        return Err(FunctionError::at(
            args.len() - 1,
            "the step must not be zero",
        ));
    }
    let count = ((limit - start) / step).ceil();
    if !count.is_finite() || count > MAX_GENERATED_ELEMENTS as f64 {
        return Err(FunctionError::new(format!(
            "range would have more than {MAX_GENERATED_ELEMENTS} elements"
        )));
    }
    let count = count.max(0.0) as usize;
    Ok(Value::list(
        (0..count)
            .map(|i| Value::Number(start + step * i as f64))
            .collect(),
    ))
}

fn slice(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let items = list(args, 0)?;
    let start = integer(args, 1)?;
    let end = integer(args, 2)?;
    if start < 0 || end < start || end as usize > items.len() {
        return Err(FunctionError::new(format!(
            "slice({start}, {end}) is out of range for a list of {} elements",
            items.len()
        )));
    }
    Ok(Value::list(items[start as usize..end as usize].to_vec()))
}

fn sort(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let mut strings = Vec::new();
    for item in list(args, 0)? {
        strings.push(
            item.to_interpolated()
                .ok_or_else(|| type_error(0, "list of strings", item))?,
        );
    }
    strings.sort();
    Ok(Value::list(
        strings.into_iter().map(Value::string).collect(),
    ))
}

fn split(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let separator = string(args, 0)?;
    let text = string(args, 1)?;
    if separator.is_empty() {
        return Err(FunctionError::at(0, "the separator must not be empty"));
    }
    Ok(Value::list(
        text.split(separator).map(Value::string).collect(),
    ))
}

fn substr(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let chars: Vec<char> = string(args, 0)?.chars().collect();
    let offset = integer(args, 1)?;
    let length = integer(args, 2)?;
    let len = chars.len() as i64;
    let start = if offset < 0 {
        (len + offset).max(0)
    } else {
        offset.min(len)
    };
    let end = if length < 0 {
        len
    } else {
        (start + length).min(len)
    };
    Ok(Value::string(
        chars[start as usize..end.max(start) as usize]
            .iter()
            .collect::<String>(),
    ))
}

fn sum(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let items = list(args, 0)?;
    if items.is_empty() {
        return Err(FunctionError::at(0, "cannot sum an empty list"));
    }
    let mut total = 0.0;
    for index in 0..items.len() {
        total +=
            number(items, index).map_err(|_| type_error(0, "list of numbers", &items[index]))?;
    }
    Ok(Value::Number(total))
}

fn zipmap(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let keys = list(args, 0)?;
    let values = list(args, 1)?;
    if keys.len() != values.len() {
        return Err(FunctionError::new(format!(
            "{} keys but {} values",
            keys.len(),
            values.len()
        )));
    }
    let mut out = BTreeMap::new();
    for (key, value) in keys.iter().zip(values) {
        if key.is_unknown() {
            return Ok(Value::Unknown);
        }
        let key = key
            .to_interpolated()
            .ok_or_else(|| type_error(0, "list of strings", key))?;
        out.insert(key, value.clone());
    }
    Ok(Value::map(out))
}

/// A parsed CIDR prefix: the network address as a number, its width and length.
struct Prefix {
    address: u128,
    bits: u32,
    length: u32,
}

fn parse_prefix(args: &[Value], index: usize) -> Result<Prefix, FunctionError> {
    let text = string(args, index)?;
    let invalid = || {
        FunctionError::at(index, format!("`{text}` is not a CIDR prefix"))
            .help("write an address and a prefix length, e.g. \"10.0.0.0/16\"")
    };
    let (address, length) = text.split_once('/').ok_or_else(invalid)?;
    let address: IpAddr = address.parse().map_err(|_| invalid())?;
    let length: u32 = length.parse().map_err(|_| invalid())?;
    let (address, bits) = match address {
        IpAddr::V4(v4) => (u32::from(v4) as u128, 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    };
    if length > bits {
        return Err(invalid());
    }
    let host_bits = bits - length;
    let mask = if host_bits >= 128 {
        0
    } else {
        !((1u128 << host_bits) - 1)
    };
    let width_mask = if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    Ok(Prefix {
        address: address & mask & width_mask,
        bits,
        length,
    })
}

fn format_address(address: u128, bits: u32) -> String {
    if bits == 32 {
        Ipv4Addr::from(address as u32).to_string()
    } else {
        Ipv6Addr::from(address).to_string()
    }
}

fn cidrsubnet(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let prefix = parse_prefix(args, 0)?;
    let newbits = integer(args, 1)?;
    let netnum = integer(args, 2)?;
    if newbits < 0 || prefix.length as i64 + newbits > prefix.bits as i64 {
        return Err(FunctionError::at(
            1,
            format!(
                "cannot extend a /{} prefix by {newbits} bits (at most {} more)",
                prefix.length,
                prefix.bits - prefix.length
            ),
        ));
    }
    let new_length = prefix.length + newbits as u32;
    if netnum < 0 || (newbits < 127 && netnum as u128 >= 1u128 << newbits) {
        return Err(FunctionError::at(
            2,
            format!("network number {netnum} does not fit in {newbits} bits"),
        ));
    }
    let shift = prefix.bits - new_length;
    let address = prefix.address | ((netnum as u128) << shift);
    Ok(Value::string(format!(
        "{}/{}",
        format_address(address, prefix.bits),
        new_length
    )))
}

/// Consecutive subnets of `prefix`, one per `newbits`, each the next free
/// block of its size (as Terraform's `cidrsubnets`).
fn cidrsubnets(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let prefix = parse_prefix(args, 0)?;
    let end = prefix.address + (1u128 << (prefix.bits - prefix.length).min(127));
    let mut next = prefix.address;
    let mut out = Vec::with_capacity(args.len() - 1);
    for index in 1..args.len() {
        let newbits = integer(args, index)?;
        if newbits < 1 || prefix.length as i64 + newbits > prefix.bits as i64 {
            return Err(FunctionError::at(
                index,
                format!(
                    "cannot extend a /{} prefix by {newbits} bits (1 to {})",
                    prefix.length,
                    prefix.bits - prefix.length
                ),
            ));
        }
        let length = prefix.length + newbits as u32;
        let size = 1u128 << (prefix.bits - length);
        let start = next.div_ceil(size) * size;
        if start + size > end {
            return Err(FunctionError::at(
                index,
                format!(
                    "no room left in {} for a /{length}",
                    string(args, 0).unwrap_or("")
                ),
            )
            .help("ask for fewer or smaller subnets, or a larger prefix"));
        }
        out.push(Value::string(format!(
            "{}/{length}",
            format_address(start, prefix.bits)
        )));
        next = start + size;
    }
    Ok(Value::list(out))
}

fn cidrhost(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let prefix = parse_prefix(args, 0)?;
    let hostnum = integer(args, 1)?;
    let host_bits = prefix.bits - prefix.length;
    let capacity: i128 = if host_bits >= 127 {
        i128::MAX
    } else {
        1i128 << host_bits
    };
    let offset = if hostnum < 0 {
        capacity + hostnum as i128
    } else {
        hostnum as i128
    };
    if offset < 0 || offset >= capacity {
        return Err(FunctionError::at(
            1,
            format!(
                "host number {hostnum} does not fit in a /{} prefix",
                prefix.length
            ),
        ));
    }
    Ok(Value::string(format_address(
        prefix.address | offset as u128,
        prefix.bits,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, args: Vec<Value>) -> Result<Value, String> {
        let context = CallContext {
            module_dir: Path::new("."),
            applying: false,
        };
        lookup_function(name)
            .expect("function exists")
            .call(&args, &context)
            .map_err(|error| error.message)
    }

    fn s(text: &str) -> Value {
        Value::string(text)
    }

    fn n(number: f64) -> Value {
        Value::Number(number)
    }

    #[test]
    fn table_is_sorted_for_binary_search() {
        let names: Vec<_> = function_names().collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
    }

    fn list_of(items: &[&str]) -> Value {
        Value::list(items.iter().map(|item| s(item)).collect())
    }

    #[test]
    fn paths_split_as_go_does() {
        for (path, base, dir) in [
            ("/var/log/app.log", "app.log", "/var/log"),
            ("app.log", "app.log", "."),
            ("/var/log/", "log", "/var/log"),
            ("/", "/", "/"),
            ("", ".", "."),
            ("/app", "app", "/"),
        ] {
            assert_eq!(
                call("basename", vec![s(path)]),
                Ok(s(base)),
                "basename({path:?})"
            );
            assert_eq!(
                call("dirname", vec![s(path)]),
                Ok(s(dir)),
                "dirname({path:?})"
            );
        }
    }

    #[test]
    fn regex_returns_text_captures_or_named_captures() {
        assert_eq!(call("regex", vec![s("[0-9]+"), s("ab 12")]), Ok(s("12")));
        assert_eq!(
            call(
                "regex",
                vec![s("(?P<major>\\d+)\\.(?P<minor>\\d+)"), s("v1.25")]
            )
            .map(|v| v.to_string()),
            Ok("{ major = \"1\", minor = \"25\" }".into())
        );
        assert_eq!(
            call("regex", vec![s("x"), s("abc")]),
            Err("the pattern does not match".into())
        );
        assert!(
            call("regex", vec![s("(unclosed"), s("abc")])
                .is_err_and(|e| e.starts_with("invalid regular expression"))
        );
        assert_eq!(
            call("regexall", vec![s("z"), s("abc")]),
            Ok(Value::list(Vec::new()))
        );
    }

    #[test]
    fn cidrsubnets_allocate_in_order_and_refuse_overflow() {
        assert_eq!(
            call("cidrsubnets", vec![s("10.0.0.0/24"), n(2.0), n(1.0)]),
            Ok(list_of(&["10.0.0.0/26", "10.0.0.128/25"])),
            "the /25 is aligned after the /26"
        );
        assert!(
            call(
                "cidrsubnets",
                vec![s("10.0.0.0/24"), n(1.0), n(1.0), n(1.0)]
            )
            .is_err_and(|e| e.starts_with("no room left"))
        );
    }

    #[test]
    fn time_functions_follow_rfc_3339_and_go_durations() {
        assert_eq!(
            call("timeadd", vec![s("2026-03-01T00:00:00+01:00"), s("-1h30m")]),
            Ok(s("2026-02-28T22:30:00+01:00"))
        );
        assert_eq!(
            call("timeadd", vec![s("2024-02-28T12:00:00Z"), s("24h")]),
            Ok(s("2024-02-29T12:00:00Z")),
            "a leap day"
        );
        assert_eq!(
            call("timeadd", vec![s("2026-01-01T00:00:00.5Z"), s("250ms")]),
            Ok(s("2026-01-01T00:00:00.75Z"))
        );
        assert_eq!(
            call(
                "formatdate",
                vec![
                    s("EEEE, D MMMM YY 'at' H:mm AA ZZZZZ"),
                    s("2026-11-29T15:04:05-07:00")
                ]
            ),
            Ok(s("Sunday, 29 November 26 at 3:04 PM -07:00"))
        );
        for bad in [
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-01-01 00:00:00Z",
            "yesterday",
        ] {
            assert!(
                call("timeadd", vec![s(bad), s("1h")]).is_err_and(|e| e.contains("RFC 3339")),
                "{bad}"
            );
        }
        assert!(call("timeadd", vec![s("2026-01-01T00:00:00Z"), s("1 hour")]).is_err());
        assert_eq!(
            call("timestamp", vec![]),
            Ok(Value::Unknown),
            "unknown while planning"
        );
        assert_eq!(call("uuid", vec![]), Ok(Value::Unknown));
    }

    #[test]
    fn formatlist_pairs_lists_and_repeats_single_values() {
        assert_eq!(
            call("formatlist", vec![s("%s=%s"), list_of(&["a", "b"]), s("x")]),
            Ok(list_of(&["a=x", "b=x"]))
        );
        assert!(
            call(
                "formatlist",
                vec![s("%s%s"), list_of(&["a"]), list_of(&["b", "c"])]
            )
            .is_err_and(|e| e.contains("elements"))
        );
    }

    #[test]
    fn cidr_functions_match_terraform() {
        assert_eq!(
            call("cidrsubnet", vec![s("10.0.0.0/16"), n(8.0), n(2.0)]),
            Ok(s("10.0.2.0/24"))
        );
        assert_eq!(
            call("cidrsubnet", vec![s("172.16.0.0/12"), n(4.0), n(15.0)]),
            Ok(s("172.31.0.0/16"))
        );
        assert_eq!(
            call(
                "cidrsubnet",
                vec![s("fd00:fd12:3456:7890::/56"), n(16.0), n(162.0)]
            ),
            Ok(s("fd00:fd12:3456:7800:a200::/72"))
        );
        assert_eq!(
            call("cidrhost", vec![s("10.12.112.0/20"), n(16.0)]),
            Ok(s("10.12.112.16"))
        );
        assert_eq!(
            call("cidrhost", vec![s("10.12.112.0/20"), n(-2.0)]),
            Ok(s("10.12.127.254"))
        );
        assert!(call("cidrsubnet", vec![s("10.0.0.0/16"), n(8.0), n(256.0)]).is_err());
        assert!(call("cidrhost", vec![s("nonsense"), n(1.0)]).is_err());
    }

    #[test]
    fn string_functions() {
        assert_eq!(
            call("format", vec![s("%s-%03d"), s("web"), n(7.0)]),
            Ok(s("web-007"))
        );
        assert_eq!(
            call("substr", vec![s("hello world"), n(-5.0), n(-1.0)]),
            Ok(s("world"))
        );
        assert_eq!(
            call("join", vec![s(","), Value::list(vec![s("a"), n(1.0)])]),
            Ok(s("a,1"))
        );
        assert_eq!(
            call("sha256", vec![s("")]),
            Ok(s(
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            ))
        );
        assert_eq!(call("base64decode", vec![s("aGVsbG8=")]), Ok(s("hello")));
        assert!(call("format", vec![s("%s %s"), s("one")]).is_err());
    }

    #[test]
    fn unknown_arguments_make_unknown_results() {
        assert_eq!(call("upper", vec![Value::Unknown]), Ok(Value::Unknown));
        assert_eq!(
            call("length", vec![Value::list(vec![Value::Unknown, n(1.0)])]),
            Ok(n(2.0))
        );
        assert_eq!(
            call("join", vec![s(","), Value::list(vec![Value::Unknown])]),
            Ok(Value::Unknown)
        );
    }

    #[test]
    fn range_is_bounded() {
        assert!(
            call("range", vec![n(1e12)])
                .unwrap_err()
                .contains("more than")
        );
        assert_eq!(
            call("range", vec![n(1.0), n(7.0), n(3.0)]),
            Ok(Value::list(vec![n(1.0), n(4.0)]))
        );
    }
}
