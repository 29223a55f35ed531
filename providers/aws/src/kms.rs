//! A state key from AWS KMS, for the engine's sealing of secrets
//! (`backend { kms_key_id = … }`): KMS computes HMAC-SHA-256 of a fixed
//! message with an HMAC key (`HMAC_256`, usage `GENERATE_VERIFY_MAC`), and
//! that MAC is the key the state is sealed with. The key material never
//! leaves KMS; whoever may call `kms:GenerateMac` on the key may open the
//! state. The same key gives the same state key every time, so no wrapped
//! key has to be stored beside the state, and unchanged secrets keep their
//! bytes.

use aws_sdk_kms::error::ProvideErrorMetadata as _;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::MacAlgorithmSpec;

use crate::api::Settings;

/// What KMS is asked to sign; versioned so that a new scheme never yields
/// an old key.
pub const STATE_KEY_MESSAGE: &[u8] = b"infra-state-key/1";

/// The 32-byte state key the KMS HMAC key `key_id` (an id, ARN or
/// `alias/…`) gives.
pub async fn state_key(settings: &Settings, key_id: &str) -> Result<[u8; 32], String> {
    let config = crate::api::sdk_config(settings).await;
    let client = aws_sdk_kms::Client::new(&config);
    let answer = client
        .generate_mac()
        .key_id(key_id)
        .mac_algorithm(MacAlgorithmSpec::HmacSha256)
        .message(Blob::new(STATE_KEY_MESSAGE))
        .send()
        .await
        .map_err(|error| {
            format!(
                "KMS GenerateMac with `{key_id}`: {}",
                error
                    .as_service_error()
                    .and_then(|e| e
                        .message()
                        .map(|m| format!("{}: {m}", e.code().unwrap_or("error"))))
                    .unwrap_or_else(|| aws_sdk_kms::error::DisplayErrorContext(&error).to_string())
            )
        })?;
    let mac = answer
        .mac()
        .ok_or_else(|| format!("KMS GenerateMac with `{key_id}` returned no MAC"))?;
    mac.as_ref().try_into().map_err(|_| {
        format!(
            "KMS key `{key_id}` gave a {}-byte MAC, not 32\n  help: use an HMAC_256 key (key usage GENERATE_VERIFY_MAC)",
            mac.as_ref().len()
        )
    })
}
