//! The [`LogLocator`] over berth's own state, as the Go kubelet's
//! `GetKubeletContainerLogs` finds a log: the pod by namespace and name
//! among the pods the status manager knows, the container in its spec, the
//! instance from its published status (`validateContainerLogStatus`), and the
//! file from the runtime's `ContainerStatus.log_path`.

use std::path::PathBuf;
use std::sync::Arc;

use cri_client::RuntimeClient;
use cri_client::proto as pb;
use futures_util::future::BoxFuture;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use super::{LogLocator, LogTarget, LogsError};
use crate::status::StatusManager;

/// Logs of the pods in the [`StatusManager`], located through the runtime.
pub struct CriLogLocator {
    status: Arc<StatusManager>,
    runtime: RuntimeClient,
}

impl CriLogLocator {
    pub fn new(status: Arc<StatusManager>, runtime: RuntimeClient) -> Self {
        CriLogLocator { status, runtime }
    }

    async fn find(
        &self,
        namespace: &str,
        name: &str,
        container: &str,
        previous: bool,
    ) -> Result<LogTarget, LogsError> {
        let pod = self
            .status
            .find(namespace, name)
            .ok_or_else(|| LogsError::PodNotFound {
                pod: name.to_owned(),
            })?;
        if !has_container(&pod, container) {
            return Err(LogsError::ContainerNotFound {
                container: container.to_owned(),
                pod: name.to_owned(),
            });
        }
        let uid = crate::pod_uid(&pod).to_owned();
        let id = container_id(&pod, name, container, previous)?;
        let st = self
            .runtime
            .container_status(pb::ContainerStatusRequest {
                container_id: id.clone(),
                verbose: false,
            })
            .await
            .map_err(|e| {
                LogsError::Runtime(format!(
                    "failed to get the status of container {container:?} in pod {name:?}: {e}"
                ))
            })?
            .status
            .ok_or_else(|| {
                LogsError::Runtime(format!(
                    "the runtime returned no status for container {container:?} in pod {name:?}"
                ))
            })?;
        if st.log_path.is_empty() {
            return Err(LogsError::Runtime(format!(
                "container {container:?} in pod {name:?} has no log file"
            )));
        }
        tracing::debug!(pod = %format!("{namespace}/{name}"), %uid, container, path = %st.log_path, "container log located");
        Ok(LogTarget {
            path: PathBuf::from(st.log_path),
            pod_uid: uid,
            container_id: id,
        })
    }
}

impl LogLocator for CriLogLocator {
    fn locate<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
        container: &'a str,
        previous: bool,
    ) -> BoxFuture<'a, Result<LogTarget, LogsError>> {
        Box::pin(self.find(namespace, pod, container, previous))
    }

    fn is_running<'a>(&'a self, target: &'a LogTarget) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            match self
                .runtime
                .container_status(pb::ContainerStatusRequest {
                    container_id: target.container_id.clone(),
                    verbose: false,
                })
                .await
            {
                Ok(r) => r
                    .status
                    .is_some_and(|s| s.state == pb::ContainerState::ContainerRunning as i32),
                Err(e) => {
                    tracing::debug!(uid = %target.pod_uid, container_id = %target.container_id, "container status for a followed log: {e}");
                    false
                }
            }
        })
    }
}

/// Whether the pod's spec has a container (init and ephemeral ones too) of
/// that name.
fn has_container(pod: &Pod, name: &str) -> bool {
    let Some(spec) = &pod.spec else { return false };
    spec.containers.iter().any(|c| c.name == name)
        || spec
            .init_containers
            .iter()
            .flatten()
            .any(|c| c.name == name)
        || spec
            .ephemeral_containers
            .iter()
            .flatten()
            .any(|c| c.name == name)
}

fn find_status<'a>(pod: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
    let st = pod.status.as_ref()?;
    [
        &st.container_statuses,
        &st.init_container_statuses,
        &st.ephemeral_container_statuses,
    ]
    .into_iter()
    .flatten()
    .flatten()
    .find(|c| c.name == name)
}

/// The runtime ID of the instance whose log to show, chosen from the
/// published status as Go's `validateContainerLogStatus` does, with its
/// messages.
pub(super) fn container_id(
    pod: &Pod,
    pod_name: &str,
    container: &str,
    previous: bool,
) -> Result<String, LogsError> {
    let unavailable = |what: &str| {
        LogsError::Unavailable(format!(
            "container {container:?} in pod {pod_name:?} {what}"
        ))
    };
    let cs = find_status(pod, container).ok_or_else(|| unavailable("is not available"))?;
    let id_of = |id: Option<&String>| id.filter(|s| !s.is_empty()).cloned();
    let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    let last_id = last.and_then(|t| id_of(t.container_id.as_ref()));
    let state = cs.state.clone().unwrap_or_default();
    let id = if previous {
        last_id.ok_or_else(|| {
            LogsError::Unavailable(format!(
                "previous terminated container {container:?} in pod {pod_name:?} not found"
            ))
        })?
    } else if state.running.is_some() {
        id_of(cs.container_id.as_ref()).ok_or_else(|| unavailable("has no container ID"))?
    } else if let Some(t) = &state.terminated {
        // The next instance may not have started: its predecessor's log.
        id_of(t.container_id.as_ref())
            .or(last_id)
            .ok_or_else(|| unavailable("is terminated"))?
    } else if last.is_some() {
        last_id.ok_or_else(|| unavailable("is terminated"))?
    } else if let Some(w) = &state.waiting {
        let reason = w.reason.as_deref().unwrap_or("");
        return Err(match reason {
            "ErrImagePull" => unavailable("is waiting to start: image can't be pulled"),
            "ImagePullBackOff" => {
                unavailable("is waiting to start: trying and failing to pull image")
            }
            _ => unavailable(&format!("is waiting to start: {reason}")),
        });
    } else {
        return Err(unavailable("is waiting to start - no logs yet"));
    };
    // `containerd://<id>` → `<id>`.
    Ok(match id.split_once("://") {
        Some((_, bare)) => bare.to_owned(),
        None => id,
    })
}
