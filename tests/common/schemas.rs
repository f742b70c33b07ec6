//! Helpers of the generated-object schema tests: the official CRD schemas in ../shared/crds, the
//! example Canaries under any provider, the routes of each strategy, and the API server's checks.

use std::path::Path;

use serde_json::{Value, json};
use serin::analysis::Routes;
use serin::api::Canary;

pub fn crd_schema(file: &str, version: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/crds")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let crd: Value = serde_saphyr::from_str(&text).unwrap();
    crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == version)
        .unwrap_or_else(|| panic!("{file} serves no {version}"))["schema"]["openAPIV3Schema"]
        .clone()
}

/// The example Canaries, with the provider of each replaced by `provider`.
pub fn example_canaries(provider: &str) -> Vec<(String, Canary)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_saphyr::from_multiple::<Value>(&text).unwrap() {
            if doc["kind"] != "Canary" {
                continue;
            }
            // A Knative Service target has no Services of Serin's for other routers to route.
            if doc["spec"]["targetRef"]["apiVersion"] == serin::api::KNATIVE_SERVING_API_VERSION {
                continue;
            }
            let mut c: Canary = serde_json::from_value(doc).unwrap();
            c.metadata.uid = Some("0d0a1f2e-1111-2222-3333-444455556666".into());
            c.spec.provider = Some(provider.into());
            out.push((path.file_name().unwrap().to_string_lossy().into_owned(), c));
        }
    }
    assert!(out.len() >= 6, "examples found: {}", out.len());
    out
}

pub fn strategies() -> Vec<(&'static str, Routes)> {
    vec![
        ("primary", Routes::PRIMARY),
        ("step", Routes::split(30)),
        ("canary", Routes::CANARY),
        (
            "mirror",
            Routes {
                mirror: true,
                ..Routes::PRIMARY
            },
        ),
        (
            "ab",
            Routes {
                ab_match: true,
                ..Routes::PRIMARY
            },
        ),
    ]
}

pub fn owner() -> Value {
    json!({"apiVersion": "serin.io/v1beta1", "kind": "Canary", "name": "podinfo", "uid": "0d0a1f2e-1111-2222-3333-444455556666", "controller": true, "blockOwnerDeletion": true})
}

pub fn assert_valid(schema: &Value, obj: &Value, what: &str) {
    // A null where the schema wants a value is refused by the API server (nullable aside).
    let causes = serin::schema::validate(schema, obj, None);
    assert!(causes.is_empty(), "{what} (before defaults): {causes:?}");
    let defaulted = serin::schema::apply_defaults(schema, obj);
    let causes = serin::schema::validate(schema, &defaulted, None);
    assert!(
        causes.is_empty(),
        "{what}: {causes:?}\n{}",
        serde_json::to_string_pretty(obj).unwrap()
    );
    let unknown = serin::schema::unknown_fields(schema, obj);
    assert!(
        unknown.is_empty(),
        "{what}: fields the API server would drop: {unknown:?}"
    );
}
