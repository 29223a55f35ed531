//! Saved plans: `infra plan -out FILE`, applied later by `infra apply FILE`.
//!
//! A saved plan is a promise: "apply will do exactly this". It does not
//! hold the work itself — apply plans again — but everything needed to
//! prove the new plan is the same one, and to refuse it otherwise:
//! - a digest of the configuration's files, the state's lineage and the
//!   plan options (`--destroy`, `--target`, `--replace`);
//! - the variables set from outside: plain values, except sensitive ones,
//!   of which only a keyed, stretched digest is kept (PBKDF2-HMAC-SHA256
//!   under a random key of this plan, so that a short secret cannot be
//!   looked up in a table or cheaply guessed; they must be given again);
//! - a digest of each planned resource's state as it was refreshed: if
//!   any changed since, the plan is stale;
//! - a digest of the plan in its JSON form, which the new plan must equal
//!   (the digest, not the plan: values computed from sensitive variables
//!   are not marked sensitive in it), and the planned actions by address,
//!   for people.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::ModuleConfig;
use crate::state::State;
use crate::syntax::SourceMap;

use super::diff::{Action, Plan};

pub const SAVED_PLAN_FORMAT: &str = "infra-saved-plan";
pub const SAVED_PLAN_VERSION: u32 = 3;

