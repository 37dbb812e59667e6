//! The kubelet-level sync (the Go kubelet's `kubelet.go`: `SyncPod`,
//! `SyncTerminatingPod`, `SyncTerminatedPod`): what the pod workers call.
//! It orchestrates the node-side parts around the [`Runtime`]: the pod's
//! cgroup and volumes before its sandbox, probe results into the runtime
//! view, status out to the [`StatusManager`], and clean-up after removal.
//! Blocking file-system work (volumes, cgroups) runs off the async thread.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cri_client::proto as pb;
use futures_util::future::BoxFuture;
use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};

use crate::cm::CmError;
use crate::cm::ContainerManager;
use crate::container::runtime::{RunContainerOptions, SyncResult, Waiting};
use crate::container::runtime_pod::ProbeState;
use crate::container::{Runtime, RuntimeHelper, RuntimePod};
use crate::dns::{DnsConfigurer, DnsError};
use crate::envvars::{self, PodFacts};
use crate::events::{EventType, ObjectRef, Recorder};
use crate::prober::ProbeManager;
use crate::status::{self, StatusInputs, StatusManager};
use crate::volumes::objects::{MountError, ObjectVolumes, PodObjects};
use crate::volumes::{VolumeError, VolumeManager};
use crate::{pod_ref, pod_uid};

/// What one SyncPod left for its worker.
#[derive(Debug, Default)]
pub struct SyncOutcome {
    pub requeue_after: Option<Duration>,
    /// The runtime changed: the next sync needs a newer view.
    pub mutated: bool,
    /// The status this sync published.
    pub status: Option<PodStatus>,
}

