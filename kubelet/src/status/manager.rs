//! The status manager (the Go kubelet's `status_manager.go`): the latest
//! status of every pod, each with a version that moves only when the status
//! really changed, a change feed, and the sinks that publish it (log lines
//! now, the read-only port through [`StatusManager::pods`], the apiserver
//! later). It never writes into a pod's spec or metadata.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodStatus};
use tokio::sync::broadcast;

use super::display_status_with;
use crate::{pod_ref, pod_uid};

/// One pod's status as a sink sees it.
pub struct StatusChange<'a> {
    pub pod: &'a Pod,
    pub old: Option<&'a PodStatus>,
    pub status: &'a PodStatus,
    pub version: u64,
    /// The kubelet is stopping the pod.
    pub terminating: bool,
}

/// Where statuses go. Called in order of versions, outside any lock the
/// manager holds; a sink that does I/O should queue, not block.
pub trait StatusSink: Send + Sync {
    fn status_changed(&self, change: &StatusChange<'_>);
    /// The pod is gone from the node (terminated and removed).
    fn pod_removed(&self, _uid: &str) {}
    /// A static pod's mirror pod got this UID in the apiserver.
    fn mirror_known(&self, _static_uid: &str, _mirror_uid: &str) {}
}

#[derive(Clone, Debug)]
struct Entry {
    pod: Arc<Pod>,
    status: PodStatus,
    version: u64,
    terminating: bool,
}

/// What moved, for the change feed: `(uid, version)`; version 0 is removal.
pub type FeedItem = (String, u64);

pub struct StatusManager {
    entries: RwLock<BTreeMap<String, Entry>>,
    sinks: Vec<Arc<dyn StatusSink>>,
    feed: broadcast::Sender<FeedItem>,
    /// Static pod UID → its mirror pod's UID in the apiserver.
    mirror_uids: RwLock<HashMap<String, String>>,
}

impl StatusManager {
    /// A manager with the log sink.
    pub fn new() -> Arc<Self> {
        Self::with_sinks(vec![Arc::new(LogSink)])
    }

    pub fn with_sinks(sinks: Vec<Arc<dyn StatusSink>>) -> Arc<Self> {
        Arc::new(StatusManager {
            entries: RwLock::default(),
            sinks,
            feed: broadcast::channel(1024).0,
            mirror_uids: RwLock::default(),
        })
    }

    /// A receiver of every later `(uid, version)` change.
    pub fn subscribe(&self) -> broadcast::Receiver<FeedItem> {
        self.feed.subscribe()
    }

    pub fn get(&self, uid: &str) -> Option<PodStatus> {
        self.entries.read().ok()?.get(uid).map(|e| e.status.clone())
    }

    /// The status's version (0 when unknown).
    pub fn version(&self, uid: &str) -> u64 {
        self.entries
            .read()
            .ok()
            .and_then(|e| e.get(uid).map(|e| e.version))
            .unwrap_or(0)
    }

    /// Records the pod's status; the version moves, and the sinks hear of
    /// it, only when the status differs from the last one.
    pub fn set_pod_status(&self, pod: &Arc<Pod>, status: PodStatus) {
        self.update(pod_uid(pod), Some(pod), Some(status), None);
    }

    /// The kubelet has started stopping the pod: it shows as Terminating.
    pub fn terminating(&self, uid: &str) {
        self.update(uid, None, None, Some(true));
    }

