//! Diagnostics: the one way every stage reports a problem to the user.

mod code;
mod diagnostic;
mod render;

pub use code::Code;
pub use diagnostic::{
    Diagnostic, Diagnostics, Label, Severity, closest, code_list, did_you_mean, io_reason,
};
pub use render::{ReportStyle, render, render_all, to_json};
