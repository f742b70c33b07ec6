//! Bad input against serin::sim: malformed bodies, unknown resources, wrong content types,
//! oversized bodies get the real server's status codes and Status shapes; random paths, methods
//! and bodies never crash it or produce a 5xx, and it keeps serving; random bodies to the
//! TokenReview and SubjectAccessReview endpoints get a review or a Status.

use proptest::prelude::*;
use serde_json::{Value, json};
use serin::sim::Cluster;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn send(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    ctype: &str,
    body: Vec<u8>,
) -> (u16, String) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let resp = client
        .request(m, format!("{base}{path}"))
        .header("content-type", ctype)
        .body(body)
        .send()
        .await
        .expect("server answers");
    let code = resp.status().as_u16();
    (code, resp.text().await.unwrap_or_default())
}

#[test]
fn bad_input_gets_real_status_codes() {
    let rt = runtime();
    rt.block_on(async {
        let cluster = Cluster::start().await.unwrap();
        let base = cluster.url();
        let c = reqwest::Client::new();
        let ns_body = serde_json::to_vec(
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t"}}),
        )
        .unwrap();
        assert_eq!(
            send(
                &c,
                &base,
                "POST",
                "/api/v1/namespaces",
                "application/json",
                ns_body
            )
            .await
            .0,
            201
        );
        let cms = "/api/v1/namespaces/t/configmaps";
        let (code, body) = send(
            &c,
            &base,
            "POST",
            cms,
            "application/json",
            b"{not json".to_vec(),
        )
        .await;
        assert_eq!(code, 400, "{body}");
        let status: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (status["kind"].as_str(), status["reason"].as_str()),
            (Some("Status"), Some("BadRequest"))
        );
        let (code, body) = send(
            &c,
            &base,
            "GET",
            "/api/v1/namespaces/t/widgets",
            "application/json",
            vec![],
        )
        .await;
        assert_eq!((code, body.as_str()), (404, "404 page not found\n"));
        let (code, _) = send(
            &c,
            &base,
            "POST",
            cms,
            "application/vnd.kubernetes.protobuf",
            b"k8s\0junk".to_vec(),
        )
        .await;
        assert_eq!(code, 415);
        let huge = vec![b' '; 4 * 1024 * 1024];
        let (code, _) = send(&c, &base, "POST", cms, "application/json", huge).await;
        assert_eq!(code, 413);
        let cm = serde_json::to_vec(
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}),
        )
        .unwrap();
        assert_eq!(
            send(&c, &base, "POST", cms, "application/json", cm).await.0,
            201
        );
        let (code, _) = send(
            &c,
            &base,
            "PATCH",
            &format!("{cms}/a"),
            "application/json",
            b"{}".to_vec(),
        )
        .await;
        assert_eq!(code, 415);
        let (code, body) = send(
            &c,
            &base,
            "PATCH",
            &format!("{cms}/a"),
            "application/json-patch+json",
            b"[{\"op\":\"test\",\"path\":\"/data/x\",\"value\":1}]".to_vec(),
        )
        .await;
        assert_eq!(code, 422, "{body}");
        let (code, _) = send(&c, &base, "GET", "/version", "application/json", vec![]).await;
        assert_eq!(code, 200, "server still serving");
    });
}

fn arb_path() -> impl Strategy<Value = String> {
    let seg = prop_oneof![
        Just("api".to_string()),
        Just("apis".to_string()),
        Just("v1".to_string()),
        Just("apps".to_string()),
        Just("namespaces".to_string()),
        Just("t".to_string()),
        Just("configmaps".to_string()),
        Just("deployments".to_string()),
        Just("status".to_string()),
        Just("scale".to_string()),
        Just("admissionregistration.k8s.io".to_string()),
        Just("validatingadmissionpolicies".to_string()),
        Just("validatingadmissionpolicybindings".to_string()),
        Just("authorization.k8s.io".to_string()),
        Just("selfsubjectaccessreviews".to_string()),
        Just("subjectaccessreviews".to_string()),
        Just("authentication.k8s.io".to_string()),
        Just("tokenreviews".to_string()),
        Just("x".to_string()),
        "[a-z0-9.%-]{0,12}".prop_map(|s| s),
    ];
    (
        prop::collection::vec(seg, 0..7),
        prop::option::of("[a-zA-Z=&%0-9,!()]{0,30}"),
    )
        .prop_map(|(segs, q)| {
            format!(
                "/{}{}",
                segs.join("/"),
                q.map(|q| format!("?{q}")).unwrap_or_default()
            )
        })
}

