//! What `decide` is given: the spec, the current status, `now`, and an `Observation` of the world
//! that the adapters gathered (workload readiness, routes, metric values, hook answers).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::api::{CanarySpec, CanaryStatus, FieldError, HookType};

/// Everything one decision depends on. Building it is the adapters' job; reading it is pure.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// Canary name, for messages.
    pub name: &'a str,
    /// Canary namespace, for messages.
    pub namespace: &'a str,
    /// The spec as stored.
    pub spec: &'a CanarySpec,
    /// The provider in effect: `spec.provider`, or the controller's default when the spec names
    /// none. Decided once by the controller and used for validation, the plan and the routes.
    pub provider: &'a str,
    /// The status as stored (the controller's memory between reconciles).
    pub status: &'a CanaryStatus,
    /// `metadata.generation` of the Canary.
    pub generation: i64,
    /// The Canary is being deleted (deletionTimestamp set).
    pub deleting: bool,
    /// Problems `api::validate` found; non-empty means: touch nothing, say why.
    pub invalid: &'a [FieldError],
    /// The instant of this decision.
    pub now: DateTime<Utc>,
    /// What the adapters saw.
    pub observed: &'a Observation,
    /// The Canary's `serin.io/action` annotation (an operator's promote/abort/pause/resume).
    pub action: Option<&'a str>,
}

impl Input<'_> {
    /// `name.namespace`, as messages name the Canary.
    pub fn who(&self) -> String {
        format!("{}.{}", self.name, self.namespace)
    }
}

/// The world as the adapters saw it for this reconcile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    /// The target workload (the canary side once scaled up); None when it does not exist.
    pub target: Option<TargetState>,
    /// The `-primary` workload; None when it does not exist yet.
    pub primary: Option<PrimaryState>,
    /// Routes as read back from the cluster; None when not read (no drift check then).
    pub routes: Option<Routes>,
    /// Metric results by metric name, present when `metrics_due` said so.
    pub metrics: BTreeMap<String, Result<f64, MetricFailure>>,
    /// Samples of the metrics with `compare`, by metric name, present when `metrics_due` said so
    /// (such metrics are never in `metrics`).
    pub samples: BTreeMap<String, Result<super::judge::Samples, MetricFailure>>,
    /// Hook answers by webhook name, present for the hook types `hooks_due` listed.
    pub hooks: BTreeMap<String, HookOutcome>,
    /// False when a global cap on concurrent rollouts has no free slot for this canary.
    pub rollout_slot_free: Option<bool>,
    /// The last reconcile of this Canary had a write refused: routes that differ from what the
    /// status says are most likely that write's, not a hand edit (no RoutesRepaired warning).
    pub retrying: bool,
    /// What the routing objects' own status says (e.g. an HTTPRoute a Gateway did not accept):
    /// Ok when accepted, Err with the reason; None when the router has no such status.
    pub routing_accepted: Option<Result<(), String>>,
    /// The baseline Deployment (`analysis.baseline`); None when it does not exist.
    pub baseline: Option<BaselineState>,
    /// The primary's pod template as JSON, observed when `analysis.postPromotion` is set: kept in
    /// status at promotion so a post-promotion rollback can restore it.
    pub primary_template: Option<serde_json::Value>,
}

impl Observation {
    /// Whether the canary (the target) can take traffic now: scaled up and ready.
    pub fn canary_ready(&self) -> bool {
        self.target
            .as_ref()
            .is_some_and(|c| c.readiness.is_ready() && c.replicas > 0)
    }

    /// Whether the baseline can take traffic now: it exists, is scaled up and ready.
    pub fn baseline_ready(&self) -> bool {
        self.baseline
            .as_ref()
            .is_some_and(|b| b.readiness.is_ready() && b.replicas > 0)
    }
}

/// The baseline Deployment as observed (readiness as for the canary).
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineState {
    /// Readiness of the baseline's pods.
    pub readiness: Readiness,
    /// Replicas it is scaled to.
    pub replicas: i32,
}

/// The target workload as observed.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetState {
    /// Hash of the pod template (never `metadata.generation`, which also moves on annotations).
    pub template_hash: String,
    /// Checksums of the tracked ConfigMaps/Secrets, by `configmap/<name>` / `secret/<name>`.
    pub configs: BTreeMap<String, String>,
    /// Readiness of the target's pods (meaningful once scaled up).
    pub readiness: Readiness,
    /// Replicas the target is scaled to (`spec.replicas`; a DaemonSet scaled down counts 0).
    pub replicas: i32,
    /// Replicas available to serve (`status.availableReplicas`).
    pub available: i32,
}

impl TargetState {
    /// A target on `template_hash` with no tracked configs, scaled to `replicas` and ready.
    pub fn ready(template_hash: &str, replicas: i32) -> TargetState {
        TargetState {
            template_hash: template_hash.to_string(),
            configs: BTreeMap::new(),
            readiness: Readiness::Ready,
            replicas,
            available: replicas,
        }
    }
}

/// The primary workload as observed.
#[derive(Debug, Clone, PartialEq)]
pub struct PrimaryState {
    /// The revision the primary was last given (Serin records it on the primary when it writes
    /// the pod template); None when unknown. A readiness that belongs to an older revision is not
    /// taken as readiness of the promoted one.
    pub revision: Option<String>,
    /// Readiness of the primary's pods.
    pub readiness: Readiness,
    /// Replicas available to serve. A primary stuck in a rollout still serves from the pods of
    /// its last good revision: it can take traffic while this is above zero.
    pub available: i32,
}

