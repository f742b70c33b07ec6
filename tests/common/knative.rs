//! A stand-in for Knative Serving's controller, for the knative scenarios: the official Service
//! CRD is installed, and a loop does to each Knative Service what Knative does to its status.
//! When `spec.template` changes it "creates" the revision `<name>-0000N`
//! (`status.latestCreatedRevisionName`); the revision becomes the latest ready one at once,
//! unless its template says `sim.serin.io/ready: "false"`: then Knative's "RevisionFailed"
//! (ConfigurationsReady and Ready False) is reported and the last ready revision stays. Then
//! `spec.traffic` is copied to `status.traffic` with `latestRevision` set on every entry and
//! `revisionName` resolved for the latest-revision entries (no traffic block: all to the latest
//! ready revision), and `observedGeneration` caught up. Status is written by merge patch on the
//! status subresource, as a controller with its own field set would.

use std::collections::HashMap;
use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};

/// The Knative Serving Service resource.
pub fn resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("serving.knative.dev", "v1", "Service");
    ApiResource::from_gvk_with_plural(&gvk, "services")
}

/// Knative Services in namespace `test`.
pub fn services(client: &kube::Client) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), "test", &resource())
}

/// The Knative Service `podinfo` as JSON.
pub async fn get(client: &kube::Client) -> Option<Value> {
    let found = services(client).get_opt("podinfo").await.unwrap();
    found.map(|o| serde_json::to_value(o).unwrap())
}

/// Installs the CRD, creates the Knative Service `podinfo` (image `podinfo:6.0.0`) and starts the
/// stand-in (stopped when the handle drops).
pub async fn install(client: &kube::Client) -> Standin {
    super::routes::install_crd(client, "knative/services.serving.knative.dev.yaml").await;
    let ksvc: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Service",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {"template": {"spec": {"containers": [{"image": "podinfo:6.0.0",
            "ports": [{"containerPort": 9898}]}]}}}
    }))
    .unwrap();
    services(client)
        .create(&Default::default(), &ksvc)
        .await
        .unwrap();
    let client = client.clone();
    let task = tokio::spawn(async move {
        let mut seen: HashMap<String, (Value, u32)> = HashMap::new();
        loop {
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource());
            if let Ok(list) = api.list(&Default::default()).await {
                for o in list.items {
                    reconcile(&client, &mut seen, serde_json::to_value(o).unwrap()).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    Standin(task)
}

/// The running stand-in; aborts its loop on drop.
pub struct Standin(tokio::task::JoinHandle<()>);

impl Drop for Standin {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A new template for the Knative Service (a new revision); `ready: false` makes it fail.
pub async fn set_image(client: &kube::Client, image: &str, ready: bool) {
    let annotations = if ready {
        json!(null)
    } else {
        json!({"sim.serin.io/ready": "false"})
    };
    let patch = json!({"spec": {"template": {"metadata": {"annotations": annotations},
        "spec": {"containers": [{"image": image, "ports": [{"containerPort": 9898}]}]}}}});
    services(client)
        .patch("podinfo", &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
}

fn condition(kind: &str, ok: bool, failed: &str) -> Value {
    if ok {
        json!({"type": kind, "status": "True", "lastTransitionTime": "2026-11-29T00:00:00Z"})
    } else {
        json!({"type": kind, "status": "False", "reason": "RevisionFailed",
            "message": format!("Revision \"{failed}\" failed with message: Container failed with: boom."),
            "lastTransitionTime": "2026-11-29T00:00:00Z"})
    }
}

/// What Knative would write to the status of `obj`.
pub fn status_of(obj: &Value, created: &str, ready: Option<&str>) -> Value {
    let ok = ready == Some(created);
    let spec_traffic = obj["spec"]["traffic"].as_array().cloned();
    let entries =
        spec_traffic.unwrap_or_else(|| vec![json!({"latestRevision": true, "percent": 100})]);
    // Nothing ready yet: the latest-revision entries resolve to no revision name at all.
    let traffic: Vec<Value> = entries
        .into_iter()
        .map(|mut e| {
            let latest = e["latestRevision"] == true;
            e["latestRevision"] = json!(latest);
            if let (true, Some(r)) = (latest, ready) {
                e["revisionName"] = json!(r);
            }
            e
        })
        .collect();
    let mut status = json!({
        "observedGeneration": obj["metadata"]["generation"],
        "latestCreatedRevisionName": created,
        "conditions": [condition("ConfigurationsReady", ok, created), condition("Ready", ok, created),
            condition("RoutesReady", true, created)],
        "traffic": traffic,
        "url": format!("http://{}.test.example.com", obj["metadata"]["name"].as_str().unwrap_or_default()),
    });
    if let Some(r) = ready {
        status["latestReadyRevisionName"] = json!(r);
    }
    status
}

async fn reconcile(client: &kube::Client, seen: &mut HashMap<String, (Value, u32)>, obj: Value) {
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let template = obj["spec"]["template"].clone();
    let entry = seen
        .entry(format!("{ns}/{name}"))
        .or_insert((Value::Null, 0));
    if entry.0 != template {
        *entry = (template.clone(), entry.1 + 1);
    }
    let created = format!("{name}-{:05}", entry.1);
    let fails = template["metadata"]["annotations"]["sim.serin.io/ready"] == "false";
    let previous_ready = obj["status"]["latestReadyRevisionName"]
        .as_str()
        .map(String::from);
    let ready = if fails {
        previous_ready
    } else {
        Some(created.clone())
    };
    let status = status_of(&obj, &created, ready.as_deref());
    if obj["status"] == status {
        return;
    }
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource());
    // A write that loses a race is made again at the next pass.
    let _ = api
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await;
}
