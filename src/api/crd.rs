//! Generation of the three CustomResourceDefinitions from the Rust types (the code is the source of
//! truth; `crds/` holds the committed output and a golden test keeps them equal).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::Value;

use super::{AlertProvider, Canary, MetricTemplate};

/// The CRDs with the file name each is committed under in `crds/`.
pub fn all() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        ("serin.io_canaries.yaml", canary()),
        ("serin.io_metrictemplates.yaml", MetricTemplate::crd()),
        ("serin.io_alertproviders.yaml", AlertProvider::crd()),
    ]
}

/// The Canary CRD, with Flagger's empty-string enum members put back: Flagger manifests may say
/// `type: ""` or `severity: ""`, and the serde aliases accept them, so the schema must too.
pub fn canary() -> CustomResourceDefinition {
    let mut crd = Canary::crd();
    if let Some(schema) = crd.spec.versions[0].schema.as_mut() {
        if let Some(props) = schema.open_api_v3_schema.as_mut() {
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