fn arb_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        "\\PC{0,200}".prop_map(String::into_bytes),
        Just(
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"fz"},"data":{"a":"b"}}"#
                .to_vec()
        ),
        Just(
            br#"{"metadata":{"name":"fz","resourceVersion":"1"},"spec":{"replicas":"x"}}"#.to_vec()
        ),
        Just(br#"[{"op":"replace","path":"/spec/replicas","value":3}]"#.to_vec()),
        Just(br#"{"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectAccessReview","spec":{"resourceAttributes":{"verb":"get","resource":"pods"}}}"#.to_vec()),
        Just(br#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"fz"}}"#.to_vec()),
        Just(br#"{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"fz","resourceAttributes":{"verb":"get","resource":"pods"}}}"#.to_vec()),
        Just(br#"{"apiVersion":"admissionregistration.k8s.io/v1","kind":"ValidatingAdmissionPolicy","metadata":{"name":"fz"},"spec":{"validations":[{"expression":"1 +"}]}}"#.to_vec()),
        Just(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fz\n".to_vec()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn random_requests_never_crash_or_5xx(
        reqs in prop::collection::vec((
            prop::sample::select(vec!["GET", "POST", "PUT", "PATCH", "DELETE"]),
            arb_path(),
            prop::sample::select(vec!["application/json", "application/merge-patch+json", "application/json-patch+json", "application/strategic-merge-patch+json", "application/apply-patch+yaml", "application/yaml", "text/plain"]),
            arb_body(),
        ), 1..8)
    ) {
        let rt = runtime();
        rt.block_on(async {
            let cluster = Cluster::start().await.unwrap();
            let base = cluster.url();
            let c = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build().unwrap();
            let ns_body = serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t"}})).unwrap();
            send(&c, &base, "POST", "/api/v1/namespaces", "application/json", ns_body).await;
            for (method, path, ctype, body) in reqs {
                if path.contains("watch") {
                    continue;
                }
                let (code, text) = send(&c, &base, method, &path, ctype, body).await;
                // 500 is what the real server answers for a non-numeric resourceVersion (02 step 8).
                let allowed_500 = code == 500 && text.contains("strconv.ParseUint");
                assert!(code < 500 || allowed_500, "{method} {path} ({ctype}) -> {code}: {text}");
            }
            let (code, _) = send(&c, &base, "GET", "/version", "application/json", vec![]).await;
            assert_eq!(code, 200);
        });
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// A ValidatingAdmissionPolicy with a random expression (and failure policy) bound to
    /// ConfigMaps never crashes the server or makes it answer 5xx: writes are admitted (201) or
    /// denied (422), and it keeps serving.
    #[test]
    fn random_admission_policies_never_crash_or_5xx(
        expression in "[a-z.()'=!<>&|+?:, 0-9\\[\\]-]{0,40}",
        failure in prop::sample::select(vec!["Fail", "Ignore"]),
        data in prop::collection::btree_map("[a-z]{1,3}", "\\PC{0,6}", 0..3),
    ) {
        let rt = runtime();
        rt.block_on(async {
            let cluster = Cluster::start().await.unwrap();
            let base = cluster.url();
            let c = reqwest::Client::new();
            let json_body = |v: Value| serde_json::to_vec(&v).unwrap();
            let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t"}});
            send(&c, &base, "POST", "/api/v1/namespaces", "application/json", json_body(ns)).await;
            let group = "/apis/admissionregistration.k8s.io/v1";
            let policy = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
                "metadata": {"name": "p"}, "spec": {"failurePolicy": failure, "matchConstraints": {"resourceRules": [
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["*"], "resources": ["configmaps"]}]},
                "validations": [{"expression": expression, "messageExpression": expression}]}});
            let (code, text) = send(&c, &base, "POST", &format!("{group}/validatingadmissionpolicies"), "application/json", json_body(policy)).await;
            assert_eq!(code, 201, "{text}");
            let binding = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
                "metadata": {"name": "b"}, "spec": {"policyName": "p", "validationActions": ["Deny", "Warn"]}});
            let (code, text) = send(&c, &base, "POST", &format!("{group}/validatingadmissionpolicybindings"), "application/json", json_body(binding)).await;
            assert_eq!(code, 201, "{text}");
            let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": data});
            let (code, text) = send(&c, &base, "POST", "/api/v1/namespaces/t/configmaps", "application/json", json_body(cm)).await;
            assert!(code == 201 || code == 422, "{expression:?} -> {code}: {text}");
            let (code, _) = send(&c, &base, "GET", "/version", "application/json", vec![]).await;
            assert_eq!(code, 200);
        });
    }
}

