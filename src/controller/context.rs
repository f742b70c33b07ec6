//! Shared state of the controller: the client, the Events recorder and the defaults from flags.

use k8s_openapi::api::apps::v1::Deployment;
use kube::runtime::reflector::Store;

use super::events::Recorder;

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
    /// Longest pause between retries of a refused request (they back off exponentially up to it).
    pub retry_max: std::time::Duration,
    /// Where the Secrets that targets reference are tracked (`--secret-namespaces`).
    pub secret_tracking: crate::workload::SecretTracking,
    /// Prefix of the ingress-nginx annotations the nginx router writes.
    pub ingress_annotations_prefix: String,
    /// The Canaries this controller owns (`--shard-selector`; None: all of them).
    pub shard: Option<super::shard::ShardSelector>,
    /// Where the Canary cache is shared with the dashboard (None: no dashboard).
    pub canary_feed: Option<super::feed::CanaryFeed>,
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
            retry_max: std::time::Duration::from_secs(120),
            secret_tracking: Default::default(),
            ingress_annotations_prefix: crate::router::nginx_objects::DEFAULT_PREFIX.into(),
            shard: None,
            canary_feed: None,
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
    /// Watch caches of the routers' route objects, started per kind on first use.
    pub routes: crate::router::RouteCaches,
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

/// How long a reconcile waits for a cache's first list before it reads around it (straight from
/// the API server). At start-up the lists land within milliseconds; a cache whose list keeps
/// failing (its resource answering 500s) must not stall every Canary, as waiting on it did.
const SYNC_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

impl Synced {
    /// Whether `cache` (one of the fields) has finished its first list, waiting a moment for it;
    /// true without a cache. Callers read from the API server when it has not: never decide on
    /// an empty cache (a target or an apex that exists would look missing).
    pub async fn listed(cache: &Option<tokio::sync::watch::Receiver<bool>>) -> bool {
        let Some(rx) = cache else {
            return true;
        };
        let mut rx = rx.clone();
        matches!(
            tokio::time::timeout(SYNC_WAIT, rx.wait_for(|listed| *listed)).await,
            Ok(Ok(_))
        )
    }

    /// Whether `cache` has finished its first list now (true without a cache).
    fn listed_now(cache: &Option<tokio::sync::watch::Receiver<bool>>) -> bool {
        cache.as_ref().is_none_or(|rx| *rx.borrow())
    }
}

impl Caches {
    /// What the routers read from. A cache that has not listed yet is left out: the routers then read from the API server.
    pub fn lookups(&self) -> crate::router::Lookups {
        let listed = |rx| Synced::listed_now(rx);
        crate::router::Lookups {
            services: self
                .services
                .clone()
                .filter(|_| listed(&self.synced.services)),
            deployments: (self.deployments.clone()).filter(|_| listed(&self.synced.deployments)),
            daemonsets: self
                .daemonsets
                .clone()
                .filter(|_| listed(&self.synced.daemonsets)),
            served: self.served.clone(),
            routes: self.routes.clone(),
            ..Default::default()
        }
    }
}

/// A preflight answer: when it was asked, and the permissions missing (None: the API server could
/// not say, e.g. SelfSubjectAccessReview itself refused — then nothing is blocked).
type Checked = (std::time::Instant, Option<Vec<super::preflight::Missing>>);

/// How long a preflight answer is trusted: a missing permission is asked again soon (so a grant
/// is noticed), a complete set rarely.
const PERMISSIONS_MISSING_TTL: std::time::Duration = std::time::Duration::from_secs(30);
const PERMISSIONS_OK_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// Hook answers by hook name.
type HookAnswers = std::collections::BTreeMap<String, crate::analysis::HookOutcome>;

/// How many Canaries' once-per-revision hook answers are remembered.
const HOOK_MEMO: usize = 4096;

/// The refusals in a row of one Canary: how many (for the backoff), and how many of them were the
/// same refusal as the last one (for showing it: a 409 on one write and then on another is
/// ordinary weather; the same write refused again and again is news).
#[derive(Debug, Clone)]
struct Streak {
    count: u32,
    same: u32,
    last: String,
}

/// Everything a reconcile needs besides the Canary.
pub struct Context {
    /// resourceVersion of the last status this controller wrote, per Canary (namespace/name), and
    /// since when the cache has been seen behind it.
    written: std::sync::Mutex<std::collections::HashMap<String, (u64, Option<std::time::Instant>)>>,
    /// Refusals in a row, per Canary (namespace/name); gone after a clean reconcile.
    streaks: std::sync::Mutex<std::collections::HashMap<String, Streak>>,
    /// Answers of once-per-revision hooks, by `namespace/name@revision` (bounded).
    hook_memo: std::sync::Mutex<std::collections::BTreeMap<String, HookAnswers>>,
    /// What the permissions preflight found per provider, and when.
    permissions: tokio::sync::Mutex<std::collections::HashMap<String, Checked>>,
    /// The namespace the controller watches (None: all).
    pub scope: Option<String>,
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
    /// Resume order after the start: Canaries in flight first.
    pub resume: super::resume::Resume,
    /// Reconciles at once (`--concurrency`), granted first come, first served; None: no limit.
    pub permits: Option<tokio::sync::Semaphore>,
}

