//! Where a configuration's state lives: a [`Backend`], resolved once from
//! the root module's `backend` block and passed to every command that
//! reads, writes or locks the state.
//!
//! The interface: read the state with a version, save it only if it is
//! still the version that was read (compare-and-swap, so two writers can't
//! overwrite each other), take and release a lock that names its holder,
//! force-unlock; secrets sealed on the way out and opened on the way in.
//! [`LocalBackend`] is the state file next to the configuration; the S3
//! backend is in `s3.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

use super::format::State;
use super::journal::{Journal, Recovery, journal_path, replay};
use super::lock::{LockError, LockInfo, StateLock, force_unlock};
use super::sealing::{KeySource, Sealer};
use super::store::{StateError, Vouched, load_text, save_text};
use crate::eval::Value;

/// What a save compares against: the state as it was read (its digest),
/// or `None` when there was no state yet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StateVersion(Option<String>);

impl StateVersion {
    fn of(text: Option<&str>) -> StateVersion {
        StateVersion(text.map(|text| hex(&Sha256::digest(text.as_bytes()))))
    }

    /// A version a store tags its objects with (an S3 ETag); none: no
    /// state yet.
    #[cfg_attr(not(feature = "aws"), allow(dead_code))]
    pub(super) fn tagged(tag: Option<String>) -> StateVersion {
        StateVersion(tag)
    }

    #[cfg_attr(not(feature = "aws"), allow(dead_code))]
    pub(super) fn tag(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// Whether there was a state at all.
    pub fn exists(&self) -> bool {
        self.0.is_some()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A state as read from a backend, with the version a save must match.
#[derive(Debug, Clone)]
pub struct StoredState {
    /// `None`: no state yet (the first apply creates it).
    pub state: Option<State>,
    pub version: StateVersion,
    /// What the journal of an interrupted run added to the stored state
    /// (already in `state`), and the creates it left pending.
    pub recovery: Recovery,
}

/// A held lock; released when dropped.
pub struct LockGuard {
    pub info: LockInfo,
    /// A stale lock of a gone process that this one replaced.
    pub replaced_stale: Option<LockInfo>,
    _held: Box<dyn Send + Sync>,
}

impl LockGuard {
    /// The lock `info` describes, released when `held` is dropped.
    #[cfg_attr(not(feature = "aws"), allow(dead_code))]
    pub(super) fn new(
        info: LockInfo,
        replaced_stale: Option<LockInfo>,
        held: Box<dyn Send + Sync>,
    ) -> LockGuard {
        LockGuard {
            info,
            replaced_stale,
            _held: held,
        }
    }
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("info", &self.info)
            .finish()
    }
}

/// How long to wait for a lock someone else holds, and whom to tell.
pub struct LockWait<'a> {
    /// Zero: fail at once (the default, as Terraform's `-lock-timeout=0s`).
    pub timeout: Duration,
    /// Called once when the lock is held by another run and we wait.
    pub waiting: &'a (dyn Fn(&LockInfo) + Sync),
}

/// Where the state is kept.
pub trait Backend: Send + Sync {
    /// How messages name it: `` local state file `infra.state.json` ``.
    fn describe(&self) -> String;

    /// The state now (and its version).
    fn read(&self) -> Result<StoredState, StateError>;

    /// Saves `state` if the stored state is still `expected`; returns the
    /// new version. Saving an identical state writes nothing.
    fn save(&self, state: &State, expected: &StateVersion) -> Result<StateVersion, StateError>;

