//! The CRI side of stats: the few calls the pod cache can't answer, never one
//! call per container. Which pods and containers run comes from the pod cache
//! (PLEG's relist), so stats never list sandboxes or containers themselves.
//!
//! The runtime's stats calls are slow on containerd 1.6, which asks every
//! container's shim (ListContainerStats ~250 ms and ListPodSandboxStats
//! ~1.5 s for 110 pods on the test machine), so they run on their own task at
//! the same interval and the cycle uses their latest answer; see
//! [`super::StatsProvider::refresh_runtime_stats`].

use std::collections::HashMap;

use cri_client::RuntimeClient;
use cri_client::proto as pb;

/// ImageFsInfo's first image filesystem; `None` when the runtime doesn't
/// answer (the node's `runtime.imageFs` is then left out).
pub async fn image_fs(client: &RuntimeClient) -> Option<pb::FilesystemUsage> {
    client
        .image_fs_info(pb::ImageFsInfoRequest::default())
        .await
        .ok()
        .and_then(|r| r.image_filesystems.into_iter().next())
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
