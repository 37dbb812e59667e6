//! Tests of the volume manager on temporary directories.
use super::*;
use std::os::unix::fs::symlink;

fn pod(spec: serde_json::Value) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "u-1"},
        "spec": spec,
    }))
    .unwrap()
}

fn with_volumes(volumes: serde_json::Value) -> Pod {
    pod(serde_json::json!({"volumes": volumes, "containers": [{"name": "c", "image": "i"}]}))
}

fn container(v: serde_json::Value) -> Container {
    serde_json::from_value(v).unwrap()
}

fn manager() -> (tempfile::TempDir, VolumeManager) {
    let root = tempfile::tempdir().unwrap();
    let vm = VolumeManager::new(root.path().join("kubelet"));
    (root, vm)
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

fn host_path_err(path: &Path, ty: &str) -> String {
    let (_root, vm) = manager();
    let p =
        with_volumes(serde_json::json!([{"name": "data", "hostPath": {"path": path, "type": ty}}]));
    vm.prepare(&p).unwrap_err().to_string()
}

fn host_path_ok(path: &Path, ty: &str) {
    let (_root, vm) = manager();
    let p =
        with_volumes(serde_json::json!([{"name": "data", "hostPath": {"path": path, "type": ty}}]));
    vm.prepare(&p).unwrap();
}

#[test]
fn empty_dir_is_created_world_writable_and_kept_on_repeat() {
    let (_root, vm) = manager();
    let p =
        with_volumes(serde_json::json!([{"name": "cache", "emptyDir": {}}, {"name": "nosource"}]));
    vm.prepare(&p).unwrap();
    let dir = vm
        .pod_dir("u-1")
        .join("volumes/kubernetes.io~empty-dir/cache");
    assert_eq!(mode(&dir), 0o777);
    assert_eq!(mode(&vm.pod_dir("u-1")), 0o750);
    // A volume without a source is an emptyDir, as the API defaults it.
    assert!(
        vm.pod_dir("u-1")
            .join("volumes/kubernetes.io~empty-dir/nosource")
            .is_dir()
    );
    fs::write(dir.join("keep"), "x").unwrap();
    vm.prepare(&p).unwrap();
    assert_eq!(fs::read_to_string(dir.join("keep")).unwrap(), "x");
}

#[test]
fn empty_dir_refuses_unknown_medium_and_bad_size() {
    let (_root, vm) = manager();
    let p = with_volumes(serde_json::json!([{"name": "h", "emptyDir": {"medium": "HugePages"}}]));
    let e = vm.prepare(&p).unwrap_err().to_string();
    assert!(
        e.starts_with("volume \"h\": emptyDir ")
            && e.contains("medium \"HugePages\" is not supported"),
        "{e}"
    );
    let p = with_volumes(
        serde_json::json!([{"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": "lots"}}]),
    );
    let e = vm.prepare(&p).unwrap_err().to_string();
    assert!(
        e.contains("sizeLimit \"lots\" is not a valid quantity"),
        "{e}"
    );
}

#[test]
fn memory_empty_dir_is_a_sized_tmpfs_and_cleanup_unmounts_it() {
    let (_root, vm) = manager();
    let p = with_volumes(
        serde_json::json!([{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}]),
    );
    vm.prepare(&p).unwrap();
    let dir = fs::canonicalize(
        vm.pod_dir("u-1")
            .join("volumes/kubernetes.io~empty-dir/shm"),
    )
    .unwrap();
    let line = |dir: &Path| {
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(dir.to_str().unwrap()))
            .map(str::to_string)
    };
    let l = line(&dir).expect("tmpfs mounted");
    assert!(l.contains(" - tmpfs ") && l.contains("size=1024k"), "{l}");
    // Idempotent: no second mount stacked on the first.
    vm.prepare(&p).unwrap();
    let count = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(dir.to_str().unwrap()))
        .count();
    assert_eq!(count, 1);
    vm.cleanup("u-1").unwrap();
    assert!(line(&dir).is_none());
    assert!(!vm.pod_dir("u-1").exists());
}

