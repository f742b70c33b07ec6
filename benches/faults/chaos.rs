//! The chaos around the controller, on a seeded RNG: SIGKILL of the controller at random moments,
//! and some aimed at the moments where a lost status write matters most — right after a webhook
//! call, right after the controller changed a route — each followed by a restart,
//! API outages (connection refused, every connection closed, watch history compacted on return),
//! bursts of injected 500s and 409s, latency on every answer for a while, dropped watches, a
//! compacted watch history (410 Gone), and the Prometheus stand-in refusing connections for a
//! while. Events of the kinds that last (outage, latency, Prometheus, an aimed kill waiting for
//! its moment) run alongside the others, one of each kind at a time. After each outage: how long
//! until the controller writes the status of a Canary that had work due.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serin::sim::Cluster;

use crate::controller::{self, Shared};
use crate::ledger::Ledger;
use crate::snapshot::{AppView, read_all, store_rv};
use crate::standins::{Prometheus, Receiver};

/// The kinds of chaos, with their weight in the random draw of the full run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Kill,
    KillAfterHook,
    KillAfterRoute,
    Outage,
    Errors500,
    Conflicts409,
    Latency,
    DropWatches,
    Compact,
    PrometheusStop,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Kill,
        Kind::KillAfterHook,
        Kind::KillAfterRoute,
        Kind::Outage,
        Kind::Errors500,
        Kind::Conflicts409,
        Kind::Latency,
        Kind::DropWatches,
        Kind::Compact,
        Kind::PrometheusStop,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Kill => "controller SIGKILL at a random moment",
            Kind::KillAfterHook => "controller SIGKILL just after a webhook call",
            Kind::KillAfterRoute => "controller SIGKILL just after a route write",
            Kind::Outage => "API outage (connection refused)",
            Kind::Errors500 => "burst of injected 500s",
            Kind::Conflicts409 => "burst of injected 409s",
            Kind::Latency => "API latency for a while",
            Kind::DropWatches => "watches dropped",
            Kind::Compact => "watch history compacted (410 Gone)",
            Kind::PrometheusStop => "Prometheus refusing connections",
        }
    }

    fn weight(self) -> u32 {
        match self {
            Kind::Kill => 3,
            Kind::KillAfterHook | Kind::KillAfterRoute | Kind::Errors500 | Kind::Conflicts409 => 2,
            _ => 1,
        }
    }
}

/// How hard and how often.
#[derive(Clone)]
pub struct Settings {
    /// Smoke: each kind once, in a shuffled order, then stop. Full: random draws until told.
    pub smoke: bool,
    /// Pause between two events, ms (min, max).
    pub gap_ms: (u64, u64),
    /// API outage length, ms.
    pub outage_ms: (u64, u64),
    /// Prometheus down, ms.
    pub prometheus_ms: (u64, u64),
    /// Least time between the end of an outage or a Prometheus stop and the start of the next
    /// one, ms.
    pub quiet_ms: u64,
    /// Latency period, ms; and the latency itself.
    pub latency_for_ms: (u64, u64),
    pub latency_ms: (u64, u64),
}

/// One API outage.
#[derive(Debug, Clone)]
pub struct Outage {
    pub down_s: f64,
    /// From `come_back` to the first status write of a Canary that had work due then (None: none
    /// within 120 s).
    pub settle_s: Option<f64>,
    /// No Canary had work due at the return (all at rest, or waiting for a canary that never
    /// becomes ready): no write was to be expected.
    pub idle: bool,
}

/// What the chaos did.
#[derive(Default, Debug)]
pub struct Results {
    pub counts: BTreeMap<&'static str, u32>,
    pub outages: Vec<Outage>,
    pub prometheus_down_s: f64,
    pub latency_s: f64,
    /// Injected errors handed out (500s, 409s).
    pub injected_500: u32,
    pub injected_409: u32,
}

