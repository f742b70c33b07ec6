//! The controller: watches Canaries and the objects they depend on, and runs `reconcile` (observe
//! → decide → act → one status write) for each. Must not hold decision logic: that is `analysis`.

mod act;
mod context;
mod error;
mod observe;
mod reconcile;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};

pub use context::{Context, Settings};
pub use error::Error;
pub use reconcile::{error_policy, reconcile};

use crate::api::Canary;
use crate::workload::PRIMARY_SUFFIX;

/// Runs the controller until `shutdown` resolves. `namespace` limits it to one namespace.
pub async fn run(
    client: kube::Client,
    namespace: Option<String>,
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let (canaries, deploys, configs) = match &namespace {
        Some(ns) => (
            Api::<Canary>::namespaced(client.clone(), ns),
            Api::<Deployment>::namespaced(client.clone(), ns),
            Api::<ConfigMap>::namespaced(client.clone(), ns),
        ),
        None => (
            Api::<Canary>::all(client.clone()),
            Api::<Deployment>::all(client.clone()),
            Api::<ConfigMap>::all(client.clone()),
        ),
    };
    let controller = Controller::new(canaries, watcher::Config::default());
    let store = controller.store();
    let by_deployment = store.clone();
    let by_config = store.clone();
    let ctx = Arc::new(Context::new(client, settings));
    controller
        .watches(deploys, watcher::Config::default(), move |d: Deployment| {
            // A target or a primary changed: the Canaries that use it reconcile (from the cache).
            let name = d.metadata.name.clone().unwrap_or_default();
            let base = name
                .strip_suffix(PRIMARY_SUFFIX)
                .unwrap_or(&name)
                .to_string();
            let ns = d.metadata.namespace.clone();
            by_deployment
                .state()
                .into_iter()
                .filter(|c| c.metadata.namespace == ns && c.spec.target_ref.name == base)
                .map(|c| ObjectRef::from_obj(c.as_ref()))
                .collect::<Vec<_>>()
        })
        .watches(configs, watcher::Config::default(), move |cm: ConfigMap| {
            let key = format!("configmap/{}", cm.metadata.name.clone().unwrap_or_default());
            let ns = cm.metadata.namespace.clone();
            by_config
                .state()
                .into_iter()
                .filter(|c| {
                    c.metadata.namespace == ns
                        && c.status
                            .as_ref()
                            .and_then(|s| s.tracked_configs.as_ref())
                            .is_none_or(|t| t.contains_key(&key))
                })
                .map(|c| ObjectRef::from_obj(c.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "reconcile stream");
            }
        })
        .await;
}
