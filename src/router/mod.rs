//! Traffic routers: one file per provider behind a closed enum. Each can create/adopt its objects,
//! set and read the weights, and give the user's routing back on deletion. Routers act; they do
//! not decide (the weights come from `analysis`).

pub mod affinity;
pub mod apisix;
pub mod apisix_objects;
pub mod contour;
pub mod contour_objects;
pub mod gateway_api;
pub mod gateway_api_route;
pub mod gloo;
pub mod gloo_objects;
pub mod istio;
pub mod istio_objects;
pub mod knative;
pub mod kubernetes;
pub mod kuma;
pub mod kuma_objects;
pub mod linkerd;
pub mod lookups;
pub mod nginx;
pub mod nginx_objects;
pub mod skipper;
pub mod skipper_objects;
pub mod smi;
pub mod traefik;
pub mod traefik_objects;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::analysis::Routes;
use crate::api::Canary;
pub use apisix::ApisixRouter;
pub use contour::ContourRouter;
pub use gateway_api::GatewayApiRouter;
pub use gloo::GlooRouter;
pub use istio::IstioRouter;
pub use knative::KnativeRouter;
pub use kubernetes::KubernetesRouter;
pub use kuma::KumaRouter;
pub use lookups::{KindCache, Lookups, RouteApi, RouteCaches, ServedMemo, StartWatch};
pub use nginx::NginxRouter;
pub use skipper::SkipperRouter;
pub use traefik::TraefikRouter;

/// Annotation on an object Serin took over (it existed before the Canary) holding what it was,
/// put back by `finalize`.
pub const ORIGINAL_SPEC: &str = "serin.io/original-spec";

/// Whether this Canary owns the object (by uid): an object it does not own was the user's first
/// and is taken over, never garbage-collected with the Canary.
pub(crate) fn owned_by(meta: &ObjectMeta, canary: &Canary) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| Some(o.uid.as_str()) == canary.metadata.uid.as_deref())
}

/// The baseline's Service, `<apex>-baseline` (`analysis.baseline`): the third backend of the
/// routers that can split three ways (gatewayapi, istio, linkerd), present while it has a share.
pub(crate) fn baseline_backend(canary: &Canary) -> String {
    crate::workload::baseline::baseline_name(&canary.apex_name())
}

/// Annotations that keep Flux from reconciling or pruning a copy of the user's Ingress (it carries
/// the user's labels, Flux's ownership labels among them), as Flagger sets them.
pub const FLUX_ANNOTATIONS: [(&str, &str); 2] = [
    ("kustomize.toolkit.fluxcd.io/reconcile", "disabled"),
    ("helm.toolkit.fluxcd.io/driftDetection", "disabled"),
];

/// kubectl's record of the last applied configuration: never copied to a generated object.
pub(crate) const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The Ingress `spec.ingressRef` names (nginx, skipper), when it names an Ingress.
pub(crate) fn ingress_ref(canary: &Canary) -> Option<&str> {
    canary
        .spec
        .ingress_ref
        .as_ref()
        .filter(|r| r.kind == "Ingress")
        .map(|r| r.name.as_str())
}

/// The `backend.service` objects of an Ingress spec (every rule's paths, then the default
/// backend), so a router can point the ones naming the apex elsewhere.
pub(crate) fn ingress_services_mut(spec: &mut serde_json::Value) -> Vec<&mut serde_json::Value> {
    let mut out = Vec::new();
    let Some(spec) = spec.as_object_mut() else {
        return out;
    };
    let (mut rules, mut default) = (None, None);
    for (k, v) in spec.iter_mut() {
        match k.as_str() {
            "rules" => rules = Some(v),
            "defaultBackend" => default = Some(v),
            _ => {}
        }
    }
    for rule in rules.and_then(|r| r.as_array_mut()).into_iter().flatten() {
        let paths = rule
            .pointer_mut("/http/paths")
            .and_then(|p| p.as_array_mut());
        for path in paths.into_iter().flatten() {
            if let Some(svc) = path.pointer_mut("/backend/service") {
                out.push(svc);
            }
        }
    }
    if let Some(svc) = default.and_then(|d| d.get_mut("service")) {
        out.push(svc);
    }
    out
}

/// What is wrong with the Ingress `spec.ingressRef` names (None: it does not exist): routing
/// through it needs a backend that is the apex Service (with `rules_only`, a rule's path: a
/// default backend cannot be split).
pub(crate) fn ingress_problems(
    canary: &Canary,
    ingress: Option<&serde_json::Value>,
    rules_only: bool,
) -> Vec<crate::api::FieldError> {
    let Some(name) = ingress_ref(canary) else {
        return Vec::new();
    };
    let problem = |message: String| {
        vec![crate::api::FieldError {
            path: "spec.ingressRef".into(),
            message,
        }]
    };
    let Some(ingress) = ingress else {
        let ns = canary.namespace_or_default();
        return problem(format!("Ingress {name} not found in namespace {ns}"));
    };
    let apex = canary.apex_name();
    let mut spec = ingress["spec"].clone();
    if rules_only && let Some(s) = spec.as_object_mut() {
        s.remove("defaultBackend");
    }
    if ingress_services_mut(&mut spec)
        .iter()
        .any(|s| s["name"] == apex.as_str())
    {
        return Vec::new();
    }
    let what = if rules_only { "path" } else { "backend" };
    problem(format!(
        "Ingress {name} has no {what} whose backend is the Service {apex}; point a path of it at {apex}"
    ))
}

