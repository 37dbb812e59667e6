//! Volumes from API objects on a joined berth (issue 11), against the real
//! control plane and containerd: the service account token volume the
//! apiserver injects, a projected token's refresh, a configMap volume
//! following `kubectl` edits, a downwardAPI volume following a label change. Needs
//! `tests/env/up --control-plane`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::berth::exclusive;
use test_support::cluster::{Joined, TestNamespace, exec, kubectl, require_control_plane};

fn running(p: &Value) -> bool {
    p["status"]["containerStatuses"][0]["state"]["running"].is_object()
}

/// The CRI ID of the pod's first container.
fn container(p: &Value) -> String {
    p["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("containerd://")
        .to_string()
}

/// Polls `script`'s output in the container until `ok`, at most `limit`.
fn wait_output(id: &str, script: &str, limit: Duration, ok: impl Fn(&str) -> bool) -> Duration {
    let t = Instant::now();
    loop {
        let out = exec(id, script);
        if ok(out.trim()) {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < limit,
            "{script}: still {out:?} after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_injected_service_account_token_passes_a_token_review() {
    require_control_plane();
    let _one = exclusive();
    let node = Joined::start();
    let ns = TestNamespace::create("token");
    // No automountServiceAccountToken: false here — the apiserver adds the
    // kube-api-access-* projected volume, unchanged.
    ns.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: reader}}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {img}\n    command: [\"sleep\", \"3600\"]\n",
        node = node.node(),
        img = test_support::busybox_image()
    ));
    let p = ns.wait_pod("reader", "running", Duration::from_secs(60), running);
    let volumes = p["spec"]["volumes"].as_array().unwrap();
    assert!(
        volumes
            .iter()
            .any(|v| v["name"].as_str().unwrap().starts_with("kube-api-access-")),
        "the apiserver injected the token volume: {volumes:?}"
    );
    let id = container(&p);
    let dir = "/var/run/secrets/kubernetes.io/serviceaccount";
    assert_eq!(exec(&id, &format!("cat {dir}/namespace")).trim(), ns.name);
    assert!(exec(&id, &format!("cat {dir}/ca.crt")).starts_with("-----BEGIN CERTIFICATE-----"));
    let token = exec(&id, &format!("cat {dir}/token"));
    assert!(token.split('.').count() == 3, "a JWT");

    let status = review(&token, &[]);
    assert_eq!(
        status["status"]["authenticated"], true,
        "{}",
        status["status"]
    );
    assert_eq!(
        status["status"]["user"]["username"],
        format!("system:serviceaccount:{}:default", ns.name)
    );
    // Bound to the pod it was issued for.
    assert_eq!(
        status["status"]["user"]["extra"]["authentication.kubernetes.io/pod-name"][0],
        "reader"
    );
}

/// Sends a TokenReview of `token` for `audiences` (none: the apiserver's).
fn review(token: &str, audiences: &[&str]) -> Value {
    let review = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token.trim(), "audiences": audiences},
    });
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), review.to_string()).unwrap();
    let out = kubectl(&["create", "-f", file.path().to_str().unwrap(), "-o", "json"]).unwrap();
    serde_json::from_str(&out).unwrap()
}

/// A projected token of the shortest TTL the apiserver issues (600 s) is
/// replaced at 80 % of it (480 s), as the Go kubelet's token manager does,
/// and the new one passes a TokenReview for its audience. Takes 8 minutes.
#[test]
fn a_projected_token_is_refreshed_at_80_percent_of_its_ttl() {
    require_control_plane();
    let _one = exclusive();
    let node = Joined::start();
    let ns = TestNamespace::create("refresh");
    ns.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: holder}}
spec:
  nodeName: {node}
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: {img}
    command: ["sleep", "3600"]
    volumeMounts: [{{name: tok, mountPath: /tok}}]
  volumes:
  - name: tok
    projected:
      sources:
      - serviceAccountToken: {{path: token, audience: berth-refresh, expirationSeconds: 600}}
"#,
        node = node.node(),
        img = test_support::busybox_image()
    ));
    let p = ns.wait_pod("holder", "running", Duration::from_secs(60), running);
    let since = Instant::now();
    let id = container(&p);
    let first = exec(&id, "cat /tok/token");
    assert_eq!(
        review(&first, &["berth-refresh"])["status"]["authenticated"],
        true
    );
    // Issued a moment before the pod ran: the refresh is due 480 s after
    // issuance, so not before ~470 s from here, and well before expiry.
    let changed_after = loop {
        std::thread::sleep(Duration::from_secs(5));
        let now = exec(&id, "cat /tok/token");
        if now.trim() != first.trim() {
            assert!(now.split('.').count() == 3, "a JWT: {now:?}");
            let status = review(&now, &["berth-refresh"]);
            assert_eq!(
                status["status"]["authenticated"], true,
                "{}",
                status["status"]
            );
            break since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(570),
            "the token was not refreshed within 570 s of a 600 s TTL"
        );
    };
    eprintln!("token refreshed {changed_after:?} after the pod ran");
    assert!(
        changed_after > Duration::from_secs(440),
        "refreshed too early ({changed_after:?}): 80 % of 600 s is 480 s"
    );
}

#[test]
fn config_map_and_downward_api_volumes_follow_kubectl_edits() {
    require_control_plane();
    let _one = exclusive();
    let node = Joined::start();
    let ns = TestNamespace::create("objvol");
    ns.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {color: blue}\n");
    ns.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: app, labels: {{tier: web}}}}
spec:
  nodeName: {node}
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: {img}
    command: ["sleep", "3600"]
    env: [{{name: COLOR, valueFrom: {{configMapKeyRef: {{name: settings, key: color}}}}}}]
    volumeMounts:
    - {{name: cfg, mountPath: /cfg}}
    - {{name: info, mountPath: /info}}
  volumes:
  - {{name: cfg, configMap: {{name: settings}}}}
  - {{name: info, downwardAPI: {{items: [{{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}]}}}}
"#,
        node = node.node(),
        img = test_support::busybox_image()
    ));
    let p = ns.wait_pod("app", "running", Duration::from_secs(60), running);
    let id = container(&p);
    assert_eq!(exec(&id, "cat /cfg/color").trim(), "blue");
    assert!(exec(&id, "env").lines().any(|l| l == "COLOR=blue"));
    assert_eq!(exec(&id, "cat /info/labels").trim(), "tier=\"web\"");

    // `kubectl edit`, its editor a sed that changes the value in place.
    let out = std::process::Command::new(test_support::cluster::kubectl_bin())
        .env("KUBE_EDITOR", "sed -i s/color:\\ blue/color:\\ red/")
        .arg("--kubeconfig")
        .arg(test_support::cluster::admin_kubeconfig())
        .args(["edit", "configmap", "settings", "-n", &ns.name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl edit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let took = wait_output(&id, "cat /cfg/color", Duration::from_secs(2), |o| {
        o == "red"
    });
    eprintln!("configMap edit visible after {took:?}");

    kubectl(&["label", "pod", "app", "-n", &ns.name, "release=canary"]).unwrap();
    wait_output(&id, "cat /info/labels", Duration::from_secs(10), |o| {
        o == "release=\"canary\"\ntier=\"web\""
    });
}
