//! `serin controller`: its flags (clap, with environment variables) and start-up — client, settings
//! from the flags, the optional /metrics server, leader election — then `controller::run`.

use std::path::PathBuf;

use clap::Args;

use super::{init_logging, load_kube_config, wait_for_shutdown};
use crate::controller::shard::ShardSelector;
use crate::manifest;

/// Options of `serin controller`.
#[derive(Args, Debug, Clone)]
pub struct ControllerArgs {
    /// Path of a kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then in-cluster).
    #[arg(long, env = "KUBECONFIG", value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Watch Canaries in this namespace only (default: all namespaces).
    #[arg(long, env = "SERIN_NAMESPACE", value_name = "NS")]
    pub namespace: Option<String>,
    /// Where the Secrets that targets reference are tracked: `*` in every namespace watched,
    /// `none` nowhere, or comma-separated namespaces (one metadata watch each, never a
    /// cluster-wide list). Where they are not tracked, Serin never lists, reads or copies them:
    /// the primary uses them by their own names and a change to one is not a new revision
    /// (ConfigMaps are tracked either way).
    #[arg(
        long,
        env = "SERIN_SECRET_NAMESPACES",
        value_name = "*|none|NS,...",
        default_value = "*"
    )]
    pub secret_namespaces: crate::workload::SecretTracking,
    /// Provider for Canaries whose spec names none.
    #[arg(long, env = "SERIN_MESH_PROVIDER", default_value = "kubernetes")]
    pub mesh_provider: String,
    /// Prefix of the ingress-nginx annotations the nginx provider writes (ingress-nginx's own
    /// --annotations-prefix; Flagger's -ingress-annotations-prefix).
    #[arg(long, env = "SERIN_INGRESS_ANNOTATIONS_PREFIX", default_value = crate::router::nginx_objects::DEFAULT_PREFIX)]
    pub ingress_annotations_prefix: String,
    /// Log format.
    #[arg(long, env = "SERIN_LOG_FORMAT", value_parser = ["text", "json"], default_value = "text")]
    pub log_format: String,
    /// Log filter, e.g. info or serin=debug,kube=warn.
    #[arg(long, env = "SERIN_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Own only the Canaries this Kubernetes label selector matches, e.g.
    /// `sharding.fluxcd.io/key=shard1`, or `!sharding.fluxcd.io/key` for the unlabelled rest
    /// (Flux's sharding convention), so that several controllers each own a disjoint set. The API
    /// server filters the Canary watch; relabelling a Canary hands it over to the other shard,
    /// which resumes from its status. Default: every Canary.
    #[arg(long, env = "SERIN_SHARD_SELECTOR", value_name = "SELECTOR")]
    pub shard_selector: Option<String>,
    /// Run only while holding a coordination.k8s.io Lease (for more than one replica).
    #[arg(long, env = "SERIN_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Name of the leader-election Lease. Default: `serin-leader`, or with --shard-selector
    /// `serin-leader-<shard>` — the selector's value for `key=value`, `unlabelled` for `!key`,
    /// otherwise `s` and a hash of the selector — so each shard elects its own leader.
    #[arg(long, env = "SERIN_LEASE_NAME", value_name = "NAME")]
    pub lease_name: Option<String>,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Seconds a leader that stopped renewing keeps the Lease.
    #[arg(long, default_value_t = 15)]
    pub lease_duration: u64,
    /// Canaries reconciled at once (0: no limit), taken in the order they fell due. Bounded by
    /// default: a thousand reconciles at once open as many connections to the API server and
    /// hold their responses in memory.
    #[arg(long, env = "SERIN_CONCURRENCY", default_value_t = 32)]
    pub concurrency: u16,
    /// Serve /metrics, /healthz and /readyz on this address (e.g. 0.0.0.0:8080 in a cluster).
    #[arg(long, env = "SERIN_METRICS_ADDR", value_name = "HOST:PORT")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Serve the web dashboard on this address (e.g. 0.0.0.0:8081 in a cluster): every Canary
    /// from the controller's own cache, live. Off when unset. Anyone who reaches it can read
    /// the Canaries; expose it like the API (port-forward, an authenticating proxy).
    #[arg(long, env = "SERIN_DASHBOARD_ADDR", value_name = "HOST:PORT")]
    pub dashboard_addr: Option<std::net::SocketAddr>,
    /// Let the dashboard promote, abort, pause and resume: for a person whose bearer token
    /// (TokenReview) may patch that Canary (SubjectAccessReview). Read-only without it.
    /// (Without --dashboard-addr it has no effect.)
    #[arg(long, env = "SERIN_DASHBOARD_ACTIONS")]
    pub dashboard_actions: bool,
    /// Prometheus address for Canaries that set no spec.metricsServer (e.g.
    /// http://prometheus.monitoring:9090).
    #[arg(long, env = "SERIN_METRICS_SERVER", value_name = "URL")]
    pub metrics_server: Option<String>,
    /// Timeout of one metric query (Go duration, e.g. 10s).
    #[arg(long, env = "SERIN_METRICS_TIMEOUT", default_value = "10s", value_parser = super::parse_positive_duration)]
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
    /// Rollouts running at once across the Canaries this controller owns — per shard with
    /// --shard-selector (0: no limit); more wait in Waiting and start first come, first served.
    #[arg(long, env = "SERIN_MAX_CONCURRENT_CANARIES", default_value_t = 0)]
    pub max_concurrent_canaries: usize,
    /// Longest pause between retries of a request the API server refused (admission policy,
    /// RBAC, quota, invalid object): retries back off exponentially from 2 s up to this, with
    /// jitter. Transient failures (409, 5xx, timeouts) are retried within seconds regardless.
    #[arg(long, env = "SERIN_RETRY_MAX", default_value = "2m", value_parser = super::parse_positive_duration)]
    pub retry_max: std::time::Duration,
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

