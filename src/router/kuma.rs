//! The `kuma` provider: the three Services of the kubernetes router (the apex stays on the
//! primary) and, picked per reconcile by what the API server serves (as `linkerd` does), either
//! Flagger's cluster-scoped TrafficRoute `<apex>` (Kuma up to 2.14) or a MeshHTTPRoute `<apex>` in
//! the Canary's namespace (newer Kuma, which has no TrafficRoute), built by `kuma_objects` and
//! applied whole by server-side apply. A cluster-scoped TrafficRoute cannot be owned by a Canary:
//! it carries the Canary's `<namespace>/<name>` in an annotation, one that another Canary (or the
//! user) has is refused, and `finalize` deletes it. A MeshHTTPRoute the user already had is taken
//! over and restored, as the other routers do. Imports only `api`, the rule type and the router
//! seam (`mod.rs`, the kubernetes router).

use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::Value;

use super::kubernetes::owner;
use super::kuma_objects::{
    CANARY_ANNOTATION, canary_key, mesh_http_route, mesh_http_route_routes, traffic_route,
    traffic_route_routes,
};
use super::{KubernetesRouter, Lookups, RouteApi, RouterError};
use crate::analysis::Routes;
use crate::api::{Canary, FIELD_MANAGER, FieldError};

/// Kuma: whichever route kind the cluster serves is read, applied and patched (`list`, limit 1,
/// tells which Kuma this is); a TrafficRoute, cluster-scoped, is deleted on finalize.
pub const RBAC: &[crate::rbac::Rule] = &[crate::rbac::Rule {
    group: "kuma.io",
    resources: &["trafficroutes", "meshhttproutes"],
    verbs: &["get", "list", "watch", "create", "patch", "delete"],
    needed: crate::rbac::Needed::Router("kuma"),
    why: "Kuma: TrafficRoute (Kuma <= 2.14, cluster-scoped: deleted on finalize) or MeshHTTPRoute weights per step",
}];

/// Routes by Kuma TrafficRoute or MeshHTTPRoute weights.
pub struct KumaRouter {
    client: kube::Client,
    services: KubernetesRouter,
}

/// Which of Kuma's route kinds the cluster serves.
enum Kind {
    TrafficRoute,
    MeshHttpRoute,
    Neither,
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    let gvk = GroupVersionKind::gvk("kuma.io", "v1alpha1", kind);
    ApiResource::from_gvk_with_plural(&gvk, plural)
}

impl KumaRouter {
    /// A router on this client.
    pub fn new(client: kube::Client, lookups: Lookups) -> KumaRouter {
        KumaRouter {
            services: KubernetesRouter::new(client.clone(), lookups),
            client,
        }
    }

    fn traffic_routes(&self) -> RouteApi {
        let ar = resource("TrafficRoute", "trafficroutes");
        (self.services.lookups()).route_api(&self.client, &ar, None)
    }

    fn mesh_http_routes(&self, canary: &Canary) -> RouteApi {
        let ns = canary.namespace_or_default();
        let ar = resource("MeshHTTPRoute", "meshhttproutes");
        (self.services.lookups()).route_api(&self.client, &ar, Some(&ns))
    }

    async fn kind(&self, canary: &Canary) -> Result<Kind, RouterError> {
        if self.traffic_routes().served().await? {
            return Ok(Kind::TrafficRoute);
        }
        let api = self.mesh_http_routes(canary);
        if api.served().await? {
            return Ok(Kind::MeshHttpRoute);
        }
        Ok(Kind::Neither)
    }

