//! Plans: what `apply` would change, and why (issue 3, in progress).
//!
//! `diff.rs` compares the evaluated configuration with the state, resource
//! instance by instance, using the providers' schemas to know which
//! attributes force a replacement and which the provider computes. It is a
//! pure function: planning changes nothing anywhere.

mod diff;
mod json;
mod refresh;
mod render;

pub use diff::{Action, Change, Plan, StatePlanner, diff, plan, plan_loaded};
pub use json::{PLAN_FORMAT_VERSION, to_json};
pub use refresh::refresh;
pub use render::{RenderOptions, render};
