//! Throughput of serin::sim with many objects and watches: create, list, patch, and watch event
//! delivery, plus the process RSS; then two cases of issue 20: many watchers of one resource
//! (fan-out) and lists served while writers run. `cargo bench --bench sim` runs the full size
//! (10,000 objects, 100 watches; fan-out 200 watches of 1,000 objects); without `--bench` (as
//! `cargo test --all-targets` runs it) a small smoke size. Prints a report; asserts nothing
//! about speed.

#[path = "sim/load.rs"]
mod load;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (objects, watches, patches, namespaces) = if full {
        (10_000, 100, 2_000, 10)
    } else {
        (200, 10, 100, 2)
    };
    let cluster = serin::sim::Cluster::start().await.expect("sim starts");
    let client = cluster.client();
    let ns_api: Api<Namespace> = Api::all(client.clone());
    for i in 0..namespaces {
        ns_api
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": format!("ns{i}")}})).unwrap(),
            )
            .await
            .unwrap();
    }
    println!(
        "serin::sim benchmark: {objects} ConfigMaps in {namespaces} namespaces, {watches} watches, {patches} patches (machine: {} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let started = Instant::now();
    stream::iter(0..objects)
        .map(|i| {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), &format!("ns{}", i % namespaces));
            async move { api.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": format!("cm-{i}"), "labels": {"app": format!("a{}", i % 50)}}, "data": {"k": "v"}})).unwrap()).await }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    let create_s = started.elapsed().as_secs_f64();
    println!(
        "create: {:.0} objects/s ({create_s:.2} s)",
        objects as f64 / create_s
    );

    let seen = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for w in 0..watches {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), &format!("ns{}", w % namespaces));
        let seen = seen.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = watcher(api, watcher::Config::default()).boxed();
            while let Some(ev) = s.next().await {
                if let Ok(watcher::Event::Apply(_)) = ev {
                    seen.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let all: Api<ConfigMap> = Api::all(client.clone());
    let started = Instant::now();
    let rounds = if full { 5 } else { 2 };
    for _ in 0..rounds {
        let l = all.list(&ListParams::default()).await.unwrap();
        assert!(l.items.len() >= objects);
    }
    let list_s = started.elapsed().as_secs_f64() / rounds as f64;
    println!(
        "list all {objects}: {:.0} ms per list ({:.0} objects/s)",
        list_s * 1000.0,
        objects as f64 / list_s
    );
    let selective = all
        .list(&ListParams::default().labels("app=a7"))
        .await
        .unwrap();
    println!("list with label selector: {} items", selective.items.len());

    let before = seen.load(Ordering::Relaxed);
    let started = Instant::now();
    stream::iter(0..patches)
        .map(|i| {
            let api: Api<ConfigMap> =
                Api::namespaced(client.clone(), &format!("ns{}", i % namespaces));
            async move {
                api.patch(
                    &format!("cm-{i}"),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"data": {"k": format!("v{i}")}})),
                )
                .await
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    let patch_s = started.elapsed().as_secs_f64();
    println!(
        "merge patch: {:.0} patches/s ({patch_s:.2} s)",
        patches as f64 / patch_s
    );
    let expected = patches * watches / namespaces;
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.load(Ordering::Relaxed) - before < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered = seen.load(Ordering::Relaxed) - before;
    let watch_s = started.elapsed().as_secs_f64();
    println!(
        "watch delivery: {delivered}/{expected} events to {watches} watches in {watch_s:.2} s ({:.0} events/s)",
        delivered as f64 / watch_s
    );
    println!("process RSS (client + server): {:.1} MiB", rss_mib());
    for t in tasks {
        t.abort();
    }
    let size = if full {
        load::Size::full()
    } else {
        load::Size::smoke()
    };
    load::fan_out(&cluster, &size).await;
    load::lists_under_writes(&cluster, &size).await;
    println!("process RSS (client + server): {:.1} MiB", rss_mib());
}
