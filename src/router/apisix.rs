//! The `apisix` provider: the three Services of the kubernetes router (the apex stays on the
//! primary) and an ApisixRoute `<routeRef.name>-<apex>-canary` that copies the rule of the
//! user's ApisixRoute (`spec.routeRef`) sending to the apex, with the weights, A/B rules or
//! mirroring (`apisix_objects`), applied as a whole by server-side apply. The user's ApisixRoute is
//! only read: at priority 10000 Serin's copy answers the same requests ahead of it, so deleting the
//! copy (garbage collection with the Canary) gives the user's routing back untouched. Imports only
//! `api`, the rule type and the router seam (`mod.rs`, the kubernetes router).

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::Value;

use super::apisix_objects::{apisix_route, route_name, routes_of, source_rule};
use super::kubernetes::owner;
use super::{KubernetesRouter, Lookups, RouteApi, RouterError};
use crate::analysis::Routes;
use crate::api::{Canary, FIELD_MANAGER, FieldError};

/// APISIX: the user's ApisixRoute is read, Serin's copy applied and patched (`list`, limit 1,
/// tells "APISIX is not installed" apart).
pub const RBAC: &[crate::rbac::Rule] = &[crate::rbac::Rule {
    group: "apisix.apache.org",
    resources: &["apisixroutes"],
    verbs: &["get", "list", "watch", "create", "patch"],
    needed: crate::rbac::Needed::Router("apisix"),
    why: "APISIX: reads the routeRef ApisixRoute, writes its weighted -canary copy per step",
}];

/// Routes by the backend weights of a copy of the user's ApisixRoute rule.
pub struct ApisixRouter {
    client: kube::Client,
    services: KubernetesRouter,
}

impl ApisixRouter {
    /// A router on this client.
    pub fn new(client: kube::Client, lookups: Lookups) -> ApisixRouter {
        ApisixRouter {
            services: KubernetesRouter::new(client.clone(), lookups),
            client,
        }
    }

    fn api(&self, canary: &Canary) -> RouteApi {
        let gvk = GroupVersionKind::gvk("apisix.apache.org", "v2", "ApisixRoute");
        let ar = ApiResource::from_gvk_with_plural(&gvk, "apisixroutes");
        let ns = canary.namespace_or_default();
        (self.services.lookups()).route_api(&self.client, &ar, Some(&ns))
    }

    async fn get(&self, canary: &Canary, name: &str) -> Result<Option<Value>, RouterError> {
        let route = self.api(canary).get_opt(name).await?;
        Ok(route.map(|r| serde_json::to_value(r).unwrap_or_default()))
    }

    /// The user's rule Serin copies (Err: none, and why).
    async fn source(&self, canary: &Canary) -> Result<Value, RouterError> {
        let name = canary
            .spec
            .route_ref
            .as_ref()
            .map_or("", |r| r.name.as_str());
        let Some(route) = self.get(canary, name).await? else {
            let ns = canary.namespace_or_default();
            return Err(RouterError::Invalid(format!(
                "ApisixRoute {name} not found in namespace {ns}"
            )));
        };
        source_rule(canary, &route)
            .cloned()
            .map_err(RouterError::Invalid)
    }

    async fn apply(&self, canary: &Canary, routes: Routes) -> Result<(), RouterError> {
        let source = self.source(canary).await?;
        let obj = apisix_route(canary, &source, routes, Some(owner(canary)));
        let name = route_name(canary);
        let data: DynamicObject = serde_json::from_value(obj)
            .map_err(|e| RouterError::Invalid(format!("ApisixRoute {name}: {e}")))?;
        self.api(canary)
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(data),
            )
            .await?;
        Ok(())
    }

    /// A cluster without APISIX's CRD, or a routeRef without one rule to the apex, cannot be
    /// routed: say so before acting.
    pub async fn problems(&self, canary: &Canary) -> Result<Vec<FieldError>, RouterError> {
        if !self.api(canary).served().await? {
            return Ok(vec![FieldError {
                path: "spec.provider".into(),
                message: "this cluster does not serve ApisixRoute (apisix.apache.org/v2); install the APISIX ingress controller's CRDs".into(),
            }]);
        }
        match self.source(canary).await {
            Ok(_) => Ok(Vec::new()),
            Err(RouterError::Invalid(message)) => Ok(vec![FieldError {
                path: "spec.routeRef".into(),
                message,
            }]),
            Err(e) => Err(e),
        }
    }

    /// Creates the Services and Serin's ApisixRoute (keeping its weights).
    pub async fn reconcile(&self, canary: &Canary) -> Result<(), RouterError> {
        self.services.reconcile(canary).await?;
        let routes = match self.get(canary, &route_name(canary)).await? {
            Some(route) => routes_of(canary, &route),
            None => Routes::PRIMARY,
        };
        // A copy without our weights starts over on the primary.
        let routes = if routes.primary + routes.canary == 100 {
            routes
        } else {
            Routes::PRIMARY
        };
        self.apply(canary, routes).await
    }

    /// Sets the weights, A/B rules and mirroring.
    pub async fn set_routes(&self, canary: &Canary, routes: Routes) -> Result<(), RouterError> {
        self.apply(canary, routes).await
    }

    /// The routes in the cluster; None when Serin's ApisixRoute does not exist.
    pub async fn get_routes(&self, canary: &Canary) -> Result<Option<Routes>, RouterError> {
        let route = self.get(canary, &route_name(canary)).await?;
        Ok(route.map(|r| routes_of(canary, &r)))
    }

    /// Gives traffic back: Serin's ApisixRoute sends everything to the target (behind the canary
    /// Service) until it is garbage-collected and the user's rule answers again.
    pub async fn finalize(&self, canary: &Canary) -> Result<(), RouterError> {
        if self.get(canary, &route_name(canary)).await?.is_none() {
            return Ok(());
        }
        match self.apply(canary, Routes::CANARY).await {
            // The user's route or rule is gone: nothing to copy, and the copy goes with the
            // Canary; a finalizer must not wait on it.
            Err(RouterError::Invalid(_)) => Ok(()),
            other => other,
        }
    }
}
