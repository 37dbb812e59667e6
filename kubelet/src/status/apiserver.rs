//! The apiserver status sink (the writing half of the Go kubelet's
//! `status_manager.go`: `syncPod`, `mergePodStatus`, `PatchPodStatus`,
//! and the deletion of a finished pod's object).
//!
//! Status changes are queued per pod and written by one task, newest
//! status only: a burst of changes to one pod is one write. A write reads
//! the pod, merges berth's status into it (conditions that other
//! components own are kept), and patches the status subresource with only
//! the fields that differ, the pod's UID in the patch as a precondition.
//! When nothing differs, nothing is sent. A static pod's status goes to its
//! mirror pod, once its UID is known. A pod that was deleted gets its final
//! status written, then its object is deleted with grace 0.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;

use super::manager::{StatusChange, StatusSink};
use crate::kubelet::is_api_pod;
use crate::kubelet_node_status::ClientSource;
use crate::pod_uid;

/// The conditions the kubelet owns (Go's `PodConditionByKubelet`); the
/// others (readiness gates, DisruptionTarget, ...) belong to other writers.
const KUBELET_CONDITIONS: &[&str] = &[
    "PodScheduled",
    "Ready",
    "Initialized",
    "ContainersReady",
    "PodReadyToStartContainers",
    "PodResizePending",
    "PodResizeInProgress",
];

/// The status fields the kubelet writes; everything else is left alone.
const OWNED_FIELDS: &[&str] = &[
    "phase",
    "message",
    "reason",
    "hostIP",
    "hostIPs",
    "podIP",
    "podIPs",
    "startTime",
    "qosClass",
    "initContainerStatuses",
    "containerStatuses",
    "ephemeralContainerStatuses",
];

/// How many apiserver requests the sink made, for benchmarks and tests.
#[derive(Debug, Default)]
pub struct StatusApiCounters {
    pub gets: AtomicU64,
    pub patches: AtomicU64,
    pub deletes: AtomicU64,
    /// Writes skipped because the apiserver already had the status.
    pub unchanged: AtomicU64,
}

impl StatusApiCounters {
    pub fn requests(&self) -> u64 {
        self.gets.load(Ordering::Relaxed)
            + self.patches.load(Ordering::Relaxed)
            + self.deletes.load(Ordering::Relaxed)
    }
}

#[derive(Clone, Debug)]
struct Pending {
    /// Failed writes in a row, for this pod's back-off.
    failures: u32,
    namespace: String,
    name: String,
    /// The pod's UID on the node (a static pod's own).
    uid: String,
    is_static: bool,
    status: Option<PodStatus>,
    /// Delete the object once the status is written.
    delete: bool,
}

#[derive(Default)]
struct Queue {
    pods: HashMap<String, Pending>,
    order: VecDeque<String>,
    /// Static pod UID → mirror pod UID.
    mirrors: HashMap<String, String>,
}

impl Queue {
    fn push(&mut self, uid: &str) {
        if !self.order.iter().any(|u| u == uid) {
            self.order.push_back(uid.to_string());
        }
    }
}

/// The sink half: cheap, never blocks, hands work to [`ApiStatusWriter`].
#[derive(Clone, Default)]
pub struct ApiStatusSink {
    queue: Arc<Mutex<Queue>>,
    wake: Arc<Notify>,
    pub counters: Arc<StatusApiCounters>,
}

impl ApiStatusSink {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pod was deleted and has terminated on the node: once its final
    /// status is written, delete its object (grace 0, UID precondition).
    pub fn finalize(&self, pod: &Pod) {
        if !is_api_pod(pod) || pod.metadata.deletion_timestamp.is_none() {
            return;
        }
        let uid = pod_uid(pod).to_string();
        let mut q = self.lock();
        let entry = q.pods.entry(uid.clone()).or_insert_with(|| Pending {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: uid.clone(),
            is_static: false,
            status: None,
            delete: false,
            failures: 0,
        });
        entry.delete = true;
        q.push(&uid);
        drop(q);
        self.wake.notify_one();
    }

