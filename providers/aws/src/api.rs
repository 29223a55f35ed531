//! The AWS clients and the one door every call goes through: it counts
//! calls by operation (tests prove refresh is batched) and turns SDK errors
//! into `ProviderError`s that name the operation, AWS's error code and its
//! message. Retries of throttling and 5xx answers (exponential backoff with
//! jitter) are the SDK's standard retry mode, set up in [`Api::connect`].
//!
//! The changes a deployment's fleet makes (instances launched, targets
//! registered and deregistered, listener weights, terminations) are also
//! written, one JSON line each once AWS took them, to the file
//! `INFRA_AWS_CALL_LOG` names, when set: an audit trail of a rollout, which
//! the tests replay to prove a strategy's invariants at every call.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use infra_provider_sdk::ProviderError;

/// Where and how to reach AWS: from the `provider aws { … }` block, else
/// the standard chain (environment, profile, SSO, instance metadata).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    pub region: Option<String>,
    /// An endpoint override (moto, LocalStack); `AWS_ENDPOINT_URL` works
    /// too, through the SDK.
    pub endpoint: Option<String>,
    /// Attempts per call, retries of throttling and 5xx included.
    pub max_attempts: u32,
    /// An access key id and secret, instead of the standard chain (tests).
    pub static_credentials: Option<(String, String)>,
}

pub struct Api {
    pub ec2: aws_sdk_ec2::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    calls: Mutex<BTreeMap<&'static str, u64>>,
    /// `INFRA_AWS_CALL_LOG`, open for appending.
    change_log: Option<Mutex<std::fs::File>>,
    /// How long to wait between polls (instance states, dependencies).
    pub poll: Duration,
}

/// The SDK's configuration for `settings`: region, endpoint, credentials
/// (else the standard chain), the standard retry mode.
pub async fn sdk_config(settings: &Settings) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).retry_config(
        aws_config::retry::RetryConfig::standard().with_max_attempts(settings.max_attempts.max(1)),
    );
    if let Some(region) = &settings.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(endpoint) = &settings.endpoint {
        loader = loader.endpoint_url(endpoint.clone());
    }
    if let Some((key, secret)) = &settings.static_credentials {
        loader = loader.credentials_provider(aws_sdk_ec2::config::Credentials::new(
            key.clone(),
            secret.clone(),
            None,
            None,
            "infra",
        ));
    }
    loader.load().await
}

impl Api {
    pub async fn connect(settings: &Settings) -> Api {
        let config = sdk_config(settings).await;
        // Against a local endpoint (moto), states change at once: poll fast.
        let local = config
            .endpoint_url()
            .is_some_and(|url| url.contains("127.0.0.1") || url.contains("localhost"));
        Api {
            ec2: aws_sdk_ec2::Client::new(&config),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(&config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&config),
            calls: Mutex::new(BTreeMap::new()),
            change_log: std::env::var_os("INFRA_AWS_CALL_LOG").and_then(|path| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .ok()
                    .map(Mutex::new)
            }),
            poll: if local {
                Duration::from_millis(100)
            } else {
                Duration::from_secs(5)
            },
        }
    }

    /// Runs one AWS call: counted, and its error made readable.
    pub async fn call<T, E, R>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, SdkError<E, R>>>,
    ) -> Result<T, ProviderError>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        *self
            .calls
            .lock()
            .expect("calls")
            .entry(operation)
            .or_default() += 1;
        call.await
            .map_err(|error| to_provider_error(operation, &error))
    }

    /// Runs a call that changes something, and writes it to the change
    /// log (see the module's doc) once AWS took it: `{"call": operation,
    /// …detail}`.
    pub async fn change<T, E, R>(
        &self,
        operation: &'static str,
        detail: serde_json::Value,
        call: impl Future<Output = Result<T, SdkError<E, R>>>,
    ) -> Result<T, ProviderError>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let answer = self.call(operation, call).await?;
        self.log_change(operation, detail);
        Ok(answer)
    }

    /// Writes one line to the change log, if there is one.
    pub fn log_change(&self, operation: &str, mut detail: serde_json::Value) {
        let Some(log) = &self.change_log else {
            return;
        };
        if let Some(fields) = detail.as_object_mut() {
            fields.insert("call".into(), operation.into());
        }
        let mut file = log.lock().expect("change log");
        // One write per line, appended: lines from parallel calls do not mix.
        let _ = std::io::Write::write_all(&mut *file, format!("{detail}\n").as_bytes());
    }

    /// Calls made so far, by operation (`DescribeInstances` → 2).
    pub fn calls(&self) -> BTreeMap<&'static str, u64> {
        self.calls.lock().expect("calls").clone()
    }
}

fn to_provider_error<E, R>(operation: &str, error: &SdkError<E, R>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = error.code().map(str::to_string);
    let message = match error {
        SdkError::ServiceError(_) => error
            .message()
            .map(str::to_string)
            .unwrap_or_else(|| "no message".into()),
        // Not an answer from AWS: say what went wrong on the way.
        other => format!(
            "{}",
            aws_sdk_ec2::error::DisplayErrorContext(other as &dyn std::error::Error)
        ),
    };
    let retryable = matches!(
        error,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_)
    ) || code.as_deref().is_some_and(|c| {
        c.contains("Throttl") || c == "RequestLimitExceeded" || c.contains("Unavailable")
    });
    let mut provider_error = ProviderError::new(format!("{operation}: {message}"));
    provider_error.attribute = code
        .as_deref()
        .and_then(attribute_at_fault)
        .map(str::to_string);
    provider_error.code = code;
    provider_error.retryable = retryable;
    provider_error
}

/// The argument an EC2 error code is about, so that infra can point at its
/// value: `InvalidAMIID.NotFound` → `ami`. Only codes that name one
/// argument whatever the resource type; the engine falls back to the
/// resource block when the argument is not set in it.
fn attribute_at_fault(code: &str) -> Option<&'static str> {
    let family = code.split('.').next().unwrap_or(code);
    Some(match family {
        "InvalidAMIID" => "ami",
        "InvalidSubnetID" => "subnet_id",
        "InvalidVpcID" => "vpc_id",
        "InvalidKeyPair" => "key_name",
        "InvalidInstanceType" => "instance_type",
        "InvalidGroup" | "InvalidGroupId" => "vpc_security_group_ids",
        "InvalidSubnet" | "InvalidVpc"
            if code.ends_with(".Range") || code.ends_with(".Conflict") =>
        {
            "cidr_block"
        }
        _ => return None,
    })
}

/// Whether an error is AWS saying the object does not exist.
pub fn is_not_found(error: &ProviderError) -> bool {
    error
        .code
        .as_deref()
        .is_some_and(|code| code.ends_with(".NotFound") || code.ends_with("NotFound"))
}

/// Whether an error is AWS refusing because something still depends on
/// the object (a subnet with instances in it).
pub fn is_dependency_violation(error: &ProviderError) -> bool {
    error
        .code
        .as_deref()
        .is_some_and(|code| code == "DependencyViolation" || code.ends_with("InUse"))
}
