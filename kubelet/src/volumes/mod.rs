//! Pod volumes on the node (the Go kubelet's volume manager and
//! `makeMounts`, cut down to what a node without an API server can do).
//!
//! Layout under the kubelet root dir, as the Go kubelet lays it out:
//!
//! ```text
//! <root>/pods/<uid>/
//!     volumes/kubernetes.io~empty-dir/<volume>/   emptyDir volumes
//!     etc-hosts                                   the managed /etc/hosts
//!     containers/<container>/<restartCount>       termination-message files
//! ```
//!
//! Each kind of volume is a [`plugins::VolumePlugin`] (emptyDir, hostPath,
//! configMap, secret, downwardAPI, projected), found for a volume by the
//! [`plugins::VolumePluginMgr`]. [`VolumeManager::prepare`] has every
//! volume's plugin make what containers mount (directories, tmpfs,
//! hostPath checks); [`objects::ObjectVolumes`] has the plugins of
//! configMap, secret, downwardAPI and projected volumes write their files,
//! through the atomic writer, and write them again when objects change.
//! Persistent volumes need plugins berth doesn't have.

pub mod atomic_writer;
pub mod objects;
pub mod ownership;
pub mod payload;
pub mod plugins;

use std::fs;
use std::io::{self, ErrorKind};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cri_client::proto as pb;
use k8s_openapi::api::core::v1::{Container, Pod, VolumeMount};

use plugins::VolumePluginMgr;

use crate::pod_hostname;
use crate::pod_uid;

const ETC_HOSTS: &str = "/etc/hosts";
const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
const MANAGED_HOSTS_HEADER: &str = "# Kubernetes-managed hosts file.\n";
const MANAGED_HOSTS_HEADER_HOST_NETWORK: &str = "# Kubernetes-managed hosts file (host network).\n";

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("pod UID {uid:?} cannot name a pod directory: {why}")]
    BadUid { uid: String, why: &'static str },
    #[error("volume {volume:?}: {why}")]
    BadVolume { volume: String, why: String },
    #[error("volume {volume:?}: {kind} volumes are not supported: {why}")]
    Unsupported {
        volume: String,
        kind: String,
        why: &'static str,
    },
    #[error("volume {volume:?}: hostPath {path}: {why}")]
    HostPath {
        volume: String,
        path: PathBuf,
        why: String,
    },
    #[error("volume {volume:?}: emptyDir {path}: {why}")]
    EmptyDir {
        volume: String,
        path: PathBuf,
        why: String,
    },
    #[error("cannot find volume {volume:?} to mount into container {container:?}")]
    MissingVolume { volume: String, container: String },
    #[error("container {container:?}: volumeMount {volume:?} at {mount_path}: {why}")]
    Mount {
        container: String,
        volume: String,
        mount_path: String,
        why: String,
    },
    #[error("container {container:?}: volumeMount {volume:?} at {mount_path}: {source}")]
    SubPath {
        container: String,
        volume: String,
        mount_path: String,
        #[source]
        source: SubPathError,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Why a volumeMount's subPath can't be used.
#[derive(Debug, thiserror::Error)]
pub enum SubPathError {
    #[error("subPathExpr is not supported yet (use subPath)")]
    ExprUnsupported,
    #[error("subPath {0:?} must not be an absolute path")]
    Absolute(String),
    #[error("subPath {0:?} must not contain '..'")]
    ParentDir(String),
    /// A symlink in the volume leads out of it.
    #[error("subPath {0:?} resolves outside the volume")]
    Escapes(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn sub_path_io<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> SubPathError + 'a {
    move |source| SubPathError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> VolumeError + 'a {
    move |source| VolumeError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// The volumes whose files berth writes (Go's configmap, secret,
/// downwardapi and projected plugins).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    ConfigMap,
    Secret,
    DownwardApi,
    Projected,
}

impl ObjectKind {
    /// The plugin's directory under `volumes/`, as the Go kubelet names it.
    pub fn plugin_dir(self) -> &'static str {
        match self {
            ObjectKind::ConfigMap => "kubernetes.io~configmap",
            ObjectKind::Secret => "kubernetes.io~secret",
            ObjectKind::DownwardApi => "kubernetes.io~downward-api",
            ObjectKind::Projected => "kubernetes.io~projected",
        }
    }

    /// Secrets and projected volumes (which hold tokens) live on tmpfs, so
    /// their content never reaches the disk.
    pub fn on_tmpfs(self) -> bool {
        matches!(self, ObjectKind::Secret | ObjectKind::Projected)
    }
}

/// A name used as one path component (volume and container names).
fn check_component(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("the name is empty")
    } else if name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        Err("the name must not contain '/' or be '.' or '..'")
    } else {
        Ok(())
    }
}

