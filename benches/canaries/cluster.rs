//! The benchmark's world: the embedded cluster (in this process), N apps with their Canaries, a
//! stand-in Prometheus, and `serin controller` as a child process measured through /proc.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use serin::api::Canary;
use serin::sim::{Cluster, KubeletOptions, SimOptions};

const NS: &str = "bench";
/// The ConfigMap all apps read besides their own.
const SHARED_CONFIG: &str = "shared-config";

/// How big and how fast.
pub struct Size {
    pub canaries: usize,
    pub interval: Duration,
    pub steady: Duration,
}

impl Size {
    pub fn full(canaries: usize) -> Size {
        Size {
            canaries,
            interval: Duration::from_secs(10),
            steady: Duration::from_secs(60),
        }
    }

    pub fn smoke() -> Size {
        Size {
            canaries: 10,
            interval: Duration::from_secs(2),
            steady: Duration::from_secs(5),
        }
    }
}

/// Requests the controller made, by RBAC verb (counted at the sim by User-Agent).
#[derive(Clone, Default, Debug)]
pub struct Counts(pub BTreeMap<String, u64>);

impl Counts {
    pub fn since(&self, before: &Counts) -> Counts {
        Counts(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), v - before.0.get(k).copied().unwrap_or(0)))
                .collect(),
        )
    }

    /// Writes of any kind.
    pub fn writes(&self) -> u64 {
        self.0
            .iter()
            .filter(|(k, _)| is_write(k))
            .map(|(_, v)| v)
            .sum()
    }

    /// Writes other than Events.
    pub fn object_writes(&self) -> u64 {
        self.0
            .iter()
            .filter(|(k, _)| is_write(k) && !k.contains("events"))
            .map(|(_, v)| v)
            .sum()
    }
}

fn is_write(key: &str) -> bool {
    ["create ", "update ", "patch ", "delete "]
        .iter()
        .any(|w| key.starts_with(w))
}

pub struct Bench {
    cluster: Cluster,
    client: kube::Client,
    _dir: tempfile::TempDir,
    kubeconfig: std::path::PathBuf,
    prometheus: std::net::SocketAddr,
    controller: Option<Child>,
    metrics_port: u16,
    canaries: usize,
    interval: Duration,
    /// Flags the controller is (re)started with beyond the fixed ones.
    extra_args: Vec<String>,
}

async fn prometheus_stand_in() -> std::io::Result<std::net::SocketAddr> {
    let answer = || async {
        axum::Json(
            json!({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, "99.9"]}]}}),
        )
    };
    let app = axum::Router::new().route("/api/v1/query", axum::routing::get(answer).post(answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(0, |a| a.port())
}

fn proc_field(pid: u32, file: &str, key: &str) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .unwrap_or(0.0)
}

