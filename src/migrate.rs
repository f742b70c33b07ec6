//! `serin migrate`: Flagger's `flagger.app/v1beta1` Canary, MetricTemplate and AlertProvider
//! manifests to `serin.io/v1beta1`. Field names are Flagger's, so conversion is the apiVersion plus
//! dropping what Serin has no field for; every dropped field and every remaining problem (found
//! by the same checks as `serin check`) is reported. Other documents pass through unchanged.
//! Pure: text in, text and notes out.

use serde_json::Value;

use crate::api;
use crate::manifest::{check_document_with, parse_documents, served_schema_of};

/// The converted stream and what could not be carried over.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Migrated {
    /// Every document, converted where it was Flagger's, as a YAML stream.
    pub yaml: String,
    /// Flagger objects converted.
    pub converted: usize,
    /// What could not be carried over, each `Kind namespace/name: path: why`.
    pub notes: Vec<String>,
}

/// Converts the documents of one YAML stream, checking Canaries that name no provider with
/// `mesh_provider` (what `serin controller --mesh-provider` will give them).
pub fn migrate(text: &str, mesh_provider: &str) -> Result<Migrated, String> {
    let mut out = Migrated::default();
    let mut docs = Vec::new();
    for mut doc in parse_documents(text)? {
        if doc.get("apiVersion").and_then(Value::as_str) == Some(api::FLAGGER_API_VERSION) {
            convert(&mut doc, mesh_provider, &mut out);
        }
        docs.push(doc);
    }
    out.yaml = docs
        .iter()
        .map(|d| serde_saphyr::to_string(d).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?
        .join("---\n");
    Ok(out)
}

fn convert(doc: &mut Value, mesh_provider: &str, out: &mut Migrated) {
    let kind = doc["kind"].as_str().unwrap_or_default().to_string();
    let ns = doc["metadata"]["namespace"].as_str().unwrap_or("default");
    let who = format!(
        "{kind} {ns}/{}",
        doc["metadata"]["name"].as_str().unwrap_or("<no name>")
    );
    doc["apiVersion"] = Value::String(api::API_VERSION.to_string());
    out.converted += 1;
    let Some(schema) = served_schema_of(&kind) else {
        out.notes.push(format!(
            "{who}: kind: not one of Canary, MetricTemplate, AlertProvider"
        ));
        return;
    };
    for path in crate::schema::prune_unknown(schema, doc) {
        out.notes
            .push(format!("{who}: {path}: dropped (Serin has no such field)"));
    }
    for error in check_document_with(doc, mesh_provider).errors {
        out.notes.push(format!("{who}: {error}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANARY: &str = "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata:\n  name: podinfo\n  namespace: test\nspec:\n  provider: istio\n  targetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: podinfo\n  service:\n    port: 9898\n  analysis:\n    interval: 1m\n    threshold: 5\n    maxWeight: 50\n    stepWeight: 10\n";

    #[test]
    fn a_flagger_canary_becomes_a_serin_canary_field_for_field() {
        let m = migrate(CANARY, "kubernetes").unwrap();
        assert_eq!((m.converted, m.notes.clone()), (1, vec![]));
        let docs = parse_documents(&m.yaml).unwrap();
        let before = parse_documents(CANARY).unwrap();
        assert_eq!(docs[0]["apiVersion"], "serin.io/v1beta1");
        assert_eq!(docs[0]["spec"], before[0]["spec"]);
        assert!(crate::manifest::check_document(&docs[0]).errors.is_empty());
    }

    #[test]
    fn what_cannot_be_carried_over_is_named() {
        let text = CANARY
            .replace("provider: istio", "provider: appmesh")
            .replace("  service:\n", "  notAServinField: 1\n  service:\n");
        let m = migrate(&text, "kubernetes").unwrap();
        assert!(
            m.notes
                .iter()
                .any(|n| n.contains("spec.provider") && n.contains("appmesh")),
            "{:?}",
            m.notes
        );
        assert!(
            m.notes.iter().any(|n| n
                == "Canary test/podinfo: spec.notAServinField: dropped (Serin has no such field)"),
            "{:?}",
            m.notes
        );
    }

    #[test]
    fn other_documents_pass_through_and_bad_yaml_is_an_error() {
        let text = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: b\n---\n{CANARY}"
        );
        let m = migrate(&text, "kubernetes").unwrap();
        let docs = parse_documents(&m.yaml).unwrap();
        assert_eq!(docs[0]["kind"], "ConfigMap");
        assert_eq!(docs[1]["apiVersion"], "serin.io/v1beta1");
        assert!(migrate("a: [", "kubernetes").is_err());
    }
}
