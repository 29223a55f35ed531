//! infra: an Infrastructure-as-Code engine with its own language.
//!
//! The pipeline, one module per stage: [`syntax`] (text → tree) →
//! [`config`] (files and modules → a checked configuration) → [`eval`]
//! (expressions → values) → [`graph`] (resource instances and their
//! dependencies) → [`plan`] (refresh, diff against the [`state`]) →
//! [`apply`] (the changes, through the [`providers`], in dependency order;
//! [`deploy`] reads `deployment` blocks).
//! [`format`] prints trees back canonically; [`diagnostics`] is how every
//! stage reports problems, [`events`] how plan and apply report progress;
//! [`cli`] wires commands.

pub mod apply;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod deploy;
pub mod diagnostics;
pub mod eval;
pub mod events;
pub mod format;
pub mod graph;
pub mod plan;
pub mod providers;
pub mod state;
pub mod syntax;
