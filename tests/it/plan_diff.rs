//! The plan diff: configuration + state → actions, with a test provider's
//! schema deciding what forces a replacement and what the provider computes.

use std::path::PathBuf;
use std::sync::Arc;

use infra::check::CheckOptions;
use infra::eval::{AttributeSchema as A, BlockSchema, SchemaCatalog, TypeConstraint as T, Value};
use infra::plan::{Action, Change, Plan, plan};
use infra::state::{ResourceState, State};
use serde_json::json;

use crate::support;

fn force_new(mut attribute: A) -> A {
    attribute.force_new = true;
    attribute
}

fn sensitive(mut attribute: A) -> A {
    attribute.sensitive = true;
    attribute
}

fn catalog() -> SchemaCatalog {
    let network = BlockSchema {
        attributes: [
            ("cidr".to_string(), force_new(A::required(T::String))),
            ("name".to_string(), A::optional(T::String)),
            ("id".to_string(), A::computed(T::String)),
        ]
        .into(),
        blocks: Default::default(),
        set: false,
    };
    let server = BlockSchema {
        attributes: [
            ("image".to_string(), force_new(A::required(T::String))),
            ("size".to_string(), A::optional(T::Number)),
            ("network_id".to_string(), force_new(A::optional(T::String))),
            ("id".to_string(), A::computed(T::String)),
            ("user_data".to_string(), A::optional(T::String)),
            ("password".to_string(), sensitive(A::optional(T::String))),
        ]
        .into(),
        blocks: Default::default(),
        set: false,
    };
    support::test_provider_catalog(network, server)
}

const CONFIG: &str = r#"
variable cidr {
  default = "10.0.0.0/16"
}

variable servers {
  default = 2
}

variable image {
  default = "img-1"
}

variable size {
  default = 2
}

data test_image base {
  name = "debian"
}

resource test_network main {
  cidr = var.cidr
  name = "net"
}

resource test_server web {
  count      = var.servers
  image      = var.image
  size       = var.size
  network_id = test_network.main.id
}
"#;

fn plan_with(state: &State, vars: &[&str], extra: &str) -> (Plan, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.infra"), format!("{CONFIG}\n{extra}")).unwrap();
    let options = CheckOptions {
        dir: PathBuf::from(dir.path()),
        vars: vars.iter().map(ToString::to_string).collect(),
        schemas: Arc::new(catalog()),
        ..CheckOptions::default()
    };
    let (checked, plan) = plan(&options, state);
    let messages = checked
        .diagnostics
        .iter()
        .map(|d| format!("{}: {}", d.code, d.message))
        .collect();
    (plan, messages)
}

fn applied_state() -> State {
    let mut state = State::new("lineage");
    let mut add = |address: &str, type_name: &str, attributes: serde_json::Value| {
        state.resources.insert(
            address.into(),
            ResourceState {
                type_name: type_name.into(),
                provider: "test".into(),
                attributes: serde_json::from_value(attributes).unwrap(),
                dependencies: Vec::new(),
                sensitive: Vec::new(),
            },
        );
    };
    add(
        "test_network.main",
        "test_network",
        json!({"cidr": "10.0.0.0/16", "name": "net", "id": "net-1"}),
    );
    for index in 0..2 {
        add(
            &format!("test_server.web[{index}]"),
            "test_server",
            json!({"image": "img-1", "size": 2, "network_id": "net-1", "id": format!("srv-{index}")}),
        );
    }
    state
}

fn change<'p>(plan: &'p Plan, address: &str) -> &'p Change {
    plan.changes
        .iter()
        .find(|c| c.address == address)
        .unwrap_or_else(|| panic!("no change for {address}: {plan:?}"))
}

#[test]
fn an_empty_state_creates_everything_and_reads_data() {
    let (plan, errors) = plan_with(&State::new("l"), &[], "");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        plan.summary(),
        "Plan: 3 to add, 0 to change, 0 to replace, 0 to destroy."
    );
    assert_eq!(change(&plan, "data.test_image.base").action, Action::Read);
    let server = change(&plan, "test_server.web[0]");
    assert_eq!(server.action, Action::Create);
    let after = server.after.as_ref().unwrap();
    assert_eq!(after["id"], Value::Unknown, "computed: known after apply");
    assert_eq!(
        after["network_id"],
        Value::Unknown,
        "refers to a network not created yet"
    );
}

