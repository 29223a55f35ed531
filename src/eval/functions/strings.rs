//! String and path functions: `basename`, `dirname`, `pathexpand`, `chomp`,
//! `title`, `regex`, `regexall`, `formatlist`, and the digests of strings.

use super::*;

/// The last element of a path, as Go's `filepath.Base` (Terraform's).
pub(super) fn basename(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let path = string(args, 0)?;
    let trimmed = path.trim_end_matches('/');
    Ok(Value::string(match trimmed {
        "" if path.is_empty() => ".",
        "" => "/",
        _ => trimmed.rsplit('/').next().unwrap_or(trimmed),
    }))
}

/// All but the last element of a path, as Go's `filepath.Dir`.
pub(super) fn dirname(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let path = string(args, 0)?;
    let parent = match path.rfind('/') {
        None => ".",
        Some(0) => "/",
        Some(at) => path[..at].trim_end_matches('/'),
    };
    Ok(Value::string(if parent.is_empty() { "/" } else { parent }))
}

/// A leading `~` replaced by the home directory.
pub(super) fn pathexpand(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let path = string(args, 0)?;
    let Some(rest) = path.strip_prefix('~') else {
        return Ok(Value::string(path));
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return Ok(Value::string(path));
    }
    let home = std::env::var("HOME").map_err(|_| {
        FunctionError::at(0, "`~` cannot be expanded: HOME is not set")
            .help("set HOME, or write the whole path")
    })?;
    Ok(Value::string(format!("{home}{rest}")))
}

/// Every newline at the end removed (`\n` and `\r\n`).
pub(super) fn chomp(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    Ok(Value::string(
        string(args, 0)?.trim_end_matches(['\n', '\r']),
    ))
}

/// The first letter of each word in upper case.
pub(super) fn title(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let mut out = String::new();
    let mut after_letter = false;
    for c in string(args, 0)?.chars() {
        if after_letter {
            out.push(c);
        } else {
            out.extend(c.to_uppercase());
        }
        after_letter = c.is_alphanumeric() || c == '\'';
    }
    Ok(Value::string(out))
}

fn compiled(args: &[Value]) -> Result<regex::Regex, FunctionError> {
    let pattern = string(args, 0)?;
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|error| {
            let why = error.to_string();
            let why = why.lines().last().unwrap_or("invalid").trim().to_string();
            FunctionError::at(0, format!("invalid regular expression: {why}"))
                .help("the syntax is RE2's, as in Terraform: escape `.` `(` `[` with `\\\\`")
        })
}

/// One match as `regex` returns it: the text, or the captures (a list, or
/// an object when they are named).
fn captured(regex: &regex::Regex, captures: &regex::Captures) -> Value {
    if regex.captures_len() == 1 {
        return Value::string(captures.get(0).map_or("", |m| m.as_str()));
    }
    let names: Vec<Option<&str>> = regex.capture_names().skip(1).collect();
    if names.iter().any(Option::is_some) {
        let mut object = BTreeMap::new();
        for (index, name) in names.iter().enumerate() {
            if let Some(name) = name {
                let text = captures.get(index + 1).map(|m| m.as_str());
                object.insert(name.to_string(), text.map_or(Value::Null, Value::string));
            }
        }
        return Value::map(object);
    }
    Value::list(
        (1..regex.captures_len())
            .map(|index| {
                captures
                    .get(index)
                    .map_or(Value::Null, |m| Value::string(m.as_str()))
            })
            .collect(),
    )
}

/// The first match of a regular expression (RE2 syntax).
pub(super) fn regex(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let regex = compiled(args)?;
    let text = string(args, 1)?;
    match regex.captures(text) {
        Some(captures) => Ok(captured(&regex, &captures)),
        None => Err(FunctionError::at(1, "the pattern does not match")
            .help("use `regexall` for a list that may be empty, or `can(regex(…))` to test")),
    }
}

/// Every match, each as `regex` returns one.
pub(super) fn regexall(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let regex = compiled(args)?;
    let text = string(args, 1)?;
    Ok(Value::list(
        regex
            .captures_iter(text)
            .map(|captures| captured(&regex, &captures))
            .collect(),
    ))
}

/// `format` over lists element by element (a single value stands for every
/// element): a list of strings.
pub(super) fn formatlist(args: &[Value], context: &CallContext) -> Result<Value, FunctionError> {
    let mut length: Option<usize> = None;
    for (index, arg) in args.iter().enumerate().skip(1) {
        if let Value::List(items) = arg {
            match length {
                Some(known) if known != items.len() => {
                    return Err(FunctionError::at(
                        index,
                        format!(
                            "argument {} has {} elements, an earlier list {known}",
                            index + 1,
                            items.len()
                        ),
                    )
                    .help("every list given to `formatlist` must have as many elements"));
                }
                _ => length = Some(items.len()),
            }
        }
    }
    let Some(length) = length else {
        // No list: one string, in a list.
        return Ok(Value::list(vec![format(args, context)?]));
    };
    let mut out = Vec::with_capacity(length);
    for position in 0..length {
        let row: Vec<Value> = args
            .iter()
            .enumerate()
            .map(|(index, arg)| match arg {
                Value::List(items) if index > 0 => items[position].clone(),
                other => other.clone(),
            })
            .collect();
        out.push(format(&row, context)?);
    }
    Ok(Value::list(out))
}

pub(super) fn md5(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    Ok(Value::string(hex(&md5::Md5::digest(
        string(args, 0)?.as_bytes(),
    ))))
}

pub(super) fn sha1(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    Ok(Value::string(hex(&sha1::Sha1::digest(
        string(args, 0)?.as_bytes(),
    ))))
}

pub(super) fn sha512(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    Ok(Value::string(hex(&sha2::Sha512::digest(
        string(args, 0)?.as_bytes(),
    ))))
}
