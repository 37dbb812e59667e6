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

fn sandbox(id: &str, created_at: i64, ready: bool) -> SandboxState {
    SandboxState {
        id: id.into(),
        attempt: 0,
        ready,
        created_at,
        hash: String::new(),
        ip: String::new(),
    }
}

fn container(id: &str, sandbox_id: &str, name: &str, created_at: i64) -> ContainerState {
    ContainerState::new(
        id.into(),
        sandbox_id.into(),
        crate::container::runtime_pod::ContainerInfo {
            pod_uid: "u1".into(),
            name: name.into(),
            ..Default::default()
        },
        crate::container::ContainerStateKind::Running,
        created_at,
    )
}

/// Pod default/web (u1): ready sandbox sb1 running container app (c1).
fn web_pod() -> RuntimePod {
    RuntimePod {
        uid: "u1".into(),
        name: "web".into(),
        namespace: "default".into(),
        sandboxes: vec![sandbox("sb1", 1_700_000_000_000_000_000, true)],
        containers: vec![container("c1", "sb1", "app", 1_700_000_001_000_000_000)],
    }
}

fn snapshot() -> Snapshot {
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
    Snapshot {
        pods: vec![Arc::new(web_pod())],
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
    snap.pods.clear();
    let s = f.collector.build(&snap);
    assert!(s.pods.is_empty());
}

#[test]
fn newest_ready_sandbox_per_pod_and_running_container_per_name() {
    let mut snap = snapshot();
    let pod = Arc::make_mut(&mut snap.pods[0]);
    let t = 1_700_000_000_000_000_000;
    // An older ready sandbox, and a newer one that isn't ready.
    pod.sandboxes.push(sandbox("sb0", t - 10, true));
    pod.sandboxes.push(sandbox("sb2", t + 10, false));
    // An older instance of app, an exited newer one, one in the old
    // sandbox, and a second container listed before the first by name.
    pod.containers.push(container("c0", "sb1", "app", t - 10));
    let mut exited = container("c9", "sb1", "app", t + 5_000_000_000);
    exited.state = crate::container::ContainerStateKind::Exited;
    pod.containers.push(exited);
    pod.containers.push(container("old", "sb0", "app", t + 1));
    pod.containers.push(container("c2", "sb1", "aaa", t + 2));
    // A pod with no ready sandbox isn't reported; nor is one without a UID.
    let mut gone = web_pod();
    gone.uid = "u2".into();
    gone.sandboxes[0].ready = false;
    let mut anonymous = web_pod();
    anonymous.uid.clear();
    // Pods come out by namespace, then name.
    let mut first = web_pod();
    first.uid = "u3".into();
    first.namespace = "a".into();
    first.sandboxes[0].id = "sb3".into();
    first.containers[0].sandbox_id = "sb3".into();
    snap.pods.extend([gone, anonymous, first].map(Arc::new));
    let views = pod_views(&snap);
    assert_eq!(views.len(), 2);
    assert_eq!(views[0].pod.uid, "u3");
    let v = &views[1];
    assert_eq!(v.sandbox.id, "sb1");
    let ids: Vec<&str> = v.containers.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["c2", "c1"]);
}

#[tokio::test]
async fn collect_waits_for_the_pod_cache_then_reads_pods_from_it() {
    let f = fixture();
    let cg = f.dir.path().join("cg");
    v2_cgroup(&cg, "k8s.io/sb1", 1000, 4096, 0, 1);
    v2_cgroup(&cg, "k8s.io/c1", 2_000_000, 1_048_576, 48_576, 2);
    // A runtime that never answers: the cycle needs nothing from it but
    // ImageFsInfo, which is optional.
    let ch = tonic::transport::Endpoint::from_static("http://localhost").connect_lazy();
    let client = RuntimeClient::from_channels(
        "unix:///nonexistent".into(),
        ch.clone(),
        ch,
        Default::default(),
    );
    let cache = PodCache::new();
    let provider = StatsProvider::new(client, cache.clone(), f.collector.config.clone());
    assert!(matches!(
        provider.collect().await,
        Err(StatsError::CacheNotReady)
    ));
    assert!(provider.summary().is_none());
    let now = Instant::now();
    cache.set("u1", Arc::new(web_pod()), now);
    cache.update_time(now);
    let r = provider.collect().await.expect("a cycle from the cache");
    assert_eq!((r.pods, r.containers), (1, 1));
    let s = provider.summary().expect("published");
    assert_eq!(s.pods[0].pod_ref.name, "web");
    assert_eq!(s.pods[0].containers[0].name, "app");
    assert_eq!(
        s.pods[0].containers[0]
            .cpu
            .as_ref()
            .unwrap()
            .usage_core_nano_seconds,
        Some(2_000_000_000)
    );
    assert!(s.node.runtime.as_ref().unwrap().image_fs.is_none());
    // The pod going from the cache drops it from the next summary.
    cache.delete("u1");
    provider.collect().await.unwrap();
    assert!(provider.summary().unwrap().pods.is_empty());
}