fn check_uid(uid: &str) -> Result<&str, VolumeError> {
    let why = if uid.is_empty() {
        Some("it is empty")
    } else if uid.contains('/') || uid.contains("..") || uid.contains('\0') || uid == "." {
        Some("it must not contain '/' or '..'")
    } else {
        None
    };
    match why {
        Some(why) => Err(VolumeError::BadUid {
            uid: uid.to_string(),
            why,
        }),
        None => Ok(uid),
    }
}

/// Creates `dir` and any missing parents with `mode` (before the umask).
fn mkdir_all(dir: &Path, mode: u32) -> Result<(), VolumeError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(io_err("creating directory", dir))
}

fn is_mount_point(dir: &Path) -> io::Result<bool> {
    let meta = fs::symlink_metadata(dir)?;
    let parent = dir.parent().unwrap_or(Path::new("/"));
    Ok(meta.dev() != fs::symlink_metadata(parent)?.dev())
}

/// What a path is, in words, for error messages.
fn describe(ft: fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_file() {
        "a file"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_fifo() {
        "a FIFO"
    } else {
        "of an unknown type"
    }
}

/// A resource quantity ("64Mi", "1G", "1.5Gi", "2e6") in bytes, rounded up
/// as `resource.Quantity.Value()` does (and capped as it is); None when it
/// is not one, or is negative.
fn quantity_bytes(q: &str) -> Option<u64> {
    let q = api::Quantity::parse(q).ok()?;
    if q.is_negative() {
        return None;
    }
    u64::try_from(q.as_units_ceil()).ok()
}

/// Manages pod directories and volumes under the kubelet root dir.
#[derive(Clone, Debug)]
pub struct VolumeManager {
    root_dir: PathBuf,
    /// The volume plugins, asked for each of a pod's volumes.
    plugins: Arc<VolumePluginMgr>,
    /// The node's hosts file, copied into hostNetwork pods.
    node_hosts_file: PathBuf,
}

impl VolumeManager {
    pub fn new(root_dir: PathBuf) -> Self {
        VolumeManager {
            root_dir,
            plugins: VolumePluginMgr::builtin(),
            node_hosts_file: PathBuf::from(ETC_HOSTS),
        }
    }

    /// Reads the node's hosts file from elsewhere than /etc/hosts (tests).
    pub fn with_node_hosts_file(mut self, path: PathBuf) -> Self {
        self.node_hosts_file = path;
        self
    }

    /// The volume plugins.
    pub fn plugins(&self) -> &Arc<VolumePluginMgr> {
        &self.plugins
    }

    fn pods_dir(&self) -> PathBuf {
        self.root_dir.join("pods")
    }

    /// `<root>/pods/<uid>`
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.pods_dir().join(uid)
    }

    /// `<root>/pods/<uid>/volumes/<plugin>/<volume>` of an object volume.
    pub fn object_volume_path(&self, uid: &str, kind: ObjectKind, volume: &str) -> PathBuf {
        self.pod_dir(uid)
            .join("volumes")
            .join(kind.plugin_dir())
            .join(volume)
    }

    /// Where a container instance's termination message goes. The Go kubelet
    /// names the file with a random ID; berth uses the restart count so the
    /// status code can find it again from the container's labels.
    pub fn termination_message_file(
        &self,
        uid: &str,
        container: &str,
        restart_count: u32,
    ) -> PathBuf {
        self.pod_dir(uid)
            .join("containers")
            .join(container)
            .join(restart_count.to_string())
    }

    /// Sets up the pod's directory and volumes before its sandbox starts.
    /// Safe to call again: existing volumes are kept as they are.
    pub fn prepare(&self, pod: &Pod) -> Result<(), VolumeError> {
        let uid = check_uid(pod_uid(pod))?;
        let volumes = pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_deref())
            .unwrap_or_default();
        // Refuse a bad pod before anything is created for it.
        let sources = volumes
            .iter()
            .map(|v| {
                check_component(&v.name).map_err(|why| VolumeError::BadVolume {
                    volume: v.name.clone(),
                    why: why.to_string(),
                })?;
                self.plugins.find(v).map(|p| (v, p))
            })
            .collect::<Result<Vec<_>, _>>()?;

        // 0750 as the Go kubelet's makePodDataDirs.
        let pod_dir = self.pod_dir(uid);
        mkdir_all(&pod_dir, 0o750)?;
        mkdir_all(&pod_dir.join("volumes"), 0o750)?;
        let fs_group = ownership::FsGroup::of(pod);
        for (v, plugin) in sources {
            plugin.set_up_dir(uid, &pod_dir, v, fs_group)?;
        }
        Ok(())
    }

    /// The CRI mounts for one container: its volumeMounts, the managed
    /// /etc/hosts and the termination-message file, in the Go kubelet's order.
    pub fn mounts(
        &self,
        pod: &Pod,
        container: &Container,
        restart_count: u32,
        pod_ip: &str,
    ) -> Result<Vec<pb::Mount>, VolumeError> {
        let uid = check_uid(pod_uid(pod))?;
        // Cheap when all is in place, and restores volume dirs removed since
        // the sandbox was created (the Go kubelet re-mounts on every sync).
        self.prepare(pod)?;
        let spec = pod.spec.as_ref();
        let volumes = spec.and_then(|s| s.volumes.as_deref()).unwrap_or_default();
        let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
        let privileged = container
            .security_context
            .as_ref()
            .and_then(|s| s.privileged)
            .unwrap_or(false);

        // Go mounts /etc/hosts once the pod has IPs; hostNetwork pods always
        // have the node's, while the runtime reports none for them.
        let mut mount_hosts = host_network || !pod_ip.is_empty();
        let mut mounts = Vec::new();
        for m in container.volume_mounts.as_deref().unwrap_or_default() {
            if m.mount_path == ETC_HOSTS {
                mount_hosts = false;
            }
            let mount_err = |why: String| VolumeError::Mount {
                container: container.name.clone(),
                volume: m.name.clone(),
                mount_path: m.mount_path.clone(),
                why,
            };
            let vol = volumes.iter().find(|v| v.name == m.name).ok_or_else(|| {
                VolumeError::MissingVolume {
                    volume: m.name.clone(),
                    container: container.name.clone(),
                }
            })?;
            let plugin = self.plugins.find(vol)?;
            let volume_path = plugin.path(&self.pod_dir(uid), vol);
            let forced_read_only = plugin.read_only();
            let sub_path_err = |source| VolumeError::SubPath {
                container: container.name.clone(),
                volume: m.name.clone(),
                mount_path: m.mount_path.clone(),
                source,
            };
            let host_path = match sub_path_of(m).map_err(sub_path_err)? {
                Some(sub) => safe_sub_path(&volume_path, sub).map_err(sub_path_err)?,
                None => volume_path,
            };
            let propagation = match m.mount_propagation.as_deref() {
                None | Some("None") => pb::MountPropagation::PropagationPrivate,
                Some("HostToContainer") => pb::MountPropagation::PropagationHostToContainer,
                Some("Bidirectional") if privileged => {
                    pb::MountPropagation::PropagationBidirectional
                }
                // API validation's rule; static pods skip the API server.
                Some("Bidirectional") => {
                    return Err(mount_err(
                        "Bidirectional mount propagation is available only to privileged containers".into(),
                    ));
                }
                Some(other) => {
                    return Err(mount_err(format!("invalid mountPropagation {other:?}")));
                }
            };
            // containerd 1.6 has no recursive read-only mounts, so only the
            // modes that may fall back to a plain read-only mount are allowed.
            if m.recursive_read_only.as_deref() == Some("Enabled") {
                return Err(mount_err(
                    "recursiveReadOnly Enabled is not supported by the runtime (use IfPossible)"
                        .into(),
                ));
            }
            let container_path = if m.mount_path.starts_with('/') {
                m.mount_path.clone()
            } else {
                format!("/{}", m.mount_path)
            };
            mounts.push(pb::Mount {
                container_path,
                host_path: host_path.to_string_lossy().into_owned(),
                readonly: forced_read_only || m.read_only.unwrap_or(false),
                propagation: propagation as i32,
                ..Default::default()
            });
        }

        if mount_hosts {
            let path = self.ensure_hosts_file(pod, uid, pod_ip, host_network)?;
            mounts.push(pb::Mount {
                container_path: ETC_HOSTS.into(),
                host_path: path.to_string_lossy().into_owned(),
                readonly: false,
                selinux_relabel: true,
                ..Default::default()
            });
        }

        let tmp_path = container
            .termination_message_path
            .as_deref()
            .unwrap_or(DEFAULT_TERMINATION_MESSAGE_PATH);
        if !tmp_path.is_empty() {
            check_component(&container.name).map_err(|why| VolumeError::Mount {
                container: container.name.clone(),
                volume: String::new(),
                mount_path: tmp_path.to_string(),
                why: format!("container name cannot name a directory: {why}"),
            })?;
            let file = self.termination_message_file(uid, &container.name, restart_count);
            if let Some(dir) = file.parent() {
                mkdir_all(dir, 0o755)?;
            }
            // A fresh, world-writable file for each instance, as in Go, so
            // a non-root container can write its message.
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o666)
                .open(&file)
                .map_err(io_err("creating termination-message file", &file))?;
            fs::set_permissions(&file, fs::Permissions::from_mode(0o666))
                .map_err(io_err("setting the mode of", &file))?;
            mounts.push(pb::Mount {
                container_path: tmp_path.to_string(),
                host_path: file.to_string_lossy().into_owned(),
                readonly: false,
                ..Default::default()
            });
        }
        Ok(mounts)
    }

    /// Writes `<pod dir>/etc-hosts` if its content changed. Written in place
    /// (not renamed over) so running containers' bind mounts see the update.
    fn ensure_hosts_file(
        &self,
        pod: &Pod,
        uid: &str,
        pod_ip: &str,
        host_network: bool,
    ) -> Result<PathBuf, VolumeError> {
        let aliases = pod
            .spec
            .as_ref()
            .and_then(|s| s.host_aliases.as_deref())
            .unwrap_or_default();
        let mut content = String::new();
        if host_network {
            let node = fs::read_to_string(&self.node_hosts_file)
                .map_err(io_err("reading", &self.node_hosts_file))?;
            content.push_str(MANAGED_HOSTS_HEADER_HOST_NETWORK);
            content.push_str(&node);
        } else {
            content.push_str(MANAGED_HOSTS_HEADER);
            content.push_str("127.0.0.1\tlocalhost\n");
            content.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
            content.push_str("fe00::0\tip6-localnet\n");
            content.push_str("fe00::0\tip6-mcastprefix\n");
            content.push_str("fe00::1\tip6-allnodes\n");
            content.push_str("fe00::2\tip6-allrouters\n");
            // No "<host>.<subdomain>.<ns>.svc.<domain>" line: without an API
            // server there is no cluster domain to complete it with.
            if !pod_ip.is_empty() {
                content.push_str(&format!("{pod_ip}\t{}\n", pod_hostname(pod)));
            }
        }
        if !aliases.is_empty() {
            content.push_str("\n# Entries added by HostAliases.\n");
            for a in aliases {
                let names = a.hostnames.as_deref().unwrap_or_default().join("\t");
                content.push_str(&format!("{}\t{names}\n", a.ip));
            }
        }

        let path = self.pod_dir(uid).join("etc-hosts");
        match fs::read(&path) {
            Ok(old) if old == content.as_bytes() => return Ok(path),
            _ => {}
        }
        fs::write(&path, content.as_bytes()).map_err(io_err("writing", &path))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))
            .map_err(io_err("setting the mode of", &path))?;
        Ok(path)
    }

    /// Removes everything the node holds for a pod that is gone: unmounts its
    /// tmpfs volumes, then deletes `<root>/pods/<uid>`. Never follows a
    /// symlink out of the pod dir, and refuses to delete anything while a
    /// mount remains below it (that could be someone else's data).
    pub fn cleanup(&self, uid: &str) -> Result<(), VolumeError> {
        let uid = check_uid(uid)?;
        let dir = self.pod_dir(uid);
        match fs::symlink_metadata(&dir) {
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("inspecting", &dir)(e)),
            // Only the link itself is ours to remove.
            Ok(m) if !m.is_dir() => return fs::remove_file(&dir).map_err(io_err("removing", &dir)),
            Ok(_) => {}
        }
        let real = fs::canonicalize(&dir).map_err(io_err("resolving", &dir))?;
        let mut under = mounts_under(&real).map_err(io_err("reading mounts under", &real))?;
        // Deepest first, so nested mounts come off before their parents.
        under.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for m in &under {
            match nix::mount::umount2(m, nix::mount::MntFlags::empty()) {
                Ok(()) => tracing::debug!(uid = %uid, path = %m.display(), "unmounted pod volume"),
                Err(e) => {
                    tracing::warn!(uid = %uid, path = %m.display(), "unmounting pod volume: {e}")
                }
            }
        }
        if let Some(left) = mounts_under(&real)
            .map_err(io_err("reading mounts under", &real))?
            .first()
        {
            return Err(VolumeError::Io {
                what: "not removing pod directory: still mounted at",
                path: left.clone(),
                source: io::Error::from(ErrorKind::ResourceBusy),
            });
        }
        // std's remove_dir_all removes symlinks without following them.
        fs::remove_dir_all(&dir).map_err(io_err("removing", &dir))
    }

    /// UIDs of the pods with a directory under `<root>/pods`, sorted.
    pub fn pod_dirs(&self) -> Vec<String> {
        let dir = self.pods_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                if e.kind() != ErrorKind::NotFound {
                    tracing::warn!(path = %dir.display(), "listing pod directories: {e}");
                }
                return Vec::new();
            }
        };
        let mut uids: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|u| check_uid(u).is_ok())
            .collect();
        uids.sort();
        uids
    }
}

