//! Publishes a set of files into a volume directory so that readers only
//! ever see a whole version (the Go kubelet's `pkg/volume/util`
//! `AtomicWriter`, used by the configMap, secret, downwardAPI and projected
//! volumes).
//!
//! The directory looks like this once written:
//!
//! ```text
//! <target>/..2024_05_01_10_00_00.1234567/   the files of the current version
//! <target>/..data -> ..2024_05_01_10_00_00.1234567
//! <target>/key    -> ..data/key             one link per top-level name
//! <target>/conf   -> ..data/conf            (for conf/a.yaml, conf/b.yaml)
//! ```
//!
//! A new version is written beside the old one, in a fresh timestamped
//! directory; `..data_tmp` is pointed at it and renamed over `..data`, which
//! is atomic. So a reader resolving `key` lands either wholly in the old
//! version or wholly in the new one. Names starting with `..` belong to the
//! writer; payload paths may not use them.
//!
//! The writer is not safe for concurrent use on one directory: the caller
//! serialises writes (the volume manager does one pod volume at a time).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The link readers follow to the current version.
pub const DATA_DIR_NAME: &str = "..data";
/// The link prepared beside `..data`, then renamed over it.
pub const NEW_DATA_DIR_NAME: &str = "..data_tmp";
/// The longest payload path, in bytes (Linux's PATH_MAX).
pub const MAX_PATH_LENGTH: usize = 4096;
/// The longest element of a payload path, in bytes (Linux's NAME_MAX).
pub const MAX_FILE_NAME_LENGTH: usize = 255;

/// How often a clashing timestamped directory name is re-drawn, as Go's
/// `os.MkdirTemp` does.
const TEMP_DIR_ATTEMPTS: u32 = 10_000;

/// One file of a payload. The data is never printed: `Debug` shows its
/// length only, since it may be a Secret's value.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct FileProjection {
    pub data: Vec<u8>,
    /// Permission bits (only `0o777` is applied, as Go's `os.Chmod` does
    /// with a plain integer mode).
    pub mode: u32,
    /// When set, the file is chowned to this user (the group is unchanged).
    pub fs_user: Option<i64>,
}

impl fmt::Debug for FileProjection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileProjection")
            .field("data", &format_args!("<{} bytes>", self.data.len()))
            .field("mode", &format_args!("{:#o}", self.mode))
            .field("fs_user", &self.fs_user)
            .finish()
    }
}

/// Why a payload path is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidPathReason {
    Empty,
    Absolute,
    TooLong,
    ParentElement,
    ElementTooLong,
    /// The first element starts with `..`, the writer's own names.
    Reserved,
    /// The path names the volume's root (`.`, `./`).
    Root,
    NulByte,
}

