//! ConfigMaps, Secrets and files of several documents: parsing, the apiserver's defaulting
//! and validation, and the source's handling of them across rescans.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};

use crate::error::ManifestErrorKind;
use crate::manifest::{DEFAULT_MAX_FILE_SIZE, ManifestObject, load_documents};
use crate::source::{Config, Snapshot, StaticPodSource};

/// A value that must never show up in an error or a Debug print.
const SECRET: &str = "hunter2-s3cr3t";
/// `SECRET` in base64.
const SECRET_B64: &str = "aHVudGVyMi1zM2NyM3Q=";

fn pod(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: c\n    image: nginx:1.25\n"
    )
}

fn load(name: &str, text: &str) -> Vec<Result<ManifestObject, String>> {
    load_documents(
        Path::new(name),
        text.as_bytes(),
        "node1",
        DEFAULT_MAX_FILE_SIZE,
    )
    .unwrap()
    .into_iter()
    .map(|r| r.map_err(|e| e.to_string()))
    .collect()
}

/// The single document of `text` as a ConfigMap, or its error.
fn config_map(text: &str) -> Result<ConfigMap, String> {
    match load("cm.yaml", text).pop().unwrap()? {
        ManifestObject::ConfigMap(cm) => Ok(cm),
        other => panic!("not a ConfigMap: {other:?}"),
    }
}

fn secret(text: &str) -> Result<Secret, String> {
    match load("s.yaml", text).pop().unwrap()? {
        ManifestObject::Secret(s) => Ok(s),
        other => panic!("not a Secret: {other:?}"),
    }
}

fn cm_yaml(body: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: conf\n{body}")
}

fn secret_yaml(body: &str) -> String {
    format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\n{body}")
}

fn bytes(s: &Secret, key: &str) -> Vec<u8> {
    s.data.as_ref().unwrap()[key].0.clone()
}

#[test]
fn config_map_is_defaulted_and_decoded() {
    let cm = config_map(&cm_yaml(
        "data:\n  app.conf: |\n    a=1\n  EMPTY:\nbinaryData:\n  blob: AAEC\nimmutable: true\n",
    ))
    .unwrap();
    assert_eq!(cm.metadata.namespace.as_deref(), Some("default"));
    let data = cm.data.unwrap();
    assert_eq!(data["app.conf"], "a=1\n");
    assert_eq!(data["EMPTY"], "");
    assert_eq!(cm.binary_data.unwrap()["blob"].0, vec![0, 1, 2]);
    assert_eq!(cm.immutable, Some(true));

    let cm = config_map(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: kube-system\n",
    )
    .unwrap();
    assert_eq!(cm.metadata.namespace.as_deref(), Some("kube-system"));
    assert!(cm.data.is_none() && cm.binary_data.is_none());
}

#[test]
fn object_names_are_checked() {
    let meta = |m: &str| {
        config_map(&format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n{m}\n"
        ))
    };
    assert_eq!(
        meta("  namespace: a").unwrap_err(),
        "cm.yaml: metadata.name: required value"
    );
    assert_eq!(
        meta("  name: Bad_Name").unwrap_err(),
        "cm.yaml: metadata.name: invalid value \"Bad_Name\": a lowercase RFC 1123 subdomain must \
         consist of lower case alphanumeric characters, '-' or '.', and must start and end with \
         an alphanumeric character"
    );
    assert!(
        meta(&format!("  name: {}", "a".repeat(254)))
            .unwrap_err()
            .ends_with("must be no more than 253 characters")
    );
    assert!(meta(&format!("  name: {}", "a".repeat(253))).is_ok());
    assert!(meta("  name: a.b-c").is_ok());
    assert_eq!(
        meta("  name: a\n  namespace: a.b").unwrap_err(),
        "cm.yaml: metadata.namespace: invalid value \"a.b\": a lowercase RFC 1123 label must \
         consist of lower case alphanumeric characters or '-', and must start and end with an \
         alphanumeric character"
    );
    let s = secret("apiVersion: v1\nkind: Secret\nmetadata:\n  name: -x\n").unwrap_err();
    assert!(
        s.starts_with("s.yaml: metadata.name: invalid value \"-x\""),
        "{s}"
    );
}

