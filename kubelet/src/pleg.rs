//! The pod lifecycle event generator: notices what changed in the runtime and
//! tells the pod workers which pods to sync (the Go kubelet's
//! `pkg/kubelet/pleg`).
//!
//! It relists sandboxes and containers every second and diffs them with the
//! previous list. When the runtime implements CRI GetContainerEvents, events
//! wake the affected pods at once and relisting slows to every 5 seconds, to
//! catch anything an event stream missed.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use cri_client::RuntimeClient;
use cri_client::proto as pb;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::kuberuntime::labels;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlegEvent {
    /// Something of this pod changed in the runtime: sync it.
    PodChanged(String),
    /// A full relist finished; these are all pod UIDs the runtime holds.
    Relisted(HashSet<String>),
}

pub const RELIST_PERIOD: Duration = Duration::from_secs(1);
const EVENTED_RELIST_PERIOD: Duration = Duration::from_secs(5);

/// What one relist saw: object ID → (pod UID, state).
pub type Snapshot = HashMap<String, (String, i32)>;

pub fn snapshot(sandboxes: &[pb::PodSandbox], containers: &[pb::Container]) -> Snapshot {
    let mut snap = Snapshot::new();
    for s in sandboxes {
        if let Some(uid) = s.labels.get(labels::POD_UID) {
            snap.insert(s.id.clone(), (uid.clone(), s.state));
        }
    }
    for c in containers {
        if let Some(uid) = c.labels.get(labels::POD_UID) {
            // Container and sandbox states are different enums; keep them
            // apart so a sandbox and container with equal numbers don't mix.
            snap.insert(c.id.clone(), (uid.clone(), 100 + c.state));
        }
    }
    snap
}

/// The pods whose objects appeared, disappeared or changed state.
pub fn diff(old: &Snapshot, new: &Snapshot) -> HashSet<String> {
    let mut changed = HashSet::new();
    for (id, (uid, state)) in new {
        if old.get(id).is_none_or(|(_, s)| s != state) {
            changed.insert(uid.clone());
        }
    }
    for (id, (uid, _)) in old {
        if !new.contains_key(id) {
            changed.insert(uid.clone());
        }
    }
    changed
}

pub struct Pleg {
    client: RuntimeClient,
    last: Option<Snapshot>,
}

impl Pleg {
    pub fn new(client: RuntimeClient) -> Self {
        Pleg { client, last: None }
    }

    async fn relist(
        &mut self,
        tx: &mpsc::UnboundedSender<PlegEvent>,
    ) -> Result<(), cri_client::Error> {
        let (sandboxes, containers) = tokio::try_join!(
            self.client
                .list_pod_sandbox(pb::ListPodSandboxRequest::default()),
            self.client
                .list_containers(pb::ListContainersRequest::default()),
        )?;
        let snap = snapshot(&sandboxes.items, &containers.containers);
        if let Some(last) = &self.last {
            for uid in diff(last, &snap) {
                let _ = tx.send(PlegEvent::PodChanged(uid));
            }
        }
        let uids = snap.values().map(|(u, _)| u.clone()).collect();
        let _ = tx.send(PlegEvent::Relisted(uids));
        self.last = Some(snap);
        Ok(())
    }

    /// Runs until the receiver is dropped.
    pub async fn run(mut self, tx: mpsc::UnboundedSender<PlegEvent>) {
        let mut events = match self
            .client
            .get_container_events(pb::GetEventsRequest::default())
            .await
        {
            Ok(stream) => {
                tracing::info!(
                    "runtime streams container events; relisting every {EVENTED_RELIST_PERIOD:?} as a safety net"
                );
                Some(stream)
            }
            Err(e) => {
                // containerd 1.6 answers Unimplemented: logged once, then relist.
                tracing::info!("{e}; relisting every {RELIST_PERIOD:?}");
                None
            }
        };
        let period = if events.is_some() {
            EVENTED_RELIST_PERIOD
        } else {
            RELIST_PERIOD
        };
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            if tx.is_closed() {
                return;
            }
            tokio::select! {
                _ = tick.tick() => {
                    match self.relist(&tx).await {
                        Ok(()) if failing => {
                            tracing::info!("relist works again");
                            failing = false;
                        }
                        Ok(()) => {}
                        Err(e) if !failing => {
                            tracing::warn!("relist failed: {e}");
                            failing = true;
                        }
                        Err(_) => {}
                    }
                }
                ev = async { events.as_mut()?.next().await }, if events.is_some() => match ev {
                    Some(Ok(ev)) => {
                        let uid = ev
                            .pod_sandbox_status
                            .as_ref()
                            .and_then(|s| s.metadata.as_ref())
                            .map(|m| m.uid.clone())
                            .unwrap_or_default();
                        if !uid.is_empty() {
                            let _ = tx.send(PlegEvent::PodChanged(uid));
                        }
                    }
                    _ => {
                        tracing::warn!("container event stream ended; relisting every {RELIST_PERIOD:?}");
                        events = None;
                        tick = tokio::time::interval(RELIST_PERIOD);
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox(id: &str, uid: &str, state: i32) -> pb::PodSandbox {
        pb::PodSandbox {
            id: id.into(),
            state,
            labels: [(labels::POD_UID.to_string(), uid.to_string())].into(),
            ..Default::default()
        }
    }

    fn container(id: &str, uid: &str, state: i32) -> pb::Container {
        pb::Container {
            id: id.into(),
            state,
            labels: [(labels::POD_UID.to_string(), uid.to_string())].into(),
            ..Default::default()
        }
    }

    #[test]
    fn diff_reports_pods_whose_objects_changed() {
        let before = snapshot(
            &[sandbox("s1", "a", 0), sandbox("s2", "b", 0)],
            &[container("c1", "a", 1), container("c2", "b", 1)],
        );
        // a's container exited, b's sandbox went away, c appeared.
        let after = snapshot(
            &[sandbox("s1", "a", 0), sandbox("s3", "c", 0)],
            &[container("c1", "a", 2), container("c2", "b", 1)],
        );
        let mut changed: Vec<_> = diff(&before, &after).into_iter().collect();
        changed.sort();
        assert_eq!(changed, ["a", "b", "c"]);
        assert!(diff(&after, &after).is_empty());
    }

    #[test]
    fn foreign_objects_are_ignored() {
        let mut s = sandbox("x", "", 0);
        s.labels.clear();
        assert!(snapshot(&[s], &[]).is_empty());
    }
}
