use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, DownwardAPIVolumeFile, Pod, ProjectedVolumeSource, Secret,
    SecretVolumeSource,
};
use serde_json::json;

use super::*;

fn cm(data: serde_json::Value, binary: &[(&str, &[u8])]) -> ConfigMap {
    let mut cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "app"}, "data": data})).unwrap();
    if !binary.is_empty() {
        cm.binary_data = Some(
            binary
                .iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                .collect(),
        );
    }
    cm
}

fn secret(data: &[(&str, &[u8])]) -> Secret {
    Secret {
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

fn cm_source(v: serde_json::Value) -> ConfigMapVolumeSource {
    serde_json::from_value(v).unwrap()
}

fn secret_source(v: serde_json::Value) -> SecretVolumeSource {
    serde_json::from_value(v).unwrap()
}

/// path → (data, mode)
fn view(p: &Payload) -> BTreeMap<&str, (String, u32)> {
    p.iter()
        .map(|(k, v)| {
            (
                k.as_str(),
                (String::from_utf8_lossy(&v.data).into_owned(), v.mode),
            )
        })
        .collect()
}

fn entry(data: &str, mode: u32) -> (String, u32) {
    (data.to_string(), mode)
}

// ---- configMap ----

#[test]
fn config_map_all_keys_with_default_mode() {
    let c = cm(json!({"a": "1", "b.conf": "2"}), &[("bin", b"\x00\xff")]);
    let p = config_map_payload("cfg", &cm_source(json!({"name": "app"})), Some(&c)).unwrap();
    let v = view(&p);
    assert_eq!(v["a"], entry("1", 0o644));
    assert_eq!(v["b.conf"], entry("2", 0o644));
    assert_eq!(p["bin"].data, b"\x00\xff");
    assert_eq!(p.len(), 3);

    let p = config_map_payload(
        "cfg",
        &cm_source(json!({"name": "app", "defaultMode": 0o400})),
        Some(&c),
    )
    .unwrap();
    assert!(p.values().all(|f| f.mode == 0o400));
}

#[test]
fn config_map_items_with_paths_and_modes() {
    let c = cm(json!({"a": "1", "b": "2"}), &[("bin", b"B")]);
    let src = cm_source(json!({"name": "app", "defaultMode": 0o440, "items": [
        {"key": "a", "path": "conf/a.txt", "mode": 0o600},
        {"key": "bin", "path": "bin.dat"},
    ]}));
    let p = config_map_payload("cfg", &src, Some(&c)).unwrap();
    let v = view(&p);
    assert_eq!(v["conf/a.txt"], entry("1", 0o600));
    assert_eq!(v["bin.dat"], entry("B", 0o440));
    assert_eq!(p.len(), 2, "keys not listed are left out: {v:?}");
}

#[test]
fn config_map_missing_keys_and_objects() {
    let c = cm(json!({"a": "1"}), &[]);
    let src = cm_source(json!({"name": "app", "items": [{"key": "nope", "path": "x"}]}));
    let err = config_map_payload("cfg", &src, Some(&c)).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"volume "cfg": configmap "app" references non-existent config key: nope"#
    );

    let src = cm_source(json!({"name": "app", "optional": true, "items": [
        {"key": "nope", "path": "x"}, {"key": "a", "path": "y"}]}));
    let p = config_map_payload("cfg", &src, Some(&c)).unwrap();
    assert_eq!(p.keys().collect::<Vec<_>>(), ["y"]);

    // A missing ConfigMap: an error unless optional, then an empty volume.
    let err = config_map_payload("cfg", &cm_source(json!({"name": "app"})), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"volume "cfg": configmap "app" not found"#
    );
    let src =
        cm_source(json!({"name": "app", "optional": true, "items": [{"key": "a", "path": "y"}]}));
    assert!(config_map_payload("cfg", &src, None).unwrap().is_empty());
    let src = cm_source(json!({"name": "app", "optional": true}));
    assert!(config_map_payload("cfg", &src, None).unwrap().is_empty());

    let err = config_map_payload("cfg", &cm_source(json!({"name": ""})), None).unwrap_err();
    assert!(matches!(err, PayloadError::NoName { .. }), "{err}");
}

#[test]
fn config_map_key_in_data_and_binary_data_is_refused() {
    let c = cm(json!({"a": "1"}), &[("a", b"2")]);
    let err = config_map_payload("cfg", &cm_source(json!({"name": "app"})), Some(&c)).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"volume "cfg": configmap "app" has key "a" in both data and binaryData"#
    );
}

