//! The `nginx` provider (ingress-nginx): the three Services of the kubernetes router and, next to
//! the user's Ingress (`spec.ingressRef`, only ever read: it keeps pointing at the apex), Serin's
//! `<ingressRef>-canary` Ingress carrying the canary annotations (`nginx_objects`), applied as a
//! whole by server-side apply. Canary keys someone else added to it are removed by key after
//! each apply (server-side apply removes only the keys Serin stopped applying). A canary Ingress
//! that existed before the Canary is taken over: what it had is saved in an annotation and put
//! back by `finalize`, and it gets no owner reference. Imports only `api`, the rule type and the
//! router seam (`mod.rs`, the kubernetes router for the Services).

use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::Value;

use super::kubernetes::owner;
use super::nginx_objects::{DEFAULT_PREFIX, canary_ingress, canary_ingress_name, stale_keys};
use super::{KubernetesRouter, Lookups, RouteApi, RouterError};
use crate::analysis::Routes;
use crate::api::{Canary, FIELD_MANAGER, FieldError};

/// NGINX: the user's Ingress is read; the canary Ingress is applied and, to remove keys by key
/// or give a taken-over one back, patched.
pub const RBAC: &[crate::rbac::Rule] = &[crate::rbac::Rule {
    group: "networking.k8s.io",
    resources: &["ingresses"],
    verbs: &["get", "list", "watch", "create", "patch"],
    needed: crate::rbac::Needed::Router("nginx"),
    why: "NGINX: read the Ingress spec.ingressRef names; apply its -canary copy with the canary annotations",
}];

/// Routes by ingress-nginx canary annotations.
pub struct NginxRouter {
    client: kube::Client,
    services: KubernetesRouter,
    prefix: String,
}

fn to_value(i: DynamicObject) -> Value {
    serde_json::to_value(i).unwrap_or_default()
}

impl NginxRouter {
    /// A router on this client, writing annotations under the lookups' prefix.
    pub fn new(client: kube::Client, lookups: Lookups) -> NginxRouter {
        let prefix = match lookups.ingress_annotations_prefix.trim() {
            "" => DEFAULT_PREFIX.to_string(),
            p => p.trim_end_matches('/').to_string(),
        };
        NginxRouter {
            services: KubernetesRouter::new(client.clone(), lookups),
            client,
            prefix,
        }
    }

    /// Ingresses, read through their watch cache (see `lookups::RouteCaches`).
    fn api(&self, canary: &Canary) -> RouteApi {
        let ar = ApiResource::erase::<k8s_openapi::api::networking::v1::Ingress>(&());
        let ns = canary.namespace_or_default();
        (self.services.lookups()).route_api(&self.client, &ar, Some(&ns))
    }

    fn names(canary: &Canary) -> Result<(&str, String), RouterError> {
        let name = super::ingress_ref(canary).ok_or_else(|| {
            RouterError::Invalid("spec.ingressRef: the nginx provider needs an Ingress".into())
        })?;
        Ok((name, canary_ingress_name(name)))
    }

    async fn user_ingress(&self, canary: &Canary) -> Result<Option<Value>, RouterError> {
        let (name, _) = Self::names(canary)?;
        Ok(self.api(canary).get_opt(name).await?.map(to_value))
    }

    /// The canary Ingress and whether this Canary owns it (else it was taken over).
    async fn current(&self, canary: &Canary) -> Result<Option<(Value, bool)>, RouterError> {
        let (_, name) = Self::names(canary)?;
        let ingress = self.api(canary).get_opt(&name).await?;
        Ok(ingress.map(|i| {
            let ours = super::owned_by(&i.metadata, canary);
            (to_value(i), ours)
        }))
    }

    /// A missing Ingress, or one without a backend that is the apex, is a spec problem: nothing
    /// is written until it is fixed.
    pub async fn problems(&self, canary: &Canary) -> Result<Vec<FieldError>, RouterError> {
        if super::ingress_ref(canary).is_none() {
            return Ok(Vec::new()); // the spec checks say so
        }
        let user = self.user_ingress(canary).await?;
        Ok(super::ingress_problems(canary, user.as_ref(), false))
    }

    /// Applies the canary Ingress for `routes`, then removes canary keys it should not have.
    async fn apply(&self, canary: &Canary, routes: Routes, owned: bool) -> Result<(), RouterError> {
        let (name, canary_name) = Self::names(canary)?;
        let user = self.user_ingress(canary).await?.ok_or_else(|| {
            RouterError::Invalid(format!("spec.ingressRef: Ingress {name} not found"))
        })?;
        let owner = owned.then(|| owner(canary));
        let desired = canary_ingress(canary, &user, &self.prefix, routes, owner)
            .map_err(RouterError::Invalid)?;
        let written = self
            .api(canary)
            .patch(
                &canary_name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&desired),
            )
            .await?;
        let written = to_value(written);
        let stale = stale_keys(&written, &desired, &self.prefix);
        if stale.is_empty() {
            return Ok(());
        }
        super::remove_annotations(&self.api(canary), &written, &stale).await
    }

    /// Creates the Services and the canary Ingress (keeping the routes it has), saving what a
    /// canary Ingress that was already there had.
    pub async fn reconcile(&self, canary: &Canary) -> Result<(), RouterError> {
        self.services.reconcile(canary).await?;
        let current = self.current(canary).await?;
        if let Some((ingress, false)) = &current {
            super::save_original(&self.api(canary), ingress).await?;
        }
        let routes = match &current {
            Some((ingress, true)) => super::nginx_objects::routes_of(ingress, &self.prefix),
            _ => Routes::PRIMARY,
        };
        // A canary Ingress that is not a working canary starts over on the primary.
        let routes = if routes.primary + routes.canary == 100 {
            routes
        } else {
            Routes::PRIMARY
        };
        let owned = current.as_ref().is_none_or(|(_, ours)| *ours);
        self.apply(canary, routes, owned).await
    }

    /// Sets the weight and the A/B annotations.
    pub async fn set_routes(&self, canary: &Canary, routes: Routes) -> Result<(), RouterError> {
        let owned = self.current(canary).await?.is_none_or(|(_, ours)| ours);
        self.apply(canary, routes, owned).await
    }

    /// The routes the canary Ingress carries; None when it does not exist.
    pub async fn get_routes(&self, canary: &Canary) -> Result<Option<Routes>, RouterError> {
        Ok(self
            .current(canary)
            .await?
            .map(|(i, _)| super::nginx_objects::routes_of(&i, &self.prefix)))
    }

    /// Gives traffic back: Serin's canary Ingress sends everything to the target (its own pods,
    /// behind the canary Service) until it is garbage-collected; a taken-over one gets its spec
    /// and annotations back.
    pub async fn finalize(&self, canary: &Canary) -> Result<(), RouterError> {
        let Some((ingress, ours)) = self.current(canary).await? else {
            return Ok(());
        };
        if ours {
            return self.apply(canary, Routes::CANARY, true).await;
        }
        super::restore_original(&self.api(canary), &ingress).await
    }
}
