//! Plans: what `apply` would change, and why.
//!
//! `refresh.rs` reads what the objects of the state really are now;
//! `diff.rs` compares the evaluated configuration with that state,
//! resource instance by instance, using the providers' schemas to know
//! which attributes force a replacement and which the provider computes;
//! `modes.rs` holds `--destroy`, `--target`, `--replace`; `planner.rs` is
//! the pipeline that puts them together (the only one); `render.rs` and
//! `json.rs` show a plan; `drift.rs` reports drift; `markdown.rs` bounds
//! the Markdown reports CI posts; `saved.rs` is the `-out` file; `recovery.rs`
//! looks for the objects of creates an interrupted run left pending.
//! Planning changes nothing anywhere.

mod data;
mod diff;
mod drift;
mod json;
mod markdown;
mod modes;
mod outputs;
mod planner;
mod recovery;
mod refresh;
mod render;
mod saved;

pub use data::read_data_sources;
pub use diff::{
    Action, Change, Plan, Records, StatePlanner, diff, plan, plan_loaded, refine_with_providers,
};
pub use drift::{DRIFT_FORMAT_VERSION, DriftReport, Drifted, drift};
pub use json::{PLAN_FORMAT_VERSION, to_json};
pub use modes::{
    Evaluation, argument_span, check_replacements, destroy_plan, restrict_to_targets, targets,
};
pub use outputs::{OutputChange, output_changes};
pub use planner::{PlanFailure, PlanOptions, Planned, PlannedInstance, Planner, planned_instances};
pub use recovery::adopt_pending;
pub use refresh::refresh;
pub use render::{RenderOptions, render, render_markdown};
pub use saved::{
    SAVED_PLAN_FORMAT, SAVED_PLAN_VERSION, SavedPlan, SavedVariable, ShownPlan, change_lines,
    configuration_digest, json_digest, new_secret_key, prior_digests, secret_digest,
};
