//! Node registration, node status and the node Lease against the real
//! control plane of `tests/env/control-plane` (admin credentials; the
//! node's own identity is another piece of issue 10). The runtime is a
//! double, so no containerd is needed.
//!
//! Each test uses its own node name (`nodestatus-<pid>-<test>`) and deletes
//! its Node and Lease at the end, also when it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kubelet::kubelet_node_status::{
    ClientSource, NodeApiCounters, NodeRuntime, NodeStatusConfig, NodeStatusManager,
    RuntimeQueryError,
};
use kubelet::nodelease::{NODE_LEASE_NAMESPACE, NodeLeaseController};
use kubelet::nodestatus::setters::RuntimeImage;
use kubelet::nodestatus::{RuntimeCondition, RuntimeConditions, parse_taints};
use test_support::cluster::{admin_client, on_own_runtime};

const NODE_IP: &str = "192.0.2.10";

/// Deletes the test's Node and Lease when dropped, on a runtime of its own
/// (the test's runtime may be unwinding).
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let name = self.0.clone();
        let _ = on_own_runtime(move || async move {
            let client = admin_client().await;
            let _ = Api::<Node>::all(client.clone())
                .delete(&name, &DeleteParams::default())
                .await;
            let _ = Api::<Lease>::namespaced(client, NODE_LEASE_NAMESPACE)
                .delete(&name, &DeleteParams::default())
                .await;
        });
    }
}

fn node_name(test: &str) -> String {
    format!("nodestatus-{}-{test}", std::process::id())
}

/// The runtime double: conditions and images as the test sets them.
struct FakeRuntime {
    conditions: Mutex<RuntimeConditions>,
    images: Vec<RuntimeImage>,
}

impl FakeRuntime {
    fn new() -> Arc<Self> {
        Arc::new(FakeRuntime {
            conditions: Mutex::new(RuntimeConditions::ready()),
            images: (0..3)
                .map(|i| RuntimeImage {
                    repo_tags: vec![format!("localhost:5000/img{i}:latest")],
                    repo_digests: vec![format!("localhost:5000/img{i}@sha256:{i:064}")],
                    size: 1_000_000 * (i + 1),
                })
                .collect(),
        })
    }

    fn set(&self, c: RuntimeConditions) {
        *self.conditions.lock().unwrap() = c;
    }
}

impl NodeRuntime for FakeRuntime {
    fn status(&self) -> BoxFuture<'_, Result<RuntimeConditions, RuntimeQueryError>> {
        let c = self.conditions.lock().unwrap().clone();
        Box::pin(async move { Ok(c) })
    }

    fn list_images(&self) -> BoxFuture<'_, Result<Vec<RuntimeImage>, RuntimeQueryError>> {
        let images = self.images.clone();
        Box::pin(async move { Ok(images) })
    }
}

fn config(name: &str) -> NodeStatusConfig {
    let mut c = NodeStatusConfig::new(name);
    c.node_ip = Some(NODE_IP.parse().unwrap());
    c.node_labels = BTreeMap::from([("example.com/role".to_string(), "test".to_string())]);
    c.register_with_taints = parse_taints("example.com/dedicated=berth:NoSchedule").unwrap();
    c.root_dir = std::env::temp_dir();
    c.runtime_name = "fake".into();
    c.runtime_version = "0.1.0".into();
    c
}

fn source(client: &kube::Client) -> ClientSource {
    let client = client.clone();
    Arc::new(move || client.clone())
}

fn manager(
    client: &kube::Client,
    cfg: NodeStatusConfig,
    rt: Arc<FakeRuntime>,
) -> NodeStatusManager {
    NodeStatusManager::new(cfg, source(client), rt).expect("node status manager")
}

fn condition(node: &Node, type_: &str) -> NodeCondition {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == type_))
        .cloned()
        .unwrap_or_else(|| panic!("no {type_} condition"))
}

fn quantity_bytes(node: &Node, field: &str, name: &str) -> i64 {
    let st = node.status.as_ref().unwrap();
    let list = match field {
        "capacity" => st.capacity.as_ref(),
        _ => st.allocatable.as_ref(),
    };
    let q = &list.unwrap_or_else(|| panic!("no {field}"))[name].0;
    api::Quantity::parse(q).unwrap().as_units_ceil()
}