#[test]
fn host_path_directory_types() {
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("f");
    fs::write(&file, "").unwrap();
    host_path_ok(t.path(), "Directory");
    assert_eq!(
        host_path_err(&file, "Directory"),
        format!(
            "volume \"data\": hostPath {0}: type Directory but {0} is a file",
            file.display()
        )
    );
    let missing = t.path().join("missing");
    assert_eq!(
        host_path_err(&missing, "Directory"),
        format!(
            "volume \"data\": hostPath {0}: type Directory but {0} does not exist",
            missing.display()
        )
    );
    let made = t.path().join("a/b");
    host_path_ok(&made, "DirectoryOrCreate");
    assert!(made.is_dir());
    assert_eq!(mode(&made) & 0o777, 0o755 & !umask());
    // DirectoryOrCreate still checks what is already there.
    assert!(host_path_err(&file, "DirectoryOrCreate").ends_with("is a file"));
}

fn umask() -> u32 {
    // Read back the umask through a freshly created dir.
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("d");
    fs::DirBuilder::new().mode(0o777).create(&d).unwrap();
    !mode(&d) & 0o777
}

#[test]
fn host_path_file_types() {
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("f");
    fs::write(&file, "data").unwrap();
    host_path_ok(&file, "File");
    assert!(
        host_path_err(t.path(), "File")
            .ends_with(&format!("{} is a directory", t.path().display()))
    );
    let new = t.path().join("new");
    host_path_ok(&new, "FileOrCreate");
    assert_eq!(fs::metadata(&new).unwrap().len(), 0);
    assert_eq!(mode(&new) & 0o777, 0o644 & !umask());
    // An existing file is left alone.
    host_path_ok(&file, "FileOrCreate");
    assert_eq!(fs::read_to_string(&file).unwrap(), "data");
    // The parent is not created, as in Go.
    let orphan = t.path().join("nodir/f");
    assert!(host_path_err(&orphan, "FileOrCreate").contains("creating the file"));
    assert!(!t.path().join("nodir").exists());
}

#[test]
fn host_path_special_types() {
    let t = tempfile::tempdir().unwrap();
    let sock = t.path().join("s.sock");
    let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    host_path_ok(&sock, "Socket");
    let file = t.path().join("f");
    fs::write(&file, "").unwrap();
    assert!(host_path_err(&file, "Socket").ends_with("is a file"));
    host_path_ok(Path::new("/dev/null"), "CharDevice");
    assert!(host_path_err(&file, "CharDevice").ends_with("is a file"));
    assert_eq!(
        host_path_err(Path::new("/dev/null"), "BlockDevice"),
        "volume \"data\": hostPath /dev/null: type BlockDevice but /dev/null is a character device"
    );
    // No type: no check, nothing created.
    let missing = t.path().join("missing");
    host_path_ok(&missing, "");
    assert!(!missing.exists());
    assert_eq!(
        host_path_err(&file, "Fifo"),
        format!(
            "volume \"data\": hostPath {}: \"Fifo\" is not a valid hostPath type",
            file.display()
        )
    );
    assert!(host_path_err(Path::new("rel/dir"), "").ends_with("the path must be absolute"));
    assert!(host_path_err(Path::new("/srv/../etc"), "").ends_with("must not contain '..'"));
}

