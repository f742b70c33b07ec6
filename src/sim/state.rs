//! The shared state of the embedded API server: storage, the resource registry, id and IP
//! allocation, injected faults and denials, the tokens and grants the reviews answer from, the
//! access logs, and the per-request context (field manager, validation mode, time).
//! Must not import the controller or the decision core.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::resources::{ResourceType, builtins, from_crd};
use super::store::Store;

/// fieldValidation query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Unknown fields are a 400.
    Strict,
    /// Unknown fields are dropped with a Warning header (the default).
    Warn,
    /// Unknown fields are dropped silently.
    Ignore,
}

/// Per-request context.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Field manager (the `fieldManager` parameter, else the User-Agent up to the first `/`).
    pub manager: String,
    /// Unknown-field policy.
    pub field_validation: FieldValidation,
    /// `dryRun=All`: validate and answer, store nothing.
    pub dry_run: bool,
    /// Time of the request, RFC 3339 (seconds).
    pub now: String,
}

/// The object as served for a type (apiVersion/kind of the requested version); needs no state,
/// so readers call it after releasing the lock.
pub fn present(rt: &ResourceType, obj: &Value) -> Value {
    let mut v = if super::views::is_core_event(rt) {
        super::views::event_to_core(obj)
    } else if rt.kind == "HorizontalPodAutoscaler" && rt.version == "v1" {
        super::views::hpa_to_v1(obj)
    } else {
        obj.clone()
    };
    v["apiVersion"] = json!(rt.api_version());
    v["kind"] = json!(rt.kind);
    v
}

/// Everything the server holds.
pub struct SimState {
    /// Objects.
    pub store: Store,
    /// Servable resource types.
    pub types: Vec<ResourceType>,
    uid_seq: u64,
    ip_seq: u32,
    /// Continue-token snapshots of paginated lists (the rest of each list, shared).
    pub snapshots: HashMap<u64, super::reads::Page>,
    /// Injected errors, latency and watch drops (`faults`).
    pub(crate) faults: super::faults::Faults,
    /// Refused permissions and the user 403s name (`authz`).
    pub(crate) rbac: super::authz::Rbac,
    /// Tokens and grants that TokenReviews and SubjectAccessReviews answer from (`identities`).
    pub(crate) identities: super::identities::Identities,
    /// Requests served, by `"<METHOD> <resource> <get|list|watch|write>"` (API economy checks).
    pub request_counts: std::collections::BTreeMap<String, u64>,
    /// Every access as an RBAC authorizer would see it, by client (User-Agent), with its count;
    /// requests refused by [`SimState::deny`] included.
    pub access_log: std::collections::BTreeMap<Access, u64>,
    /// The accesses refused by [`SimState::deny`] (answered 403), with their count.
    pub denied_log: std::collections::BTreeMap<Access, u64>,
}

/// One request in RBAC terms: who asked for which verb on which resource, and whether the request
/// spanned all namespaces (which only a ClusterRole can grant). Kept so tests can hold the chart's
/// RBAC rules to the calls the controller really makes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Access {
    /// The client's User-Agent up to the first `/` (`serin`, `kubectl`, `unknown`).
    pub agent: String,
    /// API group (`""` for core).
    pub group: String,
    /// Plural resource name, with `/subresource` when there is one (`canaries/status`).
    pub resource: String,
    /// RBAC verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: &'static str,
    /// A namespaced resource requested across all namespaces.
    pub all_namespaces: bool,
}

impl Default for SimState {
    fn default() -> Self {
        Self::new()
    }
}

impl SimState {
    /// A fresh state with the built-in types and the `default` namespace.
    pub fn new() -> SimState {
        let mut st = SimState {
            store: Store::new(),
            types: builtins(),
            uid_seq: 0,
            ip_seq: 0,
            snapshots: HashMap::new(),
            faults: Default::default(),
            rbac: Default::default(),
            identities: Default::default(),
            request_counts: Default::default(),
            access_log: Default::default(),
            denied_log: Default::default(),
        };
        for ns in ["default", "kube-system"] {
            let uid = st.next_uid();
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "uid": uid,
                "creationTimestamp": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "labels": {"kubernetes.io/metadata.name": ns}}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
            st.store.put(
                ("/namespaces".into(), String::new(), ns.into()),
                obj,
                super::store::EventType::Added,
            );
        }
        st
    }

    /// A new uid.
    pub fn next_uid(&mut self) -> String {
        self.uid_seq += 1;
        let n = self.uid_seq;
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            n.wrapping_mul(2654435761) & 0xffff_ffff,
            n & 0xffff,
            n & 0xfff,
            (n >> 12) & 0xfff,
            n
        )
    }

    /// Allocates a ClusterIP from 10.0.0.0/16 unless the Service is headless or brings one.
    pub fn allocate_cluster_ip(&mut self, svc: &mut Value) {
        if svc["spec"]["type"] == "ExternalName" {
            return;
        }
        let ip = match svc["spec"]["clusterIP"].as_str() {
            Some("None") => "None".to_string(),
            Some(ip) if !ip.is_empty() => ip.to_string(),
            _ => {
                self.ip_seq += 1;
                format!(
                    "10.0.{}.{}",
                    (self.ip_seq / 250) % 256,
                    self.ip_seq % 250 + 1
                )
            }
        };
        svc["spec"]["clusterIP"] = json!(ip);
        svc["spec"]["clusterIPs"] = json!([ip]);
    }

    /// The type serving `group/version/plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    /// The object as served for a type (apiVersion/kind of the requested version).
    pub fn present(&self, rt: &ResourceType, obj: &Value) -> Value {
        present(rt, obj)
    }

    /// The CRD object that defines a custom type.
    pub fn crd_of(&self, rt: &ResourceType) -> Option<Value> {
        rt.builtin.is_some().then_some(()).map_or_else(
            || {
                self.store
                    .get(&(
                        "apiextensions.k8s.io/customresourcedefinitions".into(),
                        String::new(),
                        format!("{}.{}", rt.plural, rt.group),
                    ))
                    .cloned()
            },
            |_| None,
        )
    }

    /// Registers (or refreshes) the types a CRD defines.
    pub fn register_crd(&mut self, crd: &Value) {
        let group = crd["spec"]["group"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let plural = crd["spec"]["names"]["plural"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.types
            .retain(|t| !(t.builtin.is_none() && t.group == group && t.plural == plural));
        self.types.extend(from_crd(crd));
    }

    /// Bookkeeping after an object is gone: a deleted CRD takes its types and objects with it.
    pub fn after_delete(&mut self, rt: &ResourceType, obj: &Value) {
        if rt.builtin != Some(super::resources::Builtin::Crd) {
            return;
        }
        let group = obj["spec"]["group"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let plural = obj["spec"]["names"]["plural"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.types
            .retain(|t| !(t.builtin.is_none() && t.group == group && t.plural == plural));
        self.remove_custom_objects(&group, &plural);
    }

    /// Removes every object of a custom resource (its CRD is being deleted).
    pub fn remove_custom_objects(&mut self, group: &str, plural: &str) {
        let storage = format!("{group}/{plural}");
        let keys: Vec<_> = self
            .store
            .all()
            .filter(|(k, _)| k.0 == storage)
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            self.store.remove(&k);
        }
    }
}
