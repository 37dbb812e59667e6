//! berth running static pods against the real containerd. Each test starts
//! its own berth (one at a time, see `test_support::berth::exclusive`) and
//! asserts what the runtime reports, what is on disk and what /pods says.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Each test holds `exclusive()` for its whole run, on its own runtime, on purpose.
#![allow(clippy::await_holding_lock)]

use std::collections::HashSet;
use std::time::Duration;

use cri_client::proto as pb;
use serde_json::Value;
use test_support::berth::{
    Berth, container_id, container_state, exclusive, phase, pod_log_dir, read, restart_count,
};
use test_support::{busybox_image, client, ensure_image};

const T: Duration = Duration::from_secs(60);

fn busybox() -> String {
    busybox_image()
}

fn two_containers(b_args: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {{app: web}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: a
    image: {img}
    command: ["sh", "-c", "echo started-a; exec sleep 3600"]
  - name: b
    image: {img}
    command: ["sh", "-c", "echo {b_args}; exec sleep 3600"]
"#,
        img = busybox()
    )
}

#[tokio::test]
async fn add_edit_delete() {
    let _one = exclusive();
    let c = client().await;
    ensure_image(&c, &busybox()).await;
    let mut b = Berth::new();
    b.start();

    // add → running, with the Go kubelet's labels and log layout.
    b.write_manifest("web.yaml", &two_containers("v1"));
    let p = b
        .wait_pod("web", "both containers running", T, |p| {
            container_state(p, "a") == "running" && container_state(p, "b") == "running"
        })
        .await;
    assert_eq!(phase(&p), "Running");
    assert_eq!(p["metadata"]["namespace"], "default");
    assert_eq!(
        p["metadata"]["annotations"]["kubernetes.io/config.source"],
        "file"
    );
    let sandboxes = b.runtime_sandboxes(&c).await;
    assert_eq!(sandboxes.len(), 1, "exactly one sandbox");
    let sb = &sandboxes[0];
    assert_eq!(
        sb.labels["io.kubernetes.pod.name"],
        format!("web-{}", b.node)
    );
    assert_eq!(sb.labels["io.kubernetes.pod.namespace"], "default");
    assert_eq!(sb.labels["app"], "web");
    let id_a = container_id(&p, "a");
    let id_b = container_id(&p, "b");
    let st = c
        .container_status(pb::ContainerStatusRequest {
            container_id: id_a.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(st.state, pb::ContainerState::ContainerRunning as i32);
    assert_eq!(st.labels["io.kubernetes.container.name"], "a");
    assert!(st.annotations.contains_key("io.kubernetes.container.hash"));
    assert_eq!(st.annotations["io.kubernetes.container.restartCount"], "0");
    let log = pod_log_dir(&b, &p).join("a/0.log");
    assert!(
        read(&log).contains(" stdout F started-a"),
        "CRI log at {}",
        log.display()
    );

    // edit b → only b is recreated.
    b.write_manifest("web.yaml", &two_containers("v2"));
    let p = b
        .wait_pod("web", "b recreated", T, |p| {
            let nb = container_id(p, "b");
            !nb.is_empty() && nb != id_b && container_state(p, "b") == "running"
        })
        .await;
    assert_eq!(container_id(&p, "a"), id_a, "a untouched");
    assert_eq!(restart_count(&p, "a"), 0);
    assert_eq!(restart_count(&p, "b"), 1);
    assert_eq!(b.runtime_sandboxes(&c).await.len(), 1, "same sandbox");

    // delete → gone from the runtime and from /pods; logs removed.
    b.remove_manifest("web.yaml");
    test_support::wait_for("pod removed", T, || {
        let b = &b;
        let c = &c;
        async move { b.runtime_sandboxes(c).await.is_empty().then_some(()) }
    })
    .await;
    assert!(b.pod("web").is_none());
    assert!(!log.exists(), "log directory removed with the pod");
}

#[tokio::test]
async fn invalid_manifests_are_reported_and_the_last_good_pod_keeps_running() {
    let _one = exclusive();
    let c = client().await;
    ensure_image(&c, &busybox()).await;
    let mut b = Berth::new();
    b.start();
    b.write_manifest("web.yaml", &two_containers("v1"));
    b.write_manifest(
        "other.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: other}}\nspec:\n  containers:\n  - {{name: c, image: {}, command: [sleep, '3600']}}\n",
            busybox()
        ),
    );
    let p = b
        .wait_pod("web", "running", T, |p| {
            container_state(p, "b") == "running"
        })
        .await;
    let id_b = container_id(&p, "b");
    b.wait_pod("other", "running", T, |p| {
        container_state(p, "c") == "running"
    })
    .await;

    // The file turns invalid: berth says why, the pod keeps running.
    b.write_manifest(
        "web.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec:\n  containers:\n  - {{name: c, image: {img}}}\n  - {{name: c, image: {img}}}\n",
            img = busybox()
        ),
    );
    // Hostile input too: an alias bomb and garbage.
    b.write_manifest(
        "bomb.yaml",
        "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n",
    );
    b.write_manifest("garbage.json", "{\"apiVersion\": \"v1\", \"kind\": ");
    // Each file is scanned once it is closed, so the three errors may come
    // from one scan or from three.
    test_support::wait_for("the three errors in berth's log", T, || {
        let log = b.log();
        async move {
            (log.contains("web.yaml: spec.containers[1].name: duplicate name \"c\"")
                && log.contains("bomb.yaml")
                && log.contains("garbage.json"))
            .then_some(())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let p = b.pod("web").expect("web still desired");
    assert_eq!(
        container_id(&p, "b"),
        id_b,
        "the last good pod keeps running untouched"
    );
    assert_eq!(container_state(&p, "b"), "running");
    let other = b.pod("other").expect("other unaffected");
    assert_eq!(container_state(&other, "c"), "running");
    assert!(b.is_running(), "berth survived");
}

#[tokio::test]
async fn crash_loop_backs_off_and_counts_restarts() {
    let _one = exclusive();
    let c = client().await;
    ensure_image(&c, &busybox()).await;
    let mut b = Berth::new();
    b.start();
    b.write_manifest(
        "crash.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: crash}}\nspec:\n  containers:\n  - {{name: c, image: {}, command: [sh, -c, 'echo boom; exit 3']}}\n",
            busybox()
        ),
    );
    let started = std::time::Instant::now();
    let p = b
        .wait_pod("crash", "CrashLoopBackOff with restarts", T, |p| {
            restart_count(p, "c") >= 1
                && p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                    == "CrashLoopBackOff"
        })
        .await;
    let cs = &p["status"]["containerStatuses"][0];
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 3);
    assert_eq!(cs["lastState"]["terminated"]["reason"], "Error");
    assert!(
        cs["state"]["waiting"]["message"]
            .as_str()
            .unwrap()
            .contains("back-off 10s")
    );
    // The first restart is immediate, the second waits 10 s: not sooner.
    let p = b
        .wait_pod("crash", "restartCount 2", T, |p| restart_count(p, "c") >= 2)
        .await;
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "backoff honoured: {:?}",
        started.elapsed()
    );
    assert_eq!(phase(&p), "Running");
    // GC keeps only the newest exited instance besides the current one.
    let instances = b.runtime_containers(&c).await.len();
    assert!(instances <= 2, "{instances} instances kept");
}

