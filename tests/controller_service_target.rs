//! Scenarios for core Service targets (`targetRef: {apiVersion: v1, kind: Service}`) on
//! serin::sim with the Gateway API CRDs: Deployments web-v1 and web-v2 run side by side, the
//! user's Service `web` selects one of them, and a change of its selector is the new revision.
//! Serin copies `web` into `web-primary` and `web-canary`, moves the HTTPRoute weights between
//! the copies, promotes by copying `web` into `web-primary` (or rolls back leaving it), and never
//! writes `web` itself.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::prometheus::Prometheus;
use common::scenario::{create_canary, start_cluster, start_controller, wait_object, wait_phase};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use serin::api::{CanaryPhase, MetricTemplate};

/// web-v1 and web-v2 (one replica each) and the Service `web` selecting v1.
async fn app(client: &kube::Client) {
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    for v in ["v1", "v2"] {
        let labels = json!({"app": "web", "version": v});
        let d = json!({"metadata": {"name": format!("web-{v}"), "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "web", "image": format!("web:{v}"), "ports": [{"containerPort": 8080}]}]}}}});
        deploys
            .create(&PostParams::default(), &serde_json::from_value(d).unwrap())
            .await
            .unwrap();
    }
    let svc = json!({"metadata": {"name": "web", "labels": {"app": "web"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {"selector": {"app": "web", "version": "v1"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}});
    services(client)
        .create(
            &PostParams::default(),
            &serde_json::from_value(svc).unwrap(),
        )
        .await
        .unwrap();
}

fn services(client: &kube::Client) -> Api<Service> {
    Api::namespaced(client.clone(), "test")
}

/// The cluster, the app and a Canary on Service `web` (gatewayapi, 1 s interval, steps of 20 up
/// to 40) with `analysis` merged in.
async fn start(analysis: Value) -> (serin::sim::Cluster, kube::Client) {
    let (cluster, client) = start_cluster().await;
    common::scenario::install_gateway_api(&client).await;
    app(&client).await;
    let base = json!({"provider": "gatewayapi:v1", "targetRef": {"apiVersion": "v1", "kind": "Service", "name": "web"},
        "service": {"port": 80, "gatewayRefs": [{"name": "public", "namespace": "gateways"}]},
        "analysis": {"interval": "1s", "threshold": 2, "stepWeight": 20, "maxWeight": 40}});
    create_canary(&client, base, &json!({"analysis": analysis})).await;
    (cluster, client)
}

fn selected_version(svc: &Service) -> String {
    svc.spec.as_ref().unwrap().selector.as_ref().unwrap()["version"].clone()
}

async fn version_of(client: &kube::Client, name: &str) -> String {
    selected_version(&services(client).get(name).await.unwrap())
}

/// Weights of web-primary and web-canary in the HTTPRoute `web`.
fn weights(route: &Value) -> Option<(i64, i64)> {
    let refs = route["spec"]["rules"][0]["backendRefs"].as_array()?;
    let w = |n: &str| {
        refs.iter()
            .find(|b| b["name"] == n)
            .map(|b| b["weight"].as_i64().unwrap_or(1))
    };
    Some((w("web-primary")?, w("web-canary")?))
}

async fn route(client: &kube::Client) -> Value {
    let r = common::scenario::dynamic_httproutes(client)
        .get_opt("web")
        .await;
    serde_json::to_value(r.unwrap()).unwrap()
}

/// Records every distinct weight pair the route shows, polling every 20 ms.
fn observe(client: &kube::Client) -> Arc<Mutex<Vec<(i64, i64)>>> {
    let seen: Arc<Mutex<Vec<(i64, i64)>>> = Default::default();
    let (client, log) = (client.clone(), seen.clone());
    tokio::spawn(async move {
        loop {
            if let Some(w) = weights(&route(&client).await) {
                let mut l = log.lock().unwrap();
                if l.last() != Some(&w) {
                    l.push(w);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    seen
}

/// Points the target Service at `version` (as a user would), returning its new resourceVersion.
async fn select(client: &kube::Client, version: &str) -> String {
    let patch = json!({"spec": {"selector": {"version": version}}});
    let svc = services(client)
        .patch("web", &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
    svc.metadata.resource_version.unwrap()
}

/// The target Service was written by nobody since `rv`, and never by Serin.
async fn untouched(client: &kube::Client, rv: &str) {
    let web = services(client).get("web").await.unwrap();
    assert_eq!(web.metadata.resource_version.as_deref(), Some(rv));
    let managers: Vec<String> = web
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(
        !managers.iter().any(|m| m.starts_with("serin")),
        "{managers:?}"
    );
    assert!(
        web.metadata.owner_references.is_none(),
        "never adopted: {:?}",
        web.metadata.owner_references
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selector_change_of_the_target_service_is_rolled_out_and_promoted_into_its_copy() {
    let (cluster, client) = start(json!({})).await;
    let before = services(&client).get("web").await.unwrap();
    let _stop = start_controller(&client);
    let c = wait_phase(&client, CanaryPhase::Initialized, None).await;
    let first = c.status.unwrap().last_applied_spec.unwrap();
    let primary = services(&client).get("web-primary").await.unwrap();
    assert_eq!(selected_version(&primary), "v1");
    assert_eq!(version_of(&client, "web-canary").await, "v1");
    let meta = &primary.metadata;
    assert_eq!(meta.owner_references.as_ref().unwrap()[0].kind, "Canary");
    assert!(
        !meta
            .annotations
            .as_ref()
            .unwrap()
            .contains_key("kubectl.kubernetes.io/last-applied-configuration"),
        "kubectl's record of the target is not copied"
    );
    let (ip, copy_ip) = (
        before.spec.as_ref().unwrap().cluster_ip.clone(),
        primary.spec.as_ref().unwrap().cluster_ip.clone(),
    );
    assert_ne!(ip, copy_ip, "the copy has a ClusterIP of its own");
    let r = route(&client).await;
    assert_eq!(weights(&r), Some((100, 0)));
    assert_eq!(r["spec"]["parentRefs"][0]["name"], "public");
    untouched(
        &client,
        before.metadata.resource_version.as_deref().unwrap(),
    )
    .await;

    let seen = observe(&client);
    let rv = select(&client, "v2").await;
    wait_object(
        "web-canary on v2 while progressing",
        || async {
            serde_json::to_value(services(&client).get("web-canary").await.unwrap()).unwrap()
        },
        |s| s["spec"]["selector"]["version"] == "v2",
    )
    .await;
    assert_eq!(
        version_of(&client, "web-primary").await,
        "v1",
        "not before promotion"
    );
    let c = wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        *seen.lock().unwrap(),
        [(100, 0), (80, 20), (60, 40), (100, 0)]
    );
    assert_eq!(version_of(&client, "web-primary").await, "v2", "promoted");
    let decisions = c.status.unwrap().decisions;
    common::scenario::assert_no_step_repeated(&decisions);
    let phases: Vec<CanaryPhase> = decisions.iter().map(|d| d.phase).collect();
    assert!(phases.contains(&CanaryPhase::Progressing), "{phases:?}");
    untouched(&client, &rv).await;
    common::scenario::assert_calls_are_granted(&cluster, &["gatewayApi"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_metric_rolls_back_and_leaves_the_primary_copy_on_the_old_selector() {
    // A query whose answer is always 50: below the minimum of 99, every check fails.
    let prom = Prometheus::start("");
    let metrics = json!({"threshold": 1, "metrics": [{"name": "fixed", "interval": "1m",
        "thresholdRange": {"min": 99}, "templateRef": {"name": "fixed"}}]});
    let (cluster, client) = start(metrics).await;
    let templates: Api<MetricTemplate> = Api::namespaced(client.clone(), "test");
    let template = json!({"apiVersion": "serin.io/v1beta1", "kind": "MetricTemplate", "metadata": {"name": "fixed"},
        "spec": {"provider": {"type": "prometheus", "address": prom.url}, "query": "vector(50)"}});
    templates
        .create(
            &PostParams::default(),
            &serde_json::from_value(template).unwrap(),
        )
        .await
        .unwrap();
    let _stop = start_controller(&client);
    let c = wait_phase(&client, CanaryPhase::Initialized, None).await;
    let first = c.status.unwrap().last_applied_spec.unwrap();
    let seen = observe(&client);
    let rv = select(&client, "v2").await;
    let c = wait_phase(&client, CanaryPhase::Failed, Some(&first)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let st = c.status.unwrap();
    assert_eq!(st.failed_checks, 1);
    let check = st
        .decisions
        .iter()
        .flat_map(|d| &d.checks)
        .find(|c| c.name == "fixed");
    assert_eq!(
        check.and_then(|c| c.value),
        Some(50.0),
        "{:?}",
        st.decisions
    );
    assert_eq!(
        version_of(&client, "web-primary").await,
        "v1",
        "the primary keeps the old selector"
    );
    assert_eq!(weights(&route(&client).await), Some((100, 0)));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.first(), Some(&(100, 0)), "{seen:?}");
    assert_eq!(seen.last(), Some(&(100, 0)), "{seen:?}");
    assert_eq!(
        version_of(&client, "web-canary").await,
        "v2",
        "the canary copy follows the target"
    );
    untouched(&client, &rv).await;
    common::scenario::assert_calls_are_granted(&cluster, &["gatewayApi"], false);
}
