//! The adapter for core Service targets (`service_target` has the builders): reads the target
//! Service and its `-primary` / `-canary` copies (from the controller's Service cache when it
//! has listed), and server-side applies the copies (field manager `serin`). The target itself is
//! only ever read. Thin: all decisions come from `analysis`; must not import the controller or
//! the routers.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;

use super::LabelFilter;
use super::service_target::{Copy, build_copy, canary_name};
use crate::api::FIELD_MANAGER;

/// The target Service and Serin's two copies of it, as read for one reconcile.
#[derive(Debug, Clone, Default)]
pub struct ServiceSides {
    /// The target, if it exists.
    pub target: Option<Service>,
    /// `<target>-primary`, if it exists.
    pub primary: Option<Service>,
    /// `<target>-canary`, if it exists.
    pub canary: Option<Service>,
}

/// Reads the target Service `name` and its copies: from `store` when given (a cache that has
/// finished its first list), else from the API.
pub async fn read(
    client: &kube::Client,
    store: Option<&Store<Service>>,
    ns: &str,
    name: &str,
) -> kube::Result<ServiceSides> {
    let names = [
        name.to_string(),
        super::primary_name(name),
        canary_name(name),
    ];
    let mut found = Vec::with_capacity(3);
    for n in &names {
        found.push(match store {
            Some(s) => s
                .get(&ObjectRef::new(n).within(ns))
                .map(|o| o.as_ref().clone()),
            None => {
                Api::<Service>::namespaced(client.clone(), ns)
                    .get_opt(n)
                    .await?
            }
        });
    }
    let mut found = found.into_iter();
    Ok(ServiceSides {
        target: found.next().flatten(),
        primary: found.next().flatten(),
        canary: found.next().flatten(),
    })
}

/// Server-side applies one copy of `target` (creation, promotion and scaling alike).
pub async fn apply_copy(
    client: &kube::Client,
    ns: &str,
    target: &Service,
    which: Copy<'_>,
    owner: OwnerReference,
    filter: &LabelFilter,
) -> kube::Result<()> {
    let copy = build_copy(target, which, owner, filter);
    let name = copy.metadata.name.clone().unwrap_or_default();
    let mut obj = serde_json::to_value(&copy).unwrap_or_default();
    obj["apiVersion"] = json!("v1");
    obj["kind"] = json!("Service");
    // Serin owns its copies; force takes fields back from anyone who edited them by hand.
    let params = PatchParams::apply(FIELD_MANAGER).force();
    Api::<Service>::namespaced(client.clone(), ns)
        .patch(&name, &params, &Patch::Apply(obj))
        .await?;
    Ok(())
}
