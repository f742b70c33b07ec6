//! TokenReviews and SubjectAccessReviews through the typed kube::Api of k8s-openapi (as the
//! dashboard asks them) and through `kubectl create -f`, answered from the tokens and grants a
//! test sets on the sim's state; discovery lists both, create-only.

use k8s_openapi::api::authentication::v1::TokenReview;
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use kube::api::{Api, PostParams};
use serde_json::json;
use serin::sim::Cluster;

fn token_review(token: &str) -> TokenReview {
    serde_json::from_value(json!({"spec": {"token": token}})).unwrap()
}

/// May `user` in `groups` patch the Canary `test/podinfo`? (what the dashboard asks).
fn may_patch_podinfo(user: &str, groups: &[&str]) -> SubjectAccessReview {
    serde_json::from_value(
        json!({"spec": {"user": user, "groups": groups, "uid": "u-1",
        "extra": {"scopes": ["dashboard"]}, "resourceAttributes": {"namespace": "test",
        "verb": "patch", "group": "serin.io", "resource": "canaries", "name": "podinfo"}}}),
    )
    .unwrap()
}

#[tokio::test]
async fn token_and_subject_access_reviews_through_kube_api() {
    let cluster = Cluster::start().await.unwrap();
    {
        let state = cluster.state();
        let mut st = state.lock().unwrap();
        st.add_token("jane-token", "jane", &["devs"]);
        st.grant("devs", "serin.io", "canaries", "patch");
    }
    let client = cluster.client();
    let tokens: Api<TokenReview> = Api::all(client.clone());
    let reviewed = tokens
        .create(&PostParams::default(), &token_review("jane-token"))
        .await
        .unwrap();
    let status = reviewed.status.unwrap();
    assert_eq!(status.authenticated, Some(true));
    let user = status.user.unwrap();
    assert_eq!(user.username.as_deref(), Some("jane"));
    let groups = user.groups.unwrap();
    assert_eq!(groups, ["devs", "system:authenticated"]);
    assert_eq!(status.error, None);
    let unknown = tokens
        .create(&PostParams::default(), &token_review("nobody"))
        .await
        .unwrap()
        .status
        .unwrap();
    assert_ne!(unknown.authenticated, Some(true));
    assert_eq!(unknown.error.as_deref(), Some("invalid bearer token"));
    let reviews: Api<SubjectAccessReview> = Api::all(client.clone());
    let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
    let yes = reviews
        .create(&PostParams::default(), &may_patch_podinfo("jane", &groups))
        .await
        .unwrap();
    let raw = serde_json::to_value(&yes).unwrap();
    assert_eq!(
        raw["status"],
        json!({"allowed": true, "reason": "RBAC: allowed by ClusterRoleBinding \"sim-grant-1\" of ClusterRole \"sim-grant-1\" to Group \"devs\""})
    );
    assert_eq!(raw["spec"]["extra"], json!({"scopes": ["dashboard"]}));
    assert_eq!(raw["spec"]["uid"], "u-1");
    let no = reviews
        .create(
            &PostParams::default(),
            &may_patch_podinfo("bob", &["system:authenticated"]),
        )
        .await
        .unwrap()
        .status
        .unwrap();
    assert!(!no.allowed);
    assert_eq!((no.denied, no.reason), (None, None));
    // Nothing is stored, and the collection has no other verb.
    let err = reviews
        .list(&Default::default())
        .await
        .expect_err("reviews cannot be listed");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 405),
        "{err:?}"
    );
    // An empty spec is kube-apiserver's 422, every cause at once.
    let empty: SubjectAccessReview = serde_json::from_value(json!({"spec": {}})).unwrap();
    let err = reviews
        .create(&PostParams::default(), &empty)
        .await
        .unwrap_err();
    let kube::Error::Api(s) = err else {
        panic!("{err:?}")
    };
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    assert!(
        s.message.ends_with(
            "spec.user: Invalid value: \"\": at least one of user or group must be specified]"
        ),
        "{}",
        s.message
    );
}

#[tokio::test]
async fn discovery_lists_both_reviews_create_only() {
    let cluster = Cluster::start().await.unwrap();
    let http = reqwest::Client::new();
    for (gv, name, kind) in [
        ("authentication.k8s.io/v1", "tokenreviews", "TokenReview"),
        (
            "authorization.k8s.io/v1",
            "subjectaccessreviews",
            "SubjectAccessReview",
        ),
    ] {
        let doc: serde_json::Value = http
            .get(format!("{}/apis/{gv}", cluster.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let entry = doc["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {doc}"));
        assert_eq!(
            *entry,
            json!({"name": name, "singularName": kind.to_lowercase(), "namespaced": false,
                "kind": kind, "verbs": ["create"]})
        );
    }
}

/// Fails the test when kubectl is missing (scripts/test.sh installs it): a test that cannot run
/// must not pass.
async fn kubectl(cluster: &Cluster, args: &[&str], stdin: &str) -> std::process::Output {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig).unwrap();
    let mut child = tokio::process::Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", &kubeconfig)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl on PATH (./scripts/test.sh installs it)");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    child.wait_with_output().await.unwrap()
}

#[tokio::test]
async fn kubectl_creates_both_reviews() {
    let cluster = Cluster::start().await.unwrap();
    cluster
        .state()
        .lock()
        .unwrap()
        .add_token("ops-token", "ops", &["system:masters"]);
    let manifests = [
        "apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nspec:\n  token: ops-token\n",
        "apiVersion: authorization.k8s.io/v1\nkind: SubjectAccessReview\nspec:\n  user: ops\n  groups: [system:masters]\n  resourceAttributes:\n    verb: delete\n    resource: pods\n",
    ];
    let mut answers = Vec::new();
    for manifest in manifests {
        let out = kubectl(&cluster, &["create", "-f", "-", "-o", "json"], manifest).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        answers.push(answer["status"].clone());
    }
    assert_eq!(answers[0]["authenticated"], true);
    assert_eq!(answers[0]["user"]["username"], "ops");
    assert_eq!(answers[1], json!({"allowed": true}));
}
