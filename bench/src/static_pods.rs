//! `berth-bench static-pods`: static pod start-up (manifests written → all
//! containers running) and teardown (manifests removed → no sandbox left)
//! for N pods, beside the raw CRI floor for the same work, plus berth's RSS
//! and idle CPU at each N.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use cri_client::RuntimeClient;
use test_support::berth::Berth;

use crate::common::{counts, status_mib, wait_raw_running, wait_running, write_sleep_pods};
use crate::{cleanup, ms, start_raw_pods};

struct Row {
    pods: usize,
    floor_start: Duration,
    berth_start: Duration,
    floor_stop: Duration,
    berth_stop: Duration,
    rss_mib: f64,
    hwm_mib: f64,
    idle_cpu_pct: f64,
}

/// Each live thread's CPU time in ns, from schedstat (ns resolution;
/// stat's utime/stime tick at 10 ms, too coarse for idle CPU).
pub(crate) fn thread_cpu_ns(pid: u32) -> HashMap<String, u64> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| {
            let s = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
            let ns = s.split_whitespace().next()?.parse::<u64>().ok()?;
            Some((t.file_name().to_string_lossy().into_owned(), ns))
        })
        .collect()
}

/// berth's CPU time over `window`, all threads, in seconds. Threads are
/// sampled every 100 ms, so a blocking-pool thread that does work and exits
/// (after 10 s idle) within the window still counts; a sum over the threads
/// alive at both ends would lose it, and can even go negative.
pub(crate) async fn cpu_seconds_over(pid: u32, window: Duration) -> f64 {
    let first = thread_cpu_ns(pid);
    let mut last = first.clone();
    let end = Instant::now() + window;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100).min(end - Instant::now())).await;
        last.extend(thread_cpu_ns(pid));
    }
    let ns: u64 = last
        .iter()
        .map(|(tid, ns)| ns.saturating_sub(first.get(tid).copied().unwrap_or(0)))
        .sum();
    ns as f64 / 1e9
}

/// One run: the floor and berth back to back, the floor first in even runs
/// and berth first in odd ones, so a drift in the machine's speed during a
/// run (it has two shared cores) does not always favour the same side.
async fn one(client: &RuntimeClient, n: usize, idle: Duration, run: usize) -> Result<Row> {
    // Both starts are seen by polling the CRI: small runs poll often (a
    // 20 ms poll is 12 % of one pod's start), large ones spare the busy
    // runtime.
    let poll = Duration::from_millis(if n <= 10 { 2 } else { 20 });
    let (floor_start, floor_stop, b) = if run.is_multiple_of(2) {
        let f = floor(client, n, poll).await?;
        (f.0, f.1, berth(client, n, idle, poll).await?)
    } else {
        let b = berth(client, n, idle, poll).await?;
        let f = floor(client, n, poll).await?;
        (f.0, f.1, b)
    };
    Ok(Row {
        floor_start,
        floor_stop,
        ..b
    })
}

/// The floor: the same CRI calls berth needs per pod, made directly and all
/// at once, as berth's pod workers do, watched as berth is. Returns its
/// start and teardown times.
async fn floor(client: &RuntimeClient, n: usize, poll: Duration) -> Result<(Duration, Duration)> {
    settle().await;
    let t = Instant::now();
    let (started, seen) = tokio::join!(
        start_raw_pods(client, "floor", n),
        wait_raw_running(client, n, poll)
    );
    started?;
    seen?;
    let start = t.elapsed();
    let t = Instant::now();
    cleanup(client).await?;
    Ok((start, t.elapsed()))
}

