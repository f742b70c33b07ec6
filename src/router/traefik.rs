//! The `traefik` provider: the three Services of the kubernetes router (the apex stays on the
//! primary) and a TraefikService `<apex>` carrying the weights or the mirroring
//! (`traefik_objects`), applied as a whole by server-side apply; the user's IngressRoute sends to
//! it. A TraefikService the user already had under the apex name is taken over: its spec and
//! annotations are saved in an annotation first and put back by `finalize`, and it gets no owner
//! reference. Imports only `api`, the rule type and the router seam (`mod.rs`, the kubernetes
//! router).

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::Value;

use super::kubernetes::owner;
use super::traefik_objects::{routes_of, traefik_service};
use super::{KubernetesRouter, Lookups, RouteApi, RouterError};
use crate::analysis::Routes;
use crate::api::{Canary, FIELD_MANAGER, FieldError};

/// Traefik: the TraefikService is read, applied and patched (`list`, limit 1, tells "Traefik is not
/// installed" apart).
pub const RBAC: &[crate::rbac::Rule] = &[crate::rbac::Rule {
    group: "traefik.io",
    resources: &["traefikservices"],
    verbs: &["get", "list", "watch", "create", "patch"],
    needed: crate::rbac::Needed::Router("traefik"),
    why: "Traefik: TraefikService weights per step",
}];

/// Routes by TraefikService weights.
pub struct TraefikRouter {
    client: kube::Client,
    services: KubernetesRouter,
}

impl TraefikRouter {
    /// A router on this client.
    pub fn new(client: kube::Client, lookups: Lookups) -> TraefikRouter {
        TraefikRouter {
            services: KubernetesRouter::new(client.clone(), lookups),
            client,
        }
    }

    fn api(&self, canary: &Canary) -> RouteApi {
        let gvk = GroupVersionKind::gvk("traefik.io", "v1alpha1", "TraefikService");
        let ar = ApiResource::from_gvk_with_plural(&gvk, "traefikservices");
        let ns = canary.namespace_or_default();
        (self.services.lookups()).route_api(&self.client, &ar, Some(&ns))
    }

    /// The TraefikService and whether this Canary owns it (else it was taken over).
    async fn current(&self, canary: &Canary) -> Result<Option<(Value, bool)>, RouterError> {
        let svc = self.api(canary).get_opt(&canary.apex_name()).await?;
        Ok(svc.map(|p| {
            let ours = super::owned_by(&p.metadata, canary);
            (serde_json::to_value(p).unwrap_or_default(), ours)
        }))
    }

    async fn apply(&self, canary: &Canary, routes: Routes, owned: bool) -> Result<(), RouterError> {
        let obj = traefik_service(canary, routes, owned.then(|| owner(canary)));
        let name = canary.apex_name();
        let data: DynamicObject = serde_json::from_value(obj)
            .map_err(|e| RouterError::Invalid(format!("TraefikService {name}: {e}")))?;
        self.api(canary)
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(data),
            )
            .await?;
        Ok(())
    }

    /// A cluster without Traefik's CRDs cannot take an TraefikService: say so before acting.
    pub async fn problems(&self, canary: &Canary) -> Result<Vec<FieldError>, RouterError> {
        if self.api(canary).served().await? {
            return Ok(Vec::new());
        }
        Ok(vec![FieldError {
            path: "spec.provider".into(),
            message: "this cluster does not serve TraefikService (traefik.io/v1alpha1); install Traefik's CRDs".into(),
        }])
    }

    /// Creates the Services and the TraefikService (keeping its weights), saving the spec of an
    /// TraefikService the user had.
    pub async fn reconcile(&self, canary: &Canary) -> Result<(), RouterError> {
        self.services.reconcile(canary).await?;
        let current = self.current(canary).await?;
        if let Some((svc, false)) = &current {
            super::save_original(&self.api(canary), svc).await?;
        }
        let routes = match &current {
            Some((svc, true)) => routes_of(canary, svc),
            _ => Routes::PRIMARY,
        };
        // A TraefikService without our weights starts over on the primary.
        let routes = if routes.primary + routes.canary == 100 {
            routes
        } else {
            Routes::PRIMARY
        };
        let owned = current.as_ref().is_none_or(|(_, ours)| *ours);
        self.apply(canary, routes, owned).await
    }

    /// Sets the weights, A/B routes and mirroring.
    pub async fn set_routes(&self, canary: &Canary, routes: Routes) -> Result<(), RouterError> {
        let owned = self.current(canary).await?.is_none_or(|(_, ours)| ours);
        self.apply(canary, routes, owned).await
    }

    /// The routes in the cluster; None when the TraefikService does not exist.
    pub async fn get_routes(&self, canary: &Canary) -> Result<Option<Routes>, RouterError> {
        Ok(self
            .current(canary)
            .await?
            .map(|(p, _)| routes_of(canary, &p)))
    }

    /// Gives traffic back: Serin's TraefikService sends everything to the target (behind the canary
    /// Service) until it is garbage-collected; a taken-over one gets its saved spec back.
    pub async fn finalize(&self, canary: &Canary) -> Result<(), RouterError> {
        let Some((svc, ours)) = self.current(canary).await? else {
            return Ok(());
        };
        if ours {
            return self.apply(canary, Routes::CANARY, true).await;
        }
        super::restore_original(&self.api(canary), &svc).await
    }
}
