//! The simulated kube-controller-manager and kubelet: Deployment → ReplicaSet → Pods with rolling
//! updates (maxSurge / maxUnavailable), pod readiness after a configurable delay (never, with the
//! pod-template annotation `sim.serin.io/ready: "false"`), Deployment status and conditions with
//! the real reasons (`deploy_status`). Must not import the controller or the decision core.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::deploy_status;
use super::handlers::{self, Target};
use super::resources::ResourceType;
use super::revision::{next_revision, percent_or_int, rev_string, revision_of, template_hash};
use super::state::{Ctx, FieldValidation, SimState};
use super::store::Change;

/// Annotations on a pod template that keep its pods from ever becoming ready.
pub const NEVER_READY: [&str; 2] = ["sim.serin.io/ready", "harness.local/ready"];

/// Tunables of the simulated kubelet.
#[derive(Debug, Clone)]
pub struct KubeletOptions {
    /// How long a new pod takes to become ready.
    pub ready_delay: Duration,
}

impl Default for KubeletOptions {
    fn default() -> Self {
        KubeletOptions {
            ready_delay: Duration::from_millis(300),
        }
    }
}

/// Per-pod readiness timers (the kubelet's memory) and the Deployments it has to look at next.
#[derive(Default)]
pub struct Kubelet {
    born: HashMap<String, Instant>,
    /// Deployments (namespace, name) touched by a change since the last pass.
    dirty: BTreeSet<(String, String)>,
    /// Deployments still in motion after the last pass (pods to ready, deadlines to watch).
    moving: BTreeSet<(String, String)>,
    /// Look at every Deployment next pass (start, missed changes, idle resync).
    everything: bool,
}

pub(super) fn ctx() -> Ctx {
    Ctx {
        manager: "kube-controller-manager".into(),
        field_validation: FieldValidation::Ignore,
        dry_run: false,
        now: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    }
}

pub(super) fn rt(st: &SimState, group: &str, plural: &str) -> ResourceType {
    st.types
        .iter()
        .find(|t| t.group == group && t.plural == plural)
        .cloned()
        .expect("built-in type")
}

/// `metadata.<key>` of an object as an owned string ("" when absent).
pub(super) fn meta_str(v: &Value, key: &str) -> String {
    v["metadata"][key].as_str().unwrap_or_default().to_string()
}

impl Kubelet {
    /// Makes the next pass look at every Deployment (the change stream lagged, or a resync).
    pub fn resync(&mut self) {
        self.everything = true;
    }

    /// Notes the Deployment a change belongs to (itself, or the owner of a ReplicaSet or Pod), so
    /// that a pass visits only what changed: visiting all of them every 50 ms held the state lock
    /// most of the time at a thousand apps.
    pub fn note(&mut self, st: &SimState, change: &Change) {
        let o = &change.object;
        let owner = |o: &Value, kind: &str| -> Option<String> {
            o["metadata"]["ownerReferences"]
                .as_array()?
                .iter()
                .find(|r| r["kind"] == kind)?["name"]
                .as_str()
                .map(String::from)
        };
        let deployment = match change.resource.as_str() {
            "apps/deployments" => Some(meta_str(o, "name")),
            "apps/replicasets" => owner(o, "Deployment"),
            "/pods" => owner(o, "ReplicaSet").and_then(|rs| {
                let key = ("apps/replicasets".into(), change.namespace.clone(), rs);
                owner(st.store.get(&key)?, "Deployment")
            }),
            _ => None,
        };
        if let Some(name) = deployment {
            self.dirty.insert((change.namespace.clone(), name));
        }
    }

    /// One pass over the Deployments that changed or are still in motion (all of them after
    /// `resync`); returns whether anything is still in motion.
    pub fn tick(&mut self, st: &mut SimState, opts: &KubeletOptions) -> bool {
        let deployments: Vec<Value> = if std::mem::take(&mut self.everything) {
            self.dirty.clear();
            st.store
                .list("apps/deployments", None)
                .into_iter()
                .cloned()
                .collect()
        } else {
            let mut keys = std::mem::take(&mut self.dirty);
            keys.append(&mut self.moving);
            keys.into_iter()
                .filter_map(|(ns, name)| {
                    let key = ("apps/deployments".to_string(), ns, name);
                    st.store.get(&key).cloned()
                })
                .collect()
        };
        self.moving.clear();
        for d in deployments {
            if d["metadata"].get("deletionTimestamp").is_some() {
                continue;
            }
            if self.reconcile_deployment(st, &d, opts) {
                self.moving
                    .insert((meta_str(&d, "namespace"), meta_str(&d, "name")));
            }
        }
        !self.moving.is_empty()
    }

