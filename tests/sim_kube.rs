//! The real kube::Client and kube::runtime against serin::sim: CRUD, server-side apply, status,
//! watches seen by a Controller, and the simulated Deployment rollout; concurrent watchers,
//! listers and writers against raw HTTP (`concurrency`); TokenReviews and SubjectAccessReviews
//! through kube::Api and kubectl (`reviews`).

#[path = "sim_kube/concurrency.rs"]
mod concurrency;
#[path = "sim_kube/reviews.rs"]
mod reviews;

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
    // A resourceVersion in the applied configuration is a precondition, force or not.
    let forced = PatchParams::apply("serin").force();
    let stale = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "resourceVersion": "1"}, "data": {"a": "2"}});
    let err = cms
        .patch("cfg", &forced, &Patch::Apply(stale))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409),
        "{err:?}"
    );
    let current = first.metadata.resource_version.clone().unwrap();
    let fresh = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "resourceVersion": current}, "data": {"a": "2"}});
    let ok = cms
        .patch("cfg", &forced, &Patch::Apply(fresh))
        .await
        .unwrap();
    assert_eq!(ok.data.unwrap()["a"], "2");
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

/// Polls the Deployment until `done` holds for its status (observed at its generation).
async fn settled(
    api: &Api<Deployment>,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let end = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let d = serde_json::to_value(api.get("web").await.unwrap()).unwrap();
        if d["status"]["observedGeneration"] == d["metadata"]["generation"] && done(&d["status"]) {
            return d;
        }
        assert!(std::time::Instant::now() < end, "{what}: {}", d["status"]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn now_seconds() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A Deployment status without its conditions' times (compared separately).
fn without_times(status: &serde_json::Value) -> serde_json::Value {
    let mut s = status.clone();
    for c in s["conditions"].as_array_mut().into_iter().flatten() {
        let c = c.as_object_mut().unwrap();
        c.remove("lastTransitionTime");
        c.remove("lastUpdateTime");
    }
    s
}

/// Waits until the wall clock is past `time` (RFC 3339, seconds), so a condition time written
/// afterwards differs from it.
async fn clock_past(time: &str) {
    while now_seconds().as_str() <= time {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn newest_replica_set(client: &kube::Client) -> String {
    let rss: Api<k8s_openapi::api::apps::v1::ReplicaSet> = Api::namespaced(client.clone(), "t");
    rss.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .max_by_key(|rs| {
            rs.metadata.annotations.as_ref().and_then(|a| {
                a.get("deployment.kubernetes.io/revision")?
                    .parse::<i64>()
                    .ok()
            })
        })
        .and_then(|rs| rs.metadata.name)
        .unwrap()
}

/// 21 step 1: created with 2 replicas (progressDeadlineSeconds 2), pods ready. Returns the
/// status and the ReplicaSet's name.
async fn created_with_ready_pods(
    api: &Api<Deployment>,
    client: &kube::Client,
) -> (serde_json::Value, String) {
    let mut d = deployment("web", 2);
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(2);
    api.create(&PostParams::default(), &d).await.unwrap();
    let available = |s: &serde_json::Value| s["availableReplicas"] == 2;
    let step1 = settled(api, "1. created, pods ready", available).await;
    let rs1 = newest_replica_set(client).await;
    let s1 = step1["status"].clone();
    let (a1, p1) = (&s1["conditions"][0], &s1["conditions"][1]);
    assert_eq!(
        without_times(&s1),
        json!({"availableReplicas": 2, "conditions": [
            {"message": "Deployment has minimum availability.", "reason": "MinimumReplicasAvailable", "status": "True", "type": "Available"},
            {"message": format!("ReplicaSet \"{rs1}\" has successfully progressed."), "reason": "NewReplicaSetAvailable", "status": "True", "type": "Progressing"}],
            "observedGeneration": 1, "readyReplicas": 2, "replicas": 2, "terminatingReplicas": 0, "updatedReplicas": 2})
    );
    // Progressing turned True when the ReplicaSet was created and was last updated on completion.
    assert!(p1["lastTransitionTime"].as_str() <= p1["lastUpdateTime"].as_str());
    assert_eq!(a1["lastTransitionTime"], a1["lastUpdateTime"]);
    (s1, rs1)
}

/// k8s-transcripts 21, driven through the kube client with a 2 s progress deadline: a template
/// change at 0 replicas completes at once, and a later scale-up with pods that never get ready
/// keeps Progressing at NewReplicaSetAvailable (no ProgressDeadlineExceeded) while Available goes
/// False, with the fields and condition order the real controllers wrote.
#[tokio::test]
async fn deployment_scaled_up_from_zero_behaves_like_transcript_21() {
    let cluster = Cluster::start().await.unwrap();
    let client = cluster.client();
    namespace(&client, "t").await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "t");
    let (s1, rs1) = created_with_ready_pods(&api, &client).await;
    let p1 = &s1["conditions"][1];
    let t1 = p1["lastUpdateTime"].clone();

    let merge = |v: serde_json::Value| Patch::Merge(v);
    api.patch(
        "web",
        &PatchParams::default(),
        &merge(json!({"spec": {"replicas": 0}})),
    )
    .await
    .unwrap();
    let step2 = settled(&api, "2. scaled to 0", |s| s.get("replicas").is_none()).await;
    let mut want2 = s1.clone();
    for k in [
        "availableReplicas",
        "readyReplicas",
        "replicas",
        "updatedReplicas",
    ] {
        want2.as_object_mut().unwrap().remove(k);
    }
    want2["observedGeneration"] = json!(2);
    assert_eq!(step2["status"], want2);

    clock_past(t1.as_str().unwrap()).await;
    let t3 = now_seconds();
    let never_ready = json!({"spec": {"template": {"metadata": {"annotations": {"sim.serin.io/ready": "false"}}}}});
    api.patch("web", &PatchParams::default(), &merge(never_ready))
        .await
        .unwrap();
    let step3 = settled(&api, "3. template changed at 0 replicas", |s| {
        s["observedGeneration"] == 3
    })
    .await;
    let rs2 = newest_replica_set(&client).await;
    assert_ne!(rs1, rs2);
    let p3 = step3["status"]["conditions"][1].clone();
    assert_eq!(
        (p3["reason"].as_str(), p3["status"].as_str()),
        (Some("NewReplicaSetAvailable"), Some("True"))
    );
    assert_eq!(
        p3["message"],
        format!("ReplicaSet \"{rs2}\" has successfully progressed.")
    );
    assert_eq!(
        p3["lastTransitionTime"], p1["lastTransitionTime"],
        "only lastUpdateTime moves"
    );
    assert!(p3["lastUpdateTime"].as_str().unwrap() >= t3.as_str());
    assert_eq!(step3["status"]["conditions"][0], s1["conditions"][0]);

    let t4 = now_seconds();
    api.patch(
        "web",
        &PatchParams::default(),
        &merge(json!({"spec": {"replicas": 2}})),
    )
    .await
    .unwrap();
    let step4 = settled(&api, "4. scaled up to 2", |s| s["replicas"] == 2).await;
    let s4 = &step4["status"];
    let a4 = s4["conditions"][1].clone();
    assert!(a4["lastTransitionTime"].as_str().unwrap() >= t4.as_str());
    assert_eq!(
        *s4,
        json!({"conditions": [p3, {"lastTransitionTime": a4["lastTransitionTime"], "lastUpdateTime": a4["lastTransitionTime"],
            "message": "Deployment does not have minimum availability.", "reason": "MinimumReplicasUnavailable", "status": "False", "type": "Available"}],
            "observedGeneration": 4, "replicas": 2, "terminatingReplicas": 0, "unavailableReplicas": 2, "updatedReplicas": 2})
    );

    // 5. Well past progressDeadlineSeconds: nothing changes, no ProgressDeadlineExceeded.
    let watch_until = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < watch_until {
        let d = serde_json::to_value(api.get("web").await.unwrap()).unwrap();
        assert_eq!(d["status"], *s4, "5. the status stays as at the scale-up");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `kubectl get -w` asks for `as=Table`: each watch event's object is then a one-row Table with
/// the type's columns, as in a list (otherwise kubectl prints only NAME and AGE after the first
/// screen). Replayed from a resourceVersion, so the events are known without racing the writes.
#[tokio::test]
async fn a_table_watch_sends_one_row_tables() {
    let cluster = Cluster::start().await.unwrap();
    let client = cluster.client();
    namespace(&client, "t").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "t");
    let list = cms.list(&ListParams::default()).await.unwrap();
    let from = list.metadata.resource_version.unwrap();
    for name in ["a", "b"] {
        let cm = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    let url = format!(
        "{}/api/v1/namespaces/t/configmaps?watch=true&resourceVersion={from}&timeoutSeconds=1",
        cluster.url()
    );
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let body = reqwest::Client::new()
        .get(&url)
        .header("accept", accept)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = events
        .iter()
        .map(|e| {
            assert_eq!(e["type"], "ADDED", "{e}");
            assert_eq!(e["object"]["kind"], "Table", "{e}");
            let columns = e["object"]["columnDefinitions"].as_array().unwrap();
            assert_eq!(columns[0]["name"], "Name", "{e}");
            assert_eq!(columns.last().unwrap()["name"], "Age", "{e}");
            e["object"]["rows"][0]["cells"][0].as_str().unwrap()
        })
        .collect();
    assert_eq!(names, ["a", "b"], "{body}");
    // Without as=Table the same watch sends the objects themselves.
    let plain = reqwest::get(&url).await.unwrap().text().await.unwrap();
    assert!(
        plain.lines().all(|l| l.contains(r#""kind":"ConfigMap""#)),
        "{plain}"
    );
}
