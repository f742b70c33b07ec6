//! What `decide` returns: the next status, the ordered effects for the adapters, and when to look
//! again. `Tick` is the builder the phase functions use to produce it.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::conditions::set_condition;
use super::input::Routes;
use crate::api::{
    AlertSeverity, CanaryPhase, CanaryStatus, CheckRecord, DecisionRecord, HookType, MAX_DECISIONS,
};

/// The outcome of one decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The status to write (compare with the input status: no write when equal).
    pub status: CanaryStatus,
    /// Effects to apply, in order; each is idempotent.
    pub effects: Vec<Effect>,
    /// When to reconcile again at the latest; None waits for a watch event.
    pub requeue_after: Option<Duration>,
}

/// How many replicas the target (canary side) should have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleTo {
    /// Scaled to zero (between rollouts).
    Zero,
    /// As many as the primary (or its autoscaler's minimum): ready for analysis.
    LikePrimary,
}

/// Event types, as Kubernetes names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Progress.
    Normal,
    /// Something went wrong or needs attention.
    Warning,
}

/// A closed set of things the adapters do. Ordered so traffic never reaches an unready side:
/// scale up and wait for readiness before routing; route away before scaling down.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Create or refresh `<cm>-primary` / `<secret>-primary` copies of the tracked configs.
    CopyConfigs,
    /// Create `<target>-primary` from the target (initialisation).
    EnsurePrimary,
    /// Create or adopt the Services and route objects, pointing at the primary when new.
    EnsureRouting,
    /// Scale the target (the canary side).
    ScaleTarget(ScaleTo),
    /// Set the route weights.
    SetRoutes(Routes),
    /// Copy the target's pod template (and config references) into the primary; sync its HPA.
    Promote,
    /// Re-deploy the primary's pod template from before the promotion (kept in
    /// `status.postPromotion`, written before this effect runs): a post-promotion rollback.
    RestorePrimary,
    /// Call every webhook of this type; outcomes are informational (post-rollout).
    CallHooks(HookType),
    /// Tell the alert providers (and the event webhooks, through `Event`).
    Notify {
        /// Severity for provider routing.
        severity: AlertSeverity,
        /// The message.
        message: String,
    },
    /// Emit a Kubernetes Event (and post it to `event` webhooks).
    Event {
        /// Normal or Warning.
        kind: EventType,
        /// PascalCase reason.
        reason: &'static str,
        /// Human-readable message.
        message: String,
    },
    /// Create `<target>-baseline` from the primary's pod template with `replicas`, and its
    /// Service (`analysis.baseline`); it gets traffic only once ready.
    EnsureBaseline {
        /// The canary's replica count when the analysis started.
        replicas: i32,
    },
    /// Delete the baseline Deployment and Service (after no route sends traffic to them).
    RemoveBaseline,
    /// Give the apex back to the target and remove generated routing (deletion).
    FinalizeRouting,
    /// Remove `serin.io/finalizer` (after the status write).
    RemoveFinalizer,
}

/// Accumulates a decision while a phase function works through a reconcile.
pub(crate) struct Tick {
    pub status: CanaryStatus,
    pub effects: Vec<Effect>,
    pub requeue_after: Option<Duration>,
    pub now: DateTime<Utc>,
}

impl Tick {
    pub fn new(status: &CanaryStatus, now: DateTime<Utc>) -> Tick {
        Tick {
            status: status.clone(),
            effects: Vec::new(),
            requeue_after: None,
            now,
        }
    }

    pub fn effect(&mut self, e: Effect) {
        self.effects.push(e);
    }

    pub fn event(&mut self, kind: EventType, reason: &'static str, message: impl Into<String>) {
        self.effects.push(Effect::Event {
            kind,
            reason,
            message: message.into(),
        });
    }

    pub fn notify(&mut self, severity: AlertSeverity, message: impl Into<String>) {
        self.effects.push(Effect::Notify {
            severity,
            message: message.into(),
        });
    }

