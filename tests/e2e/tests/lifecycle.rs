//! Lifecycle hooks, graceful termination, sidecars, init retries and
//! termination messages, with a real berth against the real containerd.
//! Each test asserts what containerd reports, what containers wrote to a
//! hostPath directory, and what berth's /pods says.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Each test holds `exclusive()` for its whole run, on its own runtime, on purpose.
#![allow(clippy::await_holding_lock)]

use std::path::Path;
use std::time::{Duration, Instant};

use cri_client::proto as pb;
use serde_json::Value;
use test_support::berth::{
    Berth, busybox_client, container_id, container_state, container_status, exclusive, read,
    runtime_status,
};
use test_support::busybox_image;

const T: Duration = Duration::from_secs(30);

fn waiting_reason(p: &Value, name: &str) -> String {
    container_status(p, name)["state"]["waiting"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn lines(path: &Path) -> Vec<String> {
    read(path).lines().map(str::to_string).collect()
}

async fn setup() -> (cri_client::RuntimeClient, Berth) {
    let c = busybox_client().await;
    let mut b = Berth::new();
    b.start();
    (c, b)
}

#[tokio::test]
async fn post_start_runs_after_start_and_a_failing_one_kills_the_container() {
    let _one = exclusive();
    let (c, b) = setup().await;
    let img = busybox_image();
    b.write_manifest(
        "hooks.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: hooks}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: ok
    image: {img}
    command: ["sh", "-c", "until [ -f /tmp/started ]; do sleep 0.1; done; echo seen > /tmp/seen; exec sleep 3600"]
    lifecycle:
      postStart: {{exec: {{command: ["touch", "/tmp/started"]}}}}
  - name: bad
    image: {img}
    command: ["sleep", "3600"]
    lifecycle:
      postStart: {{exec: {{command: ["sh", "-c", "echo broken-$((1+2)); exit 3"]}}}}
"#
        ),
    );
    // The failing hook shows as PostStartHookError with the hook's output.
    let p = b
        .wait_pod("hooks", "bad waiting PostStartHookError", T, |p| {
            waiting_reason(p, "bad") == "PostStartHookError"
        })
        .await;
    let msg = container_status(&p, "bad")["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        msg.contains("broken-3"),
        "hook output in the message: {msg}"
    );
    assert!(msg.starts_with("Exec lifecycle hook ("), "{msg}");
    // The container the hook failed in was killed (SIGKILL after the
    // 2 s minimum grace: sleep as PID 1 ignores SIGTERM), then restarted.
    let p = b
        .wait_pod("hooks", "bad restarted after the kill", T, |p| {
            let s = container_status(p, "bad");
            s["restartCount"].as_i64().unwrap_or(0) >= 1
                && s["lastState"]["terminated"]["exitCode"].as_i64() == Some(137)
        })
        .await;
    assert_eq!(container_state(&p, "ok"), "running");
    // The hook ran after the start and the container saw its file.
    let id = container_id(&p, "ok");
    let out = c
        .exec_sync(pb::ExecSyncRequest {
            container_id: id,
            cmd: vec!["cat".into(), "/tmp/seen".into()],
            timeout: 5,
        })
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "seen");
    assert!(
        b.log().contains("postStart hook failed"),
        "berth logs the failure"
    );
}

#[tokio::test]
async fn pre_stop_runs_before_sigterm() {
    let _one = exclusive();
    let (_c, b) = setup().await;
    let data = tempfile::tempdir().unwrap();
    let order = data.path().join("order");
    b.write_manifest(
        "prestop.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: prestop}}
spec:
  terminationGracePeriodSeconds: 10
  volumes: [{{name: data, hostPath: {{path: {dir}, type: Directory}}}}]
  containers:
  - name: c
    image: {img}
    volumeMounts: [{{name: data, mountPath: /data}}]
    command: ["sh", "-c", "trap 'echo term >> /data/order; exit 0' TERM; echo started >> /data/order; while true; do sleep 0.2; done"]
    lifecycle:
      preStop: {{exec: {{command: ["sh", "-c", "echo prestop >> /data/order; sleep 1"]}}}}
"#,
            dir = data.path().display(),
            img = busybox_image()
        ),
    );
    b.wait_pod("prestop", "running", T, |p| {
        container_state(p, "c") == "running"
    })
    .await;
    let deadline = Instant::now() + T;
    while lines(&order).is_empty() {
        assert!(Instant::now() < deadline, "container never wrote");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.remove_manifest("prestop.yaml");
    b.wait_pod_gone("prestop", T).await;
    assert_eq!(lines(&order), ["started", "prestop", "term"]);
    assert!(b.log().contains("running preStop hook"));
}

