//! The contract between infra's engine and its providers.
//!
//! A provider (local, random, aws, mock …) describes its resource types with
//! a [`Schema`] and implements [`Provider`]: create, read (refresh), update,
//! delete and import objects, and optionally adjust plans. The engine owns
//! everything else — the configuration, the graph, the state, ordering,
//! parallelism, retries of whole operations, error reporting with source
//! spans — so a provider never sees `.infra` text or the state file.
//! README.md beside this crate spells out what each side guarantees.
//!
//! The contract is runtime-agnostic: operations return boxed futures
//! ([`BoxFuture`]) that the engine drives (on tokio).

mod duration;
mod fleet;
pub mod host;
mod protocol;
mod provider;
mod schema;

pub use duration::parse_duration;
pub use fleet::*;
pub use protocol::*;
pub use provider::{BoxFuture, Provider, run_ready};
pub use schema::*;
