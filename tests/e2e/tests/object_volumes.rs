//! ConfigMaps and Secrets from the manifest directory (issue 11,
//! standalone): mounted with items and modes, read into env and envFrom,
//! edits visible in the running container, a pod that waits for a missing
//! object, hostile objects refused with clear errors. Against the real
//! containerd.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use cri_client::proto as pb;
use test_support::berth::{Berth, busybox_client, container_id, exclusive};
use test_support::busybox_image;

const T: Duration = Duration::from_secs(60);

async fn exec(c: &cri_client::RuntimeClient, id: &str, script: &str) -> String {
    let out = c
        .exec_sync(pb::ExecSyncRequest {
            container_id: id.to_string(),
            cmd: vec!["sh".into(), "-c".into(), script.into()],
            timeout: 10,
        })
        .await
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A berth started against the runtime, which has the busybox image.
async fn start_berth() -> (cri_client::RuntimeClient, Berth) {
    let c = busybox_client().await;
    let mut b = Berth::new();
    b.start();
    (c, b)
}

/// A pod `name` whose one container `c` sleeps in busybox; `rest` goes on
/// at the container's indentation (`    env: ...`), then the pod's
/// (`  volumes: ...`).
fn sleeper(name: &str, rest: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers:\n  - name: c\n    image: {}\n    command: [\"sleep\", \"3600\"]\n{rest}",
        busybox_image()
    )
}

/// Waits until container `c` of pod `name` runs.
async fn wait_running(b: &Berth, name: &str, what: &str) -> serde_json::Value {
    b.wait_pod(name, what, T, |p| {
        test_support::berth::container_state(p, "c") == "running"
    })
    .await
}

fn objects(color: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: app-config}}
data:
  greeting: hello
  app.properties: "color={color}\n"
---
apiVersion: v1
kind: Secret
metadata: {{name: app-secret}}
data:
  password: c3VwZXJzZWNyZXQ=
"#
    )
}

fn app_pod(img: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: app, labels: {{tier: web}}}}
spec:
  terminationGracePeriodSeconds: 1
  securityContext: {{fsGroup: 2345}}
  containers:
  - name: c
    image: {img}
    command: ["sleep", "3600"]
    env:
    - {{name: GREETING, valueFrom: {{configMapKeyRef: {{name: app-config, key: greeting}}}}}}
    - {{name: PASSWORD, valueFrom: {{secretKeyRef: {{name: app-secret, key: password}}}}}}
    - {{name: MISSING, valueFrom: {{configMapKeyRef: {{name: app-config, key: nope, optional: true}}}}}}
    envFrom: [{{configMapRef: {{name: app-config}}, prefix: CFG_}}]
    volumeMounts:
    - {{name: cfg, mountPath: /etc/cfg}}
    - {{name: sec, mountPath: /etc/sec}}
    - {{name: info, mountPath: /etc/info}}
    - {{name: cfg, mountPath: /etc/pinned.properties, subPath: conf/app.properties}}
  volumes:
  - name: cfg
    configMap: {{name: app-config, items: [{{key: app.properties, path: conf/app.properties, mode: 0600}}]}}
  - name: sec
    secret: {{secretName: app-secret, defaultMode: 0400}}
  - name: info
    downwardAPI: {{items: [{{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}]}}
"#
    )
}

