//! Scenario (issue 21, item 1): the statistical judge, with the real controller on serin::sim and
//! a real Prometheus holding per-pod latency for the canary's and the primary's pods. A canary
//! 20 % slower on every pod passes a fixed 200 ms bound but fails the judge, and is rolled back;
//! one like the primary is promoted. The decision record carries the judge's numbers and says
//! the canary was compared with the primary. A compared metric on a provider that cannot return
//! per-pod samples is an invalid spec naming the field.

mod common;

use common::prometheus::{Prometheus, series};
use common::scenario::{set_image, setup_with, start_controller_with, wait_phase};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};
use serde_json::json;
use serin::api::{CanaryPhase, CanaryStatus, CheckRecord, MetricTemplate, Verdict};
use serin::controller::Settings;

/// Per-pod mean latency over the query window: the judge's samples, one per pod of the side.
const PER_POD: &str = concat!(
    "sum by (kubernetes_pod_name) (rate(http_request_duration_seconds_sum{kubernetes_namespace=\"{{ namespace }}\",kubernetes_pod_name=~\"{{ target }}-[0-9a-z]+-[0-9a-z]+\"}[{{ interval }}]))",
    " / sum by (kubernetes_pod_name) (rate(http_request_duration_seconds_count{kubernetes_namespace=\"{{ namespace }}\",kubernetes_pod_name=~\"{{ target }}-[0-9a-z]+-[0-9a-z]+\"}[{{ interval }}]))"
);

/// The canary's mean latency over all its pods: what a fixed bound holds.
const CANARY_MEAN: &str = concat!(
    "sum(rate(http_request_duration_seconds_sum{kubernetes_namespace=\"{{ namespace }}\",kubernetes_pod_name=~\"{{ target }}-[0-9a-z]+-[0-9a-z]+\"}[{{ interval }}]))",
    " / sum(rate(http_request_duration_seconds_count{kubernetes_namespace=\"{{ namespace }}\",kubernetes_pod_name=~\"{{ target }}-[0-9a-z]+-[0-9a-z]+\"}[{{ interval }}]))"
);

/// Eight pods of `workload` at 10 requests/s, pod i with a mean latency of
/// `seconds * (1 + (i - 3.5) * 1 %)`: a spread of ±3.5 % around `seconds`.
fn pods(out: &mut String, workload: &str, seconds: f64) {
    for i in 0..8 {
        let pod = format!(
            r#"kubernetes_namespace="test",kubernetes_pod_name="{workload}-7d9f8c6b5-p{i}""#
        );
        let latency = seconds * (1.0 + (f64::from(i) - 3.5) * 0.01);
        series(
            out,
            &format!("http_request_duration_seconds_count{{{pod}}}"),
            10.0,
        );
        series(
            out,
            &format!("http_request_duration_seconds_sum{{{pod}}}"),
            10.0 * latency,
        );
    }
}

fn history(canary_seconds: f64, primary_seconds: f64) -> String {
    let mut om = String::new();
    pods(&mut om, "podinfo", canary_seconds);
    pods(&mut om, "podinfo-primary", primary_seconds);
    om
}

fn analysis() -> serde_json::Value {
    json!({"analysis": {"interval": "1s", "threshold": 2, "iterations": 2,
    "judge": {"minEffect": 0.1, "maxPValue": 0.05, "minSamples": 5},
    "metrics": [
        {"name": "latency-bound", "interval": "1m", "thresholdRange": {"max": 0.2},
            "query": CANARY_MEAN},
        {"name": "latency", "interval": "1m", "query": PER_POD,
            "compare": {"direction": "increase"}}
    ]}})
}

async fn start(prom: &Prometheus) -> (serin::sim::Cluster, kube::Client, Settings) {
    let (cluster, client) = setup_with(analysis()).await;
    let settings = Settings {
        metrics_server: Some(prom.url.clone()),
        ..Default::default()
    };
    (cluster, client, settings)
}