    fn reconcile_deployment(
        &mut self,
        st: &mut SimState,
        d: &Value,
        opts: &KubeletOptions,
    ) -> bool {
        let ns = meta_str(d, "namespace");
        let uid = meta_str(d, "uid");
        let name = meta_str(d, "name");
        let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let hash = template_hash(&d["spec"]["template"]);
        let new_rs_name = format!("{name}-{hash}");
        let rss: Vec<Value> = st
            .store
            .dependents("apps/replicasets", &ns, &uid)
            .into_iter()
            .cloned()
            .collect();
        let revision = rss.iter().filter_map(revision_of).max().unwrap_or(0);
        let existing_new = rss
            .iter()
            .find(|r| r["metadata"]["name"] == new_rs_name.as_str())
            .cloned();
        let surge = percent_or_int(
            &d["spec"]["strategy"]["rollingUpdate"]["maxSurge"],
            desired,
            true,
        );
        let mut unavailable = percent_or_int(
            &d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
            desired,
            false,
        );
        if surge == 0 && unavailable == 0 {
            unavailable = 1;
        }
        let recreate = d["spec"]["strategy"]["type"] == "Recreate";
        let pods_of = |st: &SimState, rs: &Value| -> (i64, i64) {
            let rs_uid = rs["metadata"]["uid"].as_str().unwrap_or_default();
            let pods = st.store.dependents("/pods", &ns, rs_uid);
            let ready = pods
                .iter()
                .filter(|p| {
                    p["status"]["conditions"].as_array().is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
                })
                .count() as i64;
            (pods.len() as i64, ready)
        };
        let old: Vec<&Value> = rss
            .iter()
            .filter(|r| r["metadata"]["name"] != new_rs_name.as_str())
            .collect();
        let (old_pods, old_ready): (i64, i64) = old
            .iter()
            .map(|r| pods_of(st, r))
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        let (new_pods, new_ready) = existing_new
            .as_ref()
            .map(|r| pods_of(st, r))
            .unwrap_or((0, 0));
        let new_target = if recreate {
            if old_pods > 0 { 0 } else { desired }
        } else {
            desired.min((desired + surge - old_pods).max(new_pods))
        };
        let new_revision = if existing_new.as_ref().and_then(revision_of) == Some(revision) {
            revision
        } else {
            revision + 1
        };
        let new_rs = self.ensure_rs(
            st,
            d,
            &new_rs_name,
            &hash,
            new_target,
            existing_new.as_ref(),
            desired,
            surge,
        );
        let min_available = desired - unavailable;
        let mut can_remove = if recreate {
            old_pods
        } else {
            (old_ready + new_ready - min_available).max(0) + (old_pods - old_ready)
        };
        for r in &old {
            let current = r["spec"]["replicas"].as_i64().unwrap_or(0);
            let down = current.min(can_remove).max(0);
            can_remove -= down;
            if down > 0 || current > 0 && new_ready >= desired {
                let target = if new_ready >= desired {
                    0
                } else {
                    current - down
                };
                self.scale_rs(st, r, target);
            }
        }
        let mut busy = false;
        let all_rs: Vec<Value> = st
            .store
            .dependents("apps/replicasets", &ns, &uid)
            .into_iter()
            .cloned()
            .collect();
        for r in &all_rs {
            busy |= self.sync_pods(st, r, opts);
        }
        // deploymentutil.MaxUnavailable: 0 for Recreate and for 0 replicas, at most `desired`.
        let max_unavailable = if recreate || desired == 0 {
            0
        } else {
            unavailable.min(desired)
        };
        let rollout = deploy_status::Rollout {
            d,
            new_rs: &new_rs,
            all_rs: &all_rs,
            revision: new_revision,
            created: existing_new.is_none(),
            max_unavailable,
        };
        busy |= deploy_status::write_status(st, &rollout);
        busy
    }

