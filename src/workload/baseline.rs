//! The baseline (`analysis.baseline`): `<target>-baseline`, a Deployment of the primary's pod
//! template (the old version, fresh pods) with the canary's replica count, and the Service
//! `<apex>-baseline` selecting it. Its selector values are the primary's with `-baseline` in place
//! of `-primary`, so its pods are neither the primary's nor the canary's. Pure builders plus the
//! thin adapter functions that apply and delete them (field manager `serin`); when to do either
//! is decided by `analysis::baseline`. Must not import the controller or the routers.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

use super::primary::{PRIMARY_SUFFIX, REVISION_ANNOTATION};
use crate::api::FIELD_MANAGER;

/// Suffix of the baseline Deployment and Service.
pub const BASELINE_SUFFIX: &str = "-baseline";

/// `<name>-baseline`: the baseline Deployment of a target, or the baseline Service of an apex.
pub fn baseline_name(name: &str) -> String {
    format!("{name}{BASELINE_SUFFIX}")
}

/// A selector value of the primary (`<v>-primary`) as the baseline's (`<v>-baseline`).
fn baseline_value(v: &str) -> String {
    baseline_name(v.strip_suffix(PRIMARY_SUFFIX).unwrap_or(v))
}

/// The baseline's selector labels, from the primary's.
pub fn baseline_selector(primary: &Deployment) -> BTreeMap<String, String> {
    primary
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| (k.clone(), baseline_value(v)))
        .collect()
}

/// Builds `<target>-baseline` from the primary: its pod template (config references, which
/// already name the `-primary` copies, included) with the selector labels moved to `-baseline`
/// values, `replicas` pods, owned by the Canary.
pub fn build_baseline(
    primary: &Deployment,
    target: &str,
    replicas: i32,
    owner: OwnerReference,
) -> Deployment {
    let spec = primary.spec.clone().unwrap_or_default();
    let primary_sel = spec.selector.match_labels.clone().unwrap_or_default();
    let selector = baseline_selector(primary);
    let mut template = spec.template.clone();
    let tmeta = template.metadata.get_or_insert_with(ObjectMeta::default);
    let mut labels = tmeta.labels.clone().unwrap_or_default();
    for (k, v) in &selector {
        if labels.get(k) == primary_sel.get(k) {
            labels.insert(k.clone(), v.clone());
        }
    }
    tmeta.labels = Some(labels);
    let mut sel = spec.selector.clone();
    sel.match_labels = Some(selector.clone());
    let revision = primary
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION_ANNOTATION).cloned());
    Deployment {
        metadata: ObjectMeta {
            name: Some(baseline_name(target)),
            namespace: primary.metadata.namespace.clone(),
            labels: Some(selector),
            annotations: revision.map(|r| [(REVISION_ANNOTATION.to_string(), r)].into()),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas.max(1)),
            selector: sel,
            template,
            min_ready_seconds: spec.min_ready_seconds,
            progress_deadline_seconds: spec.progress_deadline_seconds,
            ..Default::default()
        }),
        status: None,
    }
}

/// Builds `<apex>-baseline`: the ports of the primary's Service, selecting the baseline's pods.
pub fn build_service(
    primary_service: &Service,
    apex: &str,
    selector: BTreeMap<String, String>,
    owner: OwnerReference,
) -> Service {
    let ports = primary_service.spec.as_ref().and_then(|s| s.ports.clone());
    let headless = primary_service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        == Some("None");
    Service {
        metadata: ObjectMeta {
            name: Some(baseline_name(apex)),
            namespace: primary_service.metadata.namespace.clone(),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            cluster_ip: headless.then(|| "None".to_string()),
            selector: Some(selector),
            ports,
            ..Default::default()
        }),
        status: None,
    }
}

