//! The files of configMap, secret, downwardAPI and projected volumes (the
//! `SetUp` of Go's configmap, secret, downwardapi and projected plugins,
//! and the volume manager's remount of them).
//!
//! [`ObjectVolumes::setup`] reads the objects and tokens a pod's volumes
//! need, builds each payload and writes it with the atomic writer, before
//! the sandbox starts. Afterwards the pod is tracked: whenever an object
//! changes (a watch in joined mode, the manifest directory standalone) and
//! every minute (tokens, labels), its volumes are written again, so an edit
//! shows in running containers within a second or two — the Go kubelet
//! takes its sync period plus its cache's TTL. A required object that
//! disappears from under a running pod keeps the last content, with a
//! warning; the pod is not disturbed. subPath mounts keep what they bound,
//! as in Go.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Volume};

use super::atomic_writer::AtomicWriter;
use super::payload::{self, FetchedInputs, Payload, PayloadError, VolumeOwnership};
use super::{ObjectKind, VolumeManager};
use crate::events::{EventType, ObjectRef, Recorder};
use crate::objects::{ObjectError, ObjectGetter};
use crate::token::TokenManager;
use crate::{pod_ref, pod_uid};

/// How often tracked volumes are written again without a change signal
/// (service account tokens and the downward API's labels and annotations).
const RESYNC: Duration = Duration::from_secs(60);

/// Why a volume's files could not be set up, in Go's FailedMount words.
#[derive(Debug, thiserror::Error)]
#[error("MountVolume.SetUp failed for volume \"{volume}\" : {message}")]
pub struct MountError {
    pub volume: String,
    pub message: String,
    /// The object is missing (not a transient failure).
    pub not_found: bool,
}

/// Which getter serves a pod: the apiserver's for pods from the apiserver,
/// the manifest directory's for static pods.
#[derive(Clone)]
pub struct PodObjects {
    pub api: Option<Arc<dyn ObjectGetter>>,
    pub local: Arc<dyn ObjectGetter>,
}

impl PodObjects {
    pub fn local_only(local: Arc<dyn ObjectGetter>) -> Self {
        PodObjects { api: None, local }
    }

    pub fn for_pod(&self, pod: &Pod) -> &dyn ObjectGetter {
        match (&self.api, crate::kubelet::is_api_pod(pod)) {
            (Some(api), true) => api.as_ref(),
            _ => self.local.as_ref(),
        }
    }
}

pub struct ObjectVolumes {
    volumes: Arc<VolumeManager>,
    objects: PodObjects,
    tokens: Option<Arc<TokenManager>>,
    /// The node's allocatable as quantities, for the downward API's
    /// resource limits left unset.
    node_allocatable: BTreeMap<String, String>,
    recorder: Recorder,
    /// Pods with object volumes, written again on changes.
    tracked: Mutex<HashMap<String, Arc<Pod>>>,
}

/// Whether the pod has volumes whose files berth writes.
pub fn has_object_volumes(pod: &Pod) -> bool {
    object_volumes(pod).next().is_some()
}

fn object_volumes(pod: &Pod) -> impl Iterator<Item = (&Volume, ObjectKind)> {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| {
            let kind = if v.config_map.is_some() {
                ObjectKind::ConfigMap
            } else if v.secret.is_some() {
                ObjectKind::Secret
            } else if v.downward_api.is_some() {
                ObjectKind::DownwardApi
            } else if v.projected.is_some() {
                ObjectKind::Projected
            } else {
                return None;
            };
            Some((v, kind))
        })
}

