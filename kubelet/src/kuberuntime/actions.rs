//! What a sync must do to bring one pod from its runtime state to its spec:
//! the Go kubelet's `computePodActions`, as a pure function.
//!
//! Backoff (CrashLoopBackOff) is applied afterwards by the sync, as in the Go
//! kubelet, where `doBackOff` runs just before each container start.

use k8s_openapi::api::core::v1::{Container, Pod};

use super::hash::{container_hash, sandbox_hash};
use crate::container::runtime::KillReason;
use crate::container::runtime_pod::{ContainerState, ContainerStateKind, RuntimePod};

/// restartPolicy, defaulted to Always as the apiserver does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub fn of(pod: &Pod) -> Self {
        match pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) {
            Some("Never") => Self::Never,
            Some("OnFailure") => Self::OnFailure,
            _ => Self::Always,
        }
    }
}

/// Which list a container comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerKind {
    Init,
    /// An init container with `restartPolicy: Always` (a native sidecar).
    Sidecar,
    App,
}

impl ContainerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Init => "init",
            Self::Sidecar => "sidecar",
            Self::App => "app",
        }
    }
}

pub fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// A container to (re)start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartAction {
    pub name: String,
    pub kind: ContainerKind,
    /// Index into `initContainers` or `containers`.
    pub index: usize,
    /// Becomes the CRI attempt and the restartCount annotation.
    pub restart_count: u32,
    /// The instance this replaces, whose exit time drives backoff.
    pub previous: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KillAction {
    pub id: String,
    pub name: String,
    pub reason: KillReason,
    /// The failed probe's own terminationGracePeriodSeconds, which replaces
    /// the pod's for this kill (as in the Go kubelet).
    pub grace: Option<i64>,
}

impl KillAction {
    fn new(c: &ContainerState, reason: KillReason) -> Self {
        KillAction {
            id: c.id.clone(),
            name: c.name().to_string(),
            reason,
            grace: None,
        }
    }

    /// A kill for a failed liveness or startup probe, with that probe's
    /// grace period when it sets one.
    fn probe(c: &ContainerState, spec: &Container, reason: &KillReason) -> Self {
        let probe = match reason {
            KillReason::StartupFailed(_) => spec.startup_probe.as_ref(),
            _ => spec.liveness_probe.as_ref(),
        };
        KillAction {
            grace: probe.and_then(|p| p.termination_grace_period_seconds),
            ..KillAction::new(c, reason.clone())
        }
    }
}

/// The grace period for stopping a container: the pod's
/// terminationGracePeriodSeconds (the Go kubelet's default is 30), or the
/// failed probe's own, as the Go kubelet's `setTerminationGracePeriod`.
pub fn grace_period(pod: Option<&Pod>, annotated: Option<i64>, probe: Option<i64>) -> i64 {
    let pod_grace = pod
        .and_then(|p| p.spec.as_ref())
        .and_then(|s| s.termination_grace_period_seconds)
        .or(annotated)
        .unwrap_or(30);
    probe.unwrap_or(pod_grace).max(0)
}

/// What each running container must wait for before it is stopped, when a
/// pod with sidecars stops: every sidecar waits for all app containers and
/// for the sidecars declared after it (the Go kubelet's 1.29+
/// `terminationOrdering`). Containers that aren't running are no one's
/// prerequisite.
pub fn termination_order(pod: &Pod, running: &[&str]) -> Vec<(String, Vec<String>)> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let is_running = |n: &str| running.contains(&n);
    let apps: Vec<String> = spec
        .containers
        .iter()
        .map(|c| c.name.clone())
        .filter(|n| is_running(n))
        .collect();
    let mut order = Vec::new();
    let mut later_sidecar: Option<String> = None;
    for c in spec.init_containers.iter().flatten().rev() {
        if !is_sidecar(c) {
            continue;
        }
        let mut prereqs = apps.clone();
        if let Some(s) = &later_sidecar {
            prereqs.push(s.clone());
        }
        // A sidecar that isn't running is skipped: the earlier one waits
        // for the next running one (Go lets it skip that wait; no matter).
        if is_running(&c.name) {
            order.push((c.name.clone(), prereqs));
            later_sidecar = Some(c.name.clone());
        }
    }
    order
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodActions {
    /// Stop every container and sandbox of the pod first.
    pub kill_pod: bool,
    pub create_sandbox: bool,
    /// The CRI attempt for a new sandbox.
    pub sandbox_attempt: u32,
    /// The ready sandbox to start containers in (when not creating one).
    pub sandbox_id: Option<String>,
    pub kill: Vec<KillAction>,
    pub start: Vec<StartAction>,
    /// The pod has finished: nothing runs and nothing will be restarted.
    pub completed: bool,
}

