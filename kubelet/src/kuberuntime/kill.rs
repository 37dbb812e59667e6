//! Stopping containers and pods the Go kubelet's way (`killContainer`,
//! `killPodWithSyncResult`): preStop within the grace period, sidecars after
//! the containers they serve, SIGTERM, then SIGKILL when the grace ends.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use cri_client::proto as pb;
use futures_util::future::join_all;
use k8s_openapi::api::core::v1::{Container, Lifecycle, LifecycleHandler, Pod};
use tokio::sync::watch;

use super::actions::{ContainerKind, grace_period, termination_order};
use super::{HOOK_HTTP_LIMIT, KubeRuntimeManager, remaining_grace, short};
use crate::container::runtime_pod::{ContainerInfo, ContainerState as RtContainer, RuntimePod};
use crate::events::{EventType, ObjectRef, reasons};
use crate::lifecycle::{self, HookTarget};
use crate::{pod_ref, pod_uid};

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
    /// Stops one container the Go kubelet's way (`killContainer`): runs its
    /// preStop hook within the grace period, waits for `turn` (sidecars
    /// wait for the containers that stop before them) while grace is left,
    /// then StopContainer with what remains (at least 2 s) between SIGTERM
    /// and SIGKILL. `message` is the Killing event's, "Stopping container
    /// <name>" when None.
    #[allow(clippy::too_many_arguments)]
    pub async fn kill_container(
        &self,
        pod: Option<&Pod>,
        id: &str,
        sandbox_id: &str,
        info: &ContainerInfo,
        grace: i64,
        message: Option<String>,
        turn: impl Future<Output = ()>,
    ) -> Result<(), cri_client::Error> {
        let began = Instant::now();
        let (spec_pod, spec) = kill_specs(pod, info);
        let pref = pod_ref(&spec_pod);
        let uid = pod_uid(&spec_pod).to_string();
        let event_ref = ObjectRef::container(&spec_pod, &spec.name);
        self.recorder.event(
            &event_ref,
            EventType::Normal,
            reasons::KILLING_CONTAINER,
            message.unwrap_or_else(|| format!("Stopping container {}", spec.name)),
        );
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
            let run = lifecycle::run(&self.handlers, &target, hook, budget.min(HOOK_HTTP_LIMIT));
            match tokio::time::timeout(budget, run).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(pod = %pref, uid = %uid, container = %spec.name, "preStop hook failed: {e}");
                    self.recorder.event(
                        &event_ref,
                        EventType::Warning,
                        reasons::FAILED_PRE_STOP_HOOK,
                        e.to_string(),
                    );
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
        grace_override: Option<i64>,
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
            let grace = grace_override
                .unwrap_or_else(|| grace_period(pod, c.info.termination_grace_period, None));
            let stopped = &stopped;
            async move {
                let r = self
                    .kill_container(pod, &c.id, &c.sandbox_id, &c.info, grace, None, turn)
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::runtime_pod::ContainerStateKind;

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
            ContainerStateKind::Running,
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
