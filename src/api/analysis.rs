//! `spec.analysis`: the schedule (steps, iterations), the checks (metrics, webhooks) and the alerts
//! of a Canary. Pure data; the decisions made from it live in `crate::analysis`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{StringMap, StringMatch};

/// How a Canary is judged: schedule, checks, hooks and alerts.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.iterations) || has(self.stepWeight) || has(self.stepWeights)", "message": "set one of stepWeight, stepWeights or iterations"},
    {"rule": "!(has(self.stepWeight) && has(self.stepWeights))", "message": "set stepWeight or stepWeights, not both"},
    {"rule": "!has(self.stepWeights) || self.stepWeights.isSorted()", "message": "stepWeights must be ascending"}
]))]
pub struct CanaryAnalysis {
    /// Time between two analysis steps, as a duration such as 30s, 1m or 1m30s (at least 1s).
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub interval: String,
    /// Number of failed checks after which the canary is rolled back.
    #[schemars(range(min = 1))]
    pub threshold: i32,
    /// Number of analysis iterations for A/B testing and blue/green (no weight steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub iterations: Option<i32>,
    /// Highest traffic percentage the canary receives before promotion (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub max_weight: Option<i32>,
    /// Percentage added to the canary's traffic at each step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub step_weight: Option<i32>,
    /// Explicit canary traffic percentages, one per step, strictly ascending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100))]
    pub step_weights: Option<Vec<StepWeight>>,
    /// Percentage moved back to the primary at each promotion step; all at once when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub step_weight_promotion: Option<i32>,
    /// Mirror traffic to the canary (one mirrored step) before shifting it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<bool>,
    /// Percentage of requests mirrored; all when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub mirror_weight: Option<i32>,
    /// Percentage of primary pods that must be available for the primary to count as ready (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub primary_ready_threshold: Option<i32>,
    /// Percentage of canary pods that must be available for the canary to count as ready (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub canary_ready_threshold: Option<i32>,
    /// Request conditions that send a request to the canary (A/B testing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#match: Option<Vec<AnalysisMatch>>,
    /// Metric checks run at every step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Vec<CanaryMetric>>,
    /// Alert providers told about the canary's progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<Vec<CanaryAlert>>,
    /// Webhooks called during the analysis (gates, tests, load generation, notifications).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<Vec<CanaryWebhook>>,
    /// Cookie-based session affinity: a client that reached the canary stays on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<SessionAffinity>,
    /// What a metric query that returns no data counts as: fail (default, as Flagger), skip (neither
    /// pass nor fail) or hold (do not advance; no failed check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_no_data: Option<OnNoData>,
    /// What a metrics provider that cannot be reached (timeout, refused connection, 5xx) means for
    /// the analysis: hold (default: no step forward and no failed check, for at most
    /// progressDeadlineSeconds, then roll back) or fail (count a failed check, as Flagger does).
    /// Serin's field; Flagger has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_provider_error: Option<OnProviderError>,
    /// How metrics with `compare` are judged against the other side (Serin's statistical judge;
    /// Flagger has none). Defaults apply when a metric has `compare` and this is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<super::Judge>,
    /// Start `<target>-baseline`, fresh pods of the primary's (old) version, when the canary first
    /// gets traffic, give it the canary's weight (the primary gets the rest: 100 - 2 x weight, so
    /// the weights are capped at 50), judge the canary against it, and remove it at the end.
    /// Needs a router that can split three ways (gatewayapi, istio, linkerd) and a weighted
    /// canary (stepWeight or stepWeights). Serin's field; Flagger has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<bool>,
    /// After promotion, keep checking metrics for a window and roll back (or alert) on a
    /// regression that shows only under full traffic. Serin's field; Flagger has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_promotion: Option<super::PostPromotion>,
}

/// One entry of `stepWeights`: a canary traffic percentage (values above 100 are capped at 100).
pub type StepWeight = i32;

/// Policy for metric queries that return no data.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnNoData {
    /// Count a failed check (Flagger's behaviour).
    #[default]
    Fail,
    /// Ignore the metric for this step.
    Skip,
    /// Do not advance and do not count a failure; check again next interval.
    Hold,
}

/// Policy for metrics providers that cannot be reached.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnProviderError {
    /// Hold the analysis (no step, no failed check) for at most progressDeadlineSeconds, then roll
    /// back: an unreachable provider is not evidence against the canary.
    #[default]
    Hold,
    /// Count a failed check (Flagger's behaviour).
    Fail,
}

/// Request conditions for A/B testing: all must hold for a request to go to the canary.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisMatch {
    /// Conditions on request headers, by header name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, HeaderMatch>>,
    /// Conditions on query parameters, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_params: Option<BTreeMap<String, StringMatch>>,
    /// Labels of the calling workload (Istio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_labels: Option<StringMap>,
}

