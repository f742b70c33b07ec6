//! What the router scenarios share: installing an official CRD, recording every distinct state
//! of a routing object while a rollout runs, asserting that a hand edit is repaired, and reading
//! the refusal a Canary shows.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use serde_json::Value;

/// Installs the official CRD at `path` under ../shared/crds.
pub async fn install_crd(client: &kube::Client, path: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/crds")
        .join(path);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let crd: CustomResourceDefinition = serde_saphyr::from_str(&text).unwrap();
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &crd)
        .await
        .unwrap();
}

/// Records every distinct `state` of the object `fetch` reads (None: not there yet), polling
/// every 20 ms until the test ends.
pub fn observe<S, F, Fut>(fetch: F, state: fn(&Value) -> S) -> Arc<Mutex<Vec<S>>>
where
    S: PartialEq + Send + 'static,
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Option<Value>> + Send,
{
    let seen: Arc<Mutex<Vec<S>>> = Default::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            if let Some(obj) = fetch().await {
                let s = state(&obj);
                let mut l = log.lock().unwrap();
                if l.last() != Some(&s) {
                    l.push(s);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    seen
}

/// After a hand edit of the weights: pokes the target so a reconcile runs, waits up to 10 s for
/// the object to be back in `want`, and checks the one `RoutesRepaired` Event says `note`.
pub async fn assert_repaired<S, F, Fut>(
    client: &kube::Client,
    fetch: F,
    state: fn(&Value) -> S,
    want: S,
    note: &str,
) where
    S: PartialEq + std::fmt::Debug,
    F: Fn() -> Fut,
    Fut: Future<Output = Option<Value>>,
{
    super::scenario::poke_target(client, "1").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = state(&fetch().await.expect("the routing object exists"));
        if now == want {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not repaired: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let notes = super::scenario::event_notes(client, "RoutesRepaired").await;
    assert_eq!(notes, [note]);
}

/// Waits for `Ready=False` and returns its reason and message.
pub async fn refusal(client: &kube::Client) -> (String, String) {
    let st = super::scenario::wait_status(client, "Ready=False", |st| {
        st.conditions
            .iter()
            .any(|c| c.r#type == "Ready" && c.status == "False")
    })
    .await;
    let ready = super::scenario::ready_condition(&st).unwrap();
    (ready.reason, ready.message.unwrap_or_default())
}
