//! Type constraints of `variable` blocks (`string`, `list(number)`, …) and
//! the conversions that make a given value fit one.

use std::collections::BTreeMap;
use std::fmt;

use super::value::{Value, format_number};
use crate::syntax::{Expr, ExprKind, ObjectKey};

#[derive(Debug, Clone, PartialEq)]
pub enum TypeConstraint {
    Any,
    String,
    Number,
    Bool,
    List(Box<TypeConstraint>),
    Set(Box<TypeConstraint>),
    Map(Box<TypeConstraint>),
    Object(BTreeMap<String, TypeConstraint>),
}

pub const TYPE_NAMES: &[&str] = &[
    "string", "number", "bool", "any", "list", "set", "map", "object",
];

impl TypeConstraint {
    /// Reads a type expression. `Err` carries the span of the bad part.
    pub fn from_expr(expr: &Expr) -> Result<TypeConstraint, &Expr> {
        match &expr.kind {
            ExprKind::Variable(ident) => match ident.name.as_str() {
                "string" => Ok(TypeConstraint::String),
                "number" => Ok(TypeConstraint::Number),
                "bool" => Ok(TypeConstraint::Bool),
                "any" => Ok(TypeConstraint::Any),
                // `list` alone means a list of anything.
                "list" => Ok(TypeConstraint::List(Box::new(TypeConstraint::Any))),
                "set" => Ok(TypeConstraint::Set(Box::new(TypeConstraint::Any))),
                "map" => Ok(TypeConstraint::Map(Box::new(TypeConstraint::Any))),
                _ => Err(expr),
            },
            ExprKind::Call { name, args, .. } if args.len() == 1 => {
                let arg = &args[0];
                match name.name.as_str() {
                    "list" => Ok(TypeConstraint::List(Box::new(Self::from_expr(arg)?))),
                    "set" => Ok(TypeConstraint::Set(Box::new(Self::from_expr(arg)?))),
                    "map" => Ok(TypeConstraint::Map(Box::new(Self::from_expr(arg)?))),
                    "object" => match &arg.kind {
                        ExprKind::Object(items) => {
                            let mut fields = BTreeMap::new();
                            for item in items {
                                let ObjectKey::Name(key) = &item.key else {
                                    return Err(arg);
                                };
                                fields.insert(key.name.clone(), Self::from_expr(&item.value)?);
                            }
                            Ok(TypeConstraint::Object(fields))
                        }
                        _ => Err(arg),
                    },
                    _ => Err(expr),
                }
            }
            ExprKind::Parenthesized(inner) => Self::from_expr(inner),
            _ => Err(expr),
        }
    }

    /// Is this a type whose command-line value is written as an expression?
    pub fn is_complex(&self) -> bool {
        !matches!(
            self,
            TypeConstraint::String | TypeConstraint::Number | TypeConstraint::Bool
        )
    }

    /// Converts a value to this type, the way users expect: `"3"` fits
    /// `number`, `5` fits `string`. `Err` says why it does not fit.
    pub fn convert(&self, value: &Value) -> Result<Value, String> {
        if value.is_unknown() || matches!(value, Value::Null) {
            return Ok(value.clone());
        }
        match self {
            TypeConstraint::Any => Ok(value.clone()),
            TypeConstraint::String => match value {
                Value::String(_) => Ok(value.clone()),
                Value::Number(number) => Ok(Value::string(format_number(*number))),
                Value::Bool(flag) => Ok(Value::string(flag.to_string())),
                other => Err(format!(
                    "a string is required, but this is a {}",
                    other.type_name()
                )),
            },
            TypeConstraint::Number => match value {
                Value::Number(_) => Ok(value.clone()),
                Value::String(text) => text
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite())
                    .map(Value::Number)
                    .ok_or_else(|| format!("a number is required, but `{text}` is not a number")),
                other => Err(format!(
                    "a number is required, but this is a {}",
                    other.type_name()
                )),
            },
            TypeConstraint::Bool => match value {
                Value::Bool(_) => Ok(value.clone()),
                Value::String(text) if &**text == "true" => Ok(Value::Bool(true)),
                Value::String(text) if &**text == "false" => Ok(Value::Bool(false)),
                Value::String(text) => Err(format!(
                    "a bool is required, but `{text}` is neither `true` nor `false`"
                )),
                other => Err(format!(
                    "a bool is required, but this is a {}",
                    other.type_name()
                )),
            },
            TypeConstraint::List(element) | TypeConstraint::Set(element) => {
                let Value::List(items) = value else {
                    return Err(format!(
                        "a list is required, but this is a {}",
                        value.type_name()
                    ));
                };
                let mut converted = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    converted.push(
                        element
                            .convert(item)
                            .map_err(|why| format!("element {index}: {why}"))?,
                    );
                }
                if matches!(self, TypeConstraint::Set(_)) {
                    converted = super::functions::distinct_sorted(converted);
                }
                Ok(Value::list(converted))
            }
            TypeConstraint::Map(element) => {
                let Value::Map(entries) = value else {
                    return Err(format!(
                        "a map is required, but this is a {}",
                        value.type_name()
                    ));
                };
                let mut converted = BTreeMap::new();
                for (key, item) in entries.iter() {
                    let item = element
                        .convert(item)
                        .map_err(|why| format!("key `{key}`: {why}"))?;
                    converted.insert(key.clone(), item);
                }
                Ok(Value::map(converted))
            }
            TypeConstraint::Object(fields) => {
                let Value::Map(entries) = value else {
                    return Err(format!(
                        "an object is required, but this is a {}",
                        value.type_name()
                    ));
                };
                let mut converted = BTreeMap::new();
                for (name, field_type) in fields {
                    let item = entries.get(name).cloned().unwrap_or(Value::Null);
                    let item = field_type
                        .convert(&item)
                        .map_err(|why| format!("attribute `{name}`: {why}"))?;
                    converted.insert(name.clone(), item);
                }
                if let Some(extra) = entries.keys().find(|key| !fields.contains_key(*key)) {
                    return Err(format!(
                        "attribute `{extra}` is not part of the object type"
                    ));
                }
                Ok(Value::map(converted))
            }
        }
    }
}

impl fmt::Display for TypeConstraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypeConstraint::Any => f.write_str("any"),
            TypeConstraint::String => f.write_str("string"),
            TypeConstraint::Number => f.write_str("number"),
            TypeConstraint::Bool => f.write_str("bool"),
            TypeConstraint::List(element) => write!(f, "list({element})"),
            TypeConstraint::Set(element) => write!(f, "set({element})"),
            TypeConstraint::Map(element) => write!(f, "map({element})"),
            TypeConstraint::Object(fields) => {
                f.write_str("object({")?;
                for (index, (name, field_type)) in fields.iter().enumerate() {
                    if index > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{name} = {field_type}")?;
                }
                f.write_str("})")
            }
        }
    }
}
