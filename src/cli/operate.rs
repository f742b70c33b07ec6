//! The operator's commands against a real cluster (the normal kubeconfig): `serin status` (a
//! table of canaries, one canary's decision record, `--watch`) and `serin promote|abort|pause|
//! resume`, which set the `serin.io/action` annotation the controller honours — GitOps tools do
//! not own it, so they never revert it. Must not decide anything: the controller does.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Args;
use futures::StreamExt;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

use crate::analysis::{ACTION_ANNOTATION, Action, Plan, step_interval, until_due};
use crate::api::{Canary, CanaryPhase};
use crate::manifest::one_line;

/// Where the commands connect.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// Namespace (default: the kubeconfig context's).
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Path of a kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then in-cluster).
    #[arg(long, env = "KUBECONFIG", value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
}

/// `serin status` arguments.
#[derive(Args, Debug, Clone)]
pub struct StatusArgs {
    /// One Canary: its state and decision record. Without it, a table of all.
    pub canary: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long, conflicts_with = "canary")]
    pub all_namespaces: bool,
    /// Print again on every change until interrupted.
    #[arg(short, long)]
    pub watch: bool,
    #[command(flatten)]
    pub target: Target,
}

/// `serin promote|abort|pause|resume` arguments.
#[derive(Args, Debug, Clone)]
pub struct ActionArgs {
    /// The Canary.
    pub canary: String,
    /// Return once the annotation is set, without waiting for the controller to act on it.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for the controller to act (seconds).
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    #[command(flatten)]
    pub target: Target,
}

pub(crate) async fn client(target: &Target) -> Result<(kube::Client, String), String> {
    let config = super::load_kube_config(target.kubeconfig.clone()).await?;
    let ns = target
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config).map_err(|e| {
        format!(
            "cannot build a Kubernetes client: {}",
            one_line(&e.to_string())
        )
    })?;
    Ok((client, ns))
}

