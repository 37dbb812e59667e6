//! The prober (the Go kubelet's `pkg/kubelet/prober`): one worker per probe
//! of each running container instance; results feed the runtime manager
//! (liveness, startup) and status (readiness, started).
//!
//! - [`ProbeManager`] (Go's `prober_manager.go`) starts workers for new
//!   instances from [`ProbeManager::update_pod`], stops those of instances
//!   gone, and answers the result queries;
//! - [`worker`] probes on a timer and applies the thresholds;
//! - [`results`] keeps decided results and announces changes;
//! - [`exec`], [`http`], [`tcp`], [`grpc`] are the probe kinds (Go's
//!   `pkg/probe`).
//!
//! Unlike Go, workers are keyed by container instance (ID), not by name:
//! a restarted container simply gets fresh workers and results.

pub mod metrics;
pub mod probe_metrics;
pub mod results;
pub mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;

use crate::container::runtime::KillReason;
use crate::container::runtime_pod::{ContainerState, RuntimePod};
use crate::events::{ObjectRef, Recorder};
use crate::lifecycle::HandlerRunner;
use crate::probe::{Outcome, exec, grpc, tcp};
use crate::{pod_ref, pod_uid};
use results::{ProbeResult, ProbeType, Results};
use worker::{Action, ProbeSpec, Worker};

/// Why one probe attempt has no outcome: a probe error, which the worker
/// retries, logs and otherwise ignores (Go's probe.Unknown).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The runtime could not run an exec probe's command at all.
    #[error(transparent)]
    Runtime(#[from] cri_client::Error),
    /// The probe goes to the pod's address, and the pod has none yet.
    #[error("the pod has no IP address yet")]
    NoPodIp,
    #[error(transparent)]
    Invalid(Arc<worker::InvalidProbe>),
    /// A scripted worker test ran out of outcomes.
    #[cfg(test)]
    #[error("script ended")]
    ScriptEnded,
}

/// A probe result changed for this pod UID: sync it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeUpdate {
    pub uid: String,
}

/// What workers of one pod share.
#[derive(Debug)]
pub struct PodShared {
    pub pref: String,
    pub uid: String,
    /// The address probes without a host go to: the pod IP, or the node's
    /// for hostNetwork pods. Updated by update_pod.
    ip: Mutex<Arc<str>>,
}