    /// Takes the lock for `operation` (`apply`, `state rm`, …).
    fn lock(&self, operation: &str, wait: &LockWait<'_>) -> Result<LockGuard, LockError>;

    /// Removes the lock whose id is `id`, whoever holds it.
    fn force_unlock(&self, id: &str) -> Result<LockInfo, LockError>;

    /// The local file this state is kept in, if it is one (for messages
    /// that tell the user where to restore a rescued state).
    fn local_path(&self) -> Option<&Path> {
        None
    }

    /// `state` as this backend writes it, its secrets sealed: what a
    /// rescue copy of it holds.
    fn sealed(&self, state: &State) -> State {
        state.clone()
    }

    /// Whether this backend may write secrets: the reason it may not when
    /// it would write them in plaintext without having been told it may.
    fn may_write_secrets(&self) -> Result<(), String> {
        Ok(())
    }

    /// Whether a key is configured to seal secrets with.
    fn seals(&self) -> bool;

    /// Opens the envelopes of a state read from elsewhere (`state push`)
    /// with this backend's keys, as its own reads do.
    fn open_secrets(&self, state: &mut State) -> Result<(), String>;

    /// Starts the apply journal for a run on the state of `lineage`
    /// (none: this backend keeps no journal). Fails before anything
    /// changed when it cannot be written.
    fn open_journal(&self, _lineage: &str) -> Result<Option<Arc<Journal>>, StateError> {
        Ok(None)
    }

    /// The run is over; when `saved`, the stored state holds everything
    /// the journal does and it goes. Otherwise it stays, and the next read
    /// replays it.
    fn close_journal(&self, _saved: bool) {}
}

/// The state as a file on this machine (`backend local { path = … }`, by
/// default `infra.state.json` next to the configuration), with a
/// `<state>.backup` of the state before this run and a `<state>.lock`.
pub struct LocalBackend {
    path: PathBuf,
    /// Whether this run has saved already: its first save keeps the state
    /// from before the run as the backup, later ones leave that backup be.
    saved_once: Mutex<bool>,
    /// The apply journal, while a run writes it (`<state>.journal`).
    journal: Mutex<Option<Arc<Journal>>>,
    /// Whether this run made sure git ignores the files beside the state.
    kept_out_of_git: std::sync::Once,
    /// Seals the secrets of what is written, opens those read.
    sealer: Arc<Sealer>,
    /// `encryption = "none"`: secrets may be written in plaintext.
    plaintext_secrets: bool,
}

impl LocalBackend {
    pub fn new(path: impl Into<PathBuf>) -> LocalBackend {
        LocalBackend {
            path: path.into(),
            saved_once: Mutex::new(false),
            journal: Mutex::new(None),
            kept_out_of_git: std::sync::Once::new(),
            sealer: Arc::new(Sealer::plaintext()),
            plaintext_secrets: false,
        }
    }

    /// The same backend, allowed to write secrets in plaintext
    /// (`encryption = "none"`).
    pub fn with_plaintext_secrets(mut self) -> LocalBackend {
        self.plaintext_secrets = true;
        self
    }

    /// The same backend, sealing secrets with `sealer`'s keys.
    pub fn with_sealer(mut self, sealer: Sealer) -> LocalBackend {
        self.sealer = Arc::new(sealer);
        self
    }

