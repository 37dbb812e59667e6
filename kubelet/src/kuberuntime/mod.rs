//! The runtime manager (the Go kubelet's `kuberuntime_manager.go`): the
//! [`Runtime`] implementation over the CRI. It turns
//! [`actions::PodActions`] into CRI calls, and reads pods back from the
//! runtime. It is the only place that builds CRI requests for pods; what it
//! needs of the kubelet (DNS, cgroups, env, mounts) comes through
//! [`RuntimeHelper`].

pub mod actions;
pub mod container;
pub mod convert;
#[cfg(test)]
mod events_tests;
pub mod gc;
pub mod hash;
mod kill;
pub mod labels;
pub mod sandbox;
pub mod termination;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cri_client::RuntimeClient;
use cri_client::proto as pb;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::sync::Semaphore;

use crate::backoff::{Backoff, now_nanos};
use crate::container::runtime::{Runtime, RuntimeHelper, RuntimeResult, SyncResult, Waiting};
use crate::container::runtime_pod::{
    ContainerInfo, ContainerState, ContainerStateKind, RuntimePod,
};
use crate::dns::DnsError;
use crate::events::{EventType, ObjectRef, Recorder, format_pod, reasons};
use crate::images::ImageManager;
use crate::lifecycle::{self, HandlerRunner, HookTarget};
use crate::{pod_ref, pod_uid};
use actions::{ContainerKind, KillAction, StartAction, compute_pod_actions, grace_period};
use convert::apply_status;

/// Containers always get at least this long between SIGTERM and SIGKILL,
/// even when preStop used up the grace period (the Go kubelet's
/// `minimumGracePeriodInSeconds`).
pub const MIN_GRACE_PERIOD: i64 = 2;
/// Bound on an httpGet hook (the Go kubelet's hook client has none).
const HOOK_HTTP_LIMIT: Duration = Duration::from_secs(60);

/// How many RunPodSandbox or CreateContainer+StartContainer calls run at
/// once. The Go kubelet sets no limit; Berth bounds these calls (and only
/// these: never a grace period, a pull, a probe or a hook) because
/// containerd does the real work and, on a small node, can't run more of
/// them in parallel anyway.
pub const MAX_CONCURRENT_CREATES: usize = 16;

