//! The apiserver pod source (the Go kubelet's `pkg/kubelet/config/apiserver.go`):
//! a watch of the pods bound to this node (`spec.nodeName=<node>`), handed
//! to the pod config as full snapshots under [`API_SOURCE`].
//!
//! What the pod workers see is the pod's metadata and spec only: the status,
//! `resourceVersion` and `managedFields` change with every status write
//! (berth's own among them), and a pod whose spec did not change must keep
//! the same `Arc`, or each status write would restart its sync. Mirror pods
//! (the apiserver's copies of static pods) are not pods to run: they go to
//! their own channel, for the mirror pod reconciler.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use tokio::sync::{mpsc, watch};

use super::API_SOURCE;
use crate::kubelet_node_status::ClientSource;
use crate::sync_loop::SourceUpdate;
use crate::{pod_ref, pod_uid};

/// The annotation that marks a mirror pod (its value is the static pod's
/// `kubernetes.io/config.hash`).
pub const CONFIG_MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

pub fn is_mirror_pod(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(CONFIG_MIRROR_ANNOTATION))
}

/// The pod as the workers see it: metadata and spec, marked as coming from
/// the apiserver, without the fields that change on every write. Of the
/// status only a terminal phase is kept: such a pod is never run again.
pub fn desired_pod(pod: &Pod) -> Pod {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    let mut p = Pod {
        metadata: pod.metadata.clone(),
        spec: pod.spec.clone(),
        status: matches!(phase, Some("Succeeded" | "Failed")).then(|| PodStatus {
            phase: phase.map(str::to_string),
            ..Default::default()
        }),
    };
    p.metadata.resource_version = None;
    p.metadata.managed_fields = None;
    p.metadata.generation = None;
    p.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(
            static_pods::identity::CONFIG_SOURCE_ANNOTATION.to_string(),
            API_SOURCE.to_string(),
        );
    p
}

/// The pods of this node as last listed and watched.
#[derive(Default)]
struct Store {
    current: PodSets,
    /// Filled during a (re)list, swapped in when it is done.
    init: Option<PodSets>,
}

#[derive(Default)]
struct PodSets {
    /// UID → the pod as the workers see it.
    pods: HashMap<String, Arc<Pod>>,
    /// UID → the mirror pod as the apiserver has it.
    mirrors: HashMap<String, Arc<Pod>>,
}

impl PodSets {
    /// Puts a pod in, reusing `previous` when what the workers see did not
    /// change. Returns whether the set changed.
    fn put(&mut self, previous: Option<&Arc<Pod>>, pod: Pod) -> bool {
        let uid = pod_uid(&pod).to_string();
        if uid.is_empty() {
            return false;
        }
        if is_mirror_pod(&pod) {
            let changed = self.mirrors.get(&uid).is_none_or(|m| **m != pod);
            self.mirrors.insert(uid, Arc::new(pod));
            return changed;
        }
        let next = match previous {
            Some(old) if **old == desired_pod(&pod) => old.clone(),
            _ => Arc::new(desired_pod(&pod)),
        };
        let changed = self.pods.get(&uid).is_none_or(|p| !Arc::ptr_eq(p, &next));
        self.pods.insert(uid, next);
        changed
    }
}

impl Store {
    /// Applies one watch event. Returns (pods changed, mirrors changed).
    fn apply(&mut self, event: Event<Pod>) -> (bool, bool) {
        match event {
            Event::Init => {
                self.init = Some(PodSets::default());
                (false, false)
            }
            Event::InitApply(pod) => {
                if let Some(init) = self.init.as_mut() {
                    init.put(self.current.pods.get(pod_uid(&pod)), pod);
                }
                (false, false)
            }
            Event::InitDone => {
                let Some(init) = self.init.take() else {
                    return (false, false);
                };
                let pods_changed = !same_arcs(&self.current.pods, &init.pods);
                let mirrors_changed = self.current.mirrors != init.mirrors;
                self.current = init;
                (pods_changed, mirrors_changed)
            }
            Event::Apply(pod) => {
                let mirror = is_mirror_pod(&pod);
                let previous = self.current.pods.get(pod_uid(&pod)).cloned();
                let changed = self.current.put(previous.as_ref(), pod);
                if mirror {
                    (false, changed)
                } else {
                    (changed, false)
                }
            }
            Event::Delete(pod) => {
                let uid = pod_uid(&pod);
                (
                    self.current.pods.remove(uid).is_some(),
                    self.current.mirrors.remove(uid).is_some(),
                )
            }
        }
    }
}

fn same_arcs(a: &HashMap<String, Arc<Pod>>, b: &HashMap<String, Arc<Pod>>) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(k, v)| b.get(k).is_some_and(|o| Arc::ptr_eq(v, o)))
}

