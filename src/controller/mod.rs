//! The controller: watches Canaries and the objects they depend on, and runs `reconcile` (observe
//! → decide → act → one status write) for each. Must not hold decision logic: that is `analysis`.

mod act;
mod calls;
pub mod client;
mod commit;
mod context;
mod error;
pub mod events;
mod feed;
mod knative;
pub mod leader;
mod metrics;
mod observe;
pub mod preflight;
pub mod rbac;
mod reconcile;
pub mod refusal;
mod report;
mod resume;
mod samples;
mod secret_watches;
mod service_target;
pub mod shard;
pub mod slim;
pub mod slots;
mod triggers;
pub mod watches;

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, WatchStreamExt, reflector, watcher};
use kube::{Api, ResourceExt};

pub use context::{Caches, Context, Settings, Synced};
pub use error::Error;
pub use feed::{CanaryFeed, Shared};
pub use reconcile::{error_policy, reconcile};

use crate::api::{Canary, TargetKind};
use crate::workload::ConfigRef;
use triggers::{Targets, routes_via, targeting, tracking};

/// What the controller itself calls: its watches and caches, the Canary writes, the objects a
/// Canary names, and Events. (Objects it creates are in `workload::RBAC` and the routers'.)
pub const RBAC: &[crate::rbac::Rule] = {
    use crate::rbac::{Needed, Needed::Always, Rule};
    &[
        Rule {
            group: "serin.io",
            resources: &["canaries"],
            verbs: &["get", "list", "watch", "patch"],
            needed: Always,
            why: "watch Canaries; add and remove Serin's finalizer",
        },
        Rule {
            group: "serin.io",
            resources: &["canaries/status"],
            verbs: &["patch"],
            needed: Always,
            why: "one server-side-apply status write per tick",
        },
        Rule {
            group: "serin.io",
            resources: &["canaries/finalizers"],
            verbs: &["update"],
            needed: Always,
            why: "own the -primary objects with blockOwnerDeletion (OwnerReferencesPermissionEnforcement)",
        },
        Rule {
            group: "serin.io",
            resources: &["metrictemplates", "alertproviders"],
            verbs: &["get"],
            needed: Always,
            why: "read the MetricTemplates and AlertProviders a Canary names",
        },
        Rule {
            group: "apps",
            resources: &["deployments", "daemonsets"],
            verbs: &["list", "watch"],
            needed: Always,
            why: "watch targets and primaries into caches (no per-tick reads)",
        },
        Rule {
            group: "",
            resources: &["configmaps", "services"],
            verbs: &["list", "watch"],
            needed: Always,
            why: "watch tracked ConfigMaps and the Canary's Services into caches",
        },
        Rule {
            group: "",
            resources: &["secrets"],
            verbs: &["list", "watch"],
            needed: Needed::SecretTracking,
            why: "watch the metadata of tracked Secrets, never their values (a change brings their Canaries back)",
        },
        Rule {
            group: "",
            resources: &["secrets"],
            verbs: &["get"],
            needed: Always,
            why: "read the Secret a MetricTemplate, AlertProvider or webhook names (secretRef): credentials for that call only",
        },
        Rule {
            group: "events.k8s.io",
            resources: &["events"],
            verbs: &["create", "patch"],
            needed: Always,
            why: "record what Serin did and why as Kubernetes Events",
        },
    ]
};

