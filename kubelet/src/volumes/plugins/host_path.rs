//! hostPath volumes (Go's `pkg/volume/hostpath`): a path of the node,
//! checked against the volume's type, created for the `…OrCreate` types.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{HostPathVolumeSource, Volume};

use super::super::ownership::FsGroup;
use super::super::{VolumeError, describe};
use super::VolumePlugin;

pub struct HostPathPlugin;

impl VolumePlugin for HostPathPlugin {
    fn name(&self) -> &'static str {
        "kubernetes.io/host-path"
    }

    fn source(&self) -> &'static str {
        "hostPath"
    }

    fn can_support(&self, volume: &Volume) -> bool {
        volume.host_path.is_some()
    }

    fn path(&self, _pod_dir: &Path, volume: &Volume) -> PathBuf {
        volume
            .host_path
            .as_ref()
            .map(|h| PathBuf::from(&h.path))
            .unwrap_or_default()
    }

    fn set_up_dir(
        &self,
        _uid: &str,
        _pod_dir: &Path,
        volume: &Volume,
        _fs_group: Option<FsGroup>,
    ) -> Result<(), VolumeError> {
        match &volume.host_path {
            Some(h) => setup_host_path(&volume.name, h),
            None => Ok(()),
        }
    }
}

fn setup_host_path(volume: &str, src: &HostPathVolumeSource) -> Result<(), VolumeError> {
    let path = Path::new(&src.path);
    let fail = |why: String| VolumeError::HostPath {
        volume: volume.to_string(),
        path: path.to_path_buf(),
        why,
    };
    // API validation's rules, enforced here as static pods skip it; Go also
    // allows relative paths, berth doesn't (they'd depend on its cwd).
    if !path.is_absolute() {
        return Err(fail("the path must be absolute".into()));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(fail("the path must not contain '..'".into()));
    }
    let ty = src.type_.as_deref().unwrap_or("");
    let want: Option<fn(&fs::FileType) -> bool> = match ty {
        "" => return Ok(()),
        "DirectoryOrCreate" | "Directory" => Some(fs::FileType::is_dir),
        "FileOrCreate" | "File" => Some(fs::FileType::is_file),
        "Socket" => Some(FileTypeExt::is_socket),
        "CharDevice" => Some(FileTypeExt::is_char_device),
        "BlockDevice" => Some(FileTypeExt::is_block_device),
        _ => None,
    };
    let Some(want) = want else {
        return Err(fail(format!("{ty:?} is not a valid hostPath type")));
    };
    // Like Go's checkType: follow symlinks, create only what is missing.
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound && ty == "DirectoryOrCreate" => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(path)
                .map_err(|e| fail(format!("creating the directory: {e}")))?;
            return Ok(());
        }
        Err(e) if e.kind() == ErrorKind::NotFound && ty == "FileOrCreate" => {
            // As in Go, the parent directory is not created.
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(path)
                .map_err(|e| fail(format!("creating the file: {e}")))?;
            return Ok(());
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(fail(format!(
                "type {ty} but {} does not exist",
                path.display()
            )));
        }
        Err(e) => return Err(fail(format!("checking type {ty}: {e}"))),
    };
    if want(&meta.file_type()) {
        Ok(())
    } else {
        Err(fail(format!(
            "type {ty} but {} is {}",
            path.display(),
            describe(meta.file_type())
        )))
    }
}