fn mem_total() -> i64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = text.lines().find(|l| l.starts_with("MemTotal:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<i64>()
        .unwrap()
        * 1024
}

fn nproc() -> i64 {
    let out = std::process::Command::new("nproc").output().expect("nproc");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[tokio::test]
async fn registers_the_node_with_its_status_and_reconciles_it() {
    let admin = admin_client().await;
    let name = node_name("register");
    let _cleanup = Cleanup(name.clone());
    let nodes: Api<Node> = Api::all(admin.clone());
    let rt = FakeRuntime::new();
    let mut m = manager(&admin, config(&name), rt.clone());
    tokio::time::timeout(Duration::from_secs(30), m.register())
        .await
        .expect("registered in 30 s");
    let counters = m.counters();
    assert_eq!(counters.node_creates.load(Ordering::Relaxed), 1);

    let node = nodes.get(&name).await.unwrap();
    // Capacity and allocatable.
    assert_eq!(quantity_bytes(&node, "capacity", "cpu"), nproc());
    assert_eq!(quantity_bytes(&node, "capacity", "memory"), mem_total());
    assert_eq!(quantity_bytes(&node, "capacity", "pods"), 110);
    assert!(quantity_bytes(&node, "capacity", "ephemeral-storage") > 0);
    assert!(quantity_bytes(&node, "allocatable", "memory") <= mem_total() - (100 << 20));
    assert!(
        quantity_bytes(&node, "allocatable", "ephemeral-storage")
            < quantity_bytes(&node, "capacity", "ephemeral-storage")
    );
    // Labels and taints.
    let labels = node.metadata.labels.clone().unwrap();
    assert_eq!(labels["kubernetes.io/hostname"], name);
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert_eq!(labels["beta.kubernetes.io/os"], "linux");
    let arch = labels["kubernetes.io/arch"].clone();
    assert!(arch == "amd64" || arch == "arm64", "{arch}");
    assert_eq!(labels["beta.kubernetes.io/arch"], arch);
    assert_eq!(labels["example.com/role"], "test");
    let taints = node.spec.as_ref().unwrap().taints.clone().unwrap();
    assert!(
        taints.iter().any(|t| t.key == "example.com/dedicated"
            && t.value.as_deref() == Some("berth")
            && t.effect == "NoSchedule"),
        "{taints:?}"
    );
    // Addresses, nodeInfo, endpoint, images.
    let st = node.status.clone().unwrap();
    let addrs = st.addresses.unwrap();
    assert!(
        addrs
            .iter()
            .any(|a| a.type_ == "InternalIP" && a.address == NODE_IP),
        "{addrs:?}"
    );
    assert!(
        addrs
            .iter()
            .any(|a| a.type_ == "Hostname" && a.address == name),
        "{addrs:?}"
    );
    let info = st.node_info.unwrap();
    assert_eq!(
        info.machine_id,
        std::fs::read_to_string("/etc/machine-id")
            .unwrap_or_default()
            .trim()
    );
    assert_eq!(
        info.boot_id,
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .unwrap()
            .trim()
    );
    assert_eq!(info.container_runtime_version, "fake://0.1.0");
    assert!(
        info.kubelet_version.starts_with("v1.36.0-berth."),
        "{}",
        info.kubelet_version
    );
    assert_eq!(info.operating_system, "linux");
    assert_eq!(info.architecture, arch);
    assert!(!info.kernel_version.is_empty() && !info.os_image.is_empty());
    assert_eq!(
        st.daemon_endpoints.unwrap().kubelet_endpoint.unwrap().port,
        10250
    );
    let images = st.images.unwrap();
    assert_eq!(images.len(), 3);
    assert_eq!(images[0].size_bytes, Some(3_000_000));
    // Conditions.
    let ready = condition(&node, "Ready");
    assert_eq!(ready.status, "True");
    assert_eq!(ready.reason.as_deref(), Some("KubeletReady"));
    assert_eq!(
        ready.message.as_deref(),
        Some("kubelet is posting ready status")
    );
    let mem = condition(&node, "MemoryPressure");
    assert_eq!(
        (mem.status.as_str(), mem.reason.as_deref()),
        ("False", Some("KubeletHasSufficientMemory"))
    );
    assert_eq!(
        condition(&node, "DiskPressure").reason.as_deref(),
        Some("KubeletHasNoDiskPressure")
    );
    assert_eq!(
        condition(&node, "PIDPressure").reason.as_deref(),
        Some("KubeletHasSufficientPID")
    );

    // The network goes down: Ready=False with Go's message, sent at once.
    rt.set(RuntimeConditions {
        runtime_ready: Some(RuntimeCondition {
            status: true,
            ..Default::default()
        }),
        network_ready: Some(RuntimeCondition {
            status: false,
            reason: "NetworkPluginNotReady".into(),
            message: "Network plugin returns error: cni plugin not initialized".into(),
        }),
    });
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(m.sync_node_status().await.unwrap(), "a change is sent");
    let node = nodes.get(&name).await.unwrap();
    let not_ready = condition(&node, "Ready");
    assert_eq!(not_ready.status, "False");
    assert_eq!(not_ready.reason.as_deref(), Some("KubeletNotReady"));
    assert_eq!(
        not_ready.message.as_deref(),
        Some(
            "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady \
             message:Network plugin returns error: cni plugin not initialized"
        )
    );
    assert_ne!(not_ready.last_transition_time, ready.last_transition_time);
    // Pressure conditions did not change, so their transition times stay.
    assert_eq!(
        condition(&node, "MemoryPressure").last_transition_time,
        mem.last_transition_time
    );
    // Nothing changed since: nothing is sent.
    assert!(!m.sync_node_status().await.unwrap());
    rt.set(RuntimeConditions::ready());
    assert!(m.sync_node_status().await.unwrap());
    assert_eq!(
        condition(&nodes.get(&name).await.unwrap(), "Ready").status,
        "True"
    );

    // Another component's label and condition, and a default label changed
    // behind the kubelet's back; a kubelet that starts again takes its
    // label back and leaves the others alone.
    nodes
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"labels": {
                "example.com/theirs": "1", "kubernetes.io/os": "plan9"}}})),
        )
        .await
        .unwrap();
    nodes
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Strategic(serde_json::json!({"status": {"conditions": [{
                "type": "NetworkUnavailable", "status": "False",
                "reason": "RouteCreated", "message": "set by a test"}]}})),
        )
        .await
        .unwrap();
    let mut again = manager(&admin, config(&name), rt.clone());
    tokio::time::timeout(Duration::from_secs(30), again.register())
        .await
        .expect("registered again");
    let c = again.counters();
    assert_eq!(c.node_creates.load(Ordering::Relaxed), 1);
    assert_eq!(c.node_gets.load(Ordering::Relaxed), 1);
    let node = nodes.get(&name).await.unwrap();
    let labels = node.metadata.labels.clone().unwrap();
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert_eq!(labels["example.com/theirs"], "1");
    assert_eq!(
        condition(&node, "NetworkUnavailable").reason.as_deref(),
        Some("RouteCreated")
    );
    assert_eq!(condition(&node, "Ready").status, "True");
    assert_eq!(
        node.metadata.uid,
        m.last_node().and_then(|n| n.metadata.uid.clone())
    );
}

