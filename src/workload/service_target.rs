//! Core Service targets (`targetRef: {apiVersion: v1, kind: Service}`), seen through the
//! Deployment-shaped model the rest of `workload` and the decision core use, as DaemonSets are.
//! The target Service is the user's and is never written; Serin keeps two copies of its spec:
//! `<target>-canary`, brought in step with the target whenever the canary side is "scaled up",
//! and `<target>-primary`, made at initialisation and copied again on promotion only. A new
//! revision is a change of the copied part of the spec (`spec_hash`).
//!
//! A Service has no replicas. "Scaled to zero" is an annotation on the `-canary` copy (metadata
//! only: it never changes where traffic goes), so the core's scale effects keep the copy in step
//! with the target without a write at every reconcile. Readiness: a Service is always taken as
//! ready, as Flagger does (its endpoints are not read). Pure: no I/O; must not import the
//! controller or the routers.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStatus};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use sha2::{Digest, Sha256};

use super::LabelFilter;
use super::primary::REVISION_ANNOTATION;

/// Annotation (value `"true"`) on the `-canary` copy while the canary side is scaled to zero.
pub const SCALED_TO_ZERO_ANNOTATION: &str = "serin.io/scaled-to-zero";

/// kubectl's record of the last applied configuration: never copied (it would describe the
/// target, and a later `kubectl apply` to the copy would take it for its own).
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// `<name>-canary`.
pub fn canary_name(name: &str) -> String {
    format!("{name}-canary")
}

/// The part of the target's spec the copies take. Values the API server assigns (clusterIP,
/// nodePorts, healthCheckNodePort) are left for it to assign afresh: copying them would be
/// refused as already allocated. NodePort and LoadBalancer targets get ClusterIP copies: the
/// mesh or gateway reaches the copies inside the cluster, and a LoadBalancer copy would
/// provision two more cloud load balancers. A headless target (`clusterIP: None`) stays headless.
pub fn copy_spec(target: &Service) -> ServiceSpec {
    let spec = target.spec.clone().unwrap_or_default();
    let external = spec.type_.as_deref() == Some("ExternalName");
    let ports = spec.ports.map(|ports| {
        ports
            .into_iter()
            .map(|p| ServicePort {
                node_port: None,
                ..p
            })
            .collect()
    });
    ServiceSpec {
        type_: Some(
            if external {
                "ExternalName"
            } else {
                "ClusterIP"
            }
            .to_string(),
        ),
        external_name: spec.external_name.filter(|_| external),
        cluster_ip: spec.cluster_ip.filter(|ip| ip == "None"),
        selector: spec.selector,
        ports,
        session_affinity: spec.session_affinity,
        session_affinity_config: spec.session_affinity_config,
        publish_not_ready_addresses: spec.publish_not_ready_addresses,
        internal_traffic_policy: spec.internal_traffic_policy,
        ..Default::default()
    }
}

/// Fingerprint of what a copy of this Service would serve (`copy_spec`): sha256 of its JSON, 16
/// hex characters. The target's and an in-step copy's are equal.
pub fn spec_hash(svc: &Service) -> String {
    let json = serde_json::to_vec(&copy_spec(svc)).unwrap_or_default();
    Sha256::digest(&json)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Which copy is built, and what it says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Copy<'a> {
    /// `<target>-primary`, running this revision.
    Primary {
        /// The revision, recorded as `serin.io/revision`.
        revision: &'a str,
    },
    /// `<target>-canary`, scaled to zero or not.
    Canary {
        /// Whether it carries the scaled-to-zero annotation.
        scaled_to_zero: bool,
    },
}

