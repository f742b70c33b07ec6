//! The Deployment status the simulated kube-controller-manager writes: counters from the pods,
//! conditions Available/Progressing with the real reasons and messages, and
//! ProgressDeadlineExceeded when the rollout stops making progress for progressDeadlineSeconds.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::handlers::{self, Target};
use super::kubelet::{ctx, meta_str, rt};
use super::state::SimState;

#[allow(clippy::too_many_arguments)]
pub(super) fn write_status(
    progress: &mut HashMap<String, (String, Instant)>,
    st: &mut SimState,
    d: &Value,
    new_rs: &Value,
    all_rs: &[Value],
    revision: i64,
    min_available: i64,
) -> bool {
    let ns = meta_str(d, "namespace");
    let name = meta_str(d, "name");
    let key = format!("{ns}/{name}");
    let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let count = |rs: &Value| -> (i64, i64) {
        let pods = st.store.dependents(
            "/pods",
            &ns,
            rs["metadata"]["uid"].as_str().unwrap_or_default(),
        );
        let ready = pods
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .count() as i64;
        (pods.len() as i64, ready)
    };
    let (total, ready) = all_rs
        .iter()
        .map(count)
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let (updated, new_ready) = count(new_rs);
    let rs_name = meta_str(new_rs, "name");
    let complete = updated == desired && new_ready == desired && total == desired;
    let deadline = d["spec"]["progressDeadlineSeconds"].as_i64().unwrap_or(600);
    let progress_mark = (rs_name.clone(), new_ready + total * 1000);
    let entry = progress
        .entry(key)
        .or_insert_with(|| (String::new(), Instant::now()));
    if entry.0 != format!("{progress_mark:?}") {
        *entry = (format!("{progress_mark:?}"), Instant::now());
    }
    let timed_out = !complete && entry.1.elapsed() >= Duration::from_secs(deadline.max(0) as u64);
    let old_conditions = d["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let cond = |t: &str, s: &str, reason: &str, message: String| {
        let prev = old_conditions.iter().find(|c| c["type"] == t);
        let now = ctx().now;
        let transition = prev
            .filter(|p| p["status"] == s)
            .and_then(|p| p["lastTransitionTime"].as_str().map(String::from))
            .unwrap_or(now.clone());
        let update = prev
            .filter(|p| p["status"] == s && p["reason"] == reason)
            .and_then(|p| p["lastUpdateTime"].as_str().map(String::from))
            .unwrap_or(now);
        json!({"type": t, "status": s, "lastUpdateTime": update, "lastTransitionTime": transition, "reason": reason, "message": message})
    };
    let available = if ready >= min_available {
        cond(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
        )
    } else {
        cond(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
        )
    };
    let progressing = if complete {
        cond(
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
        )
    } else if timed_out {
        cond(
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
        )
    } else {
        cond(
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{rs_name}\" is progressing."),
        )
    };
    let mut status = json!({"observedGeneration": d["metadata"]["generation"], "replicas": total, "updatedReplicas": updated,
        "readyReplicas": ready, "availableReplicas": ready, "terminatingReplicas": 0, "conditions": [available, progressing]});
    if desired - ready > 0 {
        status["unavailableReplicas"] = json!(desired - ready);
    }
    if let Some(c) = d["status"].get("collisionCount") {
        status["collisionCount"] = c.clone();
    }
    for k in [
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
    ] {
        if status[k] == 0 {
            status.as_object_mut().map(|m| m.remove(k));
        }
    }
    let rev = revision.to_string();
    let mut same = d["status"].clone();
    let strip_times = |v: &mut Value| {
        for c in v["conditions"].as_array_mut().into_iter().flatten() {
            if let Some(m) = c.as_object_mut() {
                m.remove("lastUpdateTime");
                m.remove("lastTransitionTime");
            }
        }
    };
    let mut cmp = status.clone();
    strip_times(&mut same);
    strip_times(&mut cmp);
    if same == cmp
        && d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == rev.as_str()
    {
        return !complete && !timed_out;
    }
    let mut next = d.clone();
    next["status"] = status;
    next["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = json!(rev);
    let t = Target {
        rt: rt(st, "apps", "deployments"),
        namespace: Some(ns),
        name: Some(name),
        sub: Some("status".into()),
    };
    handlers::update(st, &t, next, &ctx());
    true
}
