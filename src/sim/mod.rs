//! `serin::sim`: an embedded, in-memory Kubernetes API server speaking the real REST protocol on
//! 127.0.0.1, with a simulated Deployment and DaemonSet controller, kubelet and garbage collector. The real
//! `kube::Client` and `kube::runtime::Controller` run against it unchanged, and so does kubectl.
//! It is held to recordings of a real kube-apiserver (../shared/k8s-transcripts, replayed by
//! tests/transcripts.rs). It can also fail like one, for tests of a controller's recovery: an
//! outage (`Cluster::go_down`, `come_back`, `outage`), injected errors, latency, broken watches,
//! compaction (`SimState::inject_errors` and friends), RBAC refusals and SelfSubjectAccessReviews
//! (`SimState::deny`), and ValidatingAdmissionPolicies. It answers TokenReviews and
//! SubjectAccessReviews from the tokens and grants a test sets (`SimState::add_token`, `grant`).
//! It reports its own request latency (`Cluster::latency_report`), so a benchmark can tell the
//! server's time from its client's.
//! Must not depend on the controller or the decision core.

mod access_review;
mod admission;
mod admission_cel;
mod admission_match;
mod authz;
mod builtin;
mod builtin_types;
mod commit;
mod daemonset;
mod deleting;
mod deploy_status;
mod discovery;
mod faults;
mod fieldset;
mod gc;
mod handlers;
mod identities;
mod kubelet;
mod latency;
mod managed;
mod net;
mod patch;
mod patching;
mod protobuf;
mod reads;
mod resources;
mod reviews;
mod revision;
mod selector;
mod server;
mod state;
mod status;
mod store;
#[cfg(test)]
mod store_tests;
mod table;
mod token_review;
mod views;
mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use authz::DEFAULT_USER;
pub use faults::INJECTED_CAUSE;
pub use kubelet::{KubeletOptions, NEVER_READY};
pub use latency::{LatencyReport, VerbLatency};
pub use revision::template_hash;
pub use state::{Access, SimState};

/// Options of an embedded cluster.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Port to listen on (0 = any free port).
    pub port: u16,
    /// Simulated kubelet settings.
    pub kubelet: KubeletOptions,
    /// How often the simulated controllers look for work.
    pub controller_period: Duration,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            port: 0,
            kubelet: KubeletOptions::default(),
            controller_period: Duration::from_millis(50),
        }
    }
}

/// Controller periods between two garbage collection passes at least (see `gc::Pacer`).
const GC_EVERY: u32 = 6;

/// A running embedded cluster. Dropping it stops the server and the controllers.
pub struct Cluster {
    state: Arc<Mutex<SimState>>,
    front: net::Front,
    /// Whether the API server is up; the simulated controllers pause while it is not.
    up: tokio::sync::watch::Sender<bool>,
    controllers: tokio::task::JoinHandle<()>,
    latencies: Arc<latency::Latencies>,
}

