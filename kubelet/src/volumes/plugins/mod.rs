//! Volume plugins (Go's `pkg/volume`: a `VolumePlugin` per kind of volume,
//! its `Mounter`'s `SetUp`, and the `VolumePluginMgr` that finds the one
//! plugin for a volume).
//!
//! A plugin sets a volume up in two steps, as the Go plugins that wrap an
//! emptyDir do: [`VolumePlugin::set_up_dir`] makes what containers
//! bind-mount (directories, tmpfs, hostPath type checks; blocking, run by
//! [`VolumeManager::prepare`](super::VolumeManager::prepare) on the blocking
//! pool before the sandbox, and again before each container), then
//! [`VolumePlugin::set_up`] fills it (the files of configMap, secret,
//! downwardAPI and projected volumes; asynchronous, run by
//! [`ObjectVolumes`](super::objects::ObjectVolumes) before the sandbox and
//! again by its refresh for the plugins that [`refresh`](VolumePlugin::refreshes)).

mod config_map;
mod downward_api;
mod empty_dir;
mod host_path;
mod object;
mod projected;
mod secret;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use futures_util::future::BoxFuture;
use k8s_openapi::api::core::v1::{Pod, Volume};

pub use config_map::ConfigMapPlugin;
pub use downward_api::DownwardApiPlugin;
pub use empty_dir::EmptyDirPlugin;
pub use host_path::HostPathPlugin;
pub use projected::ProjectedPlugin;
pub use secret::SecretPlugin;

use super::VolumeError;
use super::objects::MountError;
use super::ownership::FsGroup;
use crate::objects::ObjectGetter;
use crate::token::TokenManager;

/// What the asynchronous [`VolumePlugin::set_up`] may need besides the pod.
pub struct SetUpContext<'a> {
    /// `<root>/pods/<uid>`, under which the plugins keep their volumes.
    pub pod_dir: &'a Path,
    /// Where the pod's ConfigMaps and Secrets come from.
    pub getter: &'a dyn ObjectGetter,
    /// Service account tokens (None standalone).
    pub tokens: Option<&'a TokenManager>,
    /// The node's allocatable as quantities, for the downward API's
    /// resource limits left unset.
    pub node_allocatable: &'a BTreeMap<String, String>,
    /// A refresh of a volume already set up (a change is logged).
    pub refresh: bool,
}

/// One kind of volume (Go's `VolumePlugin` and its `Mounter`).
pub trait VolumePlugin: Send + Sync {
    /// The plugin's name as Go names it ("kubernetes.io/empty-dir").
    fn name(&self) -> &'static str;

    /// The volume source the plugin handles, by its API field name
    /// ("emptyDir"), for the messages about volumes with several sources.
    fn source(&self) -> &'static str;

    /// Whether the volume is of this plugin's kind.
    fn can_support(&self, volume: &Volume) -> bool;

    /// Where the volume's content is on the host (what containers
    /// bind-mount): by default `<pod dir>/volumes/<plugin>/<volume>`, the
    /// plugin's name escaped as Go escapes it (`kubernetes.io~empty-dir`).
    fn path(&self, pod_dir: &Path, volume: &Volume) -> PathBuf {
        pod_dir
            .join("volumes")
            .join(self.name().replace('/', "~"))
            .join(&volume.name)
    }

    /// Whether containers must mount it read-only.
    fn read_only(&self) -> bool {
        false
    }

    /// Makes what containers mount (directories, tmpfs, type checks);
    /// idempotent and blocking. `pod_dir` exists. `fs_group` is the pod's,
    /// for the plugins whose directory takes it when created (emptyDir).
    fn set_up_dir(
        &self,
        uid: &str,
        pod_dir: &Path,
        volume: &Volume,
        _fs_group: Option<FsGroup>,
    ) -> Result<(), VolumeError>;

    /// Fills the volume set up by [`set_up_dir`](Self::set_up_dir) (its
    /// files); idempotent, blocking work on the blocking pool. Nothing to
    /// do by default.
    fn set_up<'a>(
        &'a self,
        _pod: &'a Pod,
        _volume: &'a Volume,
        _ctx: &'a SetUpContext<'a>,
    ) -> BoxFuture<'a, Result<(), MountError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Whether the plugin's content follows objects (its
    /// [`set_up`](Self::set_up) is run again by the refresh).
    fn refreshes(&self) -> bool {
        false
    }
}

impl fmt::Debug for dyn VolumePlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The plugins berth has (Go's `VolumePluginMgr`).
pub struct VolumePluginMgr {
    plugins: Vec<Arc<dyn VolumePlugin>>,
}

static BUILTIN: LazyLock<Arc<VolumePluginMgr>> = LazyLock::new(|| {
    Arc::new(VolumePluginMgr::new(vec![
        Arc::new(HostPathPlugin),
        Arc::new(EmptyDirPlugin),
        Arc::new(ConfigMapPlugin),
        Arc::new(SecretPlugin),
        Arc::new(DownwardApiPlugin),
        Arc::new(ProjectedPlugin),
    ]))
});

impl fmt::Debug for VolumePluginMgr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.plugins).finish()
    }
}

impl VolumePluginMgr {
    /// Plugins asked in this order; the first that supports a volume is
    /// its plugin.
    pub fn new(plugins: Vec<Arc<dyn VolumePlugin>>) -> Self {
        VolumePluginMgr { plugins }
    }

    /// emptyDir, hostPath, configMap, secret, downwardAPI and projected.
    pub fn builtin() -> Arc<VolumePluginMgr> {
        BUILTIN.clone()
    }

