//! berth's cgroups against the real containerd and the host's cgroup tree:
//! where pods land, the values in the cgroup files, OOM kills, CPU
//! throttling, and the removal of pod cgroups (also orphaned ones).
//!
//! The checks read cgroup v1 files (this machine is a v1 hybrid); on a v2
//! host the tests are skipped with a note.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Each test holds `exclusive()` for its whole run, on its own runtime, on purpose.
#![allow(clippy::await_holding_lock)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cri_client::RuntimeClient;
use serde_json::Value;
use test_support::berth::{
    Berth, busybox_client, container_id, container_state, container_status, exclusive,
    pod_manifest, runtime_status,
};
use test_support::wait_for;

const T: Duration = Duration::from_secs(40);
const CG: &str = "/sys/fs/cgroup";

/// A v1 (or hybrid) host: cpu and memory hierarchies of their own.
fn v1() -> bool {
    let ok = Path::new(CG).join("cpu/cpu.shares").exists()
        && Path::new(CG).join("memory/memory.limit_in_bytes").exists();
    if !ok {
        eprintln!("not a cgroup v1 host: skipping");
    }
    ok
}

fn read(p: impl AsRef<Path>) -> String {
    let p = p.as_ref();
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
        .trim()
        .to_string()
}

fn uid(p: &Value) -> String {
    p["metadata"]["uid"].as_str().unwrap().to_string()
}

/// `kubepods[/tier]/pod<uid>` in one hierarchy.
fn pod_dir(controller: &str, tier: &str, uid: &str) -> PathBuf {
    let mut p = Path::new(CG).join(controller).join("kubepods");
    if !tier.is_empty() {
        p.push(tier);
    }
    p.join(format!("pod{uid}"))
}

/// Every cgroup hierarchy mounted under /sys/fs/cgroup.
fn hierarchies() -> Vec<PathBuf> {
    std::fs::read_dir(CG)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("cgroup.procs").exists())
        .collect()
}

/// The Go kubelet's Burstable `oom_score_adj` for a memory request on this
/// machine: `1000 - 1000*request/MemTotal`, kept in [3, 999].
fn burstable_adj(request: i64) -> i64 {
    let kb: i64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    (1000 - 1000 * request / (kb * 1024)).clamp(3, 999)
}

fn pod_yaml(name: &str, resources: &str, command: &str, restart: &str) -> String {
    pod_manifest(
        name,
        &format!(
            r#"  terminationGracePeriodSeconds: 1
  restartPolicy: {restart}
  containers:
  - name: c
    image: {{img}}
    command: ["sh", "-c", "{command}"]
    resources: {resources}
"#
        ),
    )
}

/// berth started on these pods (name, resources, command, restartPolicy),
/// each in `<name>.yaml`, and a runtime client.
async fn start_with(pods: &[(&str, &str, &str, &str)]) -> (RuntimeClient, Berth) {
    let c = busybox_client().await;
    let mut b = Berth::new();
    for (name, resources, command, restart) in pods {
        b.write_manifest(
            &format!("{name}.yaml"),
            &pod_yaml(name, resources, command, restart),
        );
    }
    b.start();
    (c, b)
}

async fn running(b: &Berth, name: &str) -> Value {
    b.wait_pod(name, "container c running", T, |p| {
        container_state(p, "c") == "running" && !container_id(p, "c").is_empty()
    })
    .await
}

