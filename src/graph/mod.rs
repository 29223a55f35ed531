//! The resource graph: one node per resource instance, an edge from each
//! instance to every instance it depends on (references, `depends_on`,
//! through locals and module boundaries; to one instance only when the
//! reference's key names it, as `peer[count.index % 3]` does). Apply walks it in dependency
//! order, destroy in reverse; `infra graph` prints it.
//!
//! Cycles between resources are reported by evaluation (with the shortest
//! chain); this graph is built from an evaluation without errors, so it is
//! acyclic.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use petgraph::graph::{DiGraph, NodeIndex};
use rustc_hash::FxHashMap;

use crate::eval::{EvaluatedModule, ResourceInstance};

pub struct ResourceGraph<'e> {
    /// Edges point from an instance to what it depends on.
    pub graph: DiGraph<&'e ResourceInstance, ()>,
    index_of: BTreeMap<&'e str, NodeIndex>,
}

/// `aws_subnet.a[0]` → `aws_subnet.a`; `module.m.x.y["k"]` → `module.m.x.y`.
pub fn without_key(address: &str) -> &str {
    match address.strip_suffix(']') {
        Some(_) => address
            .rfind('[')
            .map(|at| &address[..at])
            .unwrap_or(address),
        None => address,
    }
}

/// The first module step of `address` and what follows it:
/// `module.net["a.b"].x.y` → `("net[\"a.b\"]", "x.y")`; `None` when
/// `address` is not in a module. A key may hold dots and brackets.
pub fn split_module_step(address: &str) -> Option<(&str, &str)> {
    let after = address.strip_prefix("module.")?;
    let name_end = after.find(['.', '[']).unwrap_or(after.len());
    let mut end = name_end;
    if after[end..].starts_with('[') {
        // To the `]` that closes the key, outside its quotes.
        let mut in_string = false;
        let mut escaped = false;
        for (offset, c) in after[end..].char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if in_string => escaped = true,
                '"' => in_string = !in_string,
                ']' if !in_string => {
                    end += offset + 1;
                    break;
                }
                _ => {}
            }
        }
    }
    let rest = after[end..].strip_prefix('.').unwrap_or(&after[end..]);
    Some((&after[..end], rest))
}

/// Where each address a dependency may name leads: a resource
/// (`aws_subnet.a`: all its instances), one instance (`aws_subnet.a[0]`),
/// or a module or deployment (`module.x`: every instance inside it).
struct Addresses<'e> {
    /// Every instance address, sorted (module prefixes are ranges of it).
    sorted: Vec<&'e str>,
    by_resource: FxHashMap<&'e str, Vec<&'e str>>,
}

