//! Tests of the decision core. `World` is a tiny model of the cluster that applies effects the way
//! the adapters will (scaling makes the target ready, promotion copies the revision, routes are
//! stored), so behaviour can be driven tick by tick with an injected clock.

mod bad_days;
mod baseline;
mod behaviour;
mod judge;
mod lifecycle;
mod operator;
mod props;
mod purity;
mod spread;
mod stats;
mod strategies;
mod watch;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::*;
use crate::api::{CanaryPhase, CanarySpec, CanaryStatus, FieldError, HookType};

pub(super) fn spec(analysis_yaml: &str) -> CanarySpec {
    spec_with("istio", analysis_yaml)
}

pub(super) fn spec_with(provider: &str, analysis_yaml: &str) -> CanarySpec {
    let indented: String = analysis_yaml.lines().map(|l| format!("  {l}\n")).collect();
    let text = format!(
        "provider: {provider}\ntargetRef: {{apiVersion: apps/v1, kind: Deployment, name: podinfo}}\nservice: {{port: 9898}}\nanalysis:\n{indented}"
    );
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("bad test spec: {e}\n{text}"))
}

pub(super) fn hook(name: &str, kind: &str) -> crate::api::CanaryWebhook {
    serde_json::from_value(
        serde_json::json!({"name": name, "type": kind, "url": "http://hooks.test/"}),
    )
    .unwrap()
}

pub(super) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
}

/// A little cluster: the target's revision, readiness, the primary, routes, hook and metric answers.
pub(super) struct World {
    pub spec: CanarySpec,
    /// The controller's default provider (used when the spec names none).
    pub default_provider: String,
    /// What each webhook answers when called, by name (unset: unreachable).
    pub answers: BTreeMap<String, HookOutcome>,
    /// What each metric query returns, by name (unset: not queried).
    pub values: BTreeMap<String, Result<f64, MetricFailure>>,
    /// What each compared metric (`compare`) samples, by name (unset: not queried).
    pub samples: BTreeMap<String, Result<Samples, MetricFailure>>,
    pub status: CanaryStatus,
    pub now: DateTime<Utc>,
    pub observed: Observation,
    pub target_replicas_up: bool,
    pub primary_revision: Option<String>,
    /// When false, a scaled-up target stays NotReady.
    pub canary_becomes_ready: bool,
    /// When false, a started baseline stays NotReady.
    pub baseline_becomes_ready: bool,
    pub hook_calls: Vec<HookType>,
    pub log: Vec<Decision>,
    pub deleting: bool,
    pub invalid: Vec<FieldError>,
    /// The `serin.io/action` annotation.
    pub action: Option<String>,
    /// Which effects the "API server" refuses: a refused effect and the cluster effects after it
    /// are not applied, and the status is written anyway, as the controller does.
    pub refuse: fn(&Effect) -> bool,
}

impl World {
    pub fn new(spec: CanarySpec) -> World {
        World {
            spec,
            default_provider: "kubernetes".into(),
            answers: BTreeMap::new(),
            values: BTreeMap::new(),
            samples: BTreeMap::new(),
            status: CanaryStatus::default(),
            now: t0(),
            observed: Observation {
                target: Some(TargetState::ready("v1", 2)),
                primary: None,
                routes: None,
                ..Default::default()
            },
            target_replicas_up: true,
            primary_revision: None,
            canary_becomes_ready: true,
            baseline_becomes_ready: true,
            hook_calls: Vec::new(),
            log: Vec::new(),
            deleting: false,
            invalid: Vec::new(),
            action: None,
            refuse: |_| false,
        }
    }

    /// A world already initialised on revision v1.
    pub fn initialized(spec: CanarySpec) -> World {
        let mut w = World::new(spec);
        w.tick();
        w.tick();
        assert_eq!(w.status.phase, CanaryPhase::Initialized);
        w
    }