#[test]
fn unsupported_sources_are_refused_before_anything_is_made() {
    let cases = [
        (
            serde_json::json!({"name": "cfg", "persistentVolumeClaim": {"claimName": "x"}}),
            "persistentVolumeClaim",
            "volume plugin",
        ),
        (
            serde_json::json!({"name": "cfg", "nfs": {"server": "s", "path": "/p"}}),
            "nfs",
            "berth supports emptyDir, hostPath, configMap, secret, downwardAPI and projected",
        ),
    ];
    for (vol, kind, why) in cases {
        let (_root, vm) = manager();
        let p = with_volumes(serde_json::json!([{"name": "ok", "emptyDir": {}}, vol]));
        let e = vm.prepare(&p).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "volume \"cfg\": {kind} volumes are not supported: "
            )),
            "{e}"
        );
        assert!(e.contains(why), "{e}");
        assert!(!vm.pod_dir("u-1").exists(), "{kind}");
    }
    let (_root, vm) = manager();
    let p = with_volumes(
        serde_json::json!([{"name": "two", "emptyDir": {}, "hostPath": {"path": "/tmp"}}]),
    );
    assert!(
        vm.prepare(&p)
            .unwrap_err()
            .to_string()
            .contains("more than one source")
    );
    let p = with_volumes(serde_json::json!([{"name": "../x", "emptyDir": {}}]));
    assert!(
        vm.prepare(&p)
            .unwrap_err()
            .to_string()
            .starts_with("volume \"../x\": ")
    );
}

#[test]
fn bad_uids_are_refused() {
    let (root, vm) = manager();
    for uid in ["", "a/b", "..", "x..y", "."] {
        assert!(
            matches!(vm.cleanup(uid), Err(VolumeError::BadUid { .. })),
            "{uid:?}"
        );
    }
    let mut p = with_volumes(serde_json::json!([]));
    p.metadata.uid = Some("../../etc".into());
    assert!(matches!(vm.prepare(&p), Err(VolumeError::BadUid { .. })));
    assert!(!root.path().join("etc").exists());
}

#[test]
fn volume_mounts_map_to_cri_mounts() {
    let t = tempfile::tempdir().unwrap();
    let (_root, vm) = manager();
    let p = pod(serde_json::json!({
        "volumes": [{"name": "cache", "emptyDir": {}}, {"name": "host", "hostPath": {"path": t.path()}}],
        "containers": [{"name": "c", "image": "i"}],
    }));
    vm.prepare(&p).unwrap();
    let c = container(
        serde_json::json!({"name": "c", "image": "i", "terminationMessagePath": "", "volumeMounts": [
            {"name": "cache", "mountPath": "/cache"},
            {"name": "host", "mountPath": "/host", "readOnly": true, "mountPropagation": "HostToContainer"},
            {"name": "host", "mountPath": "rel", "mountPropagation": "None"},
        ]}),
    );
    let m = vm.mounts(&p, &c, 0, "").unwrap();
    let cache = vm
        .pod_dir("u-1")
        .join("volumes/kubernetes.io~empty-dir/cache");
    let got: Vec<_> = m
        .iter()
        .map(|m| {
            (
                m.container_path.as_str(),
                m.host_path.as_str(),
                m.readonly,
                m.propagation,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "/cache",
                cache.to_str().unwrap(),
                false,
                pb::MountPropagation::PropagationPrivate as i32
            ),
            (
                "/host",
                t.path().to_str().unwrap(),
                true,
                pb::MountPropagation::PropagationHostToContainer as i32
            ),
            (
                "/rel",
                t.path().to_str().unwrap(),
                false,
                pb::MountPropagation::PropagationPrivate as i32
            ),
        ]
    );
}

#[test]
fn bidirectional_needs_a_privileged_container() {
    let t = tempfile::tempdir().unwrap();
    let (_root, vm) = manager();
    let p = pod(
        serde_json::json!({"volumes": [{"name": "h", "hostPath": {"path": t.path()}}], "containers": []}),
    );
    let mut c = container(
        serde_json::json!({"name": "c", "terminationMessagePath": "",
        "volumeMounts": [{"name": "h", "mountPath": "/h", "mountPropagation": "Bidirectional"}]}),
    );
    let e = vm.mounts(&p, &c, 0, "").unwrap_err().to_string();
    assert_eq!(
        e,
        "container \"c\": volumeMount \"h\" at /h: Bidirectional mount propagation is available only to privileged containers"
    );
    c.security_context =
        Some(serde_json::from_value(serde_json::json!({"privileged": true})).unwrap());
    let m = vm.mounts(&p, &c, 0, "").unwrap();
    assert_eq!(
        m[0].propagation,
        pb::MountPropagation::PropagationBidirectional as i32
    );
    c.volume_mounts.as_mut().unwrap()[0].mount_propagation = Some("Sideways".into());
    assert!(
        vm.mounts(&p, &c, 0, "")
            .unwrap_err()
            .to_string()
            .ends_with("invalid mountPropagation \"Sideways\"")
    );
}

