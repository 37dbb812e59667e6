//! The container manager (the Go kubelet's `pkg/kubelet/cm`): the kubepods
//! QoS cgroup tree, per-pod cgroups, node allocatable and the CRI resources
//! of each container.
//!
//! Only the cgroupfs driver is implemented, for cgroup v1 (a v1 hybrid
//! included) and v2. The tree, as the Go kubelet lays it out:
//!
//! ```text
//! <cgroupRoot>/kubepods                      node allocatable; Guaranteed pods
//! <cgroupRoot>/kubepods/burstable            cpu.shares = Σ burstable requests
//! <cgroupRoot>/kubepods/besteffort           cpu.shares = 2
//! <tier>/pod<uid>                            ResourceConfigForPod
//! <tier>/pod<uid>/<container-id>             made by runc
//! ```

pub mod cgroup_manager;
pub mod container_resources;
pub mod helpers;
pub mod node_allocatable;
pub mod pod_container_manager;
pub mod qos;
pub mod qos_container_manager;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use cri_client::proto as pb;
use k8s_openapi::api::core::v1::{Container, Pod};

use crate::config::CgroupDriver;
use crate::{pod_ref, pod_uid};
use cgroup_manager::{CgroupManager, Layout};
use container_resources::HostFacts;
use helpers::MachineInfo;
use pod_container_manager::{join_name, pod_cgroup_suffix, uid_of, valid_uid};
use qos_container_manager::QosContainerManager;

