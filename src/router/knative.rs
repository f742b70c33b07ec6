//! The `knative` provider: no routing object of its own. The Canary's target is the user's Knative
//! Service, and the split is its `spec.traffic`: `[{revisionName: <primary revision>, percent:
//! 100-w}, {latestRevision: true, percent: w}]`, written by a JSON merge patch guarded by the
//! resourceVersion it was built from (a hand edit in between gets a 409 and the next reconcile
//! builds again). Tags the user gave traffic entries are kept (tag-only entries stay, at 0
//! percent). The weights are read back from `status.traffic`, which Knative fills once it has
//! programmed the route, defensively: an entry without `latestRevision` or `percent`, or a status
//! older than the spec, is "unknown", never a crash (Flagger dereferences a nil pointer there).
//! `finalize` gives all traffic to the latest revision and removes the primary-revision
//! annotation. Imports only `api`, the rule type and the router seam (`mod.rs`).

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};

use super::{Lookups, RouterError};
use crate::analysis::Routes;
use crate::api::knative::PRIMARY_REVISION_ANNOTATION;
use crate::api::{Canary, FieldError};

/// Knative: the target Service is read (observation, weights) and merge-patched (the primary
/// revision annotation, `spec.traffic`). Revisions are not read: the Service's status names them.
pub const RBAC: &[crate::rbac::Rule] = &[crate::rbac::Rule {
    group: "serving.knative.dev",
    resources: &["services"],
    verbs: &["get", "list", "patch"],
    needed: crate::rbac::Needed::Router("knative"),
    why: "Knative: read the target Service (its revisions, whether Knative Serving is installed); set its primary-revision annotation and spec.traffic per step",
}];

const NOT_SERVED: &str = "this cluster does not serve services.serving.knative.dev (serving.knative.dev/v1); install Knative Serving";

/// The Knative Serving Service resource.
pub fn resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("serving.knative.dev", "v1", "Service");
    ApiResource::from_gvk_with_plural(&gvk, "services")
}

/// Routes by the traffic block of the target Knative Service.
pub struct KnativeRouter {
    client: kube::Client,
    lookups: Lookups,
}

/// The `spec.traffic` that sends `primary_percent` to the primary revision (no such entry when
/// None) and the rest to the latest revision. A tag the user put on the latest-revision entry or
/// on the primary revision's entry moves to ours; other tagged entries stay, at 0 percent; untagged
/// entries of someone else's are dropped (their percent would break the sum of 100).
pub fn build_traffic(current: &Value, primary: Option<(&str, i32)>, latest_percent: i32) -> Value {
    let entries = current.as_array().cloned().unwrap_or_default();
    let tag_of = |pred: &dyn Fn(&Value) -> bool| {
        entries
            .iter()
            .find(|e| pred(e) && e["tag"].is_string())
            .map(|e| e["tag"].clone())
    };
    let mut out = Vec::new();
    let mut used_tags = Vec::new();
    if let Some((revision, percent)) = primary {
        let mut e = json!({"revisionName": revision, "percent": percent});
        if let Some(tag) = tag_of(&|e| e["revisionName"] == revision && e["latestRevision"] != true)
        {
            used_tags.push(tag.clone());
            e["tag"] = tag;
        }
        out.push(e);
    }
    let mut latest = json!({"latestRevision": true, "percent": latest_percent});
    if let Some(tag) = tag_of(&|e| e["latestRevision"] == true) {
        used_tags.push(tag.clone());
        latest["tag"] = tag;
    }
    out.push(latest);
    for e in entries {
        if e["tag"].is_string() && !used_tags.contains(&e["tag"]) {
            let mut kept = e.clone();
            kept["percent"] = json!(0);
            out.push(kept);
        }
    }
    Value::Array(out)
}

