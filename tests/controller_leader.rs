//! Leader election: two controllers with a Lease never both act; when the leader dies (stops
//! renewing), the standby takes over within the lease duration and finishes the rollout.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::scenario::{set_image, setup_with, wait_phase};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use serde_json::json;
use serin::api::CanaryPhase;
use serin::controller::{self, Settings, leader::LeaseSettings};

fn elected(client: &kube::Client, identity: &str) -> tokio::task::JoinHandle<()> {
    let settings = Settings {
        instance: Some(identity.to_string()),
        ..Default::default()
    };
    let lease = LeaseSettings {
        name: "serin-leader".into(),
        namespace: "test".into(),
        identity: identity.into(),
        duration: Duration::from_secs(3),
        renew_every: Duration::from_millis(500),
    };
    tokio::spawn(controller::run_elected(
        client.clone(),
        Some("test".into()),
        settings,
        lease,
        std::future::pending::<()>(),
    ))
}

async fn instances(client: &kube::Client) -> BTreeSet<String> {
    let events: Api<Event> = Api::namespaced(client.clone(), "test");
    events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reporting_instance)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_acts_and_a_standby_takes_over() {
    let (cluster, client) = setup_with(json!({})).await;
    let a = elected(&client, "serin-a");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = elected(&client, "serin-b");
    let first = common::scenario::initialized_revision(&client).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "test");
    let holder = leases
        .get("serin-leader")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity
        .unwrap();
    assert_eq!(holder, "serin-a");
    assert_eq!(
        instances(&client).await,
        BTreeSet::from(["serin-a".to_string()]),
        "only the leader publishes"
    );

    // The leader dies without releasing the lease.
    a.abort();
    let _ = a.await;
    set_image(&client, "podinfo:6.0.4", json!({})).await;
    wait_phase(&client, CanaryPhase::Succeeded, Some(&first)).await;
    let lease = leases.get("serin-leader").await.unwrap().spec.unwrap();
    assert_eq!(lease.holder_identity.as_deref(), Some("serin-b"));
    assert_eq!(lease.lease_transitions, Some(1));
    assert!(
        instances(&client).await.contains("serin-b"),
        "the standby took over"
    );
    b.abort();
    common::scenario::assert_calls_are_granted(&cluster, &[], true);
}