#[test]
fn hostile_paths_are_refused_when_the_payload_is_built() {
    let c = cm(json!({"a": "1", "../evil": "x"}), &[]);
    let err = config_map_payload("cfg", &cm_source(json!({"name": "app"})), Some(&c)).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"volume "cfg": configmap "app" key "../evil": invalid path: must not contain '..': "../evil""#
    );

    let c = cm(json!({"a": "1"}), &[]);
    for bad in ["../x", "/etc/passwd", "a/../../b", "..data/x", ""] {
        let src = cm_source(json!({"name": "app", "items": [{"key": "a", "path": bad}]}));
        let err = config_map_payload("cfg", &src, Some(&c)).unwrap_err();
        assert!(
            matches!(&err, PayloadError::InvalidPath { origin, .. } if origin.contains("key \"a\"")),
            "{bad:?}: {err}"
        );
        let s = secret(&[("a", b"1")]);
        let src = secret_source(json!({"secretName": "s", "items": [{"key": "a", "path": bad}]}));
        let err = secret_payload("sec", &src, Some(&s)).unwrap_err();
        assert!(
            matches!(err, PayloadError::InvalidPath { .. }),
            "{bad:?}: {err}"
        );
    }
}

#[test]
fn bad_modes_are_refused() {
    let c = cm(json!({"a": "1"}), &[]);
    for (src, mode) in [
        (json!({"name": "app", "defaultMode": 0o1000}), "512"),
        (json!({"name": "app", "defaultMode": -1}), "-1"),
        (
            json!({"name": "app", "items": [{"key": "a", "path": "a", "mode": 0o4755}]}),
            "2541",
        ),
    ] {
        let err = config_map_payload("cfg", &cm_source(src), Some(&c)).unwrap_err();
        assert!(matches!(err, PayloadError::BadMode { .. }), "{err}");
        assert!(err.to_string().contains(&format!("mode {mode} ")), "{err}");
    }
}

#[test]
fn duplicate_item_paths_keep_the_later_item() {
    let c = cm(json!({"a": "1", "b": "2"}), &[]);
    let src = cm_source(json!({"name": "app", "items": [
        {"key": "a", "path": "x"}, {"key": "b", "path": "./x"}]}));
    let p = config_map_payload("cfg", &src, Some(&c)).unwrap();
    assert_eq!(view(&p)["x"], entry("2", 0o644));
    assert_eq!(p.len(), 1);
}

// ---- secret ----

#[test]
fn secret_all_keys_items_and_default_mode() {
    let s = secret(&[("user", b"admin"), ("pass", b"hunter2")]);
    let p = secret_payload("sec", &secret_source(json!({"secretName": "db"})), Some(&s)).unwrap();
    let v = view(&p);
    assert_eq!(v["user"], entry("admin", 0o644));
    assert_eq!(v["pass"], entry("hunter2", 0o644));

    let src = secret_source(json!({"secretName": "db", "defaultMode": 0o400, "items": [
        {"key": "pass", "path": "creds/password"},
        {"key": "user", "path": "creds/user", "mode": 0o444}]}));
    let v = view(&secret_payload("sec", &src, Some(&s)).unwrap())
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect::<BTreeMap<_, _>>();
    assert_eq!(v["creds/password"], entry("hunter2", 0o400));
    assert_eq!(v["creds/user"], entry("admin", 0o444));
}

#[test]
fn secret_string_data_is_merged_over_data() {
    let mut s = secret(&[("a", b"from data"), ("b", b"kept")]);
    s.string_data = Some(BTreeMap::from([(
        "a".to_string(),
        "from stringData".to_string(),
    )]));
    let p = secret_payload("sec", &secret_source(json!({"secretName": "db"})), Some(&s)).unwrap();
    assert_eq!(view(&p)["a"].0, "from stringData");
    assert_eq!(view(&p)["b"].0, "kept");
}

