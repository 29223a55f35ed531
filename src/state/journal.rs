//! The apply journal: `<state>.journal`, beside the state file, one JSON
//! line per entry, appended and flushed to disk while an apply runs.
//!
//! Before a provider is asked to create an object, a `creating` entry
//! (address, type, the create's arguments) is on disk; as soon as a change
//! finishes, a `recorded` entry holds the object now at its address (none:
//! removed). A change's dependents start only once its entry is durable.
//! Appends made at once share one flush (group commit), so durability costs
//! a flush per batch of finished changes, not a rewrite of the whole state.
//!
//! The journal is removed once the state file holds everything in it. When
//! a run is killed first, reading the state replays the journal over it:
//! every recorded change is restored, and every `creating` entry with no
//! outcome is a *pending create* — its object may exist though no state
//! names it — which the planner asks the provider to find (`adopt`).
//! A torn last line (the crash came mid-append) is ignored.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use infra_provider_sdk::Attributes;
use serde::{Deserialize, Serialize};

use super::format::{ResourceState, State};
use super::sealing::Sealer;
use super::store::StateError;

/// `<state>.journal`.
pub fn journal_path(state: &Path) -> PathBuf {
    let mut name = state.file_name().unwrap_or_default().to_os_string();
    name.push(".journal");
    state.with_file_name(name)
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "entry", rename_all = "snake_case", deny_unknown_fields)]
pub enum Entry {
    /// A run starts journaling changes to the state of `lineage`.
    Run { lineage: String, pid: u32 },
    /// A provider is about to be asked to create the object at `address`.
    Creating {
        address: String,
        #[serde(rename = "type")]
        type_name: String,
        provider: String,
        config: Attributes,
    },
    /// `address` now holds `object`; none: it was removed.
    Recorded {
        address: String,
        object: Option<ResourceState>,
    },
}

/// A create that was started and never seen to finish.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingCreate {
    pub address: String,
    pub type_name: String,
    pub provider: String,
    pub config: Attributes,
}

/// What replaying a journal found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recovery {
    /// The journal replayed (none: there was none).
    pub journal: Option<PathBuf>,
    /// Recorded changes the state file did not hold yet.
    pub restored: usize,
    /// Creates whose outcome never reached the journal, by address.
    pub pending: Vec<PendingCreate>,
}

/// Replays the journal at `path` over `state` (none: no state file; the
/// journal's lineage starts one). An empty [`Recovery`] when there is no
/// journal.
pub fn replay(path: &Path, state: &mut Option<State>) -> Result<Recovery, StateError> {
    super::store::refuse_special(path)?;
    let text = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Recovery::default());
        }
        Err(error) => {
            return Err(StateError::Io {
                path: path.to_path_buf(),
                action: "read",
                error,
            });
        }
    };
    let corrupt = |line: usize, detail: String| StateError::Corrupt {
        path: path.to_path_buf(),
        detail: format!("line {line}: {detail}"),
    };
    let mut recovery = Recovery {
        journal: Some(path.to_path_buf()),
        ..Recovery::default()
    };
    let mut pending: BTreeMap<String, PendingCreate> = BTreeMap::new();
    // Only complete lines: a torn last one was never durable, so nothing
    // was started on its account.
    let complete = match text.iter().rposition(|&b| b == b'\n') {
        Some(end) => &text[..=end],
        None => &[][..],
    };
    for (number, line) in complete.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let entry: Entry = serde_json::from_slice(line)
            .map_err(|error| corrupt(number + 1, format!("{error}")))?;
        match entry {
            Entry::Run { lineage, .. } => match state {
                Some(state) if state.lineage != lineage => {
                    return Err(corrupt(
                        number + 1,
                        format!(
                            "the journal belongs to the state of lineage `{lineage}`, not to this one (`{}`); move it away if it is not this state's",
                            state.lineage
                        ),
                    ));
                }
                Some(_) => {}
                None => *state = Some(State::new(lineage)),
            },
            Entry::Creating {
                address,
                type_name,
                provider,
                config,
            } => {
                pending.insert(
                    address.clone(),
                    PendingCreate {
                        address,
                        type_name,
                        provider,
                        config,
                    },
                );
            }
            Entry::Recorded { address, object } => {
                let Some(state) = state.as_mut() else {
                    return Err(corrupt(number + 1, "a change before any run".into()));
                };
                pending.remove(&address);
                let before = state.resources.get(&address);
                if before != object.as_ref() {
                    recovery.restored += 1;
                }
                match object {
                    Some(object) => state.resources.insert(address, object),
                    None => state.resources.remove(&address),
                };
            }
        }
    }
    recovery.pending = pending.into_values().collect();
    Ok(recovery)
}

