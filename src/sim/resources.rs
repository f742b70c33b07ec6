//! The resource registry of the embedded API server: the built-in kinds it serves and the custom
//! ones added through CustomResourceDefinitions, with what discovery says about each.

use base64::Engine;
use serde_json::{Value, json};

pub use super::builtin_types::builtins;
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
    /// The reviews (authorization.k8s.io/v1 SelfSubjectAccessReview and SubjectAccessReview,
    /// authentication.k8s.io/v1 TokenReview): create-only, answered, never stored.
    Review,
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
    /// The openAPIV3Schema of a custom kind; shared, because a type is looked up (and cloned)
    /// on every request, and a schema like HTTPRoute's is hundreds of kilobytes.
    pub schema: Option<std::sync::Arc<Value>>,
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
        let verbs: Vec<&str> = if self.builtin == Some(Builtin::Review) {
            vec!["create"]
        } else if self.builtin.is_none() {
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
        // Only stored resources have a storage version; the reviews are never stored.
        if self.builtin != Some(Builtin::Review) {
            main["storageVersionHash"] = json!(self.storage_version_hash());
        }
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
            schema: v["schema"]
                .get("openAPIV3Schema")
                .cloned()
                .map(std::sync::Arc::new),
            has_generation: true,
        })
        .collect()
}
