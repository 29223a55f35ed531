//! Resource blocks checked against their provider's schema: known types,
//! known arguments, required ones present, values converted to the
//! declared type, computed attributes unknown until apply.

use super::*;

/// Checks the arguments and nested blocks of a resource (or nested block)
/// against its schema: unknown names, provider-only attributes, missing
/// required arguments.
pub(super) fn check_block_against_schema(
    what: &str,
    header_span: Span,
    attributes: &[crate::syntax::Attribute],
    blocks: &[Block],
    schema: &BlockSchema,
    problems: &mut Vec<Diagnostic>,
) {
    let settable = || {
        schema
            .attributes
            .iter()
            .filter(|(_, a)| a.is_settable())
            .map(|(name, _)| name.as_str())
            .chain(schema.blocks.keys().map(String::as_str))
    };
    for attribute in attributes {
        let name = &attribute.name.name;
        match schema.attributes.get(name) {
            Some(found) if found.is_settable() => {}
            Some(_) => problems.push(
                Diagnostic::error(
                    Code::ComputedArgument,
                    format!("`{name}` of `{what}` is set by the provider"),
                )
                .with_label(attribute.name.span, "cannot be configured")
                .with_help(format!(
                    "remove it; other resources can read it as `{what}.NAME.{name}`"
                )),
            ),
            None if schema.blocks.contains_key(name) => problems.push(
                Diagnostic::error(
                    Code::UnknownArgument,
                    format!("`{name}` of `{what}` is a block, not an argument"),
                )
                .with_label(attribute.name.span, "written as an argument")
                .with_help(format!("write it as a block: `{name} {{ … }}`")),
            ),
            None => problems.push(
                Diagnostic::error(
                    Code::UnknownArgument,
                    format!("unknown argument `{name}` for `{what}`"),
                )
                .with_label(
                    attribute.name.span,
                    format!("`{what}` has no such argument"),
                )
                .with_help(did_you_mean(name, settable()).unwrap_or_else(|| {
                    format!("the arguments of `{what}` are {}", code_list(settable()))
                })),
            ),
        }
    }
    for (name, attribute) in &schema.attributes {
        if attribute.required && !attributes.iter().any(|a| a.name.name == *name) {
            problems.push(
                Diagnostic::error(
                    Code::MissingArgument,
                    format!("missing required argument `{name}` for `{what}`"),
                )
                .with_label(header_span, format!("needs `{name}`"))
                .with_help(format!(
                    "add `{name} = …` (a `{}`)",
                    attribute.type_constraint
                )),
            );
        }
    }
    for block in blocks {
        // A `dynamic "KIND"` block is checked as the `KIND` blocks its
        // `content` generates.
        let (name, written) = if block.kind.name == "dynamic" {
            match dynamic::read_dynamic(block) {
                Ok(spec) => (spec.kind, spec.content),
                Err(problem) => {
                    problems.push(problem);
                    continue;
                }
            }
        } else {
            (block.kind.name.as_str(), block)
        };
        match schema.blocks.get(name) {
            Some(nested) => {
                let nested_attributes: Vec<crate::syntax::Attribute> =
                    written.attributes().cloned().collect();
                let nested_blocks: Vec<Block> = written.blocks().cloned().collect();
                check_block_against_schema(
                    &format!("{what}.{name}"),
                    block.header_span,
                    &nested_attributes,
                    &nested_blocks,
                    nested,
                    problems,
                );
            }
            None if schema.attributes.contains_key(name) => problems.push(
                Diagnostic::error(
                    Code::UnexpectedBlock,
                    format!("`{name}` of `{what}` is an argument, not a block"),
                )
                .with_label(block.header_span, "written as a block")
                .with_help(format!("write it as an argument: `{name} = …`")),
            ),
            None => problems.push(
                Diagnostic::error(
                    Code::UnexpectedBlock,
                    format!("unknown block `{name}` in `{what}`"),
                )
                .with_label(block.header_span, format!("`{what}` has no such block"))
                .with_help(
                    did_you_mean(name, schema.blocks.keys().map(String::as_str)).unwrap_or_else(
                        || {
                            if schema.blocks.is_empty() {
                                format!("`{what}` takes no nested blocks")
                            } else {
                                format!(
                                    "the blocks of `{what}` are {}",
                                    code_list(schema.blocks.keys())
                                )
                            }
                        },
                    ),
                ),
            ),
        }
    }
}

