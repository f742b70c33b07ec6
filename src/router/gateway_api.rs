//! The `gatewayapi` provider (and `linkerd`, through mesh HTTPRoutes): the three Services of the
//! kubernetes router (the apex stays on the primary) plus an HTTPRoute carrying the weights.
//! Serin's own route is server-side applied as a whole. In route-preserving mode
//! (`spec.routeRef` to the user's HTTPRoute) only the weight fields of the backendRefs naming our
//! Services change, by a JSON patch guarded by `test` operations: SSA would conflict with the
//! route's owner on the atomic `rules` list and, forced, replace the user's rules (transcript 20).
//! A failed `test` (422) means the user changed the route: re-read and try again.

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};

use super::gateway_api_route::{backends, build, route_kind, routes_of};
use super::kubernetes::owner;
use super::{KubernetesRouter, Lookups, RouteApi, RouterError};
use crate::analysis::Routes;
use crate::api::{Canary, FIELD_MANAGER, FieldError};

/// Gateway API routes (also Linkerd's GAMMA routes): read, apply, patch weights; `list` (limit 1)
/// tells "the CRD is not installed" apart from other errors; `list` and `watch` fill the route
/// cache (no GET per tick).
pub const RBAC: &[crate::rbac::Rule] = &[crate::rbac::Rule {
    group: "gateway.networking.k8s.io",
    resources: &["httproutes", "grpcroutes"],
    verbs: &["get", "list", "watch", "create", "patch"],
    needed: crate::rbac::Needed::Router("gatewayApi"),
    why: "Gateway API (and Linkerd GAMMA) routes: weights per step",
}];

/// Annotation on an adopted route holding the weights it had, restored on deletion.
pub const ORIGINAL_WEIGHTS: &str = "serin.io/original-weights";

/// Routes by HTTPRoute weights.
pub struct GatewayApiRouter {
    client: kube::Client,
    services: KubernetesRouter,
    version: &'static str,
    mesh: bool,
}

impl GatewayApiRouter {
    /// A router writing HTTPRoutes of `version` (v1 or v1beta1); `mesh` attaches them to the
    /// apex Service (Linkerd) instead of `service.gatewayRefs`.
    pub fn new(client: kube::Client, lookups: Lookups, version: &'static str, mesh: bool) -> Self {
        GatewayApiRouter {
            services: KubernetesRouter::new(client.clone(), lookups),
            client,
            version,
            mesh,
        }
    }

    /// The route kind, read through its watch cache (see `lookups::RouteCaches`).
    fn api(&self, canary: &Canary) -> RouteApi {
        let (kind, plural) = route_kind(canary);
        // GRPCRoute is served as v1 only.
        let version = if kind == "GRPCRoute" {
            "v1"
        } else {
            self.version
        };
        let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", version, kind);
        let ar = ApiResource::from_gvk_with_plural(&gvk, plural);
        let ns = canary.namespace_or_default();
        (self.services.lookups()).route_api(&self.client, &ar, Some(&ns))
    }

    /// The user's route in route-preserving mode.
    fn adopted(canary: &Canary) -> Option<&str> {
        canary
            .spec
            .route_ref
            .as_ref()
            .filter(|r| r.kind == "HTTPRoute")
            .map(|r| r.name.as_str())
    }

    fn route_name(canary: &Canary) -> String {
        Self::adopted(canary)
            .map(String::from)
            .unwrap_or_else(|| canary.apex_name())
    }

    async fn read(&self, canary: &Canary) -> Result<Option<Value>, RouterError> {
        let route = self.api(canary).get_opt(&Self::route_name(canary)).await?;
        Ok(route.map(|r| serde_json::to_value(r).unwrap_or_default()))
    }

