//! The `gloo` provider: the three Services of the kubernetes router (the apex stays on the
//! primary), the primary and canary Upstreams and a RouteTable `<apex>` carrying the weights
//! (`gloo_objects`), each applied as a whole by server-side apply; the user's VirtualService
//! delegates to the RouteTable. A RouteTable the user already had under the apex name is taken
//! over: its spec and annotations are saved in an annotation first and put back by `finalize`,
//! and it gets no owner reference. Imports only `api`, the rule type, `analysis::Routes` and the
//! router seam (`mod.rs`, the kubernetes router).

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::Value;

use super::gloo_objects::{route_table, routes_of, upstream};
use super::kubernetes::owner;
use super::{KubernetesRouter, Lookups, RouteApi, RouterError};
use crate::analysis::Routes;
use crate::api::{Canary, FIELD_MANAGER, FieldError};

/// Gloo: the RouteTable and the Upstreams are read, applied and patched (`list`, limit 1, tells
/// "Gloo is not installed" apart); the `spec.upstreamRef` template is read with the same rule.
pub const RBAC: &[crate::rbac::Rule] = &[
    crate::rbac::Rule {
        group: "gateway.solo.io",
        resources: &["routetables"],
        verbs: &["get", "list", "watch", "create", "patch"],
        needed: crate::rbac::Needed::Router("gloo"),
        why: "Gloo: RouteTable weights per step",
    },
    crate::rbac::Rule {
        group: "gloo.solo.io",
        resources: &["upstreams"],
        verbs: &["get", "list", "watch", "create", "patch"],
        needed: crate::rbac::Needed::Router("gloo"),
        why: "Gloo: the primary and canary Upstreams, read from the spec.upstreamRef template",
    },
];

/// Routes by RouteTable weights over two Upstreams.
pub struct GlooRouter {
    client: kube::Client,
    services: KubernetesRouter,
}

fn resource(group: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1", kind), plural)
}

impl GlooRouter {
    /// A router on this client.
    pub fn new(client: kube::Client, lookups: Lookups) -> GlooRouter {
        GlooRouter {
            services: KubernetesRouter::new(client.clone(), lookups),
            client,
        }
    }

    fn tables(&self, canary: &Canary) -> RouteApi {
        let ar = resource("gateway.solo.io", "RouteTable", "routetables");
        let ns = canary.namespace_or_default();
        (self.services.lookups()).route_api(&self.client, &ar, Some(&ns))
    }

    fn upstreams(&self, ns: &str) -> RouteApi {
        let ar = resource("gloo.solo.io", "Upstream", "upstreams");
        (self.services.lookups()).route_api(&self.client, &ar, Some(ns))
    }

    /// The spec of the `spec.upstreamRef` Upstream: Ok(None) without a reference, Err(path and
    /// reason) when it names none that exists.
    async fn template(
        &self,
        canary: &Canary,
    ) -> Result<Result<Option<Value>, String>, RouterError> {
        let Some(r) = &canary.spec.upstream_ref else {
            return Ok(Ok(None));
        };
        let ns = r
            .namespace
            .clone()
            .unwrap_or_else(|| canary.namespace_or_default());
        Ok(match self.upstreams(&ns).get_opt(&r.name).await? {
            Some(u) => Ok(Some(u.data["spec"].clone())),
            None => Err(format!("Upstream {ns}/{} not found", r.name)),
        })
    }

    /// The RouteTable and whether this Canary owns it (else it was taken over).
    async fn current(&self, canary: &Canary) -> Result<Option<(Value, bool)>, RouterError> {
        let table = self.tables(canary).get_opt(&canary.apex_name()).await?;
        Ok(table.map(|t| {
            let ours = super::owned_by(&t.metadata, canary);
            (serde_json::to_value(t).unwrap_or_default(), ours)
        }))
    }

