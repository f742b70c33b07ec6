//! The `kubernetes` provider: three ClusterIP Services (`<apex>`, `<apex>-primary`,
//! `<apex>-canary`) and blue/green by switching the apex selector between the primary's and the
//! canary's pod labels. Services are applied by server-side apply, so labels and annotations others
//! own are kept; an apex Service that already exists is adopted (selector taken), never deleted.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use super::{Lookups, RouterError};
use crate::analysis::Routes;
use crate::api::{Canary, CustomMetadata, FIELD_MANAGER, TargetWorkload};
use crate::workload::primary_name;

/// Routes traffic by Service selectors.
pub struct KubernetesRouter {
    client: kube::Client,
    lookups: Lookups,
}

pub(crate) fn owner(canary: &Canary) -> Value {
    let oref = canary.controller_owner_ref(&());
    serde_json::to_value(oref).unwrap_or(Value::Null)
}

fn meta_of(m: Option<&CustomMetadata>) -> (Value, Value) {
    let labels = m
        .and_then(|m| m.labels.clone())
        .map(|l| json!(l))
        .unwrap_or(json!({}));
    let annotations = m
        .and_then(|m| m.annotations.clone())
        .map(|a| json!(a))
        .unwrap_or(json!({}));
    (labels, annotations)
}

impl KubernetesRouter {
    /// The caches and memos this router reads.
    pub(crate) fn lookups(&self) -> &Lookups {
        &self.lookups
    }

    /// A router on this client.
    pub fn new(client: kube::Client, lookups: Lookups) -> KubernetesRouter {
        KubernetesRouter { client, lookups }
    }

    async fn apex(&self, canary: &Canary) -> Result<Option<Service>, RouterError> {
        let ns = canary.namespace_or_default();
        Ok(self
            .lookups
            .service(&self.client, &ns, &canary.apex_name())
            .await?)
    }

    fn services(&self, canary: &Canary) -> Api<Service> {
        Api::namespaced(self.client.clone(), &canary.namespace_or_default())
    }

    /// The target's selector labels (canary side) and their `-primary` values (primary side).
    async fn selectors(
        &self,
        canary: &Canary,
    ) -> Result<(BTreeMap<String, String>, BTreeMap<String, String>), RouterError> {
        let ns = canary.namespace_or_default();
        let name = &canary.spec.target_ref.name;
        let Some(target) = self.lookups.target(&self.client, canary).await? else {
            return Err(RouterError::Invalid(format!(
                "{:?} {name}.{ns} not found",
                canary.spec.target_ref.kind
            )));
        };
        let canary_sel = target
            .spec
            .and_then(|s| s.selector.match_labels)
            .unwrap_or_default();
        if canary_sel.is_empty() {
            return Err(RouterError::Invalid(format!(
                "{:?} {name} has no spec.selector.matchLabels to route by",
                canary.spec.target_ref.kind
            )));
        }
        let primary_sel = canary_sel
            .iter()
            .map(|(k, v)| (k.clone(), primary_name(v)))
            .collect();
        Ok((canary_sel, primary_sel))
    }

    fn ports(canary: &Canary) -> Value {
        let s = &canary.spec.service;
        let mut port = json!({"name": s.port_name.clone().unwrap_or_else(|| "http".into()), "port": s.port, "protocol": "TCP",
            "targetPort": s.target_port.clone().map(|t| serde_json::to_value(t).unwrap_or(json!(s.port))).unwrap_or(json!(s.port))});
        if let Some(p) = &s.app_protocol {
            port["appProtocol"] = json!(p);
        }
        json!([port])
    }

