//! The CreateContainer request for one container, built as the Go kubelet's
//! `generateContainerConfig` builds it.

use std::collections::HashMap;

use cri_client::proto as pb;
use k8s_openapi::api::core::v1::{Container, Pod};

use super::actions::ContainerKind;
use super::hash::container_hash;
use super::labels;
use super::sandbox::namespace_options;
use crate::envvars;

/// Paths hidden from unprivileged containers; the Go kubelet's defaults
/// (containerd applies none of its own when the kubelet sends an empty list).
const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Everything the container config needs that isn't in the spec.
pub struct ContainerInputs {
    pub kind: ContainerKind,
    pub restart_count: u32,
    /// The image as resolved by the pull (an image ID or digest reference).
    pub image_ref: String,
    pub env: Vec<(String, String)>,
    pub mounts: Vec<pb::Mount>,
    pub resources: Option<pb::LinuxContainerResources>,
}

/// `<container>/<restartCount>.log`, relative to the sandbox's log directory.
pub fn log_path(name: &str, restart_count: u32) -> String {
    format!("{name}/{restart_count}.log")
}

pub fn container_annotations(
    pod: &Pod,
    c: &Container,
    inputs: &ContainerInputs,
) -> HashMap<String, String> {
    let spec = pod.spec.clone().unwrap_or_default();
    let mut a = HashMap::from([
        (labels::CONTAINER_HASH.to_string(), container_hash(c)),
        (
            labels::CONTAINER_RESTART_COUNT.to_string(),
            inputs.restart_count.to_string(),
        ),
        (
            labels::CONTAINER_TERMINATION_MESSAGE_PATH.to_string(),
            c.termination_message_path
                .clone()
                .unwrap_or_else(|| "/dev/termination-log".into()),
        ),
        (
            labels::CONTAINER_TERMINATION_MESSAGE_POLICY.to_string(),
            c.termination_message_policy
                .clone()
                .unwrap_or_else(|| "File".into()),
        ),
        (
            labels::POD_TERMINATION_GRACE_PERIOD.to_string(),
            spec.termination_grace_period_seconds
                .unwrap_or(30)
                .to_string(),
        ),
        (
            labels::CONTAINER_TYPE.to_string(),
            inputs.kind.as_str().to_string(),
        ),
    ]);
    if let Some(pre_stop) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref())
        && let Ok(json) = serde_json::to_string(pre_stop)
    {
        a.insert(labels::CONTAINER_PRE_STOP_HANDLER.to_string(), json);
    }
    if let Some(ports) = c.ports.as_ref().filter(|p| !p.is_empty())
        && let Ok(json) = serde_json::to_string(ports)
    {
        a.insert(labels::CONTAINER_PORTS.to_string(), json);
    }
    a
}

fn security_context(pod: &Pod, c: &Container) -> pb::LinuxContainerSecurityContext {
    let psc = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let sc = c.security_context.clone().unwrap_or_default();
    let privileged = sc.privileged.unwrap_or(false);
    let caps = sc.capabilities.clone().unwrap_or_default();
    let run_as_user = sc.run_as_user.or(psc.run_as_user);
    let run_as_group = sc.run_as_group.or(psc.run_as_group);
    let mut ns = namespace_options(pod);
    // Containers join the sandbox's network and IPC; PID follows the pod.
    ns.target_id = String::new();
    pb::LinuxContainerSecurityContext {
        capabilities: Some(pb::Capability {
            add_capabilities: caps.add.unwrap_or_default(),
            drop_capabilities: caps.drop.unwrap_or_default(),
            ..Default::default()
        }),
        privileged,
        namespace_options: Some(ns),
        run_as_user: run_as_user.map(|value| pb::Int64Value { value }),
        run_as_group: run_as_group.map(|value| pb::Int64Value { value }),
        readonly_rootfs: sc.read_only_root_filesystem.unwrap_or(false),
        supplemental_groups: psc.supplemental_groups.clone().unwrap_or_default(),
        no_new_privs: sc.allow_privilege_escalation == Some(false),
        masked_paths: if privileged {
            Vec::new()
        } else {
            MASKED_PATHS.iter().map(|s| s.to_string()).collect()
        },
        readonly_paths: if privileged {
            Vec::new()
        } else {
            READONLY_PATHS.iter().map(|s| s.to_string()).collect()
        },
        ..Default::default()
    }
}

