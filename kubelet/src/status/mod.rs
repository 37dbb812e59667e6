//! Pod status, computed from runtime state as the Go kubelet's
//! `generateAPIPodStatus` / `getPhase` compute it; [`StatusManager`] keeps
//! it versioned and hands changes to its sinks.

pub mod apiserver;
mod manager;
pub use manager::{LogSink, StatusChange, StatusManager, StatusSink};

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::container::runtime::{SyncResult, Waiting};
use crate::container::runtime_pod::{
    ContainerState as RtContainer, ContainerStateKind, RuntimePod,
};
use crate::kuberuntime::actions::{RestartPolicy, is_sidecar, should_restart};

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
    /// The kubelet has stopped the pod for good (an API pod deleted or
    /// removed): once nothing runs, its phase is Succeeded or Failed, as
    /// Go's `podIsTerminal` makes it. Static pods never set it.
    pub terminal: bool,
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

/// Where a container comes from, for its status rules.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Init,
    Sidecar,
    App,
}

fn container_status(
    c: &Container,
    kind: Kind,
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
        started: Some(false),
        ..Default::default()
    };
    let Some(latest) = latest else {
        // Never created: the default waiting state, or why the last start
        // failed (the Go kubelet's reason cache).
        let (reason, msg) = sync_wait.map_or((default_wait, ""), |w| {
            (w.reason.as_str(), w.message.as_str())
        });
        status.state = Some(waiting(reason, msg));
        return status;
    };
    status.container_id = Some(format!("{}://{}", inputs.runtime_name, latest.id));
    status.image_id = latest.image_ref.clone();
    status.restart_count = i32::try_from(latest.info.restart_count).unwrap_or(i32::MAX);
    status.state = Some(runtime_state(latest, inputs.runtime_name));
    status.last_state = previous
        .filter(|p| p.state == ContainerStateKind::Exited)
        .map(|p| runtime_state(p, inputs.runtime_name));
    // A container that will be started again shows why it isn't yet
    // (CrashLoopBackOff, PostStartHookError, ...); its exited instance
    // becomes lastState. A plain init container that succeeded is done.
    let done_init = kind == Kind::Init && latest.succeeded();
    if !done_init
        && should_restart(Some(latest), policy)
        && let Some(w) = sync_wait
    {
        if latest.state == ContainerStateKind::Exited {
            status.last_state = status.state.take();
        }
        status.state = Some(waiting(&w.reason, &w.message));
    }
    let running = status.state.as_ref().is_some_and(|s| s.running.is_some());
    // The prober's rules: started once running and the startup probe (if
    // any) succeeded; ready once started and the readiness probe (if any)
    // succeeded; a plain init container is ready once it succeeded.
    // A probe with no result yet (its worker starts after this sync) counts
    // as not passed, as in the Go prober.
    let started = running && latest.probe.started.unwrap_or(c.startup_probe.is_none());
    status.started = Some(started);
    status.ready = match kind {
        Kind::Init => status
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .is_some_and(|t| t.exit_code == 0),
        _ => started && latest.probe.ready.unwrap_or(c.readiness_probe.is_none()),
    };
    status
}

/// A condition, keeping the previous transition time while its status
/// holds (as the Go kubelet's status manager does).
fn condition(
    kind: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    previous: Option<&PodStatus>,
    now: jiff::Timestamp,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let last = previous
        .and_then(|p| p.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == kind))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone());
    PodCondition {
        type_: kind.into(),
        status: status.into(),
        reason: reason.map(str::to_string),
        message: message.filter(|m| !m.is_empty()),
        last_transition_time: last.or(Some(Time(now))),
        ..Default::default()
    }
}

fn terminated_of(st: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    st.state.as_ref().and_then(|s| s.terminated.as_ref())
}

fn is_waiting(st: &ContainerStatus) -> bool {
    st.state.as_ref().is_some_and(|s| s.waiting.is_some())
}

