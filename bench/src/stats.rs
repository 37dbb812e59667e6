//! `berth-bench stats [--pods 110] [--cycles 50] [--idle 60]`: the stats
//! provider's collection cycle for N pods that berth started from static
//! manifests (so they have berth's cgroup and log layout), timed in-process,
//! beside the raw CRI floor (ListContainerStats + ListPodSandboxStats made
//! directly), plus berth's own CPU and RSS while it collects every 10 s
//! (the default --housekeeping-interval) with nothing else to do.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cri_client::RuntimeClient;
use kubelet::container::PodCache;
use kubelet::stats::{StatsConfig, StatsProvider};
use test_support::berth::{Berth, exclusive};
use test_support::{busybox_image, endpoint, ensure_image, pause_image};

use crate::common::{
    quantile, remove_pods, stat_cpu_seconds, status_mib, wait_running, write_sleep_pods,
};
use crate::{flag, ms};

struct Dist {
    median: Duration,
    p95: Duration,
    max: Duration,
}

fn dist(mut v: Vec<Duration>) -> Dist {
    v.sort_unstable();
    Dist {
        median: quantile(&v, 0.5),
        p95: quantile(&v, 0.95),
        max: quantile(&v, 1.0),
    }
}

fn row(what: &str, d: &Dist) {
    println!(
        "| {what} | {:.2} ms | {:.2} ms | {:.2} ms |",
        ms(d.median),
        ms(d.p95),
        ms(d.max)
    );
}

// The cross-process lock is held for the whole run on purpose.
#[allow(clippy::await_holding_lock)]
pub async fn run(args: &[String]) -> Result<()> {
    let n: usize = flag(args, "--pods", 110)?;
    let cycles: usize = flag(args, "--cycles", 50)?;
    let idle = Duration::from_secs(flag(args, "--idle", 60)?);
    if cycles == 0 {
        bail!("--cycles must be at least 1");
    }
    let client = RuntimeClient::connect(Some(&endpoint()), Default::default()).await?;
    ensure_image(&client, &busybox_image()).await;
    ensure_image(&client, &pause_image()).await;
    let version = client.version(Default::default()).await?;
    println!(
        "# berth-bench stats: {} {} at {}; {n} pods, {cycles} cycles",
        version.runtime_name,
        version.runtime_version,
        endpoint()
    );

    // Other berths against the same runtime would remove these pods (and
    // e2e tests take this lock too).
    let _one = exclusive();
    let mut b = Berth::new();
    b.rust_log = "warn".into();
    b.start();
    let pid = b.pid().unwrap_or_default();
    let result = measure(&client, &b, pid, n, cycles, idle).await;

    eprintln!("stats: removing the pods ...");
    remove_pods(&client, &b, "stats", n).await;
    b.stop();
    result
}