/// Appends entries to the journal; a thread writes and flushes them,
/// several at once when they come together.
pub struct Journal {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    durable: tokio::sync::watch::Receiver<Durable>,
    /// The state's lineage and the run's keys: objects' secrets are sealed
    /// in the journal as in the state (the replay opens them with it).
    lineage: String,
    sealer: Arc<Sealer>,
}

#[derive(Debug, Clone, Default)]
struct Durable {
    /// Entries up to this sequence number are on disk.
    through: u64,
    /// The write that failed; nothing is written after it.
    failure: Option<String>,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

#[derive(Default)]
struct Queue {
    bytes: Vec<u8>,
    /// The sequence number of the last entry queued.
    last: u64,
    closed: bool,
}

impl Journal {
    /// Opens (creating, mode 0600) the journal at `path` for a run on the
    /// state of `lineage`, after any entries of an interrupted run (a torn
    /// last line is cut off first). The run's first entry is on disk when
    /// this returns: a journal that cannot be written fails here, before
    /// anything changed.
    pub fn open(path: &Path, lineage: &str, sealer: Arc<Sealer>) -> Result<Journal, StateError> {
        let io = |action: &'static str| {
            let path = path.to_path_buf();
            move |error| StateError::Io {
                path,
                action,
                error,
            }
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(io("open the apply journal"))?;
        let mut existing = Vec::new();
        file.read_to_end(&mut existing)
            .map_err(io("read the apply journal"))?;
        let whole = existing
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |end| end + 1);
        if whole < existing.len() {
            file.set_len(whole as u64)
                .map_err(io("cut the torn last line of the apply journal"))?;
        }
        let first = line(&Entry::Run {
            lineage: lineage.to_string(),
            pid: std::process::id(),
        });
        file.write_all(&first)
            .and_then(|()| file.sync_data())
            .map_err(io("write the apply journal"))?;
        if let Some(directory) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            // The journal's own name must survive a crash too.
            if let Ok(directory) = File::open(directory) {
                let _ = directory.sync_all();
            }
        }
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        });
        let (durable_tx, durable) = tokio::sync::watch::channel(Durable::default());
        let writer = shared.clone();
        let thread = std::thread::spawn(move || write_batches(file, &writer, &durable_tx));
        Ok(Journal {
            shared,
            thread: Mutex::new(Some(thread)),
            durable,
            lineage: lineage.to_string(),
            sealer,
        })
    }

    /// Queues `entry` (an object's secrets sealed as the state seals
    /// them); its sequence number, for [`Journal::durable`].
    pub fn append(&self, entry: &Entry) -> u64 {
        let bytes = match entry {
            Entry::Recorded {
                address,
                object: Some(object),
            } if self.sealer.seals() && !object.sensitive.is_empty() => {
                let mut object = object.clone();
                self.sealer
                    .seal_resource(&self.lineage, address, &mut object);
                line(&Entry::Recorded {
                    address: address.clone(),
                    object: Some(object),
                })
            }
            _ => line(entry),
        };
        let mut queue = self.shared.queue.lock().expect("journal");
        queue.bytes.extend_from_slice(&bytes);
        queue.last += 1;
        let sequence = queue.last;
        drop(queue);
        self.shared.wake.notify_one();
        sequence
    }

    /// Waits until the entry `sequence` is on disk; `Err` says why it never
    /// will be.
    pub async fn durable(&self, sequence: u64) -> Result<(), String> {
        let mut durable = self.durable.clone();
        let reached = durable
            .wait_for(|durable| durable.through >= sequence || durable.failure.is_some())
            .await
            .map_err(|_| "the journal writer stopped".to_string())?;
        match &reached.failure {
            Some(failure) if reached.through < sequence => Err(failure.clone()),
            _ => Ok(()),
        }
    }

    /// Appends `entry` and waits until it is on disk.
    pub async fn write(&self, entry: &Entry) -> Result<(), String> {
        let sequence = self.append(entry);
        self.durable(sequence).await
    }

    /// Writes what is queued and stops the writer.
    pub fn close(&self) {
        self.shared.queue.lock().expect("journal").closed = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.lock().expect("journal").take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.close();
    }
}

fn line(entry: &Entry) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(entry).expect("journal entries serialise");
    bytes.push(b'\n');
    bytes
}

