//! Pure validation of what the CRD schema and its CEL rules cannot say: known providers, parseable
//! durations and URLs, a query source per metric, strategy consistency. Each error names the JSON
//! path and says what is wrong in one sentence. No I/O.

use std::collections::HashSet;
use std::time::Duration;

use super::duration::parse_duration;
pub use super::targets::{Owners, target_conflicts};
pub use super::validate_providers::{validate_alert_provider, validate_metric_template};
use super::{Canary, CanaryAnalysis, CanaryMetric, TargetKind, TargetWorkload};

/// Providers Serin routes traffic with.
pub const SUPPORTED_PROVIDERS: &[&str] = &[
    "kubernetes",
    "gatewayapi",
    "gatewayapi:v1",
    "gatewayapi:v1beta1",
    "istio",
    "linkerd",
    "nginx",
    "skipper",
    "contour",
    "traefik",
    "apisix",
    "kuma",
    "gloo",
    "knative",
];

/// Providers Flagger knows that Serin does not implement (yet): reported distinctly from typos.
pub const FLAGGER_ONLY_PROVIDERS: &[&str] = &[
    "appmesh",
    "appmesh:v1beta2",
    "osm",
    "smi:v1alpha1",
    "smi:v1alpha2",
    "smi:v1alpha3",
];

/// The provider the controller uses for Canaries that name none, unless `--mesh-provider` says
/// otherwise.
pub const DEFAULT_PROVIDER: &str = "kubernetes";

/// Names of the metrics Serin computes itself from the router's telemetry.
pub const BUILTIN_METRICS: &[&str] = &["request-success-rate", "request-duration"];

/// One validation failure: the JSON path of the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path such as `spec.analysis.webhooks[0].url`.
    pub path: String,
    /// One sentence a user understands.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Collected validation errors (shared with `targets`).
#[derive(Default)]
pub(super) struct Errors(Vec<FieldError>);

impl Errors {
    pub(super) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    pub(super) fn duration(&mut self, path: &str, value: Option<&str>, min: Duration) {
        let Some(v) = value else { return };
        match parse_duration(v) {
            Ok(d) if d < min => self.add(
                path,
                format!("'{v}' is shorter than the minimum of {}", human(min)),
            ),
            Ok(_) => {}
            Err(e) => self.add(path, e.to_string()),
        }
    }

    pub(super) fn http_url(&mut self, path: &str, value: &str) {
        match url::Url::parse(value) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            Ok(u) => self.add(
                path,
                format!(
                    "URL scheme '{}' is not supported; use http or https",
                    u.scheme()
                ),
            ),
            Err(e) => self.add(path, format!("is not a valid URL ({e})")),
        }
    }

    pub(super) fn finish(self) -> Result<(), Vec<FieldError>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

/// A duration as people write it: `1s`, `500ms`, `2m`.
fn human(d: Duration) -> String {
    match (d.as_secs(), d.subsec_millis()) {
        (s, 0) if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        (s, 0) => format!("{s}s"),
        _ => format!("{}ms", d.as_millis()),
    }
}

/// Validates a Canary beyond its schema, with the provider it names or, when it names none,
/// [`DEFAULT_PROVIDER`]. Returns every problem found, not only the first.
pub fn validate(canary: &Canary) -> Result<(), Vec<FieldError>> {
    let provider = canary
        .spec
        .provider
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or(DEFAULT_PROVIDER);
    validate_for(canary, provider)
}