/// PBKDF2 rounds of a sensitive variable's digest: each guess at a secret
/// costs an attacker who holds the plan as many HMACs.
const SECRET_DIGEST_ROUNDS: u32 = 20_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedPlan {
    pub format: String,
    pub version: u32,
    /// The lineage of the state it was planned against.
    pub lineage: String,
    /// SHA-256 over the configuration's files (names and contents).
    pub configuration: String,
    #[serde(default)]
    pub destroy: bool,
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub replacements: Vec<String>,
    /// Root variables set from outside the configuration.
    #[serde(default)]
    pub variables: BTreeMap<String, SavedVariable>,
    /// This plan's random key for the digests of sensitive variables.
    pub secret_key: String,
    /// For each resource the plan changes: SHA-256 of its refreshed state.
    #[serde(default)]
    pub prior: BTreeMap<String, String>,
    /// SHA-256 of the plan as `infra plan --json` prints it.
    pub plan_sha256: String,
    /// `Plan: 1 to add, …`, and each change as `+ random_id.x`.
    pub summary: String,
    pub changes: Vec<String>,
    /// The plan as `infra plan` and `infra plan --json` showed it when it
    /// was saved, for `infra show FILE` (secrets hidden in both, as there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shown: Option<ShownPlan>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShownPlan {
    /// For people, without colour.
    pub text: String,
    /// `infra plan --json`'s document.
    pub json: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SavedVariable {
    Value(serde_json::Value),
    /// A sensitive value: only its digest, keyed with the plan's
    /// `secret_key` ([`secret_digest`]).
    Pbkdf2Sha256(String),
}

/// A random key for a new plan's secret digests.
pub fn new_secret_key() -> String {
    crate::state::new_lineage()
}

/// PBKDF2-HMAC-SHA256 of a sensitive value (its JSON text) under `key`,
/// in hex.
pub fn secret_digest(value: &serde_json::Value, key: &str) -> String {
    hex(&pbkdf2_sha256(
        value.to_string().as_bytes(),
        key.as_bytes(),
        SECRET_DIGEST_ROUNDS,
    ))
}

/// PBKDF2 (RFC 8018) with HMAC-SHA256, the first 32-byte block.
fn pbkdf2_sha256(password: &[u8], salt: &[u8], rounds: u32) -> [u8; 32] {
    use hmac::{KeyInit as _, Mac as _};
    let keyed =
        hmac::Hmac::<Sha256>::new_from_slice(password).expect("HMAC takes keys of any length");
    let mut first = keyed.clone();
    first.update(salt);
    first.update(&1u32.to_be_bytes());
    let mut block: [u8; 32] = first.finalize().into_bytes().into();
    let mut result = block;
    for _ in 1..rounds {
        let mut round = keyed.clone();
        round.update(&block);
        block = round.finalize().into_bytes().into();
        for (r, b) in result.iter_mut().zip(block) {
            *r ^= b;
        }
    }
    result
}

/// SHA-256 of a JSON value (objects have sorted keys), in hex.
pub fn json_digest(value: &serde_json::Value) -> String {
    hex(&Sha256::digest(value.to_string().as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 over every file of the configuration and its modules.
pub fn configuration_digest(config: &ModuleConfig, sources: &SourceMap) -> String {
    let mut hasher = Sha256::new();
    let mut pending = vec![config];
    while let Some(module) = pending.pop() {
        for &file in &module.files {
            let file = sources.file(file);
            hasher.update(file.name.as_bytes());
            hasher.update([0]);
            hasher.update(file.text.as_bytes());
            hasher.update([0]);
        }
        pending.extend(module.children.values());
    }
    hex(&hasher.finalize())
}

/// How a saved plan lists its changes: `-/+ random_id.x`.
pub fn change_lines(plan: &Plan) -> Vec<String> {
    plan.changes
        .iter()
        .filter(|c| !matches!(c.action, Action::NoOp | Action::Read))
        .map(|c| format!("{} {}", c.action.symbol(), c.address))
        .collect()
}

/// The digests of the refreshed state of every resource the plan changes.
pub fn prior_digests(plan: &Plan, refreshed: &State) -> BTreeMap<String, String> {
    plan.changes
        .iter()
        .filter(|c| !matches!(c.action, Action::NoOp | Action::Read))
        .filter_map(|c| {
            let resource = refreshed.resources.get(&c.address)?;
            let attributes = serde_json::to_value(&resource.attributes).ok()?;
            Some((c.address.clone(), json_digest(&attributes)))
        })
        .collect()
}

impl SavedPlan {
    pub fn read(path: &Path) -> Result<SavedPlan, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("cannot read the saved plan {}: {error}", path.display()))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|error| format!("{} is not a saved plan: {error}", path.display()))?;
        if json["format"] != SAVED_PLAN_FORMAT {
            return Err(format!(
                "{} is not a saved plan (no `\"format\": \"{SAVED_PLAN_FORMAT}\"`)",
                path.display()
            ));
        }
        if json["version"].as_u64() != Some(u64::from(SAVED_PLAN_VERSION)) {
            return Err(format!(
                "{} is a saved plan of another infra version ({}); plan again with this one",
                path.display(),
                json["version"]
            ));
        }
        serde_json::from_value(json)
            .map_err(|error| format!("{} is a damaged saved plan: {error}", path.display()))
    }

    /// Writes the plan, readable by its owner only (it may hold values of
    /// variables and the shape of the infrastructure).
    pub fn write(&self, path: &Path) -> Result<(), String> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut text = serde_json::to_string_pretty(self).expect("saved plan serialises");
        text.push('\n');
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
        file.write_all(text.as_bytes())
            .map_err(|error| format!("cannot write {}: {error}", path.display()))
    }

    /// Why `now` (the same plan made again) is not this one, if it is not.
    pub fn differences(&self, now: &SavedPlan) -> Vec<String> {
        let mut problems = Vec::new();
        if self.lineage != now.lineage {
            problems.push(if self.lineage.is_empty() {
                "a state was created since the plan was made (the plan is stale)".to_string()
            } else {
                format!(
                    "the state is another one (lineage {} instead of {})",
                    now.lineage, self.lineage
                )
            });
        }
        if self.configuration != now.configuration {
            problems.push("the configuration files changed since the plan was made".into());
        }
        for (name, saved) in &self.variables {
            if now.variables.get(name) != Some(saved) {
                problems.push(match saved {
                    SavedVariable::Pbkdf2Sha256(_) => format!(
                        "the sensitive variable `{name}` is missing or differs: the saved plan keeps only its digest, so give the same value again (-var or INFRA_VAR_{name})"
                    ),
                    SavedVariable::Value(_) => format!("the variable `{name}` differs"),
                });
            }
        }
        let stale: Vec<&str> = self
            .prior
            .iter()
            .filter(|(address, digest)| now.prior.get(*address) != Some(digest))
            .map(|(address, _)| address.as_str())
            .collect();
        if !stale.is_empty() {
            problems.push(format!(
                "the state of {} changed since the plan was made (the plan is stale)",
                crate::diagnostics::code_list(stale)
            ));
        }
        if problems.is_empty() && self.plan_sha256 != now.plan_sha256 {
            problems.push(
                "planning again gives a different plan (something it depends on changed)".into(),
            );
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_matches_the_rfc_7914_vectors() {
        assert_eq!(
            hex(&pbkdf2_sha256(b"passwd", b"salt", 1)),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
        assert_eq!(
            hex(&pbkdf2_sha256(b"Password", b"NaCl", 80_000)),
            "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56"
        );
    }

    #[test]
    fn a_secret_digest_depends_on_the_plans_key() {
        let secret = serde_json::json!("hunter2");
        let a = secret_digest(&secret, "key-a");
        assert_eq!(a, secret_digest(&secret, "key-a"));
        assert_ne!(a, secret_digest(&secret, "key-b"));
        assert_ne!(a, json_digest(&secret));
    }
}
