//! Resume order (issue 20 item 3): after a restart, the Canaries in flight get their first
//! reconcile before any settled one. The order is read from the controller's own "first
//! reconcile since start" log events, captured in the order they happen (no timing involved).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::scenario::start_cluster;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use serin::api::{Canary, CanaryPhase};
use serin::controller::Settings;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Layer, filter::Targets};

/// (canary, in_flight) of each "first reconcile since start" event, in order.
type Firsts = Arc<Mutex<Vec<(String, bool)>>>;

struct Capture(Firsts);

#[derive(Default)]
struct Fields {
    message: String,
    canary: String,
    in_flight: bool,
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "canary" => self.canary = format!("{value:?}"),
            _ => {}
        }
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        if field.name() == "in_flight" {
            self.in_flight = value;
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        if f.message == "first reconcile since start" {
            self.0.lock().unwrap().push((f.canary, f.in_flight));
        }
    }
}

async fn app(client: &kube::Client, name: &str) {
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    let labels = json!({"app": name});
    deploys.create(&PostParams::default(), &serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels},
            "spec": {"containers": [{"name": "app", "image": "app:1"}]}}}
    })).unwrap()).await.unwrap();
    let canaries: Api<Canary> = Api::namespaced(client.clone(), "test");
    canaries.create(&PostParams::default(), &serde_json::from_value(json!({
        "apiVersion": "serin.io/v1beta1", "kind": "Canary", "metadata": {"name": name},
        "spec": {"provider": "kubernetes", "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "service": {"port": 80}, "analysis": {"interval": "1s", "threshold": 2, "iterations": 1000}}
    })).unwrap()).await.unwrap();
}

async fn wait_all(client: &kube::Client, names: &[String], phase: CanaryPhase) {
    let canaries: Api<Canary> = Api::namespaced(client.clone(), "test");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let list = canaries.list(&Default::default()).await.unwrap().items;
        let at = |n: &String| {
            list.iter().any(|c| {
                c.metadata.name.as_ref() == Some(n)
                    && c.status.as_ref().map(|s| s.phase) == Some(phase)
            })
        };
        if names.iter().all(at) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "not all {phase:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn run(
    client: &kube::Client,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serin::controller::run(
        client.clone(),
        Some("test".into()),
        Settings::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    (stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canaries_in_flight_are_reconciled_before_settled_ones_after_a_restart() {
    let firsts: Firsts = Default::default();
    let layer = Capture(firsts.clone())
        .with_filter(Targets::new().with_target("serin::controller", tracing::Level::DEBUG));
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer)).unwrap();
    let (_cluster, client) = start_cluster().await;
    let settled: Vec<String> = (0..30).map(|i| format!("settled-{i:02}")).collect();
    let flying: Vec<String> = (0..3).map(|i| format!("flying-{i}")).collect();
    let all: Vec<String> = settled.iter().chain(&flying).cloned().collect();
    for name in &all {
        app(&client, name).await;
    }
    let (stop, task) = run(&client);
    wait_all(&client, &all, CanaryPhase::Initialized).await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}});
    for name in &flying {
        let p = Patch::Strategic(patch.clone());
        deploys
            .patch(name, &PatchParams::default(), &p)
            .await
            .unwrap();
    }
    wait_all(&client, &flying, CanaryPhase::Progressing).await;
    drop(stop);
    task.await.unwrap();

    firsts.lock().unwrap().clear();
    let (_stop, _task) = run(&client);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while firsts.lock().unwrap().len() < all.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            firsts.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let order = firsts.lock().unwrap().clone();
    let head: Vec<&str> = order[..3].iter().map(|(c, _)| c.as_str()).collect();
    let mut head_sorted = head.clone();
    head_sorted.sort();
    let expected: Vec<String> = flying.iter().map(|n| format!("test/{n}")).collect();
    assert_eq!(
        head_sorted, expected,
        "first reconciles after the restart: {order:?}"
    );
    assert!(order[..3].iter().all(|(_, f)| *f), "{order:?}");
    assert!(order[3..].iter().all(|(_, f)| !*f), "{order:?}");
}
