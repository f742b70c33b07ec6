//! Reading user manifests (what `serin check` and `serin migrate` work on): multi-document YAML to
//! JSON values, then each Serin or Flagger object is held to our CRD schema (unknown fields, types,
//! bounds, CEL rules) and to `api::validate`. Pure: the caller reads the files.

use std::sync::OnceLock;

use serde_json::Value;

use crate::api::{self, AlertProvider, Canary, MetricTemplate, crd};
use crate::schema;

/// What checking one document found.
#[derive(Debug, Clone, PartialEq)]
pub struct DocReport {
    /// Kind, e.g. Canary; empty when the document has none.
    pub kind: String,
    /// `namespace/name` (namespace `default` when unset).
    pub name: String,
    /// The document was a `flagger.app/v1beta1` object (checked as if converted).
    pub from_flagger: bool,
    /// Every problem, each as `path: message`.
    pub errors: Vec<String>,
    /// Not a Serin or Flagger object (e.g. the Deployment next to a Canary): not checked.
    pub skipped: bool,
}

/// Splits a YAML stream into documents, skipping empty ones. The error is one line with the position.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, String> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|e| one_line(&e.to_string()))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// Keeps the first line of a multi-line error (parsers like to add snippets).
pub fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("invalid input")
        .to_string()
}

/// The served schema of one of Serin's kinds (Canary, MetricTemplate, AlertProvider).
pub fn served_schema_of(kind: &str) -> Option<&'static Value> {
    schema_for(kind)
}

fn schema_for(kind: &str) -> Option<&'static Value> {
    static SCHEMAS: OnceLock<Vec<(String, Value)>> = OnceLock::new();
    let all = SCHEMAS.get_or_init(|| {
        crd::all()
            .into_iter()
            .map(|(_, c)| (c.spec.names.kind.clone(), crd::served_schema(&c)))
            .collect()
    });
    all.iter().find(|(k, _)| k == kind).map(|(_, s)| s)
}

/// Checks one document: envelope, unknown fields, schema and CEL rules, then `api::validate`
/// with the default provider (a Canary without `spec.provider` gets `kubernetes`).
pub fn check_document(doc: &Value) -> DocReport {
    check_document_with(doc, api::validate::DEFAULT_PROVIDER)
}

/// `check_document` for a controller whose default provider (`--mesh-provider`) is `provider`.
pub fn check_document_with(doc: &Value, provider: &str) -> DocReport {
    let kind = doc
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let meta = doc.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("<no name>");
    let ns = meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let api_version = doc
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut report = DocReport {
        kind: kind.clone(),
        name: format!("{ns}/{name}"),
        from_flagger: api_version == api::FLAGGER_API_VERSION,
        errors: Vec::new(),
        skipped: false,
    };
    if !doc.is_object() {
        report
            .errors
            .push("document is not a YAML mapping".to_string());
        return report;
    }
    if api_version != api::API_VERSION && !report.from_flagger {
        report.skipped = true;
        return report;
    }
    let Some(schema) = schema_for(&kind) else {
        report.errors.push(format!(
            "kind: '{kind}' is not one of Canary, MetricTemplate, AlertProvider"
        ));
        return report;
    };
    if meta.and_then(|m| m.get("name")).is_none() {
        report
            .errors
            .push("metadata.name: Required value".to_string());
    }
    let mut obj = doc.clone();
    obj["apiVersion"] = Value::String(api::API_VERSION.to_string());
    for path in schema::unknown_fields(schema, &obj) {
        report.errors.push(format!("{path}: unknown field"));
    }
    let defaulted = schema::apply_defaults(schema, &obj);
    let causes = schema::validate(schema, &defaulted, None);
    report.errors.extend(causes.iter().map(|c| c.to_string()));
    // Type, enum and required errors make the typed view meaningless; bounds and patterns do not,
    // so the deeper checks still run and report what the schema cannot see (once per field).
    if !causes.iter().any(|c| c.reason.is_blocking()) {
        let seen: Vec<String> = causes.iter().map(|c| format!("{}: ", c.field)).collect();
        report.errors.extend(
            typed_errors(&kind, defaulted, provider)
                .into_iter()
                .filter(|e| !seen.iter().any(|p| e.starts_with(p.as_str()))),
        );
    }
    report
}

fn typed_errors(kind: &str, value: Value, provider: &str) -> Vec<String> {
    fn run<T: serde::de::DeserializeOwned>(
        value: Value,
        check: impl Fn(&T) -> Result<(), Vec<api::FieldError>>,
    ) -> Vec<String> {
        match serde_json::from_value::<T>(value) {
            Ok(obj) => check(&obj)
                .err()
                .unwrap_or_default()
                .iter()
                .map(|e| e.to_string())
                .collect(),
            Err(e) => vec![one_line(&e.to_string())],
        }
    }
    match kind {
        "Canary" => run::<Canary>(value, |c| {
            let p = c.spec.provider.as_deref().filter(|p| !p.is_empty());
            api::validate::validate_for(c, p.unwrap_or(provider))
        }),
        "MetricTemplate" => run::<MetricTemplate>(value, api::validate::validate_metric_template),
        "AlertProvider" => run::<AlertProvider>(value, api::validate::validate_alert_provider),
        _ => Vec::new(),
    }
}