#[test]
fn a_matching_state_plans_no_changes_even_through_references() {
    // `network_id = test_network.main.id` must see the recorded `net-1`,
    // or every server would look changed (and be replaced).
    let (plan, errors) = plan_with(&applied_state(), &[], "");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(plan.summary(), "No changes.");
    assert!(!plan.has_changes());
    assert!(
        plan.changes
            .iter()
            .all(|c| matches!(c.action, Action::NoOp | Action::Read)),
        "{plan:?}"
    );
}

#[test]
fn an_in_place_change_is_an_update() {
    let (plan, _) = plan_with(&applied_state(), &["size=4"], "");
    let server = change(&plan, "test_server.web[1]");
    assert_eq!(server.action, Action::Update);
    assert_eq!(server.changed, ["size"]);
    assert_eq!(
        server.after.as_ref().unwrap()["id"],
        Value::string("srv-1"),
        "an update keeps the id"
    );
    assert_eq!(
        plan.summary(),
        "Plan: 0 to add, 2 to change, 0 to replace, 0 to destroy."
    );
}

#[test]
fn a_force_new_change_replaces_and_says_why_and_ripples_through_references() {
    let (plan, _) = plan_with(&applied_state(), &["cidr=10.9.0.0/16"], "");
    let network = change(&plan, "test_network.main");
    assert_eq!(
        network.action,
        Action::Replace {
            create_before_destroy: false
        }
    );
    assert_eq!(network.action.symbol(), "-/+");
    assert_eq!(network.replaced_because, ["cidr"]);
    assert_eq!(network.after.as_ref().unwrap()["id"], Value::Unknown);
    // The servers refer to the new network's unknown id, and network_id
    // forces replacement too.
    let server = change(&plan, "test_server.web[0]");
    assert_eq!(
        server.action,
        Action::Replace {
            create_before_destroy: false
        }
    );
    assert_eq!(server.replaced_because, ["network_id"]);
}

#[test]
fn lifecycle_options_are_honoured() {
    let mut state = applied_state();
    state.resources.insert(
        "test_network.keep".into(),
        ResourceState {
            type_name: "test_network".into(),
            provider: "test".into(),
            attributes: serde_json::from_value(
                json!({"cidr": "10.1.0.0/16", "name": "old", "id": "net-2"}),
            )
            .unwrap(),
            dependencies: Vec::new(),
            sensitive: Vec::new(),
        },
    );
    let extra = r#"
resource test_network keep {
  cidr = "10.2.0.0/16"
  name = "new"
  lifecycle {
    create_before_destroy = true
    prevent_destroy       = true
    ignore_changes        = [name]
  }
}
"#;
    let (plan, errors) = plan_with(&state, &[], extra);
    let keep = change(&plan, "test_network.keep");
    assert_eq!(
        keep.action,
        Action::Replace {
            create_before_destroy: true
        }
    );
    assert_eq!(keep.action.symbol(), "+/-");
    assert!(
        !keep.changed.contains(&"name".to_string()),
        "ignore_changes: {keep:?}"
    );
    assert_eq!(
        errors,
        [
            "infra::prevent_destroy: `test_network.keep` would be replaced, but it has `prevent_destroy`"
        ]
    );
}

#[test]
fn removed_instances_are_deleted() {
    let (plan, _) = plan_with(&applied_state(), &["servers=1"], "");
    assert_eq!(change(&plan, "test_server.web[1]").action, Action::Delete);
    assert_eq!(change(&plan, "test_server.web[0]").action, Action::NoOp);
    assert_eq!(
        plan.summary(),
        "Plan: 0 to add, 0 to change, 0 to replace, 1 to destroy."
    );
}

