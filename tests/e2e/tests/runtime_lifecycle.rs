//! berth across runtime restarts, and with the containerd it manages itself.
//! These tests stop the test environment's containerd (only one containerd
//! may run on a machine) and bring it back with tests/env/up, so they live in
//! their own test binary and run one at a time.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Each test holds `exclusive()` for its whole run, on its own runtime, on purpose.
#![allow(clippy::await_holding_lock)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use test_support::berth::{Berth, container_state, exclusive};
use test_support::{busybox_image, client, ensure_image};

const T: Duration = Duration::from_secs(60);
const ENV_PIDFILE: &str = "/run/berth-test/containerd.pid";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn env_containerd_pid() -> Option<i32> {
    std::fs::read_to_string(ENV_PIDFILE)
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn alive(pid: i32) -> bool {
    // A zombie counts as gone (this machine's init may not reap).
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

fn stop_env_containerd() {
    let pid = env_containerd_pid().expect("the test containerd's pid file");
    Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    for _ in 0..100 {
        if !alive(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the test containerd (pid {pid}) did not stop");
}

/// Brings the test environment's containerd back (whatever a test did).
struct RestoreEnv;
impl Drop for RestoreEnv {
    fn drop(&mut self) {
        // No panicking here: this also runs while a failed test unwinds.
        match Command::new(repo().join("tests/env/up")).output() {
            Ok(st) if st.status.success() => {}
            Ok(st) => eprintln!(
                "tests/env/up failed:\n{}",
                String::from_utf8_lossy(&st.stderr)
            ),
            Err(e) => eprintln!("running tests/env/up: {e}"),
        }
    }
}

fn pod_yaml(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {{name: c, image: {}, command: [sleep, '3600']}}\n",
        busybox_image()
    )
}

fn container_id(p: &serde_json::Value) -> String {
    p["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn berth_recovers_when_containerd_restarts() {
    let _one = exclusive();
    let _restore = RestoreEnv;
    let c = client().await;
    ensure_image(&c, &busybox_image()).await;
    let mut b = Berth::new();
    b.start();
    b.write_manifest("before.yaml", &pod_yaml("before"));
    let p = b
        .wait_pod("before", "running", T, |p| {
            container_state(p, "c") == "running"
        })
        .await;
    let id = container_id(&p);

    stop_env_containerd();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        b.is_running(),
        "berth survives losing its runtime:\n{}",
        b.log()
    );
    let st = Command::new(repo().join("tests/env/up")).output().unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );

    // Same container (shims outlive containerd), and berth works again.
    b.write_manifest("after.yaml", &pod_yaml("after"));
    b.wait_pod("after", "running after the restart", T, |p| {
        container_state(p, "c") == "running"
    })
    .await;
    let p = b
        .wait_pod("before", "still running", T, |p| {
            container_state(p, "c") == "running"
        })
        .await;
    assert_eq!(container_id(&p), id, "not restarted");
    let log = b.log();
    assert!(
        log.contains("relist failed"),
        "the outage was noticed:\n{log}"
    );
    assert!(log.contains("relist works again"), "and its end:\n{log}");
}

#[tokio::test]
async fn managed_containerd_starts_and_stops_with_berth() {
    let _one = exclusive();
    let _restore = RestoreEnv;
    {
        // Pull once through the env's containerd so the registry has been
        // exercised; the managed containerd pulls again from it.
        let c = client().await;
        ensure_image(&c, &busybox_image()).await;
    }
    stop_env_containerd();
    let mut b = Berth::new();
    b.managed = true;
    b.write_manifest("managed.yaml", &pod_yaml("managed"));
    b.start();
    let p = b
        .wait_pod("managed", "running in the managed containerd", T, |p| {
            container_state(p, "c") == "running"
        })
        .await;
    let log = b.log();
    assert!(log.contains("starting a managed containerd"), "{log}");
    let sock = "unix:///run/berth/containerd/containerd.sock";
    let managed = cri_client::RuntimeClient::connect(Some(sock), Default::default())
        .await
        .unwrap();
    let pods = managed
        .list_pod_sandbox(Default::default())
        .await
        .unwrap()
        .items;
    assert!(
        pods.iter()
            .any(|s| s.metadata.as_ref().unwrap().name == format!("managed-{}", b.node)),
        "the pod runs in berth's own containerd"
    );
    // The pause image came from the project's OCI layout, not a registry.
    let pause = managed
        .image_status(cri_client::proto::ImageStatusRequest {
            image: Some(cri_client::proto::ImageSpec {
                image: "localhost/berth/pause:latest".into(),
                ..Default::default()
            }),
            verbose: false,
        })
        .await
        .unwrap();
    assert!(pause.image.is_some(), "pause image imported");
    assert!(container_state(&p, "c") == "running");

    // Remove the pod, then stop berth: its containerd goes with it.
    b.remove_manifest("managed.yaml");
    test_support::wait_for("pod removed", T, || {
        let managed = managed.clone();
        async move {
            managed
                .list_pod_sandbox(Default::default())
                .await
                .ok()?
                .items
                .is_empty()
                .then_some(())
        }
    })
    .await;
    let pids = test_support::berth::containerd_pids(&b.root_dir().display().to_string());
    assert_eq!(pids.len(), 1, "one managed containerd: {pids:?}");
    let pid = pids[0];
    b.stop();
    for _ in 0..100 {
        if !alive(pid) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!alive(pid), "managed containerd {pid} stopped with berth");
    assert!(
        b.log().contains("stopping the managed containerd"),
        "{}",
        b.log()
    );
}
