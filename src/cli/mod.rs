//! Command-line front end: argument definitions (clap) and the commands that need no cluster.
//! Commands return an exit code; only `main` exits. Must not hold decision logic. `serin
//! controller`'s flags and start-up live in `controller.rs`.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::api::crd;
use crate::manifest;

pub mod backtest;
mod backtest_fetch;
mod backtest_report;
pub mod cluster_check;
mod controller;
pub mod dashboard;
mod migrate;
pub mod operate;
pub use controller::{ControllerArgs, controller};
pub use migrate::{completions, migrate};

/// Serin: progressive delivery for Kubernetes — canary, A/B and blue/green rollouts driven by
/// metrics and webhooks, compatible with Flagger's Canary API.
#[derive(Parser, Debug)]
#[command(name = "serin", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Serin's commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the CustomResourceDefinitions of Canary, MetricTemplate and AlertProvider as YAML.
    Crds {
        /// Write one file per CRD into this directory instead of printing them.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// Check Canary, MetricTemplate and AlertProvider manifests (serin.io or flagger.app) offline,
    /// or with --cluster the permissions the controller needs in a cluster.
    ///
    /// Prints `ok` per valid object, or each problem with its field path; exits 1 on any problem.
    Check {
        /// YAML files to check (multi-document files are fine); `-` reads standard input.
        #[arg(required_unless_present = "cluster", value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Instead of files: ask the cluster of the kubeconfig (SelfSubjectAccessReview) whether
        /// its identity may make every call Serin makes for --mesh-provider and for the providers
        /// its Canaries use, and name the chart value that grants what is missing.
        #[arg(long, conflicts_with = "files")]
        cluster: bool,
        /// With --cluster: the kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster).
        #[arg(long, env = "KUBECONFIG", value_name = "PATH")]
        kubeconfig: Option<PathBuf>,
        /// With --cluster: check in this namespace only (the controller's --namespace).
        #[arg(long, short = 'n', value_name = "NS", requires = "cluster")]
        namespace: Option<String>,
        /// The provider your controller uses for Canaries that name none (its --mesh-provider):
        /// a weight plan on `kubernetes`, which can only switch Services, is an error.
        #[arg(long, env = "SERIN_MESH_PROVIDER", default_value = "kubernetes")]
        mesh_provider: String,
    },
    /// Run the controller against the cluster of the current kubeconfig or in-cluster config.
    ///
    /// A flag given twice takes its last value, so the Helm chart's `extraArgs` can override any
    /// flag the chart renders.
    #[command(args_override_self = true)]
    Controller(Box<ControllerArgs>),
    /// Play a promotion and a rollback on an embedded cluster, no Kubernetes needed.
    ///
    /// Starts serin::sim, installs the CRDs, a sample app and its Canary, runs the real controller
    /// and rolls out v2 (healthy: promoted) and v3 (15% errors: rolled back) with 1 s intervals.
    /// Metrics come from a simulated traffic source unless --prometheus is given. Exit code 0 when
    /// both rollouts end as expected.
    Demo {
        /// Query this Prometheus instead of the simulated source; it must scrape the demo's
        /// /metrics (the address is printed at start).
        #[arg(long, value_name = "URL")]
        prometheus: Option<String>,
        /// Leave the embedded cluster running afterwards and print a kubeconfig for kubectl.
        #[arg(long)]
        keep: bool,
        /// Plain line output even on a terminal.
        #[arg(long)]
        plain: bool,
    },
    /// Load tester and gates for webhooks (drop-in for the common parts of Flagger's loadtester).
    Loadtester {
        /// Address to listen on (0.0.0.0:8080 in a cluster).
        #[arg(
            long,
            env = "SERIN_LOADTESTER_LISTEN",
            default_value = "127.0.0.1:8080"
        )]
        listen: std::net::SocketAddr,
        /// Load tests running at once; more are answered 429.
        #[arg(long, default_value_t = 32)]
        max_tasks: usize,
        /// Longest run of one task (bash, helm, kubectl, ghz, hey) before it is killed (Go
        /// duration; Flagger's chart uses 1h).
        #[arg(long, env = "SERIN_LOADTESTER_TASK_TIMEOUT", default_value = "1h", value_parser = parse_positive_duration)]
        task_timeout: std::time::Duration,
    },
    /// Open the web dashboard of the kubeconfig's cluster on 127.0.0.1: every Canary live, one
    /// page per Canary, and with --actions the promote/abort/pause/resume buttons (acting with
    /// the kubeconfig's identity).
    Dashboard(dashboard::DashboardArgs),
    /// Show canaries: phase, weight, failed checks, last transition, step and next step due;
    /// for one canary, its decision record too.
    Status(operate::StatusArgs),
    /// Promote at the next analysis tick whose checks pass, skipping the remaining steps.
    ///
    /// Sets the annotation serin.io/action, which the controller honours and GitOps tools leave
    /// alone; recorded in the decision record and as an Event.
    Promote(operate::ActionArgs),
    /// Roll back now (serin.io/action: abort).
    Abort(operate::ActionArgs),
    /// Freeze the analysis clock: no step, check or webhook until resumed (serin.io/action: pause).
    Pause(operate::ActionArgs),
    /// Thaw it: the step in progress gets the time it had left (serin.io/action: resume).
    Resume(operate::ActionArgs),
    /// Replay a Canary's analysis against its Prometheus history: would it have rolled back, and
    /// when?
    ///
    /// Ticks every analysis interval from --from to --to, each metric's query rendered as the
    /// controller renders it and evaluated at the tick with a range query; consecutive analyses
    /// are judged as the controller judges them (thresholds, onNoData, failed checks against
    /// analysis.threshold). Prints each analysis, then "would roll back at <time> (<check>)" or
    /// "would promote". Exit 0 whatever the verdict, 2 when it cannot run.
    Backtest(Box<backtest::BacktestArgs>),
    /// Convert Flagger (flagger.app/v1beta1) Canary, MetricTemplate and AlertProvider manifests
    /// to serin.io/v1beta1.
    ///
    /// Prints the converted YAML stream (other documents unchanged) and reports on stderr what
    /// could not be carried over; exit 1 when anything could not.
    Migrate {
        /// YAML files (multi-document is fine); `-` reads standard input.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// The provider Serin's controller will give Canaries that name none (its
        /// --mesh-provider; Flagger's was its own -mesh-provider flag).
        #[arg(long, env = "SERIN_MESH_PROVIDER", default_value = "kubernetes")]
        mesh_provider: String,
    },
    /// Print a shell completion script: `serin completions bash > /etc/bash_completion.d/serin`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// The embedded Kubernetes API server (serin::sim) for local experiments and tests.
    Sim {
        /// What to do with it.
        #[command(subcommand)]
        action: SimCommand,
    },
}

