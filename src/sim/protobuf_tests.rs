use proptest::prelude::*;
use serde_json::json;

use super::to_json;

/// A minimal protobuf writer for the tests (the sim itself only reads).
fn key(out: &mut Vec<u8>, number: u32, wire: u8) {
    varint(out, (u64::from(number) << 3) | u64::from(wire));
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes(out: &mut Vec<u8>, number: u32, b: &[u8]) {
    key(out, number, 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn map_entry(out: &mut Vec<u8>, number: u32, k: &str, v: &[u8]) {
    let mut e = Vec::new();
    bytes(&mut e, 1, k.as_bytes());
    bytes(&mut e, 2, v);
    bytes(out, number, &e);
}

fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let mut tm = Vec::new();
    bytes(&mut tm, 1, api_version.as_bytes());
    bytes(&mut tm, 2, kind.as_bytes());
    let mut out = b"k8s\x00".to_vec();
    bytes(&mut out, 1, &tm);
    bytes(&mut out, 2, raw);
    out
}

#[test]
fn a_secret_like_helm_writes_it() {
    let mut meta = Vec::new();
    bytes(&mut meta, 1, b"sh.helm.release.v1.serin.v1");
    bytes(&mut meta, 2, b""); // Go writes empty strings; JSON has none
    bytes(&mut meta, 3, b"serin-system");
    map_entry(&mut meta, 11, "owner", b"helm");
    let mut t = Vec::new();
    key(&mut t, 1, 0);
    varint(&mut t, 1_700_000_000);
    bytes(&mut meta, 8, &t);
    let mut owner = Vec::new();
    bytes(&mut owner, 1, b"Canary");
    bytes(&mut owner, 5, b"serin.io/v1beta1");
    key(&mut owner, 6, 0);
    varint(&mut owner, 1);
    bytes(&mut meta, 13, &owner);
    bytes(&mut meta, 14, b"a");
    bytes(&mut meta, 14, b"b");
    let mut secret = Vec::new();
    bytes(&mut secret, 1, &meta);
    map_entry(&mut secret, 2, "release", &[0, 255, 1]);
    bytes(&mut secret, 3, b"helm.sh/release.v1");
    key(&mut secret, 99, 0); // unknown fields are skipped
    varint(&mut secret, 7);
    let obj = to_json(&envelope("v1", "Secret", &secret)).unwrap();
    assert_eq!(
        obj,
        json!({"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
            "data": {"release": "AP8B"},
            "metadata": {"name": "sh.helm.release.v1.serin.v1", "namespace": "serin-system",
                "labels": {"owner": "helm"}, "creationTimestamp": "2023-11-14T22:13:20Z",
                "ownerReferences": [{"kind": "Canary", "apiVersion": "serin.io/v1beta1", "controller": true}],
                "finalizers": ["a", "b"]}})
    );
}

#[test]
fn other_kinds_and_bad_bodies_are_refused_with_a_reason() {
    let err = to_json(&envelope("apps/v1", "Deployment", &[])).unwrap_err();
    assert!(err.contains("not \"Deployment\""), "{err}");
    assert!(to_json(b"{}").unwrap_err().contains("envelope"));
    let mut truncated = envelope("v1", "Secret", &[]);
    truncated.extend_from_slice(&[0x12, 0x05, 0x0a]);
    assert!(to_json(&truncated).unwrap_err().contains("truncated"));
}

proptest! {
    /// Whatever the bytes, an answer and never a panic.
    #[test]
    fn any_body_is_decoded_or_refused(tail in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut body = b"k8s\x00".to_vec();
        body.extend_from_slice(&tail);
        let _ = to_json(&body);
        let _ = to_json(&tail);
    }

    /// ConfigMaps written by the test encoder read back exactly.
    #[test]
    fn config_maps_round_trip(name in "[a-z][a-z0-9-]{0,20}", data in proptest::collection::btree_map("[a-zA-Z0-9._-]{1,10}", "\\PC{0,20}", 0..5), immutable in any::<bool>()) {
        let mut meta = Vec::new();
        bytes(&mut meta, 1, name.as_bytes());
        let mut cm = Vec::new();
        bytes(&mut cm, 1, &meta);
        for (k, v) in &data {
            map_entry(&mut cm, 2, k, v.as_bytes());
        }
        key(&mut cm, 4, 0);
        varint(&mut cm, u64::from(immutable));
        let obj = to_json(&envelope("v1", "ConfigMap", &cm)).unwrap();
        prop_assert_eq!(&obj["metadata"]["name"], &json!(name));
        prop_assert_eq!(&obj["immutable"], &json!(immutable));
        if data.is_empty() {
            prop_assert!(obj.get("data").is_none());
        } else {
            prop_assert_eq!(&obj["data"], &json!(data));
        }
    }
}

#[test]
fn a_self_subject_access_review_like_kubectl_auth_can_i_sends_it() {
    let mut ra = Vec::new();
    bytes(&mut ra, 1, b"default");
    bytes(&mut ra, 2, b"delete");
    bytes(&mut ra, 3, b"apps");
    bytes(&mut ra, 4, b"");
    bytes(&mut ra, 5, b"deployments");
    let mut spec = Vec::new();
    bytes(&mut spec, 1, &ra);
    let mut raw = Vec::new();
    bytes(&mut raw, 1, b"");
    bytes(&mut raw, 2, &spec);
    let got = to_json(&envelope(
        "authorization.k8s.io/v1",
        "SelfSubjectAccessReview",
        &raw,
    ))
    .unwrap();
    assert_eq!(
        got,
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "metadata": {},
            "spec": {"resourceAttributes": {"namespace": "default", "verb": "delete", "group": "apps", "resource": "deployments"}}})
    );
}
