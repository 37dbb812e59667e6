//! The runtime's view of a pod (the Go kubelet's `kubecontainer.Pod` and
//! `PodStatus` in one): its sandboxes and container instances, newest first,
//! as [`crate::kuberuntime`] reads them back from the runtime. Nothing of it is
//! stored on disk, so a restart adopts whatever runs.

use cri_client::proto as pb;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerStateKind {
    Created,
    Running,
    Exited,
    Unknown,
}

impl ContainerStateKind {
    pub fn from_cri(state: i32) -> Self {
        match pb::ContainerState::try_from(state) {
            Ok(pb::ContainerState::ContainerCreated) => Self::Created,
            Ok(pb::ContainerState::ContainerRunning) => Self::Running,
            Ok(pb::ContainerState::ContainerExited) => Self::Exited,
            _ => Self::Unknown,
        }
    }
}

#[derive(Clone, Debug)]
pub struct SandboxState {
    pub id: String,
    pub attempt: u32,
    pub ready: bool,
    pub created_at: i64,
    pub hash: String,
    /// The pod IP the runtime reported ("" when none, or not ready).
    pub ip: String,
}

#[derive(Clone, Debug)]
pub struct ContainerState {
    pub id: String,
    pub sandbox_id: String,
    pub info: ContainerInfo,
    pub state: ContainerStateKind,
    pub created_at: i64,
    pub image: String,
    pub image_ref: String,
    /// Filled from ContainerStatus for exited containers (ListContainers
    /// doesn't carry them).
    pub exit_code: Option<i32>,
    pub started_at: i64,
    pub finished_at: i64,
    pub reason: String,
    pub message: String,
    /// A ContainerStatus call filled the fields above for this state.
    pub detailed: bool,
    /// What the prober says of this instance (running containers only).
    pub probe: ProbeState,
}

/// Probe results of one container instance, from the prober.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbeState {
    /// Readiness; None when the container has no readiness probe.
    pub ready: Option<bool>,
    /// Whether the startup probe succeeded; None when there is none.
    pub started: Option<bool>,
    /// Set once a liveness or startup probe has failed failureThreshold
    /// times: the container must be killed, with this message.
    pub kill_reason: Option<super::runtime::KillReason>,
}

impl ContainerState {
    /// A container as ListContainers shows it: no image, exit or probe
    /// details yet.
    pub fn new(
        id: String,
        sandbox_id: String,
        info: ContainerInfo,
        state: ContainerStateKind,
        created_at: i64,
    ) -> Self {
        ContainerState {
            id,
            sandbox_id,
            info,
            state,
            created_at,
            image: String::new(),
            image_ref: String::new(),
            exit_code: None,
            started_at: 0,
            finished_at: 0,
            reason: String::new(),
            message: String::new(),
            detailed: false,
            probe: ProbeState::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.info.name
    }
    pub fn is_running(&self) -> bool {
        self.state == ContainerStateKind::Running
    }
    pub fn succeeded(&self) -> bool {
        self.state == ContainerStateKind::Exited && self.exit_code == Some(0)
    }
}

/// One pod as the runtime sees it. Lists are newest first.
#[derive(Clone, Debug, Default)]
pub struct RuntimePod {
    pub uid: String,
    pub name: String,
    pub namespace: String,
    pub sandboxes: Vec<SandboxState>,
    pub containers: Vec<ContainerState>,
}

impl RuntimePod {
    /// The newest sandbox, if any.
    pub fn latest_sandbox(&self) -> Option<&SandboxState> {
        self.sandboxes.first()
    }

    /// The newest instance of the container called `name`.
    pub fn latest(&self, name: &str) -> Option<&ContainerState> {
        self.containers.iter().find(|c| c.name() == name)
    }

    /// Every instance of `name`, newest first.
    pub fn instances<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a ContainerState> + 'a {
        self.containers.iter().filter(move |c| c.name() == name)
    }

    pub fn running_containers(&self) -> impl Iterator<Item = &ContainerState> {
        self.containers.iter().filter(|c| c.is_running())
    }
}

/// What Berth reads back from a container's labels and annotations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerInfo {
    pub pod_uid: String,
    pub pod_name: String,
    pub pod_namespace: String,
    pub name: String,
    pub hash: String,
    pub restart_count: u32,
    pub termination_message_path: String,
    pub termination_message_policy: String,
    pub termination_grace_period: Option<i64>,
    pub kind: String,
    /// The preStop handler's JSON ("" for none).
    pub pre_stop: String,
}
