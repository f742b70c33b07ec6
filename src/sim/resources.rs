//! The resource registry of the embedded API server: the built-in kinds it serves and the custom
//! ones added through CustomResourceDefinitions, with what discovery says about each.

use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Built-in behaviour classes that need special handling (defaults, controllers, generation rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 ReplicaSet.
    ReplicaSet,
    /// apps/v1 DaemonSet.
    DaemonSet,
    /// core/v1 Service.
    Service,
    /// core/v1 Pod.
    Pod,
    /// core/v1 Namespace.
    Namespace,
    /// apiextensions.k8s.io/v1 CustomResourceDefinition.
    Crd,
    /// coordination.k8s.io/v1 Lease (PUT creates).
    Lease,
    /// Any other built-in without special rules.
    Plain,
}

/// One servable resource.
#[derive(Debug, Clone)]
pub struct ResourceType {
    /// API group ("" for core).
    pub group: String,
    /// Version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Plural resource name.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names for discovery.
    pub short_names: Vec<String>,
    /// Categories for discovery.
    pub categories: Vec<String>,
    /// Has a /status subresource.
    pub status: bool,
    /// Has a /scale subresource (Deployments, ReplicaSets).
    pub scale: bool,
    /// Special handling, or `Custom` for CRD-defined kinds.
    pub builtin: Option<Builtin>,
    /// The openAPIV3Schema of a custom kind.
    pub schema: Option<Value>,
    /// The metadata.generation rule: false for kinds without generation (Leases, HPAs, core kinds).
    pub has_generation: bool,
}

impl ResourceType {
    /// `apiVersion` of objects of this type.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps` as error messages name it; `configmaps` for core.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Deployment.apps` as 422 messages name the kind.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// The key objects of this type are stored under (all versions of a group/kind share it).
    pub fn storage_key(&self) -> String {
        // core/v1 and events.k8s.io/v1 Events are one resource in two versions.
        if self.plural == "events" && (self.group.is_empty() || self.group == "events.k8s.io") {
            return "/events".to_string();
        }
        format!("{}/{}", self.group, self.plural)
    }

    fn storage_version_hash(&self) -> String {
        let digest =
            Sha256::digest(format!("{}/{}/{}", self.group, self.version, self.kind).as_bytes());
        base64::engine::general_purpose::STANDARD.encode(&digest[..8])
    }

