//! One function per part of the Node's status, as the Go kubelet's
//! `nodestatus/setters.go`. Each changes only its own fields.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{
    ContainerImage, DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints,
    NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::machine::{MachineFacts, SystemInfo};
use crate::cm::helpers::ResourceList;

const NANOS: i128 = 1_000_000_000;

/// Go's `nodeStatusMaxImages` default.
pub const NODE_STATUS_MAX_IMAGES: usize = 50;
/// Go reports at most this many names per image.
pub const MAX_NAMES_PER_IMAGE: usize = 5;

pub const NODE_READY: &str = "Ready";
pub const NODE_MEMORY_PRESSURE: &str = "MemoryPressure";
pub const NODE_DISK_PRESSURE: &str = "DiskPressure";
pub const NODE_PID_PRESSURE: &str = "PIDPressure";

/// An image the runtime holds (CRI `ListImages`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuntimeImage {
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub size: u64,
}

/// Now, to the second (the API keeps condition times in whole seconds, so a
/// finer time would look like a change on every comparison).
pub fn now() -> Time {
    Time(
        jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
    )
}

fn status(node: &mut Node) -> &mut NodeStatus {
    node.status.get_or_insert_with(Default::default)
}

/// A byte count as Go's BinarySI canonical form: the largest power-of-1024
/// suffix that divides it exactly ("16331212Ki", "2Mi"), plain below 1024.
pub fn format_binary_si(bytes: i64) -> String {
    const SUFFIXES: [&str; 6] = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    if bytes.abs() < 1024 {
        return bytes.to_string();
    }
    let mut n = bytes;
    let mut i = 0;
    while n % 1024 == 0 && i < SUFFIXES.len() {
        n /= 1024;
        i += 1;
    }
    match i {
        0 => n.to_string(),
        _ => format!("{n}{}", SUFFIXES[i - 1]),
    }
}