    fn update(
        &self,
        uid: &str,
        pod: Option<&Arc<Pod>>,
        status: Option<PodStatus>,
        terminating: Option<bool>,
    ) {
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        let old = entries.get(uid).cloned();
        let Some(pod) = pod.cloned().or_else(|| old.as_ref().map(|o| o.pod.clone())) else {
            return;
        };
        let status = status
            .or_else(|| old.as_ref().map(|o| o.status.clone()))
            .unwrap_or_default();
        let terminating = terminating
            .or_else(|| old.as_ref().map(|o| o.terminating))
            .unwrap_or(false);
        let unchanged = old.as_ref().is_some_and(|o| {
            o.status == status && o.terminating == terminating && Arc::ptr_eq(&o.pod, &pod)
        });
        if unchanged {
            return;
        }
        let version = old.as_ref().map_or(1, |o| o.version + 1);
        let entry = Entry {
            pod,
            status,
            version,
            terminating,
        };
        entries.insert(uid.to_string(), entry.clone());
        drop(entries);
        let change = StatusChange {
            pod: &entry.pod,
            old: old.as_ref().map(|o| &o.status),
            status: &entry.status,
            version,
            terminating,
        };
        for sink in &self.sinks {
            sink.status_changed(&change);
        }
        let _ = self.feed.send((uid.to_string(), version));
    }

    /// The pod has terminated and is removed from the node.
    pub fn remove(&self, uid: &str) {
        let removed = self
            .entries
            .write()
            .map(|mut e| e.remove(uid).is_some())
            .unwrap_or(false);
        if removed {
            for sink in &self.sinks {
                sink.pod_removed(uid);
            }
            let _ = self.feed.send((uid.to_string(), 0));
        }
    }

