//! The directory source against a real inotify watcher in a temporary directory.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;
use std::time::Duration;

use static_pods::identity::CONFIG_SEEN_ANNOTATION;
use static_pods::{Config, ManifestErrorKind, Snapshot, StaticPodSource};
use tokio::sync::watch;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);
/// Long enough that only inotify, not the periodic rescan, can explain a quick snapshot.
const SLOW_RESCAN: Duration = Duration::from_secs(60);

fn manifest(name: &str, image: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: c\n    image: {image}\n"
    )
}

fn start(dir: &Path, tweak: impl FnOnce(&mut Config)) -> watch::Receiver<Snapshot> {
    let mut config = Config::new(dir, "node1");
    config.file_check_frequency = SLOW_RESCAN;
    tweak(&mut config);
    let (rx, _task) = StaticPodSource::new(config).unwrap().spawn();
    rx
}

async fn next(rx: &mut watch::Receiver<Snapshot>) -> Snapshot {
    timeout(WAIT, rx.changed())
        .await
        .expect("no snapshot in time")
        .expect("source stopped");
    rx.borrow_and_update().clone()
}

/// Waits for a snapshot that satisfies `pred`. In-place writes (truncate, then write) may
/// briefly show an empty file on a loaded machine, so those steps wait for the end state.
async fn wait_for(
    rx: &mut watch::Receiver<Snapshot>,
    pred: impl FnMut(&Snapshot) -> bool,
) -> Snapshot {
    timeout(WAIT, rx.wait_for(pred))
        .await
        .expect("expected snapshot did not arrive in time")
        .expect("source stopped")
        .clone()
}

async fn assert_quiet(rx: &mut watch::Receiver<Snapshot>, for_: Duration) {
    if let Ok(res) = timeout(for_, rx.changed()).await {
        res.expect("source stopped");
        panic!("unexpected snapshot: {:#?}", *rx.borrow());
    }
}

fn names(s: &Snapshot) -> Vec<String> {
    s.pods.iter().map(|p| p.full_name()).collect()
}

#[tokio::test]
async fn add_edit_break_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let mut rx = start(dir.path(), |_| {});
    assert_eq!(next(&mut rx).await, Snapshot::default());

    let file = dir.path().join("web.yaml");
    fs::write(&file, manifest("web", "nginx:1.25")).unwrap();
    let added = wait_for(&mut rx, |s| !s.pods.is_empty()).await;
    assert_eq!(names(&added), ["default/web-node1"]);
    assert_eq!(added.pods[0].path, file);
    assert!(added.errors.is_empty());
    let uid1 = added.pods[0].uid().to_string();
    let annotations = added.pods[0].pod.metadata.annotations.clone().unwrap();
    assert!(annotations.contains_key(CONFIG_SEEN_ANNOTATION));

    fs::write(&file, manifest("web", "nginx:1.26")).unwrap();
    let hash = |p: &static_pods::StaticPod| {
        p.pod
            .metadata
            .annotations
            .as_ref()
            .map(|a| a["kubernetes.io/config.hash"].clone())
    };
    let hash1 = hash(&added.pods[0]);
    let edited = wait_for(&mut rx, |s| {
        s.pods.first().is_some_and(|p| hash(p) != hash1)
    })
    .await;
    assert!(edited.errors.is_empty());
    // The UID survives edits (only the changed containers restart).
    let uid2 = edited.pods[0].uid().to_string();
    assert_eq!(uid2, uid1);
    let image = edited.pods[0].pod.spec.as_ref().unwrap().containers[0]
        .image
        .clone();
    assert_eq!(image.as_deref(), Some("nginx:1.26"));

    // Unlike the Go kubelet, a broken edit keeps the last valid pod and reports the error.
    fs::write(&file, manifest("web", "Not A Valid Image")).unwrap();
    let broken = wait_for(&mut rx, |s| {
        s.errors
            .first()
            .is_some_and(|e| !e.field_errors().is_empty())
    })
    .await;
    assert_eq!(broken.pods.len(), 1);
    assert_eq!(broken.pods[0].uid(), uid2);
    assert_eq!(broken.errors.len(), 1);
    assert_eq!(broken.errors[0].path, file);
    assert_eq!(
        broken.errors[0].field_errors()[0].field,
        "spec.containers[0].image"
    );

    fs::remove_file(&file).unwrap();
    let deleted = next(&mut rx).await;
    assert_eq!(deleted, Snapshot::default());
}

