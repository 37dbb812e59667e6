//! What the configMap, secret, downwardAPI and projected plugins share:
//! their directory (on tmpfs for secrets and projected volumes, as Go's
//! wrapped emptyDir with medium Memory), the FailedMount words of their
//! errors, and the atomic write of their payload.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use k8s_openapi::api::core::v1::Pod;

use super::super::atomic_writer::AtomicWriter;
use super::super::objects::MountError;
use super::super::ownership::{FsGroup, set_volume_ownership};
use super::super::payload::{Payload, PayloadError};
use super::super::{
    ObjectKind, VolumeError, describe, io_err, is_mount_point, mkdir_all, mount_tmpfs,
};
use crate::objects::ObjectError;
use crate::{pod_ref, pod_uid};

/// The directory of an object volume (on tmpfs for secrets and projected
/// volumes); its files come from the plugin's `set_up`.
pub(super) fn set_up_dir(
    uid: &str,
    dir: &Path,
    name: &str,
    kind: ObjectKind,
) -> Result<(), VolumeError> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(m) => {
            return Err(VolumeError::BadVolume {
                volume: name.to_string(),
                why: format!(
                    "{} exists and is {}",
                    dir.display(),
                    describe(m.file_type())
                ),
            });
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            // Open to every user, as Go's emptyDir wrapper makes it: the
            // files' own modes decide who reads them.
            mkdir_all(dir, 0o777)?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o777))
                .map_err(io_err("setting the mode of", dir))?;
        }
        Err(e) => return Err(io_err("inspecting", dir)(e)),
    }
    if kind.on_tmpfs() && !is_mount_point(dir).map_err(io_err("inspecting", dir))? {
        mount_tmpfs(dir, None).map_err(|e| VolumeError::BadVolume {
            volume: name.to_string(),
            why: format!("mounting tmpfs at {}: {e}", dir.display()),
        })?;
        tracing::debug!(uid = %uid, volume = name, "mounted tmpfs for a {kind:?} volume");
    }
    Ok(())
}

pub(super) fn fail(volume: &str, message: String, not_found: bool) -> MountError {
    MountError {
        volume: volume.to_string(),
        message,
        not_found,
    }
}

/// A payload's error in FailedMount words.
pub(super) fn from_payload(volume: &str, e: PayloadError) -> MountError {
    let not_found = matches!(e, PayloadError::NotFound { .. });
    // The volume is already named by MountError's own words.
    let text = e.to_string();
    let prefix = format!("volume {volume:?}: ");
    let text = text
        .strip_prefix(&prefix)
        .map_or(text.clone(), str::to_string);
    fail(volume, text, not_found)
}

/// An object's fetch error in FailedMount words.
pub(super) fn from_object(volume: &str, e: ObjectError) -> MountError {
    fail(volume, e.to_string(), e.is_not_found())
}

/// Writes the payload into the volume's directory with the atomic writer,
/// on the blocking pool; a refresh that changed something is logged.
pub(super) async fn write(
    pod: &Pod,
    volume: &str,
    dir: std::path::PathBuf,
    payload: Payload,
    refresh: bool,
) -> Result<(), MountError> {
    let context = format!("{}/{}", pod_ref(pod), volume);
    let fs_group = FsGroup::of(pod);
    let written = tokio::task::spawn_blocking(move || {
        // Go applies the fsGroup to the whole volume (not only the new
        // version), before the new version is published.
        let root = dir.clone();
        let set_perms = move |_: &Path| match fs_group {
            Some(g) => set_volume_ownership(&root, g, true),
            None => Ok(()),
        };
        AtomicWriter::new(dir, context)?.write(&payload, Some(&set_perms))
    })
    .await
    .map_err(|e| fail(volume, format!("writing the volume: {e}"), false))?
    .map_err(|e| fail(volume, e.to_string(), false))?;
    if written && refresh {
        tracing::info!(pod = %pod_ref(pod), uid = %pod_uid(pod), volume = %volume, "volume content updated");
    }
    Ok(())
}

/// A fetch's answer as a payload builder wants it: Some(object), None for
/// a missing one (its `optional` decides), or the error of a source that
/// could not answer.
pub(super) fn found<T>(
    r: Result<std::sync::Arc<T>, ObjectError>,
) -> Result<Option<std::sync::Arc<T>>, ObjectError> {
    match r {
        Ok(o) => Ok(Some(o)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}
