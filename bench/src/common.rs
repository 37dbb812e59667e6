//! What the berth benchmarks share: sleeping pods started through berth's
//! static manifests, and a process's CPU time and memory from /proc.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use cri_client::RuntimeClient;
use cri_client::proto as pb;
use test_support::berth::Berth;
use test_support::busybox_image;

/// Clock ticks per second of /proc/PID/stat times (USER_HZ, 100 on Linux).
const HZ: f64 = 100.0;

/// A static pod `name` with one busybox container sleeping an hour.
fn sleep_manifest(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - {{name: sleep, image: {}, imagePullPolicy: IfNotPresent, command: [sleep, '3600']}}\n",
        busybox_image()
    )
}

/// Writes the manifests `<prefix>-<i>.yaml` for `i` below `n`, each a
/// [`sleep_manifest`] of the same name.
pub fn write_sleep_pods(b: &Berth, prefix: &str, n: usize) {
    for i in 0..n {
        let name = format!("{prefix}-{i}");
        b.write_manifest(&format!("{name}.yaml"), &sleep_manifest(&name));
    }
}

/// Running containers and sandboxes that belong to berth's node.
pub async fn counts(client: &RuntimeClient, b: &Berth) -> Result<(usize, usize)> {
    let suffix = format!("-{}", b.node);
    let running = client
        .list_containers(pb::ListContainersRequest {
            filter: Some(pb::ContainerFilter {
                state: Some(pb::ContainerStateValue {
                    state: pb::ContainerState::ContainerRunning as i32,
                }),
                ..Default::default()
            }),
        })
        .await?
        .containers
        .iter()
        .filter(|c| {
            c.labels
                .get("io.kubernetes.pod.name")
                .is_some_and(|n| n.ends_with(&suffix))
        })
        .count();
    let sandboxes = b.runtime_sandboxes(client).await.len();
    Ok((running, sandboxes))
}

/// Polls every `poll` until `n` of berth's containers run; fails after 10
/// minutes.
pub async fn wait_running(
    client: &RuntimeClient,
    b: &Berth,
    n: usize,
    poll: Duration,
) -> Result<()> {
    let t = Instant::now();
    while counts(client, b).await?.0 < n {
        if t.elapsed() > Duration::from_secs(600) {
            bail!("berth did not start {n} pods in 10 minutes:\n{}", b.log());
        }
        tokio::time::sleep(poll).await;
    }
    Ok(())
}

/// Clean-up after a run: removes the manifests `<prefix>-<i>.yaml` for `i`
/// below `n` and waits up to 5 minutes for berth to remove its sandboxes.
pub async fn remove_pods(client: &RuntimeClient, b: &Berth, prefix: &str, n: usize) {
    for i in 0..n {
        let _ = std::fs::remove_file(b.manifests().join(format!("{prefix}-{i}.yaml")));
    }
    let t = Instant::now();
    while !b.runtime_sandboxes(client).await.is_empty() && t.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// utime+stime (and, with `children`, cutime+cstime) of a process, in
/// seconds, from /proc/PID/stat.
pub fn stat_cpu_seconds(pid: u32, children: bool) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold
    // spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // rest[0] is field 3 (state): utime is field 14, stime 15, cutime 16,
    // cstime 17.
    let get = |field: usize| f.get(field - 3).copied().unwrap_or(0.0);
    let mut t = get(14) + get(15);
    if children {
        t += get(16) + get(17);
    }
    t / HZ
}

/// A kB figure of /proc/PID/status (`key` as "VmRSS:" or "VmHWM:"), in MiB;
/// 0 when the process or the line is missing.
pub fn status_mib(pid: u32, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .split_whitespace()
                .next()?
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(0.0)
        / 1024.0
}
