//! Pod QoS classes, computed as the Go kubelet's
//! `pkg/apis/core/v1/helper/qos` (`GetPodQOS`), and the OOM score of each
//! container as `pkg/kubelet/qos/policy.go` (`GetContainerOOMScoreAdjust`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::helpers::{self, container_requests, value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Guaranteed => "Guaranteed",
            Self::Burstable => "Burstable",
            Self::BestEffort => "BestEffort",
        }
    }
}

/// Only cpu and memory decide the QoS class.
const QOS_RESOURCES: [&str; 2] = ["cpu", "memory"];

/// The pod's QoS class, as the Go kubelet computes it: quantities compared
/// by value ("1" == "1000m"), requests defaulted from limits as the apiserver
/// does, init containers counted like the others.
pub fn qos_class(pod: &Pod) -> QosClass {
    let Some(spec) = pod.spec.as_ref() else {
        return QosClass::BestEffort;
    };
    let mut requests: BTreeMap<&str, i128> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i128> = BTreeMap::new();
    let mut guaranteed = true;
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        let reqs = container_requests(c);
        let lims = helpers::container_limits(c);
        for name in QOS_RESOURCES {
            if let Some(q) = reqs.get(name).filter(|q| **q > 0) {
                *requests.entry(name).or_insert(0) += q;
            }
        }
        let mut found = 0;
        for name in QOS_RESOURCES {
            if let Some(q) = lims.get(name).filter(|q| **q > 0) {
                *limits.entry(name).or_insert(0) += q;
                found += 1;
            }
        }
        if found < QOS_RESOURCES.len() {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return QosClass::BestEffort;
    }
    if guaranteed
        && requests.iter().all(|(k, r)| limits.get(k) == Some(r))
        && requests.len() == limits.len()
    {
        return QosClass::Guaranteed;
    }
    QosClass::Burstable
}

const GUARANTEED_OOM_SCORE_ADJ: i64 = -997;
const BESTEFFORT_OOM_SCORE_ADJ: i64 = 1000;

/// A static pod with priorityClassName system-node-critical (every static
/// pod is critical to the Go kubelet; node-critical ones get -997).
fn is_node_critical(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.priority_class_name.as_deref())
        == Some("system-node-critical")
}

fn memory_request(c: &Container) -> i64 {
    container_requests(c).get("memory").map_or(0, |v| value(*v))
}

