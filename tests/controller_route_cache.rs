//! The route cache (issue 20 item 3): once the watch cache of HTTPRoutes has listed, a rollout in
//! steady progress reads its route from the cache — 0 GETs of the HTTPRoute per tick, counted by
//! the controller's own `serin_kube_api_requests_total` — and the weights still move step by step
//! (a stale cache must never undo a step: reads are never behind the controller's own writes).
//! What it exercises is `src/router/lookups.rs` (`RouteApi`, `RouteCaches`) through the real
//! controller on the sim; its unit tests cover the stale-read rule directly.

mod common;

use common::scenario::{
    assert_calls_are_granted, dynamic_httproutes, install_gateway_api, set_image, setup_with,
    start_controller_with, wait_object, wait_phase, wait_status,
};
use serde_json::json;
use serin::api::CanaryPhase;
use serin::controller::Settings;

/// The controller's requests of `verb` on HTTPRoutes so far, over every response code.
fn httproute_requests(t: &serin::telemetry::Telemetry, verb: &str) -> u64 {
    let prefix = format!(
        "serin_kube_api_requests_total{{verb=\"{verb}\",resource=\"httproutes.gateway.networking.k8s.io\","
    );
    t.encode()
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_in_steady_progress_makes_no_get_of_its_httproute() {
    let (cluster, client) = setup_with(json!({"provider": "gatewayapi:v1",
        "service": {"port": 9898, "gatewayRefs": [{"name": "public", "namespace": "gateways"}]},
        "analysis": {"interval": "1s", "threshold": 2, "iterations": null, "stepWeight": 10, "maxWeight": 50}}))
    .await;
    install_gateway_api(&client).await;
    let settings = Settings::default();
    let telemetry = settings.telemetry.clone();
    let _stop = start_controller_with(&client, settings);
    let c = wait_phase(&client, CanaryPhase::Initialized, None).await;
    let first = c.status.unwrap().last_applied_spec.unwrap();
    set_image(&client, "podinfo:6.0.1", json!({})).await;
    wait_status(&client, "weight 20", |s| s.canary_weight == 20).await;
    let before = httproute_requests(&telemetry, "get");
    assert!(
        before >= 1,
        "the first read, before the cache listed, was a GET"
    );
    let patches = httproute_requests(&telemetry, "patch");
    // Three more ticks, each reading the route (reconcile, state) and writing its weights. The
    // status is written before the route: wait for the route too (the test's own GETs are not
    // the controller's, whose client alone is counted).
    wait_status(&client, "weight 50", |s| s.canary_weight == 50).await;
    let routes = dynamic_httproutes(&client);
    let route = wait_object(
        "route at 50",
        || async { serde_json::to_value(routes.get("podinfo").await.unwrap()).unwrap() },
        |r| r["spec"]["rules"][0]["backendRefs"][1]["weight"] == 50,
    )
    .await;
    assert_eq!(route["spec"]["rules"][0]["backendRefs"][0]["weight"], 50);
    let after = httproute_requests(&telemetry, "get");
    assert!(
        httproute_requests(&telemetry, "patch") >= patches + 3,
        "the ticks in between wrote the route"
    );
    assert_eq!(after, before, "GETs of the HTTPRoute from weight 20 to 50");
    wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    assert!(
        httproute_requests(&telemetry, "watch") >= 1,
        "no watch of HTTPRoutes"
    );
    assert_calls_are_granted(&cluster, &["gatewayApi"], false);
}