/// milli-CPU as Go's DecimalSI form of a CPU count ("2", "1900m").
pub fn format_milli(milli: i64) -> String {
    if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

/// A resource's value in nano-units as the API quantity Go would write.
pub fn format_resource(name: &str, nanos: i128) -> ApiQuantity {
    let units = (nanos / NANOS).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    let text = match name {
        "cpu" => {
            let milli = (nanos / 1_000_000).clamp(i128::from(i64::MIN), i128::from(i64::MAX));
            format_milli(milli as i64)
        }
        "memory" | "ephemeral-storage" => format_binary_si(units),
        n if n.starts_with("hugepages-") => format_binary_si(units),
        _ => units.to_string(),
    };
    ApiQuantity(text)
}

/// `hugepages-2Mi` for a page size in bytes.
pub fn hugepage_resource_name(page_size: i64) -> String {
    format!("hugepages-{}", format_binary_si(page_size))
}

/// The node's capacity in nano-units: cpu, memory, pods, ephemeral-storage
/// (when the root filesystem could be measured) and one entry per hugepage
/// size.
pub fn capacity(facts: &MachineFacts, max_pods: u32) -> ResourceList {
    let mut cap = ResourceList::new();
    cap.insert("cpu".into(), i128::from(facts.machine.num_cpus) * NANOS);
    cap.insert(
        "memory".into(),
        i128::from(facts.machine.memory_capacity) * NANOS,
    );
    cap.insert("pods".into(), i128::from(max_pods) * NANOS);
    if let Some(fs) = facts.root_fs_capacity {
        cap.insert("ephemeral-storage".into(), i128::from(fs) * NANOS);
    }
    for h in &facts.hugepages {
        cap.insert(
            hugepage_resource_name(h.page_size),
            i128::from(h.page_size) * i128::from(h.count) * NANOS,
        );
    }
    cap
}

/// Allocatable: each capacity less its reservation, and memory less every
/// hugepage pool (those pages are not there for ordinary allocations),
/// never below zero.
pub fn allocatable(capacity: &ResourceList, reservation: &ResourceList) -> ResourceList {
    let hugepages: i128 = capacity
        .iter()
        .filter(|(k, _)| k.starts_with("hugepages-"))
        .map(|(_, v)| *v)
        .sum();
    capacity
        .iter()
        .map(|(k, v)| {
            let mut a = v - reservation.get(k).copied().unwrap_or(0);
            if k == "memory" {
                a -= hugepages;
            }
            (k.clone(), a.max(0))
        })
        .collect()
}

fn to_api(list: &ResourceList) -> BTreeMap<String, ApiQuantity> {
    list.iter()
        .map(|(k, v)| (k.clone(), format_resource(k, *v)))
        .collect()
}

/// Capacity, allocatable and the machine's identity (Go's `MachineInfo`).
pub fn machine_info(
    node: &mut Node,
    capacity: &ResourceList,
    allocatable: &ResourceList,
    system: &SystemInfo,
) {
    let st = status(node);
    st.capacity = Some(to_api(capacity));
    st.allocatable = Some(to_api(allocatable));
    let info = st.node_info.get_or_insert_with(Default::default);
    info.machine_id = system.machine_id.clone();
    info.system_uuid = system.system_uuid.clone();
    info.boot_id = system.boot_id.clone();
}

/// Kernel, OS image, runtime and kubelet versions (Go's `VersionInfo`) and
/// the OS and architecture (Go's `GoRuntime`).
pub fn version_info(
    node: &mut Node,
    system: &SystemInfo,
    runtime_name: &str,
    runtime_version: &str,
    kubelet_version: &str,
    arch: &str,
) {
    let info: &mut NodeSystemInfo = status(node).node_info.get_or_insert_with(Default::default);
    info.kernel_version = system.kernel_version.clone();
    info.os_image = system.os_image.clone();
    info.container_runtime_version = format!("{runtime_name}://{runtime_version}");
    info.kubelet_version = kubelet_version.to_string();
    info.operating_system = "linux".into();
    info.architecture = arch.to_string();
}

/// The kubelet version berth reports: the Kubernetes release it follows,
/// with berth's own version as a pre-release, so it stays valid semver.
pub fn kubelet_version() -> String {
    format!("v1.36.0-berth.{}", env!("CARGO_PKG_VERSION"))
}

/// InternalIP and Hostname (Go's `NodeAddress` without a cloud provider).
pub fn node_address(node: &mut Node, node_ip: IpAddr, hostname: &str) {
    status(node).addresses = Some(vec![
        NodeAddress {
            type_: "InternalIP".into(),
            address: node_ip.to_string(),
        },
        NodeAddress {
            type_: "Hostname".into(),
            address: hostname.to_string(),
        },
    ]);
}

/// The kubelet's port (Go's `DaemonEndpoints`).
pub fn daemon_endpoints(node: &mut Node, kubelet_port: u16) {
    status(node).daemon_endpoints = Some(NodeDaemonEndpoints {
        kubelet_endpoint: Some(DaemonEndpoint {
            port: i32::from(kubelet_port),
        }),
    });
}

/// The largest `max` images, digests then tags as names (at most five),
/// as Go's `Images`. Equal sizes are ordered by name so the list does not
/// reorder between reports.
pub fn images(node: &mut Node, list: &[RuntimeImage], max: usize) {
    let mut sorted: Vec<&RuntimeImage> = list.iter().collect();
    sorted.sort_by(|a, b| {
        b.size
            .cmp(&a.size)
            .then_with(|| a.repo_digests.cmp(&b.repo_digests))
            .then_with(|| a.repo_tags.cmp(&b.repo_tags))
    });
    let out: Vec<ContainerImage> = sorted
        .into_iter()
        .take(max)
        .map(|img| {
            let names: Vec<String> = img
                .repo_digests
                .iter()
                .chain(&img.repo_tags)
                .take(MAX_NAMES_PER_IMAGE)
                .cloned()
                .collect();
            ContainerImage {
                names: Some(names),
                size_bytes: Some(i64::try_from(img.size).unwrap_or(i64::MAX)),
            }
        })
        .collect();
    status(node).images = Some(out);
}

/// Sets one condition: the heartbeat is always `now`; the transition time
/// moves only when the status changes (or the condition is new).
fn set_condition(
    node: &mut Node,
    type_: &str,
    value: bool,
    reason: &str,
    message: &str,
    now: &Time,
) {
    let st = if value { "True" } else { "False" };
    let conds = status(node).conditions.get_or_insert_with(Vec::new);
    let fresh = |transition: Time| NodeCondition {
        type_: type_.to_string(),
        status: st.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(transition),
    };
    match conds.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            let transition = match (&c.last_transition_time, c.status == st) {
                (Some(t), true) => t.clone(),
                _ => now.clone(),
            };
            *c = fresh(transition);
        }
        None => conds.push(fresh(now.clone())),
    }
}

