//! Resource arithmetic of the Go kubelet's `cm/helpers_linux.go` and
//! `component-helpers/resource` (`PodRequests`, `PodLimits`): CPU shares and
//! CFS quota, and the pod-level cgroup values (`ResourceConfigForPod`).

use std::collections::BTreeMap;

use api::Quantity;
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use super::qos::{QosClass, qos_class};

/// The kernel's bounds for `cpu.shares`.
pub const MIN_SHARES: u64 = 2;
pub const MAX_SHARES: u64 = 262_144;
pub const SHARES_PER_CPU: i64 = 1024;
pub const MILLI_CPU_TO_CPU: i64 = 1000;
/// The CFS period, 100 ms in microseconds.
pub const QUOTA_PERIOD: u64 = 100_000;
/// The kernel refuses quotas under 1 ms.
pub const MIN_QUOTA_PERIOD: i64 = 1000;

/// Resource values in nano-units, by resource name.
pub type ResourceList = BTreeMap<String, i128>;

/// milli-CPU to `cpu.shares`, as `MilliCPUToShares`: zero and tiny requests
/// get the kernel minimum (2), not the kernel default (1024).
pub fn milli_cpu_to_shares(milli_cpu: i64) -> u64 {
    if milli_cpu <= 0 {
        return MIN_SHARES;
    }
    let shares = milli_cpu.saturating_mul(SHARES_PER_CPU) / MILLI_CPU_TO_CPU;
    (shares.max(0) as u64).clamp(MIN_SHARES, MAX_SHARES)
}

/// milli-CPU to a CFS quota for `period` µs, as `MilliCPUToQuota`: 0 means
/// "no limit"; otherwise at least 1 ms.
pub fn milli_cpu_to_quota(milli_cpu: i64, period: i64) -> i64 {
    if milli_cpu <= 0 {
        return 0;
    }
    (milli_cpu.saturating_mul(period) / MILLI_CPU_TO_CPU).max(MIN_QUOTA_PERIOD)
}

/// `cpu.shares` to cgroup v2 `cpu.weight`, as opencontainers/cgroups'
/// `ConvertCPUSharesToCgroupV2Value` (the quadratic fit through 2→1,
/// 1024→100, 262144→10000 that runc and the Go kubelet use since 2025).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    if shares <= MIN_SHARES {
        return 1;
    }
    if shares >= MAX_SHARES {
        return 10_000;
    }
    let l = (shares as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    10f64.powf(exponent).ceil() as u64
}

