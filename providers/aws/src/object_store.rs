//! S3 as the engine's state backend needs it: whole objects read with their
//! ETag and written on a condition — created only if absent
//! (`If-None-Match: *`, the lock) or replaced only if unchanged
//! (`If-Match: <etag>`, compare-and-swap saves) — as OpenTofu's S3 backend
//! does. The engine's `backend s3` is built on this; the SDK stays in this
//! crate.

use aws_sdk_s3::error::ProvideErrorMetadata as _;
use aws_sdk_s3::primitives::ByteStream;

use crate::api::Settings;

/// What a write requires of the object it replaces.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Written whatever is there.
    Always,
    /// Created only if no object has the key.
    Absent,
    /// Replaced only if the object still has this ETag.
    Unchanged(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum StoreError {
    /// The condition did not hold (HTTP 412, or 409 for a concurrent
    /// conditional write).
    ConditionFailed,
    /// Anything else, said as the operation, AWS's code and message.
    Failed(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::ConditionFailed => f.write_str("the object changed (precondition failed)"),
            StoreError::Failed(message) => f.write_str(message),
        }
    }
}

/// One bucket.
pub struct ObjectStore {
    client: aws_sdk_s3::Client,
    bucket: String,
}

fn failed<E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static>(
    operation: &str,
    error: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> StoreError {
    let status = error.raw_response().map(|r| r.status().as_u16());
    if matches!(status, Some(412 | 409)) {
        return StoreError::ConditionFailed;
    }
    StoreError::Failed(format!(
        "{operation}: {}{}",
        error.code().map(|c| format!("{c}: ")).unwrap_or_default(),
        error
            .message()
            .map(str::to_string)
            .unwrap_or_else(|| format!(
                "{}",
                aws_sdk_s3::error::DisplayErrorContext(error as &dyn std::error::Error)
            ))
    ))
}

impl ObjectStore {
    /// A client for `bucket`, configured as the AWS provider is (region,
    /// endpoint, the standard credential chain). With an endpoint (moto,
    /// MinIO, LocalStack) objects are addressed by path.
    pub async fn connect(settings: &Settings, bucket: &str) -> ObjectStore {
        let config = crate::api::sdk_config(settings).await;
        let path_style = config.endpoint_url().is_some();
        let client = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(path_style)
                .build(),
        );
        ObjectStore {
            client,
            bucket: bucket.to_string(),
        }
    }

    /// The object and its ETag; none when there is no such object.
    pub async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        let answer = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        let object = match answer {
            Ok(object) => object,
            Err(error)
                if error.as_service_error().is_some_and(
                    aws_sdk_s3::operation::get_object::GetObjectError::is_no_such_key,
                ) =>
            {
                return Ok(None);
            }
            Err(error) => return Err(failed("GetObject", &error)),
        };
        let etag = object.e_tag().unwrap_or_default().to_string();
        let body =
            object.body.collect().await.map_err(|error| {
                StoreError::Failed(format!("GetObject: reading the body: {error}"))
            })?;
        Ok(Some((body.to_vec(), etag)))
    }

    /// Writes the object if `condition` holds; its new ETag.
    pub async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        condition: Condition,
    ) -> Result<String, StoreError> {
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body));
        request = match condition {
            Condition::Always => request,
            Condition::Absent => request.if_none_match("*"),
            Condition::Unchanged(etag) => request.if_match(etag),
        };
        let written = request
            .send()
            .await
            .map_err(|error| failed("PutObject", &error))?;
        Ok(written.e_tag().unwrap_or_default().to_string())
    }

    /// Deletes the object (none there is no error).
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|error| failed("DeleteObject", &error))
    }
}
