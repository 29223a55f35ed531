//! Collection functions: sets (lists kept sorted and distinct), `one`,
//! `alltrue`/`anytrue`, `coalescelist`, `transpose`.

use super::*;

fn sets(args: &[Value]) -> Result<Vec<&[Value]>, FunctionError> {
    (0..args.len()).map(|index| list(args, index)).collect()
}

/// Every element of any of the sets.
pub(super) fn setunion(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let all = sets(args)?.into_iter().flatten().cloned().collect();
    Ok(Value::list(distinct_sorted(all)))
}

/// The elements in every one of the sets.
pub(super) fn setintersection(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let sets = sets(args)?;
    let common = sets[0]
        .iter()
        .filter(|item| sets[1..].iter().all(|set| set.contains(item)))
        .cloned()
        .collect();
    Ok(Value::list(distinct_sorted(common)))
}

/// The elements of the first set that are not in the second.
pub(super) fn setsubtract(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let (from, taken) = (list(args, 0)?, list(args, 1)?);
    let left = from
        .iter()
        .filter(|item| !taken.contains(item))
        .cloned()
        .collect();
    Ok(Value::list(distinct_sorted(left)))
}

fn bools(args: &[Value]) -> Result<Vec<bool>, FunctionError> {
    list(args, 0)?
        .iter()
        .map(
            |item| match super::super::types::TypeConstraint::Bool.convert(item) {
                Ok(Value::Bool(flag)) => Ok(flag),
                _ => Err(type_error(0, "list of bools", item)),
            },
        )
        .collect()
}

pub(super) fn alltrue(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    Ok(Value::Bool(bools(args)?.into_iter().all(|flag| flag)))
}

pub(super) fn anytrue(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    Ok(Value::Bool(bools(args)?.into_iter().any(|flag| flag)))
}

/// The element of a list of at most one (`null` for none).
pub(super) fn one(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let items = list(args, 0)?;
    match items {
        [] => Ok(Value::Null),
        [only] => Ok(only.clone()),
        more => Err(FunctionError::at(
            0,
            format!(
                "the list has {} elements; `one` takes at most one",
                more.len()
            ),
        )
        .help("index it (`list[0]`) to take the first")),
    }
}

/// The first argument that is a non-empty list.
pub(super) fn coalescelist(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    for index in 0..args.len() {
        if args[index].is_unknown() {
            return Ok(Value::Unknown);
        }
        if !list(args, index)?.is_empty() {
            return Ok(args[index].clone());
        }
    }
    Err(FunctionError::new("every list is empty")
        .help("end with a list that is not empty, as a default"))
}

/// A map of lists of strings turned inside out: each string to the keys
/// whose lists hold it.
pub(super) fn transpose(args: &[Value], _: &CallContext) -> Result<Value, FunctionError> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (key, items) in map(args, 0)? {
        let Value::List(items) = items else {
            return Err(type_error(0, "map of lists of strings", items));
        };
        for item in items.iter() {
            let Value::String(text) = item else {
                return Err(type_error(0, "map of lists of strings", item));
            };
            out.entry(text.to_string())
                .or_default()
                .push(Value::string(key.clone()));
        }
    }
    Ok(Value::map(
        out.into_iter()
            .map(|(key, keys)| (key, Value::list(keys)))
            .collect(),
    ))
}
