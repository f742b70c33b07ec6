//! What one app looks like right now, read straight from the embedded cluster's store under its
//! lock: the Canary's status, the HTTPRoute's weights and both Deployments. No API request, so it
//! works during an outage, sees no injected fault and adds no load to the server under test.

use std::sync::{Arc, Mutex};

use serde_json::Value;
use serin::sim::SimState;

/// The namespace of every app.
pub const NS: &str = "soak";

/// The name of app `i` (its Deployment, Canary and HTTPRoute).
pub fn app_name(i: usize) -> String {
    format!("app-{i}")
}

/// One app at one instant.
#[derive(Debug, Clone, Default)]
pub struct AppView {
    /// `status.phase` ("" before the controller's first write).
    pub phase: String,
    /// `status.lastAppliedSpec`: the revision the Canary is about (keys a rollout).
    pub last_applied: Option<String>,
    /// `status.canaryWeight`.
    pub weight: i64,
    /// The HTTPRoute's (primary, canary) weights, when the route names both backends.
    pub route: Option<(i64, i64)>,
    /// The target (canary) Deployment's `spec.replicas`.
    pub target_replicas: i64,
    /// The target's `status.readyReplicas`.
    pub target_ready: i64,
    /// The primary's `status.readyReplicas`.
    pub primary_ready: i64,
    /// The primary's container image ("" when there is no primary yet).
    pub primary_image: String,
    /// The last few decision records' actions, newest last (evidence for the report).
    pub last_actions: Vec<String>,
    /// The Canary's resourceVersion: it moves exactly when the Canary is written (the bench never
    /// writes Canaries after creating them, so every move is the controller's).
    pub rv: u64,
}

impl AppView {
    /// Whether the Canary is analysing a revision (the phases in which its weight only rises).
    pub fn in_analysis(&self) -> bool {
        matches!(self.phase.as_str(), "Progressing" | "WaitingPromotion")
    }

    /// Whether the Canary is at rest after a rollout (or before the first one).
    pub fn settled(&self) -> bool {
        matches!(self.phase.as_str(), "Initialized" | "Succeeded" | "Failed")
    }

    /// A one-line description for violation records.
    pub fn describe(&self) -> String {
        format!(
            "phase {} weight {} route {:?} canary ready {}/{} primary ready {} image {} rev {} last actions {:?}",
            self.phase,
            self.weight,
            self.route,
            self.target_ready,
            self.target_replicas,
            self.primary_ready,
            self.primary_image,
            short(self.last_applied.as_deref()),
            self.last_actions
        )
    }
}

/// The first characters of a revision checksum, enough to tell revisions apart in a report.
pub fn short(rev: Option<&str>) -> String {
    rev.map_or_else(|| "-".into(), |r| r.chars().take(10).collect())
}

fn key(resource: &str, name: &str) -> (String, String, String) {
    (resource.into(), NS.into(), name.into())
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// (primary, canary) weights of the first rule naming both backends; Gateway API's default weight
/// is 1.
fn route_weights(route: &Value, app: &str) -> Option<(i64, i64)> {
    let (primary, canary) = (format!("{app}-primary"), format!("{app}-canary"));
    route["spec"]["rules"].as_array()?.iter().find_map(|r| {
        let refs = r["backendRefs"].as_array()?;
        let w = |n: &str| {
            refs.iter()
                .find(|b| b["name"] == n)
                .map(|b| b["weight"].as_i64().unwrap_or(1))
        };
        Some((w(&primary)?, w(&canary)?))
    })
}

fn view(app: &str, canary: &Value, route: &Value, target: &Value, primary: &Value) -> AppView {
    let status = &canary["status"];
    let last_actions = status["decisions"]
        .as_array()
        .map(|d| {
            d.iter()
                .rev()
                .take(3)
                .rev()
                .filter_map(|r| r["action"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    AppView {
        phase: status["phase"].as_str().unwrap_or_default().to_string(),
        last_applied: status["lastAppliedSpec"].as_str().map(String::from),
        weight: int(&status["canaryWeight"]),
        route: route_weights(route, app),
        target_replicas: target["spec"]["replicas"].as_i64().unwrap_or(1),
        target_ready: int(&target["status"]["readyReplicas"]),
        primary_ready: int(&primary["status"]["readyReplicas"]),
        primary_image: primary["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        last_actions,
        rv: canary["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .unwrap_or(0),
    }
}

/// The four objects of an app: Canary, HTTPRoute, target and primary Deployments (Null when
/// absent).
fn objects(st: &SimState, name: &str) -> [Value; 4] {
    let get = |resource: &str, n: &str| {
        st.store
            .get(&key(resource, n))
            .cloned()
            .unwrap_or(Value::Null)
    };
    [
        get("serin.io/canaries", name),
        get("gateway.networking.k8s.io/httproutes", name),
        get("apps/deployments", name),
        get("apps/deployments", &format!("{name}-primary")),
    ]
}

fn lock(state: &Arc<Mutex<SimState>>) -> std::sync::MutexGuard<'_, SimState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every app's view at one instant (one lock of the state; objects cloned under it, parsed
/// outside it, so the server under test is held up as little as possible).
pub fn read_all(state: &Arc<Mutex<SimState>>, apps: usize) -> Vec<AppView> {
    let raw: Vec<[Value; 4]> = {
        let st = lock(state);
        (0..apps).map(|i| objects(&st, &app_name(i))).collect()
    };
    raw.iter()
        .enumerate()
        .map(|(i, [c, r, t, p])| view(&app_name(i), c, r, t, p))
        .collect()
}

/// One app's view.
pub fn read_one(state: &Arc<Mutex<SimState>>, app: usize) -> AppView {
    let name = app_name(app);
    let raw = objects(&lock(state), &name);
    let [c, r, t, p] = &raw;
    view(&name, c, r, t, p)
}

/// The store's current resourceVersion (the global counter).
pub fn store_rv(state: &Arc<Mutex<SimState>>) -> u64 {
    lock(state).store.rv()
}
