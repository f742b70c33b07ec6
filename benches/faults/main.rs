//! The fault soak (issue 16, item 7): hundreds of rollouts on serin::sim while everything around
//! the controller fails, with an invariant checker sampling throughout.
//!
//! The real `serin controller` binary runs as a child process against the embedded cluster in
//! this process (Gateway API routes, so weights can be read), with a Prometheus stand-in and a
//! webhook receiver. Each app gets one new revision after another — healthy, failing metrics or
//! never ready, drawn from the seed — while the chaos (seeded too) kills the controller and
//! restarts it, takes the API server away for 5-30 s, injects 500s and 409s, slows every answer,
//! drops watches, compacts the watch history and stops Prometheus. The checker reads the store
//! directly every 150 ms; each rollout's end is judged; webhook calls are counted per revision;
//! the controller's stderr is searched for panics. See docs/reliability.md.
//!
//! `cargo bench --bench faults` runs 12 apps × 20 rollouts; `-- --seed N` replays a seed (the
//! draws, not the thread timing), `--apps N`, `--rollouts N` (per app) change the size. Without
//! `--bench` (as `cargo test --all-targets` runs it): 4 apps × 2 rollouts with every kind of
//! chaos once. Either way it exits non-zero on any violation and asserts nothing about speed.

mod chaos;
mod checker;
mod controller;
mod ledger;
mod report;
mod rollouts;
mod snapshot;
mod standins;
mod webhooks;
mod world;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;

use ledger::{Invariant, Ledger};

/// Panics anywhere in this process (the embedded cluster, the stand-ins, the soak itself).
static BENCH_PANICS: AtomicUsize = AtomicUsize::new(0);

/// The size and pace of a run.
struct Size {
    smoke: bool,
    apps: usize,
    per_app: usize,
    timing: world::CanaryTiming,
    chaos: chaos::Settings,
    limits: rollouts::Limits,
}

impl Size {
    fn smoke() -> Size {
        Size {
            smoke: true,
            apps: 4,
            per_app: 2,
            timing: world::CanaryTiming {
                interval_s: 1,
                deadline_s: 20,
            },
            chaos: chaos::Settings {
                smoke: true,
                gap_ms: (2000, 3000),
                outage_ms: (5000, 6000),
                prometheus_ms: (5000, 6000),
                quiet_ms: 5000,
                latency_for_ms: (3000, 5000),
                latency_ms: (200, 500),
            },
            limits: rollouts::Limits {
                rollout: Duration::from_secs(120),
                converge: Duration::from_secs(30),
                pause_ms: (200, 800),
            },
        }
    }

    fn full() -> Size {
        Size {
            smoke: false,
            apps: 12,
            per_app: 20,
            timing: world::CanaryTiming {
                interval_s: 1,
                deadline_s: 60,
            },
            chaos: chaos::Settings {
                smoke: false,
                gap_ms: (1000, 5000),
                outage_ms: (5000, 30000),
                prometheus_ms: (5000, 30000),
                quiet_ms: 20000,
                latency_for_ms: (5000, 20000),
                latency_ms: (200, 1500),
            },
            limits: rollouts::Limits {
                rollout: Duration::from_secs(300),
                converge: Duration::from_secs(30),
                pause_ms: (200, 2000),
            },
        }
    }
}

fn flag<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut size = if args.iter().any(|a| a == "--bench") {
        Size::full()
    } else {
        Size::smoke()
    };
    size.apps = flag(&args, "--apps").unwrap_or(size.apps);
    size.per_app = flag(&args, "--rollouts").unwrap_or(size.per_app);
    let seed = flag(&args, "--seed").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 % 1_000_000_000)
    });
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        BENCH_PANICS.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));
    match run(&size, seed).await {
        Ok(true) => {}
        Ok(false) => {
            eprintln!("fault soak: invariants violated (seed {seed})");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("fault soak failed (seed {seed}): {e}");
            std::process::exit(1);
        }
    }
}

