//! One worker task per pod (the Go kubelet's `pod_workers.go`): updates to a
//! pod are serialised, and a burst of them (spec changes, runtime events,
//! resyncs) collapses into one sync.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{Notify, Semaphore, watch};

use crate::kuberuntime::{KubeRuntimeManager, SyncResult};
use crate::status::{self, StatusInputs, StatusManager};
use crate::{pod_ref, pod_uid};

/// What a worker should do with its pod.
#[derive(Clone, Debug)]
enum Desired {
    Run(Arc<Pod>),
    /// Stop and remove the pod. The spec, when known, gives the grace period.
    Terminate(Option<Arc<Pod>>),
}

struct Worker {
    desired: watch::Sender<Desired>,
    wake: Arc<Notify>,
}

/// How many pods sync at once. The Go kubelet sets no limit; Berth bounds
/// it because containerd does the real work and, on a small node, can't run
/// more than a few RunPodSandbox/CreateContainer calls in parallel anyway:
/// more concurrent syncs would only hold more memory (a sync in flight is
/// ~50 KB) without starting pods sooner.
pub const MAX_CONCURRENT_SYNCS: usize = 16;

pub struct PodWorkers {
    manager: Arc<KubeRuntimeManager>,
    sync_slots: Semaphore,
    status: Arc<StatusManager>,
    workers: Mutex<HashMap<String, Worker>>,
    resync: Duration,
    runtime_name: String,
}

