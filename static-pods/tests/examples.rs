//! Every manifest in `examples/manifests` passes berth's validation, so a
//! new user's first run doesn't start with an error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

#[test]
fn example_manifests_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/manifests");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let pod = static_pods::load_manifest(&path, &bytes, "node-a")
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(pod.spec.is_some(), "{}", path.display());
        seen += 1;
    }
    assert!(
        seen >= 6,
        "only {seen} example manifests found in {}",
        dir.display()
    );
}