impl fmt::Display for InvalidPathReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            InvalidPathReason::Empty => "must not be empty",
            InvalidPathReason::Absolute => "must be relative path",
            InvalidPathReason::TooLong => "must be less than or equal to 4096 characters",
            InvalidPathReason::ParentElement => "must not contain '..'",
            InvalidPathReason::ElementTooLong => {
                "filenames must be less than or equal to 255 characters"
            }
            InvalidPathReason::Reserved => "must not start with '..'",
            InvalidPathReason::Root => "must name a file, not the volume's root",
            InvalidPathReason::NulByte => "must not contain a NUL byte",
        };
        f.write_str(s)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AtomicWriteError {
    #[error("invalid path: {reason}: {path:?}")]
    InvalidPath {
        path: String,
        reason: InvalidPathReason,
    },
    /// Two payload paths name the same file, or one is a directory of the
    /// other (`a` and `a/b`).
    #[error("invalid payload: path {path:?} conflicts with {other:?}")]
    Conflict { path: String, other: String },
    #[error("target directory {0} does not exist")]
    NoTarget(PathBuf),
    /// `..data` points somewhere the writer never puts a version.
    #[error("{link} points to {target:?}, which is not a version directory")]
    BadDataLink { link: PathBuf, target: PathBuf },
    #[error("fs_user {0} is not a valid user ID")]
    BadUser(i64),
    #[error("applying ownership to {path}: {source}")]
    SetPerms {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> AtomicWriteError + 'a {
    move |source| AtomicWriteError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Checks one payload path as Go's `validatePath` does, plus two cases Go
/// lets through to fail later (a NUL byte; a path that cleans to `.` or to
/// a name starting with `..`, like `./..data`).
pub fn validate_path(path: &str) -> Result<(), AtomicWriteError> {
    let invalid = |reason| {
        Err(AtomicWriteError::InvalidPath {
            path: path.to_string(),
            reason,
        })
    };
    if path.is_empty() {
        return invalid(InvalidPathReason::Empty);
    }
    if path.starts_with('/') {
        return invalid(InvalidPathReason::Absolute);
    }
    if path.len() > MAX_PATH_LENGTH {
        return invalid(InvalidPathReason::TooLong);
    }
    if path.contains('\0') {
        return invalid(InvalidPathReason::NulByte);
    }
    for element in path.split('/') {
        if element == ".." {
            return invalid(InvalidPathReason::ParentElement);
        }
        if element.len() > MAX_FILE_NAME_LENGTH {
            return invalid(InvalidPathReason::ElementTooLong);
        }
    }
    let cleaned = clean(path);
    if cleaned == "." {
        return invalid(InvalidPathReason::Root);
    }
    let first = path.split('/').next().unwrap_or_default();
    let first_cleaned = cleaned.split('/').next().unwrap_or_default();
    if first.starts_with("..") || first_cleaned.starts_with("..") {
        return invalid(InvalidPathReason::Reserved);
    }
    Ok(())
}

/// Go's `filepath.Clean` for a relative path without `..` elements: no
/// empty or `.` elements, no trailing slash; `.` when nothing is left.
pub(crate) fn clean(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

/// Validates every path and keys the payload by its cleaned paths. Unlike
/// Go (whose map keeps an arbitrary one of two paths that clean alike, and
/// fails mid-write when a file is also a directory), a conflict is refused
/// before anything is written.
fn validate_payload(
    payload: &BTreeMap<String, FileProjection>,
) -> Result<BTreeMap<String, &FileProjection>, AtomicWriteError> {
    let mut clean_payload: BTreeMap<String, &FileProjection> = BTreeMap::new();
    let mut original: BTreeMap<String, &str> = BTreeMap::new();
    for (path, file) in payload {
        validate_path(path)?;
        let cleaned = clean(path);
        if let Some(other) = original.get(&cleaned) {
            return Err(AtomicWriteError::Conflict {
                path: path.clone(),
                other: (*other).to_string(),
            });
        }
        original.insert(cleaned.clone(), path);
        clean_payload.insert(cleaned, file);
    }
    for path in clean_payload.keys() {
        for ancestor in ancestors(path).skip(1) {
            if let Some(other) = original.get(ancestor) {
                return Err(AtomicWriteError::Conflict {
                    path: original.get(path).copied().unwrap_or(path).to_string(),
                    other: (*other).to_string(),
                });
            }
        }
    }
    Ok(clean_payload)
}

/// `a/b/c`, `a/b`, `a`.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(path), |p| p.rfind('/').map(|i| &p[..i]))
}

/// Applies ownership to a new version's directory before it is published
/// (the volume manager's fsGroup pass); gets the directory's full path.
pub type SetPerms<'a> = &'a dyn Fn(&Path) -> io::Result<()>;

/// Writes payloads into one volume directory.
#[derive(Clone, Debug)]
pub struct AtomicWriter {
    target_dir: PathBuf,
    /// Names the volume in logs (`pod ns/name volume v`).
    log_context: String,
}

impl AtomicWriter {
    /// A writer for `target_dir`, which must exist.
    pub fn new(
        target_dir: impl Into<PathBuf>,
        log_context: impl Into<String>,
    ) -> Result<Self, AtomicWriteError> {
        let target_dir = target_dir.into();
        match fs::metadata(&target_dir) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(AtomicWriteError::NoTarget(target_dir));
            }
            Err(e) => return Err(io_err("reading", &target_dir)(e)),
        }
        Ok(AtomicWriter {
            target_dir,
            log_context: log_context.into(),
        })
    }

    pub fn target_dir(&self) -> &Path {
        &self.target_dir
    }

    /// Publishes `payload` (relative path → file) as the volume's content.
    /// Returns whether a new version was written: false when the current
    /// version already holds the same data and no file needs removing (the
    /// user-visible links are still checked). `set_perms` runs on the new
    /// version's directory before it is published (ownership for fsGroup).
    ///
    /// The steps, in Go's order:
    ///  1. validate the payload;
    ///  2. read `..data` for the current version;
    ///  3. list the current version's paths the payload no longer has;
    ///  4. compare the current files with the payload (data only, not modes);
    ///  5. when something changed: create `..<UTC time>.<random>` (0755),
    ///  6. write the files into it with their modes and owners,
    ///  7. run `set_perms` on it,
    ///  8. link `..data_tmp` to it and
    ///  9. rename `..data_tmp` over `..data`;
    /// 10. create the missing top-level links (`name -> ..data/name`);
    /// 11. remove the top-level links of names that are gone;
    /// 12. remove the previous version's directory.
    pub fn write(
        &self,
        payload: &BTreeMap<String, FileProjection>,
        set_perms: Option<SetPerms<'_>>,
    ) -> Result<bool, AtomicWriteError> {
        let payload = validate_payload(payload)?;

        let data_dir_path = self.target_dir.join(DATA_DIR_NAME);
        let mut old_version = self.current_version(&data_dir_path)?;

        let mut to_remove = BTreeSet::new();
        let mut changed = true;
        if let Some(old) = &old_version {
            let old_path = self.target_dir.join(old);
            to_remove = paths_to_remove(&payload, &old_path)?;
            if !payload_differs(&payload, &old_path)? && to_remove.is_empty() {
                tracing::debug!(context = %self.log_context, dir = %self.target_dir.display(),
                    "volume content unchanged");
                changed = false;
                // Nothing to replace, so nothing to remove afterwards.
                old_version = None;
            }
        }

        if changed {
            let version_dir = self.new_version_dir()?;
            let version_name = PathBuf::from(version_dir.file_name().unwrap_or_default());
            if let Err(e) = self.publish(&payload, &version_dir, &version_name, set_perms) {
                // Best effort: an unpublished version is only clutter.
                let _ = fs::remove_dir_all(&version_dir);
                return Err(e);
            }
            tracing::debug!(context = %self.log_context, version = %version_name.display(),
                "volume content written");
        }

        self.create_user_visible_files(&payload)?;
        self.remove_user_visible_paths(&to_remove)?;

        if let Some(old) = old_version {
            let old_path = self.target_dir.join(old);
            match fs::remove_dir_all(&old_path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("removing old version", &old_path)(e)),
            }
        }
        Ok(changed)
    }

    /// The version `..data` points to, or None before the first write.
    /// The writer only ever links `..data` to a sibling named `..<stamp>`;
    /// anything else is refused rather than followed (and later deleted).
    fn current_version(&self, data_dir_path: &Path) -> Result<Option<PathBuf>, AtomicWriteError> {
        let target = match fs::read_link(data_dir_path) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("reading link", data_dir_path)(e)),
        };
        let plain_sibling = target.to_str().is_some_and(|s| {
            s.starts_with("..")
                && s.len() > 2
                && !s.contains('/')
                && s != DATA_DIR_NAME
                && s != NEW_DATA_DIR_NAME
        });
        if !plain_sibling {
            return Err(AtomicWriteError::BadDataLink {
                link: data_dir_path.to_path_buf(),
                target,
            });
        }
        Ok(Some(target))
    }

    /// Steps 6 to 9: fill the new version and make it the current one.
    fn publish(
        &self,
        payload: &BTreeMap<String, &FileProjection>,
        version_dir: &Path,
        version_name: &Path,
        set_perms: Option<SetPerms<'_>>,
    ) -> Result<(), AtomicWriteError> {
        write_payload_to_dir(payload, version_dir)?;
        if let Some(set_perms) = set_perms {
            set_perms(version_dir).map_err(|source| AtomicWriteError::SetPerms {
                path: version_dir.to_path_buf(),
                source,
            })?;
        }
        let new_data_dir_path = self.target_dir.join(NEW_DATA_DIR_NAME);
        // A link left by a write that died between steps 8 and 9 would make
        // every later write fail in Go; it points at nothing anyone reads.
        match fs::remove_file(&new_data_dir_path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("removing stale link", &new_data_dir_path)(e)),
        }
        std::os::unix::fs::symlink(version_name, &new_data_dir_path)
            .map_err(io_err("creating link", &new_data_dir_path))?;
        let data_dir_path = self.target_dir.join(DATA_DIR_NAME);
        if let Err(e) = fs::rename(&new_data_dir_path, &data_dir_path) {
            let _ = fs::remove_file(&new_data_dir_path);
            return Err(io_err("renaming link", &data_dir_path)(e));
        }
        Ok(())
    }

    /// Step 5: `..<UTC yyyy_mm_dd_hh_mm_ss>.<random>`, mode 0755 whatever
    /// the umask, so other users can reach files the modes let them read.
    fn new_version_dir(&self) -> Result<PathBuf, AtomicWriteError> {
        let stamp = jiff::Timestamp::now().strftime("%Y_%m_%d_%H_%M_%S");
        let mut last = None;
        for _ in 0..TEMP_DIR_ATTEMPTS {
            let dir = self
                .target_dir
                .join(format!("..{stamp}.{}", fastrand::u32(..)));
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {
                    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
                        .map_err(io_err("setting mode of", &dir))?;
                    return Ok(dir);
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => last = Some((dir, e)),
                Err(e) => return Err(io_err("creating directory", &dir)(e)),
            }
        }
        let (dir, e) = last.unwrap_or_else(|| {
            (
                self.target_dir.clone(),
                io::Error::from(ErrorKind::AlreadyExists),
            )
        });
        Err(io_err("creating directory", &dir)(e))
    }

    /// Step 10: one link per top-level name, `name -> ..data/name`, created
    /// only where nothing is: an existing link already resolves through
    /// `..data` to the new version.
    fn create_user_visible_files(
        &self,
        payload: &BTreeMap<String, &FileProjection>,
    ) -> Result<(), AtomicWriteError> {
        let tops: BTreeSet<&str> = payload
            .keys()
            .map(|p| p.split('/').next().unwrap_or(p))
            .collect();
        for top in tops {
            let visible = self.target_dir.join(top);
            match fs::read_link(&visible) {
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    std::os::unix::fs::symlink(Path::new(DATA_DIR_NAME).join(top), &visible)
                        .map_err(io_err("creating link", &visible))?;
                }
                // A link, or something that is not one: Go leaves both.
                _ => {}
            }
        }
        Ok(())
    }

    /// Step 11: removes the top-level links of paths that are gone; deeper
    /// paths vanished with the old version. Every removal is tried; the
    /// last failure is returned.
    fn remove_user_visible_paths(&self, paths: &BTreeSet<String>) -> Result<(), AtomicWriteError> {
        let mut last = Ok(());
        for p in paths.iter().filter(|p| !p.contains('/')) {
            let visible = self.target_dir.join(p);
            if let Err(e) = fs::remove_file(&visible) {
                tracing::warn!(context = %self.log_context, path = %visible.display(), error = %e,
                    "cannot remove an old volume path");
                last = Err(io_err("removing", &visible)(e));
            }
        }
        last
    }
}

