//! The kubelet's own counters (Go's `pkg/kubelet/metrics`), process-wide
//! like Go's, bumped where the kubelet does the work and rendered on the
//! kubelet API's `/metrics` (`server::metrics::registry`):
//!
//! - `kubelet_started_pods_total` / `kubelet_started_pods_errors_total`:
//!   sandboxes the kubelet tried to create, and how many of those failed;
//! - `kubelet_started_containers_total{container_type}` and
//!   `kubelet_started_containers_errors_total{container_type,code}`:
//!   container starts tried (after backoff), and their failures by
//!   waiting reason (`CreateContainerError`, `ErrImagePull`, …).
//!   `container_type` is `container` or `init_container` (sidecars are
//!   init containers), as in Go.

use std::sync::LazyLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::kuberuntime::actions::ContainerKind;

/// The counters; clones share them.
#[derive(Clone, Debug, Default)]
pub struct KubeletCounters {
    pub started_pods: Counter,
    pub started_pods_errors: Counter,
    pub started_containers: Family<[(&'static str, &'static str); 1], Counter>,
    pub started_containers_errors: Family<[(&'static str, String); 2], Counter>,
}

/// The process's counters.
pub static COUNTERS: LazyLock<KubeletCounters> = LazyLock::new(KubeletCounters::default);

/// Go's `container_type` label of a container of this kind.
pub fn container_type(kind: ContainerKind) -> &'static str {
    match kind {
        ContainerKind::App => "container",
        ContainerKind::Init | ContainerKind::Sidecar => "init_container",
    }
}

impl KubeletCounters {
    /// A pod sandbox is about to be created.
    pub fn pod_starting(&self) {
        self.started_pods.inc();
    }

    /// Creating the sandbox failed.
    pub fn pod_start_failed(&self) {
        self.started_pods_errors.inc();
    }

    /// A container of `kind` is about to be started.
    pub fn container_starting(&self, kind: ContainerKind) {
        self.started_containers
            .get_or_create(&[("container_type", container_type(kind))])
            .inc();
    }

    /// Starting it failed with the waiting reason `code`.
    pub fn container_start_failed(&self, kind: ContainerKind, code: &str) {
        self.started_containers_errors
            .get_or_create(&[
                ("code", code.to_string()),
                ("container_type", container_type(kind).to_string()),
            ])
            .inc();
    }
}
