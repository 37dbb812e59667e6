//! Builds real layouts in a temp dir and reads them back.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use oci_spec::image::{
    ANNOTATION_REF_NAME, Arch, Descriptor, ImageConfiguration, ImageIndex, ImageManifest,
    MediaType, OciLayout, Os,
};

use crate::{Entry, ImageConfig, LayerError, LayoutError, build_layer, write_layout};

/// Reads the blob a descriptor points to and checks its size and digest.
fn blob(dir: &Path, d: &Descriptor) -> Vec<u8> {
    let hex = d.as_digest_sha256().expect("sha256 digest");
    let data = std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(data.len() as u64, d.size(), "size of {hex}");
    assert_eq!(crate::sha256_hex(&data), hex, "digest of blob {hex}");
    data
}

fn entries(specs: &[(&str, &str)]) -> Vec<Entry> {
    specs
        .iter()
        .map(|(flag, spec)| match *flag {
            "file" => Entry::parse_file(spec),
            "symlink" => Entry::parse_symlink(spec),
            _ => Entry::parse_dir(spec),
        })
        .collect::<Result<_, _>>()
        .unwrap()
}

/// (type, mode, uid, gid, mtime, size, link target) per tar path.
type Listing = BTreeMap<String, (char, u32, u64, u64, u64, u64, Option<String>)>;

fn list_tar(tar: &[u8]) -> (Vec<String>, Listing, BTreeMap<String, Vec<u8>>) {
    let mut order = Vec::new();
    let mut listing = Listing::new();
    let mut contents = BTreeMap::new();
    let mut archive = tar::Archive::new(tar);
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let h = e.header();
        let kind = match h.entry_type() {
            tar::EntryType::Regular => 'f',
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            other => panic!("unexpected entry type {other:?}"),
        };
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned());
        let row = (
            kind,
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.mtime().unwrap(),
            h.size().unwrap(),
            link,
        );
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        contents.insert(path.clone(), data);
        order.push(path.clone());
        listing.insert(path, row);
    }
    (order, listing, contents)
}

#[test]
fn layout_is_consistent_and_has_expected_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("tool");
    std::fs::write(&src, b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o750)).unwrap();
    let passwd = tmp.path().join("passwd");
    std::fs::write(&passwd, b"root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o600)).unwrap();

    let specs = entries(&[
        ("file", &format!("{}:/bin/tool", src.display())),
        ("file", &format!("{}:/etc/passwd:0644", passwd.display())),
        ("symlink", "tool:/bin/sh"),
        ("symlink", "/bin/tool:/usr/local/bin/tool"),
        ("dir", "/tmp:1777"),
        ("dir", "/var/www"),
    ]);
    let layer = build_layer(&specs).unwrap();
    let out = tmp.path().join("layout");
    let config = ImageConfig {
        entrypoint: vec!["/bin/tool".into()],
        cmd: vec!["-c".into(), "x".into()],
        env: vec!["PATH=/bin".into()],
        workdir: Some("/var/www".into()),
        user: None,
    };
    let written = write_layout(&out, "v1", &config, &layer).unwrap();

    let layout = OciLayout::from_file(out.join("oci-layout")).unwrap();
    assert_eq!(layout.image_layout_version(), "1.0.0");

    let index = ImageIndex::from_file(out.join("index.json")).unwrap();
    assert_eq!(index.schema_version(), 2);
    let [mdesc] = index.manifests().as_slice() else {
        panic!("expected one manifest, got {:?}", index.manifests());
    };
    assert_eq!(mdesc.media_type(), &MediaType::ImageManifest);
    assert_eq!(mdesc.digest().to_string(), written.manifest_digest);
    let ann = mdesc.annotations().as_ref().unwrap();
    assert_eq!(ann.get(ANNOTATION_REF_NAME).map(String::as_str), Some("v1"));
    let platform = mdesc.platform().as_ref().unwrap();
    assert_eq!(platform.architecture(), &Arch::Amd64);
    assert_eq!(platform.os(), &Os::Linux);

    let manifest = ImageManifest::from_reader(blob(&out, mdesc).as_slice()).unwrap();
    assert_eq!(manifest.schema_version(), 2);
    assert_eq!(manifest.config().media_type(), &MediaType::ImageConfig);
    let image = ImageConfiguration::from_reader(blob(&out, manifest.config()).as_slice()).unwrap();
    assert_eq!(image.architecture(), &Arch::Amd64);
    assert_eq!(image.os(), &Os::Linux);
    let rc = image.config().as_ref().unwrap();
    assert_eq!(
        rc.entrypoint().as_deref(),
        Some(&["/bin/tool".to_string()][..])
    );
    assert_eq!(
        rc.cmd().as_deref(),
        Some(&["-c".to_string(), "x".to_string()][..])
    );
    assert_eq!(rc.env().as_deref(), Some(&["PATH=/bin".to_string()][..]));
    assert_eq!(rc.working_dir().as_deref(), Some("/var/www"));

    let [ldesc] = manifest.layers().as_slice() else {
        panic!("expected one layer");
    };
    assert_eq!(ldesc.media_type(), &MediaType::ImageLayerGzip);
    let gz = blob(&out, ldesc);
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(gz.as_slice())
        .read_to_end(&mut tar)
        .unwrap();
    assert_eq!(
        image.rootfs().diff_ids(),
        &[format!("sha256:{}", crate::sha256_hex(&tar))]
    );

    let (order, listing, contents) = list_tar(&tar);
    // Parents first, then children, in path order; implicit parents added.
    assert_eq!(
        order,
        [
            "bin/",
            "bin/sh",
            "bin/tool",
            "etc/",
            "etc/passwd",
            "tmp/",
            "usr/",
            "usr/local/",
            "usr/local/bin/",
            "usr/local/bin/tool",
            "var/",
            "var/www/",
        ]
    );
    let row = |p: &str| listing.get(p).cloned().unwrap();
    assert_eq!(row("bin/"), ('d', 0o755, 0, 0, 0, 0, None));
    assert_eq!(row("bin/tool"), ('f', 0o750, 0, 0, 0, 18, None));
    assert_eq!(row("bin/sh"), ('l', 0o777, 0, 0, 0, 0, Some("tool".into())));
    assert_eq!(row("etc/passwd"), ('f', 0o644, 0, 0, 0, 30, None));
    assert_eq!(row("tmp/"), ('d', 0o1777, 0, 0, 0, 0, None));
    assert_eq!(
        row("usr/local/bin/tool"),
        ('l', 0o777, 0, 0, 0, 0, Some("/bin/tool".into()))
    );
    assert_eq!(contents.get("bin/tool").unwrap(), b"#!/bin/sh\necho hi\n");
}

