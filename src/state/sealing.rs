//! Secrets in the state, sealed value by value: each sensitive attribute
//! (and each sensitive output) is written as an envelope
//! `{"encrypted": "…", "key": "k-…"}` while everything else stays plain,
//! readable, diffable JSON.
//!
//! - Cipher: XChaCha20-Poly1305 (RustCrypto). The nonce is derived from the
//!   value and where it is (an HMAC under a key of its own), so an unchanged
//!   secret seals to the same bytes on every save — no diff noise — and
//!   equal envelopes tell only that a value did not change.
//! - The associated data binds the state's lineage, the resource address
//!   and the attribute: an envelope copied elsewhere does not open.
//! - Keys: `INFRA_STATE_KEY` (32 random bytes, base64: `openssl rand
//!   -base64 32`) or `INFRA_STATE_PASSPHRASE` (Argon2id, salted with the
//!   state's lineage). `INFRA_STATE_PREVIOUS_KEY` still opens what an older
//!   key sealed; the next save seals with the current key (`infra state
//!   rekey` does only that). Each envelope names its key by an id (a hash of
//!   the key), so a wrong or missing key is a clear error, never garbage.

use std::collections::BTreeMap;
use std::sync::Mutex;

use base64::Engine as _;
use chacha20poly1305::aead::Aead as _;
use chacha20poly1305::{KeyInit as _, XChaCha20Poly1305, XNonce};
use hmac::Mac as _;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::format::{ResourceState, State};
use crate::eval::SensitivePath;

/// The variable holding the key: 32 bytes, base64.
pub const KEY_VARIABLE: &str = "INFRA_STATE_KEY";
/// The variable holding a passphrase the key is derived from.
pub const PASSPHRASE_VARIABLE: &str = "INFRA_STATE_PASSPHRASE";
/// The variable holding the key before a rotation (opens, never seals).
pub const PREVIOUS_KEY_VARIABLE: &str = "INFRA_STATE_PREVIOUS_KEY";

/// Where a key comes from.
#[derive(Clone)]
pub enum KeySource {
    Key([u8; 32]),
    Passphrase(String),
}

impl KeySource {
    /// A key as `INFRA_STATE_KEY` holds it: 32 bytes in base64.
    pub fn parse_key(text: &str) -> Result<KeySource, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| "is not base64".to_string())?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|bytes: Vec<u8>| format!("holds {} bytes, not 32", bytes.len()))?;
        Ok(KeySource::Key(key))
    }
}

/// One key, ready to seal and open.
struct StateKey {
    id: String,
    cipher: XChaCha20Poly1305,
    nonce_key: [u8; 32],
}

impl StateKey {
    fn new(key: [u8; 32]) -> StateKey {
        let mut id_hash = Sha256::new();
        id_hash.update(b"infra-state key id\0");
        id_hash.update(key);
        let id = id_hash.finalize();
        StateKey {
            id: format!("k-{}", hex(&id[..8])),
            cipher: XChaCha20Poly1305::new_from_slice(&key).expect("a 32-byte key"),
            nonce_key: hmac_sha256(&key, &[b"infra-state nonce key"]),
        }
    }
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a state's secrets could not be sealed or opened.
#[derive(Debug, Clone, PartialEq)]
pub struct SealError(pub String);

impl std::fmt::Display for SealError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Seals and opens the secrets of states, with the keys of this run.
pub struct Sealer {
    current: Option<KeySource>,
    previous: Option<KeySource>,
    /// Keys by (source index, lineage): a passphrase's key depends on the
    /// state's lineage (its salt), and Argon2 is slow on purpose.
    derived: Mutex<BTreeMap<(usize, String), std::sync::Arc<StateKey>>>,
}

impl Sealer {
    /// No key: secrets are written as they are (what a state without
    /// configured encryption holds).
    pub fn plaintext() -> Sealer {
        Sealer::new(None, None)
    }

    pub fn new(current: Option<KeySource>, previous: Option<KeySource>) -> Sealer {
        Sealer {
            current,
            previous,
            derived: Mutex::new(BTreeMap::new()),
        }
    }

