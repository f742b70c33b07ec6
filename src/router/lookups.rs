//! The caches a router reads instead of the API server (the controller's reflector stores), its
//! memo of the route kinds the API server serves, and the one way routers read and write their
//! own route objects (`RouteApi`: through a watch cache per kind, never behind their own writes).
//! Part of the router seam; imports only `api` and the workload's DaemonSet view.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::Canary;

/// Caches a router reads instead of the API (the controller's reflector stores); None fields fall
/// back to API reads. Reads from a cache may trail the router's own writes by a watch event;
/// every write is idempotent, so acting on a slightly old view only repeats a write.
#[derive(Clone, Default)]
pub struct Lookups {
    /// Services (apex, primary and canary).
    pub services: Option<Store<Service>>,
    /// Deployments (the target, for its selector).
    pub deployments: Option<Store<Deployment>>,
    /// DaemonSets (the target, for its selector).
    pub daemonsets: Option<Store<DaemonSet>>,
    /// Route kinds the API server was seen to serve (one controller's memo; see `served`).
    pub served: ServedMemo,
    /// Watch caches of the route objects (see [`RouteCaches`]).
    pub routes: RouteCaches,
    /// Prefix of the ingress-nginx annotations (`--ingress-annotations-prefix`); empty: the
    /// default `nginx.ingress.kubernetes.io`.
    pub ingress_annotations_prefix: String,
}

/// When each resource kind was last seen served, shared by one controller's reconciles.
pub type ServedMemo =
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>>;

impl Lookups {
    /// A Service by namespace and name, from the cache when there is one.
    pub async fn service(
        &self,
        client: &kube::Client,
        ns: &str,
        name: &str,
    ) -> kube::Result<Option<Service>> {
        match &self.services {
            Some(store) => Ok(store
                .get(&ObjectRef::new(name).within(ns))
                .map(|s| s.as_ref().clone())),
            None => Api::namespaced(client.clone(), ns).get_opt(name).await,
        }
    }

    /// The Canary's target (a DaemonSet as its Deployment-shaped view), from the cache when
    /// there is one.
    pub async fn target(
        &self,
        client: &kube::Client,
        canary: &Canary,
    ) -> kube::Result<Option<Deployment>> {
        let ns = canary.namespace_or_default();
        let name = &canary.spec.target_ref.name;
        if canary.spec.target_ref.kind != crate::api::TargetKind::DaemonSet {
            return self.deployment(client, &ns, name).await;
        }
        let ds = match &self.daemonsets {
            Some(store) => store
                .get(&ObjectRef::new(name).within(&ns))
                .map(|d| d.as_ref().clone()),
            None => {
                Api::<DaemonSet>::namespaced(client.clone(), &ns)
                    .get_opt(name)
                    .await?
            }
        };
        Ok(ds.as_ref().map(crate::workload::daemonset::as_deployment))
    }

    /// A Deployment by namespace and name, from the cache when there is one.
    pub async fn deployment(
        &self,
        client: &kube::Client,
        ns: &str,
        name: &str,
    ) -> kube::Result<Option<Deployment>> {
        match &self.deployments {
            Some(store) => Ok(store
                .get(&ObjectRef::new(name).within(ns))
                .map(|d| d.as_ref().clone())),
            None => Api::namespaced(client.clone(), ns).get_opt(name).await,
        }
    }
}

/// Starts the watch cache of one route kind (`namespaced`: watched in the controller's scope;
/// else cluster-wide). The controller supplies it: the watch machinery is its own, the seam only
/// asks for a cache.
pub type StartWatch = Arc<dyn Fn(&ApiResource, bool) -> KindCache + Send + Sync>;

/// One route kind's reflector store and whether it has finished its first list.
#[derive(Clone)]
pub struct KindCache {
    /// The objects (slimmed of managedFields by the controller's watch).
    pub store: Store<DynamicObject>,
    /// True once the first list is in the store.
    pub listed: tokio::sync::watch::Receiver<bool>,
}

/// What this process last learned of one object by its own hand (a write's answer, a delete, a
/// GET), kept until the cache shows that much.
#[derive(Clone)]
enum Known {
    /// The object as the API server answered, and when.
    Object(Arc<DynamicObject>, std::time::Instant),
    Deleted,
}

