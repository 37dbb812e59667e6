//! `berth-bench teardown [--pods 30,110] [--grace 30]`: how long removing
//! N static pods takes when their containers ignore SIGTERM, so that each
//! one stops only at the end of its grace period.
//!
//! For each N, in one run:
//! - the raw CRI floor: N such pods started directly, then, all at once,
//!   StopContainer (timeout = grace), StopPodSandbox and RemovePodSandbox
//!   for each;
//! - berth: N manifests written, all containers running, then every
//!   manifest removed at once;
//! - the Go kubelet (when `tests/env/control-plane build` has built it),
//!   standalone on the same manifests and the same containerd.
//!
//! Each is timed to two moments, polled every 50 ms: **stopped**, when none
//! of its containers runs and none of its sandboxes is ready (the pods are
//! terminated: what a user waits for, and where the Go kubelet reports a
//! static pod gone), and **removed**, when the runtime lists none of them.
//! The Go kubelet leaves stopped sandboxes to its garbage collector, which
//! runs once a minute, so its removal is waited for up to 90 s more.
//! With every pod stopping in parallel, stopping takes about one grace
//! period; a kubelet that stops pods in waves takes a multiple of it.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cri_client::RuntimeClient;
use cri_client::proto as pb;
use futures_util::future::join_all;
use test_support::berth::{Berth, exclusive};
use test_support::{busybox_image, endpoint, ensure_image, pause_image};

use crate::common::{
    BENCH_LABEL, IGNORE_TERM, RawPod, parse_sizes, patient_client, start_raw_pods_running,
    wait_running, write_ignore_term_pods,
};
use crate::gokubelet::{self, GoKubelet};
use crate::{cleanup, flag};

const POLL: Duration = Duration::from_millis(50);

/// How long after stopping a kubelet's removal is still waited for.
const REMOVAL_WAIT: Duration = Duration::from_secs(90);

/// When one teardown reached each end point, from the removal.
#[derive(Clone, Copy)]
struct Times {
    stopped: Duration,
    /// None: not removed within [`REMOVAL_WAIT`] after stopping.
    removed: Option<Duration>,
}

struct Row {
    pods: usize,
    floor: Times,
    berth: Times,
    go: Option<Times>,
}

/// Whose sandboxes and containers a poll counts.
enum Whose {
    /// The raw floor's, by their label.
    Floor,
    /// A kubelet's, by the node name its static pods' names end with.
    Node(String),
}

impl Whose {
    fn sandbox(&self, s: &pb::PodSandbox) -> bool {
        match self {
            Whose::Floor => s.labels.contains_key(BENCH_LABEL),
            Whose::Node(node) => s
                .metadata
                .as_ref()
                .is_some_and(|m| m.name.ends_with(&format!("-{node}"))),
        }
    }

    fn container(&self, c: &pb::Container) -> bool {
        match self {
            Whose::Floor => c.labels.contains_key(BENCH_LABEL),
            Whose::Node(node) => c
                .labels
                .get("io.kubernetes.pod.name")
                .is_some_and(|n| n.ends_with(&format!("-{node}"))),
        }
    }
}

/// What is left: (running containers + ready sandboxes, all listed).
async fn tally(client: &RuntimeClient, whose: &Whose) -> Result<(usize, usize)> {
    let sandboxes = client
        .list_pod_sandbox(pb::ListPodSandboxRequest::default())
        .await?
        .items;
    let containers = client
        .list_containers(pb::ListContainersRequest::default())
        .await?
        .containers;
    let sandboxes: Vec<_> = sandboxes.iter().filter(|s| whose.sandbox(s)).collect();
    let containers: Vec<_> = containers.iter().filter(|c| whose.container(c)).collect();
    let live = sandboxes
        .iter()
        .filter(|s| s.state == pb::PodSandboxState::SandboxReady as i32)
        .count()
        + containers
            .iter()
            .filter(|c| c.state == pb::ContainerState::ContainerRunning as i32)
            .count();
    Ok((live, sandboxes.len() + containers.len()))
}