fn is_running(st: &ContainerStatus) -> bool {
    st.state.as_ref().is_some_and(|s| s.running.is_some())
}

fn last_terminated(st: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    st.last_state.as_ref().and_then(|s| s.terminated.as_ref())
}

fn find<'a>(statuses: &'a [ContainerStatus], name: &str) -> Option<&'a ContainerStatus> {
    statuses.iter().find(|s| s.name == name)
}

/// The Go kubelet's `HasAnyRegularContainerStarted`.
fn any_app_started(pod: &Pod, apps: &[ContainerStatus]) -> bool {
    let spec = pod.spec.clone().unwrap_or_default();
    spec.containers
        .iter()
        .any(|c| find(apps, &c.name).is_some_and(|s| is_running(s) || terminated_of(s).is_some()))
}

/// The pod's phase, by the Go kubelet's `getPhase` (static pods never take
/// the "pod is terminal" shortcut there, so neither does berth).
pub fn phase(pod: &Pod, init: &[ContainerStatus], apps: &[ContainerStatus]) -> &'static str {
    let spec = pod.spec.clone().unwrap_or_default();
    let policy = RestartPolicy::of(pod);
    let init_specs = spec.init_containers.clone().unwrap_or_default();
    let (mut pending_init, mut failed_init) = (0, 0);
    for c in init_specs.iter().filter(|c| !is_sidecar(c)) {
        let Some(st) = find(init, &c.name) else {
            pending_init += 1;
            continue;
        };
        if is_running(st) {
            pending_init += 1;
        } else if let Some(t) = terminated_of(st) {
            if t.exit_code != 0 {
                failed_init += 1;
            }
        } else if is_waiting(st) {
            match last_terminated(st) {
                Some(t) if t.exit_code != 0 => failed_init += 1,
                Some(_) => {}
                None => pending_init += 1,
            }
        } else {
            pending_init += 1;
        }
    }
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for c in init_specs.iter().filter(|c| is_sidecar(c)) {
        let Some(st) = find(init, &c.name) else {
            unknown += 1;
            continue;
        };
        if is_running(st) {
            if st.started != Some(true) {
                pending_init += 1;
            }
            running += 1;
        } else if terminated_of(st).is_some() {
            // Exited sidecars don't count towards the phase.
        } else if is_waiting(st) {
            if last_terminated(st).is_none() {
                pending_init += 1;
                waiting += 1;
            }
        } else {
            pending_init += 1;
            unknown += 1;
        }
    }
    for c in &spec.containers {
        let Some(st) = find(apps, &c.name) else {
            unknown += 1;
            continue;
        };
        if is_running(st) {
            running += 1;
        } else if let Some(t) = terminated_of(st) {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if is_waiting(st) {
            if last_terminated(st).is_some() {
                stopped += 1;
            } else {
                waiting += 1;
            }
        } else {
            unknown += 1;
        }
    }
    if failed_init > 0 && policy == RestartPolicy::Never {
        return "Failed";
    }
    if (pending_init > 0 && !any_app_started(pod, apps)) || waiting > 0 {
        return "Pending";
    }
    if running > 0 && unknown == 0 {
        return "Running";
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        return match policy {
            RestartPolicy::Always => "Running",
            _ if stopped == succeeded => "Succeeded",
            RestartPolicy::Never => "Failed",
            RestartPolicy::OnFailure => "Running",
        };
    }
    "Pending"
}

/// The phase of a pod the kubelet stopped for good: Succeeded when every
/// app container exited 0, Failed otherwise (one never ran, or one failed).
fn terminal_phase(apps: &[ContainerStatus]) -> &'static str {
    let all_succeeded = !apps.is_empty()
        && apps.iter().all(|s| {
            terminated_of(s)
                .or_else(|| last_terminated(s))
                .is_some_and(|t| t.exit_code == 0)
        });
    if all_succeeded { "Succeeded" } else { "Failed" }
}

