//! Tests of the decision core. `World` is a tiny model of the cluster that applies effects the way
//! the adapters will (scaling makes the target ready, promotion copies the revision, routes are
//! stored), so behaviour can be driven tick by tick with an injected clock.

mod behaviour;
mod lifecycle;
mod operator;
mod props;
mod purity;
mod strategies;

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

pub(super) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
}

/// A little cluster: the target's revision, readiness, the primary, routes, hook and metric answers.
pub(super) struct World {
    pub spec: CanarySpec,
    pub status: CanaryStatus,
    pub now: DateTime<Utc>,
    pub observed: Observation,
    pub target_replicas_up: bool,
    pub primary_revision: Option<String>,
    /// When false, a scaled-up target stays NotReady.
    pub canary_becomes_ready: bool,
    pub hook_calls: Vec<HookType>,
    pub log: Vec<Decision>,
    pub deleting: bool,
    pub invalid: Vec<FieldError>,
    /// The `serin.io/action` annotation.
    pub action: Option<String>,
}

impl World {
    pub fn new(spec: CanarySpec) -> World {
        World {
            spec,
            status: CanaryStatus::default(),
            now: t0(),
            observed: Observation {
                target: Some(TargetState {
                    template_hash: "v1".into(),
                    configs: BTreeMap::new(),
                    readiness: Readiness::Ready,
                }),
                primary: None,
                routes: None,
                ..Default::default()
            },
            target_replicas_up: true,
            primary_revision: None,
            canary_becomes_ready: true,
            hook_calls: Vec::new(),
            log: Vec::new(),
            deleting: false,
            invalid: Vec::new(),
            action: None,
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
            status: &self.status,
            generation: 1,
            deleting: self.deleting,
            invalid: &self.invalid,
            now: self.now,
            observed: &self.observed,
            action: self.action.as_deref(),
        }
    }

    /// Decides once at the current time, records which hook types were due, applies the effects.
    pub fn tick(&mut self) -> Decision {
        let due = hooks_due(&self.input());
        self.hook_calls.extend(due.iter().copied());
        let d = decide(&self.input());
        for e in &d.effects {
            self.apply(e);
        }
        self.status = d.status.clone();
        self.log.push(d.clone());
        d
    }

    /// Moves the clock by one interval (or the given duration) and ticks.
    pub fn tick_after(&mut self, after: Duration) -> Decision {
        self.now += chrono::Duration::from_std(after).unwrap();
        self.tick()
    }

    pub fn interval(&self) -> Duration {
        Plan::from_spec(&self.spec).interval
    }

    pub fn next_interval(&mut self) -> Decision {
        let i = self.interval();
        self.tick_after(i)
    }

    fn apply(&mut self, e: &Effect) {
        let target_rev = self.observed.target.as_ref().map(revision);
        match e {
            Effect::EnsurePrimary | Effect::Promote => {
                self.primary_revision = target_rev.clone();
                let readiness = self
                    .observed
                    .primary
                    .as_ref()
                    .map_or(Readiness::Ready, |p| p.readiness.clone());
                self.observed.primary = Some(PrimaryState {
                    revision: target_rev,
                    readiness,
                });
            }
            Effect::EnsureRouting => self.observed.routes = Some(Routes::PRIMARY),
            Effect::ScaleTarget(ScaleTo::Zero) => self.target_replicas_up = false,
            Effect::ScaleTarget(ScaleTo::LikePrimary) => {
                self.target_replicas_up = true;
                if let Some(t) = self.observed.target.as_mut() {
                    t.readiness = if self.canary_becomes_ready {
                        Readiness::Ready
                    } else {
                        Readiness::NotReady("0/2 ready".into())
                    };
                }
            }
            Effect::SetRoutes(r) => self.observed.routes = Some(*r),
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
        self.observed.metrics.insert(name.to_string(), v);
    }

    pub fn set_hook(&mut self, name: &str, outcome: HookOutcome) {
        self.observed.hooks.insert(name.to_string(), outcome);
    }

    pub fn weight(&self) -> i32 {
        self.status.canary_weight
    }

    pub fn routes(&self) -> Routes {
        self.observed.routes.expect("routes set")
    }

    /// Sets the primary's readiness, keeping the revision it runs.
    pub fn primary_readiness(&mut self, readiness: Readiness) {
        let revision = self.primary_revision.clone();
        self.observed.primary = Some(PrimaryState {
            revision,
            readiness,
        });
    }
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
