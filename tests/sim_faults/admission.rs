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

/// Namespaces `prod` (labelled env=prod) and `dev`; policy `max-replicas` (at most 5, bound in
/// prod only) on deployments and `scale-cap` (at most 3, reason Forbidden, bound everywhere) on
/// deployments/scale, all created with kube's DynamicObject.
async fn cluster_with_policies() -> (Cluster, Api<Deployment>, Api<Deployment>) {
    let cluster = Cluster::start().await.unwrap();
    let client = cluster.client();
    let ns: Api<Namespace> = Api::all(client.clone());
    let prod = json!({"metadata": {"name": "prod", "labels": {"env": "prod"}}});
    let pp = PostParams::default();
    ns.create(&pp, &serde_json::from_value(prod).unwrap())
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
    let everywhere = serde_json::Value::Null;
    admission_policy(
        &client,
        "scale-cap",
        &["deployments/scale"],
        no_scale,
        everywhere,
    )
    .await;
    let prod = Api::namespaced(client.clone(), "prod");
    let dev = Api::namespaced(client.clone(), "dev");
    (cluster, prod, dev)
}

/// A denied create gets kube-apiserver's envelope, dryRun too, nothing is stored, and the
/// binding's namespace selector decides where the policy applies.
#[tokio::test]
async fn policies_deny_matching_creates_with_kube_apiservers_envelope() {
    let (_cluster, prod, dev) = cluster_with_policies().await;
    let pp = PostParams::default();
    let err = api_error(prod.create(&pp, &deployment("big", 10)).await.unwrap_err());
    let why = "ValidatingAdmissionPolicy 'max-replicas' with binding 'max-replicas-b' denied request: at most 5 replicas";
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        err.message,
        format!("deployments.apps \"big\" is forbidden: {why}")
    );
    let details = err.details.unwrap();
    let named = (
        details.name.as_str(),
        details.group.as_str(),
        details.kind.as_str(),
    );
    assert_eq!(named, ("big", "apps", "deployments"));
    let causes: Vec<&str> = details.causes.iter().map(|c| c.message.as_str()).collect();
    assert_eq!(causes, [why]);
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let err = api_error(prod.create(&dry, &deployment("big", 10)).await.unwrap_err());
    assert_eq!(err.code, 422, "dryRun is denied too");
    assert!(
        prod.get_opt("big").await.unwrap().is_none(),
        "nothing stored"
    );
    dev.create(&pp, &deployment("big", 10))
        .await
        .expect("the binding selects prod only");
}

/// Server-side apply is admitted like any update, and `deployments` and `deployments/scale`
/// are told apart.
#[tokio::test]
async fn policies_tell_the_scale_subresource_from_the_resource() {
    let (_cluster, prod, dev) = cluster_with_policies().await;
    let pp = PostParams::default();
    prod.create(&pp, &deployment("web", 2)).await.unwrap();
    dev.create(&pp, &deployment("big", 1)).await.unwrap();
    let ssa = PatchParams::apply("test").force();
    let apply = Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"}, "spec": {"replicas": 6}}));
    assert_eq!(
        api_error(prod.patch("web", &ssa, &apply).await.unwrap_err()).code,
        422
    );
    let to_4 = Patch::Merge(json!({"spec": {"replicas": 4}}));
    let merge = PatchParams::default();
    prod.patch("web", &merge, &to_4)
        .await
        .expect("the scale policy does not apply to the main resource");
    let err = api_error(prod.patch_scale("web", &merge, &to_4).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (403, "Forbidden"));
    let tail = "denied request: failed expression: object.spec.replicas <= 3";
    assert!(err.message.ends_with(tail), "{}", err.message);
    let to_9 = Patch::Merge(json!({"spec": {"replicas": 9}}));
    let err = api_error(dev.patch_scale("big", &merge, &to_9).await.unwrap_err());
    assert_eq!(err.code, 403, "the scale policy binds everywhere");
    assert_eq!(
        prod.get("web").await.unwrap().spec.unwrap().replicas,
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