/// Watches the node's pods for ever: each change of the pods to run goes to
/// `updates` as a full snapshot, each change of the mirror pods to
/// `mirrors`. The first snapshot follows the first complete list, so the
/// pod config only then counts the source as ready. A broken watch is
/// re-listed with a fresh client (the credentials may have rotated).
pub async fn run(
    client: ClientSource,
    node_name: String,
    updates: mpsc::Sender<SourceUpdate>,
    mirrors: watch::Sender<Vec<Arc<Pod>>>,
) {
    let mut store = Store::default();
    let mut listed = false;
    let mut failures = 0u32;
    loop {
        let api: Api<Pod> = Api::all(client());
        let cfg = watcher::Config::default().fields(&format!("spec.nodeName={node_name}"));
        let stream = watcher::watcher(api, cfg);
        futures_util::pin_mut!(stream);
        while let Some(item) = stream.next().await {
            let event = match item {
                Ok(e) => e,
                Err(e) => {
                    failures += 1;
                    if failures == 1 {
                        tracing::warn!(node = %node_name, "watching the node's pods: {e}; retrying");
                    } else {
                        tracing::debug!(node = %node_name, failures, "watching the node's pods: {e}");
                    }
                    break;
                }
            };
            if failures > 0 && matches!(event, Event::InitDone) {
                tracing::info!(node = %node_name, "watching the node's pods again");
                failures = 0;
            }
            let first = !listed && matches!(event, Event::InitDone);
            if let Event::Apply(p) | Event::InitApply(p) = &event
                && p.metadata.deletion_timestamp.is_some()
            {
                tracing::debug!(pod = %pod_ref(p), uid = %pod_uid(p), "pod marked for deletion");
            }
            let (pods_changed, mirrors_changed) = store.apply(event);
            if first {
                listed = true;
            }
            if (pods_changed || first) && listed {
                let snapshot = store.current.pods.values().cloned().collect();
                let update = SourceUpdate {
                    source: API_SOURCE,
                    pods: snapshot,
                };
                if updates.send(update).await.is_err() {
                    return;
                }
            }
            if mirrors_changed || first {
                mirrors.send_replace(store.current.mirrors.values().cloned().collect());
            }
        }
        // The stream ended or failed: list again after a pause that grows
        // while the apiserver stays away.
        let pause = Duration::from_millis(500) * 2u32.saturating_pow(failures.min(6));
        tokio::time::sleep(pause.min(Duration::from_secs(30))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str, rv: &str, image: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "default", "uid": uid, "resourceVersion": rv},
            "spec": {"nodeName": "n", "containers": [{"name": "c", "image": image}]},
            "status": {"phase": "Pending"}}))
        .unwrap()
    }

    #[test]
    fn a_status_only_change_keeps_the_same_arc() {
        let mut s = Store::default();
        s.apply(Event::Init);
        s.apply(Event::InitApply(pod("a", "1", "x")));
        assert_eq!(s.apply(Event::InitDone), (true, false));
        let before = s.current.pods["a"].clone();
        assert!(before.status.is_none());
        assert_eq!(
            before.metadata.annotations.as_ref().unwrap()["kubernetes.io/config.source"],
            "api"
        );
        let mut next = pod("a", "2", "x");
        next.status.as_mut().unwrap().phase = Some("Running".into());
        assert_eq!(s.apply(Event::Apply(next)), (false, false));
        assert!(Arc::ptr_eq(&before, &s.current.pods["a"]));
        assert_eq!(s.apply(Event::Apply(pod("a", "3", "y"))), (true, false));
        assert!(!Arc::ptr_eq(&before, &s.current.pods["a"]));
    }

    #[test]
    fn a_relist_keeps_unchanged_pods_and_drops_gone_ones() {
        let mut s = Store::default();
        s.apply(Event::Init);
        s.apply(Event::InitApply(pod("a", "1", "x")));
        s.apply(Event::InitApply(pod("b", "1", "x")));
        s.apply(Event::InitDone);
        let a = s.current.pods["a"].clone();
        s.apply(Event::Init);
        s.apply(Event::InitApply(pod("a", "5", "x")));
        assert_eq!(
            s.current.pods.len(),
            2,
            "the old set stands until the list is done"
        );
        assert_eq!(s.apply(Event::InitDone), (true, false));
        assert!(Arc::ptr_eq(&a, &s.current.pods["a"]));
        assert!(!s.current.pods.contains_key("b"));
        s.apply(Event::Init);
        s.apply(Event::InitApply(pod("a", "6", "x")));
        assert_eq!(s.apply(Event::InitDone), (false, false), "nothing changed");
    }

    #[test]
    fn mirror_pods_go_their_own_way() {
        let mut s = Store::default();
        s.apply(Event::Init);
        s.apply(Event::InitDone);
        let mut m = pod("m", "1", "x");
        m.metadata.annotations =
            Some([(CONFIG_MIRROR_ANNOTATION.to_string(), "h".to_string())].into());
        assert_eq!(s.apply(Event::Apply(m.clone())), (false, true));
        assert!(s.current.pods.is_empty());
        assert_eq!(s.apply(Event::Delete(m)), (false, true));
        assert!(s.current.mirrors.is_empty());
        assert_eq!(s.apply(Event::Delete(pod("zz", "1", "x"))), (false, false));
    }
}
