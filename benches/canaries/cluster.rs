//! The benchmark's run: its world (embedded or outside cluster, see `world`), N apps with their
//! Canaries, a stand-in Prometheus, and the controller processes (see `controllers`); waits on
//! the Canaries' status and counts the controllers' API requests from their own /metrics.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use kube::api::{Api, ListParams};
use serde_json::json;
use serin::api::{Canary, CanaryPhase};

use crate::apps::{self, AppSpec};
use crate::controllers::Controllers;
use crate::scrape::{Counts, Scrape};
use crate::world::{RUN_LABEL, World};

/// How big and how fast.
pub struct Size {
    pub canaries: usize,
    pub interval: Duration,
    pub steady: Duration,
    /// Whether the `--max-concurrent-canaries` part runs.
    pub cap: bool,
}

impl Size {
    pub fn full(canaries: usize) -> Size {
        Size {
            canaries,
            interval: Duration::from_secs(10),
            steady: Duration::from_secs(60),
            cap: true,
        }
    }

    pub fn smoke() -> Size {
        Size {
            canaries: 10,
            interval: Duration::from_secs(2),
            steady: Duration::from_secs(5),
            cap: true,
        }
    }
}

/// Where and how: the command line beyond the size.
#[derive(Clone, Default)]
pub struct Where {
    /// Outside cluster; None: the embedded one.
    pub kubeconfig: Option<std::path::PathBuf>,
    pub namespace_prefix: String,
    /// Namespaces on an outside cluster.
    pub namespaces: usize,
    pub image: Option<String>,
    /// Controller processes, each owning one shard (0: one controller, no --shard-selector).
    pub shards: usize,
}

pub struct Bench {
    pub world: World,
    pub controllers: Controllers,
    canaries: usize,
    interval: Duration,
    image: String,
    shards: usize,
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

impl Bench {
    pub async fn start(
        size: &Size,
        at: &Where,
        cleanup: crate::world::Shared,
    ) -> Result<Bench, String> {
        let world = match &at.kubeconfig {
            None => World::embedded().await?,
            Some(path) => {
                World::outside(
                    path.clone(),
                    &at.namespace_prefix,
                    at.namespaces.min(size.canaries),
                    cleanup,
                )
                .await?
            }
        };
        let prometheus = prometheus_stand_in().await.map_err(|e| e.to_string())?;
        let mut base = vec![format!("--metrics-server=http://{prometheus}")];
        let run_selector = if world.sim.is_some() {
            // As before issue 20: one namespace, the controller watches only it.
            base.push(format!("--namespace={}", world.namespaces[0]));
            None
        } else {
            // Several namespaces: every namespace is watched, but only this run's Canaries are
            // owned (the API server filters the Canary watch), and Secrets only in its own.
            base.push(format!(
                "--secret-namespaces={}",
                world.namespaces.join(",")
            ));
            Some(format!("{RUN_LABEL}={}", world.run))
        };
        let selectors: Vec<Option<String>> = if at.shards == 0 {
            vec![run_selector]
        } else {
            (0..at.shards)
                .map(|k| {
                    let shard = format!("{}={}", apps::SHARD_KEY, apps::shard_name(k));
                    Some(match &run_selector {
                        Some(r) => format!("{r},{shard}"),
                        None => shard,
                    })
                })
                .collect()
        };
        let controllers = Controllers::new(world.kubeconfig.clone(), base, selectors);
        let image = at.image.clone().unwrap_or_else(|| {
            if world.sim.is_some() {
                "app:1"
            } else {
                "ghcr.io/stefanprodan/podinfo:6.7.1"
            }
            .into()
        });
        Ok(Bench {
            world,
            controllers,
            canaries: size.canaries,
            interval: size.interval,
            image,
            shards: at.shards,
        })
    }

