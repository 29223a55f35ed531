//! `backend s3 { bucket, key, region, endpoint }`: the state as one S3
//! object, shared by every laptop and CI job that runs the configuration.
//!
//! - Saves are compare-and-swap: written with `If-Match: <the ETag this run
//!   read>` (or `If-None-Match: *` for the first), so a save based on a
//!   stale read fails instead of overwriting another run's work.
//! - The lock is the object `<key>.lock`, created with `If-None-Match: *`:
//!   a second run gets S3's 412 and reads who holds it, where, since when
//!   and for what — as OpenTofu's S3 backend locks.
//!   The new lock is read back after a moment (`LOCK_SETTLE`): with a
//!   store whose conditional writes are not atomic, the last writer holds
//!   it and the others see it held.
//! - Before a run's first save, the previous state is kept as
//!   `<key>.backup`; secrets are sealed as in a local state.
//!
//! The SDK lives in the AWS provider crate (`object_store`); this file
//! turns its conditional writes into the [`Backend`] contract.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use infra_provider_aws::object_store::{Condition, ObjectStore, StoreError};

use super::backend::{Backend, LockGuard, LockWait, StateVersion, StoredState};
use super::format::State;
use super::lock::{LockError, LockInfo, is_stale};
use super::sealing::{Sealer, may_write_secrets};
use super::store::{StateError, parse};

/// Where the state is: what `backend s3 { … }` says.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Location {
    pub bucket: String,
    pub key: String,
    pub region: Option<String>,
    pub endpoint: Option<String>,
}

/// How long a new lock is left to settle before it is read back.
const LOCK_SETTLE: Duration = Duration::from_millis(200);

struct Inner {
    store: ObjectStore,
    /// Runs the SDK's futures; each call runs on a thread of its own, so
    /// a caller inside another runtime is fine.
    runtime: tokio::runtime::Runtime,
}

impl Inner {
    fn block<T: Send>(&self, future: impl Future<Output = T> + Send) -> T {
        std::thread::scope(|scope| {
            scope
                .spawn(|| self.runtime.block_on(future))
                .join()
                .expect("an S3 call does not panic")
        })
    }
}

pub struct S3Backend {
    location: S3Location,
    inner: Arc<Inner>,
    sealer: Arc<Sealer>,
    plaintext_secrets: bool,
    /// The text and ETag this run last read or wrote: an identical save
    /// writes nothing, and the first save keeps the state before as the
    /// backup.
    last: Mutex<Option<(String, String)>>,
    saved_once: Mutex<bool>,
}

impl S3Backend {
    /// The backend `location` names, reached as the AWS provider reaches
    /// AWS (the standard credential chain, `AWS_ENDPOINT_URL`).
    pub fn connect(
        location: S3Location,
        sealer: Sealer,
        plaintext_secrets: bool,
    ) -> Result<S3Backend, String> {
        let settings = infra_provider_aws::Settings {
            region: location.region.clone(),
            endpoint: location.endpoint.clone(),
            max_attempts: 3,
            static_credentials: None,
        };
        S3Backend::with_settings(location, &settings, sealer, plaintext_secrets)
    }