#[test]
fn secret_missing_keys_and_objects_never_show_values() {
    let s = secret(&[("pass", b"hunter2")]);
    let src = secret_source(json!({"secretName": "db", "items": [{"key": "nope", "path": "x"}]}));
    let err = secret_payload("sec", &src, Some(&s)).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"volume "sec": secret "db" references non-existent secret key: nope"#
    );
    assert!(!format!("{err:?}").contains("hunter2"));

    let src = secret_source(json!({"secretName": "db", "optional": true,
        "items": [{"key": "nope", "path": "x"}, {"key": "pass", "path": "p"}]}));
    let p = secret_payload("sec", &src, Some(&s)).unwrap();
    assert_eq!(p.keys().collect::<Vec<_>>(), ["p"]);
    assert!(!format!("{p:?}").contains("hunter2"), "{p:?}");

    let err = secret_payload("sec", &secret_source(json!({"secretName": "db"})), None).unwrap_err();
    assert_eq!(err.to_string(), r#"volume "sec": secret "db" not found"#);
    let src = secret_source(json!({"secretName": "db", "optional": true}));
    assert!(secret_payload("sec", &src, None).unwrap().is_empty());
    let err = secret_payload("sec", &secret_source(json!({})), None).unwrap_err();
    assert!(matches!(err, PayloadError::NoName { .. }), "{err}");
}

// ---- downwardAPI ----

fn pod() -> Pod {
    serde_json::from_value(json!({
        "metadata": {
            "name": "web", "namespace": "prod", "uid": "1234-abcd",
            "labels": {"app": "web", "tier": "front \"end\"", "a.example.com/x": "y"},
            "annotations": {"note": "line1\nline2\ttab é ☃ \u{200b}", "Upper/Key": "v"}
        },
        "spec": {
            "initContainers": [{"name": "init", "image": "busybox",
                "resources": {"requests": {"cpu": "100m"}}}],
            "containers": [{"name": "app", "image": "busybox", "resources": {
                "requests": {"cpu": "250m", "memory": "64Mi", "ephemeral-storage": "1Gi",
                             "hugepages-2Mi": "4Mi"},
                "limits": {"cpu": "1500m", "memory": "0"}
            }}]
        }
    }))
    .unwrap()
}

fn items(v: serde_json::Value) -> Vec<DownwardAPIVolumeFile> {
    serde_json::from_value(v).unwrap()
}

fn allocatable() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("cpu".to_string(), "4".to_string()),
        ("memory".to_string(), "8Gi".to_string()),
        ("ephemeral-storage".to_string(), "100G".to_string()),
    ])
}

fn downward(items_json: serde_json::Value) -> Result<Payload, PayloadError> {
    downward_api_payload("info", &items(items_json), None, &pod(), &allocatable())
}

fn one(items_json: serde_json::Value) -> String {
    let p = downward(items_json).unwrap();
    assert_eq!(p.len(), 1);
    String::from_utf8(p.into_values().next().unwrap().data).unwrap()
}

fn field(path: &str) -> String {
    one(json!([{"path": "f", "fieldRef": {"fieldPath": path}}]))
}

fn res(resource: &str, divisor: Option<&str>) -> String {
    one(json!([{"path": "r", "resourceFieldRef": {
        "containerName": "app", "resource": resource, "divisor": divisor}}]))
}

#[test]
fn downward_metadata_fields() {
    assert_eq!(field("metadata.name"), "web");
    assert_eq!(field("metadata.namespace"), "prod");
    assert_eq!(field("metadata.uid"), "1234-abcd");
    assert_eq!(field("metadata.labels['app']"), "web");
    assert_eq!(field("metadata.labels['missing']"), "");
    assert_eq!(field("metadata.annotations['Upper/Key']"), "v");
}

