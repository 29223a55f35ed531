//! The `local` provider: objects on this machine, no cloud account needed.
//!
//! - `local_file` (`file.rs`): a file and its content.
//! - `local_lb` (`load_balancer.rs`): infra's own HTTP load balancer, a
//!   process that outlives infra (its code is in `lb/`).
//! - `local_deployment` (`fleet.rs`): what a `deployment` block with
//!   `provider = local` becomes: instances as processes behind a `local_lb`.
//! - `local_prometheus` (`prometheus/`): a Prometheus server scraping what
//!   its `scrape` references, with the `alert` rules written beside it;
//!   `local_alertmanager` sends the alerts it fires to webhooks.
//!
//! `runtime/` holds what they share: the runtime directory `.infra/` next to
//! the configuration, processes known by pid and start time, and a small
//! HTTP client.

mod file;
mod fleet;
pub mod lb;
pub mod load_balancer;
pub mod prometheus;
pub mod runtime;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::RwLock;

use infra_provider_sdk::*;

use runtime::RuntimeDir;

pub struct LocalProvider {
    /// The configuration's directory (from `configure`).
    directory: RwLock<PathBuf>,
    /// What runs a load balancer: a program and its leading arguments.
    lb_program: Vec<PathBuf>,
}

impl Default for LocalProvider {
    fn default() -> LocalProvider {
        LocalProvider::new()
    }
}

impl LocalProvider {
    /// The provider as the `infra` binary has it: load balancers are
    /// `infra local-lb …`, this very executable.
    pub fn new() -> LocalProvider {
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("infra"));
        LocalProvider::with_lb_program(vec![exe, PathBuf::from("local-lb")])
    }

    /// A provider that runs load balancers with another program (which
    /// must take `--listen ADDR --dir DIR`, as `infra local-lb` does).
    pub fn with_lb_program(lb_program: Vec<PathBuf>) -> LocalProvider {
        LocalProvider {
            directory: RwLock::new(std::env::current_dir().unwrap_or_default()),
            lb_program,
        }
    }

    fn directory(&self) -> PathBuf {
        self.directory.read().unwrap().clone()
    }

    fn runtime(&self) -> RuntimeDir {
        RuntimeDir::new(&self.directory())
    }
}

fn unknown_type(type_name: &str) -> ProviderError {
    ProviderError::new(format!("the local provider has no `{type_name}`"))
}

