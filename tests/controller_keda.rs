//! Scenario: the real controller on serin::sim with KEDA's ScaledObject CRD (../shared/crds/keda)
//! installed and a Canary whose autoscalerRef is a ScaledObject. The primary gets
//! `<so>-primary`, scaling `podinfo-primary` with the triggers copied (one query replaced by
//! primaryScalerQueries, bounds from primaryScalerReplicas), valid against KEDA's schema; the
//! target's ScaledObject is paused while the target is idle and resumed for the analysis; a change
//! to the target's ScaledObject reaches the primary's at promotion. Every call is granted with
//! integrations.keda.

mod common;

use common::scenario::{set_image, setup_with, start_controller, wait_phase};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::{Value, json};
use serin::api::CanaryPhase;

const CRD: &str = "../shared/crds/keda/keda.sh_scaledobjects.yaml";

fn crd() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(CRD);
    serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn scaled_objects(client: &kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject");
    Api::namespaced_with(
        client.clone(),
        "test",
        &ApiResource::from_gvk_with_plural(&gvk, "scaledobjects"),
    )
}

async fn get(client: &kube::Client, name: &str) -> Value {
    serde_json::to_value(scaled_objects(client).get(name).await.unwrap()).unwrap()
}

fn paused(so: &Value) -> Option<String> {
    so["metadata"]["annotations"]["autoscaling.keda.sh/paused-replicas"]
        .as_str()
        .map(String::from)
}

/// The object passes the served version's schema as kube-apiserver checks it.
fn assert_valid(so: &Value) {
    let crd = crd();
    let schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
    let causes =
        serin::schema::validate(&schema, &serin::schema::apply_defaults(&schema, so), None);
    assert!(causes.is_empty(), "{causes:?}\n{so}");
    assert!(
        serin::schema::unknown_fields(&schema, so).is_empty(),
        "{so}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scaled_object_target_gets_a_primary_scaled_object_kept_in_step() {
    let (cluster, client) = setup_with(json!({"autoscalerRef": {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": "podinfo",
        "primaryScalerQueries": {"rps": "sum(rate(http_requests_total{deployment=\"podinfo-primary\",code!~\"5..\"}[1m]))"},
        "primaryScalerReplicas": {"minReplicas": 2, "maxReplicas": 8}
    }}))
    .await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(crd()).unwrap(),
    )
    .await
    .unwrap();
    let source: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": "podinfo", "namespace": "test", "labels": {"app": "podinfo"}},
        "spec": {"scaleTargetRef": {"name": "podinfo"}, "pollingInterval": 15, "minReplicaCount": 1, "maxReplicaCount": 4,
            "triggers": [
                {"type": "prometheus", "name": "rps", "metadata": {"serverAddress": "http://prometheus:9090",
                    "query": "sum(rate(http_requests_total{deployment=\"podinfo\"}[1m]))", "threshold": "100"}},
                {"type": "prometheus", "name": "latency", "metadata": {"serverAddress": "http://prometheus:9090",
                    "query": "max(p99{app=\"podinfo-canary\"})", "threshold": "0.5"}}
            ]}
    }))
    .unwrap();
    scaled_objects(&client)
        .create(&PostParams::default(), &source)
        .await
        .unwrap();

    let _stop = start_controller(&client);
    let c = wait_phase(&client, CanaryPhase::Initialized, None).await;
    let primary = get(&client, "podinfo-primary").await;
    assert_eq!(primary["spec"]["scaleTargetRef"]["name"], "podinfo-primary");
    assert_eq!(
        primary["spec"]["triggers"][0]["metadata"]["query"],
        "sum(rate(http_requests_total{deployment=\"podinfo-primary\",code!~\"5..\"}[1m]))"
    );
    // A trigger primaryScalerQueries does not name keeps its query.
    assert_eq!(
        primary["spec"]["triggers"][1]["metadata"]["query"],
        "max(p99{app=\"podinfo-canary\"})"
    );
    assert_eq!(
        (
            primary["spec"]["minReplicaCount"].clone(),
            primary["spec"]["maxReplicaCount"].clone()
        ),
        (json!(2), json!(8))
    );
    assert_eq!(primary["spec"]["pollingInterval"], 15);
    assert_eq!(primary["metadata"]["ownerReferences"][0]["kind"], "Canary");
    assert_valid(&primary);
    assert_eq!(paused(&get(&client, "podinfo").await).as_deref(), Some("0"));

    // The user raises a threshold; the primary's copy follows at the next promotion.
    let raise = json!({"spec": {"triggers": [
        {"type": "prometheus", "name": "rps", "metadata": {"serverAddress": "http://prometheus:9090",
            "query": "sum(rate(http_requests_total{deployment=\"podinfo\"}[1m]))", "threshold": "250"}},
        {"type": "prometheus", "name": "latency", "metadata": {"serverAddress": "http://prometheus:9090",
            "query": "max(p99{app=\"podinfo-canary\"})", "threshold": "0.5"}}
    ]}});
    scaled_objects(&client)
        .patch("podinfo", &PatchParams::default(), &Patch::Merge(&raise))
        .await
        .unwrap();
    let first = c.status.unwrap().last_applied_spec.unwrap();
    set_image(&client, "podinfo:6.0.1", json!({})).await;
    wait_phase(&client, CanaryPhase::Progressing, Some(&first)).await;
    // The status says Progressing before that tick's effects (resume, then scale up) run.
    common::scenario::wait_object(
        "the target's ScaledObject resumed for the analysis",
        || get(&client, "podinfo"),
        |so| paused(so).is_none(),
    )
    .await;
    wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    let primary = get(&client, "podinfo-primary").await;
    assert_eq!(
        primary["spec"]["triggers"][0]["metadata"]["threshold"],
        "250"
    );
    assert_valid(&primary);
    assert_eq!(paused(&get(&client, "podinfo").await).as_deref(), Some("0"));

    use serin::controller::rbac;
    let mut granted = rbac::grants(&[]);
    granted.extend(rbac::integration_grants("keda"));
    granted.extend(rbac::everyone_grants());
    let log = cluster.state().lock().unwrap().access_log.clone();
    let missing: Vec<String> = log
        .keys()
        .filter(|a| a.agent == "serin")
        .filter(|a| !granted.contains(&(a.group.clone(), a.resource.clone(), a.verb.to_string())))
        .map(|a| format!("{} {}/{}", a.verb, a.group, a.resource))
        .collect();
    assert!(missing.is_empty(), "calls without a rule: {missing:?}");
}
