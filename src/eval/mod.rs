//! Expressions → values: references, operators, functions, unknown values,
//! and the evaluation of whole modules (count/for_each, variables, modules).
//! Knows nothing of providers, state files or tokio.

mod evaluated;
mod evaluator;
mod functions;
mod module;
mod references;
mod schema;
mod types;
mod value;

pub use evaluated::{EvaluatedModule, InstanceKey, OutputValue, ResourceInstance};
pub use functions::{FUNCTIONS, function_names};
pub use module::{
    InstancePlanner, ProvidedValue, RecordedObject, RootVariables, VariableOrigin,
    evaluate_focused, evaluate_standalone_block,
};
pub use schema::{
    AttributeSchema, BlockSchema, ProviderSchemas, SchemaCatalog, SchemaLookup, provider_of,
};
pub use types::TypeConstraint;
pub use value::{Value, format_number, quote};