// The cross-process lock is held for the whole run on purpose.
#[allow(clippy::await_holding_lock)]
pub async fn run(args: &[String]) -> Result<()> {
    let sizes = parse_sizes(&flag(args, "--pods", "30,110".to_string())?)?;
    let grace: u64 = flag(args, "--grace", 30)?;
    let client = patient_client().await?;
    ensure_image(&client, &busybox_image()).await;
    ensure_image(&client, &pause_image()).await;
    cleanup(&client).await?;
    let version = client.version(Default::default()).await?;
    println!(
        "# berth-bench teardown: {} {} at {}; containers ignore SIGTERM, grace {grace} s",
        version.runtime_name,
        version.runtime_version,
        endpoint()
    );
    let go_bin = gokubelet::binary();
    match &go_bin {
        Some(bin) => println!(
            "# Go kubelet: {} ({})",
            gokubelet::version(bin),
            bin.display()
        ),
        None => println!(
            "# Go kubelet: not built (tests/env/control-plane build builds it); its column is empty"
        ),
    }

    // Other berths against the same runtime would remove these pods (and
    // e2e tests take this lock too).
    let _one = exclusive();
    let mut rows = Vec::new();
    for &n in &sizes {
        eprintln!("teardown: {n} pods, raw CRI floor ...");
        let floor = floor(&client, n, grace).await?;
        eprintln!("teardown: {n} pods, floor {}; berth ...", show(&floor));
        let berth = berth(&client, n, grace).await?;
        eprintln!("teardown: {n} pods, berth {}", show(&berth));
        let go = match &go_bin {
            Some(bin) => {
                eprintln!("teardown: {n} pods, the Go kubelet ...");
                let t = go_kubelet(&client, bin, n, grace).await?;
                eprintln!("teardown: {n} pods, the Go kubelet {}", show(&t));
                Some(t)
            }
            None => None,
        };
        rows.push(Row {
            pods: n,
            floor,
            berth,
            go,
        });
    }

    println!();
    println!(
        "| pods | grace | berth stopped | floor stopped | Go kubelet stopped | berth removed | floor removed | Go kubelet removed |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let go = |f: fn(&Times) -> String| r.go.as_ref().map_or("–".to_string(), f);
        println!(
            "| {} | {grace} s | {} | {} | {} | {} | {} | {} |",
            r.pods,
            secs(r.berth.stopped),
            secs(r.floor.stopped),
            go(|t| secs(t.stopped)),
            removed(&r.berth),
            removed(&r.floor),
            go(removed),
        );
    }
    println!();
    println!("Targets (issue 9, grace 30 s, pods stopped): 30 pods ≤ 31.5 s, 110 pods ≤ 33 s.");
    Ok(())
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn removed(t: &Times) -> String {
    t.removed.map_or_else(
        || format!("> {:.0} s", (t.stopped + REMOVAL_WAIT).as_secs_f64()),
        secs,
    )
}

fn show(t: &Times) -> String {
    format!("stopped {}, removed {}", secs(t.stopped), removed(t))
}

/// How long a teardown of `n` pods may take before the run gives up: far
/// more than waves of 16 pods, one grace period each, would take.
fn limit(n: usize, grace: u64) -> Duration {
    Duration::from_secs(600 + 2 * grace * (n as u64).div_ceil(16))
}

/// Polls `left` every 50 ms from `start`: the time nothing is live any more
/// (stopped) and the time nothing is listed (removed, waited for up to
/// `removal` after stopping).
async fn wait_gone<F, Fut>(
    what: &str,
    start: Instant,
    limit: Duration,
    removal: Duration,
    mut left: F,
) -> Result<Times>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(usize, usize)>>,
{
    let mut stopped = None;
    loop {
        let (live, listed) = left().await?;
        let at = start.elapsed();
        if live == 0 && stopped.is_none() {
            stopped = Some(at);
        }
        if let Some(stopped) = stopped {
            if listed == 0 {
                return Ok(Times {
                    stopped,
                    removed: Some(at),
                });
            }
            if at > stopped + removal {
                return Ok(Times {
                    stopped,
                    removed: None,
                });
            }
        }
        if at > limit {
            bail!(
                "{what}: {live} containers or sandboxes still up after {:.0} s",
                at.as_secs_f64()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// What a kubelet that stops every pod at once, each with its grace
/// period, asks of the runtime.
async fn floor(client: &RuntimeClient, n: usize, grace: u64) -> Result<Times> {
    let pods = start_raw_pods_running(client, "teardown", n, &IGNORE_TERM)
        .await
        .context("starting the floor's pods")?;
    let start = Instant::now();
    let stops = tokio::spawn(stop_all(client.clone(), pods, grace));
    let took = wait_gone(
        "raw CRI floor",
        start,
        limit(n, grace),
        REMOVAL_WAIT,
        || tally(client, &Whose::Floor),
    )
    .await;
    stops.await.context("the floor's stop task")??;
    crate::common::remove_floor_cgroups();
    let took = took?;
    if grace > 0 && took.stopped.as_secs_f64() < grace as f64 * 0.9 {
        println!(
            "warning: the floor's {n} containers stopped after {:.2} s, before their {grace} s grace period ended: they did not ignore SIGTERM",
            took.stopped.as_secs_f64()
        );
    }
    Ok(took)
}

async fn stop_all(client: RuntimeClient, pods: Vec<RawPod>, grace: u64) -> Result<()> {
    let stops = pods.into_iter().map(|p| {
        let client = client.clone();
        async move {
            client
                .stop_container(pb::StopContainerRequest {
                    container_id: p.container_id,
                    timeout: grace as i64,
                })
                .await?;
            client
                .stop_pod_sandbox(pb::StopPodSandboxRequest {
                    pod_sandbox_id: p.sandbox_id.clone(),
                })
                .await?;
            client
                .remove_pod_sandbox(pb::RemovePodSandboxRequest {
                    pod_sandbox_id: p.sandbox_id,
                })
                .await
        }
    });
    for r in join_all(stops).await {
        r.context("stopping a floor pod")?;
    }
    Ok(())
}

/// Polls until `n` containers of `whose` run.
async fn wait_live(client: &RuntimeClient, whose: &Whose, n: usize) -> Result<()> {
    let t = Instant::now();
    while tally(client, whose).await?.0 < 2 * n {
        if t.elapsed() > Duration::from_secs(600) {
            bail!("{n} pods did not start in 10 minutes");
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

async fn berth(client: &RuntimeClient, n: usize, grace: u64) -> Result<Times> {
    let mut b = Berth::new();
    b.rust_log = "warn".into();
    b.start();
    write_ignore_term_pods(&b.manifests(), "teardown", n, grace);
    wait_running(client, &b, n, POLL).await?;
    // Let the syncs that started the pods finish before timing removal.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let start = Instant::now();
    for i in 0..n {
        b.remove_manifest(&format!("teardown-{i}.yaml"));
    }
    let whose = Whose::Node(b.node.clone());
    let took = wait_gone("berth", start, limit(n, grace), limit(n, grace), || {
        tally(client, &whose)
    })
    .await;
    if took.is_err() {
        eprintln!(
            "--- berth log (tail) ---\n{}",
            test_support::berth::tail(&b.log(), 40)
        );
    }
    b.stop();
    took
}

async fn go_kubelet(
    client: &RuntimeClient,
    bin: &std::path::Path,
    n: usize,
    grace: u64,
) -> Result<Times> {
    let k = GoKubelet::start(bin).await?;
    let whose = Whose::Node(k.node.clone());
    write_ignore_term_pods(&k.manifests(), "teardown", n, grace);
    if let Err(e) = wait_live(client, &whose, n).await {
        eprintln!("--- Go kubelet log (tail) ---\n{}", k.log_tail());
        k.stop(client).await?;
        return Err(e);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let start = Instant::now();
    for i in 0..n {
        let _ = std::fs::remove_file(k.manifests().join(format!("teardown-{i}.yaml")));
    }
    let took = wait_gone(
        "the Go kubelet",
        start,
        limit(n, grace),
        REMOVAL_WAIT,
        || tally(client, &whose),
    )
    .await;
    if took.is_err() {
        eprintln!("--- Go kubelet log (tail) ---\n{}", k.log_tail());
    }
    k.stop(client).await?;
    took
}