impl Context {
    /// A context for this client.
    pub fn new(client: kube::Client, settings: Settings) -> Context {
        let settings_concurrency = settings.concurrency;
        Context {
            recorder: Recorder::new(client.clone(), "serin", settings.instance.clone()),
            client,
            settings,
            caches: Caches::default(),
            written: Default::default(),
            streaks: Default::default(),
            hook_memo: Default::default(),
            permissions: Default::default(),
            scope: None,
            slots: Default::default(),
            resume: Default::default(),
            permits: (settings_concurrency > 0)
                .then(|| tokio::sync::Semaphore::new(settings_concurrency.into())),
        }
    }

    /// What the routers read: the caches, and the router settings.
    pub fn lookups(&self) -> crate::router::Lookups {
        crate::router::Lookups {
            ingress_annotations_prefix: self.settings.ingress_annotations_prefix.clone(),
            ..self.caches.lookups()
        }
    }

    /// Records the resourceVersion our status write produced.
    pub fn remember_write(&self, ns: &str, name: &str, rv: Option<&str>) {
        if let (Some(rv), Ok(mut w)) = (rv.and_then(|r| r.parse().ok()), self.written.lock()) {
            w.insert(format!("{ns}/{name}"), (rv, None));
        }
    }

    /// How long the cache has shown this Canary at `rv`, older than our last status write to
    /// it; None when it is not behind. resourceVersions are opaque by contract but etcd revisions
    /// (increasing integers) in practice; when one does not parse, nothing is called stale.
    pub fn stale_for(&self, ns: &str, name: &str, rv: Option<&str>) -> Option<std::time::Duration> {
        let rv = rv.and_then(|r| r.parse::<u64>().ok())?;
        let mut w = self.written.lock().ok()?;
        let (last, since) = w.get_mut(&format!("{ns}/{name}"))?;
        if rv >= *last {
            return None;
        }
        Some(since.get_or_insert_with(std::time::Instant::now).elapsed())
    }

    /// Notes one more refusal in a row for this Canary; returns how many refusals in a row there
    /// have been, and how many of them in a row were this same one.
    pub fn note_refusal(&self, key: &str, refusal: &super::refusal::Refusal) -> (u32, u32) {
        let Ok(mut s) = self.streaks.lock() else {
            return (1, 1);
        };
        let streak = s.entry(key.to_string()).or_insert(Streak {
            count: 0,
            same: 0,
            last: String::new(),
        });
        streak.count = streak.count.saturating_add(1);
        if streak.last == refusal.message {
            streak.same = streak.same.saturating_add(1);
        } else {
            streak.same = 1;
            streak.last = refusal.message.clone();
        }
        (streak.count, streak.same)
    }

    /// The permissions the controller lacks for a provider's Canaries (preflight by
    /// SelfSubjectAccessReview, remembered for a while); empty when complete or unknown.
    pub async fn missing_permissions(&self, provider: &str) -> Vec<super::preflight::Missing> {
        let mut known = self.permissions.lock().await;
        if let Some((at, answer)) = known.get(provider) {
            let ttl = match answer {
                Some(m) if m.is_empty() => PERMISSIONS_OK_TTL,
                _ => PERMISSIONS_MISSING_TTL,
            };
            if at.elapsed() < ttl {
                return answer.clone().unwrap_or_default();
            }
        }
        let tracking = matches!(
            self.settings.secret_tracking,
            crate::workload::SecretTracking::Watched
        );
        let answer =
            super::preflight::missing_for(&self.client, self.scope.as_deref(), provider, tracking)
                .await;
        let answer = match answer {
            Ok(missing) => {
                if !missing.is_empty() {
                    let why = super::preflight::sentence(&missing, self.scope.as_deref());
                    tracing::warn!(provider, missing = %why, "permissions preflight");
                }
                Some(missing)
            }
            Err(e) => {
                tracing::warn!(provider, error = %e, "permissions preflight: SelfSubjectAccessReview unanswered; not checking");
                None
            }
        };
        known.insert(
            provider.to_string(),
            (std::time::Instant::now(), answer.clone()),
        );
        answer.unwrap_or_default()
    }

    /// The remembered answers of once-per-revision hooks for `key` (`namespace/name@revision`).
    pub fn remembered_hooks(&self, key: &str) -> Option<HookAnswers> {
        self.hook_memo.lock().ok()?.get(key).cloned()
    }

