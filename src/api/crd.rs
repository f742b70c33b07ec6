//! Generation of the three CustomResourceDefinitions from the Rust types (the code is the source of
//! truth; `crds/` holds the committed output and a golden test keeps them equal).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::Value;

use super::{
    AlertProvider, AlertProviderSpec, Canary, CanarySpec, CanaryStatus, MetricTemplate,
    MetricTemplateSpec,
};

/// The CRDs with the file name each is committed under in `crds/`.
pub fn all() -> Vec<(&'static str, CustomResourceDefinition)> {
    let mut template = MetricTemplate::crd();
    restore_field_docs(
        &mut template,
        &[("spec", raw_schema::<MetricTemplateSpec>())],
    );
    let mut alerts = AlertProvider::crd();
    restore_field_docs(&mut alerts, &[("spec", raw_schema::<AlertProviderSpec>())]);
    vec![
        ("serin.io_canaries.yaml", canary()),
        ("serin.io_metrictemplates.yaml", template),
        ("serin.io_alertproviders.yaml", alerts),
    ]
}

fn raw_schema<T: schemars::JsonSchema>() -> Value {
    serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Value::Null)
}

/// kube's rewrite of `Option<T>` hoists T's schema over the field's and so replaces the field's doc
/// comment with the type's (`kubectl explain` would show "Alert severities, lowest first." instead of
/// what the field means). The plain schemars schema still has the field docs: copy them back.
fn restore_field_docs(crd: &mut CustomResourceDefinition, roots: &[(&str, Value)]) {
    let Some(schema) = crd.spec.versions[0].schema.as_mut() else {
        return;
    };
    let Some(props) = schema.open_api_v3_schema.as_mut() else {
        return;
    };
    let mut value = serde_json::to_value(&*props).unwrap_or(Value::Null);
    for (key, raw) in roots {
        let defs = raw.get("$defs").cloned().unwrap_or(Value::Null);
        if let Some(node) = value.pointer_mut(&format!("/properties/{key}")) {
            copy_docs(node, raw, &defs);
        }
    }
    if let Ok(patched) = serde_json::from_value(value) {
        *props = patched;
    }
}

/// Follows `$ref` and unwraps `anyOf: [T, null]` to reach the schema of T.
fn resolve<'a>(raw: &'a Value, defs: &'a Value) -> &'a Value {
    if let Some(name) = raw
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
    {
        return defs.get(name).map_or(raw, |d| resolve(d, defs));
    }
    if let Some(Value::Array(branches)) = raw.get("anyOf")
        && let Some(first) = branches
            .iter()
            .find(|b| b.get("type").and_then(Value::as_str) != Some("null"))
    {
        return resolve(first, defs);
    }
    raw
}

fn copy_docs(node: &mut Value, raw: &Value, defs: &Value) {
    let raw = resolve(raw, defs);
    if let (Some(props), Some(raw_props)) = (
        node.get_mut("properties").and_then(Value::as_object_mut),
        raw.get("properties").and_then(Value::as_object),
    ) {
        for (key, child) in props.iter_mut() {
            let Some(raw_child) = raw_props.get(key) else {
                continue;
            };
            if let (Some(doc), Some(obj)) = (raw_child.get("description"), child.as_object_mut()) {
                obj.insert("description".to_string(), doc.clone());
            }
            copy_docs(child, raw_child, defs);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let (Some(child), Some(raw_child)) = (node.get_mut(key), raw.get(key)) {
            copy_docs(child, raw_child, defs);
        }
    }
}

/// The Canary CRD, with Flagger's empty-string enum members put back: Flagger manifests may say
/// `type: ""` or `severity: ""`, and the serde aliases accept them, so the schema must too.
pub fn canary() -> CustomResourceDefinition {
    let mut crd = Canary::crd();
    restore_field_docs(
        &mut crd,
        &[
            ("spec", raw_schema::<CanarySpec>()),
            ("status", raw_schema::<CanaryStatus>()),
        ],
    );
    if let Some(schema) = crd.spec.versions[0].schema.as_mut()
        && let Some(props) = schema.open_api_v3_schema.as_mut()
    {
        let mut value = serde_json::to_value(&*props).unwrap_or(Value::Null);
        for path in [
            "/properties/spec/properties/analysis/properties/webhooks/items/properties/type/enum",
            "/properties/spec/properties/analysis/properties/alerts/items/properties/severity/enum",
        ] {
            if let Some(Value::Array(members)) = value.pointer_mut(path) {
                members.insert(0, Value::String(String::new()));
            }
        }
        if let Ok(patched) = serde_json::from_value(value) {
            *props = patched;
        }
    }
    crd
}

/// One CRD as YAML, starting with `---`.
pub fn to_yaml(crd: &CustomResourceDefinition) -> String {
    let value = serde_json::to_value(crd).unwrap_or(Value::Null);
    let body = serde_saphyr::to_string(&value).unwrap_or_default();
    format!("---\n{body}")
}

/// All CRDs as one multi-document YAML stream (what `serin crds` prints).
pub fn render_all() -> String {
    all().iter().map(|(_, crd)| to_yaml(crd)).collect()
}

/// The `openAPIV3Schema` of the served version of a CRD, as JSON.
pub fn served_schema(crd: &CustomResourceDefinition) -> Value {
    crd.spec
        .versions
        .iter()
        .find(|v| v.served)
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null)
}