#[test]
fn downward_labels_and_annotations_are_formatted_as_go_does() {
    assert_eq!(
        field("metadata.labels"),
        "a.example.com/x=\"y\"\napp=\"web\"\ntier=\"front \\\"end\\\"\""
    );
    assert_eq!(
        field("metadata.annotations"),
        "Upper/Key=\"v\"\nnote=\"line1\\nline2\\ttab é ☃ \\u200b\""
    );
    assert_eq!(format_map(&BTreeMap::new()), "");
    let m = BTreeMap::from([("k".to_string(), "\x01\x7f\\\u{a0}\u{10ffff}😀".to_string())]);
    assert_eq!(format_map(&m), "k=\"\\x01\\x7f\\\\\\u00a0\\U0010ffff😀\"");
}

#[test]
fn downward_field_errors() {
    for (path, want) in [
        ("spec.nodeName", "unsupported fieldPath: spec.nodeName"),
        ("status.podIP", "unsupported fieldPath: status.podIP"),
        (
            "metadata.name['x']",
            "fieldPath \"metadata.name['x']\" does not support subscript",
        ),
        (
            "metadata.labels['-bad-']",
            "invalid key subscript in metadata.labels['-bad-']",
        ),
        ("metadata.labels['a/b/c']", "invalid key subscript"),
    ] {
        let err = downward(json!([{"path": "f", "fieldRef": {"fieldPath": path}}])).unwrap_err();
        assert!(err.to_string().contains(want), "{path}: {err}");
        assert!(
            err.to_string()
                .starts_with("volume \"info\": downwardAPI file \"f\""),
            "{err}"
        );
    }
}

#[test]
fn downward_resources_with_divisors() {
    // cpu: millicores over the divisor's millicores, rounded up.
    assert_eq!(res("requests.cpu", None), "1"); // 250m → 1 core
    assert_eq!(res("requests.cpu", Some("1m")), "250");
    assert_eq!(res("limits.cpu", Some("1m")), "1500");
    assert_eq!(res("limits.cpu", None), "2");
    // memory: bytes over the divisor's bytes, rounded up.
    assert_eq!(res("requests.memory", None), "67108864");
    assert_eq!(res("requests.memory", Some("1Mi")), "64");
    assert_eq!(res("requests.memory", Some("1M")), "68"); // 67.1 → 68
    assert_eq!(res("requests.ephemeral-storage", Some("1Gi")), "1");
    assert_eq!(res("requests.hugepages-2Mi", Some("1Mi")), "4");
    // A zero divisor counts as unset.
    assert_eq!(res("requests.cpu", Some("0")), "1");
}

#[test]
fn downward_unset_limits_are_the_node_allocatable() {
    // limits.memory is "0": the node's 8Gi.
    assert_eq!(res("limits.memory", Some("1Gi")), "8");
    assert_eq!(res("limits.ephemeral-storage", Some("1G")), "100");
    // No allocatable known: zero.
    let p = downward_api_payload(
        "info",
        &items(json!([{"path": "m", "resourceFieldRef": {
            "containerName": "app", "resource": "limits.memory"}}])),
        None,
        &pod(),
        &BTreeMap::new(),
    )
    .unwrap();
    assert_eq!(p["m"].data, b"0");
    // Hugepages are never filled in.
    assert_eq!(res("limits.hugepages-2Mi", None), "0");
    // Requests are never filled in.
    let p = downward(json!([{"path": "c", "resourceFieldRef": {
        "containerName": "init", "resource": "requests.memory"}}]))
    .unwrap();
    assert_eq!(p["c"].data, b"0");
}

#[test]
fn downward_resource_errors() {
    let err = downward(json!([{"path": "r", "resourceFieldRef": {
        "containerName": "ghost", "resource": "requests.cpu"}}]))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"volume "info": downwardAPI file "r": container ghost not found"#
    );
    let err = downward(json!([{"path": "r", "resourceFieldRef": {
        "containerName": "app", "resource": "requests.gpu"}}]))
    .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("unsupported container resource : requests.gpu"),
        "{err}"
    );
    let err = downward(json!([{"path": "r", "resourceFieldRef": {
        "containerName": "app", "resource": "requests.cpu", "divisor": "-1"}}]))
    .unwrap_err();
    assert!(err.to_string().contains("must be positive"), "{err}");
}