    /// Moves to `phase`, stamping lastTransitionTime only on a real change, and keeps the
    /// Flagger-compatible `Promoted` condition in step.
    pub fn set_phase(&mut self, phase: CanaryPhase) {
        if !matches!(
            phase,
            CanaryPhase::Progressing | CanaryPhase::WaitingPromotion
        ) {
            // An operator's promote request ends with the analysis it was made for.
            self.status.promote_requested = false;
        }
        if self.status.phase != phase {
            self.status.phase = phase;
            self.status.last_transition_time = Some(self.now);
        }
        let (status, reason, message) = promoted_condition(phase);
        set_condition(
            &mut self.status.conditions,
            "Promoted",
            status,
            reason,
            message,
            self.now,
        );
    }

    /// Starts a new step: the next one is due one interval from now.
    pub fn step_taken(&mut self) {
        self.status.last_step_time = Some(self.now);
    }

    pub fn requeue(&mut self, after: Duration) {
        self.requeue_after = Some(match self.requeue_after {
            Some(existing) => existing.min(after),
            None => after,
        });
    }

    /// Appends to `status.decisions`, dropping the oldest beyond the bound.
    pub fn record(
        &mut self,
        phase: CanaryPhase,
        checks: Vec<CheckRecord>,
        action: impl Into<String>,
    ) {
        let record = DecisionRecord {
            time: self.now,
            phase,
            weight: self.status.canary_weight,
            checks,
            action: action.into(),
        };
        append_record(&mut self.status, record);
    }

    pub fn finish(self) -> Decision {
        Decision {
            status: self.status,
            effects: self.effects,
            requeue_after: self.requeue_after,
        }
    }
}

/// Appends a record to `status.decisions`, dropping the oldest beyond the bound. A record that
/// repeats the last one (a gate still closed, a canary still not ready, a write still refused)
/// adds nothing: twenty copies would push the history that explains the rollout out of status.
pub fn append_record(status: &mut CanaryStatus, record: DecisionRecord) {
    if let Some(last) = status.decisions.last()
        && (last.phase, last.weight, &last.checks, &last.action)
            == (record.phase, record.weight, &record.checks, &record.action)
    {
        return;
    }
    status.decisions.push(record);
    let excess = status.decisions.len().saturating_sub(MAX_DECISIONS);
    status.decisions.drain(..excess);
}

fn promoted_condition(phase: CanaryPhase) -> (&'static str, &'static str, &'static str) {
    match phase {
        CanaryPhase::Unknown | CanaryPhase::Initializing => (
            "Unknown",
            "Initializing",
            "Creating the primary and the Services.",
        ),
        CanaryPhase::Initialized => (
            "True",
            "Initialized",
            "Deployment initialization completed.",
        ),
        CanaryPhase::Waiting => (
            "Unknown",
            "Waiting",
            "Waiting for approval or a free rollout slot.",
        ),
        CanaryPhase::Progressing => (
            "Unknown",
            "Progressing",
            "New revision detected, progressing canary analysis.",
        ),
        CanaryPhase::WaitingPromotion => (
            "Unknown",
            "WaitingPromotion",
            "Canary analysis completed, waiting for promotion approval.",
        ),
        CanaryPhase::Promoting => (
            "Unknown",
            "Promoting",
            "Canary analysis completed, starting primary rolling update.",
        ),
        CanaryPhase::Finalising => (
            "Unknown",
            "Finalising",
            "Canary analysis completed, routing all traffic to primary.",
        ),
        CanaryPhase::Succeeded => (
            "True",
            "Succeeded",
            "Canary analysis completed successfully, promotion finished.",
        ),
        CanaryPhase::Failed => (
            "False",
            "Failed",
            "Canary analysis failed, Deployment scaled to zero.",
        ),
        CanaryPhase::Terminating => (
            "Unknown",
            "Terminating",
            "Canary is being deleted, restoring the target.",
        ),
        CanaryPhase::Terminated => (
            "False",
            "Terminated",
            "Target restored; Canary can be deleted.",
        ),
    }
}
