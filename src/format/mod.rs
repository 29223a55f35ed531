//! `infra fmt`: prints a syntax tree back in the one canonical layout —
//! 2-space indent, `=` aligned within a run of attributes, one blank line
//! between top-level blocks, comments kept where they were.
//!
//! Comments are not in the tree; the scanner collected them with spans, and
//! the printer puts each one back before, after or (when it sits inside an
//! expression) together with the item it belongs to.

mod printer;
mod shape;

pub use printer::format_source;
pub use shape::tree_shape;
