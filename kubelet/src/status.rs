//! Pod status, computed from runtime state as the Go kubelet's
//! `generateAPIPodStatus` / `getPhase` compute it, and the status manager
//! that keeps the latest status of every pod for the server to publish.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::kuberuntime::actions::{RestartPolicy, is_sidecar, should_restart};
use crate::kuberuntime::runtime_pod::{
    ContainerState as RtContainer, ContainerStateKind, RuntimePod,
};
use crate::kuberuntime::{SyncResult, Waiting};
use crate::{pod_ref, pod_uid};

fn time_from_nanos(n: i64) -> Option<Time> {
    (n > 0)
        .then(|| jiff::Timestamp::from_nanosecond(i128::from(n)).ok())
        .flatten()
        .map(Time)
}

/// What status needs besides the spec and the runtime view.
pub struct StatusInputs<'a> {
    pub sync: &'a SyncResult,
    pub pod_ip: &'a str,
    pub host_ip: &'a str,
    /// "containerd", for `containerd://<id>` container IDs.
    pub runtime_name: &'a str,
    pub previous: Option<&'a PodStatus>,
    pub now: jiff::Timestamp,
}

fn terminated(c: &RtContainer, runtime: &str) -> ContainerStateTerminated {
    let code = c.exit_code.unwrap_or(0);
    ContainerStateTerminated {
        exit_code: code,
        reason: Some(if !c.reason.is_empty() {
            c.reason.clone()
        } else if code == 0 {
            "Completed".into()
        } else {
            "Error".into()
        }),
        message: (!c.message.is_empty()).then(|| c.message.clone()),
        started_at: time_from_nanos(c.started_at),
        finished_at: time_from_nanos(c.finished_at),
        container_id: Some(format!("{runtime}://{}", c.id)),
        signal: None,
    }
}

fn runtime_state(c: &RtContainer, runtime: &str) -> ContainerState {
    match c.state {
        ContainerStateKind::Running => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: time_from_nanos(c.started_at),
            }),
            ..Default::default()
        },
        ContainerStateKind::Exited => ContainerState {
            terminated: Some(terminated(c, runtime)),
            ..Default::default()
        },
        ContainerStateKind::Created => waiting("ContainerCreating", ""),
        ContainerStateKind::Unknown => waiting(
            "ContainerStatusUnknown",
            "The container could not be located when the pod was checked",
        ),
    }
}

fn waiting(reason: &str, message: &str) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message: (!message.is_empty()).then(|| message.to_string()),
        }),
        ..Default::default()
    }
}

fn container_status(
    c: &Container,
    rt: &RuntimePod,
    policy: RestartPolicy,
    sync_wait: Option<&Waiting>,
    default_wait: &str,
    inputs: &StatusInputs<'_>,
) -> ContainerStatus {
    let mut instances = rt.instances(&c.name);
    let latest = instances.next();
    let previous = instances.next();
    let mut status = ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        ..Default::default()
    };
    let Some(latest) = latest else {
        let (reason, msg) = sync_wait.map_or((default_wait, ""), |w| {
            (w.reason.as_str(), w.message.as_str())
        });
        status.state = Some(waiting(reason, msg));
        status.started = Some(false);
        return status;
    };
    status.container_id = Some(format!("{}://{}", inputs.runtime_name, latest.id));
    status.image_id = latest.image_ref.clone();
    status.restart_count = i32::try_from(latest.info.restart_count).unwrap_or(i32::MAX);
    // Without probes a running container is started and ready; a startup
    // probe holds both back, a readiness probe holds back ready.
    let started = latest.is_running() && latest.probe.started.unwrap_or(true);
    status.started = Some(started);
    status.ready = started && latest.probe.ready.unwrap_or(true);
    let will_restart =
        latest.state == ContainerStateKind::Exited && should_restart(Some(latest), policy);
    if let (true, Some(w)) = (
        will_restart || latest.state != ContainerStateKind::Running,
        sync_wait,
    ) {
        // Backing off (CrashLoopBackOff) or failing to start again: the
        // exited instance becomes lastState.
        status.state = Some(waiting(&w.reason, &w.message));
        status.last_state = Some(runtime_state(latest, inputs.runtime_name));
    } else {
        status.state = Some(runtime_state(latest, inputs.runtime_name));
        status.last_state = previous
            .filter(|p| p.state == ContainerStateKind::Exited)
            .map(|p| runtime_state(p, inputs.runtime_name));
    }
    status
}

