//! Provider schemas (the SDK's description) drive the front end's checks.

use std::collections::BTreeMap;
use std::sync::Arc;

use infra::check::{CheckOptions, check};
use infra::eval::TypeConstraint;
use infra::providers::schema_catalog;
use infra_provider_sdk::*;

/// Only the schema matters here; operations are never called.
struct Shop;

impl Provider for Shop {
    fn name(&self) -> &'static str {
        "shop"
    }

    fn schema(&self) -> Schema {
        let item = ResourceSchema {
            description: String::new(),
            attributes: [
                (
                    "sku".to_string(),
                    Attribute::required(AttributeType::String).force_new(),
                ),
                (
                    "price".to_string(),
                    Attribute::optional(AttributeType::Number),
                ),
                (
                    "tags".to_string(),
                    Attribute::optional(AttributeType::Map(Box::new(AttributeType::String))),
                ),
                (
                    "secret".to_string(),
                    Attribute::optional(AttributeType::String).sensitive(),
                ),
                ("id".to_string(), Attribute::computed(AttributeType::String)),
            ]
            .into(),
            blocks: [(
                "variant".to_string(),
                ResourceSchema {
                    description: String::new(),
                    attributes: [(
                        "size".to_string(),
                        Attribute::required(AttributeType::String),
                    )]
                    .into(),
                    blocks: BTreeMap::new(),
                    set: true,
                },
            )]
            .into(),
            set: false,
        };
        Schema {
            resources: [("shop_item".to_string(), item)].into(),
            data_sources: BTreeMap::new(),
        }
    }

    fn create(&self, _: CreateRequest) -> BoxFuture<'_, Result<ObjectResponse, ProviderError>> {
        unreachable!("validation never calls providers")
    }
    fn read(&self, _: ReadRequest) -> BoxFuture<'_, Result<ReadResponse, ProviderError>> {
        unreachable!("validation never calls providers")
    }
    fn update(&self, _: UpdateRequest) -> BoxFuture<'_, Result<ObjectResponse, ProviderError>> {
        unreachable!("validation never calls providers")
    }
    fn delete(&self, _: DeleteRequest) -> BoxFuture<'_, Result<(), ProviderError>> {
        unreachable!("validation never calls providers")
    }
}

fn messages(config: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.infra"), config).unwrap();
    let checked = check(&CheckOptions {
        dir: dir.path().to_path_buf(),
        schemas: Arc::new(schema_catalog(&[&Shop], true)),
        ..CheckOptions::default()
    });
    checked
        .diagnostics
        .iter()
        .map(|d| d.message.clone())
        .collect()
}

#[test]
fn the_sdk_schema_becomes_the_catalog() {
    let catalog = schema_catalog(&[&Shop], false);
    let item = &catalog.providers["shop"].resources["shop_item"];
    assert!(item.attributes["sku"].required && item.attributes["sku"].force_new);
    assert!(item.attributes["secret"].sensitive && item.attributes["secret"].optional);
    assert!(item.attributes["id"].computed && !item.attributes["id"].is_settable());
    assert_eq!(
        item.attributes["tags"].type_constraint,
        TypeConstraint::Map(Box::new(TypeConstraint::String))
    );
    assert!(item.blocks["variant"].attributes["size"].required);
    assert!(item.blocks["variant"].set, "a set of blocks stays one");
}

#[test]
fn configurations_are_checked_against_provider_schemas() {
    assert!(messages("resource shop_item a {\n  sku   = \"x-1\"\n  price = \"12.5\"\n  variant {\n    size = \"m\"\n  }\n}\n").is_empty());
    assert_eq!(
        messages("resource shop_iten a {\n  sku = \"x\"\n}\n"),
        ["unknown resource type `shop_iten`"]
    );
    assert_eq!(
        messages(
            "resource shop_item a {\n  sku   = \"x\"\n  id    = \"mine\"\n  price = \"cheap\"\n}\n"
        ),
        [
            "`id` of `shop_item` is set by the provider",
            "invalid value for `price`: a number is required, but `cheap` is not a number",
        ]
    );
    // A complete catalog knows every provider there is.
    assert_eq!(
        messages("resource bank_account a {}\n"),
        ["unknown resource type `bank_account`"]
    );
}
