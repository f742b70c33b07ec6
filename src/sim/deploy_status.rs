//! The Deployment status the simulated kube-controller-manager writes, ported from the real
//! deployment controller (pkg/controller/deployment: `getNewReplicaSet`, `calculateStatus`,
//! `syncRolloutStatus`; util/deployment_util.go: `SetDeploymentCondition`,
//! `DeploymentComplete`, `DeploymentProgressing`, `DeploymentTimedOut`):
//! * counters from the ReplicaSets' pods; `unavailableReplicas` = the ReplicaSets' desired
//!   replicas minus the available ones;
//! * `Available` from maxUnavailable;
//! * `Progressing`: `NewReplicaSetCreated` when a new ReplicaSet appears, then progress is
//!   evaluated only while the rollout is not complete — so a template change at 0 replicas
//!   completes at once, and a completed rollout later scaled up with pods that never get ready
//!   keeps `NewReplicaSetAvailable` forever (k8s-transcripts 21), while a rollout in progress
//!   that stops progressing gets `ProgressDeadlineExceeded` once its `lastUpdateTime` is
//!   `progressDeadlineSeconds` old (15);
//! * a condition that changes moves to the end of the list, as the real controller appends it.
//!
//! Must not import the controller or the decision core.

use serde_json::{Value, json};

use super::handlers::{self, Target};
use super::kubelet::{ctx, meta_str, rt};
use super::state::SimState;

const PROGRESSING: &str = "Progressing";
const AVAILABLE: &str = "Available";
const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
const TIMED_OUT: &str = "ProgressDeadlineExceeded";

/// What one pass of the Deployment controller knows about one Deployment.
pub(super) struct Rollout<'a> {
    /// The Deployment as stored.
    pub d: &'a Value,
    /// Its newest ReplicaSet (matching the current template).
    pub new_rs: &'a Value,
    /// All its ReplicaSets, after this pass's scaling.
    pub all_rs: &'a [Value],
    /// The revision the Deployment carries.
    pub revision: i64,
    /// Whether this pass created the new ReplicaSet.
    pub created: bool,
    /// maxUnavailable resolved as the real controller does (0 for Recreate and for 0 replicas).
    pub max_unavailable: i64,
}

/// A condition as `NewDeploymentCondition` makes it (both times now).
fn condition(kind: &str, status: &str, reason: &str, message: String, now: &str) -> Value {
    json!({"type": kind, "status": status, "lastUpdateTime": now, "lastTransitionTime": now,
        "reason": reason, "message": message})
}

fn find<'a>(conditions: &'a [Value], kind: &str) -> Option<&'a Value> {
    conditions.iter().find(|c| c["type"] == kind)
}

/// `SetDeploymentCondition`: nothing happens if status and reason are the same; otherwise the
/// transition time is kept when the status is, and the condition moves to the end.
fn set_condition(conditions: &mut Vec<Value>, mut c: Value) {
    if let Some(cur) = find(conditions, c["type"].as_str().unwrap_or_default()) {
        if cur["status"] == c["status"] && cur["reason"] == c["reason"] {
            return;
        }
        if cur["status"] == c["status"] {
            c["lastTransitionTime"] = cur["lastTransitionTime"].clone();
        }
    }
    conditions.retain(|x| x["type"] != c["type"]);
    conditions.push(c);
}

/// Pod counts of a ReplicaSet: (pods, ready pods).
fn pods(st: &SimState, rs: &Value) -> (i64, i64) {
    let ns = meta_str(rs, "namespace");
    let pods = st.store.dependents("/pods", &ns, &meta_str(rs, "uid"));
    let ready = pods
        .iter()
        .filter(|p| p["status"]["phase"] == "Running")
        .count() as i64;
    (pods.len() as i64, ready)
}

/// The counters of `calculateStatus`.
struct Counts {
    replicas: i64,
    updated: i64,
    ready: i64,
    unavailable: i64,
}