/// Runs the controller while this instance holds the Lease, until `shutdown` resolves: waits for
/// leadership, reconciles while renewing, and goes back to waiting if leadership is lost.
pub async fn run_elected(
    client: kube::Client,
    namespace: Option<String>,
    settings: Settings,
    lease: leader::LeaseSettings,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = client::instrumented(client, settings.telemetry.clone());
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), &lease.namespace);
    let mut shutdown = Box::pin(shutdown);
    loop {
        tokio::select! {
            _ = leader::acquire(&leases, &lease) => {}
            _ = &mut shutdown => return,
        }
        tracing::info!(identity = %lease.identity, "leader election: acquired the lease");
        // Renewal and reconciling live and die together in this task: when renewal ends, the
        // controller future is dropped, so nothing acts without the lease.
        let ready = settings.telemetry.clone();
        tokio::select! {
            _ = run_with(client.clone(), namespace.clone(), settings.clone(), std::future::pending::<()>()) => {}
            _ = leader::hold(&leases, &lease) => {
                tracing::warn!(identity = %lease.identity, "leader election: lost the lease; standing by");
            }
            _ = &mut shutdown => return,
        }
        ready
            .ready
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Every cache's watch: each retried with its own backoff and never passing an error on (see
/// `watches`), and without what Serin never reads (`slim`) — managedFields, which for objects
/// written by several managers (server-side apply) are most of their size in memory (at a
/// thousand Canaries they were most of the controller's RSS), kubectl's last-applied copy, the
/// pod templates of primaries and the data of config copies.
fn slim_watch<K>(
    api: Api<K>,
    what: &'static str,
) -> impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send
where
    K: kube::Resource
        + slim::Slim
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + 'static,
{
    slim_watch_with(api, what, watcher::Config::default())
}

/// [`slim_watch`] with a watcher configuration.
fn slim_watch_with<K>(
    api: Api<K>,
    what: &'static str,
    config: watcher::Config,
) -> impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send
where
    K: kube::Resource
        + slim::Slim
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + 'static,
{
    watches::resilient_with(api, what, config).modify(|obj: &mut K| obj.slim())
}

/// The Canary watch: only this shard's Canaries (`--shard-selector`; the API server filters, and
/// sends DELETED when a relabelled Canary stops matching). A Canary that leaves — deleted, or
/// moved to another shard — is forgotten at once: the controller's store drops it, so its queued
/// requeue finds nothing to reconcile, and `forget` releases its slot, backoff and gauges. The
/// shard it moved to resumes it from its status, which holds every clock.
fn canary_watch(
    api: Api<Canary>,
    store: kube::runtime::reflector::Store<Canary>,
    writer: reflector::store::Writer<Canary>,
    ctx: Arc<Context>,
) -> impl futures::Stream<Item = Result<Canary, watcher::Error>> + Send {
    let mut config = watcher::Config::default();
    if let Some(shard) = &ctx.settings.shard {
        config = config.labels(shard.as_str());
    }
    let touched = ctx.settings.canary_feed.clone();
    slim_watch_with(api, "Canary", config)
        .reflect(writer)
        .inspect_ok(move |_| touched.as_ref().map_or((), CanaryFeed::touch))
        .inspect_ok(move |event| match event {
            watcher::Event::Delete(c) => ctx.forget(c),
            // After a fresh list the store holds exactly what is listed; what left meanwhile
            // had no DELETED event. The first list also sets the resume order.
            watcher::Event::InitDone => {
                let listed = store.state();
                ctx.resume.listed(listed.iter().map(|c| c.as_ref()));
                let present: std::collections::HashSet<String> = store
                    .state()
                    .iter()
                    .map(|c| format!("{}/{}", c.namespace_or_default(), c.name_any()))
                    .collect();
                ctx.forget_keys(|k| !present.contains(k));
            }
            _ => {}
        })
        .applied_objects()
        // Our own status writes do not wake the Canary again (see `triggers::canary_trigger`).
        .predicate_filter(triggers::canary_trigger, Default::default())
}

/// Aborts a helper task when the future that owns it is dropped (leadership lost, shutdown).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the controller until `shutdown` resolves. `namespace` limits it to one namespace.
pub async fn run(
    client: kube::Client,
    namespace: Option<String>,
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = client::instrumented(client, settings.telemetry.clone());
    run_with(client, namespace, settings, shutdown).await
}

/// `run` with a client already instrumented (run_elected shares one with its Lease calls).
async fn run_with(
    client: kube::Client,
    namespace: Option<String>,
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let (canaries, deploys, daemons, configs, services) = match &namespace {
        Some(ns) => (
            Api::<Canary>::namespaced(client.clone(), ns),
            Api::<Deployment>::namespaced(client.clone(), ns),
            Api::<DaemonSet>::namespaced(client.clone(), ns),
            Api::<ConfigMap>::namespaced(client.clone(), ns),
            Api::<Service>::namespaced(client.clone(), ns),
        ),
        None => (
            Api::<Canary>::all(client.clone()),
            Api::<Deployment>::all(client.clone()),
            Api::<DaemonSet>::all(client.clone()),
            Api::<ConfigMap>::all(client.clone()),
            Api::<Service>::all(client.clone()),
        ),
    };
    let probe = canaries.clone();
    let (store, canary_writer) = reflector::store::<Canary>();
    // The dashboard reads this store while this instance runs the controller; a standby has none.
    let _shared = (settings.canary_feed.as_ref()).map(|feed| feed.share(store.clone()));
    let telemetry = settings.telemetry.clone();
    let probe_params = kube::api::ListParams::default().limit(1);
    let probe_params = match &settings.shard {
        Some(shard) => probe_params.labels(shard.as_str()),
        None => probe_params,
    };
    // Ready only after a successful list of Canaries (and, with election, while leading: run()
    // only runs while this instance holds the lease). A list of our own: the controller's runner
    // already waits on its store's `wait_until_ready`, and kube 4.2 wakes only one of several
    // concurrent waiters (see `Synced`) — /readyz stayed 503, caught by controller_telemetry.rs.
    let _readiness = AbortOnDrop(tokio::spawn(async move {
        while probe.list_metadata(&probe_params).await.is_err() {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        telemetry
            .ready
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }));
    let by_deployment = store.clone();
    let by_config = store.clone();
    let by_secret = store.clone();
    // Deployments and ConfigMaps are watched once: the same streams fill the caches reconcile
    // reads from (no per-reconcile GETs) and trigger the Canaries that use them.
    let (deploy_cache, deploy_writer) = reflector::store::<Deployment>();
    let (daemonset_cache, daemonset_writer) = reflector::store::<DaemonSet>();
    let (daemonsets_synced, daemonsets_listed) = synced_channel();
    let daemonset_stream = slim_watch(daemons, "DaemonSet")
        .reflect(daemonset_writer)
        .inspect_ok(daemonsets_synced)
        .touched_objects();
    let by_daemonset = store.clone();
    let (config_cache, config_writer) = reflector::store::<ConfigMap>();
    let (secret_caches, secret_stream) =
        secret_watches::watch(&client, namespace.as_deref(), &settings.secret_tracking);
    let (deployments_synced, deployments_listed) = synced_channel();
    let deploy_stream = slim_watch(deploys, "Deployment")
        .reflect(deploy_writer)
        .inspect_ok(deployments_synced)
        .touched_objects();
    let config_stream = slim_watch(configs, "ConfigMap")
        .reflect(config_writer)
        .touched_objects();
    // Services feed the routers' reads, and a change to one of ours (or an adopted apex) brings
    // the Canary back to put it right.
    let (service_cache, service_writer) = reflector::store::<Service>();
    let (services_synced, services_listed) = synced_channel();
    let service_stream = slim_watch(services, "Service")
        .reflect(service_writer)
        .inspect_ok(services_synced)
        .touched_objects();
    let by_service = store.clone();
    let config_targets = Targets {
        deployments: deploy_cache.clone(),
        daemonsets: daemonset_cache.clone(),
    };
    let secret_targets = config_targets.clone();
    let ctx_client = client.clone();
    let mut context = Context::new(client, settings);
    context.scope = namespace.clone();
    context.caches = Caches {
        canaries: Some(store.clone()),
        deployments: Some(deploy_cache),
        daemonsets: Some(daemonset_cache),
        configs: crate::workload::apply::ConfigSources {
            configmaps: Some(config_cache),
            secrets: secret_caches,
            secret_sums: Default::default(),
        },
        services: Some(service_cache),
        synced: Synced {
            services: Some(services_listed),
            deployments: Some(deployments_listed),
            daemonsets: Some(daemonsets_listed),
        },
        served: Default::default(),
        routes: route_caches(&ctx_client, namespace.as_deref()),
    };
    let ctx = Arc::new(context);
    let canary_stream = canary_watch(canaries, store.clone(), canary_writer, ctx.clone());
    // No cap in kube-runtime: `Context::permits` bounds the reconciles at once, in order.
    Controller::for_stream(canary_stream, store.clone())
        .with_config(kube::runtime::controller::Config::default().concurrency(0))
        .watches_stream(deploy_stream, move |d: Deployment| {
            targeting(&by_deployment, &d.metadata, TargetKind::Deployment)
        })
        .watches_stream(daemonset_stream, move |d: DaemonSet| {
            targeting(&by_daemonset, &d.metadata, TargetKind::DaemonSet)
        })
        .watches_stream(service_stream, move |s: Service| {
            let name = s.metadata.name.clone().unwrap_or_default();
            let ns = s.metadata.namespace.clone();
            by_service
                .state()
                .into_iter()
                .filter(|c| c.metadata.namespace == ns && routes_via(c, &name))
                .map(|c| ObjectRef::from_obj(c.as_ref()))
                .collect::<Vec<_>>()
        })
        .watches_stream(config_stream, move |cm: ConfigMap| {
            let config = ConfigRef::ConfigMap(cm.metadata.name.unwrap_or_default());
            let ns = cm.metadata.namespace.as_deref();
            tracking(&by_config, &config_targets, ns, &config)
        })
        .watches_stream(secret_stream, move |s: secret_watches::SecretMeta| {
            let config = ConfigRef::Secret(s.metadata.name.unwrap_or_default());
            let ns = s.metadata.namespace.as_deref();
            tracking(&by_secret, &secret_targets, ns, &config)
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                // A watch that keeps failing leaves the caches stale and changes unnoticed: say so.
                Err(kube::runtime::controller::Error::QueueError(e)) => {
                    tracing::warn!(error = %e, "watch failed; retrying with backoff");
                }
                // Failed reconciles were reported by error_policy.
                Err(e) => tracing::debug!(error = %e, "reconcile stream"),
                Ok(_) => {}
            }
        })
        .await;
}

/// The routers' route caches: a kind's watch starts when a router first reads a kind the API
/// server serves (`router::RouteCaches`), in the controller's scope (cluster-wide for a
/// cluster-scoped kind), slimmed like every cache. The watches only fill the caches: they
/// trigger no reconcile (our own route writes would bring every Canary back once more per
/// step). Their tasks end with the returned caches (leadership lost, shutdown).
fn route_caches(client: &kube::Client, scope: Option<&str>) -> crate::router::RouteCaches {
    use kube::api::{ApiResource, DynamicObject};
    let client = client.clone();
    let scope = scope.map(String::from);
    let tasks = std::sync::Mutex::new(Vec::<AbortOnDrop>::new());
    let start = move |ar: &ApiResource, namespaced: bool| {
        let api = match (&scope, namespaced) {
            (Some(ns), true) => Api::<DynamicObject>::namespaced_with(client.clone(), ns, ar),
            _ => Api::all_with(client.clone(), ar),
        };
        let writer = reflector::store::Writer::new(ar.clone());
        let store = writer.as_reader();
        let (mark, listed) = synced_channel();
        let watch = slim_watch(api, "route").reflect(writer).inspect_ok(mark);
        let task = tokio::spawn(watch.for_each(|_| async {}));
        if let Ok(mut t) = tasks.lock() {
            t.push(AbortOnDrop(task));
        }
        crate::router::KindCache { store, listed }
    };
    crate::router::RouteCaches::new(Arc::new(start))
}

/// A cache's "first list done" signal: the returned closure marks it on the watcher's InitDone.
fn synced_channel<K>() -> (
    impl FnMut(&watcher::Event<K>),
    tokio::sync::watch::Receiver<bool>,
) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mark = move |event: &watcher::Event<K>| {
        if matches!(event, watcher::Event::InitDone) {
            tx.send_replace(true);
        }
    };
    (mark, rx)
}
