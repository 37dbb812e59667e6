//! Mirror pods: the apiserver's read-only copy of each static pod, so that
//! `kubectl get pods` shows what runs from the manifest directory. The Go
//! kubelet splits this between `pkg/kubelet/pod/mirror_client.go` (create,
//! delete) and `kubelet.go` (`tryReconcileMirrorPods` in SyncPod, and
//! `deleteOrphanedMirrorPods` in HandlePodCleanups). Berth does both in one
//! [`MirrorReconciler`], which compares the static pods with the mirror pods
//! the apiserver shows whenever either changes.
//!
//! Pods are keyed by full name (`namespace/name`), as in Go: a mirror pod is
//! the mirror of the static pod with its name whose `config.hash` it carries
//! in its `config.mirror` annotation.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

pub use crate::kubelet_node_status::ClientSource;
use crate::podconfig::API_SOURCE;
use crate::status::StatusManager;
use crate::{pod_ref, pod_uid};
use static_pods::identity::{CONFIG_HASH_ANNOTATION, CONFIG_SOURCE_ANNOTATION};

/// The annotation that makes a pod a mirror pod; its value is the static
/// pod's `kubernetes.io/config.hash`.
pub const CONFIG_MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// The first wait after a failed action on a pod; it doubles per failure.
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between attempts: about Go's pod resync period, at
/// which the Go kubelet would try a failed mirror again.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("creating mirror pod {pod}: {}", api_message(.source))]
    Create { pod: String, source: kube::Error },
    #[error("reading mirror pod {pod}: {}", api_message(.source))]
    Get { pod: String, source: kube::Error },
    #[error("deleting mirror pod {pod} (uid {uid}): {}", api_message(.source))]
    Delete {
        pod: String,
        uid: String,
        source: kube::Error,
    },
    /// A pod of that name exists but is not the current mirror.
    #[error("mirror pod {pod}: a pod of that name already exists ({detail})")]
    Exists { pod: String, detail: String },
    #[error("the apiserver created mirror pod {pod} without a UID")]
    NoUid { pod: String },
}

impl MirrorError {
    /// The apiserver's status code, when it answered.
    pub fn api_status(&self) -> Option<u16> {
        match self {
            MirrorError::Create { source, .. }
            | MirrorError::Get { source, .. }
            | MirrorError::Delete { source, .. } => match source {
                kube::Error::Api(s) => Some(s.code),
                _ => None,
            },
            _ => None,
        }
    }
}

/// The apiserver's own message (code and reason), or the client's error.
fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => other.to_string(),
    }
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// A pod that carries the mirror annotation.
pub fn is_mirror_pod(pod: &Pod) -> bool {
    annotation(pod, CONFIG_MIRROR_ANNOTATION).is_some()
}

/// A pod from a source other than the apiserver (Go's `IsStaticPod`).
pub fn is_static_pod(pod: &Pod) -> bool {
    annotation(pod, CONFIG_SOURCE_ANNOTATION).is_some_and(|s| s != API_SOURCE)
}

/// Same full name, and the mirror carries the static pod's current hash
/// (Go's `IsMirrorPodOf`).
pub fn is_mirror_pod_of(mirror: &Pod, static_pod: &Pod) -> bool {
    pod_ref(mirror) == pod_ref(static_pod)
        && annotation(mirror, CONFIG_MIRROR_ANNOTATION)
            == Some(annotation(static_pod, CONFIG_HASH_ANNOTATION).unwrap_or(""))
}