fn counts(st: &SimState, r: &Rollout) -> Counts {
    let (replicas, ready) = r
        .all_rs
        .iter()
        .map(|rs| pods(st, rs))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let desired_total: i64 = r
        .all_rs
        .iter()
        .map(|rs| rs["spec"]["replicas"].as_i64().unwrap_or(0))
        .sum();
    Counts {
        replicas,
        updated: pods(st, r.new_rs).0,
        ready,
        unavailable: (desired_total - ready).max(0),
    }
}

/// The status object: the counters (int32 ones are omitempty, `terminatingReplicas` is a pointer
/// and stays), the conditions, and the collision count the controller carries over.
fn status_of(d: &Value, n: &Counts, conditions: Vec<Value>) -> Value {
    let mut status = json!({"observedGeneration": d["metadata"]["generation"], "replicas": n.replicas,
        "updatedReplicas": n.updated, "readyReplicas": n.ready, "availableReplicas": n.ready,
        "unavailableReplicas": n.unavailable, "terminatingReplicas": 0, "conditions": conditions});
    for k in [
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
        "unavailableReplicas",
    ] {
        if status[k] == 0 {
            status.as_object_mut().map(|m| m.remove(k));
        }
    }
    if let Some(c) = d["status"].get("collisionCount") {
        status["collisionCount"] = c.clone();
    }
    status
}

