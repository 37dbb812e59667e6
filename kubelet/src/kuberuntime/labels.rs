//! The CRI labels and annotations the Go kubelet puts on sandboxes and
//! containers. Berth writes the same keys, so crictl users, log shippers and
//! other tools recognise Berth's pods, and so Berth can rebuild all of its
//! state from the runtime after a restart.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Container, Pod};

pub const POD_NAME: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const POD_UID: &str = "io.kubernetes.pod.uid";
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";

pub const CONTAINER_HASH: &str = "io.kubernetes.container.hash";
pub const CONTAINER_RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
pub const CONTAINER_TERMINATION_MESSAGE_PATH: &str =
    "io.kubernetes.container.terminationMessagePath";
pub const CONTAINER_TERMINATION_MESSAGE_POLICY: &str =
    "io.kubernetes.container.terminationMessagePolicy";
pub const POD_TERMINATION_GRACE_PERIOD: &str = "io.kubernetes.pod.terminationGracePeriod";
pub const CONTAINER_PORTS: &str = "io.kubernetes.container.ports";
/// The preStop handler as JSON, so a container can be stopped properly
/// when its pod's spec is gone (e.g. the manifest was removed while berth
/// was down), as the Go kubelet does.
pub const CONTAINER_PRE_STOP_HANDLER: &str = "io.kubernetes.container.preStopHandler";

/// Berth's own: the hash of the sandbox-level spec, so a change to
/// hostNetwork, hostname, DNS or host ports recreates the sandbox. The Go
/// kubelet compares a few fields by hand instead.
pub const SANDBOX_HASH: &str = "berth.dev/sandbox-hash";
/// Berth's own: which kind of container this is (init, sidecar or app), so
/// state rebuilt from the runtime knows without the pod spec.
pub const CONTAINER_TYPE: &str = "berth.dev/container-type";

/// Labels for a pod's sandbox: the pod's own labels plus the identity keys.
pub fn sandbox_labels(pod: &Pod) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = pod
        .metadata
        .labels
        .as_ref()
        .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    labels.insert(
        POD_NAME.into(),
        pod.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(
        POD_NAMESPACE.into(),
        pod.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
    );
    labels.insert(POD_UID.into(), pod.metadata.uid.clone().unwrap_or_default());
    labels
}

/// Annotations for a pod's sandbox: the pod's own annotations.
pub fn sandbox_annotations(pod: &Pod, sandbox_hash: &str) -> HashMap<String, String> {
    let mut ann: HashMap<String, String> = pod
        .metadata
        .annotations
        .as_ref()
        .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    ann.insert(SANDBOX_HASH.into(), sandbox_hash.into());
    ann
}

/// Labels for a container: only the identity keys, as the Go kubelet (the
/// pod's labels live on the sandbox).
pub fn container_labels(pod: &Pod, container: &Container) -> HashMap<String, String> {
    HashMap::from([
        (CONTAINER_NAME.into(), container.name.clone()),
        (
            POD_NAME.into(),
            pod.metadata.name.clone().unwrap_or_default(),
        ),
        (
            POD_NAMESPACE.into(),
            pod.metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
        ),
        (POD_UID.into(), pod.metadata.uid.clone().unwrap_or_default()),
    ])
}

use crate::container::runtime_pod::ContainerInfo;

impl ContainerInfo {
    pub fn parse(labels: &HashMap<String, String>, annotations: &HashMap<String, String>) -> Self {
        let get = |m: &HashMap<String, String>, k: &str| m.get(k).cloned().unwrap_or_default();
        ContainerInfo {
            pod_uid: get(labels, POD_UID),
            pod_name: get(labels, POD_NAME),
            pod_namespace: get(labels, POD_NAMESPACE),
            name: get(labels, CONTAINER_NAME),
            hash: get(annotations, CONTAINER_HASH),
            restart_count: annotations
                .get(CONTAINER_RESTART_COUNT)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            termination_message_path: get(annotations, CONTAINER_TERMINATION_MESSAGE_PATH),
            termination_message_policy: get(annotations, CONTAINER_TERMINATION_MESSAGE_POLICY),
            termination_grace_period: annotations
                .get(POD_TERMINATION_GRACE_PERIOD)
                .and_then(|v| v.parse().ok()),
            kind: get(annotations, CONTAINER_TYPE),
            pre_stop: get(annotations, CONTAINER_PRE_STOP_HANDLER),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-node1", "namespace": "prod", "uid": "u-1",
                         "labels": {"app": "web"}, "annotations": {"kubernetes.io/config.source": "file"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}
        }))
        .unwrap()
    }

    #[test]
    fn sandbox_keys_match_the_go_kubelet() {
        let l = sandbox_labels(&pod());
        assert_eq!(l[POD_NAME], "web-node1");
        assert_eq!(l[POD_NAMESPACE], "prod");
        assert_eq!(l[POD_UID], "u-1");
        assert_eq!(l["app"], "web");
        let a = sandbox_annotations(&pod(), "h1");
        assert_eq!(a["kubernetes.io/config.source"], "file");
        assert_eq!(a[SANDBOX_HASH], "h1");
    }

    #[test]
    fn container_info_round_trip() {
        let p = pod();
        let c = &p.spec.as_ref().unwrap().containers[0];
        let labels = container_labels(&p, c);
        let ann = HashMap::from([
            (CONTAINER_HASH.to_string(), "abc".to_string()),
            (CONTAINER_RESTART_COUNT.to_string(), "3".to_string()),
            (POD_TERMINATION_GRACE_PERIOD.to_string(), "30".to_string()),
        ]);
        let info = ContainerInfo::parse(&labels, &ann);
        assert_eq!(info.name, "c");
        assert_eq!(info.pod_uid, "u-1");
        assert_eq!(info.hash, "abc");
        assert_eq!(info.restart_count, 3);
        assert_eq!(info.termination_grace_period, Some(30));
        // Garbage in annotations never panics.
        let info = ContainerInfo::parse(
            &labels,
            &HashMap::from([(CONTAINER_RESTART_COUNT.to_string(), "x".into())]),
        );
        assert_eq!(info.restart_count, 0);
    }
}
