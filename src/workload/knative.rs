//! Knative Service targets, seen through the model the decision core uses (as `daemonset` does for
//! DaemonSets): Knative keeps every revision itself, so there is no `-primary` copy. The primary is
//! the revision named by the `serin.io/primary-revision` annotation on the Knative Service (set at
//! initialisation from `status.latestReadyRevisionName`, moved at promotion); the canary is the
//! latest created revision. The target's "revision" (what `lastAppliedSpec` records) is
//! `status.latestCreatedRevisionName`, as in Flagger: Knative makes a new revision exactly when the
//! template changes, and a revision name is what people read in `kubectl get ksvc`. Pure: reads a
//! Knative Service as JSON, does no I/O. Must not import tokio or the routers.

use serde_json::{Value, json};

use crate::analysis::{PrimaryState, Readiness, TargetState};
use crate::api::knative::PRIMARY_REVISION_ANNOTATION;

/// What Serin reads from a Knative Service. Every field is optional in the object: a Service that
/// Knative has not reconciled yet has no status at all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KnativeView {
    /// `metadata.name`.
    pub name: String,
    /// The primary revision (our annotation), once initialised.
    pub primary_revision: Option<String>,
    /// `status.latestCreatedRevisionName`: the canary side.
    pub latest_created: Option<String>,
    /// `status.latestReadyRevisionName`.
    pub latest_ready: Option<String>,
    /// The `ConfigurationsReady` condition (else `Ready`): status, reason, message.
    pub configurations: Option<(String, String, String)>,
    /// Revision names `status.traffic` routes to (Knative routes only to ready revisions).
    pub routed: Vec<String>,
}

fn text(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(String::from)
}

/// Reads the view of a Knative Service object.
pub fn view(obj: &Value) -> KnativeView {
    let status = &obj["status"];
    let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
    let find = |t: &str| conditions.iter().find(|c| c["type"] == t).cloned();
    let configurations = find("ConfigurationsReady")
        .or_else(|| find("Ready"))
        .map(|c| {
            (
                text(&c["status"]).unwrap_or_default(),
                text(&c["reason"]).unwrap_or_default(),
                text(&c["message"]).unwrap_or_default(),
            )
        });
    let routed = status["traffic"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| text(&t["revisionName"]))
        .collect();
    KnativeView {
        name: text(&obj["metadata"]["name"]).unwrap_or_default(),
        primary_revision: text(&obj["metadata"]["annotations"][PRIMARY_REVISION_ANNOTATION]),
        latest_created: text(&status["latestCreatedRevisionName"]),
        latest_ready: text(&status["latestReadyRevisionName"]),
        configurations,
        routed,
    }
}

impl KnativeView {
    /// Readiness of the latest created revision: ready once it is also the latest ready one; a
    /// configuration Knative reports as failed (`False`, e.g. RevisionFailed) will not get ready
    /// by itself. Route readiness is not asked: it flickers at every traffic change of ours.
    fn canary_readiness(&self) -> Readiness {
        let Some(created) = &self.latest_created else {
            return Readiness::NotReady(format!(
                "Knative has created no revision of {} yet",
                self.name
            ));
        };
        if self.latest_ready.as_ref() == Some(created) {
            return Readiness::Ready;
        }
        match &self.configurations {
            Some((status, reason, message)) if status == "False" => Readiness::DeadlineExceeded(
                format!("revision {created} failed: {reason}: {message}"),
            ),
            _ => Readiness::NotReady(format!("revision {created} is not ready yet")),
        }
    }

    /// The target as the core sees it. Knative scales revisions itself: the canary side counts one
    /// replica while it is a revision of its own, none once it is the primary revision (so the
    /// core never asks to scale anything down).
    pub fn target_state(&self) -> TargetState {
        let readiness = self.canary_readiness();
        let own = self.latest_created.is_some() && self.latest_created != self.primary_revision;
        let replicas = i32::from(own);
        TargetState {
            template_hash: self.latest_created.clone().unwrap_or_default(),
            configs: Default::default(),
            available: if readiness.is_ready() { replicas } else { 0 },
            readiness,
            replicas,
        }
    }

    /// The primary: None before initialisation. Ready when its revision is the latest ready one
    /// or one Knative routes to (it routes only to ready revisions).
    pub fn primary_state(&self) -> Option<PrimaryState> {
        let revision = self.primary_revision.clone()?;
        let ready =
            self.latest_ready.as_ref() == Some(&revision) || self.routed.contains(&revision);
        Some(PrimaryState {
            readiness: if ready {
                Readiness::Ready
            } else {
                Readiness::NotReady(format!(
                    "primary revision {revision} is neither the latest ready revision nor routed"
                ))
            },
            available: i32::from(ready),
            revision: Some(revision),
        })
    }
}

/// The merge patch that names (`Some`) or forgets (`None`) the primary revision.
pub fn primary_revision_patch(revision: Option<&str>) -> Value {
    json!({"metadata": {"annotations": {PRIMARY_REVISION_ANNOTATION: revision}}})
}