#[tokio::test]
async fn retries_until_the_apiserver_answers_with_the_current_client() {
    let admin = admin_client().await;
    let name = node_name("retry");
    let _cleanup = Cleanup(name.clone());
    // Nothing listens on port 1: the first client fails until "rotation"
    // hands out the working one.
    let dead =
        kube::Client::try_from(kube::Config::new("https://127.0.0.1:1".parse().unwrap())).unwrap();
    let rotated = Arc::new(AtomicBool::new(false));
    let flag = rotated.clone();
    let good = admin.clone();
    let source: ClientSource = Arc::new(move || {
        if flag.load(Ordering::SeqCst) {
            good.clone()
        } else {
            dead.clone()
        }
    });
    let mut m = NodeStatusManager::new(config(&name), source, FakeRuntime::new()).unwrap();
    assert!(m.try_register().await.is_err());
    assert!(m.sync_node_status().await.is_err(), "not registered yet");
    let task = tokio::spawn(async move {
        m.register().await;
        m
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!task.is_finished(), "still retrying");
    rotated.store(true, Ordering::SeqCst);
    let m = tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("registered once the client works")
        .unwrap();
    let attempts = m.counters().node_creates.load(Ordering::Relaxed);
    assert!(attempts >= 3, "{attempts} attempts");
    Api::<Node>::all(admin)
        .get(&name)
        .await
        .expect("the node exists");
}

#[tokio::test]
async fn the_lease_is_created_owned_and_renewed() {
    let admin = admin_client().await;
    let name = node_name("lease");
    let _cleanup = Cleanup(name.clone());
    let mut m = manager(&admin, config(&name), FakeRuntime::new());
    m.register().await;
    let node_uid = m.last_node().unwrap().metadata.uid.clone().unwrap();
    let counters = m.counters();
    let mut lease =
        NodeLeaseController::new(source(&admin), &name, 40, counters.clone(), m.node_uid());
    assert_eq!(lease.renew_interval(), Duration::from_secs(10));
    let leases: Api<Lease> = Api::namespaced(admin.clone(), NODE_LEASE_NAMESPACE);

    lease.sync().await;
    assert_eq!(counters.lease_creates.load(Ordering::Relaxed), 1);
    let l1 = leases.get(&name).await.unwrap();
    let spec = l1.spec.clone().unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some(name.as_str()));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    let owners = l1.metadata.owner_references.clone().unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(
        (owners[0].api_version.as_str(), owners[0].kind.as_str()),
        ("v1", "Node")
    );
    assert_eq!(owners[0].name, name);
    assert_eq!(owners[0].uid, node_uid);
    let t1 = spec.renew_time.unwrap().0;

    // A renewal is one update, from the version last written.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let gets = counters.lease_gets.load(Ordering::Relaxed);
    lease.sync().await;
    assert_eq!(counters.lease_gets.load(Ordering::Relaxed), gets);
    assert_eq!(counters.lease_updates.load(Ordering::Relaxed), 1);
    let t2 = leases
        .get(&name)
        .await
        .unwrap()
        .spec
        .unwrap()
        .renew_time
        .unwrap()
        .0;
    assert!(t2 > t1, "{t2} > {t1}");

    // Someone else writes the lease: the update conflicts, the lease is
    // re-read and renewed.
    leases
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"labels": {"touched": "yes"}}})),
        )
        .await
        .unwrap();
    lease.sync().await;
    assert_eq!(counters.lease_gets.load(Ordering::Relaxed), gets + 1);
    assert_eq!(counters.lease_updates.load(Ordering::Relaxed), 3);
    let l3 = leases.get(&name).await.unwrap();
    assert_eq!(l3.metadata.labels.unwrap()["touched"], "yes");
    let t3 = l3.spec.unwrap().renew_time.unwrap().0;
    assert!(t3 > t2, "{t3} > {t2}");
}