/// Why a pod's node-side parts could not be made before its sandbox (the
/// pod's status message, as a sandbox failure).
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Volumes(#[from] VolumeError),
    #[error(transparent)]
    Cgroup(#[from] CmError),
    #[error(transparent)]
    Mount(#[from] MountError),
    /// The blocking task panicked or was cancelled.
    #[error("preparing the pod: {0}")]
    Task(#[from] tokio::task::JoinError),
}

pub struct Kubelet {
    pub runtime: Arc<dyn Runtime>,
    pub cm: Arc<ContainerManager>,
    pub volumes: Arc<VolumeManager>,
    pub probes: Arc<ProbeManager>,
    pub status: Arc<StatusManager>,
    pub host_ip: String,
    /// "containerd", for `containerd://<id>` container IDs in status.
    pub runtime_name: String,
    pub reasons: ReasonCache,
    /// configMap, secret, downwardAPI and projected volume files.
    pub object_volumes: Arc<ObjectVolumes>,
}

/// Why each pod's containers last failed to start, and its sandbox error,
/// from its last sync (Go's `ReasonCache`): the status published before a
/// sync, from the runtime view alone, keeps the reasons (CrashLoopBackOff,
/// ErrImagePull) instead of flapping to ContainerCreating.
#[derive(Default)]
pub struct ReasonCache(Mutex<HashMap<String, Reasons>>);

#[derive(Clone, Default, PartialEq)]
struct Reasons {
    waiting: HashMap<String, Waiting>,
    sandbox_error: Option<String>,
}

impl ReasonCache {
    fn get(&self, uid: &str) -> SyncResult {
        let reasons = self
            .0
            .lock()
            .ok()
            .and_then(|m| m.get(uid).cloned())
            .unwrap_or_default();
        SyncResult {
            waiting: reasons.waiting,
            sandbox_error: reasons.sandbox_error,
            ..Default::default()
        }
    }

    /// Keeps a sync's reasons; true if they differ from the kept ones.
    fn set(&self, uid: &str, result: &SyncResult) -> bool {
        let Ok(mut m) = self.0.lock() else {
            return true;
        };
        let reasons = Reasons {
            waiting: result.waiting.clone(),
            sandbox_error: result.sandbox_error.clone(),
        };
        let changed = match m.get(uid) {
            Some(old) => *old != reasons,
            None => reasons != Reasons::default(),
        };
        if reasons == Reasons::default() {
            m.remove(uid);
        } else {
            m.insert(uid.to_string(), reasons);
        }
        changed
    }

    fn remove(&self, uid: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(uid);
        }
    }
}

impl Kubelet {
    /// The runtime view with the prober's results for running instances.
    fn with_probes(&self, cached: &RuntimePod) -> RuntimePod {
        let mut rt = cached.clone();
        for c in rt.containers.iter_mut().filter(|c| c.is_running()) {
            c.probe = ProbeState {
                ready: self.probes.readiness(&rt.uid, &c.id),
                started: self.probes.started(&rt.uid, &c.id),
                kill_reason: self.probes.kill_reason(&rt.uid, &c.id),
            };
        }
        rt
    }

    /// The pod's cgroup and volumes, made before its sandbox: directories
    /// first (blocking work), then the files of object volumes.
    async fn prepare(&self, pod: &Arc<Pod>) -> Result<(), PrepareError> {
        let (cm, volumes, p) = (self.cm.clone(), self.volumes.clone(), pod.clone());
        tokio::task::spawn_blocking(move || {
            volumes.prepare(&p)?;
            cm.ensure_pod_cgroup(&p)?;
            Ok::<(), PrepareError>(())
        })
        .await??;
        self.object_volumes.setup(pod).await?;
        Ok(())
    }

    /// The pod's status from a runtime view and a sync's reasons.
    fn status(
        &self,
        pod: &Pod,
        rt: &RuntimePod,
        sync: &SyncResult,
        previous: Option<&PodStatus>,
        terminal: bool,
    ) -> PodStatus {
        let pod_ip = pod_ip(rt);
        status::compute(
            pod,
            rt,
            &StatusInputs {
                sync,
                pod_ip: &pod_ip,
                host_ip: &self.host_ip,
                runtime_name: &self.runtime_name,
                previous,
                now: jiff::Timestamp::now(),
                terminal,
            },
        )
    }

    /// Brings the pod to its spec and publishes its status: first what the
    /// runtime view already shows (an exit is published before the sync
    /// stops a finished pod's sandbox, as Go's SyncPod does), then what
    /// the sync changed.
    pub async fn sync_pod(
        &self,
        pod: &Arc<Pod>,
        cached: &RuntimePod,
        previous: Option<&PodStatus>,
    ) -> SyncOutcome {
        let uid = pod_uid(pod);
        let rt = self.with_probes(cached);
        self.cm.note_pod(pod);
        let before = self.status(pod, &rt, &self.reasons.get(uid), previous, false);
        self.status.set_pod_status(pod, before.clone());
        let needs_sandbox = rt.latest_sandbox().is_none_or(|s| !s.ready);
        // A running pod this berth has not written volumes for yet (after
        // a restart), or whose labels changed, gets them now; object
        // changes come from the refresh.
        let newly_tracked = self.object_volumes.track(pod);
        let prepared = match needs_sandbox {
            true => self.prepare(pod).await,
            false if newly_tracked => self.prepare(pod).await,
            false => Ok(()),
        };
        let result = match prepared {
            Ok(()) => self.runtime.sync_pod(pod, &rt).await,
            Err(e) => {
                // Once per cause: a pod waiting for an object retries often.
                let message = e.to_string();
                if self.reasons.get(uid).sandbox_error.as_deref() != Some(message.as_str()) {
                    tracing::warn!(pod = %pod_ref(pod), uid = %uid, "creating pod sandbox: {message}");
                }
                SyncResult {
                    sandbox_error: Some(message),
                    requeue_after: Some(Duration::from_secs(2)),
                    ..Default::default()
                }
            }
        };
        // The view is the one `before` came from: only new reasons can
        // change the status.
        let st = match self.reasons.set(uid, &result) {
            true => {
                let st = self.status(pod, &rt, &result, Some(&before), false);
                self.status.set_pod_status(pod, st.clone());
                st
            }
            false => before,
        };
        self.probes.update_pod(pod, &rt, &pod_ip(&rt));
        if !result.mutated {
            // Collect dead instances only from a view the sync left as is.
            self.runtime.gc_pod(&rt).await;
        }
        SyncOutcome {
            requeue_after: result.requeue_after,
            mutated: result.mutated,
            status: Some(st),
        }
    }

    /// Stops every container and the sandbox, within the grace period.
    pub async fn sync_terminating_pod(
        &self,
        uid: &str,
        pod: Option<&Pod>,
        rt: &RuntimePod,
        grace: Option<i64>,
    ) -> Result<(), cri_client::Error> {
        self.status.terminating(uid);
        self.runtime.kill_pod(pod, rt, grace).await?;
        self.probes.remove_pod(uid);
        Ok(())
    }

    /// Removes the stopped pod: containers, sandboxes, logs, cgroup and
    /// volumes; then its status.
    pub async fn sync_terminated_pod(
        &self,
        uid: &str,
        pod: Option<&Pod>,
        rt: &RuntimePod,
    ) -> Result<(), cri_client::Error> {
        if rt.running_containers().next().is_some() || rt.sandboxes.iter().any(|s| s.ready) {
            // Something started again in the meantime: stop it at once.
            self.runtime.kill_pod(pod, rt, Some(0)).await?;
        }
        if let (Some(pod), Some(previous)) = (pod.filter(|p| is_api_pod(p)), self.status.get(uid)) {
            // The final status, from the view after the stop (Go's
            // SyncTerminatedPod): the apiserver sink writes it before the
            // object is deleted. A pod this berth never synced (already
            // terminal when it started) keeps the status it has.
            let last = self.status(pod, rt, &self.reasons.get(uid), Some(&previous), true);
            self.status.set_pod_status(&Arc::new(pod.clone()), last);
        }
        self.runtime.remove_pod(rt).await?;
        // Gone from the runtime: gone from status at once, before clean-up.
        self.status.remove(uid);
        self.reasons.remove(uid);
        self.object_volumes.forget(uid);
        if let Some(pod) = pod {
            self.object_volumes
                .objects()
                .for_pod(pod)
                .unregister_pod(pod);
        }
        let (cm, volumes, id) = (self.cm.clone(), self.volumes.clone(), uid.to_string());
        let cleanup = tokio::task::spawn_blocking(move || {
            if let Err(e) = cm.remove_pod_cgroup(&id) {
                tracing::warn!(uid = %id, "removing pod cgroup: {e}");
            }
            if let Err(e) = volumes.cleanup(&id) {
                tracing::warn!(uid = %id, "cleaning up pod volumes: {e}");
            }
        });
        let _ = cleanup.await;
        if !rt.sandboxes.is_empty() || !rt.containers.is_empty() {
            tracing::info!(pod = %pod.map_or_else(|| format!("{}/{}", rt.namespace, rt.name), pod_ref), uid = %uid, "pod removed");
        }
        Ok(())
    }
}

/// A pod from the apiserver (not a static pod): its status is the
/// kubelet's to finish, and its object the kubelet's to delete.
pub fn is_api_pod(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(static_pods::identity::CONFIG_SOURCE_ANNOTATION))
        .is_some_and(|s| s == crate::podconfig::API_SOURCE)
}

/// The pod's IP: its ready sandbox's.
fn pod_ip(rt: &RuntimePod) -> String {
    rt.latest_sandbox()
        .filter(|s| s.ready)
        .map(|s| s.ip.clone())
        .unwrap_or_default()
}

/// The kubelet's answers to the runtime while it creates sandboxes and
/// containers (Go's `RuntimeHelper`).
pub struct PodRuntimeHelper {
    pub dns: DnsConfigurer,
    pub cm: Arc<ContainerManager>,
    pub volumes: Arc<VolumeManager>,
    pub node_name: String,
    pub host_ip: String,
    /// The ConfigMaps and Secrets containers' environments read.
    /// The ConfigMaps and Secrets env reads, by the pod's source.
    pub objects: PodObjects,
    /// The node's allocatable (nano-units), for resourceFieldRef limits
    /// left unset.
    pub node_allocatable: crate::cm::helpers::ResourceList,
    pub recorder: Recorder,
}

impl RuntimeHelper for PodRuntimeHelper {
    fn dns_config(&self, pod: &Pod) -> Result<pb::DnsConfig, DnsError> {
        self.dns.pod_dns_config(pod)
    }

    fn cgroup_parent(&self, pod: &Pod) -> String {
        self.cm.pod_cgroup_parent(pod)
    }

    fn run_container_options<'a>(
        &'a self,
        pod: &'a Pod,
        container: &'a Container,
        restart_count: u32,
        pod_ip: &'a str,
    ) -> BoxFuture<'a, Result<RunContainerOptions, Waiting>> {
        Box::pin(async move {
            let config_error = |m: String| Waiting::new("CreateContainerConfigError", m);
            let facts = PodFacts {
                node_name: &self.node_name,
                pod_ip,
                host_ip: &self.host_ip,
                node_allocatable: Some(&self.node_allocatable),
                ..Default::default()
            };
            let getter = self.objects.for_pod(pod);
            getter.register_pod(pod);
            let env = envvars::container_env(pod, container, &facts, getter)
                .await
                .map_err(|e| config_error(e.to_string()))?;
            for skipped in &env.invalid_keys {
                tracing::warn!(pod = %pod_ref(pod), uid = %pod_uid(pod), container = %container.name, reason = envvars::InvalidKeys::REASON, "{skipped}");
                self.recorder.event(
                    &ObjectRef::pod(pod),
                    EventType::Warning,
                    envvars::InvalidKeys::REASON,
                    skipped.to_string(),
                );
            }
            let env = env.vars;
            let (volumes, p, c, ip) = (
                self.volumes.clone(),
                pod.clone(),
                container.clone(),
                pod_ip.to_string(),
            );
            let mounts =
                tokio::task::spawn_blocking(move || volumes.mounts(&p, &c, restart_count, &ip))
                    .await
                    .map_err(|e| config_error(format!("making the container's mounts: {e}")))?
                    .map_err(|e| config_error(e.to_string()))?;
            Ok(RunContainerOptions {
                env,
                mounts,
                resources: self.cm.container_resources(pod, container),
            })
        })
    }
}