/// Should a container whose latest instance is `last` run again?
/// (The Go kubelet's `ShouldContainerBeRestarted`.)
pub fn should_restart(last: Option<&ContainerState>, policy: RestartPolicy) -> bool {
    let Some(last) = last else { return true };
    match last.state {
        ContainerStateKind::Running => false,
        // Created but never started, or lost: start a new one.
        ContainerStateKind::Created | ContainerStateKind::Unknown => true,
        ContainerStateKind::Exited => match policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => last.exit_code != Some(0),
            RestartPolicy::Never => false,
        },
    }
}

fn next_restart_count(last: Option<&ContainerState>) -> u32 {
    last.map_or(0, |c| c.info.restart_count.saturating_add(1))
}

fn start(
    name: &str,
    kind: ContainerKind,
    index: usize,
    last: Option<&ContainerState>,
) -> StartAction {
    StartAction {
        name: name.to_string(),
        kind,
        index,
        restart_count: next_restart_count(last),
        previous: last.map(|c| c.id.clone()),
    }
}

pub fn compute_pod_actions(pod: &Pod, rt: &RuntimePod) -> PodActions {
    let mut actions = PodActions::default();
    let Some(spec) = pod.spec.as_ref() else {
        actions.kill_pod = true;
        return actions;
    };
    let policy = RestartPolicy::of(pod);
    let init: &[Container] = spec.init_containers.as_deref().unwrap_or_default();
    let apps = &spec.containers;
    let want_hash = sandbox_hash(pod);

    // Does the pod need a new sandbox?
    let ready: Vec<_> = rt.sandboxes.iter().filter(|s| s.ready).collect();
    let latest = rt.latest_sandbox();
    let (need_sandbox, attempt) = match latest {
        None => (true, 0),
        Some(s) if !s.ready => (true, s.attempt.saturating_add(1)),
        // More than one ready sandbox: something went wrong earlier (e.g. a
        // crash mid-sync); start clean, as the Go kubelet does.
        Some(s) if ready.len() > 1 => (true, s.attempt.saturating_add(1)),
        Some(s) if !s.hash.is_empty() && s.hash != want_hash => (true, s.attempt.saturating_add(1)),
        Some(_) => (false, 0),
    };

    if need_sandbox {
        actions.kill_pod = !rt.sandboxes.is_empty() || rt.running_containers().next().is_some();
        let ran_before = !rt.containers.is_empty();
        let all_apps_succeeded = apps
            .iter()
            .all(|c| rt.latest(&c.name).is_some_and(|s| s.succeeded()));
        // A pod that ran and must not be restarted stays down (Go: don't
        // create a new sandbox for restartPolicy Never once containers ran;
        // for OnFailure once every container succeeded).
        if attempt != 0
            && ran_before
            && (policy == RestartPolicy::Never
                || (policy == RestartPolicy::OnFailure && all_apps_succeeded))
        {
            actions.completed = true;
            return actions;
        }
        actions.create_sandbox = true;
        actions.sandbox_attempt = attempt;
        if let Some((i, c)) = init.iter().enumerate().next() {
            let kind = if is_sidecar(c) {
                ContainerKind::Sidecar
            } else {
                ContainerKind::Init
            };
            actions
                .start
                .push(start(&c.name, kind, i, rt.latest(&c.name)));
        } else {
            for (i, c) in apps.iter().enumerate() {
                let last = rt.latest(&c.name);
                // A new sandbox restarts everything (running containers were
                // just killed with the old one), except containers that
                // already succeeded under OnFailure, as in the Go kubelet.
                if !(policy == RestartPolicy::OnFailure && last.is_some_and(|l| l.succeeded())) {
                    actions
                        .start
                        .push(start(&c.name, ContainerKind::App, i, last));
                }
            }
        }
        return actions;
    }
    actions.sandbox_id = latest.map(|s| s.id.clone());

    // Containers that are running but no longer in the spec.
    for c in rt.running_containers() {
        let known = init.iter().chain(apps.iter()).any(|s| s.name == c.name());
        let newest = rt.latest(c.name()).is_some_and(|l| l.id == c.id);
        if !known || !newest {
            actions.kill.push(KillAction::new(c, KillReason::NotInSpec));
        }
    }

    // Has the pod initialized before? Any app container created in this
    // sandbox says so (the Go kubelet's `podHasInitialized`).
    let initialized = apps.iter().any(|c| {
        rt.instances(&c.name)
            .any(|l| Some(l.sandbox_id.as_str()) == actions.sandbox_id.as_deref())
    });

    // Init containers, in order; each plain one must succeed before the next.
    for (i, c) in init.iter().enumerate() {
        let last = rt.latest(&c.name);
        let sidecar = is_sidecar(c);
        let kind = if sidecar {
            ContainerKind::Sidecar
        } else {
            ContainerKind::Init
        };
        if let Some(l) = last.filter(|l| l.is_running()) {
            if l.info.hash != container_hash(c) && !l.info.hash.is_empty() {
                actions
                    .kill
                    .push(KillAction::new(l, KillReason::SpecChanged));
                actions.start.push(start(&c.name, kind, i, last));
                return actions;
            }
            if sidecar {
                // A sidecar that failed its liveness or startup probe is
                // restarted (sidecars always restart).
                if let Some(reason) = &l.probe.kill_reason {
                    actions.kill.push(KillAction::probe(l, c, reason));
                    actions.start.push(start(&c.name, kind, i, last));
                    if initialized {
                        continue;
                    }
                    return actions;
                }
                // The next init container waits for the sidecar's startup
                // probe, as in the Go kubelet (not once the pod has
                // initialized: then a restarting sidecar gates nothing).
                if !l.probe.started.unwrap_or(c.startup_probe.is_none()) && !initialized {
                    return actions;
                }
                continue;
            }
            // A plain init container is still running: wait for it.
            return actions;
        }
        if sidecar {
            actions.start.push(start(&c.name, kind, i, last));
            if initialized {
                continue;
            }
            return actions;
        }
        // Once app containers have run, plain init containers are done
        // (even if their instances were garbage-collected), as in the Go
        // kubelet.
        if initialized {
            continue;
        }
        match last {
            Some(l) if l.succeeded() => continue,
            Some(l) if l.state == ContainerStateKind::Exited && policy == RestartPolicy::Never => {
                // A failed init container with restartPolicy Never fails the pod.
                actions.kill_pod = true;
                actions.completed = true;
                return actions;
            }
            _ => {
                actions.start.push(start(&c.name, kind, i, last));
                return actions;
            }
        }
    }

    // App containers.
    let sidecar_starts = actions.start.len();
    let mut keep = 0;
    for (i, c) in apps.iter().enumerate() {
        let last = rt.latest(&c.name);
        match last {
            Some(l) if l.is_running() => {
                if !l.info.hash.is_empty() && l.info.hash != container_hash(c) {
                    actions
                        .kill
                        .push(KillAction::new(l, KillReason::SpecChanged));
                    actions
                        .start
                        .push(start(&c.name, ContainerKind::App, i, last));
                } else if let Some(reason) = &l.probe.kill_reason {
                    // Go kubelet: kill on a failed liveness/startup probe,
                    // and start again unless restartPolicy is Never.
                    actions.kill.push(KillAction::probe(l, c, reason));
                    if policy != RestartPolicy::Never {
                        actions
                            .start
                            .push(start(&c.name, ContainerKind::App, i, last));
                    }
                } else {
                    keep += 1;
                }
            }
            _ if should_restart(last, policy) => {
                actions
                    .start
                    .push(start(&c.name, ContainerKind::App, i, last))
            }
            _ => {}
        }
    }
    // No app container runs and none will: the pod is done; stop its
    // sandbox, sidecars included (they never keep a pod alive).
    if keep == 0 && actions.start.len() == sidecar_starts {
        actions.kill_pod = true;
        actions.completed = true;
        actions.start.clear();
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::runtime_pod::ContainerInfo;
    use crate::container::runtime_pod::SandboxState;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(
            serde_json::json!({"metadata": {"name": "p", "uid": "u"}, "spec": v}),
        )
        .unwrap()
    }

    fn sandbox(pod: &Pod, id: &str, attempt: u32, ready: bool) -> SandboxState {
        SandboxState {
            id: id.into(),
            attempt,
            ready,
            created_at: attempt as i64,
            hash: sandbox_hash(pod),
            ip: String::new(),
        }
    }

    fn ctr(
        pod: &Pod,
        name: &str,
        restart: u32,
        state: ContainerStateKind,
        exit: Option<i32>,
    ) -> ContainerState {
        let spec = pod.spec.as_ref().unwrap();
        let c = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .find(|c| c.name == name)
            .unwrap();
        let info = ContainerInfo {
            name: name.into(),
            hash: container_hash(c),
            restart_count: restart,
            ..Default::default()
        };
        ContainerState {
            exit_code: exit,
            ..ContainerState::new(
                format!("{name}-{restart}"),
                "s".into(),
                info,
                state,
                100 + restart as i64,
            )
        }
    }

    fn rt(sandboxes: Vec<SandboxState>, mut containers: Vec<ContainerState>) -> RuntimePod {
        containers.sort_by_key(|c| std::cmp::Reverse(c.created_at));
        RuntimePod {
            sandboxes,
            containers,
            ..Default::default()
        }
    }

    use ContainerStateKind::*;

    #[test]
    fn new_pod_creates_sandbox_and_starts_all_apps() {
        let p = pod(
            serde_json::json!({"containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]}),
        );
        let a = compute_pod_actions(&p, &RuntimePod::default());
        assert!(a.create_sandbox && !a.kill_pod);
        assert_eq!(a.sandbox_attempt, 0);
        assert_eq!(
            a.start.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    #[test]
    fn running_pod_matching_spec_is_left_alone() {
        let p = pod(serde_json::json!({"containers": [{"name": "a", "image": "i"}]}));
        let r = rt(
            vec![sandbox(&p, "s", 0, true)],
            vec![ctr(&p, "a", 0, Running, None)],
        );
        let a = compute_pod_actions(&p, &r);
        assert_eq!(
            a,
            PodActions {
                sandbox_id: Some("s".into()),
                ..Default::default()
            }
        );
    }

    #[test]
    fn failed_liveness_probe_kills_and_restarts_unless_never() {
        for (policy, restarts) in [("Always", true), ("OnFailure", true), ("Never", false)] {
            let p = pod(serde_json::json!({"restartPolicy": policy,
                "containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]}));
            let mut a_ctr = ctr(&p, "a", 0, Running, None);
            a_ctr.probe.kill_reason = Some(KillReason::LivenessFailed(
                "Liveness probe failed: HTTP probe failed with statuscode: 500".into(),
            ));
            let r = rt(
                vec![sandbox(&p, "s", 0, true)],
                vec![a_ctr, ctr(&p, "b", 0, Running, None)],
            );
            let a = compute_pod_actions(&p, &r);
            assert_eq!(a.kill.len(), 1, "{policy}");
            assert_eq!(
                a.kill[0].reason.probe_message(),
                Some("Liveness probe failed: HTTP probe failed with statuscode: 500")
            );
            assert_eq!(a.start.len(), usize::from(restarts), "{policy}");
            assert!(!a.kill_pod, "{policy}: b keeps running");
        }
    }

    #[test]
    fn init_waits_for_sidecar_startup_probe() {
        let p = pod(serde_json::json!({
            "initContainers": [{"name": "side", "image": "i", "restartPolicy": "Always"},
                               {"name": "init", "image": "i"}],
            "containers": [{"name": "a", "image": "i"}]}));
        let mut side = ctr(&p, "side", 0, Running, None);
        side.probe.started = Some(false);
        let r = rt(vec![sandbox(&p, "s", 0, true)], vec![side.clone()]);
        assert!(compute_pod_actions(&p, &r).start.is_empty());
        side.probe.started = Some(true);
        let r = rt(vec![sandbox(&p, "s", 0, true)], vec![side]);
        let a = compute_pod_actions(&p, &r);
        assert_eq!(a.start.len(), 1);
        assert_eq!(a.start[0].name, "init");
    }

    #[test]
    fn changed_container_is_recreated_alone() {
        let old = pod(
            serde_json::json!({"containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]}),
        );
        let new = pod(
            serde_json::json!({"containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i", "args": ["x"]}]}),
        );
        let r = rt(
            vec![sandbox(&old, "s", 0, true)],
            vec![
                ctr(&old, "a", 0, Running, None),
                ctr(&old, "b", 0, Running, None),
            ],
        );
        let a = compute_pod_actions(&new, &r);
        assert!(!a.create_sandbox && !a.kill_pod);
        assert_eq!(a.kill.len(), 1);
        assert_eq!(a.kill[0].name, "b");
        assert_eq!(a.start.len(), 1);
        assert_eq!(
            (a.start[0].name.as_str(), a.start[0].restart_count),
            ("b", 1)
        );
    }

    #[test]
    fn sandbox_change_restarts_everything_with_next_attempt() {
        let old = pod(serde_json::json!({"containers": [{"name": "a", "image": "i"}]}));
        let new = pod(
            serde_json::json!({"hostNetwork": true, "containers": [{"name": "a", "image": "i"}]}),
        );
        let r = rt(
            vec![sandbox(&old, "s", 0, true)],
            vec![ctr(&old, "a", 0, Running, None)],
        );
        let a = compute_pod_actions(&new, &r);
        assert!(a.create_sandbox && a.kill_pod);
        assert_eq!(a.sandbox_attempt, 1);
        assert_eq!(a.start[0].restart_count, 1);
    }

    #[test]
    fn dead_sandbox_is_replaced() {
        let p = pod(serde_json::json!({"containers": [{"name": "a", "image": "i"}]}));
        let r = rt(
            vec![sandbox(&p, "s", 2, false)],
            vec![ctr(&p, "a", 4, Exited, Some(137))],
        );
        let a = compute_pod_actions(&p, &r);
        assert!(a.create_sandbox && a.kill_pod);
        assert_eq!(a.sandbox_attempt, 3);
        assert_eq!(a.start[0].restart_count, 5);
    }

    #[test]
    fn restart_policies() {
        for (policy, exit, restarts) in [
            ("Always", 0, true),
            ("Always", 1, true),
            ("OnFailure", 0, false),
            ("OnFailure", 2, true),
            ("Never", 1, false),
            ("Never", 0, false),
        ] {
            let p = pod(
                serde_json::json!({"restartPolicy": policy, "containers": [{"name": "a", "image": "i"}]}),
            );
            let r = rt(
                vec![sandbox(&p, "s", 0, true)],
                vec![ctr(&p, "a", 0, Exited, Some(exit))],
            );
            let a = compute_pod_actions(&p, &r);
            assert_eq!(!a.start.is_empty(), restarts, "{policy} exit {exit}");
            assert_eq!(a.completed, !restarts, "{policy} exit {exit}");
        }
    }

    #[test]
    fn completed_never_pod_gets_no_new_sandbox() {
        let p = pod(
            serde_json::json!({"restartPolicy": "Never", "containers": [{"name": "a", "image": "i"}]}),
        );
        let r = rt(
            vec![sandbox(&p, "s", 0, false)],
            vec![ctr(&p, "a", 0, Exited, Some(0))],
        );
        let a = compute_pod_actions(&p, &r);
        assert!(!a.create_sandbox && a.completed && a.start.is_empty());
    }

    #[test]
    fn init_containers_run_in_order_before_apps() {
        let p = pod(serde_json::json!({
            "initContainers": [{"name": "i1", "image": "i"}, {"name": "i2", "image": "i"}],
            "containers": [{"name": "a", "image": "i"}]}));
        // Fresh pod: sandbox + first init container only.
        let a = compute_pod_actions(&p, &RuntimePod::default());
        assert_eq!(
            a.start.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["i1"]
        );
        // i1 running: wait.
        let r = rt(
            vec![sandbox(&p, "s", 0, true)],
            vec![ctr(&p, "i1", 0, Running, None)],
        );
        assert!(compute_pod_actions(&p, &r).start.is_empty());
        // i1 done: i2 next.
        let r = rt(
            vec![sandbox(&p, "s", 0, true)],
            vec![ctr(&p, "i1", 0, Exited, Some(0))],
        );
        assert_eq!(compute_pod_actions(&p, &r).start[0].name, "i2");
        // i2 failed: retried (restartPolicy Always), with the next count.
        let r = rt(
            vec![sandbox(&p, "s", 0, true)],
            vec![
                ctr(&p, "i1", 0, Exited, Some(0)),
                ctr(&p, "i2", 0, Exited, Some(1)),
            ],
        );
        let a = compute_pod_actions(&p, &r);
        assert_eq!(
            (a.start[0].name.as_str(), a.start[0].restart_count),
            ("i2", 1)
        );
        // Both done: the app starts.
        let r = rt(
            vec![sandbox(&p, "s", 0, true)],
            vec![
                ctr(&p, "i1", 0, Exited, Some(0)),
                ctr(&p, "i2", 1, Exited, Some(0)),
            ],
        );
        assert_eq!(compute_pod_actions(&p, &r).start[0].name, "a");
    }

    #[test]
    fn failed_init_with_never_fails_the_pod() {
        let p = pod(serde_json::json!({"restartPolicy": "Never",
            "initContainers": [{"name": "i1", "image": "i"}], "containers": [{"name": "a", "image": "i"}]}));
        let r = rt(
            vec![sandbox(&p, "s", 0, true)],
            vec![ctr(&p, "i1", 0, Exited, Some(1))],
        );
        let a = compute_pod_actions(&p, &r);
        assert!(a.completed && a.kill_pod && a.start.is_empty());
    }

    #[test]
    fn sidecars_start_in_order_and_keep_running() {
        let p = pod(serde_json::json!({
            "initContainers": [{"name": "side", "image": "i", "restartPolicy": "Always"}, {"name": "i1", "image": "i"}],
            "containers": [{"name": "a", "image": "i"}]}));
        let r = rt(
            vec![sandbox(&p, "s", 0, true)],
            vec![ctr(&p, "side", 0, Running, None)],
        );
        assert_eq!(compute_pod_actions(&p, &r).start[0].name, "i1");
        let r = rt(
            vec![sandbox(&p, "s", 0, true)],
            vec![
                ctr(&p, "side", 0, Exited, Some(0)),
                ctr(&p, "i1", 0, Exited, Some(0)),
                ctr(&p, "a", 0, Running, None),
            ],
        );
        let a = compute_pod_actions(&p, &r);
        assert_eq!(a.start[0].name, "side", "an exited sidecar is restarted");
        assert_eq!(a.start[0].kind, ContainerKind::Sidecar);
    }

    #[test]
    fn removed_container_is_killed() {
        let old = pod(
            serde_json::json!({"containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]}),
        );
        let new = pod(serde_json::json!({"containers": [{"name": "a", "image": "i"}]}));
        let r = rt(
            vec![sandbox(&old, "s", 0, true)],
            vec![
                ctr(&old, "a", 0, Running, None),
                ctr(&old, "b", 0, Running, None),
            ],
        );
        let a = compute_pod_actions(&new, &r);
        assert_eq!(a.kill.len(), 1);
        assert_eq!(a.kill[0].name, "b");
        assert!(a.start.is_empty() && !a.kill_pod);
    }

    #[test]
    fn sidecars_stop_after_apps_in_reverse_order() {
        let p = pod(serde_json::json!({
            "initContainers": [{"name": "s1", "image": "i", "restartPolicy": "Always"},
                               {"name": "init", "image": "i"},
                               {"name": "s2", "image": "i", "restartPolicy": "Always"},
                               {"name": "s3", "image": "i", "restartPolicy": "Always"}],
            "containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]}));
        let order = termination_order(&p, &["a", "b", "s1", "s2", "s3"]);
        assert_eq!(
            order,
            vec![
                ("s3".to_string(), vec!["a".to_string(), "b".to_string()]),
                ("s2".into(), vec!["a".into(), "b".into(), "s3".into()]),
                ("s1".into(), vec!["a".into(), "b".into(), "s2".into()]),
            ]
        );
        // Containers that aren't running are nobody's prerequisite.
        let order = termination_order(&p, &["b", "s1", "s3"]);
        assert_eq!(
            order,
            vec![
                ("s3".to_string(), vec!["b".to_string()]),
                ("s1".into(), vec!["b".into(), "s3".into()]),
            ]
        );
        let plain = pod(serde_json::json!({"containers": [{"name": "a", "image": "i"}]}));
        assert!(termination_order(&plain, &["a"]).is_empty());
    }

    #[test]
    fn grace_comes_from_the_probe_then_the_pod_then_the_annotation() {
        let p = pod(serde_json::json!({"terminationGracePeriodSeconds": 10, "containers": []}));
        assert_eq!(grace_period(Some(&p), Some(7), None), 10);
        assert_eq!(grace_period(Some(&p), None, Some(3)), 3);
        assert_eq!(grace_period(None, Some(7), None), 7);
        assert_eq!(grace_period(None, None, None), 30);
        assert_eq!(grace_period(None, Some(-5), None), 0);
    }

    #[test]
    fn probe_kill_takes_the_probe_grace_period() {
        let p = pod(
            serde_json::json!({"terminationGracePeriodSeconds": 60, "containers": [{
            "name": "a", "image": "i",
            "livenessProbe": {"exec": {"command": ["true"]}, "terminationGracePeriodSeconds": 4},
            "startupProbe": {"exec": {"command": ["true"]}, "terminationGracePeriodSeconds": 9}}]}),
        );
        for (reason, grace) in [
            (
                KillReason::LivenessFailed("Liveness probe failed: x".into()),
                4,
            ),
            (
                KillReason::StartupFailed("Startup probe failed: y".into()),
                9,
            ),
        ] {
            let msg = reason.to_string();
            let mut a = ctr(&p, "a", 0, Running, None);
            a.probe.kill_reason = Some(reason);
            let r = rt(vec![sandbox(&p, "s", 0, true)], vec![a]);
            let act = compute_pod_actions(&p, &r);
            assert_eq!(act.kill[0].grace, Some(grace), "{msg}");
        }
    }

    #[test]
    fn after_initialization_a_restarting_sidecar_gates_nothing() {
        let p = pod(serde_json::json!({
            "initContainers": [{"name": "side", "image": "i", "restartPolicy": "Always"},
                               {"name": "i1", "image": "i"}],
            "containers": [{"name": "a", "image": "i"}]}));
        // The sidecar exited and i1's instance was garbage-collected, while
        // the app crashed: the sidecar and the app restart, i1 doesn't.
        let r = rt(
            vec![sandbox(&p, "s", 0, true)],
            vec![
                ctr(&p, "side", 0, Exited, Some(1)),
                ctr(&p, "a", 0, Exited, Some(1)),
            ],
        );
        let a = compute_pod_actions(&p, &r);
        assert_eq!(
            a.start.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["side", "a"]
        );
        // A sidecar whose startup probe hasn't passed doesn't hold the app.
        let mut side = ctr(&p, "side", 1, Running, None);
        side.probe.started = Some(false);
        let r = rt(
            vec![sandbox(&p, "s", 0, true)],
            vec![side, ctr(&p, "a", 0, Exited, Some(1))],
        );
        let a = compute_pod_actions(&p, &r);
        assert_eq!(a.start.len(), 1);
        assert_eq!(a.start[0].name, "a");
    }

    #[test]
    fn finished_pod_stops_its_sidecars_instead_of_restarting_them() {
        let p = pod(serde_json::json!({"restartPolicy": "Never",
            "initContainers": [{"name": "side", "image": "i", "restartPolicy": "Always"}],
            "containers": [{"name": "a", "image": "i"}]}));
        let r = rt(
            vec![sandbox(&p, "s", 0, true)],
            vec![
                ctr(&p, "side", 0, Exited, Some(137)),
                ctr(&p, "a", 0, Exited, Some(0)),
            ],
        );
        let a = compute_pod_actions(&p, &r);
        assert!(a.kill_pod && a.completed && a.start.is_empty());
        // While the app runs, a dead sidecar is restarted.
        let r = rt(
            vec![sandbox(&p, "s", 0, true)],
            vec![
                ctr(&p, "side", 0, Exited, Some(137)),
                ctr(&p, "a", 0, Running, None),
            ],
        );
        let a = compute_pod_actions(&p, &r);
        assert!(!a.kill_pod);
        assert_eq!(a.start[0].name, "side");
    }
}
