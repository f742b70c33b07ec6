//! Scenario (issue 6 "done when"): the real controller on serin::sim with a real Prometheus. A
//! canary whose error rate breaks the threshold is rolled back; one within it is promoted; the
//! values are in status.decisions and in serin_canary_metric_analysis.

mod common;

use common::prometheus::{Prometheus, series};
use common::scenario::{set_image, setup_with, start_controller_with, wait_phase};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};
use serde_json::json;
use serin::api::{CanaryPhase, CanaryStatus, MetricTemplate, Verdict};
use serin::controller::Settings;

const POD: &str = r#"kubernetes_namespace="test",kubernetes_pod_name="podinfo-7d9f8c6b5-x2x4z""#;

/// Canary traffic: `ok` and `failed` requests per second, latency buckets for 100 requests/s.
fn traffic(ok: f64, failed: f64, buckets: &[(&str, f64)]) -> String {
    let mut om = String::new();
    series(
        &mut om,
        &format!(r#"http_request_duration_seconds_count{{{POD},status="200"}}"#),
        ok,
    );
    if failed > 0.0 {
        series(
            &mut om,
            &format!(r#"http_request_duration_seconds_count{{{POD},status="503"}}"#),
            failed,
        );
    }
    for (le, n) in buckets {
        series(
            &mut om,
            &format!(r#"http_request_duration_seconds_bucket{{{POD},le="{le}"}}"#),
            *n,
        );
    }
    om
}

const FAST: &[(&str, f64)] = &[
    ("0.1", 50.0),
    ("0.25", 100.0),
    ("0.5", 100.0),
    ("+Inf", 100.0),
];

fn analysis() -> serde_json::Value {
    json!({"analysis": {"interval": "1s", "threshold": 2, "iterations": 2, "metrics": [
        {"name": "request-success-rate", "interval": "1m", "thresholdRange": {"min": 99}},
        {"name": "p99-latency", "interval": "1m", "thresholdRange": {"max": 500},
            "templateRef": {"name": "latency"}, "templateVariables": {"quantile": "0.99"}}
    ]}})
}

async fn start(prom: &Prometheus) -> (serin::sim::Cluster, kube::Client, Settings) {
    let (cluster, client) = setup_with(analysis()).await;
    let templates: Api<MetricTemplate> = Api::namespaced(client.clone(), "test");
    templates.create(&PostParams::default(), &serde_json::from_value(json!({
        "apiVersion": "serin.io/v1beta1", "kind": "MetricTemplate", "metadata": {"name": "latency"},
        "spec": {"provider": {"type": "prometheus", "address": prom.url},
            "query": "histogram_quantile({{ variables.quantile }}, sum(rate(http_request_duration_seconds_bucket{kubernetes_namespace=\"{{ namespace }}\",kubernetes_pod_name=~\"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)\"}[{{ interval }}])) by (le)) * 1000"}
    })).unwrap()).await.unwrap();
    let settings = Settings {
        metrics_server: Some(prom.url.clone()),
        ..Default::default()
    };
    (cluster, client, settings)
}

fn checks(st: &CanaryStatus, name: &str) -> Vec<(Option<f64>, Verdict)> {
    st.decisions
        .iter()
        .flat_map(|d| d.checks.iter())
        .filter(|c| c.name == name)
        .map(|c| (c.value, c.verdict))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_within_its_thresholds_is_promoted() {
    let prom = Prometheus::start(&traffic(100.0, 0.0, FAST));
    let (_cluster, client, settings) = start(&prom).await;
    let telemetry = settings.telemetry.clone();
    let _stop = start_controller_with(&client, settings);
    let c = wait_phase(&client, CanaryPhase::Initialized, None).await;
    let first = c.status.unwrap().last_applied_spec.unwrap();
    set_image(&client, "podinfo:6.0.1", json!({})).await;
    let c = wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    let st = c.status.unwrap();
    let rate = checks(&st, "request-success-rate");
    assert!(rate.len() >= 2, "{:?}", st.decisions);
    assert!(
        rate.iter()
            .all(|(v, verdict)| *v == Some(100.0) && *verdict == Verdict::Pass),
        "{rate:?}"
    );
    let p99 = checks(&st, "p99-latency");
    assert!(
        p99.iter()
            .all(|(v, verdict)| v.is_some_and(|v| (v - 247.0).abs() < 1e-9)
                && *verdict == Verdict::Pass),
        "{p99:?}"
    );
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    let primary = deploys.get("podinfo-primary").await.unwrap();
    assert_eq!(common::scenario::image(&primary), "podinfo:6.0.1");
    let exposed = telemetry.encode();
    assert!(
        exposed.contains(r#"serin_canary_metric_analysis{name="podinfo",namespace="test",metric="request-success-rate"} 100.0"#),
        "{exposed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_whose_error_rate_breaks_the_threshold_is_rolled_back() {
    let prom = Prometheus::start(&traffic(6.0, 2.0, FAST));
    let (_cluster, client, settings) = start(&prom).await;
    let _stop = start_controller_with(&client, settings);
    let c = wait_phase(&client, CanaryPhase::Initialized, None).await;
    let first = c.status.unwrap().last_applied_spec.unwrap();
    set_image(&client, "podinfo:6.0.1", json!({})).await;
    let c = wait_phase(&client, CanaryPhase::Failed, Some(&first)).await;
    let st = c.status.unwrap();
    let rate = checks(&st, "request-success-rate");
    assert_eq!(
        rate.len(),
        2,
        "two failed checks reach threshold 2: {:?}",
        st.decisions
    );
    assert!(
        rate.iter()
            .all(|(v, verdict)| v.is_some_and(|v| (v - 75.0).abs() < 1e-9)
                && *verdict == Verdict::Fail),
        "{rate:?}"
    );
    assert_eq!(st.failed_checks, 2);
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    let primary = deploys.get("podinfo-primary").await.unwrap();
    assert_eq!(
        common::scenario::image(&primary),
        "podinfo:6.0.0",
        "primary untouched"
    );
    assert_eq!(
        deploys.get("podinfo").await.unwrap().spec.unwrap().replicas,
        Some(0)
    );
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "test");
    let notes: Vec<String> = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("CheckFailed"))
        .filter_map(|e| e.note)
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("request-success-rate 75.00")),
        "{notes:?}"
    );
}
