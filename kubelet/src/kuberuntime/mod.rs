//! The runtime manager: turns [`actions::PodActions`] into CRI calls (the Go
//! kubelet's `kuberuntime_manager.go`), and reads pods back from the runtime.

pub mod actions;
pub mod container;
pub mod gc;
pub mod hash;
pub mod labels;
pub mod runtime_pod;
pub mod sandbox;
pub mod termination;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cri_client::RuntimeClient;
use cri_client::proto as pb;
use futures_util::future::join_all;
use k8s_openapi::api::core::v1::{Container, Lifecycle, LifecycleHandler, Pod};
use tokio::sync::watch;

use crate::backoff::{Backoff, now_nanos};
use crate::cm::ContainerManager;
use crate::dns::DnsConfigurer;
use crate::envvars::{self, PodFacts};
use crate::images::ImageManager;
use crate::lifecycle::{self, HookTarget};
use crate::prober::ProbeManager;
use crate::volumes::VolumeManager;
use crate::{pod_ref, pod_uid};
use actions::{ContainerKind, StartAction, compute_pod_actions, grace_period, termination_order};
use labels::ContainerInfo;
use runtime_pod::{ContainerState as RtContainer, RuntimePod, apply_status};

/// Containers always get at least this long between SIGTERM and SIGKILL,
/// even when preStop used up the grace period (the Go kubelet's
/// `minimumGracePeriodInSeconds`).
pub const MIN_GRACE_PERIOD: i64 = 2;
/// Bound on an httpGet hook (the Go kubelet's hook client has none).
const HOOK_HTTP_LIMIT: Duration = Duration::from_secs(60);

/// Why a container isn't running, for its status (`state.waiting`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
}

/// What a sync achieved, for the status manager and the pod worker.
#[derive(Clone, Debug, Default)]
pub struct SyncResult {
    /// Containers that should run but don't, by name.
    pub waiting: HashMap<String, Waiting>,
    /// Sync again after this long (backoff expiry, failed calls).
    pub requeue_after: Option<Duration>,
    /// The pod has finished and will not run again.
    pub completed: bool,
    /// A failure of the sandbox itself.
    pub sandbox_error: Option<String>,
}