impl PodWorkers {
    pub fn new(
        manager: Arc<KubeRuntimeManager>,
        status: Arc<StatusManager>,
        resync: Duration,
        runtime_name: String,
    ) -> Arc<Self> {
        Arc::new(PodWorkers {
            manager,
            sync_slots: Semaphore::new(MAX_CONCURRENT_SYNCS),
            status,
            workers: Mutex::new(HashMap::new()),
            resync,
            runtime_name,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Worker>> {
        self.workers.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn has_worker(&self, uid: &str) -> bool {
        self.lock().contains_key(uid)
    }

    /// Makes the desired set true: new pods get a worker, changed pods an
    /// update, pods no longer desired are terminated.
    pub fn update(self: &Arc<Self>, desired: &HashMap<String, Arc<Pod>>) {
        let mut workers = self.lock();
        for (uid, pod) in desired {
            match workers.get(uid) {
                Some(w) => {
                    let changed = match &*w.desired.borrow() {
                        Desired::Run(old) => old.as_ref() != pod.as_ref(),
                        Desired::Terminate(_) => true,
                    };
                    if changed {
                        let _ = w.desired.send(Desired::Run(pod.clone()));
                    }
                }
                None => {
                    let w = self.spawn(uid.clone(), Desired::Run(pod.clone()));
                    workers.insert(uid.clone(), w);
                }
            }
        }
        for (uid, w) in workers.iter() {
            if desired.contains_key(uid) {
                continue;
            }
            // Clone out first: the watch's read guard must be gone before send.
            let current = w.desired.borrow().clone();
            if let Desired::Run(pod) = current {
                let _ = w.desired.send(Desired::Terminate(Some(pod)));
            }
        }
    }

    /// Removes a pod Berth finds in the runtime but nobody wants (e.g. its
    /// manifest was deleted while Berth was down).
    pub fn terminate_orphan(self: &Arc<Self>, uid: &str) {
        let mut workers = self.lock();
        if !workers.contains_key(uid) {
            tracing::info!(uid = %uid, "removing pod that is no longer desired");
            let w = self.spawn(uid.to_string(), Desired::Terminate(None));
            workers.insert(uid.to_string(), w);
        }
    }

    /// A runtime event for the pod: sync it soon.
    pub fn notify(&self, uid: &str) {
        if let Some(w) = self.lock().get(uid) {
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

    async fn run(
        self: Arc<Self>,
        uid: String,
        mut rx: watch::Receiver<Desired>,
        wake: Arc<Notify>,
    ) {
        let mut previous: Option<k8s_openapi::api::core::v1::PodStatus> = None;
        loop {
            let desired = rx.borrow_and_update().clone();
            let next = match desired {
                Desired::Run(pod) => {
                    let _slot = self.sync_slots.acquire().await;
                    // Boxed: a sync's future is ~50 KB, and each worker would
                    // otherwise keep that much for as long as its pod lives.
                    let (result, status) = Box::pin(self.sync(&pod, previous.as_ref())).await;
                    previous = status;
                    result
                }
                Desired::Terminate(pod) => {
                    let slot = self.sync_slots.acquire().await;
                    let gone = Box::pin(self.terminate(&uid, pod.as_deref())).await;
                    drop(slot);
                    if gone {
                        let mut workers = self.lock();
                        // Only leave if nothing asked us to run meanwhile.
                        if matches!(&*rx.borrow(), Desired::Terminate(_)) {
                            workers.remove(&uid);
                            return;
                        }
                        continue;
                    }
                    Some(Duration::from_secs(2))
                }
            };
            let wait = next.unwrap_or(self.resync).min(self.resync);
            tokio::select! {
                r = rx.changed() => if r.is_err() { return },
                _ = wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One sync; returns when to sync again and the status it published.
    async fn sync(
        &self,
        pod: &Arc<Pod>,
        previous: Option<&k8s_openapi::api::core::v1::PodStatus>,
    ) -> (
        Option<Duration>,
        Option<k8s_openapi::api::core::v1::PodStatus>,
    ) {
        let uid = pod_uid(pod);
        let pref = pod_ref(pod);
        let rt = match self.manager.runtime_pod(uid).await {
            Ok(rt) => rt,
            Err(e) => {
                tracing::warn!(pod = %pref, uid = %uid, "reading pod state from the runtime: {e}");
                return (Some(Duration::from_secs(2)), previous.cloned());
            }
        };
        let result: SyncResult = self.manager.sync_pod(pod, &rt).await;
        // Re-read what the sync changed, so status and GC see the new state.
        let rt = match self.manager.runtime_pod(uid).await {
            Ok(after) => after,
            Err(_) => rt,
        };
        let pod_ip = match rt.latest_sandbox().filter(|s| s.ready) {
            Some(s) => self.manager.sandbox_ip(&s.id).await,
            None => String::new(),
        };
        let st = status::compute(
            pod,
            &rt,
            &StatusInputs {
                sync: &result,
                pod_ip: &pod_ip,
                host_ip: &self.manager.settings.host_ip,
                runtime_name: &self.runtime_name,
                previous,
                now: jiff::Timestamp::now(),
            },
        );
        self.status.set(pod, st.clone());
        self.manager.probes.update_pod(pod, &rt, &pod_ip);
        self.manager.gc_pod(&rt).await;
        (result.requeue_after, Some(st))
    }

    /// Stops and removes the pod; true when it is gone.
    async fn terminate(&self, uid: &str, pod: Option<&Pod>) -> bool {
        let rt = match self.manager.runtime_pod(uid).await {
            Ok(rt) => rt,
            Err(e) => {
                tracing::warn!(uid = %uid, "reading pod state from the runtime: {e}");
                return false;
            }
        };
        let pref = format!("{}/{}", rt.namespace, rt.name);
        let grace = crate::kuberuntime::actions::grace_period(pod, None, None);
        self.status
            .mark_terminating(uid, grace, jiff::Timestamp::now());
        if let Err(e) = self.manager.kill_pod(pod, &rt).await {
            tracing::warn!(pod = %pref, uid = %uid, "stopping pod: {e}");
            return false;
        }
        if let Err(e) = self.manager.remove_pod(&rt).await {
            tracing::warn!(pod = %pref, uid = %uid, "removing pod: {e}");
            return false;
        }
        self.status.remove(uid);
        if !rt.sandboxes.is_empty() || !rt.containers.is_empty() {
            tracing::info!(pod = %pref, uid = %uid, "pod removed");
        }
        true
    }
}
