//! The rollouts: each app gets one new revision after another, each of a kind drawn from the
//! seed — healthy (metrics 99.9), bad metrics (the stand-in answers 50 for the app) or never
//! ready (pod-template annotation `sim.serin.io/ready: "false"`) — and each must end right:
//! healthy → Succeeded with the new image on the primary; the others → Failed with the last
//! promoted image still on the primary; either way the canary scaled to 0 and the route at
//! 100/0. The phase is judged the moment the rollout ends; the rest may take a little longer to
//! be put in line (an effect refused by an injected error is retried), up to `converge`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serin::sim::SimState;

use crate::ledger::{Invariant, Ledger};
use crate::snapshot::{AppView, app_name, read_one, short};
use crate::standins::Prometheus;
use crate::world::new_revision;

/// The kinds of revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Healthy,
    BadMetrics,
    NeverReady,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Healthy, Kind::BadMetrics, Kind::NeverReady];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Healthy => "healthy",
            Kind::BadMetrics => "failing metrics",
            Kind::NeverReady => "never ready",
        }
    }

    fn expected_phase(self) -> &'static str {
        match self {
            Kind::Healthy => "Succeeded",
            _ => "Failed",
        }
    }
}

/// The kinds for every app's rollouts. Smoke: a rotation from a seeded start, so that every kind
/// runs and no app waits out two never-ready deadlines; full: drawn one by one, 45% healthy, 35%
/// failing metrics, 20% never ready (a never-ready rollout waits out progressDeadlineSeconds, so
/// an even draw would leave the chaos mostly hitting canaries that wait).
pub fn plan(seed: u64, apps: usize, per_app: usize, smoke: bool) -> Vec<Vec<Kind>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let start = rng.usize(0..3);
    (0..apps)
        .map(|i| {
            (0..per_app)
                .map(|r| match smoke {
                    true => Kind::ALL[(start + i + r) % 3],
                    false => match rng.u32(0..20) {
                        0..9 => Kind::Healthy,
                        9..16 => Kind::BadMetrics,
                        _ => Kind::NeverReady,
                    },
                })
                .collect()
        })
        .collect()
}

/// How one rollout went.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub kind: Kind,
    /// The phase it ended in ("unfinished" if it did not).
    pub phase: String,
    /// From the new revision to the end of the rollout.
    pub took_s: f64,
    /// From the end of the rollout until primary, canary and route were all right.
    pub converge_s: f64,
    /// The app and the revision (`lastAppliedSpec`) it was about.
    pub app: usize,
    pub rev: Option<String>,
}

/// Time limits.
#[derive(Clone)]
pub struct Limits {
    /// For one rollout, from the new revision to Succeeded/Failed.
    pub rollout: Duration,
    /// After that, for the primary, canary and route to be right.
    pub converge: Duration,
    /// Pause between an app's rollouts, ms.
    pub pause_ms: (u64, u64),
}

/// What the rollouts need.
pub struct Driver {
    pub state: Arc<Mutex<SimState>>,
    pub client: kube::Client,
    pub prometheus: Arc<Prometheus>,
    pub ledger: Arc<Ledger>,
    pub limits: Limits,
}

