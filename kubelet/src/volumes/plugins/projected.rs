//! projected volumes (Go's `pkg/volume/projected`): ConfigMaps, Secrets,
//! the downward API and service account tokens in one directory on tmpfs,
//! read-only, written again when any of them changes.

use std::path::Path;

use futures_util::future::BoxFuture;
use k8s_openapi::api::core::v1::{Pod, Volume};

use super::super::objects::MountError;
use super::super::ownership::{self, FsGroup};
use super::super::payload::{self, FetchedInputs, VolumeOwnership};
use super::super::{ObjectKind, VolumeError};
use super::{SetUpContext, VolumePlugin, object};

pub struct ProjectedPlugin;

impl VolumePlugin for ProjectedPlugin {
    fn name(&self) -> &'static str {
        "kubernetes.io/projected"
    }

    fn source(&self) -> &'static str {
        "projected"
    }

    fn can_support(&self, volume: &Volume) -> bool {
        volume.projected.is_some()
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
        object::set_up_dir(uid, &dir, &volume.name, ObjectKind::Projected)
    }

    fn set_up<'a>(
        &'a self,
        pod: &'a Pod,
        volume: &'a Volume,
        ctx: &'a SetUpContext<'a>,
    ) -> BoxFuture<'a, Result<(), MountError>> {
        Box::pin(async move {
            let Some(src) = &volume.projected else {
                return Ok(());
            };
            let name = volume.name.as_str();
            let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
            let refs = payload::projected_references(src);
            let mut inputs = FetchedInputs {
                namespace: namespace.to_string(),
                ..Default::default()
            };
            for cm in refs.config_maps {
                let r = ctx.getter.get_config_map(namespace, cm).await;
                inputs.config_maps.insert(cm.to_string(), r);
            }
            for s in refs.secrets {
                let r = ctx.getter.get_secret(namespace, s).await;
                inputs.secrets.insert(s.to_string(), r);
            }
            for t in refs.tokens {
                let token = match ctx.tokens {
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
                fs_user: ownership::fs_user(pod),
                fs_group: security.and_then(|s| s.fs_group),
            };
            let payload = payload::projected_payload(
                name,
                src,
                pod,
                ctx.node_allocatable,
                ownership,
                &inputs,
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
