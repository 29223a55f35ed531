//! The state key from AWS KMS (`backend { kms_key_id = "alias/…" }`),
//! through the AWS crate (see `infra_provider_aws::kms`): one
//! `GenerateMac` call per run, with the backend's region and endpoint or
//! the standard AWS chain.

use super::sealing::KeySource;

/// The key the KMS HMAC key `key_id` gives the state.
pub fn state_key(
    key_id: &str,
    region: Option<String>,
    endpoint: Option<String>,
) -> Result<KeySource, String> {
    let settings = infra_provider_aws::Settings {
        region,
        endpoint,
        max_attempts: 3,
        static_credentials: None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the KMS client: {error}"))?;
    // On a thread of its own: the caller may be inside a runtime already.
    let key = std::thread::scope(|scope| {
        scope
            .spawn(|| runtime.block_on(infra_provider_aws::kms::state_key(&settings, key_id)))
            .join()
            .expect("asking KMS does not panic")
    })?;
    Ok(KeySource::Key(key))
}