    /// N × (ConfigMap, Deployment, Canary), 16 at a time, round-robin over the namespaces (and
    /// the shards).
    pub async fn create_apps(&self) -> Result<(), String> {
        let interval = format!("{}s", self.interval.as_secs());
        let results: Vec<Result<(), String>> = stream::iter(0..self.canaries)
            .map(|i| {
                let spec = AppSpec {
                    namespace: self.world.namespace_of(i),
                    index: i,
                    interval: &interval,
                    image: &self.image,
                    run: &self.world.run,
                    shard: (self.shards > 0).then(|| apps::shard_name(i % self.shards)),
                };
                async move { apps::create_app(&self.world.client, &spec).await }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        results.into_iter().collect()
    }

    pub fn start_controller(&mut self) -> Result<(), String> {
        self.controllers.start()
    }

    /// The sim's own request latency since the last reset (embedded only): the controllers'
    /// requests (User-Agent `serin`), or every client's.
    pub fn sim_latency(&self, agent: Option<&str>) -> Option<serin::sim::LatencyReport> {
        let sim = self.world.sim.as_ref()?;
        Some(match agent {
            Some(a) => sim.latency_report_for(a),
            None => sim.latency_report(),
        })
    }

    pub fn reset_sim_latency(&self) {
        if let Some(sim) = &self.world.sim {
            sim.reset_latency();
        }
    }

    /// The controllers' own counts (`serin_kube_api_requests_total`) and breakdown, summed.
    pub async fn scrape(&self) -> Scrape {
        self.controllers.scrape().await
    }

    /// Embedded only: the controllers' requests as the sim's access log counts them (a
    /// cross-check of their own count).
    pub fn sim_counts(&self) -> Option<Counts> {
        let sim = self.world.sim.as_ref()?;
        let log = sim.state().lock().map(|s| s.access_log.clone()).ok()?;
        let mut out = BTreeMap::new();
        for (a, n) in log.iter().filter(|(a, _)| a.agent == "serin") {
            *out.entry(format!("{} {}", a.verb, a.resource)).or_default() += n;
        }
        Some(Counts(out))
    }

    /// This run's Canaries, from every namespace.
    pub async fn canaries(&self) -> Result<Vec<Canary>, String> {
        let mut out = Vec::new();
        let lp = ListParams::default().labels(&format!("{RUN_LABEL}={}", self.world.run));
        for ns in &self.world.namespaces {
            let api: Api<Canary> = Api::namespaced(self.world.client.clone(), ns);
            out.extend(api.list(&lp).await.map_err(|e| e.to_string())?.items);
        }
        Ok(out)
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
        use CanaryPhase::*;
        let deadline = Instant::now() + limit;
        let mut seen = std::collections::HashSet::new();
        loop {
            let all = self.canaries().await?;
            let mut in_flight = 0;
            for c in &all {
                let Some(s) = &c.status else { continue };
                if s.canary_weight >= 10 || matches!(s.phase, Promoting | Finalising) {
                    let ns = c.metadata.namespace.clone().unwrap_or_default();
                    seen.insert((ns, c.metadata.name.clone().unwrap_or_default()));
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
        use CanaryPhase::*;
        let mut all = self.canaries().await?;
        // The same order every time: the caller pairs two readings canary by canary.
        all.sort_by_key(|c| (c.metadata.namespace.clone(), c.metadata.name.clone()));
        Ok(all
            .iter()
            .map(|c| match &c.status {
                Some(s) if matches!(s.phase, Promoting | Finalising | Succeeded) => 50,
                Some(s) => s.canary_weight,
                None => 0,
            })
            .collect())
    }

    /// Waits until every app has its HTTPRoute. A Canary says Initialized before its
    /// initialisation tick has written its routes (the status goes first), so a measurement that
    /// starts at "all Initialized" would count the last of those ticks' route reads and writes.
    pub async fn wait_routes(&self, limit: Duration) -> Result<(), String> {
        use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
        let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
        let ar = ApiResource::from_gvk_with_plural(&gvk, "httproutes");
        let deadline = std::time::Instant::now() + limit;
        loop {
            let mut routes = 0;
            for ns in &self.world.namespaces {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(self.world.client.clone(), ns, &ar);
                let listed = api.list_metadata(&ListParams::default()).await;
                routes += listed.map_err(|e| e.to_string())?.items.len();
            }
            if routes >= self.canaries {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(format!(
                    "{routes} of {} HTTPRoutes after {limit:?}",
                    self.canaries
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until every canary is at `w` or past it.
    pub async fn wait_all_reached(&self, w: i32, limit: Duration) -> Result<(), String> {
        use CanaryPhase::*;
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
                let ns = self.world.namespace_of(i);
                async move { apps::new_revision(&self.world.client, ns, i, version).await }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Kills the controllers (SIGKILL), starts them again and returns how long until they have
    /// reconciled every canary (their `serin_reconcile_total` adds up to N).
    pub async fn restart_controller(&mut self) -> Result<Duration, String> {
        self.controllers.kill();
        let t = Instant::now();
        self.controllers.start()?;
        loop {
            let seen = self.controllers.scrape().await;
            if seen.reconciles >= self.canaries as f64 {
                let took = t.elapsed();
                // What the restarted controller asked of the API server until then.
                println!(
                    "restart: API requests until every canary reconciled: {:?}",
                    seen.api.0
                );
                return Ok(took);
            }
            if t.elapsed() > Duration::from_secs(300) {
                return Err(
                    "the restarted controller did not reconcile every canary within 300s".into(),
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// How often the benchmark lists every Canary: that listing is its own load on the API
    /// server, so keep it light at scale.
    pub fn poll_every(&self) -> Duration {
        Duration::from_millis(if self.canaries > 50 { 2000 } else { 500 })
    }

    /// The number of apps.
    pub fn size(&self) -> usize {
        self.canaries
    }

    /// Changes the ConfigMap every app reads (one per namespace).
    pub async fn change_shared_config(&self, value: &str) -> Result<(), String> {
        for ns in &self.world.namespaces {
            apps::change_shared_config(&self.world.client, ns, value).await?;
        }
        Ok(())
    }

    pub fn stop(&mut self) {
        self.controllers.kill();
    }
}
