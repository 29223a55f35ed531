//! `dynamic` blocks: `dynamic "ingress" { for_each = …, iterator = rule,
//! labels = […], content { … } }` generates one `ingress` block per element,
//! its `content` evaluated with the iterator (`rule.key`, `rule.value`;
//! the block's name when there is no `iterator`) bound to the element.
//! Read here from the syntax tree; the references pass binds the iterator
//! within `content` (see [`dynamic_scopes`]).

use super::*;

/// A `dynamic` block as written.
pub(super) struct Dynamic<'b> {
    /// The kind of the blocks it generates: its label.
    pub kind: &'b str,
    pub for_each: &'b Expr,
    pub iterator: &'b str,
    /// Each generated block's label, for labelled blocks.
    pub labels: Option<&'b Expr>,
    pub content: &'b Block,
}

/// Reads a `dynamic` block, or reports what is wrong with its shape.
pub(super) fn read_dynamic<'b>(block: &'b Block) -> Result<Dynamic<'b>, Diagnostic> {
    let wrong = |span: Span, message: String, label: &str| {
        Diagnostic::error(Code::BlockLabels, message)
            .with_label(span, label.to_string())
            .with_help(
                "write `dynamic \"KIND\" { for_each = COLLECTION, content { … } }`, with optional \
                 `iterator = NAME` (default: KIND) and `labels = [EXPR]`",
            )
    };
    let [kind] = block.labels.as_slice() else {
        return Err(wrong(
            block.header_span,
            "a `dynamic` block takes one label: the kind of block it generates".into(),
            "one label",
        ));
    };
    let mut for_each = None;
    let mut iterator = kind.value.as_str();
    let mut labels = None;
    for attribute in block.attributes() {
        match attribute.name.name.as_str() {
            "for_each" => for_each = Some(&attribute.value),
            "labels" => labels = Some(&attribute.value),
            "iterator" => match &attribute.value.kind {
                ExprKind::Variable(name) => iterator = name.name.as_str(),
                _ => {
                    return Err(Diagnostic::error(
                        Code::TypeMismatch,
                        "`iterator` is a name, not an expression",
                    )
                    .with_label(attribute.value.span, "not a bare name")
                    .with_help(
                        "write e.g. `iterator = rule`, then read `rule.key` and `rule.value`",
                    ));
                }
            },
            other => {
                return Err(Diagnostic::error(
                    Code::UnknownArgument,
                    format!("unknown argument `{other}` in a `dynamic` block"),
                )
                .with_label(attribute.name.span, "not an argument of `dynamic`")
                .with_help(
                    "a `dynamic` block takes `for_each`, `iterator`, `labels` and a `content` block; \
                     the generated block's arguments go in `content`",
                ));
            }
        }
    }
    let contents: Vec<&Block> = block.blocks().collect();
    let content = match contents.as_slice() {
        [content] if content.kind.name == "content" && content.labels.is_empty() => *content,
        _ => {
            return Err(wrong(
                block.header_span,
                format!(
                    "a `dynamic \"{}\"` block holds exactly one `content {{ … }}` block",
                    kind.value
                ),
                "needs one `content` block",
            ));
        }
    };
    let Some(for_each) = for_each else {
        return Err(Diagnostic::error(
            Code::MissingArgument,
            format!("a `dynamic \"{}\"` block needs `for_each`", kind.value),
        )
        .with_label(block.header_span, "needs `for_each`")
        .with_help("add `for_each = COLLECTION`: one block is generated per element"));
    };
    Ok(Dynamic {
        kind: &kind.value,
        for_each,
        iterator,
        labels,
        content,
    })
}

/// Where each `dynamic` block's iterator is bound: its `content` block and
/// its `labels`, for the references pass. Nested `dynamic` blocks add
/// theirs.
pub(super) fn dynamic_scopes<'b>(
    blocks: impl Iterator<Item = &'b Block>,
    out: &mut Vec<(Span, &'b str)>,
) {
    for block in blocks {
        if block.kind.name == "dynamic"
            && let Ok(dynamic) = read_dynamic(block)
        {
            out.push((dynamic.content.span, dynamic.iterator));
            if let Some(labels) = dynamic.labels {
                out.push((labels.span, dynamic.iterator));
            }
        }
        dynamic_scopes(block.blocks(), out);
    }
}

/// The blocks a `dynamic` block generates, evaluated: one body per element
/// of `for_each`, with its label when `labels` is set. `None` when
/// `for_each` is unknown (so is the whole kind).
pub(super) type Generated = Option<Vec<(Option<String>, Value, Marks)>>;

pub(super) fn generate(evaluator: &mut Evaluator, dynamic: &Dynamic) -> Result<Generated, Failed> {
    let (collection, collection_marks) = evaluator.eval_marked(dynamic.for_each)?;
    let elements: Vec<(Value, Value)> = match collection {
        Value::Unknown => return Ok(None),
        Value::Null => Vec::new(),
        Value::List(items) => items
            .iter()
            .enumerate()
            .map(|(index, item)| (Value::Number(index as f64), item.clone()))
            .collect(),
        Value::Map(entries) => entries
            .iter()
            .map(|(key, value)| (Value::string(key), value.clone()))
            .collect(),
        other => {
            evaluator.diagnostics.push(
                Diagnostic::error(
                    Code::TypeMismatch,
                    format!(
                        "`for_each` of a `dynamic` block needs a list, set or map, not a {}",
                        other.type_name()
                    ),
                )
                .with_label(dynamic.for_each.span, "not a collection")
                .with_help("give it a list, a set or a map: one block per element"),
            );
            return Err(Failed);
        }
    };
    evaluator.generating(elements.len(), dynamic.for_each.span)?;
    let element_marks = collection_marks.collapsed();
    let mut generated = Vec::with_capacity(elements.len());
    for (key, value) in elements {
        let iterator = Value::map(BTreeMap::from([
            ("key".to_string(), key),
            ("value".to_string(), value),
        ]));
        let depth = evaluator.bind_name(dynamic.iterator, iterator, element_marks.clone());
        let result = (|| -> Result<Option<(Option<String>, Value, Marks)>, Failed> {
            let label = match dynamic.labels {
                None => None,
                Some(labels) => match evaluator.eval(labels)? {
                    Value::List(items) if items.len() == 1 => match items[0].to_interpolated() {
                        Some(label) => Some(label),
                        None if items[0].is_unknown() => return Ok(None),
                        None => return Err(label_error(evaluator, labels)),
                    },
                    Value::Unknown => return Ok(None),
                    _ => return Err(label_error(evaluator, labels)),
                },
            };
            let (body, body_marks) = eval_body(evaluator, &dynamic.content.body, &[])?;
            Ok(Some((label, body, body_marks.union(&element_marks))))
        })();
        evaluator.unbind(depth);
        match result? {
            Some(block) => generated.push(block),
            None => return Ok(None),
        }
    }
    Ok(Some(generated))
}

fn label_error(evaluator: &mut Evaluator, labels: &Expr) -> Failed {
    evaluator.diagnostics.push(
        Diagnostic::error(Code::TypeMismatch, "`labels` must be a list of one string")
            .with_label(labels.span, "not a list of one label")
            .with_help("write e.g. `labels = [rule.key]`: nested blocks take one label"),
    );
    Failed
}
