//! Validation of the provider objects a Canary refers to, beyond their schemas: `MetricTemplate`
//! (a provider Serin supports, what it cannot run without, a parseable address, a query) and
//! `AlertProvider` (one address source, parseable URLs). Same error shape as the Canary's
//! (`validate::Errors`: JSON path and one sentence). Pure, no I/O.

use super::validate::{Errors, FieldError};
use super::{AlertProvider, MetricProviderType, MetricTemplate};

/// Validates a MetricTemplate beyond its schema.
pub fn validate_metric_template(t: &MetricTemplate) -> Result<(), Vec<FieldError>> {
    let mut errs = Errors::default();
    let ty = t.spec.provider.r#type;
    if !ty.is_supported() {
        let name = serde_json::to_value(ty)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        errs.add(
            "spec.provider.type",
            format!("'{name}' is a provider Serin does not support"),
        );
    }
    // What each provider cannot run without (its Secret keys are checked when it runs).
    let needs_secret = matches!(
        ty,
        MetricProviderType::Newrelic
            | MetricProviderType::Dynatrace
            | MetricProviderType::Splunk
            | MetricProviderType::Stackdriver
    );
    if needs_secret && t.spec.provider.secret_ref.is_none() {
        errs.add(
            "spec.provider.secretRef",
            "this provider reads its credentials (or project) from a Secret",
        );
    }
    if ty == MetricProviderType::Cloudwatch
        && t.spec.provider.region.as_deref().unwrap_or("").is_empty()
    {
        errs.add(
            "spec.provider.region",
            "the cloudwatch provider needs the region of the metrics",
        );
    }
    // A web address may hold placeholders ({{ namespace }}...); it is checked once rendered.
    if let Some(address) = &t.spec.provider.address
        && !address.contains("{{")
    {
        errs.http_url("spec.provider.address", address);
    }
    if ty == MetricProviderType::Web && t.spec.provider.address.is_none() {
        errs.add(
            "spec.provider.address",
            "the web provider needs the address of the JSON endpoint",
        );
    }
    if t.spec.provider.body.is_some() && ty != MetricProviderType::Web {
        errs.add("spec.provider.body", "only the web provider sends a body");
    }
    if t.spec.query.trim().is_empty() {
        errs.add("spec.query", "must not be empty");
    }
    errs.finish()
}

/// Validates an AlertProvider beyond its schema.
pub fn validate_alert_provider(p: &AlertProvider) -> Result<(), Vec<FieldError>> {
    let mut errs = Errors::default();
    match (&p.spec.address, &p.spec.secret_ref) {
        (Some(_), Some(_)) => {
            errs.add("spec.secretRef", "set exactly one of address and secretRef")
        }
        (None, None) => errs.add(
            "spec.address",
            "set address or secretRef (a Secret with key 'address')",
        ),
        _ => {}
    }
    if let Some(address) = &p.spec.address {
        errs.http_url("spec.address", address);
    }
    if let Some(proxy) = &p.spec.proxy {
        errs.http_url("spec.proxy", proxy);
    }
    errs.finish()
}
