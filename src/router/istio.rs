//! The `istio` provider: the three Services of the kubernetes router (the apex stays on the
//! primary), DestinationRules for both sides, and a VirtualService carrying the weights, all by
//! server-side apply (Serin owns them). A VirtualService the user already had under the apex name
//! is taken over: its spec is saved in an annotation first and put back by `finalize`; it gets no
//! owner reference, so deleting the Canary never deletes it.

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use super::gateway_api_route::backends;
use super::istio_objects::{destination_rule, routes_of, virtual_service};
use super::kubernetes::owner;
use super::{KubernetesRouter, Lookups, RouteApi, RouterError};
use crate::analysis::Routes;
use crate::api::{Canary, FIELD_MANAGER, FieldError};

/// Istio: the VirtualService is read, applied and patched (`list`, limit 1, tells "Istio is not
/// installed" apart); DestinationRules are only applied.
pub const RBAC: &[crate::rbac::Rule] = &[
    crate::rbac::Rule {
        group: "networking.istio.io",
        resources: &["virtualservices"],
        verbs: &["get", "list", "watch", "create", "patch"],
        needed: crate::rbac::Needed::Router("istio"),
        why: "Istio: VirtualService weights per step",
    },
    crate::rbac::Rule {
        group: "networking.istio.io",
        resources: &["destinationrules"],
        verbs: &["create", "patch"],
        needed: crate::rbac::Needed::Router("istio"),
        why: "Istio: one DestinationRule per side",
    },
];

/// Annotation holding the spec of a taken-over VirtualService.
pub use super::ORIGINAL_SPEC;

/// Routes by VirtualService weights.
pub struct IstioRouter {
    client: kube::Client,
    services: KubernetesRouter,
}

impl IstioRouter {
    /// A router on this client.
    pub fn new(client: kube::Client, lookups: Lookups) -> IstioRouter {
        IstioRouter {
            services: KubernetesRouter::new(client.clone(), lookups),
            client,
        }
    }

    fn api(&self, canary: &Canary, kind: &str, plural: &str) -> RouteApi {
        let gvk = GroupVersionKind::gvk("networking.istio.io", "v1", kind);
        let ar = ApiResource::from_gvk_with_plural(&gvk, plural);
        let ns = canary.namespace_or_default();
        (self.services.lookups()).route_api(&self.client, &ar, Some(&ns))
    }

    fn virtual_services(&self, canary: &Canary) -> RouteApi {
        self.api(canary, "VirtualService", "virtualservices")
    }

    async fn apply(&self, api: &RouteApi, obj: Value) -> Result<(), RouterError> {
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let data: DynamicObject = serde_json::from_value(obj)
            .map_err(|e| RouterError::Invalid(format!("{name}: {e}")))?;
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(data),
        )
        .await?;
        Ok(())
    }

    /// The current VirtualService and whether Serin owns it (else it was taken over).
    async fn current(&self, canary: &Canary) -> Result<Option<(Value, bool)>, RouterError> {
        let vs = self
            .virtual_services(canary)
            .get_opt(&canary.apex_name())
            .await?;
        Ok(vs.map(|v| {
            let ours = v
                .owner_references()
                .iter()
                .any(|o| Some(o.uid.as_str()) == canary.meta().uid.as_deref());
            (serde_json::to_value(v).unwrap_or_default(), ours)
        }))
    }

    async fn apply_vs(
        &self,
        canary: &Canary,
        routes: Routes,
        owned: bool,
    ) -> Result<(), RouterError> {
        let mut vs = virtual_service(canary, routes, owner(canary));
        if !owned {
            vs["metadata"]
                .as_object_mut()
                .map(|m| m.remove("ownerReferences"));
        }
        self.apply(&self.virtual_services(canary), vs).await
    }

    /// A cluster without Istio's CRDs cannot take a VirtualService: say so before acting.
    pub async fn problems(&self, canary: &Canary) -> Result<Vec<FieldError>, RouterError> {
        let api = self.virtual_services(canary);
        if api.served().await? {
            return Ok(Vec::new());
        }
        Ok(vec![FieldError {
            path: "spec.provider".into(),
            message: "this cluster does not serve VirtualService (networking.istio.io/v1); install Istio's CRDs".into(),
        }])
    }

    /// Creates the Services and DestinationRules, and the VirtualService (keeping its weights),
    /// saving the spec of a VirtualService the user had.
    pub async fn reconcile(&self, canary: &Canary) -> Result<(), RouterError> {
        self.services.reconcile(canary).await?;
        let rules = self.api(canary, "DestinationRule", "destinationrules");
        let (primary, canary_svc) = backends(canary);
        let mut sides = vec![primary, canary_svc];
        if canary.spec.analysis.baseline == Some(true) {
            // The baseline gets the same trafficPolicy as the sides it is compared with; the rule
            // stays between analyses (a host without a Service is ignored by Istio).
            sides.push(super::baseline_backend(canary));
        }
        for name in sides {
            self.apply(&rules, destination_rule(canary, &name, owner(canary)))
                .await?;
        }
        let current = self.current(canary).await?;
        let owned = current.as_ref().is_none_or(|(_, ours)| *ours);
        if let Some((vs, false)) = &current
            && vs["metadata"]["annotations"][ORIGINAL_SPEC].is_null()
        {
            let saved = serde_json::to_string(&vs["spec"]).unwrap_or_default();
            let patch = json!({"metadata": {"annotations": {ORIGINAL_SPEC: saved}}});
            self.virtual_services(canary)
                .patch(
                    &canary.apex_name(),
                    &PatchParams::default(),
                    &Patch::Merge(patch),
                )
                .await?;
        }
        let routes = current
            .as_ref()
            .filter(|(_, ours)| *ours)
            .and_then(|(vs, _)| routes_of(canary, vs))
            .unwrap_or(Routes::PRIMARY);
        self.apply_vs(canary, routes, owned).await
    }

    /// Sets the weights, A/B routes and mirroring.
    pub async fn set_routes(&self, canary: &Canary, routes: Routes) -> Result<(), RouterError> {
        let owned = self.current(canary).await?.is_none_or(|(_, ours)| ours);
        self.apply_vs(canary, routes, owned).await
    }

    /// The weights in the cluster.
    pub async fn get_routes(&self, canary: &Canary) -> Result<Option<Routes>, RouterError> {
        Ok(self
            .current(canary)
            .await?
            .and_then(|(vs, _)| routes_of(canary, &vs)))
    }

    /// Gives traffic back: a taken-over VirtualService gets its saved spec back; Serin's own
    /// sends everything to the target (behind the canary host) until it is garbage-collected.
    pub async fn finalize(&self, canary: &Canary) -> Result<(), RouterError> {
        let Some((vs, ours)) = self.current(canary).await? else {
            return Ok(());
        };
        if ours {
            return self.apply_vs(canary, Routes::CANARY, true).await;
        }
        let Some(original) = vs["metadata"]["annotations"][ORIGINAL_SPEC]
            .as_str()
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
        else {
            return Ok(());
        };
        // Serin's field manager lets go of everything; the user's spec comes back whole.
        let patch: json_patch::Patch = serde_json::from_value(json!([
            {"op": "replace", "path": "/spec", "value": original},
            {"op": "remove", "path": format!("/metadata/annotations/{}", ORIGINAL_SPEC.replace('/', "~1"))},
        ]))
        .map_err(|e| RouterError::Invalid(e.to_string()))?;
        self.virtual_services(canary)
            .patch(
                &canary.apex_name(),
                &PatchParams::default(),
                &Patch::<()>::Json(patch),
            )
            .await?;
        Ok(())
    }
}