    /// These keys, or — where the environment sets none — the keys the
    /// backend names (`key_file`, `kms_key_id`; asked for only then): the
    /// environment wins, so CI can set a key where the file is absent.
    pub fn or_backend_keys(
        self,
        current: impl FnOnce() -> Result<Option<KeySource>, String>,
        previous: impl FnOnce() -> Result<Option<KeySource>, String>,
    ) -> Result<Sealer, String> {
        let current = match self.current {
            Some(key) => Some(key),
            None => current()?,
        };
        let previous = match self.previous {
            Some(key) => Some(key),
            None => previous()?,
        };
        Ok(Sealer::new(current, previous))
    }
}

impl KeySource {
    /// The key in the file at `path` (base64, as `INFRA_STATE_KEY`).
    pub fn from_file(path: &std::path::Path) -> Result<KeySource, String> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            format!(
                "cannot read the state key file `{}`: {error}\n  help: write a key there (`openssl rand -base64 32 > {}`, readable by you only), or set `{KEY_VARIABLE}`",
                path.display(),
                path.display()
            )
        })?;
        KeySource::parse_key(&text).map_err(|problem| {
            format!(
                "the state key file `{}` {problem}\n  help: a key is 32 random bytes in base64: `openssl rand -base64 32`",
                path.display()
            )
        })
    }
}

impl Sealer {
    /// The keys the environment configures.
    pub fn from_env() -> Result<Sealer, String> {
        let variable = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let key = |name: &str| -> Result<Option<KeySource>, String> {
            variable(name)
                .map(|text| {
                    KeySource::parse_key(&text).map_err(|problem| {
                        format!(
                            "`{name}` {problem}\n  help: a key is 32 random bytes in base64: `openssl rand -base64 32`"
                        )
                    })
                })
                .transpose()
        };
        let current = match (key(KEY_VARIABLE)?, variable(PASSPHRASE_VARIABLE)) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "both `{KEY_VARIABLE}` and `{PASSPHRASE_VARIABLE}` are set\n  help: set one of them"
                ));
            }
            (Some(key), None) => Some(key),
            (None, Some(passphrase)) => Some(KeySource::Passphrase(passphrase)),
            (None, None) => None,
        };
        Ok(Sealer::new(current, key(PREVIOUS_KEY_VARIABLE)?))
    }

    /// Whether a key seals secrets.
    pub fn seals(&self) -> bool {
        self.current.is_some()
    }

    fn key(&self, index: usize, lineage: &str) -> Option<std::sync::Arc<StateKey>> {
        let source = [&self.current, &self.previous][index].as_ref()?;
        let mut derived = self.derived.lock().expect("sealer");
        let key = derived
            .entry((index, lineage.to_string()))
            .or_insert_with(|| {
                std::sync::Arc::new(StateKey::new(match source {
                    KeySource::Key(key) => *key,
                    KeySource::Passphrase(passphrase) => {
                        let mut key = [0u8; 32];
                        let salt = format!("infra-state/{lineage}");
                        argon2::Argon2::default()
                            .hash_password_into(passphrase.as_bytes(), salt.as_bytes(), &mut key)
                            .expect("Argon2 takes any passphrase and this salt");
                        key
                    }
                }))
            });
        Some(key.clone())
    }

    /// `state` as it is written: each sensitive value sealed (none when no
    /// key is configured).
    pub fn seal(&self, state: &State) -> State {
        let mut sealed = state.clone();
        let Some(key) = self.key(0, &state.lineage) else {
            return sealed;
        };
        for (address, resource) in &mut sealed.resources {
            seal_resource_with(&key, &state.lineage, address, resource);
        }
        for (name, output) in &mut sealed.outputs {
            if output.sensitive && !is_envelope(&output.value) {
                output.value =
                    seal_value(&key, &aad(&state.lineage, "output", name), &output.value);
            }
        }
        sealed
    }

    /// [`Sealer::seal`], without a copy when there is no key to seal with.
    pub fn sealed<'s>(&self, state: &'s State) -> std::borrow::Cow<'s, State> {
        if self.seals() {
            std::borrow::Cow::Owned(self.seal(state))
        } else {
            std::borrow::Cow::Borrowed(state)
        }
    }

    /// One object as the apply journal records it.
    pub fn seal_resource(&self, lineage: &str, address: &str, resource: &mut ResourceState) {
        if let Some(key) = self.key(0, lineage) {
            seal_resource_with(&key, lineage, address, resource);
        }
    }

    /// Opens every envelope of `state` in place.
    pub fn open(&self, state: &mut State) -> Result<(), SealError> {
        let lineage = state.lineage.clone();
        for (address, resource) in &mut state.resources {
            // Sorted, an attribute sealed whole opens before the paths
            // inside it, which then find plaintext and are left alone.
            for path in &resource.sensitive {
                if let Some(value) =
                    SensitivePath::parse(path).find_json_mut(&mut resource.attributes)
                    && is_envelope(value)
                {
                    *value = self.open_value(&lineage, address, path, value)?;
                }
            }
        }
        for (name, output) in &mut state.outputs {
            if output.sensitive && is_envelope(&output.value) {
                output.value = self.open_value(&lineage, "output", name, &output.value)?;
            }
        }
        Ok(())
    }

    fn open_value(
        &self,
        lineage: &str,
        address: &str,
        attribute: &str,
        envelope: &Value,
    ) -> Result<Value, SealError> {
        let where_ = if address == "output" {
            format!("output `{attribute}`")
        } else {
            format!("`{address}.{attribute}`")
        };
        let key_id = envelope["key"].as_str().unwrap_or_default();
        let key = (0..2)
            .filter_map(|index| self.key(index, lineage))
            .find(|key| key.id == key_id)
            .ok_or_else(|| {
                SealError(if self.seals() {
                    format!(
                        "{where_} is sealed with key `{key_id}`, which is not the configured key\n  help: set `{KEY_VARIABLE}` (or `{PASSPHRASE_VARIABLE}`, or the backend's `key_file` or `kms_key_id`) to the key the state was sealed with; to rotate keys, put the old one in `{PREVIOUS_KEY_VARIABLE}` and run `infra state rekey`"
                    )
                } else {
                    format!(
                        "{where_} is sealed with key `{key_id}`, and no key is configured\n  help: set `{KEY_VARIABLE}` (or `{PASSPHRASE_VARIABLE}`, or the backend's `key_file` or `kms_key_id`) to the key the state was sealed with"
                    )
                })
            })?;
        let sealed = envelope["encrypted"]
            .as_str()
            .and_then(|text| base64::engine::general_purpose::STANDARD.decode(text).ok())
            .filter(|bytes| bytes.len() > 24)
            .ok_or_else(|| SealError(format!("{where_}: the envelope is damaged")))?;
        let (nonce, ciphertext) = sealed.split_at(24);
        let nonce = XNonce::try_from(nonce).expect("24 bytes");
        let plaintext = key
            .cipher
            .decrypt(
                &nonce,
                chacha20poly1305::aead::Payload {
                    msg: ciphertext,
                    aad: aad(lineage, address, attribute).as_bytes(),
                },
            )
            .map_err(|_| {
                SealError(format!(
                    "{where_} does not open with key `{key_id}`: the ciphertext was changed, or copied from another attribute or state\n  help: restore the state from git or from its backup; infra will not overwrite it"
                ))
            })?;
        serde_json::from_slice(&plaintext)
            .map_err(|_| SealError(format!("{where_}: the sealed value is not JSON")))
    }
}

