//! Garbage collection of one pod's dead instances (the Go kubelet's
//! `kuberuntime_gc.go`, with its defaults for a single pod): keep the newest
//! exited instance of each container, for `logs --previous`, and remove the
//! rest, along with dead sandboxes other than the newest.

use std::collections::HashSet;

use super::KubeRuntimeManager;
use crate::container::runtime_pod::{ContainerStateKind, RuntimePod};

/// IDs to remove: containers beyond the newest exited instance of each name
/// (running ones are never collected), and dead sandboxes other than the
/// newest one that no remaining container belongs to.
pub fn collectable(rt: &RuntimePod) -> (Vec<String>, Vec<String>) {
    let mut kept_exited: HashSet<&str> = HashSet::new();
    let mut containers = Vec::new();
    let mut keep_sandboxes: HashSet<&str> = HashSet::new();
    for c in &rt.containers {
        match c.state {
            ContainerStateKind::Running => {
                keep_sandboxes.insert(&c.sandbox_id);
            }
            _ if kept_exited.insert(c.name()) => {
                keep_sandboxes.insert(&c.sandbox_id);
            }
            _ => containers.push(c.id.clone()),
        }
    }
    let newest = rt.latest_sandbox().map(|s| s.id.as_str());
    let sandboxes = rt
        .sandboxes
        .iter()
        .filter(|s| {
            !s.ready && Some(s.id.as_str()) != newest && !keep_sandboxes.contains(s.id.as_str())
        })
        .map(|s| s.id.clone())
        .collect();
    (containers, sandboxes)
}

impl KubeRuntimeManager {
    /// Removes what [`collectable`] picks, and the log files of removed
    /// containers.
    pub async fn gc_pod(&self, rt: &RuntimePod) {
        let (containers, sandboxes) = collectable(rt);
        let pod = format!("{}/{}", rt.namespace, rt.name);
        for id in containers {
            let log = rt.containers.iter().find(|c| c.id == id).map(|c| {
                self.settings
                    .pod_logs_dir
                    .join(format!("{}_{}_{}", rt.namespace, rt.name, rt.uid))
                    .join(c.name())
                    .join(format!("{}.log", c.info.restart_count))
            });
            match self.remove_container(&id).await {
                Ok(()) => {
                    tracing::debug!(pod = %pod, uid = %rt.uid, id = %super::short(&id), "removed dead container");
                    if let Some(log) = log {
                        let _ = std::fs::remove_file(log);
                    }
                }
                Err(e) => {
                    tracing::warn!(pod = %pod, uid = %rt.uid, id = %super::short(&id), "removing dead container: {e}")
                }
            }
        }
        for id in sandboxes {
            if let Err(e) = self
                .client
                .remove_pod_sandbox(cri_client::proto::RemovePodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                })
                .await
            {
                tracing::warn!(pod = %pod, uid = %rt.uid, id = %super::short(&id), "removing dead sandbox: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::runtime_pod::ContainerInfo;
    use crate::container::runtime_pod::{ContainerState, SandboxState};

    fn c(
        id: &str,
        name: &str,
        sandbox: &str,
        state: ContainerStateKind,
        created: i64,
    ) -> ContainerState {
        let info = ContainerInfo {
            name: name.into(),
            ..Default::default()
        };
        ContainerState::new(id.into(), sandbox.into(), info, state, created)
    }

    fn s(id: &str, ready: bool, created: i64) -> SandboxState {
        SandboxState {
            id: id.into(),
            attempt: 0,
            ready,
            created_at: created,
            hash: String::new(),
            ip: String::new(),
        }
    }

    #[test]
    fn keeps_running_and_newest_exited() {
        use ContainerStateKind::*;
        let rt = RuntimePod {
            sandboxes: vec![s("s3", true, 3), s("s2", false, 2), s("s1", false, 1)],
            containers: vec![
                c("a3", "a", "s3", Running, 30),
                c("a2", "a", "s2", Exited, 20),
                c("a1", "a", "s1", Exited, 10),
                c("b2", "b", "s3", Exited, 25),
                c("b1", "b", "s3", Exited, 15),
            ],
            ..Default::default()
        };
        let (containers, sandboxes) = collectable(&rt);
        assert_eq!(containers, ["a1", "b1"]);
        // s2 still holds a2 (a's previous instance); s1 is empty and dead.
        assert_eq!(sandboxes, ["s1"]);
    }
}
