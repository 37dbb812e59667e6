//! Static pod identity: what the Go kubelet's `config/common.go` `applyDefaults` does to a
//! pod read from a file (name, namespace, UID, annotations). The apiserver's defaulting is
//! [`api::defaults`].

use std::path::Path;

use api::defaults::DEFAULT_NAMESPACE;
use k8s_openapi::api::core::v1::{Pod, Toleration};
use sha2::{Digest, Sha256};

/// Annotation naming where the pod came from (`file` here).
pub const CONFIG_SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";
/// Annotation holding the pod's hash; equal to its UID for static pods.
pub const CONFIG_HASH_ANNOTATION: &str = "kubernetes.io/config.hash";
/// Annotation holding when the source first saw this version of the pod.
pub const CONFIG_SEEN_ANNOTATION: &str = "kubernetes.io/config.seen";
/// Value of [`CONFIG_SOURCE_ANNOTATION`] for manifests read from the directory.
pub const FILE_SOURCE: &str = "file";

/// The static pod name: `<name>-<node name lowercased>`, like Go's `generatePodName`.
pub fn static_pod_name(name: &str, node_name: &str) -> String {
    format!("{name}-{}", node_name.to_lowercase())
}

fn hex32(hasher: Sha256) -> String {
    hasher
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The deterministic UID of a static pod: a hash of its namespace and name,
/// the node name and the source file.
///
/// Departs from Go on purpose: Go hashes the whole decoded object, so every
/// edit makes a new UID and the Go kubelet restarts the entire pod. Berth keeps
/// the UID across edits, which lets it recreate exactly the containers whose
/// spec changed; the content hash goes in `kubernetes.io/config.hash`
/// ([`static_pod_config_hash`]). SHA-256, first 32 hex characters, so the UID
/// has the familiar length.
pub fn static_pod_uid(pod: &Pod, node_name: &str, path: &Path) -> String {
    let mut hasher = Sha256::new();
    let meta = &pod.metadata;
    hasher.update(
        meta.namespace
            .as_deref()
            .unwrap_or(DEFAULT_NAMESPACE)
            .as_bytes(),
    );
    hasher.update(b"/");
    hasher.update(meta.name.as_deref().unwrap_or_default().as_bytes());
    hasher.update(format!("host:{node_name}").as_bytes());
    hasher.update(b"file:");
    hasher.update(path.as_os_str().as_encoded_bytes());
    hex32(hasher)
}

/// The content hash of a static pod (`kubernetes.io/config.hash`): the pod's
/// JSON after API defaulting, the node name and the source file, as Go's UID.
/// Only decoded content counts: comments and formatting don't change it.
pub fn static_pod_config_hash(pod: &Pod, node_name: &str, path: &Path) -> String {
    let mut hasher = Sha256::new();
    // Serializing k8s-openapi types only fails for non-string map keys, which they do not have.
    hasher.update(serde_json::to_vec(pod).unwrap_or_default());
    hasher.update(format!("host:{node_name}").as_bytes());
    hasher.update(b"file:");
    hasher.update(path.as_os_str().as_encoded_bytes());
    hex32(hasher)
}

/// Sets name, namespace, UID, node name, annotations and the NoExecute toleration, as
/// Go's `applyDefaults` does for file sources. Returns the UID.
pub fn apply_identity(pod: &mut Pod, node_name: &str, path: &Path) -> String {
    let uid = static_pod_uid(pod, node_name, path);
    let config_hash = static_pod_config_hash(pod, node_name, path);
    let meta = &mut pod.metadata;
    if let Some(name) = meta.name.as_mut()
        && !name.is_empty()
    {
        *name = static_pod_name(name, node_name);
    }
    if meta.namespace.as_deref().is_none_or(str::is_empty) {
        meta.namespace = Some(DEFAULT_NAMESPACE.into());
    }
    meta.uid = Some(uid.clone());
    let annotations = meta.annotations.get_or_insert_with(Default::default);
    annotations.insert(CONFIG_SOURCE_ANNOTATION.into(), FILE_SOURCE.into());
    annotations.insert(CONFIG_HASH_ANNOTATION.into(), config_hash);

    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.node_name = Some(node_name.into());
    // Static pods tolerate every NoExecute taint so node problems do not evict them.
    let toleration = Toleration {
        operator: Some("Exists".into()),
        effect: Some("NoExecute".into()),
        ..Default::default()
    };
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    if !tolerations.contains(&toleration) {
        tolerations.push(toleration);
    }
    uid
}

/// Records when this version of the pod was first seen (RFC 3339, UTC).
pub fn set_first_seen(pod: &mut Pod, seen: jiff::Timestamp) {
    pod.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(CONFIG_SEEN_ANNOTATION.into(), seen.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::load_manifest;

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: nginx:1.25\n";

    fn identity(bytes: &str, node: &str, path: &str) -> (String, String) {
        let pod = load_manifest(Path::new(path), bytes.as_bytes(), node).unwrap();
        let hash = pod.metadata.annotations.as_ref().unwrap()[CONFIG_HASH_ANNOTATION].clone();
        (pod.metadata.uid.unwrap(), hash)
    }

    #[test]
    fn uid_is_stable_across_edits_and_config_hash_tracks_content() {
        const PATH: &str = "/etc/kubernetes/manifests/web.yaml";
        let (uid, hash) = identity(POD, "node1", PATH);
        assert_eq!(uid.len(), 32);
        assert!(uid.bytes().all(|b| b.is_ascii_hexdigit()));
        // Golden values (checked with Python's hashlib): sha256("default/web" "host:node1" "file:<path>")[..32] for the UID,
        // sha256(defaulted pod JSON "host:node1" "file:<path>")[..32] for the content hash.
        assert_eq!(uid, "700acecdaf4b5c31fa9962a2c80ddbf5");
        assert_eq!(hash, "6c5aa5f606427d2cd3b4f534af0436f6");
        assert_eq!((uid.clone(), hash.clone()), identity(POD, "node1", PATH));
        assert_ne!(uid, identity(POD, "node2", PATH).0);
        assert_ne!(
            uid,
            identity(POD, "node1", "/etc/kubernetes/manifests/web2.yaml").0
        );
        // An edit keeps the UID (so only changed containers restart) but not the hash.
        let edited = POD.replace("nginx:1.25", "nginx:1.26");
        let (uid2, hash2) = identity(&edited, "node1", PATH);
        assert_eq!(uid, uid2);
        assert_ne!(hash, hash2);
        let renamed = POD.replace("name: web", "name: web2");
        assert_ne!(uid, identity(&renamed, "node1", PATH).0);
        // Comments and layout are not content.
        let reformatted = format!("# a comment\n{POD}\n\n");
        assert_eq!((uid, hash), identity(&reformatted, "node1", PATH));
    }

    #[test]
    fn identity_and_defaults() {
        let pod = load_manifest(Path::new("web.yaml"), POD.as_bytes(), "Node-A").unwrap();
        let meta = &pod.metadata;
        assert_eq!(meta.name.as_deref(), Some("web-node-a"));
        assert_eq!(meta.namespace.as_deref(), Some("default"));
        let ann = meta.annotations.as_ref().unwrap();
        assert_eq!(ann[CONFIG_SOURCE_ANNOTATION], "file");
        assert_eq!(ann[CONFIG_HASH_ANNOTATION].len(), 32);
        assert!(!ann.contains_key(CONFIG_SEEN_ANNOTATION));
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("Node-A"));
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        assert_eq!(spec.dns_policy.as_deref(), Some("ClusterFirst"));
        let tol = &spec.tolerations.as_ref().unwrap()[0];
        assert_eq!(tol.operator.as_deref(), Some("Exists"));
        assert_eq!(tol.effect.as_deref(), Some("NoExecute"));
        let c = &spec.containers[0];
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(
            c.termination_message_path.as_deref(),
            Some("/dev/termination-log")
        );
        assert_eq!(c.termination_message_policy.as_deref(), Some("File"));
    }

    #[test]
    fn pull_policy_and_port_defaults() {
        let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: kube-system}\nspec:\n  containers:\n  - {name: a, image: nginx, ports: [{containerPort: 80}]}\n  - {name: b, image: 'nginx:latest'}\n  - {name: c, image: 'nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'}\n  - {name: d, image: nginx, imagePullPolicy: Never, resources: {limits: {cpu: 500m}, requests: {memory: 1Gi}}}\n";
        let pod = load_manifest(Path::new("p.yaml"), yaml.as_bytes(), "n").unwrap();
        assert_eq!(pod.metadata.namespace.as_deref(), Some("kube-system"));
        let cs = &pod.spec.as_ref().unwrap().containers;
        let policies: Vec<_> = cs.iter().map(|c| c.image_pull_policy.as_deref()).collect();
        assert_eq!(
            policies,
            [
                Some("Always"),
                Some("Always"),
                Some("IfNotPresent"),
                Some("Never")
            ]
        );
        assert_eq!(
            cs[0].ports.as_ref().unwrap()[0].protocol.as_deref(),
            Some("TCP")
        );
        let requests = cs[3].resources.as_ref().unwrap().requests.as_ref().unwrap();
        assert_eq!(requests["cpu"].0, "500m");
        assert_eq!(requests["memory"].0, "1Gi");
    }
}
