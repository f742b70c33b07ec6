//! `status` of a Canary: Flagger's fields plus Serin's `observedGeneration`, `lastStepTime` and the
//! `decisions` record. Pure data; written by the controller with one server-side apply per reconcile.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::StringMap;

/// How many decision records `status.decisions` keeps (oldest dropped first).
pub const MAX_DECISIONS: usize = 20;

/// Observed state of a Canary.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// Where the canary is in its life cycle.
    #[serde(default)]
    pub phase: CanaryPhase,
    /// Failed checks counted in the current analysis.
    #[serde(default)]
    pub failed_checks: i32,
    /// Percentage of traffic the canary receives.
    #[serde(default)]
    pub canary_weight: i32,
    /// Analysis iterations completed (A/B and blue/green).
    #[serde(default)]
    pub iterations: i32,
    /// Checksums of the ConfigMaps and Secrets the target uses, by `configmap/<name>` or `secret/<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracked_configs: Option<StringMap>,
    /// Fingerprint of the revision under analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_spec: Option<String>,
    /// Fingerprint of the revision the primary runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_promoted_spec: Option<String>,
    /// When the phase last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<DateTime<Utc>>,
    /// Cookie (name=value) that currently pins clients to the canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity_cookie: Option<String>,
    /// Cookie (name=value) that pins clients to the primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_session_affinity_cookie: Option<String>,
    /// Canary cookie of the previous analysis, expired when a new one starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_session_affinity_cookie: Option<String>,
    /// Conditions: Promoted (as Flagger), Ready, RouteAccepted where the router reports it, and
    /// Watching once a post-promotion watch has run (analysis.postPromotion).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<CanaryCondition>,
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pre-rollout hooks passed and the canary's first route (weight, mirror or A/B match) is set:
    /// the following ticks check metrics. Reset when a rollout starts or ends.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub analysis_started: bool,
    /// When the current analysis step began; the next one is due at lastStepTime + interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step_time: Option<DateTime<Utc>>,
    /// What the last analysis ticks decided and why (at most 20, newest last).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decisions: Vec<DecisionRecord>,
    /// The last `serin.io/action` annotation value acted on (each value is acted on once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_action: Option<String>,
    /// Set while an operator has paused the analysis (`serin pause`): when it was paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_at: Option<DateTime<Utc>>,
    /// An operator asked to promote (`serin promote`): the next analysis tick whose checks pass
    /// promotes, skipping the remaining steps and the confirm-promotion gate.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub promote_requested: bool,
    /// Since when the canary (the scaled-up target) has not been ready during the analysis; it is
    /// rolled back once this is progressDeadlineSeconds ago. A time in status, so restarts of the
    /// controller cannot extend the deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_ready_since: Option<DateTime<Utc>>,
    /// Since when the analysis has been held without a verdict (metrics provider unreachable, or
    /// no data under `onNoData: hold`); it is rolled back once this is progressDeadlineSeconds ago.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_since: Option<DateTime<Utc>>,
    /// The post-promotion watch (`analysis.postPromotion`): its deadline, failed checks and the
    /// primary's previous pod template, from the promotion until the watch ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_promotion: Option<super::PostPromotionStatus>,
}

/// Life-cycle phases, as Flagger names them.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum CanaryPhase {
    /// Not yet seen by the controller.
    #[default]
    #[serde(rename = "")]
    Unknown,
    /// Creating the primary and the Services.
    Initializing,
    /// Primary ready, target scaled to zero; waiting for a change.
    Initialized,
    /// A change is waiting for confirm-rollout or a concurrency slot.
    Waiting,
    /// The analysis is running.
    Progressing,
    /// Analysis done; waiting for confirm-promotion.
    WaitingPromotion,
    /// Copying the canary's spec into the primary.
    Promoting,
    /// Routing back to the primary and scaling the canary down.
    Finalising,
    /// The last change was promoted.
    Succeeded,
    /// The last change was rolled back.
    Failed,
    /// The Canary is being deleted; the target gets its traffic back.
    Terminating,
    /// The target has its traffic back; the Canary can go.
    Terminated,
}

impl CanaryPhase {
    /// The phase name as it appears in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            CanaryPhase::Unknown => "",
            CanaryPhase::Initializing => "Initializing",
            CanaryPhase::Initialized => "Initialized",
            CanaryPhase::Waiting => "Waiting",
            CanaryPhase::Progressing => "Progressing",
            CanaryPhase::WaitingPromotion => "WaitingPromotion",
            CanaryPhase::Promoting => "Promoting",
            CanaryPhase::Finalising => "Finalising",
            CanaryPhase::Succeeded => "Succeeded",
            CanaryPhase::Failed => "Failed",
            CanaryPhase::Terminating => "Terminating",
            CanaryPhase::Terminated => "Terminated",
        }
    }
}

impl std::fmt::Display for CanaryPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A condition of a Canary.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryCondition {
    /// Condition type: Promoted or Ready.
    pub r#type: String,
    /// True, False or Unknown.
    pub status: String,
    /// When the condition was last updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<DateTime<Utc>>,
    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<DateTime<Utc>>,
    /// Machine-readable reason in PascalCase.
    pub reason: String,
    /// Human-readable explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What one analysis tick decided, with the values behind it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionRecord {
    /// When the tick ran.
    pub time: DateTime<Utc>,
    /// Phase the tick started in.
    pub phase: CanaryPhase,
    /// Canary traffic percentage during the tick.
    pub weight: i32,
    /// Every check evaluated in the tick.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckRecord>,
    /// What the tick did, e.g. "advance weight 20 -> 40" or "roll back: failedChecks reached 2".
    pub action: String,
}

/// One check and its verdict.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckRecord {
    /// Metric or webhook name.
    pub name: String,
    /// Value measured; absent when there was no data, an error, or for webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The bound the value was held to, e.g. ">= 99" or "[0, 500]".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound: Option<String>,
    /// The verdict.
    pub verdict: Verdict,
    /// Detail of a failure (query error text, HTTP status), never secret values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The statistical judge's numbers, for a metric with `compare`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<super::JudgeRecord>,
}

impl CheckRecord {
    /// What follows a check's value when it is shown to a person: ` (bound) Verdict: message`
    /// (the parts it has). The CLI's decision record and the dashboard both show it.
    pub fn bound_and_verdict(&self) -> String {
        let bound = self
            .bound
            .as_deref()
            .map(|b| format!(" ({b})"))
            .unwrap_or_default();
        let msg = self
            .message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        format!("{bound} {:?}{msg}", self.verdict)
    }
}

/// Verdict of a single check.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Verdict {
    /// Within bounds / 2xx.
    #[default]
    Pass,
    /// Out of bounds / non-2xx / error.
    Fail,
    /// No data, counted per the onNoData policy.
    NoData,
    /// Not evaluated (skipped by policy).
    Skipped,
    /// The metrics provider could not be reached; the analysis holds (`onProviderError: hold`).
    Unreachable,
}
