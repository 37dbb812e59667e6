//! downwardAPI volumes (Go's `pkg/volume/downwardapi`): the pod's fields
//! and its containers' resources as files, read-only, written again when
//! its labels or annotations change.

use std::path::Path;

use futures_util::future::BoxFuture;
use k8s_openapi::api::core::v1::{Pod, Volume};

use super::super::objects::MountError;
use super::super::ownership::FsGroup;
use super::super::{ObjectKind, VolumeError, payload};
use super::{SetUpContext, VolumePlugin, object};

pub struct DownwardApiPlugin;

impl VolumePlugin for DownwardApiPlugin {
    fn name(&self) -> &'static str {
        "kubernetes.io/downward-api"
    }

    fn source(&self) -> &'static str {
        "downwardAPI"
    }

    fn can_support(&self, volume: &Volume) -> bool {
        volume.downward_api.is_some()
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
        object::set_up_dir(uid, &dir, &volume.name, ObjectKind::DownwardApi)
    }

    fn set_up<'a>(
        &'a self,
        pod: &'a Pod,
        volume: &'a Volume,
        ctx: &'a SetUpContext<'a>,
    ) -> BoxFuture<'a, Result<(), MountError>> {
        Box::pin(async move {
            let Some(src) = &volume.downward_api else {
                return Ok(());
            };
            let name = volume.name.as_str();
            let payload = payload::downward_api_payload(
                name,
                src.items.as_deref().unwrap_or_default(),
                src.default_mode,
                pod,
                ctx.node_allocatable,
            )
            .map_err(|e| object::from_payload(name, e))?;
            let dir = self.path(ctx.pod_dir, volume);
            object::write(pod, name, dir, payload, ctx.refresh).await
        })
    }

    fn refreshes(&self) -> bool {
        true
    }
}
