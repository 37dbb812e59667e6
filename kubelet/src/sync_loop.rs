//! The kubelet's main loop (the Go kubelet's `syncLoop`): source updates and
//! runtime events in, pod worker updates out.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod, PodStatus};
use tokio::sync::{mpsc, watch};

use crate::pleg::PlegEvent;
use crate::pod_workers::PodWorkers;
use crate::podconfig::PodConfig;
use crate::prober::ProbeUpdate;
use crate::status::StatusManager;
use crate::{pod_ref, pod_uid};

/// Whether a pod fits the node: Err((reason, message)) when it does not.
/// Given the node, the pods already admitted, and the new pod.
pub type AdmitFn = Arc<dyn Fn(&Node, &[&Pod], &Pod) -> Result<(), (String, String)> + Send + Sync>;

/// Admission of new API pods (the Go kubelet's `HandlePodAdditions` and
/// `canAdmitPod`): a pod that does not fit is rejected as Failed, with the
/// reason, and never gets a worker.
pub struct Admission {
    pub node: watch::Receiver<Option<Arc<Node>>>,
    pub status: Arc<StatusManager>,
    pub admit: AdmitFn,
    admitted: HashSet<String>,
    rejected: HashSet<String>,
}

impl Admission {
    pub fn new(
        node: watch::Receiver<Option<Arc<Node>>>,
        status: Arc<StatusManager>,
        admit: AdmitFn,
    ) -> Self {
        Admission {
            node,
            status,
            admit,
            admitted: HashSet::new(),
            rejected: HashSet::new(),
        }
    }

    /// The desired set less the rejected pods. New API pods are admitted
    /// oldest first, each against the pods admitted before it; static pods
    /// are the node's own and always admitted.
    fn filter(&mut self, mut desired: HashMap<String, Arc<Pod>>) -> HashMap<String, Arc<Pod>> {
        self.admitted.retain(|uid| desired.contains_key(uid));
        let gone: Vec<String> = self
            .rejected
            .iter()
            .filter(|uid| !desired.contains_key(*uid))
            .cloned()
            .collect();
        for uid in gone {
            self.rejected.remove(&uid);
            self.status.remove(&uid);
        }
        let node = self.node.borrow().clone();
        let mut new: Vec<Arc<Pod>> = desired
            .iter()
            .filter(|(uid, p)| {
                crate::kubelet::is_api_pod(p)
                    && !self.admitted.contains(*uid)
                    && !self.rejected.contains(*uid)
                    && p.metadata.deletion_timestamp.is_none()
                    && !is_terminal(p)
            })
            .map(|(_, p)| p.clone())
            .collect();
        new.sort_by(|a, b| {
            let key = |p: &Pod| {
                (
                    p.metadata.creation_timestamp.as_ref().map(|t| t.0),
                    pod_uid(p).to_string(),
                )
            };
            key(a).cmp(&key(b))
        });
        let mut waiting = HashSet::new();
        for pod in new {
            let uid = pod_uid(&pod).to_string();
            let verdict = match node.as_deref() {
                // Not registered yet: the pod waits for the Node.
                None => {
                    waiting.insert(uid);
                    continue;
                }
                Some(node) => {
                    let others: Vec<&Pod> = desired
                        .iter()
                        .filter(|(u, p)| {
                            !self.rejected.contains(*u)
                                && !is_terminal(p)
                                && (self.admitted.contains(*u) || !crate::kubelet::is_api_pod(p))
                        })
                        .map(|(_, p)| p.as_ref())
                        .collect();
                    (self.admit)(node, &others, &pod)
                }
            };
            match verdict {
                Ok(()) => {
                    self.admitted.insert(uid);
                }
                Err((reason, message)) => {
                    tracing::warn!(pod = %pod_ref(&pod), uid = %uid, reason = %reason, "pod rejected: {message}");
                    let status = PodStatus {
                        phase: Some("Failed".into()),
                        reason: Some(reason),
                        message: Some(format!("Pod was rejected: {message}")),
                        qos_class: Some(crate::cm::qos::qos_class(&pod).as_str().into()),
                        ..Default::default()
                    };
                    self.status.set_pod_status(&pod, status);
                    self.rejected.insert(uid);
                }
            }
        }
        desired.retain(|uid, _| !self.rejected.contains(uid) && !waiting.contains(uid));
        desired
    }
}

/// The Node changed (or was first registered); false once it never will.
async fn node_changed(admission: &mut Option<Admission>) -> bool {
    match admission {
        Some(a) => a.node.changed().await.is_ok(),
        None => false,
    }
}