    /// [`S3Backend::connect`] with explicit settings (tests: credentials).
    pub fn with_settings(
        location: S3Location,
        settings: &infra_provider_aws::Settings,
        sealer: Sealer,
        plaintext_secrets: bool,
    ) -> Result<S3Backend, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| format!("cannot start the S3 client: {error}"))?;
        let store = std::thread::scope(|scope| {
            scope
                .spawn(|| runtime.block_on(ObjectStore::connect(settings, &location.bucket)))
                .join()
                .expect("connecting does not panic")
        });
        Ok(S3Backend {
            location,
            inner: Arc::new(Inner { store, runtime }),
            sealer: Arc::new(sealer),
            plaintext_secrets,
            last: Mutex::new(None),
            saved_once: Mutex::new(false),
        })
    }

    fn url(&self, suffix: &str) -> PathBuf {
        PathBuf::from(format!(
            "s3://{}/{}{suffix}",
            self.location.bucket, self.location.key
        ))
    }

    fn lock_key(&self) -> String {
        format!("{}.lock", self.location.key)
    }

    fn failed(&self, action: &'static str, error: StoreError) -> StateError {
        StateError::Io {
            path: self.url(""),
            action,
            error: std::io::Error::other(error.to_string()),
        }
    }

    /// Whether the lock object, read after [`LOCK_SETTLE`], is still the
    /// one this run wrote.
    fn still_ours(&self, id: &str) -> Result<bool, LockError> {
        std::thread::sleep(LOCK_SETTLE);
        Ok(self.held()?.is_some_and(|(info, _)| info.id == id))
    }

    /// The lock object as it is now: none when there is none.
    fn held(&self) -> Result<Option<(LockInfo, String)>, LockError> {
        let path = self.url(".lock");
        let key = self.lock_key();
        match self.inner.block(self.inner.store.get(&key)) {
            Ok(None) => Ok(None),
            Ok(Some((bytes, etag))) => serde_json::from_slice(&bytes)
                .map(|info| Some((info, etag)))
                .map_err(|error| LockError::Unreadable {
                    path,
                    detail: error.to_string(),
                }),
            Err(error) => Err(LockError::Io {
                path,
                error: std::io::Error::other(error.to_string()),
            }),
        }
    }
}

/// The lock this run holds: deleted when the run lets go, if it is still
/// this run's.
struct HeldLock {
    inner: Arc<Inner>,
    key: String,
    id: String,
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        let inner = &self.inner;
        let still_ours = match inner.block(inner.store.get(&self.key)) {
            Ok(Some((bytes, _))) => {
                serde_json::from_slice::<LockInfo>(&bytes).is_ok_and(|info| info.id == self.id)
            }
            _ => false,
        };
        if still_ours && let Err(error) = inner.block(inner.store.delete(&self.key)) {
            tracing::warn!(%error, key = %self.key, "the S3 lock could not be removed");
        }
    }
}

impl Backend for S3Backend {
    fn describe(&self) -> String {
        format!("S3 state `{}`", self.url("").display())
    }

    fn read(&self) -> Result<StoredState, StateError> {
        let path = self.url("");
        let found = self
            .inner
            .block(self.inner.store.get(&self.location.key))
            .map_err(|error| self.failed("read", error))?;
        let Some((bytes, etag)) = found else {
            *self.last.lock().expect("backend") = None;
            return Ok(StoredState {
                state: None,
                version: StateVersion::tagged(None),
                recovery: Default::default(),
            });
        };
        let text = String::from_utf8(bytes).map_err(|_| StateError::Corrupt {
            path: path.clone(),
            detail: "it is not UTF-8 text".into(),
        })?;
        let mut state = parse(&path, &text)?;
        self.sealer
            .open(&mut state)
            .map_err(|error| StateError::Sealed {
                path: path.clone(),
                detail: error.0,
            })?;
        *self.last.lock().expect("backend") = Some((text, etag.clone()));
        Ok(StoredState {
            state: Some(state),
            version: StateVersion::tagged(Some(etag)),
            recovery: Default::default(),
        })
    }

    fn save(&self, state: &State, expected: &StateVersion) -> Result<StateVersion, StateError> {
        let text = self.sealer.sealed(state).to_canonical_json();
        let mut last = self.last.lock().expect("backend");
        let mut saved_once = self.saved_once.lock().expect("backend");
        let condition = match expected.tag() {
            Some(etag) => Condition::Unchanged(etag.to_string()),
            None => Condition::Absent,
        };
        if let Some((previous, etag)) = last.as_ref()
            && expected.tag() == Some(etag.as_str())
        {
            if *previous == text {
                return Ok(expected.clone());
            }
            if !*saved_once {
                let backup = format!("{}.backup", self.location.key);
                self.inner
                    .block(self.inner.store.put(
                        &backup,
                        previous.clone().into_bytes(),
                        Condition::Always,
                    ))
                    .map_err(|error| self.failed("write the backup of", error))?;
            }
        }
        let written = self.inner.block(self.inner.store.put(
            &self.location.key,
            text.clone().into_bytes(),
            condition,
        ));
        let etag = match written {
            Ok(etag) => etag,
            Err(StoreError::ConditionFailed) => {
                return Err(StateError::Changed { path: self.url("") });
            }
            Err(error) => return Err(self.failed("write", error)),
        };
        *saved_once = true;
        *last = Some((text, etag.clone()));
        Ok(StateVersion::tagged(Some(etag)))
    }

