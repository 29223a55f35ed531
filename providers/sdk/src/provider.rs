//! The [`Provider`] trait.

use std::future::Future;
use std::pin::Pin;

use crate::fleet::{Fleet, FleetRequest};
use crate::protocol::*;
use crate::schema::Schema;

/// A future a provider returns; the engine drives it (on tokio).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs a future that completes without waiting — the operations of a
/// provider that does no I/O (random), in tests. Panics if it would wait.
pub fn run_ready<T>(future: impl Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    let waker = std::task::Waker::noop();
    match future
        .as_mut()
        .poll(&mut std::task::Context::from_waker(waker))
    {
        std::task::Poll::Ready(value) => value,
        std::task::Poll::Pending => {
            panic!("run_ready: the future would wait; drive it with an async runtime")
        }
    }
}

/// A provider: the operations on the objects of its resource types.
///
/// The engine guarantees (see README.md): operations on one object are never
/// concurrent; an object is created before it is updated, read or deleted,
/// and the state it passes is what this provider last returned for it;
/// `create` and `update` get fully known values; deletes run only after
/// everything that depended on the object is gone.
///
/// A provider guarantees: the state it returns has every attribute of the
/// schema; `read` reports `None` for an object that no longer exists
/// rather than an error; it retries throttling and transient failures
/// within an operation; an error leaves the object as it was, or reports
/// (in `ProviderError::message`) what it left behind.
pub trait Provider: Send + Sync {
    /// The provider's name: the prefix of its type names (`random`).
    fn name(&self) -> &'static str;

    fn schema(&self) -> Schema;

    /// Applies the `provider NAME { … }` block, before any operation.
    fn configure(&self, _request: ConfigureRequest) -> BoxFuture<'_, Vec<Diagnostic>> {
        Box::pin(async { Vec::new() })
    }

    /// Checks a resource's configuration beyond what the schema says (value
    /// ranges, combinations). Unknown values are absent from `config`.
    fn validate(&self, _type_name: &str, _config: &Attributes) -> Vec<Diagnostic> {
        Vec::new()
    }

    /// Refines a plan; by default the proposal stands.
    fn plan(&self, request: PlanRequest) -> BoxFuture<'_, PlanResponse> {
        Box::pin(async move {
            PlanResponse {
                planned: request.proposed,
                ..PlanResponse::default()
            }
        })
    }

    fn create(
        &self,
        request: CreateRequest,
    ) -> BoxFuture<'_, Result<ObjectResponse, ProviderError>>;

    /// Refresh: what the object really is now.
    fn read(&self, request: ReadRequest) -> BoxFuture<'_, Result<ReadResponse, ProviderError>>;

    /// How many objects of `type_name` one [`Provider::read_many`] call
    /// should get: more than 1 when the remote API describes many objects
    /// in one call (AWS `Describe*`), so that refreshing 200 objects takes
    /// a handful of calls, not 200.
    fn read_batch_size(&self, _type_name: &str) -> usize {
        1
    }

    /// Refresh of several objects of one type: one answer per request, in
    /// order. By default, one [`Provider::read`] after another.
    fn read_many(
        &self,
        requests: Vec<ReadRequest>,
    ) -> BoxFuture<'_, Vec<Result<ReadResponse, ProviderError>>> {
        Box::pin(async move {
            let mut answers = Vec::with_capacity(requests.len());
            for request in requests {
                answers.push(self.read(request).await);
            }
            answers
        })
    }

    fn update(
        &self,
        request: UpdateRequest,
    ) -> BoxFuture<'_, Result<ObjectResponse, ProviderError>>;

    fn delete(&self, request: DeleteRequest) -> BoxFuture<'_, Result<(), ProviderError>>;

    /// Reads a data source (`data aws_ami ubuntu { … }`): a lookup that
    /// creates nothing. Planning calls it as soon as the configuration is
    /// known, apply when it was not. By default, no data sources.
    fn read_data(
        &self,
        request: ReadDataRequest,
    ) -> BoxFuture<'_, Result<Attributes, ProviderError>> {
        Box::pin(async move {
            Err(ProviderError::new(format!(
                "`{}` is not a data source of this provider",
                request.type_name
            )))
        })
    }

    /// The fleet behind a deployment resource (`local_deployment`): the
    /// primitives the engine's rollouts drive. `None` (the default): the
    /// type is not a deployment, and `create`/`update` manage it.
    fn fleet(&self, _request: FleetRequest) -> Option<Result<Box<dyn Fleet + '_>, ProviderError>> {
        None
    }

    /// The run is over: release what the provider holds (connections,
    /// processes it waits for). Nothing is called after it. By default,
    /// nothing to do.
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// Looks for the object of a create that an earlier run started and
    /// never saw finish (killed in between). By default the provider
    /// cannot tell ([`Adoption::Unknown`]), and the engine reports the
    /// address for a person to check.
    fn adopt(&self, _request: AdoptRequest) -> BoxFuture<'_, Result<Adoption, ProviderError>> {
        Box::pin(async { Ok(Adoption::Unknown) })
    }

    /// Adopts an existing object; by default, not supported.
    fn import(
        &self,
        request: ImportRequest,
    ) -> BoxFuture<'_, Result<ObjectResponse, ProviderError>> {
        Box::pin(async move {
            Err(ProviderError::new(format!(
                "`{}` does not support import",
                request.type_name
            )))
        })
    }
}
