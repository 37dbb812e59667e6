use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;

fn file(data: &str, mode: u32) -> FileProjection {
    FileProjection {
        data: data.as_bytes().to_vec(),
        mode,
        fs_user: None,
    }
}

fn payload(entries: &[(&str, &str)]) -> BTreeMap<String, FileProjection> {
    entries
        .iter()
        .map(|(k, v)| (k.to_string(), file(v, 0o644)))
        .collect()
}

fn writer(dir: &Path) -> AtomicWriter {
    AtomicWriter::new(dir, "test volume").unwrap()
}

fn data_link(dir: &Path) -> PathBuf {
    fs::read_link(dir.join(DATA_DIR_NAME)).unwrap()
}

/// The names in the directory, hidden ones included, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The timestamped version directories present.
fn versions(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.starts_with("..") && n != DATA_DIR_NAME && n != NEW_DATA_DIR_NAME)
        .collect()
}

fn read(dir: &Path, rel: &str) -> String {
    fs::read_to_string(dir.join(rel)).unwrap()
}

#[test]
fn first_write_lays_out_version_data_link_and_visible_links() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let w = writer(dir);
    assert!(
        w.write(&payload(&[("foo", "foo"), ("bar", "bar")]), None)
            .unwrap()
    );

    let version = data_link(dir);
    let version = version.to_str().unwrap();
    // `..` + 2006_01_02_15_04_05 + `.` + digits
    assert!(version.starts_with(".."), "{version}");
    let stamp = &version[2..];
    let (time, random) = stamp.split_once('.').unwrap();
    assert_eq!(time.len(), "2006_01_02_15_04_05".len(), "{version}");
    assert!(time.bytes().all(|b| b.is_ascii_digit() || b == b'_'));
    assert!(!random.is_empty() && random.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(
        fs::metadata(dir.join(version))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o755
    );

    assert_eq!(
        fs::read_link(dir.join("foo")).unwrap(),
        Path::new("..data/foo")
    );
    assert_eq!(
        fs::read_link(dir.join("bar")).unwrap(),
        Path::new("..data/bar")
    );
    assert_eq!(read(dir, "foo"), "foo");
    assert_eq!(read(dir, "bar"), "bar");
    assert_eq!(
        names(dir),
        vec![
            version.to_string(),
            "..data".into(),
            "bar".into(),
            "foo".into()
        ]
    );
}

#[test]
fn unchanged_write_is_a_no_op() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let w = writer(dir);
    let p = payload(&[("foo", "foo"), ("sub/bar", "bar")]);
    assert!(w.write(&p, None).unwrap());
    let before = data_link(dir);
    let calls = std::cell::Cell::new(0);
    let perms = |_: &Path| -> io::Result<()> {
        calls.set(calls.get() + 1);
        Ok(())
    };
    assert!(!w.write(&p, Some(&perms)).unwrap());
    assert_eq!(data_link(dir), before);
    assert_eq!(calls.get(), 0, "set_perms runs only for a new version");
    assert_eq!(versions(dir).len(), 1);
}

#[test]
fn unchanged_write_restores_a_missing_visible_link() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let w = writer(dir);
    let p = payload(&[("foo", "foo")]);
    w.write(&p, None).unwrap();
    fs::remove_file(dir.join("foo")).unwrap();
    assert!(!w.write(&p, None).unwrap());
    assert_eq!(read(dir, "foo"), "foo");
}

#[test]
fn mode_only_change_is_not_a_change() {
    // Go compares data only.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let w = writer(dir);
    w.write(&payload(&[("foo", "foo")]), None).unwrap();
    let mut p = payload(&[("foo", "foo")]);
    p.get_mut("foo").unwrap().mode = 0o600;
    assert!(!w.write(&p, None).unwrap());
}

#[test]
fn update_swaps_content_and_removes_old_version_and_stale_links() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let w = writer(dir);
    w.write(
        &payload(&[("keep", "1"), ("gone", "x"), ("olddir/a", "a")]),
        None,
    )
    .unwrap();
    let old = data_link(dir);

    assert!(
        w.write(&payload(&[("keep", "2"), ("new", "n")]), None)
            .unwrap()
    );
    let new = data_link(dir);
    assert_ne!(old, new);
    assert!(!dir.join(&old).exists(), "old version removed");
    assert_eq!(read(dir, "keep"), "2");
    assert_eq!(read(dir, "new"), "n");
    assert!(fs::symlink_metadata(dir.join("gone")).is_err());
    assert!(fs::symlink_metadata(dir.join("olddir")).is_err());
    assert_eq!(
        names(dir),
        vec![
            new.to_str().unwrap().to_string(),
            "..data".into(),
            "keep".into(),
            "new".into()
        ]
    );
}

