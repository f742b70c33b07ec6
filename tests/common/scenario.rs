//! Shared set-up of the controller scenarios on serin::sim: CRDs, namespace `test`, the podinfo
//! Deployment and ConfigMap, and a blue/green Canary (spec overrides merged in).

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use serin::api::{Canary, CanaryPhase, crd};
use serin::controller::{self, Settings};
use serin::sim::{Cluster, KubeletOptions, SimOptions};

pub async fn setup() -> (Cluster, kube::Client) {
    setup_with(json!({})).await
}

/// An embedded cluster (pods ready after 100 ms) with Serin's CRDs and the namespace `test`.
pub async fn start_cluster() -> (Cluster, kube::Client) {
    start_cluster_with(Duration::from_millis(100)).await
}

/// `start_cluster` whose pods take `ready_delay` to become ready.
pub async fn start_cluster_with(ready_delay: Duration) -> (Cluster, kube::Client) {
    let cluster = Cluster::start_with(SimOptions {
        kubelet: KubeletOptions { ready_delay },
        ..Default::default()
    })
    .await
    .unwrap();
    let client = cluster.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, c) in crd::all() {
        crds.create(&PostParams::default(), &c).await.unwrap();
    }
    let ns: Api<Namespace> = Api::all(client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "test"}})).unwrap(),
    )
    .await
    .unwrap();
    (cluster, client)
}

/// Sets up the namespace, CRDs, app and a blue/green Canary whose spec is merged with `overrides`.
pub async fn setup_with(overrides: serde_json::Value) -> (Cluster, kube::Client) {
    let (cluster, client) = start_cluster().await;
    create_app_and_canary(&client, &overrides).await;
    (cluster, client)
}

/// The app of every scenario (ConfigMap podinfo-config, Deployment podinfo with 2 replicas) and
/// its blue/green Canary (kubernetes provider, interval 1s, 2 iterations) with `overrides` merged.
pub async fn create_app_and_canary(client: &kube::Client, overrides: &serde_json::Value) {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "test");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(
            json!({"metadata": {"name": "podinfo-config"}, "data": {"MESSAGE": "v1"}}),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    deploys.create(&PostParams::default(), &serde_json::from_value(json!({
        "metadata": {"name": "podinfo", "labels": {"app": "podinfo"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "podinfo"}},
            "template": {"metadata": {"labels": {"app": "podinfo"}}, "spec": {"containers": [{"name": "podinfo", "image": "podinfo:6.0.0",
                "ports": [{"containerPort": 9898}], "envFrom": [{"configMapRef": {"name": "podinfo-config"}}]}]}}}
    })).unwrap()).await.unwrap();
    let base = json!({"provider": "kubernetes", "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
        "service": {"port": 80, "targetPort": 9898}, "analysis": {"interval": "1s", "threshold": 2, "iterations": 2}});
    create_canary(client, base, overrides).await;
}

pub async fn wait_phase(
    client: &kube::Client,
    phase: CanaryPhase,
    after_rev: Option<&str>,
) -> Canary {
    let api: Api<Canary> = Api::namespaced(client.clone(), "test");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let c = api.get("podinfo").await.unwrap();
        let st = c.status.clone().unwrap_or_default();
        if st.phase == phase
            && after_rev.is_none_or(|r| st.last_applied_spec.as_deref() != Some(r))
            && (!matches!(
                phase,
                CanaryPhase::Initialized | CanaryPhase::Succeeded | CanaryPhase::Failed
            ) || target_scaled_down(client, &c).await)
        {
            return c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {phase}: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the Canary's target is scaled to zero: a Deployment at 0 replicas, a DaemonSet with
/// Serin's scale-to-zero node selector, a Service target's -canary copy marked scaled to zero.
/// The status says Initialized (Succeeded, Failed) before the effects of that tick run (routing,
/// then the target's scale-down), so a test that goes on to read the routing or the target waits
/// for the last of them.
async fn target_scaled_down(client: &kube::Client, c: &Canary) -> bool {
    let target = &c.spec.target_ref;
    if target.workload() == serin::api::TargetWorkload::CoreService {
        // A Service target's canary side is scaled down by an annotation on its -canary copy.
        let api: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), "test");
        let copy = serin::workload::service_target::canary_name(&target.name);
        return api.get_opt(&copy).await.unwrap().is_some_and(|s| {
            s.metadata.annotations.is_some_and(|a| {
                a.contains_key(serin::workload::service_target::SCALED_TO_ZERO_ANNOTATION)
            })
        });
    }
    if target.kind == serin::api::TargetKind::DaemonSet {
        let api: Api<k8s_openapi::api::apps::v1::DaemonSet> =
            Api::namespaced(client.clone(), "test");
        return match api.get_opt(&target.name).await.unwrap() {
            Some(d) => d
                .spec
                .and_then(|s| s.template.spec)
                .and_then(|s| s.node_selector)
                .is_some_and(|n| {
                    n.contains_key(serin::workload::daemonset::SCALE_TO_ZERO_SELECTOR)
                }),
            None => true,
        };
    }
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    match deploys.get_opt(&target.name).await.unwrap() {
        Some(d) => d.spec.and_then(|s| s.replicas) == Some(0),
        None => true,
    }
}