async fn measure(
    client: &RuntimeClient,
    b: &Berth,
    pid: u32,
    n: usize,
    cycles: usize,
    idle: Duration,
) -> Result<()> {
    eprintln!("stats: starting {n} pods through berth ...");
    write_sleep_pods(b, "stats", n);
    let t = Instant::now();
    wait_running(client, b, n, Duration::from_millis(100)).await?;
    eprintln!(
        "stats: {n} pods running after {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // berth's own cost while its provider collects every 10 s and nothing
    // else changes. Measured before the in-process cycles below load the
    // machine.
    eprintln!("stats: berth idle for {} s ...", idle.as_secs());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu0 = stat_cpu_seconds(pid, false);
    tokio::time::sleep(idle).await;
    let idle_cpu_pct = (stat_cpu_seconds(pid, false) - cpu0) / idle.as_secs_f64() * 100.0;
    let berth_rss = status_mib(pid, "VmRSS:");
    let summary_pods = b
        .get("/stats/summary")
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| v["pods"].as_array().map(Vec::len))
        .unwrap_or(0);

    // The provider in-process, on berth's layout. Its first cycle finds
    // every cgroup; the timed ones are steady state, as in berth.
    let config = StatsConfig::new(&b.node, &b.logs_dir(), &b.root_dir(), "/");
    let cache = fill_cache(client).await?;
    let provider = StatsProvider::new(client.clone(), cache, config);
    provider.refresh_runtime_stats().await;
    let first = provider.collect().await.context("first collection cycle")?;
    let mut whole = Vec::with_capacity(cycles);
    let mut cri = Vec::with_capacity(cycles);
    let mut files = Vec::with_capacity(cycles);
    let mut pods = 0;
    // CPU the cycles cost (this process does nothing else meanwhile): user
    // + system time, which includes the kernel's work behind the cgroup
    // reads.
    let me = std::process::id();
    let cpu_before = stat_cpu_seconds(me, false);
    for _ in 0..cycles {
        let r = provider.collect().await?;
        whole.push(r.took);
        cri.push(r.cri);
        files.push(r.reads);
        pods = r.pods;
    }
    let cpu_per_cycle_ms = (stat_cpu_seconds(me, false) - cpu_before) * 1000.0 / cycles as f64;
    // berth runs this on its own task at the same interval.
    let mut refresh = Vec::with_capacity(cycles.min(20));
    for _ in 0..cycles.min(20) {
        let t = Instant::now();
        provider.refresh_runtime_stats().await;
        refresh.push(t.elapsed());
    }

    println!();
    println!(
        "{pods} pods in each cycle (berth's /stats/summary had {summary_pods}); first cycle {:.2} ms (finds the cgroups)",
        ms(first.took)
    );
    println!();
    println!("CPU per cycle (user + system, in-process): {cpu_per_cycle_ms:.2} ms");
    println!();
    println!("| {cycles} cycles | median | p95 | max |");
    println!("|---|---|---|---|");
    row("stats provider cycle (all of it)", &dist(whole));
    row(
        "… of which CRI calls (ImageFsInfo; the pods come from the pod cache)",
        &dist(cri),
    );
    row(
        "… of which cgroup, /proc and log reads (blocking task)",
        &dist(files),
    );
    row(
        "runtime stats refresh, off the cycle's path (ListContainerStats)",
        &dist(refresh),
    );

    // The raw floor: the runtime's stats calls alone, with a long deadline
    // so a slow answer is measured rather than cut off.
    let slow = RuntimeClient::connect(
        Some(&endpoint()),
        cri_client::client::Timeouts {
            call: Duration::from_secs(60),
            ..Default::default()
        },
    )
    .await?;
    let mut floor = Vec::with_capacity(cycles);
    for _ in 0..cycles {
        let t = Instant::now();
        slow.list_container_stats(Default::default()).await?;
        floor.push(t.elapsed());
    }
    row("raw CRI floor: ListContainerStats", &dist(floor));
    let mut sandbox_floor = Vec::new();
    let mut failures = Vec::new();
    for _ in 0..cycles.min(10) {
        let t = Instant::now();
        match slow.list_pod_sandbox_stats(Default::default()).await {
            Ok(_) => sandbox_floor.push(t.elapsed()),
            Err(e) => failures.push(format!("{e} after {:.0} ms", ms(t.elapsed()))),
        }
    }
    if !sandbox_floor.is_empty() {
        row(
            &format!(
                "raw CRI floor: ListPodSandboxStats ({} calls)",
                sandbox_floor.len()
            ),
            &dist(sandbox_floor),
        );
    }
    if let Some(e) = failures.first() {
        println!(
            "\nListPodSandboxStats failed {} of {} times, e.g. {e}",
            failures.len(),
            cycles.min(10)
        );
    }
    println!();
    println!(
        "berth with {n} pods, collecting every 10 s, idle {} s: CPU {idle_cpu_pct:.2} %, RSS {berth_rss:.1} MiB",
        idle.as_secs()
    );
    Ok(())
}

/// The pod cache as PLEG's relist fills it in berth, from one listing (the
/// pods don't change while the cycles are timed).
async fn fill_cache(client: &RuntimeClient) -> Result<Arc<PodCache>> {
    let sandboxes = client
        .list_pod_sandbox(Default::default())
        .await
        .context("ListPodSandbox for the pod cache")?
        .items;
    let containers = client
        .list_containers(Default::default())
        .await
        .context("ListContainers for the pod cache")?
        .containers;
    let cache = PodCache::new();
    let now = Instant::now();
    for (uid, pod) in kubelet::kuberuntime::convert::group(&sandboxes, &containers) {
        cache.set(&uid, Arc::new(pod), now);
    }
    cache.update_time(now);
    Ok(cache)
}