#[test]
fn removing_a_file_alone_is_a_change() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let w = writer(dir);
    w.write(&payload(&[("a", "1"), ("b", "2")]), None).unwrap();
    assert!(w.write(&payload(&[("a", "1")]), None).unwrap());
    assert!(fs::symlink_metadata(dir.join("b")).is_err());
    assert_eq!(read(dir, "a"), "1");
}

#[test]
fn nested_paths_link_their_top_element() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let w = writer(dir);
    w.write(
        &payload(&[("a/b/c", "deep"), ("a/d", "d"), ("x/y", "y"), ("top", "t")]),
        None,
    )
    .unwrap();
    assert_eq!(fs::read_link(dir.join("a")).unwrap(), Path::new("..data/a"));
    assert_eq!(fs::read_link(dir.join("x")).unwrap(), Path::new("..data/x"));
    assert_eq!(read(dir, "a/b/c"), "deep");
    assert_eq!(read(dir, "a/d"), "d");
    assert_eq!(read(dir, "x/y"), "y");

    // Dropping a/d keeps the `a` link (a/b/c is still there).
    w.write(&payload(&[("a/b/c", "deep2"), ("top", "t")]), None)
        .unwrap();
    assert_eq!(read(dir, "a/b/c"), "deep2");
    assert!(!dir.join("a/d").exists());
    assert!(fs::symlink_metadata(dir.join("x")).is_err());
}

#[test]
fn a_file_can_become_a_directory_and_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let w = writer(dir);
    w.write(&payload(&[("a", "file")]), None).unwrap();
    assert!(w.write(&payload(&[("a/b", "nested")]), None).unwrap());
    assert_eq!(read(dir, "a/b"), "nested");
    assert!(w.write(&payload(&[("a", "file again")]), None).unwrap());
    assert_eq!(read(dir, "a"), "file again");
}

#[test]
fn paths_are_cleaned() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let w = writer(dir);
    w.write(&payload(&[("./a//b/", "x")]), None).unwrap();
    assert_eq!(read(dir, "a/b"), "x");
}

#[test]
fn modes_are_applied_whatever_the_umask() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let w = writer(dir);
    let mut p = BTreeMap::new();
    p.insert("open".to_string(), file("o", 0o777));
    p.insert("private".to_string(), file("p", 0o400));
    p.insert("sub/group".to_string(), file("g", 0o640));
    // Bits above the permission bits are not applied.
    p.insert("setuid".to_string(), file("s", 0o4755));
    w.write(&p, None).unwrap();
    let mode = |rel: &str| fs::metadata(dir.join(rel)).unwrap().mode() & 0o7777;
    assert_eq!(mode("open"), 0o777);
    assert_eq!(mode("private"), 0o400);
    assert_eq!(mode("sub/group"), 0o640);
    assert_eq!(mode("setuid"), 0o755);
}

#[test]
fn fs_user_chowns_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let w = writer(dir);
    // Our own uid works whether or not the test runs as root.
    let me = i64::from(fs::metadata(dir).unwrap().uid());
    let mut p = BTreeMap::new();
    p.insert(
        "token".to_string(),
        FileProjection {
            data: b"t".to_vec(),
            mode: 0o600,
            fs_user: Some(me),
        },
    );
    w.write(&p, None).unwrap();
    assert_eq!(fs::metadata(dir.join("token")).unwrap().uid() as i64, me);

    p.get_mut("token").unwrap().fs_user = Some(-5);
    p.get_mut("token").unwrap().data = b"u".to_vec();
    assert!(matches!(
        w.write(&p, None),
        Err(AtomicWriteError::BadUser(-5))
    ));
    // The failed version was not published and not left behind.
    assert_eq!(read(dir, "token"), "t");
    assert_eq!(versions(dir).len(), 1);
}

