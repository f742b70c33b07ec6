//! Scenarios of `--secret-namespaces` on serin::sim: with Secret tracking off, a target that uses
//! a Secret is initialised and rolled out while the controller never lists, watches, reads or
//! writes a Secret (the primary uses it by its own name, and a change to it is not a revision);
//! with one namespace named, the controller's Secret calls all go to that namespace, Secrets are
//! tracked there as usual and left alone elsewhere. A bad value stops start-up with one sentence.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::scenario::{assert_calls_are_granted_with, start_cluster};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use serin::api::{Canary, CanaryPhase, CanaryStatus};
use serin::controller::{self, Settings};
use serin::telemetry::ResultLabels;
use serin::workload::SecretTracking;

/// In `ns`: the ConfigMap `podinfo-config`, the Secret `podinfo-token`, the Deployment `podinfo`
/// using both (envFrom, and the Secret as a volume too), and a blue/green Canary for it.
async fn app(client: &kube::Client, ns: &str) {
    let pp = PostParams::default();
    let cm = json!({"metadata": {"name": "podinfo-config"}, "data": {"MESSAGE": "v1"}});
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .create(&pp, &serde_json::from_value(cm).unwrap())
        .await
        .unwrap();
    let secret = json!({"metadata": {"name": "podinfo-token"}, "stringData": {"TOKEN": "one"}});
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&pp, &serde_json::from_value(secret).unwrap())
        .await
        .unwrap();
    let deploy = json!({"metadata": {"name": "podinfo", "labels": {"app": "podinfo"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "podinfo"}},
            "template": {"metadata": {"labels": {"app": "podinfo"}}, "spec": {
                "volumes": [{"name": "token", "secret": {"secretName": "podinfo-token"}}],
                "containers": [{"name": "podinfo", "image": "podinfo:6.0.0", "ports": [{"containerPort": 9898}],
                    "envFrom": [{"configMapRef": {"name": "podinfo-config"}}, {"secretRef": {"name": "podinfo-token"}}]}]}}}});
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&pp, &serde_json::from_value(deploy).unwrap())
        .await
        .unwrap();
    let canary = json!({"apiVersion": "serin.io/v1beta1", "kind": "Canary", "metadata": {"name": "podinfo"},
        "spec": {"provider": "kubernetes", "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 80, "targetPort": 9898}, "analysis": {"interval": "1s", "threshold": 2, "iterations": 2}}});
    Api::<Canary>::namespaced(client.clone(), ns)
        .create(&pp, &serde_json::from_value(canary).unwrap())
        .await
        .unwrap();
}

/// Polls the Canary `podinfo` of `ns` (60 s at most) until its status satisfies `pred`.
async fn wait_for(
    client: &kube::Client,
    ns: &str,
    what: &str,
    pred: impl Fn(&CanaryStatus) -> bool,
) -> CanaryStatus {
    let api: Api<Canary> = Api::namespaced(client.clone(), ns);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let st = api.get("podinfo").await.unwrap().status.unwrap_or_default();
        if pred(&st) {
            return st;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{ns}: timed out waiting for {what}: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn phase_is(phase: CanaryPhase) -> impl Fn(&CanaryStatus) -> bool {
    move |st| st.phase == phase
}

/// The names of the ConfigMap/Secret the primary of `ns` uses: (configMapRef, secretRef, volume).
async fn primary_refs(client: &kube::Client, ns: &str) -> (String, String, String) {
    let primary = Api::<Deployment>::namespaced(client.clone(), ns)
        .get("podinfo-primary")
        .await
        .unwrap();
    let pod = primary.spec.unwrap().template.spec.unwrap();
    let env_from = pod.containers[0].env_from.clone().unwrap();
    let volume = pod.volumes.unwrap()[0].secret.clone().unwrap();
    (
        env_from[0].config_map_ref.clone().unwrap().name,
        env_from[1].secret_ref.clone().unwrap().name,
        volume.secret_name.unwrap(),
    )
}

async fn secret_names(client: &kube::Client, ns: &str) -> Vec<String> {
    Api::<Secret>::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect()
}

/// A client that records the method and path of every Secret request sent through it.
fn recording(client: kube::Client) -> (kube::Client, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let namespace = client.default_namespace().to_string();
    let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
        if req.uri().path().contains("/secrets") {
            log.lock()
                .unwrap()
                .push(format!("{} {}", req.method(), req.uri().path()));
        }
        let client = client.clone();
        async move { client.send(req).await }
    });
    (kube::Client::new(service, namespace), seen)
}

/// Runs the controller over every namespace until the sender is dropped.
fn start(client: &kube::Client, settings: Settings) -> tokio::sync::oneshot::Sender<()> {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(controller::run(
        client.clone(),
        None,
        settings,
        async move {
            let _ = stop_rx.await;
        },
    ));
    stop_tx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_secret_tracking_off_a_target_using_a_secret_rolls_out_and_no_secret_is_touched() {
    let (cluster, client) = start_cluster().await;
    app(&client, "test").await;
    let settings = Settings {
        secret_tracking: SecretTracking::Off,
        ..Default::default()
    };
    let telemetry = settings.telemetry.clone();
    let reconciled = move || {
        let ok = ResultLabels {
            result: "ok".into(),
        };
        telemetry.reconciles.get_or_create(&ok).get()
    };
    let stop = start(&client, settings);

    let st = wait_for(
        &client,
        "test",
        "Initialized",
        phase_is(CanaryPhase::Initialized),
    )
    .await;
    let tracked = st.tracked_configs.clone().unwrap_or_default();
    assert_eq!(
        tracked.keys().collect::<Vec<_>>(),
        ["configmap/podinfo-config"],
        "ConfigMaps are still tracked, Secrets are not"
    );
    let (cm, secret, volume) = primary_refs(&client, "test").await;
    assert_eq!(cm, "podinfo-config-primary");
    assert_eq!(
        (secret.as_str(), volume.as_str()),
        ("podinfo-token", "podinfo-token")
    );
    assert_eq!(
        secret_names(&client, "test").await,
        ["podinfo-token"],
        "no -primary copy"
    );

    // A Secret change is not a new revision: after a reconcile that saw it, nothing moved. (A
    // first poke makes sure no earlier reconcile is still in flight to be counted instead.)
    let first = st.last_applied_spec.clone().unwrap();
    reconcile_after_poke(&client, &reconciled, "settled").await;
    Api::<Secret>::namespaced(client.clone(), "test")
        .patch(
            "podinfo-token",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"TOKEN": "two"}})),
        )
        .await
        .unwrap();
    reconcile_after_poke(&client, &reconciled, "after-secret-change").await;
    let st = Api::<Canary>::namespaced(client.clone(), "test")
        .get("podinfo")
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(st.phase, CanaryPhase::Initialized);
    assert_eq!(st.last_applied_spec.as_deref(), Some(first.as_str()));

    // A new image is rolled out as usual; the primary keeps using the Secret by its own name.
    set_image_keeping_secret(&client).await;
    wait_for(&client, "test", "Succeeded after the new image", |st| {
        st.phase == CanaryPhase::Succeeded && st.last_applied_spec.as_deref() != Some(&first)
    })
    .await;
    let (_, secret, volume) = primary_refs(&client, "test").await;
    assert_eq!(
        (secret.as_str(), volume.as_str()),
        ("podinfo-token", "podinfo-token")
    );
    assert_eq!(secret_names(&client, "test").await, ["podinfo-token"]);

    drop(stop);
    let log = cluster.state().lock().unwrap().access_log.clone();
    let secret_calls: Vec<String> = log
        .keys()
        .filter(|a| a.agent == "serin" && a.resource == "secrets")
        .map(|a| format!("{} secrets (all namespaces: {})", a.verb, a.all_namespaces))
        .collect();
    assert!(secret_calls.is_empty(), "{secret_calls:?}");
    assert_calls_are_granted_with(&cluster, &[], false, &SecretTracking::Off);
}