    /// Every pod with its status, ordered by UID (the read-only port's
    /// `/pods`).
    pub fn pods(&self) -> Vec<Pod> {
        self.entries
            .read()
            .map(|e| {
                e.values()
                    .map(|e| {
                        let mut p = (*e.pod).clone();
                        p.status = Some(e.status.clone());
                        p
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The pod named `namespace`/`name` with its status, copying only it
    /// (the 10250 API's per-pod endpoints).
    pub fn find(&self, namespace: &str, name: &str) -> Option<Pod> {
        let entries = self.entries.read().ok()?;
        let e = entries.values().find(|e| {
            e.pod.metadata.namespace.as_deref().unwrap_or("default") == namespace
                && e.pod.metadata.name.as_deref() == Some(name)
        })?;
        let mut p = (*e.pod).clone();
        p.status = Some(e.status.clone());
        Some(p)
    }

    /// Remembers the mirror pod of a static pod, for status that goes to
    /// the apiserver.
    pub fn set_mirror_uid(&self, static_uid: &str, mirror_uid: &str) {
        let changed = self.mirror_uids.write().is_ok_and(|mut m| {
            m.insert(static_uid.to_string(), mirror_uid.to_string())
                .is_none_or(|old| old != mirror_uid)
        });
        if changed {
            for sink in &self.sinks {
                sink.mirror_known(static_uid, mirror_uid);
            }
        }
    }

    /// Forgets the mirror pod of a static pod that left the node.
    pub fn remove_mirror_uid(&self, static_uid: &str) {
        if let Ok(mut m) = self.mirror_uids.write() {
            m.remove(static_uid);
        }
    }

    /// The UID the apiserver knows the pod by: its mirror's for a static
    /// pod, its own otherwise.
    pub fn api_uid(&self, uid: &str) -> String {
        self.mirror_uids
            .read()
            .ok()
            .and_then(|m| m.get(uid).cloned())
            .unwrap_or_else(|| uid.to_string())
    }
}

/// Logs phase, container and display-status transitions.
pub struct LogSink;

impl StatusSink for LogSink {
    fn status_changed(&self, c: &StatusChange<'_>) {
        log_transitions(c.pod, c.old, c.status);
        let with = |status: &PodStatus| {
            let mut p = c.pod.clone();
            p.status = Some(status.clone());
            p
        };
        let before = c.old.map(|o| display_status_with(&with(o), c.terminating));
        let after = display_status_with(&with(c.status), c.terminating);
        if before.as_deref() != Some(after.as_str()) {
            tracing::info!(pod = %pod_ref(c.pod), uid = %pod_uid(c.pod), from = before.as_deref().unwrap_or(""), to = %after, "pod status changed");
        }
    }
}

fn summary(s: &ContainerStatus) -> String {
    let st = s.state.clone().unwrap_or_default();
    if st.running.is_some() {
        "Running".into()
    } else if let Some(t) = st.terminated {
        format!(
            "Terminated({}, exit {})",
            t.reason.unwrap_or_default(),
            t.exit_code
        )
    } else if let Some(w) = st.waiting {
        format!("Waiting({})", w.reason.unwrap_or_default())
    } else {
        "Unknown".into()
    }
}

fn log_transitions(pod: &Pod, old: Option<&PodStatus>, new: &PodStatus) {
    let pod_name = pod_ref(pod);
    let uid = pod_uid(pod);
    let old_phase = old.and_then(|o| o.phase.clone());
    if old_phase != new.phase {
        tracing::info!(pod = %pod_name, uid = %uid, from = ?old_phase, to = ?new.phase, "pod phase changed");
    }
    let before: HashMap<String, (String, i32)> = old
        .iter()
        .flat_map(|o| {
            o.init_container_statuses
                .iter()
                .flatten()
                .chain(o.container_statuses.iter().flatten())
        })
        .map(|s| (s.name.clone(), (summary(s), s.restart_count)))
        .collect();
    for s in new
        .init_container_statuses
        .iter()
        .flatten()
        .chain(new.container_statuses.iter().flatten())
    {
        let now = (summary(s), s.restart_count);
        if before.get(&s.name) != Some(&now) {
            tracing::info!(pod = %pod_name, uid = %uid, container = %s.name, state = %now.0, restart_count = now.1, "container state changed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(String, u64, bool)>>);
    impl StatusSink for Recorder {
        fn status_changed(&self, c: &StatusChange<'_>) {
            let phase = c.status.phase.clone().unwrap_or_default();
            self.0
                .lock()
                .unwrap()
                .push((phase, c.version, c.terminating));
        }
    }

    fn pod() -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(serde_json::json!({"metadata": {"name": "p", "uid": "u"}}))
                .unwrap(),
        )
    }

    fn phase(p: &str) -> PodStatus {
        PodStatus {
            phase: Some(p.into()),
            ..Default::default()
        }
    }

    #[test]
    fn versions_move_only_on_change_and_sinks_hear_each_once() {
        let rec = Arc::new(Recorder::default());
        let m = StatusManager::with_sinks(vec![rec.clone()]);
        let mut feed = m.subscribe();
        let p = pod();
        m.set_pod_status(&p, phase("Pending"));
        m.set_pod_status(&p, phase("Pending"));
        m.set_pod_status(&p, phase("Running"));
        m.terminating("u");
        m.terminating("u");
        assert_eq!(m.version("u"), 3);
        assert_eq!(
            *rec.0.lock().unwrap(),
            [
                ("Pending".to_string(), 1, false),
                ("Running".into(), 2, false),
                ("Running".into(), 3, true)
            ]
        );
        assert_eq!(feed.try_recv().unwrap(), ("u".to_string(), 1));
        assert_eq!(feed.try_recv().unwrap(), ("u".to_string(), 2));
        assert_eq!(feed.try_recv().unwrap(), ("u".to_string(), 3));
        m.remove("u");
        assert_eq!(feed.try_recv().unwrap(), ("u".to_string(), 0));
        assert!(m.pods().is_empty());
    }

    #[test]
    fn the_stored_pod_is_never_written_to() {
        let m = StatusManager::with_sinks(vec![]);
        let p = pod();
        m.set_pod_status(&p, phase("Running"));
        m.terminating("u");
        let served = m.pods();
        assert!(served[0].metadata.deletion_timestamp.is_none());
        assert_eq!(
            served[0].status.as_ref().unwrap().phase.as_deref(),
            Some("Running")
        );
        assert!(p.status.is_none());
    }

    #[test]
    fn mirror_uids_translate_static_pods_only() {
        let m = StatusManager::with_sinks(vec![]);
        m.set_mirror_uid("static", "mirror");
        assert_eq!(m.api_uid("static"), "mirror");
        m.remove_mirror_uid("static");
        assert_eq!(m.api_uid("static"), "static");
        m.set_mirror_uid("static", "mirror");
        assert_eq!(m.api_uid("api"), "api");
    }
}
