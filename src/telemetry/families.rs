//! The controller's metric families (prometheus-client), Flagger's names with the `serin_`
//! prefix. Labels stay bounded: per Canary at most (no pod, revision or time labels).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of `serin_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InfoLabels {
    /// Crate version.
    pub version: String,
    /// Default mesh provider.
    pub mesh_provider: String,
}

/// Labels of reconcile counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `ok`, or the error's metric label.
    pub result: String,
}

/// Labels of per-canary series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CanaryLabels {
    /// Canary name.
    pub name: String,
    /// Canary namespace.
    pub namespace: String,
}

/// Labels of `serin_canary_weight` (Flagger labels the weight by workload).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkloadLabels {
    /// Target workload name.
    pub workload: String,
    /// Namespace.
    pub namespace: String,
}

/// Labels of `serin_canary_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NamespaceLabels {
    /// Namespace.
    pub namespace: String,
}

/// Labels of `serin_canary_metric_analysis` (one series per metric of each Canary).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MetricLabels {
    /// Canary name.
    pub name: String,
    /// Canary namespace.
    pub namespace: String,
    /// Metric name in the analysis.
    pub metric: String,
}

/// Labels of the success and failure counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// Canary name.
    pub name: String,
    /// Canary namespace.
    pub namespace: String,
    /// canary, blue_green, ab_testing, blue_green_mirroring or canary_mirroring.
    pub deployment_strategy: String,
    /// completed, or skipped (skipAnalysis).
    pub analysis_status: String,
}

/// Labels of webhook and alert call counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// Webhook type or alert provider type.
    pub kind: String,
    /// success or failure.
    pub outcome: String,
}

/// Labels of the Kubernetes API request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiCallLabels {
    /// RBAC verb: get, list, watch, create, update, patch, delete.
    pub verb: String,
    /// Group-qualified resource, with `/subresource` (`canaries.serin.io/status`).
    pub resource: String,
    /// HTTP status code, or `error` when no answer came.
    pub code: String,
}

/// Labels of the step lateness breakdown.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CauseLabels {
    /// `total`, or one part of it: `slot` (due until the reconcile started: queued behind
    /// --concurrency), `readiness` (the canary was not ready when the step fell due), `api`
    /// (Kubernetes API calls inside the reconcile), `other` (metric queries, webhooks, CPU).
    pub cause: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Finer buckets than `seconds` (1 ms to ~4 min, factor 1.5): the benchmark reads p50/p99 of
/// the lateness parts from them, and a factor of 2 would blur a 1 s budget.
fn lateness_seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 1.5, 31))
}

fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// Every family, registered.
pub struct Families {
    /// Reconciles by result.
    pub reconciles: Family<ResultLabels, Counter>,
    /// Reconcile duration by result.
    pub reconcile_seconds: Histograms<ResultLabels>,
    /// Canaries per namespace.
    pub canaries: Family<NamespaceLabels, Gauge>,
    /// Flagger's status encoding: 0 running, 1 succeeded, 2 failed.
    pub status: Family<CanaryLabels, Gauge>,
    /// Canary weight by workload.
    pub weight: Family<WorkloadLabels, Gauge>,
    /// Time spent reconciling each canary.
    pub duration: Histograms<CanaryLabels>,
    /// Last value of each metric check (absent while the last query gave no value).
    pub metric_analysis: Family<MetricLabels, Gauge<f64, AtomicU64>>,
    /// Promotions.
    pub successes: Family<OutcomeLabels, Counter>,
    /// Rollbacks.
    pub failures: Family<OutcomeLabels, Counter>,
    /// Webhook calls by type and outcome.
    pub webhooks: Family<CallLabels, Counter>,
    /// Alerts by provider type and outcome.
    pub alerts: Family<CallLabels, Counter>,
    /// Kubernetes API requests by verb, resource and status code.
    pub api_calls: Family<ApiCallLabels, Counter>,
    /// How late each analysis step was taken, in total and by part.
    pub step_lateness: Histograms<CauseLabels>,
    /// Steps more than a second late, by their largest part.
    pub late_steps: Family<CauseLabels, Counter>,
}

impl Families {
    /// Registers every family (and `serin_info`) in `registry`.
    pub fn register(registry: &mut Registry, mesh_provider: &str) -> Families {
        let info = Family::<InfoLabels, Gauge>::default();
        info.get_or_create(&InfoLabels {
            version: env!("CARGO_PKG_VERSION").into(),
            mesh_provider: mesh_provider.into(),
        })
        .set(1);
        registry.register("serin_info", "Serin build and configuration", info);
        let f = Families {
            reconciles: Default::default(),
            reconcile_seconds: Family::new_with_constructor(seconds),
            canaries: Default::default(),
            status: Default::default(),
            weight: Default::default(),
            duration: Family::new_with_constructor(seconds),
            metric_analysis: Default::default(),
            successes: Default::default(),
            failures: Default::default(),
            webhooks: Default::default(),
            alerts: Default::default(),
            api_calls: Default::default(),
            step_lateness: Family::new_with_constructor(lateness_seconds),
            late_steps: Default::default(),
        };
        registry.register(
            "serin_reconcile",
            "Reconciles by result",
            f.reconciles.clone(),
        );
        registry.register(
            "serin_reconcile_duration_seconds",
            "Reconcile duration by result",
            f.reconcile_seconds.clone(),
        );
        registry.register(
            "serin_canary_total",
            "Canaries per namespace",
            f.canaries.clone(),
        );
        registry.register(
            "serin_canary_status",
            "Canary status: 0 running, 1 succeeded, 2 failed",
            f.status.clone(),
        );
        registry.register(
            "serin_canary_weight",
            "Traffic percentage routed to the canary",
            f.weight.clone(),
        );
        registry.register(
            "serin_canary_duration_seconds",
            "Seconds spent reconciling a canary",
            f.duration.clone(),
        );
        registry.register(
            "serin_canary_metric_analysis",
            "Last value of each metric check of a canary analysis",
            f.metric_analysis.clone(),
        );
        registry.register("serin_canary_successes", "Promotions", f.successes.clone());
        registry.register("serin_canary_failures", "Rollbacks", f.failures.clone());
        registry.register(
            "serin_webhook_calls",
            "Webhook calls by type and outcome",
            f.webhooks.clone(),
        );
        registry.register(
            "serin_alerts",
            "Alerts sent by provider type and outcome",
            f.alerts.clone(),
        );
        registry.register(
            "serin_kube_api_requests",
            "Kubernetes API requests by verb, resource and status code",
            f.api_calls.clone(),
        );
        registry.register(
            "serin_step_lateness_seconds",
            "How late analysis steps were taken after falling due, in total and by cause",
            f.step_lateness.clone(),
        );
        registry.register(
            "serin_late_steps",
            "Analysis steps more than 1s late, by their largest cause",
            f.late_steps.clone(),
        );
        f
    }
}
