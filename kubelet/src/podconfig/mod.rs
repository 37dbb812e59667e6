//! Merges the pod sources into one desired set keyed by UID (the Go
//! kubelet's `pkg/kubelet/config/config.go`). Each source delivers full
//! snapshots; the file source is the only one today, and an apiserver source
//! slots in as another name.

pub mod apiserver;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use crate::{pod_ref, pod_uid};

/// `kubernetes.io/config.source` values, as the Go kubelet names them.
pub const FILE_SOURCE: &str = "file";
pub const API_SOURCE: &str = "api";

#[derive(Debug)]
pub struct PodConfig {
    /// Sources that must deliver once before Berth may remove pods it finds
    /// in the runtime but not in the desired set (else a restart would kill
    /// everything before the manifests are read).
    expected: BTreeSet<&'static str>,
    seen: BTreeSet<&'static str>,
    sources: HashMap<&'static str, HashMap<String, Arc<Pod>>>,
}

impl PodConfig {
    pub fn new(expected: &[&'static str]) -> Self {
        PodConfig {
            expected: expected.iter().copied().collect(),
            seen: BTreeSet::new(),
            sources: HashMap::new(),
        }
    }

    /// Replaces what `source` wants. Returns true when the merged set changed.
    /// The pods are kept as given: a source that hands out the same Arc for an
    /// unchanged pod (the file source does) keeps a single copy of it.
    pub fn set_source(&mut self, source: &'static str, pods: Vec<Arc<Pod>>) -> bool {
        self.seen.insert(source);
        let mut next: HashMap<String, Arc<Pod>> = HashMap::new();
        for pod in pods {
            let uid = pod_uid(&pod).to_string();
            if uid.is_empty() {
                tracing::warn!(pod = %pod_ref(&pod), source, "pod without a UID ignored");
                continue;
            }
            next.insert(uid, pod);
        }
        let prev = self.sources.insert(source, next);
        !same_pods(prev.as_ref(), self.sources.get(source))
    }

    /// Every source that must report has reported at least once.
    pub fn sources_ready(&self) -> bool {
        self.expected.is_subset(&self.seen)
    }

    /// The merged desired set. When two sources name the same UID, the file
    /// wins: a static pod is the node's own.
    pub fn desired(&self) -> HashMap<String, Arc<Pod>> {
        let mut out = HashMap::new();
        for source in [API_SOURCE, FILE_SOURCE] {
            if let Some(pods) = self.sources.get(source) {
                out.extend(pods.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        out
    }
}

/// Map equality that checks pointers before values: shared pods are equal
/// without walking them.
fn same_pods(a: Option<&HashMap<String, Arc<Pod>>>, b: Option<&HashMap<String, Arc<Pod>>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => {
            a.len() == b.len()
                && a.iter().all(|(uid, pod)| {
                    b.get(uid)
                        .is_some_and(|other| Arc::ptr_eq(pod, other) || pod == other)
                })
        }
        (None, None) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str, image: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(serde_json::json!({"metadata": {"name": "p", "uid": uid},
                "spec": {"containers": [{"name": "c", "image": image}]}}))
            .unwrap(),
        )
    }

    #[test]
    fn merges_and_reports_changes() {
        let mut c = PodConfig::new(&[FILE_SOURCE]);
        assert!(!c.sources_ready());
        assert!(c.set_source(FILE_SOURCE, vec![pod("a", "x"), pod("b", "x")]));
        assert!(c.sources_ready());
        assert!(
            !c.set_source(FILE_SOURCE, vec![pod("b", "x"), pod("a", "x")]),
            "same set"
        );
        assert!(c.set_source(FILE_SOURCE, vec![pod("a", "y")]));
        let d = c.desired();
        assert_eq!(d.len(), 1);
        assert_eq!(
            d["a"].spec.as_ref().unwrap().containers[0].image.as_deref(),
            Some("y")
        );
    }

    #[test]
    fn keeps_the_given_arcs() {
        let mut c = PodConfig::new(&[FILE_SOURCE]);
        let a = pod("a", "x");
        assert!(c.set_source(FILE_SOURCE, vec![Arc::clone(&a)]));
        assert!(Arc::ptr_eq(&c.desired()["a"], &a));
        assert!(!c.set_source(FILE_SOURCE, vec![Arc::clone(&a)]), "same Arc");
    }

    #[test]
    fn an_empty_first_snapshot_still_counts() {
        let mut c = PodConfig::new(&[FILE_SOURCE]);
        c.set_source(FILE_SOURCE, vec![]);
        assert!(c.sources_ready());
        assert!(c.desired().is_empty());
    }
}
