//! `berth-bench exit-latency [--samples 20]`: how late berth's status shows
//! that a container exited.
//!
//! Each sample is a fresh static pod (restartPolicy Never) whose container
//! exits with code 7 after a random 0.3–0.8 s, so exits fall at every phase
//! of a periodic relist. While it runs, two pollers watch it every 5 ms:
//! - berth's read-only `/pods`, until the container's status is
//!   `state.terminated` with exit code 7;
//! - the raw CRI floor: ListContainers, until the runtime lists the
//!   container as exited.
//!
//! Each latency is the wall-clock time of the first observation minus the
//! container's `finished_at` as the runtime reports it (ContainerStatus, in
//! nanoseconds); both clocks are this machine's. The pod is removed before
//! the next sample.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use cri_client::RuntimeClient;
use cri_client::proto as pb;
use test_support::berth::{Berth, container_status, exclusive, runtime_status};
use test_support::{busybox_image, endpoint, ensure_image, pause_image};

use crate::common::{one_container_manifest, patient_client, quantile};
use crate::{flag, ms};

const POLL: Duration = Duration::from_millis(5);
/// How long one sample may take to be seen, from the manifest's write.
const LIMIT: Duration = Duration::from_secs(60);
const EXIT_CODE: i64 = 7;

struct Sample {
    berth: Duration,
    floor: Duration,
}