/// The merge patch of a promotion to `revision`: the annotation moves, and the traffic entries
/// naming the old primary revision now name the new one, in one write guarded by the
/// resourceVersion read. It is what promoting a Deployment does (the primary's pods become the
/// new version while keeping their share), and it keeps the weights as the core last set them
/// until it routes everything to the primary.
pub fn promote_patch(obj: &Value, revision: &str) -> Value {
    let old = obj["metadata"]["annotations"][PRIMARY_REVISION_ANNOTATION].as_str();
    let mut patch = json!({"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"],
        "annotations": {PRIMARY_REVISION_ANNOTATION: revision}}});
    if let (Some(old), Some(entries)) = (old, obj["spec"]["traffic"].as_array()) {
        let renamed: Vec<Value> = entries
            .iter()
            .map(|e| {
                let mut e = e.clone();
                if e["revisionName"] == old && e["latestRevision"] != true {
                    e["revisionName"] = json!(revision);
                }
                e
            })
            .collect();
        if &renamed != entries {
            patch["spec"] = json!({ "traffic": renamed });
        }
    }
    patch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ksvc(annotation: Option<&str>, status: Value) -> Value {
        let mut obj = json!({"metadata": {"name": "podinfo", "namespace": "test", "annotations": {}},
            "spec": {"template": {"spec": {"containers": [{"image": "podinfo:1"}]}}}, "status": status});
        if let Some(a) = annotation {
            obj["metadata"]["annotations"][PRIMARY_REVISION_ANNOTATION] = json!(a);
        }
        obj
    }

    #[test]
    fn a_service_without_status_has_no_revision_and_is_not_ready() {
        let v = view(&json!({"metadata": {"name": "podinfo"}}));
        let t = v.target_state();
        assert_eq!(t.template_hash, "");
        assert!(!t.readiness.is_ready());
        assert_eq!(t.replicas, 0);
        assert_eq!(v.primary_state(), None);
        // Not even an object: still no panic.
        assert_eq!(view(&json!(null)).latest_created, None);
    }

    #[test]
    fn the_latest_created_revision_is_the_canary_and_the_annotation_the_primary() {
        let status = json!({"latestCreatedRevisionName": "podinfo-00002", "latestReadyRevisionName": "podinfo-00002",
            "traffic": [{"revisionName": "podinfo-00001", "percent": 90, "latestRevision": false}]});
        let v = view(&ksvc(Some("podinfo-00001"), status));
        let t = v.target_state();
        assert_eq!(t.template_hash, "podinfo-00002");
        assert!(t.readiness.is_ready());
        assert_eq!((t.replicas, t.available), (1, 1));
        let p = v.primary_state().unwrap();
        assert_eq!(p.revision.as_deref(), Some("podinfo-00001"));
        assert!(p.readiness.is_ready(), "routed, so ready");
    }

    #[test]
    fn once_promoted_the_canary_side_has_nothing_of_its_own() {
        let status = json!({"latestCreatedRevisionName": "podinfo-00002", "latestReadyRevisionName": "podinfo-00002"});
        let v = view(&ksvc(Some("podinfo-00002"), status));
        assert_eq!(v.target_state().replicas, 0);
        assert!(v.primary_state().unwrap().readiness.is_ready());
    }

    #[test]
    fn a_revision_still_starting_waits_and_a_failed_one_will_not_get_ready() {
        let starting = json!({"latestCreatedRevisionName": "podinfo-00002", "latestReadyRevisionName": "podinfo-00001",
            "conditions": [{"type": "ConfigurationsReady", "status": "Unknown"}]});
        let r = view(&ksvc(Some("podinfo-00001"), starting))
            .target_state()
            .readiness;
        assert!(matches!(r, Readiness::NotReady(ref m) if m.contains("podinfo-00002")));
        let failed = json!({"latestCreatedRevisionName": "podinfo-00002", "latestReadyRevisionName": "podinfo-00001",
            "conditions": [{"type": "Ready", "status": "False", "reason": "RevisionFailed", "message": "boom"}]});
        let r = view(&ksvc(Some("podinfo-00001"), failed))
            .target_state()
            .readiness;
        assert_eq!(
            r,
            Readiness::DeadlineExceeded(
                "revision podinfo-00002 failed: RevisionFailed: boom".into()
            )
        );
    }

    #[test]
    fn a_primary_revision_knative_no_longer_serves_is_not_ready() {
        let status = json!({"latestCreatedRevisionName": "podinfo-00003", "latestReadyRevisionName": "podinfo-00003",
            "traffic": [{"revisionName": "podinfo-00003", "percent": 100, "latestRevision": true}]});
        let p = view(&ksvc(Some("podinfo-00001"), status))
            .primary_state()
            .unwrap();
        assert!(!p.readiness.is_ready());
        assert_eq!(p.available, 0);
    }

    #[test]
    fn a_promotion_moves_the_annotation_and_the_primary_share_together() {
        let mut obj = ksvc(Some("podinfo-00001"), json!({}));
        obj["metadata"]["resourceVersion"] = json!("42");
        obj["spec"]["traffic"] = json!([{"revisionName": "podinfo-00001", "percent": 50, "tag": "stable"},
            {"latestRevision": true, "percent": 50}]);
        let p = promote_patch(&obj, "podinfo-00002");
        assert_eq!(
            p,
            json!({"metadata": {"resourceVersion": "42", "annotations": {PRIMARY_REVISION_ANNOTATION: "podinfo-00002"}},
                "spec": {"traffic": [{"revisionName": "podinfo-00002", "percent": 50, "tag": "stable"},
                    {"latestRevision": true, "percent": 50}]}})
        );
        // No traffic block (never routed): only the annotation.
        let bare = ksvc(Some("podinfo-00001"), json!({}));
        assert!(promote_patch(&bare, "podinfo-00002").get("spec").is_none());
    }

    #[test]
    fn the_annotation_patch_sets_and_removes() {
        assert_eq!(
            primary_revision_patch(Some("x-00001"))["metadata"]["annotations"]
                [PRIMARY_REVISION_ANNOTATION],
            "x-00001"
        );
        assert!(
            primary_revision_patch(None)["metadata"]["annotations"][PRIMARY_REVISION_ANNOTATION]
                .is_null()
        );
    }
}