/// Validates a Canary beyond its schema, for the provider in effect (`spec.provider`, else the
/// controller's default): the plan must be one that provider can route.
pub fn validate_for(canary: &Canary, provider: &str) -> Result<(), Vec<FieldError>> {
    let mut errs = Errors::default();
    let spec = &canary.spec;
    if spec.provider.as_deref() == Some("") {
        errs.add(
            "spec.provider",
            "must not be empty; omit the field to use the controller's default provider",
        );
    } else {
        check_provider(&mut errs, provider);
    }
    match spec.target_ref.kind {
        TargetKind::Deployment | TargetKind::DaemonSet
            if spec.target_ref.api_version != "apps/v1" =>
        {
            errs.add(
                "spec.targetRef.apiVersion",
                format!(
                    "must be apps/v1 for a {:?}, not '{}'",
                    spec.target_ref.kind, spec.target_ref.api_version
                ),
            )
        }
        _ => {}
    }
    match spec.target_ref.workload() {
        TargetWorkload::CoreService => {
            super::targets::check_service_target(&mut errs, provider, canary)
        }
        TargetWorkload::Deployment | TargetWorkload::DaemonSet | TargetWorkload::KnativeService => {
        }
    }
    super::knative::check(&mut errs, provider, canary);
    if spec.target_ref.kind == TargetKind::DaemonSet && spec.autoscaler_ref.is_some() {
        errs.add(
            "spec.autoscalerRef",
            "a DaemonSet runs one pod per node and cannot be autoscaled; remove autoscalerRef",
        );
    }
    if spec.target_ref.name.is_empty() {
        errs.add("spec.targetRef.name", "must not be empty");
    }
    if let Some(server) = &spec.metrics_server {
        errs.http_url("spec.metricsServer", server);
    }
    if let Some(route) = &spec.route_ref
        && provider != "apisix"
        && !matches!(route.kind.as_str(), "HTTPRoute" | "GRPCRoute")
    {
        errs.add(
            "spec.routeRef.kind",
            format!(
                "'{}' cannot be adopted; use HTTPRoute or GRPCRoute",
                route.kind
            ),
        );
    }
    errs.duration(
        "spec.service.timeout",
        spec.service.timeout.as_deref(),
        Duration::ZERO,
    );
    errs.duration(
        "spec.service.backendTimeout",
        spec.service.backend_timeout.as_deref(),
        Duration::ZERO,
    );
    check_strategy(&mut errs, provider, &spec.analysis);
    super::targets::check_routing(&mut errs, provider, canary);
    super::targets::check_names(&mut errs, canary);
    let mut metric_names = HashSet::new();
    for (i, m) in spec.analysis.metrics.iter().flatten().enumerate() {
        let path = format!("spec.analysis.metrics[{i}]");
        if !metric_names.insert(m.name.as_str()) {
            errs.add(
                format!("{path}.name"),
                format!("metric name '{}' is used twice", m.name),
            );
        }
        check_metric(&mut errs, &path, m);
    }
    check_webhooks(&mut errs, &spec.analysis);
    super::judge::check_judge(&mut errs, spec.analysis.judge.as_ref());
    super::post_promotion::check(&mut errs, canary);
    super::baseline::check(&mut errs, provider, canary);
    errs.finish()
}

/// Flagger providers whose project is retired upstream, with what to move to: one sentence each
/// rather than a generic "unsupported" (issue 18).
fn retired(provider: &str) -> Option<&'static str> {
    match provider.split(':').next() {
        Some("appmesh") => Some(
            "AWS App Mesh is discontinued (since 2026-09-30); route with gatewayapi (Amazon VPC Lattice or any other Gateway API implementation) or linkerd instead",
        ),
        Some("osm") => Some(
            "Open Service Mesh is retired (the project was archived in 2023); route with linkerd or gatewayapi instead",
        ),
        Some("smi") => Some(
            "the SMI specification is retired (archived in 2023); use linkerd, which writes SMI TrafficSplits itself where Linkerd has no Gateway API, or gatewayapi",
        ),
        _ => None,
    }
}

fn check_provider(errs: &mut Errors, provider: &str) {
    if SUPPORTED_PROVIDERS.contains(&provider) {
        return;
    }
    let supported = SUPPORTED_PROVIDERS.join(", ");
    if let Some(why) = retired(provider) {
        errs.add("spec.provider", format!("'{provider}': {why}"));
    } else if FLAGGER_ONLY_PROVIDERS.contains(&provider) {
        errs.add(
            "spec.provider",
            format!(
                "'{provider}' is a Flagger provider Serin does not support; use one of {supported}"
            ),
        );
    } else {
        errs.add(
            "spec.provider",
            format!("unknown provider '{provider}'; use one of {supported}"),
        );
    }
}