/// The writer thread: takes everything queued, writes it, flushes it, and
/// publishes how far the journal is durable. A failed write is final (a
/// later line after a torn one would be lost on replay).
fn write_batches(mut file: File, shared: &Shared, durable: &tokio::sync::watch::Sender<Durable>) {
    let mut failed = false;
    loop {
        let (bytes, through, closed) = {
            let mut queue = shared.queue.lock().expect("journal");
            while queue.bytes.is_empty() && !queue.closed {
                queue = shared.wake.wait(queue).expect("journal");
            }
            (std::mem::take(&mut queue.bytes), queue.last, queue.closed)
        };
        if !bytes.is_empty() && !failed {
            match file.write_all(&bytes).and_then(|()| file.sync_data()) {
                Ok(()) => {
                    durable.send_modify(|durable| durable.through = through);
                }
                Err(error) => {
                    failed = true;
                    durable.send_modify(|durable| {
                        durable.failure = Some(format!("cannot write the apply journal: {error}"));
                    });
                }
            }
        }
        if closed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(id: &str) -> ResourceState {
        ResourceState {
            type_name: "random_id".into(),
            provider: "random".into(),
            attributes: [("hex".to_string(), serde_json::json!(id))].into(),
            dependencies: Vec::new(),
            sensitive: Vec::new(),
        }
    }

    fn creating(address: &str) -> Entry {
        Entry::Creating {
            address: address.into(),
            type_name: "random_id".into(),
            provider: "random".into(),
            config: Attributes::new(),
        }
    }

    fn recorded(address: &str, object: Option<ResourceState>) -> Entry {
        Entry::Recorded {
            address: address.into(),
            object,
        }
    }

    #[tokio::test]
    async fn an_objects_secrets_are_sealed_in_the_journal_and_open_after_replay() {
        use super::super::sealing::KeySource;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("infra.state.json.journal");
        let sealer = || Arc::new(Sealer::new(Some(KeySource::Key([7; 32])), None));
        let mut secret = object("aa");
        secret
            .attributes
            .insert("result".into(), serde_json::json!("s3cr3t-value"));
        secret.sensitive = vec!["result".into()];
        let journal = Journal::open(&path, "l1", sealer()).unwrap();
        journal
            .write(&recorded("random_password.a", Some(secret.clone())))
            .await
            .unwrap();
        journal.close();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("s3cr3t-value"), "{text}");
        let mut state = Some(State::new("l1"));
        replay(&path, &mut state).unwrap();
        let mut state = state.unwrap();
        sealer().open(&mut state).unwrap();
        assert_eq!(state.resources["random_password.a"], secret);
    }

    #[tokio::test]
    async fn replaying_restores_recorded_changes_and_names_pending_creates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("infra.state.json.journal");
        let journal = Journal::open(&path, "l1", Arc::new(Sealer::plaintext())).unwrap();
        journal.write(&creating("random_id.a")).await.unwrap();
        journal
            .write(&recorded("random_id.a", Some(object("aa"))))
            .await
            .unwrap();
        journal.write(&creating("random_id.b")).await.unwrap();
        journal
            .write(&recorded("random_id.old", None))
            .await
            .unwrap();
        journal.close();
        // A torn line: the crash came mid-append.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"entry":"recorded","addr"#).unwrap();

        let mut before = State::new("l1");
        before
            .resources
            .insert("random_id.old".into(), object("00"));
        let mut state = Some(before);
        let recovery = replay(&path, &mut state).unwrap();
        let state = state.unwrap();
        assert_eq!(
            state.resources.keys().collect::<Vec<_>>(),
            ["random_id.a"],
            "a recorded, old removed"
        );
        assert_eq!(recovery.restored, 2);
        assert_eq!(
            recovery
                .pending
                .iter()
                .map(|p| p.address.as_str())
                .collect::<Vec<_>>(),
            ["random_id.b"]
        );

        // A second run appends after the cut-off torn line, and its
        // outcome for b settles the pending create.
        let journal = Journal::open(&path, "l1", Arc::new(Sealer::plaintext())).unwrap();
        journal
            .write(&recorded("random_id.b", Some(object("bb"))))
            .await
            .unwrap();
        journal.close();
        let mut state = None;
        let recovery = replay(&path, &mut state).unwrap();
        assert_eq!(state.unwrap().lineage, "l1", "the journal's lineage");
        assert!(recovery.pending.is_empty());
    }

    #[test]
    fn a_journal_of_another_state_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        drop(Journal::open(&path, "other", Arc::new(Sealer::plaintext())).unwrap());
        let error = replay(&path, &mut Some(State::new("mine"))).unwrap_err();
        assert!(error.to_string().contains("lineage `other`"), "{error}");
    }

    #[test]
    fn a_journal_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        drop(Journal::open(&path, "l", Arc::new(Sealer::plaintext())).unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