/// MemoryPressure, from the eviction manager's verdict.
pub fn memory_pressure_condition(node: &mut Node, pressure: bool, now: &Time) {
    let (reason, message) = if pressure {
        (
            "KubeletHasInsufficientMemory",
            "kubelet has insufficient memory available",
        )
    } else {
        (
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        )
    };
    set_condition(node, NODE_MEMORY_PRESSURE, pressure, reason, message, now);
}

/// DiskPressure, from the eviction manager's verdict.
pub fn disk_pressure_condition(node: &mut Node, pressure: bool, now: &Time) {
    let (reason, message) = if pressure {
        ("KubeletHasDiskPressure", "kubelet has disk pressure")
    } else {
        ("KubeletHasNoDiskPressure", "kubelet has no disk pressure")
    };
    set_condition(node, NODE_DISK_PRESSURE, pressure, reason, message, now);
}

/// PIDPressure, from the eviction manager's verdict.
pub fn pid_pressure_condition(node: &mut Node, pressure: bool, now: &Time) {
    let (reason, message) = if pressure {
        (
            "KubeletHasInsufficientPID",
            "kubelet has insufficient PID available",
        )
    } else {
        (
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        )
    };
    set_condition(node, NODE_PID_PRESSURE, pressure, reason, message, now);
}

/// Go's aggregate error text: nothing, the one message, or `[a, b]` with
/// repeats dropped.
pub fn aggregate(errors: &[String]) -> Option<String> {
    let mut seen: Vec<&str> = Vec::new();
    for e in errors {
        if !seen.contains(&e.as_str()) {
            seen.push(e);
        }
    }
    match seen.len() {
        0 => None,
        1 => Some(seen[0].to_string()),
        _ => Some(format!("[{}]", seen.join(", "))),
    }
}

/// Ready: True unless the runtime reported problems (`runtime_errors`, see
/// [`super::RuntimeState::errors`]) or the capacity lacks cpu, memory or
/// pods (Go's `ReadyCondition`).
pub fn ready_condition(node: &mut Node, runtime_errors: &[String], now: &Time) {
    let mut errs = runtime_errors.to_vec();
    let cap = node.status.as_ref().and_then(|s| s.capacity.as_ref());
    let missing: Vec<&str> = ["cpu", "memory", "pods"]
        .into_iter()
        .filter(|r| !cap.is_some_and(|c| c.contains_key(*r)))
        .collect();
    if !missing.is_empty() {
        errs.push(format!(
            "missing node capacity for resources: {}",
            missing.join(", ")
        ));
    }
    match aggregate(&errs) {
        None => set_condition(
            node,
            NODE_READY,
            true,
            "KubeletReady",
            "kubelet is posting ready status",
            now,
        ),
        Some(message) => set_condition(node, NODE_READY, false, "KubeletNotReady", &message, now),
    }
}

/// The labels the kubelet owns on its Node (Go's default labels):
/// hostname, OS and architecture, stable and beta.
pub fn default_labels(hostname: &str, arch: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), hostname.to_string()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), arch.to_string()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        ("beta.kubernetes.io/arch".to_string(), arch.to_string()),
    ])
}

