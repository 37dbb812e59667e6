use super::*;

fn sample(clock: Clock, at_ns: u64, usage_ns: u64) -> CpuSample {
    CpuSample {
        clock,
        at_ns,
        usage_ns,
    }
}

#[test]
fn nano_cores_from_deltas() {
    let a = sample(Clock::Local, 1_000_000_000, 5_000_000_000);
    // First sample: no rate.
    assert_eq!(nano_cores(None, &a), None);
    // One core busy for 2 s.
    let b = sample(Clock::Local, 3_000_000_000, 7_000_000_000);
    assert_eq!(nano_cores(Some(&a), &b), Some(1_000_000_000));
    // Half a core.
    let c = sample(Clock::Local, 5_000_000_000, 8_000_000_000);
    assert_eq!(nano_cores(Some(&b), &c), Some(500_000_000));
    // Counter reset (cgroup recreated): no rate, not a huge number.
    let d = sample(Clock::Local, 6_000_000_000, 10);
    assert_eq!(nano_cores(Some(&c), &d), None);
    // Same instant, or time going backwards: no rate.
    assert_eq!(nano_cores(Some(&c), &c), None);
    // Different clocks can't be compared.
    let e = sample(Clock::Runtime, 9_000_000_000, 9_000_000_000);
    assert_eq!(nano_cores(Some(&c), &e), None);
    // Idle: zero, not none.
    let f = sample(Clock::Local, 6_000_000_000, 8_000_000_000);
    assert_eq!(nano_cores(Some(&c), &f), Some(0));
}

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A v2 cgroup with the given CPU time, memory and pids.
fn v2_cgroup(root: &Path, cg: &str, cpu_usec: u64, mem: u64, inactive: u64, pids: u64) {
    write(
        root,
        &format!("{cg}/cpu.stat"),
        &format!("usage_usec {cpu_usec}\n"),
    );
    write(root, &format!("{cg}/memory.current"), &format!("{mem}\n"));
    write(root, &format!("{cg}/memory.max"), "max\n");
    write(
        root,
        &format!("{cg}/memory.stat"),
        &format!("anon 100\ninactive_file {inactive}\npgfault 10\npgmajfault 1\n"),
    );
    write(root, &format!("{cg}/pids.current"), &format!("{pids}\n"));
}

struct Fixture {
    dir: tempfile::TempDir,
    collector: Collector,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "cg/cgroup.controllers", "cpu memory pids\n");
    write(d, "cg/cpu.stat", "usage_usec 1000000\n");
    write(
        d,
        "proc/meminfo",
        "MemTotal: 1000 kB\nMemFree: 200 kB\nInactive(file): 100 kB\nAnonPages: 50 kB\n",
    );
    write(d, "proc/stat", "cpu  1 0 1 100 0 0 0 0\nbtime 1700000000\n");
    write(d, "proc/vmstat", "pgfault 5\npgmajfault 2\n");
    std::fs::create_dir_all(d.join("logs")).unwrap();
    let mut config = StatsConfig::new("node-a", &d.join("logs"), d, "/");
    config.cgroup_mount = d.join("cg");
    config.proc_dir = d.join("proc");
    Fixture {
        collector: Collector::new(config),
        dir,
    }
}

