//! The `MetricTemplate` kind: a reusable query and the provider that answers it. Pure data.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// MetricTemplateSpec holds a query with `{{ variable }}` placeholders and the metrics provider that
/// runs it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "serin.io",
    version = "v1beta1",
    kind = "MetricTemplate",
    namespaced,
    doc = "MetricTemplate is a reusable metric query (Prometheus, Datadog, New Relic, Dynatrace, Graphite, InfluxDB, Splunk, Google Cloud Monitoring, CloudWatch, Keptn, an External Metrics API or a JSON web endpoint) that Canaries reference from spec.analysis.metrics[].templateRef.",
    printcolumn(name = "Provider", type_ = "string", json_path = ".spec.provider.type")
)]
#[serde(rename_all = "camelCase")]
pub struct MetricTemplateSpec {
    /// The metrics provider that runs the query.
    pub provider: MetricProviderSpec,
    /// The query, with placeholders such as {{ namespace }}, {{ target }}, {{ interval }} and
    /// {{ variables.<key> }}.
    #[schemars(length(min = 1))]
    pub query: String,
}

/// Where and how a template's query is run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricProviderSpec {
    /// Kind of metrics provider.
    pub r#type: MetricProviderType,
    /// Address of the provider's API; for prometheus the Canary's metricsServer or the controller's
    /// default when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Extra HTTP headers sent with every query, by header name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, Vec<String>>>,
    /// Secret (in the template's namespace) with credentials under the keys Flagger names for the
    /// provider (`token`, or `username` and `password`, for prometheus; `datadog_api_key`...);
    /// `address` overrides the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
    /// Region of the provider (cloudwatch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Skip verification of the provider's TLS certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
    /// For the web provider: a JSON request body (placeholders allowed); when set, the request is
    /// a POST instead of a GET. The query is then the JSONPath of the value in the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// A reference to a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the Secret.
    pub name: String,
}

/// Kinds of metrics provider: Flagger's names, each implemented (README "Metric checks" lists the
/// Secret keys of each), and Serin's `web`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MetricProviderType {
    /// Prometheus HTTP API.
    #[default]
    Prometheus,
    /// Datadog metrics query API.
    Datadog,
    /// A generic HTTP endpoint returning JSON, the value picked by a JSONPath (Serin's addition).
    Web,
    /// InfluxDB v2: a Flux query.
    Influxdb,
    /// A Kubernetes External Metrics API (external.metrics.k8s.io) server.
    Externalmetrics,
    /// Google Cloud Monitoring: MQL or PromQL.
    Stackdriver,
    /// Amazon CloudWatch GetMetricData.
    Cloudwatch,
    /// New Relic NRQL.
    Newrelic,
    /// Graphite's render API.
    Graphite,
    /// Dynatrace metrics v2 query API.
    Dynatrace,
    /// Keptn's KeptnMetric and Analysis objects.
    Keptn,
    /// Splunk Observability SignalFlow.
    Splunk,
}

impl MetricProviderType {
    /// Whether Serin has a provider implementation for this type.
    pub fn is_supported(self) -> bool {
        // Every Flagger provider is implemented; kept so that a future name can be accepted by
        // the schema before it is implemented, and refused with a clear error meanwhile.
        true
    }
}