#[test]
fn keys_are_checked() {
    let err = |key: &str| config_map(&cm_yaml(&format!("data:\n  '{key}': v\n"))).unwrap_err();
    assert_eq!(
        err("a b"),
        "cm.yaml: data[a b]: invalid value \"a b\": a valid config key must consist of \
         alphanumeric characters, '-', '_' or '.' (e.g. 'key.name', or 'KEY_NAME', or \
         'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
    );
    assert_eq!(
        err("."),
        "cm.yaml: data[.]: invalid value \".\": must not be '.'"
    );
    assert_eq!(
        err(".."),
        "cm.yaml: data[..]: invalid value \"..\": must not be '..'"
    );
    assert_eq!(
        err("..data"),
        "cm.yaml: data[..data]: invalid value \"..data\": must not start with '..'"
    );
    assert!(err(&"k".repeat(254)).ends_with("must be no more than 253 characters"));
    assert!(config_map(&cm_yaml(&format!("data:\n  {}: v\n", "k".repeat(253)))).is_ok());
    assert!(config_map(&cm_yaml("data:\n  .hidden_Key-1: v\n")).is_ok());
    // Binary keys and Secret keys follow the same rule.
    assert!(
        config_map(&cm_yaml("binaryData:\n  a/b: AA==\n"))
            .unwrap_err()
            .starts_with("cm.yaml: binaryData[a/b]: invalid value")
    );
    let s = secret(&secret_yaml(&format!("stringData:\n  a/b: {SECRET}\n"))).unwrap_err();
    assert!(
        s.starts_with("s.yaml: data[a/b]: invalid value \"a/b\""),
        "{s}"
    );
    assert!(!s.contains(SECRET));
}

#[test]
fn data_and_binary_data_may_not_share_a_key() {
    assert_eq!(
        config_map(&cm_yaml(
            "data:\n  k: v\n  other: v\nbinaryData:\n  k: AA==\n"
        ))
        .unwrap_err(),
        "cm.yaml: data[k]: invalid value \"k\": duplicate of key present in binaryData"
    );
}

#[test]
fn objects_over_one_mebibyte_are_refused() {
    let half = "a".repeat(512 * 1024);
    let ok = cm_yaml(&format!("data:\n  a: {half}\n  b: {half}\n"));
    assert!(config_map(&ok).is_ok(), "exactly 1 MiB is allowed");
    let over = cm_yaml(&format!("data:\n  a: {half}\n  b: {half}x\n"));
    assert_eq!(
        config_map(&over).unwrap_err(),
        "cm.yaml: data: too long: may not be more than 1048576 bytes (values total 1048577 bytes)"
    );
    // Binary data counts decoded, together with data.
    let binary = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        vec![0u8; 512 * 1024],
    );
    let mixed = cm_yaml(&format!(
        "data:\n  a: {half}x\nbinaryData:\n  b: {binary}\n"
    ));
    assert!(config_map(&mixed).unwrap_err().contains("too long"));

    let big = secret_yaml(&format!("stringData:\n  a: {half}\n  b: {half}x\n"));
    assert_eq!(
        secret(&big).unwrap_err(),
        "s.yaml: data: too long: may not be more than 1048576 bytes (values total 1048577 bytes)"
    );
}