/// Creates (or keeps) the baseline Deployment and Service. The primary and its Service must
/// exist (they do once the analysis runs); a missing one is a 404 for the refusal machinery.
pub async fn apply(
    client: &kube::Client,
    ns: &str,
    target: &str,
    apex: &str,
    replicas: i32,
    owner: OwnerReference,
) -> kube::Result<()> {
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
    let primary = deployments.get(&super::primary_name(target)).await?;
    let services = Api::<Service>::namespaced(client.clone(), ns);
    let primary_service = services.get(&super::primary_name(apex)).await?;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let baseline = build_baseline(&primary, target, replicas, owner.clone());
    let mut obj = serde_json::to_value(&baseline).unwrap_or_default();
    obj["apiVersion"] = json!("apps/v1");
    obj["kind"] = json!("Deployment");
    deployments
        .patch(&baseline_name(target), &params, &Patch::Apply(obj))
        .await?;
    let svc = build_service(&primary_service, apex, baseline_selector(&primary), owner);
    let mut obj = serde_json::to_value(&svc).unwrap_or_default();
    obj["apiVersion"] = json!("v1");
    obj["kind"] = json!("Service");
    services
        .patch(&baseline_name(apex), &params, &Patch::Apply(obj))
        .await?;
    Ok(())
}

/// Deletes the baseline Service, then its Deployment (with its pods); already gone is fine.
pub async fn remove(client: &kube::Client, ns: &str, target: &str, apex: &str) -> kube::Result<()> {
    let gone = |r: kube::Result<()>| match r {
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        other => other,
    };
    let services = Api::<Service>::namespaced(client.clone(), ns);
    gone(
        services
            .delete(&baseline_name(apex), &DeleteParams::default())
            .await
            .map(|_| ()),
    )?;
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
    gone(
        deployments
            .delete(&baseline_name(target), &DeleteParams::background())
            .await
            .map(|_| ()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn primary() -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "podinfo-primary", "namespace": "test",
                "annotations": {REVISION_ANNOTATION: "abc"}},
            "spec": {"replicas": 5, "selector": {"matchLabels": {"app": "podinfo-primary"}},
                "template": {"metadata": {"labels": {"app": "podinfo-primary", "version": "v1"}},
                    "spec": {"containers": [{"name": "app", "image": "podinfo:1"}]}}}
        }))
        .unwrap()
    }

    #[test]
    fn the_baseline_runs_the_primary_template_on_its_own_labels_with_the_canary_replicas() {
        let b = build_baseline(&primary(), "podinfo", 2, OwnerReference::default());
        assert_eq!(b.metadata.name.as_deref(), Some("podinfo-baseline"));
        let spec = b.spec.unwrap();
        assert_eq!(spec.replicas, Some(2));
        let want: BTreeMap<String, String> =
            [("app".to_string(), "podinfo-baseline".to_string())].into();
        assert_eq!(spec.selector.match_labels.as_ref(), Some(&want));
        let labels = spec.template.metadata.unwrap().labels.unwrap();
        assert_eq!(labels["app"], "podinfo-baseline");
        assert_eq!(labels["version"], "v1");
        let image = &spec.template.spec.unwrap().containers[0].image;
        assert_eq!(image.as_deref(), Some("podinfo:1"));
        assert_eq!(b.metadata.annotations.unwrap()[REVISION_ANNOTATION], "abc");
    }

    #[test]
    fn the_baseline_service_selects_the_baseline_pods_on_the_primary_ports() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "podinfo-primary", "namespace": "test"},
            "spec": {"selector": {"app": "podinfo-primary"}, "ports": [{"name": "http", "port": 9898}]}
        }))
        .unwrap();
        let b = build_service(
            &svc,
            "podinfo",
            baseline_selector(&primary()),
            OwnerReference::default(),
        );
        assert_eq!(b.metadata.name.as_deref(), Some("podinfo-baseline"));
        let spec = b.spec.unwrap();
        assert_eq!(spec.selector.unwrap()["app"], "podinfo-baseline");
        assert_eq!(spec.ports.unwrap()[0].port, 9898);
    }
}
