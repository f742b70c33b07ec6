//! RBAC refusals (`SimState::deny`) with kube-apiserver's 403, the access logs, and
//! SelfSubjectAccessReviews through kube::Client and `kubectl auth can-i`.

use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use serin::sim::Cluster;

use super::{client_as, kubectl, namespace};

/// A cluster where Serin (`serin/...`) may not patch Deployments nor do anything to ConfigMaps.
async fn cluster_denying_serin() -> (Cluster, kube::Client) {
    let cluster = Cluster::start().await.unwrap();
    namespace(&cluster.client(), "test").await;
    {
        let state = cluster.state();
        let mut st = state.lock().unwrap();
        st.deny("serin/", "apps", "deployments", "patch");
        st.deny("serin/", "", "configmaps", "*");
    }
    let serin = client_as(&cluster, "serin/0.1.0", true);
    (cluster, serin)
}

#[tokio::test]
async fn denied_requests_get_the_rbac_403_and_are_logged() {
    let (cluster, serin) = cluster_denying_serin().await;
    let state = cluster.state();
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(serin.clone(), "test");
    let err = deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(s) = err else {
        panic!("{err:?}")
    };
    assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        s.message,
        "deployments.apps \"web\" is forbidden: User \"system:serviceaccount:serin-system:serin\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"test\""
    );
    assert!(
        deployments.get_opt("web").await.unwrap().is_none(),
        "get is still allowed (404)"
    );
    let cms: Api<ConfigMap> = Api::all(serin.clone());
    let err = cms.list(&ListParams::default()).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.message.ends_with("cannot list resource \"configmaps\" in API group \"\" at the cluster scope")),
        "{err:?}"
    );
    // Other clients are not refused.
    assert!(
        Api::<ConfigMap>::all(cluster.client())
            .list(&ListParams::default())
            .await
            .is_ok()
    );
    {
        let st = state.lock().unwrap();
        let denied: Vec<_> = st
            .denied_log
            .keys()
            .map(|a| (a.agent.as_str(), a.resource.as_str(), a.verb))
            .collect();
        assert_eq!(
            denied,
            [
                ("serin", "configmaps", "list"),
                ("serin", "deployments", "patch")
            ]
        );
        assert!(
            st.access_log
                .keys()
                .any(|a| a.agent == "serin" && a.verb == "patch"),
            "denied calls are still in the access log"
        );
    }
}

#[tokio::test]
async fn access_reviews_the_user_and_clearing_follow_the_deny_list() {
    let (cluster, serin) = cluster_denying_serin().await;
    let state = cluster.state();
    let cms: Api<ConfigMap> = Api::all(serin.clone());
    let reviews: Api<SelfSubjectAccessReview> = Api::all(serin.clone());
    let ask = |verb: &str, group: &str, resource: &str| -> SelfSubjectAccessReview {
        serde_json::from_value(json!({"spec": {"resourceAttributes": {"namespace": "test", "verb": verb, "group": group, "resource": resource}}})).unwrap()
    };
    let no = reviews
        .create(&PostParams::default(), &ask("patch", "apps", "deployments"))
        .await
        .unwrap();
    let raw = serde_json::to_value(&no).unwrap();
    assert_eq!(raw["status"], json!({"allowed": false}));
    assert_eq!(
        raw["spec"]["resourceAttributes"],
        json!({"namespace": "test", "verb": "patch", "group": "apps", "resource": "deployments"})
    );
    let yes = reviews
        .create(&PostParams::default(), &ask("get", "apps", "deployments"))
        .await
        .unwrap();
    assert!(yes.status.unwrap().allowed);
    state
        .lock()
        .unwrap()
        .set_user("system:serviceaccount:t:reader");
    let err = cms.list(&ListParams::default()).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.message.contains("User \"system:serviceaccount:t:reader\"")),
        "{err:?}"
    );
    state.lock().unwrap().clear_denials();
    assert!(cms.list(&ListParams::default()).await.is_ok());
}

#[tokio::test]
async fn kubectl_auth_can_i_follows_the_deny_list() {
    let cluster = Cluster::start().await.unwrap();
    cluster
        .state()
        .lock()
        .unwrap()
        .deny("kubectl", "apps", "deployments", "delete");
    for (verb, answer) in [("delete", "no"), ("get", "yes")] {
        let args = ["auth", "can-i", verb, "deployments.apps", "-n", "default"];
        let Some(out) = kubectl(&cluster, &args, "").await else {
            eprintln!("kubectl not installed: skipped");
            return;
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stdout.trim(), answer, "{verb}: {stderr}");
    }
}