    pub fn input(&self) -> Input<'_> {
        Input {
            name: "podinfo",
            namespace: "test",
            spec: &self.spec,
            provider: self
                .spec
                .provider
                .as_deref()
                .unwrap_or(&self.default_provider),
            status: &self.status,
            generation: 1,
            deleting: self.deleting,
            invalid: &self.invalid,
            now: self.now,
            observed: &self.observed,
            action: self.action.as_deref(),
        }
    }

    /// Observes stage by stage as the controller does (`needs` until it asks for nothing),
    /// calling hooks and querying metrics from the configured answers; returns the hook types
    /// called and whether metrics were queried.
    fn observe(&mut self) -> (Vec<HookType>, bool) {
        self.observed.hooks.clear();
        self.observed.metrics.clear();
        self.observed.samples.clear();
        let (mut kinds, mut queried) = (Vec::new(), false);
        for _ in 0..10 {
            let n = needs(&self.input());
            if n.is_empty() {
                return (kinds, queried);
            }
            for kind in n.hooks {
                kinds.push(kind);
                for h in hooks_of(&self.spec, kind) {
                    let answer =
                        self.answers.get(&h.name).cloned().unwrap_or_else(|| {
                            HookOutcome::Unreachable("no answer configured".into())
                        });
                    self.observed.hooks.insert(h.name.clone(), answer);
                }
            }
            let watched = self.spec.analysis.post_promotion.as_ref();
            let watched = watched.map(|p| p.metrics.clone()).unwrap_or_default();
            if n.post_promotion_metrics {
                queried = true;
                for m in &watched {
                    let v = self
                        .values
                        .get(&m.name)
                        .cloned()
                        .unwrap_or(Err(MetricFailure::NotQueried));
                    self.observed.metrics.insert(m.name.clone(), v);
                }
            }
            if n.metrics {
                queried = true;
                for m in self.spec.analysis.metrics.iter().flatten() {
                    if m.compare.is_some() {
                        let s = self.samples.get(&m.name).cloned();
                        let s = s.unwrap_or(Err(MetricFailure::NotQueried));
                        self.observed.samples.insert(m.name.clone(), s);
                        continue;
                    }
                    let v = self
                        .values
                        .get(&m.name)
                        .cloned()
                        .unwrap_or(Err(MetricFailure::NotQueried));
                    self.observed.metrics.insert(m.name.clone(), v);
                }
            }
        }
        panic!("needs() did not settle within 10 stages");
    }

    /// The hook types a reconcile now would call (stage by stage), without deciding.
    pub fn hooks_due(&mut self) -> Vec<HookType> {
        self.observe().0
    }

    /// Whether a reconcile now would query metrics, without deciding.
    pub fn metrics_due(&mut self) -> bool {
        self.observe().1
    }

    /// Decides once at the current time, records which hook types were due, applies the effects.
    pub fn tick(&mut self) -> Decision {
        let (due, _) = self.observe();
        self.hook_calls.extend(due.iter().copied());
        let d = decide(&self.input());
        // Status before effects, as the controller writes it.
        self.status = d.status.clone();
        for e in &d.effects {
            if (self.refuse)(e) {
                break;
            }
            self.apply(e);
        }
        self.log.push(d.clone());
        d
    }

    /// Moves the clock by one interval (or the given duration) and ticks.
    pub fn tick_after(&mut self, after: Duration) -> Decision {
        self.now += chrono::Duration::from_std(after).unwrap();
        self.tick()
    }

    pub fn plan(&self) -> Plan {
        Plan::of(&self.input())
    }

    pub fn interval(&self) -> Duration {
        self.plan().interval
    }

    pub fn next_interval(&mut self) -> Decision {
        let i = self.interval();
        self.tick_after(i)
    }

    fn apply(&mut self, e: &Effect) {
        let target_rev = self.observed.target.as_ref().map(revision);
        match e {
            Effect::RestorePrimary => {
                let kept = self.status.post_promotion.clone().expect("template kept");
                let rev = kept.previous_revision;
                self.primary_revision = Some(rev.clone());
                self.observed.primary_template = Some(kept.previous_template);
                if let Some(p) = self.observed.primary.as_mut() {
                    p.revision = Some(rev);
                }
            }
            Effect::EnsurePrimary | Effect::Promote => {
                self.primary_revision = target_rev.clone();
                // The primary's pod template, as the controller observes it (a stand-in).
                self.observed.primary_template =
                    Some(serde_json::json!({"metadata": {"labels": {"rev": target_rev}}}));
                let readiness = self
                    .observed
                    .primary
                    .as_ref()
                    .map_or(Readiness::Ready, |p| p.readiness.clone());
                let available = if readiness.is_ready() { 2 } else { 1 };
                self.observed.primary = Some(PrimaryState {
                    revision: target_rev,
                    readiness,
                    available,
                });
            }
            Effect::EnsureRouting if self.observed.routes.is_none() => {
                self.observed.routes = Some(Routes::PRIMARY);
            }
            Effect::ScaleTarget(ScaleTo::Zero) => {
                self.target_replicas_up = false;
                if let Some(t) = self.observed.target.as_mut() {
                    t.replicas = 0;
                    t.available = 0;
                }
            }
            Effect::ScaleTarget(ScaleTo::LikePrimary) => {
                self.target_replicas_up = true;
                let ready = self.canary_becomes_ready;
                if let Some(t) = self.observed.target.as_mut() {
                    t.replicas = 2;
                    t.available = if ready { 2 } else { 0 };
                    t.readiness = if ready {
                        Readiness::Ready
                    } else {
                        Readiness::NotReady("0/2 ready".into())
                    };
                }
            }
            Effect::SetRoutes(r) => self.observed.routes = Some(*r),
            Effect::EnsureBaseline { replicas } => {
                let readiness = if self.baseline_becomes_ready {
                    Readiness::Ready
                } else {
                    Readiness::NotReady("0 ready".into())
                };
                self.observed.baseline = Some(BaselineState {
                    readiness,
                    replicas: *replicas,
                });
            }
            Effect::RemoveBaseline => self.observed.baseline = None,
            _ => {}
        }
    }

    /// The user changes the target's pod template.
    pub fn new_revision(&mut self, hash: &str) {
        if let Some(t) = self.observed.target.as_mut() {
            t.template_hash = hash.to_string();
        }
    }

    pub fn set_metric(&mut self, name: &str, v: Result<f64, MetricFailure>) {
        self.values.insert(name.to_string(), v);
    }

    pub fn set_hook(&mut self, name: &str, outcome: HookOutcome) {
        self.answers.insert(name.to_string(), outcome);
    }

    /// Sets the canary's readiness (keeping its replicas).
    pub fn canary_readiness(&mut self, readiness: Readiness) {
        if let Some(t) = self.observed.target.as_mut() {
            t.available = if readiness.is_ready() { t.replicas } else { 0 };
            t.readiness = readiness;
        }
    }

    pub fn weight(&self) -> i32 {
        self.status.canary_weight
    }

    pub fn routes(&self) -> Routes {
        self.observed.routes.expect("routes set")
    }

    /// Sets the primary's readiness, keeping the revision it runs; a primary that is not ready
    /// still serves from one old pod (as a Deployment mid-rollout does).
    pub fn primary_readiness(&mut self, readiness: Readiness) {
        let revision = self.primary_revision.clone();
        let available = if readiness.is_ready() { 2 } else { 1 };
        self.observed.primary = Some(PrimaryState {
            revision,
            readiness,
            available,
        });
    }

    /// Sets how many of the primary's replicas can serve.
    pub fn primary_available(&mut self, available: i32) {
        if let Some(p) = self.observed.primary.as_mut() {
            p.available = available;
        }
    }
}

/// What the last decision record of a decision says it did.
pub(super) fn last_action(d: &Decision) -> &str {
    d.status.decisions.last().map_or("", |r| r.action.as_str())
}

pub(super) fn has(effects: &[Effect], pred: impl Fn(&Effect) -> bool) -> bool {
    effects.iter().any(pred)
}

pub(super) fn position(effects: &[Effect], pred: impl Fn(&Effect) -> bool) -> usize {
    effects
        .iter()
        .position(pred)
        .unwrap_or_else(|| panic!("effect not found in {effects:?}"))
}