/// The weights `status.traffic` says Knative routes, for the primary revision and the latest
/// revision. None (unknown) when the status is older than the spec, or an entry lacks
/// `latestRevision`, or lacks `percent` without being a tag-only entry.
pub fn read_traffic(obj: &Value, primary: &str) -> Option<Routes> {
    let generation = obj["metadata"]["generation"].as_i64().unwrap_or(0);
    if obj["status"]["observedGeneration"].as_i64().unwrap_or(0) < generation {
        return None;
    }
    let mut routes = Routes {
        baseline: 0,
        primary: 0,
        canary: 0,
        mirror: false,
        ab_match: false,
    };
    for e in obj["status"]["traffic"].as_array()? {
        let latest = e["latestRevision"].as_bool()?;
        let percent = match e["percent"].as_i64() {
            Some(p) => i32::try_from(p).ok()?,
            None if e["tag"].is_string() => 0,
            None => return None,
        };
        if latest {
            routes.canary += percent;
        } else if e["revisionName"] == primary {
            routes.primary += percent;
        }
    }
    Some(routes)
}

impl KnativeRouter {
    /// A router on this client.
    pub fn new(client: kube::Client, lookups: Lookups) -> KnativeRouter {
        KnativeRouter { client, lookups }
    }

    fn services(&self, canary: &Canary) -> Api<DynamicObject> {
        let ns = canary.namespace_or_default();
        Api::namespaced_with(self.client.clone(), &ns, &resource())
    }

    async fn target(&self, canary: &Canary) -> Result<Option<Value>, RouterError> {
        let found = self
            .services(canary)
            .get_opt(&canary.spec.target_ref.name)
            .await?;
        Ok(found.map(|o| serde_json::to_value(o).unwrap_or_default()))
    }

    /// A cluster without Knative Serving: say so before acting.
    pub async fn problems(&self, canary: &Canary) -> Result<Vec<FieldError>, RouterError> {
        let ns = canary.namespace_or_default();
        let api = self.lookups.route_api(&self.client, &resource(), Some(&ns));
        if api.served().await? {
            return Ok(Vec::new());
        }
        Ok(vec![FieldError {
            path: "spec.provider".into(),
            message: NOT_SERVED.into(),
        }])
    }

    /// Nothing to create: Knative routes to its own revisions.
    pub async fn reconcile(&self, _canary: &Canary) -> Result<(), RouterError> {
        Ok(())
    }

