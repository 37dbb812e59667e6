//! The container manager (the Go kubelet's `pkg/kubelet/cm`): the kubepods
//! QoS cgroup tree, per-pod cgroups, node allocatable and the CRI resources
//! of each container.
//!
//! SKELETON: the integration points below are wired into the runtime
//! manager; their bodies are filled in by the cgroups work (issue 5).

pub mod qos;

use std::collections::BTreeMap;

use cri_client::proto as pb;
use k8s_openapi::api::core::v1::{Container, Pod};

use crate::config::CgroupDriver;

#[derive(Debug, thiserror::Error)]
pub enum CmError {
    #[error("cgroupDriver systemd needs a running systemd; use cgroupfs")]
    SystemdNotRunning,
}

/// The KubeletConfiguration fields the container manager uses.
#[derive(Clone, Debug)]
pub struct CmConfig {
    pub driver: CgroupDriver,
    pub cgroup_root: String,
    pub cgroups_per_qos: bool,
    pub kube_reserved: BTreeMap<String, String>,
    pub system_reserved: BTreeMap<String, String>,
    pub enforce_node_allocatable: Vec<String>,
    pub pod_pids_limit: i64,
}

pub struct ContainerManager {
    #[allow(dead_code)]
    config: CmConfig,
}

impl ContainerManager {
    /// Detects the host's cgroup setup and creates the QoS tree.
    pub fn new(config: CmConfig) -> Result<Self, CmError> {
        Ok(ContainerManager { config })
    }

    /// The pod's cgroup as RunPodSandbox's `cgroup_parent` ("" when pods
    /// aren't given cgroups). Pure: names, creates nothing.
    pub fn pod_cgroup_parent(&self, _pod: &Pod) -> String {
        String::new()
    }

    /// Creates (or updates) the pod's cgroup with its pod-level limits and
    /// returns its `cgroup_parent`.
    pub fn ensure_pod_cgroup(&self, pod: &Pod) -> Result<String, CmError> {
        Ok(self.pod_cgroup_parent(pod))
    }

    /// CRI resources for one container of the pod.
    pub fn container_resources(
        &self,
        _pod: &Pod,
        _c: &Container,
    ) -> Option<pb::LinuxContainerResources> {
        None
    }

    /// Removes the pod's cgroup once nothing runs in it.
    pub fn remove_pod_cgroup(&self, _uid: &str) -> Result<(), CmError> {
        Ok(())
    }
}
