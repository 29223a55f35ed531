//! The contract is implementable and object-safe: an in-memory provider
//! behind `Box<dyn Provider>`, driven without a runtime (its futures never
//! wait).

use std::collections::BTreeMap;
use std::sync::Mutex;

use infra_provider_sdk::*;
use serde_json::json;

use infra_provider_sdk::run_ready as run;

#[derive(Default)]
struct Notes {
    objects: Mutex<BTreeMap<String, Attributes>>,
}

impl Provider for Notes {
    fn name(&self) -> &'static str {
        "notes"
    }

    fn schema(&self) -> Schema {
        let note = ResourceSchema::new(
            "a note kept in memory",
            [
                ("text", Attribute::required(AttributeType::String)),
                ("id", Attribute::computed(AttributeType::String)),
            ],
        );
        Schema {
            resources: [("notes_note".to_string(), note)].into(),
            data_sources: BTreeMap::new(),
        }
    }

    fn create(
        &self,
        request: CreateRequest,
    ) -> BoxFuture<'_, Result<ObjectResponse, ProviderError>> {
        Box::pin(async move {
            let mut objects = self.objects.lock().unwrap();
            let id = format!("note-{}", objects.len() + 1);
            let mut state = request.config;
            state.insert("id".into(), json!(id));
            objects.insert(id, state.clone());
            Ok(ObjectResponse::from(state))
        })
    }

    fn read(&self, request: ReadRequest) -> BoxFuture<'_, Result<ReadResponse, ProviderError>> {
        Box::pin(async move {
            let id = request.state["id"].as_str().unwrap_or_default().to_string();
            Ok(ReadResponse::from(
                self.objects.lock().unwrap().get(&id).cloned(),
            ))
        })
    }

    fn update(
        &self,
        request: UpdateRequest,
    ) -> BoxFuture<'_, Result<ObjectResponse, ProviderError>> {
        Box::pin(async move {
            let mut state = request.config;
            state.insert("id".into(), request.prior["id"].clone());
            let id = state["id"].as_str().unwrap_or_default().to_string();
            self.objects.lock().unwrap().insert(id, state.clone());
            Ok(ObjectResponse::from(state))
        })
    }

    fn delete(&self, request: DeleteRequest) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            let id = request.state["id"].as_str().unwrap_or_default().to_string();
            match self.objects.lock().unwrap().remove(&id) {
                Some(_) => Ok(()),
                None => Err(ProviderError::new(format!("no note {id}")).with_code("NotFound")),
            }
        })
    }
}

fn identity() -> ObjectIdentity {
    ObjectIdentity {
        address: "notes_note.a".into(),
        lineage: "l".into(),
    }
}

#[test]
fn a_provider_behind_the_trait_object_goes_through_a_lifecycle() {
    let provider: Box<dyn Provider> = Box::new(Notes::default());
    assert_eq!(provider.name(), "notes");
    assert!(provider.schema().resources["notes_note"].attributes["id"].is_computed());
    assert!(run(provider.configure(ConfigureRequest::default())).is_empty());

    let config: Attributes = [("text".to_string(), json!("hello"))].into();
    let created = run(provider.create(CreateRequest {
        type_name: "notes_note".into(),
        identity: identity(),
        config: config.clone(),
        ..Default::default()
    }))
    .unwrap();
    assert_eq!(created.state["id"], "note-1");

    let read = run(provider.read(ReadRequest {
        type_name: "notes_note".into(),
        identity: identity(),
        state: created.state.clone(),
    }))
    .unwrap();
    assert_eq!(read.state.as_ref(), Some(&created.state));

    let updated = run(provider.update(UpdateRequest {
        type_name: "notes_note".into(),
        identity: identity(),
        prior: created.state.clone(),
        config: [("text".to_string(), json!("changed"))].into(),
        ..Default::default()
    }))
    .unwrap();
    assert_eq!(
        (updated.state["id"].as_str(), updated.state["text"].as_str()),
        (Some("note-1"), Some("changed"))
    );

    run(provider.delete(DeleteRequest {
        type_name: "notes_note".into(),
        identity: identity(),
        state: updated.state.clone(),
    }))
    .unwrap();
    let gone = run(provider.read(ReadRequest {
        type_name: "notes_note".into(),
        identity: identity(),
        state: updated.state.clone(),
    }))
    .unwrap();
    assert_eq!(
        gone.state, None,
        "a deleted object reads as gone, not as an error"
    );
    let error = run(provider.delete(DeleteRequest {
        type_name: "notes_note".into(),
        identity: identity(),
        state: updated.state,
    }))
    .unwrap_err();
    assert_eq!(error.to_string(), "NotFound: no note note-1");
}

#[test]
fn defaults_keep_the_proposal_and_refuse_import() {
    let provider: Box<dyn Provider> = Box::new(Notes::default());
    let proposed: PlannedAttributes = [
        ("text".to_string(), Planned::Known(json!("x"))),
        ("id".to_string(), Planned::Unknown),
    ]
    .into();
    let planned = run(provider.plan(PlanRequest {
        type_name: "notes_note".into(),
        identity: identity(),
        prior: None,
        proposed: proposed.clone(),
    }));
    assert_eq!(planned.planned, proposed);
    assert!(planned.requires_replace.is_empty());
    let refused = run(provider.import(ImportRequest {
        type_name: "notes_note".into(),
        identity: identity(),
        id: "note-9".into(),
    }));
    assert!(
        refused
            .unwrap_err()
            .message
            .contains("does not support import")
    );
    assert!(
        provider
            .validate("notes_note", &Attributes::new())
            .is_empty()
    );
}