#[test]
fn set_perms_sees_the_new_version_before_it_is_published() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let w = writer(&dir);
    let seen = std::cell::RefCell::new(Vec::new());
    let perms = |version: &Path| -> io::Result<()> {
        assert!(version.join("foo").is_file());
        // Not yet what ..data points to.
        let current = fs::read_link(dir.join(DATA_DIR_NAME)).ok();
        assert_ne!(current.as_deref(), version.file_name().map(Path::new));
        seen.borrow_mut().push(version.to_path_buf());
        Ok(())
    };
    w.write(&payload(&[("foo", "1")]), Some(&perms)).unwrap();
    assert_eq!(seen.borrow().len(), 1);
    assert_eq!(seen.borrow()[0], dir.join(data_link(&dir)));

    let failing = |_: &Path| -> io::Result<()> { Err(io::Error::other("no chown")) };
    let err = w
        .write(&payload(&[("foo", "2")]), Some(&failing))
        .unwrap_err();
    assert!(matches!(err, AtomicWriteError::SetPerms { .. }), "{err}");
    assert_eq!(read(&dir, "foo"), "1");
    assert_eq!(versions(&dir).len(), 1);
}

#[test]
fn invalid_paths_are_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let w = writer(dir);
    let long_name = "x".repeat(256);
    let long_path = format!("{}/y", vec!["a"; 2048].join("/"));
    let cases: Vec<(&str, InvalidPathReason)> = vec![
        ("", InvalidPathReason::Empty),
        ("/abs", InvalidPathReason::Absolute),
        ("/etc/passwd", InvalidPathReason::Absolute),
        ("../x", InvalidPathReason::ParentElement),
        ("..", InvalidPathReason::ParentElement),
        ("a/../../b", InvalidPathReason::ParentElement),
        ("a/..", InvalidPathReason::ParentElement),
        ("..data", InvalidPathReason::Reserved),
        ("..data/x", InvalidPathReason::Reserved),
        ("..data_tmp", InvalidPathReason::Reserved),
        ("..foo", InvalidPathReason::Reserved),
        ("./..data", InvalidPathReason::Reserved),
        (".", InvalidPathReason::Root),
        ("./", InvalidPathReason::Root),
        ("a\0b", InvalidPathReason::NulByte),
        (&long_name, InvalidPathReason::ElementTooLong),
        (&long_path, InvalidPathReason::TooLong),
    ];
    for (path, reason) in cases {
        let mut p = payload(&[("ok", "ok")]);
        p.insert(path.to_string(), file("x", 0o644));
        match w.write(&p, None) {
            Err(AtomicWriteError::InvalidPath {
                path: got,
                reason: r,
            }) => {
                assert_eq!(got, path);
                assert_eq!(r, reason, "{path:?}");
            }
            other => panic!("{path:?}: {other:?}"),
        }
    }
    assert!(names(dir).is_empty(), "nothing written: {:?}", names(dir));

    // What Go allows: dots inside names, `..` not as a whole element.
    for ok in ["a..b", "a/..b", ".hidden", "a/.b/c", "x/..data"] {
        validate_path(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
    }
    validate_path(&"x".repeat(255)).unwrap();
}

#[test]
fn error_messages_name_the_path() {
    let err = validate_path("a/../../b").unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"invalid path: must not contain '..': "a/../../b""#
    );
    let err = validate_path("/etc/passwd").unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"invalid path: must be relative path: "/etc/passwd""#
    );
    let err = validate_path("..data/x").unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"invalid path: must not start with '..': "..data/x""#
    );
}

#[test]
fn conflicting_paths_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let w = writer(tmp.path());
    let err = w
        .write(&payload(&[("a", "1"), ("./a", "2")]), None)
        .unwrap_err();
    assert!(matches!(err, AtomicWriteError::Conflict { .. }), "{err}");
    let err = w
        .write(&payload(&[("a", "1"), ("a/b", "2")]), None)
        .unwrap_err();
    assert!(
        matches!(&err, AtomicWriteError::Conflict { path, other } if path == "a/b" && other == "a"),
        "{err}"
    );
}

