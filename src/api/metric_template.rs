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
    doc = "MetricTemplate is a reusable metric query (Prometheus, Datadog or a JSON web endpoint) that Canaries reference from spec.analysis.metrics[].templateRef.",
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
    /// Secret (in the template's namespace) with credentials: `token` for a bearer token, or
    /// `username` and `password` for basic auth; `address` overrides the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
    /// Region of the provider, for cloud providers.
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

/// Kinds of metrics provider. Flagger's names are accepted; Serin implements prometheus, datadog and
/// web, and `serin check` reports the others as not supported.
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
    /// InfluxDB (Flagger name; not supported by Serin).
    Influxdb,
    /// Kubernetes external metrics (Flagger name; not supported by Serin).
    Externalmetrics,
    /// Google Cloud Monitoring (Flagger name; not supported by Serin).
    Stackdriver,
    /// AWS CloudWatch (Flagger name; not supported by Serin).
    Cloudwatch,
    /// New Relic (Flagger name; not supported by Serin).
    Newrelic,
    /// Graphite (Flagger name; not supported by Serin).
    Graphite,
    /// Dynatrace (Flagger name; not supported by Serin).
    Dynatrace,
    /// Keptn (Flagger name; not supported by Serin).
    Keptn,
    /// Splunk (Flagger name; not supported by Serin).
    Splunk,
}

impl MetricProviderType {
    /// Whether Serin has a provider implementation for this type.
    pub fn is_supported(self) -> bool {
        matches!(
            self,
            Self::Prometheus
                | Self::Datadog
                | Self::Web
                | Self::Newrelic
                | Self::Dynatrace
                | Self::Graphite
                | Self::Influxdb
                | Self::Splunk
                | Self::Stackdriver
                | Self::Cloudwatch
                | Self::Keptn
                | Self::Externalmetrics
        )
    }
}