    /// The discovery entries (`APIResource`) for this type and its subresources.
    pub fn discovery(&self) -> Vec<Value> {
        let verbs: Vec<&str> = if self.builtin.is_none() {
            vec![
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "create",
                "update",
                "watch",
            ]
        } else if self.namespaced {
            vec![
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ]
        } else {
            vec![
                "create", "delete", "get", "list", "patch", "update", "watch",
            ]
        };
        let mut main = json!({
            "name": self.plural, "singularName": self.singular, "namespaced": self.namespaced,
            "kind": self.kind, "verbs": verbs,
        });
        if !self.short_names.is_empty() {
            main["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            main["categories"] = json!(self.categories);
        }
        main["storageVersionHash"] = json!(self.storage_version_hash());
        let mut out = vec![main];
        if self.scale {
            out.push(json!({"name": format!("{}/scale", self.plural), "singularName": "", "namespaced": self.namespaced,
                "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}));
        }
        if self.kind == "ServiceAccount" {
            out.push(json!({"name": "serviceaccounts/token", "singularName": "", "namespaced": true, "group": "authentication.k8s.io",
                "version": "v1", "kind": "TokenRequest", "verbs": ["create"]}));
        }
        if self.status {
            out.push(json!({"name": format!("{}/status", self.plural), "singularName": "", "namespaced": self.namespaced,
                "kind": self.kind, "verbs": ["get", "patch", "update"]}));
        }
        out
    }
}

struct Def(
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    &'static [&'static str],
    bool,
    bool,
    Builtin,
    bool,
);

/// (group, version, kind, plural, namespaced, shortNames, categories, status, scale, builtin, generation)
const BUILTINS: &[Def] = &[
    Def(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        true,
        &["cm"],
        &[],
        false,
        false,
        Builtin::Plain,
        false,
    ),
    Def(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        true,
        &["ep"],
        &[],
        false,
        false,
        Builtin::Plain,
        false,
    ),
    Def(
        "",
        "v1",
        "Event",
        "events",
        true,
        &["ev"],
        &[],
        false,
        false,
        Builtin::Plain,
        false,
    ),
    Def(
        "",
        "v1",
        "Namespace",
        "namespaces",
        false,
        &["ns"],
        &[],
        true,
        false,
        Builtin::Namespace,
        false,
    ),
    Def(
        "",
        "v1",
        "Pod",
        "pods",
        true,
        &["po"],
        &["all"],
        true,
        false,
        Builtin::Pod,
        false,
    ),
    Def(
        "",
        "v1",
        "Secret",
        "secrets",
        true,
        &[],
        &[],
        false,
        false,
        Builtin::Plain,
        false,
    ),
    Def(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        true,
        &["sa"],
        &[],
        false,
        false,
        Builtin::Plain,
        false,
    ),
    Def(
        "",
        "v1",
        "Service",
        "services",
        true,
        &["svc"],
        &["all"],
        true,
        false,
        Builtin::Service,
        false,
    ),
    Def(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        true,
        &["ds"],
        &["all"],
        true,
        false,
        Builtin::DaemonSet,
        true,
    ),
    Def(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        true,
        &["deploy"],
        &["all"],
        true,
        true,
        Builtin::Deployment,
        true,
    ),
    Def(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        true,
        &["rs"],
        &["all"],
        true,
        true,
        Builtin::ReplicaSet,
        true,
    ),
    Def(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
        &["hpa"],
        &["all"],
        true,
        false,
        Builtin::Plain,
        false,
    ),
    Def(
        "autoscaling",
        "v1",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
        &["hpa"],
        &["all"],
        true,
        false,
        Builtin::Plain,
        false,
    ),
    Def(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        true,
        &[],
        &[],
        false,
        false,
        Builtin::Lease,
        false,
    ),
    Def(
        "events.k8s.io",
        "v1",
        "Event",
        "events",
        true,
        &["ev"],
        &[],
        false,
        false,
        Builtin::Plain,
        false,
    ),
    Def(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        &["crd", "crds"],
        &[],
        true,
        false,
        Builtin::Crd,
        true,
    ),
    Def(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
        &[],
        &[],
        false,
        false,
        Builtin::Plain,
        false,
    ),
    Def(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
        &[],
        &[],
        false,
        false,
        Builtin::Plain,
        false,
    ),
    Def(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        true,
        &[],
        &[],
        false,
        false,
        Builtin::Plain,
        false,
    ),
    Def(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
        &[],
        &[],
        false,
        false,
        Builtin::Plain,
        false,
    ),
    Def(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
        &["pdb"],
        &[],
        true,
        false,
        Builtin::Plain,
        true,
    ),
    Def(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
        &["netpol"],
        &[],
        false,
        false,
        Builtin::Plain,
        true,
    ),
];

/// The built-in resource types.
pub fn builtins() -> Vec<ResourceType> {
    BUILTINS
        .iter()
        .map(|d| ResourceType {
            group: d.0.to_string(),
            version: d.1.to_string(),
            kind: d.2.to_string(),
            plural: d.3.to_string(),
            singular: d.2.to_lowercase(),
            namespaced: d.4,
            short_names: d.5.iter().map(|s| s.to_string()).collect(),
            categories: d.6.iter().map(|s| s.to_string()).collect(),
            status: d.7,
            scale: d.8,
            builtin: Some(d.9),
            schema: None,
            has_generation: d.10,
        })
        .collect()
}

/// The resource types a CRD object defines (one per served version).
pub fn from_crd(crd: &Value) -> Vec<ResourceType> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let kind = names["kind"].as_str().unwrap_or_default().to_string();
    spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["served"].as_bool().unwrap_or(false))
        .map(|v| ResourceType {
            group: spec["group"].as_str().unwrap_or_default().to_string(),
            version: v["name"].as_str().unwrap_or_default().to_string(),
            kind: kind.clone(),
            plural: names["plural"].as_str().unwrap_or_default().to_string(),
            singular: names["singular"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| kind.to_lowercase()),
            namespaced: spec["scope"].as_str() != Some("Cluster"),
            short_names: strings(&names["shortNames"]),
            categories: strings(&names["categories"]),
            status: v["subresources"]["status"].is_object(),
            scale: v["subresources"]["scale"].is_object(),
            builtin: None,
            schema: v["schema"].get("openAPIV3Schema").cloned(),
            has_generation: true,
        })
        .collect()
}
