//! ValidatingAdmissionPolicies and bindings created with kube's DynamicObject and with kubectl
//! (server-side apply), and the writes they deny.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use serin::sim::Cluster;

use super::{deployment, kubectl, namespace};

fn dynamic_api(client: &kube::Client, kind: &str, plural: &str) -> Api<kube::api::DynamicObject> {
    let gvk = kube::api::GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind);
    Api::all_with(
        client.clone(),
        &kube::api::ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

/// A policy `name` on `resources` of apps/v1 with one validation, and its binding `name-b`.
async fn admission_policy(
    client: &kube::Client,
    name: &str,
    resources: &[&str],
    validation: serde_json::Value,
    binding_match: serde_json::Value,
) {
    let policy = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name}, "spec": {"matchConstraints": {"resourceRules": [{"apiGroups": ["apps"],
        "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": resources}]}, "validations": [validation]}});
    let mut binding = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": format!("{name}-b")}, "spec": {"policyName": name, "validationActions": ["Deny"]}});
    if !binding_match.is_null() {
        binding["spec"]["matchResources"] = binding_match;
    }
    let pp = PostParams::default();
    let vap = dynamic_api(
        client,
        "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies",
    );
    vap.create(&pp, &serde_json::from_value(policy).unwrap())
        .await
        .unwrap();
    let vapb = dynamic_api(
        client,
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
    );
    vapb.create(&pp, &serde_json::from_value(binding).unwrap())
        .await
        .unwrap();
}

fn api_error(err: kube::Error) -> Box<kube::core::Status> {
    match err {
        kube::Error::Api(s) => s,
        other => panic!("{other:?}"),
    }
}

/// ValidatingAdmissionPolicies created with kube's DynamicObject deny creates, updates, applies,
/// dry runs and scale writes of matching objects with kube-apiserver's envelope, store nothing,
/// and tell `deployments` from `deployments/scale`.
#[tokio::test]
async fn validating_admission_policies_deny_matching_writes() {
    let cluster = Cluster::start().await.unwrap();
    let client = cluster.client();
    let ns: Api<Namespace> = Api::all(client.clone());
    let prod = json!({"metadata": {"name": "prod", "labels": {"env": "prod"}}});
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(prod).unwrap(),
    )
    .await
    .unwrap();
    namespace(&client, "dev").await;
    let only_prod = json!({"namespaceSelector": {"matchLabels": {"env": "prod"}}});
    let at_most_5 =
        json!({"expression": "object.spec.replicas <= 5", "message": "at most 5 replicas"});
    admission_policy(
        &client,
        "max-replicas",
        &["deployments"],
        at_most_5,
        only_prod,
    )
    .await;
    let no_scale = json!({"expression": "object.spec.replicas <= 3", "reason": "Forbidden"});
    admission_policy(
        &client,
        "scale-cap",
        &["deployments/scale"],
        no_scale,
        serde_json::Value::Null,
    )
    .await;

    let prod_deploys: Api<Deployment> = Api::namespaced(client.clone(), "prod");
    let err = api_error(
        prod_deploys
            .create(&PostParams::default(), &deployment("big", 10))
            .await
            .unwrap_err(),
    );
    let why = "ValidatingAdmissionPolicy 'max-replicas' with binding 'max-replicas-b' denied request: at most 5 replicas";
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        err.message,
        format!("deployments.apps \"big\" is forbidden: {why}")
    );
    let details = err.details.unwrap();
    assert_eq!(
        (
            details.name.as_str(),
            details.group.as_str(),
            details.kind.as_str()
        ),
        ("big", "apps", "deployments")
    );
    assert_eq!(
        details
            .causes
            .iter()
            .map(|c| c.message.as_str())
            .collect::<Vec<_>>(),
        [why]
    );
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    assert_eq!(
        api_error(
            prod_deploys
                .create(&dry, &deployment("big", 10))
                .await
                .unwrap_err()
        )
        .code,
        422
    );
    assert!(
        prod_deploys.get_opt("big").await.unwrap().is_none(),
        "nothing stored"
    );
    let dev_deploys: Api<Deployment> = Api::namespaced(client.clone(), "dev");
    dev_deploys
        .create(&PostParams::default(), &deployment("big", 10))
        .await
        .expect("the binding selects prod only");

    prod_deploys
        .create(&PostParams::default(), &deployment("web", 2))
        .await
        .unwrap();
    let ssa = PatchParams::apply("test").force();
    let apply = Patch::Apply(
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 6}}),
    );
    assert_eq!(
        api_error(prod_deploys.patch("web", &ssa, &apply).await.unwrap_err()).code,
        422
    );
    let to_4 = Patch::Merge(json!({"spec": {"replicas": 4}}));
    prod_deploys
        .patch("web", &PatchParams::default(), &to_4)
        .await
        .expect("the scale policy does not apply to the main resource");
    let err = api_error(
        prod_deploys
            .patch_scale("web", &PatchParams::default(), &to_4)
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (403, "Forbidden"));
    assert!(
        err.message
            .ends_with("denied request: failed expression: object.spec.replicas <= 3"),
        "{}",
        err.message
    );
    let to_9 = Patch::Merge(json!({"spec": {"replicas": 9}}));
    let err = api_error(
        dev_deploys
            .patch_scale("big", &PatchParams::default(), &to_9)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 403, "the scale policy binds everywhere");
    assert_eq!(
        prod_deploys
            .get("web")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(4)
    );
}

/// kubectl applies a policy and its binding server-side and then runs into it.
#[tokio::test]
async fn kubectl_applies_policies_and_is_denied_by_them() {
    let cluster = Cluster::start().await.unwrap();
    let apply = ["apply", "--server-side", "-f", "-"];
    let yaml = "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\nmetadata:\n  name: pinned-image\nspec:\n  matchConstraints:\n    resourceRules:\n    - apiGroups: [apps]\n      apiVersions: [v1]\n      operations: [CREATE, UPDATE]\n      resources: [deployments]\n  validations:\n  - expression: object.spec.template.spec.containers.all(c, c.image.contains(':'))\n    messageExpression: \"'unpinned image in ' + object.metadata.name\"\n---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\nmetadata:\n  name: pinned-image-b\nspec:\n  policyName: pinned-image\n  validationActions: [Deny]\n";
    let Some(applied) = kubectl(&cluster, &apply, yaml).await else {
        eprintln!("kubectl not installed: skipped");
        return;
    };
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let out = String::from_utf8_lossy(&applied.stdout).to_string();
    assert!(
        out.contains(
            "validatingadmissionpolicy.admissionregistration.k8s.io/pinned-image serverside-applied"
        ),
        "{out}"
    );
    let again = kubectl(&cluster, &apply, yaml).await.unwrap();
    assert!(
        again.status.success(),
        "re-apply: {}",
        String::from_utf8_lossy(&again.stderr)
    );
    let web = |image: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: default\nspec:\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: app\n        image: {image}\n"
        )
    };
    let denied = kubectl(&cluster, &apply, &web("podinfo")).await.unwrap();
    assert!(!denied.status.success());
    let err = String::from_utf8_lossy(&denied.stderr).to_string();
    assert!(
        err.contains("ValidatingAdmissionPolicy 'pinned-image' with binding 'pinned-image-b' denied request: unpinned image in web"),
        "{err}"
    );
    let allowed = kubectl(&cluster, &apply, &web("podinfo:6.0.0"))
        .await
        .unwrap();
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
}
