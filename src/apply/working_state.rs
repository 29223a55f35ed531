//! The state while an apply runs, and the writer that keeps the stored
//! state (through its backend) up to date with it.
//!
//! Every finished change is recorded in memory at once and marked dirty; a
//! writer thread saves the whole state through the backend. With a journal
//! (the CLI's runs on a local state), a change is durable before its
//! dependents start: its object is appended to the journal and flushed
//! ([`WorkingState::record_at`], [`WorkingState::durable`]), and a create
//! is journaled before the provider is asked ([`WorkingState::creating`]),
//! so that a run killed at any moment leaves no object recorded nowhere.
//! The journal costs in proportion to the change; the whole state is then
//! saved only at the end and at intervals ([`SAVE_INTERVAL`], stretched so
//! that saving takes at most a twentieth of the run), which keeps the cost
//! of an apply linear in the configuration. Without a journal the state is
//! saved as soon as it is dirty, changes that finish during a save sharing
//! the next one.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use infra_provider_sdk::Attributes;

use crate::state::journal::{Entry, Journal};
use crate::state::{Backend, State, StateError, StateVersion};

pub struct WorkingState {
    state: Mutex<State>,
    writes: Mutex<WriterSignal>,
    wake: Condvar,
    journal: Option<Arc<Journal>>,
}

#[derive(Default)]
struct WriterSignal {
    dirty: bool,
    finished: bool,
}

impl WorkingState {
    pub fn new(state: State) -> Arc<WorkingState> {
        WorkingState::journaled(state, None)
    }

    /// A working state whose changes are journaled to `journal`.
    pub fn journaled(state: State, journal: Option<Arc<Journal>>) -> Arc<WorkingState> {
        Arc::new(WorkingState {
            state: Mutex::new(state),
            writes: Mutex::new(WriterSignal::default()),
            wake: Condvar::new(),
            journal,
        })
    }

    /// Records a change and wakes the writer.
    pub fn record(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.state.lock().expect("state"));
        self.changed();
    }

    /// Records a change to the objects at `addresses` and journals what
    /// they hold afterwards (in the order the changes were made); the
    /// sequence number to wait for with [`WorkingState::durable`].
    pub fn record_at(&self, addresses: &[&str], change: impl FnOnce(&mut State)) -> Option<u64> {
        let mut state = self.state.lock().expect("state");
        change(&mut state);
        let mut sequence = None;
        if let Some(journal) = &self.journal {
            for address in addresses {
                sequence = Some(journal.append(&Entry::Recorded {
                    address: address.to_string(),
                    object: state.resources.get(*address).cloned(),
                }));
            }
        }
        drop(state);
        self.changed();
        sequence
    }

    /// Waits until the journal holds the change `sequence` (from
    /// [`WorkingState::record_at`]) on disk.
    pub async fn durable(&self, sequence: Option<u64>) -> Result<(), String> {
        match (&self.journal, sequence) {
            (Some(journal), Some(sequence)) => journal.durable(sequence).await,
            _ => Ok(()),
        }
    }

    /// Journals that the object at `address` is about to be created, and
    /// waits until that is on disk: if the run dies before the create's
    /// outcome is recorded, the next run looks for the object.
    pub async fn creating(
        &self,
        address: &str,
        type_name: &str,
        provider: &str,
        config: &Attributes,
    ) -> Result<(), String> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        journal
            .write(&Entry::Creating {
                address: address.to_string(),
                type_name: type_name.to_string(),
                provider: provider.to_string(),
                config: config.clone(),
            })
            .await
    }

    fn changed(&self) {
        self.writes.lock().expect("writer").dirty = true;
        self.wake.notify_all();
    }

    /// The state, taken out: what is left is an empty state (for a caller
    /// that has finished with the run).
    pub fn take(&self) -> State {
        let mut state = self.state.lock().expect("state");
        let empty = State::new(&state.lineage);
        std::mem::replace(&mut *state, empty)
    }

    /// A copy of the state as it is now.
    pub fn snapshot(&self) -> State {
        self.state.lock().expect("state").clone()
    }

    pub fn read<T>(&self, look: impl FnOnce(&State) -> T) -> T {
        look(&self.state.lock().expect("state"))
    }
}

/// With a journal, the least time between two saves of the whole state
/// during a run (it holds every change already; the state file is the
/// compacted form).
pub const SAVE_INTERVAL: Duration = Duration::from_secs(5);

/// With a journal, a save waits at least this many times as long as the
/// last one took: saves of a large state take a bounded share of the run.
const SAVE_SHARE: u32 = 20;

/// Saves the working state through its backend whenever it changed (with
/// a journal: at intervals, and at the end).
pub struct StateWriter {
    working: Arc<WorkingState>,
    thread: Option<JoinHandle<Result<(), StateError>>>,
}

impl StateWriter {
    /// Starts saving `working` through `backend`, over the stored state
    /// `version` (what the run read): a save finds someone else's state in
    /// its place refused (compare-and-swap).
    pub fn start(
        working: Arc<WorkingState>,
        backend: Arc<dyn Backend>,
        version: StateVersion,
    ) -> StateWriter {
        let shared = working.clone();
        let journaled = working.journal.is_some();
        let thread = std::thread::spawn(move || {
            let mut version = version;
            let mut failure = None;
            // With a journal, the first save of a run waits an interval too.
            let mut next_save = Instant::now() + SAVE_INTERVAL;
            loop {
                {
                    let mut signal = shared.writes.lock().expect("writer");
                    loop {
                        if signal.finished || (signal.dirty && !journaled) {
                            break;
                        }
                        let now = Instant::now();
                        if signal.dirty && now >= next_save {
                            break;
                        }
                        signal = match signal.dirty {
                            false => shared.wake.wait(signal).expect("writer"),
                            true => {
                                shared
                                    .wake
                                    .wait_timeout(signal, next_save - now)
                                    .expect("writer")
                                    .0
                            }
                        };
                    }
                    if !signal.dirty {
                        break;
                    }
                    signal.dirty = false;
                }
                // Data sources are read anew by every plan: never saved.
                let state = shared.snapshot().without_data_sources();
                let started = Instant::now();
                let saved = backend.save(&state, &version);
                let took = started.elapsed();
                next_save = Instant::now() + SAVE_INTERVAL.max(took * SAVE_SHARE);
                match saved {
                    Ok(saved) => {
                        tracing::debug!(
                            resources = state.resources.len(),
                            elapsed_ms = took.as_secs_f64() * 1000.0,
                            "state saved"
                        );
                        version = saved;
                        failure = None;
                    }
                    // Kept and retried at the next change; the last one is
                    // reported.
                    Err(error) => failure = Some(error),
                }
            }
            match failure {
                Some(error) => Err(error),
                None => Ok(()),
            }
        });
        StateWriter {
            working,
            thread: Some(thread),
        }
    }

    /// Writes what is left and stops. An error is the last save's failure.
    pub fn finish(mut self) -> Result<(), StateError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), StateError> {
        {
            let mut signal = self.working.writes.lock().expect("writer");
            signal.finished = true;
        }
        self.working.wake.notify_all();
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            None => Ok(()),
        }
    }
}

impl Drop for StateWriter {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