/// Why a pod's sandbox could not be created (the pod's status message).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(transparent)]
    Dns(#[from] DnsError),
    #[error("creating log directory {path}: {source}")]
    LogDirectory {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Runtime(#[from] cri_client::Error),
}

/// Settings the runtime manager needs from the kubelet config.
#[derive(Clone, Debug)]
pub struct RuntimeSettings {
    pub pod_logs_dir: PathBuf,
}

pub struct KubeRuntimeManager {
    client: RuntimeClient,
    images: ImageManager,
    helper: Arc<dyn RuntimeHelper>,
    handlers: Arc<HandlerRunner>,
    settings: RuntimeSettings,
    create_slots: Semaphore,
    /// Why Berth killed a container, by container ID (probe failures).
    kill_messages: Mutex<HashMap<String, String>>,
    crash_backoff: Mutex<Backoff>,
    /// Created, Started, Killing, Failed, BackOff... as Go's runtime
    /// manager records them.
    recorder: Recorder,
}

/// Pulls the ID out of containerd's "name ... is reserved for \"<id>\"".
pub fn reserved_for(message: &str) -> Option<String> {
    let rest = message.split("is reserved for \"").nth(1)?;
    let id = rest.split('"').next()?;
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_string())
}

/// The seconds left of `grace` after `spent`, never below the minimum.
pub fn remaining_grace(grace: i64, spent: Duration) -> i64 {
    // Whole seconds, truncated, as the Go kubelet counts them.
    let spent = i64::try_from(spent.as_secs()).unwrap_or(i64::MAX);
    grace.saturating_sub(spent).max(MIN_GRACE_PERIOD)
}

impl KubeRuntimeManager {
    pub fn new(
        client: RuntimeClient,
        images: ImageManager,
        helper: Arc<dyn RuntimeHelper>,
        handlers: Arc<HandlerRunner>,
        settings: RuntimeSettings,
    ) -> Self {
        KubeRuntimeManager {
            client,
            images,
            helper,
            handlers,
            settings,
            create_slots: Semaphore::new(MAX_CONCURRENT_CREATES),
            kill_messages: Mutex::default(),
            crash_backoff: Mutex::new(Backoff::default()),
            recorder: Recorder::disabled(),
        }
    }

    /// Records container and sandbox events through `recorder` (none by
    /// default).
    pub fn with_recorder(mut self, recorder: Recorder) -> Self {
        self.recorder = recorder;
        self
    }

    fn container_event(
        &self,
        pod: &Pod,
        container: &str,
        ty: EventType,
        reason: &str,
        message: String,
    ) {
        self.recorder
            .event(&ObjectRef::container(pod, container), ty, reason, message);
    }

    /// Every pod the runtime holds, from one list of sandboxes and one of
    /// containers.
    pub async fn list_pods(&self) -> RuntimeResult<HashMap<String, RuntimePod>> {
        let (sandboxes, containers) = tokio::try_join!(
            self.client
                .list_pod_sandbox(pb::ListPodSandboxRequest::default()),
            self.client
                .list_containers(pb::ListContainersRequest::default()),
        )?;
        Ok(convert::group(&sandboxes.items, &containers.containers))
    }

    /// Adds what only ContainerStatus knows; an exited instance's
    /// termination message is read here, once per instance (PLEG keeps it).
    pub async fn container_status(&self, c: &mut ContainerState) -> bool {
        let st = match self
            .client
            .container_status(pb::ContainerStatusRequest {
                container_id: c.id.clone(),
                verbose: false,
            })
            .await
        {
            Ok(r) => r.status,
            Err(_) => None,
        };
        let Some(st) = st else { return false };
        apply_status(c, &st);
        if c.state == ContainerStateKind::Exited {
            // Reads host files (message file, log tail): off the async thread.
            c.message = tokio::task::spawn_blocking(move || termination::termination_message(&st))
                .await
                .unwrap_or_default();
            if c.message.is_empty()
                && let Some(m) = self
                    .kill_messages
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&c.id)
            {
                c.message = m.clone();
            }
        }
        true
    }

    fn backoff_key(pod: &Pod, c: &Container) -> String {
        format!("{}/{}/{}", pod_uid(pod), c.name, hash::container_hash(c))
    }

    /// Brings one pod to its spec. Errors of single containers are reported
    /// in the result (as waiting reasons) rather than failing the sync.
    pub async fn sync_pod(&self, pod: &Pod, rt: &RuntimePod) -> SyncResult {
        let mut result = SyncResult::default();
        let actions = compute_pod_actions(pod, rt);
        let pref = pod_ref(pod);
        let uid = pod_uid(pod);
        tracing::debug!(pod = %pref, uid = %uid, ?actions, "computed pod actions");
        result.completed = actions.completed;

        if actions.kill_pod {
            result.mutated = true;
        }
        if actions.create_sandbox && !rt.sandboxes.is_empty() {
            self.recorder.event(
                &ObjectRef::pod(pod),
                EventType::Normal,
                reasons::SANDBOX_CHANGED,
                "Pod sandbox changed, it will be killed and re-created.",
            );
        }
        if actions.kill_pod
            && let Err(e) = self.kill_pod(Some(pod), rt, None).await
        {
            tracing::warn!(pod = %pref, uid = %uid, "killing pod: {e}");
            result.requeue(Duration::from_secs(1));
            return result;
        }
        for k in &actions.kill {
            tracing::info!(pod = %pref, uid = %uid, container = %k.name, reason = %k.reason, "killing container");
            result.mutated = true;
            if let Some(m) = k.reason.probe_message() {
                self.kill_messages
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(k.id.clone(), m.to_string());
            }
            let Some(c) = rt.containers.iter().find(|c| c.id == k.id) else {
                continue;
            };
            let grace = grace_period(Some(pod), c.info.termination_grace_period, k.grace);
            let restarting = actions.start.iter().any(|s| s.name == k.name);
            let message = killing_message(k, restarting);
            if let Err(e) = self
                .kill_container(
                    Some(pod),
                    &c.id,
                    &c.sandbox_id,
                    &c.info,
                    grace,
                    message,
                    async {},
                )
                .await
            {
                tracing::warn!(pod = %pref, uid = %uid, container = %k.name, "stopping container: {e}");
                result.requeue(Duration::from_secs(1));
            }
        }
        if actions.start.is_empty() && !actions.create_sandbox {
            return result;
        }

        let spec = pod.spec.clone().unwrap_or_default();
        result.mutated = true;
        let (sandbox_id, sandbox_config) = if actions.create_sandbox {
            crate::metrics::COUNTERS.pod_starting();
            match self.create_sandbox(pod, actions.sandbox_attempt).await {
                Ok(v) => v,
                Err(e) => {
                    crate::metrics::COUNTERS.pod_start_failed();
                    tracing::warn!(pod = %pref, uid = %uid, "creating pod sandbox: {e}");
                    self.recorder.event(
                        &ObjectRef::pod(pod),
                        EventType::Warning,
                        reasons::FAILED_CREATE_POD_SANDBOX,
                        format!("Failed to create pod sandbox: {e}"),
                    );
                    result.sandbox_error = Some(e.to_string());
                    result.requeue(Duration::from_secs(2));
                    return result;
                }
            }
        } else {
            let Some(id) = actions.sandbox_id.clone() else {
                return result;
            };
            let attempt = rt.latest_sandbox().map_or(0, |s| s.attempt);
            match self.sandbox_config(pod, attempt) {
                Ok(cfg) => (id, cfg),
                Err(e) => {
                    result.sandbox_error = Some(e.to_string());
                    return result;
                }
            }
        };
        // The cache knows the IP of a sandbox it has seen ready.
        let known_ip = rt
            .sandboxes
            .iter()
            .find(|s| s.id == sandbox_id && !s.ip.is_empty())
            .map(|s| s.ip.clone());
        let pod_ip = match known_ip {
            Some(ip) => ip,
            None => self.sandbox_ip(&sandbox_id).await,
        };

        for s in &actions.start {
            let c = match s.kind {
                ContainerKind::App => spec.containers.get(s.index),
                _ => spec.init_containers.as_ref().and_then(|i| i.get(s.index)),
            };
            let Some(c) = c else { continue };
            // CrashLoopBackOff: count from when the previous instance exited.
            if let Some(prev) = s
                .previous
                .as_ref()
                .and_then(|id| rt.containers.iter().find(|c| &c.id == id))
            {
                let key = Self::backoff_key(pod, c);
                let since = if prev.finished_at > 0 {
                    prev.finished_at
                } else {
                    now_nanos()
                };
                let mut backoff = self.crash_backoff.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(left) = backoff.remaining(&key, since, now_nanos()) {
                    let delay = backoff.delay(&key).unwrap_or_default();
                    self.container_event(
                        pod,
                        &c.name,
                        EventType::Warning,
                        reasons::BACK_OFF_START_CONTAINER,
                        format!(
                            "Back-off restarting failed container {} in pod {}",
                            c.name,
                            format_pod(pod)
                        ),
                    );
                    result.wait(
                        &c.name,
                        "CrashLoopBackOff",
                        format!(
                            "back-off {} restarting failed container={} pod={pref}({uid})",
                            humantime_secs(delay),
                            c.name
                        ),
                    );
                    result.requeue(left);
                    continue;
                }
                backoff.next(&key, since);
            }
            crate::metrics::COUNTERS.container_starting(s.kind);
            match self
                .start_container(pod, c, s, &sandbox_id, &sandbox_config, &pod_ip)
                .await
            {
                Ok(id) => {
                    tracing::info!(pod = %pref, uid = %uid, container = %c.name, id = %short(&id), restart_count = s.restart_count, "started container");
                }
                Err(w) => {
                    crate::metrics::COUNTERS.container_start_failed(s.kind, &w.reason);
                    tracing::warn!(pod = %pref, uid = %uid, container = %c.name, reason = %w.reason, "{}", w.message);
                    result.requeue(Duration::from_secs(if w.reason == "ImagePullBackOff" {
                        5
                    } else {
                        2
                    }));
                    result.waiting.insert(c.name.clone(), w);
                }
            }
        }
        result
    }

    fn sandbox_config(&self, pod: &Pod, attempt: u32) -> Result<pb::PodSandboxConfig, DnsError> {
        let dns = self.helper.dns_config(pod)?;
        Ok(sandbox::sandbox_config(
            pod,
            sandbox::SandboxInputs {
                attempt,
                pod_logs_dir: &self.settings.pod_logs_dir,
                dns,
                cgroup_parent: self.helper.cgroup_parent(pod),
            },
        ))
    }

    async fn create_sandbox(
        &self,
        pod: &Pod,
        attempt: u32,
    ) -> Result<(String, pb::PodSandboxConfig), SandboxError> {
        let pref = pod_ref(pod);
        let config = self.sandbox_config(pod, attempt)?;
        tokio::fs::create_dir_all(&config.log_directory)
            .await
            .map_err(|source| SandboxError::LogDirectory {
                path: config.log_directory.clone(),
                source,
            })?;
        let req = pb::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: pod
                .spec
                .as_ref()
                .and_then(|s| s.runtime_class_name.clone())
                .unwrap_or_default(),
        };
        let _slot = self.create_slots.acquire().await;
        let id = match self.client.run_pod_sandbox(req.clone()).await {
            Ok(r) => r.pod_sandbox_id,
            // containerd#12438: a RunPodSandbox that timed out on our side may
            // still have reserved the name. Reuse that sandbox if it came up,
            // otherwise remove it and try once more.
            Err(e) if reserved_for(&e.to_string()).is_some() => {
                let old = reserved_for(&e.to_string()).unwrap_or_default();
                let ready = self
                    .client
                    .pod_sandbox_status(pb::PodSandboxStatusRequest {
                        pod_sandbox_id: old.clone(),
                        verbose: false,
                    })
                    .await
                    .ok()
                    .and_then(|s| s.status)
                    .is_some_and(|s| s.state == pb::PodSandboxState::SandboxReady as i32);
                if ready {
                    tracing::info!(pod = %pref, uid = %pod_uid(pod), id = %short(&old), "adopting sandbox left by an interrupted create");
                    old
                } else {
                    tracing::info!(pod = %pref, uid = %pod_uid(pod), id = %short(&old), "removing sandbox left by an interrupted create");
                    let _ = self
                        .client
                        .stop_pod_sandbox(pb::StopPodSandboxRequest {
                            pod_sandbox_id: old.clone(),
                        })
                        .await;
                    let _ = self
                        .client
                        .remove_pod_sandbox(pb::RemovePodSandboxRequest {
                            pod_sandbox_id: old,
                        })
                        .await;
                    self.client.run_pod_sandbox(req).await?.pod_sandbox_id
                }
            }
            Err(e) => return Err(e.into()),
        };
        tracing::info!(pod = %pref, uid = %pod_uid(pod), id = %short(&id), attempt, "created pod sandbox");
        Ok((id, config))
    }

    /// The pod IP as the runtime reports it ("" for none).
    pub async fn sandbox_ip(&self, id: &str) -> String {
        self.client
            .pod_sandbox_status(pb::PodSandboxStatusRequest {
                pod_sandbox_id: id.to_string(),
                verbose: false,
            })
            .await
            .ok()
            .and_then(|r| r.status)
            .and_then(|s| s.network)
            .map(|n| n.ip)
            .unwrap_or_default()
    }

    async fn start_container(
        &self,
        pod: &Pod,
        c: &Container,
        s: &StartAction,
        sandbox_id: &str,
        sandbox_config: &pb::PodSandboxConfig,
        pod_ip: &str,
    ) -> Result<String, Waiting> {
        // Go records every failure to start as Failed "Error: <why>"; for
        // images, why is the waiting reason (ErrImagePull, ImagePullBackOff).
        let failed = |message: &str| {
            self.container_event(
                pod,
                &c.name,
                EventType::Warning,
                reasons::FAILED_TO_CREATE_CONTAINER,
                format!("Error: {message}"),
            );
        };
        let image_ref = self
            .images
            .ensure_image(pod, c, sandbox_config)
            .await
            .map_err(|e| {
                failed(e.reason());
                Waiting {
                    reason: e.reason().to_string(),
                    message: e.to_string(),
                }
            })?;
        let opts = self
            .helper
            .run_container_options(pod, c, s.restart_count, pod_ip)
            .await
            .inspect_err(|w| failed(&w.message))?;
        let config = container::container_config(
            pod,
            c,
            container::ContainerInputs {
                kind: s.kind,
                restart_count: s.restart_count,
                image_ref,
                env: opts.env,
                mounts: opts.mounts,
                resources: opts.resources,
            },
        );
        let create = pb::CreateContainerRequest {
            pod_sandbox_id: sandbox_id.to_string(),
            config: Some(config),
            sandbox_config: Some(sandbox_config.clone()),
        };
        let create_error = |e: cri_client::Error| {
            failed(&status_message(&e));
            Waiting {
                reason: "CreateContainerError".into(),
                message: e.to_string(),
            }
        };
        let slot = self.create_slots.acquire().await;
        let id = match self.client.create_container(create.clone()).await {
            Ok(r) => r.container_id,
            Err(e) if reserved_for(&e.to_string()).is_some() => {
                // A create interrupted earlier holds the name: remove it.
                let old = reserved_for(&e.to_string()).unwrap_or_default();
                let _ = self
                    .client
                    .remove_container(pb::RemoveContainerRequest { container_id: old })
                    .await;
                self.client
                    .create_container(create)
                    .await
                    .map_err(create_error)?
                    .container_id
            }
            Err(e) => return Err(create_error(e)),
        };
        self.container_event(
            pod,
            &c.name,
            EventType::Normal,
            reasons::CREATED_CONTAINER,
            "Container created".into(),
        );
        if let Err(e) = self
            .client
            .start_container(pb::StartContainerRequest {
                container_id: id.clone(),
            })
            .await
        {
            self.container_event(
                pod,
                &c.name,
                EventType::Warning,
                reasons::FAILED_TO_START_CONTAINER,
                format!("Error: {}", status_message(&e)),
            );
            return Err(Waiting {
                reason: "RunContainerError".into(),
                message: e.to_string(),
            });
        }
        drop(slot);
        self.container_event(
            pod,
            &c.name,
            EventType::Normal,
            reasons::STARTED_CONTAINER,
            "Container started".into(),
        );
        if let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            let target = HookTarget {
                pod,
                container: c,
                container_id: &id,
                pod_ip,
            };
            if let Err(e) = lifecycle::run(&self.handlers, &target, hook, HOOK_HTTP_LIMIT).await {
                let message = e.to_string();
                let (pref, uid) = (pod_ref(pod), pod_uid(pod));
                tracing::warn!(pod = %pref, uid = %uid, container = %c.name, id = %short(&id), "postStart hook failed, killing the container: {message}");
                self.container_event(
                    pod,
                    &c.name,
                    EventType::Warning,
                    reasons::FAILED_POST_START_HOOK,
                    message.clone(),
                );
                // As the Go kubelet: kill (preStop included) with the pod's
                // grace period; the start counts as failed.
                let info = ContainerInfo {
                    pod_uid: uid.to_string(),
                    pod_name: pod.metadata.name.clone().unwrap_or_default(),
                    pod_namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                    name: c.name.clone(),
                    ..Default::default()
                };
                let grace = grace_period(Some(pod), None, None);
                // Go's Killing message here is the hook's reason itself.
                let killing = Some("FailedPostStartHook".to_string());
                if let Err(e) = self
                    .kill_container(Some(pod), &id, sandbox_id, &info, grace, killing, async {})
                    .await
                {
                    tracing::warn!(pod = %pref, uid = %uid, container = %c.name, "killing container after its postStart hook failed: {e}");
                }
                return Err(Waiting {
                    reason: "PostStartHookError".into(),
                    message,
                });
            }
        }
        Ok(id)
    }

    /// Removes a stopped pod entirely: containers, sandboxes, log directory
    /// and volumes.
    pub async fn remove_pod(&self, rt: &RuntimePod) -> Result<(), cri_client::Error> {
        for c in &rt.containers {
            self.remove_container(&c.id).await?;
        }
        // Logs go before the sandbox, so a pod the runtime no longer lists
        // has no log directory left either.
        let dir = self
            .settings
            .pod_logs_dir
            .join(format!("{}_{}_{}", rt.namespace, rt.name, rt.uid));
        if !rt.uid.is_empty() && !rt.name.is_empty() {
            let _ = tokio::fs::remove_dir_all(&dir).await;
        }
        for s in &rt.sandboxes {
            match self
                .client
                .remove_pod_sandbox(pb::RemovePodSandboxRequest {
                    pod_sandbox_id: s.id.clone(),
                })
                .await
            {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
        }
        self.crash_backoff
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k| !k.starts_with(&format!("{}/", rt.uid)));
        let ids: std::collections::HashSet<&str> =
            rt.containers.iter().map(|c| c.id.as_str()).collect();
        self.kill_messages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|id, _| !ids.contains(id.as_str()));
        Ok(())
    }

    pub async fn remove_container(&self, id: &str) -> Result<(), cri_client::Error> {
        match self
            .client
            .remove_container(pb::RemoveContainerRequest {
                container_id: id.to_string(),
            })
            .await
        {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        }
    }
}

