//! Command-line front end: argument definitions (clap) and the commands that need no cluster.
//! Commands return an exit code; only `main` exits. Must not hold decision logic.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::api::crd;
use crate::manifest;

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
    /// Check Canary, MetricTemplate and AlertProvider manifests (serin.io or flagger.app) offline.
    ///
    /// Prints `ok` per valid object, or each problem with its field path; exits 1 on any problem.
    Check {
        /// YAML files to check (multi-document files are fine); `-` reads standard input.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Run the controller against the cluster of the current kubeconfig or in-cluster config.
    Controller(Box<ControllerArgs>),
    /// Play a promotion and a rollback on an embedded cluster, no Kubernetes needed.
    Demo,
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
pub fn check(files: &[PathBuf], out: &mut impl std::io::Write) -> i32 {
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
        failed |= !check_one(&label, &text, out);
    }
    i32::from(failed)
}

fn check_one(label: &str, text: &str, out: &mut impl std::io::Write) -> bool {
    let reports = match manifest::check_text(text) {
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

/// Options of `serin controller`.
#[derive(Args, Debug, Clone)]
pub struct ControllerArgs {
    /// Path of a kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then in-cluster).
    #[arg(long, env = "KUBECONFIG", value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Watch Canaries in this namespace only (default: all namespaces).
    #[arg(long, env = "SERIN_NAMESPACE", value_name = "NS")]
    pub namespace: Option<String>,
    /// Provider for Canaries whose spec names none.
    #[arg(long, env = "SERIN_MESH_PROVIDER", default_value = "kubernetes")]
    pub mesh_provider: String,
    /// Log format.
    #[arg(long, env = "SERIN_LOG_FORMAT", value_parser = ["text", "json"], default_value = "text")]
    pub log_format: String,
    /// Log filter, e.g. info or serin=debug,kube=warn.
    #[arg(long, env = "SERIN_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Run only while holding a coordination.k8s.io Lease (for more than one replica).
    #[arg(long, env = "SERIN_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Seconds a leader that stopped renewing keeps the Lease.
    #[arg(long, default_value_t = 15)]
    pub lease_duration: u64,
    /// Canaries reconciled at once (0: no limit).
    #[arg(long, env = "SERIN_CONCURRENCY", default_value_t = 0)]
    pub concurrency: u16,
    /// Serve /metrics, /healthz and /readyz on this address (e.g. 0.0.0.0:8080 in a cluster).
    #[arg(long, env = "SERIN_METRICS_ADDR", value_name = "HOST:PORT")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Prometheus address for Canaries that set no spec.metricsServer (e.g.
    /// http://prometheus.monitoring:9090).
    #[arg(long, env = "SERIN_METRICS_SERVER", value_name = "URL")]
    pub metrics_server: Option<String>,
    /// Timeout of one metric query (Go duration, e.g. 10s).
    #[arg(long, env = "SERIN_METRICS_TIMEOUT", default_value = "10s", value_parser = parse_timeout)]
    pub metrics_timeout: std::time::Duration,
    /// Webhook URL alerts go to for Canaries with no spec.analysis.alerts (a secret: prefer the
    /// environment variable).
    #[arg(
        long,
        env = "SERIN_ALERT_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub alert_url: Option<String>,
    /// Service of --alert-url.
    #[arg(long, env = "SERIN_ALERT_TYPE", default_value = "slack",
        value_parser = ["slack", "msteams", "discord", "rocket", "gchat", "webhook"])]
    pub alert_type: String,
    /// Channel of the default alerts (Slack, Rocket.Chat).
    #[arg(long, env = "SERIN_ALERT_CHANNEL")]
    pub alert_channel: Option<String>,
    /// User name of the default alerts.
    #[arg(long, env = "SERIN_ALERT_USERNAME")]
    pub alert_username: Option<String>,
    /// Lowest severity of the default alerts.
    #[arg(long, env = "SERIN_ALERT_SEVERITY", default_value = "info", value_parser = ["info", "warn", "error"])]
    pub alert_severity: String,
    /// URL every Event of every Canary is POSTed to (as `event` webhooks).
    #[arg(long, env = "SERIN_EVENT_WEBHOOK", value_name = "URL")]
    pub event_webhook: Option<String>,
    /// Cluster name shown in alerts.
    #[arg(long, env = "SERIN_CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// Prefixes of target labels the primary copies (comma-separated; `*` for all). Selector
    /// labels are always copied.
    #[arg(
        long,
        env = "SERIN_INCLUDE_LABEL_PREFIX",
        value_delimiter = ',',
        default_value = "*"
    )]
    pub include_label_prefix: Vec<String>,
    /// Prefixes of target labels the primary never copies (GitOps ownership labels by default,
    /// so Argo CD or Flux never take the primary for theirs and prune it).
    #[arg(
        long,
        env = "SERIN_EXCLUDE_LABEL_PREFIX",
        value_delimiter = ',',
        default_value = "serin.io/,argocd.argoproj.io/,app.kubernetes.io/instance,kustomize.toolkit.fluxcd.io/,helm.toolkit.fluxcd.io/"
    )]
    pub exclude_label_prefix: Vec<String>,
}