/// A fetch's answer as a payload builder wants it: Some(object), None for
/// a missing one (its `optional` decides), or the error of a source that
/// could not answer.
fn found<T>(r: Result<Arc<T>, ObjectError>) -> Result<Option<Arc<T>>, ObjectError> {
    match r {
        Ok(o) => Ok(Some(o)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

impl ObjectVolumes {
    pub fn new(
        volumes: Arc<VolumeManager>,
        objects: PodObjects,
        tokens: Option<Arc<TokenManager>>,
        node_allocatable: BTreeMap<String, String>,
        recorder: Recorder,
    ) -> Arc<Self> {
        Arc::new(ObjectVolumes {
            volumes,
            objects,
            tokens,
            node_allocatable,
            recorder,
            tracked: Mutex::default(),
        })
    }

    pub fn objects(&self) -> &PodObjects {
        &self.objects
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Pod>>> {
        self.tracked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tracks the pod; true when it was not tracked or its metadata or
    /// spec changed (labels for the downward API): its volumes need
    /// writing now.
    pub fn track(&self, pod: &Arc<Pod>) -> bool {
        if !has_object_volumes(pod) {
            return false;
        }
        match self.lock().insert(pod_uid(pod).to_string(), pod.clone()) {
            None => true,
            Some(old) => !Arc::ptr_eq(&old, pod) && old.as_ref() != pod.as_ref(),
        }
    }

    /// The pod is gone: no more writes, and its objects may be dropped.
    pub fn forget(&self, uid: &str) {
        if let Some(pod) = self.lock().remove(uid) {
            self.objects.for_pod(&pod).unregister_pod(&pod);
        }
        if let Some(t) = &self.tokens {
            t.remove_pod(uid);
        }
    }

    /// Writes every object volume of the pod (its directories must exist:
    /// [`VolumeManager::prepare`] makes them). The first failure is
    /// returned, and recorded as a FailedMount event.
    pub async fn setup(&self, pod: &Arc<Pod>) -> Result<(), MountError> {
        self.track(pod);
        let getter = self.objects.for_pod(pod);
        getter.register_pod(pod);
        for (volume, kind) in object_volumes(pod) {
            if let Err(e) = self.setup_volume(pod, getter, volume, kind, false).await {
                self.recorder.event(
                    &ObjectRef::pod(pod),
                    EventType::Warning,
                    "FailedMount",
                    e.to_string(),
                );
                return Err(e);
            }
        }
        Ok(())
    }

    async fn setup_volume(
        &self,
        pod: &Pod,
        getter: &dyn ObjectGetter,
        volume: &Volume,
        kind: ObjectKind,
        refresh: bool,
    ) -> Result<(), MountError> {
        let name = volume.name.clone();
        let fail = |message: String, not_found: bool| MountError {
            volume: name.clone(),
            message,
            not_found,
        };
        let from_payload = |e: PayloadError| {
            let not_found = matches!(e, PayloadError::NotFound { .. });
            // The volume is already named by MountError's own words.
            let text = e.to_string();
            let prefix = format!("volume {name:?}: ");
            let text = text
                .strip_prefix(&prefix)
                .map_or(text.clone(), str::to_string);
            fail(text, not_found)
        };
        let from_object = |e: ObjectError| fail(e.to_string(), e.is_not_found());
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let payload: Payload = match kind {
            ObjectKind::ConfigMap => {
                let Some(src) = &volume.config_map else {
                    return Ok(());
                };
                let cm = found(getter.get_config_map(namespace, &src.name).await)
                    .map_err(from_object)?;
                payload::config_map_payload(&name, src, cm.as_deref()).map_err(from_payload)?
            }
            ObjectKind::Secret => {
                let Some(src) = &volume.secret else {
                    return Ok(());
                };
                let secret_name = src.secret_name.as_deref().unwrap_or_default();
                let secret =
                    found(getter.get_secret(namespace, secret_name).await).map_err(from_object)?;
                payload::secret_payload(&name, src, secret.as_deref()).map_err(from_payload)?
            }
            ObjectKind::DownwardApi => {
                let Some(src) = &volume.downward_api else {
                    return Ok(());
                };
                payload::downward_api_payload(
                    &name,
                    src.items.as_deref().unwrap_or_default(),
                    src.default_mode,
                    pod,
                    &self.node_allocatable,
                )
                .map_err(from_payload)?
            }
            ObjectKind::Projected => {
                let Some(src) = &volume.projected else {
                    return Ok(());
                };
                let refs = payload::projected_references(src);
                let mut inputs = FetchedInputs {
                    namespace: namespace.to_string(),
                    ..Default::default()
                };
                for cm in refs.config_maps {
                    let r = getter.get_config_map(namespace, cm).await;
                    inputs.config_maps.insert(cm.to_string(), r);
                }
                for s in refs.secrets {
                    let r = getter.get_secret(namespace, s).await;
                    inputs.secrets.insert(s.to_string(), r);
                }
                for t in refs.tokens {
                    let token = match &self.tokens {
                        Some(tokens) => tokens
                            .token(
                                pod,
                                t.audience.as_deref().unwrap_or(""),
                                t.expiration_seconds,
                            )
                            .await
                            .map_err(|e| e.to_string()),
                        None => Err(
                            "service account tokens need an apiserver (berth runs standalone)"
                                .to_string(),
                        ),
                    };
                    inputs.tokens.insert(t.path.clone(), token);
                }
                let security = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
                let ownership = VolumeOwnership {
                    fs_user: None,
                    fs_group: security.and_then(|s| s.fs_group),
                };
                payload::projected_payload(
                    &name,
                    src,
                    pod,
                    &self.node_allocatable,
                    ownership,
                    &inputs,
                )
                .map_err(from_payload)?
            }
        };
        let dir = self.volumes.object_volume_path(pod_uid(pod), kind, &name);
        let context = format!("{}/{}", pod_ref(pod), name);
        let written = tokio::task::spawn_blocking(move || {
            AtomicWriter::new(dir, context)?.write(&payload, None)
        })
        .await
        .map_err(|e| fail(format!("writing the volume: {e}"), false))?
        .map_err(|e| fail(e.to_string(), false))?;
        if written && refresh {
            tracing::info!(pod = %pod_ref(pod), uid = %pod_uid(pod), volume = %name, "volume content updated");
        }
        Ok(())
    }

    /// Writes the tracked pods' volumes again whenever an object changes,
    /// and every minute. Never returns.
    pub async fn run_refresh(self: Arc<Self>) {
        let mut api_changes = self.objects.api.as_ref().and_then(|g| g.changes());
        let mut local_changes = self.objects.local.changes();
        let mut tick = tokio::time::interval(RESYNC);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                r = changed(&mut api_changes) => if !r { api_changes = None },
                r = changed(&mut local_changes) => if !r { local_changes = None },
                _ = tick.tick() => {}
            }
            let pods: Vec<Arc<Pod>> = self.lock().values().cloned().collect();
            for pod in pods {
                self.refresh(&pod).await;
            }
        }
    }

    async fn refresh(&self, pod: &Arc<Pod>) {
        let getter = self.objects.for_pod(pod);
        for (volume, kind) in object_volumes(pod) {
            let dir = self
                .volumes
                .object_volume_path(pod_uid(pod), kind, &volume.name);
            if !dir.is_dir() {
                // Not set up yet (or already removed): the pod's sync does it.
                continue;
            }
            match self.setup_volume(pod, getter, volume, kind, true).await {
                Ok(()) => {}
                Err(e) if e.not_found => {
                    tracing::warn!(pod = %pod_ref(pod), uid = %pod_uid(pod), volume = %volume.name, "{e}; the volume keeps its last content");
                }
                Err(e) => {
                    tracing::warn!(pod = %pod_ref(pod), uid = %pod_uid(pod), volume = %volume.name, "refreshing the volume: {e}");
                }
            }
        }
    }
}

/// Waits for a change on an optional receiver (never, without one); false
/// once its sender is gone.
async fn changed(rx: &mut Option<tokio::sync::watch::Receiver<u64>>) -> bool {
    match rx {
        Some(rx) => rx.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}
