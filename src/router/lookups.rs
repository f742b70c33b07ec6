//! The caches a router reads instead of the API server (the controller's reflector stores), and
//! its memo of the route kinds the API server serves. Part of the router seam; imports only `api`
//! and the workload's DaemonSet view.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::Service;
use kube::Api;
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
