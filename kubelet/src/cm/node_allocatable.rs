//! Node allocatable (the Go kubelet's `node_container_manager_linux.go`): the
//! `kubepods` cgroup is limited to capacity minus kubeReserved and
//! systemReserved when enforceNodeAllocatable has "pods".

use std::collections::BTreeMap;

use api::Quantity;

use super::CmError;
use super::helpers::{MachineInfo, ResourceConfig, milli, milli_cpu_to_shares, value};

/// The enforcement key for the pods' cgroup.
pub const ENFORCE_PODS: &str = "pods";

/// Parses a reserved map ({"cpu": "100m", "memory": "256Mi", "pid": "100"}).
fn parse_reserved(
    field: &str,
    map: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, i128>, CmError> {
    map.iter()
        .map(|(k, v)| {
            let q = Quantity::parse(v).map_err(|e| CmError::Config {
                field: format!("{field}[{k}]"),
                reason: e.to_string(),
            })?;
            Ok((k.clone(), q.as_nanos()))
        })
        .collect()
}

/// The `kubepods` cgroup's values (`getCgroupConfig` of the node allocatable
/// or, when not enforced, of the capacity): cpu shares, memory limit, pids
/// limit. Eviction thresholds are not subtracted, as in the Go kubelet.
pub fn kubepods_config(
    machine: &MachineInfo,
    kube_reserved: &BTreeMap<String, String>,
    system_reserved: &BTreeMap<String, String>,
    enforce: &[String],
) -> Result<ResourceConfig, CmError> {
    let kube = parse_reserved("kubeReserved", kube_reserved)?;
    let system = parse_reserved("systemReserved", system_reserved)?;
    let enforced = enforce.iter().any(|e| e == ENFORCE_PODS);
    let capacity: [(&str, i128); 3] = [
        ("cpu", i128::from(machine.num_cpus) * 1_000_000_000),
        (
            "memory",
            i128::from(machine.memory_capacity) * 1_000_000_000,
        ),
        ("pid", i128::from(machine.pid_max) * 1_000_000_000),
    ];
    let mut alloc: BTreeMap<&str, i128> = BTreeMap::new();
    for (name, cap) in capacity {
        let mut v = cap;
        if enforced {
            v -= kube.get(name).copied().unwrap_or(0);
            v -= system.get(name).copied().unwrap_or(0);
        }
        // Negative allocatable makes no sense; the Go kubelet clamps to 0.
        alloc.insert(name, v.max(0));
    }
    Ok(ResourceConfig {
        cpu_shares: Some(milli_cpu_to_shares(milli(alloc["cpu"]))),
        memory: Some(value(alloc["memory"])),
        pids_limit: Some(value(alloc["pid"])),
        ..Default::default()
    })
}

/// The Go kubelet's default `evictionHard` thresholds that reserve node
/// resources: `memory.available<100Mi` and `nodefs.available<10%`.
pub fn default_eviction_hard() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("memory.available".to_string(), "100Mi".to_string()),
        ("nodefs.available".to_string(), "10%".to_string()),
    ])
}

/// The resource a hard eviction signal holds back from allocatable.
fn eviction_signal_resource(signal: &str) -> Option<&'static str> {
    match signal {
        "memory.available" => Some("memory"),
        "nodefs.available" => Some("ephemeral-storage"),
        _ => None,
    }
}

/// What a threshold value reserves of `capacity` (nanos): a quantity, or a
/// percentage of the capacity computed as Go does (a float32 fraction,
/// truncated to whole units).
fn threshold_nanos(field: &str, value: &str, capacity: i128) -> Result<i128, CmError> {
    let bad = |reason: String| CmError::Config {
        field: field.to_string(),
        reason,
    };
    if let Some(pct) = value.strip_suffix('%') {
        let p: f32 = pct
            .trim()
            .parse()
            .map_err(|_| bad(format!("{value:?} is not a percentage")))?;
        if !(0.0..=100.0).contains(&p) {
            return Err(bad(format!("{value:?} is not between 0% and 100%")));
        }
        let fraction = f64::from(p / 100.0);
        let units = (capacity / 1_000_000_000) as f64 * fraction;
        return Ok(i128::from(units as i64) * 1_000_000_000);
    }
    let q = Quantity::parse(value).map_err(|e| bad(e.to_string()))?;
    Ok(q.as_nanos())
}