fn desired_of(admission: &mut Option<Admission>, config: &PodConfig) -> HashMap<String, Arc<Pod>> {
    match admission.as_mut() {
        Some(a) => a.filter(config.desired()),
        None => config.desired(),
    }
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Whether the main loop is alive, for the `syncloop` health check (the Go
/// kubelet's `syncLoopMonitor`). Go's loop wakes every two seconds for
/// housekeeping and the check fails when the last wake-up is older than
/// five minutes; berth's loop only wakes for work, so what is watched is
/// the time spent on one event: a loop stuck on one for five minutes, or
/// one that ended, is unhealthy.
#[derive(Debug)]
pub struct SyncLoopMonitor {
    origin: Instant,
    /// Milliseconds after `origin` (+1) when the event under way began;
    /// 0 while the loop waits.
    busy_since: AtomicU64,
    exited: AtomicBool,
}

impl Default for SyncLoopMonitor {
    fn default() -> Self {
        SyncLoopMonitor {
            origin: Instant::now(),
            busy_since: AtomicU64::new(0),
            exited: AtomicBool::new(false),
        }
    }
}

/// Go's threshold: twice the resync interval (one minute), at least five
/// minutes.
pub const SYNC_LOOP_STUCK_AFTER: Duration = Duration::from_secs(300);

impl SyncLoopMonitor {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    fn enter(&self) {
        self.busy_since.store(self.now_ms(), Ordering::Relaxed);
    }

    fn leave(&self) {
        self.busy_since.store(0, Ordering::Relaxed);
    }

    /// Ok while the loop runs and no event has held it for `stuck_after`.
    pub fn check(&self, stuck_after: Duration) -> Result<(), String> {
        if self.exited.load(Ordering::Relaxed) {
            return Err("the sync loop has ended".into());
        }
        let since = self.busy_since.load(Ordering::Relaxed);
        let busy = Duration::from_millis(self.now_ms().saturating_sub(since));
        if since != 0 && busy > stuck_after {
            return Err(format!(
                "sync loop took longer than expected: one event has held it for {}s",
                busy.as_secs()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
impl SyncLoopMonitor {
    pub(crate) fn mark_exited_for_test(&self) {
        self.exited.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod monitor_tests {
    use super::*;

    #[test]
    fn an_event_that_holds_the_loop_too_long_fails_the_check() {
        let m = SyncLoopMonitor::default();
        assert!(m.check(Duration::ZERO).is_ok(), "idle is healthy");
        m.enter();
        std::thread::sleep(Duration::from_millis(20));
        assert!(m.check(Duration::from_secs(60)).is_ok());
        let e = m.check(Duration::from_millis(5)).unwrap_err();
        assert!(e.contains("longer than expected"), "{e}");
        m.leave();
        assert!(m.check(Duration::ZERO).is_ok());
        drop(Exited(&m));
        assert_eq!(
            m.check(Duration::from_secs(60)).unwrap_err(),
            "the sync loop has ended"
        );
    }
}

/// What woke the loop.
enum Wake {
    Source(Option<SourceUpdate>),
    Node(bool),
    Probe(ProbeUpdate),
    Pleg(Option<PlegEvent>),
}

/// Marks the loop ended however `run` returns.
struct Exited<'a>(&'a SyncLoopMonitor);

impl Drop for Exited<'_> {
    fn drop(&mut self) {
        self.0.exited.store(true, Ordering::Relaxed);
    }
}

/// A full snapshot from one source.
#[derive(Debug)]
pub struct SourceUpdate {
    pub source: &'static str,
    /// Shared with the source, which keeps the same Arc while a pod is unchanged.
    pub pods: Vec<Arc<Pod>>,
}

/// Runs until PLEG's channel closes. Pods keep running when it ends:
/// stopping the kubelet never stops pods (as with the Go kubelet).
pub async fn run(
    mut config: PodConfig,
    workers: Arc<PodWorkers>,
    mut sources: mpsc::Receiver<SourceUpdate>,
    mut pleg: mpsc::UnboundedReceiver<PlegEvent>,
    mut probes: mpsc::UnboundedReceiver<ProbeUpdate>,
    mut admission: Option<Admission>,
    monitor: Arc<SyncLoopMonitor>,
) {
    let _exited = Exited(&monitor);
    let mut sources_open = true;
    let mut node_open = admission.is_some();
    loop {
        monitor.leave();
        let event = tokio::select! {
            update = sources.recv(), if sources_open => Wake::Source(update),
            open = node_changed(&mut admission), if node_open => Wake::Node(open),
            Some(u) = probes.recv() => Wake::Probe(u),
            ev = pleg.recv() => Wake::Pleg(ev),
        };
        monitor.enter();
        match event {
            Wake::Source(Some(u)) => {
                if config.set_source(u.source, u.pods) {
                    workers.update(&desired_of(&mut admission, &config));
                }
            }
            Wake::Source(None) => sources_open = false,
            Wake::Node(open) => {
                node_open = open;
                // Pods that waited for the Node are admitted now.
                workers.update(&desired_of(&mut admission, &config));
            }
            Wake::Probe(u) => workers.notify(&u.uid),
            Wake::Pleg(Some(PlegEvent::PodChanged(uid))) => workers.notify(&uid),
            Wake::Pleg(Some(PlegEvent::Relisted(uids))) => {
                // Only once every source has spoken: before that, an
                // absent pod may simply not have been read yet.
                if config.sources_ready() {
                    // Rejected pods count as desired here: whatever
                    // runs under their UID is not an orphan to them.
                    let desired = config.desired();
                    for uid in uids {
                        if !desired.contains_key(&uid) && !workers.has_worker(&uid) {
                            workers.terminate_orphan(&uid);
                        }
                    }
                }
            }
            Wake::Pleg(None) => return,
        }
    }
}