/// `serin sim` subcommands.
#[derive(Subcommand, Debug)]
pub enum SimCommand {
    /// Serve an in-memory cluster on 127.0.0.1 until interrupted (kubectl works against it).
    Serve {
        /// Port to listen on; 0 picks a free one.
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Write a kubeconfig for the cluster to this file.
        #[arg(long, value_name = "PATH")]
        kubeconfig_out: Option<PathBuf>,
        /// How long simulated pods take to become ready, in milliseconds.
        #[arg(long, default_value_t = 300)]
        pod_ready_ms: u64,
    },
}

/// Runs `serin crds`.
pub fn crds(out_dir: Option<&Path>) -> i32 {
    match out_dir {
        None => {
            use std::io::Write;
            // A closed pipe (`serin crds | head`) is not an error worth a panic.
            let _ = std::io::stdout().write_all(crd::render_all().as_bytes());
            0
        }
        Some(dir) => {
            for (file, c) in crd::all() {
                let path = dir.join(file);
                if let Err(e) = std::fs::write(&path, crd::to_yaml(&c)) {
                    eprintln!("error: cannot write {}: {e}", path.display());
                    return 1;
                }
            }
            0
        }
    }
}

/// Runs `serin check`; returns the exit code (0 all valid, 1 any problem).
pub fn check(files: &[PathBuf], provider: &str, out: &mut impl std::io::Write) -> i32 {
    let mut failed = false;
    for file in files {
        let label = file.display().to_string();
        let text = if label == "-" {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map(|_| s)
        } else {
            std::fs::read_to_string(file)
        };
        let text = match text {
            Ok(t) => t,
            Err(e) => {
                let _ = writeln!(out, "{label}: cannot read: {e}");
                failed = true;
                continue;
            }
        };
        failed |= !check_one(&label, &text, provider, out);
    }
    i32::from(failed)
}