fn filtered(
    map: Option<&BTreeMap<String, String>>,
    filter: &LabelFilter,
) -> BTreeMap<String, String> {
    map.into_iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != LAST_APPLIED && filter.keeps(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A copy of the target owned by the Canary. Labels and annotations are copied through the label
/// filter (GitOps tools' ownership marks stay off it: they would prune it), without kubectl's
/// last-applied record.
pub fn build_copy(
    target: &Service,
    which: Copy<'_>,
    owner: OwnerReference,
    filter: &LabelFilter,
) -> Service {
    let name = target.metadata.name.clone().unwrap_or_default();
    let mut annotations = filtered(target.metadata.annotations.as_ref(), filter);
    let name = match which {
        Copy::Primary { revision } => {
            annotations.insert(REVISION_ANNOTATION.to_string(), revision.to_string());
            super::primary_name(&name)
        }
        Copy::Canary { scaled_to_zero } => {
            if scaled_to_zero {
                annotations.insert(SCALED_TO_ZERO_ANNOTATION.to_string(), "true".to_string());
            }
            canary_name(&name)
        }
    };
    Service {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: target.metadata.namespace.clone(),
            labels: Some(filtered(target.metadata.labels.as_ref(), filter)),
            annotations: Some(annotations),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(copy_spec(target)),
        status: None,
    }
}

/// Whether the `-canary` copy serves the target's current spec and is not scaled to zero: the
/// canary side is "up" (1 replica in the view) only then.
pub fn canary_up(target: &Service, copy: Option<&Service>) -> bool {
    copy.is_some_and(|c| {
        let marked = c
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(SCALED_TO_ZERO_ANNOTATION));
        !marked && spec_hash(c) == spec_hash(target)
    })
}

/// The Deployment-shaped view of a Service: its metadata (owner references and the revision
/// annotation read as a Deployment's), `replicas` wanted and, a Service having no pods of its
/// own to wait for, as many ready and available. The template is empty: the revision of a
/// Service target is its `spec_hash`.
pub fn as_deployment(svc: &Service, replicas: i32) -> Deployment {
    let status = DeploymentStatus {
        observed_generation: svc.metadata.generation,
        replicas: Some(replicas),
        updated_replicas: Some(replicas),
        ready_replicas: Some(replicas),
        available_replicas: Some(replicas),
        ..Default::default()
    };
    Deployment {
        metadata: svc.metadata.clone(),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            ..Default::default()
        }),
        status: Some(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::readiness;
    use serde_json::json;

    fn svc(name: &str, spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "test", "generation": 1,
                "labels": {"app": "web", "argocd.argoproj.io/instance": "shop"},
                "annotations": {LAST_APPLIED: "{}", "projectcontour.io/upstream-protocol.h2c": "80"}},
            "spec": spec
        }))
        .unwrap()
    }

    fn web(version: &str) -> Service {
        svc(
            "web",
            json!({"type": "ClusterIP", "clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"],
                "selector": {"app": "web", "version": version},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}),
        )
    }

    #[test]
    fn the_hash_moves_with_the_selector_and_ports_not_with_server_assigned_values() {
        let v1 = web("v1");
        assert_eq!(spec_hash(&v1).len(), 16);
        assert_ne!(spec_hash(&v1), spec_hash(&web("v2")));
        let mut other_ip = v1.clone();
        other_ip.spec.as_mut().unwrap().cluster_ip = Some("10.0.0.9".into());
        other_ip.metadata.annotations = None;
        assert_eq!(spec_hash(&v1), spec_hash(&other_ip));
        let mut port = v1.clone();
        port.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].port = 81;
        assert_ne!(spec_hash(&v1), spec_hash(&port));
    }

    #[test]
    fn copies_take_the_spec_and_leave_assigned_values_and_kubectls_record_behind() {
        let owner = OwnerReference {
            kind: "Canary".into(),
            name: "web".into(),
            ..Default::default()
        };
        let filter = LabelFilter::default();
        let primary = build_copy(
            &web("v1"),
            Copy::Primary { revision: "r1" },
            owner.clone(),
            &filter,
        );
        assert_eq!(primary.metadata.name.as_deref(), Some("web-primary"));
        let spec = primary.spec.clone().unwrap();
        assert_eq!(spec.cluster_ip, None, "the server assigns the copy's own");
        assert_eq!(spec.cluster_ips, None);
        assert_eq!(
            spec.selector.unwrap()["version"],
            "v1",
            "same pods as the target"
        );
        assert_eq!(spec.ports.unwrap()[0].port, 80);
        let annotations = primary.metadata.annotations.clone().unwrap();
        assert_eq!(annotations[REVISION_ANNOTATION], "r1");
        assert!(!annotations.contains_key(LAST_APPLIED));
        assert_eq!(annotations["projectcontour.io/upstream-protocol.h2c"], "80");
        let labels = primary.metadata.labels.clone().unwrap();
        assert!(
            !labels.contains_key("argocd.argoproj.io/instance"),
            "Argo CD would prune it"
        );
        assert_eq!(
            primary.metadata.owner_references.as_ref().unwrap()[0].kind,
            "Canary"
        );
        let canary = build_copy(
            &web("v1"),
            Copy::Canary {
                scaled_to_zero: true,
            },
            owner,
            &filter,
        );
        assert_eq!(canary.metadata.name.as_deref(), Some("web-canary"));
        assert_eq!(
            canary.metadata.annotations.unwrap()[SCALED_TO_ZERO_ANNOTATION],
            "true"
        );
        assert_eq!(
            spec_hash(&primary),
            spec_hash(&web("v1")),
            "an in-step copy hashes alike"
        );
    }

    #[test]
    fn node_ports_and_load_balancers_become_cluster_ip_copies_headless_stays_headless() {
        let lb = svc(
            "web",
            json!({"type": "LoadBalancer", "clusterIP": "10.0.0.7", "healthCheckNodePort": 31000,
            "externalTrafficPolicy": "Local", "selector": {"app": "web"},
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}),
        );
        let spec = copy_spec(&lb);
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        assert_eq!(spec.ports.unwrap()[0].node_port, None);
        assert_eq!(spec.health_check_node_port, None);
        assert_eq!(spec.external_traffic_policy, None);
        let headless = svc(
            "web",
            json!({"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 80}]}),
        );
        assert_eq!(copy_spec(&headless).cluster_ip.as_deref(), Some("None"));
        let ext = svc(
            "web",
            json!({"type": "ExternalName", "externalName": "web.example.com"}),
        );
        assert_eq!(
            copy_spec(&ext).external_name.as_deref(),
            Some("web.example.com")
        );
    }

    #[test]
    fn the_canary_side_is_up_only_in_step_and_unmarked() {
        let owner = OwnerReference::default();
        let filter = LabelFilter::default();
        let copy = |target: &Service, scaled_to_zero| {
            build_copy(
                target,
                Copy::Canary { scaled_to_zero },
                owner.clone(),
                &filter,
            )
        };
        let (v1, v2) = (web("v1"), web("v2"));
        assert!(canary_up(&v1, Some(&copy(&v1, false))));
        assert!(!canary_up(&v1, Some(&copy(&v1, true))), "scaled to zero");
        assert!(
            !canary_up(&v2, Some(&copy(&v1, false))),
            "behind the target"
        );
        assert!(!canary_up(&v1, None), "missing");
    }

    #[test]
    fn the_view_is_ready_when_up_and_not_ready_at_zero() {
        assert!(readiness(&as_deployment(&web("v1"), 1), 100).is_ready());
        assert!(!readiness(&as_deployment(&web("v1"), 0), 100).is_ready());
        let view = as_deployment(&web("v1"), 1);
        assert_eq!(view.metadata.name.as_deref(), Some("web"));
    }
}
