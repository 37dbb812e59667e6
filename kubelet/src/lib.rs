//! berth: a kubelet that keeps a node's pods running through the CRI.
//!
//! Data flows one way, as in the Go kubelet:
//!
//! 1. sources ([`static_pods`], later the apiserver) produce desired pods;
//! 2. [`podconfig`] merges them into one desired set keyed by UID;
//! 3. [`pod_workers`] run each pod's lifecycle (sync, terminating,
//!    terminated) through [`kubelet`], which drives the
//!    [`container::Runtime`] that [`kuberuntime`] implements over the CRI;
//! 4. [`pleg`] relists the runtime into the [`container::PodCache`] and
//!    wakes the pod workers of pods that changed;
//! 5. [`status`] computes each pod's status from the cached runtime view and
//!    hands it to its sinks (log lines, the [`server`]'s read-only port).
//!
//! Modules are named after the Go kubelet's packages, so a reader who knows
//! the kubelet finds each concept where they expect it.

pub mod backoff;
pub mod certificate;
pub mod cluster;
pub mod cm;
pub mod config;
pub mod container;
pub mod dns;
pub mod envvars;
pub mod events;
pub mod heap;
pub mod images;
pub mod kubelet;
pub mod kubelet_node_status;
pub mod kuberuntime;
pub mod lifecycle;
pub mod managed_runtime;
pub mod metrics;
pub mod mirror_client;
pub mod nodelease;
pub mod nodestatus;
pub mod objects;
pub mod pleg;
pub mod pod_workers;
pub mod podconfig;
pub mod probe;
pub mod prober;
pub mod server;
pub mod stats;
pub mod status;
pub mod sync_loop;
pub mod token;
pub mod volumes;

/// A pod's UID, the key of everything per-pod.
pub type PodUid = String;

/// `namespace/name`, for log lines.
pub fn pod_ref(pod: &k8s_openapi::api::core::v1::Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// The pod's UID, or empty.
pub fn pod_uid(pod: &k8s_openapi::api::core::v1::Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or("")
}

/// The pod's hostname: spec.hostname, or the pod name, cut to 63
/// characters without a trailing '-' or '.', as the Go kubelet.
pub fn pod_hostname(pod: &k8s_openapi::api::core::v1::Pod) -> String {
    let spec_host = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty());
    let name = spec_host.unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    let cut: String = name.chars().take(63).collect();
    cut.trim_end_matches(['-', '.']).to_string()
}
