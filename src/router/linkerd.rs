//! The `linkerd` provider: Gateway API routes attached to the apex Service (GAMMA, Linkerd 2.14
//! and later) when the cluster serves HTTPRoute, else an SMI TrafficSplit (older Linkerd with the
//! linkerd-smi extension, which is what Flagger's linkerd provider writes). Which one is decided
//! per reconcile from what the API server serves, so upgrading the mesh needs no spec change.

use super::gateway_api::GatewayApiRouter;
use super::smi::SmiRouter;
use super::{Lookups, RouteState, RouterError};
use crate::analysis::Routes;
use crate::api::{Canary, FieldError};

/// Linkerd routing by the best API the cluster has.
pub struct LinkerdRouter {
    gamma: GatewayApiRouter,
    smi: SmiRouter,
}

enum Picked<'a> {
    Gamma(&'a GatewayApiRouter),
    Smi(&'a SmiRouter),
}

impl LinkerdRouter {
    /// A router on this client.
    pub fn new(client: kube::Client, lookups: Lookups) -> LinkerdRouter {
        LinkerdRouter {
            gamma: GatewayApiRouter::new(client.clone(), lookups.clone(), "v1", true),
            smi: SmiRouter::new(client, lookups),
        }
    }

    async fn pick(&self, canary: &Canary) -> Result<Picked<'_>, RouterError> {
        Ok(if self.gamma.served(canary).await? {
            Picked::Gamma(&self.gamma)
        } else {
            Picked::Smi(&self.smi)
        })
    }

    /// Spec problems for the API in use; neither API served is one too.
    pub async fn problems(&self, canary: &Canary) -> Result<Vec<FieldError>, RouterError> {
        match self.pick(canary).await? {
            Picked::Gamma(g) => g.problems(canary).await,
            Picked::Smi(s) => {
                if s.api(canary).served().await? {
                    return Ok(SmiRouter::problems(canary));
                }
                Ok(vec![FieldError {
                    path: "spec.provider".into(),
                    message: "this cluster serves neither HTTPRoute (gateway.networking.k8s.io/v1) nor TrafficSplit (split.smi-spec.io/v1alpha1); install the Gateway API CRDs".into(),
                }])
            }
        }
    }

    /// Creates or adopts the routing objects.
    pub async fn reconcile(&self, canary: &Canary) -> Result<(), RouterError> {
        match self.pick(canary).await? {
            Picked::Gamma(g) => g.reconcile(canary).await,
            Picked::Smi(s) => s.reconcile(canary).await,
        }
    }

    /// Sets the weights.
    pub async fn set_routes(&self, canary: &Canary, routes: Routes) -> Result<(), RouterError> {
        match self.pick(canary).await? {
            Picked::Gamma(g) => g.set_routes(canary, routes).await,
            Picked::Smi(s) => s.set_routes(canary, routes).await,
        }
    }

    /// The weights in the cluster.
    pub async fn get_routes(&self, canary: &Canary) -> Result<Option<Routes>, RouterError> {
        match self.pick(canary).await? {
            Picked::Gamma(g) => g.get_routes(canary).await,
            Picked::Smi(s) => s.get_routes(canary).await,
        }
    }

    /// Weights and acceptance.
    pub async fn get_state(&self, canary: &Canary) -> Result<RouteState, RouterError> {
        match self.pick(canary).await? {
            Picked::Gamma(g) => g.get_state(canary).await,
            Picked::Smi(s) => Ok(RouteState {
                routes: s.get_routes(canary).await?,
                accepted: None,
            }),
        }
    }

    /// Gives traffic back to the target.
    pub async fn finalize(&self, canary: &Canary) -> Result<(), RouterError> {
        match self.pick(canary).await? {
            Picked::Gamma(g) => g.finalize(canary).await,
            Picked::Smi(s) => s.finalize(canary).await,
        }
    }
}