impl Runtime for KubeRuntimeManager {
    fn get_pods(&self) -> BoxFuture<'_, RuntimeResult<HashMap<String, RuntimePod>>> {
        self.list_pods().boxed()
    }

    fn fill_container_status<'a>(&'a self, c: &'a mut ContainerState) -> BoxFuture<'a, bool> {
        self.container_status(c).boxed()
    }

    fn sandbox_ip<'a>(&'a self, sandbox_id: &'a str) -> BoxFuture<'a, String> {
        KubeRuntimeManager::sandbox_ip(self, sandbox_id).boxed()
    }

    fn sync_pod<'a>(&'a self, pod: &'a Pod, rt: &'a RuntimePod) -> BoxFuture<'a, SyncResult> {
        KubeRuntimeManager::sync_pod(self, pod, rt).boxed()
    }

    fn kill_pod<'a>(
        &'a self,
        pod: Option<&'a Pod>,
        rt: &'a RuntimePod,
        grace_override: Option<i64>,
    ) -> BoxFuture<'a, RuntimeResult<()>> {
        KubeRuntimeManager::kill_pod(self, pod, rt, grace_override).boxed()
    }

    fn remove_pod<'a>(&'a self, rt: &'a RuntimePod) -> BoxFuture<'a, RuntimeResult<()>> {
        KubeRuntimeManager::remove_pod(self, rt).boxed()
    }

    fn gc_pod<'a>(&'a self, rt: &'a RuntimePod) -> BoxFuture<'a, ()> {
        KubeRuntimeManager::gc_pod(self, rt).boxed()
    }
}

