//! infra's integration tests, in one binary: the engine (and the AWS SDK
//! under it) is linked once, not once per file. Each module is one area;
//! `cargo test --test it apply::` runs one of them.
//!
//! Golden files live beside, in `tests/fixtures/` and `tests/plan_cases/`;
//! `UPDATE_EXPECT=1 cargo test --test it` rewrites them (then review the
//! diff).

mod support;

mod apply;
mod architecture;
#[cfg(feature = "aws")]
mod aws;
#[cfg(feature = "aws")]
mod aws_rollouts;
mod cli;
mod crash;
mod engine;
mod fmt_roundtrip;
mod golden;
mod local_lb;
mod local_runtime;
mod monitoring;
#[cfg(feature = "aws")]
#[path = "../../providers/aws/tests/support/mod.rs"]
mod moto;
mod pipelines;
mod plan_cases;
mod plan_diff;
mod provider_schemas;
mod reports;
mod robustness;
mod state;
