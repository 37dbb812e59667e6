//! The pod lifecycle event generator (the Go kubelet's `pkg/kubelet/pleg`):
//! the one place that reads the runtime's state. Each relist lists sandboxes
//! and containers once, adds what only status calls know for instances that
//! are new or changed state (exit codes, times, termination messages, pod
//! IPs; kept for the others), writes every pod into the [`PodCache`], and
//! tells the pod workers which pods changed.
//!
//! Relists are driven, fastest first, by runtime events (containerd's own
//! event service, or CRI `GetContainerEvents`), by pod workers that just
//! changed the runtime, and by a timer as the safety net: every second
//! without a healthy event stream, every [`EVENTED_RELIST_PERIOD`] with one.
//! Unlike the Go kubelet, an event does not patch the cache itself: it
//! triggers a relist, so there is one code path that writes the cache.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::sync::{Notify, mpsc};

use crate::container::runtime_pod::{ContainerState, ContainerStateKind, RuntimePod};
use crate::container::{PodCache, Runtime};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlegEvent {
    /// Something of this pod changed in the runtime: sync it.
    PodChanged(String),
    /// A full relist finished; these are all pod UIDs the runtime holds.
    Relisted(HashSet<String>),
}

pub const RELIST_PERIOD: Duration = Duration::from_secs(1);
/// The safety-net relist while an event stream is healthy.
pub const EVENTED_RELIST_PERIOD: Duration = Duration::from_secs(10);
/// How often PLEG relists while an exit an event announced is not yet
/// visible through the CRI, and for how long at most.
const EXIT_RECHECK: Duration = Duration::from_millis(10);
const EXIT_RECHECK_LIMIT: Duration = Duration::from_secs(2);

/// What makes PLEG relist early. Cheap to clone; every clone pokes the same
/// PLEG.
#[derive(Clone, Debug, Default)]
pub struct RelistTrigger {
    notify: Arc<Notify>,
    /// Event streams currently healthy.
    healthy_streams: Arc<AtomicUsize>,
    /// Containers an event said have exited, until a relist shows it.
    pending_exits: Arc<std::sync::Mutex<HashMap<String, Instant>>>,
}

impl RelistTrigger {
    /// Asks for a relist as soon as possible; requests made while one runs
    /// collapse into one more.
    pub fn relist_now(&self) {
        self.notify.notify_one();
    }

    /// A runtime event says this container's process has exited: relist
    /// now, and every [`EXIT_RECHECK`] until a relist shows it exited.
    /// containerd publishes a task's exit before its CRI plugin records it
    /// (some 20-30 ms later), so the first relist may still see it running.
    pub fn container_exited(&self, container_id: &str) {
        self.pending_exits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(container_id.to_string(), Instant::now());
        self.relist_now();
    }

    /// Drops the exits a relist has shown (or that waited too long); true
    /// while some are still to be seen.
    fn settle_exits(&self, running: &HashSet<&str>) -> bool {
        let mut pending = self.pending_exits.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|id, at| running.contains(id.as_str()) && at.elapsed() < EXIT_RECHECK_LIMIT);
        !pending.is_empty()
    }

    /// An event stream came up (true) or went down (false).
    pub fn stream_health(&self, up: bool) {
        if up {
            self.healthy_streams.fetch_add(1, Ordering::SeqCst);
        } else {
            let _ = self
                .healthy_streams
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        }
        self.notify.notify_one();
    }

    fn period(&self) -> Duration {
        if self.healthy_streams.load(Ordering::SeqCst) > 0 {
            EVENTED_RELIST_PERIOD
        } else {
            RELIST_PERIOD
        }
    }
}

/// The objects of one pod and their states, to tell whether it changed.
fn fingerprint(pod: &RuntimePod) -> Vec<(String, i32)> {
    let mut f: Vec<(String, i32)> = pod
        .sandboxes
        .iter()
        .map(|s| (s.id.clone(), i32::from(s.ready)))
        .chain(pod.containers.iter().map(|c| {
            let state = match c.state {
                ContainerStateKind::Created => 10,
                ContainerStateKind::Running => 11,
                ContainerStateKind::Exited => 12,
                ContainerStateKind::Unknown => 13,
            };
            (c.id.clone(), state)
        }))
        .collect();
    f.sort();
    f
}