#[test]
fn downward_items_modes_paths_and_aggregated_errors() {
    let p = downward_api_payload(
        "info",
        &items(json!([
            {"path": "./labels", "fieldRef": {"fieldPath": "metadata.labels"}, "mode": 0o600},
            {"path": "sub/name", "fieldRef": {"fieldPath": "metadata.name"}},
            {"path": "empty"}
        ])),
        Some(0o444),
        &pod(),
        &allocatable(),
    )
    .unwrap();
    assert_eq!(p["labels"].mode, 0o600);
    assert_eq!(p["sub/name"].mode, 0o444);
    assert_eq!(p["sub/name"].data, b"web");
    assert_eq!(p["empty"].data, b"");

    let err = downward(json!([
        {"path": "../x", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "ok", "fieldRef": {"fieldPath": "spec.nodeName"}}
    ]))
    .unwrap_err();
    let PayloadError::Several(errors) = &err else {
        panic!("{err}")
    };
    assert_eq!(errors.len(), 2);
    assert!(err.to_string().starts_with('['), "{err}");
}

// ---- projected ----

struct Inputs {
    cms: BTreeMap<String, Result<Arc<ConfigMap>, ObjectError>>,
    secrets: BTreeMap<String, Result<Arc<Secret>, ObjectError>>,
}

fn not_found(kind: &'static str, name: &str) -> ObjectError {
    ObjectError::NotFound {
        kind,
        namespace: "prod".into(),
        name: name.into(),
    }
}

fn inputs() -> FetchedInputs {
    let i = Inputs {
        cms: BTreeMap::from([
            (
                "app".to_string(),
                Ok(Arc::new(cm(json!({"a": "cm-a", "shared": "from cm"}), &[]))),
            ),
            ("gone".to_string(), Err(not_found("configmap", "gone"))),
        ]),
        secrets: BTreeMap::from([
            (
                "db".to_string(),
                Ok(Arc::new(secret(&[
                    ("pass", b"hunter2"),
                    ("shared", b"from secret"),
                ]))),
            ),
            ("gone".to_string(), Err(not_found("secret", "gone"))),
        ]),
    };
    FetchedInputs {
        namespace: "prod".into(),
        config_maps: i.cms,
        secrets: i.secrets,
        tokens: BTreeMap::from([("token".to_string(), Ok("eyJtoken".to_string()))]),
    }
}

fn projected(v: serde_json::Value) -> ProjectedVolumeSource {
    serde_json::from_value(v).unwrap()
}