/// Writes the Deployment's status (and revision annotation) when it changed; returns whether
/// the Deployment needs another look (a progress deadline to watch, or a write just made).
pub(super) fn write_status(st: &mut SimState, r: &Rollout) -> bool {
    let d = r.d;
    let now = ctx().now;
    let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let deadline = d["spec"]["progressDeadlineSeconds"]
        .as_i64()
        .filter(|s| *s != i64::from(i32::MAX));
    let rs_name = meta_str(r.new_rs, "name");
    // getNewReplicaSet: what the Deployment's status says before this sync's status update.
    let mut before: Vec<Value> = d["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if deadline.is_some() && r.created {
        let msg = format!("Created new replica set \"{rs_name}\"");
        let c = condition(PROGRESSING, "True", "NewReplicaSetCreated", msg, &now);
        set_condition(&mut before, c);
    } else if deadline.is_some() && find(&before, PROGRESSING).is_none() {
        let msg = format!("Found new replica set \"{rs_name}\"");
        let c = condition(PROGRESSING, "True", "FoundNewReplicaSet", msg, &now);
        set_condition(&mut before, c);
    }
    let n = counts(st, r);
    let mut conditions = before.clone();
    let (status, reason, msg) = if n.ready >= desired - r.max_unavailable {
        (
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    } else {
        (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    set_condition(
        &mut conditions,
        condition(AVAILABLE, status, reason, msg.into(), &now),
    );
    match deadline {
        None => conditions.retain(|c| c["type"] != PROGRESSING),
        Some(secs) => progress(&mut conditions, &before, d, &n, &rs_name, secs, &now),
    }
    let status = status_of(d, &n, conditions.clone());
    let watching = deadline.is_some()
        && find(&conditions, PROGRESSING)
            .is_some_and(|c| c["reason"] != NEW_RS_AVAILABLE && c["reason"] != TIMED_OUT);
    let rev = r.revision.to_string();
    if d["status"] == status
        && d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == rev.as_str()
    {
        return watching;
    }
    let mut next = d.clone();
    next["status"] = status;
    next["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = json!(rev);
    let t = Target {
        rt: rt(st, "apps", "deployments"),
        namespace: Some(meta_str(d, "namespace")),
        name: Some(meta_str(d, "name")),
        sub: Some("status".into()),
    };
    handlers::update(st, &t, next, &ctx());
    true
}

/// `syncRolloutStatus`'s Progressing condition. `before` is the Deployment's status as the sync
/// started (with this sync's NewReplicaSetCreated); its counters are the stored ones.
fn progress(
    conditions: &mut Vec<Value>,
    before: &[Value],
    d: &Value,
    n: &Counts,
    rs_name: &str,
    deadline_secs: i64,
    now: &str,
) {
    let current = find(before, PROGRESSING);
    // A completed rollout is not looked at again until a new ReplicaSet shows up.
    let complete_before =
        n.replicas == n.updated && current.is_some_and(|c| c["reason"] == NEW_RS_AVAILABLE);
    if complete_before {
        return;
    }
    let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let old = &d["status"];
    let int = |v: &Value, k: &str| v[k].as_i64().unwrap_or(0);
    let complete = n.updated == desired && n.replicas == desired && n.ready == desired;
    let old_leftover = int(old, "replicas") - int(old, "updatedReplicas");
    let progressed = n.updated > int(old, "updatedReplicas")
        || n.replicas - n.updated < old_leftover
        || n.ready > int(old, "readyReplicas")
        || n.ready > int(old, "availableReplicas");
    if complete {
        let msg = format!("ReplicaSet \"{rs_name}\" has successfully progressed.");
        set_condition(
            conditions,
            condition(PROGRESSING, "True", NEW_RS_AVAILABLE, msg, now),
        );
    } else if progressed {
        // Unlike SetDeploymentCondition, progress always refreshes lastUpdateTime.
        let msg = format!("ReplicaSet \"{rs_name}\" is progressing.");
        let mut c = condition(PROGRESSING, "True", "ReplicaSetUpdated", msg, now);
        if let Some(cur) = current.filter(|c| c["status"] == "True") {
            c["lastTransitionTime"] = cur["lastTransitionTime"].clone();
        }
        conditions.retain(|x| x["type"] != PROGRESSING);
        conditions.push(c);
    } else if timed_out(find(conditions, PROGRESSING), deadline_secs) {
        let msg = format!("ReplicaSet \"{rs_name}\" has timed out progressing.");
        set_condition(
            conditions,
            condition(PROGRESSING, "False", TIMED_OUT, msg, now),
        );
    }
}

/// `DeploymentTimedOut`: the Progressing condition's lastUpdateTime is older than the deadline
/// (never for a completed rollout, always once timed out).
fn timed_out(progressing: Option<&Value>, deadline_secs: i64) -> bool {
    let Some(c) = progressing else { return false };
    if c["reason"] == NEW_RS_AVAILABLE {
        return false;
    }
    if c["reason"] == TIMED_OUT {
        return true;
    }
    c["lastUpdateTime"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|from| from + chrono::Duration::seconds(deadline_secs) < chrono::Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_condition_keeps_same_ones_and_moves_changed_ones_last() {
        let mut cs = vec![
            condition(AVAILABLE, "True", "A", "m".into(), "t1"),
            condition(PROGRESSING, "True", NEW_RS_AVAILABLE, "m".into(), "t1"),
        ];
        set_condition(
            &mut cs,
            condition(AVAILABLE, "True", "A", "other".into(), "t2"),
        );
        assert_eq!(
            cs[0]["lastUpdateTime"], "t1",
            "same status and reason: untouched"
        );
        set_condition(
            &mut cs,
            condition(AVAILABLE, "False", "B", "m".into(), "t3"),
        );
        assert_eq!(cs[1]["type"], AVAILABLE, "a changed condition goes last");
        assert_eq!(cs[1]["lastTransitionTime"], "t3");
        set_condition(
            &mut cs,
            condition(PROGRESSING, "True", "C", "m".into(), "t4"),
        );
        assert_eq!(cs[1]["type"], PROGRESSING);
        assert_eq!(
            (
                cs[1]["lastTransitionTime"].as_str(),
                cs[1]["lastUpdateTime"].as_str()
            ),
            (Some("t1"), Some("t4"))
        );
    }

    #[test]
    fn deadlines_count_from_the_last_update() {
        let old = (chrono::Utc::now() - chrono::Duration::seconds(20))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let c = condition(PROGRESSING, "True", "ReplicaSetUpdated", "m".into(), &old);
        assert!(timed_out(Some(&c), 15));
        assert!(!timed_out(Some(&c), 30));
        let done = condition(PROGRESSING, "True", NEW_RS_AVAILABLE, "m".into(), &old);
        assert!(!timed_out(Some(&done), 1));
        assert!(!timed_out(None, 1));
    }
}