#[test]
fn secret_data_is_base64_and_string_data_overrides_it() {
    let s = secret(&secret_yaml(&format!(
        "data:\n  password: {SECRET_B64}\n  user: YWRtaW4=\n  wrapped: |\n    aHVu\n    dGVy\nstringData:\n  user: root\n  extra: plain\ntype: example.com/custom\n"
    )))
    .unwrap();
    assert_eq!(bytes(&s, "password"), SECRET.as_bytes());
    assert_eq!(bytes(&s, "user"), b"root", "stringData wins over data");
    assert_eq!(bytes(&s, "extra"), b"plain");
    assert_eq!(bytes(&s, "wrapped"), b"hunter", "line breaks are ignored");
    assert!(s.string_data.is_none());
    assert_eq!(s.type_.as_deref(), Some("example.com/custom"));
    assert_eq!(s.metadata.namespace.as_deref(), Some("default"));

    let only_string = secret(&secret_yaml("stringData:\n  a: b\n")).unwrap();
    assert_eq!(bytes(&only_string, "a"), b"b");
    assert_eq!(only_string.type_.as_deref(), Some("Opaque"));
}

#[test]
fn bad_base64_names_the_key_not_the_value() {
    let e = secret(&secret_yaml(&format!("data:\n  password: {SECRET}\n"))).unwrap_err();
    assert_eq!(
        e,
        "s.yaml: data[password]: illegal base64 data at input byte 7"
    );
    let e = secret(&secret_yaml("data:\n  p: YWJj\n  q: YWJ\n")).unwrap_err();
    assert!(e.starts_with("s.yaml: data[q]: illegal base64 data"), "{e}");
    assert!(
        config_map(&cm_yaml("binaryData:\n  b: '!!!!'\n"))
            .unwrap_err()
            .starts_with("cm.yaml: binaryData[b]: illegal base64 data at input byte 0")
    );
}

#[test]
fn secret_values_never_reach_errors() {
    let cases = [
        format!("data: {SECRET}\n"),
        format!("data: \"{SECRET}\"\n"),
        "data: 12345678\n".to_string(),
        format!("stringData: {SECRET}\n"),
        format!("stringData:\n  k: [{SECRET}]\n"),
        format!("stringData:\n  k:\n    nested: {SECRET}\n"),
        format!("data:\n  bad key: {SECRET}\n"),
        format!("data:\n  k: '{SECRET}'\ntype: kubernetes.io/dockerconfigjson\n"),
        format!(
            "stringData:\n  .dockerconfigjson: '{{\"auths\": {SECRET}}}'\ntype: kubernetes.io/dockerconfigjson\n"
        ),
        format!("stringData:\n  .dockercfg: '{SECRET}'\ntype: kubernetes.io/dockercfg\n"),
        format!("data:\n  k: {SECRET}\nimmutable: maybe\n"),
    ];
    for body in &cases {
        let e = secret(&secret_yaml(body)).expect_err(body);
        assert!(!e.contains(SECRET), "{body:?} leaked: {e}");
        assert!(!e.contains("12345678"), "{body:?} leaked: {e}");
    }
    let e = secret(&secret_yaml(&format!("data: {SECRET}\n"))).unwrap_err();
    assert_eq!(
        e,
        "s.yaml: invalid YAML: a Secret's data and stringData must map keys to strings at line 5, \
         column 7 (the decoder's message is withheld: it may quote secret values)"
    );
    // JSON too.
    let json = format!(
        r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"x"}},"data":"{SECRET}"}}"#
    );
    let e = load_documents(
        Path::new("s.json"),
        json.as_bytes(),
        "n",
        DEFAULT_MAX_FILE_SIZE,
    )
    .unwrap()
    .pop()
    .unwrap()
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("s.json: invalid JSON: a Secret's data"),
        "{e}"
    );
    assert!(!e.contains(SECRET));
}