#[tokio::test]
async fn config_maps_and_secrets_from_the_manifest_directory_reach_volumes_and_env() {
    let _one = exclusive();
    let (c, b) = start_berth().await;
    b.write_manifest("objects.yaml", &objects("blue"));
    b.write_manifest("app.yaml", &app_pod(&busybox_image()));
    let p = wait_running(&b, "app", "running").await;
    let id = container_id(&p, "c");

    let env = exec(&c, &id, "env").await;
    for want in [
        "GREETING=hello",
        "PASSWORD=supersecret",
        "CFG_greeting=hello",
    ] {
        assert!(env.lines().any(|l| l == want), "{want} in\n{env}");
    }
    assert!(
        !env.contains("MISSING="),
        "an optional missing key is left out"
    );

    let files = exec(
        &c,
        &id,
        "cat /etc/cfg/conf/app.properties; cat /etc/info/labels; echo; \
         stat -L -c '%a %g' /etc/cfg/conf/app.properties /etc/sec/password; \
         ls /etc/cfg; grep ' /etc/sec ' /proc/mounts; stat -c '%a %g' /etc/sec/..data/",
    )
    .await;
    let lines: Vec<&str> = files.lines().collect();
    assert_eq!(lines[0], "color=blue", "{files}");
    assert_eq!(lines[1], "tier=\"web\"", "{files}");
    // The pod's fsGroup owns the files, and adds group read (Go's
    // SetVolumeOwnership on a read-only volume): 0600 | 0440, 0400 | 0440.
    assert_eq!(lines[2], "640 2345", "item mode 0600 and fsGroup: {files}");
    assert_eq!(
        lines[3], "440 2345",
        "defaultMode 0400 and fsGroup: {files}"
    );
    assert_eq!(lines[4], "conf", "only the listed item: {files}");
    assert!(
        lines[5].starts_with("tmpfs /etc/sec tmpfs ro"),
        "the secret is on tmpfs, read-only: {files}"
    );
    assert_eq!(lines[6], "2755 2345", "directories get setgid: {files}");
    assert_eq!(
        exec(&c, &id, "cat /etc/pinned.properties").await.trim(),
        "color=blue"
    );

    // An edit of the ConfigMap reaches the running container in seconds.
    b.write_manifest("objects.yaml", &objects("red"));
    let t = Instant::now();
    loop {
        let now = exec(&c, &id, "cat /etc/cfg/conf/app.properties").await;
        if now.trim() == "color=red" {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "the edit is not visible within 2 s: {now}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A subPath mount does not follow updates, as in Go: it holds the file
    // of the version it was made from.
    assert_eq!(
        exec(&c, &id, "cat /etc/pinned.properties").await.trim(),
        "color=blue"
    );

    // Removing the ConfigMap from under the running pod keeps its files.
    b.write_manifest(
        "objects.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: app-secret}\ndata:\n  password: c3VwZXJzZWNyZXQ=\n",
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        exec(&c, &id, "cat /etc/cfg/conf/app.properties")
            .await
            .trim(),
        "color=red"
    );
    let p = b.pod("app").unwrap();
    assert_eq!(container_id(&p, "c"), id, "the pod was not disturbed");

    // The secret's value is nowhere in berth's log or /pods.
    assert!(!b.log().contains("supersecret"));
    assert!(!b.get("/pods").unwrap().contains("supersecret"));
}

#[tokio::test]
async fn a_pod_waits_for_a_missing_config_map_and_starts_once_it_exists() {
    let _one = exclusive();
    let (_c, b) = start_berth().await;
    b.write_manifest(
        "waits.yaml",
        &sleeper(
            "waits",
            "    volumeMounts: [{name: cfg, mountPath: /cfg}]\n  volumes:\n  - {name: cfg, configMap: {name: later}}\n",
        ),
    );
    let p = b
        .wait_pod("waits", "waiting for its ConfigMap", T, |p| {
            p["status"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("configmap \"later\" not found"))
        })
        .await;
    assert_eq!(
        test_support::berth::container_state(&p, "c"),
        "waiting",
        "{}",
        p["status"]
    );
    assert!(
        p["status"]["message"]
            .as_str()
            .unwrap()
            .starts_with("MountVolume.SetUp failed for volume \"cfg\" : "),
        "{}",
        p["status"]["message"]
    );
    b.write_manifest(
        "later.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: later}\ndata: {k: v}\n",
    );
    wait_running(&b, "waits", "running once the ConfigMap exists").await;
}

#[tokio::test]
async fn hostile_objects_get_clear_errors_and_other_pods_keep_running() {
    let _one = exclusive();
    let (_c, b) = start_berth().await;
    b.write_manifest("ok.yaml", &sleeper("ok", ""));
    wait_running(&b, "ok", "running").await;
    let big = "x".repeat(1024 * 1024 + 1);
    b.write_manifest(
        "big.yaml",
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big}}\ndata:\n  k: {big}\n"),
    );
    b.write_manifest(
        "b64.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: b64}\ndata:\n  k: not*base64\n",
    );
    b.write_manifest(
        "keys.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keys}\ndata: {a: \"1\"}\nbinaryData: {a: MQ==}\n",
    );
    b.write_manifest(
        "traversal.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: t}}\ndata: {{k: v}}\n---\n{}",
            sleeper(
                "escape",
                "    volumeMounts: [{name: cfg, mountPath: /cfg}]\n  volumes:\n  - {name: cfg, configMap: {name: t, items: [{key: k, path: ../../etc/x}]}}\n",
            )
        ),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = b.log();
    for (file, why) in [
        ("big.yaml", "1048576"),
        ("b64.yaml", "base64"),
        ("keys.yaml", "binaryData"),
    ] {
        assert!(
            log.lines().any(|l| l.contains(file) && l.contains(why)),
            "an error naming {file} and {why:?}:\n{}",
            test_support::berth::tail(&log, 30)
        );
    }
    let escape = b
        .pod("escape")
        .expect("the pod with a bad item path is listed");
    let msg = escape["status"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("../../etc/x"), "{}", escape["status"]);
    assert!(!std::path::Path::new("/etc/x").exists());
    let ok = b.pod("ok").unwrap();
    assert_eq!(test_support::berth::container_state(&ok, "c"), "running");
}

#[tokio::test]
async fn a_missing_env_reference_is_create_container_config_error_until_it_exists() {
    let _one = exclusive();
    let (_c, b) = start_berth().await;
    b.write_manifest(
        "envref.yaml",
        &sleeper(
            "envref",
            "    env: [{name: TOKEN, valueFrom: {secretKeyRef: {name: creds, key: token}}}]\n",
        ),
    );
    let p = b
        .wait_pod("envref", "CreateContainerConfigError", T, |p| {
            let w = &p["status"]["containerStatuses"][0]["state"]["waiting"];
            w["reason"] == "CreateContainerConfigError"
        })
        .await;
    let w = &p["status"]["containerStatuses"][0]["state"]["waiting"];
    assert_eq!(w["message"], "secret \"creds\" not found", "{w}");
    b.write_manifest(
        "creds.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\nstringData: {token: abc}\n",
    );
    wait_running(&b, "envref", "running once the Secret exists").await;
}
