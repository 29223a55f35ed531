//! [`OperationFailure`]: a provider call that failed, as the engine
//! reports it — which operation on which object, the provider's error code
//! and message, and the attribute at fault when the provider knows it, so
//! that the CLI can point at that attribute's value.

use std::fmt;

use infra_provider_sdk::ProviderError;

/// What was asked of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Read,
    Update,
    Delete,
    Import,
    ReadData,
}

impl Operation {
    /// `create`, `read`, …: as the summary and the JSON events name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Read => "read",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::Import => "import",
            Operation::ReadData => "read data",
        }
    }
}

/// A failed operation on the object at `address`.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationFailure {
    pub operation: Operation,
    pub address: String,
    /// The remote API's error code (`InvalidAMIID.NotFound`), if any.
    pub code: Option<String>,
    pub message: String,
    /// The argument at fault, when the provider says.
    pub attribute: Option<String>,
    /// Whether trying again may succeed (throttling, a 5xx answer).
    pub retryable: bool,
}

impl OperationFailure {
    pub fn from_provider(
        operation: Operation,
        address: &str,
        error: ProviderError,
    ) -> OperationFailure {
        OperationFailure {
            operation,
            address: address.to_string(),
            code: error.code,
            message: error.message,
            attribute: error.attribute,
            retryable: error.retryable,
        }
    }

    /// A failure of the engine's own around a provider call (no provider,
    /// an evaluation that failed): no code, no attribute.
    pub fn engine(
        operation: Operation,
        address: &str,
        message: impl Into<String>,
    ) -> OperationFailure {
        OperationFailure {
            operation,
            address: address.to_string(),
            code: None,
            message: message.into(),
            attribute: None,
            retryable: false,
        }
    }

    /// `InvalidAMIID.NotFound: the image id 'ami-x' does not exist`: the
    /// code (when there is one) and the message.
    pub fn reason(&self) -> String {
        match &self.code {
            Some(code) => format!("{code}: {}", self.message),
            None => self.message.clone(),
        }
    }
}

impl fmt::Display for OperationFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason())
    }
}