    /// Remembers once-per-revision hook answers (the oldest keys go first beyond the bound).
    pub fn remember_hooks(&self, key: &str, answers: &HookAnswers) {
        if let Ok(mut m) = self.hook_memo.lock() {
            m.retain(|k, _| !k.starts_with(&format!("{}@", key.split('@').next().unwrap_or(key))));
            if m.len() >= HOOK_MEMO {
                let first = m.keys().next().cloned();
                if let Some(first) = first {
                    m.remove(&first);
                }
            }
            m.insert(key.to_string(), answers.clone());
        }
    }

    /// Drops everything this process remembers about a Canary that left its watch (deleted, or
    /// relabelled into another shard): its slot grant, refusal streak, last write, hook answers,
    /// and its per-Canary gauges, which would otherwise go on reporting a phase and a weight that
    /// another shard now owns.
    pub fn forget(&self, canary: &crate::api::Canary) {
        let ns = canary.namespace_or_default();
        let name = canary.metadata.name.clone().unwrap_or_default();
        let key = format!("{ns}/{name}");
        self.forget_keys(|k| k == key);
        let t = &self.settings.telemetry;
        for m in canary.spec.analysis.metrics.iter().flatten() {
            t.metric_analysis.remove(&crate::telemetry::MetricLabels {
                name: name.clone(),
                namespace: ns.clone(),
                metric: m.name.clone(),
            });
        }
        let who = crate::telemetry::CanaryLabels {
            name,
            namespace: ns.clone(),
        };
        t.status.remove(&who);
        t.duration.remove(&who);
        t.weight.remove(&crate::telemetry::WorkloadLabels {
            workload: canary.spec.target_ref.name.clone(),
            namespace: ns,
        });
    }

    /// Whether this controller's Canary watch no longer holds the Canary (it was deleted, or
    /// relabelled out of the shard). False without a cache.
    pub fn left_watch(&self, canary: &crate::api::Canary) -> bool {
        self.caches.canaries.as_ref().is_some_and(|store| {
            store
                .get(&kube::runtime::reflector::ObjectRef::from_obj(canary))
                .is_none()
        })
    }

    /// Drops what is remembered about Canaries `gone` says are gone (by `namespace/name`): after
    /// a fresh list, a Canary that left while the watch was down gets no DELETED event.
    pub fn forget_keys(&self, gone: impl Fn(&str) -> bool) {
        if let Ok(mut w) = self.written.lock() {
            w.retain(|k, _| !gone(k));
        }
        if let Ok(mut s) = self.streaks.lock() {
            s.retain(|k, _| !gone(k));
        }
        if let Ok(mut m) = self.hook_memo.lock() {
            m.retain(|k, _| !gone(k.split('@').next().unwrap_or(k)));
        }
        self.slots.forget(&gone);
        self.resume.forget(&gone);
    }

    /// Whether the last reconcile of this Canary had a refusal.
    pub fn retrying(&self, key: &str) -> bool {
        self.streaks.lock().is_ok_and(|s| s.contains_key(key))
    }

    /// A reconcile went through cleanly: the next refusal starts a new streak.
    pub fn note_success(&self, key: &str) {
        if let Ok(mut s) = self.streaks.lock() {
            s.remove(key);
        }
    }

    /// The pause before retrying after `count` refusals in a row: exponential from 200 ms
    /// (transient classes) or 2 s (a policy's or the server's "no"), capped — at 5 s for
    /// transient ones, so a returning API server is noticed quickly — with ±20 % jitter so that
    /// many Canaries refused together do not retry together.
    pub fn retry_after(&self, count: u32, class: super::refusal::Class) -> std::time::Duration {
        use std::time::Duration;
        let (base, cap) = if class.transient() {
            (Duration::from_millis(200), Duration::from_secs(5))
        } else {
            (Duration::from_secs(2), self.settings.retry_max)
        };
        let cap = cap.min(self.settings.retry_max).max(base);
        let exp = base.saturating_mul(1u32 << count.saturating_sub(1).min(16));
        exp.min(cap).mul_f64(0.8 + fastrand::f64() * 0.4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;

    #[tokio::test]
    async fn a_cache_that_has_not_listed_is_waited_for_a_moment_only() {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let started = std::time::Instant::now();
        assert!(!Synced::listed(&Some(rx.clone())).await);
        assert!(started.elapsed() < SYNC_WAIT * 3, "{:?}", started.elapsed());
        tx.send(true).unwrap();
        assert!(Synced::listed(&Some(rx)).await);
        assert!(Synced::listed(&None).await);
    }

    #[test]
    fn the_routers_read_around_a_cache_that_has_not_listed() {
        let (services, _writer) = kube::runtime::reflector::store::<Service>();
        let (tx, rx) = tokio::sync::watch::channel(false);
        let caches = Caches {
            services: Some(services),
            synced: Synced {
                services: Some(rx),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(
            caches.lookups().services.is_none(),
            "an empty cache read as truth"
        );
        tx.send(true).unwrap();
        assert!(caches.lookups().services.is_some());
    }
}