    fn lock(&self, operation: &str, wait: &LockWait<'_>) -> Result<LockGuard, LockError> {
        let deadline = Instant::now() + wait.timeout;
        let info = LockInfo::of_this_process(operation);
        let body = serde_json::to_vec_pretty(&info).expect("lock info serialises");
        let key = self.lock_key();
        let mut told = false;
        let mut replaced_stale = None;
        loop {
            match self
                .inner
                .block(self.inner.store.put(&key, body.clone(), Condition::Absent))
            {
                // Read back once writes in flight have landed: a store
                // whose conditional writes are not atomic (or ignored, as
                // some S3-compatible ones do) lets two runs both "create"
                // the lock; the last one written holds it.
                Ok(_) if self.still_ours(&info.id)? => {
                    return Ok(LockGuard::new(
                        info.clone(),
                        None,
                        Box::new(HeldLock {
                            inner: self.inner.clone(),
                            key,
                            id: info.id,
                        }),
                    ));
                }
                Ok(_) | Err(StoreError::ConditionFailed) => {}
                Err(error) => {
                    return Err(LockError::Io {
                        path: self.url(".lock"),
                        error: std::io::Error::other(error.to_string()),
                    });
                }
            }
            let Some((held, etag)) = self.held()? else {
                // Released between the two calls: try again.
                continue;
            };
            if replaced_stale.is_none() && is_stale(&held) {
                // A run of this host that is gone: its lock is taken over,
                // unless another run changed it first.
                match self.inner.block(self.inner.store.put(
                    &key,
                    body.clone(),
                    Condition::Unchanged(etag),
                )) {
                    Ok(_) if self.still_ours(&info.id)? => {
                        return Ok(LockGuard::new(
                            info.clone(),
                            Some(held),
                            Box::new(HeldLock {
                                inner: self.inner.clone(),
                                key,
                                id: info.id,
                            }),
                        ));
                    }
                    Ok(_) | Err(StoreError::ConditionFailed) => {
                        replaced_stale = Some(held);
                        continue;
                    }
                    Err(error) => {
                        return Err(LockError::Io {
                            path: self.url(".lock"),
                            error: std::io::Error::other(error.to_string()),
                        });
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(LockError::Held(Box::new(held)));
            }
            if !told {
                (wait.waiting)(&held);
                told = true;
            }
            std::thread::sleep(Duration::from_millis(500).min(wait.timeout));
        }
    }

    fn force_unlock(&self, id: &str) -> Result<LockInfo, LockError> {
        let Some((held, _)) = self.held()? else {
            return Err(LockError::NotLocked {
                path: self.url(".lock"),
            });
        };
        if held.id != id {
            return Err(LockError::WrongId {
                held: Box::new(held),
                given: id.to_string(),
            });
        }
        self.inner
            .block(self.inner.store.delete(&self.lock_key()))
            .map_err(|error| LockError::Io {
                path: self.url(".lock"),
                error: std::io::Error::other(error.to_string()),
            })?;
        Ok(held)
    }

    fn sealed(&self, state: &State) -> State {
        self.sealer.seal(state)
    }

    fn may_write_secrets(&self) -> Result<(), String> {
        may_write_secrets(&self.sealer, self.plaintext_secrets, &self.describe())
    }

    fn seals(&self) -> bool {
        self.sealer.seals()
    }

    fn open_secrets(&self, state: &mut State) -> Result<(), String> {
        self.sealer.open(state).map_err(|error| error.to_string())
    }
}
