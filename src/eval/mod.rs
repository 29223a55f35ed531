//! Expressions → values: references, operators, functions, unknown values,
//! and the evaluation of whole modules (count/for_each, variables, modules).
//! Knows nothing of providers, state files or tokio.

mod evaluated;
mod evaluator;
mod functions;
mod marks;
mod module;
mod references;
mod schema;
mod types;
mod value;

pub use evaluated::{EvaluatedModule, InstanceKey, OutputValue, ResourceInstance};
pub use functions::{FUNCTIONS, function_names};
pub use marks::{
    Marks, REDACTED, Segment, SensitivePath, has_nested_paths, marks_of_paths,
    names_whole_attribute, redact_attribute, shown_redacted,
};
pub use module::{
    Expansions, InstancePlanner, ProvidedValue, RecordedObject, RootVariables, VariableOrigin,
    evaluate_focused, evaluate_standalone_block,
};
pub use schema::{
    AttributeSchema, BlockSchema, ProviderSchemas, SchemaCatalog, SchemaLookup, provider_of,
};
pub use types::{ObjectField, TypeConstraint};
pub use value::{Value, format_number, quote};