#[tokio::test]
async fn run_to_completion_init_order_and_shared_empty_dir() {
    let _one = exclusive();
    let c = client().await;
    ensure_image(&c, &busybox()).await;
    let mut b = Berth::new();
    b.start();
    b.write_manifest(
        "job.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: job}}
spec:
  restartPolicy: Never
  initContainers:
  - {{name: first, image: {img}, command: [sh, -c, 'echo first >> /work/order'], volumeMounts: [{{name: work, mountPath: /work}}]}}
  - {{name: second, image: {img}, command: [sh, -c, 'echo second >> /work/order'], volumeMounts: [{{name: work, mountPath: /work}}]}}
  containers:
  - {{name: reader, image: {img}, command: [sh, -c, 'cat /data/order; test "$(cat /data/order)" = "$(printf "first\nsecond")"'], volumeMounts: [{{name: work, mountPath: /data}}]}}
  volumes:
  - {{name: work, emptyDir: {{}}}}
"#,
            img = busybox()
        ),
    );
    let p = b
        .wait_pod("job", "Succeeded", T, |p| phase(p) == "Succeeded")
        .await;
    assert_eq!(
        p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        0
    );
    assert_eq!(
        p["status"]["initContainerStatuses"][1]["state"]["terminated"]["reason"],
        "Completed"
    );
    let log = read(&pod_log_dir(&b, &p).join("reader/0.log"));
    assert!(
        log.contains("stdout F first") && log.contains("stdout F second"),
        "{log}"
    );
    let uid = p["metadata"]["uid"].as_str().unwrap();
    let order = b.root_dir().join(format!(
        "pods/{uid}/volumes/kubernetes.io~empty-dir/work/order"
    ));
    assert_eq!(read(&order), "first\nsecond\n");
    // A finished Never pod isn't restarted: its sandbox is stopped.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sbs = b.runtime_sandboxes(&c).await;
    assert_eq!(sbs.len(), 1);
    assert_eq!(sbs[0].state, pb::PodSandboxState::SandboxNotready as i32);
}

