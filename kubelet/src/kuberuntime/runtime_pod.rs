//! The runtime's view of pods, rebuilt from CRI list calls and the labels
//! Berth (or a Go kubelet) put on sandboxes and containers. This is all the
//! state Berth keeps about what runs; nothing is stored on disk, so a restart
//! adopts whatever is there.

use std::collections::HashMap;

use cri_client::proto as pb;

use super::labels::{self, ContainerInfo};

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
    pub kill_reason: Option<String>,
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

/// Groups sandboxes and containers by pod UID. Objects without Berth's
/// (the kubelet's) labels are not ours and are left alone.
pub fn group(
    sandboxes: &[pb::PodSandbox],
    containers: &[pb::Container],
) -> HashMap<String, RuntimePod> {
    let mut pods: HashMap<String, RuntimePod> = HashMap::new();
    for s in sandboxes {
        let Some(uid) = s.labels.get(labels::POD_UID).filter(|u| !u.is_empty()) else {
            continue;
        };
        let meta = s.metadata.clone().unwrap_or_default();
        let pod = pods.entry(uid.clone()).or_default();
        pod.uid = uid.clone();
        pod.name = s.labels.get(labels::POD_NAME).cloned().unwrap_or(meta.name);
        pod.namespace = s
            .labels
            .get(labels::POD_NAMESPACE)
            .cloned()
            .unwrap_or(meta.namespace);
        pod.sandboxes.push(SandboxState {
            id: s.id.clone(),
            attempt: meta.attempt,
            ready: s.state == pb::PodSandboxState::SandboxReady as i32,
            created_at: s.created_at,
            hash: s
                .annotations
                .get(labels::SANDBOX_HASH)
                .cloned()
                .unwrap_or_default(),
        });
    }
    for c in containers {
        let info = ContainerInfo::parse(&c.labels, &c.annotations);
        if info.pod_uid.is_empty() || info.name.is_empty() {
            continue;
        }
        let pod = pods.entry(info.pod_uid.clone()).or_default();
        if pod.uid.is_empty() {
            pod.uid = info.pod_uid.clone();
            pod.name = info.pod_name.clone();
            pod.namespace = info.pod_namespace.clone();
        }
        pod.containers.push(ContainerState {
            image: c.image.clone().unwrap_or_default().image,
            image_ref: c.image_ref.clone(),
            ..ContainerState::new(
                c.id.clone(),
                c.pod_sandbox_id.clone(),
                info,
                ContainerStateKind::from_cri(c.state),
                c.created_at,
            )
        });
    }
    for pod in pods.values_mut() {
        pod.sandboxes
            .sort_by_key(|s| std::cmp::Reverse((s.created_at, s.attempt)));
        pod.containers
            .sort_by_key(|c| std::cmp::Reverse((c.created_at, c.info.restart_count)));
    }
    pods
}

/// Adds what only ContainerStatus knows (exit code, times, reason).
pub fn apply_status(c: &mut ContainerState, st: &pb::ContainerStatus) {
    c.state = ContainerStateKind::from_cri(st.state);
    c.started_at = st.started_at;
    c.finished_at = st.finished_at;
    c.reason = st.reason.clone();
    c.message = st.message.clone();
    c.exit_code = (c.state == ContainerStateKind::Exited).then_some(st.exit_code);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox(id: &str, uid: &str, attempt: u32, created: i64, ready: bool) -> pb::PodSandbox {
        pb::PodSandbox {
            id: id.into(),
            metadata: Some(pb::PodSandboxMetadata {
                name: "p".into(),
                uid: uid.into(),
                namespace: "ns".into(),
                attempt,
            }),
            state: if ready { 0 } else { 1 },
            created_at: created,
            labels: [(labels::POD_UID.to_string(), uid.to_string())].into(),
            ..Default::default()
        }
    }

    fn container(id: &str, uid: &str, name: &str, restart: u32, created: i64) -> pb::Container {
        pb::Container {
            id: id.into(),
            pod_sandbox_id: "s".into(),
            created_at: created,
            state: pb::ContainerState::ContainerRunning as i32,
            labels: [
                (labels::POD_UID.to_string(), uid.to_string()),
                (labels::CONTAINER_NAME.to_string(), name.to_string()),
            ]
            .into(),
            annotations: [(
                labels::CONTAINER_RESTART_COUNT.to_string(),
                restart.to_string(),
            )]
            .into(),
            ..Default::default()
        }
    }

    #[test]
    fn groups_by_uid_newest_first_and_skips_foreign_objects() {
        let mut foreign = sandbox("x", "", 0, 1, true);
        foreign.labels.clear();
        let pods = group(
            &[
                sandbox("s1", "u", 0, 10, false),
                sandbox("s2", "u", 1, 20, true),
                foreign,
            ],
            &[
                container("c1", "u", "app", 0, 11),
                container("c2", "u", "app", 1, 21),
                container("c3", "v", "x", 0, 5),
            ],
        );
        assert_eq!(pods.len(), 2);
        let u = &pods["u"];
        assert_eq!(u.latest_sandbox().unwrap().id, "s2");
        assert_eq!(u.latest("app").unwrap().id, "c2");
        assert_eq!(u.instances("app").count(), 2);
        assert_eq!(pods["v"].containers.len(), 1);
        assert!(pods["v"].sandboxes.is_empty());
    }
}