/// The flags' values checked before anything starts: each problem is one sentence naming its flag.
/// Returns the parsed --shard-selector.
fn checked_flags(args: &ControllerArgs) -> Result<Option<ShardSelector>, String> {
    if let Some(ns) = args
        .secret_namespaces
        .unwatched(args.namespace.as_deref())
        .first()
    {
        return Err(format!(
            "--secret-namespaces names {ns}, which --namespace={} does not watch",
            args.namespace.as_deref().unwrap_or_default()
        ));
    }
    if crate::api::validate::SUPPORTED_PROVIDERS
        .iter()
        .all(|p| *p != args.mesh_provider)
    {
        return Err(format!(
            "--mesh-provider '{}' is not one of {}",
            args.mesh_provider,
            crate::api::validate::SUPPORTED_PROVIDERS.join(", ")
        ));
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
            return Err(format!("{flag} is not an http(s) URL"));
        }
    }
    if let Some(url) = args.metrics_server.as_deref().filter(|u| bad_url(u)) {
        return Err(format!("--metrics-server '{url}' is not an http(s) URL"));
    }
    args.shard_selector
        .as_deref()
        .map(ShardSelector::parse)
        .transpose()
}

/// Starts the dashboard when --dashboard-addr is set, fed by the controller's Canary cache.
async fn start_dashboard(
    args: &ControllerArgs,
    client: &kube::Client,
    mut settings: crate::controller::Settings,
) -> Result<crate::controller::Settings, String> {
    let Some(addr) = args.dashboard_addr else {
        return Ok(settings);
    };
    let feed = crate::controller::CanaryFeed::default();
    let options = crate::dashboard::Options {
        mode: crate::dashboard::Mode::Controller,
        actions: args.dashboard_actions,
    };
    let dashboard = crate::dashboard::Dashboard::new(feed.clone(), client.clone(), options)?;
    let bound = crate::dashboard::serve(addr, dashboard)
        .await
        .map_err(|e| format!("cannot listen on {addr} (--dashboard-addr): {e}"))?;
    tracing::info!(%bound, actions = args.dashboard_actions, "serving the dashboard");
    settings.canary_feed = Some(feed);
    Ok(settings)
}

