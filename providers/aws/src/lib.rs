//! infra's AWS provider: EC2 through the official Rust SDK.
//!
//! Resource types (one module each): `aws_vpc`, `aws_subnet`,
//! `aws_internet_gateway`, `aws_route_table`, `aws_security_group`,
//! `aws_key_pair`, `aws_instance`, `aws_eip`, and Elastic Load Balancing's
//! `aws_lb`, `aws_lb_target_group`, `aws_lb_listener`,
//! `aws_lb_target_group_attachment` (`load_balancer.rs`); data sources (`data.rs`):
//! `aws_ami`, `aws_availability_zones`, `aws_vpc`; and `aws_deployment`
//! (`fleet.rs`), what a `deployment` block with `provider = aws` becomes:
//! the engine rolls it out through the SDK's `Fleet`, its analysis reading
//! CloudWatch (`metrics.rs`). Each
//! module says how to create, read (many at once), update and delete its
//! objects; this file holds what they share:
//! - every object is tagged `infra:address` and `infra:lineage`;
//! - after a create or update the object is read back, so the state is
//!   what AWS reports (read-backs in flight together share a Describe
//!   call: `read_back.rs`; an instance's is its wait until it runs) —
//!   except where the create's own answers already tell the whole state
//!   (VPCs, subnets, security groups: `values::Created`);
//! - refresh reads up to 100 objects of a type in one Describe call;
//! - a delete that AWS refuses because something still depends on the
//!   object (`DependencyViolation`) is retried for up to 5 minutes, and one
//!   of an object already gone succeeds;
//! - credentials and region come from the standard chain, the endpoint
//!   from `AWS_ENDPOINT_URL` or `provider aws { endpoint = … }`.
//!
//! `object_store.rs` is S3 for the engine's `backend s3`: objects read
//! with their ETag and written on a condition (absent, or unchanged).

mod api;
mod data;
mod eip;
mod fleet;
mod instance;
mod internet_gateway;
mod key_pair;
pub mod kms;
mod load_balancer;
mod metrics;
pub mod object_store;
mod read_back;
mod route_table;
mod security_group;
mod subnet;
mod values;
mod vpc;

use crate::values::{Created, Found};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use infra_provider_sdk::*;
use tokio::sync::OnceCell;

pub use api::Settings;
/// The SDK crates, for tests that look at AWS behind infra's back.
pub use {
    aws_config, aws_sdk_cloudwatch, aws_sdk_ec2, aws_sdk_elasticloadbalancingv2, aws_sdk_kms,
    aws_sdk_s3,
};

/// The type a `deployment` block with `provider = aws` becomes.
const DEPLOYMENT: &str = "aws_deployment";

/// How many objects one refresh call describes.
const READ_BATCH: usize = 100;
/// How long a delete waits for what depends on the object to go.
const DEPENDENCY_WAIT: Duration = Duration::from_secs(300);

#[derive(Default)]
pub struct AwsProvider {
    settings: std::sync::Mutex<Option<Settings>>,
    api: OnceCell<Arc<api::Api>>,
    read_backs: Arc<read_back::ReadBacks>,
}

/// `tags`: a map of strings, changed in place everywhere.
pub(crate) fn tags_attribute() -> Attribute {
    Attribute::optional(AttributeType::Map(Box::new(AttributeType::String)))
        .describe("changed in place; infra adds `infra:address` and `infra:lineage`")
}

/// The resource types, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Vpc,
    Subnet,
    SecurityGroup,
    InternetGateway,
    RouteTable,
    KeyPair,
    Instance,
    Eip,
    LoadBalancer,
    TargetGroup,
    Listener,
    Attachment,
}