fn deleting(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// The mirror pod for `static_pod`: the same labels, annotations and spec,
/// plus the mirror annotation holding the static pod's hash, a controller
/// owner reference to this node's Node (what NodeRestriction requires of a
/// node that creates a pod) and `spec.nodeName`. The apiserver assigns the
/// UID, so none is sent.
pub fn mirror_pod_for(static_pod: &Pod, node_name: &str, node_uid: &str) -> Pod {
    let meta = &static_pod.metadata;
    let mut annotations = meta.annotations.clone().unwrap_or_default();
    let hash = annotations
        .get(CONFIG_HASH_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    annotations.insert(CONFIG_MIRROR_ANNOTATION.to_string(), hash);
    let mut spec = static_pod.spec.clone().unwrap_or_default();
    spec.node_name = Some(node_name.to_string());
    Pod {
        metadata: ObjectMeta {
            name: meta.name.clone(),
            namespace: meta.namespace.clone(),
            labels: meta.labels.clone(),
            annotations: Some(annotations),
            // Exactly one owner, the node itself, as controller and without
            // blockOwnerDeletion: anything else NodeRestriction refuses.
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".to_string(),
                kind: "Node".to_string(),
                name: node_name.to_string(),
                uid: node_uid.to_string(),
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// The answer to a create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatedMirror {
    /// The mirror pod's UID, assigned by the apiserver.
    pub uid: String,
    /// The current mirror was there already (the mirror pods seen were
    /// older than the apiserver's).
    pub already_existed: bool,
}

/// Creates and deletes mirror pods (Go's `basicMirrorClient`).
#[derive(Clone)]
pub struct MirrorClient {
    client: ClientSource,
    node_name: String,
}

impl MirrorClient {
    pub fn new(client: ClientSource, node_name: impl Into<String>) -> Self {
        MirrorClient {
            client,
            node_name: node_name.into(),
        }
    }

    fn api(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced((self.client)(), namespace)
    }

    /// Creates the mirror of `static_pod`. A pod of that name that already
    /// is the current mirror counts as created, as in Go.
    pub async fn create_mirror_pod(
        &self,
        static_pod: &Pod,
        node_uid: &str,
    ) -> Result<CreatedMirror, MirrorError> {
        let mirror = mirror_pod_for(static_pod, &self.node_name, node_uid);
        let pod = pod_ref(&mirror);
        let namespace = mirror.metadata.namespace.as_deref().unwrap_or("default");
        let api = self.api(namespace);
        match api.create(&PostParams::default(), &mirror).await {
            Ok(created) => match created.metadata.uid.filter(|u| !u.is_empty()) {
                Some(uid) => Ok(CreatedMirror {
                    uid,
                    already_existed: false,
                }),
                None => Err(MirrorError::NoUid { pod }),
            },
            Err(kube::Error::Api(s)) if s.is_already_exists() => {
                let name = mirror.metadata.name.as_deref().unwrap_or("");
                let existing = api.get(name).await.map_err(|source| MirrorError::Get {
                    pod: pod.clone(),
                    source,
                })?;
                let uid = pod_uid(&existing).to_string();
                if !is_mirror_pod_of(&existing, static_pod) {
                    let detail = if is_mirror_pod(&existing) {
                        format!("uid {uid}, a mirror of another version")
                    } else {
                        format!("uid {uid}, not a mirror pod")
                    };
                    return Err(MirrorError::Exists { pod, detail });
                }
                if deleting(&existing) {
                    let detail = format!("uid {uid}, being deleted");
                    return Err(MirrorError::Exists { pod, detail });
                }
                Ok(CreatedMirror {
                    uid,
                    already_existed: true,
                })
            }
            Err(source) => Err(MirrorError::Create { pod, source }),
        }
    }

    /// Deletes mirror pod `namespace/name` at once (grace period 0), only if
    /// it still has `uid`, as Go does. Returns whether it was deleted: a pod
    /// already gone, or replaced by one with another UID, is not an error.
    pub async fn delete_mirror_pod(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
    ) -> Result<bool, MirrorError> {
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match self.api(namespace).delete(name, &params).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.is_not_found() || s.is_conflict() => Ok(false),
            Err(source) => Err(MirrorError::Delete {
                pod: format!("{namespace}/{name}"),
                uid: uid.to_string(),
                source,
            }),
        }
    }
}

/// Why a mirror pod is replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outdated {
    /// It carries another hash than the static pod's.
    Hash,
    /// It has a deletion timestamp.
    Deleting,
}

/// One decision of [`plan`], per full name.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// The mirror is current: the static pod's status goes to it.
    Keep {
        full_name: String,
        static_uid: String,
        mirror_uid: String,
    },
    /// No mirror yet.
    Create {
        full_name: String,
        static_pod: Arc<Pod>,
    },
    /// Delete the mirror (by its UID), then create a current one.
    Recreate {
        full_name: String,
        static_pod: Arc<Pod>,
        mirror_uid: String,
        why: Outdated,
    },
    /// The mirror's static pod is gone.
    Delete {
        full_name: String,
        mirror_uid: String,
    },
}

impl Action {
    pub fn full_name(&self) -> &str {
        match self {
            Action::Keep { full_name, .. }
            | Action::Create { full_name, .. }
            | Action::Recreate { full_name, .. }
            | Action::Delete { full_name, .. } => full_name,
        }
    }
}

/// What to do so that every static pod has one current mirror and no
/// mirror outlives its static pod: SyncPod's `tryReconcileMirrorPods` for
/// each static pod, then HandlePodCleanups' `deleteOrphanedMirrorPods`.
/// `terminating` holds the full names of static pods that left the source
/// but still stop: their mirrors stay until they are gone, as Go keeps them
/// while the pod worker terminates the pod. One action per full name,
/// ordered by it.
pub fn plan(
    statics: &[Arc<Pod>],
    mirrors: &[Arc<Pod>],
    terminating: &HashSet<String>,
) -> Vec<Action> {
    let mirrors: BTreeMap<String, &Arc<Pod>> = mirrors
        .iter()
        .filter(|m| is_mirror_pod(m))
        .map(|m| (pod_ref(m), m))
        .collect();
    let statics: BTreeMap<String, &Arc<Pod>> = statics
        .iter()
        .filter(|p| is_static_pod(p))
        .map(|p| (pod_ref(p), p))
        .collect();
    let mut actions = Vec::new();
    for (full_name, static_pod) in &statics {
        let full_name = full_name.clone();
        let static_pod = Arc::clone(static_pod);
        let action = match mirrors.get(&full_name) {
            None => Action::Create {
                full_name,
                static_pod,
            },
            Some(mirror) => {
                let mirror_uid = pod_uid(mirror).to_string();
                let why = if deleting(mirror) {
                    Some(Outdated::Deleting)
                } else if !is_mirror_pod_of(mirror, &static_pod) {
                    Some(Outdated::Hash)
                } else {
                    None
                };
                match why {
                    Some(why) => Action::Recreate {
                        full_name,
                        static_pod,
                        mirror_uid,
                        why,
                    },
                    None => Action::Keep {
                        full_name,
                        static_uid: pod_uid(&static_pod).to_string(),
                        mirror_uid,
                    },
                }
            }
        };
        actions.push(action);
    }
    for (full_name, mirror) in &mirrors {
        if statics.contains_key(full_name) || terminating.contains(full_name) {
            continue;
        }
        actions.push(Action::Delete {
            full_name: full_name.clone(),
            mirror_uid: pod_uid(mirror).to_string(),
        });
    }
    actions.sort_by(|a, b| a.full_name().cmp(b.full_name()));
    actions
}

/// A failed action, not tried again before `retry_at` unless the plan for
/// its pod changes.
struct Failure {
    action: Action,
    delay: Duration,
    retry_at: Instant,
}

/// Keeps the apiserver's mirror pods in line with the static pods.
pub struct MirrorReconciler {
    client: MirrorClient,
    node_name: String,
    node_uid: watch::Receiver<Option<String>>,
    status: Arc<StatusManager>,
    /// The static pods of the last snapshot: UID → full name.
    present: HashMap<String, String>,
    /// Static pods that left the source: UID → full name, until the status
    /// manager has forgotten them (the pod worker removed them).
    departed: HashMap<String, String>,
    /// Whether the static source has published its first snapshot: until
    /// then no mirror counts as an orphan.
    statics_ready: bool,
    failures: HashMap<String, Failure>,
}

impl MirrorReconciler {
    pub fn new(
        client: ClientSource,
        node_name: String,
        node_uid: watch::Receiver<Option<String>>,
        status: Arc<StatusManager>,
    ) -> Self {
        MirrorReconciler {
            client: MirrorClient::new(client, node_name.clone()),
            node_name,
            node_uid,
            status,
            present: HashMap::new(),
            departed: HashMap::new(),
            statics_ready: false,
            failures: HashMap::new(),
        }
    }

    /// Reconciles whenever the static pods, the mirror pods or the Node's
    /// UID change, or a departed static pod is removed from the node;
    /// retries failed actions with back-off (1 s doubling to 1 min). Nothing
    /// is created before the Node is registered. Never returns.
    ///
    /// The static source counts as having spoken (so that mirrors without a
    /// static pod are deleted) once `statics` changed once or holds pods, as
    /// the static-pods source's receiver does after its first scan.
    pub async fn run(
        mut self,
        mut statics: watch::Receiver<Vec<Arc<Pod>>>,
        mut mirrors: watch::Receiver<Vec<Arc<Pod>>>,
    ) {
        let mut feed = self.status.subscribe();
        let (mut statics_open, mut mirrors_open, mut node_open, mut feed_open) =
            (true, true, true, true);
        let mut waiting_logged = false;
        self.statics_ready = statics.has_changed().unwrap_or(false);
        loop {
            let node_uid = self.node_uid.borrow_and_update().clone();
            let statics_now = statics.borrow_and_update().clone();
            let mirrors_now = mirrors.borrow_and_update().clone();
            self.statics_ready |= !statics_now.is_empty();
            let next_retry = match node_uid.filter(|u| !u.is_empty()) {
                Some(uid) => {
                    waiting_logged = false;
                    self.reconcile(&statics_now, &mirrors_now, &uid).await
                }
                None => {
                    if !waiting_logged {
                        tracing::info!(node = %self.node_name, "mirror pods wait for the Node to be registered");
                        waiting_logged = true;
                    }
                    None
                }
            };
            // Wait for something that can change the plan.
            loop {
                let retry = async {
                    match next_retry {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    r = statics.changed(), if statics_open => {
                        statics_open = r.is_ok();
                        self.statics_ready = true;
                        break;
                    }
                    r = mirrors.changed(), if mirrors_open => {
                        mirrors_open = r.is_ok();
                        break;
                    }
                    r = self.node_uid.changed(), if node_open => {
                        node_open = r.is_ok();
                        break;
                    }
                    item = feed.recv(), if feed_open => match item {
                        Ok((uid, 0)) if self.departed.contains_key(&uid) => break,
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => break,
                        Err(broadcast::error::RecvError::Closed) => feed_open = false,
                    },
                    () = retry => break,
                }
            }
        }
    }

    /// One pass; returns when the earliest pod in back-off may be retried.
    async fn reconcile(
        &mut self,
        statics: &[Arc<Pod>],
        mirrors: &[Arc<Pod>],
        node_uid: &str,
    ) -> Option<Instant> {
        let terminating = self.track_statics(statics);
        let terminating = if self.statics_ready {
            terminating
        } else {
            // Before the source spoke, every mirror may still have its pod.
            mirrors.iter().map(|m| pod_ref(m)).collect()
        };
        let actions = plan(statics, mirrors, &terminating);
        let planned: HashSet<String> = actions.iter().map(|a| a.full_name().to_string()).collect();
        self.failures.retain(|name, _| planned.contains(name));
        let now = Instant::now();
        for action in actions {
            let full_name = action.full_name().to_string();
            let waiting = self
                .failures
                .get(&full_name)
                .is_some_and(|f| f.action == action && now < f.retry_at);
            if waiting {
                continue;
            }
            match self.apply(&action, node_uid).await {
                Ok(()) => {
                    self.failures.remove(&full_name);
                }
                Err(e) => self.failed(action, &e),
            }
        }
        self.failures.values().map(|f| f.retry_at).min()
    }

    /// Records which static pods are present and which left; forgets the
    /// mirror UIDs of departed pods the status manager no longer has.
    /// Returns the full names of departed pods still terminating.
    fn track_statics(&mut self, statics: &[Arc<Pod>]) -> HashSet<String> {
        let now: HashMap<String, String> = statics
            .iter()
            .filter(|p| is_static_pod(p))
            .map(|p| (pod_uid(p).to_string(), pod_ref(p)))
            .collect();
        for (uid, full_name) in self.present.drain() {
            if !now.contains_key(&uid) {
                if self.status.get(&uid).is_some() {
                    tracing::debug!(pod = %full_name, uid = %uid, "static pod removed: its mirror stays while it terminates");
                }
                self.departed.insert(uid, full_name);
            }
        }
        self.departed.retain(|uid, _| !now.contains_key(uid));
        let status = &self.status;
        self.departed.retain(|uid, full_name| {
            let stopping = status.get(uid).is_some();
            if !stopping {
                tracing::debug!(pod = %full_name, uid = %uid, "static pod removed: forgetting its mirror");
                status.remove_mirror_uid(uid);
            }
            stopping
        });
        self.present = now;
        let live: HashSet<&String> = self.present.values().collect();
        self.departed
            .values()
            .filter(|name| !live.contains(name))
            .cloned()
            .collect()
    }

    async fn apply(&self, action: &Action, node_uid: &str) -> Result<(), MirrorError> {
        match action {
            Action::Keep {
                full_name,
                static_uid,
                mirror_uid,
            } => {
                if self.status.api_uid(static_uid) != *mirror_uid {
                    tracing::debug!(pod = %full_name, uid = %static_uid, mirror_uid = %mirror_uid, "mirror pod found");
                    self.status.set_mirror_uid(static_uid, mirror_uid);
                }
                Ok(())
            }
            Action::Create {
                full_name,
                static_pod,
            } => self.create(full_name, static_pod, node_uid).await,
            Action::Recreate {
                full_name,
                static_pod,
                mirror_uid,
                why,
            } => {
                let (namespace, name) = split_full_name(full_name);
                let static_uid = pod_uid(static_pod);
                let reason = match why {
                    Outdated::Hash => "it does not match the static pod",
                    Outdated::Deleting => "it is being deleted",
                };
                tracing::info!(pod = %full_name, uid = %static_uid, mirror_uid = %mirror_uid, "deleting mirror pod: {reason}");
                let deleted = self
                    .client
                    .delete_mirror_pod(namespace, name, mirror_uid)
                    .await?;
                if !deleted {
                    tracing::debug!(pod = %full_name, uid = %static_uid, mirror_uid = %mirror_uid, "mirror pod was already gone or replaced");
                }
                self.create(full_name, static_pod, node_uid).await
            }
            Action::Delete {
                full_name,
                mirror_uid,
            } => {
                let (namespace, name) = split_full_name(full_name);
                tracing::info!(pod = %full_name, uid = %mirror_uid, "deleting orphaned mirror pod: its static pod is gone");
                self.client
                    .delete_mirror_pod(namespace, name, mirror_uid)
                    .await
                    .map(|_| ())
            }
        }
    }

    async fn create(
        &self,
        full_name: &str,
        static_pod: &Pod,
        node_uid: &str,
    ) -> Result<(), MirrorError> {
        let static_uid = pod_uid(static_pod);
        let created = self.client.create_mirror_pod(static_pod, node_uid).await?;
        let mirror_uid = created.uid;
        if created.already_existed {
            tracing::debug!(pod = %full_name, uid = %static_uid, mirror_uid = %mirror_uid, "mirror pod already exists");
        } else {
            tracing::info!(pod = %full_name, uid = %static_uid, mirror_uid = %mirror_uid, "mirror pod created");
        }
        self.status.set_mirror_uid(static_uid, &mirror_uid);
        Ok(())
    }

    fn failed(&mut self, action: Action, e: &MirrorError) {
        let full_name = action.full_name().to_string();
        let delay = match self.failures.get(&full_name) {
            Some(f) if f.action == action => (f.delay * 2).min(MAX_BACKOFF),
            _ => INITIAL_BACKOFF,
        };
        let uid = match &action {
            Action::Create { static_pod, .. } | Action::Recreate { static_pod, .. } => {
                pod_uid(static_pod).to_string()
            }
            Action::Delete { mirror_uid, .. } | Action::Keep { mirror_uid, .. } => {
                mirror_uid.clone()
            }
        };
        tracing::warn!(
            pod = %full_name,
            uid = %uid,
            status = e.api_status().map(i64::from).unwrap_or(-1),
            retry_in = ?delay,
            "mirror pod not reconciled: {e}"
        );
        self.failures.insert(
            full_name,
            Failure {
                action,
                delay,
                retry_at: Instant::now() + delay,
            },
        );
    }
}

/// `namespace/name` → (namespace, name).
fn split_full_name(full_name: &str) -> (&str, &str) {
    full_name.split_once('/').unwrap_or(("default", full_name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn static_pod(name: &str, uid: &str, hash: &str) -> Arc<Pod> {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.to_string());
        pod.metadata.namespace = Some("kube-system".to_string());
        pod.metadata.uid = Some(uid.to_string());
        pod.metadata.resource_version = Some("7".to_string());
        pod.metadata.labels = Some(BTreeMap::from([("app".to_string(), name.to_string())]));
        pod.metadata.annotations = Some(BTreeMap::from([
            (CONFIG_SOURCE_ANNOTATION.to_string(), "file".to_string()),
            (CONFIG_HASH_ANNOTATION.to_string(), hash.to_string()),
            (
                "kubernetes.io/config.seen".to_string(),
                "2026-01-01T00:00:00Z".to_string(),
            ),
        ]));
        pod.spec = Some(Default::default());
        Arc::new(pod)
    }

    fn mirror(name: &str, uid: &str, hash: &str) -> Arc<Pod> {
        let mut pod = mirror_pod_for(&static_pod(name, "s", hash), "node1", "node-uid");
        pod.metadata.uid = Some(uid.to_string());
        Arc::new(pod)
    }

    #[test]
    fn mirror_pod_carries_the_hash_and_the_node_owner() {
        let s = static_pod("etcd-node1", "static-uid", "h1");
        let m = mirror_pod_for(&s, "node1", "node-uid-1");
        assert_eq!(m.metadata.uid, None);
        assert_eq!(m.metadata.resource_version, None);
        assert_eq!(m.metadata.name.as_deref(), Some("etcd-node1"));
        assert_eq!(m.metadata.namespace.as_deref(), Some("kube-system"));
        assert_eq!(m.metadata.labels, s.metadata.labels);
        let a = m.metadata.annotations.as_ref().unwrap();
        assert_eq!(a[CONFIG_MIRROR_ANNOTATION], "h1");
        assert_eq!(a[CONFIG_HASH_ANNOTATION], "h1");
        assert_eq!(a[CONFIG_SOURCE_ANNOTATION], "file");
        assert!(a.contains_key("kubernetes.io/config.seen"));
        assert_eq!(
            m.metadata.owner_references,
            Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: "node1".into(),
                uid: "node-uid-1".into(),
                controller: Some(true),
                block_owner_deletion: None,
            }])
        );
        assert_eq!(m.spec.as_ref().unwrap().node_name.as_deref(), Some("node1"));
        assert!(m.status.is_none());
        assert!(is_mirror_pod(&m));
        assert!(!is_mirror_pod(&s));
        assert!(is_mirror_pod_of(&m, &s));
        assert!(!is_mirror_pod_of(&m, &static_pod("etcd-node1", "x", "h2")));
        assert!(!is_mirror_pod_of(&m, &static_pod("other-node1", "x", "h1")));
        // The static pod is untouched.
        assert!(
            !s.metadata
                .annotations
                .as_ref()
                .unwrap()
                .contains_key(CONFIG_MIRROR_ANNOTATION)
        );
    }

    #[test]
    fn only_non_api_sources_are_static() {
        let mut p = (*static_pod("a", "u", "h")).clone();
        assert!(is_static_pod(&p));
        p.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(CONFIG_SOURCE_ANNOTATION.into(), "api".into());
        assert!(!is_static_pod(&p));
        p.metadata.annotations = None;
        assert!(!is_static_pod(&p));
    }

    #[test]
    fn plan_creates_missing_mirrors_and_keeps_current_ones() {
        let a = static_pod("a", "ua", "h1");
        let b = static_pod("b", "ub", "h2");
        let actions = plan(
            &[a.clone(), b.clone()],
            &[mirror("b", "mb", "h2")],
            &HashSet::new(),
        );
        assert_eq!(
            actions,
            [
                Action::Create {
                    full_name: "kube-system/a".into(),
                    static_pod: a,
                },
                Action::Keep {
                    full_name: "kube-system/b".into(),
                    static_uid: "ub".into(),
                    mirror_uid: "mb".into(),
                },
            ]
        );
    }

    #[test]
    fn plan_recreates_outdated_and_terminating_mirrors() {
        let a = static_pod("a", "ua", "new");
        let b = static_pod("b", "ub", "h");
        let mut deleting = (*mirror("b", "mb", "h")).clone();
        deleting.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        let actions = plan(
            &[a.clone(), b.clone()],
            &[mirror("a", "ma", "old"), Arc::new(deleting)],
            &HashSet::new(),
        );
        assert_eq!(
            actions,
            [
                Action::Recreate {
                    full_name: "kube-system/a".into(),
                    static_pod: a,
                    mirror_uid: "ma".into(),
                    why: Outdated::Hash,
                },
                Action::Recreate {
                    full_name: "kube-system/b".into(),
                    static_pod: b,
                    mirror_uid: "mb".into(),
                    why: Outdated::Deleting,
                },
            ]
        );
    }

    #[test]
    fn plan_deletes_orphans_but_not_while_their_pod_terminates() {
        let mirrors = [mirror("gone", "mg", "h"), mirror("stopping", "ms", "h")];
        let terminating = HashSet::from(["kube-system/stopping".to_string()]);
        assert_eq!(
            plan(&[], &mirrors, &terminating),
            [Action::Delete {
                full_name: "kube-system/gone".into(),
                mirror_uid: "mg".into(),
            }]
        );
        assert_eq!(plan(&[], &mirrors, &HashSet::new()).len(), 2);
    }

    #[test]
    fn plan_ignores_pods_that_are_not_mirrors_or_not_static() {
        let mut regular = (*mirror("x", "mx", "h")).clone();
        regular.metadata.annotations = None;
        let mut api_pod = (*static_pod("y", "uy", "h")).clone();
        api_pod
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(CONFIG_SOURCE_ANNOTATION.into(), "api".into());
        assert!(plan(&[Arc::new(api_pod)], &[Arc::new(regular)], &HashSet::new()).is_empty());
    }

    /// A client whose apiserver refuses every pod creation (403, as
    /// NodeRestriction does), counting the attempts.
    fn refusing_client(posts: Arc<std::sync::atomic::AtomicUsize>) -> ClientSource {
        let svc = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            if req.method() == http::Method::POST {
                posts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            let body = serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": "pods \"a\" is forbidden: node \"node1\" can not create pods that reference secrets",
                "reason": "Forbidden", "code": 403,
            });
            async move {
                http::Response::builder()
                    .status(403)
                    .header("content-type", "application/json")
                    .body(http_body_util::Full::new(bytes::Bytes::from(
                        body.to_string(),
                    )))
            }
        });
        let client = kube::Client::new(svc, "default");
        Arc::new(move || client.clone())
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_mirror_is_retried_with_backoff_and_at_once_after_an_edit() {
        let posts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = || posts.load(std::sync::atomic::Ordering::SeqCst);
        let (_uid_tx, uid_rx) = watch::channel(Some("node-uid".to_string()));
        let (statics_tx, statics_rx) = watch::channel(vec![static_pod("a", "ua", "h1")]);
        let (_mirrors_tx, mirrors_rx) = watch::channel(Vec::new());
        let reconciler = MirrorReconciler::new(
            refusing_client(posts.clone()),
            "node1".into(),
            uid_rx,
            StatusManager::with_sinks(vec![]),
        );
        let task = tokio::spawn(reconciler.run(statics_rx, mirrors_rx));
        // Ten minutes: 1 s doubling to 1 min gives 0, 1, 3, 7, 15, 31, 63,
        // then one a minute: 15 attempts, not a hot loop.
        tokio::time::sleep(Duration::from_secs(600)).await;
        let n = count();
        assert!((12..=16).contains(&n), "{n} attempts in 10 min");
        // A new version of the pod is tried at once, from 1 s again.
        statics_tx.send_replace(vec![static_pod("a", "ua", "h2")]);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(count(), n + 1);
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(count(), n + 2);
        task.abort();
    }

    #[test]
    fn full_names_split_into_namespace_and_name() {
        assert_eq!(split_full_name("ns/p"), ("ns", "p"));
        assert_eq!(split_full_name("p"), ("default", "p"));
    }
}