fn state_with_script() -> State {
    let mut state = applied_state();
    state.resources.insert(
        "test_server.script".into(),
        ResourceState {
            type_name: "test_server".into(),
            provider: "test".into(),
            attributes: serde_json::from_value(json!({
                "image": "img-1", "id": "srv-9", "password": "old-secret",
                "user_data": "#!/bin/sh\necho one\necho two\n"
            }))
            .unwrap(),
            dependencies: Vec::new(),
            sensitive: Vec::new(),
        },
    );
    state
}

const SCRIPT: &str = r#"
resource test_server script {
  image     = "img-1"
  password  = "new-secret"
  user_data = <<-EOT
    #!/bin/sh
    echo one
    echo three
  EOT
}
"#;

#[test]
fn colour_is_only_used_when_asked() {
    let (plan, _) = plan_with(&applied_state(), &["size=4"], "");
    let plain = infra::plan::render(
        &plan,
        &catalog(),
        infra::plan::RenderOptions { color: false },
    );
    let coloured = infra::plan::render(
        &plan,
        &catalog(),
        infra::plan::RenderOptions { color: true },
    );
    assert!(!plain.contains('\u{1b}'));
    assert!(coloured.contains("\u{1b}[33m~\u{1b}[0m"), "{coloured}");
}

#[test]
fn the_json_plan_is_complete_and_holds_no_secrets() {
    let (plan, _) = plan_with(&state_with_script(), &["cidr=10.9.0.0/16"], SCRIPT);
    let json = infra::plan::to_json(&plan, &catalog());
    assert_eq!(json["format"], "infra-plan");
    assert_eq!(json["format_version"], 1);
    assert_eq!(
        json["summary"],
        json!({"add": 0, "change": 1, "replace": 3, "destroy": 0})
    );
    let changes = json["changes"].as_array().unwrap();
    assert_eq!(
        changes.len(),
        plan.changes.len(),
        "every instance, no-ops included"
    );
    let network = changes
        .iter()
        .find(|c| c["address"] == "test_network.main")
        .unwrap();
    assert_eq!(network["action"], "replace");
    assert_eq!(network["create_before_destroy"], false);
    assert_eq!(network["replaced_because"], json!(["cidr"]));
    assert_eq!(network["after"]["id"], serde_json::Value::Null);
    assert_eq!(network["after_unknown"], json!(["id"]));
    assert_eq!(network["before"]["id"], "net-1");
    let script = changes
        .iter()
        .find(|c| c["address"] == "test_server.script")
        .unwrap();
    assert_eq!(script["action"], "update");
    assert_eq!(script["sensitive"], json!(["password"]));
    assert_eq!(script["after"]["password"], serde_json::Value::Null);
    let text = json.to_string();
    assert!(
        !text.contains("secret"),
        "sensitive plaintext leaked: {text}"
    );
    let data = changes
        .iter()
        .find(|c| c["address"] == "data.test_image.base")
        .unwrap();
    assert_eq!(
        (data["mode"].as_str(), data["action"].as_str()),
        (Some("data"), Some("read"))
    );
}

#[test]
fn create_before_destroy_spreads_to_the_replacements_it_depends_on() {
    // The servers are replaced create-before-destroy (new image); the
    // network they depend on is replaced too (new cidr), and must then
    // outlive the old servers: it becomes create-before-destroy as well.
    let config_with_cbd = CONFIG.replace(
        "  network_id = test_network.main.id\n}",
        "  network_id = test_network.main.id\n  lifecycle {\n    create_before_destroy = true\n  }\n}",
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.infra"), config_with_cbd).unwrap();
    let options = CheckOptions {
        dir: PathBuf::from(dir.path()),
        vars: vec!["cidr=10.9.0.0/16".into(), "image=img-2".into()],
        schemas: Arc::new(catalog()),
        ..CheckOptions::default()
    };
    let (checked, plan) = plan(&options, &applied_state());
    assert!(!checked.diagnostics.has_errors());
    for address in [
        "test_network.main",
        "test_server.web[0]",
        "test_server.web[1]",
    ] {
        assert_eq!(
            change(&plan, address).action,
            Action::Replace {
                create_before_destroy: true
            },
            "{address}"
        );
    }
}