#[tokio::test]
async fn sigterm_ignoring_container_is_killed_when_the_grace_period_ends() {
    let _one = exclusive();
    let (c, b) = setup().await;
    b.write_manifest(
        "stubborn.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: stubborn}}
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: c
    image: {img}
    command: ["sh", "-c", "trap '' TERM; while true; do sleep 0.2; done"]
"#,
            img = busybox_image()
        ),
    );
    let p = b
        .wait_pod("stubborn", "running", T, |p| {
            container_state(p, "c") == "running"
        })
        .await;
    let id = container_id(&p, "c");
    let t0 = Instant::now();
    let t0_nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    b.remove_manifest("stubborn.yaml");
    // Poll the runtime: the container must still run just before the
    // grace period ends, and be dead (exited or removed) soon after.
    let mut last_running = Duration::ZERO;
    let mut finished_at = None;
    let gone_after = loop {
        match runtime_status(&c, &id).await {
            Some(st) if st.state == pb::ContainerState::ContainerRunning as i32 => {
                last_running = t0.elapsed();
            }
            Some(st) => {
                finished_at = Some(st.finished_at);
                break t0.elapsed();
            }
            None => break t0.elapsed(),
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "never stopped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        last_running >= Duration::from_millis(2700),
        "killed before the grace period ended: last seen running at {last_running:?}"
    );
    assert!(
        gone_after < Duration::from_secs(6),
        "not killed when the grace period ended: {gone_after:?}"
    );
    if let Some(f) = finished_at {
        let secs = (f - t0_nanos) as f64 / 1e9;
        assert!(
            (3.0..6.0).contains(&secs),
            "finished_at {secs} s after removal"
        );
    }
    eprintln!(
        "last running at {last_running:?}, dead at {gone_after:?}, finished_at seen: {finished_at:?}"
    );
    b.wait_pod_gone("stubborn", T).await;
}

#[tokio::test]
async fn sidecar_starts_in_order_keeps_running_and_stops_after_the_app() {
    let _one = exclusive();
    let (c, b) = setup().await;
    let data = tempfile::tempdir().unwrap();
    let order = data.path().join("order");
    b.write_manifest(
        "sidecar.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: sidecar}}
spec:
  terminationGracePeriodSeconds: 10
  volumes: [{{name: data, hostPath: {{path: {dir}, type: Directory}}}}]
  initContainers:
  - name: a
    image: {img}
    command: ["sh", "-c", "sleep 0.5"]
  - name: s
    image: {img}
    restartPolicy: Always
    volumeMounts: [{{name: data, mountPath: /data}}]
    command: ["sh", "-c", "trap 'echo s-term >> /data/order; exit 0' TERM; while true; do sleep 0.1; done"]
  - name: b
    image: {img}
    command: ["sh", "-c", "sleep 0.5"]
  containers:
  - name: c
    image: {img}
    volumeMounts: [{{name: data, mountPath: /data}}]
    command: ["sh", "-c", "trap 'sleep 1; echo c-exit >> /data/order; exit 0' TERM; while true; do sleep 0.1; done"]
"#,
            dir = data.path().display(),
            img = busybox_image()
        ),
    );
    let p = b
        .wait_pod("sidecar", "app running", T, |p| {
            container_state(p, "c") == "running"
        })
        .await;
    assert_eq!(
        container_state(&p, "s"),
        "running",
        "the sidecar keeps running"
    );
    assert_eq!(p["status"]["phase"], "Running");
    let mut st = std::collections::HashMap::new();
    for name in ["a", "s", "b", "c"] {
        st.insert(
            name,
            runtime_status(&c, &container_id(&p, name)).await.unwrap(),
        );
    }
    assert!(
        st["a"].finished_at <= st["s"].started_at,
        "a done before s starts"
    );
    assert!(st["s"].started_at <= st["b"].started_at, "s before b");
    assert!(
        st["b"].finished_at <= st["c"].started_at,
        "b done before c starts"
    );
    assert_eq!(container_status(&p, "s")["started"], true);
    assert_eq!(container_status(&p, "s")["ready"], true);
    assert_eq!(
        container_status(&p, "a")["ready"],
        true,
        "a succeeded init container is ready"
    );
    // Still running a little later (not restarted).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let p = b.pod("sidecar").unwrap();
    assert_eq!(container_state(&p, "s"), "running");
    assert_eq!(container_status(&p, "s")["restartCount"], 0);

    b.remove_manifest("sidecar.yaml");
    b.wait_pod_gone("sidecar", T).await;
    // c takes 1 s to exit after SIGTERM; s reacts at once. Only if s gets
    // its SIGTERM after c has exited is "c-exit" first.
    assert_eq!(lines(&order), ["c-exit", "s-term"]);
}