/// What the chaos acts on.
#[derive(Clone)]
pub struct Env {
    pub cluster: Arc<Cluster>,
    pub ctl: Shared,
    pub prometheus: Arc<Prometheus>,
    pub hooks: Arc<Receiver>,
    pub ledger: Arc<Ledger>,
    pub apps: usize,
    /// Held from a kill to the restart, so that two kills never overlap (one controller at a
    /// time, as without leader election there must be).
    pub kill_lock: Arc<tokio::sync::Mutex<()>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn between(rng: &mut fastrand::Rng, (lo, hi): (u64, u64)) -> Duration {
    Duration::from_millis(rng.u64(lo..=hi))
}

fn draw(rng: &mut fastrand::Rng) -> Kind {
    let total: u32 = Kind::ALL.iter().map(|k| k.weight()).sum();
    let mut n = rng.u32(0..total);
    for k in Kind::ALL {
        if n < k.weight() {
            return k;
        }
        n -= k.weight();
    }
    Kind::Kill
}

/// Kills the controller, waits `pause`, starts a new one.
async fn kill_and_restart(env: &Env, why: String, pause: Duration) {
    let _one_at_a_time = env.kill_lock.lock().await;
    let pid = controller::lock(&env.ctl).kill();
    env.ledger
        .note(format!("SIGKILL controller pid {pid:?} ({why})"));
    tokio::time::sleep(pause).await;
    match controller::lock(&env.ctl).start() {
        Ok(pid) => env.ledger.note(format!("controller started (pid {pid})")),
        Err(e) => env.ledger.note(format!("controller restart failed: {e}")),
    }
}

/// Waits for the next webhook call (up to 30 s), then kills within 0-30 ms of it; with no call
/// in that time, kills anyway.
async fn kill_after_hook(env: Env, delay: Duration, pause: Duration) {
    let mut ticks = env.hooks.ticks();
    ticks.borrow_and_update();
    let called = tokio::time::timeout(Duration::from_secs(30), ticks.changed())
        .await
        .is_ok();
    tokio::time::sleep(delay).await;
    let why = match env.hooks.calls().pop() {
        Some(c) if called => format!(
            "{} ms after {} of {} rev {}",
            delay.as_millis(),
            c.kind,
            c.app,
            crate::snapshot::short(Some(&c.checksum))
        ),
        _ => "no webhook call within 30 s".to_string(),
    };
    kill_and_restart(&env, why, pause).await;
}

/// Waits for the controller's next write of an HTTPRoute (seen in the store's change stream, so
/// within a millisecond or so of it), then kills at once: the weights have moved and the status
/// write that records the step is still to come.
async fn kill_after_route(env: Env, pause: Duration) {
    let mut changes = env
        .cluster
        .state()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .store
        .subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let why = loop {
        match tokio::time::timeout_at(deadline, changes.recv()).await {
            Err(_) => break "no route write within 30 s".to_string(),
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(_)) => break "change stream closed".to_string(),
            Ok(Ok(c)) if c.resource == "gateway.networking.k8s.io/httproutes" => {
                let name = c.object["metadata"]["name"].as_str().unwrap_or_default();
                break route_write(&env, name);
            }
            Ok(Ok(_)) => {}
        }
    };
    kill_and_restart(&env, why, pause).await;
}

/// What the store holds right after a route write: the route ahead of the status is the window
/// a kill aims at.
fn route_write(env: &Env, name: &str) -> String {
    let app = name.strip_prefix("app-").and_then(|n| n.parse().ok());
    match app.map(|i| crate::snapshot::read_one(&env.cluster.state(), i)) {
        Some(v) => format!(
            "just after a write of route {name}: route {:?}, status {} weight {}",
            v.route, v.phase, v.weight
        ),
        None => format!("just after a write of route {name}"),
    }
}