/// A JSON value built from the words the reviews read, so random bodies reach deep into them.
fn arb_review_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z:*/.-]{0,10}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "apiVersion",
                    "kind",
                    "metadata",
                    "spec",
                    "status",
                    "token",
                    "audiences",
                    "user",
                    "groups",
                    "uid",
                    "extra",
                    "resourceAttributes",
                    "nonResourceAttributes",
                    "verb",
                    "group",
                    "resource",
                    "subresource",
                    "namespace",
                    "name",
                    "path",
                    "managedFields",
                ])
                .prop_map(String::from),
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Random bodies (JSON of the reviews' words, the right kind with a random spec, or bytes)
    /// POSTed as JSON or YAML to tokenreviews and subjectaccessreviews are answered 201 with the
    /// review, or with a Status (400, 415, 422); never a panic or a 5xx.
    #[test]
    fn random_review_bodies_get_a_review_or_a_status(
        bodies in prop::collection::vec((
            0usize..2,
            0usize..3,
            arb_review_json(),
            prop::collection::vec(any::<u8>(), 0..64),
            prop::sample::select(vec!["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"]),
        ), 1..12),
    ) {
        let rt = runtime();
        rt.block_on(async {
            let cluster = Cluster::start().await.unwrap();
            {
                let state = cluster.state();
                let mut st = state.lock().unwrap();
                st.add_token("fz", "fuzzer", &["devs"]);
                st.grant("devs", "*", "pods", "get");
            }
            let base = cluster.url();
            let c = reqwest::Client::new();
            for (which, shape, value, bytes, ctype) in bodies {
                let (path, api_version, kind) = [
                    ("/apis/authentication.k8s.io/v1/tokenreviews", "authentication.k8s.io/v1", "TokenReview"),
                    ("/apis/authorization.k8s.io/v1/subjectaccessreviews", "authorization.k8s.io/v1", "SubjectAccessReview"),
                ][which];
                let body = match shape {
                    0 => serde_json::to_vec(&value).unwrap(),
                    1 => serde_json::to_vec(&json!({"apiVersion": api_version, "kind": kind, "spec": value})).unwrap(),
                    _ => bytes,
                };
                let (code, text) = send(&c, &base, "POST", path, ctype, body).await;
                let answer: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{path} -> {code}, not JSON ({e}): {text}"));
                let expected = if code == 201 { kind } else { "Status" };
                assert!(matches!(code, 201 | 400 | 415 | 422), "{path} -> {code}: {text}");
                assert_eq!(answer["kind"], expected, "{path} -> {code}: {text}");
            }
        });
    }
}