impl PodShared {
    fn ip(&self) -> Arc<str> {
        self.ip.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[derive(Debug)]
struct PodEntry {
    shared: Arc<PodShared>,
    /// Running instances seen, by container ID, with their workers (none
    /// for containers without probes).
    instances: HashMap<String, Vec<AbortHandle>>,
}

fn stop(workers: &[AbortHandle]) {
    for w in workers {
        w.abort();
    }
}

pub struct ProbeManager {
    runner: Arc<HandlerRunner>,
    /// Unhealthy and ProbeWarning events about containers.
    pub(crate) recorder: Recorder,
    pub(crate) results: Results,
    pub(crate) metrics: metrics::Metrics,
    /// `/metrics/probes`: counters and durations per worker, always on.
    pub(crate) probe_metrics: probe_metrics::ProberMetrics,
    pods: Mutex<HashMap<String, PodEntry>>,
    created: std::time::Instant,
}

impl ProbeManager {
    /// The manager and the stream of result changes (for the sync loop).
    pub fn new(runner: Arc<HandlerRunner>) -> (Arc<Self>, mpsc::UnboundedReceiver<ProbeUpdate>) {
        ProbeManager::with_recorder(runner, Recorder::disabled())
    }

    /// [`ProbeManager::new`], recording probe events through `recorder`.
    pub fn with_recorder(
        runner: Arc<HandlerRunner>,
        recorder: Recorder,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<ProbeUpdate>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Arc::new(ProbeManager {
                runner,
                recorder,
                results: Results::new(tx),
                metrics: Default::default(),
                probe_metrics: Default::default(),
                pods: Mutex::new(HashMap::new()),
                created: std::time::Instant::now(),
            }),
            rx,
        )
    }

    /// The prober's Prometheus series (shared: the kubelet API renders
    /// them on `/metrics/probes`).
    pub fn prober_metrics(&self) -> probe_metrics::ProberMetrics {
        self.probe_metrics.clone()
    }

    fn lock_pods(&self) -> std::sync::MutexGuard<'_, HashMap<String, PodEntry>> {
        self.pods.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Called after every sync: starts a worker for each probe of each
    /// running container instance and stops workers of instances gone.
    /// When nothing changed this is a few map lookups.
    pub fn update_pod(self: &Arc<Self>, pod: &Arc<Pod>, rt: &RuntimePod, pod_ip: &str) {
        let uid = pod_uid(pod);
        let Some(spec) = pod.spec.as_ref() else {
            return;
        };
        if uid.is_empty() {
            return;
        }
        let mut pods = self.lock_pods();
        if !pods.contains_key(uid) {
            if rt.running_containers().next().is_none() {
                return;
            }
            pods.insert(
                uid.to_string(),
                PodEntry {
                    shared: Arc::new(PodShared {
                        pref: pod_ref(pod),
                        uid: uid.to_string(),
                        ip: Mutex::new(Arc::from("")),
                    }),
                    instances: HashMap::new(),
                },
            );
        }
        let Some(entry) = pods.get_mut(uid) else {
            return;
        };
        // hostNetwork pods have no pod IP of their own: the node's address
        // is theirs (Go's status.PodIP is the host IP for them).
        let ip = if spec.host_network == Some(true) {
            self.runner.host_ip.as_str()
        } else {
            pod_ip
        };
        if !ip.is_empty() {
            let mut cur = entry.shared.ip.lock().unwrap_or_else(|e| e.into_inner());
            if &**cur != ip {
                *cur = Arc::from(ip);
            }
        }

        let mut gone = Vec::new();
        entry.instances.retain(|id, workers| {
            let running = rt.running_containers().any(|c| &c.id == id);
            if !running {
                stop(workers);
                gone.push(id.clone());
            }
            running
        });
        if !gone.is_empty() {
            self.results.remove(gone.iter().map(String::as_str));
        }
        for c in rt.running_containers() {
            if entry.instances.contains_key(&c.id) {
                continue;
            }
            let workers = match find_container(spec, c.name()) {
                Some(spec_c) => self.start_workers(pod, &entry.shared, spec_c, c),
                None => Vec::new(),
            };
            entry.instances.insert(c.id.clone(), workers);
        }
        if entry.instances.is_empty() {
            pods.remove(uid);
        }
    }

    /// Workers for each probe of a new instance, results at their initial
    /// values.
    fn start_workers(
        self: &Arc<Self>,
        pod_obj: &Pod,
        pod: &Arc<PodShared>,
        spec: &Container,
        c: &ContainerState,
    ) -> Vec<AbortHandle> {
        let probes = [
            (ProbeType::Startup, spec.startup_probe.as_ref()),
            (ProbeType::Liveness, spec.liveness_probe.as_ref()),
            (ProbeType::Readiness, spec.readiness_probe.as_ref()),
        ];
        if probes.iter().all(|(_, p)| p.is_none()) {
            return Vec::new();
        }
        let (started_tx, started) = watch::channel(spec.startup_probe.is_none());
        let mut started_tx = Some(started_tx);
        let since_start = container_age(c.started_at);
        let now = tokio::time::Instant::now();
        let mut handles = Vec::new();
        for (kind, probe) in probes {
            let Some(probe) = probe else { continue };
            let spec_p = ProbeSpec::new(probe, spec, kind);
            if let Action::Invalid(e) = &spec_p.action {
                tracing::warn!(pod = %pod.pref, uid = %pod.uid, container = %spec.name, probe = %kind, "probe can't run: {e}");
            }
            self.results.add(&pod.uid, &c.id, kind);
            let not_before = now + spec_p.initial_delay.saturating_sub(since_start);
            // Go spreads the first probes only when the kubelet has just
            // started (adopting running containers); so does berth.
            let jitter_first = self.created.elapsed() < spec_p.period;
            let meta = &pod_obj.metadata;
            let series = self.probe_metrics.worker(
                kind,
                &spec.name,
                meta.name.as_deref().unwrap_or_default(),
                meta.namespace.as_deref().unwrap_or_default(),
                &pod.uid,
            );
            let worker = Worker {
                manager: self.clone(),
                kind,
                spec: spec_p,
                pod: pod.clone(),
                container: spec.name.clone(),
                target: ObjectRef::container(pod_obj, &spec.name),
                container_id: c.id.clone(),
                not_before,
                started: started.clone(),
                started_tx: if kind == ProbeType::Startup {
                    started_tx.take()
                } else {
                    None
                },
                jitter_first,
                spread: true,
                series,
            };
            handles.push(tokio::spawn(worker.run()).abort_handle());
        }
        tracing::debug!(pod = %pod.pref, uid = %pod.uid, container = %spec.name, id = %c.id, workers = handles.len(), "probe workers started");
        handles
    }

    /// The pod is gone: stop its workers and forget its results.
    pub fn remove_pod(&self, uid: &str) {
        // Even when no instance runs any more (the entry is gone), the
        // pod's series are still there.
        self.probe_metrics.remove_pod(uid);
        let entry = self.lock_pods().remove(uid);
        if let Some(entry) = entry {
            for w in entry.instances.values() {
                stop(w);
            }
            self.results
                .remove(entry.instances.keys().map(String::as_str));
        }
    }

    /// Readiness of a running instance; None when it has no readiness probe
    /// (or the prober has not seen the instance yet).
    pub fn readiness(&self, _uid: &str, container_id: &str) -> Option<bool> {
        self.results
            .get(container_id, ProbeType::Readiness)
            .map(|r| r == ProbeResult::Success)
    }

    /// Whether the startup probe has succeeded; None when there is none.
    pub fn started(&self, _uid: &str, container_id: &str) -> Option<bool> {
        self.results
            .get(container_id, ProbeType::Startup)
            .map(|r| r == ProbeResult::Success)
    }

    /// Some(message) once the liveness or startup probe of this instance
    /// has failed failureThreshold times, e.g. "Liveness probe failed: HTTP
    /// probe failed with statuscode: 500": the container must be killed.
    pub fn kill_reason(&self, _uid: &str, container_id: &str) -> Option<KillReason> {
        self.results.kill_reason(container_id)
    }

    /// Workers running (for tests and the benchmark's sanity checks).
    pub fn worker_count(&self) -> usize {
        self.lock_pods()
            .values()
            .flat_map(|p| p.instances.values())
            .map(|w| w.iter().filter(|h| !h.is_finished()).count())
            .sum()
    }

    /// One attempt of a probe; Err is a probe error (not counted).
    pub(crate) async fn run_probe(
        &self,
        action: &Action,
        pod: &PodShared,
        container_id: &str,
        timeout: Duration,
    ) -> Result<Outcome, ProbeError> {
        let pod_host = || {
            let ip = pod.ip();
            if ip.is_empty() {
                Err(ProbeError::NoPodIp)
            } else {
                Ok(ip)
            }
        };
        match action {
            Action::Exec(cmd) => {
                Ok(exec::probe(&self.runner.client, container_id, cmd, timeout).await?)
            }
            Action::Http(req) => {
                let url = match &req.host {
                    Some(h) => req.url(h),
                    None => req.url(&pod_host()?),
                };
                Ok(self.runner.http.probe(req, url, timeout).await)
            }
            Action::Tcp { host, port } => {
                let host = match host {
                    Some(h) => Arc::from(h.as_str()),
                    None => pod_host()?,
                };
                Ok(tcp::probe(&host, *port, timeout).await)
            }
            Action::Grpc { port, service } => {
                Ok(grpc::probe(&pod_host()?, *port, service, timeout).await)
            }
            Action::Invalid(e) => Err(ProbeError::Invalid(e.clone())),
            #[cfg(test)]
            Action::Scripted(q) => {
                let next = q.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                next.unwrap_or(Err(ProbeError::ScriptEnded))
            }
        }
    }
}

/// The spec of a running container: an app container or a sidecar
/// (restartable init container); plain init containers have no probes.
fn find_container<'a>(spec: &'a PodSpec, name: &str) -> Option<&'a Container> {
    spec.containers.iter().find(|c| c.name == name).or_else(|| {
        spec.init_containers
            .iter()
            .flatten()
            .find(|c| c.name == name && c.restart_policy.as_deref() == Some("Always"))
    })
}

/// How long ago the container started (0 when unknown).
fn container_age(started_at_ns: i64) -> Duration {
    if started_at_ns <= 0 {
        return Duration::ZERO;
    }
    let started = UNIX_EPOCH + Duration::from_nanos(started_at_ns.unsigned_abs());
    SystemTime::now()
        .duration_since(started)
        .unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests;
