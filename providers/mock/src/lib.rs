//! The `mock` provider, for engine tests and benchmarks (not shown to users
//! by default): objects kept in memory, with configurable latency and
//! failure injection, and a store that tests inspect to prove how many real
//! objects exist — no duplicates after a retried apply, no orphans after a
//! destroy.
//!
//! `mock_resource` takes `name`, `value` (anything), `rule` blocks
//! (`port`, `cidr`), `size` (grows in
//! place; shrinking replaces the object, decided by the `plan` hook) and
//! `generation` (forces a replacement), and per object:
//! `latency_ms` and `fail_on` (`"create"`, `"update"`, `"delete"`,
//! `"read"`: that operation fails; for read and delete, the setting of the
//! object as it is in the store counts, so a test can heal an object with
//! `edit_outside_infra`). The provider block may set a default
//! `latency_ms` for every operation. The data source `mock_lookup { name }`
//! finds `id = "found-NAME"` and `value = "value-of-NAME"`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use infra_provider_sdk::*;
use serde_json::{Value, json};

/// How many operations of each kind ran, for assertions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub creates: u64,
    /// Objects read (refreshed).
    pub reads: u64,
    /// Calls that read them: `read_many` reads up to
    /// [`MockProvider::READ_BATCH`] objects in one call.
    pub read_calls: u64,
    pub updates: u64,
    pub deletes: u64,
    /// Data source lookups (`mock_lookup`).
    pub data_reads: u64,
}

#[derive(Default)]
pub struct MockProvider {
    objects: Mutex<BTreeMap<String, Attributes>>,
    next_id: AtomicU64,
    default_latency_ms: AtomicU64,
    counts: Mutex<Counts>,
}

impl MockProvider {
    /// How many objects one `read_many` call takes (like an API that
    /// describes many objects at once).
    pub const READ_BATCH: usize = 50;

    pub fn new() -> MockProvider {
        MockProvider::default()
    }

    /// The objects that exist, by id.
    pub fn objects(&self) -> BTreeMap<String, Attributes> {
        self.objects.lock().expect("store").clone()
    }

    pub fn counts(&self) -> Counts {
        *self.counts.lock().expect("counts")
    }

    /// Removes an object behind infra's back (to test drift).
    pub fn remove_outside_infra(&self, id: &str) -> bool {
        self.objects.lock().expect("store").remove(id).is_some()
    }

    /// Changes an object behind infra's back: sets (or, with `None`,
    /// removes) one attribute. Returns whether the object exists.
    pub fn edit_outside_infra(&self, id: &str, name: &str, value: Option<Value>) -> bool {
        let mut objects = self.objects.lock().expect("store");
        let Some(object) = objects.get_mut(id) else {
            return false;
        };
        match value {
            Some(value) => object.insert(name.to_string(), value),
            None => object.remove(name),
        };
        true
    }

    /// The `fail_on` of the object as it really is (for operations on an
    /// existing object: its own setting decides, not the state's copy).
    fn stored(&self, state: &Attributes) -> Attributes {
        self.objects
            .lock()
            .expect("store")
            .get(&id_of(state))
            .cloned()
            .unwrap_or_default()
    }

    /// What every create and update does first: wait its latency, count
    /// it, fail if told to.
    async fn begin(
        &self,
        config: &Attributes,
        operation: &str,
        bump: impl FnOnce(&mut Counts),
    ) -> Result<(), ProviderError> {
        self.pause(config).await;
        self.count(bump);
        self.injected(config, operation)
    }

    async fn pause(&self, attributes: &Attributes) {
        let millis = attributes
            .get("latency_ms")
            .and_then(Value::as_u64)
            .unwrap_or_else(|| self.default_latency_ms.load(Ordering::Relaxed));
        if millis > 0 {
            tokio::time::sleep(Duration::from_millis(millis)).await;
        }
    }

    fn injected(&self, attributes: &Attributes, operation: &str) -> Result<(), ProviderError> {
        match attributes.get("fail_on").and_then(Value::as_str) {
            Some(failing) if failing == operation => Err(ProviderError::new(format!(
                "injected failure on {operation}"
            ))
            .with_code("MockFailure")
            .at("fail_on")),
            _ => Ok(()),
        }
    }

    fn count(&self, bump: impl FnOnce(&mut Counts)) {
        bump(&mut self.counts.lock().expect("counts"));
    }

    /// A read, without the pause (callers pause once per call).
    fn read_now(&self, request: &ReadRequest) -> Result<ReadResponse, ProviderError> {
        self.count(|c| c.reads += 1);
        self.injected(&self.stored(&request.state), "read")?;
        Ok(ReadResponse {
            state: self
                .objects
                .lock()
                .expect("store")
                .get(&id_of(&request.state))
                .cloned(),
            diagnostics: Vec::new(),
        })
    }
}

