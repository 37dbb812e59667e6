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
//!   init containers), as in Go;
//! - `kubelet_runtime_operations_total`, `…_errors_total` and
//!   `…_duration_seconds{operation_type}`: every CRI call the kubelet makes
//!   (through [`RuntimeOperations`], the CRI client's observer), named as
//!   Go's instrumented runtime service names them (`run_podsandbox`,
//!   `container_status`, …);
//! - `kubelet_pleg_relist_duration_seconds`: each PLEG relist;
//! - `kubelet_pod_start_duration_seconds`: from the pod worker's start (the
//!   kubelet first seeing the pod) to the first sync that reports the pod
//!   Running; pods found running at their first sync are not counted.

use std::sync::LazyLock;

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use crate::kuberuntime::actions::ContainerKind;

type OperationLabel = [(&'static str, &'static str); 1];

/// The counters; clones share them.
#[derive(Clone, Debug)]
pub struct KubeletCounters {
    pub started_pods: Counter,
    pub started_pods_errors: Counter,
    pub started_containers: Family<[(&'static str, &'static str); 1], Counter>,
    pub started_containers_errors: Family<[(&'static str, String); 2], Counter>,
    pub runtime_operations: Family<OperationLabel, Counter>,
    pub runtime_operations_errors: Family<OperationLabel, Counter>,
    pub runtime_operations_duration: Family<OperationLabel, Histogram, fn() -> Histogram>,
    pub pleg_relist_duration: Histogram,
    pub pod_start_duration: Histogram,
}

/// Go's buckets for runtime operations: 5 ms × 2.5ⁱ, 14 of them.
fn operation_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.5, 14))
}

/// Go's buckets for pod start: half a second to an hour.
const POD_START_BUCKETS: [f64; 25] = [
    0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 180.0, 240.0,
    300.0, 360.0, 480.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0,
];

/// Go's default buckets (PLEG relist).
const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Default for KubeletCounters {
    fn default() -> Self {
        KubeletCounters {
            started_pods: Counter::default(),
            started_pods_errors: Counter::default(),
            started_containers: Family::default(),
            started_containers_errors: Family::default(),
            runtime_operations: Family::default(),
            runtime_operations_errors: Family::default(),
            runtime_operations_duration: Family::new_with_constructor(
                operation_histogram as fn() -> Histogram,
            ),
            pleg_relist_duration: Histogram::new(DEFAULT_BUCKETS),
            pod_start_duration: Histogram::new(POD_START_BUCKETS),
        }
    }
}

/// Go's `operation_type` of a CRI method: snake case, with `podsandbox`
/// and `update_container` as Go's instrumented service spells them.
pub fn operation_type(method: &'static str) -> &'static str {
    static NAMES: LazyLock<
        std::sync::Mutex<std::collections::HashMap<&'static str, &'static str>>,
    > = LazyLock::new(Default::default);
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    names.entry(method).or_insert_with(|| {
        let mut snake = String::new();
        for (i, c) in method.chars().enumerate() {
            if c.is_ascii_uppercase() {
                if i > 0 {
                    snake.push('_');
                }
                snake.push(c.to_ascii_lowercase());
            } else {
                snake.push(c);
            }
        }
        let snake = snake
            .replace("pod_sandbox", "podsandbox")
            .replace("update_container_resources", "update_container");
        // Leaked once per CRI method: a few dozen short strings.
        Box::leak(snake.into_boxed_str())
    })
}

/// The CRI client's observer feeding the runtime operation series.
#[derive(Debug)]
pub struct RuntimeOperations;

impl cri_client::CallObserver for RuntimeOperations {
    fn observe(&self, method: &'static str, code: tonic::Code, elapsed: Duration) {
        let labels = [("operation_type", operation_type(method))];
        let c = &*COUNTERS;
        c.runtime_operations.get_or_create(&labels).inc();
        if code != tonic::Code::Ok {
            c.runtime_operations_errors.get_or_create(&labels).inc();
        }
        c.runtime_operations_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_types_are_gos() {
        assert_eq!(operation_type("RunPodSandbox"), "run_podsandbox");
        assert_eq!(
            operation_type("ListPodSandboxStats"),
            "list_podsandbox_stats"
        );
        assert_eq!(operation_type("ContainerStatus"), "container_status");
        assert_eq!(
            operation_type("UpdateContainerResources"),
            "update_container"
        );
        assert_eq!(operation_type("ExecSync"), "exec_sync");
        assert_eq!(operation_type("ImageFsInfo"), "image_fs_info");
    }
}
