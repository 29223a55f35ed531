//! Sensitivity: which values are computed from sensitive ones (variables,
//! outputs, attributes the schema marks), so that plans hide them.

use super::*;

impl<'c> ModuleEvaluation<'c, '_> {
    /// Whether `expr` is computed from a sensitive value: a sensitive
    /// variable, a local or module output computed from one, or a sensitive
    /// attribute of a resource. Values carry no mark; sensitivity follows
    /// the references.
    pub(super) fn is_sensitive(&self, expr: &'c Expr) -> bool {
        let mut references = Vec::new();
        collect_references(expr, &mut references, &mut Vec::new());
        references.iter().any(|reference| match reference.target {
            Target::Variable(name) => self.result.sensitive_variables.iter().any(|v| v == name),
            Target::Local(name) => self.sensitive_locals.contains(name),
            Target::Resource {
                mode,
                type_name,
                name,
            } => {
                let Some(id) = self.find_resource(mode, type_name, name) else {
                    return false;
                };
                let Some(sensitive) = self.sensitive_attributes.get(id) else {
                    return false;
                };
                match reference.attribute {
                    Some(attribute) => sensitive.contains(&attribute.name),
                    None => !sensitive.is_empty(),
                }
            }
            Target::Module(name) => {
                let Some(child) = self.result.children.get(name) else {
                    return false;
                };
                match reference.attribute {
                    Some(output) => child.outputs.get(&output.name).is_some_and(|o| o.sensitive),
                    None => child.outputs.values().any(|o| o.sensitive),
                }
            }
            _ => false,
        })
    }

    /// The attributes of a resource whose values are sensitive.
    pub(super) fn sensitive_attributes_of(
        &self,
        resource: &'c ResourceDecl,
        schema: Option<&BlockSchema>,
    ) -> Arc<[String]> {
        let mut sensitive: BTreeSet<String> = schema
            .map(|s| {
                s.attributes
                    .iter()
                    .filter(|(_, a)| a.sensitive)
                    .map(|(name, _)| name.clone())
                    .collect()
            })
            .unwrap_or_default();
        for argument in &resource.arguments {
            if self.is_sensitive(&argument.value) {
                sensitive.insert(argument.name.name.clone());
            }
        }
        for block in &resource.nested_blocks {
            let mut expressions = Vec::new();
            body_expressions(&block.body, &mut expressions);
            if expressions.into_iter().any(|e| self.is_sensitive(e)) {
                sensitive.insert(block.kind.name.clone());
            }
        }
        sensitive.into_iter().collect()
    }
}