    /// Creates the Services, then Serin's route (keeping the weights it has) or checks and
    /// remembers the user's route.
    pub async fn reconcile(&self, canary: &Canary) -> Result<(), RouterError> {
        self.services.reconcile(canary).await?;
        let current = self.read(canary).await?;
        if let Some(name) = Self::adopted(canary) {
            let route = current.ok_or_else(|| {
                RouterError::Invalid(format!("spec.routeRef: HTTPRoute {name} not found"))
            })?;
            let weights = weight_slots(canary, &route);
            if weights.is_empty() {
                let (p, c) = backends(canary);
                return Err(RouterError::Invalid(format!(
                    "spec.routeRef: HTTPRoute {name} has no rule with backendRefs to both {p} and {c}"
                )));
            }
            if route["metadata"]["annotations"][ORIGINAL_WEIGHTS].is_null() {
                // First adoption: remember the user's weights, then send everything to the
                // primary as a route Serin creates would.
                let saved = serde_json::to_string(&weights).unwrap_or_default();
                let patch = json!({"metadata": {"annotations": {ORIGINAL_WEIGHTS: saved}}});
                self.api(canary)
                    .patch(name, &PatchParams::default(), &Patch::Merge(patch))
                    .await?;
                self.set_routes(canary, Routes::PRIMARY).await?;
            }
            return Ok(());
        }
        let routes = current
            .as_ref()
            .and_then(|r| routes_of(canary, r))
            .unwrap_or(Routes::PRIMARY);
        self.apply(canary, routes).await
    }

    async fn apply(&self, canary: &Canary, routes: Routes) -> Result<(), RouterError> {
        let version = if route_kind(canary).0 == "GRPCRoute" {
            "v1"
        } else {
            self.version
        };
        let api_version = format!("gateway.networking.k8s.io/{version}");
        let obj = build(canary, routes, &api_version, owner(canary), self.mesh);
        let name = canary.apex_name();
        let data: DynamicObject = serde_json::from_value(obj)
            .map_err(|e| RouterError::Invalid(format!("HTTPRoute {name}: {e}")))?;
        self.api(canary)
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(data),
            )
            .await?;
        Ok(())
    }

    /// What makes the spec unusable with this router (checked before deciding): in
    /// route-preserving mode, a missing route or one without a rule naming both our Services.
    pub async fn problems(&self, canary: &Canary) -> Result<Vec<FieldError>, RouterError> {
        if !self.served(canary).await? {
            let (kind, _) = route_kind(canary);
            return Ok(vec![FieldError {
                path: "spec.provider".into(),
                message: format!(
                    "this cluster does not serve {kind} (gateway.networking.k8s.io/{}); install the Gateway API CRDs",
                    self.version
                ),
            }]);
        }
        let Some(name) = Self::adopted(canary) else {
            return Ok(Vec::new());
        };
        let problem = |message: String| FieldError {
            path: "spec.routeRef".into(),
            message,
        };
        let Some(route) = self.read(canary).await? else {
            return Ok(vec![problem(format!("HTTPRoute {name} not found"))]);
        };
        if weight_slots(canary, &route).is_empty() {
            let (p, c) = backends(canary);
            return Ok(vec![problem(format!(
                "HTTPRoute {name} has no rule with backendRefs to both {p} and {c}"
            ))]);
        }
        Ok(Vec::new())
    }

    /// Whether the API server serves the route kind at all (a missing CRD answers 404 to a list,
    /// where a missing route only answers 404 to a get).
    pub(crate) async fn served(&self, canary: &Canary) -> Result<bool, RouterError> {
        Ok(self.api(canary).served().await?)
    }

    /// Sets the weights (and A/B rules and mirroring, on Serin's own route).
    pub async fn set_routes(&self, canary: &Canary, routes: Routes) -> Result<(), RouterError> {
        let Some(name) = Self::adopted(canary) else {
            return self.apply(canary, routes).await;
        };
        for _ in 0..3 {
            let route = self.read(canary).await?.ok_or_else(|| {
                RouterError::Invalid(format!("spec.routeRef: HTTPRoute {name} not found"))
            })?;
            let slots = weight_slots(canary, &route);
            let targets: Vec<Slot> = slots
                .iter()
                .map(|s| Slot {
                    primary_weight: routes.primary,
                    canary_weight: routes.canary,
                    ..s.clone()
                })
                .collect();
            match self.patch_weights(name, canary, &targets).await {
                Err(RouterError::Kube(kube::Error::Api(s))) if s.code == 422 => continue,
                other => return other,
            }
        }
        Err(RouterError::Invalid(format!(
            "HTTPRoute {name} kept changing while its weights were set; will retry"
        )))
    }

    async fn patch_weights(
        &self,
        name: &str,
        canary: &Canary,
        slots: &[Slot],
    ) -> Result<(), RouterError> {
        let (p, c) = backends(canary);
        let mut ops = Vec::new();
        for s in slots {
            let base = format!("/spec/rules/{}/backendRefs", s.rule);
            ops.push(
                json!({"op": "test", "path": format!("{base}/{}/name", s.primary), "value": p}),
            );
            ops.push(
                json!({"op": "test", "path": format!("{base}/{}/name", s.canary), "value": c}),
            );
            ops.push(json!({"op": "add", "path": format!("{base}/{}/weight", s.primary), "value": s.primary_weight}));
            ops.push(json!({"op": "add", "path": format!("{base}/{}/weight", s.canary), "value": s.canary_weight}));
        }
        let patch: json_patch::Patch =
            serde_json::from_value(json!(ops)).map_err(|e| RouterError::Invalid(e.to_string()))?;
        self.api(canary)
            .patch(
                name,
                &PatchParams::apply(FIELD_MANAGER),
                &Patch::<()>::Json(patch),
            )
            .await?;
        Ok(())
    }

    /// The weights in the cluster.
    pub async fn get_routes(&self, canary: &Canary) -> Result<Option<Routes>, RouterError> {
        Ok(self.read(canary).await?.and_then(|r| routes_of(canary, &r)))
    }

    /// The weights and what the route's parents said of it.
    pub async fn get_state(&self, canary: &Canary) -> Result<super::RouteState, RouterError> {
        let route = self.read(canary).await?;
        Ok(super::RouteState {
            routes: route.as_ref().and_then(|r| routes_of(canary, r)),
            accepted: route.as_ref().and_then(accepted),
        })
    }

    /// Gives traffic back: Serin's route sends everything to the target (its own pods, behind
    /// the canary Service); an adopted route gets its original weights back.
    pub async fn finalize(&self, canary: &Canary) -> Result<(), RouterError> {
        let Some(name) = Self::adopted(canary) else {
            return self.apply(canary, Routes::CANARY).await;
        };
        let Some(route) = self.read(canary).await? else {
            return Ok(());
        };
        let saved: Vec<Slot> = route["metadata"]["annotations"][ORIGINAL_WEIGHTS]
            .as_str()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        if !saved.is_empty() {
            self.patch_weights(name, canary, &saved).await?;
        }
        let patch = json!({"metadata": {"annotations": {ORIGINAL_WEIGHTS: null}}});
        self.api(canary)
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await?;
        Ok(())
    }
}

