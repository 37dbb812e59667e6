//! One worker task per pod (the Go kubelet's `pod_workers.go`). Updates to a
//! pod are serialised, and a burst of them collapses into one sync. Each pod
//! goes through Go's lifecycle:
//!
//! 1. **SyncPod** while it is desired: bring it to its spec, again on every
//!    runtime change, probe change, back-off expiry or resync;
//! 2. **SyncTerminatingPod** once it is no longer desired, or is still
//!    present with a deletion timestamp: stop its containers within the
//!    grace period;
//! 3. **SyncTerminatedPod**: remove what is left (containers, sandbox,
//!    cgroup, volumes), then report the UID on the terminated channel so a
//!    source can finalize (the apiserver source deletes the object).
//!
//! A newer spec or a termination cancels a SyncPod in flight (a pull, a
//! back-off wait, a start). A worker that changed the runtime waits for a
//! cache entry newer than its sync before it syncs again, so it never acts
//! on state from before its own changes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use tokio::sync::{Notify, mpsc, watch};

use crate::container::{PodCache, RuntimePod};
use crate::kubelet::Kubelet;
use crate::pleg::RelistTrigger;
use crate::{pod_ref, pod_uid};

/// What a worker should do with its pod.
#[derive(Clone, Debug)]
enum Desired {
    Run(Arc<Pod>),
    /// Stop and remove the pod. The spec, when known, gives hooks and grace
    /// periods; `grace` overrides them (a deletion's grace period).
    Terminate {
        pod: Option<Arc<Pod>>,
        grace: Option<i64>,
    },
}

struct Worker {
    desired: watch::Sender<Desired>,
    wake: Arc<Notify>,
}

#[derive(Default)]
struct State {
    workers: HashMap<String, Worker>,
    /// Pods that terminated while their source still lists them (deleted
    /// API pods awaiting removal): no worker starts for them again.
    finished: HashSet<String>,
}

pub struct PodWorkers {
    kubelet: Arc<Kubelet>,
    cache: Arc<PodCache>,
    relist: RelistTrigger,
    state: Mutex<State>,
    resync: Duration,
    terminated: mpsc::UnboundedSender<Terminated>,
}

/// A pod whose worker has stopped and removed it.
#[derive(Clone, Debug)]
pub struct Terminated {
    pub uid: String,
    /// The last spec the worker had, if it had one (an orphan has none).
    pub pod: Option<Arc<Pod>>,
}

/// How long a failed stop or removal waits before it is tried again.
const RETRY: Duration = Duration::from_secs(2);

