//! Shared state of the controller: the client, the Events recorder and the defaults from flags.

use k8s_openapi::api::apps::v1::Deployment;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::Store;

/// Settings from the command line.
#[derive(Clone)]
pub struct Settings {
    /// Provider for Canaries that name none.
    pub default_provider: String,
    /// Resync period for Canaries that are not waiting for a step.
    pub resync: std::time::Duration,
    /// This instance's name in Events (reportingInstance); the pod name in a cluster.
    pub instance: Option<String>,
    /// How many Canaries reconcile at once (0: no limit).
    pub concurrency: u16,
    /// Metrics and readiness shared with the HTTP endpoints.
    pub telemetry: std::sync::Arc<crate::telemetry::Telemetry>,
    /// Which target labels the primary copies.
    pub labels: crate::workload::LabelFilter,
    /// Prometheus address for Canaries that name no metricsServer.
    pub metrics_server: Option<String>,
    /// Timeout of one metric query.
    pub metrics_timeout: std::time::Duration,
    /// Alert provider (and lowest severity) for Canaries that name none.
    pub default_alerts: Option<(crate::notify::Notifier, crate::api::AlertSeverity)>,
    /// URL every Event of every Canary is posted to, as `event` hooks are.
    pub event_webhook: Option<String>,
    /// Cluster name shown in alerts.
    pub cluster_name: Option<String>,
    /// Rollouts running at once across all Canaries (None: no limit).
    pub max_concurrent_canaries: Option<usize>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default_provider: "kubernetes".into(),
            resync: std::time::Duration::from_secs(300),
            instance: std::env::var("POD_NAME").ok(),
            concurrency: 32,
            telemetry: crate::telemetry::Telemetry::new("kubernetes"),
            labels: Default::default(),
            metrics_server: None,
            metrics_timeout: crate::metrics::DEFAULT_TIMEOUT,
            default_alerts: None,
            event_webhook: None,
            cluster_name: None,
            max_concurrent_canaries: None,
        }
    }
}

/// Caches of the objects a reconcile reads, filled by the controller's watches.
#[derive(Clone, Default)]
pub struct Caches {
    /// Deployments (targets and primaries).
    pub deployments: Option<Store<Deployment>>,
    /// ConfigMaps and Secrets' metadata (tracked configs).
    pub configs: crate::workload::apply::ConfigSources,
    /// Canaries (for the per-namespace count).
    pub canaries: Option<Store<crate::api::Canary>>,
    /// DaemonSets (targets and primaries).
    pub daemonsets: Option<Store<k8s_openapi::api::apps::v1::DaemonSet>>,
    /// Services (the routers' objects and adopted apex Services).
    pub services: Option<Store<k8s_openapi::api::core::v1::Service>>,
    /// Which caches have finished their first list.
    pub synced: Synced,
    /// Route kinds seen served (the routers' memo).
    pub served: crate::router::ServedMemo,
}

/// Whether each watch cache has finished its first list, as watch channels. kube 4.2's
/// `Store::wait_until_ready` wakes only the last of several concurrent waiters (its oneshot
/// receiver keeps one waker): with three Canaries at start-up, two reconciles waited forever.
/// A watch channel wakes every waiter.
#[derive(Clone, Default)]
pub struct Synced {
    /// The Service cache.
    pub services: Option<tokio::sync::watch::Receiver<bool>>,
    /// The Deployment cache.
    pub deployments: Option<tokio::sync::watch::Receiver<bool>>,
    /// The DaemonSet cache.
    pub daemonsets: Option<tokio::sync::watch::Receiver<bool>>,
}

impl Synced {
    /// Waits until `cache` (one of the fields) has listed once; returns at once without it.
    pub async fn wait(cache: &Option<tokio::sync::watch::Receiver<bool>>) {
        if let Some(rx) = cache {
            let mut rx = rx.clone();
            let _ = rx.wait_for(|listed| *listed).await;
        }
    }
}

impl Caches {
    /// What the routers read from.
    pub fn lookups(&self) -> crate::router::Lookups {
        crate::router::Lookups {
            services: self.services.clone(),
            deployments: self.deployments.clone(),
            daemonsets: self.daemonsets.clone(),
            served: self.served.clone(),
        }
    }
}

/// Everything a reconcile needs besides the Canary.
pub struct Context {
    /// resourceVersion of the last status this controller wrote, per Canary (namespace/name).
    written: std::sync::Mutex<std::collections::HashMap<String, u64>>,
    /// Reflector caches; None fields fall back to API reads.
    pub caches: Caches,
    /// API client.
    pub client: kube::Client,
    /// Events (events.k8s.io) publisher.
    pub recorder: Recorder,
    /// Settings.
    pub settings: Settings,
    /// Rollout slots under `max_concurrent_canaries`.
    pub slots: super::slots::Slots,
}

impl Context {
    /// A context for this client.
    pub fn new(client: kube::Client, settings: Settings) -> Context {
        let reporter = Reporter {
            controller: "serin".into(),
            instance: settings.instance.clone(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            settings,
            caches: Caches::default(),
            written: Default::default(),
            slots: Default::default(),
        }
    }

    /// Records the resourceVersion our status write produced.
    pub fn remember_write(&self, ns: &str, name: &str, rv: Option<&str>) {
        if let (Some(rv), Ok(mut w)) = (rv.and_then(|r| r.parse().ok()), self.written.lock()) {
            w.insert(format!("{ns}/{name}"), rv);
        }
    }

    /// Whether a Canary at `rv` predates our last status write to it. resourceVersions are
    /// opaque by contract but etcd revisions (increasing integers) in practice; when one does
    /// not parse, nothing is called stale.
    pub fn is_stale(&self, ns: &str, name: &str, rv: Option<&str>) -> bool {
        let Some(rv) = rv.and_then(|r| r.parse::<u64>().ok()) else {
            return false;
        };
        self.written
            .lock()
            .ok()
            .and_then(|w| w.get(&format!("{ns}/{name}")).copied())
            .is_some_and(|last| rv < last)
    }
}
