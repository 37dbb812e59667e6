//! The apiserver's ConfigMaps and Secrets (the Go kubelet's watch-based
//! `util/manager`): a watch of each object the node's pods reference, by
//! name, started when the first pod referencing it registers and stopped
//! when the last one goes. The Node authorizer lets a node read exactly
//! these objects, one at a time, so no list of a whole namespace is needed.
//!
//! A read waits for its watch's first answer (a few seconds at most) and is
//! then served from memory; every change bumps [`ObjectGetter::changes`] so
//! mounted volumes are refreshed at once, not on a sync period.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::{ObjectError, ObjectGetter};
use crate::cluster::WatchSource;
use crate::pod_uid;

/// How long a read waits for a watch's first answer.
const SYNC_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    ConfigMap,
    Secret,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::ConfigMap => "configmap",
            Kind::Secret => "secret",
        }
    }
}

type Key = (Kind, String, String);

/// What a watch last knew: nothing yet, the object, or that it is absent.
#[derive(Clone, Debug)]
enum Known {
    Syncing,
    Present(Stored),
    Absent,
    Failed(String),
}

#[derive(Clone, Debug)]
enum Stored {
    ConfigMap(Arc<ConfigMap>),
    Secret(Arc<Secret>),
}

struct Watched {
    pods: HashSet<String>,
    known: watch::Sender<Known>,
    task: tokio::task::AbortHandle,
}

#[derive(Default)]
struct State {
    objects: HashMap<Key, Watched>,
    /// Pod UID → the objects it registered.
    pods: HashMap<String, Vec<Key>>,
}

/// The ConfigMaps and Secrets of the node's pods, from the apiserver.
pub struct ApiObjects {
    client: watch::Receiver<Option<WatchSource>>,
    state: Mutex<State>,
    changes: watch::Sender<u64>,
}

/// The ConfigMaps and Secrets a pod reads: volumes (also inside projected
/// volumes), env and envFrom, and image pull secrets.
pub fn pod_references(pod: &Pod) -> Vec<(Kind, String)> {
    let mut out: Vec<(Kind, String)> = Vec::new();
    let mut add = |kind, name: &str| {
        if !name.is_empty() && !out.iter().any(|(k, n)| *k == kind && n == name) {
            out.push((kind, name.to_string()));
        }
    };
    let Some(spec) = &pod.spec else {
        return out;
    };
    for s in spec.image_pull_secrets.iter().flatten() {
        add(Kind::Secret, &s.name);
    }
    for v in spec.volumes.iter().flatten() {
        if let Some(cm) = &v.config_map {
            add(Kind::ConfigMap, &cm.name);
        }
        if let Some(s) = &v.secret {
            add(Kind::Secret, s.secret_name.as_deref().unwrap_or_default());
        }
        for src in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(cm) = &src.config_map {
                add(Kind::ConfigMap, &cm.name);
            }
            if let Some(s) = &src.secret {
                add(Kind::Secret, &s.name);
            }
        }
    }
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter());
    for c in containers {
        for e in c.env_from.iter().flatten() {
            if let Some(cm) = &e.config_map_ref {
                add(Kind::ConfigMap, &cm.name);
            }
            if let Some(s) = &e.secret_ref {
                add(Kind::Secret, &s.name);
            }
        }
        for e in c.env.iter().flatten() {
            let Some(from) = &e.value_from else { continue };
            if let Some(cm) = &from.config_map_key_ref {
                add(Kind::ConfigMap, &cm.name);
            }
            if let Some(s) = &from.secret_key_ref {
                add(Kind::Secret, &s.name);
            }
        }
    }
    out
}

