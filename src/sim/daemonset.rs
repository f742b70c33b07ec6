//! The simulated DaemonSet controller: one simulated node (`sim-node-0`, labelled
//! `kubernetes.io/hostname` and `kubernetes.io/os: linux`); a DaemonSet whose pod template's
//! nodeSelector matches it wants one pod there. No Pod objects are made: the status counters
//! follow the template after the kubelet's ready delay (never, with `sim.serin.io/ready: "false"`),
//! which is what controllers of DaemonSets read.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};
use tokio::time::Instant;

use super::handlers::{self, Target};
use super::kubelet::{KubeletOptions, NEVER_READY, ctx, meta_str, rt};
use super::revision::template_hash;
use super::state::SimState;

/// The labels of the one simulated node.
pub fn node_labels() -> BTreeMap<&'static str, &'static str> {
    [
        ("kubernetes.io/hostname", "sim-node-0"),
        ("kubernetes.io/os", "linux"),
    ]
    .into()
}

/// When each DaemonSet's current template was first seen (its pods' birth).
#[derive(Default)]
pub struct DaemonSets {
    seen: HashMap<String, (String, Instant)>,
}

impl DaemonSets {
    /// One pass over every DaemonSet; returns whether anything is still in motion.
    pub fn tick(&mut self, st: &mut SimState, opts: &KubeletOptions) -> bool {
        let all: Vec<Value> = st
            .store
            .list("apps/daemonsets", None)
            .into_iter()
            .filter(|d| d["metadata"].get("deletionTimestamp").is_none())
            .cloned()
            .collect();
        let mut busy = false;
        for d in all {
            busy |= self.reconcile(st, &d, opts);
        }
        busy
    }

    fn reconcile(&mut self, st: &mut SimState, d: &Value, opts: &KubeletOptions) -> bool {
        let ns = meta_str(d, "namespace");
        let name = meta_str(d, "name");
        let template = &d["spec"]["template"];
        let hash = template_hash(template);
        let node = node_labels();
        let fits = template["spec"]["nodeSelector"]
            .as_object()
            .is_none_or(|sel| {
                sel.iter()
                    .all(|(k, v)| node.get(k.as_str()).is_some_and(|n| v == *n))
            });
        let desired = i64::from(fits);
        let entry = self
            .seen
            .entry(format!("{ns}/{name}"))
            .or_insert_with(|| (hash.clone(), Instant::now()));
        if entry.0 != hash {
            *entry = (hash.clone(), Instant::now());
        }
        let never = NEVER_READY
            .iter()
            .any(|k| template["metadata"]["annotations"][*k] == "false");
        let waiting = entry.1.elapsed() < opts.ready_delay;
        let ready = if never || waiting { 0 } else { desired };
        let status = json!({
            "observedGeneration": d["metadata"]["generation"],
            "desiredNumberScheduled": desired,
            "currentNumberScheduled": desired,
            "updatedNumberScheduled": desired,
            "numberMisscheduled": 0,
            "numberReady": ready,
            "numberAvailable": ready,
            "numberUnavailable": desired - ready,
        });
        let mut status = status;
        for k in ["numberAvailable", "numberUnavailable"] {
            if status[k] == 0 {
                status.as_object_mut().map(|m| m.remove(k));
            }
        }
        if d["status"] == status {
            return waiting && !never && desired > 0;
        }
        let mut next = d.clone();
        next["status"] = status;
        let t = Target {
            rt: rt(st, "apps", "daemonsets"),
            namespace: Some(ns),
            name: Some(name),
            sub: Some("status".into()),
        };
        handlers::update(st, &t, next, &ctx());
        true
    }
}