/// The controller's settings from its flags.
fn settings_from(
    args: &ControllerArgs,
    shard: Option<ShardSelector>,
) -> crate::controller::Settings {
    crate::controller::Settings {
        default_provider: args.mesh_provider.clone(),
        concurrency: args.concurrency,
        telemetry: crate::telemetry::Telemetry::new(&args.mesh_provider),
        metrics_server: args.metrics_server.clone(),
        default_alerts: default_alerts(args),
        event_webhook: args.event_webhook.clone(),
        cluster_name: args.cluster_name.clone(),
        max_concurrent_canaries: (args.max_concurrent_canaries > 0)
            .then_some(args.max_concurrent_canaries),
        metrics_timeout: args.metrics_timeout,
        retry_max: args.retry_max,
        labels: crate::workload::LabelFilter {
            include: args.include_label_prefix.clone(),
            exclude: args.exclude_label_prefix.clone(),
        },
        secret_tracking: args.secret_namespaces.clone(),
        ingress_annotations_prefix: args.ingress_annotations_prefix.clone(),
        shard,
        ..Default::default()
    }
}

/// Runs `serin controller` until SIGTERM / Ctrl-C.
pub async fn controller(args: ControllerArgs) -> i32 {
    init_logging(&args.log_format, &args.log_level);
    let shard = match checked_flags(&args) {
        Ok(shard) => shard,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let lease_name = args
        .lease_name
        .clone()
        .unwrap_or_else(|| crate::controller::shard::lease_name(shard.as_ref()));
    let config = match load_kube_config(args.kubeconfig.clone()).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let client = match crate::controller::client::connect(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "error: cannot build a Kubernetes client: {}",
                manifest::one_line(&e.to_string())
            );
            return 2;
        }
    };
    let settings = settings_from(&args, shard.clone());
    if let Some(addr) = args.metrics_addr {
        match crate::telemetry::serve(addr, settings.telemetry.clone()).await {
            Ok(bound) => tracing::info!(%bound, "serving /metrics, /healthz, /readyz"),
            Err(e) => {
                eprintln!("error: cannot listen on {addr}: {e}");
                return 2;
            }
        }
    }
    let settings = match start_dashboard(&args, &client, settings).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    tracing::info!(namespace = args.namespace.as_deref().unwrap_or("<all>"), provider = %args.mesh_provider, secret_namespaces = %args.secret_namespaces, shard = shard.as_ref().map_or("<all>".to_string(), |s| s.to_string()), "serin controller starting");
    if args.leader_elect {
        let identity =
            std::env::var("POD_NAME").unwrap_or_else(|_| format!("serin-{}", std::process::id()));
        let lease = crate::controller::leader::LeaseSettings {
            name: lease_name,
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

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
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

    #[test]
    fn the_dashboard_is_off_unless_an_address_is_given() {
        let parse = |argv: &[&str]| {
            let Command::Controller(args) = Cli::parse_from(argv).command else {
                panic!("controller args")
            };
            args
        };
        let off = parse(&["serin", "controller"]);
        assert_eq!((off.dashboard_addr, off.dashboard_actions), (None, false));
        let on = parse(&[
            "serin",
            "controller",
            "--dashboard-addr",
            "0.0.0.0:8081",
            "--dashboard-actions",
        ]);
        assert_eq!(on.dashboard_addr, Some("0.0.0.0:8081".parse().unwrap()));
        assert!(on.dashboard_actions);
    }

    #[test]
    fn a_malformed_shard_selector_is_a_startup_error_naming_the_flag() {
        let args = |sel: &str| {
            let Command::Controller(args) =
                Cli::parse_from(["serin", "controller", "--shard-selector", sel]).command
            else {
                panic!("controller args")
            };
            args
        };
        let e = super::checked_flags(&args("sharding.fluxcd.io/key in shard1")).unwrap_err();
        assert_eq!(
            e,
            "--shard-selector 'sharding.fluxcd.io/key in shard1' is not a label selector: \"sharding.fluxcd.io/key in shard1\" needs its values in parentheses"
        );
        let ok = super::checked_flags(&args("!sharding.fluxcd.io/key")).unwrap();
        assert_eq!(
            ok.map(|s| s.lease_name()).as_deref(),
            Some("serin-leader-unlabelled")
        );
    }
}
