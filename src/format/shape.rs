//! A span-free rendering of a syntax tree, to check that formatting changes
//! layout only: `tree_shape(parse(fmt(x))) == tree_shape(parse(x))`.

use std::fmt::Write as _;

use crate::syntax::{Body, Expr, ExprKind, Item, ObjectKey, Step, TemplatePart};

pub fn tree_shape(body: &Body) -> String {
    let mut out = String::new();
    body_shape(body, &mut out);
    out
}

fn body_shape(body: &Body, out: &mut String) {
    for item in &body.items {
        match item {
            Item::Attribute(attribute) => {
                let _ = write!(out, "(attr {} ", attribute.name.name);
                expr_shape(&attribute.value, out);
                out.push(')');
            }
            Item::Block(block) => {
                let _ = write!(out, "(block {}", block.kind.name);
                for label in &block.labels {
                    let _ = write!(out, " {:?}", label.value);
                }
                out.push(' ');
                body_shape(&block.body, out);
                out.push(')');
            }
        }
    }
}

fn template_shape(parts: &[TemplatePart], out: &mut String) {
    out.push_str("(tpl");
    for part in parts {
        match part {
            TemplatePart::Literal(text) => {
                let _ = write!(out, " {text:?}");
            }
            TemplatePart::Interpolation(inner) => {
                out.push_str(" ${");
                expr_shape(inner, out);
                out.push('}');
            }
            TemplatePart::If {
                condition,
                then,
                otherwise,
                ..
            } => {
                out.push_str(" %{if ");
                expr_shape(condition, out);
                out.push(' ');
                template_shape(then, out);
                out.push_str(" else ");
                template_shape(otherwise, out);
                out.push('}');
            }
            TemplatePart::For { intro, body, .. } => {
                out.push_str(" %{for ");
                if let Some(key) = &intro.key_var {
                    let _ = write!(out, "{},", key.name);
                }
                let _ = write!(out, "{} in ", intro.value_var.name);
                expr_shape(&intro.collection, out);
                out.push(' ');
                template_shape(body, out);
                out.push('}');
            }
        }
    }
    out.push(')');
}

fn expr_shape(expr: &Expr, out: &mut String) {
    match &expr.kind {
        ExprKind::Null => out.push_str("null"),
        ExprKind::Bool(flag) => {
            let _ = write!(out, "{flag}");
        }
        ExprKind::Number(number) => {
            let _ = write!(out, "{number}");
        }
        ExprKind::Template(parts) => template_shape(parts, out),
        ExprKind::List(items) => {
            out.push('[');
            for item in items {
                expr_shape(item, out);
                out.push(',');
            }
            out.push(']');
        }
        ExprKind::Object(items) => {
            out.push('{');
            for item in items {
                match &item.key {
                    ObjectKey::Name(ident) => out.push_str(&ident.name),
                    ObjectKey::Expr(key) => expr_shape(key, out),
                }
                out.push('=');
                expr_shape(&item.value, out);
                out.push(',');
            }
            out.push('}');
        }
        ExprKind::Variable(ident) => out.push_str(&ident.name),
        ExprKind::Traversal { root, steps } => {
            expr_shape(root, out);
            for step in steps {
                match step {
                    Step::Attr(ident) => {
                        let _ = write!(out, ".{}", ident.name);
                    }
                    Step::Index(index) => {
                        out.push('[');
                        expr_shape(index, out);
                        out.push(']');
                    }
                    Step::Splat(_) => out.push_str("[*]"),
                }
            }
        }
        ExprKind::Call {
            name,
            args,
            expand_final,
        } => {
            let _ = write!(out, "{}(", name.name);
            for arg in args {
                expr_shape(arg, out);
                out.push(',');
            }
            if *expand_final {
                out.push_str("...");
            }
            out.push(')');
        }
        ExprKind::Unary { op, operand } => {
            let _ = write!(out, "({} ", op.symbol());
            expr_shape(operand, out);
            out.push(')');
        }
        ExprKind::Binary { op, lhs, rhs } => {
            let _ = write!(out, "({} ", op.symbol());
            expr_shape(lhs, out);
            out.push(' ');
            expr_shape(rhs, out);
            out.push(')');
        }
        ExprKind::Conditional {
            condition,
            then,
            otherwise,
        } => {
            out.push_str("(? ");
            expr_shape(condition, out);
            out.push(' ');
            expr_shape(then, out);
            out.push(' ');
            expr_shape(otherwise, out);
            out.push(')');
        }
        ExprKind::ForList {
            intro,
            value,
            condition,
        } => {
            let _ = write!(
                out,
                "(for-list {:?} {} ",
                intro.key_var.as_ref().map(|k| &k.name),
                intro.value_var.name
            );
            expr_shape(&intro.collection, out);
            out.push(' ');
            expr_shape(value, out);
            if let Some(condition) = condition {
                out.push_str(" if ");
                expr_shape(condition, out);
            }
            out.push(')');
        }
        ExprKind::ForObject {
            intro,
            key,
            value,
            group,
            condition,
        } => {
            let _ = write!(
                out,
                "(for-object {:?} {} ",
                intro.key_var.as_ref().map(|k| &k.name),
                intro.value_var.name
            );
            expr_shape(&intro.collection, out);
            out.push(' ');
            expr_shape(key, out);
            out.push(' ');
            expr_shape(value, out);
            let _ = write!(out, " {group}");
            if let Some(condition) = condition {
                out.push_str(" if ");
                expr_shape(condition, out);
            }
            out.push(')');
        }
        ExprKind::Parenthesized(inner) => {
            out.push_str("(paren ");
            expr_shape(inner, out);
            out.push(')');
        }
    }
}
