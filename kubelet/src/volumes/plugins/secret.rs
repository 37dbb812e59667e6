//! secret volumes (Go's `pkg/volume/secret`): a Secret's keys as files on
//! tmpfs, read-only, written again when the Secret changes.

use std::path::Path;

use futures_util::future::BoxFuture;
use k8s_openapi::api::core::v1::{Pod, Volume};

use super::super::objects::MountError;
use super::super::ownership::FsGroup;
use super::super::{ObjectKind, VolumeError, payload};
use super::{SetUpContext, VolumePlugin, object};

pub struct SecretPlugin;

impl VolumePlugin for SecretPlugin {
    fn name(&self) -> &'static str {
        "kubernetes.io/secret"
    }

    fn source(&self) -> &'static str {
        "secret"
    }

    fn can_support(&self, volume: &Volume) -> bool {
        volume.secret.is_some()
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
        object::set_up_dir(uid, &dir, &volume.name, ObjectKind::Secret)
    }

    fn set_up<'a>(
        &'a self,
        pod: &'a Pod,
        volume: &'a Volume,
        ctx: &'a SetUpContext<'a>,
    ) -> BoxFuture<'a, Result<(), MountError>> {
        Box::pin(async move {
            let Some(src) = &volume.secret else {
                return Ok(());
            };
            let name = volume.name.as_str();
            let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
            let secret_name = src.secret_name.as_deref().unwrap_or_default();
            let secret = object::found(ctx.getter.get_secret(namespace, secret_name).await)
                .map_err(|e| object::from_object(name, e))?;
            let payload = payload::secret_payload(name, src, secret.as_deref())
                .map_err(|e| object::from_payload(name, e))?;
            let dir = self.path(ctx.pod_dir, volume);
            object::write(pod, name, dir, payload, ctx.refresh).await
        })
    }

    fn refreshes(&self) -> bool {
        true
    }
}
