//! The files of configMap, secret, downwardAPI and projected volumes (the
//! volume manager's mount and remount of the volumes whose
//! [`VolumePlugin`] [refreshes](VolumePlugin::refreshes)).
//!
//! [`ObjectVolumes::setup`] has each such volume's plugin read the objects
//! and tokens it needs, build its payload and write it with the atomic
//! writer, before the sandbox starts. Afterwards the pod is tracked: whenever an object
//! changes (a watch in joined mode, the manifest directory standalone),
//! when one of its tokens is due for refresh, and every minute (labels,
//! annotations), its volumes are written again, so an edit
//! shows in running containers within a second or two — the Go kubelet
//! takes its sync period plus its cache's TTL. A required object that
//! disappears from under a running pod keeps the last content, with a
//! warning; the pod is not disturbed. subPath mounts keep what they bound,
//! as in Go.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{Pod, Volume};

use super::VolumeManager;
use super::plugins::{SetUpContext, VolumePlugin, VolumePluginMgr};
use crate::events::{EventType, ObjectRef, Recorder};
use crate::objects::ObjectGetter;
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
    object_volumes(&VolumePluginMgr::builtin(), pod)
        .next()
        .is_some()
}

/// The pod's volumes whose plugin writes their files, with the plugin.
fn object_volumes<'a>(
    plugins: &'a VolumePluginMgr,
    pod: &'a Pod,
) -> impl Iterator<Item = (&'a Volume, &'a Arc<dyn VolumePlugin>)> {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| plugins.find_refreshing(v).map(|p| (v, p)))
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
        if object_volumes(self.volumes.plugins(), pod).next().is_none() {
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
        for (volume, plugin) in object_volumes(self.volumes.plugins(), pod) {
            if let Err(e) = self.setup_volume(pod, getter, volume, plugin, false).await {
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
        plugin: &Arc<dyn VolumePlugin>,
        refresh: bool,
    ) -> Result<(), MountError> {
        let pod_dir = self.volumes.pod_dir(pod_uid(pod));
        let ctx = SetUpContext {
            pod_dir: &pod_dir,
            getter,
            tokens: self.tokens.as_deref(),
            node_allocatable: &self.node_allocatable,
            refresh,
        };
        plugin.set_up(pod, volume, &ctx).await
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
            // A token due for refresh is written when due (Go waits for the
            // pod's next sync, up to a minute and a half later); one whose
            // refresh failed is tried again after TOKEN_RETRY.
            let token_due = self
                .tokens
                .as_ref()
                .and_then(|t| t.next_refresh())
                .map(|at| at.duration_since(SystemTime::now()).unwrap_or(TOKEN_RETRY));
            let only = tokio::select! {
                r = changed(&mut api_changes) => { if !r { api_changes = None } None },
                r = changed(&mut local_changes) => { if !r { local_changes = None } None },
                _ = tick.tick() => None,
                () = sleep_for(token_due) => {
                    self.tokens.as_ref().map(|t| t.due_pods(SystemTime::now()))
                }
            };
            let pods: Vec<Arc<Pod>> = self
                .lock()
                .values()
                .filter(|p| only.as_ref().is_none_or(|uids| uids.contains(pod_uid(p))))
                .cloned()
                .collect();
            for pod in pods {
                self.refresh(&pod).await;
            }
        }
    }

    async fn refresh(&self, pod: &Arc<Pod>) {
        let getter = self.objects.for_pod(pod);
        let pod_dir = self.volumes.pod_dir(pod_uid(pod));
        for (volume, plugin) in object_volumes(self.volumes.plugins(), pod) {
            if !plugin.path(&pod_dir, volume).is_dir() {
                // Not set up yet (or already removed): the pod's sync does it.
                continue;
            }
            match self.setup_volume(pod, getter, volume, plugin, true).await {
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

/// How long a token whose refresh failed waits for the next try.
const TOKEN_RETRY: Duration = Duration::from_secs(10);

/// Sleeps for `d`, or forever without it.
async fn sleep_for(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
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