#[derive(Debug, thiserror::Error)]
pub enum CmError {
    #[error("cgroupDriver systemd needs a running systemd; use cgroupfs")]
    SystemdNotRunning,
    #[error("cgroupDriver systemd is not supported yet; use cgroupfs")]
    SystemdUnsupported,
    #[error("finding the cgroup hierarchies: {0}")]
    NoCgroups(String),
    #[error("the {0} cgroup controller is not available")]
    NoController(&'static str),
    #[error("writing {value} to {}: {reason}", path.display())]
    Write {
        value: String,
        path: PathBuf,
        reason: String,
    },
    #[error("reading {}: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    #[error("creating cgroup {}: {reason}", path.display())]
    Create { path: PathBuf, reason: String },
    #[error("removing cgroup {}: {reason}", path.display())]
    Remove { path: PathBuf, reason: String },
    #[error("{field}: {reason}")]
    Config { field: String, reason: String },
    #[error("pod UID {0:?} can't name a cgroup")]
    InvalidUid(String),
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

/// The cgroup tree berth owns, when cgroupsPerQOS is on.
struct Tree {
    cgroups: CgroupManager,
    qos: QosContainerManager,
}

pub struct ContainerManager {
    config: CmConfig,
    host: HostFacts,
    tree: Option<Tree>,
}

impl ContainerManager {
    /// Detects the host's cgroup setup and creates the QoS tree.
    pub fn new(config: CmConfig) -> Result<Self, CmError> {
        if config.driver == CgroupDriver::Systemd {
            // The Go kubelet checks the same directory (sd_booted).
            if !Path::new("/run/systemd/system").is_dir() {
                return Err(CmError::SystemdNotRunning);
            }
            return Err(CmError::SystemdUnsupported);
        }
        let layout = match Layout::detect() {
            Ok(l) => Some(l),
            Err(e) if config.cgroups_per_qos => return Err(e),
            Err(e) => {
                tracing::warn!("{e}; container resources assume cgroup v1");
                None
            }
        };
        Self::with_layout(config, layout, MachineInfo::read())
    }

    /// As [`ContainerManager::new`] with the layout and machine given (the
    /// seam tests use to run against a directory laid out like a cgroup
    /// mount).
    pub fn with_layout(
        config: CmConfig,
        layout: Option<Layout>,
        machine: MachineInfo,
    ) -> Result<Self, CmError> {
        let cgroups = layout.map(CgroupManager::new);
        let host = HostFacts {
            memory_capacity: machine.memory_capacity,
            cgroup_v2: cgroups.as_ref().is_some_and(CgroupManager::is_v2),
            swap_controller: cgroups.as_ref().is_some_and(swap_controller),
            hugepage_sizes: cgroups
                .as_ref()
                .filter(|c| c.has_hugetlb())
                .map(|c| c.hugepage_sizes().to_vec())
                .unwrap_or_default(),
        };
        let tree = match cgroups {
            Some(cgroups) if config.cgroups_per_qos => {
                let kubepods = join_name(&config.cgroup_root, "kubepods");
                let rc = node_allocatable::kubepods_config(
                    &machine,
                    &config.kube_reserved,
                    &config.system_reserved,
                    &config.enforce_node_allocatable,
                )?;
                cgroups.create(&kubepods, &rc)?;
                let qos = QosContainerManager::new(kubepods.clone());
                qos.start(&cgroups)?;
                tracing::info!(
                    cgroup = %format!("/{kubepods}"),
                    v2 = cgroups.is_v2(),
                    cpu_shares = rc.cpu_shares.unwrap_or_default(),
                    memory_limit = rc.memory.unwrap_or_default(),
                    "QoS cgroups ready"
                );
                Some(Tree { cgroups, qos })
            }
            _ => None,
        };
        Ok(ContainerManager { config, host, tree })
    }

    /// The cgroup manager, when pods get cgroups.
    pub fn cgroups(&self) -> Option<&CgroupManager> {
        self.tree.as_ref().map(|t| &t.cgroups)
    }

    fn pod_cgroup_name(tree: &Tree, pod: &Pod) -> String {
        format!(
            "{}/{}",
            tree.qos.qos_cgroup(qos::qos_class(pod)),
            pod_cgroup_suffix(pod_uid(pod))
        )
    }

    /// The pod's cgroup as RunPodSandbox's `cgroup_parent` ("" when pods
    /// aren't given cgroups). Pure: names, creates nothing.
    pub fn pod_cgroup_parent(&self, pod: &Pod) -> String {
        match &self.tree {
            Some(tree) if valid_uid(pod_uid(pod)) => {
                format!("/{}", Self::pod_cgroup_name(tree, pod))
            }
            _ => String::new(),
        }
    }

    /// Creates (or updates) the pod's cgroup with its pod-level limits and
    /// returns its `cgroup_parent`.
    /// Counts a pod that runs in the QoS tiers (burstable cpu.shares is the
    /// sum of its pods' requests), as the Go kubelet's syncPod does on every
    /// sync. Cheap when the pod is already counted: after a restart, pods
    /// adopted from the runtime are counted here, not at sandbox creation.
    pub fn note_pod(&self, pod: &Pod) {
        let Some(tree) = &self.tree else { return };
        let uid = pod_uid(pod);
        if valid_uid(uid)
            && tree.qos.add_pod(uid, pod)
            && let Err(e) = tree.qos.update_cgroups(&tree.cgroups)
        {
            tracing::warn!(pod = %pod_ref(pod), uid = %uid, "updating the QoS cgroups: {e}");
        }
    }

    pub fn ensure_pod_cgroup(&self, pod: &Pod) -> Result<String, CmError> {
        let Some(tree) = &self.tree else {
            return Ok(String::new());
        };
        let (pref, uid) = (pod_ref(pod), pod_uid(pod));
        if !valid_uid(uid) {
            return Err(CmError::InvalidUid(uid.to_string()));
        }
        // Tiers first, as the Go kubelet updates the QoS cgroups before
        // creating a pod's.
        if tree.qos.add_pod(uid, pod)
            && let Err(e) = tree.qos.update_cgroups(&tree.cgroups)
        {
            tracing::warn!(pod = %pref, uid = %uid, "updating the QoS cgroups: {e}");
        }
        let name = Self::pod_cgroup_name(tree, pod);
        let mut rc = helpers::resource_config_for_pod(pod);
        if self.config.pod_pids_limit > 0 {
            rc.pids_limit = Some(self.config.pod_pids_limit);
        }
        tree.cgroups.create(&name, &rc)?;
        tracing::debug!(pod = %pref, uid = %uid, cgroup = %format!("/{name}"), ?rc, "pod cgroup ready");
        Ok(format!("/{name}"))
    }

    /// CRI resources for one container of the pod.
    pub fn container_resources(
        &self,
        pod: &Pod,
        c: &Container,
    ) -> Option<pb::LinuxContainerResources> {
        Some(container_resources::linux_container_resources(
            pod, c, &self.host,
        ))
    }

    /// Removes the pod's cgroup once nothing runs in it. An error (processes
    /// still there) leaves it for the orphan clean-up to retry.
    pub fn remove_pod_cgroup(&self, uid: &str) -> Result<(), CmError> {
        let Some(tree) = &self.tree else {
            return Ok(());
        };
        if !valid_uid(uid) {
            return Ok(());
        }
        if tree.qos.remove_pod(uid)
            && let Err(e) = tree.qos.update_cgroups(&tree.cgroups)
        {
            tracing::warn!(uid = %uid, "updating the QoS cgroups: {e}");
        }
        let mut result = Ok(());
        for tier in tree.qos.tiers() {
            let name = format!("{tier}/{}", pod_cgroup_suffix(uid));
            if tree
                .cgroups
                .children(&tier)
                .iter()
                .any(|c| c == &pod_cgroup_suffix(uid))
            {
                match tree.cgroups.destroy(&name) {
                    Ok(()) => {
                        tracing::info!(uid = %uid, cgroup = %format!("/{name}"), "removed pod cgroup")
                    }
                    Err(e) => {
                        if result.is_ok() {
                            result = Err(e);
                        }
                    }
                }
            }
        }
        result
    }

    /// Removes the pod cgroups of pods that are neither `active` (have
    /// sandboxes or are desired) nor known to this manager, once no process
    /// is left in them. Also refreshes the QoS tiers, as the Go kubelet's
    /// periodic update. Returns how many were removed.
    pub fn cleanup_orphans(&self, active: &HashSet<String>) -> usize {
        let Some(tree) = &self.tree else {
            return 0;
        };
        if let Err(e) = tree.qos.update_cgroups(&tree.cgroups) {
            tracing::warn!("updating the QoS cgroups: {e}");
        }
        let known = tree.qos.known();
        let mut removed = 0;
        for tier in tree.qos.tiers() {
            for dir in tree.cgroups.children(&tier) {
                let Some(uid) = uid_of(&dir) else { continue };
                if active.contains(uid) || known.contains(uid) {
                    continue;
                }
                let name = format!("{tier}/{dir}");
                match tree.cgroups.pids(&name) {
                    Ok(pids) if pids.is_empty() => match tree.cgroups.destroy(&name) {
                        Ok(()) => {
                            removed += 1;
                            tracing::info!(uid = %uid, cgroup = %format!("/{name}"), "removed orphaned pod cgroup");
                        }
                        Err(e) => tracing::warn!(uid = %uid, "removing orphaned pod cgroup: {e}"),
                    },
                    Ok(pids) => tracing::debug!(
                        uid = %uid,
                        cgroup = %format!("/{name}"),
                        processes = pids.len(),
                        "orphaned pod cgroup still has processes; will retry"
                    ),
                    Err(e) => tracing::warn!(uid = %uid, "checking orphaned pod cgroup: {e}"),
                }
            }
        }
        removed
    }
}

/// Whether swap can be limited (the Go kubelet's `swapControllerAvailable`).
fn swap_controller(cgroups: &CgroupManager) -> bool {
    match cgroups.layout() {
        Layout::V1 { controllers, .. } => controllers
            .get("memory")
            .is_some_and(|m| m.join("memory.memsw.limit_in_bytes").exists()),
        Layout::V2 { root, .. } => {
            // The root has no memory.swap.max; look in our own cgroup.
            let own = std::fs::read_to_string("/proc/self/cgroup")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("0::").map(str::to_string))
                })
                .unwrap_or_default();
            root.join(own.trim_start_matches('/'))
                .join("memory.swap.max")
                .exists()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(per_qos: bool) -> CmConfig {
        CmConfig {
            driver: CgroupDriver::Cgroupfs,
            cgroup_root: "/".into(),
            cgroups_per_qos: per_qos,
            kube_reserved: BTreeMap::from([("memory".to_string(), "1Gi".to_string())]),
            system_reserved: BTreeMap::new(),
            enforce_node_allocatable: vec!["pods".into()],
            pod_pids_limit: 1024,
        }
    }

    const MACHINE: MachineInfo = MachineInfo {
        memory_capacity: 4 << 30,
        num_cpus: 2,
        pid_max: 32768,
    };

    fn v2_dir() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        tmp
    }