/// Relists early on every CRI container event (runtimes that implement
/// `GetContainerEvents`). Ends at once, quietly, on a runtime that answers
/// Unimplemented (containerd 1.6); otherwise reconnects after a lost stream.
pub async fn watch_cri_events(client: cri_client::RuntimeClient, trigger: RelistTrigger) {
    use futures_util::StreamExt;
    let mut delay = Duration::from_secs(1);
    loop {
        let mut stream = match client
            .get_container_events(cri_client::proto::GetEventsRequest::default())
            .await
        {
            Ok(s) => s,
            Err(e) if e.code() == Some(tonic::Code::Unimplemented) => {
                tracing::debug!("the runtime has no CRI container events: {e}");
                return;
            }
            Err(e) => {
                tracing::warn!("subscribing to CRI container events: {e}; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        tracing::info!(
            "runtime streams CRI container events; relisting every {EVENTED_RELIST_PERIOD:?} as a safety net"
        );
        trigger.stream_health(true);
        delay = Duration::from_secs(1);
        while let Some(Ok(ev)) = stream.next().await {
            let exited = ev.container_event_type
                == cri_client::proto::ContainerEventType::ContainerStoppedEvent as i32;
            if exited {
                trigger.container_exited(&ev.container_id);
            } else {
                trigger.relist_now();
            }
        }
        trigger.stream_health(false);
        tracing::warn!(
            "CRI container event stream ended; relisting every {RELIST_PERIOD:?} until it is back"
        );
    }
}

/// Relists early on containerd's own task events (`/tasks/start`, `exit`,
/// `delete`, `oom` in namespace `k8s.io`, on the CRI socket itself), which
/// containerd 1.6 has although it lacks CRI `GetContainerEvents`. Exec
/// processes' events are ignored. Ends quietly on a runtime without the
/// service (CRI-O); otherwise resubscribes after a lost stream, while PLEG
/// relists every second meanwhile.
pub async fn watch_containerd_events(endpoint: String, trigger: RelistTrigger) {
    use cri_client::containerd_events::{ContainerdEvents, RuntimeEvent};
    use futures_util::StreamExt;
    let mut delay = Duration::from_secs(1);
    let mut warned = false;
    loop {
        let subscribed = match ContainerdEvents::connect(&endpoint).await {
            Ok(events) => events.subscribe("k8s.io", &["topic~=\"/tasks/\""]).await,
            Err(e) => Err(e),
        };
        let stream = match subscribed {
            Ok(s) => s,
            Err(e) if e.is_unimplemented() => {
                tracing::debug!("no containerd event service at {endpoint}: {e}");
                return;
            }
            Err(e) => {
                if !warned {
                    tracing::warn!(
                        "subscribing to containerd events at {endpoint}: {e}; relisting every {RELIST_PERIOD:?} meanwhile"
                    );
                    warned = true;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        tracing::info!(endpoint = %endpoint, "following containerd task events; relisting every {EVENTED_RELIST_PERIOD:?} as a safety net");
        trigger.stream_health(true);
        delay = Duration::from_secs(1);
        warned = false;
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            let ev = match ev {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::debug!("containerd event: {e}");
                    continue;
                }
            };
            tracing::trace!(topic = %ev.topic, event = ?ev.event, "containerd event");
            let relevant = matches!(
                ev.event,
                RuntimeEvent::TaskStart { .. }
                    | RuntimeEvent::TaskExit { .. }
                    | RuntimeEvent::TaskDelete { .. }
                    | RuntimeEvent::TaskOom { .. }
            );
            if relevant && !ev.event.is_exec() {
                match (&ev.event, ev.event.container_id()) {
                    (RuntimeEvent::TaskExit { .. }, Some(id)) => trigger.container_exited(id),
                    _ => trigger.relist_now(),
                }
            }
        }
        trigger.stream_health(false);
        tracing::warn!(
            "containerd event stream ended; relisting every {RELIST_PERIOD:?} until it is back"
        );
        tokio::time::sleep(delay).await;
    }
}

pub struct Pleg {
    runtime: Arc<dyn Runtime>,
    cache: Arc<PodCache>,
    trigger: RelistTrigger,
    /// The previous relist's pods, with their details.
    last: HashMap<String, Arc<RuntimePod>>,
}

impl Pleg {
    pub fn new(runtime: Arc<dyn Runtime>, cache: Arc<PodCache>) -> Self {
        Pleg {
            runtime,
            cache,
            trigger: RelistTrigger::default(),
            last: HashMap::new(),
        }
    }

    /// A handle that makes this PLEG relist early.
    pub fn trigger(&self) -> RelistTrigger {
        self.trigger.clone()
    }

    /// Copies details of instances the last relist saw in the same state,
    /// and fetches them for the rest: the two newest instances of each
    /// container name (status and lastState), and the IP of ready sandboxes.
    async fn fill_details(&self, pods: &mut HashMap<String, RuntimePod>) {
        let mut fetch: Vec<&mut ContainerState> = Vec::new();
        let mut ips: Vec<(String, String)> = Vec::new();
        for pod in pods.values_mut() {
            let prev = self.last.get(&pod.uid);
            for s in &mut pod.sandboxes {
                if !s.ready {
                    continue;
                }
                let known = prev
                    .and_then(|p| p.sandboxes.iter().find(|o| o.id == s.id && o.ready))
                    .map(|o| o.ip.clone());
                match known {
                    Some(ip) if !ip.is_empty() => s.ip = ip,
                    _ => ips.push((pod.uid.clone(), s.id.clone())),
                }
            }
            let mut per_name: HashMap<String, usize> = HashMap::new();
            for c in &mut pod.containers {
                let n = per_name.entry(c.name().to_string()).or_default();
                *n += 1;
                if *n > 2 {
                    continue;
                }
                let known = prev.and_then(|p| {
                    p.containers
                        .iter()
                        .find(|o| o.id == c.id && o.state == c.state && o.detailed)
                });
                match known {
                    Some(o) => *c = o.clone(),
                    None => fetch.push(c),
                }
            }
        }
        let runtime = &self.runtime;
        join_all(
            fetch
                .into_iter()
                .map(|c| async move { runtime.fill_container_status(c).await }),
        )
        .await;
        let found = join_all(ips.iter().map(|(_, id)| runtime.sandbox_ip(id))).await;
        for ((uid, id), ip) in ips.into_iter().zip(found) {
            if let Some(s) = pods
                .get_mut(&uid)
                .and_then(|p| p.sandboxes.iter_mut().find(|s| s.id == id))
            {
                s.ip = ip;
            }
        }
    }

    /// One relist: the cache is written for every pod that changed, and the
    /// global timestamp moves for the rest.
    pub async fn relist(
        &mut self,
        tx: &mpsc::UnboundedSender<PlegEvent>,
    ) -> Result<(), cri_client::Error> {
        let started = Instant::now();
        let mut pods = self.runtime.get_pods().await?;
        self.fill_details(&mut pods).await;
        let mut next: HashMap<String, Arc<RuntimePod>> = HashMap::with_capacity(pods.len());
        let mut changed = Vec::new();
        for (uid, pod) in pods {
            let same = self
                .last
                .get(&uid)
                .is_some_and(|old| fingerprint(old) == fingerprint(&pod));
            let pod = Arc::new(pod);
            if !same || !self.cache_has(&uid) {
                self.cache.set(&uid, pod.clone(), started);
                changed.push(uid.clone());
            }
            next.insert(uid, pod);
        }
        for uid in self.last.keys() {
            if !next.contains_key(uid) {
                self.cache.delete(uid);
                changed.push(uid.clone());
            }
        }
        self.cache.update_time(started);
        for uid in changed {
            let _ = tx.send(PlegEvent::PodChanged(uid));
        }
        let _ = tx.send(PlegEvent::Relisted(next.keys().cloned().collect()));
        self.last = next;
        crate::metrics::COUNTERS
            .pleg_relist_duration
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// IDs of the containers the last relist saw running.
    fn running_ids(&self) -> HashSet<&str> {
        self.last
            .values()
            .flat_map(|p| p.containers.iter())
            .filter(|c| c.is_running())
            .map(|c| c.id.as_str())
            .collect()
    }

    fn cache_has(&self, uid: &str) -> bool {
        self.cache.contains(uid)
    }

    /// Relists until the receiver is dropped.
    pub async fn run(mut self, tx: mpsc::UnboundedSender<PlegEvent>) {
        let mut failing = false;
        loop {
            if tx.is_closed() {
                return;
            }
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
            let period = if self.trigger.settle_exits(&self.running_ids()) {
                EXIT_RECHECK
            } else {
                self.trigger.period()
            };
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = self.trigger.notify.notified() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::runtime_pod::{ContainerInfo, SandboxState};

    fn pod(states: &[(&str, ContainerStateKind)]) -> RuntimePod {
        RuntimePod {
            uid: "u".into(),
            sandboxes: vec![SandboxState {
                id: "s".into(),
                attempt: 0,
                ready: true,
                created_at: 1,
                hash: String::new(),
                ip: String::new(),
            }],
            containers: states
                .iter()
                .map(|(id, st)| {
                    ContainerState::new(
                        id.to_string(),
                        "s".into(),
                        ContainerInfo::default(),
                        *st,
                        1,
                    )
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn fingerprints_differ_when_an_instance_changes_state_or_appears() {
        use ContainerStateKind::*;
        let a = pod(&[("c1", Running)]);
        assert_eq!(fingerprint(&a), fingerprint(&pod(&[("c1", Running)])));
        assert_ne!(fingerprint(&a), fingerprint(&pod(&[("c1", Exited)])));
        assert_ne!(
            fingerprint(&a),
            fingerprint(&pod(&[("c1", Running), ("c2", Created)]))
        );
    }

    #[test]
    fn trigger_period_follows_stream_health() {
        let t = RelistTrigger::default();
        assert_eq!(t.period(), RELIST_PERIOD);
        t.stream_health(true);
        assert_eq!(t.period(), EVENTED_RELIST_PERIOD);
        t.stream_health(false);
        t.stream_health(false);
        assert_eq!(t.period(), RELIST_PERIOD);
    }
}
