//! The generated CRDs: committed output in step with the code, every Flagger field present,
//! structural (as kube-apiserver requires) and with CEL rules that compile.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use serin::api::crd;

const REGENERATE: &str =
    "cargo run -- crds --out-dir crds && cargo run -- crds --out-dir charts/serin/crds";

#[test]
fn committed_crds_match_the_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut drifted = Vec::new();
    for dir in ["crds", "charts/serin/crds"] {
        for (file, c) in crd::all() {
            let committed = std::fs::read_to_string(root.join(dir).join(file)).unwrap_or_default();
            if committed != crd::to_yaml(&c) {
                drifted.push(format!("{dir}/{file}"));
            }
        }
    }
    assert!(
        drifted.is_empty(),
        "crds/ is out of date for {drifted:?}; regenerate with `{REGENERATE}`"
    );
}

/// Property paths of a schema: `spec.analysis.webhooks[].url`, `...headers{}.exact`.
fn paths(schema: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (key, child) in props {
            let p = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            out.insert(p.clone());
            paths(child, &p, out);
        }
    }
    if let Some(items) = schema.get("items") {
        paths(items, &format!("{prefix}[]"), out);
    }
    if let Some(add) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        paths(add, &format!("{prefix}{{}}"), out);
    }
}

#[test]
fn every_flagger_field_exists_in_ours() {
    let flagger_file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/crds/flagger/crd.yaml");
    let text = std::fs::read_to_string(&flagger_file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", flagger_file.display()));
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("Flagger CRD parses");
    let ours: Vec<(String, Value)> = crd::all()
        .iter()
        .map(|(_, c)| (c.spec.names.kind.clone(), crd::served_schema(c)))
        .collect();
    let mut missing = Vec::new();
    for doc in &docs {
        let kind = doc["spec"]["names"]["kind"].as_str().unwrap_or_default();
        let theirs = &doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let (_, our_schema) = ours
            .iter()
            .find(|(k, _)| k == kind)
            .unwrap_or_else(|| panic!("no CRD for {kind}"));
        let (mut want, mut have) = (BTreeSet::new(), BTreeSet::new());
        paths(theirs, "", &mut want);
        paths(our_schema, "", &mut have);
        for p in want.difference(&have) {
            // metadata/apiVersion/kind are the envelope; the API server handles them.
            if !matches!(p.as_str(), "metadata" | "apiVersion" | "kind") {
                missing.push(format!("{kind}.{p}"));
            }
        }
    }
    assert_eq!(docs.len(), 3);
    assert!(
        missing.is_empty(),
        "Flagger fields missing from our CRDs:\n{}",
        missing.join("\n")
    );
}

/// kube-apiserver rejects CRDs whose schema is not structural: every node needs a type unless it is
/// int-or-string or preserves unknown fields.
fn assert_structural(schema: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(obj) = schema.as_object() else {
        return;
    };
    let exempt = obj.contains_key("x-kubernetes-int-or-string")
        || obj.contains_key("x-kubernetes-preserve-unknown-fields");
    if !obj.contains_key("type") && !exempt {
        problems.push(format!("{path}: no type"));
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if obj.contains_key(key) {
            problems.push(format!(
                "{path}: {key} at this level (kube rewrites should have removed it)"
            ));
        }
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            assert_structural(v, &format!("{path}.{k}"), problems);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = obj.get(key).filter(|c| c.is_object()) {
            assert_structural(child, &format!("{path}.{key}"), problems);
        }
    }
}

#[test]
fn schemas_are_structural_and_every_field_is_documented() {
    for (file, c) in crd::all() {
        let schema = crd::served_schema(&c);
        let mut problems = Vec::new();
        assert_structural(&schema, file, &mut problems);
        let mut undocumented = Vec::new();
        fn docs(s: &Value, path: &str, out: &mut Vec<String>) {
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for (k, v) in props {
                    let p = format!("{path}.{k}");
                    if v.get("description").is_none()
                        && !matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
                    {
                        out.push(p.clone());
                    }
                    docs(v, &p, out);
                }
            }
            if let Some(items) = s.get("items") {
                docs(items, &format!("{path}[]"), out);
            }
            if let Some(add) = s.get("additionalProperties").filter(|a| a.is_object()) {
                docs(add, &format!("{path}{{}}"), out);
            }
        }
        docs(&schema, "", &mut undocumented);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(
            undocumented.is_empty(),
            "{file}: fields without a description: {undocumented:?}"
        );
    }
}

#[test]
fn cel_rules_compile() {
    for (file, c) in crd::all() {
        let compiled = kube::core::cel::compile_schema(&crd::served_schema(&c));
        let errors: Vec<String> = compiled
            .compilation_errors()
            .iter()
            .map(|e| format!("{e:?}"))
            .collect();
        assert!(errors.is_empty(), "{file}: {errors:?}");
    }
}

#[test]
fn canary_crd_has_the_names_and_columns_of_the_design() {
    let c = crd::canary();
    assert_eq!(c.metadata.name.as_deref(), Some("canaries.serin.io"));
    assert_eq!(c.spec.names.short_names, Some(vec!["canary".to_string()]));
    assert_eq!(c.spec.names.categories, Some(vec!["all".to_string()]));
    let v = &c.spec.versions[0];
    assert!(
        v.subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
    let cols: Vec<(String, Option<i32>)> = v
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.clone(), c.priority))
        .collect();
    for want in ["Status", "Weight", "FailedChecks", "LastTransitionTime"] {
        assert!(
            cols.iter().any(|(n, p)| n == want && p.is_none()),
            "{want} missing or hidden: {cols:?}"
        );
    }
    for want in ["Interval", "Mirror", "StepWeight", "MaxWeight"] {
        assert!(
            cols.iter().any(|(n, p)| n == want && *p == Some(1)),
            "{want} missing at priority 1: {cols:?}"
        );
    }
}