// The cross-process lock is held for the whole run on purpose.
#[allow(clippy::await_holding_lock)]
pub async fn run(args: &[String]) -> Result<()> {
    let samples: usize = flag(args, "--samples", 20)?;
    if samples == 0 {
        bail!("--samples must be at least 1");
    }
    let client = patient_client().await?;
    ensure_image(&client, &busybox_image()).await;
    ensure_image(&client, &pause_image()).await;
    let version = client.version(Default::default()).await?;
    println!(
        "# berth-bench exit-latency: {} {} at {}; {samples} samples, polled every {} ms",
        version.runtime_name,
        version.runtime_version,
        endpoint(),
        POLL.as_millis()
    );

    // Other berths against the same runtime would remove these pods (and
    // e2e tests take this lock too).
    let _one = exclusive();
    let mut b = Berth::new();
    b.rust_log = "warn".into();
    b.start();
    let b = Arc::new(b);
    let mut rng = Rng::seeded();
    let mut taken = Vec::with_capacity(samples);
    let mut failure = None;
    for i in 0..samples {
        let run_ms = 300 + rng.next() % 501;
        match sample(&client, &b, i, run_ms).await {
            Ok(s) => {
                eprintln!(
                    "exit-latency: sample {} of {samples} (ran {run_ms} ms): berth {:.1} ms, floor {:.1} ms",
                    i + 1,
                    ms(s.berth),
                    ms(s.floor)
                );
                taken.push(s);
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    if let Some(e) = failure {
        eprintln!(
            "--- berth log (tail) ---\n{}",
            test_support::berth::tail(&b.log(), 40)
        );
        return Err(e);
    }
    if let Ok(mut b) = Arc::try_unwrap(b) {
        b.stop();
    }

    let mut berth: Vec<Duration> = taken.iter().map(|s| s.berth).collect();
    let mut floor: Vec<Duration> = taken.iter().map(|s| s.floor).collect();
    berth.sort_unstable();
    floor.sort_unstable();
    println!();
    println!(
        "| container exit (finishedAt) → seen, {} samples | median | p90 | max |",
        taken.len()
    );
    println!("|---|---|---|---|");
    for (what, v) in [
        ("berth: `/pods` shows state.terminated (exit 7)", &berth),
        ("raw CRI floor: ListContainers shows it exited", &floor),
    ] {
        println!(
            "| {what} | {:.1} ms | {:.1} ms | {:.1} ms |",
            ms(quantile(v, 0.5)),
            ms(quantile(v, 0.9)),
            ms(quantile(v, 1.0))
        );
    }
    println!();
    println!("Target (issue 9): berth's median ≤ 100 ms.");
    Ok(())
}

/// One pod whose container runs `run_ms` and exits with [`EXIT_CODE`].
async fn sample(client: &RuntimeClient, b: &Arc<Berth>, i: usize, run_ms: u64) -> Result<Sample> {
    let name = format!("exit-{i}");
    let full = format!("{name}-{}", b.node);
    let script = format!(
        "sleep {}.{:03}; exit {EXIT_CODE}",
        run_ms / 1000,
        run_ms % 1000
    );
    let manifest = one_container_manifest(
        &name,
        "exit",
        &["sh", "-c", &script],
        "  restartPolicy: Never\n  terminationGracePeriodSeconds: 0\n",
    );
    b.write_manifest(&format!("{name}.yaml"), &manifest);

    // berth's view, on a blocking thread: the harness's GET is blocking.
    let berth_view = {
        let b = Arc::clone(b);
        let name = name.clone();
        tokio::task::spawn_blocking(move || poll_pods(&b, &name))
    };
    let floor_view = poll_cri(client, &full).await;
    let berth_seen = berth_view.await.context("the /pods poller")?;
    let (floor_seen, id) = floor_view?;
    let berth_seen = berth_seen?;

    let status = runtime_status(client, &id)
        .await
        .with_context(|| format!("ContainerStatus of {id} ({full}): gone"))?;
    if i64::from(status.exit_code) != EXIT_CODE {
        bail!(
            "container {id} of {full} exited with {}, not {EXIT_CODE}",
            status.exit_code
        );
    }
    let finished = UNIX_EPOCH + Duration::from_nanos(u64::try_from(status.finished_at)?);
    // A first observation before finished_at would be a clock oddity; it
    // counts as zero.
    let since = |seen: SystemTime| seen.duration_since(finished).unwrap_or_default();
    let s = Sample {
        berth: since(berth_seen),
        floor: since(floor_seen),
    };

    b.remove_manifest(&format!("{name}.yaml"));
    let t = Instant::now();
    while !b.runtime_sandboxes(client).await.is_empty() {
        if t.elapsed() > LIMIT {
            bail!("berth did not remove {full} within {LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(s)
}

/// Polls `/pods` until container `exit` of pod `name` is terminated with
/// [`EXIT_CODE`]; returns when that answer arrived.
fn poll_pods(b: &Berth, name: &str) -> Result<SystemTime> {
    let deadline = Instant::now() + LIMIT;
    let mut last = String::new();
    loop {
        let pod = b.pod(name);
        let now = SystemTime::now();
        if let Some(pod) = pod {
            let state = &container_status(&pod, "exit")["state"];
            match state["terminated"]["exitCode"].as_i64() {
                Some(EXIT_CODE) => return Ok(now),
                Some(other) => bail!("berth shows {name}'s container exited with {other}"),
                None => last = state.to_string(),
            }
        }
        if Instant::now() > deadline {
            bail!(
                "berth's /pods did not show {name}'s container terminated within {LIMIT:?} (last state: {last})"
            );
        }
        std::thread::sleep(POLL);
    }
}

/// Polls ListContainers until the runtime lists the container of pod
/// `full` (berth's name for it) as exited; returns when that answer
/// arrived, and the container's ID.
async fn poll_cri(client: &RuntimeClient, full: &str) -> Result<(SystemTime, String)> {
    let deadline = Instant::now() + LIMIT;
    let request = pb::ListContainersRequest {
        filter: Some(pb::ContainerFilter {
            label_selector: [("io.kubernetes.pod.name".to_string(), full.to_string())].into(),
            ..Default::default()
        }),
    };
    loop {
        let listed = client.list_containers(request.clone()).await?.containers;
        let now = SystemTime::now();
        if let Some(c) = listed
            .iter()
            .find(|c| c.state == pb::ContainerState::ContainerExited as i32)
        {
            return Ok((now, c.id.clone()));
        }
        if Instant::now() > deadline {
            bail!("the runtime did not list {full}'s container as exited within {LIMIT:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// xorshift64: enough to spread the run times; seeded from the clock.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        Rng(nanos | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
