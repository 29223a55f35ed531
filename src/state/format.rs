//! The state format, version 2.
//!
//! Designed to be committed and merged:
//! - resources are keyed by address and sorted, one block each, so two
//!   branches that change different resources touch different lines;
//! - no serial number bumped by every write and no timestamps, so rewriting
//!   an unchanged state gives identical bytes;
//! - every attribute value is addressable as (address, attribute), so
//!   sensitive values can be encrypted one by one (the schema says which);
//! - dependencies are recorded as the configuration names them: a whole
//!   resource (`aws_subnet.net`) or module once, not each of its instances
//!   (version 2; version 1 listed every instance, which still reads the
//!   same — [`named_by`] expands either).

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::ops::Bound;

use serde::{Deserialize, Serialize};

/// The `format` field: what kind of file this is.
pub const FORMAT_NAME: &str = "infra-state";
/// The newest format version this build reads and the one it writes.
/// Older versions are read and rewritten as this one.
pub const FORMAT_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub format: String,
    pub version: u32,
    /// Set once when the state is created; identifies it across copies and
    /// tags the objects it creates (to find those a crashed apply left).
    pub lineage: String,
    #[serde(default)]
    pub resources: BTreeMap<String, ResourceState>,
    #[serde(default)]
    pub outputs: BTreeMap<String, OutputState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceState {
    /// `aws_vpc`, `random_id`, …
    #[serde(rename = "type")]
    pub type_name: String,
    /// The provider that manages it: `aws`, `local`, …
    pub provider: String,
    /// Attribute values as the provider last reported them, sorted by name.
    #[serde(default)]
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// What it depended on when it was last applied, sorted (deletes run
    /// in reverse order even after the configuration is gone): instance
    /// addresses, or a whole resource or module for all it holds
    /// ([`named_by`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,
    /// Attributes whose values are sensitive, sorted: those the schema
    /// marks and those computed from sensitive values. Plans and drift
    /// reports hide them; they are what value-by-value encryption will
    /// cover.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sensitive: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputState {
    pub value: serde_json::Value,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
}

impl State {
    /// An empty state with a new lineage.
    pub fn new(lineage: impl Into<String>) -> State {
        State {
            format: FORMAT_NAME.to_string(),
            version: FORMAT_VERSION,
            lineage: lineage.into(),
            resources: BTreeMap::new(),
            outputs: BTreeMap::new(),
        }
    }

    /// The canonical text: pretty JSON (2-space indent), keys sorted,
    /// dependencies sorted, a final newline. Identical states give identical
    /// bytes.
    pub fn to_canonical_json(&self) -> String {
        let mut state = self.clone();
        state.version = FORMAT_VERSION;
        for resource in state.resources.values_mut() {
            resource.dependencies.sort();
            resource.dependencies.dedup();
        }
        // serde_json sorts object keys of `Value` maps (BTreeMap), so nested
        // attribute objects are ordered too.
        let mut text = serde_json::to_string_pretty(&state).expect("state serialises");
        text.push('\n');
        text
    }
}

/// Whether a recorded dependency names `address`: the instance itself, an
/// instance of the resource (`a.b[0]` of `a.b`), or an object inside the
/// module (`module.m.a.b` of `module.m`).
pub fn covers(dependency: &str, address: &str) -> bool {
    address
        .strip_prefix(dependency)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['[', '.']))
}

/// The entries of `by_address` a recorded dependency names ([`covers`]):
/// one range of the sorted map.
pub fn named_by<'m, K: Borrow<str> + Ord, V>(
    by_address: &'m BTreeMap<K, V>,
    dependency: &'m str,
) -> impl Iterator<Item = (&'m K, &'m V)> {
    by_address
        .range::<str, _>((Bound::Included(dependency), Bound::Unbounded))
        .take_while(move |(address, _)| Borrow::<str>::borrow(*address).starts_with(dependency))
        .filter(move |(address, _)| covers(dependency, Borrow::<str>::borrow(*address)))
}

/// Whether an address is a data source's (`data.aws_ami.x`,
/// `module.m.data.aws_ami.x`): read while planning, never saved.
pub fn is_data_address(address: &str) -> bool {
    address.starts_with("data.") || address.contains(".data.")
}

impl State {
    /// The state without data sources' results (what is saved).
    pub fn without_data_sources(&self) -> State {
        let mut state = self.clone();
        state
            .resources
            .retain(|address, _| !is_data_address(address));
        state
    }
}

/// A new lineage: random enough to tell states apart, from the OS.
pub fn new_lineage() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes = (nanos ^ (u128::from(std::process::id()) << 64)).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
