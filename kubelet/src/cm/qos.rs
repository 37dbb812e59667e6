//! Pod QoS classes, computed as the Go kubelet's `pkg/apis/core/v1/helper/qos`.
//!
//! SKELETON: still compares quantity strings literally; the cgroups work
//! (issue 5) parses them with `static_pods::Quantity`.

use k8s_openapi::api::core::v1::{Container, Pod};

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

/// The pod's QoS class, as the Go kubelet computes it.
pub fn qos_class(pod: &Pod) -> QosClass {
    let Some(spec) = pod.spec.as_ref() else {
        return QosClass::BestEffort;
    };
    let all: Vec<&Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &all {
        let r = c.resources.clone().unwrap_or_default();
        let requests = r.requests.unwrap_or_default();
        let limits = r.limits.unwrap_or_default();
        if !requests.is_empty() || !limits.is_empty() {
            any = true;
        }
        for res in ["cpu", "memory"] {
            let l = limits.get(res);
            let q = requests.get(res).or(l);
            if l.is_none() || q != l {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => QosClass::BestEffort,
        (true, true) => QosClass::Guaranteed,
        (true, false) => QosClass::Burstable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}, "spec": spec}))
            .unwrap()
    }

    #[test]
    fn qos_classes() {
        let g = pod(
            serde_json::json!({"containers": [{"name": "a", "image": "i",
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}),
        );
        let b = pod(
            serde_json::json!({"containers": [{"name": "a", "image": "i",
            "resources": {"requests": {"cpu": "100m"}}}]}),
        );
        assert_eq!(qos_class(&g), QosClass::Guaranteed);
        assert_eq!(qos_class(&b), QosClass::Burstable);
    }
}
