//! Operators by precedence climbing: a flat sequence of operands and
//! operators from the grammar becomes a tree, bounded in size.

use super::*;

/// The operand being collected: prefix operators, a primary, its steps.
#[derive(Default)]
pub(super) struct PendingOperand {
    pub(super) prefix: Vec<(UnaryOp, Span)>,
    pub(super) primary: Option<Expr>,
    pub(super) steps: Vec<Step>,
    pub(super) steps_end: Option<u32>,
}

impl PendingOperand {
    /// The finished operand (and a fresh, empty pending one).
    pub(super) fn finish(&mut self) -> Option<Expr> {
        let taken = std::mem::take(self);
        let mut expr = taken.primary?;
        if !taken.steps.is_empty() {
            let mut span = expr.span;
            span.end = taken.steps_end.unwrap_or(span.end);
            expr = Expr {
                kind: ExprKind::Traversal {
                    root: Box::new(expr),
                    steps: taken.steps,
                },
                span,
            };
        }
        for (op, op_span) in taken.prefix.into_iter().rev() {
            let span = op_span.to(expr.span);
            expr = Expr {
                kind: ExprKind::Unary {
                    op,
                    operand: Box::new(expr),
                },
                span,
            };
        }
        Some(expr)
    }
}

pub(super) fn reduce(operands: &mut Vec<Expr>, op: BinaryOp) {
    let (Some(rhs), Some(lhs)) = (operands.pop(), operands.pop()) else {
        return;
    };
    let span = lhs.span.to(rhs.span);
    operands.push(Expr {
        kind: ExprKind::Binary {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        },
        span,
    });
}

impl Builder<'_> {
    /// Builds an expression from its flat pair: operands (prefix operators,
    /// a primary, steps) separated by binary operators, then optionally the
    /// two branches of `?:`. Precedence climbing uses explicit stacks, so
    /// long chains do not recurse.
    pub(super) fn expression(&mut self, pair: Pair<Rule>) -> Expr {
        let span = self.span(&pair);
        let mut operands: Vec<Expr> = Vec::new();
        let mut operators: Vec<BinaryOp> = Vec::new();
        let mut pending = PendingOperand::default();
        let mut branches: Vec<Expr> = Vec::new();
        let mut operator_count = 0usize;
        for part in pair.into_inner() {
            // Stop before building a tree deeper than the limit: even
            // dropping one would recurse once per level.
            if operator_count > MAX_EXPRESSION_OPERATORS {
                return self.too_many_operators(span);
            }
            let op = match part.as_rule() {
                Rule::op_not => {
                    pending.prefix.push((UnaryOp::Not, self.span(&part)));
                    operator_count += 1;
                    continue;
                }
                Rule::op_neg => {
                    pending.prefix.push((UnaryOp::Negate, self.span(&part)));
                    operator_count += 1;
                    continue;
                }
                Rule::splat | Rule::index | Rule::get_attr => {
                    let step_span = self.span(&part);
                    pending.steps_end = Some(step_span.end);
                    pending.steps.push(self.step(part, step_span));
                    continue;
                }
                Rule::expression => {
                    if let Some(operand) = pending.finish() {
                        operands.push(operand);
                    }
                    branches.push(self.expression(part));
                    continue;
                }
                Rule::op_or => BinaryOp::Or,
                Rule::op_and => BinaryOp::And,
                Rule::op_eq => BinaryOp::Equal,
                Rule::op_ne => BinaryOp::NotEqual,
                Rule::op_lt => BinaryOp::Less,
                Rule::op_le => BinaryOp::LessEqual,
                Rule::op_gt => BinaryOp::Greater,
                Rule::op_ge => BinaryOp::GreaterEqual,
                Rule::op_add => BinaryOp::Add,
                Rule::op_sub => BinaryOp::Subtract,
                Rule::op_mul => BinaryOp::Multiply,
                Rule::op_div => BinaryOp::Divide,
                Rule::op_mod => BinaryOp::Modulo,
                _ => {
                    pending.primary = Some(self.primary(part));
                    continue;
                }
            };
            operator_count += 1;
            if let Some(operand) = pending.finish() {
                operands.push(operand);
            }
            while let Some(top) = operators.last().copied() {
                if top.precedence() >= op.precedence() {
                    operators.pop();
                    reduce(&mut operands, top);
                } else {
                    break;
                }
            }
            operators.push(op);
        }
        if let Some(operand) = pending.finish() {
            operands.push(operand);
        }
        if operator_count > MAX_EXPRESSION_OPERATORS {
            return self.too_many_operators(span);
        }
        while let Some(op) = operators.pop() {
            reduce(&mut operands, op);
        }
        let condition = operands.pop().unwrap_or(Expr {
            kind: ExprKind::Null,
            span,
        });
        if branches.len() == 2 {
            let otherwise = branches.pop().expect("else branch");
            let then = branches.pop().expect("then branch");
            return Expr {
                kind: ExprKind::Conditional {
                    condition: Box::new(condition),
                    then: Box::new(then),
                    otherwise: Box::new(otherwise),
                },
                span,
            };
        }
        condition
    }

    pub(super) fn too_many_operators(&mut self, span: Span) -> Expr {
        self.diagnostics.push(
            Diagnostic::error(Code::TooDeep, "expression has too many operators")
                .with_label(
                    span,
                    format!("more than {MAX_EXPRESSION_OPERATORS} operators"),
                )
                .with_help("split the expression into `locals`"),
        );
        Expr {
            kind: ExprKind::Null,
            span,
        }
    }
}