/// Spawns the status and lease tasks as berth will.
fn spawn_node(
    admin: &kube::Client,
    cfg: NodeStatusConfig,
) -> (
    Arc<NodeApiCounters>,
    tokio::task::JoinHandle<()>,
    tokio::task::JoinHandle<()>,
) {
    let name = cfg.node_name.clone();
    let m = manager(admin, cfg, FakeRuntime::new());
    let counters = m.counters();
    let lease = NodeLeaseController::new(source(admin), &name, 40, counters.clone(), m.node_uid());
    (counters, tokio::spawn(m.run()), tokio::spawn(lease.run()))
}

async fn wait_for_node(nodes: &Api<Node>, name: &str) -> Node {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(n)) = nodes.get_opt(name).await {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "node {name} not registered in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_idle_node_sends_no_status_patch() {
    let admin = admin_client().await;
    let name = node_name("idle");
    let _cleanup = Cleanup(name.clone());
    let nodes: Api<Node> = Api::all(admin.clone());
    let (counters, status, lease) = spawn_node(&admin, config(&name));
    let before = wait_for_node(&nodes, &name).await;
    let heartbeat = condition(&before, "Ready").last_heartbeat_time;
    assert_eq!(counters.node_creates.load(Ordering::Relaxed), 1);
    // Two status computations (10 s apart) find nothing new.
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert_eq!(counters.node_status_patches.load(Ordering::Relaxed), 0);
    assert_eq!(counters.node_gets.load(Ordering::Relaxed), 0);
    let after = nodes.get(&name).await.unwrap();
    assert_eq!(condition(&after, "Ready").last_heartbeat_time, heartbeat);
    assert_eq!(condition(&after, "Ready").status, "True");
    // The lease: created, then renewed every 10 s.
    assert_eq!(counters.lease_creates.load(Ordering::Relaxed), 1);
    let updates = counters.lease_updates.load(Ordering::Relaxed);
    assert!((2..=3).contains(&updates), "{updates} lease updates");
    status.abort();
    lease.abort();
}

