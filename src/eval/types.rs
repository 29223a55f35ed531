//! Type constraints of `variable` blocks (`string`, `list(number)`, …) and
//! the conversions that make a given value fit one.

use std::collections::BTreeMap;
use std::fmt;

use super::value::{Value, format_number};
use crate::syntax::{Expr, ExprKind, ObjectKey, TemplatePart};

#[derive(Debug, Clone, PartialEq)]
pub enum TypeConstraint {
    Any,
    String,
    Number,
    Bool,
    List(Box<TypeConstraint>),
    Set(Box<TypeConstraint>),
    Map(Box<TypeConstraint>),
    Object(BTreeMap<String, ObjectField>),
    /// `tuple([string, number])`: a list of that length, each element its
    /// own type.
    Tuple(Vec<TypeConstraint>),
}

/// An attribute of an `object({…})` type: required, or `optional(type)`
/// (null when absent) or `optional(type, default)`.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectField {
    pub constraint: TypeConstraint,
    pub optional: bool,
    /// What an absent or null attribute becomes (converted to the type).
    pub default: Option<Value>,
}

impl ObjectField {
    /// A required attribute.
    pub fn required(constraint: TypeConstraint) -> ObjectField {
        ObjectField {
            constraint,
            optional: false,
            default: None,
        }
    }

    /// An attribute that may be absent (null).
    pub fn optional(constraint: TypeConstraint) -> ObjectField {
        ObjectField {
            optional: true,
            ..ObjectField::required(constraint)
        }
    }
}

pub const TYPE_NAMES: &[&str] = &[
    "string", "number", "bool", "any", "list", "set", "map", "object", "tuple",
];

/// The part of a type expression that is not a type, and why when there is
/// more to say than "not a type".
#[derive(Debug)]
pub struct BadType<'e> {
    pub expr: &'e Expr,
    pub why: Option<String>,
}

impl<'e> From<&'e Expr> for BadType<'e> {
    fn from(expr: &'e Expr) -> BadType<'e> {
        BadType { expr, why: None }
    }
}

impl TypeConstraint {
    /// Reads a type expression. `Err` carries the bad part.
    pub fn from_expr(expr: &Expr) -> Result<TypeConstraint, BadType<'_>> {
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
                _ => Err(expr.into()),
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
                                let key = match &item.key {
                                    ObjectKey::Name(key) => key.name.clone(),
                                    ObjectKey::Expr(key) => match &key.kind {
                                        ExprKind::Template(parts) => match parts.as_slice() {
                                            [TemplatePart::Literal(text)] => text.clone(),
                                            [] => String::new(),
                                            _ => return Err(key.into()),
                                        },
                                        _ => return Err(key.into()),
                                    },
                                };
                                fields.insert(key, Self::field_from_expr(&item.value)?);
                            }
                            Ok(TypeConstraint::Object(fields))
                        }
                        _ => Err(arg.into()),
                    },
                    "tuple" => match &arg.kind {
                        ExprKind::List(items) => Ok(TypeConstraint::Tuple(
                            items
                                .iter()
                                .map(Self::from_expr)
                                .collect::<Result<_, _>>()?,
                        )),
                        _ => Err(arg.into()),
                    },
                    _ => Err(expr.into()),
                }
            }
            ExprKind::Parenthesized(inner) => Self::from_expr(inner),
            _ => Err(expr.into()),
        }
    }

    /// An attribute of an object type: a type, or `optional(type)`, or
    /// `optional(type, default)` whose default is a constant.
    fn field_from_expr(expr: &Expr) -> Result<ObjectField, BadType<'_>> {
        let ExprKind::Call { name, args, .. } = &expr.kind else {
            return Ok(ObjectField::required(Self::from_expr(expr)?));
        };
        if name.name != "optional" {
            return Ok(ObjectField::required(Self::from_expr(expr)?));
        }
        match args.as_slice() {
            [constraint] => Ok(ObjectField::optional(Self::from_expr(constraint)?)),
            [constraint, default] => {
                let constraint = Self::from_expr(constraint)?;
                let value = super::evaluator::constant(default).ok_or_else(|| BadType {
                    expr: default,
                    why: Some("a default must be a constant".into()),
                })?;
                let value = constraint.convert(&value).map_err(|why| BadType {
                    expr: default,
                    why: Some(format!("not a valid `{constraint}`: {why}")),
                })?;
                Ok(ObjectField {
                    default: (!matches!(value, Value::Null)).then_some(value),
                    ..ObjectField::optional(constraint)
                })
            }
            _ => Err(expr.into()),
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
                if let Some(extra) = entries.keys().find(|key| !fields.contains_key(*key)) {
                    let known: Vec<&str> = fields.keys().map(String::as_str).collect();
                    return Err(format!(
                        "attribute `{extra}` is not part of the object type (it has {})",
                        if known.is_empty() {
                            "no attributes".to_string()
                        } else {
                            crate::diagnostics::code_list(&known)
                        }
                    ));
                }
                let mut converted = BTreeMap::new();
                for (name, field) in fields {
                    let item = match entries.get(name) {
                        Some(Value::Null) | None if field.default.is_some() => {
                            field.default.clone().unwrap_or(Value::Null)
                        }
                        Some(item) => item.clone(),
                        None if field.optional => Value::Null,
                        None => {
                            return Err(format!(
                                "attribute `{name}` is required (a `{}`)",
                                field.constraint
                            ));
                        }
                    };
                    let item = field
                        .constraint
                        .convert(&item)
                        .map_err(|why| format!("attribute `{name}`: {why}"))?;
                    converted.insert(name.clone(), item);
                }
                Ok(Value::map(converted))
            }
            TypeConstraint::Tuple(elements) => {
                let Value::List(items) = value else {
                    return Err(format!(
                        "a tuple is required, but this is a {}",
                        value.type_name()
                    ));
                };
                if items.len() != elements.len() {
                    return Err(format!(
                        "a tuple of {} elements is required, but this has {}",
                        elements.len(),
                        items.len()
                    ));
                }
                let mut converted = Vec::with_capacity(items.len());
                for (index, (item, element)) in items.iter().zip(elements).enumerate() {
                    converted.push(
                        element
                            .convert(item)
                            .map_err(|why| format!("element {index}: {why}"))?,
                    );
                }
                Ok(Value::list(converted))
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
                for (index, (name, field)) in fields.iter().enumerate() {
                    if index > 0 {
                        f.write_str(", ")?;
                    }
                    match (&field.default, field.optional) {
                        (Some(default), _) => {
                            write!(f, "{name} = optional({}, {default})", field.constraint)?;
                        }
                        (None, true) => write!(f, "{name} = optional({})", field.constraint)?,
                        (None, false) => write!(f, "{name} = {}", field.constraint)?,
                    }
                }
                f.write_str("})")
            }
            TypeConstraint::Tuple(elements) => {
                f.write_str("tuple([")?;
                for (index, element) in elements.iter().enumerate() {
                    if index > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{element}")?;
                }
                f.write_str("])")
            }
        }
    }
}