    #[allow(clippy::too_many_arguments)]
    fn ensure_rs(
        &mut self,
        st: &mut SimState,
        d: &Value,
        name: &str,
        hash: &str,
        replicas: i64,
        existing: Option<&Value>,
        desired: i64,
        surge: i64,
    ) -> Value {
        let ns = meta_str(d, "namespace");
        let annotations = json!({"deployment.kubernetes.io/desired-replicas": desired.to_string(), "deployment.kubernetes.io/max-replicas": (desired + surge).to_string()});
        let target = Target {
            rt: rt(st, "apps", "replicasets"),
            namespace: Some(ns.clone()),
            name: Some(name.to_string()),
            sub: None,
        };
        match existing {
            Some(rs) => {
                let same = rs["spec"]["replicas"].as_i64() == Some(replicas)
                    && rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"].as_str()
                        == Some(&rev_string(st, d, rs));
                if same {
                    return rs.clone();
                }
                let mut next = rs.clone();
                next["spec"]["replicas"] = json!(replicas);
                next["metadata"]["annotations"]["deployment.kubernetes.io/revision"] =
                    json!(rev_string(st, d, rs));
                handlers::update(st, &target, next, &ctx()).body
            }
            None => {
                let mut template = d["spec"]["template"].clone();
                template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
                let mut selector = d["spec"]["selector"].clone();
                selector["matchLabels"]["pod-template-hash"] = json!(hash);
                let mut labels = template["metadata"]["labels"].clone();
                if labels.is_null() {
                    labels = json!({});
                }
                let mut ann = annotations;
                ann["deployment.kubernetes.io/revision"] = json!(next_revision(st, d).to_string());
                let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"name": name, "namespace": ns, "labels": labels, "annotations": ann,
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": d["metadata"]["name"], "uid": d["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}]},
                    "spec": {"replicas": replicas, "selector": selector, "template": template, "minReadySeconds": d["spec"]["minReadySeconds"].as_i64().unwrap_or(0)}});
                let t = Target {
                    name: None,
                    ..target
                };
                handlers::create(st, &t, rs, &ctx()).body
            }
        }
    }

    fn scale_rs(&mut self, st: &mut SimState, rs: &Value, replicas: i64) {
        if rs["spec"]["replicas"].as_i64() == Some(replicas) {
            return;
        }
        let mut next = rs.clone();
        next["spec"]["replicas"] = json!(replicas);
        let target = Target {
            rt: rt(st, "apps", "replicasets"),
            namespace: rs["metadata"]["namespace"].as_str().map(String::from),
            name: rs["metadata"]["name"].as_str().map(String::from),
            sub: None,
        };
        handlers::update(st, &target, next, &ctx());
    }

    /// Creates/deletes pods to match the ReplicaSet and readies them after the delay.
    fn sync_pods(&mut self, st: &mut SimState, rs: &Value, opts: &KubeletOptions) -> bool {
        let ns = meta_str(rs, "namespace");
        let uid = meta_str(rs, "uid");
        let want = rs["spec"]["replicas"].as_i64().unwrap_or(0);
        let pods: Vec<Value> = st
            .store
            .dependents("/pods", &ns, &uid)
            .into_iter()
            .cloned()
            .collect();
        let pod_rt = rt(st, "", "pods");
        let mut busy = false;
        for p in pods.iter().skip(want.max(0) as usize) {
            let t = Target {
                rt: pod_rt.clone(),
                namespace: Some(ns.clone()),
                name: p["metadata"]["name"].as_str().map(String::from),
                sub: None,
            };
            handlers::delete(st, &t, &Default::default(), b"", &ctx());
            busy = true;
        }
        for i in pods.len() as i64..want {
            let rs_name = rs["metadata"]["name"].as_str().unwrap_or_default();
            let suffix: String = st
                .next_uid()
                .chars()
                .rev()
                .filter(char::is_ascii_alphanumeric)
                .take(5)
                .collect();
            let pod = json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("{rs_name}-{suffix}{i}"), "namespace": ns, "labels": rs["spec"]["template"]["metadata"]["labels"], "annotations": rs["spec"]["template"]["metadata"]["annotations"],
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name, "uid": uid, "controller": true, "blockOwnerDeletion": true}]},
                "spec": rs["spec"]["template"]["spec"],
                "status": {"phase": "Pending"}});
            let t = Target {
                rt: pod_rt.clone(),
                namespace: Some(ns.clone()),
                name: None,
                sub: None,
            };
            handlers::create(st, &t, pod, &ctx());
            busy = true;
        }
        let never = NEVER_READY
            .iter()
            .any(|k| rs["spec"]["template"]["metadata"]["annotations"][*k] == "false");
        let pods: Vec<Value> = st
            .store
            .dependents("/pods", &ns, &uid)
            .into_iter()
            .cloned()
            .collect();
        for p in pods {
            let key = format!(
                "{}/{}",
                ns,
                p["metadata"]["name"].as_str().unwrap_or_default()
            );
            let born = *self.born.entry(key).or_insert_with(Instant::now);
            let ready = p["status"]["phase"] == "Running";
            if ready || never {
                continue;
            }
            if born.elapsed() < opts.ready_delay {
                busy = true;
                continue;
            }
            let mut next = p.clone();
            let now = ctx().now;
            next["status"] = json!({"phase": "Running", "podIP": "10.244.0.10", "startTime": now,
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}, {"type": "ContainersReady", "status": "True", "lastTransitionTime": now}]});
            let t = Target {
                rt: pod_rt.clone(),
                namespace: Some(ns.clone()),
                name: p["metadata"]["name"].as_str().map(String::from),
                sub: Some("status".into()),
            };
            handlers::update(
                st,
                &t,
                next,
                &Ctx {
                    manager: "kubelet".into(),
                    ..ctx()
                },
            );
            busy = true;
        }
        busy
    }
}