#[tokio::test]
async fn a_stopped_kubelet_is_marked_unknown_by_the_node_lifecycle_controller() {
    let admin = admin_client().await;
    let name = node_name("stopped");
    let _cleanup = Cleanup(name.clone());
    let nodes: Api<Node> = Api::all(admin.clone());
    let (_counters, status, lease) = spawn_node(&admin, config(&name));
    let node = wait_for_node(&nodes, &name).await;
    assert_eq!(condition(&node, "Ready").status, "True");
    // Let the lease be created and the controller see the node healthy.
    tokio::time::sleep(Duration::from_secs(3)).await;
    status.abort();
    lease.abort();
    let stopped = Instant::now();
    let deadline = stopped + Duration::from_secs(150);
    loop {
        let ready = condition(&nodes.get(&name).await.unwrap(), "Ready");
        if ready.status == "Unknown" {
            assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
            // The grace period (node-monitor-grace-period, 20 s in the test
            // environment) runs from the last renewal, at most one renewal
            // interval (10 s) before the stop.
            assert!(
                stopped.elapsed() > Duration::from_secs(10),
                "{:?}",
                stopped.elapsed()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {ready:?} {:?} after stopping",
            stopped.elapsed()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Without `--node-ip`, the InternalIP is the address of the default
/// route's interface, as `ip` reports it. Needs no control plane.
#[test]
fn the_default_node_ip_is_the_default_route_interfaces_address() {
    let table = std::fs::read_to_string("/proc/net/route").unwrap();
    let Some(iface) = table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(1) == Some(&"00000000")).then(|| f[0].to_string())
    }) else {
        eprintln!("no IPv4 default route here; nothing to compare");
        return;
    };
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", &iface])
        .output()
        .expect("ip");
    let text = String::from_utf8_lossy(&out.stdout);
    let addrs: Vec<String> = text
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .map(|a| a.split('/').next().unwrap().to_string())
        .into_iter()
        .collect();
    let ip = kubelet::kubelet_node_status::default_node_ip().unwrap();
    assert!(!ip.is_loopback());
    assert!(
        addrs.contains(&ip.to_string()),
        "{ip} not in {addrs:?} of {iface}"
    );
}

/// With nothing changing, a status is sent once per report period: the
/// heartbeat moves, the transition time does not.
#[tokio::test]
async fn an_unchanged_status_is_reported_once_per_report_period() {
    let admin = admin_client().await;
    let name = node_name("report");
    let _cleanup = Cleanup(name.clone());
    let nodes: Api<Node> = Api::all(admin.clone());
    let mut cfg = config(&name);
    cfg.node_status_update_frequency = Duration::from_secs(1);
    cfg.node_status_report_frequency = Duration::from_secs(3);
    let (counters, status, lease) = spawn_node(&admin, cfg);
    let before = condition(&wait_for_node(&nodes, &name).await, "Ready");
    tokio::time::sleep(Duration::from_millis(7500)).await;
    status.abort();
    lease.abort();
    // Computed 7 times, reported at about 3 s and 6 s.
    let patches = counters.node_status_patches.load(Ordering::Relaxed);
    assert!((2..=3).contains(&patches), "{patches} patches");
    let after = condition(&nodes.get(&name).await.unwrap(), "Ready");
    assert!(after.last_heartbeat_time > before.last_heartbeat_time);
    assert_eq!(after.last_transition_time, before.last_transition_time);
    assert_eq!(after.status, "True");
}

/// `registerNode: false`: nothing is created; once someone else creates
/// the Node, its status is kept, as the Go kubelet keeps it.
#[tokio::test]
async fn without_register_node_an_existing_node_gets_its_status() {
    let admin = admin_client().await;
    let name = node_name("noreg");
    let _cleanup = Cleanup(name.clone());
    let nodes: Api<Node> = Api::all(admin.clone());
    let mut cfg = config(&name);
    cfg.register_node = false;
    let (counters, status, lease) = spawn_node(&admin, cfg);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(nodes.get_opt(&name).await.unwrap().is_none(), "not created");
    assert_eq!(counters.node_creates.load(Ordering::Relaxed), 0);
    let bare: Node =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
    nodes.create(&Default::default(), &bare).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = nodes.get(&name).await.unwrap();
        let ready = n
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "no status on the adopted node");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(counters.node_creates.load(Ordering::Relaxed), 0);
    status.abort();
    lease.abort();
}