/// Step 3: every path under the old version (files and directories) that is
/// neither in the payload nor a directory above one of its files.
fn paths_to_remove(
    payload: &BTreeMap<String, &FileProjection>,
    old_version: &Path,
) -> Result<BTreeSet<String>, AtomicWriteError> {
    let mut current = BTreeSet::new();
    let mut stack = vec![(old_version.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            // No old version on disk: nothing to remove.
            Err(e) if e.kind() == ErrorKind::NotFound && rel.is_empty() => {
                return Ok(BTreeSet::new());
            }
            Err(e) => return Err(io_err("reading directory", &dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err("reading directory", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let child_rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let file_type = entry
                .file_type()
                .map_err(io_err("reading type of", &entry.path()))?;
            if file_type.is_dir() {
                stack.push((entry.path(), child_rel.clone()));
            }
            current.insert(child_rel);
        }
    }
    let wanted: BTreeSet<&str> = payload.keys().flat_map(|p| ancestors(p)).collect();
    Ok(current
        .into_iter()
        .filter(|p| !wanted.contains(p.as_str()))
        .collect())
}

/// Step 4: whether any payload file is missing from the old version or
/// holds other bytes. A path that is a directory there, or lies under a
/// file there, counts as changed (Go fails on both, forever).
fn payload_differs(
    payload: &BTreeMap<String, &FileProjection>,
    old_version: &Path,
) -> Result<bool, AtomicWriteError> {
    for (path, file) in payload {
        let on_disk = old_version.join(path);
        let meta = match fs::symlink_metadata(&on_disk) {
            Ok(m) => m,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                return Ok(true);
            }
            Err(e) => return Err(io_err("reading", &on_disk)(e)),
        };
        if !meta.is_file() || meta.len() != file.data.len() as u64 {
            return Ok(true);
        }
        let content = fs::read(&on_disk).map_err(io_err("reading", &on_disk))?;
        if content != file.data {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Step 6: the payload's files under the new version, each created with its
/// mode then chmodded to it (the umask must not narrow it), then chowned
/// when it names a user. Directories get 0777 less the umask, as in Go.
fn write_payload_to_dir(
    payload: &BTreeMap<String, &FileProjection>,
    dir: &Path,
) -> Result<(), AtomicWriteError> {
    for (path, file) in payload {
        let full = dir.join(path);
        if let Some(parent) = full.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o777)
                .create(parent)
                .map_err(io_err("creating directory", parent))?;
        }
        let mode = file.mode & 0o777;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&full)
            .map_err(io_err("creating", &full))?;
        f.write_all(&file.data).map_err(io_err("writing", &full))?;
        drop(f);
        fs::set_permissions(&full, fs::Permissions::from_mode(mode))
            .map_err(io_err("setting mode of", &full))?;
        if let Some(user) = file.fs_user {
            let uid = u32::try_from(user).map_err(|_| AtomicWriteError::BadUser(user))?;
            std::os::unix::fs::chown(&full, Some(uid), None)
                .map_err(io_err("changing owner of", &full))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