pub fn image(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .image
        .clone()
        .unwrap_or_default()
}
pub fn start_controller(client: &kube::Client) -> tokio::sync::oneshot::Sender<()> {
    start_controller_with(client, Settings::default())
}

/// Runs the controller on namespace `test` with these settings until the sender is dropped.
pub fn start_controller_with(
    client: &kube::Client,
    settings: Settings,
) -> tokio::sync::oneshot::Sender<()> {
    if let Ok(filter) = std::env::var("SERIN_TEST_LOG") {
        // e.g. SERIN_TEST_LOG=serin=debug to see the controller's log in a failing scenario.
        let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(controller::run(
        client.clone(),
        Some("test".into()),
        settings,
        async move {
            let _ = stop_rx.await;
        },
    ));
    stop_tx
}

pub async fn set_image(client: &kube::Client, image: &str, annotations: serde_json::Value) {
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    let patch = json!({"spec": {"template": {"metadata": {"annotations": annotations}, "spec": {"containers": [{"name": "podinfo", "image": image, "ports": [{"containerPort": 9898}], "envFrom": [{"configMapRef": {"name": "podinfo-config"}}]}]}}}});
    deploys
        .patch("podinfo", &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
}

/// The Canary's Ready condition, if it has one.
pub fn ready_condition(st: &serin::api::CanaryStatus) -> Option<serin::api::CanaryCondition> {
    st.conditions.iter().find(|c| c.r#type == "Ready").cloned()
}

/// Asserts that no analysis step of a rollout ran twice: one start tick, iterations ascending.
pub fn assert_no_step_repeated(decisions: &[serin::api::DecisionRecord]) {
    let starts = decisions
        .iter()
        .filter(|d| d.action.starts_with("pre-rollout passed"))
        .count();
    assert_eq!(starts, 1, "the start tick ran again: {decisions:#?}");
    let iterations: Vec<&str> = decisions
        .iter()
        .filter(|d| d.action.starts_with("iteration"))
        .map(|d| d.action.as_str())
        .collect();
    assert!(
        iterations.windows(2).all(|w| w[0] < w[1]),
        "went back a step: {iterations:?}"
    );
}

/// Polls the Canary's status until `pred` holds (30 s at most); returns that status.
pub async fn wait_status(
    client: &kube::Client,
    what: &str,
    pred: impl Fn(&serin::api::CanaryStatus) -> bool,
) -> serin::api::CanaryStatus {
    let api: Api<Canary> = Api::namespaced(client.clone(), "test");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let st = api.get("podinfo").await.unwrap().status.unwrap_or_default();
        if pred(&st) {
            return st;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the Canary is `Ready=False` with reason InvalidSpec and returns that message.
pub async fn invalid_spec_message(client: &kube::Client) -> String {
    let st = wait_status(client, "InvalidSpec", |st| {
        ready_condition(st).is_some_and(|c| c.reason == "InvalidSpec")
    })
    .await;
    ready_condition(&st)
        .and_then(|c| c.message)
        .unwrap_or_default()
}

/// Polls `get` until `pred` holds on its answer (30 s at most) and returns that answer. The
/// controller writes its intent to status before it moves the routes, so a test that saw a weight
/// in status waits for the route object as well.
pub async fn wait_object<F, Fut>(what: &str, mut get: F, pred: impl Fn(&Value) -> bool) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Value>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let obj = get().await;
        if pred(&obj) {
            return obj;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {obj:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates the Canary `podinfo` in `test`: `base` spec with `overrides` merged in.
pub async fn create_canary(
    client: &kube::Client,
    base: serde_json::Value,
    overrides: &serde_json::Value,
) {
    let mut canary = json!({"apiVersion": "serin.io/v1beta1", "kind": "Canary", "metadata": {"name": "podinfo"}, "spec": base});
    json_patch::merge(&mut canary["spec"], overrides);
    let canaries: Api<Canary> = Api::namespaced(client.clone(), "test");
    canaries
        .create(
            &PostParams::default(),
            &serde_json::from_value(canary).unwrap(),
        )
        .await
        .unwrap();
}

/// The notes of the Events in `test` with this reason, once there is at least one (Events are
/// published right after the status write they describe; 10 s at most, then whatever there is).
pub async fn event_notes(client: &kube::Client, reason: &str) -> Vec<String> {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "test");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let notes: Vec<String> = events
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .filter_map(|e| e.note)
            .collect();
        if !notes.is_empty() || tokio::time::Instant::now() >= deadline {
            return notes;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deletes the Canary and waits (20 s at most) until its finalizer let it go.
pub async fn delete_canary_and_wait(client: &kube::Client) {
    let canaries: Api<Canary> = Api::namespaced(client.clone(), "test");
    canaries
        .delete("podinfo", &kube::api::DeleteParams::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while canaries.get_opt("podinfo").await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "canary not finalized"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A metadata-only change of the target Deployment (not a new revision): the Canaries using it
/// reconcile, as a resync would make them.
pub async fn poke_target(client: &kube::Client, value: &str) {
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    let patch = json!({"metadata": {"annotations": {"poke": value}}});
    deploys
        .patch("podinfo", &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
}

/// Waits for the running controller to initialise the Canary; returns the revision the primary
/// runs (for `wait_phase(.., Some(&first))` after a change).
pub async fn initialized_revision(client: &kube::Client) -> String {
    let c = wait_phase(client, CanaryPhase::Initialized, None).await;
    c.status.unwrap().last_applied_spec.unwrap()
}

/// Waits for the running controller to initialise the Canary, then sets a new image on the
/// target; returns the revision the primary ran before (for `wait_phase(.., Some(&first))`).
pub async fn initialized_then_new_image(client: &kube::Client) -> String {
    let first = initialized_revision(client).await;
    set_image(client, "podinfo:6.0.1", json!({})).await;
    first
}

/// Asserts that every API call the controller made (requests with Serin's User-Agent) is granted
/// by the RBAC rules Serin declares (`serin::rbac`) with `routers` enabled — so a new call without
/// a rule fails here, and the chart test holds the chart to the same rules.
pub fn assert_calls_are_granted(cluster: &Cluster, routers: &[&str], leader_election: bool) {
    let secrets = serin::workload::SecretTracking::Watched;
    assert_calls_are_granted_with(cluster, routers, leader_election, &secrets);
}

/// `assert_calls_are_granted` with Secret tracking as `--secret-namespaces` sets it: limited to
/// named namespaces, its rules come from a Role per namespace, so they never grant a call across
/// all namespaces (which namespace a call went to is the caller's to check).
pub fn assert_calls_are_granted_with(
    cluster: &Cluster,
    routers: &[&str],
    leader_election: bool,
    secrets: &serin::workload::SecretTracking,
) {
    use serin::controller::rbac;
    use serin::workload::SecretTracking;
    let mut granted = match secrets {
        SecretTracking::Watched => rbac::grants(routers),
        _ => rbac::grants_without_secret_tracking(routers),
    };
    if leader_election {
        granted.extend(rbac::leader_election_grants());
    }
    // What Kubernetes grants every user (the permissions preflight's SelfSubjectAccessReviews).
    granted.extend(rbac::everyone_grants());
    let per_namespace = match secrets {
        SecretTracking::Namespaces(_) => rbac::secret_tracking_grants(),
        _ => Default::default(),
    };
    let log = cluster.state().lock().unwrap().access_log.clone();
    let made: Vec<_> = log.keys().filter(|a| a.agent == "serin").collect();
    if std::env::var("SERIN_DUMP_ACCESS").is_ok() {
        eprintln!("ACCESS {made:?}");
    }
    assert!(!made.is_empty(), "the controller made no calls: {log:?}");
    let missing: Vec<String> = made
        .iter()
        .filter(|a| {
            let grant = (a.group.clone(), a.resource.clone(), a.verb.to_string());
            !granted.contains(&grant) && (a.all_namespaces || !per_namespace.contains(&grant))
        })
        .map(|a| {
            let scope = if a.all_namespaces {
                " (all namespaces)"
            } else {
                ""
            };
            format!("{} {}/{}{scope}", a.verb, a.group, a.resource)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "calls without an RBAC rule in serin::rbac: {missing:?}"
    );
}

/// HTTPRoutes (gateway.networking.k8s.io/v1) in `test`, as dynamic objects.
pub fn dynamic_httproutes(client: &kube::Client) -> Api<kube::api::DynamicObject> {
    let gvk = kube::api::GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    Api::namespaced_with(
        client.clone(),
        "test",
        &kube::api::ApiResource::from_gvk_with_plural(&gvk, "httproutes"),
    )
}

/// Installs the official Gateway API CRDs (HTTPRoute, GRPCRoute, Gateway) from ../shared/crds.
pub async fn install_gateway_api(client: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/crds/gateway-api");
    for file in [
        "gateway.networking.k8s.io_httproutes.yaml",
        "gateway.networking.k8s.io_grpcroutes.yaml",
        "gateway.networking.k8s.io_gateways.yaml",
    ] {
        let crd: CustomResourceDefinition =
            serde_saphyr::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap();
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
}