pub fn container_config(pod: &Pod, c: &Container, inputs: ContainerInputs) -> pb::ContainerConfig {
    let vars: HashMap<String, String> = inputs.env.iter().cloned().collect();
    let expand = |v: &Option<Vec<String>>| -> Vec<String> {
        v.iter()
            .flatten()
            .map(|s| envvars::expand(s, &vars))
            .collect()
    };
    let annotations = container_annotations(pod, c, &inputs);
    pb::ContainerConfig {
        metadata: Some(pb::ContainerMetadata {
            name: c.name.clone(),
            attempt: inputs.restart_count,
        }),
        image: Some(pb::ImageSpec {
            image: inputs.image_ref.clone(),
            user_specified_image: c.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command: expand(&c.command),
        args: expand(&c.args),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs: inputs
            .env
            .iter()
            .map(|(key, value)| pb::KeyValue {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        mounts: inputs.mounts,
        labels: labels::container_labels(pod, c),
        annotations,
        log_path: log_path(&c.name, inputs.restart_count),
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        linux: Some(pb::LinuxContainerConfig {
            resources: inputs.resources,
            security_context: Some(security_context(pod, c)),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-n1", "namespace": "prod", "uid": "u1"},
            "spec": {"terminationGracePeriodSeconds": 5, "containers": [{
                "name": "app", "image": "busybox",
                "command": ["sh", "-c"], "args": ["echo $(GREETING) $$(HOME)"],
                "workingDir": "/tmp", "tty": true,
                "securityContext": {"runAsUser": 1000, "readOnlyRootFilesystem": true,
                                    "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}}
            }]}
        }))
        .unwrap()
    }

    #[test]
    fn container_like_the_go_kubelet() {
        let p = pod();
        let c = &p.spec.as_ref().unwrap().containers[0];
        let cfg = container_config(
            &p,
            c,
            ContainerInputs {
                kind: ContainerKind::App,
                restart_count: 3,
                image_ref: "sha256:abc".into(),
                env: vec![("GREETING".into(), "hi".into())],
                mounts: vec![],
                resources: None,
            },
        );
        assert_eq!(cfg.metadata.as_ref().unwrap().attempt, 3);
        assert_eq!(cfg.log_path, "app/3.log");
        assert_eq!(cfg.args, ["echo hi $(HOME)"]);
        assert_eq!(cfg.command, ["sh", "-c"]);
        assert_eq!(cfg.working_dir, "/tmp");
        assert!(cfg.tty);
        let img = cfg.image.as_ref().unwrap();
        assert_eq!(
            (img.image.as_str(), img.user_specified_image.as_str()),
            ("sha256:abc", "busybox")
        );
        assert_eq!(cfg.labels[labels::CONTAINER_NAME], "app");
        assert_eq!(cfg.labels[labels::POD_UID], "u1");
        assert_eq!(cfg.annotations[labels::CONTAINER_RESTART_COUNT], "3");
        assert_eq!(cfg.annotations[labels::CONTAINER_HASH], container_hash(c));
        assert_eq!(cfg.annotations[labels::POD_TERMINATION_GRACE_PERIOD], "5");
        assert_eq!(
            cfg.annotations[labels::CONTAINER_TERMINATION_MESSAGE_PATH],
            "/dev/termination-log"
        );
        let sc = cfg.linux.unwrap().security_context.unwrap();
        assert_eq!(sc.run_as_user.unwrap().value, 1000);
        assert!(sc.readonly_rootfs && !sc.privileged);
        assert_eq!(
            sc.capabilities.as_ref().unwrap().add_capabilities,
            ["NET_ADMIN"]
        );
        assert_eq!(sc.capabilities.as_ref().unwrap().drop_capabilities, ["ALL"]);
        assert!(sc.masked_paths.contains(&"/proc/kcore".to_string()));
    }
}