pub(crate) fn human(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

/// The step a canary is at: `weight 20/50` or `iteration 3/10`, `-` when not analysing.
pub(crate) fn step(c: &Canary) -> String {
    let s = c.status.clone().unwrap_or_default();
    if !matches!(
        s.phase,
        CanaryPhase::Progressing | CanaryPhase::WaitingPromotion
    ) {
        return "-".into();
    }
    let plan = Plan::new(&c.spec, c.spec.provider.as_deref().unwrap_or("kubernetes"));
    match plan.weights.last() {
        Some(max) if s.canary_weight > 0 || plan.iterations == 0 => {
            format!("weight {}/{max}", s.canary_weight)
        }
        _ => format!("iteration {}/{}", s.iterations, plan.iterations),
    }
}

/// When the next step is due, relative to `now`.
pub(crate) fn next_step(c: &Canary, now: DateTime<Utc>) -> String {
    let s = c.status.clone().unwrap_or_default();
    if s.paused_at.is_some() {
        return "paused".into();
    }
    if c.spec.suspend.unwrap_or(false) {
        return "suspended".into();
    }
    if !matches!(
        s.phase,
        CanaryPhase::Progressing | CanaryPhase::WaitingPromotion
    ) {
        return "-".into();
    }
    let plan = Plan::new(&c.spec, c.spec.provider.as_deref().unwrap_or("kubernetes"));
    let interval = step_interval(&s, &plan, &c.namespace().unwrap_or_default(), &c.name_any());
    let due = until_due(&s, interval, now);
    let due = chrono::Duration::from_std(due).unwrap_or_default();
    if due.is_zero() {
        "now".into()
    } else {
        format!("in {}", human(due))
    }
}

/// The table `serin status` prints.
pub fn table(canaries: &[Canary], now: DateTime<Utc>) -> String {
    let mut rows = vec![
        [
            "NAMESPACE",
            "NAME",
            "PHASE",
            "WEIGHT",
            "FAILED",
            "LAST TRANSITION",
            "STEP",
            "NEXT STEP",
        ]
        .map(String::from),
    ];
    for c in canaries {
        let s = c.status.clone().unwrap_or_default();
        let since = s
            .last_transition_time
            .map(|t| format!("{} ago", human(now - t)))
            .unwrap_or_else(|| "-".into());
        rows.push([
            c.metadata.namespace.clone().unwrap_or_default(),
            c.metadata.name.clone().unwrap_or_default(),
            format!("{:?}", s.phase),
            s.canary_weight.to_string(),
            s.failed_checks.to_string(),
            since,
            step(c),
            next_step(c, now),
        ]);
    }
    let widths: Vec<usize> = (0..8)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// One canary: the table row, then its decision record (oldest first).
pub fn detail(c: &Canary, now: DateTime<Utc>) -> String {
    let mut out = table(std::slice::from_ref(c), now);
    let s = c.status.clone().unwrap_or_default();
    if let Some(a) = &s.last_action {
        out.push_str(&format!("last operator action: {a}\n"));
    }
    out.push_str("decisions:\n");
    for d in &s.decisions {
        out.push_str(&format!(
            "  {} {:?} weight {}: {}\n",
            d.time.format("%H:%M:%S"),
            d.phase,
            d.weight,
            d.action
        ));
        for k in &d.checks {
            let value = k.value.map(|v| format!(" {v}")).unwrap_or_default();
            let rest = k.bound_and_verdict();
            out.push_str(&format!("      {}{value}{rest}\n", k.name));
        }
    }
    out
}

async fn render(api: &Api<Canary>, one: Option<&str>) -> Result<String, String> {
    let now = Utc::now();
    match one {
        Some(name) => {
            let c = api
                .get(name)
                .await
                .map_err(|e| format!("canary {name}: {}", one_line(&e.to_string())))?;
            Ok(detail(&c, now))
        }
        None => {
            let mut list = api
                .list(&ListParams::default())
                .await
                .map_err(|e| one_line(&e.to_string()))?
                .items;
            list.sort_by_key(|c| (c.metadata.namespace.clone(), c.metadata.name.clone()));
            Ok(table(&list, now))
        }
    }
}

/// Runs `serin status`.
pub async fn status(args: StatusArgs) -> i32 {
    let run = async {
        let (client, ns) = client(&args.target).await?;
        let api: Api<Canary> = if args.all_namespaces {
            Api::all(client)
        } else {
            Api::namespaced(client, &ns)
        };
        print!("{}", render(&api, args.canary.as_deref()).await?);
        if !args.watch {
            return Ok(());
        }
        let mut changes = watcher(api.clone(), watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .boxed();
        let mut last = String::new();
        while let Some(change) = changes.next().await {
            change.map_err(|e| one_line(&e.to_string()))?;
            let now = render(&api, args.canary.as_deref()).await?;
            if now != last {
                println!("---");
                print!("{now}");
                last = now;
            }
        }
        Ok::<(), String>(())
    };
    match run.await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// The verb of an action as the annotation and the commands spell it: `promote`, `abort`, ...
pub fn verb(action: Action) -> String {
    format!("{action:?}").to_lowercase()
}

/// Asks the controller for `action` on one Canary, as `serin abort` etc. and the dashboard do:
/// a merge patch of `serin.io/action: <verb>@<now>` (a new value each time: the controller acts
/// on each value once). Returns the value set. The caller's client decides whose identity asks.
pub async fn request_action(
    api: &Api<Canary>,
    name: &str,
    action: Action,
    now: DateTime<Utc>,
) -> Result<String, kube::Error> {
    let value = format!("{}@{}", verb(action), now.format("%Y-%m-%dT%H:%M:%S%.6fZ"));
    let patch = json!({"metadata": {"annotations": {ACTION_ANNOTATION: value}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    Ok(value)
}

/// Runs `serin promote|abort|pause|resume`: sets `serin.io/action: <verb>@<time>` and (unless
/// --no-wait) waits for the controller to record it in `status.lastAction`.
pub async fn act(action: Action, args: ActionArgs) -> i32 {
    let verb = verb(action);
    let run = async {
        let (client, ns) = client(&args.target).await?;
        let api: Api<Canary> = Api::namespaced(client, &ns);
        let value = request_action(&api, &args.canary, action, Utc::now())
            .await
            .map_err(|e| format!("canary {}.{ns}: {}", args.canary, one_line(&e.to_string())))?;
        println!(
            "{verb} requested for canary {}.{ns} ({ACTION_ANNOTATION}: {value})",
            args.canary
        );
        if args.no_wait {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
        loop {
            let c = api
                .get(&args.canary)
                .await
                .map_err(|e| one_line(&e.to_string()))?;
            let s = c.status.unwrap_or_default();
            if s.last_action.as_deref() == Some(value.as_str()) {
                let what = s
                    .decisions
                    .last()
                    .map(|d| d.action.clone())
                    .unwrap_or_default();
                println!("the controller acted: {what} (phase {:?})", s.phase);
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "the controller did not act on it within {}s; is serin controller running for namespace {ns}? (the annotation stays; it acts when it runs)",
                    args.timeout
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    match run.await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_phase_weight_step_and_when_the_next_step_is_due() {
        let now: DateTime<Utc> = "2026-11-27T12:00:00Z".parse().unwrap();
        let c: Canary = serde_json::from_value(json!({
            "apiVersion": "serin.io/v1beta1", "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": {"port": 9898}, "analysis": {"interval": "1m", "threshold": 2, "stepWeight": 10, "maxWeight": 50}},
            "status": {"phase": "Progressing", "canaryWeight": 20, "failedChecks": 1, "analysisStarted": true,
                "lastTransitionTime": "2026-11-27T11:55:00Z", "lastStepTime": "2026-11-27T11:59:40Z",
                "decisions": [{"time": "2026-11-27T11:59:40Z", "phase": "Progressing", "weight": 20,
                    "action": "advance weight 10 -> 20",
                    "checks": [{"name": "request-success-rate", "value": 99.5, "bound": ">= 99", "verdict": "Pass"}]}]}
        }))
        .unwrap();
        let t = table(std::slice::from_ref(&c), now);
        let row = t.lines().nth(1).unwrap();
        for cell in [
            "test",
            "podinfo",
            "Progressing",
            "20",
            "1",
            "5m ago",
            "weight 20/50",
            "in 40s",
        ] {
            assert!(row.contains(cell), "{cell} in {row}");
        }
        let d = detail(&c, now);
        assert!(d.contains("advance weight 10 -> 20"), "{d}");
        assert!(d.contains("request-success-rate 99.5 (>= 99) Pass"), "{d}");
    }
}
