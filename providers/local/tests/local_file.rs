//! local_file through the SDK contract, on the real file system.

use infra_provider_local::LocalProvider;
use infra_provider_sdk::run_ready as run;
use infra_provider_sdk::*;
use serde_json::json;

fn attributes(value: serde_json::Value) -> Attributes {
    serde_json::from_value(value).unwrap()
}

fn read(provider: &dyn Provider, state: &Attributes) -> Option<Attributes> {
    run(provider.read(ReadRequest {
        type_name: "local_file".into(),
        identity: ObjectIdentity::default(),
        state: state.clone(),
    }))
    .unwrap()
    .state
}

#[test]
fn a_file_is_created_read_back_updated_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/hello.txt");
    let path_text = path.to_str().unwrap().to_string();
    let provider: Box<dyn Provider> = Box::new(LocalProvider::new());
    let created = run(provider.create(CreateRequest {
        type_name: "local_file".into(),
        identity: ObjectIdentity::default(),
        config: attributes(
            json!({"path": path_text, "content": "hello\n", "file_permission": "0600"}),
        ),
        ..Default::default()
    }))
    .unwrap()
    .state;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "hello\n");
    assert_eq!(
        created["id"],
        "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert_eq!(
        read(provider.as_ref(), &created).as_ref(),
        Some(&created),
        "no drift right after create"
    );

    let updated = run(provider.update(UpdateRequest {
        type_name: "local_file".into(),
        identity: ObjectIdentity::default(),
        prior: created.clone(),
        config: attributes(json!({"path": path_text, "content": "changed\n"})),
        ..Default::default()
    }))
    .unwrap()
    .state;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "changed\n");
    assert_eq!(
        updated["file_permission"], "0600",
        "an unset permission keeps the provider's value"
    );

    run(provider.delete(DeleteRequest {
        type_name: "local_file".into(),
        identity: ObjectIdentity::default(),
        state: updated.clone(),
    }))
    .unwrap();
    assert!(!path.exists());
    run(provider.delete(DeleteRequest {
        type_name: "local_file".into(),
        identity: ObjectIdentity::default(),
        state: updated,
    }))
    .expect("deleting a file that is already gone is fine");
}

#[test]
fn edits_and_deletions_outside_infra_are_drift() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.ini");
    let provider = LocalProvider::new();
    let state = run(provider.create(CreateRequest {
        type_name: "local_file".into(),
        identity: ObjectIdentity::default(),
        config: attributes(json!({"path": path.to_str().unwrap(), "content": "a=1\n"})),
        ..Default::default()
    }))
    .unwrap()
    .state;
    assert_eq!(state["file_permission"], "0644", "the default permission");
    std::fs::write(&path, "a=2\n").unwrap();
    let refreshed = read(&provider, &state).expect("still there");
    assert_eq!(refreshed["content"], "a=2\n");
    assert_ne!(refreshed["id"], state["id"]);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        read(&provider, &state),
        None,
        "a deleted file is gone, not an error"
    );
}

#[test]
fn import_adopts_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("existing.txt");
    std::fs::write(&path, "already here").unwrap();
    let provider = LocalProvider::new();
    let imported = run(provider.import(ImportRequest {
        type_name: "local_file".into(),
        identity: ObjectIdentity::default(),
        id: path.to_str().unwrap().into(),
    }))
    .unwrap()
    .state;
    assert_eq!(imported["content"], "already here");
    let missing = run(provider.import(ImportRequest {
        type_name: "local_file".into(),
        identity: ObjectIdentity::default(),
        id: dir.path().join("nope").to_str().unwrap().into(),
    }));
    assert_eq!(missing.unwrap_err().code.as_deref(), Some("NotFound"));
}

#[test]
fn bad_permissions_and_paths_are_reported_on_the_attribute() {
    let provider = LocalProvider::new();
    let problems = provider.validate(
        "local_file",
        &attributes(json!({"path": "x", "file_permission": "rw-r--r--"})),
    );
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].attribute.as_deref(), Some("file_permission"));
    assert!(
        provider
            .validate(
                "local_file",
                &attributes(json!({"path": "x", "file_permission": "0640"}))
            )
            .is_empty()
    );
    assert_eq!(
        provider.validate("local_file", &attributes(json!({"path": ""})))[0].summary,
        "`path` must not be empty"
    );
    let schema = provider.schema();
    assert!(schema.resources["local_file"].attributes["path"].force_new);
    assert!(
        !schema.resources["local_file"].attributes["content"].force_new,
        "content updates in place"
    );
}
