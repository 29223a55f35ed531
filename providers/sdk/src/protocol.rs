//! Requests, responses and errors. Attribute values are JSON, as in the
//! state file; during planning a value may also be unknown.

use std::collections::BTreeMap;
use std::fmt;

/// Attribute values by name: what the configuration asks for, or what the
/// provider reports an object to be (and the state records).
pub type Attributes = BTreeMap<String, serde_json::Value>;

/// A value during planning: known, or known only after apply.
#[derive(Debug, Clone, PartialEq)]
pub enum Planned {
    Known(serde_json::Value),
    Unknown,
}

pub type PlannedAttributes = BTreeMap<String, Planned>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// A problem a provider reports about a configuration or an operation. The
/// engine adds the resource's address and source span when it shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Short, lowercase: "`port` must be between 1 and 65535".
    pub summary: String,
    /// How to fix it, if the provider knows.
    pub help: Option<String>,
    /// The attribute at fault, so the engine can point at its value.
    pub attribute: Option<String>,
}

impl Diagnostic {
    pub fn error(summary: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            summary: summary.into(),
            help: None,
            attribute: None,
        }
    }

    pub fn at(mut self, attribute: &str) -> Diagnostic {
        self.attribute = Some(attribute.to_string());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }
}

/// An operation that failed. The engine reports it with the resource's
/// address and the operation; `code` is the remote API's error code, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderError {
    pub message: String,
    pub code: Option<String>,
    /// The argument at fault (`ami`), when the provider can tell: the
    /// engine then points at its value in the configuration.
    pub attribute: Option<String>,
    /// Whether trying the same operation again may succeed (throttling, a
    /// 5xx answer). Providers retry within an operation themselves; this
    /// tells the engine what to say.
    pub retryable: bool,
}

impl ProviderError {
    pub fn new(message: impl Into<String>) -> ProviderError {
        ProviderError {
            message: message.into(),
            code: None,
            attribute: None,
            retryable: false,
        }
    }

    pub fn with_code(mut self, code: impl Into<String>) -> ProviderError {
        self.code = Some(code.into());
        self
    }

    /// Names the argument at fault.
    pub fn at(mut self, attribute: impl Into<String>) -> ProviderError {
        self.attribute = Some(attribute.into());
        self
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{code}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ProviderError {}

/// The provider's own settings (the `provider NAME { … }` block).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigureRequest {
    pub config: Attributes,
    /// The configuration's directory: where relative paths in the
    /// settings point, and where a provider keeps the files it needs
    /// between runs (the local provider's `.infra/`).
    pub directory: std::path::PathBuf,
}

/// Identifies the object an operation is about, for tagging and messages.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectIdentity {
    /// `module.net.aws_subnet.public[0]`.
    pub address: String,
    /// The state's lineage: objects are tagged with it and the address, so
    /// that the ones a crashed apply created can be found.
    pub lineage: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanRequest {
    pub type_name: String,
    pub identity: ObjectIdentity,
    /// What the state records (none for a new object).
    pub prior: Option<Attributes>,
    /// What the engine proposes: configured values, the prior values of
    /// attributes the provider computes, unknowns where it cannot know.
    pub proposed: PlannedAttributes,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanResponse {
    /// The provider's refinement of `proposed` (defaults it fills in,
    /// values it knows will change); the engine uses this as the plan.
    pub planned: PlannedAttributes,
    /// Attributes whose change needs a replacement beyond those the schema
    /// marks `force_new` (e.g. only when shrinking a disk).
    pub requires_replace: Vec<String>,
    pub diagnostics: Vec<Diagnostic>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreateRequest {
    pub type_name: String,
    pub identity: ObjectIdentity,
    /// Every value known: the engine resolves unknowns before applying.
    pub config: Attributes,
    /// Where a long operation says what it is doing (a rollout's steps).
    pub progress: Progress,
}

/// Where a long operation reports what it is doing now, for the people
/// watching the run (the engine shows each report beside the change in
/// flight, and in `--json` events): "step 1 of 3: 25% to the new version".
/// Reporting is optional; a default `Progress` discards.
#[derive(Clone, Default)]
pub struct Progress(Option<std::sync::Arc<Report>>);

/// What a [`Progress`] calls with each message.
type Report = dyn Fn(&str) + Send + Sync;

impl Progress {
    pub fn new(report: impl Fn(&str) + Send + Sync + 'static) -> Progress {
        Progress(Some(std::sync::Arc::new(report)))
    }

    pub fn report(&self, message: &str) {
        if let Some(report) = &self.0 {
            report(message);
        }
    }
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(reported)"
        } else {
            "Progress(none)"
        })
    }
}

/// Requests compare by what they ask for; where progress goes is not part
/// of that.
impl PartialEq for Progress {
    fn eq(&self, _: &Progress) -> bool {
        true
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectResponse {
    /// The object as it now is: every attribute of the schema.
    pub state: Attributes,
    pub diagnostics: Vec<Diagnostic>,
}

impl From<Attributes> for ObjectResponse {
    /// The object, without diagnostics.
    fn from(state: Attributes) -> Self {
        ObjectResponse {
            state,
            diagnostics: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReadRequest {
    pub type_name: String,
    pub identity: ObjectIdentity,
    /// What the state records; refresh reports what really is.
    pub state: Attributes,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadResponse {
    /// `None`: the object no longer exists (drift: it will be re-created).
    pub state: Option<Attributes>,
    pub diagnostics: Vec<Diagnostic>,
}

impl From<Option<Attributes>> for ReadResponse {
    /// The object found (or `None`: gone), without diagnostics.
    fn from(state: Option<Attributes>) -> Self {
        ReadResponse {
            state,
            diagnostics: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateRequest {
    pub type_name: String,
    pub identity: ObjectIdentity,
    pub prior: Attributes,
    pub config: Attributes,
    /// See [`CreateRequest::progress`].
    pub progress: Progress,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeleteRequest {
    pub type_name: String,
    pub identity: ObjectIdentity,
    pub state: Attributes,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImportRequest {
    pub type_name: String,
    pub identity: ObjectIdentity,
    /// The provider's id of an existing object (`vpc-0abc…`).
    pub id: String,
}

/// A create an earlier run started but did not see finish (it was killed
/// between asking the provider and recording the answer): is the object
/// there?
#[derive(Debug, Clone, PartialEq)]
pub struct AdoptRequest {
    pub type_name: String,
    /// The address and lineage the object was created for (what AWS tags
    /// it with).
    pub identity: ObjectIdentity,
    /// The arguments the create was given.
    pub config: Attributes,
}

/// What a provider found for an [`AdoptRequest`].
#[derive(Debug, Clone, PartialEq)]
pub enum Adoption {
    /// The object exists: its state, recorded as if the create had
    /// returned it.
    Found(Attributes),
    /// The provider is sure there is no such object (nothing outside the
    /// state, as with `random_id`, or looked up and missing).
    Absent,
    /// The provider cannot tell: the engine reports the address so that a
    /// person can look and `infra import` it.
    Unknown,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReadDataRequest {
    pub type_name: String,
    /// Every value known.
    pub config: Attributes,
}
