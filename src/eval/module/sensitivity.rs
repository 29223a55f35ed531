//! Sensitivity of whole expressions: whether an expression computes with
//! a marked value (see [`crate::eval::Marks`]), to hide the details of its
//! errors; and the marks the schema puts on a resource's attributes.

use super::*;

impl<'c> ModuleEvaluation<'c, '_> {
    /// Whether `expr` refers to a value with a sensitive part: a variable,
    /// local, resource or module output whose marks are not clear. Used
    /// where there is no value to carry marks (an expression that failed).
    pub(super) fn is_sensitive(&self, expr: &'c Expr) -> bool {
        let marks = &self.values.marks;
        if marks.variables.is_empty()
            && marks.locals.is_empty()
            && marks.resources.is_empty()
            && marks.modules.is_empty()
            && marks.deployments.is_empty()
        {
            return false;
        }
        let mut references = Vec::new();
        collect_references(expr, &mut references, &mut Vec::new());
        references.iter().any(|reference| match reference.target {
            Target::Variable(name) => marks.variables.contains_key(name),
            Target::Local(name) => marks.locals.contains_key(name),
            Target::Resource {
                mode,
                type_name,
                name,
            } => !marks.resource(mode, type_name, name).is_clear(),
            Target::Module(name) => marks.modules.contains_key(name),
            Target::Deployment(name) => marks.deployments.contains_key(name),
            _ => false,
        })
    }

    /// The marks of one instance's object: its arguments' marks and the
    /// attributes its schema calls sensitive.
    pub(super) fn schema_marks(schema: Option<&BlockSchema>, arguments: Marks) -> Marks {
        let Some(schema) = schema else {
            return arguments;
        };
        let mut marks = Marks::gather();
        for (name, attribute) in &schema.attributes {
            if attribute.sensitive {
                marks.add(Segment::Key(name.clone()), &Marks::whole());
            }
        }
        arguments.union(&marks.finish())
    }
}
