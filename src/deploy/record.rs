//! Where a rollout stands, recorded in the state as the deployment's
//! `rollout` attribute while it runs, when it waits at a manual gate and
//! after it was rolled back: the next `apply` resumes it from its step,
//! `plan` shows it, `infra rollout status` prints it. A rollout that
//! finished leaves no record.

use serde_json::{Value, json};

/// What the rollout is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Running,
    /// At a manual gate: `infra rollout promote` continues it, `abort`
    /// rolls it back.
    Paused,
    /// It failed and the previous version serves again.
    RolledBack,
    /// It failed and was left as it was (`auto_rollback = false`, or the
    /// rollback failed too).
    Failed,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Paused => "paused",
            Status::RolledBack => "rolled_back",
            Status::Failed => "failed",
        }
    }

    fn from_name(name: &str) -> Option<Status> {
        [
            Status::Running,
            Status::Paused,
            Status::RolledBack,
            Status::Failed,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

/// A rollout's record.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutRecord {
    pub status: Status,
    pub strategy: String,
    /// The version rolled out (the fleet's version id).
    pub to: String,
    /// The step it is at (a canary's step; blue/green: 0 before the
    /// switch, 1 after), of `steps`.
    pub step: usize,
    pub steps: usize,
    /// Where it stands, for people: "step 2 of 3: weight 25% to the new
    /// version".
    pub at: String,
    /// The latest analysis readings, oldest first (at most
    /// [`RolloutRecord::READINGS`]).
    pub readings: Vec<String>,
}

impl RolloutRecord {
    pub const READINGS: usize = 5;

    /// The name of the deployment's attribute that holds it.
    pub const ATTRIBUTE: &'static str = "rollout";

    pub fn to_json(&self) -> Value {
        json!({
            "status": self.status.name(),
            "strategy": self.strategy,
            "to": self.to,
            "step": self.step,
            "steps": self.steps,
            "at": self.at,
            "readings": self.readings,
        })
    }

    pub fn from_json(value: &Value) -> Option<RolloutRecord> {
        Some(RolloutRecord {
            status: Status::from_name(value["status"].as_str()?)?,
            strategy: value["strategy"].as_str()?.to_string(),
            to: value["to"].as_str()?.to_string(),
            step: usize::try_from(value["step"].as_u64()?).ok()?,
            steps: usize::try_from(value["steps"].as_u64()?).ok()?,
            at: value["at"].as_str().unwrap_or_default().to_string(),
            readings: value["readings"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .filter_map(|r| r.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// The record in a deployment's recorded attributes, if any.
    pub fn of(attributes: &infra_provider_sdk::Attributes) -> Option<RolloutRecord> {
        attributes.get(Self::ATTRIBUTE).and_then(Self::from_json)
    }

    /// One line for people: "paused at step 2 of 3 (weight 25% …)".
    pub fn summary(&self) -> String {
        let status = match self.status {
            Status::Running => "running",
            Status::Paused => "paused",
            Status::RolledBack => "rolled back",
            Status::Failed => "failed",
        };
        format!(
            "{} rollout {status} at step {} of {}: {}",
            self.strategy,
            self.step + 1,
            self.steps.max(1),
            self.at
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_as_written() {
        let record = RolloutRecord {
            status: Status::Paused,
            strategy: "canary".into(),
            to: "abc".into(),
            step: 1,
            steps: 3,
            at: "weight 25% to the new version".into(),
            readings: vec!["passed: error rate 0.000 over 120 requests".into()],
        };
        assert_eq!(
            RolloutRecord::from_json(&record.to_json()),
            Some(record.clone())
        );
        assert_eq!(
            record.summary(),
            "canary rollout paused at step 2 of 3: weight 25% to the new version"
        );
        assert_eq!(RolloutRecord::from_json(&json!({"status": "odd"})), None);
    }
}