fn json_pointer_key(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

/// Saves, once, what an object Serin takes over had (its spec and annotations) in an annotation
/// of its own, for `restore_original`.
pub(crate) async fn save_original(
    api: &RouteApi,
    obj: &serde_json::Value,
) -> Result<(), RouterError> {
    if !obj["metadata"]["annotations"][ORIGINAL_SPEC].is_null() {
        return Ok(());
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let saved =
        serde_json::json!({"spec": obj["spec"], "annotations": obj["metadata"]["annotations"]});
    let patch =
        serde_json::json!({"metadata": {"annotations": {ORIGINAL_SPEC: saved.to_string()}}});
    api.patch(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(patch),
    )
    .await?;
    Ok(())
}

/// Gives a taken-over object the spec and annotations `save_original` kept (nothing without them).
pub(crate) async fn restore_original(
    api: &RouteApi,
    obj: &serde_json::Value,
) -> Result<(), RouterError> {
    let Some(saved) = obj["metadata"]["annotations"][ORIGINAL_SPEC]
        .as_str()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
    else {
        return Ok(());
    };
    let annotations = match &saved["annotations"] {
        serde_json::Value::Object(a) => serde_json::json!(a),
        _ => serde_json::json!({}),
    };
    let ops = serde_json::json!([
        {"op": "replace", "path": "/spec", "value": saved["spec"]},
        {"op": "add", "path": "/metadata/annotations", "value": annotations},
    ]);
    json_patch(api, obj, ops).await
}

/// Removes annotations from an object by key, each guarded by the value it was read with (a 422
/// means it changed again: the next reconcile reads it afresh).
pub(crate) async fn remove_annotations(
    api: &RouteApi,
    obj: &serde_json::Value,
    keys: &[(String, String)],
) -> Result<(), RouterError> {
    let mut ops = Vec::new();
    for (k, v) in keys {
        let path = format!("/metadata/annotations/{}", json_pointer_key(k));
        ops.push(serde_json::json!({"op": "test", "path": path, "value": v}));
        ops.push(serde_json::json!({"op": "remove", "path": path}));
    }
    json_patch(api, obj, serde_json::json!(ops)).await
}

async fn json_patch(
    api: &RouteApi,
    obj: &serde_json::Value,
    ops: serde_json::Value,
) -> Result<(), RouterError> {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let patch: json_patch::Patch =
        serde_json::from_value(ops).map_err(|e| RouterError::Invalid(e.to_string()))?;
    api.patch(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::<()>::Json(patch),
    )
    .await?;
    Ok(())
}

/// Why a router could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// The API server refused or failed.
    #[error("{0}")]
    Kube(#[from] kube::Error),
    /// The provider has no implementation in this build.
    #[error("provider '{0}' is not implemented yet")]
    NotImplemented(String),
    /// The spec or the cluster state makes routing impossible; the text says why.
    #[error("{0}")]
    Invalid(String),
}

/// What a router reads back from the cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteState {
    /// The weights; None when the routing objects do not exist yet.
    pub routes: Option<Routes>,
    /// Whether the routing objects were accepted (Err with the reason); None when unknown.
    pub accepted: Option<Result<(), String>>,
}

/// The router for a Canary's provider (the controller's default when the spec names none).
pub enum Router {
    /// Blue/green by switching the apex Service's selector.
    Kubernetes(KubernetesRouter),
    /// Weights in a Gateway API HTTPRoute (gatewayapi, linkerd).
    GatewayApi(GatewayApiRouter),
    /// Weights in an Istio VirtualService.
    Istio(IstioRouter),
    /// Linkerd: mesh HTTPRoutes, or SMI TrafficSplits on older installations.
    Linkerd(Box<linkerd::LinkerdRouter>),
    /// NGINX: a `-canary` copy of the user's Ingress with ingress-nginx canary annotations.
    Nginx(NginxRouter),
    /// Skipper: a `-canary` copy of the user's Ingress with backend weights.
    Skipper(SkipperRouter),
    /// Contour: weights in an HTTPProxy.
    Contour(ContourRouter),
    /// Traefik: weights (or mirroring) in a TraefikService.
    Traefik(TraefikRouter),
    /// APISIX: a weighted copy of the user's ApisixRoute rule.
    Apisix(ApisixRouter),
    /// Kuma: a TrafficRoute (Kuma <= 2.14) or a MeshHTTPRoute.
    Kuma(KumaRouter),
    /// Gloo: weights in a RouteTable over two Upstreams.
    Gloo(GlooRouter),
    /// Knative: the target Knative Service's spec.traffic between two revisions.
    Knative(KnativeRouter),
}

/// Calls the same method of whichever router this is.
macro_rules! dispatch {
    ($router:expr, $r:ident => $call:expr) => {
        match $router {
            Router::Kubernetes($r) => $call,
            Router::GatewayApi($r) => $call,
            Router::Istio($r) => $call,
            Router::Linkerd($r) => $call,
            Router::Nginx($r) => $call,
            Router::Skipper($r) => $call,
            Router::Contour($r) => $call,
            Router::Traefik($r) => $call,
            Router::Apisix($r) => $call,
            Router::Kuma($r) => $call,
            Router::Gloo($r) => $call,
            Router::Knative($r) => $call,
        }
    };
}

impl Router {
    /// Picks the router for a provider name.
    pub fn for_provider(
        provider: &str,
        client: kube::Client,
        lookups: Lookups,
    ) -> Result<Router, RouterError> {
        match provider {
            "kubernetes" => Ok(Router::Kubernetes(KubernetesRouter::new(client, lookups))),
            "gatewayapi" | "gatewayapi:v1" => Ok(Router::GatewayApi(GatewayApiRouter::new(
                client, lookups, "v1", false,
            ))),
            "gatewayapi:v1beta1" => Ok(Router::GatewayApi(GatewayApiRouter::new(
                client, lookups, "v1beta1", false,
            ))),
            "istio" => Ok(Router::Istio(IstioRouter::new(client, lookups))),
            "linkerd" => Ok(Router::Linkerd(Box::new(linkerd::LinkerdRouter::new(
                client, lookups,
            )))),
            "nginx" => Ok(Router::Nginx(NginxRouter::new(client, lookups))),
            "skipper" => Ok(Router::Skipper(SkipperRouter::new(client, lookups))),
            "contour" => Ok(Router::Contour(ContourRouter::new(client, lookups))),
            "traefik" => Ok(Router::Traefik(TraefikRouter::new(client, lookups))),
            "apisix" => Ok(Router::Apisix(ApisixRouter::new(client, lookups))),
            "kuma" => Ok(Router::Kuma(KumaRouter::new(client, lookups))),
            "gloo" => Ok(Router::Gloo(GlooRouter::new(client, lookups))),
            "knative" => Ok(Router::Knative(KnativeRouter::new(client, lookups))),
            other => Err(RouterError::NotImplemented(other.to_string())),
        }
    }

    /// Creates or adopts the routing objects; a new apex points at the primary.
    pub async fn reconcile(&self, canary: &Canary) -> Result<(), RouterError> {
        dispatch!(self, r => r.reconcile(canary).await)
    }

    /// Problems of the spec only the cluster can reveal (e.g. an adopted route without our
    /// backends), reported as validation errors so nothing is touched.
    pub async fn problems(
        &self,
        canary: &Canary,
    ) -> Result<Vec<crate::api::FieldError>, RouterError> {
        match self {
            Router::Kubernetes(_) => Ok(Vec::new()),
            Router::Istio(r) => r.problems(canary).await,
            Router::GatewayApi(r) => r.problems(canary).await,
            Router::Linkerd(r) => r.problems(canary).await,
            Router::Nginx(r) => r.problems(canary).await,
            Router::Skipper(r) => r.problems(canary).await,
            Router::Contour(r) => r.problems(canary).await,
            Router::Traefik(r) => r.problems(canary).await,
            Router::Apisix(r) => r.problems(canary).await,
            Router::Kuma(r) => r.problems(canary).await,
            Router::Gloo(r) => r.problems(canary).await,
            Router::Knative(r) => r.problems(canary).await,
        }
    }

    /// Sets where traffic goes.
    pub async fn set_routes(&self, canary: &Canary, routes: Routes) -> Result<(), RouterError> {
        dispatch!(self, r => r.set_routes(canary, routes).await)
    }

    /// Reads where traffic goes and whether the gateway or mesh accepted the routing objects
    /// (None when the router has no such status).
    pub async fn get_state(&self, canary: &Canary) -> Result<RouteState, RouterError> {
        match self {
            Router::GatewayApi(r) => r.get_state(canary).await,
            Router::Linkerd(r) => r.get_state(canary).await,
            _ => Ok(RouteState {
                routes: self.get_routes(canary).await?,
                accepted: None,
            }),
        }
    }

    /// Reads where traffic goes; None when the routing objects do not exist yet.
    pub async fn get_routes(&self, canary: &Canary) -> Result<Option<Routes>, RouterError> {
        dispatch!(self, r => r.get_routes(canary).await)
    }

    /// Gives all traffic back to the target and removes generated routing (deletion).
    pub async fn finalize(&self, canary: &Canary) -> Result<(), RouterError> {
        dispatch!(self, r => r.finalize(canary).await)
    }
}