/// A quantity in milli-units, rounded up (Go's `MilliValue`).
pub fn milli(nanos: i128) -> i64 {
    let v = nanos.div_euclid(1_000_000) + i128::from(nanos.rem_euclid(1_000_000) != 0);
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// A quantity in whole units, rounded up (Go's `Value`).
pub fn value(nanos: i128) -> i64 {
    let v = nanos.div_euclid(1_000_000_000) + i128::from(nanos.rem_euclid(1_000_000_000) != 0);
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// Parses an API resource list; names whose quantity doesn't parse are left
/// out (manifests are validated before they get here).
pub fn parse_list(list: Option<&BTreeMap<String, ApiQuantity>>) -> ResourceList {
    list.into_iter()
        .flatten()
        .filter_map(|(k, q)| Some((k.clone(), Quantity::parse(&q.0).ok()?.as_nanos())))
        .collect()
}

/// The container's limits.
pub fn container_limits(c: &Container) -> ResourceList {
    parse_list(c.resources.as_ref().and_then(|r| r.limits.as_ref()))
}

/// The container's requests, each missing one defaulted to its limit as the
/// apiserver's defaulting does (static pods never pass through it).
pub fn container_requests(c: &Container) -> ResourceList {
    let mut requests = parse_list(c.resources.as_ref().and_then(|r| r.requests.as_ref()));
    for (name, limit) in container_limits(c) {
        requests.entry(name).or_insert(limit);
    }
    requests
}

fn add(list: &mut ResourceList, other: &ResourceList) {
    for (k, v) in other {
        *list.entry(k.clone()).or_insert(0) += v;
    }
}

fn max_into(list: &mut ResourceList, other: &ResourceList) {
    for (k, v) in other {
        let e = list.entry(k.clone()).or_insert(*v);
        if *v > *e {
            *e = *v;
        }
    }
}

/// A sidecar: an init container with `restartPolicy: Always`.
pub fn is_restartable_init(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// Sums regular containers and sidecars, and takes the peak of each init
/// container (plus the sidecars started before it), as the sidecar KEP's
/// `aggregateContainerResourcesByFn`.
pub(crate) fn aggregate(
    pod: &Pod,
    mut per_container: impl FnMut(&Container) -> ResourceList,
) -> ResourceList {
    let Some(spec) = pod.spec.as_ref() else {
        return ResourceList::new();
    };
    let mut result = ResourceList::new();
    for c in &spec.containers {
        add(&mut result, &per_container(c));
    }
    let mut sidecars = ResourceList::new();
    let mut init_peak = ResourceList::new();
    for c in spec.init_containers.iter().flatten() {
        let own = per_container(c);
        let in_use = if is_restartable_init(c) {
            add(&mut result, &own);
            add(&mut sidecars, &own);
            sidecars.clone()
        } else {
            let mut combined = own;
            add(&mut combined, &sidecars);
            combined
        };
        max_into(&mut init_peak, &in_use);
    }
    max_into(&mut result, &init_peak);
    result
}

fn overhead(pod: &Pod) -> ResourceList {
    parse_list(pod.spec.as_ref().and_then(|s| s.overhead.as_ref()))
}

/// The pod's effective requests (`PodRequests`), pod overhead included.
pub fn pod_requests(pod: &Pod) -> ResourceList {
    let mut reqs = aggregate(pod, container_requests);
    add(&mut reqs, &overhead(pod));
    reqs
}

/// The pod's limits (`PodLimits`), overhead added to the non-zero ones.
pub fn pod_limits(pod: &Pod) -> ResourceList {
    let mut limits = aggregate(pod, container_limits);
    for (k, v) in overhead(pod) {
        if let Some(l) = limits.get_mut(&k)
            && *l != 0
        {
            *l += v;
        }
    }
    limits
}

/// Whether every container, init containers and sidecars included, has a
/// non-zero limit on `resource` (the `ContainerFn` check of
/// `ResourceConfigForPod`).
fn every_container_limits(pod: &Pod, resource: &str) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .all(|c| container_limits(c).get(resource).is_some_and(|v| *v != 0))
}

/// Cgroup values for one cgroup (the Go kubelet's `ResourceConfig`); `None`
/// leaves the file alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceConfig {
    /// In `cpu.shares` units; converted to `cpu.weight` on v2.
    pub cpu_shares: Option<u64>,
    /// µs per period; -1 = no limit.
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    /// Bytes.
    pub memory: Option<i64>,
    pub pids_limit: Option<i64>,
    /// Page size in bytes → limit in bytes.
    pub hugepage_limits: BTreeMap<i64, i64>,
}

/// Hugepage limits by page size in bytes from `hugepages-<size>` entries
/// (`HugePageLimits`).
pub fn hugepage_limits(list: &ResourceList) -> BTreeMap<i64, i64> {
    let mut out = BTreeMap::new();
    for (name, v) in list {
        let Some(size) = name.strip_prefix("hugepages-") else {
            continue;
        };
        let Ok(size) = Quantity::parse(size) else {
            continue;
        };
        *out.entry(value(size.as_nanos())).or_insert(0) += value(*v);
    }
    out
}

/// A page size in bytes as the runtime and the hugetlb files name it
/// ("2MB", "1GB"), as `HugePageUnitSizeFromByteSize`.
pub fn hugepage_size_name(mut bytes: i64) -> Option<String> {
    const UNITS: [&str; 6] = ["B", "KB", "MB", "GB", "TB", "PB"];
    let mut i = 0;
    while bytes >= 1024 && i < UNITS.len() - 1 {
        if bytes % 1024 != 0 {
            return None;
        }
        bytes /= 1024;
        i += 1;
    }
    (bytes > 0).then(|| format!("{bytes}{}", UNITS[i]))
}

/// The pod cgroup's values, as `ResourceConfigForPod` with CFS quota
/// enforced (the kubelet's `cpuCFSQuota` default) and no memory QoS.
pub fn resource_config_for_pod(pod: &Pod) -> ResourceConfig {
    let reqs = pod_requests(pod);
    let limits = pod_limits(pod);
    let cpu_declared = every_container_limits(pod, "cpu");
    let memory_declared = every_container_limits(pod, "memory");

    let cpu_shares = milli_cpu_to_shares(reqs.get("cpu").map_or(0, |v| milli(*v)));
    let cpu_quota = milli_cpu_to_quota(
        limits.get("cpu").map_or(0, |v| milli(*v)),
        QUOTA_PERIOD as i64,
    );
    let memory = limits.get("memory").map_or(0, |v| value(*v));

    let mut rc = ResourceConfig {
        hugepage_limits: hugepage_limits(&reqs),
        ..Default::default()
    };
    match qos_class(pod) {
        QosClass::Guaranteed => {
            rc.cpu_shares = Some(cpu_shares);
            rc.cpu_quota = Some(cpu_quota);
            rc.cpu_period = Some(QUOTA_PERIOD);
            rc.memory = Some(memory);
        }
        QosClass::Burstable => {
            rc.cpu_shares = Some(cpu_shares);
            if cpu_declared {
                rc.cpu_quota = Some(cpu_quota);
                rc.cpu_period = Some(QUOTA_PERIOD);
            }
            if memory_declared {
                rc.memory = Some(memory);
            }
        }
        QosClass::BestEffort => rc.cpu_shares = Some(MIN_SHARES),
    }
    rc
}

/// What the node has: memory from /proc/meminfo, CPUs online, `pid_max`
/// (cadvisor's `MachineInfo` plus the kubelet's pid capacity).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MachineInfo {
    pub memory_capacity: i64,
    pub num_cpus: i64,
    pub pid_max: i64,
}