fn check_one(label: &str, text: &str, provider: &str, out: &mut impl std::io::Write) -> bool {
    let reports = match manifest::check_text(text, provider) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(out, "{label}: invalid YAML: {e}");
            return false;
        }
    };
    if reports.is_empty() {
        let _ = writeln!(out, "{label}: no objects");
        return false;
    }
    let mut ok = true;
    if reports.iter().all(|r| r.skipped) {
        // Informational: `serin check k8s/*.yaml` over a whole directory is a normal thing to run.
        let _ = writeln!(out, "{label}: no Serin or Flagger objects");
        return true;
    }
    for r in reports.iter().filter(|r| !r.skipped) {
        let what = format!(
            "{label}: {} {}",
            if r.kind.is_empty() {
                "<no kind>"
            } else {
                &r.kind
            },
            r.name
        );
        if r.errors.is_empty() {
            let note = if r.from_flagger {
                " (flagger.app/v1beta1, convertible: serin migrate)"
            } else {
                ""
            };
            let _ = writeln!(out, "{what}: ok{note}");
        } else {
            ok = false;
            for e in &r.errors {
                let _ = writeln!(out, "{what}: {e}");
            }
        }
    }
    ok
}

pub(crate) fn init_logging(format: &str, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// A positive Go duration (`30s`, `1h`) from the command line.
pub(crate) fn parse_positive_duration(s: &str) -> Result<std::time::Duration, String> {
    match crate::api::duration::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be more than 0".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs `serin loadtester` until SIGTERM / Ctrl-C.
pub async fn loadtester(
    listen: std::net::SocketAddr,
    max_tasks: usize,
    task_timeout: std::time::Duration,
) -> i32 {
    init_logging("text", "info");
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            return 2;
        }
    };
    tracing::info!(%listen, max_tasks, "serin loadtester listening");
    tokio::select! {
        r = crate::loadtester::serve_with(listener, crate::loadtester::Options {
            max_tasks,
            task_timeout,
            ..Default::default()
        }) => match r {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        },
        _ = tokio::signal::ctrl_c() => 0,
    }
}

/// Runs `serin sim serve` until Ctrl-C / SIGTERM.
pub async fn sim_serve(port: u16, kubeconfig_out: Option<PathBuf>, pod_ready_ms: u64) -> i32 {
    let opts = crate::sim::SimOptions {
        port,
        kubelet: crate::sim::KubeletOptions {
            ready_delay: std::time::Duration::from_millis(pod_ready_ms),
        },
        ..Default::default()
    };
    let cluster = match crate::sim::Cluster::start_with(opts).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot listen on 127.0.0.1:{port}: {e}");
            return 1;
        }
    };
    if let Some(path) = &kubeconfig_out {
        // Written to a temporary name first so a reader never sees half a file.
        let tmp = path.with_extension("tmp");
        if let Err(e) = cluster
            .write_kubeconfig(&tmp)
            .and_then(|_| std::fs::rename(&tmp, path))
        {
            eprintln!("error: cannot write kubeconfig {}: {e}", path.display());
            return 1;
        }
    }
    println!("serin sim serving {}", cluster.url());
    if let Some(path) = &kubeconfig_out {
        println!(
            "kubeconfig: {}  (export KUBECONFIG={})",
            path.display(),
            path.display()
        );
    }
    wait_for_shutdown().await;
    0
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn wait_for_shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

/// Resolves the kube config: an explicit kubeconfig path, else kube's inference (KUBECONFIG,
/// ~/.kube/config, in-cluster). The error says where it looked.
pub async fn load_kube_config(path: Option<PathBuf>) -> Result<kube::Config, String> {
    match path {
        Some(p) => {
            let kc = kube::config::Kubeconfig::read_from(&p)
                .map_err(|e| format!("cannot read kubeconfig {}: {}", p.display(), manifest::one_line(&e.to_string())))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .map_err(|e| format!("kubeconfig {} is not usable: {}", p.display(), manifest::one_line(&e.to_string())))
        }
        None => kube::Config::infer().await.map_err(|e| {
            format!(
                "no Kubernetes configuration found (no --kubeconfig, $KUBECONFIG, ~/.kube/config or in-cluster service account): {}",
                manifest::one_line(&e.to_string())
            )
        }),
    }
}
