//! SMI TrafficSplit (`split.smi-spec.io/v1alpha1`, as Flagger's linkerd router writes it: weights
//! as quantity strings) for Linkerd installations with the linkerd-smi extension, which predate
//! Gateway API routes. Weighted splits only: no request matching, no mirroring.

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};

use super::gateway_api_route::backends;
use super::kubernetes::owner;
use super::{KubernetesRouter, Lookups, RouteApi, RouterError};
use crate::analysis::Routes;
use crate::api::{Canary, FIELD_MANAGER, FieldError};

/// SMI TrafficSplits (Linkerd without the Gateway API); `list`, limit 1, tells "not installed" apart.
pub const RBAC: &[crate::rbac::Rule] = &[crate::rbac::Rule {
    group: "split.smi-spec.io",
    resources: &["trafficsplits"],
    verbs: &["get", "list", "watch", "create", "patch"],
    needed: crate::rbac::Needed::Router("smi"),
    why: "Linkerd without the Gateway API: SMI TrafficSplit weights",
}];

/// Routes by TrafficSplit weights.
pub struct SmiRouter {
    client: kube::Client,
    services: KubernetesRouter,
}

/// The TrafficSplit for these routes.
pub fn traffic_split(canary: &Canary, routes: Routes, owner: Value) -> Value {
    let (primary, canary_svc) = backends(canary);
    let mut split = json!({
        "apiVersion": "split.smi-spec.io/v1alpha1", "kind": "TrafficSplit",
        "metadata": {"name": canary.apex_name(), "ownerReferences": [owner]},
        "spec": {"service": canary.apex_name(), "backends": [
            {"service": primary, "weight": routes.primary.to_string()},
            {"service": canary_svc, "weight": routes.canary.to_string()}]}
    });
    if routes.baseline > 0 {
        // The baseline (analysis.baseline), only while it has a share.
        let b = json!({"service": super::baseline_backend(canary), "weight": routes.baseline.to_string()});
        if let Some(backends) = split["spec"]["backends"].as_array_mut() {
            backends.push(b);
        }
    }
    split
}

/// The weights of a TrafficSplit (strings or numbers).
pub fn routes_of(canary: &Canary, split: &Value) -> Option<Routes> {
    let (primary, canary_svc) = backends(canary);
    let weight = |name: &str| {
        let b = split["spec"]["backends"]
            .as_array()?
            .iter()
            .find(|b| b["service"] == name)?;
        match &b["weight"] {
            Value::String(s) => s.trim_end_matches('m').parse::<i32>().ok(),
            v => v.as_f64().map(|f| f as i32),
        }
    };
    Some(Routes {
        baseline: weight(&super::baseline_backend(canary)).unwrap_or(0),
        primary: weight(&primary)?,
        canary: weight(&canary_svc)?,
        mirror: false,
        ab_match: false,
    })
}

impl SmiRouter {
    /// A router on this client.
    pub fn new(client: kube::Client, lookups: Lookups) -> SmiRouter {
        SmiRouter {
            services: KubernetesRouter::new(client.clone(), lookups),
            client,
        }
    }

    pub(crate) fn api(&self, canary: &Canary) -> RouteApi {
        let gvk = GroupVersionKind::gvk("split.smi-spec.io", "v1alpha1", "TrafficSplit");
        let ar = ApiResource::from_gvk_with_plural(&gvk, "trafficsplits");
        let ns = canary.namespace_or_default();
        (self.services.lookups()).route_api(&self.client, &ar, Some(&ns))
    }

    /// What a TrafficSplit cannot do.
    pub fn problems(canary: &Canary) -> Vec<FieldError> {
        let a = &canary.spec.analysis;
        let mut out = Vec::new();
        if a.r#match.as_ref().is_some_and(|m| !m.is_empty()) {
            out.push(FieldError {
                path: "spec.analysis.match".into(),
                message:
                    "an SMI TrafficSplit cannot route by request conditions; use Gateway API routes"
                        .into(),
            });
        }
        if a.mirror == Some(true) {
            out.push(FieldError {
                path: "spec.analysis.mirror".into(),
                message: "an SMI TrafficSplit cannot mirror traffic; use Gateway API routes".into(),
            });
        }
        out
    }

    /// Creates the Services and the TrafficSplit (keeping its weights).
    pub async fn reconcile(&self, canary: &Canary) -> Result<(), RouterError> {
        self.services.reconcile(canary).await?;
        let routes = self.get_routes(canary).await?.unwrap_or(Routes::PRIMARY);
        self.set_routes(canary, routes).await
    }

    /// Sets the weights.
    pub async fn set_routes(&self, canary: &Canary, routes: Routes) -> Result<(), RouterError> {
        let obj = traffic_split(canary, routes, owner(canary));
        let data: DynamicObject =
            serde_json::from_value(obj).map_err(|e| RouterError::Invalid(e.to_string()))?;
        self.api(canary)
            .patch(
                &canary.apex_name(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(data),
            )
            .await?;
        Ok(())
    }

    /// The weights in the cluster.
    pub async fn get_routes(&self, canary: &Canary) -> Result<Option<Routes>, RouterError> {
        let split = self.api(canary).get_opt(&canary.apex_name()).await?;
        Ok(split.and_then(|s| routes_of(canary, &serde_json::to_value(s).unwrap_or_default())))
    }

    /// Sends everything to the target (behind the canary Service).
    pub async fn finalize(&self, canary: &Canary) -> Result<(), RouterError> {
        self.set_routes(canary, Routes::CANARY).await
    }
}
