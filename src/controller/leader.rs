//! Leader election on a coordination.k8s.io Lease: only the holder reconciles; a standby takes
//! over once the holder stops renewing for the lease duration. Optimistic concurrency (the
//! resourceVersion) settles races: a 409 means someone else won.

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

/// Leader election reads, creates and renews one Lease in the controller's namespace.
pub const RBAC: &[crate::rbac::Rule] = &[crate::rbac::Rule {
    group: "coordination.k8s.io",
    resources: &["leases"],
    verbs: &["get", "create", "update"],
    needed: crate::rbac::Needed::LeaderElection,
    why: "leader election: one Lease in the controller's namespace",
}];

/// Lease settings.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// Lease name (in the controller's namespace).
    pub name: String,
    /// Namespace of the Lease.
    pub namespace: String,
    /// This instance's identity (the pod name in a cluster).
    pub identity: String,
    /// How long a holder that stopped renewing keeps the lease.
    pub duration: Duration,
    /// How often the holder renews (and a standby retries).
    pub renew_every: Duration,
}

fn micro(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Tries to take or keep the lease at `now`; Ok(true) when this instance holds it afterwards.
pub async fn try_acquire(
    api: &Api<Lease>,
    s: &LeaseSettings,
    now: DateTime<Utc>,
) -> kube::Result<bool> {
    let secs = s.duration.as_secs().max(1) as i64;
    let Some(current) = api.get_opt(&s.name).await? else {
        let lease: Lease = serde_json::from_value(json!({"metadata": {"name": s.name},
            "spec": {"holderIdentity": s.identity, "leaseDurationSeconds": secs, "acquireTime": micro(now), "renewTime": micro(now), "leaseTransitions": 0}}))
            .expect("static lease");
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = current.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let renewed = spec
        .renew_time
        .as_ref()
        .and_then(|t| serde_json::to_value(t).ok())
        .and_then(|v| {
            v.as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        })
        .map(|t| t.with_timezone(&Utc));
    let duration = chrono::Duration::seconds(spec.lease_duration_seconds.map_or(secs, i64::from));
    let expired = renewed.is_none_or(|r| r + duration < now);
    if holder != s.identity && !expired {
        return Ok(false);
    }
    let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(holder != s.identity);
    let acquire = if holder == s.identity {
        spec.acquire_time
            .as_ref()
            .and_then(|t| serde_json::to_value(t).ok())
            .unwrap_or(json!(micro(now)))
    } else {
        json!(micro(now))
    };
    let next: Lease = serde_json::from_value(json!({"metadata": {"name": s.name, "resourceVersion": current.metadata.resource_version},
        "spec": {"holderIdentity": s.identity, "leaseDurationSeconds": secs, "acquireTime": acquire, "renewTime": micro(now), "leaseTransitions": transitions}}))
        .expect("lease from parts");
    match api.replace(&s.name, &PostParams::default(), &next).await {
        Ok(_) => Ok(true),
        Err(e) if is_conflict(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Waits until this instance holds the lease.
pub async fn acquire(api: &Api<Lease>, s: &LeaseSettings) {
    loop {
        match try_acquire(api, s, Utc::now()).await {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "leader election: could not read or write the lease")
            }
        }
        tokio::time::sleep(s.renew_every).await;
    }
}

/// Renews while it can; returns when leadership is lost (or could not be renewed in time).
pub async fn hold(api: &Api<Lease>, s: &LeaseSettings) {
    let mut last_ok = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(s.renew_every).await;
        match try_acquire(api, s, Utc::now()).await {
            Ok(true) => last_ok = tokio::time::Instant::now(),
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(error = %e, "leader election: renewal failed");
                // Stop acting before another instance may take over.
                if last_ok.elapsed() + s.renew_every >= s.duration {
                    return;
                }
            }
        }
    }
}