    /// Lists the backup, lock and journal in the `.gitignore` beside the
    /// state (once per run, before the first of them is written).
    fn keep_out_of_git(&self) {
        self.kept_out_of_git.call_once(|| {
            if let Err(error) = super::gitignore::keep_out_of_git(&self.path) {
                tracing::warn!(%error, "cannot update the .gitignore beside the state");
            }
        });
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Backend for LocalBackend {
    fn describe(&self) -> String {
        format!("local state file `{}`", self.path.display())
    }

    fn read(&self) -> Result<StoredState, StateError> {
        let (mut state, text) = load_text(&self.path)?;
        let recovery = replay(&journal_path(&self.path), &mut state)?;
        if let Some(state) = &mut state {
            self.sealer
                .open(state)
                .map_err(|error| StateError::Sealed {
                    path: self.path.clone(),
                    detail: error.0,
                })?;
        }
        Ok(StoredState {
            state,
            version: StateVersion::of(text.as_deref()),
            recovery,
        })
    }

    fn save(&self, state: &State, expected: &StateVersion) -> Result<StateVersion, StateError> {
        self.keep_out_of_git();
        let mut saved_once = self.saved_once.lock().expect("backend");
        let state = self.sealer.sealed(state);
        let text = save_text(&self.path, &state, !*saved_once, |previous| {
            let found = StateVersion::of(previous);
            if found == *expected {
                // A state that was there was read (and parsed) by this run.
                Ok(Vouched::ReadBefore)
            } else {
                Err(StateError::Changed {
                    path: self.path.clone(),
                })
            }
        })?;
        *saved_once = true;
        // A save outside an apply's run was made from a state read with
        // the journal replayed into it: the journal is folded in.
        if self.journal.lock().expect("backend").is_none() {
            remove_journal(&self.path)?;
        }
        Ok(StateVersion::of(Some(&text)))
    }

    fn lock(&self, operation: &str, wait: &LockWait<'_>) -> Result<LockGuard, LockError> {
        self.keep_out_of_git();
        let deadline = Instant::now() + wait.timeout;
        let mut told = false;
        loop {
            match StateLock::acquire(&self.path, operation) {
                Ok(lock) => {
                    tracing::debug!(path = %self.path.display(), id = %lock.info.id, operation, "lock taken");
                    return Ok(LockGuard {
                        info: lock.info.clone(),
                        replaced_stale: lock.replaced_stale.clone(),
                        _held: Box::new(lock),
                    });
                }
                Err(LockError::Held(holder)) if Instant::now() < deadline => {
                    if !told {
                        tracing::debug!(holder = %holder.who, pid = holder.pid, "lock held; waiting");
                        (wait.waiting)(&holder);
                        told = true;
                    }
                    std::thread::sleep(Duration::from_millis(200).min(wait.timeout));
                }
                Err(error) => return Err(error),
            }
        }
    }

    fn force_unlock(&self, id: &str) -> Result<LockInfo, LockError> {
        force_unlock(&self.path, id)
    }

    fn local_path(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn sealed(&self, state: &State) -> State {
        self.sealer.seal(state)
    }

    fn may_write_secrets(&self) -> Result<(), String> {
        super::sealing::may_write_secrets(&self.sealer, self.plaintext_secrets, &self.describe())
    }

    fn seals(&self) -> bool {
        self.sealer.seals()
    }

    fn open_secrets(&self, state: &mut State) -> Result<(), String> {
        self.sealer.open(state).map_err(|error| error.to_string())
    }

    fn open_journal(&self, lineage: &str) -> Result<Option<Arc<Journal>>, StateError> {
        let journal = Arc::new(Journal::open(
            &journal_path(&self.path),
            lineage,
            self.sealer.clone(),
        )?);
        *self.journal.lock().expect("backend") = Some(journal.clone());
        Ok(Some(journal))
    }

    fn close_journal(&self, saved: bool) {
        if let Some(journal) = self.journal.lock().expect("backend").take() {
            journal.close();
            if saved && let Err(error) = remove_journal(&self.path) {
                tracing::warn!(%error, "the apply journal could not be removed");
            }
        }
    }
}

fn remove_journal(state: &Path) -> Result<(), StateError> {
    let path = journal_path(state);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(StateError::Io {
            path,
            action: "remove the apply journal",
            error,
        }),
    }
}

/// The backend the root module's `backend` block (its kind and settings)
/// names, for the configuration in `dir`; `Err` says why there is none.
pub fn resolve(dir: &Path, declared: Option<(String, Value)>) -> Result<Arc<dyn Backend>, String> {
    let (kind, settings) = match declared {
        None => ("local".to_string(), BTreeMap::new()),
        Some((kind, Value::Map(entries))) => (kind, (*entries).clone()),
        Some((kind, _)) => (kind, BTreeMap::new()),
    };
    let text = |name: &str| -> Result<Option<String>, String> {
        match settings.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.to_string())),
            Some(_) => Err(format!(
                "`backend {kind} {{ {name} = … }}` must be a string"
            )),
        }
    };
    let plaintext_secrets = match text("encryption")?.as_deref() {
        None => false,
        Some("none") => true,
        Some(_) => {
            return Err(format!(
                "`backend {kind} {{ encryption = … }}` takes only \"none\" (secrets written in plaintext)\n  help: keys come from `INFRA_STATE_KEY`, `INFRA_STATE_PASSPHRASE` or a file the backend's `key_file` names, never from the configuration itself"
            ));
        }
    };
    let key_file = text("key_file")?.map(|file| dir.join(file));
    let kms_key = text("kms_key_id")?;
    let previous_kms_key = text("previous_kms_key_id")?;
    if key_file.is_some() && kms_key.is_some() {
        return Err(format!(
            "`backend {kind}` names both `key_file` and `kms_key_id`\n  help: keep one of them"
        ));
    }
    let kms = |key_id: Option<String>| -> Result<Option<KeySource>, String> {
        let Some(key_id) = key_id else {
            return Ok(None);
        };
        #[cfg(feature = "aws")]
        {
            super::kms::state_key(&key_id, text("region")?, text("endpoint")?).map(Some)
        }
        #[cfg(not(feature = "aws"))]
        {
            Err(format!(
                "`kms_key_id = \"{key_id}\"`: this infra was built without the AWS provider, which KMS keys need\n  help: build with the default features"
            ))
        }
    };
    let sealer = Sealer::from_env()?.or_backend_keys(
        || match &key_file {
            Some(path) => KeySource::from_file(path).map(Some),
            None => kms(kms_key.clone()),
        },
        || kms(previous_kms_key.clone()),
    )?;
    match kind.as_str() {
        "local" => {
            let path = dir.join(text("path")?.as_deref().unwrap_or("infra.state.json"));
            tracing::debug!(path = %path.display(), "backend: local state file");
            let backend = LocalBackend::new(path).with_sealer(sealer);
            Ok(Arc::new(if plaintext_secrets {
                backend.with_plaintext_secrets()
            } else {
                backend
            }))
        }
        #[cfg(feature = "aws")]
        "s3" => {
            let required = |name: &str| {
                text(name)?.ok_or_else(|| {
                    format!("`backend s3` needs `{name}`\n  help: e.g. `backend s3 {{ bucket = \"my-states\", key = \"prod/infra.state.json\", region = \"eu-west-1\" }}`")
                })
            };
            let location = super::s3::S3Location {
                bucket: required("bucket")?,
                key: required("key")?,
                region: text("region")?,
                endpoint: text("endpoint")?,
            };
            tracing::debug!(bucket = %location.bucket, key = %location.key, "backend: S3");
            Ok(Arc::new(super::s3::S3Backend::connect(
                location,
                sealer,
                plaintext_secrets,
            )?))
        }
        #[cfg(not(feature = "aws"))]
        "s3" => Err("this infra was built without the AWS provider, which the `s3` backend needs\n  help: build with the default features".into()),
        other => Err(format!(
            "there is no `{other}` backend\n  help: use `backend local` or `backend s3`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_save_against_a_state_that_changed_since_it_was_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("infra.state.json");
        let first = LocalBackend::new(&path);
        let second = LocalBackend::new(&path);
        let none = first.read().unwrap();
        assert!(!none.version.exists());
        let v1 = first.save(&State::new("l"), &none.version).unwrap();
        // The second writer read before the first saved.
        let error = second.save(&State::new("l"), &none.version).unwrap_err();
        assert!(matches!(error, StateError::Changed { .. }), "{error}");
        // Read again, then it may save.
        let read = second.read().unwrap();
        assert_eq!(read.version, v1);
        let mut changed = State::new("l");
        changed.outputs.insert(
            "x".into(),
            crate::state::OutputState {
                value: serde_json::json!(1),
                sensitive: false,
            },
        );
        second.save(&changed, &read.version).unwrap();
        assert!(first.save(&State::new("l"), &v1).is_err());
    }

    #[test]
    fn the_backend_block_names_the_file() {
        let dir = Path::new("/config");
        let local = |settings: Value| resolve(dir, Some(("local".into(), settings)));
        assert_eq!(
            resolve(dir, None).unwrap().local_path(),
            Some(Path::new("/config/infra.state.json"))
        );
        let custom = local(Value::map(
            [("path".to_string(), Value::String("state/prod.json".into()))].into(),
        ))
        .unwrap();
        assert_eq!(
            custom.local_path(),
            Some(Path::new("/config/state/prod.json"))
        );
        assert!(local(Value::map([("path".to_string(), Value::Bool(true))].into())).is_err());
        let encryption = |text: &str| {
            local(Value::map(
                [("encryption".to_string(), Value::String(text.into()))].into(),
            ))
        };
        let unsealed = encryption("none").unwrap();
        assert!(unsealed.may_write_secrets().is_ok(), "told it may");
        assert!(
            encryption("aes")
                .err()
                .unwrap()
                .contains("takes only \"none\"")
        );
        let s3 = resolve(dir, Some(("s3".into(), Value::Null)));
        assert!(
            s3.err().unwrap().contains("`backend s3` needs `bucket`") || cfg!(not(feature = "aws"))
        );
        let other = resolve(dir, Some(("gcs".into(), Value::Null)));
        assert!(other.err().unwrap().contains("there is no `gcs` backend"));
    }
}