#[test]
fn projected_combines_sources_in_order() {
    let src = projected(json!({"defaultMode": 0o440, "sources": [
        {"configMap": {"name": "app"}},
        {"secret": {"name": "db", "items": [{"key": "pass", "path": "db/pass", "mode": 0o400}]}},
        {"downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
        {"serviceAccountToken": {"path": "token", "audience": "vault", "expirationSeconds": 600}},
        {"secret": {"name": "db", "items": [{"key": "shared", "path": "shared"}]}}
    ]}));
    let p = projected_payload(
        "proj",
        &src,
        &pod(),
        &allocatable(),
        VolumeOwnership::default(),
        &inputs(),
    )
    .unwrap();
    let v = view(&p);
    assert_eq!(v["a"], entry("cm-a", 0o440));
    assert_eq!(v["db/pass"], entry("hunter2", 0o400));
    assert_eq!(v["name"], entry("web", 0o440));
    assert_eq!(v["token"], entry("eyJtoken", 0o440));
    assert_eq!(p["token"].fs_user, None);
    // The later source wins a shared path, as in Go.
    assert_eq!(v["shared"], entry("from secret", 0o440));
    assert_eq!(p.len(), 5);
}

#[test]
fn projected_token_with_ownership_is_0600_and_owned() {
    let src = projected(json!({"sources": [{"serviceAccountToken": {"path": "token"}}]}));
    let owner = VolumeOwnership {
        fs_user: Some(1000),
        fs_group: Some(2000),
    };
    let p = projected_payload("proj", &src, &pod(), &allocatable(), owner, &inputs()).unwrap();
    assert_eq!(p["token"].mode, 0o600);
    assert_eq!(p["token"].fs_user, Some(1000));
    let group_only = VolumeOwnership {
        fs_user: None,
        fs_group: Some(2000),
    };
    let p = projected_payload("proj", &src, &pod(), &allocatable(), group_only, &inputs()).unwrap();
    assert_eq!(p["token"].mode, 0o600);
    assert_eq!(p["token"].fs_user, None);
    // Default mode otherwise.
    let p = projected_payload(
        "proj",
        &src,
        &pod(),
        &allocatable(),
        VolumeOwnership::default(),
        &inputs(),
    )
    .unwrap();
    assert_eq!(p["token"].mode, 0o644);
}

#[test]
fn projected_optional_missing_and_aggregated_errors() {
    let src = projected(json!({"sources": [
        {"configMap": {"name": "gone", "optional": true}},
        {"secret": {"name": "gone", "optional": true, "items": [{"key": "k", "path": "k"}]}},
        {"configMap": {"name": "app", "items": [{"key": "a", "path": "a"}]}}
    ]}));
    let p = projected_payload(
        "proj",
        &src,
        &pod(),
        &allocatable(),
        VolumeOwnership::default(),
        &inputs(),
    )
    .unwrap();
    assert_eq!(p.keys().collect::<Vec<_>>(), ["a"]);

    let src = projected(json!({"sources": [
        {"configMap": {"name": "gone"}},
        {"secret": {"name": "db", "items": [{"key": "nope", "path": "x"}]}},
        {"configMap": {"name": "never-fetched", "optional": true}},
        {"serviceAccountToken": {"path": "other-token"}},
        {"clusterTrustBundle": {"path": "ca.pem", "name": "b"}},
        {"configMap": {"name": "app", "items": [{"key": "a", "path": "/etc/passwd"}]}}
    ]}));
    let err = projected_payload(
        "proj",
        &src,
        &pod(),
        &allocatable(),
        VolumeOwnership::default(),
        &inputs(),
    )
    .unwrap_err();
    let PayloadError::Several(errors) = &err else {
        panic!("{err}")
    };
    let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(texts.len(), 6, "{texts:#?}");
    assert_eq!(texts[0], r#"volume "proj": configmap "gone" not found"#);
    assert_eq!(
        texts[1],
        r#"volume "proj": secret "db" references non-existent secret key: nope"#
    );
    // Unavailable is not not-found: optional does not hide it.
    assert!(
        texts[2].contains("never-fetched") && texts[2].contains("not fetched"),
        "{}",
        texts[2]
    );
    assert_eq!(
        texts[3],
        r#"volume "proj": serviceAccountToken "other-token": token not fetched"#
    );
    assert_eq!(
        texts[4],
        r#"volume "proj": clusterTrustBundle projections are not supported"#
    );
    assert!(texts[5].contains("must be relative path"), "{}", texts[5]);
    assert!(!format!("{err:?}").contains("hunter2"));
}

#[test]
fn projected_references_lists_what_to_fetch() {
    let src = projected(json!({"sources": [
        {"configMap": {"name": "app"}},
        {"secret": {"name": "db"}},
        {"downwardAPI": {}},
        {"serviceAccountToken": {"path": "token"}},
        {"configMap": {"name": "other"}}
    ]}));
    let refs = projected_references(&src);
    assert_eq!(refs.config_maps, ["app", "other"]);
    assert_eq!(refs.secrets, ["db"]);
    assert_eq!(refs.tokens.len(), 1);
    assert_eq!(refs.tokens[0].path, "token");
}

#[test]
fn a_payload_writes_through_the_atomic_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let c = cm(json!({"a": "1"}), &[("b", b"2")]);
    let src = cm_source(json!({"name": "app", "items": [
        {"key": "a", "path": "conf/a"}, {"key": "b", "path": "b", "mode": 0o600}]}));
    let p = config_map_payload("cfg", &src, Some(&c)).unwrap();
    let w = super::super::atomic_writer::AtomicWriter::new(tmp.path(), "pod prod/web volume cfg")
        .unwrap();
    assert!(w.write(&p, None).unwrap());
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("conf/a")).unwrap(),
        "1"
    );
    assert_eq!(std::fs::read_to_string(tmp.path().join("b")).unwrap(), "2");
}