    async fn apply_service(
        &self,
        canary: &Canary,
        name: &str,
        selector: &BTreeMap<String, String>,
        meta: Option<&CustomMetadata>,
        owned: bool,
    ) -> Result<(), RouterError> {
        let (labels, annotations) = meta_of(meta);
        let mut obj = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels, "annotations": annotations},
            "spec": {"type": "ClusterIP", "selector": selector, "ports": Self::ports(canary)}});
        if owned {
            obj["metadata"]["ownerReferences"] = json!([owner(canary)]);
        }
        if canary.spec.service.headless == Some(true) && name != canary.apex_name() {
            obj["spec"]["clusterIP"] = json!("None");
        }
        self.services(canary)
            .patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(obj),
            )
            .await?;
        Ok(())
    }

    /// Creates the primary and canary Services, and the apex if it is missing (pointing at the
    /// primary). An existing apex keeps its selector here; `set_routes` moves it. Every router
    /// that routes between `<apex>-primary` and `<apex>-canary` calls this, so this is where the
    /// target's kind decides who makes those Services.
    pub async fn reconcile(&self, canary: &Canary) -> Result<(), RouterError> {
        match canary.spec.target_ref.workload() {
            // The apex is the target Service itself (never applied or adopted), and its
            // -primary/-canary are the workload's copies of it (workload::service_target).
            TargetWorkload::CoreService => return Ok(()),
            TargetWorkload::Deployment
            | TargetWorkload::DaemonSet
            | TargetWorkload::KnativeService => {}
        }
        let (canary_sel, primary_sel) = self.selectors(canary).await?;
        let apex = canary.apex_name();
        let svc = &canary.spec.service;
        self.apply_service(
            canary,
            &primary_name(&apex),
            &primary_sel,
            svc.primary.as_ref(),
            true,
        )
        .await?;
        self.apply_service(
            canary,
            &format!("{apex}-canary"),
            &canary_sel,
            svc.canary.as_ref(),
            true,
        )
        .await?;
        let existing = self.apex(canary).await?;
        let ours = existing.as_ref().is_none_or(|s| {
            s.owner_references()
                .iter()
                .any(|o| Some(o.uid.as_str()) == canary.metadata.uid.as_deref())
        });
        let selector = match &existing {
            Some(s) if ours => s
                .spec
                .as_ref()
                .and_then(|s| s.selector.clone())
                .unwrap_or(primary_sel.clone()),
            _ => primary_sel.clone(),
        };
        // A Service the user created is adopted: Serin takes the selector, keeps the rest, and
        // does not add an owner reference (deleting the Canary must not delete it).
        self.apply_service(
            canary,
            &apex,
            &selector,
            svc.apex.as_ref(),
            existing.is_none() || ours,
        )
        .await
    }

    /// Points the apex at the side with the larger weight (blue/green: all or nothing).
    pub async fn set_routes(&self, canary: &Canary, routes: Routes) -> Result<(), RouterError> {
        let (canary_sel, primary_sel) = self.selectors(canary).await?;
        let selector = if routes.canary > routes.primary {
            canary_sel
        } else {
            primary_sel
        };
        let current = self.apex(canary).await?;
        if current
            .and_then(|s| s.spec)
            .and_then(|s| s.selector)
            .as_ref()
            == Some(&selector)
        {
            return Ok(());
        }
        // The whole apex is applied again: server-side apply removes fields a manager stops
        // applying, so an apply of the selector alone would drop the ports.
        let owned = self.owns_apex(canary).await?;
        self.apply_service(
            canary,
            &canary.apex_name(),
            &selector,
            canary.spec.service.apex.as_ref(),
            owned,
        )
        .await
    }

    /// Which side the apex selects.
    pub async fn get_routes(&self, canary: &Canary) -> Result<Option<Routes>, RouterError> {
        let Some(apex) = self.apex(canary).await? else {
            return Ok(None);
        };
        let (canary_sel, primary_sel) = self.selectors(canary).await?;
        let selector = apex.spec.and_then(|s| s.selector).unwrap_or_default();
        Ok(if selector == primary_sel {
            Some(Routes::PRIMARY)
        } else if selector == canary_sel {
            Some(Routes::CANARY)
        } else {
            None
        })
    }

    /// Points the apex at the target's own pods (which the Canary gives back on deletion).
    pub async fn finalize(&self, canary: &Canary) -> Result<(), RouterError> {
        self.set_routes(canary, Routes::CANARY).await
    }

    async fn owns_apex(&self, canary: &Canary) -> Result<bool, RouterError> {
        let existing = self.apex(canary).await?;
        Ok(existing.is_none_or(|s| {
            s.owner_references()
                .iter()
                .any(|o| Some(o.uid.as_str()) == canary.metadata.uid.as_deref())
        }))
    }
}