    /// The writer task.
    pub fn writer(&self, client: ClientSource) -> ApiStatusWriter {
        ApiStatusWriter {
            sink: self.clone(),
            client,
        }
    }
}

impl StatusSink for ApiStatusSink {
    fn status_changed(&self, c: &StatusChange<'_>) {
        let source = c
            .pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(static_pods::identity::CONFIG_SOURCE_ANNOTATION));
        let is_static = match source.map(String::as_str) {
            Some(crate::podconfig::API_SOURCE) => false,
            Some(crate::podconfig::FILE_SOURCE) => true,
            _ => return,
        };
        let uid = pod_uid(c.pod).to_string();
        let mut q = self.lock();
        let entry = q.pods.entry(uid.clone()).or_insert_with(|| Pending {
            namespace: c.pod.metadata.namespace.clone().unwrap_or_default(),
            name: c.pod.metadata.name.clone().unwrap_or_default(),
            uid: uid.clone(),
            is_static,
            status: None,
            delete: false,
            failures: 0,
        });
        entry.status = Some(c.status.clone());
        q.push(&uid);
        drop(q);
        self.wake.notify_one();
    }

    fn mirror_known(&self, static_uid: &str, mirror_uid: &str) {
        tracing::debug!(uid = %static_uid, mirror_uid = %mirror_uid, "status goes to the mirror pod");
        let mut q = self.lock();
        q.mirrors
            .insert(static_uid.to_string(), mirror_uid.to_string());
        if q.pods.contains_key(static_uid) {
            q.push(static_uid);
            drop(q);
            self.wake.notify_one();
        }
    }

    fn pod_removed(&self, uid: &str) {
        // A removed static pod has nothing left to write; an API pod may
        // still have its final status (and deletion) queued.
        let mut q = self.lock();
        if q.pods.get(uid).is_some_and(|p| p.is_static) {
            q.pods.remove(uid);
            q.mirrors.remove(uid);
        }
    }
}

/// Why one write did not happen.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("serializing the status: {0}")]
    Json(#[from] serde_json::Error),
}

/// What to do with a queued pod after one attempt.
enum Outcome {
    Done,
    /// The static pod's mirror is not known yet: keep the status.
    Wait,
    Retry,
}

pub struct ApiStatusWriter {
    sink: ApiStatusSink,
    client: ClientSource,
}

