//! The pod's fsGroup applied to its volumes (Go's `SetVolumeOwnership` in
//! `pkg/volume/volume_linux.go`), and the user a projected token belongs to
//! (Go's `FsUserFrom`).
//!
//! Every file and directory of the volume gets the fsGroup as its group
//! and the group bits its kind needs: read (`0440`) on a read-only volume
//! (configMap, secret, downwardAPI, projected), read-write (`0660`) on an
//! emptyDir; directories also get search (`0110`) and setgid, so what
//! containers create later inherits the group. Symlinks get the group only
//! (a chmod would follow them).

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use k8s_openapi::api::core::v1::Pod;

const RW_MASK: u32 = 0o660;
const RO_MASK: u32 = 0o440;
const EXEC_MASK: u32 = 0o110;
const SETGID: u32 = 0o2000;

/// How deep a volume's tree may go before the walk gives up (a guard
/// against a loop of bind mounts; atomic-writer volumes are 3 deep).
const MAX_DEPTH: usize = 64;

/// The pod's `securityContext.fsGroup` and its change policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsGroup {
    pub gid: u32,
    /// `fsGroupChangePolicy: OnRootMismatch`: leave a volume alone when its
    /// root already has the group and the bits.
    pub on_root_mismatch: bool,
}

impl FsGroup {
    /// The pod's fsGroup; None when unset or outside the IDs a group can
    /// have (the apiserver allows 0 to 2^31-1; a static pod is not
    /// validated by it, and such a value is ignored with a warning).
    pub fn of(pod: &Pod) -> Option<FsGroup> {
        let sc = pod.spec.as_ref()?.security_context.as_ref()?;
        let raw = sc.fs_group?;
        let Ok(gid) = u32::try_from(raw) else {
            tracing::warn!(
                pod = %crate::pod_ref(pod),
                uid = %crate::pod_uid(pod),
                fs_group = raw,
                "securityContext.fsGroup is not a group ID; the pod's volumes keep their owners"
            );
            return None;
        };
        Some(FsGroup {
            gid,
            on_root_mismatch: sc.fs_group_change_policy.as_deref() == Some("OnRootMismatch"),
        })
    }
}

/// Gives the volume at `dir` the group and group bits of `fs_group`.
pub fn set_volume_ownership(dir: &Path, fs_group: FsGroup, read_only: bool) -> io::Result<()> {
    let mask = if read_only { RO_MASK } else { RW_MASK };
    if fs_group.on_root_mismatch && !needs_change(dir, fs_group.gid, mask)? {
        return Ok(());
    }
    walk(dir, fs_group.gid, mask, 0)
}

/// Go's `requiresPermissionChange`: the root's group, setgid, and the
/// group bits of a directory under `mask`.
fn needs_change(dir: &Path, gid: u32, mask: u32) -> io::Result<bool> {
    let m = fs::symlink_metadata(dir)?;
    let want = mask | EXEC_MASK;
    Ok(m.gid() != gid || m.mode() & SETGID == 0 || m.mode() & want != want)
}

fn walk(path: &Path, gid: u32, mask: u32, depth: usize) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(io::Error::other(format!(
            "{} is more than {MAX_DEPTH} directories deep",
            path.display()
        )));
    }
    let m = fs::symlink_metadata(path)?;
    std::os::unix::fs::lchown(path, None, Some(gid))?;
    if m.file_type().is_symlink() {
        return Ok(());
    }
    let mode = m.mode() & 0o7777;
    let want = if m.is_dir() {
        mode | mask | EXEC_MASK | SETGID
    } else {
        mode | mask
    };
    if want != mode {
        fs::set_permissions(path, fs::Permissions::from_mode(want))?;
    }
    if m.is_dir() {
        for entry in fs::read_dir(path)? {
            walk(&entry?.path(), gid, mask, depth + 1)?;
        }
    }
    Ok(())
}