/// Down for `d`, back, then the time to the first Canary status write.
async fn outage(env: Env, d: Duration, results: Arc<Mutex<Results>>) {
    env.cluster.go_down();
    env.ledger
        .note(format!("API server down for {:.1}s", d.as_secs_f64()));
    tokio::time::sleep(d).await;
    if let Err(e) = env.cluster.come_back().await {
        env.ledger
            .note(format!("API server could not come back: {e}"));
    }
    let state = env.cluster.state();
    let rv = store_rv(&state);
    env.ledger.note("API server back");
    let back = Instant::now();
    // Canaries with work due: mid-rollout with a ready canary (steps every interval), or
    // promoting. One waiting for a canary that never becomes ready has nothing to write.
    let due = |v: &AppView| {
        (v.in_analysis() && v.target_ready > 0)
            || matches!(v.phase.as_str(), "Promoting" | "Finalising")
    };
    let busy: Vec<usize> = read_all(&state, env.apps)
        .iter()
        .enumerate()
        .filter(|(_, v)| due(v))
        .map(|(i, _)| i)
        .collect();
    let settle_s = loop {
        if busy.is_empty() {
            break None;
        }
        let views = read_all(&state, env.apps);
        if busy.iter().any(|&i| views[i].rv > rv) {
            break Some(back.elapsed().as_secs_f64());
        }
        if back.elapsed() > Duration::from_secs(120) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    lock(&results).outages.push(Outage {
        down_s: d.as_secs_f64(),
        settle_s,
        idle: busy.is_empty(),
    });
}

async fn prometheus_stop(env: Env, d: Duration, results: Arc<Mutex<Results>>) {
    env.prometheus.stop();
    env.ledger
        .note(format!("Prometheus down for {:.1}s", d.as_secs_f64()));
    tokio::time::sleep(d).await;
    if let Err(e) = env.prometheus.resume().await {
        env.ledger.note(e);
    }
    env.ledger.note("Prometheus back");
    lock(&results).prometheus_down_s += d.as_secs_f64();
}

async fn latency(env: Env, each: Duration, d: Duration, results: Arc<Mutex<Results>>) {
    let state = env.cluster.state();
    lock(&state).set_latency(each);
    env.ledger.note(format!(
        "latency {} ms for {:.1}s",
        each.as_millis(),
        d.as_secs_f64()
    ));
    tokio::time::sleep(d).await;
    lock(&state).set_latency(Duration::ZERO);
    env.ledger.note("latency off");
    lock(&results).latency_s += d.as_secs_f64();
}

const ERROR_TARGETS: [&str; 5] = [
    "deployments.apps",
    "canaries.serin.io",
    "httproutes.gateway.networking.k8s.io",
    "services",
    "*",
];

/// Kinds that last, one of each at a time. An API outage and a Prometheus stop never overlap and
/// are `quiet` apart: together they could keep the metrics from being observed for longer than
/// progressDeadlineSeconds, and then rolling a healthy revision back is what the controller must
/// do (the soak would report its own chaos).
#[derive(Default)]
struct Busy {
    unavailable: Arc<AtomicBool>,
    latency: Arc<AtomicBool>,
    hook_kill: Arc<AtomicBool>,
    route_kill: Arc<AtomicBool>,
}

/// Runs a lasting event in the background unless one of its kind is running. Returns whether it
/// started.
/// The next of its kind starts no sooner than `quiet` after it ends.
fn spawn_lasting<F>(
    tasks: &mut tokio::task::JoinSet<()>,
    flag: &Arc<AtomicBool>,
    quiet: Duration,
    f: F,
) -> bool
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    if flag.swap(true, Ordering::SeqCst) {
        return false;
    }
    let flag = flag.clone();
    tasks.spawn(async move {
        f.await;
        tokio::time::sleep(quiet).await;
        flag.store(false, Ordering::SeqCst);
    });
    true
}

