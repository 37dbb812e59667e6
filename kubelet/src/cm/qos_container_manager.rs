//! The QoS tiers under `kubepods` (the Go kubelet's
//! `qos_container_manager_linux.go`): `burstable` and `besteffort`, with
//! BestEffort held at the minimum cpu.shares and Burstable given the sum of
//! its pods' cpu requests. Guaranteed pods live directly in `kubepods`.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::Pod;

use super::CmError;
use super::cgroup_manager::CgroupManager;
use super::helpers::{self, MIN_SHARES, ResourceConfig, milli_cpu_to_shares};
use super::qos::{QosClass, qos_class};

/// The hugetlb limit the Go kubelet writes for "unbounded" on QoS tiers.
const HUGEPAGES_UNBOUNDED: i64 = 1 << 62;

/// What the tiers need to know of a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PodEntry {
    qos: QosClass,
    /// The pod's effective cpu request in milli-CPU.
    cpu_request: i64,
}

pub struct QosContainerManager {
    /// The `kubepods` cgroup name, relative to the hierarchy roots.
    kubepods: String,
    /// The pods with a cgroup, by UID; the Go kubelet asks its pod manager
    /// for the active pods instead.
    pods: Mutex<HashMap<String, PodEntry>>,
}

impl QosContainerManager {
    pub fn new(kubepods: String) -> Self {
        QosContainerManager {
            kubepods,
            pods: Mutex::new(HashMap::new()),
        }
    }

    /// The cgroup a pod of this class goes under.
    pub fn qos_cgroup(&self, qos: QosClass) -> String {
        match qos {
            QosClass::Guaranteed => self.kubepods.clone(),
            QosClass::Burstable => format!("{}/burstable", self.kubepods),
            QosClass::BestEffort => format!("{}/besteffort", self.kubepods),
        }
    }

    /// All tiers, where pod cgroups may be.
    pub fn tiers(&self) -> [String; 3] {
        [
            self.qos_cgroup(QosClass::Guaranteed),
            self.qos_cgroup(QosClass::Burstable),
            self.qos_cgroup(QosClass::BestEffort),
        ]
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PodEntry>> {
        self.pods.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the pod; true when the Burstable sum changed.
    pub fn add_pod(&self, uid: &str, pod: &Pod) -> bool {
        let qos = qos_class(pod);
        let cpu_request = helpers::pod_requests(pod)
            .get("cpu")
            .map_or(0, |v| helpers::milli(*v));
        let entry = PodEntry { qos, cpu_request };
        let old = self.lock().insert(uid.to_string(), entry);
        old != Some(entry)
            && (qos == QosClass::Burstable || old.is_some_and(|o| o.qos == QosClass::Burstable))
    }

    /// Forgets the pod; true when the Burstable sum changed.
    pub fn remove_pod(&self, uid: &str) -> bool {
        self.lock()
            .remove(uid)
            .is_some_and(|e| e.qos == QosClass::Burstable)
    }

    /// The UIDs of the pods recorded.
    pub fn known(&self) -> HashSet<String> {
        self.lock().keys().cloned().collect()
    }

    /// The Burstable tier's shares: its pods' cpu requests summed.
    pub fn burstable_shares(&self) -> u64 {
        let milli: i64 = self
            .lock()
            .values()
            .filter(|e| e.qos == QosClass::Burstable)
            .map(|e| e.cpu_request)
            .fold(0i64, i64::saturating_add);
        milli_cpu_to_shares(milli)
    }

    fn tier_configs(&self, cgroups: &CgroupManager) -> [(String, ResourceConfig); 2] {
        let mut hugepages = std::collections::BTreeMap::new();
        if cgroups.has_hugetlb() {
            for size in cgroups.hugepage_sizes() {
                if let Some(bytes) = parse_size_name(size) {
                    hugepages.insert(bytes, HUGEPAGES_UNBOUNDED);
                }
            }
        }
        [
            (
                self.qos_cgroup(QosClass::Burstable),
                ResourceConfig {
                    cpu_shares: Some(self.burstable_shares()),
                    hugepage_limits: hugepages.clone(),
                    ..Default::default()
                },
            ),
            (
                self.qos_cgroup(QosClass::BestEffort),
                ResourceConfig {
                    cpu_shares: Some(MIN_SHARES),
                    hugepage_limits: hugepages,
                    ..Default::default()
                },
            ),
        ]
    }

    /// Creates the Burstable and BestEffort tiers.
    pub fn start(&self, cgroups: &CgroupManager) -> Result<(), CmError> {
        for (name, rc) in self.tier_configs(cgroups) {
            cgroups.create(&name, &rc)?;
        }
        Ok(())
    }

    /// Rewrites the tiers' cpu shares from the pods recorded.
    pub fn update_cgroups(&self, cgroups: &CgroupManager) -> Result<(), CmError> {
        for (name, rc) in self.tier_configs(cgroups) {
            let rc = ResourceConfig {
                cpu_shares: rc.cpu_shares,
                ..Default::default()
            };
            cgroups.update(&name, &rc)?;
        }
        Ok(())
    }
}

/// "2MB" → 2097152.
fn parse_size_name(s: &str) -> Option<i64> {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let n: i64 = digits.parse().ok()?;
    let shift = match &s[digits.len()..] {
        "B" => 0,
        "KB" => 10,
        "MB" => 20,
        "GB" => 30,
        "TB" => 40,
        "PB" => 50,
        _ => return None,
    };
    n.checked_mul(1 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str, resources: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": uid, "uid": uid},
            "spec": {"containers": [{"name": "a", "image": "i", "resources": resources}]}}))
        .unwrap()
    }

    #[test]
    fn burstable_shares_follow_pods() {
        let q = QosContainerManager::new("kubepods".into());
        assert_eq!(q.burstable_shares(), 2);
        assert!(q.add_pod(
            "a",
            &pod("a", serde_json::json!({"requests": {"cpu": "250m"}}))
        ));
        assert!(q.add_pod(
            "b",
            &pod(
                "b",
                serde_json::json!({"requests": {"cpu": "0.5"}, "limits": {"cpu": "1"}})
            )
        ));
        // Guaranteed and BestEffort pods don't count.
        assert!(!q.add_pod(
            "g",
            &pod(
                "g",
                serde_json::json!({"limits": {"cpu": "1", "memory": "1Gi"}})
            )
        ));
        assert!(!q.add_pod("e", &pod("e", serde_json::json!({}))));
        assert_eq!(q.burstable_shares(), milli_cpu_to_shares(750));
        // The same pod again changes nothing.
        assert!(!q.add_pod(
            "a",
            &pod("a", serde_json::json!({"requests": {"cpu": "250m"}}))
        ));
        assert!(q.remove_pod("b"));
        assert!(!q.remove_pod("g"));
        assert_eq!(q.burstable_shares(), 256);
        assert_eq!(q.known(), HashSet::from(["a".to_string(), "e".to_string()]));
        assert_eq!(q.qos_cgroup(QosClass::Guaranteed), "kubepods");
        assert_eq!(q.qos_cgroup(QosClass::Burstable), "kubepods/burstable");
    }

    #[test]
    fn size_names() {
        assert_eq!(parse_size_name("2MB"), Some(2 << 20));
        assert_eq!(parse_size_name("1GB"), Some(1 << 30));
        assert_eq!(parse_size_name("x"), None);
    }
}