/// Whether two statuses differ in anything but the conditions' heartbeat
/// times (Go's `nodeStatusHasChanged`). Quantities compare by value: the
/// apiserver rewrites a plain byte count divisible by 1000 as `…k`.
pub fn status_changed(old: Option<&NodeStatus>, new: Option<&NodeStatus>) -> bool {
    fn by_value(list: &mut Option<BTreeMap<String, ApiQuantity>>) {
        for q in list.iter_mut().flat_map(|l| l.values_mut()) {
            if let Ok(v) = api::Quantity::parse(&q.0) {
                q.0 = v.as_nanos().to_string();
            }
        }
    }
    fn normalized(s: Option<&NodeStatus>) -> NodeStatus {
        let mut s = s.cloned().unwrap_or_default();
        for c in s.conditions.iter_mut().flatten() {
            c.last_heartbeat_time = None;
        }
        by_value(&mut s.capacity);
        by_value(&mut s.allocatable);
        s
    }
    normalized(old) != normalized(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cm::helpers::{MachineInfo, parse_meminfo_total};
    use crate::cm::node_allocatable::{default_eviction_hard, node_allocatable_reservation};
    use crate::nodestatus::machine::HugePages;

    fn t(secs: i64) -> Time {
        Time(jiff::Timestamp::from_second(1_700_000_000 + secs).unwrap())
    }

    fn facts(meminfo: &str) -> MachineFacts {
        MachineFacts {
            machine: MachineInfo {
                memory_capacity: parse_meminfo_total(meminfo).unwrap(),
                num_cpus: 2,
                pid_max: 4_194_304,
            },
            hugepages: vec![
                HugePages {
                    page_size: 2 << 20,
                    count: 8,
                },
                HugePages {
                    page_size: 1 << 30,
                    count: 0,
                },
            ],
            root_fs_capacity: Some(100 << 30),
        }
    }

    fn q(node: &Node, field: &str, name: &str) -> String {
        let st = node.status.as_ref().unwrap();
        let list = if field == "capacity" {
            &st.capacity
        } else {
            &st.allocatable
        };
        list.as_ref().unwrap()[name].0.clone()
    }

    #[test]
    fn quantities_in_gos_canonical_form() {
        assert_eq!(format_binary_si(0), "0");
        assert_eq!(format_binary_si(512), "512");
        assert_eq!(format_binary_si(1536), "1536");
        assert_eq!(format_binary_si(2 << 20), "2Mi");
        assert_eq!(format_binary_si(1 << 30), "1Gi");
        assert_eq!(format_binary_si(16_331_212 * 1024), "16331212Ki");
        assert_eq!(format_milli(2000), "2");
        assert_eq!(format_milli(1900), "1900m");
        assert_eq!(hugepage_resource_name(2 << 20), "hugepages-2Mi");
        assert_eq!(hugepage_resource_name(1 << 30), "hugepages-1Gi");
    }

    #[test]
    fn capacity_and_allocatable_from_meminfo() {
        let f = facts("MemTotal:        8148120 kB\nMemFree: 1 kB\n");
        let cap = capacity(&f, 110);
        let reserved = node_allocatable_reservation(
            &cap,
            &BTreeMap::from([("cpu".to_string(), "100m".to_string())]),
            &BTreeMap::from([("memory".to_string(), "500Mi".to_string())]),
            &default_eviction_hard(),
        )
        .unwrap();
        let alloc = allocatable(&cap, &reserved);
        let mut node = Node::default();
        machine_info(&mut node, &cap, &alloc, &SystemInfo::default());
        assert_eq!(q(&node, "capacity", "cpu"), "2");
        assert_eq!(q(&node, "capacity", "memory"), "8148120Ki");
        assert_eq!(q(&node, "capacity", "pods"), "110");
        assert_eq!(q(&node, "capacity", "ephemeral-storage"), "100Gi");
        assert_eq!(q(&node, "capacity", "hugepages-2Mi"), "16Mi");
        assert_eq!(q(&node, "capacity", "hugepages-1Gi"), "0");
        assert_eq!(q(&node, "allocatable", "cpu"), "1900m");
        // 8148120Ki - 500Mi - 100Mi (eviction) - 16Mi (hugepages).
        assert_eq!(
            q(&node, "allocatable", "memory"),
            format!("{}Ki", 8_148_120 - 616 * 1024)
        );
        assert_eq!(q(&node, "allocatable", "pods"), "110");
        // 100Gi less Go's float32 10%.
        let storage = (100i64 << 30) - ((100i64 << 30) as f64 * f64::from(0.1f32)) as i64;
        assert_eq!(
            q(&node, "allocatable", "ephemeral-storage"),
            format_binary_si(storage)
        );
        assert_eq!(q(&node, "allocatable", "hugepages-2Mi"), "16Mi");
    }

    #[test]
    fn allocatable_never_negative() {
        let cap = ResourceList::from([("cpu".to_string(), NANOS)]);
        let res = ResourceList::from([("cpu".to_string(), 2 * NANOS)]);
        assert_eq!(allocatable(&cap, &res)["cpu"], 0);
    }

    #[test]
    fn node_info_and_addresses() {
        let mut node = Node::default();
        let sys = SystemInfo {
            machine_id: "m".into(),
            system_uuid: "u".into(),
            boot_id: "b".into(),
            kernel_version: "6.1.0".into(),
            os_image: "Debian GNU/Linux 12 (bookworm)".into(),
        };
        machine_info(&mut node, &ResourceList::new(), &ResourceList::new(), &sys);
        version_info(
            &mut node,
            &sys,
            "containerd",
            "1.6.20",
            &kubelet_version(),
            "amd64",
        );
        node_address(&mut node, "10.0.0.5".parse().unwrap(), "host-a");
        daemon_endpoints(&mut node, 10250);
        let st = node.status.unwrap();
        let info = st.node_info.unwrap();
        assert_eq!(info.container_runtime_version, "containerd://1.6.20");
        assert_eq!(info.machine_id, "m");
        assert_eq!(info.boot_id, "b");
        assert_eq!(info.operating_system, "linux");
        assert_eq!(info.architecture, "amd64");
        assert!(info.kubelet_version.starts_with("v1.36.0-berth."));
        let addrs = st.addresses.unwrap();
        assert_eq!(addrs[0].type_, "InternalIP");
        assert_eq!(addrs[0].address, "10.0.0.5");
        assert_eq!(addrs[1].type_, "Hostname");
        assert_eq!(addrs[1].address, "host-a");
        assert_eq!(
            st.daemon_endpoints.unwrap().kubelet_endpoint.unwrap().port,
            10250
        );
    }

    #[test]
    fn images_largest_first_capped() {
        let list: Vec<RuntimeImage> = (0..60)
            .map(|i| RuntimeImage {
                repo_tags: vec![format!("img{i}:latest")],
                repo_digests: vec![format!("img{i}@sha256:{i:064}")],
                size: 1000 + i as u64,
            })
            .collect();
        let mut node = Node::default();
        images(&mut node, &list, NODE_STATUS_MAX_IMAGES);
        let imgs = node.status.unwrap().images.unwrap();
        assert_eq!(imgs.len(), 50);
        assert_eq!(imgs[0].size_bytes, Some(1059));
        assert_eq!(imgs[49].size_bytes, Some(1010));
        assert_eq!(
            imgs[0].names.as_deref().unwrap(),
            [
                format!("img59@sha256:{:064}", 59),
                "img59:latest".to_string()
            ]
        );
        // At most five names per image.
        let many = RuntimeImage {
            repo_tags: (0..7).map(|i| format!("t{i}")).collect(),
            repo_digests: vec![],
            size: 1,
        };
        let mut node = Node::default();
        images(&mut node, &[many], NODE_STATUS_MAX_IMAGES);
        assert_eq!(
            node.status.unwrap().images.unwrap()[0]
                .names
                .as_ref()
                .unwrap()
                .len(),
            5
        );
    }

    fn cond<'a>(node: &'a Node, type_: &str) -> &'a NodeCondition {
        node.status
            .as_ref()
            .unwrap()
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == type_)
            .unwrap()
    }

    #[test]
    fn conditions_keep_transition_time_until_status_changes() {
        let mut node = Node::default();
        machine_info(
            &mut node,
            &ResourceList::from([
                ("cpu".to_string(), NANOS),
                ("memory".to_string(), NANOS),
                ("pods".to_string(), NANOS),
            ]),
            &ResourceList::new(),
            &SystemInfo::default(),
        );
        memory_pressure_condition(&mut node, false, &t(0));
        disk_pressure_condition(&mut node, false, &t(0));
        pid_pressure_condition(&mut node, false, &t(0));
        ready_condition(&mut node, &[], &t(0));
        let types: Vec<&str> = node
            .status
            .as_ref()
            .unwrap()
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(
            types,
            ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
        );
        let r = cond(&node, "Ready");
        assert_eq!(
            (r.status.as_str(), r.reason.as_deref()),
            ("True", Some("KubeletReady"))
        );
        assert_eq!(
            r.message.as_deref(),
            Some("kubelet is posting ready status")
        );
        let m = cond(&node, "MemoryPressure");
        assert_eq!(m.reason.as_deref(), Some("KubeletHasSufficientMemory"));
        assert_eq!(
            m.message.as_deref(),
            Some("kubelet has sufficient memory available")
        );
        assert_eq!(
            cond(&node, "DiskPressure").message.as_deref(),
            Some("kubelet has no disk pressure")
        );
        assert_eq!(
            cond(&node, "PIDPressure").message.as_deref(),
            Some("kubelet has sufficient PID available")
        );

        // Same status later: heartbeat moves, transition stays.
        ready_condition(&mut node, &[], &t(10));
        memory_pressure_condition(&mut node, false, &t(10));
        let r = cond(&node, "Ready");
        assert_eq!(r.last_heartbeat_time, Some(t(10)));
        assert_eq!(r.last_transition_time, Some(t(0)));
        assert_eq!(
            cond(&node, "MemoryPressure").last_transition_time,
            Some(t(0))
        );

        // A change moves both.
        let err = "container runtime network not ready: NetworkReady=false reason:X message:y"
            .to_string();
        ready_condition(&mut node, std::slice::from_ref(&err), &t(20));
        memory_pressure_condition(&mut node, true, &t(20));
        let r = cond(&node, "Ready");
        assert_eq!(
            (r.status.as_str(), r.reason.as_deref()),
            ("False", Some("KubeletNotReady"))
        );
        assert_eq!(r.message.as_deref(), Some(err.as_str()));
        assert_eq!(r.last_transition_time, Some(t(20)));
        let m = cond(&node, "MemoryPressure");
        assert_eq!(m.status, "True");
        assert_eq!(m.reason.as_deref(), Some("KubeletHasInsufficientMemory"));
        assert_eq!(m.last_transition_time, Some(t(20)));

        // A status another component set (the node lifecycle controller's
        // Unknown) is a transition too.
        node.status.as_mut().unwrap().conditions.as_mut().unwrap()[3].status = "Unknown".into();
        ready_condition(&mut node, &[], &t(30));
        assert_eq!(cond(&node, "Ready").last_transition_time, Some(t(30)));
    }

    #[test]
    fn ready_false_when_capacity_is_missing_and_errors_aggregate() {
        let mut node = Node::default();
        ready_condition(&mut node, &["a".into(), "b".into(), "a".into()], &t(0));
        assert_eq!(
            cond(&node, "Ready").message.as_deref(),
            Some("[a, b, missing node capacity for resources: cpu, memory, pods]")
        );
    }

    #[test]
    fn status_change_ignores_heartbeats_only() {
        let mut a = Node::default();
        ready_condition(&mut a, &[], &t(0));
        let mut b = a.clone();
        ready_condition(&mut b, &[], &t(10));
        assert!(!status_changed(a.status.as_ref(), b.status.as_ref()));
        daemon_endpoints(&mut b, 10250);
        assert!(status_changed(a.status.as_ref(), b.status.as_ref()));
        // The same quantity written two ways is no change.
        let mut c = b.clone();
        let mut d = b.clone();
        c.status.as_mut().unwrap().capacity = Some(BTreeMap::from([(
            "ephemeral-storage".to_string(),
            ApiQuantity("1024000".into()),
        )]));
        d.status.as_mut().unwrap().capacity = Some(BTreeMap::from([(
            "ephemeral-storage".to_string(),
            ApiQuantity("1024k".into()),
        )]));
        assert!(!status_changed(c.status.as_ref(), d.status.as_ref()));
    }
}