#[tokio::test]
async fn failing_init_container_is_retried_with_backoff() {
    let _one = exclusive();
    let (_c, b) = setup().await;
    b.write_manifest(
        "initfail.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: initfail}}
spec:
  initContainers:
  - name: i
    image: {img}
    command: ["sh", "-c", "exit 3"]
  containers:
  - name: c
    image: {img}
    command: ["sleep", "3600"]
"#,
            img = busybox_image()
        ),
    );
    let p = b
        .wait_pod("initfail", "init CrashLoopBackOff", T, |p| {
            waiting_reason(p, "i") == "CrashLoopBackOff"
        })
        .await;
    let i = container_status(&p, "i");
    assert!(i["restartCount"].as_i64().unwrap() >= 1, "{i}");
    assert_eq!(i["lastState"]["terminated"]["exitCode"], 3);
    assert_eq!(i["lastState"]["terminated"]["reason"], "Error");
    assert_eq!(i["ready"], false);
    assert_eq!(p["status"]["phase"], "Pending");
    assert_eq!(waiting_reason(&p, "c"), "PodInitializing");
    let init = p["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Initialized")
        .unwrap()
        .clone();
    assert_eq!(init["status"], "False");
    assert_eq!(init["message"], "containers with incomplete status: [i]");
    assert!(
        b.log().contains("to=Init:CrashLoopBackOff"),
        "kubectl-style status in the log:\n{}",
        b.log()
            .lines()
            .filter(|l| l.contains("pod status changed"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test]
async fn termination_messages_from_the_file_and_from_logs() {
    let _one = exclusive();
    let (_c, mut b) = setup().await;
    b.write_manifest(
        "msg.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: msg}}
spec:
  restartPolicy: Never
  containers:
  - name: file
    image: {img}
    command: ["sh", "-c", "printf 'all done' > /dev/termination-log"]
  - name: custom
    image: {img}
    terminationMessagePath: /tmp/why
    command: ["sh", "-c", "printf 'custom path' > /tmp/why; exit 1"]
  - name: logs
    image: {img}
    terminationMessagePolicy: FallbackToLogsOnError
    command: ["sh", "-c", "echo line-1; sleep 0.5; echo line-2 >&2; exit 4"]
"#,
            img = busybox_image()
        ),
    );
    let check = |p: &Value| {
        let m = |n: &str| container_status(p, n)["state"]["terminated"]["message"].clone();
        m("file") == "all done" && m("custom") == "custom path" && m("logs") == "line-1\nline-2\n"
    };
    let p = b
        .wait_pod("msg", "termination messages", T, |p| {
            ["file", "custom", "logs"]
                .iter()
                .all(|n| container_state(p, n) == "terminated")
        })
        .await;
    assert!(check(&p), "messages: {}", p["status"]["containerStatuses"]);
    assert_eq!(
        container_status(&p, "logs")["state"]["terminated"]["exitCode"],
        4
    );
    assert_eq!(p["status"]["phase"], "Failed");
    // After a restart berth reads them again from disk.
    b.kill9();
    b.start();
    let p = b.wait_pod("msg", "messages after restart", T, check).await;
    assert_eq!(
        container_status(&p, "file")["state"]["terminated"]["reason"],
        "Completed"
    );
}
