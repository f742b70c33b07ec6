//! serin::sim under concurrent clients (issue 20): every watcher of a resource receives the same
//! bytes for the same change, in resourceVersion order, whether it watched live or resumed from
//! the history later, while several writers run; and a LIST (paginated or not) served during
//! writes is one consistent snapshot: exactly the objects as they were at its resourceVersion.
//! Raw HTTP clients, so the bytes compared are the server's.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::{Value, json};
use serin::sim::Cluster;

const NS: &str = "c";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn rv_of(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .expect("a resourceVersion")
}

async fn send(req: reqwest::RequestBuilder) -> Value {
    let resp = req.send().await.expect("the sim answers");
    assert!(resp.status().is_success(), "{}", resp.status());
    resp.json().await.unwrap()
}

async fn create(http: &reqwest::Client, base: &str, name: &str, half: &str, k: &str) -> Value {
    let body = json!({"metadata": {"name": name, "labels": {"half": half}}, "data": {"k": k}});
    let url = format!("{base}/api/v1/namespaces/{NS}/configmaps");
    send(http.post(url).json(&body)).await
}

async fn patch(http: &reqwest::Client, base: &str, name: &str, patch: Value) -> Value {
    let url = format!("{base}/api/v1/namespaces/{NS}/configmaps/{name}");
    let req = http
        .patch(url)
        .header("content-type", "application/merge-patch+json")
        .body(patch.to_string());
    send(req).await
}

async fn setup(objects: usize) -> (Cluster, reqwest::Client, String) {
    let cluster = Cluster::start().await.unwrap();
    let http = reqwest::Client::new();
    let base = cluster.url();
    let ns = json!({"metadata": {"name": NS}});
    send(http.post(format!("{base}/api/v1/namespaces")).json(&ns)).await;
    for i in 0..objects {
        let half = if i % 2 == 0 { "a" } else { "b" };
        create(&http, &base, &format!("cm-{i}"), half, "0").await;
    }
    (cluster, http, base)
}

/// Reads a watch until a line names `last`; the lines, each with its newline.
async fn lines_until(resp: &mut reqwest::Response, last: &str) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut buf, mut lines) = (Vec::new(), Vec::new());
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, resp.chunk()).await;
        let chunk = chunk.expect("events before the deadline").unwrap();
        buf.extend_from_slice(&chunk.expect("the watch stays open"));
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            let v: Value = serde_json::from_slice(&line).expect("a JSON line");
            let done = v["object"]["metadata"]["name"] == last;
            lines.push(line);
            if done {
                return lines;
            }
        }
    }
}