#[test]
fn well_known_secret_types_need_their_keys() {
    let err = |body: &str| secret(&secret_yaml(body)).unwrap_err();
    assert_eq!(
        err("type: kubernetes.io/tls\nstringData:\n  tls.crt: x\n"),
        "s.yaml: data[tls.key]: required value"
    );
    assert_eq!(
        err("type: kubernetes.io/basic-auth\n"),
        "s.yaml: data[username]: required value; data[password]: required value"
    );
    assert!(
        secret(&secret_yaml(
            "type: kubernetes.io/basic-auth\nstringData:\n  password: ''\n"
        ))
        .is_ok()
    );
    assert_eq!(
        err("type: kubernetes.io/ssh-auth\nstringData:\n  ssh-privatekey: ''\n"),
        "s.yaml: data[ssh-privatekey]: required value"
    );
    assert_eq!(
        err("type: kubernetes.io/service-account-token\n"),
        "s.yaml: metadata.annotations[kubernetes.io/service-account.name]: required value"
    );
    assert!(
        err("type: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '[1]'\n")
            .starts_with(
                "s.yaml: data[.dockerconfigjson]: invalid value <secret contents redacted>"
            )
    );
    let ok = secret(&secret_yaml(
        "type: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{\"auths\": {}}'\n",
    ))
    .unwrap();
    assert_eq!(ok.type_.as_deref(), Some("kubernetes.io/dockerconfigjson"));
}

#[test]
fn debug_output_hides_secret_values() {
    let s = secret(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\n  annotations:\n    note: {SECRET}\ndata:\n  password: {SECRET_B64}\nstringData:\n  token: {SECRET}\n"
    ))
    .unwrap();
    let object = format!("{:?}", ManifestObject::Secret(s.clone()));
    assert!(
        object.contains("password") && object.contains("<redacted>"),
        "{object}"
    );
    let snapshot = Snapshot {
        secrets: vec![Arc::new(s)],
        ..Snapshot::default()
    };
    let printed = format!("{snapshot:?} {snapshot:#?}");
    for leak in [SECRET, SECRET_B64] {
        assert!(!object.contains(leak), "{object}");
        assert!(!printed.contains(leak), "{printed}");
    }
    // The raw bytes would show up as numbers in a derived Debug.
    let as_numbers = format!("{:?}", SECRET.as_bytes());
    assert!(!printed.contains(&as_numbers[1..20]));
}