impl ApiObjects {
    /// Watches start once `client` holds a client (the credentials work).
    pub fn new(client: watch::Receiver<Option<WatchSource>>) -> Arc<Self> {
        Arc::new(ApiObjects {
            client,
            state: Mutex::default(),
            changes: watch::channel(0).0,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many objects are watched (for tests and benchmarks).
    pub fn watched(&self) -> usize {
        self.lock().objects.len()
    }

    /// Starts (or joins) the watch of one object for `pod_uid`.
    fn watch_for(&self, state: &mut State, key: &Key, pod_uid: &str) -> watch::Receiver<Known> {
        if let Some(w) = state.objects.get_mut(key) {
            w.pods.insert(pod_uid.to_string());
            return w.known.subscribe();
        }
        let (known, rx) = watch::channel(Known::Syncing);
        let task = tokio::spawn(run_watch(
            self.client.clone(),
            key.clone(),
            known.clone(),
            self.changes.clone(),
        ))
        .abort_handle();
        state.objects.insert(
            key.clone(),
            Watched {
                pods: HashSet::from([pod_uid.to_string()]),
                known,
                task,
            },
        );
        rx
    }

    async fn get(&self, kind: Kind, namespace: &str, name: &str) -> Result<Stored, ObjectError> {
        let key = (kind, namespace.to_string(), name.to_string());
        let mut rx = {
            let mut state = self.lock();
            match state.objects.get(&key) {
                Some(w) => w.known.subscribe(),
                // Read without a registered pod: watch it for nobody; it
                // goes when a pod's registration ends (or stays, cheaply).
                None => self.watch_for(&mut state, &key, ""),
            }
        };
        let unavailable = |message: String| ObjectError::Unavailable {
            kind: kind.name(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            message,
        };
        let known =
            tokio::time::timeout(SYNC_TIMEOUT, rx.wait_for(|k| !matches!(k, Known::Syncing)))
                .await
                .map_err(|_| unavailable(format!("not synced within {SYNC_TIMEOUT:?}")))?
                .map_err(|_| unavailable("the watch stopped".into()))?
                .clone();
        match known {
            Known::Present(s) => Ok(s),
            Known::Absent => Err(ObjectError::NotFound {
                kind: kind.name(),
                namespace: namespace.to_string(),
                name: name.to_string(),
            }),
            Known::Failed(m) => Err(unavailable(m)),
            Known::Syncing => Err(unavailable("not synced".into())),
        }
    }
}

impl ObjectGetter for ApiObjects {
    fn get_config_map<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Arc<ConfigMap>, ObjectError>> {
        Box::pin(async move {
            match self.get(Kind::ConfigMap, namespace, name).await? {
                Stored::ConfigMap(c) => Ok(c),
                Stored::Secret(_) => Err(ObjectError::Unavailable {
                    kind: "configmap",
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    message: "watched as another kind".into(),
                }),
            }
        })
    }

    fn get_secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Arc<Secret>, ObjectError>> {
        Box::pin(async move {
            match self.get(Kind::Secret, namespace, name).await? {
                Stored::Secret(s) => Ok(s),
                Stored::ConfigMap(_) => Err(ObjectError::Unavailable {
                    kind: "secret",
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    message: "watched as another kind".into(),
                }),
            }
        })
    }

    fn register_pod(&self, pod: &Pod) {
        let uid = pod_uid(pod).to_string();
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let keys: Vec<Key> = pod_references(pod)
            .into_iter()
            .map(|(k, n)| (k, namespace.clone(), n))
            .collect();
        let mut state = self.lock();
        let old = state
            .pods
            .insert(uid.clone(), keys.clone())
            .unwrap_or_default();
        for key in &keys {
            self.watch_for(&mut state, key, &uid);
        }
        for key in old.iter().filter(|k| !keys.contains(k)) {
            release(&mut state, key, &uid);
        }
    }

    fn unregister_pod(&self, pod: &Pod) {
        let uid = pod_uid(pod);
        let mut state = self.lock();
        for key in state.pods.remove(uid).unwrap_or_default() {
            release(&mut state, &key, uid);
        }
    }

    fn changes(&self) -> Option<watch::Receiver<u64>> {
        Some(self.changes.subscribe())
    }
}

/// `pod_uid` no longer reads `key`; its watch stops when nobody does.
fn release(state: &mut State, key: &Key, pod_uid: &str) {
    let Some(w) = state.objects.get_mut(key) else {
        return;
    };
    w.pods.remove(pod_uid);
    w.pods.remove("");
    if w.pods.is_empty() {
        w.task.abort();
        state.objects.remove(key);
    }
}

/// Keeps `known` current for one object, for ever (until aborted): a watch
/// by name, re-listed with a fresh client after a failure.
async fn run_watch(
    mut client: watch::Receiver<Option<WatchSource>>,
    key: Key,
    known: watch::Sender<Known>,
    changes: watch::Sender<u64>,
) {
    let Ok(source) = client.wait_for(Option::is_some).await.map(|c| c.clone()) else {
        return;
    };
    let Some(source) = source else { return };
    let (kind, namespace, name) = key;
    match kind {
        Kind::ConfigMap => {
            watch_one::<ConfigMap>(
                source,
                &namespace,
                &name,
                &known,
                &changes,
                Stored::ConfigMap,
            )
            .await
        }
        Kind::Secret => {
            watch_one::<Secret>(source, &namespace, &name, &known, &changes, Stored::Secret).await
        }
    }
}

async fn watch_one<K>(
    source: WatchSource,
    namespace: &str,
    name: &str,
    known: &watch::Sender<Known>,
    changes: &watch::Sender<u64>,
    wrap: fn(Arc<K>) -> Stored,
) where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + 'static,
    K::DynamicType: Default,
{
    let mut failures = 0u32;
    loop {
        // Held for as long as this watch runs: its place on a connection.
        let watch_client = source();
        let api: Api<K> = Api::namespaced(watch_client.client.clone(), namespace);
        let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let stream = watcher::watcher(api, cfg);
        futures_util::pin_mut!(stream);
        let mut listed: Option<Arc<K>> = None;
        while let Some(item) = stream.next().await {
            let next = match item {
                Ok(Event::Init) => {
                    listed = None;
                    continue;
                }
                Ok(Event::InitApply(o)) => {
                    listed = Some(Arc::new(o));
                    continue;
                }
                Ok(Event::InitDone) => match listed.take() {
                    Some(o) => Known::Present(wrap(o)),
                    None => Known::Absent,
                },
                Ok(Event::Apply(o)) => Known::Present(wrap(Arc::new(o))),
                Ok(Event::Delete(_)) => Known::Absent,
                Err(e) => {
                    failures += 1;
                    let message = e.to_string();
                    tracing::debug!(
                        namespace,
                        name,
                        failures,
                        "watching a pod's object: {message}"
                    );
                    // A new pod's objects are often refused for a moment,
                    // until the Node authorizer has seen the pod bound
                    // here: a read waiting for its first answer gets the
                    // error only when it persists. A known object stays
                    // known while the watch recovers.
                    if failures >= 3 {
                        known.send_if_modified(|k| match k {
                            Known::Syncing => {
                                *k = Known::Failed(message);
                                true
                            }
                            _ => false,
                        });
                    }
                    break;
                }
            };
            failures = 0;
            known.send_replace(next);
            changes.send_modify(|n| *n = n.wrapping_add(1));
        }
        let pause = Duration::from_millis(50) * 2u32.saturating_pow(failures.min(10));
        tokio::time::sleep(pause.min(Duration::from_secs(30))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_cover_volumes_env_envfrom_and_pull_secrets() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "uid": "u"},
            "spec": {
                "imagePullSecrets": [{"name": "pull"}],
                "volumes": [
                    {"name": "a", "configMap": {"name": "cm1"}},
                    {"name": "b", "secret": {"secretName": "s1"}},
                    {"name": "c", "projected": {"sources": [
                        {"configMap": {"name": "kube-root-ca.crt"}},
                        {"serviceAccountToken": {"path": "token"}}]}}
                ],
                "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "s2"}}]}],
                "containers": [{"name": "c", "env": [
                    {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm1", "key": "k"}}},
                    {"name": "Y", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "k"}}}]}]
            }
        }))
        .unwrap();
        let refs = pod_references(&pod);
        let names: Vec<(Kind, &str)> = refs.iter().map(|(k, n)| (*k, n.as_str())).collect();
        assert_eq!(
            names,
            [
                (Kind::Secret, "pull"),
                (Kind::ConfigMap, "cm1"),
                (Kind::Secret, "s1"),
                (Kind::ConfigMap, "kube-root-ca.crt"),
                (Kind::Secret, "s2"),
                (Kind::Secret, "s3"),
            ]
        );
    }
}
