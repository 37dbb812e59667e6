//! The CRI side of stats: list calls only, never one call per container.
//!
//! A collection cycle makes the cheap ones (ListPodSandbox, ListContainers,
//! ImageFsInfo). The runtime's stats calls are slow on containerd 1.6, which
//! asks every container's shim (ListContainerStats ~250 ms and
//! ListPodSandboxStats ~1.5 s for 110 pods on the test machine), so they run
//! on their own task at the same interval and the cycle uses their latest
//! answer; see [`super::StatsProvider::refresh_runtime_stats`].

use std::collections::HashMap;
use std::sync::Arc;

use cri_client::RuntimeClient;
use cri_client::proto as pb;

/// What the runtime said in one cycle.
#[derive(Debug, Default)]
pub struct CriSnapshot {
    /// Ready sandboxes.
    pub sandboxes: Vec<pb::PodSandbox>,
    /// Running containers.
    pub containers: Vec<pb::Container>,
    /// The latest ListContainerStats, by container id (empty until it first
    /// answers).
    pub container_stats: Arc<HashMap<String, pb::ContainerStats>>,
    /// The latest ListPodSandboxStats, by sandbox id, when the runtime
    /// answers it.
    pub sandbox_stats: Option<Arc<HashMap<String, pb::PodSandboxStats>>>,
    /// ImageFsInfo's first image filesystem.
    pub image_fs: Option<pb::FilesystemUsage>,
}

/// ListPodSandbox, ListContainers and ImageFsInfo, concurrently. Only the
/// two list calls must succeed.
pub async fn snapshot(client: &RuntimeClient) -> Result<CriSnapshot, cri_client::Error> {
    let sandboxes = client.list_pod_sandbox(pb::ListPodSandboxRequest {
        filter: Some(pb::PodSandboxFilter {
            state: Some(pb::PodSandboxStateValue {
                state: pb::PodSandboxState::SandboxReady as i32,
            }),
            ..Default::default()
        }),
    });
    let containers = client.list_containers(pb::ListContainersRequest {
        filter: Some(pb::ContainerFilter {
            state: Some(pb::ContainerStateValue {
                state: pb::ContainerState::ContainerRunning as i32,
            }),
            ..Default::default()
        }),
    });
    let image_fs = client.image_fs_info(pb::ImageFsInfoRequest::default());
    let (sandboxes, containers, image_fs) = tokio::join!(sandboxes, containers, image_fs);
    let mut snap = CriSnapshot {
        sandboxes: sandboxes?.items,
        containers: containers?.containers,
        ..Default::default()
    };
    snap.image_fs = image_fs
        .ok()
        .and_then(|r| r.image_filesystems.into_iter().next());
    Ok(snap)
}

/// ListContainerStats, by container id.
pub async fn container_stats(
    client: &RuntimeClient,
) -> Result<HashMap<String, pb::ContainerStats>, cri_client::Error> {
    let r = client
        .list_container_stats(pb::ListContainerStatsRequest::default())
        .await?;
    Ok(r.stats
        .into_iter()
        .filter_map(|s| Some((s.attributes.as_ref()?.id.clone(), s)))
        .collect())
}

/// ListPodSandboxStats, by sandbox id. containerd 1.6 fails the whole call
/// when any sandbox has no cgroup parent ("cgroupPath is empty").
pub async fn sandbox_stats(
    client: &RuntimeClient,
) -> Result<HashMap<String, pb::PodSandboxStats>, cri_client::Error> {
    let r = client
        .list_pod_sandbox_stats(pb::ListPodSandboxStatsRequest::default())
        .await?;
    Ok(r.stats
        .into_iter()
        .filter_map(|s| Some((s.attributes.as_ref()?.id.clone(), s)))
        .collect())
}

/// The pid of a container's init process, from ContainerStatus's verbose
/// info (containerd and CRI-O both put `pid` there). Only used for
/// containers whose cgroup isn't where berth expects it.
pub async fn container_pid(client: &RuntimeClient, id: &str) -> Option<u32> {
    let r = client
        .container_status(pb::ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: true,
        })
        .await
        .ok()?;
    let info = r.info.get("info")?;
    let v: serde_json::Value = serde_json::from_str(info).ok()?;
    v.get("pid")?.as_u64().and_then(|p| u32::try_from(p).ok())
}

/// A UInt64Value's value.
pub fn val(v: Option<pb::UInt64Value>) -> Option<u64> {
    v.map(|v| v.value)
}
