//! N canaries per controller on serin::sim: memory, CPU, API economy, step punctuality, steady
//! state and restart. The controller is the real `serin controller` binary in its own process
//! (so its RSS and CPU are its own), against the embedded cluster in this process; a fast
//! in-process stand-in for Prometheus answers every query with 99.9.
//!
//! Last, `--max-concurrent-canaries` at half of N while a ConfigMap every app reads changes.
//!
//! `cargo bench --bench canaries` runs N = 100 and N = 1,000 (interval 10 s, stepWeight 10 to 50);
//! `-- --canaries N` picks one size. Without `--bench` (as `cargo test --all-targets` runs it) a
//! smoke size (N = 10, interval 2 s, 5 s of steady state). Prints a report with PASS/FAIL lines
//! against the budget; asserts nothing about speed (a busy machine must not fail the build).

mod cap;
mod cluster;
mod report;

use std::time::{Duration, Instant};

use cluster::{Bench, Size};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench");
    let chosen = args
        .iter()
        .position(|a| a == "--canaries")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse::<usize>().ok());
    let sizes: Vec<Size> = match (full, chosen) {
        (_, Some(n)) => vec![Size::full(n)],
        (true, None) => vec![Size::full(100), Size::full(1000)],
        (false, None) => vec![Size::smoke()],
    };
    for size in sizes {
        if let Err(e) = run(size).await {
            eprintln!("benchmark failed: {e}");
            std::process::exit(1);
        }
    }
}

async fn run(size: Size) -> Result<(), String> {
    println!(
        "\n== serin canaries benchmark: N = {}, interval {}s, stepWeight 10 to 50, {} cores ==",
        size.canaries,
        size.interval.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut bench = Bench::start(&size).await?;
    let t = Instant::now();
    bench.create_apps().await?;
    println!(
        "setup: {} apps created in {:.1}s",
        size.canaries,
        t.elapsed().as_secs_f64()
    );
    bench.start_controller()?;
    let t = Instant::now();
    bench
        .wait_all(|p| p == "Initialized", Duration::from_secs(600))
        .await?;
    println!("initialized all in {:.1}s", t.elapsed().as_secs_f64());

    // Rollout 1, measured: a new revision on every app at once.
    let before = bench.counts();
    bench.reset_sim_latency();
    let cpu_before = bench.controller_cpu();
    let t = Instant::now();
    bench.new_revision_on_all("2").await?;
    // Writes per weight step: between "all at 20" and "all at 30" every canary takes weight
    // steps only; the weights say exactly how many.
    let limit = Duration::from_secs(1800);
    bench.wait_all_reached(20, limit).await?;
    let (c1, w1, t1) = (bench.counts(), bench.weights().await?, chrono::Utc::now());
    bench.wait_all_reached(30, limit).await?;
    let (c2, w2, t2) = (bench.counts(), bench.weights().await?, chrono::Utc::now());
    let steps: i32 = w1.iter().zip(&w2).map(|(a, b)| (b - a).max(0) / 10).sum();
    let step_writes = (c2.since(&c1), steps);
    bench.wait_all(|p| p == "Succeeded", limit).await?;
    let rollout = t.elapsed();
    let during = bench.counts().since(&before);
    let cpu = bench.controller_cpu() - cpu_before;
    let peak = bench.controller_peak_rss_mib();
    let sim_latency = (bench.sim_latency(Some("serin")), bench.sim_latency(None));
    println!("rollout: all promoted in {:.1}s", rollout.as_secs_f64());
    let canaries = bench.canaries().await?;
    let other_ticks = report::other_ticks_between(&canaries, t1, t2);

    // Steady state: nothing to do, so nothing may be written.
    let steady_before = bench.counts();
    tokio::time::sleep(size.steady).await;
    let steady_writes = bench.counts().since(&steady_before).writes();
    let steady_rss = bench.controller_rss_mib();

    // Restart mid-run: a second rollout, killed once every canary has taken a step in it.
    bench.new_revision_on_all("3").await?;
    let in_flight = bench.wait_each_stepped(Duration::from_secs(600)).await?;
    let resume = bench.restart_controller().await?;
    println!(
        "restart: killed with {in_flight} canaries in flight, all reconciled again after {:.1}s",
        resume.as_secs_f64()
    );
    bench
        .wait_all(|p| p == "Succeeded", Duration::from_secs(1800))
        .await?;
    let restarted_ok = report::no_step_repeated(&bench.canaries().await?);

    let r = report::Report {
        size: &size,
        rollout,
        requests: during,
        sim_latency,
        step_writes,
        other_ticks,
        cpu_seconds: cpu,
        peak_rss_mib: peak,
        steady_rss_mib: steady_rss,
        steady_writes,
        lateness: report::lateness(&canaries, size.interval),
        resume,
        restarted_ok,
    };
    r.print();

    // A ConfigMap every app reads changes, under a cap of half the apps at once.
    let cap = cap::run(&mut bench, (size.canaries / 2).max(1)).await?;
    cap.print(report::check);
    bench.stop();
    Ok(())
}