#[tokio::test]
async fn editor_leftovers_and_other_files_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let mut rx = start(dir.path(), |_| {});
    next(&mut rx).await;

    let junk = [
        ".web.yaml.swp",
        ".web.yaml.swx",
        "web.yaml~",
        "#web.yaml#",
        "4913",
        "notes.txt",
    ];
    for name in junk {
        fs::write(dir.path().join(name), manifest("junk", "nginx")).unwrap();
    }
    fs::create_dir(dir.path().join("sub.yaml")).unwrap();
    fs::write(
        dir.path().join("sub.yaml/inner.yaml"),
        manifest("inner", "nginx"),
    )
    .unwrap();
    assert_quiet(&mut rx, Duration::from_millis(500)).await;

    fs::write(dir.path().join("real.yml"), manifest("real", "nginx")).unwrap();
    let snap = wait_for(&mut rx, |s| !s.pods.is_empty()).await;
    assert_eq!(names(&snap), ["default/real-node1"]);
    assert!(snap.errors.is_empty(), "{:?}", snap.errors);
}

#[tokio::test]
async fn rename_into_place_gives_one_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut rx = start(dir.path(), |_| {});
    next(&mut rx).await;

    let tmp = dir.path().join(".web.yaml.tmp");
    fs::write(&tmp, manifest("web", "nginx")).unwrap();
    fs::rename(&tmp, dir.path().join("web.yaml")).unwrap();
    let snap = next(&mut rx).await;
    assert_eq!(names(&snap), ["default/web-node1"]);
    assert_quiet(&mut rx, Duration::from_millis(500)).await;
}

#[tokio::test]
async fn symlinked_manifest_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("pod.yaml");
    fs::write(&target, manifest("linked", "nginx")).unwrap();
    let mut rx = start(dir.path(), |_| {});
    next(&mut rx).await;

    let link = dir.path().join("linked.yaml");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let snap = next(&mut rx).await;
    assert_eq!(names(&snap), ["default/linked-node1"]);
    assert_eq!(snap.pods[0].path, link);
}

#[tokio::test]
async fn oversized_files_are_refused_without_reading() {
    let dir = tempfile::tempdir().unwrap();
    // A sparse 11 MiB file: refused from its size alone, against the default 10 MiB limit.
    let big = fs::File::create(dir.path().join("big.yaml")).unwrap();
    big.set_len(11 * 1024 * 1024).unwrap();
    let mut rx = start(dir.path(), |_| {});
    let snap = next(&mut rx).await;
    assert!(snap.pods.is_empty());
    assert_eq!(
        snap.errors[0].kind,
        ManifestErrorKind::TooLarge {
            size: 11 * 1024 * 1024,
            limit: 10 * 1024 * 1024
        }
    );
    assert!(
        snap.errors[0]
            .to_string()
            .ends_with("big.yaml: file is larger than the 10485760-byte limit (11534336 bytes); refusing to read it")
    );

    // A configured smaller limit applies too.
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("web.yaml"), manifest("web", "nginx")).unwrap();
    let mut rx = start(dir.path(), |c| c.max_file_size = 64);
    let snap = next(&mut rx).await;
    assert!(snap.pods.is_empty());
    assert!(matches!(
        snap.errors[0].kind,
        ManifestErrorKind::TooLarge { limit: 64, .. }
    ));
}