fn check_strategy(errs: &mut Errors, provider: &str, a: &CanaryAnalysis) {
    errs.duration(
        "spec.analysis.interval",
        Some(&a.interval),
        Duration::from_secs(1),
    );
    let has_steps = a.step_weight.is_some() || a.step_weights.is_some();
    if a.iterations.is_none() && !has_steps {
        errs.add(
            "spec.analysis",
            "set one of stepWeight, stepWeights or iterations",
        );
    }
    if a.step_weight.is_some() && a.step_weights.is_some() {
        errs.add(
            "spec.analysis.stepWeights",
            "set stepWeight or stepWeights, not both",
        );
    }
    if let Some(weights) = &a.step_weights {
        if weights.is_empty() {
            errs.add("spec.analysis.stepWeights", "must list at least one weight");
        }
        for (i, pair) in weights.windows(2).enumerate() {
            if pair[1] <= pair[0] {
                errs.add(format!("spec.analysis.stepWeights[{}]", i + 1), format!("{} does not exceed the previous weight {}; stepWeights must be strictly ascending", pair[1], pair[0]));
            }
        }
        if let Some(i) = weights.iter().position(|w| *w <= 0) {
            errs.add(
                format!("spec.analysis.stepWeights[{i}]"),
                "weights must be greater than 0",
            );
        }
        if let Some(i) = weights.iter().position(|w| *w > 100) {
            errs.add(
                format!("spec.analysis.stepWeights[{i}]"),
                format!("{} exceeds 100 (a weight is a percentage)", weights[i]),
            );
        }
    }
    if let (Some(step), Some(max)) = (a.step_weight, a.max_weight)
        && step > max
    {
        errs.add(
            "spec.analysis.stepWeight",
            format!("{step} exceeds maxWeight {max}"),
        );
    }
    if a.step_weight == Some(0) {
        errs.add(
            "spec.analysis.stepWeight",
            "must be greater than 0, or the canary would never receive traffic",
        );
    }
    if provider == "kubernetes" && a.iterations.is_none() {
        errs.add(
            "spec.analysis.iterations",
            "the kubernetes provider cannot split traffic (it switches the Service selector, all users at once); use iterations (blue/green) or a mesh/gateway provider (spec.provider or the controller's --mesh-provider)",
        );
    }
    if a.r#match.as_ref().is_some_and(|m| !m.is_empty()) && a.iterations.is_none() {
        errs.add(
            "spec.analysis.iterations",
            "A/B testing (match) needs iterations",
        );
    }
    if let Some(sa) = &a.session_affinity
        && sa.primary_cookie_name.as_deref() == Some(sa.cookie_name.as_str())
    {
        errs.add(
            "spec.analysis.sessionAffinity.primaryCookieName",
            "must differ from cookieName",
        );
    }
}

pub(super) fn check_metric(errs: &mut Errors, path: &str, m: &CanaryMetric) {
    let builtin = BUILTIN_METRICS.contains(&m.name.as_str());
    if !builtin && m.template_ref.is_none() && m.query.is_none() {
        errs.add(
            path,
            format!(
                "metric '{}' is not built in ({}) and has neither templateRef nor query",
                m.name,
                BUILTIN_METRICS.join(", ")
            ),
        );
    }
    if m.template_ref.as_ref().is_some_and(|t| t.name.is_empty()) {
        errs.add(format!("{path}.templateRef.name"), "must not be empty");
    }
    if m.template_ref.is_some() && m.query.is_some() {
        errs.add(
            format!("{path}.query"),
            "set templateRef or query, not both",
        );
    }
    super::judge::check_compare(errs, path, m);
    if m.compare.is_none()
        && m.threshold.is_none()
        && m.threshold_range
            .as_ref()
            .is_none_or(|r| r.min.is_none() && r.max.is_none())
    {
        errs.add(
            format!("{path}.thresholdRange"),
            format!(
                "metric '{}' has no bound; set thresholdRange.min and/or max",
                m.name
            ),
        );
    }
    if let Some(r) = &m.threshold_range
        && let (Some(min), Some(max)) = (r.min, r.max)
        && min > max
    {
        errs.add(
            format!("{path}.thresholdRange"),
            format!("min {min} exceeds max {max}"),
        );
    }
    errs.duration(
        &format!("{path}.interval"),
        m.interval.as_deref(),
        Duration::from_secs(1),
    );
}

fn check_webhooks(errs: &mut Errors, a: &CanaryAnalysis) {
    let mut names = HashSet::new();
    for (i, w) in a.webhooks.iter().flatten().enumerate() {
        let path = format!("spec.analysis.webhooks[{i}]");
        if !names.insert(w.name.as_str()) {
            errs.add(
                format!("{path}.name"),
                format!("webhook name '{}' is used twice", w.name),
            );
        }
        errs.http_url(&format!("{path}.url"), &w.url);
        errs.duration(
            &format!("{path}.timeout"),
            w.timeout.as_deref(),
            Duration::from_secs(1),
        );
    }
    let mut alert_names = HashSet::new();
    for (i, alert) in a.alerts.iter().flatten().enumerate() {
        if alert.provider_ref.name.is_empty() {
            errs.add(
                format!("spec.analysis.alerts[{i}].providerRef.name"),
                "must not be empty",
            );
        }
        if !alert_names.insert(alert.name.as_str()) {
            errs.add(
                format!("spec.analysis.alerts[{i}].name"),
                format!("alert name '{}' is used twice", alert.name),
            );
        }
    }
}