impl ApiStatusWriter {
    /// Writes queued statuses for ever. A failed write is queued again
    /// after a pause of its own (100 ms doubling to 30 s), so one pod's
    /// failures never hold up the others: the first write of a new pod
    /// often meets a 403 while the Node authorizer has not yet seen it
    /// bound here, and succeeds a moment later.
    pub async fn run(self) {
        loop {
            let next = {
                let mut q = self.sink.lock();
                loop {
                    match q.order.pop_front() {
                        Some(uid) => match q.pods.get(&uid) {
                            Some(p) => {
                                let mirror = q.mirrors.get(&uid).cloned();
                                break Some((p.clone(), mirror));
                            }
                            None => continue,
                        },
                        None => break None,
                    }
                }
            };
            let Some((pending, mirror)) = next else {
                self.sink.wake.notified().await;
                continue;
            };
            match self.write(&pending, mirror.as_deref()).await {
                Outcome::Done => {
                    let mut q = self.sink.lock();
                    if let Some(p) = q.pods.get_mut(&pending.uid) {
                        p.failures = 0;
                    }
                    // Only if nothing newer arrived meanwhile.
                    let same = q
                        .pods
                        .get(&pending.uid)
                        .is_some_and(|p| p.status == pending.status && p.delete == pending.delete);
                    // A static pod's status stays: a recreated mirror
                    // pod gets it again.
                    if same && !pending.is_static {
                        q.pods.remove(&pending.uid);
                    }
                }
                Outcome::Wait => {}
                Outcome::Retry => {
                    let failures = {
                        let mut q = self.sink.lock();
                        q.pods.get_mut(&pending.uid).map_or(1, |p| {
                            p.failures = p.failures.saturating_add(1);
                            p.failures
                        })
                    };
                    let pause = Duration::from_millis(100) * 2u32.pow((failures - 1).min(9));
                    let (sink, uid) = (self.sink.clone(), pending.uid.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(pause.min(Duration::from_secs(30))).await;
                        sink.lock().push(&uid);
                        sink.wake.notify_one();
                    });
                }
            }
        }
    }

    async fn write(&self, p: &Pending, mirror: Option<&str>) -> Outcome {
        let target_uid = match (p.is_static, mirror) {
            (false, _) => p.uid.as_str(),
            (true, Some(m)) => m,
            (true, None) => return Outcome::Wait,
        };
        let pod_ref = format!("{}/{}", p.namespace, p.name);
        tracing::trace!(pod = %pod_ref, uid = %p.uid, target_uid, has_status = p.status.is_some(), delete = p.delete, "writing status");
        match self.try_write(p, target_uid).await {
            Ok(()) => Outcome::Done,
            Err(WriteError::Api(kube::Error::Api(e))) if e.code == 404 => {
                tracing::debug!(pod = %pod_ref, uid = %p.uid, "the pod is gone from the apiserver; its status is dropped");
                Outcome::Done
            }
            Err(e) => {
                // The first failures are often the authorizer catching up.
                if p.failures >= 2 {
                    tracing::warn!(pod = %pod_ref, uid = %p.uid, "writing the pod's status to the apiserver: {e}; retrying");
                } else {
                    tracing::debug!(pod = %pod_ref, uid = %p.uid, "writing the pod's status to the apiserver: {e}; retrying");
                }
                Outcome::Retry
            }
        }
    }

    async fn try_write(&self, p: &Pending, target_uid: &str) -> Result<(), WriteError> {
        let api: Api<Pod> = Api::namespaced((self.client)(), &p.namespace);
        let counters = &self.sink.counters;
        if let Some(ours) = &p.status {
            // A conflict (the object changed between read and write) is
            // read again and retried at once, a few times.
            let mut tries = 0;
            loop {
                tries += 1;
                counters.gets.fetch_add(1, Ordering::Relaxed);
                let current = api.get(&p.name).await?;
                if pod_uid(&current) != target_uid {
                    tracing::debug!(pod = %format!("{}/{}", p.namespace, p.name), uid = %p.uid, "the apiserver's pod has another UID; status not written");
                    return Ok(());
                }
                let old = current.status.clone().unwrap_or_default();
                let merged = merge_status(&old, ours);
                let Some(patch) = status_patch(&old, &merged, target_uid)? else {
                    counters.unchanged.fetch_add(1, Ordering::Relaxed);
                    break;
                };
                counters.patches.fetch_add(1, Ordering::Relaxed);
                match api
                    .patch_status(&p.name, &PatchParams::default(), &Patch::Strategic(patch))
                    .await
                {
                    Ok(_) => {
                        tracing::debug!(pod = %format!("{}/{}", p.namespace, p.name), uid = %p.uid, phase = ?merged.phase, "pod status written");
                        break;
                    }
                    Err(kube::Error::Api(e)) if e.code == 409 && tries < 3 => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if p.delete {
            counters.deletes.fetch_add(1, Ordering::Relaxed);
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(target_uid.to_string()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match api.delete(&p.name, &params).await {
                Ok(_) => {
                    tracing::info!(pod = %format!("{}/{}", p.namespace, p.name), uid = %p.uid, "pod object deleted");
                }
                // Another UID: the pod was recreated under the same name.
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// Berth's status over the apiserver's (Go's `mergePodStatus`): the
/// kubelet's conditions replace the old ones of the same type, the others
/// are kept; a terminal phase is never left.
pub fn merge_status(old: &PodStatus, ours: &PodStatus) -> PodStatus {
    let mut merged = ours.clone();
    let mut conditions: Vec<PodCondition> = old
        .conditions
        .iter()
        .flatten()
        .filter(|c| !KUBELET_CONDITIONS.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    conditions.extend(ours.conditions.iter().flatten().cloned());
    merged.conditions = (!conditions.is_empty()).then_some(conditions);
    if let Some(phase @ ("Succeeded" | "Failed")) = old.phase.as_deref()
        && merged.phase.as_deref() != Some(phase)
    {
        merged.phase = Some(phase.to_string());
    }
    // Fields berth does not write stay as they are.
    merged.nominated_node_name = old.nominated_node_name.clone();
    merged.resize = old.resize.clone();
    merged.resource_claim_statuses = old.resource_claim_statuses.clone();
    merged.observed_generation = old.observed_generation;
    merged
}

/// The strategic merge patch that takes `old` to `new` in the fields the
/// kubelet owns: only what differs (conditions by type), with the pod's
/// UID as a precondition; None when nothing differs.
pub fn status_patch(
    old: &PodStatus,
    new: &PodStatus,
    uid: &str,
) -> Result<Option<Value>, serde_json::Error> {
    let old_v = serde_json::to_value(old)?;
    let new_v = serde_json::to_value(new)?;
    let (Value::Object(old_m), Value::Object(new_m)) = (old_v, new_v) else {
        return Ok(None);
    };
    let mut status = Map::new();
    for field in OWNED_FIELDS {
        let (a, b) = (old_m.get(*field), new_m.get(*field));
        if a != b {
            status.insert(field.to_string(), b.cloned().unwrap_or(Value::Null));
        }
    }
    let old_conds: HashMap<&str, &PodCondition> = old
        .conditions
        .iter()
        .flatten()
        .map(|c| (c.type_.as_str(), c))
        .collect();
    let changed: Vec<&PodCondition> = new
        .conditions
        .iter()
        .flatten()
        .filter(|c| old_conds.get(c.type_.as_str()) != Some(c))
        .collect();
    if !changed.is_empty() {
        status.insert("conditions".into(), serde_json::to_value(changed)?);
    }
    if status.is_empty() {
        return Ok(None);
    }
    Ok(Some(json!({"metadata": {"uid": uid}, "status": status})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(v: Value) -> PodStatus {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn only_changed_fields_and_conditions_are_sent() {
        let old = status(json!({"phase": "Pending", "hostIP": "10.0.0.1",
            "conditions": [{"type": "PodScheduled", "status": "True"},
                           {"type": "Ready", "status": "False"}]}));
        let new = status(json!({"phase": "Running", "hostIP": "10.0.0.1",
            "conditions": [{"type": "PodScheduled", "status": "True"},
                           {"type": "Ready", "status": "True"}]}));
        let patch = status_patch(&old, &new, "u").unwrap().unwrap();
        assert_eq!(
            patch,
            json!({"metadata": {"uid": "u"}, "status": {"phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}]}})
        );
        assert_eq!(status_patch(&new, &new, "u").unwrap(), None);
    }

    #[test]
    fn a_cleared_field_is_sent_as_null() {
        let old = status(json!({"phase": "Pending", "message": "no sandbox"}));
        let new = status(json!({"phase": "Pending"}));
        let patch = status_patch(&old, &new, "u").unwrap().unwrap();
        assert_eq!(patch["status"], json!({"message": null}));
    }

    #[test]
    fn merge_keeps_other_writers_conditions_and_terminal_phases() {
        let old = status(json!({"phase": "Failed", "nominatedNodeName": "n",
            "conditions": [{"type": "DisruptionTarget", "status": "True"},
                           {"type": "Ready", "status": "True"}]}));
        let ours = status(json!({"phase": "Running",
            "conditions": [{"type": "Ready", "status": "False"}]}));
        let m = merge_status(&old, &ours);
        assert_eq!(m.phase.as_deref(), Some("Failed"));
        assert_eq!(m.nominated_node_name.as_deref(), Some("n"));
        let types: Vec<(&str, &str)> = m
            .conditions
            .iter()
            .flatten()
            .map(|c| (c.type_.as_str(), c.status.as_str()))
            .collect();
        assert_eq!(types, [("DisruptionTarget", "True"), ("Ready", "False")]);
    }
}