#[test]
fn missing_volume_is_named() {
    let (_root, vm) = manager();
    let p = with_volumes(serde_json::json!([]));
    let c = container(
        serde_json::json!({"name": "c", "volumeMounts": [{"name": "nope", "mountPath": "/x"}]}),
    );
    assert_eq!(
        vm.mounts(&p, &c, 0, "").unwrap_err().to_string(),
        "cannot find volume \"nope\" to mount into container \"c\""
    );
}

#[test]
fn sub_paths_are_created_inside_the_volume_and_escapes_refused() {
    let outside = tempfile::tempdir().unwrap();
    let (_root, vm) = manager();
    let p = with_volumes(serde_json::json!([{"name": "v", "emptyDir": {}}]));
    vm.prepare(&p).unwrap();
    let vol = vm.pod_dir("u-1").join("volumes/kubernetes.io~empty-dir/v");
    let mount = |sub: &str| {
        let c = container(
            serde_json::json!({"name": "c", "terminationMessagePath": "",
            "volumeMounts": [{"name": "v", "mountPath": "/data", "subPath": sub}]}),
        );
        vm.mounts(&p, &c, 0, "")
    };
    let m = mount("a/b").unwrap();
    let made = fs::canonicalize(&vol).unwrap().join("a/b");
    assert_eq!(m[0].host_path, made.to_str().unwrap());
    // Created with the volume's mode, as Go does.
    assert_eq!(mode(&made), 0o777);
    assert_eq!(mode(&vol.join("a")), 0o777);

    for (sub, why) in [
        ("/etc", "must not be an absolute path"),
        ("a/../../x", "must not contain '..'"),
        ("..", "must not contain '..'"),
    ] {
        let e = mount(sub).unwrap_err().to_string();
        assert!(
            e.starts_with("container \"c\": volumeMount \"v\" at /data: subPath"),
            "{e}"
        );
        assert!(e.ends_with(why), "{e}");
    }
    assert_eq!(
        mount("/etc").unwrap_err().to_string(),
        "container \"c\": volumeMount \"v\" at /data: subPath \"/etc\" must not be an absolute path"
    );
    // A symlink inside the volume leading out of it.
    symlink(outside.path(), vol.join("link")).unwrap();
    let e = mount("link/sub").unwrap_err().to_string();
    assert!(e.ends_with("resolves outside the volume"), "{e}");
    assert!(!outside.path().join("sub").exists());
    // One staying inside is fine.
    symlink(vol.join("a"), vol.join("inner")).unwrap();
    assert_eq!(
        mount("inner/b").unwrap()[0].host_path,
        made.to_str().unwrap()
    );
    let c = container(serde_json::json!({"name": "c",
        "volumeMounts": [{"name": "v", "mountPath": "/data", "subPathExpr": "$(POD)"}]}));
    assert!(
        vm.mounts(&p, &c, 0, "")
            .unwrap_err()
            .to_string()
            .contains("subPathExpr is not supported")
    );
}

