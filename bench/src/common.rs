//! What the berth benchmarks share: pods started directly through the CRI
//! (the raw floor) and through berth's static manifests, and a process's CPU
//! time and memory from /proc.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cri_client::RuntimeClient;
use cri_client::proto as pb;
use futures_util::future::join_all;
use test_support::berth::Berth;
use test_support::{busybox_image, container_config, endpoint};

/// Clock ticks per second of /proc/PID/stat times (USER_HZ, 100 on Linux).
const HZ: f64 = 100.0;

/// The label on every sandbox and container the raw floor starts.
pub const BENCH_LABEL: &str = "berth-bench";

/// A container command that sleeps an hour and ignores SIGTERM whatever its
/// PID: the shell sets SIGTERM to ignored and execs `sleep`, which keeps
/// that disposition. Only SIGKILL at the end of the grace period stops it.
pub const IGNORE_TERM: [&str; 3] = ["sh", "-c", "trap '' TERM; exec sleep 3600"];

/// A static pod `name` with one busybox container named `container`
/// running `command`; `spec_extra` holds more `spec:` fields, one per line,
/// indented by two spaces.
pub fn one_container_manifest(
    name: &str,
    container: &str,
    command: &[&str],
    spec_extra: &str,
) -> String {
    let command = command
        .iter()
        .map(|a| format!("'{}'", a.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n{spec_extra}  containers:\n  - {{name: {container}, image: {}, imagePullPolicy: IfNotPresent, command: [{command}]}}\n",
        busybox_image()
    )
}

/// A static pod `name` with one busybox container sleeping an hour.
fn sleep_manifest(name: &str) -> String {
    one_container_manifest(
        name,
        "sleep",
        &["sleep", "3600"],
        "  terminationGracePeriodSeconds: 0\n",
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

/// Writes the manifests `<prefix>-<i>.yaml` for `i` below `n`: pods whose
/// container ignores SIGTERM ([`IGNORE_TERM`]), with a grace period of
/// `grace` seconds.
pub fn write_ignore_term_pods(dir: &std::path::Path, prefix: &str, n: usize, grace: u64) {
    let extra = format!("  terminationGracePeriodSeconds: {grace}\n");
    for i in 0..n {
        let name = format!("{prefix}-{i}");
        let text = one_container_manifest(&name, "stubborn", &IGNORE_TERM, &extra);
        // Write then rename, as an editor or config tool would.
        let tmp = dir.join(format!(".{name}.yaml.tmp"));
        if let Err(e) = std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, dir.join(format!("{name}.yaml"))))
        {
            panic!("writing {name}.yaml in {}: {e}", dir.display());
        }
    }
}

/// A client with a 60 s deadline on quick calls, for polls that must not
/// fail because containerd is busy stopping 110 pods on two cores.
pub async fn patient_client() -> Result<RuntimeClient> {
    RuntimeClient::connect(
        Some(&endpoint()),
        cri_client::client::Timeouts {
            call: Duration::from_secs(60),
            ..Default::default()
        },
    )
    .await
    .with_context(|| format!("connecting to {}", endpoint()))
}

/// `--pods 1,30,110` as a list of sizes.
pub fn parse_sizes(text: &str) -> Result<Vec<usize>> {
    text.split(',')
        .map(|s| {
            s.trim()
                .parse()
                .with_context(|| format!("--pods: {s:?} is not a number"))
        })
        .collect()
}

/// The `q` quantile (0 to 1) of sorted samples, nearest rank; zero when
/// there are none.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize]
}

/// One pod the raw floor started.
pub struct RawPod {
    pub sandbox_id: String,
    pub container_id: String,
}

/// Starts `n` pods at once, as a kubelet's pod workers would, each one
/// busybox container sleeping an hour.
pub async fn start_raw_pods(client: &RuntimeClient, prefix: &str, n: usize) -> Result<()> {
    start_raw_pods_running(client, prefix, n, &["sleep", "3600"]).await?;
    Ok(())
}

/// Starts `n` pods at once, each one busybox container running `command`.
pub async fn start_raw_pods_running(
    client: &RuntimeClient,
    prefix: &str,
    n: usize,
    command: &[&str],
) -> Result<Vec<RawPod>> {
    let started = join_all((0..n).map(|i| {
        let client = client.clone();
        let name = format!("{prefix}-{i}");
        async move { start_raw_pod(&client, &name, command).await }
    }))
    .await;
    started.into_iter().collect()
}

