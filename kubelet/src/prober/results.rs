//! Probe results per container instance (the Go kubelet's
//! `prober/results`): what the workers last decided, read by the runtime
//! manager and status through [`super::ProbeManager`]. Every change is
//! announced on the updates channel so the pod is synced again.

use crate::container::runtime::KillReason;
use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::mpsc;

use super::ProbeUpdate;

/// The three probe kinds, named as the Go kubelet names them in messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeType {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeType::Liveness => "Liveness",
            ProbeType::Readiness => "Readiness",
            ProbeType::Startup => "Startup",
        }
    }

    /// What a fresh instance reports before its first probe, as the Go
    /// worker: not ready, alive, not (yet) started.
    pub fn initial(self) -> ProbeResult {
        match self {
            ProbeType::Liveness => ProbeResult::Success,
            ProbeType::Readiness => ProbeResult::Failure,
            ProbeType::Startup => ProbeResult::Unknown,
        }
    }

    fn index(self) -> usize {
        match self {
            ProbeType::Liveness => 0,
            ProbeType::Readiness => 1,
            ProbeType::Startup => 2,
        }
    }
}

impl std::fmt::Display for ProbeType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    Unknown,
    Success,
    Failure,
}

#[derive(Debug, Default)]
struct Entry {
    /// Indexed by [`ProbeType::index`]; None when the instance has no such
    /// probe.
    results: [Option<ProbeResult>; 3],
    /// Set with a liveness or startup Failure: why the instance must go.
    kill_reason: Option<KillReason>,
}

/// Results keyed by container ID (IDs are unique across pods).
#[derive(Debug)]
pub struct Results {
    entries: Mutex<HashMap<String, Entry>>,
    updates: mpsc::UnboundedSender<ProbeUpdate>,
}

impl Results {
    pub fn new(updates: mpsc::UnboundedSender<ProbeUpdate>) -> Self {
        Results {
            entries: Mutex::new(HashMap::new()),
            updates,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a probe of a new instance with its initial result and
    /// announces it; a no-op when the probe is already registered.
    pub fn add(&self, uid: &str, container_id: &str, kind: ProbeType) {
        let mut map = self.lock();
        let slot = &mut map.entry(container_id.to_string()).or_default().results[kind.index()];
        if slot.is_none() {
            *slot = Some(kind.initial());
            drop(map);
            self.announce(uid);
        }
    }

    /// Records a decided result; announces it when it differs from the
    /// previous one. `kill_reason` goes with a liveness/startup Failure.
    /// Results of forgotten instances (a worker racing its removal) are
    /// dropped.
    pub fn set(
        &self,
        uid: &str,
        container_id: &str,
        kind: ProbeType,
        result: ProbeResult,
        kill_reason: Option<KillReason>,
    ) -> bool {
        let mut map = self.lock();
        let Some(entry) = map.get_mut(container_id) else {
            return false;
        };
        let slot = &mut entry.results[kind.index()];
        let changed = *slot != Some(result);
        *slot = Some(result);
        if kill_reason.is_some() && entry.kill_reason.is_none() {
            entry.kill_reason = kill_reason;
        }
        drop(map);
        if changed {
            self.announce(uid);
        }
        changed
    }

    pub fn get(&self, container_id: &str, kind: ProbeType) -> Option<ProbeResult> {
        self.lock()
            .get(container_id)
            .and_then(|e| e.results[kind.index()])
    }

    pub fn kill_reason(&self, container_id: &str) -> Option<KillReason> {
        self.lock()
            .get(container_id)
            .and_then(|e| e.kill_reason.clone())
    }

    /// Forgets instances (their workers are stopped by the caller).
    pub fn remove<'a>(&self, container_ids: impl IntoIterator<Item = &'a str>) {
        let mut map = self.lock();
        for id in container_ids {
            map.remove(id);
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn announce(&self, uid: &str) {
        // The sync loop may be gone at shutdown; nothing to tell then.
        let _ = self.updates.send(ProbeUpdate {
            uid: uid.to_string(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announces_only_changes_and_drops_unknown_instances() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let r = Results::new(tx);
        r.add("u", "c1", ProbeType::Readiness);
        assert_eq!(rx.try_recv().ok().map(|u| u.uid), Some("u".into()));
        r.add("u", "c1", ProbeType::Readiness);
        assert!(rx.try_recv().is_err(), "re-adding is silent");
        assert_eq!(
            r.get("c1", ProbeType::Readiness),
            Some(ProbeResult::Failure)
        );
        assert_eq!(r.get("c1", ProbeType::Liveness), None);

        assert!(!r.set("u", "c1", ProbeType::Readiness, ProbeResult::Failure, None));
        assert!(rx.try_recv().is_err());
        assert!(r.set("u", "c1", ProbeType::Readiness, ProbeResult::Success, None));
        assert!(rx.try_recv().is_ok());

        assert!(!r.set("u", "gone", ProbeType::Liveness, ProbeResult::Failure, None));
        assert_eq!(r.get("gone", ProbeType::Liveness), None);

        r.add("u", "c1", ProbeType::Liveness);
        let _ = rx.try_recv();
        r.set(
            "u",
            "c1",
            ProbeType::Liveness,
            ProbeResult::Failure,
            Some(KillReason::LivenessFailed(
                "Liveness probe failed: x".into(),
            )),
        );
        assert_eq!(
            r.kill_reason("c1").map(|k| k.to_string()).as_deref(),
            Some("Liveness probe failed: x")
        );
        r.remove(["c1"]);
        assert!(r.is_empty());
        assert_eq!(r.kill_reason("c1"), None);
    }
}