/// berth on N static pods: start-up, idle CPU and RSS, teardown.
async fn berth(client: &RuntimeClient, n: usize, idle: Duration, poll: Duration) -> Result<Row> {
    let mut b = Berth::new();
    b.rust_log = "warn".into();
    b.start();
    let pid = b.pid().unwrap_or_default();
    settle().await;
    let t = Instant::now();
    write_sleep_pods(&b, "bench", n);
    wait_running(client, &b, n, poll).await?;
    let berth_start = t.elapsed();

    // Idle: everything runs, nothing changes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_cpu_pct = cpu_seconds_over(pid, idle).await / idle.as_secs_f64() * 100.0;
    let rss_mib = status_mib(pid, "VmRSS:");
    let hwm_mib = status_mib(pid, "VmHWM:");

    let t = Instant::now();
    for i in 0..n {
        b.remove_manifest(&format!("bench-{i}.yaml"));
    }
    loop {
        if counts(client, &b).await?.1 == 0 {
            break;
        }
        if t.elapsed() > Duration::from_secs(600) {
            bail!("berth did not remove {n} pods in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let berth_stop = t.elapsed();
    b.stop();
    Ok(Row {
        pods: n,
        floor_start: Duration::ZERO,
        berth_start,
        floor_stop: Duration::ZERO,
        berth_stop,
        rss_mib,
        hwm_mib,
        idle_cpu_pct,
    })
}

/// Lets the runtime finish the previous teardown (shims exiting, snapshot
/// garbage collection) before a start is timed, so neither start pays for
/// the other's clean-up.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(3)).await;
}

/// The run whose berth/floor start-up ratio is the median of `runs`: the
/// floor alone varies by 10-20 % between runs on a 2-core machine, so one
/// run can't say whether berth is within 5 % of it.
fn median_run(mut runs: Vec<Row>) -> Row {
    runs.sort_by(|a, b| ratio(a).total_cmp(&ratio(b)));
    let mid = runs.len() / 2;
    runs.swap_remove(mid)
}

fn ratio(r: &Row) -> f64 {
    r.berth_start.as_secs_f64() / r.floor_start.as_secs_f64().max(1e-9)
}

pub async fn run(
    client: &RuntimeClient,
    sizes: &[usize],
    idle: Duration,
    repeat: usize,
) -> Result<()> {
    let mut rows = Vec::new();
    for &n in sizes {
        let mut runs = Vec::new();
        for i in 0..repeat.max(1) {
            eprintln!("static-pods: {n} pods, run {} of {repeat} ...", i + 1);
            let r = one(client, n, idle, i).await?;
            eprintln!(
                "  floor {:.0} ms, berth {:.0} ms: {:.2}×",
                ms(r.floor_start),
                ms(r.berth_start),
                ratio(&r)
            );
            runs.push(r);
        }
        rows.push(median_run(runs));
    }
    println!();
    println!(
        "| pods | raw floor start | berth start | ratio | raw floor teardown | berth teardown | berth RSS (peak) | berth idle CPU ({}s) |",
        idle.as_secs()
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.0} ms | {:.0} ms | {:.2}× | {:.0} ms | {:.0} ms | {:.1} MiB ({:.1} MiB) | {:.2} % |",
            r.pods,
            ms(r.floor_start),
            ms(r.berth_start),
            ratio(r),
            ms(r.floor_stop),
            ms(r.berth_stop),
            r.rss_mib,
            r.hwm_mib,
            r.idle_cpu_pct
        );
    }
    // berth always collects stats (every --housekeeping-interval, 10 s by
    // default), so the idle figure is with stats on.
    println!();
    println!(
        "Idle CPU is with stats on: berth collects every 10 s (the default), {} times in the {} s window.",
        idle.as_secs() / 10,
        idle.as_secs()
    );
    println!(
        "Targets (issue 9): start ≤ 1.05× the floor at 1, 30 and 110 pods; RSS ≤ 15 MB at 1 pod and ≤ 20 MB at 110 pods; idle CPU ≤ 0.3 % of a core at 110 pods."
    );
    for r in &rows {
        println!(
            "- {} pods: start {:.2}× the floor, RSS {:.1} MB (peak {:.1} MB), idle CPU {:.2} % of a core",
            r.pods,
            ratio(r),
            r.rss_mib * MB_PER_MIB,
            r.hwm_mib * MB_PER_MIB,
            r.idle_cpu_pct
        );
    }
    Ok(())
}

/// MB (10^6 bytes, the unit of the targets) in one MiB.
const MB_PER_MIB: f64 = 1.048_576;