/// The mount's subPath, refused when absolute or climbing out with `..`.
fn sub_path_of(m: &VolumeMount) -> Result<Option<&str>, SubPathError> {
    if m.sub_path_expr.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(SubPathError::ExprUnsupported);
    }
    let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if sub.starts_with('/') {
        return Err(SubPathError::Absolute(sub.to_string()));
    }
    if sub.split('/').any(|c| c == "..") {
        return Err(SubPathError::ParentDir(sub.to_string()));
    }
    Ok(Some(sub))
}

/// Joins `sub` to a volume, creating missing directories with the volume's
/// mode as Go does, and refusing paths that resolve outside the volume (a
/// symlink inside it pointing elsewhere). Go closes the remaining race with
/// a bind mount of the opened path; berth checks, then hands over the path.
fn safe_sub_path(volume: &Path, sub: &str) -> Result<PathBuf, SubPathError> {
    let root = fs::canonicalize(volume).map_err(sub_path_io("resolving volume path", volume))?;
    let mode = fs::metadata(&root)
        .map_err(sub_path_io("inspecting", &root))?
        .mode()
        & 0o7777;
    let mut cur = root.clone();
    for part in sub.split('/').filter(|p| !p.is_empty() && *p != ".") {
        let next = cur.join(part);
        match fs::symlink_metadata(&next) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = fs::canonicalize(&next).map_err(sub_path_io("resolving", &next))?;
                if !target.starts_with(&root) {
                    return Err(SubPathError::Escapes(sub.to_string()));
                }
                cur = target;
            }
            Ok(_) => cur = next,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .mode(mode)
                    .create(&next)
                    .map_err(sub_path_io("creating subPath directory", &next))?;
                fs::set_permissions(&next, fs::Permissions::from_mode(mode))
                    .map_err(sub_path_io("setting the mode of", &next))?;
                cur = next;
            }
            Err(e) => return Err(sub_path_io("inspecting", &next)(e)),
        }
    }
    Ok(cur)
}

fn mount_tmpfs(dir: &Path, size: Option<u64>) -> nix::Result<()> {
    use nix::mount::{MsFlags, mount};
    // Go adds only the size; with none, tmpfs defaults to half the RAM.
    let data = size.filter(|s| *s > 0).map(|s| format!("size={s}"));
    mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::empty(),
        data.as_deref(),
    )
}

/// Mount points at or below `dir`, from /proc/self/mountinfo.
fn mounts_under(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let info = fs::read_to_string("/proc/self/mountinfo")?;
    Ok(info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mount_path(p)))
        .filter(|p| p.starts_with(dir))
        .collect())
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount_path(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match oct {
            Some(d) => {
                out.push(
                    d.iter()
                        .fold(0u8, |acc, c| acc.wrapping_mul(8).wrapping_add(c - b'0')),
                );
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
