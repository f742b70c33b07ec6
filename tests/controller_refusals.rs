//! Refused requests reach the Canary: a ValidatingAdmissionPolicy that forbids scaling a
//! Deployment to 0 (modelled by the sim with its CEL `validations[].expression`), and RBAC that
//! forbids the routes of a router turned off in the chart. Each shows as `Ready=False` with the
//! class as reason and the server's words, one Warning Event, retries that back off, and the
//! Canary carries on by itself once the refusal is lifted.

mod common;

use std::time::{Duration, Instant};

use common::scenario::{setup_with, start_controller_with, wait_phase};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use serin::api::{Canary, CanaryPhase};
use serin::controller::Settings;
use serin::telemetry::ApiCallLabels;

fn admission_api(client: &kube::Client, kind: &str, plural: &str) -> Api<kube::api::DynamicObject> {
    let gvk = kube::api::GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind);
    Api::all_with(
        client.clone(),
        &kube::api::ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

/// The Canary's Ready condition once its reason is `reason` (20 s at most): (message, status).
async fn ready(client: &kube::Client, reason: &str) -> String {
    let api: Api<Canary> = Api::namespaced(client.clone(), "test");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = api.get("podinfo").await.unwrap().status.unwrap_or_default();
        if let Some(c) = st
            .conditions
            .iter()
            .find(|c| c.r#type == "Ready" && c.reason == reason)
        {
            assert_eq!(c.status, "False");
            return c.message.clone().unwrap_or_default();
        }
        assert!(Instant::now() < deadline, "no Ready={reason}: {st:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn settings(retry_max: Duration) -> Settings {
    Settings {
        retry_max,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admission_policy_refusal_is_shown_retried_with_backoff_and_recovered_from() {
    let (_cluster, client) = setup_with(json!({})).await;
    let pp = PostParams::default();
    let policy = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "min-replicas"}, "spec": {"matchConstraints": {"resourceRules": [{"apiGroups": ["apps"],
        "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["deployments"]}]},
        "validations": [{"expression": "object.spec.replicas > 0", "message": "Deployments may not be scaled to 0"}]}});
    let binding = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": "min-replicas-binding"}, "spec": {"policyName": "min-replicas", "validationActions": ["Deny"]}});
    admission_api(
        &client,
        "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies",
    )
    .create(&pp, &serde_json::from_value(policy).unwrap())
    .await
    .unwrap();
    let bindings = admission_api(
        &client,
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
    );
    bindings
        .create(&pp, &serde_json::from_value(binding).unwrap())
        .await
        .unwrap();
    let settings = settings(Duration::from_secs(8));
    let telemetry = settings.telemetry.clone();
    let _stop = start_controller_with(&client, settings);
    let message = ready(&client, "AdmissionDenied").await;
    assert_eq!(
        message,
        "patch deployments/podinfo: deployments.apps \"podinfo\" is forbidden: ValidatingAdmissionPolicy 'min-replicas' with binding 'min-replicas-binding' denied request: Deployments may not be scaled to 0"
    );
    let api: Api<Canary> = Api::namespaced(client.clone(), "test");
    let st = api.get("podinfo").await.unwrap().status.unwrap();
    assert!(
        st.decisions
            .iter()
            .any(|d| d.action == format!("could not apply: {message}")),
        "{:?}",
        st.decisions
    );
    // Retries back off: 2 s, 4 s, 8 s (the cap here), ±20 % — watch the refused patches for 21 s.
    let refused = ApiCallLabels {
        verb: "patch".into(),
        resource: "deployments.apps".into(),
        code: "422".into(),
    };
    let mut at = Vec::new();
    let mut last = telemetry.api_calls.get_or_create(&refused).get();
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(21) {
        let now = telemetry.api_calls.get_or_create(&refused).get();
        if now > last {
            at.push(watch.elapsed());
            last = now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!((2..=5).contains(&at.len()), "refused patches at {at:?}");
    let gaps: Vec<f64> = at.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
    assert!(
        gaps.windows(2).all(|g| g[1] >= g[0] * 1.3 || g[1] >= 6.0),
        "no backoff: {gaps:?}"
    );
    let events = common::scenario::event_notes(&client, "AdmissionDenied").await;
    assert_eq!(
        events,
        vec![message.clone()],
        "one Warning Event per distinct message"
    );
    // The policy goes: the Canary carries on by itself.
    bindings
        .delete("min-replicas-binding", &DeleteParams::default())
        .await
        .unwrap();
    let c = wait_phase(&client, CanaryPhase::Initialized, None).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let st = api.get("podinfo").await.unwrap().status.unwrap();
        let ready = common::scenario::ready_condition(&st).unwrap();
        if ready.status == "True" {
            break;
        }
        assert!(Instant::now() < deadline, "still {ready:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    let deadline = Instant::now() + Duration::from_secs(15);
    while deploys.get("podinfo").await.unwrap().spec.unwrap().replicas != Some(0) {
        assert!(
            Instant::now() < deadline,
            "target not scaled to 0 after the policy went"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(c.status.unwrap().phase, CanaryPhase::Initialized);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_the_service_account_may_not_use_is_forbidden_on_the_canary_until_granted() {
    let (cluster, client) = setup_with(json!({"provider": "gatewayapi:v1",
        "service": {"port": 9898, "gatewayRefs": [{"name": "public", "namespace": "gateways"}]},
        "analysis": {"interval": "1s", "threshold": 2, "iterations": null, "stepWeight": 50, "maxWeight": 50}}))
    .await;
    common::scenario::install_gateway_api(&client).await;
    // The chart's routers.gatewayApi is off: the ServiceAccount may not touch HTTPRoutes.
    cluster
        .state()
        .lock()
        .unwrap()
        .deny("serin", "gateway.networking.k8s.io", "httproutes", "*");
    let _stop = start_controller_with(&client, settings(Duration::from_secs(4)));
    // The permissions preflight (SelfSubjectAccessReview) says so before anything is tried.
    let message = ready(&client, "Forbidden").await;
    assert!(
        message.starts_with("the controller's ServiceAccount may not get httproutes (apiGroups: [gateway.networking.k8s.io]), list httproutes")
            && message.ends_with("in namespace test (granted by the chart value routers.gatewayApi=true)"),
        "{message}"
    );
    let events = common::scenario::event_notes(&client, "Forbidden").await;
    assert_eq!(events, vec![message]);
    cluster.state().lock().unwrap().clear_denials();
    wait_phase(&client, CanaryPhase::Initialized, None).await;
    let routes = common::scenario::dynamic_httproutes(&client);
    assert!(
        routes.get_opt("podinfo").await.unwrap().is_some(),
        "the route was made once allowed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serin_check_cluster_names_what_is_missing_and_the_chart_value_that_grants_it() {
    let (cluster, _client) = common::scenario::start_cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig).unwrap();
    let check = || async {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_serin"))
            .args([
                "check",
                "--cluster",
                "-n",
                "test",
                "--mesh-provider",
                "gatewayapi:v1",
            ])
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .output()
            .await
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = check().await;
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("provider gatewayapi:v1: ok"), "{text}");
    {
        let state = cluster.state();
        let mut st = state.lock().unwrap();
        st.deny("serin", "apps", "deployments", "patch");
        st.deny("serin", "gateway.networking.k8s.io", "httproutes", "create");
    }
    let (code, text) = check().await;
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("may not patch deployments (apiGroups: [apps]) in namespace test (granted by the chart value rbac.create=true (the chart's ClusterRole or Role))"),
        "{text}"
    );
    assert!(
        text.contains("create httproutes (apiGroups: [gateway.networking.k8s.io]) in namespace test (granted by the chart value routers.gatewayApi=true)"),
        "{text}"
    );
}
