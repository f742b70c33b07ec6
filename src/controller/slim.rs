//! What the controller's caches keep of each object: everything a reconcile reads, nothing else.
//! Applied to every object as its watch delivers it, before the reflector stores it (see
//! `slim_watch`). The heap profile behind it is in docs/performance.md ("Controller memory").
//! Must not decide anything, and must never drop a field that is written back: the Canary's
//! status is written whole (a server-side apply of the decided status), so a Canary keeps all of
//! its spec and status here (its decision records too), and loses only metadata nobody reads.
//! Imports only `api` (the Canary type), k8s-openapi and kube's object types.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// kubectl's copy of the whole object as last applied (client-side apply): as large as the
/// object's spec again, and read by nothing in Serin.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Metadata every cached object goes without: managedFields (most of an object's size once
/// several managers have applied it) and kubectl's last-applied copy.
pub fn metadata(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// Whether Serin generated this object for a Canary (a primary, a config copy): it carries a
/// Canary of serin.io as owner. The same test `target_conflicts` relies on to refuse such an
/// object as a target, so no reconcile reads one as a target.
pub fn owned_by_canary(meta: &ObjectMeta) -> bool {
    meta.owner_references.as_ref().is_some_and(|refs| {
        refs.iter()
            .any(|r| r.kind == "Canary" && r.api_version.starts_with("serin.io/"))
    })
}

/// A cached Deployment. A primary (owned by a Canary) is read for its revision annotation, its
/// owner, `spec.replicas`, `metadata.generation` and `status` (readiness, available replicas); its
/// pod template never (a primary is always built from the target's template and applied whole),
/// so the template's spec goes. A target keeps everything: its template is hashed and copied.
pub fn deployment(d: &mut Deployment) {
    metadata(&mut d.metadata);
    if owned_by_canary(&d.metadata)
        && let Some(spec) = d.spec.as_mut()
    {
        spec.template.spec = None;
        spec.template.metadata = None;
    }
}

/// A cached ConfigMap. The cache answers the tracked configs' checksums of the targets' own
/// ConfigMaps; a `-primary` copy (owned by a Canary) is never checksummed, and its copy is
/// written from the source read afresh, so a copy keeps its metadata only.
pub fn config_map(cm: &mut ConfigMap) {
    metadata(&mut cm.metadata);
    if owned_by_canary(&cm.metadata) {
        cm.data = None;
        cm.binary_data = None;
    }
}

/// A cached Service. Its readers: the routers (through `Lookups::service`: the apex's owner
/// references and `spec.selector`), the core-Service-target adapter (`workload::service_apply`:
/// the target and its copies' metadata, and the part of their spec `service_target::copy_spec`
/// hashes and copies) and the controller's watch (name, namespace). So a Service keeps its
/// metadata and that part of its spec, plus `clusterIP` (kept whole though only `None` is read:
/// a few bytes). It loses its status (no reader: Serin never waits on a load balancer) and the
/// spec fields the API server assigns or only a cloud load balancer reads (clusterIPs, IP
/// families, external IPs, load-balancer settings, external traffic policy, health-check node
/// port). Every Service Serin writes is built afresh (`apply_service`, `build_copy`), never from
/// a cached one, so no write can lose what is dropped here.
pub fn service(svc: &mut Service) {
    metadata(&mut svc.metadata);
    svc.status = None;
    if let Some(spec) = svc.spec.take() {
        svc.spec = Some(ServiceSpec {
            type_: spec.type_,
            external_name: spec.external_name,
            cluster_ip: spec.cluster_ip,
            selector: spec.selector,
            ports: spec.ports,
            session_affinity: spec.session_affinity,
            session_affinity_config: spec.session_affinity_config,
            publish_not_ready_addresses: spec.publish_not_ready_addresses,
            internal_traffic_policy: spec.internal_traffic_policy,
            ..Default::default()
        });
    }
}

/// What a cache keeps of an object of this kind (`slim_watch` applies it to every object).
pub trait Slim {
    /// Drops what no reconcile reads.
    fn slim(&mut self);
}

impl Slim for Deployment {
    fn slim(&mut self) {
        deployment(self);
    }
}

impl Slim for Service {
    fn slim(&mut self) {
        service(self);
    }
}

impl Slim for ConfigMap {
    fn slim(&mut self) {
        config_map(self);
    }
}

/// Kinds whose every field may be read (a Canary's status is written back whole; a DaemonSet primary is rebuilt through its target's view, kept whole
/// as it is rare): metadata only.
macro_rules! metadata_only {
    ($($t:ty),*) => {$(
        impl Slim for $t {
            fn slim(&mut self) {
                metadata(kube::Resource::meta_mut(self));
            }
        }
    )*};
}

metadata_only!(
    crate::api::Canary,
    k8s_openapi::api::apps::v1::DaemonSet,
    kube::core::PartialObjectMeta<k8s_openapi::api::core::v1::Secret>,
    kube::api::DynamicObject
);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(owned: bool) -> Deployment {
        let owners = if owned {
            json!([{"apiVersion": "serin.io/v1beta1", "kind": "Canary", "name": "web", "uid": "u1", "controller": true}])
        } else {
            json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "u2"}])
        };
        serde_json::from_value(json!({
            "metadata": {"name": "web-primary", "namespace": "ns", "generation": 3,
                "labels": {"app": "web-primary"},
                "annotations": {LAST_APPLIED: "{\"spec\":{}}", "serin.io/revision": "abc"},
                "ownerReferences": owners,
                "managedFields": [{"manager": "serin", "operation": "Apply"}]},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web-primary"}},
                "template": {"metadata": {"labels": {"app": "web-primary"}},
                    "spec": {"containers": [{"name": "app", "image": "app:2"}]}}},
            "status": {"replicas": 2, "updatedReplicas": 2, "availableReplicas": 2, "observedGeneration": 3,
                "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}
        }))
        .unwrap()
    }

    #[test]
    fn every_object_loses_managed_fields_and_the_last_applied_copy_only() {
        let mut d = deploy(false);
        let before = d.clone();
        deployment(&mut d);
        assert_eq!(d.metadata.managed_fields, None);
        let annotations = d.metadata.annotations.clone().unwrap();
        assert!(!annotations.contains_key(LAST_APPLIED));
        assert_eq!(annotations["serin.io/revision"], "abc");
        // A target keeps everything else: spec (its template is hashed and copied), status,
        // labels, owners, generation.
        assert_eq!(d.spec, before.spec);
        assert_eq!(d.status, before.status);
        assert_eq!(d.metadata.labels, before.metadata.labels);
        assert_eq!(
            d.metadata.owner_references,
            before.metadata.owner_references
        );
        assert_eq!(d.metadata.generation, Some(3));

        let mut meta = ObjectMeta {
            annotations: Some([(LAST_APPLIED.to_string(), "{}".to_string())].into()),
            ..Default::default()
        };
        metadata(&mut meta);
        assert_eq!(meta.annotations, None, "no empty map left behind");
    }

    #[test]
    fn a_primary_keeps_what_readiness_and_scaling_read_but_not_its_pod_template() {
        let mut d = deploy(true);
        let before = d.clone();
        deployment(&mut d);
        let spec = d.spec.as_ref().unwrap();
        assert_eq!(spec.template.spec, None);
        assert_eq!(spec.template.metadata, None);
        assert_eq!(spec.replicas, Some(2));
        assert_eq!(spec.selector, before.spec.as_ref().unwrap().selector);
        assert_eq!(d.status, before.status);
        assert_eq!(d.metadata.generation, Some(3));
        assert_eq!(
            d.metadata.annotations.as_ref().unwrap()["serin.io/revision"],
            "abc"
        );
        assert!(owned_by_canary(&d.metadata));
        assert_eq!(
            crate::workload::readiness(&d, 100),
            crate::workload::readiness(&before, 100)
        );
    }

    #[test]
    fn only_a_serin_canary_makes_an_object_generated() {
        let owner = |api: &str, kind: &str| ObjectMeta {
            owner_references: Some(vec![
                serde_json::from_value(
                    json!({"apiVersion": api, "kind": kind, "name": "x", "uid": "u"}),
                )
                .unwrap(),
            ]),
            ..Default::default()
        };
        assert!(owned_by_canary(&owner("serin.io/v1beta1", "Canary")));
        assert!(!owned_by_canary(&owner("flagger.app/v1beta1", "Canary")));
        assert!(!owned_by_canary(&owner("apps/v1", "ReplicaSet")));
        assert!(!owned_by_canary(&ObjectMeta::default()));
    }

    #[test]
    fn a_config_copy_keeps_its_metadata_and_a_source_its_data() {
        let cm = |owned: bool| -> ConfigMap {
            let mut v = json!({"metadata": {"name": "app-config", "annotations": {LAST_APPLIED: "{}"}},
                "data": {"LEVEL": "info"}, "binaryData": {"blob": "AAEC"}});
            if owned {
                v["metadata"]["ownerReferences"] = json!([{"apiVersion": "serin.io/v1beta1", "kind": "Canary", "name": "app", "uid": "u"}]);
            }
            serde_json::from_value(v).unwrap()
        };
        let mut source = cm(false);
        config_map(&mut source);
        assert_eq!(source.data.unwrap()["LEVEL"], "info");
        assert!(source.binary_data.is_some());
        assert_eq!(source.metadata.annotations, None);
        let mut copy = cm(true);
        config_map(&mut copy);
        assert_eq!((copy.data, copy.binary_data), (None, None));
        assert_eq!(copy.metadata.name.as_deref(), Some("app-config"));
    }

    fn full_service(kind: &str, owned: bool) -> Service {
        let mut v = json!({"metadata": {"name": "web", "namespace": "ns", "generation": 2,
                "resourceVersion": "41", "uid": "u9",
                "labels": {"app": "web"},
                "annotations": {LAST_APPLIED: "{}", "projectcontour.io/upstream-protocol.h2c": "80"},
                "managedFields": [{"manager": "kubectl", "operation": "Update"}]},
            "spec": {"type": kind, "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 30080, "appProtocol": "http"}],
                "clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"], "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack", "externalIPs": ["1.2.3.4"],
                "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
                "publishNotReadyAddresses": true, "internalTrafficPolicy": "Local",
                "externalTrafficPolicy": "Local", "healthCheckNodePort": 31000,
                "loadBalancerClass": "lb", "loadBalancerSourceRanges": ["0.0.0.0/0"],
                "allocateLoadBalancerNodePorts": true},
            "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]},
                "conditions": [{"type": "LoadBalancerReady", "status": "True", "reason": "Ok", "message": "ok", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
        if kind == "ExternalName" {
            v["spec"]["externalName"] = json!("web.example.com");
        }
        if owned {
            v["metadata"]["ownerReferences"] = json!([{"apiVersion": "serin.io/v1beta1", "kind": "Canary", "name": "web", "uid": "u1"}]);
            v["metadata"]["annotations"]["serin.io/revision"] = json!("r1");
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_service_keeps_what_the_routers_and_the_service_target_read() {
        use crate::workload::service_target::{canary_up, copy_spec, spec_hash};
        for kind in ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"] {
            for owned in [false, true] {
                let before = full_service(kind, owned);
                let mut svc = before.clone();
                service(&mut svc);
                // What the copies are built from and compared by: unchanged.
                assert_eq!(copy_spec(&svc), copy_spec(&before), "{kind}");
                assert_eq!(spec_hash(&svc), spec_hash(&before), "{kind}");
                assert_eq!(
                    canary_up(&before, Some(&svc)),
                    canary_up(&before, Some(&before))
                );
                // What the routers read (owners, selector) and the metadata the Service
                // target's Deployment-shaped view carries: unchanged but for managedFields
                // and the last-applied copy.
                let spec = svc.spec.clone().unwrap();
                let full = before.spec.clone().unwrap();
                assert_eq!(spec.selector, full.selector);
                assert_eq!(spec.ports, full.ports, "ports whole, nodePort included");
                assert_eq!(spec.type_, full.type_);
                assert_eq!(spec.cluster_ip.as_deref(), Some("10.0.0.7"));
                assert_eq!(spec.external_name, full.external_name);
                assert_eq!(spec.session_affinity_config, full.session_affinity_config);
                let mut meta = before.metadata.clone();
                metadata(&mut meta);
                assert_eq!(svc.metadata, meta);
                assert_eq!(svc.metadata.resource_version.as_deref(), Some("41"));
                assert_eq!(owned_by_canary(&svc.metadata), owned);
                // What nothing reads: gone.
                assert_eq!(svc.status, None);
                assert_eq!(spec.cluster_ips, None);
                assert_eq!(spec.ip_families, None);
                assert_eq!(spec.ip_family_policy, None);
                assert_eq!(spec.external_ips, None);
                assert_eq!(spec.load_balancer_source_ranges, None);
                assert_eq!(spec.health_check_node_port, None);
            }
        }
    }

    #[test]
    fn a_headless_service_stays_headless_and_a_service_without_spec_stays_without() {
        let mut headless = full_service("ClusterIP", true);
        headless.spec.as_mut().unwrap().cluster_ip = Some("None".into());
        service(&mut headless);
        assert_eq!(
            crate::workload::service_target::copy_spec(&headless)
                .cluster_ip
                .as_deref(),
            Some("None")
        );
        let mut bare = Service::default();
        service(&mut bare);
        assert_eq!(bare, Service::default());
    }
}