    async fn apply_to(&self, api: &RouteApi, obj: Value) -> Result<(), RouterError> {
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        let data: DynamicObject = serde_json::from_value(obj)
            .map_err(|e| RouterError::Invalid(format!("{kind} {name}: {e}")))?;
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(data),
        )
        .await?;
        Ok(())
    }

    async fn apply(&self, canary: &Canary, routes: Routes, owned: bool) -> Result<(), RouterError> {
        let obj = route_table(canary, routes, owned.then(|| owner(canary)));
        self.apply_to(&self.tables(canary), obj).await
    }

    /// A cluster without Gloo's CRDs cannot take its objects, and a template Upstream that does
    /// not exist cannot be copied: say so before acting.
    pub async fn problems(&self, canary: &Canary) -> Result<Vec<FieldError>, RouterError> {
        let ns = canary.namespace_or_default();
        let mut missing = Vec::new();
        if !self.tables(canary).served().await? {
            missing.push("RouteTable (gateway.solo.io/v1)");
        }
        if !self.upstreams(&ns).served().await? {
            missing.push("Upstream (gloo.solo.io/v1)");
        }
        if !missing.is_empty() {
            return Ok(vec![FieldError {
                path: "spec.provider".into(),
                message: format!(
                    "this cluster does not serve {}; install Gloo's CRDs",
                    missing.join(" or ")
                ),
            }]);
        }
        Ok(match self.template(canary).await? {
            Err(message) => vec![FieldError {
                path: "spec.upstreamRef".into(),
                message,
            }],
            Ok(_) => Vec::new(),
        })
    }

    /// Applies both Upstreams with the template's current settings (a deleted one comes back).
    async fn apply_upstreams(&self, canary: &Canary) -> Result<(), RouterError> {
        let template = self
            .template(canary)
            .await?
            .map_err(|e| RouterError::Invalid(format!("spec.upstreamRef: {e}")))?;
        let ups = self.upstreams(&canary.namespace_or_default());
        for canary_side in [false, true] {
            let obj = upstream(canary, canary_side, template.as_ref(), owner(canary));
            self.apply_to(&ups, obj).await?;
        }
        Ok(())
    }

    /// Creates the Services and the Upstreams, then the RouteTable (keeping its weights), saving
    /// the spec of a RouteTable the user had.
    pub async fn reconcile(&self, canary: &Canary) -> Result<(), RouterError> {
        self.services.reconcile(canary).await?;
        self.apply_upstreams(canary).await?;
        let current = self.current(canary).await?;
        if let Some((table, false)) = &current {
            super::save_original(&self.tables(canary), table).await?;
        }
        let routes = match &current {
            Some((table, true)) => routes_of(canary, table),
            _ => Routes::PRIMARY,
        };
        // A table without our weighted route starts over on the primary.
        let routes = if routes.primary + routes.canary == 100 {
            routes
        } else {
            Routes::PRIMARY
        };
        let owned = current.as_ref().is_none_or(|(_, ours)| *ours);
        self.apply(canary, routes, owned).await
    }

    /// Sets the weights, A/B routes and shadowing. The Upstreams are applied first, so that the
    /// template's settings follow it at each change of the routes (as Flagger keeps
    /// `loadBalancerConfig` in step) and a route never names an Upstream that is gone.
    pub async fn set_routes(&self, canary: &Canary, routes: Routes) -> Result<(), RouterError> {
        self.apply_upstreams(canary).await?;
        let owned = self.current(canary).await?.is_none_or(|(_, ours)| ours);
        self.apply(canary, routes, owned).await
    }

    /// The routes in the cluster; None when the RouteTable does not exist.
    pub async fn get_routes(&self, canary: &Canary) -> Result<Option<Routes>, RouterError> {
        Ok(self
            .current(canary)
            .await?
            .map(|(t, _)| routes_of(canary, &t)))
    }

    /// Gives traffic back: Serin's RouteTable sends everything to the target (behind the canary
    /// Service and Upstream) until it is garbage-collected; a taken-over one gets its saved spec
    /// back.
    pub async fn finalize(&self, canary: &Canary) -> Result<(), RouterError> {
        let Some((table, ours)) = self.current(canary).await? else {
            return Ok(());
        };
        if ours {
            return self.apply(canary, Routes::CANARY, true).await;
        }
        super::restore_original(&self.tables(canary), &table).await
    }
}
