//! The real kube::Client and kube::runtime against serin::sim: CRUD, server-side apply, status,
//! watches seen by a Controller, and the simulated Deployment rollout.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{Controller, controller::Action, watcher};
use serde_json::json;
use serin::sim::Cluster;

async fn namespace(client: &kube::Client, name: &str) {
    let ns: Api<Namespace> = Api::all(client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
    )
    .await
    .unwrap();
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": "podinfo:6.0.0"}]}}}
    }))
    .unwrap()
}

#[tokio::test]
async fn crud_conflict_and_not_found_through_kube_client() {
    let cluster = Cluster::start().await.unwrap();
    let client = cluster.client();
    namespace(&client, "t").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "t");
    let created = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "a"}, "data": {"k": "v"}}))
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    let err = cms
        .create(&PostParams::default(), &created)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409),
        "{err:?}"
    );
    let mut stale = created.clone();
    stale.data = Some([("k".to_string(), "w".to_string())].into());
    cms.replace("a", &PostParams::default(), &stale)
        .await
        .unwrap();
    let err = cms
        .replace("a", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409 && s.reason == "Conflict"),
        "{err:?}"
    );
    assert!(cms.get_opt("missing").await.unwrap().is_none());
    cms.delete("a", &DeleteParams::default()).await.unwrap();
    assert!(cms.get_opt("a").await.unwrap().is_none());
}

#[tokio::test]
async fn server_side_apply_and_status_patch() {
    let cluster = Cluster::start().await.unwrap();
    let client = cluster.client();
    namespace(&client, "t").await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "t");
    let pp = PatchParams::apply("serin");
    let d = deploys.patch("web", &pp, &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": serde_json::to_value(deployment("web", 2).spec).unwrap()}))).await.unwrap();
    assert_eq!(d.metadata.generation, Some(1));
    assert_eq!(d.spec.unwrap().replicas, Some(2));
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "t");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "1"}});
    let first = cms
        .patch("cfg", &pp, &Patch::Apply(cm.clone()))
        .await
        .unwrap();
    let again = cms.patch("cfg", &pp, &Patch::Apply(cm)).await.unwrap();
    assert_eq!(
        again.metadata.resource_version, first.metadata.resource_version,
        "a no-op apply must keep the resourceVersion"
    );
    let other = PatchParams::apply("other");
    let err = deploys.patch("web", &other, &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 5}}))).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409 && s.message.contains("conflict with \"serin\"")),
        "{err:?}"
    );
}

#[tokio::test]
async fn simulated_deployment_becomes_available() {
    let cluster = Cluster::start().await.unwrap();
    let client = cluster.client();
    namespace(&client, "t").await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "t");
    deploys
        .create(&PostParams::default(), &deployment("web", 2))
        .await
        .unwrap();
    let ready = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let d = deploys.get("web").await.unwrap();
            let s = d.status.unwrap_or_default();
            if s.available_replicas == Some(2) && s.observed_generation == Some(1) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("deployment became available");
    let conditions: Vec<(String, String)> = ready
        .conditions
        .unwrap()
        .into_iter()
        .map(|c| (c.type_, c.reason.unwrap_or_default()))
        .collect();
    assert!(
        conditions.contains(&("Progressing".into(), "NewReplicaSetAvailable".into())),
        "{conditions:?}"
    );
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), "t");
    assert_eq!(
        pods.list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items
            .len(),
        2
    );
}

#[tokio::test]
async fn controller_sees_objects_created_after_it_starts() {
    let cluster = Cluster::start().await.unwrap();
    let client = cluster.client();
    namespace(&client, "t").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "t");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let ctx = std::sync::Arc::new(tx);
    let controller = Controller::new(cms.clone(), watcher::Config::default())
        .run(
            |obj: std::sync::Arc<ConfigMap>,
             ctx: std::sync::Arc<tokio::sync::mpsc::UnboundedSender<String>>| async move {
                let _ = ctx.send(obj.metadata.name.clone().unwrap_or_default());
                Ok::<_, kube::Error>(Action::await_change())
            },
            |_, _, _| Action::requeue(Duration::from_secs(1)),
            ctx,
        )
        .for_each(|_| async {});
    let handle = tokio::spawn(controller);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for name in ["late-1", "late-2"] {
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
        )
        .await
        .unwrap();
    }
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let name = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("reconciled in time")
            .unwrap();
        if !seen.contains(&name) {
            seen.push(name);
        }
    }
    seen.sort();
    assert_eq!(seen, ["late-1", "late-2"]);
    handle.abort();
}

#[tokio::test]
async fn secret_string_data_is_folded_into_data() {
    use k8s_openapi::api::core::v1::Secret;
    let cluster = Cluster::start().await.unwrap();
    let client = cluster.client();
    let api: Api<Secret> = Api::namespaced(client, "default");
    let s: Secret = serde_json::from_value(json!({"metadata": {"name": "s"},
        "data": {"a": "eA==", "b": "eA=="}, "stringData": {"b": "two", "c": "three"}}))
    .unwrap();
    let created = api.create(&PostParams::default(), &s).await.unwrap();
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    assert!(created.string_data.is_none());
    let data = created.data.unwrap();
    let text = |k: &str| String::from_utf8(data[k].0.clone()).unwrap();
    assert_eq!(
        (text("a"), text("b"), text("c")),
        ("x".into(), "two".into(), "three".into())
    );
    let patched = api
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"a": "new"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data.unwrap()["a"].0, b"new");
}
