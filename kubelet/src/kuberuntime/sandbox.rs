//! The RunPodSandbox request for a pod, built as the Go kubelet's
//! `generatePodSandboxConfig` builds it.

use std::path::Path;

use cri_client::proto as pb;
use k8s_openapi::api::core::v1::Pod;

use super::hash::sandbox_hash;
use super::labels;
use crate::pod_hostname;

/// `/var/log/pods/<namespace>_<name>_<uid>`, the kubelet's layout.
pub fn pod_log_dir(pod_logs_dir: &Path, pod: &Pod) -> std::path::PathBuf {
    let m = &pod.metadata;
    pod_logs_dir.join(format!(
        "{}_{}_{}",
        m.namespace.as_deref().unwrap_or("default"),
        m.name.as_deref().unwrap_or_default(),
        m.uid.as_deref().unwrap_or_default()
    ))
}

pub fn protocol(p: Option<&str>) -> i32 {
    match p {
        Some("UDP") => pb::Protocol::Udp as i32,
        Some("SCTP") => pb::Protocol::Sctp as i32,
        _ => pb::Protocol::Tcp as i32,
    }
}

/// Namespace modes for the pod: host namespaces where asked; the PID
/// namespace is per container unless shareProcessNamespace.
pub fn namespace_options(pod: &Pod) -> pb::NamespaceOption {
    let spec = pod.spec.clone().unwrap_or_default();
    let mode = |host: Option<bool>, otherwise: pb::NamespaceMode| {
        if host.unwrap_or(false) {
            pb::NamespaceMode::Node as i32
        } else {
            otherwise as i32
        }
    };
    let pid_default = if spec.share_process_namespace.unwrap_or(false) {
        pb::NamespaceMode::Pod
    } else {
        pb::NamespaceMode::Container
    };
    pb::NamespaceOption {
        network: mode(spec.host_network, pb::NamespaceMode::Pod),
        pid: mode(spec.host_pid, pid_default),
        ipc: mode(spec.host_ipc, pb::NamespaceMode::Pod),
        ..Default::default()
    }
}

pub struct SandboxInputs<'a> {
    pub attempt: u32,
    pub pod_logs_dir: &'a Path,
    pub dns: pb::DnsConfig,
    pub cgroup_parent: String,
}

pub fn sandbox_config(pod: &Pod, inputs: SandboxInputs<'_>) -> pb::PodSandboxConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let host_network = spec.host_network.unwrap_or(false);
    let m = &pod.metadata;
    let port_mappings = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .map(|p| pb::PortMapping {
            protocol: protocol(p.protocol.as_deref()),
            container_port: p.container_port,
            host_port: p.host_port.unwrap_or(0),
            host_ip: p.host_ip.clone().unwrap_or_default(),
        })
        .collect();
    let psc = spec.security_context.clone().unwrap_or_default();
    let privileged = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .any(|c| {
            c.security_context
                .as_ref()
                .and_then(|s| s.privileged)
                .unwrap_or(false)
        });
    let sysctls = psc
        .sysctls
        .iter()
        .flatten()
        .map(|s| (s.name.clone(), s.value.clone()))
        .collect();
    pb::PodSandboxConfig {
        metadata: Some(pb::PodSandboxMetadata {
            name: m.name.clone().unwrap_or_default(),
            uid: m.uid.clone().unwrap_or_default(),
            namespace: m.namespace.clone().unwrap_or_else(|| "default".into()),
            attempt: inputs.attempt,
        }),
        // runc won't set a hostname without a private UTS namespace, which
        // hostNetwork pods don't get; the host's name shows through.
        hostname: if host_network {
            String::new()
        } else {
            pod_hostname(pod)
        },
        log_directory: pod_log_dir(inputs.pod_logs_dir, pod).display().to_string(),
        dns_config: Some(inputs.dns),
        port_mappings,
        labels: labels::sandbox_labels(pod),
        annotations: labels::sandbox_annotations(pod, &sandbox_hash(pod)),
        linux: Some(pb::LinuxPodSandboxConfig {
            cgroup_parent: inputs.cgroup_parent,
            security_context: Some(pb::LinuxSandboxSecurityContext {
                namespace_options: Some(namespace_options(pod)),
                run_as_user: psc.run_as_user.map(|value| pb::Int64Value { value }),
                run_as_group: psc.run_as_group.map(|value| pb::Int64Value { value }),
                supplemental_groups: psc.supplemental_groups.clone().unwrap_or_default(),
                privileged,
                ..Default::default()
            }),
            sysctls,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-node1", "namespace": "prod", "uid": "u1", "labels": {"app": "web"}},
            "spec": spec
        }))
        .unwrap()
    }

    fn inputs() -> SandboxInputs<'static> {
        SandboxInputs {
            attempt: 2,
            pod_logs_dir: Path::new("/var/log/pods"),
            dns: pb::DnsConfig::default(),
            cgroup_parent: String::new(),
        }
    }

    #[test]
    fn sandbox_like_the_go_kubelet() {
        let p = pod(
            serde_json::json!({"containers": [{"name": "c", "image": "i",
            "ports": [{"containerPort": 80, "hostPort": 8080, "protocol": "TCP"}, {"containerPort": 53, "protocol": "UDP"}]}]}),
        );
        let cfg = sandbox_config(&p, inputs());
        let meta = cfg.metadata.unwrap();
        assert_eq!(
            (
                meta.name.as_str(),
                meta.namespace.as_str(),
                meta.uid.as_str(),
                meta.attempt
            ),
            ("web-node1", "prod", "u1", 2)
        );
        assert_eq!(cfg.hostname, "web-node1");
        assert_eq!(cfg.log_directory, "/var/log/pods/prod_web-node1_u1");
        assert_eq!(cfg.labels[labels::POD_UID], "u1");
        assert_eq!(cfg.labels["app"], "web");
        assert_eq!(cfg.port_mappings.len(), 2);
        assert_eq!(cfg.port_mappings[0].host_port, 8080);
        assert_eq!(cfg.port_mappings[1].protocol, pb::Protocol::Udp as i32);
        let ns = cfg
            .linux
            .unwrap()
            .security_context
            .unwrap()
            .namespace_options
            .unwrap();
        assert_eq!(ns.network, pb::NamespaceMode::Pod as i32);
        assert_eq!(ns.pid, pb::NamespaceMode::Container as i32);
    }

    #[test]
    fn host_network_has_no_hostname_and_node_namespaces() {
        let p = pod(
            serde_json::json!({"hostNetwork": true, "hostPID": true, "containers": [{"name": "c", "image": "i"}]}),
        );
        let cfg = sandbox_config(&p, inputs());
        assert_eq!(cfg.hostname, "");
        let ns = cfg
            .linux
            .unwrap()
            .security_context
            .unwrap()
            .namespace_options
            .unwrap();
        assert_eq!(ns.network, pb::NamespaceMode::Node as i32);
        assert_eq!(ns.pid, pb::NamespaceMode::Node as i32);
        assert_eq!(ns.ipc, pb::NamespaceMode::Pod as i32);
    }

    #[test]
    fn hostname_is_cut_to_a_dns_label() {
        let long = format!("{}-.x", "a".repeat(62));
        let p: Pod = serde_json::from_value(
            serde_json::json!({"metadata": {"name": long}, "spec": {"containers": []}}),
        )
        .unwrap();
        assert_eq!(pod_hostname(&p), "a".repeat(62));
    }
}
