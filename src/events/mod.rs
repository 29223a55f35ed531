//! What a run reports while it works: an [`Event`] stream that planning
//! (refresh) and apply emit, and the renderers that show it.
//!
//! The engine only emits; how events look is the renderer's business:
//! `live.rs` draws the changes in flight on a terminal (indicatif),
//! `plain.rs` writes timestamped lines for logs and CI, `json.rs` writes
//! one JSON object per line for machines (`infra apply --json`). Rollouts
//! will add their own events to the same stream.

mod json;
mod live;
mod plain;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::providers::OperationFailure;

pub use json::JsonLines;
pub use live::Live;
pub use plain::Plain;

/// What happens to one object during apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Create,
    Update,
    Destroy,
    Read,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Destroy => "destroy",
            Verb::Read => "read",
        }
    }

    pub fn doing(self) -> &'static str {
        match self {
            Verb::Create => "creating",
            Verb::Update => "updating",
            Verb::Destroy => "destroying",
            Verb::Read => "reading",
        }
    }

    pub fn done(self) -> &'static str {
        match self {
            Verb::Create => "created",
            Verb::Update => "updated",
            Verb::Destroy => "destroyed",
            Verb::Read => "read",
        }
    }
}

/// One thing that happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Another run holds the state lock; this one waits (`-lock-timeout`).
    WaitingForLock {
        holder: String,
        operation: String,
        since: String,
    },
    /// Refresh started: `objects` in the state to read.
    RefreshStarted {
        objects: usize,
    },
    /// Refresh finished; `gone` objects no longer exist.
    RefreshFinished {
        objects: usize,
        gone: usize,
    },
    /// Apply started: `changes` provider operations to run.
    ApplyStarted {
        changes: usize,
    },
    Started {
        address: String,
        verb: Verb,
    },
    /// Still running after `elapsed` (every 10 seconds).
    Progress {
        address: String,
        verb: Verb,
        elapsed: Duration,
    },
    Finished {
        address: String,
        verb: Verb,
        elapsed: Duration,
    },
    Failed {
        address: String,
        verb: Verb,
        elapsed: Duration,
        failure: OperationFailure,
    },
    /// What a change in flight is doing now, as its provider says (a
    /// rollout's steps and analysis readings).
    Step {
        address: String,
        message: String,
    },
    /// Not run because `because` failed.
    Skipped {
        address: String,
        verb: Verb,
        because: String,
    },
    /// A line for people (interrupts, notes).
    Note {
        message: String,
    },
    /// Apply finished (or stopped).
    ApplyFinished {
        added: usize,
        changed: usize,
        destroyed: usize,
        failed: usize,
        skipped: usize,
        not_started: usize,
        elapsed: Duration,
    },
}

/// Something that shows events.
pub trait Renderer: Send + Sync {
    fn render(&self, at: SystemTime, event: &Event);

    /// Called before the run prints its summary: a live view clears itself.
    fn close(&self) {}
}

/// Where a run's events go: a cheap handle that tasks clone.
#[derive(Clone, Default)]
pub struct Events {
    renderer: Option<Arc<dyn Renderer>>,
}

impl Events {
    /// Nowhere (tests, benchmarks).
    pub fn none() -> Events {
        Events { renderer: None }
    }

    pub fn new(renderer: Arc<dyn Renderer>) -> Events {
        Events {
            renderer: Some(renderer),
        }
    }

    pub fn emit(&self, event: Event) {
        tracing::trace!(?event, "event");
        if let Some(renderer) = &self.renderer {
            renderer.render(SystemTime::now(), &event);
        }
    }

    /// Whether anything shows these events.
    pub fn is_rendered(&self) -> bool {
        self.renderer.is_some()
    }

    pub fn close(&self) {
        if let Some(renderer) = &self.renderer {
            renderer.close();
        }
    }
}

/// An event as a line for people (without a timestamp).
pub fn describe(event: &Event) -> String {
    plain::line(event).unwrap_or_default()
}

pub use crate::clock::seconds;

/// UTC, RFC 3339 with milliseconds: `2026-11-30T08:15:02.123Z`.
pub fn timestamp(at: SystemTime) -> String {
    crate::clock::rfc3339(at, true)
}