#[tokio::test]
async fn qos_classes_land_in_their_cgroups_with_their_limits() {
    if !v1() {
        return;
    }
    let _one = exclusive();
    let (c, b) = start_with(&[
        (
            "g",
            "{limits: {cpu: 500m, memory: 64Mi}}",
            "exec sleep 3600",
            "Always",
        ),
        (
            "b",
            "{requests: {cpu: 100m, memory: 32Mi}, limits: {cpu: 200m}}",
            "exec sleep 3600",
            "Always",
        ),
        ("e", "{}", "exec sleep 3600", "Always"),
    ])
    .await;
    let g = running(&b, "g").await;
    let bu = running(&b, "b").await;
    let e = running(&b, "e").await;

    // The QoS tiers.
    assert_eq!(
        read(format!("{CG}/cpu/kubepods/besteffort/cpu.shares")),
        "2"
    );
    assert_eq!(
        read(format!("{CG}/cpu/kubepods/burstable/cpu.shares")),
        "102"
    );
    let cpus = read("/sys/devices/system/cpu/online");
    assert_eq!(read(format!("{CG}/cpuset/kubepods/cpuset.cpus")), cpus);

    let unlimited: i64 = read(format!("{CG}/memory/memory.limit_in_bytes"))
        .parse()
        .unwrap();
    // (pod, tier, shares, quota, memory limit)
    let cases = [
        (&g, "", "512", "50000", (64i64 << 20).to_string()),
        (&bu, "burstable", "102", "20000", unlimited.to_string()),
        (&e, "besteffort", "2", "-1", unlimited.to_string()),
    ];
    for (p, tier, shares, quota, mem) in cases {
        let uid = uid(p);
        let id = container_id(p, "c");
        let name = p["metadata"]["name"].as_str().unwrap();
        for ctrl in ["cpu", "cpuacct", "cpuset", "memory", "pids"] {
            assert!(
                pod_dir(ctrl, tier, &uid).is_dir(),
                "{name}: no {ctrl} pod cgroup"
            );
            // runc put the container under the pod cgroup.
            assert!(
                pod_dir(ctrl, tier, &uid).join(&id).is_dir(),
                "{name}: container {id} not under the {ctrl} pod cgroup"
            );
        }
        let pod_cpu = pod_dir("cpu", tier, &uid);
        let ctr_cpu = pod_cpu.join(&id);
        let pod_mem = pod_dir("memory", tier, &uid);
        assert_eq!(
            read(pod_cpu.join("cpu.shares")),
            shares,
            "{name} pod shares"
        );
        assert_eq!(
            read(pod_cpu.join("cpu.cfs_quota_us")),
            quota,
            "{name} pod quota"
        );
        assert_eq!(read(pod_cpu.join("cpu.cfs_period_us")), "100000");
        assert_eq!(
            read(pod_mem.join("memory.limit_in_bytes")),
            mem,
            "{name} pod memory"
        );
        assert_eq!(
            read(ctr_cpu.join("cpu.shares")),
            shares,
            "{name} container shares"
        );
        assert_eq!(
            read(ctr_cpu.join("cpu.cfs_quota_us")),
            quota,
            "{name} container quota"
        );
        assert_eq!(
            read(pod_mem.join(&id).join("memory.limit_in_bytes")),
            mem,
            "{name} container memory"
        );
        // The container's process really is in that cgroup.
        let procs = read(ctr_cpu.join("cgroup.procs"));
        assert!(
            !procs.is_empty(),
            "{name}: no process in {}",
            ctr_cpu.display()
        );
        // Its OOM score: the runtime may raise a low one to its own
        // (restrict_oom_score_adj), never lower a high one.
        let pid = procs.lines().next().unwrap();
        let adj: i64 = read(format!("/proc/{pid}/oom_score_adj")).parse().unwrap();
        match tier {
            "besteffort" => assert_eq!(adj, 1000, "{name} oom_score_adj"),
            "burstable" => assert_eq!(adj, burstable_adj(32 << 20), "{name} oom_score_adj"),
            _ => assert!((-997..=0).contains(&adj), "{name} oom_score_adj {adj}"),
        }
        // And the sandbox (pause) sits beside it.
        let sandboxes = b.runtime_sandboxes(&c).await;
        let sb = sandboxes
            .iter()
            .find(|s| s.labels.get("io.kubernetes.pod.uid") == Some(&uid))
            .unwrap();
        assert!(
            pod_cpu.join(&sb.id).is_dir(),
            "{name}: pause not in the pod cgroup"
        );
    }
    // A Guaranteed pod isn't in a tier.
    assert!(!pod_dir("cpu", "burstable", &uid(&g)).exists());
    assert!(!pod_dir("cpu", "besteffort", &uid(&g)).exists());
}

