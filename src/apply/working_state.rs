//! The state while an apply runs, and the writer that keeps the state file
//! up to date with it.
//!
//! Every finished change is recorded in memory at once and marked dirty; a
//! writer thread saves the state as soon as it is dirty, so changes that
//! finish while a save is in progress share the next one (coalesced). A
//! finished create is on disk one save later, not at the end of the run.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::state::{State, StateError};

pub struct WorkingState {
    state: Mutex<State>,
    writes: Mutex<WriterSignal>,
    wake: Condvar,
}

#[derive(Default)]
struct WriterSignal {
    dirty: bool,
    finished: bool,
}

impl WorkingState {
    pub fn new(state: State) -> Arc<WorkingState> {
        Arc::new(WorkingState {
            state: Mutex::new(state),
            writes: Mutex::new(WriterSignal::default()),
            wake: Condvar::new(),
        })
    }

    /// Records a change and wakes the writer.
    pub fn record(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.state.lock().expect("state"));
        self.writes.lock().expect("writer").dirty = true;
        self.wake.notify_all();
    }

    /// A copy of the state as it is now.
    pub fn snapshot(&self) -> State {
        self.state.lock().expect("state").clone()
    }

    pub fn read<T>(&self, look: impl FnOnce(&State) -> T) -> T {
        look(&self.state.lock().expect("state"))
    }
}

/// Saves the working state to its file whenever it changed.
pub struct StateWriter {
    working: Arc<WorkingState>,
    thread: Option<JoinHandle<Result<(), StateError>>>,
}

impl StateWriter {
    /// Starts writing `working` to `path`. The file's current content becomes
    /// the backup at the first save; later saves of this run keep that
    /// backup (the state before the run), not an intermediate one.
    pub fn start(working: Arc<WorkingState>, path: PathBuf) -> StateWriter {
        let shared = working.clone();
        let thread = std::thread::spawn(move || {
            let mut first = true;
            let mut failure = None;
            loop {
                {
                    let mut signal = shared.writes.lock().expect("writer");
                    while !signal.dirty && !signal.finished {
                        signal = shared.wake.wait(signal).expect("writer");
                    }
                    if !signal.dirty {
                        break;
                    }
                    signal.dirty = false;
                }
                // Data sources are read anew by every plan: never saved.
                let state = shared.snapshot().without_data_sources();
                match crate::state::save_with(&path, &state, first) {
                    Ok(_) => {
                        first = false;
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