fn id_of(state: &Attributes) -> String {
    state
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

impl Provider for MockProvider {
    fn name(&self) -> &'static str {
        "mock"
    }

    fn schema(&self) -> Schema {
        let resource = ResourceSchema::new(
            "an object kept in the mock provider's memory",
            [
                ("name", Attribute::optional(AttributeType::String)),
                ("value", Attribute::optional(AttributeType::Any)),
                ("size", Attribute::optional(AttributeType::Number)),
                (
                    "generation",
                    Attribute::optional(AttributeType::String).force_new(),
                ),
                ("latency_ms", Attribute::optional(AttributeType::Number)),
                ("fail_on", Attribute::optional(AttributeType::String)),
                (
                    "secret",
                    Attribute::optional(AttributeType::String).sensitive(),
                ),
                ("id", Attribute::computed(AttributeType::String)),
            ],
        )
        .with_block(
            "rule",
            ResourceSchema::new(
                "a nested block, for tests of nested and `dynamic` blocks",
                [
                    ("port", Attribute::required(AttributeType::Number)),
                    ("cidr", Attribute::optional(AttributeType::String)),
                ],
            ),
        );
        let lookup = ResourceSchema::new(
            "a lookup: finds `found-NAME` with the value `value-of-NAME` (a NAME starting with `missing` is not found)",
            [
                ("name", Attribute::required(AttributeType::String)),
                ("id", Attribute::computed(AttributeType::String)),
                ("value", Attribute::computed(AttributeType::String)),
            ],
        );
        Schema {
            resources: [("mock_resource".to_string(), resource)].into(),
            data_sources: [("mock_lookup".to_string(), lookup)].into(),
        }
    }

    fn configure(&self, request: ConfigureRequest) -> BoxFuture<'_, Vec<Diagnostic>> {
        Box::pin(async move {
            if let Some(millis) = request.config.get("latency_ms").and_then(Value::as_u64) {
                self.default_latency_ms.store(millis, Ordering::Relaxed);
            }
            Vec::new()
        })
    }

    fn validate(&self, _type_name: &str, config: &Attributes) -> Vec<Diagnostic> {
        match config.get("fail_on").and_then(Value::as_str) {
            Some(operation) if !["create", "read", "update", "delete"].contains(&operation) => {
                vec![
                    Diagnostic::error(format!(
                        "`fail_on` must be create, read, update or delete, not `{operation}`"
                    ))
                    .at("fail_on"),
                ]
            }
            _ => Vec::new(),
        }
    }

    fn read_data(
        &self,
        request: ReadDataRequest,
    ) -> BoxFuture<'_, Result<Attributes, ProviderError>> {
        Box::pin(async move {
            self.count(|c| c.data_reads += 1);
            let name = request
                .config
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if name.starts_with("missing") {
                return Err(ProviderError::new(format!("no lookup named `{name}`"))
                    .with_code("MockNotFound")
                    .at("name"));
            }
            let mut found = request.config;
            found.insert("id".into(), json!(format!("found-{name}")));
            found.insert("value".into(), json!(format!("value-of-{name}")));
            Ok(found)
        })
    }

    /// A `size` can grow in place but not shrink: the schema cannot say
    /// that, so the plan hook does.
    fn plan(&self, request: PlanRequest) -> BoxFuture<'_, PlanResponse> {
        Box::pin(async move {
            let size = |attributes: Option<f64>| attributes.unwrap_or(0.0);
            let before = size(
                request
                    .prior
                    .as_ref()
                    .and_then(|p| p.get("size"))
                    .and_then(Value::as_f64),
            );
            let after = match request.proposed.get("size") {
                Some(Planned::Known(value)) => value.as_f64(),
                _ => None,
            };
            let mut planned = request.proposed;
            let mut requires_replace = Vec::new();
            if request.prior.is_some() && after.is_some_and(|after| after < before) {
                requires_replace.push("size".to_string());
                planned.insert("id".into(), Planned::Unknown);
            }
            PlanResponse {
                planned,
                requires_replace,
                diagnostics: Vec::new(),
            }
        })
    }

    fn create(
        &self,
        request: CreateRequest,
    ) -> BoxFuture<'_, Result<ObjectResponse, ProviderError>> {
        Box::pin(async move {
            self.begin(&request.config, "create", |c| c.creates += 1)
                .await?;
            let id = format!("mock-{}", self.next_id.fetch_add(1, Ordering::Relaxed) + 1);
            let mut state = request.config;
            state.insert("id".into(), json!(id));
            self.objects
                .lock()
                .expect("store")
                .insert(id, state.clone());
            Ok(ObjectResponse::from(state))
        })
    }

    fn read_batch_size(&self, _type_name: &str) -> usize {
        Self::READ_BATCH
    }

    /// One call (one pause) for the whole batch.
    fn read_many(
        &self,
        requests: Vec<ReadRequest>,
    ) -> BoxFuture<'_, Vec<Result<ReadResponse, ProviderError>>> {
        Box::pin(async move {
            if let Some(first) = requests.first() {
                self.pause(&first.state).await;
            }
            self.count(|c| c.read_calls += 1);
            requests
                .into_iter()
                .map(|request| self.read_now(&request))
                .collect()
        })
    }

    fn read(&self, request: ReadRequest) -> BoxFuture<'_, Result<ReadResponse, ProviderError>> {
        Box::pin(async move {
            self.pause(&request.state).await;
            self.count(|c| c.read_calls += 1);
            self.read_now(&request)
        })
    }

    fn update(
        &self,
        request: UpdateRequest,
    ) -> BoxFuture<'_, Result<ObjectResponse, ProviderError>> {
        Box::pin(async move {
            self.begin(&request.config, "update", |c| c.updates += 1)
                .await?;
            let id = id_of(&request.prior);
            let mut objects = self.objects.lock().expect("store");
            if !objects.contains_key(&id) {
                return Err(
                    ProviderError::new(format!("no object {id} to update")).with_code("NotFound")
                );
            }
            let mut state = request.config;
            state.insert("id".into(), json!(id));
            objects.insert(id, state.clone());
            Ok(ObjectResponse::from(state))
        })
    }

    fn delete(&self, request: DeleteRequest) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            self.pause(&request.state).await;
            self.count(|c| c.deletes += 1);
            self.injected(&self.stored(&request.state), "delete")?;
            self.objects
                .lock()
                .expect("store")
                .remove(&id_of(&request.state));
            Ok(())
        })
    }
}