impl PrimaryState {
    /// A ready primary running `revision` with one available replica.
    pub fn ready(revision: &str) -> PrimaryState {
        PrimaryState {
            revision: Some(revision.to_string()),
            readiness: Readiness::Ready,
            available: 1,
        }
    }
}

/// Readiness of a workload (DESIGN.md section 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Rolled out and available above the ready threshold.
    Ready,
    /// Still rolling out; the text says what is missing.
    NotReady(String),
    /// `Progressing=False, ProgressDeadlineExceeded`: it will not get ready by itself.
    DeadlineExceeded(String),
}

impl Readiness {
    /// Whether the workload is ready.
    pub fn is_ready(&self) -> bool {
        matches!(self, Readiness::Ready)
    }
}

/// Why a metric has no value. NoData is its own verdict (never 0), distinct from errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricFailure {
    /// The query returned an empty result. Metric adapters also report NoData when a
    /// minimum-request guard is not met (too little traffic to judge), so the `onNoData` policy
    /// decides what such a step means instead of a misleading 0% or 100%.
    NoData,
    /// The query failed (syntax, several series, NaN, provider error); the text is safe to show.
    QueryError(String),
    /// The provider could not be reached or timed out.
    Unreachable(String),
    /// The adapter did not provide a value the decision needed (a bug or a skipped observation).
    NotQueried,
}

impl std::fmt::Display for MetricFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetricFailure::NoData => f.write_str("no data"),
            MetricFailure::QueryError(e) => write!(f, "query failed: {e}"),
            MetricFailure::Unreachable(e) => write!(f, "provider unreachable: {e}"),
            MetricFailure::NotQueried => f.write_str("not queried"),
        }
    }
}

/// The answer of one webhook call (after retries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookOutcome {
    /// Any 2xx, 204 included.
    Success,
    /// Another HTTP status.
    Status(u16),
    /// No answer (timeout, connection refused, TLS error); the text is safe to show.
    Unreachable(String),
}

impl HookOutcome {
    /// Maps an HTTP status: any 2xx (204 included) is success, as DESIGN.md section 4 says.
    pub fn from_status(code: u16) -> HookOutcome {
        if (200..300).contains(&code) {
            HookOutcome::Success
        } else {
            HookOutcome::Status(code)
        }
    }

    /// Whether the hook succeeded.
    pub fn is_success(&self) -> bool {
        matches!(self, HookOutcome::Success)
    }

    /// Short text for records and messages.
    pub fn describe(&self) -> String {
        match self {
            HookOutcome::Success => "2xx".to_string(),
            HookOutcome::Status(code) => format!("HTTP {code}"),
            HookOutcome::Unreachable(e) => format!("unreachable: {e}"),
        }
    }
}

/// Where traffic goes: the weights of the sides, mirroring, and whether A/B matches are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routes {
    /// Percentage to the primary.
    pub primary: i32,
    /// Percentage to the canary.
    pub canary: i32,
    /// Percentage to the baseline (`analysis.baseline`): the canary's weight once the baseline is
    /// ready, else 0. Routers that cannot split three ways always read and write 0.
    pub baseline: i32,
    /// Requests are mirrored to the canary.
    pub mirror: bool,
    /// Requests matching `analysis.match` go to the canary (A/B testing).
    pub ab_match: bool,
}

impl Routes {
    /// Everything to the primary, no mirror, no matches.
    pub const PRIMARY: Routes = Routes {
        baseline: 0,
        primary: 100,
        canary: 0,
        mirror: false,
        ab_match: false,
    };
    /// Everything to the canary.
    pub const CANARY: Routes = Routes {
        baseline: 0,
        primary: 0,
        canary: 100,
        mirror: false,
        ab_match: false,
    };

    /// Whether any request reaches the canary (by weight, mirroring or an A/B match).
    pub fn reaches_canary(&self) -> bool {
        self.canary > 0 || self.mirror || self.ab_match
    }

    /// The same routes with the baseline given the canary's weight, taken from the primary's
    /// share (the plan caps the canary at 50 so the primary's share is never negative).
    pub fn with_baseline(self) -> Routes {
        let baseline = self.canary.clamp(0, (self.primary + self.baseline).max(0));
        Routes {
            primary: self.primary + self.baseline - baseline,
            baseline,
            ..self
        }
    }

    /// The same routes with the baseline's share given back to the primary.
    pub fn without_baseline(self) -> Routes {
        Routes {
            primary: self.primary + self.baseline,
            baseline: 0,
            ..self
        }
    }

    /// A weighted split with the canary at `canary` percent.
    pub fn split(canary: i32) -> Routes {
        let canary = canary.clamp(0, 100);
        Routes {
            baseline: 0,
            primary: 100 - canary,
            canary,
            mirror: false,
            ab_match: false,
        }
    }
}

/// Which webhooks of a type the spec has, by name (helper for adapters and checks).
pub fn hooks_of(
    spec: &CanarySpec,
    kind: HookType,
) -> impl Iterator<Item = &crate::api::CanaryWebhook> {
    spec.analysis
        .webhooks
        .iter()
        .flatten()
        .filter(move |w| w.r#type.unwrap_or_default() == kind)
}
