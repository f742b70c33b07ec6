//! Ingress on serin::sim for the nginx and skipper scenarios. The embedded API server does not
//! serve networking.k8s.io/v1 Ingress (a built-in kind it has no type for), so these scenarios
//! install a stand-in CustomResourceDefinition of the same group, version, kind and plural that
//! accepts any object: the routers' calls (get, server-side apply, JSON patch) go over the same
//! REST paths as in a cluster; the objects' shape is checked in tests/router_schemas.rs against
//! k8s-openapi's Ingress type.

use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

/// Installs the stand-in Ingress CRD.
pub async fn install(client: &kube::Client) {
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "ingresses.networking.k8s.io"},
        "spec": {"group": "networking.k8s.io", "scope": "Namespaced",
            "names": {"plural": "ingresses", "singular": "ingress", "kind": "Ingress", "listKind": "IngressList", "shortNames": ["ing"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    }))
    .unwrap();
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &crd)
        .await
        .unwrap();
}

/// Ingresses in `test`.
pub fn api(client: &kube::Client) -> Api<Ingress> {
    Api::namespaced(client.clone(), "test")
}

/// Creates the user's Ingress `podinfo` for app.example.com with `/` to the apex Service
/// `podinfo` (port 80) and `/static` to another Service, with `extra` merged in.
pub async fn create_user_ingress(client: &kube::Client, extra: Value) -> Value {
    let mut ing = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "podinfo", "labels": {"app": "podinfo"},
            "annotations": {"kubernetes.io/ingress.class": "nginx", "nginx.ingress.kubernetes.io/proxy-body-size": "8m"}},
        "spec": {"rules": [{"host": "app.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "podinfo", "port": {"number": 80}}}},
            {"path": "/static", "pathType": "Prefix", "backend": {"service": {"name": "static", "port": {"number": 80}}}}]}}]}});
    json_patch::merge(&mut ing, &extra);
    let created = api(client)
        .create(
            &PostParams::default(),
            &serde_json::from_value(ing).unwrap(),
        )
        .await
        .unwrap();
    serde_json::to_value(created).unwrap()
}

/// An Ingress as JSON, None when it does not exist.
pub async fn get(client: &kube::Client, name: &str) -> Option<Value> {
    api(client)
        .get_opt(name)
        .await
        .unwrap()
        .map(|i| serde_json::to_value(i).unwrap())
}