/// The three calls a kubelet makes to get one container running, with the
/// request contents berth sends for the same static pod: the pod's cgroup
/// parent under the BestEffort QoS cgroup (runc makes it), the DNS config,
/// the container's resources, and its two file mounts (`/etc/hosts` and
/// `/dev/termination-log`). The floor so differs from berth only in the
/// kubelet's own work, not in what the runtime is asked to do.
async fn start_raw_pod(client: &RuntimeClient, name: &str, command: &[&str]) -> Result<RawPod> {
    let log_dir = std::env::temp_dir().join("berth-bench-logs").join(name);
    let files = std::env::temp_dir().join("berth-bench-files").join(name);
    std::fs::create_dir_all(&files).with_context(|| format!("creating {}", files.display()))?;
    let (hosts, termination_log) = (files.join("etc-hosts"), files.join("termination-log"));
    std::fs::write(&hosts, "127.0.0.1\tlocalhost\n::1\tlocalhost\n")
        .and_then(|()| std::fs::write(&termination_log, ""))
        .with_context(|| format!("writing the mounted files in {}", files.display()))?;
    let mut config = test_support::sandbox_config(&format!("bench-{name}"), &log_dir);
    config.labels.insert(BENCH_LABEL.into(), "true".into());
    let uid = config
        .metadata
        .as_ref()
        .map(|m| m.uid.clone())
        .unwrap_or_default();
    config.dns_config = Some(pb::DnsConfig {
        servers: vec!["10.255.255.53".into()],
        ..Default::default()
    });
    if let Some(linux) = config.linux.as_mut() {
        linux.cgroup_parent = format!("{FLOOR_QOS_CGROUP}/pod{uid}");
    }
    let pod = client
        .run_pod_sandbox(pb::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await?;
    let mut container = container_config("sleep", &busybox_image(), command);
    container.labels.insert(BENCH_LABEL.into(), "true".into());
    if let Some(linux) = container.linux.as_mut() {
        linux.resources = Some(pb::LinuxContainerResources {
            cpu_period: 100_000,
            cpu_shares: 2,
            oom_score_adj: 1000,
            ..Default::default()
        });
    }
    container.mounts = vec![
        pb::Mount {
            container_path: "/etc/hosts".into(),
            host_path: hosts.display().to_string(),
            ..Default::default()
        },
        pb::Mount {
            container_path: "/dev/termination-log".into(),
            host_path: termination_log.display().to_string(),
            ..Default::default()
        },
    ];
    let ctr = client
        .create_container(pb::CreateContainerRequest {
            pod_sandbox_id: pod.pod_sandbox_id.clone(),
            config: Some(container),
            sandbox_config: Some(config),
        })
        .await?;
    client
        .start_container(pb::StartContainerRequest {
            container_id: ctr.container_id.clone(),
        })
        .await?;
    Ok(RawPod {
        sandbox_id: pod.pod_sandbox_id,
        container_id: ctr.container_id,
    })
}

/// The QoS cgroup the floor's pods go under, as berth's BestEffort pods.
const FLOOR_QOS_CGROUP: &str = "/kubepods/besteffort";

/// Removes the pod cgroups runc left for the floor's removed pods (berth
/// removes its own): every `pod*` directory under the BestEffort QoS cgroup
/// whose pod UID is one the floor uses, in every hierarchy.
pub fn remove_floor_cgroups() {
    let roots = std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .chain([std::path::PathBuf::from("/sys/fs/cgroup")]);
    for root in roots {
        let qos = root.join(FLOOR_QOS_CGROUP.trim_start_matches('/'));
        for e in std::fs::read_dir(&qos).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with("poduid-bench-") {
                let _ = std::fs::remove_dir(e.path());
            }
        }
    }
}

/// Removes every sandbox the raw floor created.
pub async fn cleanup(client: &RuntimeClient) -> Result<()> {
    let pods = client
        .list_pod_sandbox(pb::ListPodSandboxRequest {
            filter: Some(pb::PodSandboxFilter {
                label_selector: [(BENCH_LABEL.to_string(), "true".to_string())].into(),
                ..Default::default()
            }),
        })
        .await?
        .items;
    let removals = pods.into_iter().map(|p| {
        let client = client.clone();
        async move {
            client
                .stop_pod_sandbox(pb::StopPodSandboxRequest {
                    pod_sandbox_id: p.id.clone(),
                })
                .await?;
            client
                .remove_pod_sandbox(pb::RemovePodSandboxRequest {
                    pod_sandbox_id: p.id,
                })
                .await
        }
    });
    for r in join_all(removals).await {
        r?;
    }
    remove_floor_cgroups();
    Ok(())
}

/// Running containers and sandboxes that belong to berth's node.
pub async fn counts(client: &RuntimeClient, b: &Berth) -> Result<(usize, usize)> {
    let suffix = format!("-{}", b.node);
    let running = running_where(client, |c| {
        c.labels
            .get("io.kubernetes.pod.name")
            .is_some_and(|n| n.ends_with(&suffix))
    })
    .await?;
    let sandboxes = b.runtime_sandboxes(client).await.len();
    Ok((running, sandboxes))
}

/// How many running containers `mine` selects (one ListContainers).
async fn running_where(
    client: &RuntimeClient,
    mine: impl Fn(&pb::Container) -> bool,
) -> Result<usize> {
    Ok(client
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
        .filter(|c| mine(c))
        .count())
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

/// Watches the raw floor's start exactly as [`wait_running`] watches
/// berth's (the same two list calls every `poll`), so both runs carry the
/// same observer load on the runtime and the same detection delay.
pub async fn wait_raw_running(client: &RuntimeClient, n: usize, poll: Duration) -> Result<()> {
    let t = Instant::now();
    loop {
        let running = running_where(client, |c| {
            c.labels.get(BENCH_LABEL).is_some_and(|v| v == "true")
        })
        .await?;
        client
            .list_pod_sandbox(pb::ListPodSandboxRequest::default())
            .await?;
        if running >= n {
            return Ok(());
        }
        if t.elapsed() > Duration::from_secs(600) {
            bail!("the raw floor did not start {n} pods in 10 minutes");
        }
        tokio::time::sleep(poll).await;
    }
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