fn lock(state: &Mutex<SimState>) -> std::sync::MutexGuard<'_, SimState> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Cluster {
    /// Starts a cluster on 127.0.0.1 with default options.
    pub async fn start() -> std::io::Result<Cluster> {
        Cluster::start_with(SimOptions::default()).await
    }

    /// Starts a cluster with the given options.
    pub async fn start_with(opts: SimOptions) -> std::io::Result<Cluster> {
        let state = Arc::new(Mutex::new(SimState::new()));
        // The router needs the address for /api's serverAddressByClientCIDRs, which is known
        // once bound: bind first, then build the router, then serve.
        let listener = std::net::TcpListener::bind(("127.0.0.1", opts.port))?;
        let addr = listener.local_addr()?;
        let latencies = Arc::new(latency::Latencies::default());
        let app = server::App {
            state: state.clone(),
            addr: addr.to_string(),
            latencies: latencies.clone(),
        };
        // Bodies up to 16 MiB are read so the 3 MiB limit can answer with a proper 413 Status;
        // beyond that the connection is refused outright.
        let router = axum::Router::new()
            .fallback(server::dispatch)
            .layer(axum::extract::DefaultBodyLimit::max(16 * 1024 * 1024))
            .with_state(app);
        let front = net::Front::start(listener, router)?;
        let (up, up_rx) = tokio::sync::watch::channel(true);
        let controllers = tokio::spawn(run_controllers(state.clone(), opts, up_rx));
        Ok(Cluster {
            state,
            front,
            up,
            controllers,
            latencies,
        })
    }

    /// The server's base URL (the same across outages).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The listening address (the same across outages).
    pub fn addr(&self) -> SocketAddr {
        self.front.addr()
    }

    /// Whether the API server is up (not between `go_down` and `come_back`).
    pub fn is_up(&self) -> bool {
        self.front.is_up()
    }

    /// The API server goes away, as when its process dies: the listener closes (new connections
    /// are refused), every open connection closes at once, watch streams included, and the
    /// simulated controllers (Deployment controller, kubelet, garbage collector) pause, since
    /// kube-controller-manager cannot write without an API server. The store is kept. Tests can
    /// still change the state directly meanwhile.
    pub fn go_down(&self) {
        self.front.go_down();
        self.up.send_replace(false);
    }

    /// The API server comes back on the same port with the store intact and the watch history
    /// compacted, as a restarted kube-apiserver whose watch cache starts at the current
    /// resourceVersion: a watch from any older resourceVersion gets the in-band `ERROR` event with
    /// 410 Expired (`too old resource version: N (M)`, k8s-transcripts 12), so clients list
    /// again. The simulated controllers resume (and look at everything). Nothing happens if the
    /// server is up.
    pub async fn come_back(&self) -> std::io::Result<()> {
        if self.front.is_up() {
            return Ok(());
        }
        lock(&self.state).store.compact();
        self.front.come_back()?;
        self.up.send_replace(true);
        Ok(())
    }

    /// `go_down`, wait `d`, `come_back`.
    pub async fn outage(&self, d: Duration) -> std::io::Result<()> {
        self.go_down();
        tokio::time::sleep(d).await;
        self.come_back().await
    }

    /// A kube config pointing at this cluster (namespace `default`).
    pub fn config(&self) -> kube::Config {
        let mut c = kube::Config::new(self.url().parse().expect("valid URL"));
        c.default_namespace = "default".to_string();
        c.read_timeout = Some(Duration::from_secs(300));
        c
    }

    /// A kube Client for this cluster.
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.config()).expect("client for the embedded cluster")
    }

    /// A kubeconfig YAML for kubectl and other clients.
    pub fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: serin-sim\n  cluster:\n    server: {}\nusers:\n- name: serin-sim\n  user: {{}}\ncontexts:\n- name: serin-sim\n  context:\n    cluster: serin-sim\n    user: serin-sim\n    namespace: default\ncurrent-context: serin-sim\n",
            self.url()
        )
    }

    /// Writes the kubeconfig to a file.
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
    }

    /// Direct access to the state (tests, benchmarks: counts, faults, denials, compaction).
    pub fn state(&self) -> Arc<Mutex<SimState>> {
        self.state.clone()
    }

    /// The server's own request latency since the start (or the last `reset_latency`): from the
    /// request reaching the server to its response being ready (a watch: its initial events
    /// encoded), overall and by verb, over every client.
    pub fn latency_report(&self) -> LatencyReport {
        self.latencies.report(None)
    }

    /// `latency_report` over the requests of one client (User-Agent up to the first `/`, e.g.
    /// `serin`).
    pub fn latency_report_for(&self, agent: &str) -> LatencyReport {
        self.latencies.report(Some(agent))
    }

    /// Forgets the latencies recorded so far (a benchmark's measured phase starts).
    pub fn reset_latency(&self) {
        self.latencies.reset();
    }

    /// Stops the server and its controllers.
    pub fn stop(self) {}
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.front.go_down();
        self.controllers.abort();
    }
}

async fn run_controllers(
    state: Arc<Mutex<SimState>>,
    opts: SimOptions,
    mut up: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::sync::broadcast::error::TryRecvError;
    let mut kubelet = kubelet::Kubelet::default();
    let mut daemonsets = daemonset::DaemonSets::default();
    let mut rx = match state.lock() {
        Ok(s) => s.store.subscribe(),
        Err(p) => p.into_inner().store.subscribe(),
    };
    kubelet.resync();
    let mut gc = gc::Pacer::new(opts.controller_period * GC_EVERY);
    let mut busy = true;
    let mut first = None;
    loop {
        if !*up.borrow_and_update() {
            // kube-controller-manager cannot read or write while the API server is away; once it
            // is back, its informers list everything again.
            if up.wait_for(|up| *up).await.is_err() {
                return;
            }
            kubelet.resync();
            gc.ask();
            busy = true;
        }
        if !busy {
            // Sleep until something changes; when nothing does for a while, look at everything
            // (timers like progress deadlines, and a safety net for the change bookkeeping).
            match tokio::time::timeout(opts.controller_period * 20, rx.recv()).await {
                Ok(Ok(change)) => first = Some(change),
                Ok(Err(_)) | Err(_) => {
                    kubelet.resync();
                    gc.ask();
                }
            }
        }
        tokio::time::sleep(opts.controller_period).await;
        if !*up.borrow() {
            continue;
        }
        let mut st = lock(&state);
        // Everything that changed since the last pass, our own writes included: they may have
        // made more work (a new ReplicaSet needs pods; pods need a status).
        let mut changes: Vec<_> = first.take().into_iter().collect();
        loop {
            match rx.try_recv() {
                Ok(change) => changes.push(change),
                Err(TryRecvError::Lagged(_)) => {
                    kubelet.resync();
                    gc.ask();
                }
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        for change in &changes {
            kubelet.note(&st, change);
            gc.note(change);
        }
        let collected = gc.run(&mut st);
        let k = kubelet.tick(&mut st, &opts.kubelet);
        let k = daemonsets.tick(&mut st, &opts.kubelet) || k;
        drop(st);
        busy = collected || gc.pending() || k || !changes.is_empty();
    }
}