/// How long an object this process wrote (or read) answers reads while the cache does not hold
/// it at all: the watch event of a create is on its way. Past this the API server decides (the
/// object may have been deleted since, and the cache's DELETED is all we would ever see of it).
const UNSEEN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// The watch caches of the route objects routers read (HTTPRoute, VirtualService, Ingress, …),
/// one per kind, started when a router first reads a kind the API server serves. Without a
/// starter (the CLI, unit tests) every read is a GET.
///
/// Reads never go back in time behind this process's own writes. A router reads-then-writes
/// (gatewayapi's reconcile keeps the weights the route has and re-applies them): a watch event
/// behind our last write would hand it the previous step's weights and undo the step. So every
/// write's answer (the object as the API server stored it, with its resourceVersion) is kept,
/// and a read answers with it until the cache holds that resourceVersion or a newer one; then
/// the kept copy goes. The written object rather than only its resourceVersion: the next read
/// after a write (get_state, verification) can then answer at once instead of with a GET. A
/// delete is kept as a tombstone: reads GET until the cache has dropped the object.
#[derive(Clone, Default)]
pub struct RouteCaches {
    start: Option<StartWatch>,
    kinds: Arc<Mutex<HashMap<String, KindCache>>>,
    known: Arc<Mutex<HashMap<String, Known>>>,
}

impl RouteCaches {
    /// Caches started on demand by `start`.
    pub fn new(start: StartWatch) -> RouteCaches {
        RouteCaches {
            start: Some(start),
            ..Default::default()
        }
    }

    /// The kinds with a cache (`plural.group/version`), and whether each has listed.
    pub fn kinds(&self) -> Vec<(String, bool)> {
        let kinds = self.kinds.lock().map(|k| k.clone()).unwrap_or_default();
        let mut out: Vec<_> = kinds
            .into_iter()
            .map(|(k, c)| (k, *c.listed.borrow()))
            .collect();
        out.sort();
        out
    }

    /// How many objects are kept for reads until the caches catch up.
    pub fn kept(&self) -> usize {
        self.known.lock().map(|k| k.len()).unwrap_or_default()
    }

    /// The cache of a kind; started now when `start_now` and there is none yet.
    fn cache(&self, ar: &ApiResource, namespaced: bool, start_now: bool) -> Option<KindCache> {
        let start = self.start.as_ref()?;
        let mut kinds = self.kinds.lock().ok()?;
        let key = kind_key(ar);
        if let Some(c) = kinds.get(&key) {
            return Some(c.clone());
        }
        if !start_now {
            return None;
        }
        tracing::debug!(kind = %key, "starting a watch cache of routes");
        let c = start(ar, namespaced);
        kinds.insert(key, c.clone());
        Some(c)
    }

    /// Keeps what this process learned of an object, for a kind with a cache only: a cache
    /// started later lists after this and holds it anyway (DestinationRules, written and never
    /// read, keep nothing).
    fn remember(&self, kind: &ApiResource, key: String, known: Option<Known>) {
        let cached = (self.kinds.lock()).is_ok_and(|k| k.contains_key(&kind_key(kind)));
        if !cached {
            return;
        }
        if let Ok(mut k) = self.known.lock() {
            match known {
                Some(known) => k.insert(key, known),
                None => k.remove(&key),
            };
        }
    }

    /// The answer of the cache merged with what this process knows newer; None: ask the API
    /// server (the cache cannot tell, e.g. it does not hold the object yet).
    fn resolve(
        &self,
        key: &str,
        cached: Option<Arc<DynamicObject>>,
    ) -> Option<Option<DynamicObject>> {
        let mut known = self.known.lock().ok()?;
        let answer = match (known.get(key), cached) {
            (None, Some(c)) => return Some(Some(c.as_ref().clone())),
            (Some(Known::Object(mine, _)), Some(c)) => {
                if rv(&c)? < rv(mine)? {
                    return Some(Some(mine.as_ref().clone()));
                }
                Some(c.as_ref().clone())
            }
            (Some(Known::Deleted), None) => None,
            // Written (created) by us a moment ago and not in the cache yet: the create's watch
            // event is on its way (seen: the first read after a Canary's initialisation GET its
            // route). Kept until the cache shows it.
            (Some(Known::Object(mine, at)), None) if at.elapsed() < UNSEEN_PATIENCE => {
                return Some(Some(mine.as_ref().clone()));
            }
            // Not in the cache: not created yet as far as it knows, deleted since our write,
            // or deleted by us and not yet dropped — the API server knows.
            _ => return None,
        };
        known.remove(key);
        Some(answer)
    }
}