impl Kind {
    fn of(type_name: &str) -> Result<Kind, ProviderError> {
        Ok(match type_name {
            "aws_vpc" => Kind::Vpc,
            "aws_subnet" => Kind::Subnet,
            "aws_security_group" => Kind::SecurityGroup,
            "aws_internet_gateway" => Kind::InternetGateway,
            "aws_route_table" => Kind::RouteTable,
            "aws_key_pair" => Kind::KeyPair,
            "aws_instance" => Kind::Instance,
            "aws_eip" => Kind::Eip,
            "aws_lb" => Kind::LoadBalancer,
            "aws_lb_target_group" => Kind::TargetGroup,
            "aws_lb_listener" => Kind::Listener,
            "aws_lb_target_group_attachment" => Kind::Attachment,
            other => {
                return Err(ProviderError::new(format!(
                    "the aws provider has no resource type `{other}`"
                )));
            }
        })
    }
}

impl Kind {
    /// The `resource-type` of DescribeTags for the EC2 objects infra tags;
    /// `None` for those it does not find that way.
    fn tagged_resource_type(self) -> Option<&'static str> {
        Some(match self {
            Kind::Vpc => "vpc",
            Kind::Subnet => "subnet",
            Kind::SecurityGroup => "security-group",
            Kind::InternetGateway => "internet-gateway",
            Kind::RouteTable => "route-table",
            Kind::KeyPair => "key-pair",
            Kind::Instance => "instance",
            Kind::Eip => "elastic-ip",
            Kind::LoadBalancer | Kind::TargetGroup | Kind::Listener | Kind::Attachment => {
                return None;
            }
        })
    }
}

impl AwsProvider {
    pub fn new() -> AwsProvider {
        AwsProvider::default()
    }

    /// A provider with these settings (tests; the CLI uses the provider
    /// block).
    pub fn with_settings(settings: Settings) -> AwsProvider {
        AwsProvider {
            settings: std::sync::Mutex::new(Some(settings)),
            ..AwsProvider::default()
        }
    }

    /// The AWS clients, made at the first call.
    async fn api(&self) -> Arc<api::Api> {
        self.api
            .get_or_init(|| async {
                let settings =
                    self.settings
                        .lock()
                        .expect("settings")
                        .clone()
                        .unwrap_or(Settings {
                            max_attempts: 5,
                            ..Settings::default()
                        });
                Arc::new(api::Api::connect(&settings).await)
            })
            .await
            .clone()
    }

    /// AWS calls made so far, by operation.
    pub async fn calls(&self) -> BTreeMap<&'static str, u64> {
        self.api().await.calls()
    }

    async fn create_object(
        &self,
        kind: Kind,
        identity: &ObjectIdentity,
        config: &Attributes,
    ) -> Result<Created, ProviderError> {
        let api = self.api().await;
        let id = match kind {
            Kind::Vpc => return vpc::create(&api, identity, config).await,
            Kind::Subnet => return subnet::create(&api, identity, config).await,
            Kind::SecurityGroup => return security_group::create(&api, identity, config).await,
            Kind::InternetGateway => internet_gateway::create(&api, identity, config).await,
            Kind::RouteTable => route_table::create(&api, identity, config).await,
            Kind::KeyPair => key_pair::create(&api, identity, config).await,
            Kind::Instance => instance::create(&api, identity, config).await,
            Kind::Eip => eip::create(&api, identity, config).await,
            Kind::LoadBalancer => load_balancer::create_lb(&api, identity, config).await,
            Kind::TargetGroup => load_balancer::create_target_group(&api, identity, config).await,
            Kind::Listener => load_balancer::create_listener(&api, config).await,
            Kind::Attachment => load_balancer::create_attachment(&api, config).await,
        };
        id.map(Created::read_back)
    }

    async fn read_objects(&self, kind: Kind, ids: &[String]) -> Found {
        read_objects(&*self.api().await, kind, ids).await
    }

    /// One object as AWS reports it, written the way `like` (the
    /// configuration or the prior state) writes what is the same.
    async fn read_one(
        &self,
        kind: Kind,
        id: &str,
        like: &Attributes,
    ) -> Result<Option<Attributes>, ProviderError> {
        let mut found = self.read_objects(kind, &[id.to_string()]).await?;
        Ok(found.remove(id).map(|mut state| {
            normalize(kind, &mut state, like);
            state
        }))
    }

    /// Reads back what was just created or changed, written the way
    /// `config` writes what is the same, once it is ready (an instance:
    /// running, for up to 10 minutes). AWS is eventually consistent: a new
    /// object may take a moment to be visible. The Describe calls are
    /// shared with the other read-backs in flight (`read_back.rs`).
    async fn read_back(
        &self,
        kind: Kind,
        id: &str,
        config: &Attributes,
    ) -> Result<Attributes, ProviderError> {
        let poll = self.api().await.poll;
        let deadline = tokio::time::Instant::now()
            + match kind {
                Kind::Instance => Duration::from_secs(600),
                _ => poll * 20,
            };
        let mut seen = None;
        loop {
            let api = self.api().await;
            let described = self
                .read_backs
                .describe(kind, id, READ_BATCH, move |ids| {
                    describe_ready(api.clone(), kind, ids)
                })
                .await?;
            match described {
                Some((mut state, true)) => {
                    normalize(kind, &mut state, config);
                    return Ok(state);
                }
                Some(_) => seen = Some(()),
                None => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ProviderError::new(match seen {
                    Some(()) => format!("{id} did not become ready (running) within 10 minutes"),
                    None => format!("{id} was created but cannot be read back"),
                }));
            }
            tokio::time::sleep(poll).await;
        }
    }
}