fn snapshot() -> CriSnapshot {
    let sb = pb::PodSandbox {
        id: "sb1".into(),
        metadata: Some(pb::PodSandboxMetadata {
            name: "web".into(),
            uid: "u1".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        state: pb::PodSandboxState::SandboxReady as i32,
        created_at: 1_700_000_000_000_000_000,
        ..Default::default()
    };
    let ctr = pb::Container {
        id: "c1".into(),
        pod_sandbox_id: "sb1".into(),
        metadata: Some(pb::ContainerMetadata {
            name: "app".into(),
            attempt: 0,
        }),
        state: pb::ContainerState::ContainerRunning as i32,
        created_at: 1_700_000_001_000_000_000,
        ..Default::default()
    };
    let stats = pb::ContainerStats {
        attributes: Some(pb::ContainerAttributes {
            id: "c1".into(),
            ..Default::default()
        }),
        writable_layer: Some(pb::FilesystemUsage {
            timestamp: 1,
            fs_id: Some(pb::FilesystemIdentifier {
                mountpoint: "/".into(),
            }),
            used_bytes: Some(pb::UInt64Value { value: 4096 }),
            inodes_used: Some(pb::UInt64Value { value: 3 }),
        }),
        ..Default::default()
    };
    CriSnapshot {
        sandboxes: vec![sb],
        containers: vec![ctr],
        container_stats: Arc::new(HashMap::from([("c1".to_string(), stats)])),
        ..Default::default()
    }
}

#[test]
fn pod_totals_without_a_pod_cgroup_sum_the_containers_and_the_pause() {
    let mut f = fixture();
    let cg = f.dir.path().join("cg");
    // containerd's layout without a cgroup parent.
    v2_cgroup(&cg, "k8s.io/sb1", 1000, 4096, 0, 1);
    v2_cgroup(&cg, "k8s.io/c1", 2_000_000, 1_048_576, 48_576, 2);
    write(
        f.dir.path(),
        "logs/default_web_u1/app/0.log",
        &"x".repeat(10_000),
    );
    let snap = snapshot();
    assert!(f.collector.resolve_cgroups(&snap).is_empty());
    assert!(f.collector.some_pod_lacks_a_cgroup(&snap));
    let s = f.collector.build(&snap);
    assert_eq!(s.node.node_name, "node-a");
    assert_eq!(s.pods.len(), 1);
    let p = &s.pods[0];
    assert_eq!(p.pod_ref.name, "web");
    assert_eq!(p.pod_ref.uid, "u1");
    // The pause container isn't listed...
    assert_eq!(p.containers.len(), 1);
    let c = &p.containers[0];
    assert_eq!(c.name, "app");
    let cpu = c.cpu.as_ref().unwrap();
    assert_eq!(cpu.usage_core_nano_seconds, Some(2_000_000_000));
    assert_eq!(cpu.usage_nano_cores, None, "first sample has no rate");
    let mem = c.memory.as_ref().unwrap();
    assert_eq!(mem.usage_bytes, Some(1_048_576));
    assert_eq!(mem.working_set_bytes, Some(1_000_000));
    assert_eq!(mem.available_bytes, None, "no limit");
    assert_eq!(c.rootfs.as_ref().unwrap().used_bytes, Some(4096));
    let logs = c.logs.as_ref().unwrap();
    assert!(logs.used_bytes.unwrap() >= 10_000, "{logs:?}");
    assert_eq!(logs.inodes_used, Some(2));
    // ...but counts in the pod's totals.
    let pcpu = p.cpu.as_ref().unwrap();
    assert_eq!(pcpu.usage_core_nano_seconds, Some(2_001_000_000));
    assert_eq!(p.memory.as_ref().unwrap().usage_bytes, Some(1_052_672));
    assert_eq!(p.process_stats.as_ref().unwrap().process_count, Some(3));
    let eph = p.ephemeral_storage.as_ref().unwrap();
    assert_eq!(
        eph.used_bytes,
        Some(4096 + logs.used_bytes.unwrap()),
        "rootfs + logs"
    );
    // Node: v2 root cpu.stat, memory from /proc/meminfo.
    let n = &s.node;
    assert_eq!(
        n.cpu.as_ref().unwrap().usage_core_nano_seconds,
        Some(1_000_000_000)
    );
    let nm = n.memory.as_ref().unwrap();
    assert_eq!(nm.usage_bytes, Some(800 * 1024));
    assert_eq!(nm.working_set_bytes, Some(700 * 1024));
    assert_eq!(nm.available_bytes, Some(300 * 1024));
    assert_eq!(nm.page_faults, Some(5));
    assert_eq!(
        n.start_time,
        Time::from_unix_nanos(1_700_000_000_000_000_000)
    );

    // Second cycle, 1 ms of CPU more for the app: a rate appears.
    std::thread::sleep(Duration::from_millis(20));
    v2_cgroup(&cg, "k8s.io/c1", 2_001_000, 1_048_576, 48_576, 2);
    let s = f.collector.build(&snap);
    let rate = s.pods[0].containers[0]
        .cpu
        .as_ref()
        .unwrap()
        .usage_nano_cores
        .unwrap();
    assert!(rate > 0 && rate <= 50_000_000, "{rate}");
    assert!(s.pods[0].cpu.as_ref().unwrap().usage_nano_cores.is_some());
}

#[test]
fn pod_cgroup_wins_and_runtime_stats_fill_gaps() {
    let mut f = fixture();
    let cg = f.dir.path().join("cg");
    v2_cgroup(&cg, "kubepods/besteffort/podu1", 5_000_000, 2_000_000, 0, 4);
    v2_cgroup(&cg, "kubepods/besteffort/podu1/sb1", 1, 1, 0, 1);
    let mut snap = snapshot();
    // c1 has no cgroup anywhere: looked up by pid, then runtime figures.
    let lookups = f.collector.resolve_cgroups(&snap);
    assert_eq!(lookups, ["c1"]);
    f.collector.learn_pid("c1", None);
    assert!(f.collector.resolve_cgroups(&snap).is_empty(), "asked once");
    assert!(!f.collector.some_pod_lacks_a_cgroup(&snap));
    let stats = Arc::get_mut(&mut snap.container_stats)
        .unwrap()
        .get_mut("c1")
        .unwrap();
    stats.cpu = Some(pb::CpuUsage {
        timestamp: 1_700_000_002_000_000_000,
        usage_core_nano_seconds: Some(pb::UInt64Value { value: 77 }),
        ..Default::default()
    });
    stats.memory = Some(pb::MemoryUsage {
        timestamp: 1_700_000_002_000_000_000,
        working_set_bytes: Some(pb::UInt64Value { value: 10 }),
        usage_bytes: Some(pb::UInt64Value { value: 20 }),
        available_bytes: Some(pb::UInt64Value { value: 0 }),
        ..Default::default()
    });
    let s = f.collector.build(&snap);
    let p = &s.pods[0];
    assert_eq!(
        p.cpu.as_ref().unwrap().usage_core_nano_seconds,
        Some(5_000_000_000)
    );
    assert_eq!(p.memory.as_ref().unwrap().usage_bytes, Some(2_000_000));
    assert_eq!(p.process_stats.as_ref().unwrap().process_count, Some(4));
    let c = &p.containers[0];
    assert_eq!(c.cpu.as_ref().unwrap().usage_core_nano_seconds, Some(77));
    let m = c.memory.as_ref().unwrap();
    assert_eq!(m.working_set_bytes, Some(10));
    assert_eq!(m.available_bytes, None);
    // No log directory: no logs entry rather than a zero.
    assert!(c.logs.is_none());
    // The container and the pod cgroup going away is not an error.
    std::fs::remove_dir_all(cg.join("kubepods")).unwrap();
    snap.sandboxes.clear();
    snap.containers.clear();
    let s = f.collector.build(&snap);
    assert!(s.pods.is_empty());
}

#[test]
fn newest_sandbox_per_pod_and_container_per_name() {
    let mut snap = snapshot();
    let mut old = snap.sandboxes[0].clone();
    old.id = "sb0".into();
    old.created_at -= 10;
    snap.sandboxes.insert(0, old);
    let mut c2 = snap.containers[0].clone();
    c2.id = "c0".into();
    c2.created_at -= 10;
    snap.containers.push(c2);
    let pods = pod_sandboxes(&snap);
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0].1.id, "sb1");
    let by = containers_by_sandbox(&snap);
    assert_eq!(by["sb1"].len(), 1);
    assert_eq!(by["sb1"][0].id, "c1");
}