#[tokio::test]
async fn duplicate_pod_name_first_path_wins() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.yaml"), manifest("web", "nginx:1")).unwrap();
    fs::write(dir.path().join("b.yaml"), manifest("web", "nginx:2")).unwrap();
    let mut rx = start(dir.path(), |_| {});
    let snap = next(&mut rx).await;
    assert_eq!(names(&snap), ["default/web-node1"]);
    assert_eq!(snap.pods[0].path, dir.path().join("a.yaml"));
    assert_eq!(snap.errors.len(), 1);
    assert_eq!(
        snap.errors[0].to_string(),
        format!(
            "{}: pod \"default/web-node1\" is already defined by {}",
            dir.path().join("b.yaml").display(),
            dir.path().join("a.yaml").display()
        )
    );
}

#[tokio::test]
async fn missing_directory_is_picked_up_when_created() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("manifests");
    let mut rx = start(&dir, |_| {});
    assert_eq!(next(&mut rx).await, Snapshot::default());

    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("web.yaml"), manifest("web", "nginx")).unwrap();
    let snap = wait_for(&mut rx, |s| !s.pods.is_empty()).await;
    assert_eq!(names(&snap), ["default/web-node1"]);

    // Once watched, changes arrive through inotify.
    fs::write(dir.join("two.json"), r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"two"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}"#).unwrap();
    let snap = wait_for(&mut rx, |s| s.pods.len() == 2).await;
    assert_eq!(names(&snap), ["default/two-node1", "default/web-node1"]);
}

#[tokio::test]
async fn periodic_rescans_of_unchanged_files_send_nothing() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("web.yaml"), manifest("web", "nginx")).unwrap();
    fs::write(dir.path().join("bad.yaml"), "kind: Pod\n").unwrap();
    let mut rx = start(dir.path(), |c| {
        c.file_check_frequency = Duration::from_millis(100);
    });
    let first = next(&mut rx).await;
    assert_eq!(first.pods.len(), 1);
    assert_eq!(first.errors.len(), 1);
    // Several rescans happen here; config.seen must not move, or the snapshot would flap.
    assert_quiet(&mut rx, Duration::from_millis(600)).await;
}

#[test]
fn first_seen_is_kept_for_an_unchanged_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("web.yaml");
    fs::write(&file, manifest("web", "nginx")).unwrap();
    let mut source = StaticPodSource::new(Config::new(dir.path(), "node1")).unwrap();
    let seen = |s: &Snapshot| {
        s.pods[0].pod.metadata.annotations.as_ref().unwrap()[CONFIG_SEEN_ANNOTATION].clone()
    };
    let first = source.scan();
    std::thread::sleep(Duration::from_millis(5));
    // A comment does not change the content, so neither the UID nor the first-seen time.
    fs::write(&file, format!("# touched\n{}", manifest("web", "nginx"))).unwrap();
    let second = source.scan();
    assert_eq!(first, second);
    // A real change is a new version with a new first-seen time.
    std::thread::sleep(Duration::from_millis(5));
    fs::write(&file, manifest("web", "nginx:2")).unwrap();
    let third = source.scan();
    assert_ne!(seen(&first), seen(&third));
}

#[test]
fn bad_config_is_rejected() {
    let bad = |tweak: fn(&mut Config)| {
        let mut c = Config::new("/nonexistent", "node1");
        tweak(&mut c);
        StaticPodSource::new(c).unwrap_err().to_string()
    };
    assert_eq!(bad(|c| c.node_name.clear()), "node name is empty");
    assert_eq!(
        bad(|c| c.node_name = "bad_node".into()),
        "node name \"bad_node\" is not a valid RFC 1123 subdomain (static pod names get it as a suffix)"
    );
    assert_eq!(
        bad(|c| c.file_check_frequency = Duration::ZERO),
        "file check frequency must be greater than zero"
    );
    assert_eq!(
        bad(|c| c.max_file_size = 0),
        "max file size must be greater than zero"
    );
}
