//! The soak's shared records: the invariants with their violations (each with the evidence the
//! report prints), and a timeline of chaos events and controller restarts, so that a violation
//! can be put next to what happened around it.

use std::sync::Mutex;
use std::time::Instant;

/// What must never happen (budget 0 each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Invariant {
    /// The route sends traffic to the canary while its Deployment has no ready replica.
    CanaryTraffic,
    /// The route sends traffic to the primary while it has no ready replica.
    PrimaryTraffic,
    /// `status.canaryWeight` went down within one rollout's analysis.
    StatusWeightBack,
    /// The route's canary weight went down within one rollout's analysis, the canary ready.
    RouteWeightBack,
    /// pre-rollout called more than once for one revision.
    PreRolloutTwice,
    /// post-rollout called more than once for one revision.
    PostRolloutTwice,
    /// A rollout ended in the wrong phase, or its primary, canary or route were not right.
    FinalState,
    /// A rollout did not end within its time limit.
    Unfinished,
    /// The controller printed a panic.
    ControllerPanic,
    /// Something in the bench process (the embedded cluster, the stand-ins) panicked.
    BenchPanic,
}

impl Invariant {
    /// Every invariant, in report order.
    pub const ALL: [Invariant; 10] = [
        Invariant::CanaryTraffic,
        Invariant::PrimaryTraffic,
        Invariant::StatusWeightBack,
        Invariant::RouteWeightBack,
        Invariant::PreRolloutTwice,
        Invariant::PostRolloutTwice,
        Invariant::FinalState,
        Invariant::Unfinished,
        Invariant::ControllerPanic,
        Invariant::BenchPanic,
    ];

    /// The report's words for it.
    pub fn describe(self) -> &'static str {
        match self {
            Invariant::CanaryTraffic => "traffic to a canary with no ready replica",
            Invariant::PrimaryTraffic => "traffic to a primary with no ready replica",
            Invariant::StatusWeightBack => "status weight going back within a rollout",
            Invariant::RouteWeightBack => "route weight going back within a rollout",
            Invariant::PreRolloutTwice => "pre-rollout webhook called twice for one revision",
            Invariant::PostRolloutTwice => "post-rollout webhook called twice for one revision",
            Invariant::FinalState => "wrong final state",
            Invariant::Unfinished => "rollout not finished in time",
            Invariant::ControllerPanic => "panics in the controller",
            Invariant::BenchPanic => "panics in the bench process (sim, stand-ins)",
        }
    }
}

/// One violation with its evidence.
#[derive(Debug, Clone)]
pub struct Violation {
    pub invariant: Invariant,
    /// Seconds since the soak began.
    pub at: f64,
    pub app: Option<usize>,
    pub detail: String,
}

/// Violations and the timeline, shared by every task of the soak.
pub struct Ledger {
    start: Instant,
    violations: Mutex<Vec<Violation>>,
    timeline: Mutex<Vec<(f64, String)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger {
            start: Instant::now(),
            violations: Mutex::new(Vec::new()),
            timeline: Mutex::new(Vec::new()),
        }
    }

    /// Seconds since the soak began.
    pub fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Seconds from the start of the soak to `t`.
    pub fn at(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.start).as_secs_f64()
    }

    /// Records a violation (and prints it at once: a long run shows trouble as it happens).
    pub fn violate(&self, invariant: Invariant, app: Option<usize>, detail: String) {
        let at = self.now();
        let who = app.map_or_else(String::new, |a| format!(" app-{a}"));
        eprintln!(
            "[{at:7.1}s] VIOLATION {}{who}: {detail}",
            invariant.describe()
        );
        lock(&self.violations).push(Violation {
            invariant,
            at,
            app,
            detail,
        });
    }

    /// Notes a chaos event or a controller restart on the timeline.
    pub fn note(&self, event: impl Into<String>) {
        let at = self.now();
        let event = event.into();
        if std::env::var_os("SERIN_SOAK_VERBOSE").is_some() {
            eprintln!("[{at:7.1}s] {event}");
        }
        lock(&self.timeline).push((at, event));
    }

    /// Timeline entries between two instants (seconds since the start), inclusive.
    pub fn between(&self, from: f64, to: f64) -> Vec<(f64, String)> {
        lock(&self.timeline)
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .cloned()
            .collect()
    }

    /// Every violation so far.
    pub fn violations(&self) -> Vec<Violation> {
        lock(&self.violations).clone()
    }

    /// How many violations of `invariant`.
    pub fn count(&self, invariant: Invariant) -> usize {
        lock(&self.violations)
            .iter()
            .filter(|v| v.invariant == invariant)
            .count()
    }
}