#[test]
fn documents_mix_kinds_and_errors_name_their_document() {
    let text = format!(
        "# leading comment\n---\n{}---\n{}\n---\n# only a comment\n---\n{}---\napiVersion: v1\nkind: Service\n---\n{}...\n",
        pod("web"),
        cm_yaml("data:\n  a: b"),
        secret_yaml("data:\n  k: '%%%'\n"),
        pod("db"),
    );
    let docs = load("all.yaml", &text);
    assert_eq!(docs.len(), 5, "{docs:?}");
    match &docs[0] {
        Ok(ManifestObject::Pod(p)) => assert_eq!(p.metadata.name.as_deref(), Some("web-node1")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(&docs[1], Ok(ManifestObject::ConfigMap(_))));
    assert_eq!(
        docs[2].as_ref().unwrap_err(),
        "all.yaml: document 3: data[k]: illegal base64 data at input byte 0"
    );
    assert_eq!(
        docs[3].as_ref().unwrap_err(),
        "all.yaml: document 4: kind: unsupported value \"Service\": must be one of \"Pod\", \
         \"ConfigMap\", \"Secret\""
    );
    let (web, db) = match (&docs[0], &docs[4]) {
        (Ok(ManifestObject::Pod(a)), Ok(ManifestObject::Pod(b))) => (a, b),
        other => panic!("{other:?}"),
    };
    // Each pod keeps its own identity even though they share a file.
    assert_ne!(web.metadata.uid, db.metadata.uid);
    assert_eq!(db.metadata.name.as_deref(), Some("db-node1"));

    // Decoder line numbers are the file's, not the document's.
    let text = format!(
        "{}---\napiVersion: v1\nkind: Pod\nspec:\n  containers: 5\n",
        pod("a")
    );
    let docs = load("l.yaml", &text);
    assert_eq!(
        docs[1].as_ref().unwrap_err(),
        "l.yaml: document 2: invalid YAML: expected sequence start at line 13, column 15"
    );

    // A file of nothing but comments and markers is empty.
    let err = load_documents(Path::new("e.yaml"), b"# x\n---\n...\n", "n", 1024).unwrap_err();
    assert_eq!(err.kind, ManifestErrorKind::Empty);
}

#[test]
fn too_many_documents_are_refused() {
    let text = "{apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n---\n".repeat(1025);
    let err = load_documents(
        Path::new("many.yaml"),
        text.as_bytes(),
        "n",
        DEFAULT_MAX_FILE_SIZE,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "many.yaml: file holds more than 1024 documents; refusing to read it"
    );
}

#[test]
fn load_manifest_still_wants_exactly_one_pod() {
    let e = crate::load_manifest(Path::new("c.yaml"), cm_yaml("").as_bytes(), "n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "c.yaml: kind: unsupported value \"ConfigMap\": expected a \"Pod\""
    );
}

// The source across rescans.

fn source(dir: &Path) -> StaticPodSource {
    StaticPodSource::new(Config::new(dir, "node1")).unwrap()
}

fn names<T>(objects: &[Arc<T>], meta: impl Fn(&T) -> &Option<String>) -> Vec<String> {
    objects.iter().map(|o| meta(o).clone().unwrap()).collect()
}

fn cm_names(s: &Snapshot) -> Vec<String> {
    names(&s.config_maps, |c| &c.metadata.name)
}

#[test]
fn objects_keep_their_arc_until_edited_and_vanish_when_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let objects = format!(
        "{}---\n{}",
        cm_yaml("data:\n  a: '1'\n"),
        secret_yaml(&format!("data:\n  p: {SECRET_B64}\n"))
    );
    fs::write(dir.path().join("objects.yaml"), &objects).unwrap();
    fs::write(
        dir.path().join("other.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\n",
    )
    .unwrap();
    fs::write(dir.path().join("web.yaml"), pod("web")).unwrap();
    let mut src = source(dir.path());

    let first = src.scan();
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    assert_eq!(cm_names(&first), ["conf", "other"]);
    assert_eq!(first.pods.len(), 1);
    let conf = Arc::clone(first.config_map("default", "conf").unwrap());
    let creds = Arc::clone(first.secret("default", "creds").unwrap());
    assert_eq!(bytes(&creds, "p"), SECRET.as_bytes());

    let again = src.scan();
    assert_eq!(again, first);
    assert!(Arc::ptr_eq(
        again.config_map("default", "conf").unwrap(),
        &conf
    ));
    assert!(Arc::ptr_eq(
        again.secret("default", "creds").unwrap(),
        &creds
    ));

    // Editing the ConfigMap replaces its Arc only.
    fs::write(
        dir.path().join("objects.yaml"),
        objects.replace("a: '1'", "a: '2'"),
    )
    .unwrap();
    let edited = src.scan();
    let conf2 = edited.config_map("default", "conf").unwrap();
    assert!(!Arc::ptr_eq(conf2, &conf));
    assert_eq!(conf2.data.as_ref().unwrap()["a"], "2");
    assert!(Arc::ptr_eq(
        edited.secret("default", "creds").unwrap(),
        &creds
    ));
    assert!(Arc::ptr_eq(
        edited.config_map("default", "other").unwrap(),
        first.config_map("default", "other").unwrap()
    ));

    // A broken edit of one document keeps what it last defined, and reports it.
    fs::write(
        dir.path().join("objects.yaml"),
        objects.replace(SECRET_B64, "'!!'"),
    )
    .unwrap();
    let broken = src.scan();
    assert_eq!(broken.errors.len(), 1);
    assert_eq!(
        broken.errors[0].to_string(),
        format!(
            "{}: document 2: data[p]: illegal base64 data at input byte 0",
            dir.path().join("objects.yaml").display()
        )
    );
    assert!(Arc::ptr_eq(
        broken.secret("default", "creds").unwrap(),
        &creds
    ));

    // Deleting a file or a document removes its objects.
    fs::remove_file(dir.path().join("other.yaml")).unwrap();
    fs::write(
        dir.path().join("objects.yaml"),
        cm_yaml("data:\n  a: '2'\n"),
    )
    .unwrap();
    let deleted = src.scan();
    assert!(deleted.errors.is_empty(), "{:?}", deleted.errors);
    assert_eq!(cm_names(&deleted), ["conf"]);
    assert!(deleted.secrets.is_empty());
    assert!(deleted.secret("default", "creds").is_none());
}

#[test]
fn duplicate_objects_are_errors_for_the_later_document() {
    let dir = tempfile::tempdir().unwrap();
    let conf = |v: &str| cm_yaml(&format!("data:\n  v: {v}\n"));
    fs::write(dir.path().join("a.yaml"), conf("first")).unwrap();
    fs::write(
        dir.path().join("b.yaml"),
        format!(
            "{}---\n{}---\n{}",
            conf("second"),
            pod("web"),
            secret_yaml("")
        ),
    )
    .unwrap();
    // The same name as a Secret, or in another namespace, is another object.
    fs::write(
        dir.path().join("c.yaml"),
        format!(
            "{}---\n{}",
            secret_yaml("").replace("creds", "conf"),
            conf("ns").replace("name: conf", "name: conf\n  namespace: other")
        ),
    )
    .unwrap();
    let snap = source(dir.path()).scan();
    assert_eq!(
        snap.errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [format!(
            "{}: document 1: configmap \"default/conf\" is already defined by {}",
            dir.path().join("b.yaml").display(),
            dir.path().join("a.yaml").display()
        )]
    );
    assert_eq!(
        snap.config_map("default", "conf")
            .unwrap()
            .data
            .as_ref()
            .unwrap()["v"],
        "first"
    );
    assert!(snap.config_map("other", "conf").is_some());
    assert_eq!(
        names(&snap.secrets, |s| &s.metadata.name),
        ["creds", "conf"]
    );
    // The rest of b.yaml still counts.
    assert_eq!(snap.pods.len(), 1);

    // Twice in one file: the second is the duplicate.
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("x.yaml"),
        format!("{}---\n{}", conf("1"), conf("2")),
    )
    .unwrap();
    let snap = source(dir.path()).scan();
    assert_eq!(snap.config_maps.len(), 1);
    assert_eq!(snap.errors.len(), 1);
    assert_eq!(snap.errors[0].document, Some(2));
    assert!(matches!(
        snap.errors[0].kind,
        ManifestErrorKind::DuplicateObject {
            kind: "configmap",
            ..
        }
    ));
}

#[test]
fn several_pods_in_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pods.yaml");
    fs::write(&file, format!("{}---\n{}", pod("a"), pod("b"))).unwrap();
    let mut src = source(dir.path());
    let first = src.scan();
    let names: Vec<_> = first.pods.iter().map(|p| p.full_name()).collect();
    assert_eq!(names, ["default/a-node1", "default/b-node1"]);
    assert!(first.pods.iter().all(|p| p.path == file));

    // Reordering keeps both pods' allocations.
    fs::write(&file, format!("{}---\n{}", pod("b"), pod("a"))).unwrap();
    let reordered = src.scan();
    for p in &reordered.pods {
        let before = first.pods.iter().find(|q| q.uid() == p.uid()).unwrap();
        assert!(Arc::ptr_eq(&before.pod, &p.pod));
    }

    // A pod defined twice in the file: the second document is the error.
    fs::write(&file, format!("{}---\n{}", pod("a"), pod("a"))).unwrap();
    let dup = src.scan();
    assert_eq!(dup.pods.len(), 1);
    assert!(matches!(
        dup.errors[0].kind,
        ManifestErrorKind::DuplicatePod { .. }
    ));
    assert_eq!(dup.errors[0].document, Some(2));
}