impl Bench {
    pub async fn start(size: &Size) -> Result<Bench, String> {
        let opts = SimOptions {
            kubelet: KubeletOptions {
                ready_delay: Duration::from_millis(200),
            },
            ..Default::default()
        };
        let cluster = Cluster::start_with(opts).await.map_err(|e| e.to_string())?;
        let client = cluster.client();
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        let mut all: Vec<_> = serin::api::crd::all().into_iter().map(|(_, c)| c).collect();
        all.push(gateway_api::apis::standard::httproutes::HttpRoute::crd());
        for crd in all {
            crds.create(&PostParams::default(), &crd)
                .await
                .map_err(|e| e.to_string())?;
        }
        let ns: Api<Namespace> = Api::all(client.clone());
        let obj = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
        ns.create(&PostParams::default(), &obj)
            .await
            .map_err(|e| e.to_string())?;
        // One ConfigMap every app reads: changing it starts every rollout at once.
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
        let shared = json!({"metadata": {"name": SHARED_CONFIG}, "data": {"FEATURE": "off"}});
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(shared).unwrap(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let kubeconfig = dir.path().join("kubeconfig");
        cluster
            .write_kubeconfig(&kubeconfig)
            .map_err(|e| e.to_string())?;
        let prometheus = prometheus_stand_in().await.map_err(|e| e.to_string())?;
        Ok(Bench {
            cluster,
            client,
            _dir: dir,
            kubeconfig,
            prometheus,
            controller: None,
            metrics_port: free_port(),
            canaries: size.canaries,
            interval: size.interval,
            extra_args: Vec::new(),
        })
    }

    /// N × (ConfigMap, Deployment, Canary), 16 at a time.
    pub async fn create_apps(&self) -> Result<(), String> {
        let interval = format!("{}s", self.interval.as_secs());
        let results: Vec<Result<(), String>> = stream::iter(0..self.canaries)
            .map(|i| {
                let client = self.client.clone();
                let interval = interval.clone();
                async move { create_app(&client, i, &interval).await }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        results.into_iter().collect()
    }

    pub fn start_controller(&mut self) -> Result<(), String> {
        let child = Command::new(
            std::env::var_os("SERIN_BENCH_BIN")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| env!("CARGO_BIN_EXE_serin").into()),
        )
        .arg("controller")
        .arg("--kubeconfig")
        .arg(&self.kubeconfig)
        .args(["--namespace", NS, "--log-level"])
        // SERIN_BENCH_LOG (e.g. `warn`, `serin=debug`) shows the controller's log.
        .arg(std::env::var("SERIN_BENCH_LOG").unwrap_or_else(|_| "error".into()))
        .args(&self.extra_args)
        .arg(format!("--metrics-server=http://{}", self.prometheus))
        .arg(format!("--metrics-addr=127.0.0.1:{}", self.metrics_port))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start serin controller: {e}"))?;
        self.controller = Some(child);
        Ok(())
    }

    fn pid(&self) -> u32 {
        self.controller.as_ref().map_or(0, Child::id)
    }

    /// User + system CPU seconds of the controller so far.
    pub fn controller_cpu(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the parenthesised command name: utime is the 12th, stime the 13th.
        let rest = stat.rsplit(')').next().unwrap_or_default();
        let f: Vec<f64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0.0))
            .collect();
        (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / 100.0
    }

    pub fn controller_rss_mib(&self) -> f64 {
        proc_field(self.pid(), "status", "VmRSS:") / 1024.0
    }

    pub fn controller_peak_rss_mib(&self) -> f64 {
        proc_field(self.pid(), "status", "VmHWM:") / 1024.0
    }

    /// The sim's own request latency since the last reset: the controller's requests
    /// (User-Agent `serin`), or every client's.
    pub fn sim_latency(&self, agent: Option<&str>) -> serin::sim::LatencyReport {
        match agent {
            Some(a) => self.cluster.latency_report_for(a),
            None => self.cluster.latency_report(),
        }
    }

    pub fn reset_sim_latency(&self) {
        self.cluster.reset_latency();
    }

    pub fn counts(&self) -> Counts {
        let log = self
            .cluster
            .state()
            .lock()
            .map(|s| s.access_log.clone())
            .unwrap_or_default();
        let mut out = BTreeMap::new();
        for (a, n) in log.iter().filter(|(a, _)| a.agent == "serin") {
            *out.entry(format!("{} {}", a.verb, a.resource)).or_default() += n;
        }
        Counts(out)
    }

    pub async fn canaries(&self) -> Result<Vec<Canary>, String> {
        let api: Api<Canary> = Api::namespaced(self.client.clone(), NS);
        Ok(api
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?
            .items)
    }

    async fn wait_until(
        &self,
        what: &str,
        ok: impl Fn(&Canary) -> bool,
        limit: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            let all = self.canaries().await?;
            let done = all.iter().filter(|c| ok(c)).count();
            if done == self.canaries {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "only {done}/{} canaries {what} after {}s",
                    self.canaries,
                    limit.as_secs()
                ));
            }
            tokio::time::sleep(self.poll_every()).await;
        }
    }

    pub async fn wait_all(
        &self,
        phase: impl Fn(&str) -> bool,
        limit: Duration,
    ) -> Result<(), String> {
        let phase_of = |c: &Canary| {
            c.status
                .as_ref()
                .map(|s| format!("{:?}", s.phase))
                .unwrap_or_default()
        };
        self.wait_until("in the phase", |c| phase(&phase_of(c)), limit)
            .await
    }

    /// Waits until every canary has been seen past its first weight step of the current
    /// rollout (sticky across polls: the first may finish before the last starts). Returns how
    /// many were still in flight at the last poll.
    pub async fn wait_each_stepped(&self, limit: Duration) -> Result<usize, String> {
        use serin::api::CanaryPhase::*;
        let deadline = Instant::now() + limit;
        let mut seen = std::collections::HashSet::new();
        loop {
            let all = self.canaries().await?;
            let mut in_flight = 0;
            for c in &all {
                let Some(s) = &c.status else { continue };
                if s.canary_weight >= 10 || matches!(s.phase, Promoting | Finalising) {
                    seen.insert(c.metadata.name.clone().unwrap_or_default());
                }
                in_flight += usize::from(!matches!(s.phase, Succeeded | Failed));
            }
            if seen.len() == self.canaries {
                return Ok(in_flight);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "only {}/{} canaries took a weight step within {}s",
                    seen.len(),
                    self.canaries,
                    limit.as_secs()
                ));
            }
            tokio::time::sleep(self.poll_every()).await;
        }
    }

    /// Each canary's weight, counting one that is past its weight steps as at the last (50).
    pub async fn weights(&self) -> Result<Vec<i32>, String> {
        Ok(self
            .canaries()
            .await?
            .iter()
            .map(|c| match &c.status {
                Some(s)
                    if matches!(
                        s.phase,
                        serin::api::CanaryPhase::Promoting
                            | serin::api::CanaryPhase::Finalising
                            | serin::api::CanaryPhase::Succeeded
                    ) =>
                {
                    50
                }
                Some(s) => s.canary_weight,
                None => 0,
            })
            .collect())
    }

    /// Waits until every canary is at `w` or past it.
    pub async fn wait_all_reached(&self, w: i32, limit: Duration) -> Result<(), String> {
        use serin::api::CanaryPhase::*;
        self.wait_until(
            "at weight",
            |c| {
                c.status.as_ref().is_some_and(|s| {
                    s.canary_weight >= w || matches!(s.phase, Promoting | Finalising | Succeeded)
                })
            },
            limit,
        )
        .await
    }

    pub async fn new_revision_on_all(&self, version: &str) -> Result<(), String> {
        let results: Vec<Result<(), String>> = stream::iter(0..self.canaries)
            .map(|i| {
                let api: Api<Deployment> = Api::namespaced(self.client.clone(), NS);
                let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": format!("app:{version}")}]}}}});
                async move {
                    api.patch(&format!("app-{i}"), &PatchParams::default(), &Patch::Strategic(patch)).await.map(|_| ()).map_err(|e| e.to_string())
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Kills the controller (SIGKILL), starts a new one and returns how long until it has
    /// reconciled every canary (its `serin_reconcile_total` reaches N).
    pub async fn restart_controller(&mut self) -> Result<Duration, String> {
        if let Some(mut c) = self.controller.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let t = Instant::now();
        self.start_controller()?;
        let url = format!("http://127.0.0.1:{}/metrics", self.metrics_port);
        let http = reqwest::Client::new();
        loop {
            let text = match http.get(&url).send().await {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            let reconciled: f64 = text
                .lines()
                .filter(|l| l.starts_with("serin_reconcile_total{"))
                .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
                .sum();
            if reconciled >= self.canaries as f64 {
                return Ok(t.elapsed());
            }
            if t.elapsed() > Duration::from_secs(300) {
                return Err(
                    "the restarted controller did not reconcile every canary within 300s".into(),
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Flags for the next (re)start of the controller.
    pub fn set_extra_args(&mut self, args: Vec<String>) {
        self.extra_args = args;
    }

    /// How often the benchmark lists every Canary: that listing is its own load on the sim, so
    /// keep it light at scale.
    pub fn poll_every(&self) -> Duration {
        Duration::from_millis(if self.canaries > 50 { 2000 } else { 500 })
    }

    /// The number of apps.
    pub fn size(&self) -> usize {
        self.canaries
    }

    /// Changes the ConfigMap every app reads.
    pub async fn change_shared_config(&self, value: &str) -> Result<(), String> {
        let cms: Api<ConfigMap> = Api::namespaced(self.client.clone(), NS);
        let patch = json!({"data": {"FEATURE": value}});
        cms.patch(SHARED_CONFIG, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.controller.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn create_app(client: &kube::Client, i: usize, interval: &str) -> Result<(), String> {
    let name = format!("app-{i}");
    let e = |e: kube::Error| format!("{name}: {e}");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let cm = serde_json::from_value(
        json!({"metadata": {"name": format!("{name}-config")}, "data": {"LEVEL": "info"}}),
    )
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.map_err(e)?;
    let labels = json!({"app": name});
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let d = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels},
            "spec": {"containers": [{"name": "app", "image": "app:1", "envFrom": [{"configMapRef": {"name": format!("{name}-config")}}, {"configMapRef": {"name": SHARED_CONFIG}}]}]}}}
    })).unwrap();
    deploys
        .create(&PostParams::default(), &d)
        .await
        .map_err(e)?;
    let canaries: Api<Canary> = Api::namespaced(client.clone(), NS);
    let c = serde_json::from_value(json!({
        "apiVersion": "serin.io/v1beta1", "kind": "Canary", "metadata": {"name": name},
        "spec": {"provider": "gatewayapi:v1", "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "service": {"port": 80, "gatewayRefs": [{"name": "public", "namespace": "gateways"}]},
            "analysis": {"interval": interval, "threshold": 2, "stepWeight": 10, "maxWeight": 50,
                "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "1m"}]}}
    })).unwrap();
    canaries
        .create(&PostParams::default(), &c)
        .await
        .map_err(e)?;
    Ok(())
}
