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
    /// pre-rollout called more than once for one revision without a controller kill between the
    /// calls (an answer lost with a killed controller is asked again: at least once).
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
            Invariant::PreRolloutTwice => {
                "pre-rollout webhook called twice for one revision, no kill between"
            }
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

/// One timeline entry.
#[derive(Debug, Clone)]
struct Entry {
    /// Seconds since the start.
    at: f64,
    /// Wall-clock time (UTC), to find the moment in the controller's logs.
    utc: String,
    /// A chaos event or a controller restart (the evidence next to a violation), or the progress
    /// of a rollout (only in the timeline file and the verbose output).
    chaos: bool,
    text: String,
}

/// Violations and the timeline, shared by every task of the soak.
pub struct Ledger {
    start: Instant,
    violations: Mutex<Vec<Violation>>,
    timeline: Mutex<Vec<Entry>>,
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
        let text = format!("VIOLATION {}{who}: {detail}", invariant.describe());
        eprintln!("[{at:7.1}s {}] {text}", utc());
        self.push(at, false, text);
        lock(&self.violations).push(Violation {
            invariant,
            at,
            app,
            detail,
        });
    }

    fn push(&self, at: f64, chaos: bool, text: String) {
        let utc = utc();
        if std::env::var_os("SERIN_SOAK_VERBOSE").is_some() && !text.starts_with("VIOLATION") {
            eprintln!("[{at:7.1}s {utc}] {text}");
        }
        lock(&self.timeline).push(Entry {
            at,
            utc,
            chaos,
            text,
        });
    }

    /// Notes a chaos event or a controller restart on the timeline.
    pub fn note(&self, event: impl Into<String>) {
        self.push(self.now(), true, event.into());
    }

    /// Notes the progress of a rollout on the timeline.
    pub fn progress(&self, what: impl Into<String>) {
        self.push(self.now(), false, what.into());
    }

    /// Chaos entries between two instants (seconds since the start), inclusive.
    pub fn between(&self, from: f64, to: f64) -> Vec<(f64, String)> {
        lock(&self.timeline)
            .iter()
            .filter(|e| e.chaos && e.at >= from && e.at <= to)
            .map(|e| (e.at, e.text.clone()))
            .collect()
    }

    /// Writes the whole timeline (rollouts, chaos, violations) with wall-clock times.
    pub fn write_timeline(&self, path: &std::path::Path) -> std::io::Result<()> {
        let text: String = lock(&self.timeline)
            .iter()
            .map(|e| format!("{:8.2}s {} {}\n", e.at, e.utc, e.text))
            .collect();
        std::fs::write(path, text)
    }

    /// The chaos of the last `seconds`, as one line (evidence next to a violation).
    pub fn recent(&self, seconds: f64) -> String {
        let now = self.now();
        let events: Vec<String> = self
            .between(now - seconds, now)
            .into_iter()
            .map(|(t, e)| format!("{t:.1}s {e}"))
            .collect();
        if events.is_empty() {
            format!("nothing in the last {seconds:.0}s")
        } else {
            events.join("; ")
        }
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

/// Now, UTC, to the millisecond (the controller's log uses the same clock).
fn utc() -> String {
    chrono::Utc::now().format("%H:%M:%S%.3f").to_string()
}
