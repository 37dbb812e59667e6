//! Per-pod cgroups (the Go kubelet's `pod_container_manager_linux.go`):
//! `pod<uid>` under the pod's QoS tier, with the pod-level limits of
//! `ResourceConfigForPod`; removed after the pod, and orphans removed once
//! nothing runs in them.

/// The prefix of a pod cgroup's name.
pub const POD_CGROUP_PREFIX: &str = "pod";

/// `pod<uid>`.
pub fn pod_cgroup_suffix(uid: &str) -> String {
    format!("{POD_CGROUP_PREFIX}{uid}")
}

/// Whether a UID is safe as a path element (the UIDs berth computes are
/// hex; anything with '/' or ".." must never reach the file system).
pub fn valid_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 128
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The UID of a `pod<uid>` directory name.
pub fn uid_of(dir_name: &str) -> Option<&str> {
    dir_name
        .strip_prefix(POD_CGROUP_PREFIX)
        .filter(|uid| valid_uid(uid))
}

/// `root` + `name` as a relative cgroup name ("/" + "kubepods" →
/// "kubepods", "/custom/" + "kubepods" → "custom/kubepods").
pub fn join_name(root: &str, name: &str) -> String {
    let root = root.trim_matches('/');
    if root.is_empty() {
        name.to_string()
    } else {
        format!("{root}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(pod_cgroup_suffix("abc"), "podabc");
        assert_eq!(uid_of("podabc-12"), Some("abc-12"));
        assert_eq!(uid_of("pod"), None);
        assert_eq!(uid_of("pod.."), None);
        assert_eq!(uid_of("burstable"), None);
        assert!(!valid_uid("a/b"));
        assert_eq!(join_name("/", "kubepods"), "kubepods");
        assert_eq!(join_name("/custom/", "kubepods"), "custom/kubepods");
    }
}