fn kind_key(ar: &ApiResource) -> String {
    format!("{}.{}/{}", ar.plural, ar.group, ar.version)
}

fn rv(obj: &DynamicObject) -> Option<u64> {
    obj.metadata.resource_version.as_deref()?.parse().ok()
}

/// A route kind in one namespace (or cluster-wide): reads through the kind's watch cache, writes
/// remembered so that reads never go back behind them (see [`RouteCaches`]).
pub struct RouteApi {
    api: Api<DynamicObject>,
    ar: ApiResource,
    ns: Option<String>,
    routes: RouteCaches,
    served: ServedMemo,
}

impl Lookups {
    /// Route objects of kind `ar` in `ns` (None: a cluster-scoped kind).
    pub fn route_api(&self, client: &kube::Client, ar: &ApiResource, ns: Option<&str>) -> RouteApi {
        let api = match ns {
            Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
            None => Api::all_with(client.clone(), ar),
        };
        RouteApi {
            api,
            ar: ar.clone(),
            ns: ns.map(String::from),
            routes: self.routes.clone(),
            served: self.served.clone(),
        }
    }
}

impl RouteApi {
    fn key(&self, name: &str) -> String {
        let ns = self.ns.as_deref().unwrap_or_default();
        format!("{}|{ns}|{name}", kind_key(&self.ar))
    }

    fn is_served(&self) -> bool {
        let key = kind_key(&self.ar);
        self.served.lock().is_ok_and(|m| m.contains_key(&key))
    }

    /// An object by name: from the kind's cache once it has listed (never from one that has
    /// not: an object that exists would look missing), else by GET. The cache is started on the
    /// first read of a kind the API server is known to serve (`served`, or a GET that found one).
    pub async fn get_opt(&self, name: &str) -> kube::Result<Option<DynamicObject>> {
        let key = self.key(name);
        let cache = self
            .routes
            .cache(&self.ar, self.ns.is_some(), self.is_served());
        if let Some(c) = cache.as_ref().filter(|c| *c.listed.borrow()) {
            let mut at = ObjectRef::new_with(name, self.ar.clone());
            at.namespace = self.ns.clone();
            if let Some(answer) = self.routes.resolve(&key, c.store.get(&at)) {
                return Ok(answer);
            }
        }
        let got = self.api.get_opt(name).await?;
        if got.is_some() && cache.is_none() {
            self.routes.cache(&self.ar, self.ns.is_some(), true);
        }
        // The freshest view there is: later reads must not go back behind it either.
        let known = got
            .clone()
            .map(|o| Known::Object(Arc::new(o), std::time::Instant::now()));
        self.routes.remember(&self.ar, key, known);
        Ok(got)
    }

    /// Patches an object and keeps the answer for later reads.
    pub async fn patch<P: serde::Serialize + std::fmt::Debug>(
        &self,
        name: &str,
        params: &PatchParams,
        patch: &Patch<P>,
    ) -> kube::Result<DynamicObject> {
        let written = self.api.patch(name, params, patch).await?;
        let known = Known::Object(Arc::new(written.clone()), std::time::Instant::now());
        self.routes.remember(&self.ar, self.key(name), Some(known));
        Ok(written)
    }

    /// Deletes an object; reads ask the API server until the cache has dropped it.
    pub async fn delete(&self, name: &str, params: &DeleteParams) -> kube::Result<()> {
        self.api.delete(name, params).await?;
        self.routes
            .remember(&self.ar, self.key(name), Some(Known::Deleted));
        Ok(())
    }

