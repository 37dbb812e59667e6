//! configMap volumes (Go's `pkg/volume/configmap`): a ConfigMap's keys as
//! files, read-only, written again when the ConfigMap changes.

use std::path::Path;

use futures_util::future::BoxFuture;
use k8s_openapi::api::core::v1::{Pod, Volume};

use super::super::objects::MountError;
use super::super::ownership::FsGroup;
use super::super::{ObjectKind, VolumeError, payload};
use super::{SetUpContext, VolumePlugin, object};

pub struct ConfigMapPlugin;

impl VolumePlugin for ConfigMapPlugin {
    fn name(&self) -> &'static str {
        "kubernetes.io/configmap"
    }

    fn source(&self) -> &'static str {
        "configMap"
    }

    fn can_support(&self, volume: &Volume) -> bool {
        volume.config_map.is_some()
    }

    fn read_only(&self) -> bool {
        true
    }

    fn set_up_dir(
        &self,
        uid: &str,
        pod_dir: &Path,
        volume: &Volume,
        _fs_group: Option<FsGroup>,
    ) -> Result<(), VolumeError> {
        let dir = self.path(pod_dir, volume);
        object::set_up_dir(uid, &dir, &volume.name, ObjectKind::ConfigMap)
    }

    fn set_up<'a>(
        &'a self,
        pod: &'a Pod,
        volume: &'a Volume,
        ctx: &'a SetUpContext<'a>,
    ) -> BoxFuture<'a, Result<(), MountError>> {
        Box::pin(async move {
            let Some(src) = &volume.config_map else {
                return Ok(());
            };
            let name = volume.name.as_str();
            let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
            let cm = object::found(ctx.getter.get_config_map(namespace, &src.name).await)
                .map_err(|e| object::from_object(name, e))?;
            let payload = payload::config_map_payload(name, src, cm.as_deref())
                .map_err(|e| object::from_payload(name, e))?;
            let dir = self.path(ctx.pod_dir, volume);
            object::write(pod, name, dir, payload, ctx.refresh).await
        })
    }

    fn refreshes(&self) -> bool {
        true
    }
}