/// A new image for the target of `test`, keeping its references (the scenario's `set_image`
/// writes a container without the Secret).
async fn set_image_keeping_secret(client: &kube::Client) {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "podinfo", "image": "podinfo:6.0.1",
        "ports": [{"containerPort": 9898}],
        "envFrom": [{"configMapRef": {"name": "podinfo-config"}}, {"secretRef": {"name": "podinfo-token"}}]}]}}}});
    Api::<Deployment>::namespaced(client.clone(), "test")
        .patch("podinfo", &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
}

/// Pokes the target of `test` and waits (10 s at most) until a reconcile more has finished.
async fn reconcile_after_poke(client: &kube::Client, reconciled: &impl Fn() -> u64, value: &str) {
    let before = reconciled();
    common::scenario::poke_target(client, value).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while reconciled() <= before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reconcile after poke {value}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_namespace_named_secret_calls_stay_in_it() {
    let (cluster, client) = start_cluster().await;
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "other"}})).unwrap(),
        )
        .await
        .unwrap();
    app(&client, "test").await;
    app(&client, "other").await;
    let (recorded, seen) = recording(client.clone());
    let named = SecretTracking::parse("test").unwrap();
    let stop = start(
        &recorded,
        Settings {
            secret_tracking: named.clone(),
            ..Default::default()
        },
    );

    let initialized = phase_is(CanaryPhase::Initialized);
    let tracked = wait_for(&client, "test", "Initialized", &initialized).await;
    let untracked = wait_for(&client, "other", "Initialized", &initialized).await;
    let keys = |st: &CanaryStatus| -> Vec<String> {
        let t: BTreeMap<String, String> = st.tracked_configs.clone().unwrap_or_default();
        t.into_keys().collect()
    };
    assert_eq!(
        keys(&tracked),
        ["configmap/podinfo-config", "secret/podinfo-token"]
    );
    assert_eq!(keys(&untracked), ["configmap/podinfo-config"]);
    let copy = (
        "podinfo-token-primary".to_string(),
        "podinfo-token-primary".to_string(),
    );
    let (_, secret, volume) = primary_refs(&client, "test").await;
    assert_eq!((secret, volume), copy);
    let (_, secret, volume) = primary_refs(&client, "other").await;
    assert_eq!(
        (secret.as_str(), volume.as_str()),
        ("podinfo-token", "podinfo-token")
    );
    assert_eq!(
        secret_names(&client, "test").await,
        ["podinfo-token", "podinfo-token-primary"]
    );
    assert_eq!(secret_names(&client, "other").await, ["podinfo-token"]);

    // Where Secrets are tracked, a change to one is still a new revision that is rolled out.
    let first = tracked.last_applied_spec.clone().unwrap();
    Api::<Secret>::namespaced(client.clone(), "test")
        .patch(
            "podinfo-token",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"TOKEN": "two"}})),
        )
        .await
        .unwrap();
    wait_for(&client, "test", "Succeeded after the Secret change", |st| {
        st.phase == CanaryPhase::Succeeded && st.last_applied_spec.as_deref() != Some(&first)
    })
    .await;
    let copy = Api::<Secret>::namespaced(client.clone(), "test")
        .get("podinfo-token-primary")
        .await
        .unwrap();
    assert_eq!(copy.data.unwrap()["TOKEN"].0, b"two");

    drop(stop);
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty(), "the controller watched Secrets in test");
    let elsewhere: Vec<&String> = seen
        .iter()
        .filter(|call| !call.contains(" /api/v1/namespaces/test/secrets"))
        .collect();
    assert!(
        elsewhere.is_empty(),
        "Secret calls outside test: {elsewhere:?}"
    );
    assert_calls_are_granted_with(&cluster, &[], false, &named);
}

/// A bad `--secret-namespaces` stops `serin controller` at start-up with one clear sentence,
/// before it connects anywhere.
#[test]
fn a_bad_secret_namespaces_value_is_one_sentence_at_start_up() {
    for (args, says) in [
        (
            vec!["--secret-namespaces", "Apps"],
            "`Apps` is not a namespace name",
        ),
        (
            vec!["--secret-namespaces", "none,apps"],
            "`none` cannot be combined with namespace names",
        ),
        (
            vec!["--namespace", "apps", "--secret-namespaces", "shop"],
            "--secret-namespaces names shop, which --namespace=apps does not watch",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_serin"))
            .arg("controller")
            .args(&args)
            .env_remove("SERIN_SECRET_NAMESPACES")
            .env("KUBECONFIG", "/nonexistent/kubeconfig")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        let first = stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error: ") && first.contains(says),
            "{args:?}: {stderr}"
        );
    }
}