fn parsed(lines: &[Vec<u8>]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

async fn watch(base: &str, rv: u64, selector: &str) -> reqwest::Response {
    let url = format!(
        "{base}/api/v1/namespaces/{NS}/configmaps?watch=1&resourceVersion={rv}&labelSelector={selector}"
    );
    let resp = reqwest::get(url).await.unwrap();
    assert!(resp.status().is_success());
    resp
}

/// `watchers` live watches and one selective (`half=a`) from the same resourceVersion while
/// `writers` write at once; then a watch that resumes from that resourceVersion (the history).
async fn watch_case(watchers: usize, writers: usize, writes: usize) {
    let (_cluster, http, base) = setup(4).await;
    let list_url = format!("{base}/api/v1/namespaces/{NS}/configmaps");
    let start = rv_of(&send(http.get(&list_url)).await);
    let mut live = Vec::new();
    for _ in 0..watchers {
        live.push(watch(&base, start, "").await);
    }
    let mut selective = watch(&base, start, "half%3Da").await;
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (http, base) = (http.clone(), base.clone());
            tokio::spawn(async move {
                for j in 0..writes {
                    // Writer 0 moves objects between halves (out of step with the initial
                    // halves, which follow the index's parity): the selective watcher sees those
                    // as ADDED and DELETED where the others see MODIFIED.
                    let half = if j % 3 == 0 { "a" } else { "b" };
                    let mut p = json!({"data": {"k": format!("{w}-{j}")}});
                    if w == 0 {
                        p["metadata"] = json!({"labels": {"half": half}});
                    }
                    patch(&http, &base, &format!("cm-{}", (w + j) % 4), p).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    create(&http, &base, "end", "a", "end").await;
    let mut seen = Vec::new();
    for resp in &mut live {
        seen.push(lines_until(resp, "end").await);
    }
    let first = &seen[0];
    assert_eq!(first.len(), writers * writes + 1, "one event per write");
    for other in &seen[1..] {
        assert_eq!(other, first, "every watcher gets the same bytes");
    }
    let events = parsed(first);
    let rvs: Vec<u64> = events.iter().map(|e| rv_of(&e["object"])).collect();
    assert!(rvs.windows(2).all(|w| w[0] < w[1]), "rv order: {rvs:?}");
    let resumed = lines_until(&mut watch(&base, start, "").await, "end").await;
    assert_eq!(
        &resumed, first,
        "a watch resumed from the history gets the same bytes"
    );
    // What the `half=a` watcher must see, from the full stream: a MODIFIED that moves an object
    // into the selection is ADDED, one that moves it out is DELETED, one outside it is nothing.
    let mut inside: BTreeMap<String, bool> =
        (0..4).map(|i| (format!("cm-{i}"), i % 2 == 0)).collect();
    let mut want = Vec::new();
    for (e, line) in events.iter().zip(first) {
        let name = e["object"]["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_string();
        let now = e["object"]["metadata"]["labels"]["half"] == "a";
        let before = inside.insert(name, now).unwrap_or(false);
        let kind = match (before, now) {
            (false, true) => "ADDED",
            (true, false) => "DELETED",
            (true, true) => e["type"].as_str().unwrap(),
            (false, false) => continue,
        };
        want.push((kind.to_string(), rv_of(&e["object"]), e, line));
    }
    let got = lines_until(&mut selective, "end").await;
    assert_eq!(got.len(), want.len(), "the selective watcher's events");
    for (line, (kind, rv, full, full_line)) in got.iter().zip(&want) {
        let v: Value = serde_json::from_slice(line).unwrap();
        assert_eq!(
            (v["type"].as_str().unwrap(), rv_of(&v["object"])),
            (kind.as_str(), *rv)
        );
        assert_eq!(v["object"], full["object"], "the same object at rv {rv}");
        if v["type"] == full["type"] {
            assert_eq!(line, *full_line, "the same bytes for the same event");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn every_watcher_gets_the_same_lines_in_rv_order(
        watchers in 2usize..8,
        writers in 1usize..4,
        writes in 1usize..12,
    ) {
        runtime().block_on(watch_case(watchers, writers, writes));
    }

    #[test]
    fn a_list_during_writes_is_the_snapshot_at_its_rv(
        writers in 1usize..4,
        writes in 1usize..12,
        limit in prop::option::of(5usize..40),
    ) {
        runtime().block_on(list_case(writers, writes, limit));
    }
}

/// Every write a writer made: (rv, name, data.k).
type Writes = Vec<(u64, String, String)>;

/// Lists the namespace, page by page when `limit` is set; (the list's rv, name → (rv, k)).
async fn list_all(
    http: &reqwest::Client,
    base: &str,
    limit: Option<usize>,
) -> (u64, BTreeMap<String, (u64, String)>) {
    let mut items = BTreeMap::new();
    let (mut rv, mut token) = (None, String::new());
    loop {
        let mut url = format!("{base}/api/v1/namespaces/{NS}/configmaps?continue={token}");
        if let Some(n) = limit {
            url.push_str(&format!("&limit={n}"));
        }
        let page = send(http.get(url)).await;
        let page_rv = rv_of(&page);
        assert_eq!(
            *rv.get_or_insert(page_rv),
            page_rv,
            "every page at the first's rv"
        );
        for item in page["items"].as_array().unwrap() {
            let name = item["metadata"]["name"].as_str().unwrap().to_string();
            let k = item["data"]["k"].as_str().unwrap().to_string();
            assert!(
                items.insert(name, (rv_of(item), k)).is_none(),
                "no item twice"
            );
        }
        match page["metadata"]["continue"].as_str() {
            Some(t) if !t.is_empty() => token = t.to_string(),
            _ => return (page_rv, items),
        }
    }
}

/// Writers create and patch objects while a reader lists; each list must equal the state the
/// writes describe at the list's resourceVersion. More than 64 objects, so that lists are encoded
/// on the blocking pool (`ENCODE_INLINE_MAX` in src/sim/server.rs) as well as inline (pages).
async fn list_case(writers: usize, writes: usize, limit: Option<usize>) {
    let (_cluster, http, base) = setup(70).await;
    let mut initial: Writes = Vec::new();
    for (name, (rv, k)) in list_all(&http, &base, None).await.1 {
        initial.push((rv, name, k));
    }
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (http, base) = (http.clone(), base.clone());
            tokio::spawn(async move {
                let mut done: Writes = Vec::new();
                for j in 0..writes {
                    let k = format!("{w}-{j}");
                    let obj = if j % 3 == 0 {
                        create(&http, &base, &format!("new-{w}-{j}"), "a", &k).await
                    } else {
                        let p = json!({"data": {"k": k}});
                        patch(&http, &base, &format!("cm-{}", (w + j) % 3), p).await
                    };
                    done.push((
                        rv_of(&obj),
                        obj["metadata"]["name"].as_str().unwrap().into(),
                        k,
                    ));
                }
                done
            })
        })
        .collect();
    let mut lists = Vec::new();
    while lists.len() < 3 || tasks.iter().any(|t| !t.is_finished()) {
        lists.push(list_all(&http, &base, limit).await);
    }
    let mut all = initial;
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    for (rv, items) in lists {
        let mut want = BTreeMap::new();
        for (wrv, name, k) in all.iter().filter(|(wrv, ..)| *wrv <= rv) {
            want.insert(name.clone(), (*wrv, k.clone()));
        }
        assert_eq!(items, want, "the list at rv {rv} is the state at rv {rv}");
    }
}
