//! The pod cache (the Go kubelet's `kubecontainer.Cache`): the newest runtime
//! view of every pod, written by PLEG and read by everyone else (pod workers,
//! status, stats, cgroup clean-up), so the runtime is listed once per relist.
//!
//! Each entry carries the instant it was observed. A pod worker that has just
//! changed the runtime asks for an entry newer than its own last sync
//! ([`PodCache::get_newer_than`]), so it never acts on state from before its
//! own changes. A full relist also moves a global timestamp: every pod it did
//! not report is known to be unchanged as of that instant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::watch;

use super::runtime_pod::RuntimePod;

#[derive(Clone, Debug)]
struct Entry {
    pod: Arc<RuntimePod>,
    observed: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    pods: HashMap<String, Entry>,
    /// Every pod is known as of this instant (the last full relist).
    global: Option<Instant>,
}

#[derive(Debug)]
pub struct PodCache {
    inner: Mutex<Inner>,
    /// Bumped on every write; waiters re-check when it moves.
    version: watch::Sender<u64>,
}

impl Default for PodCache {
    fn default() -> Self {
        PodCache {
            inner: Mutex::default(),
            version: watch::channel(0).0,
        }
    }
}

impl PodCache {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pod as last seen; an empty pod (no sandboxes, no containers) when
    /// the runtime holds nothing of it.
    pub fn get(&self, uid: &str) -> Arc<RuntimePod> {
        self.lookup(uid, None).unwrap_or_else(|| empty(uid))
    }

    /// The entry, if it was observed after `min` (or a full relist after
    /// `min` found nothing of the pod).
    fn lookup(&self, uid: &str, min: Option<Instant>) -> Option<Arc<RuntimePod>> {
        let inner = self.lock();
        let entry = inner.pods.get(uid);
        let Some(min) = min else {
            return entry.map(|e| e.pod.clone());
        };
        let fresh =
            entry.is_some_and(|e| e.observed > min) || inner.global.is_some_and(|g| g > min);
        fresh.then(|| entry.map_or_else(|| empty(uid), |e| e.pod.clone()))
    }

    /// Waits until the cache holds a view of the pod observed after `min`
    /// (the Go kubelet's `GetNewerThan`).
    pub async fn get_newer_than(&self, uid: &str, min: Instant) -> Arc<RuntimePod> {
        let mut rx = self.version.subscribe();
        loop {
            rx.borrow_and_update();
            if let Some(pod) = self.lookup(uid, Some(min)) {
                return pod;
            }
            if rx.changed().await.is_err() {
                return self.get(uid);
            }
        }
    }

    /// The pod as last seen, once a full relist has completed: before that
    /// an absent pod may simply not have been listed yet (after a restart,
    /// a pod that runs must not look like one to create).
    pub async fn get_after_first_relist(&self, uid: &str) -> Arc<RuntimePod> {
        let mut rx = self.version.subscribe();
        loop {
            rx.borrow_and_update();
            if self.initialized() {
                return self.get(uid);
            }
            if rx.changed().await.is_err() {
                return self.get(uid);
            }
        }
    }

    /// Stores what the runtime showed of one pod at `observed`.
    pub fn set(&self, uid: &str, pod: Arc<RuntimePod>, observed: Instant) {
        self.lock()
            .pods
            .insert(uid.to_string(), Entry { pod, observed });
        self.version.send_modify(|v| *v += 1);
    }

    /// Forgets a pod the runtime no longer holds.
    pub fn delete(&self, uid: &str) {
        self.lock().pods.remove(uid);
        self.version.send_modify(|v| *v += 1);
    }

    /// A full relist that started at `observed` has been applied.
    pub fn update_time(&self, observed: Instant) {
        let mut inner = self.lock();
        if inner.global.is_none_or(|g| g < observed) {
            inner.global = Some(observed);
        }
        drop(inner);
        self.version.send_modify(|v| *v += 1);
    }

    /// Every pod the runtime holds, in no particular order.
    pub fn pods(&self) -> Vec<Arc<RuntimePod>> {
        self.lock().pods.values().map(|e| e.pod.clone()).collect()
    }

    /// Whether the cache holds the pod.
    pub fn contains(&self, uid: &str) -> bool {
        self.lock().pods.contains_key(uid)
    }

    /// UIDs of every pod the runtime holds.
    pub fn uids(&self) -> Vec<String> {
        self.lock().pods.keys().cloned().collect()
    }

    /// Whether a full relist has completed yet.
    pub fn initialized(&self) -> bool {
        self.lock().global.is_some()
    }
}

fn empty(uid: &str) -> Arc<RuntimePod> {
    Arc::new(RuntimePod {
        uid: uid.to_string(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pod(uid: &str, name: &str) -> Arc<RuntimePod> {
        Arc::new(RuntimePod {
            uid: uid.into(),
            name: name.into(),
            ..Default::default()
        })
    }

    #[test]
    fn a_missing_pod_reads_as_empty() {
        let c = PodCache::default();
        let p = c.get("u");
        assert_eq!(p.uid, "u");
        assert!(p.sandboxes.is_empty() && p.containers.is_empty());
    }

    #[tokio::test]
    async fn get_newer_than_waits_for_an_entry_after_the_given_instant() {
        let c = PodCache::new();
        let before = Instant::now();
        c.set("u", pod("u", "old"), before);
        let sync_done = Instant::now();
        let waiter = {
            let c = c.clone();
            tokio::spawn(async move { c.get_newer_than("u", sync_done).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !waiter.is_finished(),
            "an entry older than the sync must not satisfy it"
        );
        c.set("u", pod("u", "new"), Instant::now());
        let got = tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("woken by the newer entry")
            .expect("task");
        assert_eq!(got.name, "new");
    }

    #[tokio::test]
    async fn a_later_full_relist_satisfies_waiters_of_unchanged_pods() {
        let c = PodCache::new();
        c.set("u", pod("u", "same"), Instant::now());
        let min = Instant::now();
        let waiter = {
            let c = c.clone();
            tokio::spawn(async move { c.get_newer_than("gone", min).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiter.is_finished());
        c.update_time(Instant::now());
        let got = tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("woken by the relist")
            .expect("task");
        assert!(
            got.containers.is_empty(),
            "a pod the relist did not see is empty"
        );
        assert_eq!(c.get_newer_than("u", min).await.name, "same");
    }
}
