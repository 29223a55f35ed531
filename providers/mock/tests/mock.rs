//! The mock provider: store, counts, latency and failure injection.

use std::time::Duration;

use infra_provider_mock::MockProvider;
use infra_provider_sdk::*;
use serde_json::json;

fn attributes(value: serde_json::Value) -> Attributes {
    serde_json::from_value(value).unwrap()
}

fn create_request(config: serde_json::Value) -> CreateRequest {
    CreateRequest {
        type_name: "mock_resource".into(),
        identity: ObjectIdentity::default(),
        config: attributes(config),
        ..Default::default()
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_store_shows_exactly_the_objects_that_exist() {
    let provider = MockProvider::new();
    let a = provider
        .create(create_request(json!({"name": "a"})))
        .await
        .unwrap()
        .state;
    let b = provider
        .create(create_request(json!({"name": "b", "size": 1})))
        .await
        .unwrap()
        .state;
    assert_eq!(provider.objects().len(), 2);
    let updated = provider
        .update(UpdateRequest {
            type_name: "mock_resource".into(),
            identity: ObjectIdentity::default(),
            prior: b.clone(),
            config: attributes(json!({"name": "b", "size": 2})),
            ..Default::default()
        })
        .await
        .unwrap()
        .state;
    assert_eq!(updated["id"], b["id"]);
    assert_eq!(provider.objects()[b["id"].as_str().unwrap()]["size"], 2);
    provider
        .delete(DeleteRequest {
            type_name: "mock_resource".into(),
            identity: ObjectIdentity::default(),
            state: a.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        provider.objects().keys().collect::<Vec<_>>(),
        [b["id"].as_str().unwrap()]
    );
    assert!(provider.remove_outside_infra(b["id"].as_str().unwrap()));
    let gone = provider
        .read(ReadRequest {
            type_name: "mock_resource".into(),
            identity: ObjectIdentity::default(),
            state: updated,
        })
        .await
        .unwrap();
    assert_eq!(gone.state, None, "removed outside infra: drift");
    assert_eq!(
        provider.counts(),
        infra_provider_mock::Counts {
            creates: 2,
            reads: 1,
            read_calls: 1,
            updates: 1,
            deletes: 1,
            data_reads: 0,
        }
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn failures_are_injected_per_operation_and_leave_nothing_behind() {
    let provider = MockProvider::new();
    let error = provider
        .create(create_request(json!({"fail_on": "create"})))
        .await
        .unwrap_err();
    assert_eq!(error.code.as_deref(), Some("MockFailure"));
    assert!(
        provider.objects().is_empty(),
        "a failed create leaves no object"
    );
    let state = provider
        .create(create_request(json!({"fail_on": "delete"})))
        .await
        .unwrap()
        .state;
    let error = provider
        .delete(DeleteRequest {
            type_name: "mock_resource".into(),
            identity: ObjectIdentity::default(),
            state,
        })
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), "MockFailure: injected failure on delete");
    assert_eq!(
        provider.objects().len(),
        1,
        "a failed delete leaves the object"
    );
    assert_eq!(
        provider.validate("mock_resource", &attributes(json!({"fail_on": "explode"})))[0]
            .attribute
            .as_deref(),
        Some("fail_on")
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn latency_is_per_object_or_from_the_provider_block() {
    let provider = MockProvider::new();
    let started = tokio::time::Instant::now();
    provider
        .create(create_request(json!({"latency_ms": 250})))
        .await
        .unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(250));
    provider
        .configure(ConfigureRequest {
            config: attributes(json!({"latency_ms": 50})),
            ..Default::default()
        })
        .await;
    let started = tokio::time::Instant::now();
    provider.create(create_request(json!({}))).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(50));
}