impl<'c> ModuleEvaluation<'c, '_> {
    /// The schema of a resource's type, reporting an unknown type or provider
    /// and checking the block's shape against it (once per resource).
    pub(super) fn resource_schema(&mut self, resource: &ResourceDecl) -> Option<&'c BlockSchema> {
        let id = &resource.id;
        let kind = if id.mode == ResourceMode::Data {
            "data source"
        } else {
            "resource"
        };
        match self.schemas.lookup(id.mode, &id.type_name) {
            SchemaLookup::Found(schema) => {
                let mut problems = Vec::new();
                check_block_against_schema(
                    &id.type_name,
                    resource.header_span,
                    &resource.arguments,
                    &resource.nested_blocks,
                    schema,
                    &mut problems,
                );
                for problem in problems {
                    self.diagnostics.push(problem);
                }
                Some(schema)
            }
            SchemaLookup::UnknownType(candidates) => {
                let provider = provider_of(&id.type_name);
                let help =
                    did_you_mean(&id.type_name, candidates.iter().copied()).unwrap_or_else(|| {
                        format!(
                            "the {kind} types of `{provider}` are {}",
                            code_list(&candidates)
                        )
                    });
                let label = format!("provider `{provider}` has no such {kind} type");
                self.unknown_resource_type(resource, kind, label, help);
                None
            }
            SchemaLookup::UnknownProvider(providers) => {
                let provider = provider_of(&id.type_name);
                let help = did_you_mean(provider, providers.iter().copied())
                    .map(|m| format!("no provider is called `{provider}`; {m}"))
                    .unwrap_or_else(|| format!("the providers are {}", code_list(&providers)));
                self.unknown_resource_type(
                    resource,
                    kind,
                    format!("no provider `{provider}`"),
                    help,
                );
                None
            }
            SchemaLookup::NotCovered => None,
        }
    }

    pub(super) fn unknown_resource_type(
        &mut self,
        resource: &ResourceDecl,
        kind: &str,
        label: String,
        help: String,
    ) {
        self.diagnostics.push(
            Diagnostic::error(
                Code::UnknownResourceType,
                format!("unknown {kind} type `{}`", resource.id.type_name),
            )
            .with_label(resource.type_label.span, label)
            .with_help(help),
        );
    }

    /// `aws_vpc.main.idd` where the schema has no `idd`.
    pub(super) fn check_references_against_schema(
        &mut self,
        id: &ResourceId,
        referenced: &[&Ident],
        schema: &BlockSchema,
    ) {
        for attribute in referenced {
            if schema.attributes.contains_key(&attribute.name)
                || schema.blocks.contains_key(&attribute.name)
            {
                continue;
            }
            let candidates = schema
                .attributes
                .keys()
                .chain(schema.blocks.keys())
                .map(String::as_str);
            self.diagnostics.push(
                Diagnostic::error(
                    Code::UnknownAttribute,
                    format!("`{id}` has no attribute `{}`", attribute.name),
                )
                .with_label(
                    attribute.span,
                    format!("not an attribute of `{}`", id.type_name),
                )
                .with_help(
                    did_you_mean(&attribute.name, candidates).unwrap_or_else(|| {
                        format!(
                            "the attributes of `{}` are {}",
                            id.type_name,
                            code_list(schema.attributes.keys())
                        )
                    }),
                ),
            );
        }
    }
}
