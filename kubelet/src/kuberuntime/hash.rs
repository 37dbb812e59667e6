//! Spec hashes stored on containers and sandboxes, to tell when the runtime's
//! copy no longer matches the desired spec.
//!
//! Berth hashes the WHOLE container spec. The Go kubelet hashes only some
//! fields, so edits to others (resources, probes, env from some sources) are
//! silently ignored until the container restarts for another reason; that is a
//! long-standing user complaint. The rule here: any change to a container's
//! entry in the manifest recreates exactly that container, and nothing else.

use k8s_openapi::api::core::v1::{Container, Pod};
use sha2::{Digest, Sha256};

fn hex16(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Hash of a container's full spec (canonical JSON: k8s-openapi serialises
/// struct fields in a fixed order and maps as BTreeMaps).
pub fn container_hash(container: &Container) -> String {
    hex16(&serde_json::to_vec(container).unwrap_or_default())
}

/// Hash of what the sandbox is built from: namespaces, hostname, DNS, host
/// ports, sysctls and the runtime class. A change to any of these needs a
/// new sandbox (and so restarts every container, as in the Go kubelet when
/// e.g. hostNetwork changes).
pub fn sandbox_hash(pod: &Pod) -> String {
    let Some(spec) = pod.spec.as_ref() else {
        return hex16(b"");
    };
    let host_ports: Vec<_> = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.is_some_and(|h| h > 0))
        .map(|p| {
            (
                p.container_port,
                p.host_port,
                p.host_ip.clone(),
                p.protocol.clone(),
            )
        })
        .collect();
    let relevant = serde_json::json!({
        "hostNetwork": spec.host_network,
        "hostPID": spec.host_pid,
        "hostIPC": spec.host_ipc,
        "shareProcessNamespace": spec.share_process_namespace,
        "hostname": spec.hostname,
        "subdomain": spec.subdomain,
        "dnsPolicy": spec.dns_policy,
        "dnsConfig": spec.dns_config,
        "hostAliases": spec.host_aliases,
        "runtimeClassName": spec.runtime_class_name,
        "securityContext": spec.security_context,
        "hostPorts": host_ports,
        "overhead": spec.overhead,
    });
    hex16(relevant.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(v: serde_json::Value) -> Container {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn any_field_changes_the_container_hash() {
        let a = container(
            serde_json::json!({"name": "c", "image": "busybox", "env": [{"name": "A", "value": "1"}]}),
        );
        let same = container(
            serde_json::json!({"image": "busybox", "name": "c", "env": [{"name": "A", "value": "1"}]}),
        );
        assert_eq!(
            container_hash(&a),
            container_hash(&same),
            "field order doesn't matter"
        );
        let env = container(
            serde_json::json!({"name": "c", "image": "busybox", "env": [{"name": "A", "value": "2"}]}),
        );
        assert_ne!(container_hash(&a), container_hash(&env));
        let res = container(
            serde_json::json!({"name": "c", "image": "busybox", "env": [{"name": "A", "value": "1"}],
            "resources": {"limits": {"memory": "64Mi"}}}),
        );
        assert_ne!(
            container_hash(&a),
            container_hash(&res),
            "resources count (unlike the Go kubelet)"
        );
        assert_eq!(container_hash(&a).len(), 16);
    }

    #[test]
    fn sandbox_hash_ignores_container_details() {
        let pod = |v: serde_json::Value| -> Pod { serde_json::from_value(v).unwrap() };
        let a =
            pod(serde_json::json!({"spec": {"containers": [{"name": "c", "image": "busybox"}]}}));
        let img =
            pod(serde_json::json!({"spec": {"containers": [{"name": "c", "image": "nginx"}]}}));
        let net = pod(
            serde_json::json!({"spec": {"hostNetwork": true, "containers": [{"name": "c", "image": "busybox"}]}}),
        );
        let port = pod(
            serde_json::json!({"spec": {"containers": [{"name": "c", "image": "busybox",
            "ports": [{"containerPort": 80, "hostPort": 8080}]}]}}),
        );
        assert_eq!(sandbox_hash(&a), sandbox_hash(&img));
        assert_ne!(sandbox_hash(&a), sandbox_hash(&net));
        assert_ne!(sandbox_hash(&a), sandbox_hash(&port));
    }
}