/// Parses and checks every document of a YAML stream (default provider `provider`).
pub fn check_text(text: &str, provider: &str) -> Result<Vec<DocReport>, String> {
    Ok(parse_documents(text)?
        .iter()
        .map(|d| check_document_with(d, provider))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
apiVersion: serin.io/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  provider: istio
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 9898}
  analysis:
    interval: 1m
    threshold: 5
    stepWeight: 10
    maxWeight: 50
"#;

    #[test]
    fn a_valid_canary_has_no_errors() {
        let reports = check_text(GOOD, "kubernetes").unwrap();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].name, "test/podinfo");
        assert_eq!(reports[0].errors, Vec::<String>::new());
    }

    #[test]
    fn vendor_templates_need_their_secret_or_region() {
        let template = |provider: &str| {
            format!(
                "apiVersion: serin.io/v1beta1\nkind: MetricTemplate\nmetadata: {{name: m, namespace: test}}\nspec:\n  provider: {provider}\n  query: q\n"
            )
        };
        let errors = |provider: &str| {
            check_text(&template(provider), "kubernetes").unwrap()[0]
                .errors
                .clone()
        };
        assert_eq!(
            errors("{type: newrelic}"),
            vec!["spec.provider.secretRef: this provider reads its credentials (or project) from a Secret".to_string()]
        );
        assert_eq!(
            errors("{type: cloudwatch}"),
            vec![
                "spec.provider.region: the cloudwatch provider needs the region of the metrics"
                    .to_string()
            ]
        );
        assert!(errors("{type: stackdriver, secretRef: {name: gcloud}}").is_empty());
        assert!(errors("{type: keptn}").is_empty());
    }

    #[test]
    fn flagger_objects_are_checked_as_converted() {
        let text = GOOD.replace("serin.io/v1beta1", "flagger.app/v1beta1");
        let reports = check_text(&text, "kubernetes").unwrap();
        assert!(reports[0].from_flagger);
        assert!(reports[0].errors.is_empty(), "{:?}", reports[0].errors);
    }

    #[test]
    fn unknown_fields_bounds_and_providers_are_named_by_path() {
        let text = GOOD.replace("maxWeight: 50", "maxWeight: 150\n    fooBar: 1");
        let errors = &check_text(&text, "kubernetes").unwrap()[0].errors;
        assert!(
            errors.contains(&"spec.analysis.fooBar: unknown field".to_string()),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("spec.analysis.maxWeight: Invalid value: 150")),
            "{errors:?}"
        );
        let text = GOOD.replace("provider: istio", "provider: appmesh");
        let errors = &check_text(&text, "kubernetes").unwrap()[0].errors;
        assert_eq!(errors, &vec!["spec.provider: 'appmesh': AWS App Mesh is discontinued (since 2026-09-30); route with gatewayapi (Amazon VPC Lattice or any other Gateway API implementation) or linkerd instead".to_string()]);
        let text = GOOD.replace("provider: istio", "provider: knative");
        let errors = &check_text(&text, "kubernetes").unwrap()[0].errors;
        assert_eq!(errors, &vec!["spec.targetRef: the knative provider splits traffic between the revisions of a Knative Service; target one (apiVersion serving.knative.dev/v1, kind Service)".to_string()]);
        for (provider, says) in [
            ("appmesh:v1beta2", "AWS App Mesh is discontinued"),
            ("osm", "Open Service Mesh is retired"),
            ("smi:v1alpha3", "the SMI specification is retired"),
        ] {
            let text = GOOD.replace("provider: istio", &format!("provider: {provider}"));
            let errors = &check_text(&text, "kubernetes").unwrap()[0].errors;
            let want = format!("spec.provider: '{provider}': {says}");
            assert!(
                errors.len() == 1 && errors[0].starts_with(&want),
                "{errors:?}"
            );
        }
    }

    #[test]
    fn malformed_yaml_is_one_line() {
        let err = check_text("kind: [unclosed", "kubernetes").unwrap_err();
        assert!(!err.contains('\n'));
        assert!(!err.is_empty());
    }

    #[test]
    fn foreign_documents_are_skipped_and_unknown_serin_kinds_are_errors() {
        let reports = check_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
            "kubernetes",
        )
        .unwrap();
        assert!(reports[0].skipped);
        assert!(reports[0].errors.is_empty());
        let reports = check_text(
            "apiVersion: serin.io/v1beta1\nkind: Rollout\nmetadata: {name: x}\n",
            "kubernetes",
        )
        .unwrap();
        assert_eq!(
            reports[0].errors,
            vec!["kind: 'Rollout' is not one of Canary, MetricTemplate, AlertProvider".to_string()]
        );
    }

    #[test]
    fn pattern_errors_do_not_hide_deeper_checks() {
        let text = GOOD.replace(
            "interval: 1m",
            "interval: \"10\"\n    webhooks: [{name: a, url: \"ftp://x/\"}]",
        );
        let errors = &check_text(&text, "kubernetes").unwrap()[0].errors;
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("spec.analysis.interval: Invalid value: \"10\""));
        assert_eq!(
            errors[1],
            "spec.analysis.webhooks[0].url: URL scheme 'ftp' is not supported; use http or https"
        );
    }
}