/// Carries out one event; false when it could not happen now (one of its kind is running).
async fn act(
    kind: Kind,
    env: &Env,
    s: &Settings,
    rng: &mut fastrand::Rng,
    busy: &Busy,
    tasks: &mut tokio::task::JoinSet<()>,
    results: &Arc<Mutex<Results>>,
) -> bool {
    let state = env.cluster.state();
    let quiet = Duration::from_millis(s.quiet_ms);
    match kind {
        Kind::Kill => {
            let pause = Duration::from_millis(rng.u64(0..=2000));
            kill_and_restart(env, "random moment".into(), pause).await;
        }
        Kind::KillAfterHook => {
            let delay = Duration::from_millis(rng.u64(0..=30));
            let pause = Duration::from_millis(rng.u64(0..=2000));
            let f = kill_after_hook(env.clone(), delay, pause);
            return spawn_lasting(tasks, &busy.hook_kill, Duration::ZERO, f);
        }
        Kind::KillAfterRoute => {
            let pause = Duration::from_millis(rng.u64(0..=2000));
            let f = kill_after_route(env.clone(), pause);
            return spawn_lasting(tasks, &busy.route_kill, Duration::ZERO, f);
        }
        Kind::Outage => {
            let d = between(rng, s.outage_ms);
            let f = outage(env.clone(), d, results.clone());
            return spawn_lasting(tasks, &busy.unavailable, quiet, f);
        }
        Kind::PrometheusStop => {
            let d = between(rng, s.prometheus_ms);
            let f = prometheus_stop(env.clone(), d, results.clone());
            return spawn_lasting(tasks, &busy.unavailable, quiet, f);
        }
        Kind::Latency => {
            let (each, d) = (between(rng, s.latency_ms), between(rng, s.latency_for_ms));
            let f = latency(env.clone(), each, d, results.clone());
            return spawn_lasting(tasks, &busy.latency, Duration::ZERO, f);
        }
        Kind::Errors500 | Kind::Conflicts409 => {
            let (code, targets) = match kind {
                Kind::Errors500 => (500, &ERROR_TARGETS[..]),
                // 409 is the answer to a named write only; "*" would add nothing.
                _ => (409, &ERROR_TARGETS[..4]),
            };
            let target = targets[rng.usize(0..targets.len())];
            let n = rng.u32(3..=15);
            lock(&state).inject_errors(target, code, n);
            env.ledger
                .note(format!("{n} × {code} injected on {target}"));
            let mut r = lock(results);
            *if code == 500 {
                &mut r.injected_500
            } else {
                &mut r.injected_409
            } += n;
        }
        Kind::DropWatches => {
            lock(&state).drop_watches();
            env.ledger.note("watches dropped");
        }
        Kind::Compact => {
            lock(&state).compact();
            env.ledger.note("watch history compacted");
        }
    }
    true
}

/// Runs the chaos until `stop` turns true (full) or every kind has happened once (smoke), then
/// waits for the lasting events to end and puts everything back up.
pub async fn run(
    env: Env,
    s: Settings,
    seed: u64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Results {
    let mut rng = fastrand::Rng::with_seed(seed);
    let results = Arc::new(Mutex::new(Results::default()));
    let mut tasks = tokio::task::JoinSet::new();
    let busy = Busy::default();
    let mut todo: Vec<Kind> = Kind::ALL.to_vec();
    rng.shuffle(&mut todo);
    loop {
        let gap = between(&mut rng, s.gap_ms);
        tokio::select! {
            _ = stop.wait_for(|s| *s), if !s.smoke => break,
            _ = tokio::time::sleep(gap) => {}
        }
        let kind = if s.smoke {
            match todo.pop() {
                Some(k) => k,
                None => break,
            }
        } else {
            draw(&mut rng)
        };
        if act(kind, &env, &s, &mut rng, &busy, &mut tasks, &results).await {
            *lock(&results).counts.entry(kind.name()).or_default() += 1;
        } else if s.smoke {
            // Every kind must happen in the smoke run: try this one again later.
            todo.insert(0, kind);
        }
    }
    while tasks.join_next().await.is_some() {}
    let _ = env.cluster.come_back().await;
    lock(&env.cluster.state()).set_latency(Duration::ZERO);
    let _ = env.prometheus.resume().await;
    std::mem::take(&mut *lock(&results))
}