#[test]
fn managed_hosts_file_has_the_go_kubelet_content() {
    let (_root, vm) = manager();
    let p = pod(serde_json::json!({
        "hostname": "myhost", "subdomain": "sub",
        "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["foo", "bar"]}, {"ip": "10.1.2.4", "hostnames": ["baz"]}],
        "containers": [{"name": "c", "image": "i"}],
    }));
    let c = container(serde_json::json!({"name": "c", "terminationMessagePath": ""}));
    let m = vm.mounts(&p, &c, 0, "10.88.0.5").unwrap();
    let hosts = vm.pod_dir("u-1").join("etc-hosts");
    assert_eq!(m.len(), 1);
    assert_eq!(
        (
            m[0].container_path.as_str(),
            m[0].host_path.as_str(),
            m[0].readonly
        ),
        ("/etc/hosts", hosts.to_str().unwrap(), false)
    );
    assert_eq!(
        fs::read_to_string(&hosts).unwrap(),
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n\
         10.88.0.5\tmyhost\n\
         \n\
         # Entries added by HostAliases.\n\
         10.1.2.3\tfoo\tbar\n\
         10.1.2.4\tbaz\n"
    );
    assert_eq!(mode(&hosts), 0o644);
    // A new pod IP rewrites the same file in place.
    let ino = fs::metadata(&hosts).unwrap().ino();
    vm.mounts(&p, &c, 0, "10.88.0.9").unwrap();
    let text = fs::read_to_string(&hosts).unwrap();
    assert!(
        text.contains("10.88.0.9\tmyhost\n") && !text.contains("10.88.0.5"),
        "{text}"
    );
    assert_eq!(fs::metadata(&hosts).unwrap().ino(), ino);
}

#[test]
fn hosts_file_is_skipped_without_an_ip_or_when_the_container_mounts_its_own() {
    let t = tempfile::tempdir().unwrap();
    let (_root, vm) = manager();
    let p = pod(
        serde_json::json!({"volumes": [{"name": "h", "hostPath": {"path": t.path()}}], "containers": []}),
    );
    let c = container(serde_json::json!({"name": "c", "terminationMessagePath": ""}));
    assert!(vm.mounts(&p, &c, 0, "").unwrap().is_empty());
    assert!(!vm.pod_dir("u-1").join("etc-hosts").exists());
    let own = container(
        serde_json::json!({"name": "c", "terminationMessagePath": "",
        "volumeMounts": [{"name": "h", "mountPath": "/etc/hosts", "subPath": "hosts"}]}),
    );
    let m = vm.mounts(&p, &own, 0, "10.0.0.1").unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(
        m[0].host_path,
        fs::canonicalize(t.path())
            .unwrap()
            .join("hosts")
            .to_str()
            .unwrap()
    );
}