/// The user every container of the pod runs as, when they all name the
/// same one (Go's `FsUserFrom`): a projected token is then owned by that
/// user, so a non-root container can read its 0600 token. None when a
/// container leaves its user to the image, or two differ.
pub fn fs_user(pod: &Pod) -> Option<i64> {
    let spec = pod.spec.as_ref()?;
    let pod_user = spec.security_context.as_ref().and_then(|s| s.run_as_user);
    let effective = |sc: Option<&k8s_openapi::api::core::v1::SecurityContext>| {
        sc.and_then(|s| s.run_as_user).or(pod_user)
    };
    let users = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| effective(c.security_context.as_ref()))
        .chain(
            spec.containers
                .iter()
                .map(|c| effective(c.security_context.as_ref())),
        )
        .chain(
            spec.ephemeral_containers
                .iter()
                .flatten()
                .map(|c| effective(c.security_context.as_ref())),
        );
    let mut user = None;
    for u in users {
        let u = u?;
        match user {
            None => user = Some(u),
            Some(prev) if prev != u => return None,
            Some(_) => {}
        }
    }
    user
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    fn gid(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().gid()
    }

    /// A volume as the atomic writer leaves it: a version directory, the
    /// `..data` link, and a user-visible link to a file.
    fn atomic_volume(root: &Path) {
        let v = root.join("..2026_12_02_07_00_00.1");
        fs::create_dir_all(&v).unwrap();
        fs::set_permissions(root, fs::Permissions::from_mode(0o777)).unwrap();
        fs::set_permissions(&v, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(v.join("key"), "v").unwrap();
        fs::set_permissions(v.join("key"), fs::Permissions::from_mode(0o400)).unwrap();
        symlink("..2026_12_02_07_00_00.1", root.join("..data")).unwrap();
        symlink("..data/key", root.join("key")).unwrap();
    }

    #[test]
    fn read_only_volume_gets_the_group_and_read_bits() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("vol");
        fs::create_dir(&root).unwrap();
        atomic_volume(&root);
        let g = FsGroup {
            gid: 4321,
            on_root_mismatch: false,
        };
        set_volume_ownership(&root, g, true).unwrap();
        let v = root.join("..2026_12_02_07_00_00.1");
        assert_eq!(mode(&v.join("key")), 0o440, "0400 | 0440");
        assert_eq!(gid(&v.join("key")), 4321);
        assert_eq!(mode(&v), 0o2755, "0755 | 0550 | setgid");
        assert_eq!(mode(&root), 0o2777);
        assert_eq!(gid(&root), 4321);
        // The links are chowned themselves (not their targets: same file).
        assert_eq!(gid(&root.join("..data")), 4321);
        assert_eq!(gid(&root.join("key")), 4321);
        assert!(
            fs::symlink_metadata(root.join("key"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn read_write_volume_gets_write_bits() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("scratch");
        fs::create_dir(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o777)).unwrap();
        fs::write(root.join("f"), "x").unwrap();
        fs::set_permissions(root.join("f"), fs::Permissions::from_mode(0o600)).unwrap();
        let g = FsGroup {
            gid: 2000,
            on_root_mismatch: false,
        };
        set_volume_ownership(&root, g, false).unwrap();
        assert_eq!(mode(&root.join("f")), 0o660);
        assert_eq!(mode(&root), 0o2777);
        assert_eq!(gid(&root.join("f")), 2000);
    }

    #[test]
    fn on_root_mismatch_skips_a_volume_whose_root_is_right() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("vol");
        fs::create_dir(&root).unwrap();
        fs::write(root.join("f"), "x").unwrap();
        fs::set_permissions(root.join("f"), fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::lchown(&root, None, Some(3000)).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o2770)).unwrap();
        let g = FsGroup {
            gid: 3000,
            on_root_mismatch: true,
        };
        set_volume_ownership(&root, g, false).unwrap();
        assert_eq!(mode(&root.join("f")), 0o600, "left alone");
        // A root with another group is walked.
        let g = FsGroup {
            gid: 3001,
            on_root_mismatch: true,
        };
        set_volume_ownership(&root, g, false).unwrap();
        assert_eq!(mode(&root.join("f")), 0o660);
        assert_eq!(gid(&root.join("f")), 3001);
    }

    fn pod(yaml: &str) -> Pod {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn fs_group_of_a_pod() {
        let p = pod(
            "spec:\n  securityContext: {fsGroup: 2000, fsGroupChangePolicy: OnRootMismatch}\n  containers: [{name: a}]\n",
        );
        assert_eq!(
            FsGroup::of(&p),
            Some(FsGroup {
                gid: 2000,
                on_root_mismatch: true
            })
        );
        assert_eq!(
            FsGroup::of(&pod("spec:\n  containers: [{name: a}]\n")),
            None
        );
        let bad = pod("spec:\n  securityContext: {fsGroup: -1}\n  containers: [{name: a}]\n");
        assert_eq!(FsGroup::of(&bad), None);
    }

    #[test]
    fn fs_user_is_the_one_user_all_containers_share() {
        let same = pod(
            "spec:\n  securityContext: {runAsUser: 1000}\n  initContainers: [{name: i}]\n  containers: [{name: a}, {name: b, securityContext: {runAsUser: 1000}}]\n",
        );
        assert_eq!(fs_user(&same), Some(1000));
        let differ = pod(
            "spec:\n  securityContext: {runAsUser: 1000}\n  containers: [{name: a}, {name: b, securityContext: {runAsUser: 1001}}]\n",
        );
        assert_eq!(fs_user(&differ), None);
        let unset =
            pod("spec:\n  containers: [{name: a, securityContext: {runAsUser: 5}}, {name: b}]\n");
        assert_eq!(fs_user(&unset), None, "b runs as the image's user");
    }
}
