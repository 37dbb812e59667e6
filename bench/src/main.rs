//! Berth's benchmarks, run against the real containerd from `tests/env/up`.
//!
//! `berth-bench cli` measures berthctl's wall time and peak RSS for `pods`,
//! `ps -a` and `images` with 0 and N pods, and, in the same run, the raw CRI
//! floor for starting pods (RunPodSandbox + CreateContainer + StartContainer
//! made directly), for 1 pod and for N in parallel.
//!
//! `berth-bench static-pods` measures berth's static pod start-up and
//! teardown beside the raw CRI floor; see `static_pods.rs`.
//!
//! `berth-bench teardown` measures how long removing N pods that ignore
//! SIGTERM takes, and `berth-bench exit-latency` how late berth's status
//! shows a container's exit, each beside the raw CRI floor; see
//! `teardown.rs` and `exit_latency.rs`. Both use berth as a black box: its
//! binary, manifest directory, read-only `/pods` and the CRI.
//!
//! `berth-bench joined` measures berth joined to the test environment's
//! control plane beside the Go kubelet joined the same way; see
//! `joined.rs`.
//!
//! `berth-bench object-volumes` measures how fast a ConfigMap edit reaches
//! a running container, standalone and joined (beside the Go kubelet
//! joined), and what watching the objects of 110 pods costs; see
//! `object_volumes.rs`.
//!
//! Benchmarks report figures; they assert nothing (tests do that).

mod common;
mod exit_latency;
mod gokubelet;
mod joined;
mod kubelet_api;
mod object_volumes;
mod probes;
mod static_pods;
mod stats;
mod teardown;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cri_client::RuntimeClient;
use test_support::{busybox_image, endpoint, ensure_image, pause_image};

pub use common::{cleanup, start_raw_pods};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match args.first().map(String::as_str) {
        Some("cli") => rt.block_on(cli_bench(&args[1..])),
        Some("static-pods") => rt.block_on(static_pods_bench(&args[1..])),
        Some("probes") => rt.block_on(probes::run(&args[1..])),
        Some("stats") => rt.block_on(stats::run(&args[1..])),
        Some("teardown") => rt.block_on(teardown::run(&args[1..])),
        Some("exit-latency") => rt.block_on(exit_latency::run(&args[1..])),
        Some("joined") => rt.block_on(joined::run(&args[1..])),
        Some("object-volumes") => rt.block_on(object_volumes::run(&args[1..])),
        Some("kubelet-api") => rt.block_on(kubelet_api::run(&args[1..])),
        _ => bail!(
            "usage: berth-bench cli [--runs N] [--pods N] [--berthctl PATH]\n       berth-bench static-pods [--pods 1,30,110] [--idle SECONDS] [--repeat 5]\n       berth-bench probes [see bench/src/probes.rs]\n       berth-bench stats [see bench/src/stats.rs]\n       berth-bench teardown [--pods 30,110] [--grace 30]\n       berth-bench exit-latency [--samples 20]\n       berth-bench joined [--pods 10] [--replicas 30] [--idle 60] [--settle 10] [--repeat 1] [--quick] [--only berth|go]\n       berth-bench object-volumes [--edits 10] [--go-samples 1] [--pods 110] [--idle 60] [--settle 10] [--quick] [--parts standalone,joined,go,cost]\n       berth-bench kubelet-api [--log-mb 64] [--requests 200] [--execs 20] [--only berth|go]"
        ),
    }
}

fn flag<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Result<T> {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("{name} needs a value")),
        None => Ok(default),
    }
}

/// One finished child: wall time and peak resident set size.
struct Sample {
    wall: Duration,
    max_rss_kib: i64,
}

/// Runs `cmd` to completion, measuring its wall time and peak RSS with
/// wait4(2), which reports the child's own ru_maxrss.
fn measure(cmd: &mut Command) -> Result<Sample> {
    let start = Instant::now();
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: zeroed rusage is a valid value; wait4 writes into both
    // out-parameters for our own child pid, which we have not waited for.
    #[allow(unsafe_code)]
    let (rc, usage) = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        let rc = libc::wait4(pid, &mut status, 0, &mut usage);
        (rc, usage)
    };
    let wall = start.elapsed();
    if rc != pid {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!("{cmd:?} failed (status {status})");
    }
    Ok(Sample {
        wall,
        max_rss_kib: usage.ru_maxrss,
    })
}

struct Summary {
    median: Duration,
    p90: Duration,
    rss_mib: f64,
}

