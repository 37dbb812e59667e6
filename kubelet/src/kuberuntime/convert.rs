//! Builds [`RuntimePod`]s from CRI list and status answers (the Go kubelet's
//! `kuberuntime/convert.go` and `kuberuntime_container.go` readers).

use std::collections::HashMap;

use cri_client::proto as pb;

use super::labels;
use crate::container::runtime_pod::{
    ContainerInfo, ContainerState, ContainerStateKind, RuntimePod, SandboxState,
};

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
            ip: String::new(),
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
    c.detailed = true;
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
