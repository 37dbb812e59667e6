//! The apiserver's defaulting of a Pod (Go's `SetDefaults_Pod`, `SetDefaults_Container` and
//! friends), limited to the fields the kubelet relies on. A pod from a file gets it from the
//! static pod source; a pod from the apiserver already has it.

use k8s_openapi::api::core::v1::{Container, EmptyDirVolumeSource, Pod};

use crate::image::ImageRef;
use crate::quantity::Quantity;
use crate::validation::volume_source_count;

/// The namespace of a pod that names none.
pub const DEFAULT_NAMESPACE: &str = "default";
/// `spec.restartPolicy` when unset.
pub const DEFAULT_RESTART_POLICY: &str = "Always";
/// `spec.terminationGracePeriodSeconds` when unset.
pub const DEFAULT_TERMINATION_GRACE_PERIOD: i64 = 30;
/// `spec.dnsPolicy` when unset.
pub const DEFAULT_DNS_POLICY: &str = "ClusterFirst";
/// A container's `terminationMessagePath` when unset.
pub const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// A container's `terminationMessagePolicy` when unset.
pub const DEFAULT_TERMINATION_MESSAGE_POLICY: &str = "File";
/// A container port's `protocol` when unset.
pub const DEFAULT_PROTOCOL: &str = "TCP";

/// The `imagePullPolicy` the API gives a container that sets none: `Always` for the `latest`
/// tag, written or implied, `IfNotPresent` otherwise. A digest-only reference has no tag and
/// gets `IfNotPresent`.
pub fn default_image_pull_policy(image: &ImageRef) -> &'static str {
    if image.is_latest() {
        "Always"
    } else {
        "IfNotPresent"
    }
}

/// Fills the fields the apiserver would default and the kubelet relies on.
pub fn apply_api_defaults(pod: &mut Pod) {
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.restart_policy
        .get_or_insert_with(|| DEFAULT_RESTART_POLICY.into());
    spec.termination_grace_period_seconds
        .get_or_insert(DEFAULT_TERMINATION_GRACE_PERIOD);
    spec.dns_policy
        .get_or_insert_with(|| DEFAULT_DNS_POLICY.into());
    if let Some(init) = spec.init_containers.as_mut() {
        init.iter_mut().for_each(default_container);
    }
    spec.containers.iter_mut().for_each(default_container);
    // A volume without a source is an emptyDir, as in Go's SetDefaults_Volume.
    for v in spec.volumes.iter_mut().flatten() {
        if volume_source_count(v) == 0 {
            v.empty_dir = Some(EmptyDirVolumeSource::default());
        }
    }
}

fn default_container(c: &mut Container) {
    if c.image_pull_policy.is_none() {
        // An invalid image is left without a policy for validation to report.
        c.image_pull_policy = c
            .image
            .as_deref()
            .and_then(|image| ImageRef::parse(image).ok())
            .map(|r| default_image_pull_policy(&r).into());
    }
    c.termination_message_path
        .get_or_insert_with(|| DEFAULT_TERMINATION_MESSAGE_PATH.into());
    c.termination_message_policy
        .get_or_insert_with(|| DEFAULT_TERMINATION_MESSAGE_POLICY.into());
    for p in c.ports.iter_mut().flatten() {
        p.protocol.get_or_insert_with(|| DEFAULT_PROTOCOL.into());
    }
    // Requests default to limits for each resource that has only a limit.
    if let Some(resources) = c.resources.as_mut()
        && let Some(limits) = resources.limits.as_ref()
    {
        let requests = resources.requests.get_or_insert_with(Default::default);
        // An unparsable limit is not copied, so it is reported once.
        for (name, limit) in limits.iter().filter(|(_, q)| Quantity::parse(&q.0).is_ok()) {
            requests
                .entry(name.clone())
                .or_insert_with(|| limit.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaulted(v: serde_json::Value) -> Pod {
        let mut pod: Pod = serde_json::from_value(v).unwrap();
        apply_api_defaults(&mut pod);
        pod
    }

    #[test]
    fn pod_and_container_defaults() {
        let pod = defaulted(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {
                "initContainers": [{"name": "i", "image": "busybox:1.36"}],
                "containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 80}]}],
                "volumes": [{"name": "scratch"}, {"name": "h", "hostPath": {"path": "/x"}}]}}));
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        assert_eq!(spec.dns_policy.as_deref(), Some("ClusterFirst"));
        let init = &spec.init_containers.as_ref().unwrap()[0];
        assert_eq!(init.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(init.termination_message_policy.as_deref(), Some("File"));
        let c = &spec.containers[0];
        assert_eq!(c.image_pull_policy.as_deref(), Some("Always"));
        assert_eq!(
            c.termination_message_path.as_deref(),
            Some("/dev/termination-log")
        );
        assert_eq!(
            c.ports.as_ref().unwrap()[0].protocol.as_deref(),
            Some("TCP")
        );
        let volumes = spec.volumes.as_ref().unwrap();
        assert!(volumes[0].empty_dir.is_some());
        assert!(volumes[1].empty_dir.is_none());
    }

    #[test]
    fn set_fields_are_kept() {
        let pod = defaulted(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 0,
                "dnsPolicy": "Default",
                "containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "Never",
                                "ports": [{"containerPort": 53, "protocol": "UDP"}]}]}}));
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.termination_grace_period_seconds, Some(0));
        assert_eq!(spec.dns_policy.as_deref(), Some("Default"));
        let c = &spec.containers[0];
        assert_eq!(c.image_pull_policy.as_deref(), Some("Never"));
        assert_eq!(
            c.ports.as_ref().unwrap()[0].protocol.as_deref(),
            Some("UDP")
        );
    }

    #[test]
    fn pull_policy_follows_the_tag_and_an_invalid_image_gets_none() {
        let digest = format!("sha256:{}", "0".repeat(64));
        for (image, want) in [
            ("nginx".to_string(), Some("Always")),
            ("nginx:latest".to_string(), Some("Always")),
            ("nginx:1.25".to_string(), Some("IfNotPresent")),
            (format!("nginx@{digest}"), Some("IfNotPresent")),
            (format!("nginx:latest@{digest}"), Some("Always")),
            ("Not Valid".to_string(), None),
        ] {
            let pod = defaulted(serde_json::json!({
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "image": image}]}}));
            let c = &pod.spec.as_ref().unwrap().containers[0];
            assert_eq!(c.image_pull_policy.as_deref(), want, "{image}");
        }
    }

    #[test]
    fn requests_default_to_valid_limits_only() {
        let pod = defaulted(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "nginx",
                "resources": {"limits": {"cpu": "500m", "memory": "12XB"},
                              "requests": {"ephemeral-storage": "1Gi"}}}]}}));
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let requests = c.resources.as_ref().unwrap().requests.as_ref().unwrap();
        assert_eq!(requests["cpu"].0, "500m");
        assert_eq!(requests["ephemeral-storage"].0, "1Gi");
        assert!(!requests.contains_key("memory"));
    }
}