fn summarize(mut samples: Vec<Sample>) -> Summary {
    samples.sort_by_key(|s| s.wall);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].wall;
    let rss = samples.iter().map(|s| s.max_rss_kib).max().unwrap_or(0);
    Summary {
        median: at(0.5),
        p90: at(0.9),
        rss_mib: rss as f64 / 1024.0,
    }
}

fn default_berthctl() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent().unwrap_or(Path::new(".")).join("berthctl")
}

async fn cli_bench(args: &[String]) -> Result<()> {
    let runs: usize = flag(args, "--runs", 50)?;
    let pods: usize = flag(args, "--pods", 30)?;
    let berthctl: PathBuf = flag(args, "--berthctl", default_berthctl())?;
    if !berthctl.exists() {
        bail!(
            "{} not found; build with cargo build --release -p berthctl",
            berthctl.display()
        );
    }
    let client = RuntimeClient::connect(Some(&endpoint()), Default::default()).await?;
    ensure_image(&client, &busybox_image()).await;
    ensure_image(&client, &pause_image()).await;
    cleanup(&client).await?;
    let version = client.version(Default::default()).await?;
    println!(
        "# berth-bench cli: {} {} at {}, {runs} runs per command",
        version.runtime_name,
        version.runtime_version,
        endpoint()
    );

    let commands: [&[&str]; 3] = [&["pods"], &["ps", "-a"], &["images"]];
    let mut table = Vec::new();
    let existing = client
        .list_pod_sandbox(Default::default())
        .await?
        .items
        .len();
    for cmd in commands {
        table.push((existing, cmd, run_cli(&berthctl, cmd, runs)?));
    }

    // The raw floor: one pod, five times, then N in parallel.
    let mut single = Vec::new();
    for i in 0..5 {
        let t = Instant::now();
        start_raw_pods(&client, &format!("floor-{i}"), 1).await?;
        single.push(t.elapsed());
        cleanup(&client).await?;
    }
    single.sort();
    let t = Instant::now();
    start_raw_pods(&client, "par", pods).await?;
    let parallel = t.elapsed();

    let with_pods = client
        .list_pod_sandbox(Default::default())
        .await?
        .items
        .len();
    for cmd in commands {
        table.push((with_pods, cmd, run_cli(&berthctl, cmd, runs)?));
    }
    cleanup(&client).await?;

    println!();
    println!("| command | pods | median | p90 | peak RSS |");
    println!("|---|---|---|---|---|");
    for (n, cmd, s) in &table {
        println!(
            "| `berthctl {}` | {n} | {:.2} ms | {:.2} ms | {:.1} MiB |",
            cmd.join(" "),
            ms(s.median),
            ms(s.p90),
            s.rss_mib
        );
    }
    println!();
    println!("| raw CRI floor (RunPodSandbox + CreateContainer + StartContainer) | wall |");
    println!("|---|---|");
    println!(
        "| 1 pod (median of 5) | {:.1} ms |",
        ms(single[single.len() / 2])
    );
    println!("| {pods} pods in parallel | {:.1} ms |", ms(parallel));
    Ok(())
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn run_cli(berthctl: &Path, cmd: &[&str], runs: usize) -> Result<Summary> {
    let ep = endpoint();
    let mk = || {
        let mut c = Command::new(berthctl);
        c.arg("-r").arg(&ep).args(cmd);
        c
    };
    for _ in 0..3 {
        measure(&mut mk())?;
    }
    let samples = (0..runs)
        .map(|_| measure(&mut mk()))
        .collect::<Result<Vec<_>>>()?;
    Ok(summarize(samples))
}

async fn static_pods_bench(args: &[String]) -> Result<()> {
    let sizes = common::parse_sizes(&flag(args, "--pods", "1,30,110".to_string())?)?;
    let idle = Duration::from_secs(flag(args, "--idle", 20)?);
    let repeat: usize = flag(args, "--repeat", 5)?;
    let client = RuntimeClient::connect(Some(&endpoint()), Default::default()).await?;
    ensure_image(&client, &busybox_image()).await;
    ensure_image(&client, &pause_image()).await;
    cleanup(&client).await?;
    let version = client.version(Default::default()).await?;
    println!(
        "# berth-bench static-pods: {} {} at {}",
        version.runtime_name,
        version.runtime_version,
        endpoint()
    );
    println!(
        "(median of {repeat} runs by start-up ratio; each run measures the floor and berth back to back)"
    );
    static_pods::run(&client, &sizes, idle, repeat).await
}
