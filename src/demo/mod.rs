//! `serin demo`: the real controller on the embedded cluster (`serin::sim`), playing two rollouts
//! with time compressed — v2 healthy (promoted), v3 failing 15% of requests and 30% slower per
//! pod, which the statistical judge sees against the primary (rolled back) — with
//! metrics from a simulated traffic source (or a real Prometheus) and hooks answered in-process.
//! Orchestration only: the decisions are the controller's; must not reach into `analysis`.

mod scene;
mod traffic;
mod view;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::api::Api;

use crate::api::{Canary, CanaryPhase};
use crate::sim::{Cluster, KubeletOptions, SimOptions};
pub use traffic::Traffic;
use view::View;

/// Options of `serin demo`.
#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// Query this Prometheus (which must scrape the demo's /metrics) instead of the simulated source.
    pub prometheus: Option<String>,
    /// Leave the embedded cluster running and print a kubeconfig.
    pub keep: bool,
    /// Plain line output even on a terminal.
    pub plain: bool,
}

/// One rollout of the demo.
struct Rollout {
    label: &'static str,
    version: &'static str,
    expect: CanaryPhase,
}

const ROLLOUTS: [Rollout; 2] = [
    Rollout {
        label: "v2 (healthy)",
        version: "6.1.0",
        expect: CanaryPhase::Succeeded,
    },
    Rollout {
        label: "v3 (15% errors)",
        version: "6.2.0",
        expect: CanaryPhase::Failed,
    },
];

/// Error rate (%) of each app version in the simulated traffic.
pub fn error_rate_of(version: &str) -> f64 {
    match version {
        "6.2.0" => 15.0,
        "6.1.0" => 0.6,
        _ => 0.4,
    }
}

/// Mean request latency (seconds) of each app version in the simulated traffic: v3 is also 30 %
/// slower, which the judge's per-pod comparison with the primary shows; v2 answers like v1.
pub fn latency_of(version: &str) -> f64 {
    match version {
        "6.2.0" => 0.130,
        _ => 0.100,
    }
}

/// Runs the demo; returns the process exit code (0 when both rollouts ended as expected).
pub async fn run(opts: DemoOptions) -> i32 {
    match play(&opts).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: serin demo: {e}");
            1
        }
    }
}

async fn play(opts: &DemoOptions) -> Result<i32, String> {
    let cluster = Cluster::start_with(SimOptions {
        kubelet: KubeletOptions {
            ready_delay: Duration::from_millis(300),
        },
        ..Default::default()
    })
    .await
    .map_err(|e| format!("cannot start the embedded cluster: {e}"))?;
    let client = cluster.client();
    let traffic = Traffic::default();
    let source = traffic::serve(traffic.clone())
        .await
        .map_err(|e| format!("cannot serve the simulated metrics: {e}"))?;
    let hooks = scene::HookCalls::default();
    let hook_addr = scene::serve_hooks(hooks.clone())
        .await
        .map_err(|e| format!("cannot serve the demo webhooks: {e}"))?;
    let metrics_url = match &opts.prometheus {
        Some(url) => url.clone(),
        None => format!("http://{source}"),
    };
    let mut view = View::new(!opts.plain && std::io::IsTerminal::is_terminal(&std::io::stdout()));
    view.say(&format!(
        "serin demo — embedded cluster at {}; metrics from {}",
        cluster.url(),
        match &opts.prometheus {
            Some(url) => format!("Prometheus {url} (scraping http://{source}/metrics)"),
            None => format!("a SIMULATED traffic source (http://{source}/metrics)"),
        }
    ));
    scene::install(&client, &metrics_url, &format!("http://{hook_addr}")).await?;
    let _traffic = scene::generate(client.clone(), traffic.clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(crate::controller::run(
        client.clone(),
        Some(scene::NAMESPACE.into()),
        crate::controller::Settings {
            resync: Duration::from_secs(5),
            ..Default::default()
        },
        async move {
            let _ = stop_rx.await;
        },
    ));
    let canaries: Api<Canary> = Api::namespaced(client.clone(), scene::NAMESPACE);
    let hook_counts = hooks.counts.clone();
    let start = Instant::now();
    let init = CanaryPhase::Initialized;
    follow(
        &canaries,
        init,
        start,
        Duration::from_secs(20),
        &mut view,
        &hook_counts,
    )
    .await?;
    view.say("initialized: podinfo-primary serves 100% of traffic (v1 6.0.0)");
    let mut all_as_expected = true;
    for r in &ROLLOUTS {
        view.say(&format!(
            "── rollout {}: image podinfo:{}",
            r.label, r.version
        ));
        let began = Instant::now();
        scene::set_version(&client, r.version).await?;
        let limit = Duration::from_secs(40);
        let end = follow(&canaries, r.expect, began, limit, &mut view, &hook_counts).await;
        let ended = canaries.get(scene::APP).await.map_err(|e| e.to_string())?;
        let verdict = view::verdict(r.label, &ended, began.elapsed());
        all_as_expected &= end.is_ok() && ended.status.as_ref().map(|s| s.phase) == Some(r.expect);
        view.say(&verdict);
    }
    view.finish();
    if opts.keep {
        keep(&cluster).await;
    }
    drop(stop_tx);
    Ok(if all_as_expected { 0 } else { 1 })
}

/// Shows the Canary until it reaches `until` (in a tick that started after `after`).
async fn follow(
    canaries: &Api<Canary>,
    until: CanaryPhase,
    after: Instant,
    limit: Duration,
    view: &mut View,
    hooks: &Arc<Mutex<BTreeMap<String, u64>>>,
) -> Result<(), String> {
    let deadline = after + limit;
    // A rollout has begun once the phase left the one it started in.
    let mut moved = until == CanaryPhase::Initialized;
    loop {
        if let Ok(c) = canaries.get(scene::APP).await {
            let counts = hooks.lock().map(|h| h.clone()).unwrap_or_default();
            view.update(&c, &counts);
            let phase = c.status.as_ref().map(|s| s.phase).unwrap_or_default();
            moved |= matches!(phase, CanaryPhase::Progressing | CanaryPhase::Promoting);
            if moved
                && (phase == until || matches!(phase, CanaryPhase::Succeeded | CanaryPhase::Failed))
            {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the Canary did not reach {until:?} within {}s",
                limit.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `--keep`: leave the cluster up with a kubeconfig for kubectl until Ctrl-C.
async fn keep(cluster: &Cluster) {
    let path = std::env::temp_dir().join(format!("serin-demo-{}.kubeconfig", std::process::id()));
    match cluster.write_kubeconfig(&path) {
        Ok(()) => println!(
            "the embedded cluster keeps running; try:\n  export KUBECONFIG={}\n  kubectl get canaries,deployments,httproutes -n {}\nCtrl-C to stop.",
            path.display(),
            scene::NAMESPACE
        ),
        Err(e) => eprintln!("error: cannot write {}: {e}", path.display()),
    }
    let _ = tokio::signal::ctrl_c().await;
    let _ = std::fs::remove_file(&path);
}
