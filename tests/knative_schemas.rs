//! What Serin writes to a Knative Service — `spec.traffic` for every split, the promotion's
//! renamed traffic block, the primary-revision annotation — and the status the test stand-in
//! writes for Knative's controller, validated against the official Knative Serving Service CRD
//! (../shared/crds/knative), as the API server would.

mod common;

use common::schemas::{assert_valid, crd_schema};
use serde_json::{Value, json};
use serin::analysis::Routes;
use serin::router::knative::{build_traffic, read_traffic};
use serin::workload::knative::{primary_revision_patch, promote_patch};

const CRD: &str = "knative/services.serving.knative.dev.yaml";

/// Flagger's tutorial Knative Service podinfo, with `traffic` as its traffic block.
fn ksvc(traffic: Value) -> Value {
    json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service",
        "metadata": {"name": "podinfo", "namespace": "test", "resourceVersion": "7", "generation": 3,
            "annotations": {"serin.io/primary-revision": "podinfo-00001"}},
        "spec": {"template": {"spec": {"containers": [{"image": "ghcr.io/stefanprodan/podinfo:6.0.0",
            "ports": [{"containerPort": 9898, "protocol": "TCP"}],
            "command": ["./podinfo", "--port=9898", "--port-metrics=9797"]}]}},
            "traffic": traffic}})
}

fn merged(mut obj: Value, patch: &Value) -> Value {
    json_patch::merge(&mut obj, patch);
    obj
}

#[test]
fn every_traffic_block_serin_writes_satisfies_the_knative_crd() {
    let schema = crd_schema(CRD, "v1");
    let users = json!([{"latestRevision": true, "percent": 100, "tag": "latest"},
        {"revisionName": "podinfo-00000", "tag": "old"}]);
    for current in [Value::Null, users] {
        for routes in [Routes::PRIMARY, Routes::split(30), Routes::CANARY] {
            let traffic = build_traffic(
                &current,
                Some(("podinfo-00001", routes.primary)),
                routes.canary,
            );
            let sum: i64 = traffic
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["percent"].as_i64().unwrap())
                .sum();
            assert_eq!(sum, 100, "{traffic}");
            let obj = ksvc(traffic);
            assert_valid(&schema, &obj, &format!("split {routes:?} over {current}"));
            let promoted = merged(obj.clone(), &promote_patch(&obj, "podinfo-00002"));
            assert_valid(&schema, &promoted, "after promotion");
        }
        let finalized = ksvc(build_traffic(&current, None, 100));
        let finalized = merged(finalized, &primary_revision_patch(None));
        assert_valid(&schema, &finalized, "finalized");
        assert!(finalized["metadata"]["annotations"]["serin.io/primary-revision"].is_null());
    }
}

#[test]
fn the_stand_ins_status_satisfies_the_crd_and_reads_back() {
    let schema = crd_schema(CRD, "v1");
    let traffic = build_traffic(&Value::Null, Some(("podinfo-00001", 70)), 30);
    let mut obj = ksvc(traffic);
    for ready in [Some("podinfo-00002"), Some("podinfo-00001"), None] {
        obj["status"] = common::knative::status_of(&obj, "podinfo-00002", ready);
        assert_valid(&schema, &obj, &format!("status with ready {ready:?}"));
    }
    obj["status"] = common::knative::status_of(&obj, "podinfo-00002", Some("podinfo-00002"));
    assert_eq!(read_traffic(&obj, "podinfo-00001"), Some(Routes::split(30)));
}