/// A header condition: exactly one of exact, prefix, suffix or regex.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{"rule": "(has(self.exact) ? 1 : 0) + (has(self.prefix) ? 1 : 0) + (has(self.suffix) ? 1 : 0) + (has(self.regex) ? 1 : 0) == 1", "message": "set exactly one of exact, prefix, suffix and regex"}]))]
pub struct HeaderMatch {
    /// The header must equal this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// The header must start with this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The header must end with this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    /// The header must match this RE2 regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// A metric check.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryMetric {
    /// Name of the check; request-success-rate and request-duration are built in.
    pub name: String,
    /// Window the query covers, as a duration such as 1m (default: the analysis interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Deprecated upper bound (use thresholdRange.max); for request-success-rate a lower bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Range the value must stay in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_range: Option<ThresholdRange>,
    /// Prometheus query (deprecated in favour of templateRef).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The MetricTemplate that holds the query and provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_ref: Option<CrossNamespaceRef>,
    /// Values of `{{ variables.<key> }}` in the template's query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_variables: Option<StringMap>,
    /// Judge this metric by comparing the canary with the other side (see analysis.judge)
    /// instead of by thresholdRange. Serin's field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<super::MetricCompare>,
}

/// Inclusive bounds of a metric value.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{"rule": "!has(self.min) || !has(self.max) || self.min <= self.max", "message": "thresholdRange.min must not exceed thresholdRange.max"}]))]
pub struct ThresholdRange {
    /// Lowest passing value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Highest passing value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// A reference to an object by name, optionally in another namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrossNamespaceRef {
    /// Name of the object.
    pub name: String,
    /// Namespace of the object; the Canary's when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// An alert destination for this Canary.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryAlert {
    /// Name of this alert.
    pub name: String,
    /// Lowest severity sent: info (everything), warn (warnings and errors) or error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<AlertSeverity>,
    /// The AlertProvider to send through.
    pub provider_ref: CrossNamespaceRef,
}

/// Alert severities, lowest first.
#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AlertSeverity {
    /// Progress and success.
    #[default]
    #[serde(alias = "")]
    Info,
    /// Something needs attention (a failed check, a held gate).
    Warn,
    /// A rollback or an error.
    Error,
}

/// A webhook called during the analysis.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryWebhook {
    /// Name of the webhook.
    pub name: String,
    /// When it is called and what its answer means (default rollout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<HookType>,
    /// Do not send an alert when this webhook fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mute_alert: Option<bool>,
    /// URL the JSON payload is POSTed to (http or https).
    pub url: String,
    /// Time to wait for an answer, as a duration such as 10s (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Attempts after a failed call before it counts as failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub retries: Option<i32>,
    /// Call an https URL without verifying its certificate.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "disableTLS"
    )]
    pub disable_tls: Option<bool>,
    /// Key/value pairs sent as `metadata` in the payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<StringMap>,
    /// Secret (in the Canary's namespace) whose key `token` signs every call: the header
    /// `X-Serin-Signature-256: sha256=<hex HMAC-SHA256 of the body>` lets the receiver check the
    /// sender (Serin's addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<super::SecretRef>,
}

/// Webhook types: when a hook is called and what its answer does.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum HookType {
    /// Gates the start of a rollout; non-2xx keeps the canary Waiting.
    ConfirmRollout,
    /// Runs once before traffic shifts; non-2xx counts a failed check.
    PreRollout,
    /// Runs at every step; non-2xx counts a failed check.
    #[default]
    #[serde(alias = "")]
    Rollout,
    /// Gates each traffic increase; non-2xx holds the weight.
    ConfirmTrafficIncrease,
    /// Gates promotion; non-2xx keeps the canary WaitingPromotion.
    ConfirmPromotion,
    /// Runs after promotion or rollback; informational.
    PostRollout,
    /// Receives every event Serin emits for the canary.
    Event,
    /// A 2xx answer rolls the canary back (checked while Progressing, Waiting, WaitingPromotion).
    Rollback,
}

/// Cookie-based session affinity.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{"rule": "!has(self.primaryCookieName) || self.primaryCookieName != self.cookieName", "message": "primaryCookieName must differ from cookieName"}]))]
pub struct SessionAffinity {
    /// Name of the cookie that pins a client to the canary.
    #[schemars(length(min = 1))]
    pub cookie_name: String,
    /// Name of the cookie that pins a client to the primary; must differ from cookieName.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_cookie_name: Option<String>,
    /// Domain attribute of the cookies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// HttpOnly attribute of the cookies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_only: Option<bool>,
    /// Max-Age attribute of the cookies, in seconds (default 86400).
    #[serde(default = "default_max_age")]
    pub max_age: i64,
    /// Partitioned attribute of the cookies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitioned: Option<bool>,
    /// Path attribute of the cookies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// SameSite attribute of the cookies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_site: Option<SameSite>,
    /// Secure attribute of the cookies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure: Option<bool>,
}

fn default_max_age() -> i64 {
    86400
}

/// SameSite cookie attribute values.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SameSite {
    /// Strict.
    Strict,
    /// Lax.
    Lax,
    /// None.
    None,
}