#[test]
fn empty_payload_is_an_empty_volume() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let w = writer(dir);
    assert!(w.write(&BTreeMap::new(), None).unwrap());
    let version = data_link(dir);
    assert!(names(&dir.join(&version)).is_empty());
    assert!(!w.write(&BTreeMap::new(), None).unwrap());

    // Filling then emptying it removes the visible links.
    w.write(&payload(&[("a", "1"), ("d/b", "2")]), None)
        .unwrap();
    assert!(w.write(&BTreeMap::new(), None).unwrap());
    let version = data_link(dir);
    assert_eq!(
        names(dir),
        vec![version.to_str().unwrap().to_string(), "..data".into()]
    );
}

#[test]
fn missing_target_dir_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let err = AtomicWriter::new(tmp.path().join("nope"), "ctx").unwrap_err();
    assert!(matches!(err, AtomicWriteError::NoTarget(_)), "{err}");
}

#[test]
fn a_hostile_data_link_is_refused_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vol");
    fs::create_dir(&dir).unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("precious"), "x").unwrap();
    std::os::unix::fs::symlink("../outside", dir.join(DATA_DIR_NAME)).unwrap();
    let err = writer(&dir)
        .write(&payload(&[("a", "1")]), None)
        .unwrap_err();
    assert!(matches!(err, AtomicWriteError::BadDataLink { .. }), "{err}");
    assert!(outside.join("precious").exists());
}

#[test]
fn a_stale_data_tmp_link_does_not_block_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::os::unix::fs::symlink("..gone", dir.join(NEW_DATA_DIR_NAME)).unwrap();
    writer(dir).write(&payload(&[("a", "1")]), None).unwrap();
    assert_eq!(read(dir, "a"), "1");
    assert!(fs::symlink_metadata(dir.join(NEW_DATA_DIR_NAME)).is_err());
}

#[test]
fn debug_never_shows_the_data() {
    let f = file("s3cr3t-value", 0o400);
    let shown = format!("{f:?}");
    assert!(!shown.contains("s3cr3t"), "{shown}");
    assert!(
        shown.contains("12 bytes") && shown.contains("0o400"),
        "{shown}"
    );
}

/// Readers of `key` see a whole version, old or new, and never a torn
/// or mixed file. Like Go's writer, the old version is deleted right after
/// the swap, so a reader whose path walk read `..data` just before the
/// rename can find the old directory gone (ENOENT) if it is overtaken by
/// the cleanup; such a miss must clear on an immediate retry, and must not
/// happen while no write is in flight.
#[test]
fn readers_see_whole_versions_during_updates() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let w = writer(&dir);
    // Versions differ in length, so a torn read would show.
    let content = |i: usize| format!("version {i} {}", "x".repeat(i % 97));
    let make = |i: usize| {
        let mut p = BTreeMap::new();
        p.insert("key".to_string(), file(&content(i), 0o644));
        p.insert("nested/key".to_string(), file(&content(i), 0o644));
        // A name that comes and goes, so links are also added and removed.
        if i.is_multiple_of(2) {
            p.insert("flapping".to_string(), file("f", 0o644));
        }
        p
    };
    w.write(&make(0), None).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = ["key", "nested/key"]
        .into_iter()
        .map(|rel| {
            let stop = stop.clone();
            let path = dir.join(rel);
            std::thread::spawn(move || {
                let (mut reads, mut misses) = (0u64, 0u64);
                let mut last = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let mut attempt = 0;
                    let got = loop {
                        match fs::read_to_string(&path) {
                            Ok(s) => break s,
                            Err(e) if e.kind() == io::ErrorKind::NotFound && attempt < 1000 => {
                                misses += 1;
                                attempt += 1;
                            }
                            Err(e) => panic!("{} unreadable: {e}", path.display()),
                        }
                    };
                    let (head, _) = got.rsplit_once(' ').unwrap();
                    let i: usize = head.strip_prefix("version ").unwrap().parse().unwrap();
                    assert_eq!(got, format!("version {i} {}", "x".repeat(i % 97)));
                    assert!(i >= last, "went back from version {last} to {i}");
                    last = i;
                    reads += 1;
                }
                (reads, misses)
            })
        })
        .collect();
    for i in 1..300 {
        assert!(w.write(&make(i), None).unwrap());
        assert_eq!(read(&dir, "key"), content(i));
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        let (reads, _misses) = r.join().unwrap();
        assert!(reads > 0);
    }
    assert_eq!(versions(&dir).len(), 1);
}