#[test]
fn host_network_pods_get_the_node_hosts_file() {
    let t = tempfile::tempdir().unwrap();
    let node = t.path().join("hosts");
    fs::write(&node, "127.0.0.1 localhost\n192.168.1.1 node1\n").unwrap();
    let (_root, vm) = manager();
    let vm = vm.with_node_hosts_file(node);
    let p = pod(serde_json::json!({"hostNetwork": true,
        "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["foo"]}], "containers": []}));
    let c = container(serde_json::json!({"name": "c", "terminationMessagePath": ""}));
    // The runtime reports no IP for hostNetwork sandboxes.
    let m = vm.mounts(&p, &c, 0, "").unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(
        fs::read_to_string(&m[0].host_path).unwrap(),
        "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n192.168.1.1 node1\n\
         \n# Entries added by HostAliases.\n10.1.2.3\tfoo\n"
    );
}

#[test]
fn termination_message_file_is_fresh_per_instance() {
    let (_root, vm) = manager();
    let p = with_volumes(serde_json::json!([]));
    let c = container(serde_json::json!({"name": "app"}));
    let m = vm.mounts(&p, &c, 3, "").unwrap();
    let file = vm.termination_message_file("u-1", "app", 3);
    assert_eq!(file, vm.pod_dir("u-1").join("containers/app/3"));
    assert_eq!(m.len(), 1);
    assert_eq!(
        (
            m[0].container_path.as_str(),
            m[0].host_path.as_str(),
            m[0].readonly
        ),
        ("/dev/termination-log", file.to_str().unwrap(), false)
    );
    assert_eq!(fs::metadata(&file).unwrap().len(), 0);
    assert_eq!(mode(&file), 0o666);
    // Re-creating the same instance starts from an empty file.
    fs::write(&file, "old message").unwrap();
    vm.mounts(&p, &c, 3, "").unwrap();
    assert_eq!(fs::metadata(&file).unwrap().len(), 0);

    let custom =
        container(serde_json::json!({"name": "app", "terminationMessagePath": "/tmp/msg"}));
    let m = vm.mounts(&p, &custom, 4, "").unwrap();
    assert_eq!(m[0].container_path, "/tmp/msg");
    assert!(vm.termination_message_file("u-1", "app", 4).is_file());
}

#[test]
fn cleanup_removes_the_pod_tree_and_nothing_outside_it() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("precious"), "keep").unwrap();
    let (root, vm) = manager();
    let p = pod(serde_json::json!({
        "volumes": [{"name": "cache", "emptyDir": {}}, {"name": "host", "hostPath": {"path": outside.path()}}],
        "containers": [],
    }));
    vm.prepare(&p).unwrap();
    let c = container(serde_json::json!({"name": "c",
        "volumeMounts": [{"name": "host", "mountPath": "/h"}, {"name": "cache", "mountPath": "/c"}]}));
    vm.mounts(&p, &c, 0, "10.0.0.1").unwrap();
    let cache = vm
        .pod_dir("u-1")
        .join("volumes/kubernetes.io~empty-dir/cache");
    fs::write(cache.join("data"), "x").unwrap();
    // Symlinks inside the pod dir leading out of it must not be followed.
    symlink(outside.path(), cache.join("link")).unwrap();
    symlink(
        outside.path().join("precious"),
        vm.pod_dir("u-1").join("filelink"),
    )
    .unwrap();
    let other = with_volumes(serde_json::json!([]));
    let mut other = other;
    other.metadata.uid = Some("u-2".into());
    vm.prepare(&other).unwrap();
    assert_eq!(vm.pod_dirs(), ["u-1", "u-2"]);

    vm.cleanup("u-1").unwrap();
    assert!(!vm.pod_dir("u-1").exists());
    assert_eq!(
        fs::read_to_string(outside.path().join("precious")).unwrap(),
        "keep"
    );
    assert!(vm.pod_dir("u-2").is_dir());
    assert_eq!(vm.pod_dirs(), ["u-2"]);
    // Gone already: nothing to do.
    vm.cleanup("u-1").unwrap();
    // A pod dir that is itself a symlink: only the link goes.
    symlink(outside.path(), root.path().join("kubelet/pods/u-3")).unwrap();
    vm.cleanup("u-3").unwrap();
    assert!(outside.path().join("precious").exists());
}

#[test]
fn pod_dirs_is_empty_without_a_root() {
    let (_root, vm) = manager();
    assert!(vm.pod_dirs().is_empty());
}

#[test]
fn quantities_parse_to_bytes() {
    for (q, want) in [
        ("1Mi", Some(1 << 20)),
        ("64Mi", Some(64 << 20)),
        ("1.5Gi", Some(3 << 29)),
        ("1G", Some(1_000_000_000)),
        ("100k", Some(100_000)),
        ("12", Some(12)),
        ("1e3", Some(1000)),
        ("1E", Some(1_000_000_000_000_000_000)),
        ("1500m", Some(2)),
        ("0", Some(0)),
        ("", None),
        ("Mi", None),
        ("1Xi", None),
        ("-1Mi", None),
        ("1.2.3", None),
        // Saturates, as api::Quantity (and Go's Value()) does.
        ("99999999999Ei", Some(i64::MAX as u64)),
    ] {
        assert_eq!(quantity_bytes(q), want, "{q}");
    }
}

#[test]
fn mountinfo_paths_are_unescaped() {
    assert_eq!(unescape_mount_path("/a\\040b\\011c\\134d"), "/a b\tc\\d");
    assert_eq!(unescape_mount_path("/trailing\\04"), "/trailing\\04");
}