/// What the route's parents (Gateways, or the mesh) say: Err naming each parent that did not
/// accept it and why; Ok when all did; None before any parent wrote status.
pub fn accepted(route: &Value) -> Option<Result<(), String>> {
    let parents = route["status"]["parents"].as_array()?;
    if parents.is_empty() {
        return None;
    }
    let name = route["metadata"]["name"].as_str().unwrap_or_default();
    let refused: Vec<String> = parents
        .iter()
        .filter_map(|p| {
            let c = p["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Accepted")?;
            (c["status"] == "False").then(|| {
                let parent = &p["parentRef"];
                let who = match parent["namespace"].as_str() {
                    Some(ns) => format!("{ns}/{}", parent["name"].as_str().unwrap_or_default()),
                    None => parent["name"].as_str().unwrap_or_default().to_string(),
                };
                format!(
                    "{who}: {}: {}",
                    c["reason"].as_str().unwrap_or_default(),
                    c["message"].as_str().unwrap_or_default()
                )
            })
        })
        .collect();
    Some(if refused.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "HTTPRoute {name} not accepted by {}",
            refused.join("; ")
        ))
    })
}

/// Where our two backendRefs sit in a rule, and their weights.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Slot {
    /// Rule index.
    pub rule: usize,
    /// Index of the primary backendRef.
    pub primary: usize,
    /// Index of the canary backendRef.
    pub canary: usize,
    /// Weight of the primary backendRef.
    pub primary_weight: i32,
    /// Weight of the canary backendRef.
    pub canary_weight: i32,
}

/// Every rule of a route with backendRefs to both of our Services.
pub fn weight_slots(canary: &Canary, route: &Value) -> Vec<Slot> {
    let (p, c) = backends(canary);
    let mut out = Vec::new();
    for (i, rule) in route["spec"]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let refs = rule["backendRefs"].as_array().cloned().unwrap_or_default();
        let pos = |n: &str| refs.iter().position(|b| b["name"] == n);
        let w = |j: usize| refs[j]["weight"].as_i64().unwrap_or(1) as i32;
        if let (Some(pi), Some(ci)) = (pos(&p), pos(&c)) {
            out.push(Slot {
                rule: i,
                primary: pi,
                canary: ci,
                primary_weight: w(pi),
                canary_weight: w(ci),
            });
        }
    }
    out
}
