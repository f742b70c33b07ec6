//! The `skipper` provider: the three Services of the kubernetes router and, next to the user's
//! Ingress (`spec.ingressRef`, only ever read: it keeps pointing at the apex), Serin's
//! `<ingressRef>-canary` Ingress splitting each apex path between the primary and the canary by
//! `zalando.org/backend-weights` (`skipper_objects`), applied as a whole by server-side apply.
//! A canary Ingress that existed before the Canary is taken over: what it had is saved in an
//! annotation and put back by `finalize`, and it gets no owner reference (Flagger deletes the
//! copy on finalize; Serin has no delete permission and lets garbage collection do it). Imports
//! only `api`, the rule type and the router seam (`mod.rs`, the kubernetes router).

use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::Value;

use super::kubernetes::owner;
use super::skipper_objects::{canary_ingress, routes_of};
use super::{KubernetesRouter, Lookups, RouteApi, RouterError};
use crate::analysis::Routes;
use crate::api::{Canary, FIELD_MANAGER, FieldError};

/// Skipper: the user's Ingress is read; the canary Ingress is applied and, to give a taken-over
/// one back, patched.
pub const RBAC: &[crate::rbac::Rule] = &[crate::rbac::Rule {
    group: "networking.k8s.io",
    resources: &["ingresses"],
    verbs: &["get", "list", "watch", "create", "patch"],
    needed: crate::rbac::Needed::Router("skipper"),
    why: "Skipper: read the Ingress spec.ingressRef names; apply its -canary copy with the backend weights",
}];

/// Routes by Skipper backend weights.
pub struct SkipperRouter {
    client: kube::Client,
    services: KubernetesRouter,
}

fn to_value(i: DynamicObject) -> Value {
    serde_json::to_value(i).unwrap_or_default()
}

impl SkipperRouter {
    /// A router on this client.
    pub fn new(client: kube::Client, lookups: Lookups) -> SkipperRouter {
        SkipperRouter {
            services: KubernetesRouter::new(client.clone(), lookups),
            client,
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
            RouterError::Invalid("spec.ingressRef: the skipper provider needs an Ingress".into())
        })?;
        Ok((name, format!("{name}-canary")))
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

    /// A missing Ingress, or one without a path whose backend is the apex, is a spec problem.
    pub async fn problems(&self, canary: &Canary) -> Result<Vec<FieldError>, RouterError> {
        if super::ingress_ref(canary).is_none() {
            return Ok(Vec::new()); // the spec checks say so
        }
        let user = self.user_ingress(canary).await?;
        Ok(super::ingress_problems(canary, user.as_ref(), true))
    }

    async fn apply(&self, canary: &Canary, routes: Routes, owned: bool) -> Result<(), RouterError> {
        let (name, canary_name) = Self::names(canary)?;
        let user = self.user_ingress(canary).await?.ok_or_else(|| {
            RouterError::Invalid(format!("spec.ingressRef: Ingress {name} not found"))
        })?;
        let owner = owned.then(|| owner(canary));
        let desired = canary_ingress(canary, &user, routes, owner).map_err(RouterError::Invalid)?;
        self.api(canary)
            .patch(
                &canary_name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&desired),
            )
            .await?;
        Ok(())
    }

    /// Creates the Services and the canary Ingress (keeping the weights it has), saving what a
    /// canary Ingress that was already there had.
    pub async fn reconcile(&self, canary: &Canary) -> Result<(), RouterError> {
        self.services.reconcile(canary).await?;
        let current = self.current(canary).await?;
        if let Some((ingress, false)) = &current {
            super::save_original(&self.api(canary), ingress).await?;
        }
        let routes = match &current {
            Some((ingress, true)) => routes_of(canary, ingress),
            _ => Routes::PRIMARY,
        };
        // A canary Ingress whose weights do not read starts over on the primary.
        let routes = if routes.primary + routes.canary == 100 {
            routes
        } else {
            Routes::PRIMARY
        };
        let owned = current.as_ref().is_none_or(|(_, ours)| *ours);
        self.apply(canary, routes, owned).await
    }

    /// Sets the backend weights (and turns the copy's routes on or off).
    pub async fn set_routes(&self, canary: &Canary, routes: Routes) -> Result<(), RouterError> {
        let owned = self.current(canary).await?.is_none_or(|(_, ours)| ours);
        self.apply(canary, routes, owned).await
    }

    /// The weights the canary Ingress carries; None when it does not exist.
    pub async fn get_routes(&self, canary: &Canary) -> Result<Option<Routes>, RouterError> {
        Ok(self
            .current(canary)
            .await?
            .map(|(i, _)| routes_of(canary, &i)))
    }

    /// Gives traffic back: Serin's canary Ingress sends everything to the target (behind the
    /// canary Service) until it is garbage-collected; a taken-over one gets what it had back.
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
