//! `berth-bench teardown [--pods 30,110] [--grace 30]`: how long removing
//! N static pods takes when their containers ignore SIGTERM, so that each
//! one stops only at the end of its grace period.
//!
//! For each N, in one run:
//! - the raw CRI floor: N such pods started directly, then, all at once,
//!   StopContainer (timeout = grace), StopPodSandbox and RemovePodSandbox
//!   for each; timed until the runtime lists none of them;
//! - berth: N manifests written, all containers running, then every
//!   manifest removed at once; timed until the runtime lists no sandbox and
//!   no container of berth's node.
//!
//! Both are polled every 50 ms. With every pod stopping in parallel, both
//! should take about one grace period; a kubelet that stops pods in waves
//! takes a multiple of it.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cri_client::RuntimeClient;
use cri_client::proto as pb;
use futures_util::future::join_all;
use test_support::berth::{Berth, exclusive};
use test_support::{busybox_image, endpoint, ensure_image, pause_image};

use crate::common::{
    IGNORE_TERM, RawPod, parse_sizes, patient_client, raw_leftovers, start_raw_pods_running,
    wait_running, write_ignore_term_pods,
};
use crate::{cleanup, flag};

const POLL: Duration = Duration::from_millis(50);

struct Row {
    pods: usize,
    berth: Duration,
    floor: Duration,
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

    // Other berths against the same runtime would remove these pods (and
    // e2e tests take this lock too).
    let _one = exclusive();
    let mut rows = Vec::new();
    for &n in &sizes {
        eprintln!("teardown: {n} pods, raw CRI floor ...");
        let floor = floor(&client, n, grace).await?;
        eprintln!(
            "teardown: {n} pods, raw CRI floor {:.2} s; berth ...",
            floor.as_secs_f64()
        );
        let berth = berth(&client, n, grace).await?;
        eprintln!("teardown: {n} pods, berth {:.2} s", berth.as_secs_f64());
        rows.push(Row {
            pods: n,
            berth,
            floor,
        });
    }

    println!();
    println!("| pods | grace | berth teardown | raw CRI floor | ratio |");
    println!("|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {grace} s | {:.2} s | {:.2} s | {:.2}× |",
            r.pods,
            r.berth.as_secs_f64(),
            r.floor.as_secs_f64(),
            r.berth.as_secs_f64() / r.floor.as_secs_f64().max(1e-9)
        );
    }
    println!();
    println!("Targets (issue 9, grace 30 s): 30 pods ≤ 31.5 s, 110 pods ≤ 33 s.");
    Ok(())
}

/// How long a teardown of `n` pods may take before the run gives up: far
/// more than waves of 16 pods, one grace period each, would take.
fn limit(n: usize, grace: u64) -> Duration {
    Duration::from_secs(600 + 2 * grace * (n as u64).div_ceil(16))
}

/// Polls `left` (sandboxes, containers) every 50 ms until both are zero;
/// returns the time from `start` to that observation.
async fn wait_gone<F, Fut>(
    what: &str,
    start: Instant,
    limit: Duration,
    mut left: F,
) -> Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(usize, usize)>>,
{
    loop {
        let (sandboxes, containers) = left().await?;
        let at = start.elapsed();
        if sandboxes == 0 && containers == 0 {
            return Ok(at);
        }
        if at > limit {
            bail!(
                "{what}: {sandboxes} sandboxes and {containers} containers still there after {:.0} s",
                at.as_secs_f64()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// What a kubelet that stops every pod at once, each with its grace
/// period, asks of the runtime.
async fn floor(client: &RuntimeClient, n: usize, grace: u64) -> Result<Duration> {
    let pods = start_raw_pods_running(client, "teardown", n, &IGNORE_TERM)
        .await
        .context("starting the floor's pods")?;
    let start = Instant::now();
    let stops = tokio::spawn(stop_all(client.clone(), pods, grace));
    let took = wait_gone("raw CRI floor", start, limit(n, grace), || {
        raw_leftovers(client)
    })
    .await;
    stops.await.context("the floor's stop task")??;
    crate::common::remove_floor_cgroups();
    let took = took?;
    if grace > 0 && took.as_secs_f64() < grace as f64 * 0.9 {
        println!(
            "warning: the floor's {n} containers were gone after {:.2} s, before their {grace} s grace period ended: they did not ignore SIGTERM",
            took.as_secs_f64()
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

async fn berth(client: &RuntimeClient, n: usize, grace: u64) -> Result<Duration> {
    let mut b = Berth::new();
    b.rust_log = "warn".into();
    b.start();
    write_ignore_term_pods(&b, "teardown", n, grace);
    wait_running(client, &b, n, POLL).await?;
    // Let the syncs that started the pods finish before timing removal.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let start = Instant::now();
    for i in 0..n {
        b.remove_manifest(&format!("teardown-{i}.yaml"));
    }
    let took = wait_gone("berth", start, limit(n, grace), || async {
        Ok((
            b.runtime_sandboxes(client).await.len(),
            b.runtime_containers(client).await.len(),
        ))
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