/// The objects of `ids` of `kind`, in one Describe call.
async fn read_objects(api: &api::Api, kind: Kind, ids: &[String]) -> Found {
    match kind {
        Kind::Vpc => vpc::read_many(api, ids).await,
        Kind::Subnet => subnet::read_many(api, ids).await,
        Kind::SecurityGroup => security_group::read_many(api, ids).await,
        Kind::InternetGateway => internet_gateway::read_many(api, ids).await,
        Kind::RouteTable => route_table::read_many(api, ids).await,
        Kind::KeyPair => key_pair::read_many(api, ids).await,
        Kind::Instance => instance::read_many(api, ids).await,
        Kind::Eip => eip::read_many(api, ids).await,
        Kind::LoadBalancer => load_balancer::read_lbs(api, ids).await,
        Kind::TargetGroup => load_balancer::read_target_groups(api, ids).await,
        Kind::Listener => load_balancer::read_listeners(api, ids).await,
        Kind::Attachment => load_balancer::read_attachments(api, ids).await,
    }
}

/// The objects of `ids` as AWS reports them, each with whether it is
/// ready: an instance once it runs, anything else at once.
async fn describe_ready(
    api: Arc<api::Api>,
    kind: Kind,
    ids: Vec<String>,
) -> Result<BTreeMap<String, (Attributes, bool)>, ProviderError> {
    if kind == Kind::Instance {
        return instance::describe(&api, &ids).await;
    }
    Ok(read_objects(&api, kind, &ids)
        .await?
        .into_iter()
        .map(|(id, state)| (id, (state, true)))
        .collect())
}

/// Keeps the configuration's way of writing values AWS reports differently
/// but equally (rule grouping), and values AWS does not report.
fn normalize(kind: Kind, state: &mut Attributes, like: &Attributes) {
    match kind {
        Kind::SecurityGroup => security_group::keep_grouping(state, like),
        Kind::Instance => instance::keep_write_only(state, like),
        Kind::KeyPair => key_pair::keep_write_only(state, like),
        Kind::TargetGroup => load_balancer::keep_health_check(state, like),
        Kind::Listener => load_balancer::keep_forward(state, like),
        Kind::Attachment => load_balancer::keep_port(state, like),
        _ => {}
    }
}

