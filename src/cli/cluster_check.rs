//! `serin check --cluster`: the permissions preflight the controller runs, as a report for a
//! person: for the default provider and every provider the cluster's Canaries use, whether the
//! identity of the kubeconfig (run it as the controller's ServiceAccount, e.g. with
//! `--as`-style kubeconfigs or in the controller's pod) may make Serin's calls, and which chart
//! value grants what is missing.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;

use kube::Api;

use crate::api::Canary;
use crate::controller::{client, preflight};

/// Runs the report; exit 0 when nothing is missing, 1 when something is, 2 when the cluster
/// cannot be asked at all.
pub async fn run(
    kubeconfig: Option<PathBuf>,
    namespace: Option<String>,
    mesh_provider: &str,
    out: &mut impl Write,
) -> i32 {
    let config = match super::load_kube_config(kubeconfig).await {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(out, "error: {e}");
            return 2;
        }
    };
    let kube = match client::connect(config) {
        Ok(c) => client::instrumented(c, crate::telemetry::Telemetry::new(mesh_provider)),
        Err(e) => {
            let _ = writeln!(out, "error: cannot build a Kubernetes client: {e}");
            return 2;
        }
    };
    let mut providers = BTreeSet::from([mesh_provider.to_string()]);
    let canaries: Api<Canary> = match &namespace {
        Some(ns) => Api::namespaced(kube.clone(), ns),
        None => Api::all(kube.clone()),
    };
    match canaries.list(&Default::default()).await {
        Ok(list) => providers.extend(
            list.items
                .iter()
                .filter_map(|c| c.spec.provider.clone().filter(|p| !p.is_empty())),
        ),
        Err(e) => {
            let _ = writeln!(
                out,
                "note: cannot list Canaries ({e}); checking --mesh-provider only"
            );
        }
    }
    let scope = namespace.as_deref();
    let place = scope.map_or("all namespaces".to_string(), |ns| format!("namespace {ns}"));
    let mut missing_any = false;
    for provider in &providers {
        match preflight::missing_for(&kube, scope, provider, true).await {
            Ok(m) if m.is_empty() => {
                let _ = writeln!(
                    out,
                    "provider {provider}: ok (every call Serin makes is allowed in {place})"
                );
            }
            Ok(m) => {
                missing_any = true;
                let _ = writeln!(
                    out,
                    "provider {provider}: {}",
                    preflight::sentence(&m, scope)
                );
            }
            Err(e) => {
                let _ = writeln!(out, "error: SelfSubjectAccessReview unanswered: {e}");
                return 2;
            }
        }
    }
    i32::from(missing_any)
}