    /// The route object of the kind in use, and whether this Canary owns it.
    async fn current(
        &self,
        canary: &Canary,
        kind: &Kind,
    ) -> Result<Option<(Value, bool)>, RouterError> {
        let name = canary.apex_name();
        let found = match kind {
            Kind::TrafficRoute => self.traffic_routes().get_opt(&name).await?,
            Kind::MeshHttpRoute => self.mesh_http_routes(canary).get_opt(&name).await?,
            Kind::Neither => None,
        };
        Ok(found.map(|o| {
            let ours = match kind {
                Kind::TrafficRoute => {
                    o.metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(CANARY_ANNOTATION))
                        == Some(&canary_key(canary))
                }
                _ => super::owned_by(&o.metadata, canary),
            };
            (serde_json::to_value(o).unwrap_or_default(), ours)
        }))
    }

    async fn apply(&self, canary: &Canary, kind: &Kind, routes: Routes) -> Result<(), RouterError> {
        let (obj, api) = match kind {
            Kind::TrafficRoute => (traffic_route(canary, routes), self.traffic_routes()),
            Kind::MeshHttpRoute => {
                let owned = self.current(canary, kind).await?.is_none_or(|(_, o)| o);
                let owner = owned.then(|| owner(canary));
                (
                    mesh_http_route(canary, routes, owner),
                    self.mesh_http_routes(canary),
                )
            }
            Kind::Neither => return Err(RouterError::Invalid(NOT_SERVED.into())),
        };
        let name = canary.apex_name();
        let data: DynamicObject = serde_json::from_value(obj)
            .map_err(|e| RouterError::Invalid(format!("Kuma route {name}: {e}")))?;
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api.patch(&name, &params, &Patch::Apply(data)).await?;
        Ok(())
    }

    /// A cluster without Kuma, a TrafficRoute `<apex>` that is not this Canary's, or A/B testing
    /// and mirroring on a Kuma that only has TrafficRoute: say so before acting.
    pub async fn problems(&self, canary: &Canary) -> Result<Vec<FieldError>, RouterError> {
        let kind = self.kind(canary).await?;
        let problem = |path: &str, message: String| FieldError {
            path: path.into(),
            message,
        };
        let mut out = Vec::new();
        match kind {
            Kind::Neither => out.push(problem("spec.provider", NOT_SERVED.into())),
            Kind::MeshHttpRoute => {}
            Kind::TrafficRoute => {
                if let Some((route, false)) = self.current(canary, &kind).await? {
                    let apex = canary.apex_name();
                    let whose = route["metadata"]["annotations"][CANARY_ANNOTATION]
                        .as_str()
                        .map_or("not Serin's".to_string(), |c| format!("is Canary {c}'s"));
                    out.push(problem("spec.service.name", format!("the cluster-scoped TrafficRoute {apex} {whose}; give this Canary's apex a name no other namespace's uses")));
                }
                let a = &canary.spec.analysis;
                if a.r#match.as_ref().is_some_and(|m| !m.is_empty()) {
                    out.push(problem(
                        "spec.analysis.match",
                        OLD_KUMA.replace("{what}", "A/B testing"),
                    ));
                }
                if a.mirror == Some(true) {
                    out.push(problem(
                        "spec.analysis.mirror",
                        OLD_KUMA.replace("{what}", "mirroring"),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Creates the Services and the route (keeping its weights); takes a user's MeshHTTPRoute over.
    pub async fn reconcile(&self, canary: &Canary) -> Result<(), RouterError> {
        self.services.reconcile(canary).await?;
        let kind = self.kind(canary).await?;
        let current = self.current(canary, &kind).await?;
        if let (Kind::MeshHttpRoute, Some((route, false))) = (&kind, &current) {
            super::save_original(&self.mesh_http_routes(canary), route).await?;
        }
        let routes = match &current {
            Some((route, true)) => self.routes_of(canary, &kind, route),
            _ => Routes::PRIMARY,
        };
        // A route without our weights starts over on the primary.
        let routes = if routes.primary + routes.canary == 100 {
            routes
        } else {
            Routes::PRIMARY
        };
        self.apply(canary, &kind, routes).await
    }

    fn routes_of(&self, canary: &Canary, kind: &Kind, route: &Value) -> Routes {
        match kind {
            Kind::TrafficRoute => traffic_route_routes(canary, route),
            _ => mesh_http_route_routes(canary, route),
        }
    }

    /// Sets the weights (and, on MeshHTTPRoute, A/B rules and mirroring).
    pub async fn set_routes(&self, canary: &Canary, routes: Routes) -> Result<(), RouterError> {
        let kind = self.kind(canary).await?;
        self.apply(canary, &kind, routes).await
    }

    /// The routes in the cluster; None when the route does not exist.
    pub async fn get_routes(&self, canary: &Canary) -> Result<Option<Routes>, RouterError> {
        let kind = self.kind(canary).await?;
        let current = self.current(canary, &kind).await?;
        Ok(current.map(|(r, _)| self.routes_of(canary, &kind, &r)))
    }

    /// Gives traffic back. Serin's TrafficRoute is deleted (nothing would collect it, and it would
    /// split the apex between Services that are about to go): Kuma then sends the apex's traffic
    /// to the apex's own endpoints. Serin's MeshHTTPRoute sends everything to the target until it is
    /// garbage-collected; a taken-over one gets its saved spec back.
    pub async fn finalize(&self, canary: &Canary) -> Result<(), RouterError> {
        let kind = self.kind(canary).await?;
        let Some((route, ours)) = self.current(canary, &kind).await? else {
            return Ok(());
        };
        match (kind, ours) {
            (Kind::TrafficRoute, true) => {
                let name = canary.apex_name();
                match self
                    .traffic_routes()
                    .delete(&name, &DeleteParams::default())
                    .await
                {
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                    other => other.map_err(RouterError::from),
                }
            }
            (Kind::MeshHttpRoute, true) => {
                self.apply(canary, &Kind::MeshHttpRoute, Routes::CANARY)
                    .await
            }
            (Kind::MeshHttpRoute, false) => {
                super::restore_original(&self.mesh_http_routes(canary), &route).await
            }
            _ => Ok(()),
        }
    }
}

const NOT_SERVED: &str = "this cluster serves neither TrafficRoute nor MeshHTTPRoute (kuma.io/v1alpha1); install Kuma's CRDs";

const OLD_KUMA: &str = "this cluster's Kuma serves TrafficRoute (Kuma 2.14 or older), which splits by weight only; {what} needs Kuma's MeshHTTPRoute, which Serin uses on Kuma releases without TrafficRoute";
