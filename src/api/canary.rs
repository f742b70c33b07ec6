//! The `Canary` kind: what to roll out (`targetRef`), how it is reached (`service`) and how it is
//! judged (`analysis`). Pure data; no I/O.

// kube's printcolumn(...) groups repeat `type_`/`priority` keys by design; clippy reads them as duplicates.
#![allow(clippy::duplicated_attributes)]

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CanaryAnalysis, CanaryService, CanaryStatus, StringMap};

/// CanarySpec defines the desired state of a Canary: the workload to roll out, the Services and
/// routes that reach it, and the analysis that decides between promotion and rollback.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "serin.io",
    version = "v1beta1",
    kind = "Canary",
    namespaced,
    status = "CanaryStatus",
    shortname = "canary",
    category = "all",
    doc = "Canary rolls a change of a Deployment or DaemonSet out to a canary copy, shifts traffic to it in steps and promotes or rolls back on metric and webhook checks.",
    printcolumn(name = "Status", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Weight", type_ = "string", json_path = ".status.canaryWeight"),
    printcolumn(
        name = "FailedChecks",
        type_ = "string",
        json_path = ".status.failedChecks"
    ),
    printcolumn(
        name = "Suspended",
        type_ = "boolean",
        json_path = ".spec.suspend",
        priority = "1"
    ),
    printcolumn(
        name = "Interval",
        type_ = "string",
        json_path = ".spec.analysis.interval",
        priority = "1"
    ),
    printcolumn(
        name = "Mirror",
        type_ = "boolean",
        json_path = ".spec.analysis.mirror",
        priority = "1"
    ),
    printcolumn(
        name = "StepWeight",
        type_ = "string",
        json_path = ".spec.analysis.stepWeight",
        priority = "1"
    ),
    printcolumn(
        name = "StepWeights",
        type_ = "string",
        json_path = ".spec.analysis.stepWeights",
        priority = "1"
    ),
    printcolumn(
        name = "MaxWeight",
        type_ = "string",
        json_path = ".spec.analysis.maxWeight",
        priority = "1"
    ),
    printcolumn(
        name = "LastTransitionTime",
        type_ = "string",
        json_path = ".status.lastTransitionTime"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{"rule": "has(self.service) || self.targetRef.apiVersion == 'serving.knative.dev/v1'", "message": "required unless targetRef is a Knative Service (serving.knative.dev/v1)", "fieldPath": ".service", "reason": "FieldValueRequired"}]))]
pub struct CanarySpec {
    /// Traffic management provider: kubernetes, gatewayapi (also gatewayapi:v1, gatewayapi:v1beta1),
    /// istio or linkerd. Empty means the controller's default mesh provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Address of the Prometheus server used by built-in metrics and templates without an address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_server: Option<String>,
    /// Seconds a canary or primary Deployment may take to make progress before it is considered
    /// failed (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub progress_deadline_seconds: Option<i32>,
    /// The workload to roll out.
    pub target_ref: TargetRef,
    /// The HorizontalPodAutoscaler (or KEDA ScaledObject) that scales the target; Serin keeps a
    /// `-primary` copy of it for the primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaler_ref: Option<AutoscalerRef>,
    /// The Ingress that routes to the apex Service (nginx provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_ref: Option<LocalObjectRef>,
    /// An existing route to adopt instead of generating one (route-preserving mode): only the weights
    /// of its backendRefs to the primary and canary Services are changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_ref: Option<LocalObjectRef>,
    /// Gloo Upstream to use as a template for the generated upstreams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_ref: Option<UpstreamRef>,
    /// The Services and routes that reach the workload. Required, except for a Knative Service
    /// target: Knative routes to its own revisions, so Serin generates no Service for it.
    #[serde(default, skip_serializing_if = "CanaryService::is_unset")]
    pub service: CanaryService,
    /// Promote a new revision at once, without analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_analysis: Option<bool>,
    /// On deletion of the Canary, give the target its traffic and replicas back before the generated
    /// objects go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert_on_deletion: Option<bool>,
    /// Freeze the canary: no step, check or route change happens while it is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// How the canary is judged: schedule, checks, hooks and alerts.
    pub analysis: CanaryAnalysis,
}

