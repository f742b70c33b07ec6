//! Properties over random rollouts: weights stay within bounds and never decrease while
//! Progressing, failedChecks never exceeds the threshold, and deciding twice at the same `now`
//! is deterministic and takes at most one step.

use proptest::prelude::{
    Just, ProptestConfig, any, prop, prop_assert, prop_assert_eq, prop_oneof, proptest,
};
use proptest::strategy::Strategy as Arb;

use super::*;

#[derive(Debug, Clone)]
enum Event {
    Wait(u64),
    Metric(Option<f64>),
    NoData,
    Hook(bool),
    CanaryReady(bool),
    NewRevision(u8),
    PrimaryReady(bool),
}

fn arb_event() -> impl Arb<Value = Event> {
    prop_oneof![
        4 => (1u64..150).prop_map(Event::Wait),
        2 => prop::option::of(80.0f64..101.0).prop_map(Event::Metric),
        1 => Just(Event::NoData),
        1 => any::<bool>().prop_map(Event::Hook),
        1 => any::<bool>().prop_map(Event::CanaryReady),
        1 => (2u8..5).prop_map(Event::NewRevision),
        1 => any::<bool>().prop_map(Event::PrimaryReady),
    ]
}

fn arb_analysis() -> impl Arb<Value = String> {
    let weights = prop_oneof![
        (1i32..=100, 1i32..=100).prop_map(|(s, m)| format!("stepWeight: {s}\nmaxWeight: {m}")),
        prop::collection::btree_set(1i32..=120, 1..6).prop_map(|set| format!(
            "stepWeights: [{}]",
            set.iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        (1i32..5).prop_map(|i| format!("iterations: {i}")),
    ];
    (
        weights,
        1i32..4,
        any::<bool>(),
        prop::sample::select(vec!["fail", "skip", "hold"]),
    )
        .prop_map(|(w, threshold, mirror, policy)| {
            format!(
                "interval: 1m\nthreshold: {threshold}\n{w}\nmirror: {mirror}\nonNoData: {policy}"
            )
        })
}

fn build(analysis: &str) -> World {
    let mut s = spec(analysis);
    s.analysis.metrics = Some(vec![
        serde_json::from_value(
            serde_json::json!({"name": "request-success-rate", "thresholdRange": {"min": 95}}),
        )
        .unwrap(),
    ]);
    s.analysis.webhooks = Some(vec![
        serde_json::from_value(serde_json::json!({"name": "gate", "type": "confirm-traffic-increase", "url": "http://h/"})).unwrap(),
        serde_json::from_value(serde_json::json!({"name": "load", "type": "rollout", "url": "http://h/"})).unwrap(),
    ]);
    let mut w = World::initialized(s);
    w.set_metric("request-success-rate", Ok(100.0));
    w.set_hook("gate", HookOutcome::Success);
    w.set_hook("load", HookOutcome::Success);
    w
}

fn apply(w: &mut World, e: &Event) {
    match e {
        Event::Wait(s) => w.now += chrono::Duration::seconds(*s as i64),
        Event::Metric(Some(v)) => w.set_metric("request-success-rate", Ok(*v)),
        Event::Metric(None) => w.set_metric(
            "request-success-rate",
            Err(MetricFailure::QueryError("boom".into())),
        ),
        Event::NoData => w.set_metric("request-success-rate", Err(MetricFailure::NoData)),
        Event::Hook(ok) => w.set_hook(
            "gate",
            if *ok {
                HookOutcome::Success
            } else {
                HookOutcome::Status(500)
            },
        ),
        Event::CanaryReady(r) => {
            w.observed.target.as_mut().unwrap().readiness = if *r {
                Readiness::Ready
            } else {
                Readiness::NotReady("x".into())
            }
        }
        Event::NewRevision(n) => w.new_revision(&format!("v{n}")),
        Event::PrimaryReady(r) => w.primary_readiness(if *r {
            Readiness::Ready
        } else {
            Readiness::NotReady("x".into())
        }),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn weights_are_bounded_monotone_and_failures_capped(analysis in arb_analysis(), events in prop::collection::vec(arb_event(), 1..60)) {
        let mut w = build(&analysis);
        let plan = w.plan();
        let threshold = plan.threshold;
        w.new_revision("v9");
        w.tick();
        for e in &events {
            apply(&mut w, e);
            let before = w.status.clone();
            let d = w.tick();
            prop_assert!(d.status.failed_checks <= threshold, "failedChecks {} > threshold {}", d.status.failed_checks, threshold);
            prop_assert!((0..=100).contains(&d.status.canary_weight));
            if plan.strategy == Strategy::Canary && d.status.phase == CanaryPhase::Progressing {
                prop_assert!(d.status.canary_weight <= plan.max_weight(), "weight {} > max {}", d.status.canary_weight, plan.max_weight());
                let same_run = before.phase == CanaryPhase::Progressing && before.last_applied_spec == d.status.last_applied_spec;
                if same_run {
                    prop_assert!(d.status.canary_weight >= before.canary_weight, "weight went {} -> {}", before.canary_weight, d.status.canary_weight);
                }
            }
        }
    }

    #[test]
    fn deciding_twice_at_the_same_now_is_deterministic_and_takes_at_most_one_step(analysis in arb_analysis(), events in prop::collection::vec(arb_event(), 1..40)) {
        let mut w = build(&analysis);
        w.new_revision("v9");
        w.tick();
        for e in &events {
            apply(&mut w, e);
            let first = decide(&w.input());
            prop_assert_eq!(&first, &decide(&w.input()));
            // Re-entry: the same observation and clock, with the status the first call wrote.
            let mut again = World::new(w.spec.clone());
            again.status = first.status.clone();
            again.now = w.now;
            again.observed = w.observed.clone();
            let second = decide(&again.input());
            if second.status.last_applied_spec != first.status.last_applied_spec {
                // The only thing a re-entry may still do: begin the rollout of a pending newer
                // revision (e.g. right after Succeeded), from zero.
                prop_assert!(matches!(second.status.phase, CanaryPhase::Progressing | CanaryPhase::Waiting | CanaryPhase::Initialized));
                prop_assert_eq!((second.status.canary_weight, second.status.iterations, second.status.failed_checks), (0, 0, 0));
                w.tick();
                continue;
            }
            prop_assert_eq!(second.status.canary_weight, first.status.canary_weight);
            prop_assert_eq!(second.status.iterations, first.status.iterations);
            prop_assert_eq!(second.status.failed_checks, first.status.failed_checks);
            prop_assert_eq!(second.status.last_step_time, first.status.last_step_time);
            prop_assert!(!second.effects.iter().any(|e| matches!(e, Effect::CallHooks(_))), "second call called hooks: {:?}", second.effects);
            // Convergence may repeat a promotion the (unchanged) observation does not show yet:
            // an idempotent write, never a second step.
            let promoted_first = first.effects.iter().any(|e| matches!(e, Effect::Promote));
            let promoted_again = second.effects.iter().any(|e| matches!(e, Effect::Promote));
            prop_assert!(!promoted_again || promoted_first, "second call promoted: {:?}", second.effects);
            w.tick();
        }
    }
}

/// The bad days a random rollout can meet, on top of `Event`.
#[derive(Debug, Clone)]
enum Trouble {
    Plain(Event),
    Unreachable,
    PrimaryBroken,
    PrimaryServes(i32),
    /// The baseline (when there is one) turns ready or not.
    BaselineReady(bool),
    /// Which effects the API server refuses from now on (0: none).
    Refuse(u8),
}

fn arb_trouble() -> impl Arb<Value = Trouble> {
    prop_oneof![
        6 => arb_event().prop_map(Trouble::Plain),
        1 => Just(Trouble::Unreachable),
        1 => Just(Trouble::PrimaryBroken),
        1 => (0i32..3).prop_map(Trouble::PrimaryServes),
        1 => any::<bool>().prop_map(Trouble::BaselineReady),
        2 => (0u8..6).prop_map(Trouble::Refuse),
    ]
}

fn refusal(which: u8) -> fn(&Effect) -> bool {
    match which {
        1 => |e| matches!(e, Effect::SetRoutes(_)),
        2 => |e| *e == Effect::ScaleTarget(ScaleTo::Zero),
        3 => |e| *e == Effect::ScaleTarget(ScaleTo::LikePrimary),
        4 => |e| matches!(e, Effect::Promote | Effect::CopyConfigs),
        5 => |e| !matches!(e, Effect::Event { .. } | Effect::Notify { .. }),
        _ => |_| false,
    }
}

fn arb_provider() -> impl Arb<Value = Option<&'static str>> {
    prop::sample::select(vec![
        None,
        Some("kubernetes"),
        Some("istio"),
        Some("gatewayapi"),
        Some("linkerd"),
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Whatever the provider (or none, with either default), strategy, failures of the canary,
    /// the primary, the metrics provider and the API server: every decision keeps the traffic
    /// invariants (`decide` also asserts them in debug builds), and the world never ends up with
    /// traffic on a canary that is not ready.
    #[test]
    fn traffic_invariants_hold_for_every_provider_strategy_and_bad_day(
        provider in arb_provider(),
        default_istio in any::<bool>(),
        analysis in arb_analysis(),
        skip in any::<bool>(),
        baseline in any::<bool>(),
        troubles in prop::collection::vec(arb_trouble(), 1..70),
    ) {
        let mut w = build(&analysis);
        w.spec.provider = provider.map(String::from);
        w.spec.skip_analysis = Some(skip);
        w.spec.analysis.baseline = Some(baseline);
        if default_istio {
            w.default_provider = "istio".into();
        }
        w.new_revision("v9");
        w.tick();
        for t in &troubles {
            match t {
                Trouble::Plain(e) => apply(&mut w, e),
                Trouble::Unreachable => w.set_metric(
                    "request-success-rate",
                    Err(MetricFailure::Unreachable("connection refused".into())),
                ),
                Trouble::PrimaryBroken => w.primary_readiness(Readiness::DeadlineExceeded("x".into())),
                Trouble::PrimaryServes(n) => w.primary_available(*n),
                Trouble::BaselineReady(r) => {
                    w.baseline_becomes_ready = *r;
                    if let Some(b) = w.observed.baseline.as_mut() {
                        b.readiness = if *r { Readiness::Ready } else { Readiness::NotReady("x".into()) };
                    }
                }
                Trouble::Refuse(which) => w.refuse = refusal(*which),
            }
            let input_status = w.status.clone();
            let d = w.tick();
            let mut before = World::new(w.spec.clone());
            before.status = input_status;
            prop_assert!(d.status.failed_checks <= w.plan().threshold);
            if let (Some(routes), Some(target)) = (w.observed.routes, &w.observed.target)
                && routes.reaches_canary()
                && w.refuse as usize == refusal(0) as usize
            {
                prop_assert!(
                    target.readiness.is_ready() && target.replicas > 0,
                    "traffic {routes:?} reaches a canary that is not ready: {target:?}"
                );
            }
            if let Some(routes) = w.observed.routes
                && routes.baseline > 0
                && w.refuse as usize == refusal(0) as usize
            {
                prop_assert!(w.observed.baseline_ready(), "traffic {routes:?} reaches a baseline that is not ready");
                prop_assert_eq!(routes.baseline, routes.canary);
                prop_assert_eq!(routes.primary + routes.canary + routes.baseline, 100);
            }
        }
    }
}

fn arb_init_trouble() -> impl Arb<Value = Trouble> {
    prop_oneof![
        2 => (1u64..30).prop_map(|s| Trouble::Plain(Event::Wait(s))),
        3 => any::<bool>().prop_map(|r| Trouble::Plain(Event::PrimaryReady(r))),
        1 => Just(Trouble::PrimaryBroken),
        2 => (0u8..6).prop_map(Trouble::Refuse),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Initialisation, whatever routing was there before (none, a user's apex Service still
    /// sending to the target, a half-made split) and whatever the primary and the API server do:
    /// no routing is made while the primary is not ready, and the target keeps its replicas while
    /// any traffic can reach it.
    #[test]
    fn initialisation_keeps_the_target_while_traffic_reaches_it(
        provider in arb_provider(),
        before in prop::sample::select(vec![None, Some(Routes::PRIMARY), Some(Routes::CANARY), Some(Routes::split(50))]),
        troubles in prop::collection::vec(arb_init_trouble(), 1..30),
    ) {
        let mut w = World::new(spec("interval: 1m\nthreshold: 2\nstepWeight: 20\nmaxWeight: 50"));
        w.spec.provider = provider.map(String::from);
        w.observed.routes = before;
        for t in &troubles {
            match t {
                Trouble::Plain(e) => apply(&mut w, e),
                Trouble::PrimaryBroken => w.primary_readiness(Readiness::DeadlineExceeded("x".into())),
                Trouble::Refuse(which) => w.refuse = refusal(*which),
                _ => {}
            }
            let primary_ready = w.observed.primary.as_ref().is_some_and(|p| p.readiness.is_ready());
            let d = w.tick();
            if d.status.phase == CanaryPhase::Initializing && !primary_ready {
                prop_assert_eq!(w.observed.routes, before, "routing made for a primary that is not ready");
            }
            if let (Some(routes), Some(target)) = (w.observed.routes, &w.observed.target)
                && routes.reaches_canary()
            {
                prop_assert!(target.replicas > 0, "target scaled away while {routes:?} reaches it");
            }
        }
    }
}