/// Seals each sensitive part of `resource` (a path's envelope is bound to
/// the path, e.g. `template.env.DB_PASSWORD`; a whole attribute's to its
/// name, as before paths existed).
fn seal_resource_with(key: &StateKey, lineage: &str, address: &str, resource: &mut ResourceState) {
    for path in &resource.sensitive {
        if let Some(value) = SensitivePath::parse(path).find_json_mut(&mut resource.attributes)
            && !value.is_null()
            && !is_envelope(value)
        {
            *value = seal_value(key, &aad(lineage, address, path), value);
        }
    }
}

/// What binds an envelope to its place: the state, the address and the
/// attribute path.
fn aad(lineage: &str, address: &str, attribute: &str) -> String {
    format!("infra-state/1\0{lineage}\0{address}\0{attribute}")
}

fn seal_value(key: &StateKey, aad: &str, value: &Value) -> Value {
    let plaintext = serde_json::to_vec(value).expect("a value serialises");
    let derived = hmac_sha256(&key.nonce_key, &[aad.as_bytes(), b"\0", &plaintext]);
    let nonce = XNonce::try_from(&derived[..24]).expect("24 bytes");
    let ciphertext = key
        .cipher
        .encrypt(
            &nonce,
            chacha20poly1305::aead::Payload {
                msg: &plaintext,
                aad: aad.as_bytes(),
            },
        )
        .expect("XChaCha20-Poly1305 seals values of any size a state holds");
    let mut sealed = derived[..24].to_vec();
    sealed.extend_from_slice(&ciphertext);
    serde_json::json!({
        "encrypted": base64::engine::general_purpose::STANDARD.encode(sealed),
        "key": key.id,
    })
}