#[tokio::test]
async fn sigkill_and_restart_adopts_running_containers() {
    let _one = exclusive();
    let c = client().await;
    ensure_image(&c, &busybox()).await;
    let mut b = Berth::new();
    b.start();
    b.write_manifest("web.yaml", &two_containers("v1"));
    let p = b
        .wait_pod("web", "running", T, |p| {
            container_state(p, "a") == "running" && container_state(p, "b") == "running"
        })
        .await;
    let before: HashSet<String> = b
        .runtime_containers(&c)
        .await
        .into_iter()
        .map(|c| c.id)
        .collect();
    let sandbox_before: Vec<String> = b
        .runtime_sandboxes(&c)
        .await
        .into_iter()
        .map(|s| s.id)
        .collect();
    b.kill9();
    b.start();
    let p2 = b
        .wait_pod("web", "status after restart", T, |p| {
            container_state(p, "a") == "running"
        })
        .await;
    assert_eq!(container_id(&p2, "a"), container_id(&p, "a"));
    assert_eq!(container_id(&p2, "b"), container_id(&p, "b"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after: HashSet<String> = b
        .runtime_containers(&c)
        .await
        .into_iter()
        .map(|c| c.id)
        .collect();
    let sandbox_after: Vec<String> = b
        .runtime_sandboxes(&c)
        .await
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(before, after, "no container restarted or duplicated");
    assert_eq!(sandbox_before, sandbox_after, "no duplicate sandbox");

    // Deleted while berth was down: removed after the restart.
    b.kill9();
    b.remove_manifest("web.yaml");
    b.start();
    test_support::wait_for("orphan removed", T, || {
        let b = &b;
        let c = &c;
        async move { b.runtime_sandboxes(c).await.is_empty().then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn sigkill_in_the_middle_of_syncs_converges_without_duplicates() {
    let _one = exclusive();
    let c = client().await;
    ensure_image(&c, &busybox()).await;
    // --trace-cri, not RUST_LOG, turns the per-call log on here.
    let mut b = Berth::with_args(&["--trace-cri"]);
    b.rust_log = "info".into();
    b.start();
    for i in 0..5 {
        b.write_manifest(
            &format!("p{i}.yaml"),
            &two_containers(&format!("p{i}")).replace("name: web", &format!("name: p{i}")),
        );
    }
    // Kill while sandboxes and containers are being created: right after
    // the first RunPodSandbox returns (a fixed delay is too early or too
    // late depending on how loaded the runtime is).
    test_support::wait_for("the first RunPodSandbox call", T, || {
        let done = b.log().contains("method=\"RunPodSandbox\"");
        async move { done.then_some(()) }
    })
    .await;
    b.kill9();
    let log = b.log();
    assert!(
        log.contains("CRI call") && log.contains("method=\"RunPodSandbox\""),
        "--trace-cri logs each call:\n{log}"
    );
    b.start();
    for i in 0..5 {
        b.wait_pod(
            &format!("p{i}"),
            "both containers running after the restart",
            T,
            |p| container_state(p, "a") == "running" && container_state(p, "b") == "running",
        )
        .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sandboxes = b.runtime_sandboxes(&c).await;
    let containers = b.runtime_containers(&c).await;
    for i in 0..5 {
        let name = format!("p{i}-{}", b.node);
        let ready: Vec<_> = sandboxes
            .iter()
            .filter(|s| {
                s.metadata.as_ref().unwrap().name == name
                    && s.state == pb::PodSandboxState::SandboxReady as i32
            })
            .collect();
        assert_eq!(
            ready.len(),
            1,
            "exactly one ready sandbox for {name}: {sandboxes:#?}"
        );
        for ctr in ["a", "b"] {
            let running = containers
                .iter()
                .filter(|c| {
                    c.labels["io.kubernetes.pod.name"] == name
                        && c.labels["io.kubernetes.container.name"] == ctr
                        && c.state == pb::ContainerState::ContainerRunning as i32
                })
                .count();
            assert_eq!(running, 1, "one running {ctr} in {name}");
        }
    }
    // Nothing berth didn't ask for: every running container is in a ready sandbox.
    for ctr in containers
        .iter()
        .filter(|c| c.state == pb::ContainerState::ContainerRunning as i32)
    {
        assert!(
            sandboxes
                .iter()
                .any(|s| s.id == ctr.pod_sandbox_id && s.state == 0),
            "orphan {ctr:?}"
        );
    }
}

#[tokio::test]
async fn missing_image_backs_off_and_other_pods_run() {
    let _one = exclusive();
    let c = client().await;
    ensure_image(&c, &busybox()).await;
    let mut b = Berth::new();
    b.start();
    let registry = std::env::var("BERTH_TEST_REGISTRY").unwrap_or_else(|_| "localhost:5000".into());
    b.write_manifest(
        "missing.yaml",
        &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: missing}}\nspec:\n  containers:\n  - {{name: c, image: {registry}/berth-does-not-exist:1}}\n"),
    );
    b.write_manifest(
        "fine.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: fine}}\nspec:\n  containers:\n  - {{name: c, image: {}, command: [sleep, '3600']}}\n",
            busybox()
        ),
    );
    let reason = |p: &Value| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let p = b
        .wait_pod("missing", "ErrImagePull or ImagePullBackOff", T, |p| {
            matches!(reason(p).as_str(), "ErrImagePull" | "ImagePullBackOff")
        })
        .await;
    assert_eq!(phase(&p), "Pending");
    b.wait_pod("missing", "ImagePullBackOff", T, |p| {
        reason(p) == "ImagePullBackOff"
    })
    .await;
    b.wait_pod("fine", "running next to it", T, |p| {
        container_state(p, "c") == "running"
    })
    .await;
    assert!(
        b.log().contains("berth-does-not-exist"),
        "the pull failure is logged"
    );
}
