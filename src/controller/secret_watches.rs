//! The Secret watches that `--secret-namespaces` asks for: metadata only (Serin never holds a
//! Secret's values in a cache), over the namespaces the controller watches, one per named
//! namespace (so that no Secret is ever listed cluster-wide when names are given), or none at all.
//! Must not read Secret data: that is `workload::apply`'s, and only for a tracked Secret.

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};

use crate::workload::SecretTracking;

/// A Secret as the caches hold it: metadata, no data.
pub type SecretMeta = PartialObjectMeta<Secret>;

/// The caches reconciles look Secrets up in (one per watch), and the stream of touched Secrets
/// that brings back the Canaries tracking them. `watched` is the controller's `--namespace`.
pub fn watch(
    client: &kube::Client,
    watched: Option<&str>,
    tracking: &SecretTracking,
) -> (
    Vec<Store<SecretMeta>>,
    BoxStream<'static, Result<SecretMeta, watcher::Error>>,
) {
    let apis: Vec<Api<SecretMeta>> = match tracking {
        SecretTracking::Off => Vec::new(),
        SecretTracking::Watched => vec![match watched {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }],
        // A named namespace the controller does not watch holds no Canary to track for.
        SecretTracking::Namespaces(names) => names
            .iter()
            .filter(|n| watched.is_none_or(|w| w == n.as_str()))
            .map(|n| Api::namespaced(client.clone(), n))
            .collect(),
    };
    let mut stores = Vec::new();
    let mut streams = Vec::new();
    // One store per watch: a reflector store is replaced wholesale at each (re)list of its
    // watch, so two namespaces' watches sharing one would wipe each other's Secrets.
    for api in apis {
        let (store, writer) = reflector::store::<SecretMeta>();
        stores.push(store);
        let stream = super::slim_watch(api, "Secret")
            .reflect(writer)
            .touched_objects();
        streams.push(stream.boxed());
    }
    let stream = if streams.is_empty() {
        // Nothing to watch: a trigger stream that never ends rather than one that ends at once.
        futures::stream::pending().boxed()
    } else {
        futures::stream::select_all(streams).boxed()
    };
    (stores, stream)
}