impl SyncResult {
    fn requeue(&mut self, after: Duration) {
        self.requeue_after = Some(self.requeue_after.map_or(after, |d| d.min(after)));
    }
    fn wait(&mut self, name: &str, reason: &str, message: String) {
        self.waiting.insert(
            name.to_string(),
            Waiting {
                reason: reason.into(),
                message,
            },
        );
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Cri(#[from] cri_client::Error),
}

/// Settings the runtime manager needs from the kubelet config.
#[derive(Clone, Debug)]
pub struct RuntimeSettings {
    pub pod_logs_dir: PathBuf,
    pub node_name: String,
    pub host_ip: String,
}

pub struct KubeRuntimeManager {
    pub client: RuntimeClient,
    pub images: ImageManager,
    pub volumes: VolumeManager,
    pub dns: DnsConfigurer,
    pub settings: RuntimeSettings,
    pub cm: Arc<ContainerManager>,
    pub probes: Arc<ProbeManager>,
    /// Why Berth killed a container, by container ID (probe failures).
    kill_messages: Mutex<HashMap<String, String>>,
    crash_backoff: Mutex<Backoff>,
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

/// Stop order for a pod whose spec is gone: app containers first, then the
/// others one by one, newest first (sidecars declared later start later,
/// so this is their reverse declaration order).
fn orphan_order(running: &[&RtContainer]) -> Vec<(String, Vec<String>)> {
    let is_app =
        |c: &RtContainer| c.info.kind.is_empty() || c.info.kind == ContainerKind::App.as_str();
    let apps: Vec<String> = running
        .iter()
        .filter(|c| is_app(c))
        .map(|c| c.name().to_string())
        .collect();
    let mut rest: Vec<&&RtContainer> = running.iter().filter(|c| !is_app(c)).collect();
    rest.sort_by_key(|c| std::cmp::Reverse(c.created_at));
    let mut order = Vec::new();
    let mut later: Option<String> = None;
    for c in rest {
        let mut prereqs = apps.clone();
        prereqs.extend(later.clone());
        order.push((c.name().to_string(), prereqs));
        later = Some(c.name().to_string());
    }
    order
}

/// The spec parts a kill needs: from the pod when known, otherwise (or when
/// the container left the spec) rebuilt from the container's labels and
/// annotations, as the Go kubelet's `restoreSpecsFromContainerLabels`.
fn kill_specs(pod: Option<&Pod>, info: &ContainerInfo) -> (Pod, Container) {
    let from_spec = pod.and_then(|p| {
        let spec = p.spec.as_ref()?;
        spec.containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .find(|c| c.name == info.name)
            .map(|c| (p.clone(), c.clone()))
    });
    if let Some(found) = from_spec {
        return found;
    }
    let mut p = Pod::default();
    p.metadata.name = Some(info.pod_name.clone());
    p.metadata.namespace = Some(info.pod_namespace.clone());
    p.metadata.uid = Some(info.pod_uid.clone());
    let pre_stop: Option<LifecycleHandler> = serde_json::from_str(&info.pre_stop).ok();
    let c = Container {
        name: info.name.clone(),
        lifecycle: pre_stop.map(|h| Lifecycle {
            pre_stop: Some(h),
            ..Default::default()
        }),
        ..Default::default()
    };
    (pod.cloned().unwrap_or(p), c)
}

impl KubeRuntimeManager {
    pub fn new(
        client: RuntimeClient,
        images: ImageManager,
        volumes: VolumeManager,
        dns: DnsConfigurer,
        settings: RuntimeSettings,
        cm: Arc<ContainerManager>,
        probes: Arc<ProbeManager>,
    ) -> Self {
        KubeRuntimeManager {
            client,
            images,
            volumes,
            dns,
            settings,
            cm,
            probes,
            kill_messages: Mutex::default(),
            crash_backoff: Mutex::new(Backoff::default()),
        }
    }

    /// The runtime's view of one pod, with exit codes of its newest two
    /// instances of each container (for state and lastState).
    pub async fn runtime_pod(&self, uid: &str) -> Result<RuntimePod, SyncError> {
        let selector: HashMap<String, String> =
            [(labels::POD_UID.to_string(), uid.to_string())].into();
        let (sandboxes, containers) = tokio::try_join!(
            self.client.list_pod_sandbox(pb::ListPodSandboxRequest {
                filter: Some(pb::PodSandboxFilter {
                    label_selector: selector.clone(),
                    ..Default::default()
                }),
            }),
            self.client.list_containers(pb::ListContainersRequest {
                filter: Some(pb::ContainerFilter {
                    label_selector: selector,
                    ..Default::default()
                }),
            }),
        )?;
        let mut pods = runtime_pod::group(&sandboxes.items, &containers.containers);
        let mut pod = pods.remove(uid).unwrap_or_else(|| RuntimePod {
            uid: uid.to_string(),
            ..Default::default()
        });
        self.fill_statuses(&mut pod).await;
        self.fill_probes(&mut pod);
        Ok(pod)
    }

    /// ContainerStatus for the two newest instances of each container name.
    pub async fn fill_statuses(&self, pod: &mut RuntimePod) {
        let mut per_name: HashMap<String, usize> = HashMap::new();
        let wanted: Vec<usize> = (0..pod.containers.len())
            .filter(|&i| {
                let n = per_name
                    .entry(pod.containers[i].name().to_string())
                    .or_default();
                *n += 1;
                *n <= 2
            })
            .collect();
        let statuses = join_all(wanted.iter().map(|&i| {
            self.client.container_status(pb::ContainerStatusRequest {
                container_id: pod.containers[i].id.clone(),
                verbose: false,
            })
        }))
        .await;
        for (i, st) in wanted.into_iter().zip(statuses) {
            if let Ok(Some(st)) = st.map(|r| r.status) {
                apply_status(&mut pod.containers[i], &st);
                if pod.containers[i].state == runtime_pod::ContainerStateKind::Exited {
                    pod.containers[i].message = termination::termination_message(&st);
                }
            }
        }
    }

    /// Probe results for running instances; the kill message of instances
    /// Berth killed for a failed probe (kept in memory: the Go kubelet only
    /// emits it as an event, Berth shows it in lastState.terminated.message).
    fn fill_probes(&self, pod: &mut RuntimePod) {
        let killed = self.kill_messages.lock().unwrap_or_else(|e| e.into_inner());
        for c in &mut pod.containers {
            if c.is_running() {
                c.probe = runtime_pod::ProbeState {
                    ready: self.probes.readiness(&pod.uid, &c.id),
                    started: self.probes.started(&pod.uid, &c.id),
                    kill_reason: self.probes.kill_reason(&pod.uid, &c.id),
                };
            } else if c.message.is_empty()
                && let Some(m) = killed.get(&c.id)
            {
                c.message = m.clone();
            }
        }
    }

    fn backoff_key(pod: &Pod, c: &Container) -> String {
        format!("{}/{}/{}", pod_uid(pod), c.name, hash::container_hash(c))
    }

    /// Brings one pod to its spec. Errors of single containers are reported
    /// in the result (as waiting reasons) rather than failing the sync.
    pub async fn sync_pod(&self, pod: &Pod, rt: &RuntimePod) -> SyncResult {
        let mut result = SyncResult::default();
        self.cm.note_pod(pod);
        let actions = compute_pod_actions(pod, rt);
        let pref = pod_ref(pod);
        let uid = pod_uid(pod);
        tracing::debug!(pod = %pref, uid = %uid, ?actions, "computed pod actions");
        result.completed = actions.completed;

        if actions.kill_pod
            && let Err(e) = self.kill_pod(Some(pod), rt).await
        {
            tracing::warn!(pod = %pref, uid = %uid, "killing pod: {e}");
            result.requeue(Duration::from_secs(1));
            return result;
        }
        for k in &actions.kill {
            tracing::info!(pod = %pref, uid = %uid, container = %k.name, reason = %k.reason, "killing container");
            if k.probe_failure {
                self.kill_messages
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(k.id.clone(), k.reason.clone());
            }
            let Some(c) = rt.containers.iter().find(|c| c.id == k.id) else {
                continue;
            };
            let grace = grace_period(Some(pod), c.info.termination_grace_period, k.grace);
            if let Err(e) = self
                .kill_container(Some(pod), &c.id, &c.sandbox_id, &c.info, grace, async {})
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
        let (sandbox_id, sandbox_config) = if actions.create_sandbox {
            match self.create_sandbox(pod, actions.sandbox_attempt).await {
                Ok(v) => v,
                Err(msg) => {
                    tracing::warn!(pod = %pref, uid = %uid, "creating pod sandbox: {msg}");
                    result.sandbox_error = Some(msg);
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
                Err(msg) => {
                    result.sandbox_error = Some(msg);
                    return result;
                }
            }
        };
        let pod_ip = self.sandbox_ip(&sandbox_id).await;

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
            match self
                .start_container(pod, c, s, &sandbox_id, &sandbox_config, &pod_ip)
                .await
            {
                Ok(id) => {
                    tracing::info!(pod = %pref, uid = %uid, container = %c.name, id = %short(&id), restart_count = s.restart_count, "started container");
                }
                Err(w) => {
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

    fn sandbox_config(&self, pod: &Pod, attempt: u32) -> Result<pb::PodSandboxConfig, String> {
        let dns = self.dns.pod_dns_config(pod).map_err(|e| e.to_string())?;
        Ok(sandbox::sandbox_config(
            pod,
            sandbox::SandboxInputs {
                attempt,
                pod_logs_dir: &self.settings.pod_logs_dir,
                dns,
                cgroup_parent: self.cm.pod_cgroup_parent(pod),
            },
        ))
    }

    async fn create_sandbox(
        &self,
        pod: &Pod,
        attempt: u32,
    ) -> Result<(String, pb::PodSandboxConfig), String> {
        let pref = pod_ref(pod);
        self.volumes.prepare(pod).map_err(|e| e.to_string())?;
        self.cm.ensure_pod_cgroup(pod).map_err(|e| e.to_string())?;
        let config = self.sandbox_config(pod, attempt)?;
        std::fs::create_dir_all(&config.log_directory)
            .map_err(|e| format!("creating log directory {}: {e}", config.log_directory))?;
        let req = pb::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: pod
                .spec
                .as_ref()
                .and_then(|s| s.runtime_class_name.clone())
                .unwrap_or_default(),
        };
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
                    self.client
                        .run_pod_sandbox(req)
                        .await
                        .map_err(|e| e.to_string())?
                        .pod_sandbox_id
                }
            }
            Err(e) => return Err(e.to_string()),
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
        let image_ref = self
            .images
            .ensure_image(pod, c, sandbox_config)
            .await
            .map_err(|e| Waiting {
                reason: e.reason().to_string(),
                message: e.to_string(),
            })?;
        let config_error = |message: String| Waiting {
            reason: "CreateContainerConfigError".into(),
            message,
        };
        let facts = PodFacts {
            node_name: &self.settings.node_name,
            pod_ip,
            host_ip: &self.settings.host_ip,
        };
        let env =
            envvars::container_env(pod, c, &facts).map_err(|e| config_error(e.to_string()))?;
        let mounts = self
            .volumes
            .mounts(pod, c, s.restart_count, pod_ip)
            .map_err(|e| config_error(e.to_string()))?;
        let config = container::container_config(
            pod,
            c,
            container::ContainerInputs {
                kind: s.kind,
                restart_count: s.restart_count,
                image_ref,
                env,
                mounts,
                resources: self.cm.container_resources(pod, c),
            },
        );
        let create = pb::CreateContainerRequest {
            pod_sandbox_id: sandbox_id.to_string(),
            config: Some(config),
            sandbox_config: Some(sandbox_config.clone()),
        };
        let create_error = |e: cri_client::Error| Waiting {
            reason: "CreateContainerError".into(),
            message: e.to_string(),
        };
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
        if let Err(e) = self
            .client
            .start_container(pb::StartContainerRequest {
                container_id: id.clone(),
            })
            .await
        {
            return Err(Waiting {
                reason: "RunContainerError".into(),
                message: e.to_string(),
            });
        }
        if let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            let target = HookTarget {
                pod,
                container: c,
                container_id: &id,
                pod_ip,
            };
            if let Err(message) = lifecycle::run(&self.probes, &target, hook, HOOK_HTTP_LIMIT).await
            {
                let (pref, uid) = (pod_ref(pod), pod_uid(pod));
                tracing::warn!(pod = %pref, uid = %uid, container = %c.name, id = %short(&id), "postStart hook failed, killing the container: {message}");
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
                if let Err(e) = self
                    .kill_container(Some(pod), &id, sandbox_id, &info, grace, async {})
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

    /// Stops one container the Go kubelet's way (`killContainer`): runs its
    /// preStop hook within the grace period, waits for `turn` (sidecars
    /// wait for the containers that stop before them) while grace is left,
    /// then StopContainer with what remains (at least 2 s) between SIGTERM
    /// and SIGKILL.
    pub async fn kill_container(
        &self,
        pod: Option<&Pod>,
        id: &str,
        sandbox_id: &str,
        info: &ContainerInfo,
        grace: i64,
        turn: impl Future<Output = ()>,
    ) -> Result<(), cri_client::Error> {
        let began = Instant::now();
        let (spec_pod, spec) = kill_specs(pod, info);
        let pref = pod_ref(&spec_pod);
        let uid = pod_uid(&spec_pod).to_string();
        let budget = Duration::from_secs(u64::try_from(grace).unwrap_or(0));
        if let Some(hook) = spec.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref())
            && grace > 0
        {
            let pod_ip = if hook.http_get.is_some() {
                self.sandbox_ip(sandbox_id).await
            } else {
                String::new()
            };
            let target = HookTarget {
                pod: &spec_pod,
                container: &spec,
                container_id: id,
                pod_ip: &pod_ip,
            };
            tracing::info!(pod = %pref, uid = %uid, container = %spec.name, id = %short(id), grace, "running preStop hook");
            let run = lifecycle::run(&self.probes, &target, hook, budget.min(HOOK_HTTP_LIMIT));
            match tokio::time::timeout(budget, run).await {
                Ok(Ok(())) => {}
                Ok(Err(msg)) => {
                    tracing::warn!(pod = %pref, uid = %uid, container = %spec.name, "preStop hook failed: {msg}")
                }
                Err(_) => {
                    tracing::info!(pod = %pref, uid = %uid, container = %spec.name, grace, "preStop hook did not finish within the grace period")
                }
            }
        }
        if let Some(left) = budget.checked_sub(began.elapsed()) {
            let _ = tokio::time::timeout(left, turn).await;
        }
        let remaining = remaining_grace(grace, began.elapsed());
        tracing::info!(pod = %pref, uid = %uid, container = %spec.name, id = %short(id), grace = remaining, "stopping container");
        self.stop_container(id, remaining).await
    }

    pub async fn stop_container(&self, id: &str, grace: i64) -> Result<(), cri_client::Error> {
        match self
            .client
            .stop_container(pb::StopContainerRequest {
                container_id: id.to_string(),
                timeout: grace,
            })
            .await
        {
            Err(e) if e.is_not_found() => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Stops every running container, then every sandbox of the pod. All
    /// containers' preStop hooks start at once; sidecars then wait for the
    /// app containers and for the sidecars declared after them (Go kubelet
    /// 1.29+), each within its grace period.
    pub async fn kill_pod(
        &self,
        pod: Option<&Pod>,
        rt: &RuntimePod,
    ) -> Result<(), cri_client::Error> {
        let running: Vec<&RtContainer> = rt.running_containers().collect();
        let names: Vec<&str> = running.iter().map(|c| c.name()).collect();
        let order: HashMap<String, Vec<String>> = match pod {
            Some(p) if p.spec.is_some() => termination_order(p, &names).into_iter().collect(),
            _ => orphan_order(&running).into_iter().collect(),
        };
        let stopped: HashMap<&str, watch::Sender<bool>> = names
            .iter()
            .map(|n| (*n, watch::channel(false).0))
            .collect();
        let kills = running.iter().map(|c| {
            let waits: Vec<watch::Receiver<bool>> = order
                .get(c.name())
                .into_iter()
                .flatten()
                .filter_map(|n| stopped.get(n.as_str()).map(watch::Sender::subscribe))
                .collect();
            let turn = async move {
                for mut rx in waits {
                    let _ = rx.wait_for(|done| *done).await;
                }
            };
            let grace = grace_period(pod, c.info.termination_grace_period, None);
            let stopped = &stopped;
            async move {
                let r = self
                    .kill_container(pod, &c.id, &c.sandbox_id, &c.info, grace, turn)
                    .await;
                if let Some(tx) = stopped.get(c.name()) {
                    tx.send_replace(true);
                }
                r
            }
        });
        for r in join_all(kills).await {
            r?;
        }
        for s in rt.sandboxes.iter().filter(|s| s.ready) {
            match self
                .client
                .stop_pod_sandbox(pb::StopPodSandboxRequest {
                    pod_sandbox_id: s.id.clone(),
                })
                .await
            {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
            tracing::info!(pod = %format!("{}/{}", rt.namespace, rt.name), uid = %rt.uid, id = %short(&s.id), "stopped pod sandbox");
        }
        Ok(())
    }

    /// Removes a stopped pod entirely: containers, sandboxes, log directory
    /// and volumes.
    pub async fn remove_pod(&self, rt: &RuntimePod) -> Result<(), cri_client::Error> {
        for c in &rt.containers {
            self.remove_container(&c.id).await?;
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
        let dir = self
            .settings
            .pod_logs_dir
            .join(format!("{}_{}_{}", rt.namespace, rt.name, rt.uid));
        if !rt.uid.is_empty() && !rt.name.is_empty() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        if let Err(e) = self.cm.remove_pod_cgroup(&rt.uid) {
            tracing::warn!(uid = %rt.uid, "removing pod cgroup: {e}");
        }
        self.probes.remove_pod(&rt.uid);
        if let Err(e) = self.volumes.cleanup(&rt.uid) {
            tracing::warn!(uid = %rt.uid, "cleaning up pod volumes: {e}");
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

    fn rt_ctr(name: &str, kind: &str, created: i64) -> RtContainer {
        let info = ContainerInfo {
            name: name.into(),
            kind: kind.into(),
            ..Default::default()
        };
        RtContainer::new(
            name.into(),
            "s".into(),
            info,
            runtime_pod::ContainerStateKind::Running,
            created,
        )
    }

    #[test]
    fn orphans_stop_apps_first_then_the_rest_newest_first() {
        let (s1, s2, a) = (
            rt_ctr("s1", "sidecar", 1),
            rt_ctr("s2", "sidecar", 2),
            rt_ctr("a", "app", 3),
        );
        let order = orphan_order(&[&s1, &a, &s2]);
        assert_eq!(
            order,
            vec![
                ("s2".to_string(), vec!["a".to_string()]),
                ("s1".into(), vec!["a".into(), "s2".into()]),
            ]
        );
    }

    #[test]
    fn kill_specs_come_from_the_pod_or_the_annotations() {
        let info = ContainerInfo {
            pod_uid: "u".into(),
            pod_name: "web".into(),
            pod_namespace: "ns".into(),
            name: "c".into(),
            pre_stop: r#"{"exec":{"command":["sh","-c","echo bye"]}}"#.into(),
            ..Default::default()
        };
        let (p, c) = kill_specs(None, &info);
        assert_eq!(pod_ref(&p), "ns/web");
        let hook = c.lifecycle.unwrap().pre_stop.unwrap();
        assert_eq!(hook.exec.unwrap().command.unwrap()[2], "echo bye");
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u"},
            "spec": {"containers": [{"name": "c", "image": "i",
                "lifecycle": {"preStop": {"sleep": {"seconds": 1}}}}]}}))
        .unwrap();
        let (_, c) = kill_specs(Some(&pod), &info);
        assert!(c.lifecycle.unwrap().pre_stop.unwrap().sleep.is_some());
        // Garbage in the annotation: no hook, no panic.
        let bad = ContainerInfo {
            pre_stop: "{not json".into(),
            ..info
        };
        assert!(kill_specs(None, &bad).1.lifecycle.is_none());
    }
}
