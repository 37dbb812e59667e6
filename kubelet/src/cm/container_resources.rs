//! The CRI `LinuxContainerResources` of a container, as the Go kubelet's
//! `generateLinuxContainerResources` / `calculateLinuxResources`
//! (kuberuntime_container_linux.go).

use cri_client::proto as pb;
use k8s_openapi::api::core::v1::{Container, Pod};

use super::helpers::{
    QUOTA_PERIOD, container_limits, container_requests, hugepage_limits, hugepage_size_name, milli,
    milli_cpu_to_quota, milli_cpu_to_shares, value,
};
use super::qos::container_oom_score_adjust;

/// What the host offers that the resources depend on.
#[derive(Clone, Debug, Default)]
pub struct HostFacts {
    pub memory_capacity: i64,
    pub cgroup_v2: bool,
    /// memsw on v1, memory.swap.max on v2.
    pub swap_controller: bool,
    /// Hugepage sizes ("2MB") when the hugetlb controller is there.
    pub hugepage_sizes: Vec<String>,
}

/// The container's resources.
pub fn linux_container_resources(
    pod: &Pod,
    c: &Container,
    host: &HostFacts,
) -> pb::LinuxContainerResources {
    let requests = container_requests(c);
    let limits = container_limits(c);
    // A missing cpu request is the limit (apiserver defaulting, which
    // calculateLinuxResources repeats).
    let cpu_request = requests.get("cpu").map_or(0, |v| milli(*v));
    let cpu_limit = limits.get("cpu").map_or(0, |v| milli(*v));
    let memory_limit = limits.get("memory").map_or(0, |v| value(*v));

    let mut r = pb::LinuxContainerResources {
        cpu_shares: milli_cpu_to_shares(cpu_request) as i64,
        memory_limit_in_bytes: memory_limit.max(0),
        // The kubelet's cpuCFSQuota default: always a period, quota 0 = none.
        cpu_period: QUOTA_PERIOD as i64,
        cpu_quota: milli_cpu_to_quota(cpu_limit, QUOTA_PERIOD as i64),
        oom_score_adj: container_oom_score_adjust(pod, c, host.memory_capacity),
        ..Default::default()
    };
    if host.cgroup_v2 {
        // singleProcessOOMKill defaults to false on v2: the kernel kills the
        // whole container on OOM.
        r.unified
            .insert("memory.oom.group".to_string(), "1".to_string());
    }
    // Every host page size gets a limit, 0 unless the container asks, so a
    // container can't take hugepages it didn't request.
    let wanted = hugepage_limits(&limits);
    for size in &host.hugepage_sizes {
        let limit = wanted
            .iter()
            .find(|(bytes, _)| hugepage_size_name(**bytes).as_deref() == Some(size.as_str()))
            .map_or(0, |(_, l)| u64::try_from(*l).unwrap_or(0));
        r.hugepage_limits.push(pb::HugepageLimit {
            page_size: size.clone(),
            limit,
        });
    }
    // NoSwap, the Go kubelet's default swap behavior.
    if host.swap_controller {
        if host.cgroup_v2 {
            r.unified
                .insert("memory.swap.max".to_string(), "0".to_string());
        } else {
            r.memory_swap_limit_in_bytes = r.memory_limit_in_bytes;
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(containers: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "p", "uid": "u"},
            "spec": {"containers": containers}}))
        .unwrap()
    }

    fn host(v2: bool) -> HostFacts {
        HostFacts {
            memory_capacity: 8 << 30,
            cgroup_v2: v2,
            swap_controller: true,
            hugepage_sizes: vec!["1GB".into(), "2MB".into()],
        }
    }

    #[test]
    fn guaranteed_container() {
        let p = pod(serde_json::json!([{"name": "a", "image": "i",
            "resources": {"limits": {"cpu": "500m", "memory": "64Mi", "hugepages-2Mi": "4Mi"}}}]));
        let r =
            linux_container_resources(&p, &p.spec.as_ref().unwrap().containers[0], &host(false));
        assert_eq!(r.cpu_shares, 512);
        assert_eq!(r.cpu_quota, 50_000);
        assert_eq!(r.cpu_period, 100_000);
        assert_eq!(r.memory_limit_in_bytes, 64 << 20);
        assert_eq!(r.memory_swap_limit_in_bytes, 64 << 20);
        assert_eq!(r.oom_score_adj, -997);
        assert!(r.unified.is_empty());
        let hp: Vec<(String, u64)> = r
            .hugepage_limits
            .iter()
            .map(|h| (h.page_size.clone(), h.limit))
            .collect();
        assert_eq!(hp, vec![("1GB".into(), 0), ("2MB".into(), 4 << 20)]);
    }

    #[test]
    fn besteffort_container_on_v2() {
        let p = pod(serde_json::json!([{"name": "a", "image": "i"}]));
        let r = linux_container_resources(&p, &p.spec.as_ref().unwrap().containers[0], &host(true));
        assert_eq!(r.cpu_shares, 2);
        assert_eq!(r.cpu_quota, 0);
        assert_eq!(r.cpu_period, 100_000);
        assert_eq!(r.memory_limit_in_bytes, 0);
        assert_eq!(r.oom_score_adj, 1000);
        assert_eq!(
            r.unified.get("memory.oom.group").map(String::as_str),
            Some("1")
        );
        assert_eq!(
            r.unified.get("memory.swap.max").map(String::as_str),
            Some("0")
        );
    }

    #[test]
    fn burstable_container() {
        let p = pod(serde_json::json!([{"name": "a", "image": "i",
            "resources": {"requests": {"cpu": "100m", "memory": "1Gi"}, "limits": {"cpu": "1"}}}]));
        let r = linux_container_resources(
            &p,
            &p.spec.as_ref().unwrap().containers[0],
            &HostFacts {
                memory_capacity: 8 << 30,
                ..Default::default()
            },
        );
        assert_eq!(r.cpu_shares, 102);
        assert_eq!(r.cpu_quota, 100_000);
        assert_eq!(r.memory_limit_in_bytes, 0);
        assert_eq!(r.memory_swap_limit_in_bytes, 0);
        assert_eq!(r.oom_score_adj, 875);
        assert!(r.hugepage_limits.is_empty());
    }
}
