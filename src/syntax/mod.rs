//! Text → syntax tree. Knows nothing of what blocks mean, of providers, state
//! or evaluation. Parsing never panics: it returns a tree plus diagnostics.

mod ast;
mod parser;
mod scanner;
mod source_map;

pub use ast::*;
pub use parser::{
    MAX_EXPRESSION_OPERATORS, MAX_FILE_BYTES, parse_expression, parse_file, parse_template,
};
pub use scanner::MAX_NESTING;
pub use source_map::{FileId, SourceFile, SourceMap, Span};