fn init_logging(format: &str, level: &str) {
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

/// The default alert provider from the flags, if --alert-url is set.
fn default_alerts(
    args: &ControllerArgs,
) -> Option<(crate::notify::Notifier, crate::api::AlertSeverity)> {
    let url = args.alert_url.clone()?;
    let kind = serde_json::from_value(serde_json::json!(args.alert_type)).ok()?;
    let severity = serde_json::from_value(serde_json::json!(args.alert_severity)).ok()?;
    let notifier = crate::notify::Notifier {
        kind,
        url,
        channel: args.alert_channel.clone(),
        username: args.alert_username.clone(),
        proxy: None,
        key: None,
        timeout: crate::notify::TIMEOUT,
    };
    Some((notifier, severity))
}

fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    match crate::api::duration::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be more than 0".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs `serin loadtester` until interrupted.
pub async fn loadtester(listen: std::net::SocketAddr, max_tasks: usize) -> i32 {
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
        r = crate::loadtester::serve(listener, max_tasks) => match r {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        },
        _ = tokio::signal::ctrl_c() => 0,
    }
}

/// Runs `serin controller` until SIGTERM / Ctrl-C.
pub async fn controller(args: ControllerArgs) -> i32 {
    init_logging(&args.log_format, &args.log_level);
    let config = match load_kube_config(args.kubeconfig.clone()).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let client = match kube::Client::try_from(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "error: cannot build a Kubernetes client: {}",
                manifest::one_line(&e.to_string())
            );
            return 2;
        }
    };
    if crate::api::validate::SUPPORTED_PROVIDERS
        .iter()
        .all(|p| *p != args.mesh_provider)
    {
        eprintln!(
            "error: --mesh-provider '{}' is not one of {}",
            args.mesh_provider,
            crate::api::validate::SUPPORTED_PROVIDERS.join(", ")
        );
        return 2;
    }
    let bad_url = |s: &str| {
        !(s.starts_with("http://") || s.starts_with("https://")) || url::Url::parse(s).is_err()
    };
    for (flag, value) in [
        ("--alert-url", &args.alert_url),
        ("--event-webhook", &args.event_webhook),
    ] {
        if value.as_deref().is_some_and(bad_url) {
            // Never echo the value: a chat webhook URL holds its token.
            eprintln!("error: {flag} is not an http(s) URL");
            return 2;
        }
    }
    if args.metrics_server.as_deref().is_some_and(bad_url) {
        eprintln!(
            "error: --metrics-server '{}' is not an http(s) URL",
            args.metrics_server.as_deref().unwrap_or_default()
        );
        return 2;
    }
    let settings = crate::controller::Settings {
        default_provider: args.mesh_provider.clone(),
        concurrency: args.concurrency,
        telemetry: crate::telemetry::Telemetry::new(&args.mesh_provider),
        metrics_server: args.metrics_server.clone(),
        default_alerts: default_alerts(&args),
        event_webhook: args.event_webhook.clone(),
        cluster_name: args.cluster_name.clone(),
        metrics_timeout: args.metrics_timeout,
        labels: crate::workload::LabelFilter {
            include: args.include_label_prefix.clone(),
            exclude: args.exclude_label_prefix.clone(),
        },
        ..Default::default()
    };
    if let Some(addr) = args.metrics_addr {
        match crate::telemetry::serve(addr, settings.telemetry.clone()).await {
            Ok(bound) => tracing::info!(%bound, "serving /metrics, /healthz, /readyz"),
            Err(e) => {
                eprintln!("error: cannot listen on {addr}: {e}");
                return 2;
            }
        }
    }
    tracing::info!(namespace = args.namespace.as_deref().unwrap_or("<all>"), provider = %args.mesh_provider, "serin controller starting");
    if args.leader_elect {
        let identity =
            std::env::var("POD_NAME").unwrap_or_else(|_| format!("serin-{}", std::process::id()));
        let lease = crate::controller::leader::LeaseSettings {
            name: "serin-leader".into(),
            namespace: args.lease_namespace.clone(),
            identity,
            duration: std::time::Duration::from_secs(args.lease_duration.max(2)),
            renew_every: std::time::Duration::from_secs((args.lease_duration / 3).max(1)),
        };
        crate::controller::run_elected(
            client,
            args.namespace,
            settings,
            lease,
            wait_for_shutdown(),
        )
        .await;
    } else {
        crate::controller::run(client, args.namespace, settings, wait_for_shutdown()).await;
    }
    tracing::info!("serin controller stopped");
    0
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn label_prefix_flags_default_to_the_library_defaults() {
        let Command::Controller(args) = Cli::parse_from(["serin", "controller"]).command else {
            panic!("controller args")
        };
        let d = crate::workload::LabelFilter::default();
        assert_eq!(args.include_label_prefix, d.include);
        assert_eq!(args.exclude_label_prefix, d.exclude);
        let Command::Controller(args) =
            Cli::parse_from(["serin", "controller", "--include-label-prefix", "app,team"]).command
        else {
            panic!("controller args")
        };
        assert_eq!(args.include_label_prefix, ["app", "team"]);
    }
}
