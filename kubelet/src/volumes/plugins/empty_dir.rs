//! emptyDir volumes (Go's `pkg/volume/emptydir`): a directory open to
//! every user, or a tmpfs for medium Memory, sized by its sizeLimit.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use k8s_openapi::api::core::v1::Volume;

use super::super::ownership::{self, FsGroup};
use super::super::{
    VolumeError, describe, io_err, is_mount_point, mkdir_all, mount_tmpfs, quantity_bytes,
};
use super::{VolumePlugin, set_sources};

pub struct EmptyDirPlugin;

impl VolumePlugin for EmptyDirPlugin {
    fn name(&self) -> &'static str {
        "kubernetes.io/empty-dir"
    }

    fn source(&self) -> &'static str {
        "emptyDir"
    }

    fn can_support(&self, volume: &Volume) -> bool {
        // A volume without a source is an emptyDir (the API's defaulting).
        volume.empty_dir.is_some() || set_sources(volume).is_empty()
    }

    fn set_up_dir(
        &self,
        uid: &str,
        pod_dir: &Path,
        volume: &Volume,
        fs_group: Option<FsGroup>,
    ) -> Result<(), VolumeError> {
        let name = volume.name.as_str();
        let src = volume.empty_dir.as_ref();
        let dir = self.path(pod_dir, volume);
        let fail = |why: String| VolumeError::EmptyDir {
            volume: name.to_string(),
            path: dir.clone(),
            why,
        };
        let medium = src.and_then(|s| s.medium.as_deref()).unwrap_or("");
        if !matches!(medium, "" | "Memory") {
            return Err(fail(format!(
                "medium {medium:?} is not supported (only \"\" and \"Memory\")"
            )));
        }
        let size = match src.and_then(|s| s.size_limit.as_ref()) {
            Some(q) => Some(
                quantity_bytes(&q.0)
                    .ok_or_else(|| fail(format!("sizeLimit {:?} is not a valid quantity", q.0)))?,
            ),
            None => None,
        };

        // The fsGroup is applied once, when the volume is made (Go marks a
        // set-up emptyDir ready and does not walk it again); what containers
        // create later inherits the group through the setgid bit.
        let mut created = false;
        match fs::symlink_metadata(&dir) {
            Ok(m) if !m.is_dir() => {
                return Err(fail(format!("exists and is {}", describe(m.file_type()))));
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                mkdir_all(&dir, 0o777)?;
                created = true;
            }
            Err(e) => return Err(io_err("inspecting", &dir)(e)),
        }
        let mounted = is_mount_point(&dir).map_err(io_err("inspecting", &dir))?;
        if medium == "Memory" {
            if !mounted {
                mount_tmpfs(&dir, size).map_err(|e| fail(format!("mounting tmpfs: {e}")))?;
                tracing::debug!(uid = %uid, volume = name, ?size, "mounted tmpfs for emptyDir");
                // The tmpfs root keeps its own mode (1777), as in the Go
                // kubelet, plus the fsGroup's bits.
                apply_fs_group(&dir, fs_group).map_err(|e| fail(e.to_string()))?;
            }
            return Ok(());
        }
        // Go's setupDir: 0777 whatever the umask.
        let mode = fs::symlink_metadata(&dir)
            .map_err(io_err("inspecting", &dir))?
            .mode()
            & 0o7777;
        if created || mode & 0o777 != 0o777 {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o777 | (mode & 0o7000)))
                .map_err(io_err("setting the mode of", &dir))?;
        }
        if created {
            apply_fs_group(&dir, fs_group).map_err(|e| fail(e.to_string()))?;
        }
        Ok(())
    }
}

fn apply_fs_group(dir: &Path, fs_group: Option<FsGroup>) -> Result<(), String> {
    match fs_group {
        Some(g) => ownership::set_volume_ownership(dir, g, false)
            .map_err(|e| format!("applying fsGroup {}: {e}", g.gid)),
        None => Ok(()),
    }
}