/// Whether a backend may write secrets: with a key, or told it may
/// (`encryption = "none"`); else why not, and how to fix it.
pub fn may_write_secrets(
    sealer: &Sealer,
    plaintext_allowed: bool,
    place: &str,
) -> Result<(), String> {
    if sealer.seals() || plaintext_allowed {
        return Ok(());
    }
    Err(format!(
        "this run would write secrets in plaintext to the {place}\n  help: set `{KEY_VARIABLE}` (`export {KEY_VARIABLE}=\"$(openssl rand -base64 32)\"`, kept in your secret store) or `{PASSPHRASE_VARIABLE}` (or name a key file: `key_file = \"…\"` in the `backend` block) to seal them; or, for a state no one else can read, declare `encryption = \"none\"` in the `backend` block"
    ))
}

/// Whether `value` is an envelope: an object of exactly `encrypted` and `key`.
pub fn is_envelope(value: &Value) -> bool {
    value.as_object().is_some_and(|object| {
        object.len() == 2
            && object.get("encrypted").is_some_and(Value::is_string)
            && object.get("key").is_some_and(Value::is_string)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::OutputState;
    use serde_json::json;

    fn key(byte: u8) -> KeySource {
        KeySource::Key([byte; 32])
    }

    fn secret_state() -> State {
        let mut state = State::new("lineage-1");
        state.resources.insert(
            "random_password.db".into(),
            ResourceState {
                type_name: "random_password".into(),
                provider: "random".into(),
                attributes: [
                    ("length".to_string(), json!(16)),
                    ("result".to_string(), json!("hunter2-hunter2!")),
                ]
                .into(),
                dependencies: Vec::new(),
                sensitive: vec!["result".into()],
            },
        );
        state.outputs.insert(
            "password".into(),
            OutputState {
                value: json!({ "user": "app", "password": "hunter2-hunter2!" }),
                sensitive: true,
            },
        );
        state
    }

    #[test]
    fn secrets_seal_stably_and_open_with_their_key_only() {
        let state = secret_state();
        let sealer = Sealer::new(Some(key(1)), None);
        let sealed = sealer.seal(&state);
        let text = sealed.to_canonical_json();
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(
            sealed.resources["random_password.db"].attributes["length"], 16,
            "the rest stays plain"
        );
        assert_eq!(text, sealer.seal(&state).to_canonical_json(), "stable");
        let mut opened = sealed.clone();
        sealer.open(&mut opened).unwrap();
        assert_eq!(opened, state);

        let mut other = sealed.clone();
        let error = Sealer::new(Some(key(2)), None)
            .open(&mut other)
            .unwrap_err();
        assert!(error.0.contains("not the configured key"), "{error}");
        let error = Sealer::plaintext().open(&mut other).unwrap_err();
        assert!(error.0.contains("no key is configured"), "{error}");
        // A rotation: the old key opens, the new one seals.
        let rotated = Sealer::new(Some(key(2)), Some(key(1)));
        let mut opened = sealed.clone();
        rotated.open(&mut opened).unwrap();
        assert_ne!(rotated.seal(&opened).to_canonical_json(), text);
    }

    #[test]
    fn a_tampered_or_moved_envelope_does_not_open() {
        let sealer = Sealer::new(Some(key(1)), None);
        let sealed = sealer.seal(&secret_state());
        let envelope = sealed.resources["random_password.db"].attributes["result"].clone();

        let mut moved = sealed.clone();
        let mut copy = moved.resources["random_password.db"].clone();
        copy.attributes.insert("result".into(), envelope.clone());
        moved.resources.insert("random_password.other".into(), copy);
        let error = sealer.open(&mut moved).unwrap_err();
        assert!(error.0.contains("random_password.other.result"), "{error}");

        let mut tampered = sealed.clone();
        let text = envelope["encrypted"].as_str().unwrap();
        let flipped = format!(
            "{}{}",
            &text[..10],
            if &text[10..11] == "A" { "B" } else { "A" }
        );
        tampered
            .resources
            .get_mut("random_password.db")
            .unwrap()
            .attributes
            .insert(
                "result".into(),
                json!({ "encrypted": flipped + &text[11..], "key": envelope["key"] }),
            );
        let error = sealer.open(&mut tampered).unwrap_err();
        assert!(error.0.contains("does not open"), "{error}");
    }

    #[test]
    fn a_passphrase_derives_a_key_per_state() {
        let sealer = Sealer::new(Some(KeySource::Passphrase("correct horse".into())), None);
        let state = secret_state();
        let sealed = sealer.seal(&state);
        let mut opened = sealed.clone();
        Sealer::new(Some(KeySource::Passphrase("correct horse".into())), None)
            .open(&mut opened)
            .unwrap();
        assert_eq!(opened, state);
        let mut wrong = sealed;
        assert!(
            Sealer::new(Some(KeySource::Passphrase("wrong".into())), None)
                .open(&mut wrong)
                .is_err()
        );
    }
}
