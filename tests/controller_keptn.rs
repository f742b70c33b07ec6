//! Scenarios: the real controller on serin::sim with Keptn's CRDs installed and MetricTemplates of
//! type `keptn`. A KeptnMetric within its bound promotes the canary; an Analysis that Keptn (here
//! a test task standing in for Keptn's metrics-operator) fails rolls it back — and every Analysis
//! Serin created is deleted. Every call the controller made is granted with integrations.keptn.

mod common;

use std::time::Duration;

use common::scenario::{set_image, setup_with, start_controller, wait_phase};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use serde_json::json;
use serin::api::{CanaryPhase, MetricTemplate, Verdict};

async fn install_keptn(client: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/crds/keptn.yaml"),
    )
    .unwrap();
    for doc in serin::manifest::parse_documents(&text).unwrap() {
        let crd: CustomResourceDefinition = serde_json::from_value(doc).unwrap();
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
}

fn keptn(client: &kube::Client, kind: &str, plural: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("metrics.keptn.sh", "v1beta1", kind);
    Api::namespaced_with(
        client.clone(),
        "test",
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

async fn template(client: &kube::Client, query: &str) {
    let templates: Api<MetricTemplate> = Api::namespaced(client.clone(), "test");
    templates
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "serin.io/v1beta1", "kind": "MetricTemplate",
                "metadata": {"name": "keptn-check"},
                "spec": {"provider": {"type": "keptn"}, "query": query}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
}

fn analysis(bound: serde_json::Value) -> serde_json::Value {
    json!({"analysis": {"interval": "1s", "threshold": 2, "iterations": 2, "metrics": [
        {"name": "keptn-check", "templateRef": {"name": "keptn-check"}, "thresholdRange": bound}
    ]}})
}

/// Every call the controller made is granted by the default rules plus integrations.keptn.
fn assert_granted_with_keptn(cluster: &serin::sim::Cluster) {
    use serin::controller::rbac;
    let mut granted = rbac::grants(&[]);
    granted.extend(rbac::integration_grants("keptn"));
    granted.extend(rbac::everyone_grants());
    let log = cluster.state().lock().unwrap().access_log.clone();
    let missing: Vec<String> = log
        .keys()
        .filter(|a| a.agent == "serin")
        .filter(|a| !granted.contains(&(a.group.clone(), a.resource.clone(), a.verb.to_string())))
        .map(|a| format!("{} {}/{}", a.verb, a.group, a.resource))
        .collect();
    assert!(missing.is_empty(), "calls without a rule: {missing:?}");
    assert!(
        log.keys()
            .any(|a| a.agent == "serin" && a.group == "metrics.keptn.sh"),
        "no Keptn call was made"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keptn_metric_within_its_bound_promotes_the_canary() {
    let (cluster, client) = setup_with(analysis(json!({"max": 500}))).await;
    install_keptn(&client).await;
    template(
        &client,
        "keptnmetric/test/response-time/2m/reporter=destination\n",
    )
    .await;
    let metrics = keptn(&client, "KeptnMetric", "keptnmetrics");
    let metric: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "metrics.keptn.sh/v1beta1", "kind": "KeptnMetric",
        "metadata": {"name": "response-time", "namespace": "test"},
        "spec": {"fetchIntervalSeconds": 10, "provider": {"name": "prometheus"}, "query": "x"}
    }))
    .unwrap();
    metrics
        .create(&PostParams::default(), &metric)
        .await
        .unwrap();
    let status = json!({"status": {"value": "120.5", "rawValue": "MTIwLjU=", "lastUpdated": "2026-11-28T12:00:00Z"}});
    metrics
        .patch_status(
            "response-time",
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await
        .unwrap();
    let _stop = start_controller(&client);
    let c = wait_phase(&client, CanaryPhase::Initialized, None).await;
    let first = c.status.unwrap().last_applied_spec.unwrap();
    set_image(&client, "podinfo:6.0.1", json!({})).await;
    let c = wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    let checks: Vec<_> = c
        .status
        .unwrap()
        .decisions
        .iter()
        .flat_map(|d| d.checks.clone())
        .filter(|c| c.name == "keptn-check")
        .collect();
    assert!(checks.len() >= 2, "{checks:?}");
    assert!(
        checks
            .iter()
            .all(|c| c.value == Some(120.5) && c.verdict == Verdict::Pass),
        "{checks:?}"
    );
    assert_granted_with_keptn(&cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_keptn_analysis_rolls_the_canary_back_and_is_deleted() {
    let (cluster, client) = setup_with(analysis(json!({"min": 1}))).await;
    install_keptn(&client).await;
    template(
        &client,
        "analysis/test/slo/5m/workload={{ target }};env=prod",
    )
    .await;
    // Keptn's part: complete each new Analysis of `slo` as failed.
    let analyses = keptn(&client, "Analysis", "analyses");
    let keptn_task = {
        let analyses = analyses.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                for a in analyses.list(&ListParams::default()).await.unwrap() {
                    let name = a.metadata.name.clone().unwrap();
                    if a.data["status"]["state"] == "Completed" {
                        continue;
                    }
                    assert_eq!(a.data["spec"]["analysisDefinition"]["name"], "slo");
                    assert_eq!(a.data["spec"]["timeframe"]["recent"], "5m");
                    assert_eq!(
                        a.data["spec"]["args"],
                        json!({"workload": "podinfo", "env": "prod"})
                    );
                    let done =
                        json!({"status": {"state": "Completed", "pass": false, "raw": "{}"}});
                    let _ = analyses
                        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&done))
                        .await;
                    seen.push(name);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let _stop = start_controller(&client);
    let c = wait_phase(&client, CanaryPhase::Initialized, None).await;
    let first = c.status.unwrap().last_applied_spec.unwrap();
    set_image(&client, "podinfo:6.0.1", json!({})).await;
    let c = wait_phase(&client, CanaryPhase::Failed, Some(&first)).await;
    keptn_task.abort();
    let checks: Vec<_> = c
        .status
        .unwrap()
        .decisions
        .iter()
        .flat_map(|d| d.checks.clone())
        .filter(|c| c.name == "keptn-check")
        .collect();
    assert!(
        checks.len() >= 2
            && checks
                .iter()
                .all(|c| c.value == Some(0.0) && c.verdict == Verdict::Fail),
        "{checks:?}"
    );
    // Serin deletes each Analysis once it has read it.
    assert!(
        analyses
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_granted_with_keptn(&cluster);
}

/// The provider itself against the sim: no value yet is no data, Keptn's error message and a
/// missing object are query errors, an Analysis Keptn never completes is a timeout (and is
/// deleted all the same).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keptn_answers_no_data_errors_and_timeouts() {
    use serin::metrics::{HttpSettings, KeptnProvider, MetricError, TemplateSource};
    let (_cluster, client) = common::scenario::start_cluster().await;
    install_keptn(&client).await;
    let metrics = keptn(&client, "KeptnMetric", "keptnmetrics");
    for name in ["pending", "broken"] {
        let m: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "metrics.keptn.sh/v1beta1", "kind": "KeptnMetric",
            "metadata": {"name": name, "namespace": "test"},
            "spec": {"fetchIntervalSeconds": 10, "provider": {"name": "prometheus"}, "query": "x"}
        }))
        .unwrap();
        metrics.create(&PostParams::default(), &m).await.unwrap();
    }
    let err = json!({"status": {"value": "", "errMsg": "client_error: bad_data: parse error"}});
    metrics
        .patch_status("broken", &PatchParams::default(), &Patch::Merge(&err))
        .await
        .unwrap();
    let secret = Default::default();
    let keptn_provider = KeptnProvider::new(TemplateSource {
        address: None,
        secret: &secret,
        region: None,
        window: Duration::from_secs(60),
        http: HttpSettings {
            timeout: Duration::from_secs(2),
            ..Default::default()
        },
        kube: Some(client.clone()),
    })
    .unwrap();
    assert_eq!(
        keptn_provider.query("keptnmetric/test/pending").await,
        Err(MetricError::NoData)
    );
    assert_eq!(
        keptn_provider.query("keptnmetric/test/broken").await,
        Err(MetricError::Query(
            "KeptnMetric test/broken: client_error: bad_data: parse error".into()
        ))
    );
    assert_eq!(
        keptn_provider.query("keptnmetric/test/nope").await,
        Err(MetricError::Query("KeptnMetric test/nope not found".into()))
    );
    assert_eq!(
        keptn_provider.query("analysis/test/never").await,
        Err(MetricError::Timeout(Duration::from_secs(2)))
    );
    let analyses = keptn(&client, "Analysis", "analyses");
    assert!(
        analyses
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}