impl MachineInfo {
    /// Reads the host's figures; a figure that can't be read falls back to a
    /// conservative value (logged), since none of them is worth failing for.
    pub fn read() -> Self {
        let memory_capacity = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| parse_meminfo_total(&s))
            .unwrap_or_else(|| {
                tracing::warn!("no MemTotal in /proc/meminfo; assuming 1 GiB of memory");
                1 << 30
            });
        let num_cpus = std::fs::read_to_string("/sys/devices/system/cpu/online")
            .ok()
            .and_then(|s| count_cpu_list(&s))
            .or_else(|| {
                std::thread::available_parallelism()
                    .ok()
                    .map(|n| n.get() as i64)
            })
            .unwrap_or(1);
        let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(32_768);
        MachineInfo {
            memory_capacity,
            num_cpus,
            pid_max,
        }
    }
}

/// `MemTotal:  24684084 kB` → bytes.
pub fn parse_meminfo_total(meminfo: &str) -> Option<i64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut parts = line.split_whitespace().skip(1);
    let n: i64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => n.checked_mul(1024),
        None => Some(n),
        Some(_) => None,
    }
}

/// The number of CPUs in a cpu list ("0-3,6" → 5).
pub fn count_cpu_list(list: &str) -> Option<i64> {
    let mut n = 0i64;
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (i64, i64) = (a.parse().ok()?, b.parse().ok()?);
                if b < a {
                    return None;
                }
                n += b - a + 1;
            }
            None => {
                part.parse::<i64>().ok()?;
                n += 1;
            }
        }
    }
    (n > 0).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(
            serde_json::json!({"metadata": {"name": "p", "uid": "u"}, "spec": spec}),
        )
        .unwrap()
    }

    fn c(name: &str, resources: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"name": name, "image": "i", "resources": resources})
    }

    #[test]
    fn shares_and_quota() {
        assert_eq!(milli_cpu_to_shares(0), 2);
        assert_eq!(milli_cpu_to_shares(1), 2);
        assert_eq!(milli_cpu_to_shares(100), 102);
        assert_eq!(milli_cpu_to_shares(1000), 1024);
        assert_eq!(milli_cpu_to_shares(500_000), MAX_SHARES);
        assert_eq!(milli_cpu_to_quota(0, 100_000), 0);
        assert_eq!(milli_cpu_to_quota(5, 100_000), 1000);
        assert_eq!(milli_cpu_to_quota(500, 100_000), 50_000);
        assert_eq!(milli_cpu_to_quota(2500, 100_000), 250_000);
    }

    #[test]
    fn shares_to_weight_matches_runc() {
        // Values of opencontainers/cgroups' conversion.
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 100);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(102), 17);
        assert_eq!(shares_to_weight(512), 59);
        // Monotonic over the whole range.
        let mut last = 0;
        for s in (2..=MAX_SHARES).step_by(97) {
            let w = shares_to_weight(s);
            assert!(w >= last, "{s}");
            last = w;
        }
    }

    #[test]
    fn guaranteed_pod_config() {
        let p = pod(serde_json::json!({"containers": [
            c("a", serde_json::json!({"limits": {"cpu": "500m", "memory": "64Mi"}})),
            c("b", serde_json::json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1Gi"}})),
        ]}));
        let rc = resource_config_for_pod(&p);
        assert_eq!(rc.cpu_shares, Some(1536));
        assert_eq!(rc.cpu_quota, Some(150_000));
        assert_eq!(rc.cpu_period, Some(100_000));
        assert_eq!(rc.memory, Some((64 << 20) + (1 << 30)));
    }

    #[test]
    fn burstable_pod_config() {
        // Every container limits cpu, not every one memory: quota, no memory limit.
        let p = pod(serde_json::json!({"containers": [
            c("a", serde_json::json!({"requests": {"cpu": "100m"}, "limits": {"cpu": "200m", "memory": "64Mi"}})),
            c("b", serde_json::json!({"limits": {"cpu": "300m"}})),
        ]}));
        let rc = resource_config_for_pod(&p);
        assert_eq!(rc.cpu_shares, Some(milli_cpu_to_shares(400)));
        assert_eq!(rc.cpu_quota, Some(50_000));
        assert_eq!(rc.memory, None);
        // Only requests: shares only.
        let p = pod(serde_json::json!({"containers": [
            c("a", serde_json::json!({"requests": {"cpu": "250m", "memory": "10Mi"}})),
        ]}));
        let rc = resource_config_for_pod(&p);
        assert_eq!(
            rc,
            ResourceConfig {
                cpu_shares: Some(256),
                ..Default::default()
            }
        );
    }

    #[test]
    fn besteffort_pod_config() {
        let p = pod(serde_json::json!({"containers": [c("a", serde_json::json!({}))]}));
        assert_eq!(
            resource_config_for_pod(&p),
            ResourceConfig {
                cpu_shares: Some(2),
                ..Default::default()
            }
        );
    }

    #[test]
    fn init_containers_and_sidecars_count_as_pod_requests() {
        // regular 100m; sidecar 200m (runs alongside); init 500m runs after
        // the sidecar started, so its peak is 700m; total = max(300m, 700m).
        let p = pod(serde_json::json!({
            "initContainers": [
                {"name": "side", "image": "i", "restartPolicy": "Always",
                 "resources": {"requests": {"cpu": "200m"}, "limits": {"cpu": "200m", "memory": "10Mi"}}},
                c("init", serde_json::json!({"requests": {"cpu": "500m"}, "limits": {"cpu": "500m", "memory": "100Mi"}})),
            ],
            "containers": [c("a", serde_json::json!({"requests": {"cpu": "100m"}, "limits": {"cpu": "100m", "memory": "20Mi"}}))],
        }));
        assert_eq!(milli(pod_requests(&p)["cpu"]), 700);
        // memory limits: regular+sidecar = 30Mi; init peak = 100Mi+10Mi.
        assert_eq!(value(pod_limits(&p)["memory"]), 110 << 20);
        let rc = resource_config_for_pod(&p);
        assert_eq!(rc.cpu_shares, Some(milli_cpu_to_shares(700)));
        assert_eq!(rc.cpu_quota, Some(70_000));
        assert_eq!(rc.memory, Some(110 << 20));
        // Without the sidecar, a bigger init container sets the peak alone.
        let p = pod(serde_json::json!({
            "initContainers": [c("init", serde_json::json!({"requests": {"cpu": "2"}}))],
            "containers": [c("a", serde_json::json!({"requests": {"cpu": "100m"}, "limits": {"cpu": "1"}}))],
        }));
        let rc = resource_config_for_pod(&p);
        assert_eq!(rc.cpu_shares, Some(2048));
        // The init container has no cpu limit: no pod quota.
        assert_eq!(rc.cpu_quota, None);
    }

    #[test]
    fn hugepages() {
        let p = pod(serde_json::json!({"containers": [
            c("a", serde_json::json!({"limits": {"cpu": "1", "memory": "1Gi", "hugepages-2Mi": "4Mi"}})),
        ]}));
        let rc = resource_config_for_pod(&p);
        assert_eq!(rc.hugepage_limits, BTreeMap::from([(2 << 20, 4 << 20)]));
        assert_eq!(hugepage_size_name(2 << 20).as_deref(), Some("2MB"));
        assert_eq!(hugepage_size_name(1 << 30).as_deref(), Some("1GB"));
        assert_eq!(hugepage_size_name(64 << 10).as_deref(), Some("64KB"));
        assert_eq!(hugepage_size_name(1000), Some("1000B".into()));
        assert_eq!(hugepage_size_name(1536 * 1024 + 1), None);
    }

    #[test]
    fn machine_figures() {
        assert_eq!(
            parse_meminfo_total("MemTotal:       24684084 kB\nMemFree: 1 kB\n"),
            Some(24_684_084 * 1024)
        );
        assert_eq!(parse_meminfo_total("MemFree: 1 kB\n"), None);
        assert_eq!(count_cpu_list("0-1\n"), Some(2));
        assert_eq!(count_cpu_list("0-3,6,8-9"), Some(7));
        assert_eq!(count_cpu_list("x"), None);
        let m = MachineInfo::read();
        assert!(m.memory_capacity > 0 && m.num_cpus > 0 && m.pid_max > 0);
    }
}