/// A Go `%s` of a string slice: `[a b]`.
fn go_list(names: &[String]) -> String {
    format!("[{}]", names.join(" "))
}

/// The kubelet-owned conditions, in the Go kubelet's order:
/// PodReadyToStartContainers, Initialized, Ready, ContainersReady,
/// PodScheduled.
fn conditions(
    pod: &Pod,
    sandbox_ready: bool,
    init: &[ContainerStatus],
    apps: &[ContainerStatus],
    phase: &str,
    prev: Option<&PodStatus>,
    now: jiff::Timestamp,
) -> Vec<PodCondition> {
    let spec = pod.spec.clone().unwrap_or_default();
    let init_specs = spec.init_containers.clone().unwrap_or_default();

    // Initialized: sidecars started, plain init containers succeeded.
    let incomplete: Vec<String> = init_specs
        .iter()
        .filter(|c| {
            find(init, &c.name).is_none_or(|st| {
                if is_sidecar(c) {
                    st.started != Some(true)
                } else {
                    !st.ready
                }
            })
        })
        .map(|c| c.name.clone())
        .collect();
    let initialized = if phase == "Succeeded" {
        condition("Initialized", true, Some("PodCompleted"), None, prev, now)
    } else if any_app_started(pod, apps) || incomplete.is_empty() {
        condition("Initialized", true, None, None, prev, now)
    } else {
        condition(
            "Initialized",
            false,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: {}",
                go_list(&incomplete)
            )),
            prev,
            now,
        )
    };

    // ContainersReady: sidecars (in order) and app containers ready.
    let unready: Vec<String> = init_specs
        .iter()
        .filter(|c| is_sidecar(c))
        .map(|c| (c, find(init, &c.name)))
        .chain(spec.containers.iter().map(|c| (c, find(apps, &c.name))))
        .filter(|(_, st)| st.is_none_or(|s| !s.ready))
        .map(|(c, _)| c.name.clone())
        .collect();
    let (ready_ok, ready_reason, ready_msg) = match phase {
        "Succeeded" => (false, Some("PodCompleted"), None),
        "Failed" => (false, Some("PodFailed"), None),
        _ if !unready.is_empty() => (
            false,
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: {}",
                go_list(&unready)
            )),
        ),
        _ => (true, None, None),
    };
    let containers_ready = condition(
        "ContainersReady",
        ready_ok,
        ready_reason,
        ready_msg.clone(),
        prev,
        now,
    );
    // Ready: ContainersReady, then the readiness gates. Berth sets no
    // custom conditions, so a gate is never satisfied.
    let gates: Vec<String> = spec
        .readiness_gates
        .iter()
        .flatten()
        .map(|g| {
            format!(
                "corresponding condition of pod readiness gate {:?} does not exist.",
                g.condition_type
            )
        })
        .collect();
    let ready = if !ready_ok {
        condition("Ready", false, ready_reason, ready_msg, prev, now)
    } else if !gates.is_empty() {
        condition(
            "Ready",
            false,
            Some("ReadinessGatesNotReady"),
            Some(gates.join(", ")),
            prev,
            now,
        )
    } else {
        condition("Ready", true, None, None, prev, now)
    };
    vec![
        condition(
            "PodReadyToStartContainers",
            sandbox_ready,
            None,
            None,
            prev,
            now,
        ),
        initialized,
        ready,
        containers_ready,
        // The Go kubelet reports its pods as scheduled: they are on its node.
        condition("PodScheduled", true, None, None, prev, now),
    ]
}