#[test]
fn same_input_gives_same_digest_and_replaces_old_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("f");
    std::fs::write(&src, b"data").unwrap();
    let specs = entries(&[
        ("file", &format!("{}:/f:0644", src.display())),
        ("dir", "/d"),
    ]);
    let out = tmp.path().join("img");
    let cfg = ImageConfig::default();
    let a = write_layout(&out, "latest", &cfg, &build_layer(&specs).unwrap()).unwrap();
    // A different listing order and a fresh build must not change bytes.
    let reversed: Vec<_> = specs.iter().rev().cloned().collect();
    let b = write_layout(&out, "latest", &cfg, &build_layer(&reversed).unwrap()).unwrap();
    assert_eq!(a.manifest_digest, b.manifest_digest);

    // Changing content changes the digest and the old blobs are gone.
    std::fs::write(&src, b"other").unwrap();
    let c = write_layout(&out, "latest", &cfg, &build_layer(&specs).unwrap()).unwrap();
    assert_ne!(a.manifest_digest, c.manifest_digest);
    let blobs = std::fs::read_dir(out.join("blobs/sha256")).unwrap().count();
    assert_eq!(blobs, 3, "manifest, config and layer only");
}

#[test]
fn tree_conflicts_are_errors() {
    let dup = entries(&[("dir", "/a"), ("dir", "/a/")]);
    assert!(matches!(
        build_layer(&dup),
        Err(LayerError::Duplicate { path }) if path == "a"
    ));
    let under_link = entries(&[("symlink", "x:/a"), ("dir", "/a/b")]);
    assert!(matches!(
        build_layer(&under_link),
        Err(LayerError::ParentNotDir { path, parent }) if path == "a/b" && parent == "a"
    ));
    let missing = entries(&[("file", "/nonexistent/berth-src:/x")]);
    let err = build_layer(&missing).unwrap_err();
    assert!(matches!(err, LayerError::ReadSource { .. }));
    assert!(err.to_string().contains("/nonexistent/berth-src"), "{err}");
    let dir_src = entries(&[("file", "/:/x")]);
    assert!(matches!(
        build_layer(&dir_src),
        Err(LayerError::NotRegular { .. })
    ));
}

#[test]
fn refuses_to_replace_a_non_layout_directory() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("precious"), b"keep").unwrap();
    let layer = build_layer(&entries(&[("dir", "/d")])).unwrap();
    let err = write_layout(tmp.path(), "latest", &ImageConfig::default(), &layer).unwrap_err();
    assert!(matches!(err, LayoutError::NotALayout(_)), "{err}");
    assert!(tmp.path().join("precious").exists());
    let err = write_layout(
        &tmp.path().join("x"),
        "bad ref",
        &ImageConfig::default(),
        &layer,
    )
    .unwrap_err();
    assert!(matches!(err, LayoutError::BadRefName(_)));
}