impl Driver {
    /// Polls the app until `ok` or the limit; the last view either way.
    async fn wait(
        &self,
        app: usize,
        limit: Duration,
        ok: impl Fn(&AppView) -> bool,
    ) -> (bool, AppView) {
        let deadline = Instant::now() + limit;
        loop {
            let v = read_one(&self.state, app);
            if ok(&v) {
                return (true, v);
            }
            if Instant::now() > deadline {
                return (false, v);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Judges the end of a rollout; returns how long the final state took to be right.
    async fn judge(
        &self,
        app: usize,
        kind: Kind,
        image: &str,
        promoted: &str,
        ended: &AppView,
        took_s: f64,
    ) -> f64 {
        let what = format!(
            "{} rollout to {image} (rev {})",
            kind.name(),
            short(ended.last_applied.as_deref())
        );
        if ended.phase != kind.expected_phase() {
            let msg = format!(
                "{what} ended {} instead of {}: {}",
                ended.phase,
                kind.expected_phase(),
                ended.describe()
            );
            self.ledger.violate(Invariant::FinalState, Some(app), msg);
            return 0.0;
        }
        let want_image = if kind == Kind::Healthy {
            image
        } else {
            promoted
        };
        let t = Instant::now();
        let (ok, v) = self
            .wait(app, self.limits.converge, |v| {
                v.primary_image == want_image
                    && v.primary_ready > 0
                    && v.target_replicas == 0
                    && v.route == Some((100, 0))
            })
            .await;
        if !ok {
            let msg = format!(
                "{what} ended {} but {}s later the primary has {} ({} ready; want {want_image}), the canary {} replicas (want 0), the route {:?} (want 100/0): {}",
                v.phase,
                self.limits.converge.as_secs(),
                v.primary_image,
                v.primary_ready,
                v.target_replicas,
                v.route,
                v.describe()
            );
            let msg = format!(
                "{msg} | chaos since the rollout began: {}",
                self.ledger
                    .recent(took_s + self.limits.converge.as_secs_f64())
            );
            self.ledger.violate(Invariant::FinalState, Some(app), msg);
        }
        t.elapsed().as_secs_f64()
    }

    /// One rollout of app `app`: new revision `n`, wait for its end, judge it. None when the app
    /// cannot go on (its rollout never ended).
    async fn rollout(&self, app: usize, n: usize, kind: Kind, promoted: &str) -> Option<Outcome> {
        let name = app_name(app);
        let before = read_one(&self.state, app).last_applied;
        let image = format!("app:{n}");
        self.prometheus.set_bad(&name, kind == Kind::BadMetrics);
        let t = Instant::now();
        self.ledger
            .progress(format!("{name} rollout {n} ({}) to {image}", kind.name()));
        let ready = kind != Kind::NeverReady;
        if let Err(e) = new_revision(&self.client, app, &image, ready, self.limits.rollout).await {
            self.ledger.violate(Invariant::Unfinished, Some(app), e);
            return None;
        }
        let (ended, v) = self
            .wait(app, self.limits.rollout, |v| {
                v.last_applied != before && matches!(v.phase.as_str(), "Succeeded" | "Failed")
            })
            .await;
        let took_s = t.elapsed().as_secs_f64();
        self.ledger.progress(format!(
            "{name} rollout {n} ({}) ended {} after {took_s:.1}s",
            kind.name(),
            v.phase
        ));
        if !ended {
            let msg = format!(
                "{} rollout to {image} not over after {took_s:.0}s: {}",
                kind.name(),
                v.describe()
            );
            self.ledger.violate(Invariant::Unfinished, Some(app), msg);
            return None;
        }
        let converge_s = self.judge(app, kind, &image, promoted, &v, took_s).await;
        Some(Outcome {
            kind,
            phase: v.phase,
            took_s,
            converge_s,
            app,
            rev: v.last_applied,
        })
    }

    /// Runs app `app`'s rollouts one after the other.
    pub async fn drive(self: Arc<Self>, app: usize, kinds: Vec<Kind>, seed: u64) -> Vec<Outcome> {
        let mut rng =
            fastrand::Rng::with_seed(seed ^ (app as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let (ready, v) = self
            .wait(app, Duration::from_secs(300), AppView::settled)
            .await;
        if !ready {
            let msg = format!("not initialized after 300s: {}", v.describe());
            self.ledger.violate(Invariant::Unfinished, Some(app), msg);
            return Vec::new();
        }
        self.ledger
            .progress(format!("{} at rest ({})", app_name(app), v.phase));
        let mut promoted = "app:0".to_string();
        let mut out = Vec::new();
        for (n, kind) in kinds.into_iter().enumerate() {
            let pause = rng.u64(self.limits.pause_ms.0..=self.limits.pause_ms.1);
            tokio::time::sleep(Duration::from_millis(pause)).await;
            let Some(o) = self.rollout(app, n + 1, kind, &promoted).await else {
                let phase = "unfinished".to_string();
                let (took_s, converge_s, rev) = (0.0, 0.0, None);
                out.push(Outcome {
                    kind,
                    phase,
                    took_s,
                    converge_s,
                    app,
                    rev,
                });
                break;
            };
            if o.phase == "Succeeded" {
                promoted = format!("app:{}", n + 1);
            }
            out.push(o);
        }
        out
    }
}