/// The `oom_score_adj` for a container of the pod, as
/// `GetContainerOOMScoreAdjust`: Guaranteed and node-critical -997,
/// BestEffort 1000, Burstable `1000 - 1000*request/capacity` kept in
/// [3, 999]; a sidecar never scores above the lowest-requesting regular
/// container.
pub fn container_oom_score_adjust(pod: &Pod, c: &Container, memory_capacity: i64) -> i64 {
    if is_node_critical(pod) {
        return GUARANTEED_OOM_SCORE_ADJ;
    }
    match qos_class(pod) {
        QosClass::Guaranteed => return GUARANTEED_OOM_SCORE_ADJ,
        QosClass::BestEffort => return BESTEFFORT_OOM_SCORE_ADJ,
        QosClass::Burstable => {}
    }
    let capacity = i128::from(memory_capacity.max(1));
    let score = |request: i64| -> i64 {
        (1000 - (1000 * i128::from(request)) / capacity).clamp(-1000, 1000) as i64
    };
    let mut adj = score(memory_request(c));
    let spec = pod.spec.as_ref();
    let is_sidecar = helpers::is_restartable_init(c)
        && spec
            .and_then(|s| s.init_containers.as_ref())
            .is_some_and(|ics| ics.iter().any(|ic| ic.name == c.name));
    if is_sidecar
        && let Some(min) = spec.and_then(|s| s.containers.iter().map(memory_request).min())
    {
        adj = adj.min(score(min));
    }
    if adj < 1000 + GUARANTEED_OOM_SCORE_ADJ {
        return 1000 + GUARANTEED_OOM_SCORE_ADJ;
    }
    if adj == BESTEFFORT_OOM_SCORE_ADJ {
        return adj - 1;
    }
    adj
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}, "spec": spec}))
            .unwrap()
    }

    fn one(resources: serde_json::Value) -> Pod {
        pod(
            serde_json::json!({"containers": [{"name": "a", "image": "i", "resources": resources}]}),
        )
    }

    #[test]
    fn qos_classes() {
        let g = one(serde_json::json!({"limits": {"cpu": "1", "memory": "1Gi"}}));
        let b = one(serde_json::json!({"requests": {"cpu": "100m"}}));
        let e = one(serde_json::json!({}));
        assert_eq!(qos_class(&g), QosClass::Guaranteed);
        assert_eq!(qos_class(&b), QosClass::Burstable);
        assert_eq!(qos_class(&e), QosClass::BestEffort);
        assert_eq!(qos_class(&pod(serde_json::json!({}))), QosClass::BestEffort);
    }

    #[test]
    fn quantities_compare_by_value() {
        let g = one(serde_json::json!({
            "requests": {"cpu": "1", "memory": "1Gi"},
            "limits": {"cpu": "1000m", "memory": "1073741824"}}));
        assert_eq!(qos_class(&g), QosClass::Guaranteed);
        let b = one(serde_json::json!({
            "requests": {"cpu": "999m", "memory": "1Gi"},
            "limits": {"cpu": "1", "memory": "1Gi"}}));
        assert_eq!(qos_class(&b), QosClass::Burstable);
        // Zero requests and limits count as unset.
        let e = one(serde_json::json!({"requests": {"cpu": "0"}, "limits": {"memory": "0"}}));
        assert_eq!(qos_class(&e), QosClass::BestEffort);
    }

    #[test]
    fn every_container_decides() {
        // One container without a memory limit makes the pod Burstable.
        let b = pod(serde_json::json!({"containers": [
            {"name": "a", "image": "i", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
            {"name": "b", "image": "i", "resources": {"limits": {"cpu": "1"}}},
        ]}));
        assert_eq!(qos_class(&b), QosClass::Burstable);
        // An init container without limits too.
        let b = pod(serde_json::json!({
            "initContainers": [{"name": "i", "image": "i"}],
            "containers": [{"name": "a", "image": "i", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}],
        }));
        assert_eq!(qos_class(&b), QosClass::Burstable);
        // Other resources don't matter.
        let g = one(
            serde_json::json!({"limits": {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "1Gi"}}),
        );
        assert_eq!(qos_class(&g), QosClass::Guaranteed);
    }

    #[test]
    fn oom_score_adj() {
        let cap = 10 << 30;
        let g = one(serde_json::json!({"limits": {"cpu": "1", "memory": "1Gi"}}));
        let e = one(serde_json::json!({}));
        let c = |p: &Pod| p.spec.as_ref().unwrap().containers[0].clone();
        assert_eq!(container_oom_score_adjust(&g, &c(&g), cap), -997);
        assert_eq!(container_oom_score_adjust(&e, &c(&e), cap), 1000);
        // 1 GiB of 10 GiB → 1000 - 100.
        let b = one(serde_json::json!({"requests": {"memory": "1Gi"}}));
        assert_eq!(container_oom_score_adjust(&b, &c(&b), cap), 900);
        // No memory request → 999, not BestEffort's 1000.
        let b = one(serde_json::json!({"requests": {"cpu": "1"}}));
        assert_eq!(container_oom_score_adjust(&b, &c(&b), cap), 999);
        // Requesting all memory → 3, above Guaranteed.
        let b = one(serde_json::json!({"requests": {"memory": "10Gi"}}));
        assert_eq!(container_oom_score_adjust(&b, &c(&b), cap), 3);
        // system-node-critical → -997 whatever the class.
        let mut n = e.clone();
        n.spec.as_mut().unwrap().priority_class_name = Some("system-node-critical".into());
        assert_eq!(container_oom_score_adjust(&n, &c(&n), cap), -997);
    }

    #[test]
    fn sidecar_oom_score_follows_regular_containers() {
        let cap = 10 << 30;
        let p = pod(serde_json::json!({
            "initContainers": [{"name": "side", "image": "i", "restartPolicy": "Always",
                "resources": {"requests": {"memory": "100Mi"}}}],
            "containers": [
                {"name": "a", "image": "i", "resources": {"requests": {"memory": "2Gi"}}},
                {"name": "b", "image": "i", "resources": {"requests": {"memory": "1Gi"}}},
            ],
        }));
        let side = p.spec.as_ref().unwrap().init_containers.as_ref().unwrap()[0].clone();
        // Its own request gives 991; the smallest regular one (1Gi) gives 900.
        assert_eq!(container_oom_score_adjust(&p, &side, cap), 900);
    }
}
