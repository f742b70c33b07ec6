//! Where the benchmark runs: the embedded cluster (serin::sim in this process, one namespace
//! `bench`, as before issue 20) or any cluster a kubeconfig names (its own namespaces
//! `<prefix>-0..`, its Canaries labelled with this run's id). Sets up the CRDs it lacks, the
//! namespaces and their shared ConfigMap, and deletes all of that again at the end.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use serin::sim::{Cluster, KubeletOptions, SimOptions};

/// The ConfigMap all apps of a namespace read besides their own.
pub const SHARED_CONFIG: &str = "shared-config";
/// The label on every Canary of one run (the controllers own only those).
pub const RUN_LABEL: &str = "serin.io/bench-run";

/// The cluster side of a run.
pub struct World {
    pub client: kube::Client,
    /// The kubeconfig the controller is started with.
    pub kubeconfig: PathBuf,
    /// Embedded only: the in-process cluster (access log, latency).
    pub sim: Option<Cluster>,
    pub namespaces: Vec<String>,
    /// This run's id (value of RUN_LABEL).
    pub run: String,
    /// What to delete at the end, shared with main (which runs it also after an error or
    /// Ctrl-C); stays empty for the embedded cluster, which goes with the process.
    cleanup: Shared,
    _dir: tempfile::TempDir,
}

/// What a run made on an outside cluster.
#[derive(Clone, Default)]
pub struct Cleanup {
    /// Only on an outside cluster.
    client: Option<kube::Client>,
    namespaces: Vec<String>,
    crds: Vec<String>,
}

/// The cleanup list, filled as things are made.
pub type Shared = std::sync::Arc<std::sync::Mutex<Cleanup>>;

fn e(x: impl std::fmt::Display) -> String {
    x.to_string()
}

impl World {
    pub async fn embedded() -> Result<World, String> {
        let opts = SimOptions {
            kubelet: KubeletOptions {
                ready_delay: Duration::from_millis(200),
            },
            ..Default::default()
        };
        let cluster = Cluster::start_with(opts).await.map_err(e)?;
        let cleanup = Shared::default();
        let dir = tempfile::tempdir().map_err(e)?;
        let kubeconfig = dir.path().join("kubeconfig");
        cluster.write_kubeconfig(&kubeconfig).map_err(e)?;
        let mut w = World {
            client: cluster.client(),
            kubeconfig,
            sim: Some(cluster),
            namespaces: vec!["bench".into()],
            run: "embedded".into(),
            cleanup,
            _dir: dir,
        };
        w.setup().await?;
        Ok(w)
    }

    /// On the cluster of `kubeconfig`: `namespaces` namespaces named `<prefix>-<i>`.
    pub async fn outside(
        kubeconfig: PathBuf,
        prefix: &str,
        namespaces: usize,
        cleanup: Shared,
    ) -> Result<World, String> {
        let options = kube::config::KubeConfigOptions::default();
        let kc = kube::config::Kubeconfig::read_from(&kubeconfig).map_err(e)?;
        let config = kube::Config::from_custom_kubeconfig(kc, &options)
            .await
            .map_err(e)?;
        let client = kube::Client::try_from(config).map_err(e)?;
        let run = format!(
            "{:x}",
            std::process::id() ^ chrono::Utc::now().timestamp() as u32
        );
        let namespaces: Vec<String> = (0..namespaces.max(1))
            .map(|i| format!("{prefix}-{i}"))
            .collect();
        if let Ok(mut c) = cleanup.lock() {
            c.client = Some(client.clone());
        }
        let mut w = World {
            cleanup,
            client,
            kubeconfig,
            sim: None,
            namespaces,
            run,
            _dir: tempfile::tempdir().map_err(e)?,
        };
        w.setup().await?;
        Ok(w)
    }

    /// CRDs the cluster lacks, the namespaces (refused if one exists: the run must not touch what
    /// it did not make), and each namespace's shared ConfigMap.
    async fn setup(&mut self) -> Result<(), String> {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let mut all: Vec<_> = serin::api::crd::all().into_iter().map(|(_, c)| c).collect();
        all.push(gateway_api::apis::standard::httproutes::HttpRoute::crd());
        for crd in all {
            let name = crd.metadata.name.clone().unwrap_or_default();
            if crds.get_opt(&name).await.map_err(e)?.is_none() {
                crds.create(&PostParams::default(), &crd).await.map_err(e)?;
                self.made(|c| c.crds.push(name));
            }
        }
        let ns: Api<Namespace> = Api::all(self.client.clone());
        for name in self.namespaces.clone() {
            if ns.get_opt(&name).await.map_err(e)?.is_some() {
                return Err(format!(
                    "namespace {name} already exists: pick another --namespace-prefix (the benchmark deletes only what it made)"
                ));
            }
            let obj = serde_json::from_value(
                json!({"metadata": {"name": name, "labels": {RUN_LABEL: self.run}}}),
            )
            .map_err(e)?;
            ns.create(&PostParams::default(), &obj).await.map_err(e)?;
            self.made(|c| c.namespaces.push(name.clone()));
            // One ConfigMap every app reads: changing it starts every rollout at once.
            let cms: Api<ConfigMap> = Api::namespaced(self.client.clone(), &name);
            let shared = json!({"metadata": {"name": SHARED_CONFIG}, "data": {"FEATURE": "off"}});
            cms.create(
                &PostParams::default(),
                &serde_json::from_value(shared).map_err(e)?,
            )
            .await
            .map_err(e)?;
        }
        Ok(())
    }

    /// Notes something made on an outside cluster (the in-process one goes with the process).
    fn made(&self, f: impl FnOnce(&mut Cleanup)) {
        if self.sim.is_none()
            && let Ok(mut c) = self.cleanup.lock()
        {
            f(&mut c);
        }
    }

    /// The namespace of app `i`.
    pub fn namespace_of(&self, i: usize) -> &str {
        &self.namespaces[i % self.namespaces.len()]
    }
}

impl Cleanup {
    /// Deletes the namespaces (and with them every object in them, the controller's too) and the
    /// CRDs this run created, and waits until they are gone (at most 2 minutes).
    pub async fn run(&self) {
        let Some(client) = &self.client else { return };
        if self.namespaces.is_empty() && self.crds.is_empty() {
            return;
        }
        let ns: Api<Namespace> = Api::all(client.clone());
        for name in &self.namespaces {
            if let Err(err) = ns.delete(name, &DeleteParams::default()).await {
                eprintln!("cleanup: cannot delete namespace {name}: {err}");
            }
        }
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(120) {
            let mut left = 0;
            for name in &self.namespaces {
                left += usize::from(matches!(ns.get_opt(name).await, Ok(Some(_))));
            }
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for name in &self.crds {
            if let Err(err) = crds.delete(name, &DeleteParams::default()).await {
                eprintln!("cleanup: cannot delete CRD {name}: {err}");
            }
        }
        println!(
            "cleanup: deleted namespaces {} and {} CRDs this run created ({:.1}s)",
            self.namespaces.join(", "),
            self.crds.len(),
            t.elapsed().as_secs_f64()
        );
    }
}
