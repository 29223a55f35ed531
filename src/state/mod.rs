//! The state file: what infra believes exists, committed to git by teams.
//!
//! Owns the only serde types of the state format (`format.rs`), reading and
//! writing it safely (`store.rs`: atomic writes, a backup, refusal of corrupt
//! or newer files), the lock that keeps two runs apart (`lock.rs`), and
//! the journal that keeps an apply's finished changes durable as they
//! happen and lets the next run recover them (`journal.rs`); where it lives
//! (`backend.rs`: a local file, or an S3 object in `s3.rs`); its secrets
//! sealed value by value (`sealing.rs`); the three-way merge git runs on it
//! (`merge.rs`), what keeps the files beside it out of git
//! (`gitignore.rs`), and which backend last held it (`migration.rs`). Knows nothing of providers or plans.

pub mod backend;
mod format;
mod gitignore;
pub mod journal;
#[cfg(feature = "aws")]
mod kms;
mod lock;
pub mod merge;
pub mod migration;
#[cfg(feature = "aws")]
pub mod s3;
pub mod sealing;
mod store;
mod strict_json;

pub use backend::{Backend, LocalBackend, LockGuard, LockWait, StateVersion, StoredState};
pub use format::{
    FORMAT_NAME, FORMAT_VERSION, OutputState, ResourceState, State, covers, is_data_address,
    named_by, new_lineage,
};
pub use gitignore::RESCUE_NAME;
pub use lock::{
    LockError, LockInfo, StateLock, force_unlock, lock_path, process_start, release_held_locks,
};
pub use store::{StateError, backup_path, load, parse, save, write_rescue};