    fn pod(uid: &str, resources: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": uid, "namespace": "default", "uid": uid},
            "spec": {"containers": [{"name": "a", "image": "i", "resources": resources}]}}))
        .unwrap()
    }

    /// A cgroup file's value, trimmed; panics naming the file.
    pub(super) fn read(p: PathBuf) -> String {
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .trim()
            .to_string()
    }

    #[test]
    fn v2_tree_pods_and_cleanup() {
        let tmp = v2_dir();
        let t = tmp.path();
        let layout = Layout::v2_at(t).unwrap();
        let cm = ContainerManager::with_layout(config(true), Some(layout), MACHINE).unwrap();
        // kubepods: allocatable = 4Gi - 1Gi, 2 CPUs.
        assert_eq!(
            read(t.join("kubepods/memory.max")),
            (3i64 << 30).to_string()
        );
        assert_eq!(
            read(t.join("kubepods/cpu.weight")),
            helpers::shares_to_weight(2048).to_string()
        );
        assert_eq!(read(t.join("kubepods/besteffort/cpu.weight")), "1");
        assert_eq!(read(t.join("kubepods/burstable/cpu.weight")), "1");

        let g = pod(
            "g1",
            serde_json::json!({"limits": {"cpu": "500m", "memory": "64Mi"}}),
        );
        let b = pod("b1", serde_json::json!({"requests": {"cpu": "1"}}));
        let e = pod("e1", serde_json::json!({}));
        assert_eq!(cm.pod_cgroup_parent(&g), "/kubepods/podg1");
        assert_eq!(cm.ensure_pod_cgroup(&g).unwrap(), "/kubepods/podg1");
        assert_eq!(
            cm.ensure_pod_cgroup(&b).unwrap(),
            "/kubepods/burstable/podb1"
        );
        assert_eq!(
            cm.ensure_pod_cgroup(&e).unwrap(),
            "/kubepods/besteffort/pode1"
        );
        assert_eq!(read(t.join("kubepods/podg1/cpu.max")), "50000 100000");
        assert_eq!(
            read(t.join("kubepods/podg1/memory.max")),
            (64 << 20).to_string()
        );
        assert_eq!(read(t.join("kubepods/podg1/pids.max")), "1024");
        assert_eq!(read(t.join("kubepods/burstable/podb1/cpu.weight")), "100");
        assert!(!t.join("kubepods/burstable/podb1/cpu.max").exists());
        assert_eq!(read(t.join("kubepods/besteffort/pode1/cpu.weight")), "1");
        // The Burstable tier now weighs its one pod's request.
        assert_eq!(read(t.join("kubepods/burstable/cpu.weight")), "100");

        // An orphan from an earlier run, and one with a process in it.
        std::fs::create_dir_all(t.join("kubepods/besteffort/podold")).unwrap();
        std::fs::create_dir_all(t.join("kubepods/besteffort/podbusy/ctr")).unwrap();
        std::fs::write(
            t.join("kubepods/besteffort/podbusy/ctr/cgroup.procs"),
            "99\n",
        )
        .unwrap();
        std::fs::create_dir_all(t.join("kubepods/besteffort/podrunning")).unwrap();
        let active = HashSet::from(["running".to_string()]);
        assert_eq!(cm.cleanup_orphans(&active), 1);
        assert!(!t.join("kubepods/besteffort/podold").exists());
        assert!(t.join("kubepods/besteffort/podbusy").exists());
        assert!(t.join("kubepods/besteffort/podrunning").exists());
        // Known pods stay although the runtime doesn't list them yet.
        assert!(t.join("kubepods/besteffort/pode1").exists());

        cm.remove_pod_cgroup("b1").unwrap();
        assert!(!t.join("kubepods/burstable/podb1").exists());
        assert_eq!(read(t.join("kubepods/burstable/cpu.weight")), "1");
        cm.remove_pod_cgroup("g1").unwrap();
        assert!(!t.join("kubepods/podg1").exists());
        // Unknown and bad UIDs are no-ops.
        cm.remove_pod_cgroup("nope").unwrap();
        cm.remove_pod_cgroup("../x").unwrap();
        let mut bad = e.clone();
        bad.metadata.uid = Some("../etc".into());
        assert!(matches!(
            cm.ensure_pod_cgroup(&bad),
            Err(CmError::InvalidUid(_))
        ));
        assert_eq!(cm.pod_cgroup_parent(&bad), "");
    }

    #[test]
    fn no_cgroups_per_qos() {
        let tmp = v2_dir();
        let layout = Layout::v2_at(tmp.path()).unwrap();
        let cm = ContainerManager::with_layout(config(false), Some(layout), MACHINE).unwrap();
        let p = pod("x", serde_json::json!({}));
        assert_eq!(cm.pod_cgroup_parent(&p), "");
        assert_eq!(cm.ensure_pod_cgroup(&p).unwrap(), "");
        assert!(!tmp.path().join("kubepods").exists());
        // Resources still go to the runtime.
        let r = cm
            .container_resources(&p, &p.spec.as_ref().unwrap().containers[0])
            .unwrap();
        assert_eq!(r.oom_score_adj, 1000);
        assert_eq!(
            r.unified.get("memory.oom.group").map(String::as_str),
            Some("1")
        );
    }

    #[test]
    fn custom_cgroup_root() {
        let tmp = v2_dir();
        let mut cfg = config(true);
        cfg.cgroup_root = "/berth".into();
        let cm =
            ContainerManager::with_layout(cfg, Some(Layout::v2_at(tmp.path()).unwrap()), MACHINE)
                .unwrap();
        let p = pod("x", serde_json::json!({"requests": {"memory": "1Mi"}}));
        assert_eq!(
            cm.ensure_pod_cgroup(&p).unwrap(),
            "/berth/kubepods/burstable/podx"
        );
        assert!(tmp.path().join("berth/kubepods/burstable/podx").is_dir());
    }

    #[test]
    fn systemd_driver_without_systemd_is_refused() {
        if Path::new("/run/systemd/system").exists() {
            return;
        }
        let mut cfg = config(true);
        cfg.driver = CgroupDriver::Systemd;
        let err = ContainerManager::new(cfg).err().unwrap().to_string();
        assert_eq!(
            err,
            "cgroupDriver systemd needs a running systemd; use cgroupfs"
        );
    }
}
