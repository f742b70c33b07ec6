//! The two loads of issue 20 item 2 on serin::sim: many watchers of one resource while it changes
//! (each change goes to every watcher), and lists of a whole namespace served while writers
//! patch it. Clients are raw HTTP that count bytes and lines without decoding them, so the time
//! measured is the server's, not the client's JSON parsing (all share the benchmark's 2 cores);
//! the server's own latency report (`Cluster::latency_report`) follows each case.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use serin::sim::Cluster;

/// Sizes of the two loads.
pub struct Size {
    objects: usize,
    watchers: usize,
    patches: usize,
    listers: usize,
    lists_each: usize,
    writers: usize,
}

impl Size {
    /// `cargo bench`: 200 watches of 1,000 objects, 4 listers and 4 writers.
    pub fn full() -> Size {
        Size {
            objects: 1_000,
            watchers: 200,
            patches: 500,
            listers: 4,
            lists_each: 25,
            writers: 4,
        }
    }

    /// `cargo test --all-targets`: just enough to run every path.
    pub fn smoke() -> Size {
        Size {
            objects: 50,
            watchers: 10,
            patches: 20,
            listers: 2,
            lists_each: 3,
            writers: 2,
        }
    }
}

const NS: &str = "fan";

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// "p50 X ms, p99 Y ms" of latencies in seconds.
fn summary(mut secs: Vec<f64>) -> String {
    secs.sort_by(f64::total_cmp);
    format!(
        "p50 {:.2} ms, p99 {:.2} ms",
        percentile(&secs, 0.50) * 1000.0,
        percentile(&secs, 0.99) * 1000.0
    )
}

async fn setup(cluster: &Cluster, objects: usize) -> String {
    let client = cluster.client();
    let ns: Api<Namespace> = Api::all(client.clone());
    let body = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
    ns.create(&PostParams::default(), &body).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, NS);
    stream::iter(0..objects)
        .map(|i| {
            let cms = cms.clone();
            async move {
                let cm = json!({"metadata": {"name": format!("cm-{i}"), "labels": {"app": "fan"}},
                    "data": {"k": "v", "filler": "x".repeat(512)}});
                let cm = serde_json::from_value(cm).unwrap();
                cms.create(&PostParams::default(), &cm).await
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    let list = cms.list_metadata(&ListParams::default().limit(1)).await;
    list.unwrap().metadata.resource_version.unwrap_or_default()
}

async fn patch(http: &reqwest::Client, base: &str, i: usize, value: String) -> f64 {
    let started = Instant::now();
    let resp = http
        .patch(format!("{base}/api/v1/namespaces/{NS}/configmaps/cm-{i}"))
        .header("content-type", "application/merge-patch+json")
        .body(json!({"data": {"k": value}}).to_string())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "patch: {}", resp.status());
    resp.bytes().await.unwrap();
    started.elapsed().as_secs_f64()
}

/// `watchers` watches of one namespace's ConfigMaps from the current resourceVersion (no initial
/// list), then `patches` changes: every watcher must receive every change.
pub async fn fan_out(cluster: &Cluster, size: &Size) {
    let rv = setup(cluster, size.objects).await;
    let base = cluster.url();
    let lines = Arc::new(AtomicUsize::new(0));
    let ready = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..size.watchers {
        let url = format!(
            "{base}/api/v1/namespaces/{NS}/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=600"
        );
        let (lines, ready) = (lines.clone(), ready.clone());
        tasks.push(tokio::spawn(async move {
            // The answer's headers come once the watch is registered with the server.
            let mut resp = reqwest::get(url).await.unwrap();
            ready.fetch_add(1, Ordering::Relaxed);
            while let Ok(Some(chunk)) = resp.chunk().await {
                let n = chunk.iter().filter(|b| **b == b'\n').count();
                lines.fetch_add(n, Ordering::Relaxed);
            }
        }));
    }
    while ready.load(Ordering::Relaxed) < size.watchers {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let http = reqwest::Client::new();
    cluster.reset_latency();
    let started = Instant::now();
    let latencies: Vec<f64> = stream::iter(0..size.patches)
        .map(|i| patch(&http, &base, i % size.objects, format!("v{i}")))
        .buffer_unordered(8)
        .collect()
        .await;
    let patch_s = started.elapsed().as_secs_f64();
    let expected = size.patches * size.watchers;
    let deadline = Instant::now() + Duration::from_secs(120);
    while lines.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let all_s = started.elapsed().as_secs_f64();
    let delivered = lines.load(Ordering::Relaxed);
    println!(
        "fan-out: {} watches of {} ConfigMaps, {} patches (8 at once): {:.0} patches/s, patch {}",
        size.watchers,
        size.objects,
        size.patches,
        size.patches as f64 / patch_s,
        summary(latencies)
    );
    println!(
        "fan-out: {delivered}/{expected} events delivered in {all_s:.2} s ({:.0} events/s)",
        delivered as f64 / all_s
    );
    println!("fan-out: {}", cluster.latency_report());
    for t in tasks {
        t.abort();
    }
}

/// `listers` clients each list the whole namespace `lists_each` times while `writers` clients
/// patch its objects without pause.
pub async fn lists_under_writes(cluster: &Cluster, size: &Size) {
    let base = cluster.url();
    let http = reqwest::Client::new();
    let stop = Arc::new(AtomicBool::new(false));
    cluster.reset_latency();
    let mut writers = Vec::new();
    for w in 0..size.writers {
        let (http, base, stop) = (http.clone(), base.clone(), stop.clone());
        let objects = size.objects;
        writers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                latencies.push(patch(&http, &base, i % objects, format!("w{i}")).await);
                i += 4;
            }
            latencies
        }));
    }
    let started = Instant::now();
    let listers: Vec<_> = (0..size.listers)
        .map(|_| {
            let (http, base, n) = (http.clone(), base.clone(), size.lists_each);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                for _ in 0..n {
                    let t = Instant::now();
                    let url = format!("{base}/api/v1/namespaces/{NS}/configmaps");
                    let body = http.get(url).send().await.unwrap().bytes().await.unwrap();
                    assert!(body.len() > 100, "a list");
                    latencies.push(t.elapsed().as_secs_f64());
                }
                latencies
            })
        })
        .collect();
    let mut lists = Vec::new();
    for l in listers {
        lists.extend(l.await.unwrap());
    }
    let list_s = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut patches = Vec::new();
    for w in writers {
        patches.extend(w.await.unwrap());
    }
    let (n_lists, n_patches) = (lists.len(), patches.len());
    println!(
        "lists under writes: {n_lists} lists of {} ConfigMaps by {} clients, {:.1} lists/s, list {}",
        size.objects,
        size.listers,
        n_lists as f64 / list_s,
        summary(lists)
    );
    println!(
        "lists under writes: {n_patches} patches by {} writers meanwhile, {:.0} patches/s, patch {}",
        size.writers,
        n_patches as f64 / list_s,
        summary(patches)
    );
    println!("lists under writes: {}", cluster.latency_report());
}
