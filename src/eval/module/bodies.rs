//! Bodies: attributes and nested blocks evaluated into an object, and a
//! block evaluated on its own when it refers to nothing (a backend or
//! provider block written with literals).

use super::*;

/// The value of a block whose expressions refer to nothing (a backend
/// written with literals), evaluated on its own, without the rest of the
/// configuration. `None` when it refers to something or does not evaluate.
pub fn evaluate_standalone_block(block: &Block, module_dir: &std::path::Path) -> Option<Value> {
    let mut expressions = Vec::new();
    body_expressions(&block.body, &mut expressions);
    if !super::super::evaluator::refers_to_nothing(expressions) {
        return None;
    }
    super::super::evaluator::standalone(module_dir, |evaluator| {
        eval_body(evaluator, &block.body, &[])
            .ok()
            .map(|(value, _)| value)
    })
}

/// Evaluates a body: attributes, and nested blocks as described at
/// [`ModuleEvaluation::eval_block_body`], with the marks of its secrets.
/// Reports every failing attribute.
pub(super) fn eval_body(evaluator: &mut Evaluator, body: &Body, skip: &[&str]) -> MarkedResult {
    let mut object = BTreeMap::new();
    let mut marks = Marks::gather();
    let mut seen: HashMap<&str, Span> = HashMap::default();
    let mut ok = true;
    let mut blocks = Vec::new();
    for item in &body.items {
        match item {
            Item::Attribute(attribute) => {
                let name = attribute.name.name.as_str();
                if skip.contains(&name) {
                    continue;
                }
                if let Some(first) = seen.insert(name, attribute.name.span) {
                    evaluator.diagnostics.push(
                        Diagnostic::error(Code::Duplicate, format!("duplicate argument `{name}`"))
                            .with_label(attribute.name.span, "set again here")
                            .with_label(first, "first set here")
                            .with_help("an argument may be set once per block; remove one of them"),
                    );
                    ok = false;
                    continue;
                }
                if name == "provider"
                    && let ExprKind::Variable(ident) = &attribute.value.kind
                {
                    // `provider = local`: a bare provider name.
                    object.insert(name.to_string(), Value::string(&ident.name));
                    continue;
                }
                match evaluator.eval_marked(&attribute.value) {
                    Ok((value, value_marks)) => {
                        marks.add(Segment::Key(name.to_string()), &value_marks);
                        object.insert(name.to_string(), value);
                    }
                    Err(_) => ok = false,
                }
            }
            Item::Block(block) => blocks.push(block.clone()),
        }
    }
    if eval_nested_blocks(evaluator, &blocks, &mut object, &mut marks).is_err() {
        ok = false;
    }
    if ok {
        Ok((Value::map(object), marks.finish()))
    } else {
        Err(Failed)
    }
}

pub(super) fn eval_nested_blocks(
    evaluator: &mut Evaluator,
    blocks: &[Block],
    object: &mut BTreeMap<String, Value>,
    marks: &mut MarksBuilder,
) -> Result<(), Failed> {
    let mut ok = true;
    let mut lists: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut labelled: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    // Kinds a `dynamic` block generates from an unknown collection.
    let mut unknown: BTreeSet<String> = BTreeSet::new();
    for block in blocks {
        if block.kind.name == "dynamic" {
            let spec = match dynamic::read_dynamic(block) {
                Ok(spec) => spec,
                Err(problem) => {
                    evaluator.diagnostics.push(problem);
                    ok = false;
                    continue;
                }
            };
            match dynamic::generate(evaluator, &spec) {
                Err(Failed) => ok = false,
                Ok(None) => {
                    unknown.insert(spec.kind.to_string());
                }
                Ok(Some(generated)) => {
                    let kind = spec.kind.to_string();
                    for (label, value, block_marks) in generated {
                        match label {
                            None => {
                                let list = lists.entry(kind.clone()).or_default();
                                let placed = block_marks.under(Segment::Index(list.len()));
                                marks.add(Segment::Key(kind.clone()), &placed);
                                list.push(value);
                            }
                            Some(label) => {
                                let placed = block_marks.under(Segment::Key(label.clone()));
                                marks.add(Segment::Key(kind.clone()), &placed);
                                labelled
                                    .entry(kind.clone())
                                    .or_default()
                                    .insert(label, value);
                            }
                        }
                    }
                }
            }
            continue;
        }
        let value = eval_body(evaluator, &block.body, &[]);
        let Ok((value, block_marks)) = value else {
            ok = false;
            continue;
        };
        let kind = block.kind.name.clone();
        match block.labels.as_slice() {
            [] => {
                let list = lists.entry(kind.clone()).or_default();
                let placed = block_marks.under(Segment::Index(list.len()));
                marks.add(Segment::Key(kind), &placed);
                list.push(value);
            }
            [label] => {
                let placed = block_marks.under(Segment::Key(label.value.clone()));
                marks.add(Segment::Key(kind.clone()), &placed);
                labelled
                    .entry(kind)
                    .or_default()
                    .insert(label.value.clone(), value);
            }
            _ => {
                evaluator.diagnostics.push(
                    Diagnostic::error(
                        Code::BlockLabels,
                        format!("too many labels on a nested `{}` block", block.kind.name),
                    )
                    .with_label(block.header_span, "at most one label")
                    .with_help("nested blocks take at most one label"),
                );
                ok = false;
            }
        }
    }
    for (kind, values) in lists {
        object.insert(kind, Value::list(values));
    }
    for (kind, values) in labelled {
        object.insert(kind, Value::map(values));
    }
    // Blocks generated from a collection known only after apply: how many
    // there will be is unknown too.
    for kind in unknown {
        object.insert(kind, Value::Unknown);
    }
    if ok { Ok(()) } else { Err(Failed) }
}