/// A reference to the workload being rolled out.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    /// API version of the target, e.g. apps/v1.
    pub api_version: String,
    /// Kind of the target.
    pub kind: TargetKind,
    /// Name of the target, in the Canary's namespace.
    pub name: String,
}

/// What a `targetRef` names, from its kind and API version together: `Service` is a core
/// Service under `v1` and a Knative Service under `serving.knative.dev/v1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetWorkload {
    /// apps/v1 Deployment: a `-primary` Deployment copy.
    Deployment,
    /// apps/v1 DaemonSet: a `-primary` DaemonSet copy.
    DaemonSet,
    /// core/v1 Service: `-primary` and `-canary` Service copies, no pods of Serin's own.
    CoreService,
    /// serving.knative.dev/v1 Service: traffic split between its revisions, no copies.
    KnativeService,
}

/// API version of a Knative Serving Service.
pub const KNATIVE_SERVING_API_VERSION: &str = "serving.knative.dev/v1";

impl TargetRef {
    /// What the reference names (the API version is checked by validation, not here).
    pub fn workload(&self) -> TargetWorkload {
        match self.kind {
            TargetKind::Deployment => TargetWorkload::Deployment,
            TargetKind::DaemonSet => TargetWorkload::DaemonSet,
            TargetKind::Service if self.api_version == KNATIVE_SERVING_API_VERSION => {
                TargetWorkload::KnativeService
            }
            TargetKind::Service => TargetWorkload::CoreService,
        }
    }
}

/// Kinds a Canary can target.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum TargetKind {
    /// apps/v1 Deployment.
    #[default]
    Deployment,
    /// apps/v1 DaemonSet.
    DaemonSet,
    /// core/v1 Service (service-only canaries).
    Service,
}

/// A reference to the autoscaler of the target.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerRef {
    /// API version of the autoscaler, e.g. autoscaling/v2.
    pub api_version: String,
    /// Kind of the autoscaler.
    pub kind: AutoscalerKind,
    /// Name of the autoscaler, in the Canary's namespace.
    pub name: String,
    /// Queries of a KEDA ScaledObject's triggers to use for the primary copy, by trigger name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_scaler_queries: Option<StringMap>,
    /// Replica bounds for the primary autoscaler, overriding the target's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_scaler_replicas: Option<ScalerReplicas>,
}

/// Kinds of autoscaler a Canary can reference.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AutoscalerKind {
    /// autoscaling/v2 HorizontalPodAutoscaler.
    #[default]
    HorizontalPodAutoscaler,
    /// keda.sh/v1alpha1 ScaledObject.
    ScaledObject,
}

/// Replica bounds for the primary autoscaler.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{"rule": "!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas", "message": "minReplicas must not exceed maxReplicas"}]))]
pub struct ScalerReplicas {
    /// Lower bound of primary replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_replicas: Option<i32>,
    /// Upper bound of primary replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_replicas: Option<i32>,
}

/// A reference to an object in the Canary's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectRef {
    /// API version of the object, e.g. gateway.networking.k8s.io/v1.
    pub api_version: String,
    /// Kind of the object, e.g. HTTPRoute, Ingress.
    pub kind: String,
    /// Name of the object.
    pub name: String,
}

/// A reference to a Gloo Upstream.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamRef {
    /// API version of the Upstream.
    pub api_version: String,
    /// Kind: Upstream.
    pub kind: String,
    /// Name of the Upstream.
    pub name: String,
    /// Namespace of the Upstream; the Canary's when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl Canary {
    /// The namespace of the Canary ("default" when unset, as the API server would place it).
    pub fn namespace_or_default(&self) -> String {
        self.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string())
    }

    /// The apex Service name: `spec.service.name`, or the target's name.
    pub fn apex_name(&self) -> String {
        self.spec
            .service
            .name
            .clone()
            .unwrap_or_else(|| self.spec.target_ref.name.clone())
    }
}
