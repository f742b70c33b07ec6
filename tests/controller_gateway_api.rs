//! Scenarios for the Gateway API router on serin::sim with the official Gateway API CRDs
//! installed: a canary run with the weights observed at each step (0 -> 20 -> 40 -> promote ->
//! 100/0), and route-preserving mode leaving a user's other rules and filters byte-identical and
//! giving the original weights back on deletion.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::scenario::{
    install_gateway_api, set_image, setup_with, start_controller, wait_object, wait_phase,
    wait_status,
};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};
use serin::api::CanaryPhase;

fn routes_api(client: &kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    Api::namespaced_with(
        client.clone(),
        "test",
        &ApiResource::from_gvk_with_plural(&gvk, "httproutes"),
    )
}

/// Weights of our two backendRefs in every rule naming both, as (primary, canary).
fn weights(route: &Value) -> Vec<(i64, i64)> {
    route["spec"]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let refs = r["backendRefs"].as_array()?;
            let w = |n: &str| {
                refs.iter()
                    .find(|b| b["name"] == n)
                    .map(|b| b["weight"].as_i64().unwrap_or(1))
            };
            Some((w("podinfo-primary")?, w("podinfo-canary")?))
        })
        .collect()
}

/// Records every distinct weight pair the route shows, polling every 20 ms.
fn observe(client: &kube::Client, name: &'static str) -> Arc<Mutex<Vec<(i64, i64)>>> {
    let seen: Arc<Mutex<Vec<(i64, i64)>>> = Default::default();
    let (api, log) = (routes_api(client), seen.clone());
    tokio::spawn(async move {
        loop {
            if let Ok(Some(r)) = api.get_opt(name).await
                && let Some(w) = weights(&serde_json::to_value(r).unwrap()).first().copied()
            {
                let mut l = log.lock().unwrap();
                if l.last() != Some(&w) {
                    l.push(w);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_run_moves_the_httproute_weights_step_by_step() {
    let (cluster, client) = setup_with(json!({"provider": "gatewayapi:v1",
        "service": {"port": 9898, "hosts": ["podinfo.example.com"], "gatewayRefs": [{"name": "public", "namespace": "gateways"}], "timeout": "15s"},
        "analysis": {"interval": "1s", "threshold": 2, "iterations": null, "stepWeight": 20, "maxWeight": 40}}))
    .await;
    install_gateway_api(&client).await;
    let _stop = start_controller(&client);
    let c = wait_phase(&client, CanaryPhase::Initialized, None).await;
    let first = c.status.unwrap().last_applied_spec.unwrap();
    let route = routes_api(&client).get("podinfo").await.unwrap();
    let route = serde_json::to_value(route).unwrap();
    assert_eq!(route["spec"]["hostnames"], json!(["podinfo.example.com"]));
    assert_eq!(route["metadata"]["ownerReferences"][0]["kind"], "Canary");
    let seen = observe(&client, "podinfo");
    set_image(&client, "podinfo:6.0.1", json!({})).await;
    wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        *seen.lock().unwrap(),
        [(100, 0), (80, 20), (60, 40), (100, 0)]
    );
    common::scenario::assert_calls_are_granted(&cluster, &["gatewayApi"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_preserving_mode_changes_only_our_weights_and_gives_them_back() {
    let (cluster, client) = setup_with(json!({"provider": "gatewayapi:v1", "revertOnDeletion": true,
        "routeRef": {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "name": "web"},
        "service": {"port": 9898},
        "analysis": {"interval": "1s", "threshold": 2, "iterations": null, "stepWeight": 50, "maxWeight": 50}}))
    .await;
    install_gateway_api(&client).await;
    let user_route: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "web", "labels": {"team": "shop"}},
        "spec": {"parentRefs": [{"name": "public-gw", "namespace": "gateway"}], "hostnames": ["web.example.com"],
            "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/static"}}], "backendRefs": [{"name": "cdn", "port": 80}]},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}, "headers": [{"name": "x-tenant", "value": "blue"}]}],
                 "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "x-route", "value": "web"}]}}],
                 "backendRefs": [{"name": "podinfo-primary", "port": 9898, "weight": 90}, {"name": "podinfo-canary", "port": 9898, "weight": 10}]}
            ]}
    }))
    .unwrap();
    let routes = routes_api(&client);
    routes
        .create(&PostParams::default(), &user_route)
        .await
        .unwrap();
    let before = serde_json::to_value(routes.get("web").await.unwrap()).unwrap();
    let _stop = start_controller(&client);
    let c = wait_phase(&client, CanaryPhase::Initialized, None).await;
    let first = c.status.unwrap().last_applied_spec.unwrap();
    let seen = observe(&client, "web");
    set_image(&client, "podinfo:6.0.1", json!({})).await;
    wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(*seen.lock().unwrap(), [(100, 0), (50, 50), (100, 0)]);
    let after = serde_json::to_value(routes.get("web").await.unwrap()).unwrap();
    assert_eq!(
        after["spec"]["rules"][0], before["spec"]["rules"][0],
        "the user's other rule is untouched"
    );
    assert_eq!(
        after["spec"]["rules"][1]["matches"],
        before["spec"]["rules"][1]["matches"]
    );
    assert_eq!(
        after["spec"]["rules"][1]["filters"],
        before["spec"]["rules"][1]["filters"]
    );
    assert_eq!(after["spec"]["parentRefs"], before["spec"]["parentRefs"]);
    assert!(
        after["metadata"]["ownerReferences"].is_null(),
        "never owned"
    );
    common::scenario::delete_canary_and_wait(&client).await;
    let restored = serde_json::to_value(routes.get("web").await.unwrap()).unwrap();
    assert_eq!(
        restored["spec"], before["spec"],
        "the route is given back as it was"
    );
    assert!(
        restored["metadata"]["annotations"][serin::router::gateway_api::ORIGINAL_WEIGHTS].is_null()
    );
    common::scenario::assert_calls_are_granted(&cluster, &["gatewayApi"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_route_without_our_backends_is_an_invalid_spec_naming_it() {
    let (_cluster, client) = setup_with(json!({"provider": "gatewayapi:v1",
        "routeRef": {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "name": "web"},
        "service": {"port": 9898}, "analysis": {"interval": "1s", "threshold": 2, "iterations": 1}}))
    .await;
    install_gateway_api(&client).await;
    let user_route: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "web"},
        "spec": {"rules": [{"backendRefs": [{"name": "somewhere-else", "port": 80}]}]}
    }))
    .unwrap();
    routes_api(&client)
        .create(&PostParams::default(), &user_route)
        .await
        .unwrap();
    let _stop = start_controller(&client);
    let st = wait_status(&client, "a Ready condition", |st| {
        st.conditions
            .iter()
            .any(|c| c.r#type == "Ready" && c.status == "False")
    })
    .await;
    let ready = st.conditions.iter().find(|c| c.r#type == "Ready").unwrap();
    assert!(
        ready.message.as_deref().unwrap_or_default().contains(
            "HTTPRoute web has no rule with backendRefs to both podinfo-primary and podinfo-canary"
        ),
        "{ready:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_its_gateway_refuses_is_surfaced_in_the_canary_status() {
    use kube::api::{Patch, PatchParams};
    let (_cluster, client) = setup_with(json!({"provider": "gatewayapi:v1",
        "service": {"port": 9898, "gatewayRefs": [{"name": "missing", "namespace": "gateways"}]},
        "analysis": {"interval": "1s", "threshold": 2, "iterations": 1}}))
    .await;
    install_gateway_api(&client).await;
    let _stop = start_controller(&client);
    wait_phase(&client, CanaryPhase::Initialized, None).await;
    // What a Gateway API implementation writes when the parent Gateway does not exist.
    let status = json!({"status": {"parents": [{"controllerName": "example.com/gateway", "parentRef": {"name": "missing", "namespace": "gateways"},
        "conditions": [{"type": "Accepted", "status": "False", "reason": "NoMatchingParent", "message": "Gateway not found",
            "lastTransitionTime": "2026-11-27T00:00:00Z", "observedGeneration": 1}]}]}});
    routes_api(&client)
        .patch_status("podinfo", &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
    // Any change of the target brings the Canary back (HTTPRoutes are read, not watched).
    common::scenario::poke_target(&client, "1").await;
    let st = wait_status(&client, "RouteAccepted=False", |st| {
        st.conditions
            .iter()
            .any(|c| c.r#type == "RouteAccepted" && c.status == "False")
    })
    .await;
    let c = st
        .conditions
        .iter()
        .find(|c| c.r#type == "RouteAccepted")
        .unwrap();
    assert_eq!(
        c.message.as_deref(),
        Some(
            "HTTPRoute podinfo not accepted by gateways/missing: NoMatchingParent: Gateway not found"
        )
    );
    assert_eq!(
        st.phase,
        CanaryPhase::Initialized,
        "the canary itself carries on"
    );
    let notes = common::scenario::event_notes(&client, "RouteNotAccepted").await;
    assert_eq!(notes.len(), 1, "{notes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_affinity_cookies_are_in_status_and_in_the_route() {
    let (cluster, client) = setup_with(json!({"provider": "gatewayapi:v1",
        "service": {"port": 9898, "gatewayRefs": [{"name": "public", "namespace": "gateways"}]},
        "analysis": {"interval": "1s", "threshold": 2, "iterations": null, "stepWeight": 50, "maxWeight": 50,
            "sessionAffinity": {"cookieName": "canary-cookie", "maxAge": 120}}}))
    .await;
    install_gateway_api(&client).await;
    let _stop = start_controller(&client);
    let c = wait_phase(&client, CanaryPhase::Initialized, None).await;
    let first = c.status.unwrap().last_applied_spec.unwrap();
    set_image(&client, "podinfo:6.0.1", json!({})).await;
    let st = wait_status(&client, "weight 50", |st| {
        st.canary_weight == 50 && st.phase == CanaryPhase::Progressing
    })
    .await;
    let cookie = st
        .session_affinity_cookie
        .clone()
        .expect("a canary cookie in status");
    assert!(cookie.starts_with("canary-cookie="), "{cookie}");
    let get = || async {
        serde_json::to_value(routes_api(&client).get("podinfo").await.unwrap()).unwrap()
    };
    let route = wait_object("the sticky route", get, |r| {
        weights(r) == [(0, 100), (50, 50)]
    })
    .await;
    let sticky = &route["spec"]["rules"][0];
    assert_eq!(
        sticky["matches"][0]["headers"][0]["value"],
        serin::router::affinity::cookie_regex(&cookie)
    );
    assert_eq!(weights(&route), [(0, 100), (50, 50)]);
    let set = &route["spec"]["rules"][1]["backendRefs"][1]["filters"][0]["responseHeaderModifier"]
        ["add"][0]["value"];
    assert_eq!(
        set.as_str(),
        Some(format!("{cookie}; Max-Age=120").as_str())
    );
    let c = wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    let st = c.status.unwrap();
    assert_eq!(st.session_affinity_cookie, None);
    assert_eq!(
        st.previous_session_affinity_cookie.as_deref(),
        Some(cookie.as_str())
    );
    let route = serde_json::to_value(routes_api(&client).get("podinfo").await.unwrap()).unwrap();
    assert_eq!(weights(&route), [(100, 0)]);
    let expire = &route["spec"]["rules"][0]["backendRefs"][0]["filters"][0]["responseHeaderModifier"]
        ["add"][0]["value"];
    assert_eq!(
        expire.as_str(),
        Some(format!("{cookie}; Max-Age=-1").as_str())
    );
    common::scenario::assert_calls_are_granted(&cluster, &["gatewayApi"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_service_gets_a_grpcroute() {
    let (cluster, client) = setup_with(json!({"provider": "gatewayapi:v1",
        "service": {"port": 9898, "appProtocol": "grpc", "gatewayRefs": [{"name": "public", "namespace": "gateways"}]},
        "analysis": {"interval": "1s", "threshold": 2, "iterations": null, "stepWeight": 50, "maxWeight": 50}}))
    .await;
    install_gateway_api(&client).await;
    let _stop = start_controller(&client);
    let c = wait_phase(&client, CanaryPhase::Initialized, None).await;
    let first = c.status.unwrap().last_applied_spec.unwrap();
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "GRPCRoute");
    let grpc: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "test",
        &ApiResource::from_gvk_with_plural(&gvk, "grpcroutes"),
    );
    let route = serde_json::to_value(grpc.get("podinfo").await.unwrap()).unwrap();
    assert_eq!(weights(&route), [(100, 0)]);
    assert!(
        routes_api(&client)
            .get_opt("podinfo")
            .await
            .unwrap()
            .is_none(),
        "no HTTPRoute for gRPC"
    );
    set_image(&client, "podinfo:6.0.1", json!({})).await;
    wait_status(&client, "weight 50", |st| st.canary_weight == 50).await;
    let get = || async { serde_json::to_value(grpc.get("podinfo").await.unwrap()).unwrap() };
    wait_object("the GRPCRoute at 50/50", get, |r| weights(r) == [(50, 50)]).await;
    wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    common::scenario::assert_calls_are_granted(&cluster, &["gatewayApi"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_the_gateway_api_says_so_in_the_canary_status() {
    let (_cluster, client) = setup_with(
        json!({"provider": "gatewayapi:v1", "service": {"port": 9898},
        "analysis": {"interval": "1s", "threshold": 2, "iterations": 1}}),
    )
    .await;
    let _stop = start_controller(&client);
    let st = wait_status(&client, "Ready=False", |st| {
        st.conditions
            .iter()
            .any(|c| c.r#type == "Ready" && c.status == "False")
    })
    .await;
    let ready = st.conditions.iter().find(|c| c.r#type == "Ready").unwrap();
    assert_eq!(
        ready.message.as_deref(),
        Some(
            "spec.provider: this cluster does not serve HTTPRoute (gateway.networking.k8s.io/v1); install the Gateway API CRDs"
        )
    );
    let deploys: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), "test");
    assert!(
        deploys.get_opt("podinfo-primary").await.unwrap().is_none(),
        "nothing created half-way"
    );
}