    pub fn plugins(&self) -> &[Arc<dyn VolumePlugin>] {
        &self.plugins
    }

    /// The plugin of a volume; an error naming the volume when it has
    /// several sources, or none berth supports.
    pub fn find(&self, volume: &Volume) -> Result<&Arc<dyn VolumePlugin>, VolumeError> {
        if let Some(plugin) = self.plugins.iter().find(|p| p.can_support(volume)) {
            only_source(volume, plugin.source())?;
            return Ok(plugin);
        }
        let kind = set_sources(volume).into_iter().next().unwrap_or_default();
        let why = match kind.as_str() {
            "persistentVolumeClaim" => "persistent volumes need a volume plugin berth doesn't have",
            _ => {
                "berth supports emptyDir, hostPath, configMap, secret, downwardAPI and projected volumes"
            }
        };
        Err(VolumeError::Unsupported {
            volume: volume.name.clone(),
            kind,
            why,
        })
    }

    /// The plugin of a volume whose content follows objects, if it is one
    /// (not checked for other sources: [`find`](Self::find) refuses those
    /// before the sandbox).
    pub fn find_refreshing(&self, volume: &Volume) -> Option<&Arc<dyn VolumePlugin>> {
        self.plugins
            .iter()
            .find(|p| p.refreshes() && p.can_support(volume))
    }
}

/// The source fields set on a volume, by their API names.
fn set_sources(v: &Volume) -> Vec<String> {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::Object(m)) => m.keys().filter(|k| *k != "name").cloned().collect(),
        _ => Vec::new(),
    }
}

fn only_source(v: &Volume, kind: &str) -> Result<(), VolumeError> {
    let others: Vec<String> = set_sources(v).into_iter().filter(|k| k != kind).collect();
    if others.is_empty() {
        Ok(())
    } else {
        Err(VolumeError::BadVolume {
            volume: v.name.clone(),
            why: format!(
                "has more than one source ({kind} and {})",
                others.join(", ")
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(v: serde_json::Value) -> Volume {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn each_source_finds_its_plugin() {
        let mgr = VolumePluginMgr::builtin();
        for (v, name, read_only, refreshes) in [
            (
                serde_json::json!({"name": "v"}),
                "kubernetes.io/empty-dir",
                false,
                false,
            ),
            (
                serde_json::json!({"name": "v", "emptyDir": {}}),
                "kubernetes.io/empty-dir",
                false,
                false,
            ),
            (
                serde_json::json!({"name": "v", "hostPath": {"path": "/x"}}),
                "kubernetes.io/host-path",
                false,
                false,
            ),
            (
                serde_json::json!({"name": "v", "configMap": {"name": "c"}}),
                "kubernetes.io/configmap",
                true,
                true,
            ),
            (
                serde_json::json!({"name": "v", "secret": {"secretName": "s"}}),
                "kubernetes.io/secret",
                true,
                true,
            ),
            (
                serde_json::json!({"name": "v", "downwardAPI": {}}),
                "kubernetes.io/downward-api",
                true,
                true,
            ),
            (
                serde_json::json!({"name": "v", "projected": {}}),
                "kubernetes.io/projected",
                true,
                true,
            ),
        ] {
            let v = volume(v);
            let p = mgr.find(&v).unwrap();
            assert_eq!(p.name(), name);
            assert_eq!(p.read_only(), read_only, "{name}");
            assert_eq!(p.refreshes(), refreshes, "{name}");
            assert_eq!(mgr.find_refreshing(&v).is_some(), refreshes, "{name}");
        }
    }

    #[test]
    fn object_plugins_keep_their_volumes_where_object_volume_path_says() {
        let mgr = VolumePluginMgr::builtin();
        let vm = super::super::VolumeManager::new(PathBuf::from("/r"));
        for (v, kind) in [
            (
                serde_json::json!({"name": "v", "configMap": {}}),
                super::super::ObjectKind::ConfigMap,
            ),
            (
                serde_json::json!({"name": "v", "secret": {}}),
                super::super::ObjectKind::Secret,
            ),
            (
                serde_json::json!({"name": "v", "downwardAPI": {}}),
                super::super::ObjectKind::DownwardApi,
            ),
            (
                serde_json::json!({"name": "v", "projected": {}}),
                super::super::ObjectKind::Projected,
            ),
        ] {
            let v = volume(v);
            let p = mgr.find(&v).unwrap();
            assert_eq!(
                p.path(&vm.pod_dir("u"), &v),
                vm.object_volume_path("u", kind, "v")
            );
        }
        let v = volume(serde_json::json!({"name": "v", "hostPath": {"path": "/srv/x"}}));
        assert_eq!(
            mgr.find(&v).unwrap().path(Path::new("/r/pods/u"), &v),
            Path::new("/srv/x")
        );
        let v = volume(serde_json::json!({"name": "v"}));
        assert_eq!(
            mgr.find(&v).unwrap().path(Path::new("/r/pods/u"), &v),
            Path::new("/r/pods/u/volumes/kubernetes.io~empty-dir/v")
        );
    }

    #[test]
    fn none_or_several_sources_name_the_volume() {
        let mgr = VolumePluginMgr::builtin();
        let e = mgr
            .find(&volume(
                serde_json::json!({"name": "a", "configMap": {}, "secret": {}}),
            ))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "volume \"a\": has more than one source (configMap and secret)"
        );
        let e = mgr
            .find(&volume(
                serde_json::json!({"name": "b", "nfs": {"server": "s", "path": "/p"}}),
            ))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("volume \"b\": nfs volumes are not supported: "),
            "{e}"
        );
    }
}