    /// Whether the API server serves this kind (a missing CRD answers 404 to a list). Memoised
    /// for five minutes once it does: the answer changes only when a CRD is installed or
    /// removed, and asking on every reconcile cost one LIST per Canary per tick (seen in
    /// benches/canaries). "Not served" is never memoised, so a CRD installed later is noticed at
    /// the next reconcile. A kind seen served gets its watch cache at its next read.
    pub async fn served(&self) -> kube::Result<bool> {
        const FRESH: std::time::Duration = std::time::Duration::from_secs(300);
        let key = kind_key(&self.ar);
        let fresh = (self.served.lock().ok())
            .and_then(|m| m.get(&key).copied())
            .is_some_and(|at| at.elapsed() < FRESH);
        if fresh {
            return Ok(true);
        }
        let params = kube::api::ListParams::default().limit(1);
        match self.api.list_metadata(&params).await {
            Ok(_) => {
                if let Ok(mut m) = self.served.lock() {
                    m.insert(key, std::time::Instant::now());
                }
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;

    fn route(rv: &str, weight: i64) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "app", "namespace": "test", "resourceVersion": rv},
            "spec": {"weight": weight}
        }))
        .unwrap()
    }

    #[test]
    fn a_read_is_never_behind_this_process_own_write() {
        let gvk = kube::api::GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
        let ar = ApiResource::from_gvk_with_plural(&gvk, "httproutes");
        let mut writer = Writer::new(ar.clone());
        let store = writer.as_reader();
        let (_tx, listed) = tokio::sync::watch::channel(true);
        let cache = KindCache { store, listed };
        let caches = RouteCaches::new(Arc::new(move |_: &ApiResource, _| cache.clone()));
        caches.cache(&ar, true, true).expect("started");
        let at = ObjectRef::new_with("app", ar.clone()).within("test");
        let read = |c: &RouteCaches, w: &Writer<DynamicObject>| {
            c.resolve("k", w.as_reader().get(&at))
                .map(|o| o.map(|o| o.data["spec"]["weight"].as_i64().unwrap()))
        };
        writer.apply_watcher_event(&Event::Apply(route("10", 10)));
        assert_eq!(read(&caches, &writer), Some(Some(10)), "the cache answers");
        // Our write (weight 20) is answered at rv 12; the cache still shows rv 10.
        caches.remember(
            &ar,
            "k".into(),
            Some(Known::Object(
                Arc::new(route("12", 20)),
                std::time::Instant::now(),
            )),
        );
        assert_eq!(
            read(&caches, &writer),
            Some(Some(20)),
            "not the stale cache"
        );
        assert_eq!(caches.kept(), 1);
        writer.apply_watcher_event(&Event::Apply(route("13", 30)));
        assert_eq!(
            read(&caches, &writer),
            Some(Some(30)),
            "the cache caught up"
        );
        assert_eq!(caches.kept(), 0, "the kept copy goes once the cache has it");
        // A delete: ask the API server until the cache drops the object.
        caches.remember(&ar, "k".into(), Some(Known::Deleted));
        assert_eq!(read(&caches, &writer), None);
        writer.apply_watcher_event(&Event::Delete(route("14", 30)));
        assert_eq!(read(&caches, &writer), Some(None));
        // Missing from the cache and nothing known: the API server decides.
        assert_eq!(read(&caches, &writer), None);
        // Created by us a moment ago, not in the cache yet: our answer, until the patience
        // runs out (then it may have been deleted since; the API server decides).
        let now = std::time::Instant::now();
        let created = Known::Object(Arc::new(route("15", 40)), now);
        caches.remember(&ar, "k".into(), Some(created));
        assert_eq!(read(&caches, &writer), Some(Some(40)));
        assert_eq!(read(&caches, &writer), Some(Some(40)), "kept while unseen");
        let long_ago = now
            .checked_sub(UNSEEN_PATIENCE * 2)
            .expect("a past instant");
        let old = Known::Object(Arc::new(route("15", 40)), long_ago);
        caches.remember(&ar, "k".into(), Some(old));
        assert_eq!(read(&caches, &writer), None);
    }

    #[test]
    fn without_a_starter_nothing_is_cached_or_kept() {
        let gvk = kube::api::GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
        let ar = ApiResource::from_gvk_with_plural(&gvk, "httproutes");
        let caches = RouteCaches::default();
        assert!(caches.cache(&ar, true, true).is_none());
        caches.remember(&ar, "k".into(), Some(Known::Deleted));
        assert_eq!(caches.kept(), 0);
    }
}