fn condition(
    kind: &str,
    ok: bool,
    reason: Option<&str>,
    previous: Option<&PodStatus>,
    now: jiff::Timestamp,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    // Keep the transition time while the condition doesn't change.
    let last = previous
        .and_then(|p| p.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == kind))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone());
    PodCondition {
        type_: kind.into(),
        status: status.into(),
        reason: if ok { None } else { reason.map(str::to_string) },
        last_transition_time: last.or(Some(Time(now))),
        ..Default::default()
    }
}

/// The pod's phase, by the Go kubelet's rules.
pub fn phase(
    pod: &Pod,
    init: &[ContainerStatus],
    apps: &[ContainerStatus],
    init_failed: bool,
) -> &'static str {
    let policy = RestartPolicy::of(pod);
    if init_failed {
        return "Failed";
    }
    let spec_init = pod.spec.as_ref().and_then(|s| s.init_containers.as_ref());
    let pending_init = init
        .iter()
        .zip(spec_init.into_iter().flatten())
        .any(|(st, c)| {
            if is_sidecar(c) {
                !st.started.unwrap_or(false)
            } else {
                st.state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .is_none_or(|t| t.exit_code != 0)
            }
        });
    if pending_init {
        return "Pending";
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for st in apps {
        let state = st.state.clone().unwrap_or_default();
        if state.running.is_some() {
            running += 1;
        } else if let Some(t) = &state.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if st
            .last_state
            .as_ref()
            .and_then(|l| l.terminated.as_ref())
            .is_some()
        {
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped > 0 {
        match policy {
            RestartPolicy::Always => "Running",
            _ if stopped == succeeded => "Succeeded",
            RestartPolicy::Never => "Failed",
            RestartPolicy::OnFailure => "Running",
        }
    } else {
        "Pending"
    }
}

pub fn compute(pod: &Pod, rt: &RuntimePod, inputs: &StatusInputs<'_>) -> PodStatus {
    let spec = pod.spec.clone().unwrap_or_default();
    let policy = RestartPolicy::of(pod);
    let sandbox_ready = rt.latest_sandbox().is_some_and(|s| s.ready);
    let init_specs = spec.init_containers.clone().unwrap_or_default();
    let init: Vec<ContainerStatus> = init_specs
        .iter()
        .map(|c| {
            let p = if is_sidecar(c) {
                RestartPolicy::Always
            } else {
                policy
            };
            container_status(
                c,
                rt,
                p,
                inputs.sync.waiting.get(&c.name),
                "PodInitializing",
                inputs,
            )
        })
        .collect();
    let initialized = init.iter().zip(&init_specs).all(|(st, c)| {
        if is_sidecar(c) {
            st.started.unwrap_or(false)
        } else {
            st.state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .is_some_and(|t| t.exit_code == 0)
        }
    });
    let app_default = if initialized {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let apps: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| {
            container_status(
                c,
                rt,
                policy,
                inputs.sync.waiting.get(&c.name),
                app_default,
                inputs,
            )
        })
        .collect();
    let init_failed = policy == RestartPolicy::Never
        && init.iter().zip(&init_specs).any(|(st, c)| {
            !is_sidecar(c)
                && st
                    .state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .is_some_and(|t| t.exit_code != 0)
        });
    let phase = phase(pod, &init, &apps, init_failed);
    let containers_ready = apps.iter().all(|s| s.ready) && !apps.is_empty();
    let prev = inputs.previous;
    let now = inputs.now;
    let terminal = matches!(phase, "Succeeded" | "Failed");
    let conditions = vec![
        condition("PodReadyToStartContainers", sandbox_ready, None, prev, now),
        condition(
            "Initialized",
            initialized,
            Some("ContainersNotInitialized"),
            prev,
            now,
        ),
        condition(
            "Ready",
            containers_ready && !terminal,
            Some(if terminal {
                "PodCompleted"
            } else {
                "ContainersNotReady"
            }),
            prev,
            now,
        ),
        condition(
            "ContainersReady",
            containers_ready && !terminal,
            Some(if terminal {
                "PodCompleted"
            } else {
                "ContainersNotReady"
            }),
            prev,
            now,
        ),
    ];
    let ip = (!inputs.pod_ip.is_empty()).then(|| inputs.pod_ip.to_string());
    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(conditions),
        host_ip: Some(inputs.host_ip.to_string()),
        host_ips: Some(vec![HostIP {
            ip: inputs.host_ip.to_string(),
        }]),
        pod_ip: ip.clone(),
        pod_ips: ip.map(|ip| vec![PodIP { ip }]),
        start_time: prev.and_then(|p| p.start_time.clone()).or(Some(Time(now))),
        container_statuses: Some(apps),
        init_container_statuses: (!init.is_empty()).then_some(init),
        qos_class: Some(crate::cm::qos::qos_class(pod).as_str().into()),
        message: inputs.sync.sandbox_error.clone(),
        reason: inputs
            .sync
            .sandbox_error
            .as_ref()
            .map(|_| "SandboxError".to_string()),
        ..Default::default()
    }
}

/// The latest status of every pod, for the server.
#[derive(Default)]
pub struct StatusManager {
    pods: RwLock<BTreeMap<String, Pod>>,
}

impl StatusManager {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn get(&self, uid: &str) -> Option<PodStatus> {
        self.pods
            .read()
            .ok()?
            .get(uid)
            .and_then(|p| p.status.clone())
    }

    /// Stores the pod with its new status, logging every transition.
    pub fn set(&self, pod: &Pod, status: PodStatus) {
        let uid = pod_uid(pod).to_string();
        let old = self.get(&uid);
        log_transitions(pod, old.as_ref(), &status);
        let mut p = pod.clone();
        p.status = Some(status);
        if let Ok(mut pods) = self.pods.write() {
            pods.insert(uid, p);
        }
    }

    pub fn remove(&self, uid: &str) {
        if let Ok(mut pods) = self.pods.write() {
            pods.remove(uid);
        }
    }

    /// Every pod with its status, ordered by UID.
    pub fn pods(&self) -> Vec<Pod> {
        self.pods
            .read()
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default()
    }
}

fn summary(s: &ContainerStatus) -> String {
    let st = s.state.clone().unwrap_or_default();
    if st.running.is_some() {
        "Running".into()
    } else if let Some(t) = st.terminated {
        format!(
            "Terminated({}, exit {})",
            t.reason.unwrap_or_default(),
            t.exit_code
        )
    } else if let Some(w) = st.waiting {
        format!("Waiting({})", w.reason.unwrap_or_default())
    } else {
        "Unknown".into()
    }
}

fn log_transitions(pod: &Pod, old: Option<&PodStatus>, new: &PodStatus) {
    let pod_name = pod_ref(pod);
    let uid = pod_uid(pod);
    let old_phase = old.and_then(|o| o.phase.clone());
    if old_phase != new.phase {
        tracing::info!(pod = %pod_name, uid = %uid, from = ?old_phase, to = ?new.phase, "pod phase changed");
    }
    let before: HashMap<String, (String, i32)> = old
        .iter()
        .flat_map(|o| {
            o.init_container_statuses
                .iter()
                .flatten()
                .chain(o.container_statuses.iter().flatten())
        })
        .map(|s| (s.name.clone(), (summary(s), s.restart_count)))
        .collect();
    for s in new
        .init_container_statuses
        .iter()
        .flatten()
        .chain(new.container_statuses.iter().flatten())
    {
        let now = (summary(s), s.restart_count);
        if before.get(&s.name) != Some(&now) {
            tracing::info!(pod = %pod_name, uid = %uid, container = %s.name, state = %now.0, restart_count = now.1, "container state changed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kuberuntime::labels::ContainerInfo;
    use crate::kuberuntime::runtime_pod::SandboxState;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u"}, "spec": spec})).unwrap()
    }

    fn rt_container(
        name: &str,
        restart: u32,
        state: ContainerStateKind,
        exit: Option<i32>,
        created: i64,
    ) -> RtContainer {
        RtContainer {
            id: format!("{name}{restart}"),
            sandbox_id: "s".into(),
            info: ContainerInfo {
                name: name.into(),
                restart_count: restart,
                ..Default::default()
            },
            state,
            created_at: created,
            image: String::new(),
            image_ref: "sha256:img".into(),
            exit_code: exit,
            started_at: 1_700_000_000_000_000_000,
            finished_at: if exit.is_some() {
                1_700_000_001_000_000_000
            } else {
                0
            },
            reason: String::new(),
            message: String::new(),
            probe: Default::default(),
        }
    }

    fn rt(containers: Vec<RtContainer>) -> RuntimePod {
        RuntimePod {
            sandboxes: vec![SandboxState {
                id: "s".into(),
                attempt: 0,
                ready: true,
                created_at: 1,
                hash: String::new(),
            }],
            containers,
            ..Default::default()
        }
    }

    fn inputs<'a>(sync: &'a SyncResult) -> StatusInputs<'a> {
        StatusInputs {
            sync,
            pod_ip: "10.88.0.4",
            host_ip: "192.168.0.2",
            runtime_name: "containerd",
            previous: None,
            now: "2026-11-22T10:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn running_pod_is_ready() {
        let p = pod(serde_json::json!({"containers": [{"name": "a", "image": "busybox"}]}));
        let sync = SyncResult::default();
        let st = compute(
            &p,
            &rt(vec![rt_container(
                "a",
                0,
                ContainerStateKind::Running,
                None,
                5,
            )]),
            &inputs(&sync),
        );
        assert_eq!(st.phase.as_deref(), Some("Running"));
        let ready = st
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
        let cs = &st.container_statuses.as_ref().unwrap()[0];
        assert_eq!(cs.container_id.as_deref(), Some("containerd://a0"));
        assert!(cs.ready);
        assert_eq!(st.pod_ip.as_deref(), Some("10.88.0.4"));
        assert_eq!(st.qos_class.as_deref(), Some("BestEffort"));
    }

    #[test]
    fn crash_loop_shows_waiting_with_last_state() {
        let p = pod(serde_json::json!({"containers": [{"name": "a", "image": "busybox"}]}));
        let mut sync = SyncResult::default();
        sync.waiting.insert(
            "a".into(),
            Waiting {
                reason: "CrashLoopBackOff".into(),
                message: "back-off 20s".into(),
            },
        );
        let st = compute(
            &p,
            &rt(vec![rt_container(
                "a",
                2,
                ContainerStateKind::Exited,
                Some(1),
                5,
            )]),
            &inputs(&sync),
        );
        let cs = &st.container_statuses.as_ref().unwrap()[0];
        assert_eq!(cs.restart_count, 2);
        assert_eq!(
            cs.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("CrashLoopBackOff")
        );
        let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
        assert_eq!(
            st.phase.as_deref(),
            Some("Running"),
            "restartPolicy Always keeps it Running"
        );
    }

    #[test]
    fn never_pod_succeeds_or_fails() {
        let sync = SyncResult::default();
        let p = pod(
            serde_json::json!({"restartPolicy": "Never", "containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]}),
        );
        let ok = rt(vec![
            rt_container("a", 0, ContainerStateKind::Exited, Some(0), 5),
            rt_container("b", 0, ContainerStateKind::Exited, Some(0), 6),
        ]);
        assert_eq!(
            compute(&p, &ok, &inputs(&sync)).phase.as_deref(),
            Some("Succeeded")
        );
        let bad = rt(vec![
            rt_container("a", 0, ContainerStateKind::Exited, Some(0), 5),
            rt_container("b", 0, ContainerStateKind::Exited, Some(2), 6),
        ]);
        let st = compute(&p, &bad, &inputs(&sync));
        assert_eq!(st.phase.as_deref(), Some("Failed"));
        let ready = st
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.reason.as_deref(), Some("PodCompleted"));
    }

    #[test]
    fn init_containers_gate_the_pod() {
        let sync = SyncResult::default();
        let p = pod(
            serde_json::json!({"initContainers": [{"name": "i", "image": "x"}], "containers": [{"name": "a", "image": "x"}]}),
        );
        let st = compute(
            &p,
            &rt(vec![rt_container(
                "i",
                0,
                ContainerStateKind::Running,
                None,
                5,
            )]),
            &inputs(&sync),
        );
        assert_eq!(st.phase.as_deref(), Some("Pending"));
        let a = &st.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            a.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("PodInitializing")
        );
        let init = st
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Initialized")
            .unwrap();
        assert_eq!(init.status, "False");
    }

    #[test]
    fn transition_times_are_kept_while_unchanged() {
        let p = pod(serde_json::json!({"containers": [{"name": "a", "image": "busybox"}]}));
        let sync = SyncResult::default();
        let r = rt(vec![rt_container(
            "a",
            0,
            ContainerStateKind::Running,
            None,
            5,
        )]);
        let first = compute(&p, &r, &inputs(&sync));
        let mut later = inputs(&sync);
        later.previous = Some(&first);
        later.now = "2026-11-22T11:00:00Z".parse().unwrap();
        let second = compute(&p, &r, &later);
        assert_eq!(first.conditions, second.conditions);
        assert_eq!(first.start_time, second.start_time);
    }
}
