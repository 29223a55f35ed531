//! Every provider call, logged: which provider, which operation on what,
//! how long it took and how it ended (`INFRA_LOG=debug`, target
//! `infra::provider`). The registry wraps each provider in one.

use std::sync::Arc;
use std::time::Instant;

use infra_provider_sdk::{
    AdoptRequest, Adoption, Attributes, BoxFuture, ConfigureRequest, CreateRequest, DeleteRequest,
    Diagnostic, Fleet, FleetRequest, ImportRequest, ObjectResponse, PlanRequest, PlanResponse,
    Provider, ProviderError, ReadDataRequest, ReadRequest, ReadResponse, Schema, UpdateRequest,
};

pub struct Logged {
    inner: Arc<dyn Provider>,
}

impl Logged {
    pub fn new(inner: Arc<dyn Provider>) -> Logged {
        Logged { inner }
    }

    /// Runs `call` (an operation on the object at `address`), timed and
    /// logged.
    async fn timed<T>(
        &self,
        operation: &'static str,
        type_name: String,
        address: String,
        call: impl Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        let started = Instant::now();
        let result = call.await;
        self.log(operation, &type_name, &address, started, &result);
        result
    }

    fn log<T>(
        &self,
        operation: &'static str,
        type_name: &str,
        address: &str,
        started: Instant,
        result: &Result<T, ProviderError>,
    ) {
        let (outcome, code, error) = match result {
            Ok(_) => ("succeeded", "", ""),
            Err(error) => (
                "failed",
                error.code.as_deref().unwrap_or(""),
                error.message.as_str(),
            ),
        };
        tracing::debug!(
            target: "infra::provider",
            provider = self.inner.name(),
            operation,
            type_name,
            address,
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            code,
            error,
            "provider call {outcome}"
        );
    }
}

/// The operations on one object, each timed and logged with the object's
/// type and address.
macro_rules! on_an_object {
    ($($operation:ident($request:ty) -> $response:ty;)*) => {$(
        fn $operation(&self, request: $request) -> BoxFuture<'_, Result<$response, ProviderError>> {
            let (type_name, address) =
                (request.type_name.clone(), request.identity.address.clone());
            Box::pin(self.timed(
                stringify!($operation),
                type_name,
                address,
                self.inner.$operation(request),
            ))
        }
    )*};
}

impl Provider for Logged {
    on_an_object! {
        create(CreateRequest) -> ObjectResponse;
        read(ReadRequest) -> ReadResponse;
        update(UpdateRequest) -> ObjectResponse;
        delete(DeleteRequest) -> ();
        import(ImportRequest) -> ObjectResponse;
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn schema(&self) -> Schema {
        self.inner.schema()
    }

    fn configure(&self, request: ConfigureRequest) -> BoxFuture<'_, Vec<Diagnostic>> {
        Box::pin(async move {
            let started = Instant::now();
            let problems = self.inner.configure(request).await;
            tracing::debug!(
                target: "infra::provider",
                provider = self.inner.name(),
                operation = "configure",
                elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                problems = problems.len(),
                "provider configured"
            );
            problems
        })
    }

    fn validate(&self, type_name: &str, config: &Attributes) -> Vec<Diagnostic> {
        self.inner.validate(type_name, config)
    }

    fn plan(&self, request: PlanRequest) -> BoxFuture<'_, PlanResponse> {
        Box::pin(async move {
            let started = Instant::now();
            let (type_name, address) =
                (request.type_name.clone(), request.identity.address.clone());
            let response = self.inner.plan(request).await;
            self.log::<()>("plan", &type_name, &address, started, &Ok(()));
            response
        })
    }

    fn read_batch_size(&self, type_name: &str) -> usize {
        self.inner.read_batch_size(type_name)
    }

    fn read_many(
        &self,
        requests: Vec<ReadRequest>,
    ) -> BoxFuture<'_, Vec<Result<ReadResponse, ProviderError>>> {
        Box::pin(async move {
            let started = Instant::now();
            let type_name = requests
                .first()
                .map(|r| r.type_name.clone())
                .unwrap_or_default();
            let count = requests.len();
            let answers = self.inner.read_many(requests).await;
            tracing::debug!(
                target: "infra::provider",
                provider = self.inner.name(),
                operation = "read_many",
                type_name,
                objects = count,
                failed = answers.iter().filter(|a| a.is_err()).count(),
                elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                "provider call finished"
            );
            answers
        })
    }

    fn read_data(
        &self,
        request: ReadDataRequest,
    ) -> BoxFuture<'_, Result<Attributes, ProviderError>> {
        let type_name = request.type_name.clone();
        Box::pin(self.timed(
            "read_data",
            type_name,
            String::new(),
            self.inner.read_data(request),
        ))
    }

    fn adopt(&self, request: AdoptRequest) -> BoxFuture<'_, Result<Adoption, ProviderError>> {
        let (type_name, address) = (request.type_name.clone(), request.identity.address.clone());
        Box::pin(self.timed("adopt", type_name, address, self.inner.adopt(request)))
    }

    fn fleet(&self, request: FleetRequest) -> Option<Result<Box<dyn Fleet + '_>, ProviderError>> {
        tracing::debug!(target: "infra::provider", provider = self.inner.name(), address = %request.identity.address, "fleet");
        self.inner.fleet(request)
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.inner.close().await;
            tracing::debug!(target: "infra::provider", provider = self.inner.name(), "provider closed");
        })
    }
}