/// The part of the capacity (nanos, by resource) that allocatable leaves out,
/// as Go's `GetNodeAllocatableReservation`: kubeReserved plus systemReserved
/// plus the hard eviction thresholds of `memory.available` and
/// `nodefs.available`. Unlike [`kubepods_config`], it does not depend on
/// enforceNodeAllocatable.
pub fn node_allocatable_reservation(
    capacity: &BTreeMap<String, i128>,
    kube_reserved: &BTreeMap<String, String>,
    system_reserved: &BTreeMap<String, String>,
    eviction_hard: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, i128>, CmError> {
    let mut out = parse_reserved("kubeReserved", kube_reserved)?;
    for (k, v) in parse_reserved("systemReserved", system_reserved)? {
        *out.entry(k).or_insert(0) += v;
    }
    for (signal, value) in eviction_hard {
        let Some(resource) = eviction_signal_resource(signal) else {
            continue;
        };
        let cap = capacity.get(resource).copied().unwrap_or(0);
        let reserved = threshold_nanos(&format!("evictionHard[{signal}]"), value, cap)?;
        *out.entry(resource.to_string()).or_insert(0) += reserved;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MACHINE: MachineInfo = MachineInfo {
        memory_capacity: 8 << 30,
        num_cpus: 2,
        pid_max: 32768,
    };

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn allocatable_is_capacity_minus_reserved() {
        let rc = kubepods_config(
            &MACHINE,
            &map(&[("cpu", "100m"), ("memory", "256Mi"), ("pid", "1000")]),
            &map(&[("cpu", "0.4"), ("memory", "1Gi")]),
            &["pods".into()],
        )
        .unwrap();
        assert_eq!(rc.cpu_shares, Some(milli_cpu_to_shares(1500)));
        assert_eq!(rc.cpu_shares, Some(1536));
        assert_eq!(rc.memory, Some((8 << 30) - (256 << 20) - (1 << 30)));
        assert_eq!(rc.pids_limit, Some(31768));
        assert_eq!(rc.cpu_quota, None);
    }

    #[test]
    fn not_enforced_means_capacity() {
        let rc = kubepods_config(&MACHINE, &map(&[("memory", "1Gi")]), &map(&[]), &[]).unwrap();
        assert_eq!(rc.cpu_shares, Some(2048));
        assert_eq!(rc.memory, Some(8 << 30));
        assert_eq!(rc.pids_limit, Some(32768));
    }

    #[test]
    fn over_reserving_clamps_to_zero_and_bad_quantities_are_named() {
        let rc =
            kubepods_config(&MACHINE, &map(&[("cpu", "3")]), &map(&[]), &["pods".into()]).unwrap();
        assert_eq!(rc.cpu_shares, Some(2));
        let err = kubepods_config(&MACHINE, &map(&[("memory", "lots")]), &map(&[]), &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("kubeReserved[memory]: "), "{err}");
    }

    #[test]
    fn allocatable_reservation_adds_reserved_and_hard_eviction() {
        let capacity = BTreeMap::from([
            ("memory".to_string(), i128::from(8i64 << 30) * 1_000_000_000),
            (
                "ephemeral-storage".to_string(),
                1_000_000_i128 * 1_000_000_000,
            ),
        ]);
        let r = node_allocatable_reservation(
            &capacity,
            &map(&[("cpu", "100m"), ("memory", "256Mi")]),
            &map(&[("memory", "1Gi")]),
            &default_eviction_hard(),
        )
        .unwrap();
        assert_eq!(value(r["memory"]), (256 << 20) + (1 << 30) + (100 << 20));
        assert_eq!(milli(r["cpu"]), 100);
        // 10% as Go's float32 fraction, truncated.
        assert_eq!(value(r["ephemeral-storage"]), 100_000);
        let e = node_allocatable_reservation(
            &capacity,
            &map(&[]),
            &map(&[]),
            &map(&[("memory.available", "lots")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("evictionHard[memory.available]"), "{e}");
    }
}