#[tokio::test]
async fn a_container_over_its_memory_limit_is_oom_killed() {
    if !v1() {
        return;
    }
    let _one = exclusive();
    // dd's 100M buffer is filled from /dev/zero, so every page is touched.
    let (c, b) = start_with(&[(
        "oom",
        "{limits: {cpu: 500m, memory: 64Mi}}",
        "exec dd if=/dev/zero of=/dev/null bs=100M count=1",
        "Never",
    )])
    .await;
    let p = b
        .wait_pod("oom", "container c terminated", T, |p| {
            container_state(p, "c") == "terminated"
        })
        .await;
    let id = container_id(&p, "c");
    // What containerd says.
    let st = runtime_status(&c, &id).await.unwrap();
    assert_eq!(st.reason, "OOMKilled", "containerd: {st:?}");
    assert_eq!(st.exit_code, 137);
    // What berth says.
    let cs = container_status(&p, "c");
    let term = &cs["state"]["terminated"];
    assert_eq!(term["reason"], "OOMKilled", "berth: {cs}");
    assert_eq!(term["exitCode"], 137, "berth: {cs}");
}

#[tokio::test]
async fn a_half_core_limit_holds_a_busy_loop_to_half_a_core() {
    if !v1() {
        return;
    }
    let _one = exclusive();
    let (_c, b) = start_with(&[(
        "busy",
        "{limits: {cpu: 500m, memory: 32Mi}}",
        "while :; do :; done",
        "Always",
    )])
    .await;
    let p = running(&b, "busy").await;
    let usage = pod_dir("cpuacct", "", &uid(&p))
        .join(container_id(&p, "c"))
        .join("cpuacct.usage");
    // Let it settle into the throttled regime, then measure.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (u0, t0): (u64, Instant) = (read(&usage).parse().unwrap(), Instant::now());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (u1, t1): (u64, Instant) = (read(&usage).parse().unwrap(), Instant::now());
    let cores = (u1 - u0) as f64 / 1e9 / (t1 - t0).as_secs_f64();
    eprintln!("busy loop limited to 500m used {cores:.3} cores");
    assert!(cores <= 0.6, "used {cores:.3} cores");
    assert!(cores >= 0.3, "used {cores:.3} cores");
}

#[tokio::test]
async fn deleting_a_pod_removes_its_cgroup_everywhere() {
    if !v1() {
        return;
    }
    let _one = exclusive();
    let (_c, b) = start_with(&[("gone", "{}", "exec sleep 3600", "Always")]).await;
    let p = running(&b, "gone").await;
    let uid = uid(&p);
    let dirs: Vec<PathBuf> = hierarchies()
        .into_iter()
        .map(|h| h.join("kubepods/besteffort").join(format!("pod{uid}")))
        .filter(|d| d.is_dir())
        .collect();
    // At least the five berth creates, plus the ones runc adds.
    assert!(dirs.len() >= 5, "pod cgroup in only {dirs:?}");
    b.remove_manifest("gone.yaml");
    wait_for("the pod cgroup gone in every hierarchy", T, || {
        let left: Vec<&PathBuf> = dirs.iter().filter(|d| d.exists()).collect();
        std::future::ready(left.is_empty().then_some(()))
    })
    .await;
    assert!(b.pod("gone").is_none());
    assert!(b.log().contains("removed pod cgroup"), "{}", b.log());
}

#[tokio::test]
async fn an_orphaned_pod_cgroup_is_removed_at_start() {
    if !v1() {
        return;
    }
    let _one = exclusive();
    let uid = format!("0rphan{}", std::process::id());
    let dirs: Vec<PathBuf> = ["cpu", "memory", "pids"]
        .iter()
        .map(|c| pod_dir(c, "besteffort", &uid))
        .collect();
    for d in &dirs {
        std::fs::create_dir_all(d.join("ctr")).unwrap();
        assert!(read(d.join("cgroup.procs")).is_empty());
    }
    let mut b = Berth::new();
    b.start();
    wait_for(
        "the orphaned pod cgroup removed",
        Duration::from_secs(20),
        || std::future::ready(dirs.iter().all(|d| !d.exists()).then_some(())),
    )
    .await;
    assert!(
        b.log().contains("removed orphaned pod cgroup"),
        "{}",
        b.log()
    );
}