/// The Killing event's message for a container the sync stops, as Go's
/// `computePodActions` words it; None for the plain "Stopping container".
fn killing_message(k: &KillAction, restarting: bool) -> Option<String> {
    use crate::container::runtime::KillReason;
    let (why, restart) = match &k.reason {
        // A changed container is always started again.
        KillReason::SpecChanged => (format!("Container {} definition changed", k.name), true),
        KillReason::LivenessFailed(_) => (
            format!("Container {} failed liveness probe", k.name),
            restarting,
        ),
        KillReason::StartupFailed(_) => (
            format!("Container {} failed startup probe", k.name),
            restarting,
        ),
        _ => return None,
    };
    Some(if restart {
        format!("{why}, will be restarted")
    } else {
        why
    })
}

/// The runtime's own words for an error, as Go's `grpcstatus` message.
fn status_message(e: &cri_client::Error) -> String {
    match e {
        cri_client::Error::Rpc { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

pub fn short(id: &str) -> &str {
    &id[..id.len().min(13)]
}

fn humantime_secs(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 && s.is_multiple_of(60) {
        format!("{}m0s", s / 60)
    } else if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_errors_keep_their_wording() {
        let io = || std::io::Error::from_raw_os_error(libc::EACCES);
        let e = SandboxError::LogDirectory {
            path: "/var/log/pods/default_web_u1".into(),
            source: io(),
        };
        assert_eq!(
            e.to_string(),
            format!(
                "creating log directory /var/log/pods/default_web_u1: {}",
                io()
            )
        );
        let e = SandboxError::from(DnsError::UnknownPolicy("Cluster".into()));
        assert_eq!(
            e.to_string(),
            "spec.dnsPolicy \"Cluster\" is not one of ClusterFirst, ClusterFirstWithHostNet, Default, None"
        );
    }

    #[test]
    fn parses_reserved_name_errors() {
        let msg = "RunPodSandbox: failed to reserve sandbox name \"web_default_u1_0\": name \"web_default_u1_0\" is reserved for \"59d578ca4f2110b6\" (Unknown)";
        assert_eq!(reserved_for(msg).as_deref(), Some("59d578ca4f2110b6"));
        assert_eq!(reserved_for("something else"), None);
        assert_eq!(reserved_for("is reserved for \"not hex!\""), None);
    }

    #[test]
    fn backoff_messages_read_like_the_go_kubelet() {
        assert_eq!(humantime_secs(Duration::from_secs(10)), "10s");
        assert_eq!(humantime_secs(Duration::from_secs(160)), "2m40s");
        assert_eq!(humantime_secs(Duration::from_secs(300)), "5m0s");
    }

    #[test]
    fn grace_left_after_pre_stop_never_drops_below_two_seconds() {
        assert_eq!(remaining_grace(30, Duration::from_millis(4900)), 26);
        assert_eq!(remaining_grace(3, Duration::from_secs(2)), 2);
        assert_eq!(remaining_grace(0, Duration::ZERO), MIN_GRACE_PERIOD);
    }
}