/// Where this run keeps its controller logs and kubeconfig (cleared at the start of a run).
fn log_dir(seed: u64) -> Result<std::path::PathBuf, String> {
    let root = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("faults-soak");
    let _ = std::fs::remove_dir_all(&root);
    let dir = root.join(format!("seed-{seed}"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// Everything the run started, for the wind-down.
struct World {
    cluster: Arc<serin::sim::Cluster>,
    prometheus: Arc<standins::Prometheus>,
    hooks: Arc<standins::Receiver>,
    ctl: controller::Shared,
}

async fn build(size: &Size, seed: u64) -> Result<World, String> {
    let cluster = Arc::new(world::start_cluster().await?);
    let client = cluster.client();
    let prometheus = Arc::new(standins::Prometheus::start().await?);
    let hooks = Arc::new(standins::Receiver::start().await?);
    world::create_template(&client, &prometheus.url()).await?;
    let created: Vec<Result<(), String>> = futures::stream::iter(0..size.apps)
        .map(|i| world::create_app(&client, i, &size.timing, &hooks.url))
        .buffer_unordered(8)
        .collect()
        .await;
    created.into_iter().collect::<Result<Vec<()>, String>>()?;
    let dir = log_dir(seed)?;
    let kubeconfig = dir.join("kubeconfig");
    cluster
        .write_kubeconfig(&kubeconfig)
        .map_err(|e| e.to_string())?;
    let ctl = Arc::new(Mutex::new(controller::Controller::new(kubeconfig, dir)));
    controller::lock(&ctl).start()?;
    Ok(World {
        cluster,
        prometheus,
        hooks,
        ctl,
    })
}

async fn run(size: &Size, seed: u64) -> Result<bool, String> {
    let title = format!(
        "== serin fault soak: {} apps × {} rollouts, interval {}s, progressDeadlineSeconds {}, seed {seed}, {} cores ==",
        size.apps,
        size.per_app,
        size.timing.interval_s,
        size.timing.deadline_s,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("\n{title}");
    let started = Instant::now();
    let w = build(size, seed).await?;
    println!(
        "setup: cluster, CRDs and {} apps in {:.1}s",
        size.apps,
        started.elapsed().as_secs_f64()
    );
    let ledger = Arc::new(Ledger::new());
    // The chaos stops when the rollouts are over; the checker and the supervisor a little later.
    let (chaos_stop, chaos_stopped) = tokio::sync::watch::channel(false);
    let (watch_stop, watch_stopped) = tokio::sync::watch::channel(false);
    let state = w.cluster.state();
    let every = Duration::from_millis(150);
    let checker = tokio::spawn(checker::run(
        state.clone(),
        size.apps,
        ledger.clone(),
        every,
        watch_stopped.clone(),
    ));
    let supervisor = tokio::spawn(controller::supervise(
        w.ctl.clone(),
        ledger.clone(),
        watch_stopped,
    ));
    let env = chaos::Env {
        cluster: w.cluster.clone(),
        ctl: w.ctl.clone(),
        prometheus: w.prometheus.clone(),
        hooks: w.hooks.clone(),
        ledger: ledger.clone(),
        apps: size.apps,
        kill_lock: Arc::default(),
    };
    let chaos = tokio::spawn(chaos::run(env, size.chaos.clone(), seed, chaos_stopped));
    let driver = Arc::new(rollouts::Driver {
        state: state.clone(),
        client: w.cluster.client(),
        prometheus: w.prometheus.clone(),
        ledger: ledger.clone(),
        limits: size.limits.clone(),
    });
    let plan = rollouts::plan(seed, size.apps, size.per_app, size.smoke);
    let drives = plan
        .into_iter()
        .enumerate()
        .map(|(i, kinds)| tokio::spawn(driver.clone().drive(i, kinds, seed)))
        // Collected first: every app's rollouts run at once.
        .collect::<Vec<_>>();
    let mut outcomes = Vec::new();
    for d in drives {
        outcomes.extend(
            d.await
                .map_err(|e| format!("a rollout driver failed: {e}"))?,
        );
    }
    println!("rollouts over after {:.1}s", ledger.now());
    let _ = chaos_stop.send(true);
    let chaos = chaos.await.map_err(|e| format!("the chaos failed: {e}"))?;
    // Late post-rollout calls (sent in the background after the last status writes) and the
    // checker's view of the quiet cluster after the last chaos.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let _ = watch_stop.send(true);
    let stats = checker
        .await
        .map_err(|e| format!("the checker failed: {e}"))?;
    let _ = supervisor.await;
    let (incarnations, unexpected_exits, logs, panics) = {
        let mut c = controller::lock(&w.ctl);
        c.kill();
        (
            c.incarnations,
            c.unexpected_exits,
            c.logs().display().to_string(),
            c.panics(),
        )
    };
    for p in panics {
        ledger.violate(Invariant::ControllerPanic, None, p);
    }
    let bench_panics = BENCH_PANICS.load(Ordering::SeqCst);
    if bench_panics > 0 {
        ledger.violate(
            Invariant::BenchPanic,
            None,
            format!("{bench_panics} panics (see stderr above)"),
        );
    }
    let hooks = webhooks::judge(&w.hooks, &outcomes, &ledger);
    let timeline = std::path::Path::new(&logs).join("timeline.txt");
    if let Err(e) = ledger.write_timeline(&timeline) {
        eprintln!("cannot write {}: {e}", timeline.display());
    }
    let report = report::Report {
        title,
        seed,
        smoke: size.smoke,
        outcomes: &outcomes,
        planned: size.apps * size.per_app,
        chaos: &chaos,
        checker: &stats,
        hooks: &hooks,
        incarnations,
        unexpected_exits,
        logs,
        ledger: &ledger,
        wall: started.elapsed(),
    };
    Ok(report.print())
}