/// What the pod's deletion asks for: terminate with this grace, if the pod
/// carries a deletion timestamp. A pod its source already reports as
/// Succeeded or Failed is terminated too, never run again (Go's pod workers
/// start such a pod in the terminated state).
fn deletion(pod: &Pod) -> Option<Option<i64>> {
    if pod.metadata.deletion_timestamp.is_some() {
        return Some(pod.metadata.deletion_grace_period_seconds);
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Succeeded" | "Failed")).then_some(None)
}

impl PodWorkers {
    /// The workers, and the receiver of UIDs of pods that have terminated.
    pub fn new(
        kubelet: Arc<Kubelet>,
        cache: Arc<PodCache>,
        relist: RelistTrigger,
        resync: Duration,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<Terminated>) {
        let (terminated, rx) = mpsc::unbounded_channel();
        (
            Arc::new(PodWorkers {
                kubelet,
                cache,
                relist,
                state: Mutex::default(),
                resync,
                terminated,
            }),
            rx,
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn has_worker(&self, uid: &str) -> bool {
        self.lock().workers.contains_key(uid)
    }

    /// Makes the desired set true: new pods get a worker, changed pods an
    /// update, pods no longer desired or being deleted are terminated.
    pub fn update(self: &Arc<Self>, desired: &HashMap<String, Arc<Pod>>) {
        let mut state = self.lock();
        state.finished.retain(|uid| desired.contains_key(uid));
        for (uid, pod) in desired {
            let next = match deletion(pod) {
                Some(grace) => Desired::Terminate {
                    pod: Some(pod.clone()),
                    grace,
                },
                None => Desired::Run(pod.clone()),
            };
            if state.finished.contains(uid) {
                continue;
            }
            match state.workers.get(uid) {
                Some(w) => {
                    let changed = match (&*w.desired.borrow(), &next) {
                        (Desired::Run(old), Desired::Run(new)) => old.as_ref() != new.as_ref(),
                        // Once terminating, a pod stays so (as in Go); a
                        // manifest put back starts it again once removed.
                        (Desired::Terminate { .. }, Desired::Terminate { .. }) => false,
                        _ => true,
                    };
                    if changed {
                        let _ = w.desired.send(next);
                    }
                }
                None => {
                    let w = self.spawn(uid.clone(), next);
                    state.workers.insert(uid.clone(), w);
                }
            }
        }
        for (uid, w) in state.workers.iter() {
            if desired.contains_key(uid) {
                continue;
            }
            // Clone out first: the watch's read guard must be gone before send.
            let current = w.desired.borrow().clone();
            if let Desired::Run(pod) = current {
                let _ = w.desired.send(Desired::Terminate {
                    pod: Some(pod),
                    grace: None,
                });
            }
        }
    }

    /// Removes a pod found in the runtime that nobody wants (e.g. its
    /// manifest was deleted while Berth was down).
    pub fn terminate_orphan(self: &Arc<Self>, uid: &str) {
        let mut state = self.lock();
        if !state.workers.contains_key(uid) {
            tracing::info!(uid = %uid, "removing pod that is no longer desired");
            let w = self.spawn(
                uid.to_string(),
                Desired::Terminate {
                    pod: None,
                    grace: None,
                },
            );
            state.workers.insert(uid.to_string(), w);
        }
    }

    /// Something changed for the pod (runtime, probes): sync it soon.
    pub fn notify(&self, uid: &str) {
        if let Some(w) = self.lock().workers.get(uid) {
            w.wake.notify_one();
        }
    }

    fn spawn(self: &Arc<Self>, uid: String, desired: Desired) -> Worker {
        let (tx, rx) = watch::channel(desired);
        let wake = Arc::new(Notify::new());
        let this = self.clone();
        let w = wake.clone();
        tokio::spawn(async move { this.run(uid, rx, w).await });
        Worker { desired: tx, wake }
    }

    /// The runtime view to act on: newer than `after` when given, which
    /// asks PLEG for a relist rather than waiting for its timer.
    async fn view(&self, uid: &str, after: Option<Instant>) -> Arc<RuntimePod> {
        match after {
            Some(t) => {
                self.relist.relist_now();
                self.cache.get_newer_than(uid, t).await
            }
            None => self.cache.get_after_first_relist(uid).await,
        }
    }

    async fn run(
        self: Arc<Self>,
        uid: String,
        mut rx: watch::Receiver<Desired>,
        wake: Arc<Notify>,
    ) {
        // Set after a sync that changed the runtime.
        let mut changed_at: Option<Instant> = None;
        let mut previous: Option<PodStatus> = None;
        // For kubelet_pod_start_duration_seconds: when this kubelet first
        // saw the pod, and whether its start was counted.
        let first_seen = Instant::now();
        let mut start_counted = false;
        loop {
            let desired = rx.borrow_and_update().clone();
            match desired {
                Desired::Run(pod) => {
                    let Some(outcome) = self
                        .sync_cancellable(&pod, &mut rx, changed_at, previous.as_ref())
                        .await
                    else {
                        // Cancelled: the runtime may have changed under us.
                        changed_at = Some(Instant::now());
                        continue;
                    };
                    if outcome.mutated {
                        changed_at = Some(Instant::now());
                        self.relist.relist_now();
                    } else {
                        changed_at = None;
                    }
                    if !start_counted && phase(outcome.status.as_ref()) == Some("Running") {
                        start_counted = true;
                        // A pod found running at its first sync (adopted
                        // after a restart) was not started by us.
                        if previous.is_some() || outcome.mutated {
                            crate::metrics::COUNTERS
                                .pod_start_duration
                                .observe(first_seen.elapsed().as_secs_f64());
                        }
                    }
                    previous = outcome.status;
                    let wait = outcome
                        .requeue_after
                        .unwrap_or(self.resync)
                        .min(self.resync);
                    tokio::select! {
                        r = rx.changed() => if r.is_err() { return },
                        _ = wake.notified() => {}
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                Desired::Terminate { pod, grace } => {
                    self.terminate(&uid, pod.as_deref(), grace, changed_at)
                        .await;
                    let _ = self.terminated.send(Terminated {
                        uid: uid.clone(),
                        pod: pod.clone(),
                    });
                    let mut state = self.lock();
                    match &*rx.borrow_and_update() {
                        // Put back (a manifest restored): start afresh.
                        Desired::Run(_) => {
                            changed_at = Some(Instant::now());
                            previous = None;
                        }
                        Desired::Terminate { pod, .. } => {
                            if pod.as_deref().is_some_and(|p| deletion(p).is_some()) {
                                state.finished.insert(uid.clone());
                            }
                            state.workers.remove(&uid);
                            return;
                        }
                    }
                }
            }
        }
    }

    /// One SyncPod, abandoned when a termination or a different spec
    /// arrives meanwhile. None when cancelled.
    async fn sync_cancellable(
        &self,
        pod: &Arc<Pod>,
        rx: &mut watch::Receiver<Desired>,
        changed_at: Option<Instant>,
        previous: Option<&PodStatus>,
    ) -> Option<crate::kubelet::SyncOutcome> {
        let uid = pod_uid(pod);
        let superseded = |d: &Desired| match d {
            Desired::Run(p) => p.as_ref() != pod.as_ref(),
            Desired::Terminate { .. } => true,
        };
        // Boxed: a sync's future is large, and each worker would otherwise
        // keep that much for as long as its pod lives.
        let work = Box::pin(async {
            let rt = self.view(uid, changed_at).await;
            self.kubelet.sync_pod(pod, &rt, previous).await
        });
        tokio::pin!(work);
        loop {
            tokio::select! {
                outcome = &mut work => return Some(outcome),
                r = rx.changed() => {
                    if r.is_err() || superseded(&rx.borrow()) {
                        tracing::info!(pod = %pod_ref(pod), uid = %uid, "a newer update arrived: the sync in flight is cancelled");
                        return None;
                    }
                }
            }
        }
    }

    /// SyncTerminatingPod then SyncTerminatedPod, each retried until done.
    async fn terminate(
        &self,
        uid: &str,
        pod: Option<&Pod>,
        grace: Option<i64>,
        changed_at: Option<Instant>,
    ) {
        let mut after = changed_at;
        loop {
            let rt = self.view(uid, after).await;
            match self
                .kubelet
                .sync_terminating_pod(uid, pod, &rt, grace)
                .await
            {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(pod = %rt_ref(&rt, pod), uid = %uid, "stopping pod: {e}");
                    tokio::time::sleep(RETRY).await;
                    after = Some(Instant::now());
                }
            }
        }
        loop {
            // The removal must see the state after the stop.
            let rt = self.view(uid, Some(Instant::now())).await;
            match self.kubelet.sync_terminated_pod(uid, pod, &rt).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(pod = %rt_ref(&rt, pod), uid = %uid, "removing pod: {e}");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }
}

/// `namespace/name` from the spec when known, else from the runtime.
fn rt_ref(rt: &RuntimePod, pod: Option<&Pod>) -> String {
    pod.map_or_else(|| format!("{}/{}", rt.namespace, rt.name), pod_ref)
}

fn phase(status: Option<&PodStatus>) -> Option<&str> {
    status.and_then(|s| s.phase.as_deref())
}