fn records(st: &CanaryStatus, name: &str) -> Vec<CheckRecord> {
    st.decisions
        .iter()
        .flat_map(|d| d.checks.iter())
        .filter(|c| c.name == name)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_slower_by_a_margin_under_the_bound_is_judged_worse_and_rolled_back() {
    // 120 ms against 100 ms: well under the 200 ms bound, 20 % worse on every pod.
    let prom = Prometheus::start(&history(0.120, 0.100));
    let (cluster, client, settings) = start(&prom).await;
    let _stop = start_controller_with(&client, settings);
    let c = wait_phase(&client, CanaryPhase::Initialized, None).await;
    let first = c.status.unwrap().last_applied_spec.unwrap();
    set_image(&client, "podinfo:6.0.1", json!({})).await;
    let c = wait_phase(&client, CanaryPhase::Failed, Some(&first)).await;
    let st = c.status.unwrap();
    let bound = records(&st, "latency-bound");
    assert!(
        !bound.is_empty() && bound.iter().all(|r| r.verdict == Verdict::Pass),
        "the fixed bound does not catch it: {bound:?}"
    );
    let judged = records(&st, "latency");
    assert_eq!(
        judged.len(),
        2,
        "two failed judgements reach threshold 2: {judged:?}"
    );
    for r in &judged {
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        let n = r.judge.clone().expect("the judge's numbers are recorded");
        assert_eq!(n.baseline, "primary");
        assert_eq!((n.canary_samples, n.baseline_samples), (8, 8));
        assert!((n.canary_median.unwrap() - 0.120).abs() < 1e-6, "{n:?}");
        assert!((n.baseline_median.unwrap() - 0.100).abs() < 1e-6, "{n:?}");
        assert!((n.effect.unwrap() - 0.2).abs() < 1e-6, "{n:?}");
        // All eight canary pods above all eight primary pods: exact p = 2 / C(16, 8).
        assert!((n.p_value.unwrap() - 2.0 / 12870.0).abs() < 1e-9, "{n:?}");
    }
    assert_eq!(st.failed_checks, 2);
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    let primary = deploys.get("podinfo-primary").await.unwrap();
    assert_eq!(common::scenario::image(&primary), "podinfo:6.0.0");
    let notes = common::scenario::event_notes(&client, "CheckFailed").await;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("latency: canary median 0.1200 vs primary 0.1000: +20.0%")),
        "{notes:?}"
    );
    common::scenario::assert_calls_are_granted(&cluster, &[], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_like_the_primary_is_promoted() {
    // 100.5 ms against 100 ms: the pods interleave; no difference to speak of.
    let prom = Prometheus::start(&history(0.1005, 0.100));
    let (_cluster, client, settings) = start(&prom).await;
    let _stop = start_controller_with(&client, settings);
    let c = wait_phase(&client, CanaryPhase::Initialized, None).await;
    let first = c.status.unwrap().last_applied_spec.unwrap();
    set_image(&client, "podinfo:6.0.1", json!({})).await;
    let c = wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    let st = c.status.unwrap();
    let judged = records(&st, "latency");
    assert!(judged.len() >= 2, "{:?}", st.decisions);
    for r in &judged {
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        let n = r.judge.clone().unwrap();
        assert_eq!((n.canary_samples, n.baseline_samples), (8, 8));
        assert!(n.p_value.unwrap() > 0.5, "{n:?}");
        assert!(n.effect.unwrap().abs() < 0.01, "{n:?}");
    }
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    let primary = deploys.get("podinfo-primary").await.unwrap();
    assert_eq!(common::scenario::image(&primary), "podinfo:6.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compared_metric_on_a_provider_without_per_pod_samples_is_an_invalid_spec() {
    let (_cluster, client) = setup_with(json!({"analysis": {"metrics": [
        {"name": "latency", "templateRef": {"name": "dd"}, "compare": {"direction": "increase"}}
    ]}}))
    .await;
    let templates: Api<MetricTemplate> = Api::namespaced(client.clone(), "test");
    templates
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "serin.io/v1beta1", "kind": "MetricTemplate",
                "metadata": {"name": "dd"},
                "spec": {"provider": {"type": "datadog"}, "query": "avg:latency{*}"}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let _stop = start_controller_with(&client, Settings::default());
    assert_eq!(
        common::scenario::invalid_spec_message(&client).await,
        "spec.analysis.metrics[0].compare: MetricTemplate test/dd uses the datadog provider, which returns one value per query; compare needs per-pod samples from a prometheus template"
    );
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    assert!(deploys.get_opt("podinfo-primary").await.unwrap().is_none());
}
