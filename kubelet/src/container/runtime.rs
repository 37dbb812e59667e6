//! The seam between the kubelet and the container runtime (the Go kubelet's
//! `kubecontainer.Runtime` and `RuntimeHelper`).
//!
//! [`Runtime`] is what the kubelet asks of a runtime: read pods back, bring a
//! pod to its spec, kill it, remove it. `kuberuntime` implements it over the
//! CRI; it is the only module that builds CRI requests. [`RuntimeHelper`] is
//! what the runtime asks back of the kubelet while it creates sandboxes and
//! containers (DNS, cgroup parent, env and mounts), so `kuberuntime` needs
//! neither volumes nor cgroups nor DNS code of its own.

use std::collections::HashMap;
use std::time::Duration;

use cri_client::proto as pb;
use futures_util::future::BoxFuture;
use k8s_openapi::api::core::v1::{Container, Pod};

use super::runtime_pod::{ContainerState, RuntimePod};
use crate::dns::DnsError;

pub type RuntimeResult<T> = Result<T, cri_client::Error>;

/// Why a container does not run, for its status (`state.waiting`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
}

impl Waiting {
    pub fn new(reason: &str, message: impl Into<String>) -> Self {
        Waiting {
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

/// What one sync achieved, for status and the pod worker.
#[derive(Clone, Debug, Default)]
pub struct SyncResult {
    /// Containers that should run but don't, by name.
    pub waiting: HashMap<String, Waiting>,
    /// Sync again after this long (back-off expiry, failed calls).
    pub requeue_after: Option<Duration>,
    /// The pod has finished and will not run again.
    pub completed: bool,
    /// A failure of the sandbox itself.
    pub sandbox_error: Option<String>,
    /// The sync changed the runtime (created, started, stopped or removed
    /// something): the next sync must see a newer view than this one's.
    pub mutated: bool,
}

impl SyncResult {
    pub fn requeue(&mut self, after: Duration) {
        self.requeue_after = Some(self.requeue_after.map_or(after, |d| d.min(after)));
    }

    pub fn wait(&mut self, name: &str, reason: &str, message: String) {
        self.waiting
            .insert(name.to_string(), Waiting::new(reason, message));
    }
}

/// Why the kubelet stops a container, kept typed so status and events can
/// tell a probe kill from a spec change without matching message prefixes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KillReason {
    /// The container's spec changed (its hash differs).
    SpecChanged,
    /// A liveness probe failed failureThreshold times; the prober's message.
    LivenessFailed(String),
    /// A startup probe failed failureThreshold times; the prober's message.
    StartupFailed(String),
    /// An init container runs while the pod must restart its init sequence,
    /// or a container runs that the spec no longer has.
    NotInSpec,
    /// The pod is being terminated.
    PodTerminating,
    /// The pod's sandbox must be recreated.
    SandboxChanged,
    /// The pod has finished (restartPolicy says no more runs).
    PodCompleted,
}

impl KillReason {
    /// A probe failure's message, kept for `lastState.terminated.message`.
    pub fn probe_message(&self) -> Option<&str> {
        match self {
            KillReason::LivenessFailed(m) | KillReason::StartupFailed(m) => Some(m),
            _ => None,
        }
    }
}

impl std::fmt::Display for KillReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KillReason::SpecChanged => f.write_str("Container definition changed"),
            KillReason::LivenessFailed(m) | KillReason::StartupFailed(m) => f.write_str(m),
            KillReason::NotInSpec => f.write_str("Container is not in the pod spec"),
            KillReason::PodTerminating => f.write_str("Pod is terminating"),
            KillReason::SandboxChanged => {
                f.write_str("Pod sandbox changed, it will be killed and re-created")
            }
            KillReason::PodCompleted => f.write_str("Pod has completed"),
        }
    }
}

/// What the runtime needs from the kubelet to run one container.
#[derive(Debug, Default)]
pub struct RunContainerOptions {
    pub env: Vec<(String, String)>,
    pub mounts: Vec<pb::Mount>,
    pub resources: Option<pb::LinuxContainerResources>,
}

/// The kubelet's side of sandbox and container creation (Go's
/// `RuntimeHelper`). Errors end up in the container's or pod's status.
pub trait RuntimeHelper: Send + Sync {
    /// DNS for the sandbox.
    fn dns_config(&self, pod: &Pod) -> Result<pb::DnsConfig, DnsError>;
    /// The pod's cgroup, as the sandbox's cgroup_parent.
    fn cgroup_parent(&self, pod: &Pod) -> String;
    /// Env, mounts and resources for one container instance. Making the
    /// mounts touches the file system (volume directories, subPaths, the
    /// termination-message file), so this is async: an implementation
    /// does that work off the async thread.
    fn run_container_options<'a>(
        &'a self,
        pod: &'a Pod,
        container: &'a Container,
        restart_count: u32,
        pod_ip: &'a str,
    ) -> BoxFuture<'a, Result<RunContainerOptions, Waiting>>;
}

/// What the kubelet asks of a container runtime.
pub trait Runtime: Send + Sync {
    /// Every pod the runtime holds (one list of sandboxes and containers),
    /// without per-container details.
    fn get_pods(&self) -> BoxFuture<'_, RuntimeResult<HashMap<String, RuntimePod>>>;

    /// Fills what only a status call knows of one container instance (exit
    /// code, times, reason, termination message). False when it is gone.
    fn fill_container_status<'a>(&'a self, c: &'a mut ContainerState) -> BoxFuture<'a, bool>;

    /// The IP the runtime gave a sandbox ("" for none).
    fn sandbox_ip<'a>(&'a self, sandbox_id: &'a str) -> BoxFuture<'a, String>;

    /// Brings the pod to its spec. Failures of single containers are
    /// reported in the result.
    fn sync_pod<'a>(&'a self, pod: &'a Pod, rt: &'a RuntimePod) -> BoxFuture<'a, SyncResult>;

    /// Stops every container (hooks, grace periods, sidecar order), then
    /// every sandbox. `grace_override` replaces each container's grace
    /// period (a deletion's `deletionGracePeriodSeconds`).
    fn kill_pod<'a>(
        &'a self,
        pod: Option<&'a Pod>,
        rt: &'a RuntimePod,
        grace_override: Option<i64>,
    ) -> BoxFuture<'a, RuntimeResult<()>>;

    /// Removes a stopped pod's containers, sandboxes and logs.
    fn remove_pod<'a>(&'a self, rt: &'a RuntimePod) -> BoxFuture<'a, RuntimeResult<()>>;

    /// Removes dead instances beyond what status and `logs --previous` need.
    fn gc_pod<'a>(&'a self, rt: &'a RuntimePod) -> BoxFuture<'a, ()>;
}