    /// Patches `spec.traffic` (nothing when it already says so), guarded by the resourceVersion.
    async fn patch_traffic(
        &self,
        canary: &Canary,
        obj: &Value,
        traffic: Value,
        annotation: Option<Value>,
    ) -> Result<(), RouterError> {
        if obj["spec"]["traffic"] == traffic && annotation.is_none() {
            return Ok(());
        }
        let mut patch = json!({"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
            "spec": {"traffic": traffic}});
        if let Some(a) = annotation {
            patch["metadata"]["annotations"] = json!({ PRIMARY_REVISION_ANNOTATION: a });
        }
        self.services(canary)
            .patch(
                &canary.spec.target_ref.name,
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await?;
        Ok(())
    }

    /// Splits traffic between the primary revision and the latest revision.
    pub async fn set_routes(&self, canary: &Canary, routes: Routes) -> Result<(), RouterError> {
        let name = &canary.spec.target_ref.name;
        let obj = self
            .target(canary)
            .await?
            .ok_or_else(|| RouterError::Invalid(format!("Knative Service {name} not found")))?;
        let Some(primary) = obj["metadata"]["annotations"][PRIMARY_REVISION_ANNOTATION].as_str()
        else {
            return Err(RouterError::Invalid(format!(
                "Knative Service {name} has no {PRIMARY_REVISION_ANNOTATION} annotation yet"
            )));
        };
        let traffic = build_traffic(
            &obj["spec"]["traffic"],
            Some((primary, routes.primary)),
            routes.canary,
        );
        self.patch_traffic(canary, &obj, traffic, None).await
    }

    /// The weights Knative routes (status.traffic); None when unknown or not initialised.
    pub async fn get_routes(&self, canary: &Canary) -> Result<Option<Routes>, RouterError> {
        let Some(obj) = self.target(canary).await? else {
            return Ok(None);
        };
        let Some(primary) = obj["metadata"]["annotations"][PRIMARY_REVISION_ANNOTATION].as_str()
        else {
            return Ok(None);
        };
        Ok(read_traffic(&obj, primary))
    }

    /// All traffic to the latest revision, and the primary-revision annotation removed.
    pub async fn finalize(&self, canary: &Canary) -> Result<(), RouterError> {
        let Some(obj) = self.target(canary).await? else {
            return Ok(());
        };
        let traffic = build_traffic(&obj["spec"]["traffic"], None, 100);
        self.patch_traffic(canary, &obj, traffic, Some(Value::Null))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_splits_between_the_primary_revision_and_the_latest() {
        let t = build_traffic(&Value::Null, Some(("podinfo-00001", 90)), 10);
        assert_eq!(
            t,
            json!([{"revisionName": "podinfo-00001", "percent": 90}, {"latestRevision": true, "percent": 10}])
        );
        assert_eq!(
            build_traffic(&t, None, 100),
            json!([{"latestRevision": true, "percent": 100}])
        );
    }

    #[test]
    fn the_users_tags_are_kept() {
        let current = json!([
            {"latestRevision": true, "percent": 100, "tag": "latest"},
            {"revisionName": "podinfo-00001", "tag": "stable"},
            {"revisionName": "podinfo-00000", "percent": 0, "tag": "old"},
            {"revisionName": "podinfo-00009", "percent": 5},
        ]);
        let t = build_traffic(&current, Some(("podinfo-00001", 70)), 30);
        assert_eq!(
            t,
            json!([
                {"revisionName": "podinfo-00001", "percent": 70, "tag": "stable"},
                {"latestRevision": true, "percent": 30, "tag": "latest"},
                {"revisionName": "podinfo-00000", "percent": 0, "tag": "old"},
            ])
        );
    }

    fn ksvc(generation: i64, observed: i64, traffic: Value) -> Value {
        json!({"metadata": {"name": "podinfo", "generation": generation},
            "status": {"observedGeneration": observed, "traffic": traffic}})
    }

    #[test]
    fn weights_are_read_from_status_traffic() {
        let obj = ksvc(
            4,
            4,
            json!([
                {"revisionName": "podinfo-00001", "percent": 80, "latestRevision": false},
                {"revisionName": "podinfo-00002", "percent": 20, "latestRevision": true},
                {"revisionName": "podinfo-00000", "latestRevision": false, "tag": "old"},
            ]),
        );
        assert_eq!(read_traffic(&obj, "podinfo-00001"), Some(Routes::split(20)));
        // After promotion both entries name the same revision; latestRevision tells them apart.
        let obj = ksvc(
            5,
            5,
            json!([
                {"revisionName": "podinfo-00002", "percent": 100, "latestRevision": false},
                {"revisionName": "podinfo-00002", "percent": 0, "latestRevision": true},
            ]),
        );
        assert_eq!(read_traffic(&obj, "podinfo-00002"), Some(Routes::PRIMARY));
    }

    #[test]
    fn malformed_or_stale_status_traffic_is_unknown_never_a_panic() {
        let t = json!([{"revisionName": "podinfo-00001", "percent": 100, "latestRevision": false}]);
        assert_eq!(read_traffic(&ksvc(5, 4, t.clone()), "podinfo-00001"), None);
        let no_latest = json!([{"revisionName": "podinfo-00001", "percent": 100}]);
        assert_eq!(read_traffic(&ksvc(1, 1, no_latest), "podinfo-00001"), None);
        let no_percent = json!([{"revisionName": "podinfo-00001", "latestRevision": false}]);
        assert_eq!(read_traffic(&ksvc(1, 1, no_percent), "podinfo-00001"), None);
        let not_a_list = json!({"revisionName": "podinfo-00001"});
        assert_eq!(read_traffic(&ksvc(1, 1, not_a_list), "podinfo-00001"), None);
        let wrong_types = json!([{"latestRevision": "yes", "percent": "100"}]);
        assert_eq!(
            read_traffic(&ksvc(1, 1, wrong_types), "podinfo-00001"),
            None
        );
        assert_eq!(read_traffic(&json!(null), "p"), None);
        // Traffic to a revision that is neither side shows as drift (the sides sum below 100).
        let other = json!([{"revisionName": "x-00007", "percent": 100, "latestRevision": false}]);
        assert_eq!(
            read_traffic(&ksvc(1, 1, other), "podinfo-00001"),
            Some(Routes::split(0)).map(|r| Routes { primary: 0, ..r })
        );
    }
}