impl Provider for AwsProvider {
    fn name(&self) -> &'static str {
        "aws"
    }

    fn schema(&self) -> Schema {
        Schema {
            resources: [
                ("aws_vpc", vpc::schema()),
                ("aws_subnet", subnet::schema()),
                ("aws_security_group", security_group::schema()),
                ("aws_internet_gateway", internet_gateway::schema()),
                ("aws_route_table", route_table::schema()),
                ("aws_key_pair", key_pair::schema()),
                ("aws_instance", instance::schema()),
                ("aws_eip", eip::schema()),
                ("aws_lb", load_balancer::lb_schema()),
                ("aws_lb_target_group", load_balancer::target_group_schema()),
                ("aws_lb_listener", load_balancer::listener_schema()),
                (
                    "aws_lb_target_group_attachment",
                    load_balancer::attachment_schema(),
                ),
                (DEPLOYMENT, fleet::schema()),
            ]
            .into_iter()
            .map(|(name, schema)| (name.to_string(), schema))
            .collect(),
            data_sources: data::schemas(),
        }
    }

    fn read_data(
        &self,
        request: ReadDataRequest,
    ) -> BoxFuture<'_, Result<Attributes, ProviderError>> {
        Box::pin(async move {
            let api = self.api().await;
            data::read(&api, &request.type_name, &request.config).await
        })
    }

    fn configure(&self, request: ConfigureRequest) -> BoxFuture<'_, Vec<Diagnostic>> {
        Box::pin(async move {
            let config = &request.config;
            let max_attempts = values::number(config, "max_attempts").unwrap_or(5);
            let settings = Settings {
                region: values::text(config, "region").map(str::to_string),
                endpoint: values::text(config, "endpoint").map(str::to_string),
                max_attempts: max_attempts.clamp(1, 20) as u32,
                static_credentials: None,
            };
            *self.settings.lock().expect("settings") = Some(settings);
            Vec::new()
        })
    }

    fn validate(&self, type_name: &str, config: &Attributes) -> Vec<Diagnostic> {
        if type_name == DEPLOYMENT {
            return fleet::validate(config);
        }
        let mut problems = Vec::new();
        for name in ["cidr_block"] {
            if let Some(cidr) = values::text(config, name)
                && !looks_like_cidr(cidr)
            {
                problems.push(
                    Diagnostic::error(format!("`{cidr}` is not an IPv4 CIDR block"))
                        .at(name)
                        .help("write it as an address and a prefix length, e.g. \"10.0.0.0/16\""),
                );
            }
        }
        if type_name == "aws_instance"
            && let Some(ami) = values::text(config, "ami")
            && !ami.starts_with("ami-")
        {
            problems.push(
                Diagnostic::error(format!("`{ami}` is not an AMI id"))
                    .at("ami")
                    .help("AMI ids look like \"ami-0abc12345\""),
            );
        }
        problems
    }

    fn create(
        &self,
        request: CreateRequest,
    ) -> BoxFuture<'_, Result<ObjectResponse, ProviderError>> {
        Box::pin(async move {
            if request.type_name == DEPLOYMENT {
                return Err(rolled_out_by_the_engine());
            }
            let kind = Kind::of(&request.type_name)?;
            let created = self
                .create_object(kind, &request.identity, &request.config)
                .await?;
            let state = match created.state {
                Some(mut state) => {
                    normalize(kind, &mut state, &request.config);
                    state
                }
                None => self.read_back(kind, &created.id, &request.config).await?,
            };
            Ok(ObjectResponse::from(state))
        })
    }

    fn read(&self, request: ReadRequest) -> BoxFuture<'_, Result<ReadResponse, ProviderError>> {
        Box::pin(async move {
            let mut answers = self.read_many(vec![request]).await;
            answers
                .pop()
                .unwrap_or_else(|| Err(ProviderError::new("no answer")))
        })
    }

    fn read_batch_size(&self, _type_name: &str) -> usize {
        READ_BATCH
    }

    fn read_many(
        &self,
        requests: Vec<ReadRequest>,
    ) -> BoxFuture<'_, Vec<Result<ReadResponse, ProviderError>>> {
        Box::pin(async move {
            let Some(first) = requests.first() else {
                return Vec::new();
            };
            if first.type_name == DEPLOYMENT {
                let api = self.api().await;
                let mut answers = Vec::new();
                for request in requests {
                    answers.push(
                        fleet::read(&api, &request.identity, request.state)
                            .await
                            .map(|state| ReadResponse::from(Some(state))),
                    );
                }
                return answers;
            }
            let kind = match Kind::of(&first.type_name) {
                Ok(kind) => kind,
                Err(error) => return requests.iter().map(|_| Err(error.clone())).collect(),
            };
            let ids: Vec<String> = requests
                .iter()
                .filter_map(|r| values::text(&r.state, "id").map(str::to_string))
                .collect();
            match self.read_objects(kind, &ids).await {
                Ok(mut found) => requests
                    .iter()
                    .map(|request| {
                        let id = values::text(&request.state, "id").unwrap_or_default();
                        let state = found.remove(id).map(|mut state| {
                            normalize(kind, &mut state, &request.state);
                            state
                        });
                        Ok(ReadResponse::from(state))
                    })
                    .collect(),
                Err(error) => requests.iter().map(|_| Err(error.clone())).collect(),
            }
        })
    }

    fn update(
        &self,
        request: UpdateRequest,
    ) -> BoxFuture<'_, Result<ObjectResponse, ProviderError>> {
        Box::pin(async move {
            if request.type_name == DEPLOYMENT {
                return Err(rolled_out_by_the_engine());
            }
            let kind = Kind::of(&request.type_name)?;
            let api = self.api().await;
            let (prior, config) = (&request.prior, &request.config);
            match kind {
                Kind::Vpc => vpc::update(&api, prior, config).await?,
                Kind::Subnet => subnet::update(&api, prior, config).await?,
                Kind::SecurityGroup => security_group::update(&api, prior, config).await?,
                Kind::InternetGateway => internet_gateway::update(&api, prior, config).await?,
                Kind::RouteTable => route_table::update(&api, prior, config).await?,
                Kind::KeyPair => key_pair::update(&api, prior, config).await?,
                Kind::Instance => instance::update(&api, prior, config).await?,
                Kind::Eip => eip::update(&api, prior, config).await?,
                Kind::LoadBalancer => load_balancer::update_lb(&api, prior, config).await?,
                Kind::TargetGroup => {
                    load_balancer::update_target_group(&api, prior, config).await?;
                }
                Kind::Listener => load_balancer::update_listener(&api, prior, config).await?,
                // Every argument forces a new attachment.
                Kind::Attachment => {}
            }
            let id = values::id_of(prior)?;
            let state = self.read_back(kind, id, config).await?;
            Ok(ObjectResponse::from(state))
        })
    }

    fn delete(&self, request: DeleteRequest) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            if request.type_name == DEPLOYMENT {
                return fleet::delete(self, &request.identity, &request.state).await;
            }
            let kind = Kind::of(&request.type_name)?;
            let api = self.api().await;
            let deadline = tokio::time::Instant::now() + DEPENDENCY_WAIT;
            loop {
                let result = match kind {
                    Kind::Vpc => vpc::delete(&api, &request.state).await,
                    Kind::Subnet => subnet::delete(&api, &request.state).await,
                    Kind::SecurityGroup => security_group::delete(&api, &request.state).await,
                    Kind::InternetGateway => internet_gateway::delete(&api, &request.state).await,
                    Kind::RouteTable => route_table::delete(&api, &request.state).await,
                    Kind::KeyPair => key_pair::delete(&api, &request.state).await,
                    Kind::Instance => instance::delete(&api, &request.state).await,
                    Kind::Eip => eip::delete(&api, &request.state).await,
                    Kind::LoadBalancer => load_balancer::delete_lb(&api, &request.state).await,
                    Kind::TargetGroup => {
                        load_balancer::delete_target_group(&api, &request.state).await
                    }
                    Kind::Listener => load_balancer::delete_listener(&api, &request.state).await,
                    Kind::Attachment => {
                        load_balancer::delete_attachment(&api, &request.state).await
                    }
                };
                match result {
                    Ok(()) => return Ok(()),
                    Err(error) if api::is_not_found(&error) => return Ok(()),
                    Err(error)
                        if api::is_dependency_violation(&error)
                            && tokio::time::Instant::now() < deadline =>
                    {
                        tokio::time::sleep(api.poll * 10).await;
                    }
                    Err(error) => return Err(error),
                }
            }
        })
    }

    /// Finds the object an interrupted create made by its tags:
    /// `infra:address` and `infra:lineage` (one DescribeTags each). Load
    /// balancer objects and attachments are not found this way.
    fn adopt(&self, request: AdoptRequest) -> BoxFuture<'_, Result<Adoption, ProviderError>> {
        Box::pin(async move {
            // A deployment's fleet finds its instances by their tags itself.
            if request.type_name == DEPLOYMENT {
                return Ok(Adoption::Absent);
            }
            let kind = Kind::of(&request.type_name)?;
            let Some(resource_type) = kind.tagged_resource_type() else {
                return Ok(Adoption::Unknown);
            };
            let api = self.api().await;
            let tagged = |key: &'static str, value: String| {
                api.call(
                    "DescribeTags",
                    api.ec2
                        .describe_tags()
                        .filters(values::ids_filter("resource-type", &[resource_type.into()]))
                        .filters(values::ids_filter("key", &[key.into()]))
                        .filters(values::ids_filter("value", &[value]))
                        .send(),
                )
            };
            let ids = |answer: aws_sdk_ec2::operation::describe_tags::DescribeTagsOutput| {
                answer
                    .tags()
                    .iter()
                    .filter_map(|tag| tag.resource_id().map(str::to_string))
                    .collect::<std::collections::BTreeSet<String>>()
            };
            let at_address =
                ids(tagged(values::ADDRESS_TAG, request.identity.address.clone()).await?);
            if at_address.is_empty() {
                return Ok(Adoption::Absent);
            }
            let of_lineage =
                ids(tagged(values::LINEAGE_TAG, request.identity.lineage.clone()).await?);
            let mut candidates = Vec::new();
            for id in at_address.intersection(&of_lineage) {
                // A terminated instance keeps its tags for a while.
                if let Some(state) = self.read_one(kind, id, &request.config).await? {
                    candidates.push(state);
                }
            }
            match candidates.len() {
                0 => Ok(Adoption::Absent),
                1 => Ok(Adoption::Found(candidates.remove(0))),
                _ => Err(ProviderError::new(format!(
                    "{} {} objects carry the tags of `{}`: {}",
                    candidates.len(),
                    request.type_name,
                    request.identity.address,
                    candidates
                        .iter()
                        .filter_map(|state| state.get("id").and_then(serde_json::Value::as_str))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .with_code("SeveralTagged")),
            }
        })
    }

    /// An `aws_deployment`'s instances, for the engine's rollouts.
    fn fleet(&self, request: FleetRequest) -> Option<Result<Box<dyn Fleet + '_>, ProviderError>> {
        (request.type_name == DEPLOYMENT).then(|| {
            fleet::AwsFleet::new(self, &request).map(|fleet| Box::new(fleet) as Box<dyn Fleet>)
        })
    }

    fn import(
        &self,
        request: ImportRequest,
    ) -> BoxFuture<'_, Result<ObjectResponse, ProviderError>> {
        Box::pin(async move {
            let kind = Kind::of(&request.type_name)?;
            match self.read_one(kind, &request.id, &Attributes::new()).await? {
                Some(state) => Ok(ObjectResponse::from(state)),
                None => Err(ProviderError::new(format!(
                    "no {} with id `{}`",
                    request.type_name, request.id
                ))
                .with_code("NotFound")),
            }
        })
    }
}

/// A deployment is created and updated by the engine through its fleet
/// ([`Provider::fleet`]), never by `create`/`update`.
fn rolled_out_by_the_engine() -> ProviderError {
    ProviderError::new("an aws_deployment is rolled out by the engine through its fleet")
        .with_code("NotSupported")
}

/// `a.b.c.d/n` with each part in range.
fn looks_like_cidr(text: &str) -> bool {
    let Some((address, prefix)) = text.split_once('/') else {
        return false;
    };
    let octets: Vec<&str> = address.split('.').collect();
    octets.len() == 4
        && octets.iter().all(|o| o.parse::<u8>().is_ok())
        && prefix.parse::<u8>().is_ok_and(|p| p <= 32)
}