pub fn compute(pod: &Pod, rt: &RuntimePod, inputs: &StatusInputs<'_>) -> PodStatus {
    let spec = pod.spec.clone().unwrap_or_default();
    let policy = RestartPolicy::of(pod);
    let sandbox_ready = rt.latest_sandbox().is_some_and(|s| s.ready);
    let init_specs = spec.init_containers.clone().unwrap_or_default();
    // The Go kubelet's default waiting reason for every container of a pod
    // with init containers is PodInitializing, otherwise ContainerCreating.
    let default_wait = if init_specs.is_empty() {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let init: Vec<ContainerStatus> = init_specs
        .iter()
        .map(|c| {
            let (kind, p) = if is_sidecar(c) {
                (Kind::Sidecar, RestartPolicy::Always)
            } else {
                (Kind::Init, policy)
            };
            container_status(
                c,
                kind,
                rt,
                p,
                inputs.sync.waiting.get(&c.name),
                default_wait,
                inputs,
            )
        })
        .collect();
    let apps: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| {
            container_status(
                c,
                Kind::App,
                rt,
                policy,
                inputs.sync.waiting.get(&c.name),
                default_wait,
                inputs,
            )
        })
        .collect();
    let prev = inputs.previous;
    let mut phase = phase(pod, &init, &apps);
    // A terminal phase is never left (the Go kubelet's three-way merge).
    if let Some(old @ ("Succeeded" | "Failed")) = prev.and_then(|p| p.phase.as_deref())
        && !matches!(phase, "Succeeded" | "Failed")
    {
        phase = if old == "Succeeded" {
            "Succeeded"
        } else {
            "Failed"
        };
    }
    if inputs.terminal && !matches!(phase, "Succeeded" | "Failed") {
        phase = terminal_phase(&apps);
    }
    let conditions = conditions(pod, sandbox_ready, &init, &apps, phase, prev, inputs.now);
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
        start_time: prev
            .and_then(|p| p.start_time.clone())
            .or(Some(Time(inputs.now))),
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

/// The STATUS column of `kubectl get pods` for this pod (kubectl's
/// `printPod`): Init:N/M, Init:<reason>, PodInitializing, CrashLoopBackOff,
/// Completed, NotReady, Terminating, ...
pub fn display_status(pod: &Pod) -> String {
    display_status_with(pod, pod.metadata.deletion_timestamp.is_some())
}

/// [`display_status`] for a pod the kubelet is terminating, whether or not
/// its object carries a deletion timestamp (a static pod whose manifest was
/// removed has none).
pub fn display_status_with(pod: &Pod, terminating: bool) -> String {
    let status = pod.status.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let phase = status.phase.clone().unwrap_or_default();
    let mut reason = status
        .reason
        .clone()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| phase.clone());
    let init_specs = spec.init_containers.clone().unwrap_or_default();
    let sidecar = |name: &str| init_specs.iter().any(|c| c.name == name && is_sidecar(c));

    let mut initializing = false;
    for (i, c) in status.init_container_statuses.iter().flatten().enumerate() {
        let state = c.state.clone().unwrap_or_default();
        if state.terminated.as_ref().is_some_and(|t| t.exit_code == 0) {
            continue;
        }
        if sidecar(&c.name) && c.started == Some(true) {
            continue;
        }
        initializing = true;
        reason = if let Some(t) = &state.terminated {
            match t.reason.as_deref().filter(|r| !r.is_empty()) {
                Some(r) => format!("Init:{r}"),
                None => match t.signal.filter(|s| *s != 0) {
                    Some(sig) => format!("Init:Signal:{sig}"),
                    None => format!("Init:ExitCode:{}", t.exit_code),
                },
            }
        } else if let Some(r) = state
            .waiting
            .as_ref()
            .and_then(|w| w.reason.as_deref())
            .filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            format!("Init:{r}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        break;
    }
    let initialized_true = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Initialized" && c.status == "True");
    if !initializing || initialized_true {
        let mut has_running = false;
        for c in status.container_statuses.iter().flatten().rev() {
            let state = c.state.clone().unwrap_or_default();
            if let Some(r) = state
                .waiting
                .as_ref()
                .and_then(|w| w.reason.clone())
                .filter(|r| !r.is_empty())
            {
                reason = r;
            } else if let Some(t) = &state.terminated {
                reason = match t.reason.clone().filter(|r| !r.is_empty()) {
                    Some(r) => r,
                    None => match t.signal.filter(|s| *s != 0) {
                        Some(sig) => format!("Signal:{sig}"),
                        None => format!("ExitCode:{}", t.exit_code),
                    },
                };
            } else if c.ready && state.running.is_some() {
                has_running = true;
            }
        }
        if reason == "Completed" && has_running {
            let ready = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            reason = if ready { "Running" } else { "NotReady" }.into();
        }
    }
    if terminating && !matches!(phase.as_str(), "Succeeded" | "Failed") {
        reason = "Terminating".into();
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::runtime_pod::ContainerInfo;
    use crate::container::runtime_pod::SandboxState;

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
        let info = ContainerInfo {
            name: name.into(),
            restart_count: restart,
            ..Default::default()
        };
        RtContainer {
            image_ref: "sha256:img".into(),
            exit_code: exit,
            started_at: 1_700_000_000_000_000_000,
            finished_at: if exit.is_some() {
                1_700_000_001_000_000_000
            } else {
                0
            },
            ..RtContainer::new(format!("{name}{restart}"), "s".into(), info, state, created)
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
                ip: String::new(),
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
            terminal: false,
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
        // The Go kubelet: PodFailed for a failed pod, PodCompleted for a
        // succeeded one.
        assert_eq!(ready.reason.as_deref(), Some("PodFailed"));
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

    fn cond<'a>(st: &'a PodStatus, kind: &str) -> &'a PodCondition {
        st.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == kind)
            .unwrap()
    }

    fn with_status(p: &Pod, st: PodStatus) -> Pod {
        let mut p = p.clone();
        p.status = Some(st);
        p
    }

    fn waiting_on(sync: &mut SyncResult, name: &str, reason: &str) {
        sync.waiting.insert(
            name.into(),
            Waiting {
                reason: reason.into(),
                message: "m".into(),
            },
        );
    }

    #[test]
    fn conditions_in_the_go_kubelets_order_with_its_messages() {
        let p = pod(serde_json::json!({
            "initContainers": [{"name": "side", "image": "x", "restartPolicy": "Always"}],
            "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x"}]}));
        let sync = SyncResult::default();
        let mut b = rt_container("b", 0, ContainerStateKind::Running, None, 7);
        b.probe.ready = Some(false);
        let st = compute(
            &p,
            &rt(vec![
                b,
                rt_container("a", 0, ContainerStateKind::Running, None, 6),
                rt_container("side", 0, ContainerStateKind::Running, None, 5),
            ]),
            &inputs(&sync),
        );
        let kinds: Vec<_> = st
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(
            kinds,
            [
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled"
            ]
        );
        for kind in ["Ready", "ContainersReady"] {
            let c = cond(&st, kind);
            assert_eq!(c.status, "False");
            assert_eq!(c.reason.as_deref(), Some("ContainersNotReady"));
            assert_eq!(
                c.message.as_deref(),
                Some("containers with unready status: [b]")
            );
        }
        assert_eq!(cond(&st, "Initialized").status, "True");
        assert_eq!(cond(&st, "Initialized").reason, None);
        assert_eq!(cond(&st, "PodScheduled").status, "True");
        assert_eq!(st.phase.as_deref(), Some("Running"));
        assert_eq!(display_status(&with_status(&p, st)), "Running");
    }

    #[test]
    fn init_and_sidecar_statuses_follow_the_prober_rules() {
        let p = pod(serde_json::json!({
            "initContainers": [{"name": "i", "image": "x"},
                               {"name": "side", "image": "x", "restartPolicy": "Always"}],
            "containers": [{"name": "a", "image": "x"}]}));
        let sync = SyncResult::default();
        let mut side = rt_container("side", 0, ContainerStateKind::Running, None, 6);
        side.probe.started = Some(false);
        let st = compute(
            &p,
            &rt(vec![
                side,
                rt_container("i", 0, ContainerStateKind::Exited, Some(0), 5),
            ]),
            &inputs(&sync),
        );
        let init = st.init_container_statuses.as_ref().unwrap();
        assert!(init[0].ready, "a succeeded init container is ready");
        assert_eq!(init[0].started, Some(false));
        assert_eq!(
            init[0]
                .state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("Completed")
        );
        assert_eq!((init[1].started, init[1].ready), (Some(false), false));
        let app = &st.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            app.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("PodInitializing")
        );
        assert_eq!(st.phase.as_deref(), Some("Pending"));
        let c = cond(&st, "Initialized");
        assert_eq!(c.reason.as_deref(), Some("ContainersNotInitialized"));
        assert_eq!(
            c.message.as_deref(),
            Some("containers with incomplete status: [side]")
        );
        assert_eq!(display_status(&with_status(&p, st)), "Init:1/2");
    }

    #[test]
    fn failing_init_container_crash_loops_and_the_pod_stays_pending() {
        let p = pod(serde_json::json!({
            "initContainers": [{"name": "i", "image": "x"}],
            "containers": [{"name": "a", "image": "x"}]}));
        let mut sync = SyncResult::default();
        waiting_on(&mut sync, "i", "CrashLoopBackOff");
        let r = rt(vec![rt_container(
            "i",
            1,
            ContainerStateKind::Exited,
            Some(3),
            5,
        )]);
        let st = compute(&p, &r, &inputs(&sync));
        let i = &st.init_container_statuses.as_ref().unwrap()[0];
        assert_eq!(i.restart_count, 1);
        assert!(!i.ready);
        assert_eq!(
            i.last_state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .exit_code,
            3
        );
        assert_eq!(st.phase.as_deref(), Some("Pending"));
        assert_eq!(
            display_status(&with_status(&p, st)),
            "Init:CrashLoopBackOff"
        );
        // Between retries (no waiting reason): Init:Error.
        let st = compute(&p, &r, &inputs(&SyncResult::default()));
        assert_eq!(display_status(&with_status(&p, st)), "Init:Error");
        // restartPolicy Never: the pod fails.
        let never = pod(serde_json::json!({"restartPolicy": "Never",
            "initContainers": [{"name": "i", "image": "x"}],
            "containers": [{"name": "a", "image": "x"}]}));
        let st = compute(&never, &r, &inputs(&SyncResult::default()));
        assert_eq!(st.phase.as_deref(), Some("Failed"));
        assert_eq!(cond(&st, "Ready").reason.as_deref(), Some("PodFailed"));
    }

    #[test]
    fn terminal_phase_is_kept() {
        let p = pod(
            serde_json::json!({"restartPolicy": "Never", "containers": [{"name": "a", "image": "i"}]}),
        );
        let sync = SyncResult::default();
        let done = rt(vec![rt_container(
            "a",
            0,
            ContainerStateKind::Exited,
            Some(0),
            5,
        )]);
        let first = compute(&p, &done, &inputs(&sync));
        assert_eq!(first.phase.as_deref(), Some("Succeeded"));
        assert_eq!(
            cond(&first, "Initialized").reason.as_deref(),
            Some("PodCompleted")
        );
        assert_eq!(display_status(&with_status(&p, first.clone())), "Completed");
        let mut later = inputs(&sync);
        later.previous = Some(&first);
        let st = compute(&p, &rt(vec![]), &later);
        assert_eq!(st.phase.as_deref(), Some("Succeeded"));
    }

    #[test]
    fn display_status_follows_kubectl() {
        let p = pod(serde_json::json!({
            "initContainers": [{"name": "i1", "image": "x"}, {"name": "i2", "image": "x"}],
            "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x"}]}));
        let sync = SyncResult::default();
        let show = |containers: Vec<RtContainer>, sync: &SyncResult| {
            display_status(&with_status(
                &p,
                compute(&p, &rt(containers), &inputs(sync)),
            ))
        };
        use ContainerStateKind::*;
        assert_eq!(show(vec![], &sync), "Init:0/2");
        assert_eq!(
            show(vec![rt_container("i1", 0, Running, None, 1)], &sync),
            "Init:0/2"
        );
        assert_eq!(
            show(
                vec![
                    rt_container("i2", 0, Running, None, 2),
                    rt_container("i1", 0, Exited, Some(0), 1)
                ],
                &sync
            ),
            "Init:1/2"
        );
        let mut pulling = SyncResult::default();
        waiting_on(&mut pulling, "i1", "ImagePullBackOff");
        assert_eq!(show(vec![], &pulling), "Init:ImagePullBackOff");
        let done = vec![
            rt_container("i2", 0, Exited, Some(0), 2),
            rt_container("i1", 0, Exited, Some(0), 1),
        ];
        // Initialized, apps not created yet: the default waiting reason.
        assert_eq!(show(done.clone(), &sync), "PodInitializing");
        let mut crash = SyncResult::default();
        waiting_on(&mut crash, "a", "CrashLoopBackOff");
        let mut all = done.clone();
        all.push(rt_container("a", 3, Exited, Some(1), 3));
        all.push(rt_container("b", 0, Running, None, 4));
        all.sort_by_key(|c| std::cmp::Reverse(c.created_at));
        assert_eq!(show(all.clone(), &crash), "CrashLoopBackOff");
        // One app completed, the other still running and ready: Running
        // when the pod is Ready, NotReady otherwise.
        let p2 = pod(serde_json::json!({"restartPolicy": "OnFailure",
            "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x"}]}));
        let mixed = rt(vec![
            rt_container("b", 0, Running, None, 4),
            rt_container("a", 0, Exited, Some(0), 3),
        ]);
        let st = compute(&p2, &mixed, &inputs(&sync));
        assert_eq!(display_status(&with_status(&p2, st)), "NotReady");
        // A pod being stopped shows Terminating.
        let mut term = with_status(&p2, compute(&p2, &mixed, &inputs(&sync)));
        term.metadata.deletion_timestamp = Some(Time("2026-11-22T10:00:00Z".parse().unwrap()));
        assert_eq!(display_status(&term), "Terminating");
        // Failed init without a reason: the exit code.
        let mut failed = with_status(&p, compute(&p, &rt(vec![]), &inputs(&sync)));
        if let Some(st) = failed.status.as_mut() {
            st.init_container_statuses.as_mut().unwrap()[0].state = Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 2,
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        assert_eq!(display_status(&failed), "Init:ExitCode:2");
    }

    #[test]
    fn post_start_failure_shows_waiting_with_the_killed_instance_as_last_state() {
        let p = pod(serde_json::json!({"containers": [{"name": "a", "image": "x"}]}));
        let mut sync = SyncResult::default();
        sync.waiting.insert(
            "a".into(),
            Waiting {
                reason: "PostStartHookError".into(),
                message: "Exec lifecycle hook ([sh -c exit 3]) failed".into(),
            },
        );
        let mut killed = rt_container("a", 0, ContainerStateKind::Exited, Some(137), 5);
        killed.reason = "Error".into();
        let st = compute(&p, &rt(vec![killed]), &inputs(&sync));
        let a = &st.container_statuses.as_ref().unwrap()[0];
        let w = a.state.as_ref().unwrap().waiting.as_ref().unwrap();
        assert_eq!(w.reason.as_deref(), Some("PostStartHookError"));
        assert_eq!(
            a.last_state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .exit_code,
            137
        );
        assert_eq!(display_status(&with_status(&p, st)), "PostStartHookError");
    }
}
