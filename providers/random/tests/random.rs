//! The random provider through the SDK contract.

use std::collections::BTreeSet;

use infra_provider_random::RandomProvider;
use infra_provider_sdk::*;
use serde_json::json;

use infra_provider_sdk::run_ready as run;

fn create(type_name: &str, config: serde_json::Value) -> Attributes {
    let provider: Box<dyn Provider> = Box::new(RandomProvider);
    run(provider.create(CreateRequest {
        type_name: type_name.into(),
        identity: ObjectIdentity::default(),
        config: serde_json::from_value(config).unwrap(),
        ..Default::default()
    }))
    .expect("create")
    .state
}

#[test]
fn random_id_gives_the_same_bytes_in_every_encoding() {
    let state = create(
        "random_id",
        json!({"byte_length": 8, "keepers": {"ami": "ami-1"}}),
    );
    let hex = state["hex"].as_str().unwrap();
    assert_eq!(hex.len(), 16);
    let value = u64::from_str_radix(hex, 16).unwrap();
    assert_eq!(state["dec"], json!(value.to_string()));
    let url = state["b64_url"].as_str().unwrap();
    assert_eq!(url.len(), 11, "8 bytes, unpadded");
    assert!(
        url.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    );
    assert_eq!(state["id"], state["b64_url"]);
    assert!(state["b64_std"].as_str().unwrap().ends_with('='));
    assert_eq!(
        state["keepers"],
        json!({"ami": "ami-1"}),
        "arguments are kept in the state"
    );
    assert_ne!(
        create("random_id", json!({"byte_length": 8}))["hex"],
        state["hex"],
        "new bytes each time"
    );
}

#[test]
fn random_id_encodings_match_a_reference_implementation() {
    use base64::Engine as _;
    for length in [1, 2, 3, 4, 5, 16, 33] {
        let state = create("random_id", json!({ "byte_length": length }));
        let hex = state["hex"].as_str().unwrap();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(bytes.len(), length);
        assert_eq!(
            state["b64_std"],
            json!(base64::engine::general_purpose::STANDARD.encode(&bytes))
        );
        assert_eq!(
            state["b64_url"],
            json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes))
        );
    }
}

#[test]
fn random_password_uses_the_enabled_classes_and_is_sensitive() {
    for _ in 0..20 {
        let state = create(
            "random_password",
            json!({"length": 12, "upper": false, "special": false}),
        );
        let password = state["result"].as_str().unwrap();
        assert_eq!(password.len(), 12);
        assert!(
            password
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "{password}"
        );
        assert!(
            password.chars().any(|c| c.is_ascii_lowercase())
                && password.chars().any(|c| c.is_ascii_digit()),
            "{password}"
        );
    }
    let schema = RandomProvider.schema();
    let result = &schema.resources["random_password"].attributes["result"];
    assert!(result.sensitive && result.is_computed());
}

#[test]
fn random_integer_covers_its_whole_range() {
    let seen: BTreeSet<i64> = (0..300)
        .map(|_| {
            create("random_integer", json!({"min": 5, "max": 7}))["result"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(seen, BTreeSet::from([5, 6, 7]));
    let single = create("random_integer", json!({"min": -3, "max": -3}));
    assert_eq!(
        (single["result"].as_i64(), single["id"].as_str()),
        (Some(-3), Some("-3"))
    );
}

#[test]
fn every_argument_forces_a_new_value_and_values_stay_put() {
    let schema = RandomProvider.schema();
    for (type_name, resource) in &schema.resources {
        for (name, attribute) in &resource.attributes {
            if attribute.is_settable() {
                assert!(
                    attribute.force_new,
                    "{type_name}.{name} must force a new value"
                );
            }
        }
    }
    let provider: Box<dyn Provider> = Box::new(RandomProvider);
    let state = create("random_id", json!({"byte_length": 4}));
    let read = run(provider.read(ReadRequest {
        type_name: "random_id".into(),
        identity: ObjectIdentity::default(),
        state: state.clone(),
    }))
    .unwrap();
    assert_eq!(
        read.state,
        Some(state.clone()),
        "refresh keeps what was generated"
    );
    run(provider.delete(DeleteRequest {
        type_name: "random_id".into(),
        identity: ObjectIdentity::default(),
        state,
    }))
    .unwrap();
}

#[test]
fn impossible_settings_are_reported_on_the_attribute() {
    let provider = RandomProvider;
    let attributes =
        |value: serde_json::Value| -> Attributes { serde_json::from_value(value).unwrap() };
    let problems = provider.validate("random_integer", &attributes(json!({"min": 9, "max": 1})));
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].attribute.as_deref(), Some("min"));
    assert_eq!(
        provider.validate("random_id", &attributes(json!({"byte_length": 0})))[0].summary,
        "`byte_length` must be between 1 and 1024"
    );
    let none = attributes(
        json!({"length": 8, "upper": false, "lower": false, "numeric": false, "special": false}),
    );
    assert_eq!(
        provider.validate("random_password", &none)[0].summary,
        "every character class is disabled"
    );
    assert!(
        provider
            .validate("random_password", &attributes(json!({"length": 8})))
            .is_empty()
    );
}
