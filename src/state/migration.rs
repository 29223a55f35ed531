//! Which backend a configuration's state was last kept in, so that a
//! changed `backend` block is noticed before a run starts an empty state in
//! the new place (and plans to create everything again), and so that
//! `infra init --migrate-state` knows where to copy the state from.
//!
//! The record is `.infra/backend.json` beside the configuration: the
//! backend's kind and settings as written (no key — `key_file` is a path),
//! machine-local like Terraform's `.terraform/`, kept out of git by a
//! `.gitignore` of its own. `infra init` writes it, and so does the first
//! run that changes the state.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::eval::Value;

/// The settings that say where a state is (others, such as `key_file` or
/// `encryption`, may change without moving it).
const LOCATION_SETTINGS: &[&str] = &["path", "bucket", "key", "region", "endpoint"];

/// Where the local backend keeps the state when its block names no path.
pub const DEFAULT_PATH: &str = "infra.state.json";

/// A backend as the configuration declares it: kind and settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendRecord {
    pub kind: String,
    pub settings: BTreeMap<String, serde_json::Value>,
}

impl BackendRecord {
    /// The record of a declared backend (none declared: the local file).
    pub fn of(declared: Option<&(String, Value)>) -> BackendRecord {
        match declared {
            None => BackendRecord::local_default(),
            Some((kind, settings)) => BackendRecord {
                kind: kind.clone(),
                settings: match settings {
                    Value::Map(entries) => entries
                        .iter()
                        .map(|(name, value)| (name.clone(), value.to_json()))
                        .collect(),
                    _ => BTreeMap::new(),
                },
            },
        }
    }

    /// `backend local {}`: `infra.state.json` beside the configuration.
    pub fn local_default() -> BackendRecord {
        BackendRecord {
            kind: "local".into(),
            settings: BTreeMap::new(),
        }
    }

    /// The backend block this record stands for, to open it again.
    pub fn declared(&self) -> (String, Value) {
        let settings = self
            .settings
            .iter()
            .map(|(name, value)| (name.clone(), Value::from_json(value)))
            .collect();
        (self.kind.clone(), Value::map(settings))
    }

    /// Where the state is, as text that two records share exactly when
    /// they name the same place.
    pub fn location(&self) -> String {
        let mut out = self.kind.clone();
        for name in LOCATION_SETTINGS {
            let value = match (self.kind.as_str(), *name, self.settings.get(*name)) {
                ("local", "path", None | Some(serde_json::Value::Null)) => {
                    serde_json::Value::from(DEFAULT_PATH)
                }
                (_, _, None | Some(serde_json::Value::Null)) => continue,
                (_, _, Some(value)) => value.clone(),
            };
            out.push_str(&format!(" {name}={value}"));
        }
        out
    }

    /// How messages name it, as the backend itself does.
    pub fn describe(&self) -> String {
        let text = |name: &str| self.settings.get(name).and_then(|v| v.as_str());
        match self.kind.as_str() {
            "local" => format!(
                "local state file `{}`",
                text("path").unwrap_or(DEFAULT_PATH)
            ),
            "s3" => format!(
                "S3 state `s3://{}/{}`",
                text("bucket").unwrap_or("?"),
                text("key").unwrap_or("?")
            ),
            other => format!("`{other}` backend"),
        }
    }
}

/// `.infra/backend.json` of the configuration in `dir`.
pub fn record_path(dir: &Path) -> PathBuf {
    dir.join(".infra").join("backend.json")
}