impl Provider for LocalProvider {
    fn name(&self) -> &'static str {
        "local"
    }

    fn schema(&self) -> Schema {
        Schema {
            resources: [
                ("local_file".to_string(), file::schema()),
                ("local_lb".to_string(), load_balancer::schema()),
                ("local_deployment".to_string(), fleet::schema()),
                ("local_prometheus".to_string(), prometheus::schema()),
                (
                    "local_alertmanager".to_string(),
                    prometheus::alertmanager::schema(),
                ),
            ]
            .into(),
            data_sources: BTreeMap::new(),
        }
    }

    fn configure(&self, request: ConfigureRequest) -> BoxFuture<'_, Vec<Diagnostic>> {
        Box::pin(async move {
            if !request.directory.as_os_str().is_empty() {
                let directory =
                    std::path::absolute(&request.directory).unwrap_or(request.directory);
                *self.directory.write().unwrap() = directory;
            }
            Vec::new()
        })
    }

    fn validate(&self, type_name: &str, config: &Attributes) -> Vec<Diagnostic> {
        match type_name {
            "local_file" => file::validate(config),
            "local_lb" => load_balancer::validate(config),
            "local_deployment" => fleet::validate(config),
            "local_prometheus" => prometheus::validate(config),
            "local_alertmanager" => prometheus::alertmanager::validate(config),
            _ => Vec::new(),
        }
    }

    /// A load balancer's unset settings are planned as their defaults, not
    /// as values known only after apply.
    fn plan(&self, request: PlanRequest) -> BoxFuture<'_, PlanResponse> {
        Box::pin(async move {
            let mut planned = request.proposed;
            match request.type_name.as_str() {
                "local_lb" => load_balancer::plan_defaults(&mut planned),
                "local_prometheus" => prometheus::plan_defaults(&mut planned),
                "local_alertmanager" => prometheus::alertmanager::plan_defaults(&mut planned),
                _ => {}
            }
            PlanResponse {
                planned,
                ..PlanResponse::default()
            }
        })
    }

    fn create(
        &self,
        request: CreateRequest,
    ) -> BoxFuture<'_, Result<ObjectResponse, ProviderError>> {
        Box::pin(async move {
            let state = match request.type_name.as_str() {
                "local_file" => file::create(&request.config)?,
                "local_lb" => {
                    load_balancer::create(&self.runtime(), &self.lb_program, &request.config)
                        .await?
                }
                "local_deployment" => return Err(rolled_out_by_the_engine()),
                "local_prometheus" => {
                    prometheus::create::<prometheus::Prometheus>(&self.runtime(), &request.config)
                        .await?
                }
                "local_alertmanager" => {
                    prometheus::create::<prometheus::alertmanager::Alertmanager>(
                        &self.runtime(),
                        &request.config,
                    )
                    .await?
                }
                other => return Err(unknown_type(other)),
            };
            Ok(ObjectResponse::from(state))
        })
    }

    fn read(&self, request: ReadRequest) -> BoxFuture<'_, Result<ReadResponse, ProviderError>> {
        Box::pin(async move {
            let state = match request.type_name.as_str() {
                "local_file" => file::read(request.state)?,
                "local_lb" => load_balancer::read(&self.runtime(), request.state).await,
                "local_deployment" => Some(fleet::read(&self.runtime(), request.state).await),
                "local_prometheus" | "local_alertmanager" => prometheus::read(request.state).await,
                other => return Err(unknown_type(other)),
            };
            Ok(ReadResponse::from(state))
        })
    }

    fn update(
        &self,
        request: UpdateRequest,
    ) -> BoxFuture<'_, Result<ObjectResponse, ProviderError>> {
        Box::pin(async move {
            let state = match request.type_name.as_str() {
                "local_file" => file::update(&request.prior, request.config)?,
                "local_deployment" => return Err(rolled_out_by_the_engine()),
                // `listen` replaces it; its settings change in place.
                "local_lb" => {
                    load_balancer::update(&self.runtime(), &request.prior, request.config).await?
                }
                "local_prometheus" => {
                    prometheus::update::<prometheus::Prometheus>(
                        &self.runtime(),
                        &request.prior,
                        request.config,
                    )
                    .await?
                }
                "local_alertmanager" => {
                    prometheus::update::<prometheus::alertmanager::Alertmanager>(
                        &self.runtime(),
                        &request.prior,
                        request.config,
                    )
                    .await?
                }
                other => return Err(unknown_type(other)),
            };
            Ok(ObjectResponse::from(state))
        })
    }

    fn delete(&self, request: DeleteRequest) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            match request.type_name.as_str() {
                "local_file" => file::delete(&request.state),
                "local_lb" => {
                    load_balancer::delete(&self.runtime(), &request.state).await;
                    Ok(())
                }
                "local_prometheus" | "local_alertmanager" => {
                    prometheus::delete(&request.state).await;
                    Ok(())
                }
                "local_deployment" => {
                    fleet::delete(
                        &self.runtime(),
                        &self.directory(),
                        &request.identity.address,
                        &request.state,
                    )
                    .await
                }
                other => Err(unknown_type(other)),
            }
        })
    }

    /// A `local_deployment`'s instances, for the engine's rollouts.
    fn fleet(&self, request: FleetRequest) -> Option<Result<Box<dyn Fleet + '_>, ProviderError>> {
        (request.type_name == "local_deployment").then(|| {
            fleet::LocalFleet::new(&self.runtime(), &self.directory(), &request)
                .map(|fleet| Box::new(fleet) as Box<dyn Fleet>)
        })
    }

    /// A file is found by its path. Nothing else needs recording now: a
    /// deployment's instances are found by its fleet's journal when it is
    /// rolled out again, and the create of a load balancer adopts the one
    /// already running on its `listen`.
    fn adopt(&self, request: AdoptRequest) -> BoxFuture<'_, Result<Adoption, ProviderError>> {
        Box::pin(async move {
            Ok(match request.type_name.as_str() {
                "local_file" => match file::read(request.config)? {
                    Some(state) => Adoption::Found(state),
                    None => Adoption::Absent,
                },
                "local_deployment" | "local_lb" | "local_prometheus" | "local_alertmanager" => {
                    Adoption::Absent
                }
                _ => Adoption::Unknown,
            })
        })
    }

    /// `infra import local_file.x PATH` adopts an existing file.
    fn import(
        &self,
        request: ImportRequest,
    ) -> BoxFuture<'_, Result<ObjectResponse, ProviderError>> {
        Box::pin(async move {
            if request.type_name != "local_file" {
                return Err(ProviderError::new(format!(
                    "`{}` cannot be imported: infra starts its processes itself",
                    request.type_name
                ))
                .with_code("NotImportable"));
            }
            Ok(ObjectResponse::from(file::import(&request.id)?))
        })
    }
}

/// A deployment is created and updated by the engine through its fleet
/// ([`Provider::fleet`]), never by `create`/`update`.
fn rolled_out_by_the_engine() -> ProviderError {
    ProviderError::new("a local_deployment is rolled out by the engine through its fleet")
        .with_code("NotSupported")
}