impl<'e> Addresses<'e> {
    fn new(instances: &[&'e ResourceInstance]) -> Addresses<'e> {
        let mut sorted: Vec<&str> = instances.iter().map(|i| i.address.as_str()).collect();
        sorted.sort_unstable();
        let mut by_resource: FxHashMap<&str, Vec<&str>> = FxHashMap::default();
        for address in &sorted {
            by_resource
                .entry(without_key(address))
                .or_default()
                .push(address);
        }
        Addresses {
            sorted,
            by_resource,
        }
    }

    /// The instances `instance` depends on, sorted, each once.
    fn dependencies_of(&self, instance: &ResourceInstance) -> Vec<&'e str> {
        let mut out: Vec<&'e str> = Vec::new();
        for dependency in instance.dependencies.iter() {
            let dependency = dependency.as_str();
            if let Some(instances) = self.by_resource.get(dependency) {
                out.extend(instances);
            } else if let Ok(at) = self.sorted.binary_search(&dependency) {
                // One instance (`peer[2]`): a key computed from
                // `count.index`/`each` names it.
                out.push(self.sorted[at]);
            } else {
                // `module.x` (or a deployment): every instance inside it,
                // and inside each of its instances (`module.x["a"].…`).
                for separator in ['.', '['] {
                    let prefix = format!("{dependency}{separator}");
                    let start = self.sorted.partition_point(|a| *a < prefix.as_str());
                    out.extend(
                        self.sorted[start..]
                            .iter()
                            .take_while(|a| a.starts_with(&prefix)),
                    );
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Every instance of `evaluated` with the instances it depends on (sorted):
/// the graph's edges, without building the graph.
pub fn instance_dependencies(evaluated: &EvaluatedModule) -> Vec<(&ResourceInstance, Vec<&str>)> {
    let instances = evaluated.all_resources();
    let addresses = Addresses::new(&instances);
    instances
        .into_iter()
        .map(|instance| (instance, addresses.dependencies_of(instance)))
        .collect()
}

impl<'e> ResourceGraph<'e> {
    pub fn build(evaluated: &'e EvaluatedModule) -> ResourceGraph<'e> {
        let instances = evaluated.all_resources();
        let addresses = Addresses::new(&instances);
        let mut graph = DiGraph::new();
        let mut index_of = BTreeMap::new();
        for instance in &instances {
            index_of.insert(instance.address.as_str(), graph.add_node(*instance));
        }
        for instance in &instances {
            let from = index_of[instance.address.as_str()];
            for dependency in addresses.dependencies_of(instance) {
                graph.add_edge(from, index_of[dependency], ());
            }
        }
        ResourceGraph { graph, index_of }
    }

    pub fn node(&self, address: &str) -> Option<NodeIndex> {
        self.index_of.get(address).copied()
    }

    /// Addresses of the instances `address` depends on, sorted.
    pub fn dependencies_of(&self, address: &str) -> Vec<&'e str> {
        let Some(index) = self.node(address) else {
            return Vec::new();
        };
        let mut out: Vec<&str> = self
            .graph
            .neighbors(index)
            .map(|n| self.graph[n].address.as_str())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Instances in an order where every instance comes after what it
    /// depends on (the order creates run in; destroys run in reverse).
    pub fn dependency_order(&self) -> Vec<&'e ResourceInstance> {
        let mut order: Vec<&ResourceInstance> = match petgraph::algo::toposort(&self.graph, None) {
            Ok(order) => order.into_iter().map(|index| self.graph[index]).collect(),
            Err(_) => self.graph.node_weights().copied().collect(),
        };
        // toposort puts dependents first (edges point to dependencies).
        order.reverse();
        order
    }

    /// The graph in Graphviz DOT, one cluster per module.
    pub fn to_dot(&self) -> String {
        let mut out = String::from("digraph infra {\n  rankdir = \"RL\";\n  node [shape = box];\n");
        let mut clusters: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for instance in self.graph.node_weights() {
            let module = module_of(&instance.address);
            clusters.entry(module).or_default().push(&instance.address);
        }
        for (module, mut addresses) in clusters {
            addresses.sort();
            if module.is_empty() {
                for address in addresses {
                    let _ = writeln!(out, "  {};", quote(address));
                }
            } else {
                let _ = writeln!(
                    out,
                    "  subgraph {} {{\n    label = {};",
                    quote(&format!("cluster_{module}")),
                    quote(&module)
                );
                for address in addresses {
                    let _ = writeln!(out, "    {};", quote(address));
                }
                out.push_str("  }\n");
            }
        }
        let mut edges: Vec<(&str, &str)> = self
            .graph
            .edge_indices()
            .filter_map(|edge| self.graph.edge_endpoints(edge))
            .map(|(from, to)| {
                (
                    self.graph[from].address.as_str(),
                    self.graph[to].address.as_str(),
                )
            })
            .collect();
        edges.sort();
        edges.dedup();
        for (from, to) in edges {
            let _ = writeln!(out, "  {} -> {};", quote(from), quote(to));
        }
        out.push_str("}\n");
        out
    }
}

/// `module.a.module.b.x.y` → `module.a.module.b`; root instances → "".
fn module_of(address: &str) -> String {
    let mut parts = Vec::new();
    let mut rest = address;
    while let Some((step, after)) = split_module_step(rest) {
        parts.push(format!("module.{step}"));
        rest = after;
    }
    parts.join(".")
}

fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_module_step_keeps_its_key_whatever_the_key_holds() {
        assert_eq!(split_module_step("module.net.a.b"), Some(("net", "a.b")));
        assert_eq!(
            split_module_step("module.net[0].a.b"),
            Some(("net[0]", "a.b"))
        );
        assert_eq!(
            split_module_step(r#"module.net["x.]y"].a.b"#),
            Some((r#"net["x.]y"]"#, "a.b"))
        );
        assert_eq!(split_module_step("module.net"), Some(("net", "")));
        assert_eq!(split_module_step("aws_vpc.a"), None);
        assert_eq!(
            module_of(r#"module.a["k.1"].module.b[2].x.y"#),
            r#"module.a["k.1"].module.b[2]"#
        );
    }
}