/// The backend last recorded for the configuration in `dir`, if any.
pub fn read_record(dir: &Path) -> Result<Option<BackendRecord>, String> {
    let path = record_path(dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|error| {
            format!(
                "`{}` is damaged: {error}\n  help: run `infra init` to record the backend again",
                path.display()
            )
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(format!("cannot read `{}`: {error}", path.display())),
    }
}

/// Records `record` as the backend of the configuration in `dir`.
pub fn write_record(dir: &Path, record: &BackendRecord) -> Result<(), String> {
    let path = record_path(dir);
    let folder = path.parent().expect("a file in .infra");
    let failed = |error: std::io::Error| format!("cannot write `{}`: {error}", path.display());
    std::fs::create_dir_all(folder).map_err(failed)?;
    let ignore = folder.join(".gitignore");
    if !ignore.exists() {
        std::fs::write(&ignore, "# infra: machine-local, never committed\n*\n").map_err(failed)?;
    }
    let mut text = serde_json::to_string_pretty(record).expect("a record serialises");
    text.push('\n');
    let draft = folder.join("backend.json.draft");
    std::fs::write(&draft, text).map_err(failed)?;
    std::fs::rename(&draft, &path).map_err(failed)
}

/// Where the state of the configuration in `dir` was before, when that is
/// not where `configured` says: the recorded backend; or, with no record,
/// the default local state file when it exists and the configuration now
/// names another place. `None`: nothing moved.
pub fn previous_backend(
    dir: &Path,
    configured: &BackendRecord,
) -> Result<Option<BackendRecord>, String> {
    let previous = match read_record(dir)? {
        Some(recorded) => recorded,
        None if dir.join(DEFAULT_PATH).exists() => BackendRecord::local_default(),
        None => return Ok(None),
    };
    Ok((previous.location() != configured.location()).then_some(previous))
}

/// Refuses a run whose `backend` block no longer names the place its
/// state was kept: it would start from an empty state there.
pub fn check_unmoved(dir: &Path, configured: &BackendRecord) -> Result<(), String> {
    match previous_backend(dir, configured)? {
        None => Ok(()),
        Some(previous) => Err(format!(
            "the backend changed: the state was kept in the {}, and the configuration now names the {}\n  help: `infra init --migrate-state` copies the state there; `infra init --reconfigure` uses the new place as it is (the old state is left alone either way)",
            previous.describe(),
            configured.describe()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(path: Option<&str>) -> BackendRecord {
        let settings = path
            .map(|p| Value::map([("path".to_string(), Value::string(p))].into()))
            .unwrap_or_else(|| Value::map(BTreeMap::new()));
        BackendRecord::of(Some(&("local".to_string(), settings)))
    }

    #[test]
    fn only_a_change_of_place_is_a_move() {
        let default = BackendRecord::of(None);
        assert_eq!(default.location(), local(None).location());
        assert_eq!(
            default.location(),
            local(Some(DEFAULT_PATH)).location(),
            "the default path written out is the same place"
        );
        assert_ne!(default.location(), local(Some("prod.json")).location());
        let mut keyed = local(None);
        keyed
            .settings
            .insert("key_file".into(), serde_json::json!("k"));
        assert_eq!(keyed.location(), default.location(), "a key is not a place");
    }

    #[test]
    fn a_moved_backend_is_refused_until_init_records_it() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let moved = local(Some("states/prod.json"));
        // Nothing recorded and no default state: a first run.
        assert!(check_unmoved(dir, &moved).is_ok());
        // A default state file left behind is where the state was.
        std::fs::write(dir.join(DEFAULT_PATH), "{}").unwrap();
        let refused = check_unmoved(dir, &moved).unwrap_err();
        assert!(
            refused.contains("local state file `infra.state.json`"),
            "{refused}"
        );
        assert!(refused.contains("`states/prod.json`"), "{refused}");
        write_record(dir, &moved).unwrap();
        assert!(check_unmoved(dir, &moved).is_ok());
        assert_eq!(read_record(dir).unwrap(), Some(moved));
        assert_eq!(
            std::fs::read_to_string(dir.join(".infra/.gitignore")).unwrap(),
            "# infra: machine-local, never committed\n*\n"
        );
        assert!(check_unmoved(dir, &local(None)).is_err(), "and back");
    }
}
