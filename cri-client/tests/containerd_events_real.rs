//! containerd's event stream against the real containerd 1.6 that
//! `tests/env/up` starts (`BERTH_TEST_ENDPOINT`, default
//! unix:///run/berth-test/containerd.sock): a container's start and exit
//! arrive as typed events, milliseconds after the exit, and an exec's exit
//! is told apart from the container's.
//!
//! The test environment must be up; a missing socket fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use cri_client::client::{RuntimeClient, Timeouts};
use cri_client::containerd_events::{
    CRI_NAMESPACE, ContainerdEvent, ContainerdEvents, EventsError, RuntimeEvent,
};
use cri_proto::v1 as pb;
use futures_util::StreamExt;
use tokio::sync::mpsc;

const DEFAULT_ENDPOINT: &str = "unix:///run/berth-test/containerd.sock";
/// How long to wait for any one expected event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

fn endpoint() -> String {
    let endpoint = std::env::var("BERTH_TEST_ENDPOINT").unwrap_or_else(|_| DEFAULT_ENDPOINT.into());
    let path =
        PathBuf::from(endpoint.strip_prefix("unix://").unwrap_or_else(|| {
            panic!("BERTH_TEST_ENDPOINT={endpoint:?} is not a unix:// endpoint")
        }));
    assert!(
        path.exists(),
        "no containerd socket at {}; run tests/env/up first",
        path.display()
    );
    endpoint
}

fn image(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.into())
}

fn busybox() -> String {
    image("BERTH_TEST_BUSYBOX_IMAGE", "localhost:5000/busybox:latest")
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{:x}", std::process::id(), nanos & 0xff_ffff)
}

/// An event and the moment it reached the test.
type Arrival = (jiff::Timestamp, Result<ContainerdEvent, EventsError>);

/// Subscribes to task and container events in `k8s.io` and forwards each,
/// stamped with its arrival time, from a task of its own so arrival is
/// measured even while the test is busy with CRI calls.
async fn subscribe() -> mpsc::UnboundedReceiver<Arrival> {
    let events = ContainerdEvents::connect(&endpoint())
        .await
        .unwrap_or_else(|e| panic!("connecting to containerd: {e}"));
    let mut stream = events
        .subscribe(
            CRI_NAMESPACE,
            &[r#"topic~="/tasks/""#, r#"topic~="/containers/""#],
        )
        .await
        .unwrap_or_else(|e| panic!("subscribing to containerd events: {e}"));
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            let now = jiff::Timestamp::now();
            if tx.send((now, item)).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for the first event `want` accepts, failing on stream errors, the
/// stream's end, or the timeout. Events it does not accept are skipped.
async fn wait_for(
    rx: &mut mpsc::UnboundedReceiver<Arrival>,
    what: &str,
    want: impl Fn(&RuntimeEvent) -> bool,
) -> (jiff::Timestamp, ContainerdEvent) {
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    loop {
        let item = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {what} within {EVENT_TIMEOUT:?}"));
        let (at, event) = item.unwrap_or_else(|| panic!("event stream ended before {what}"));
        let event = event.unwrap_or_else(|e| panic!("event stream error before {what}: {e}"));
        assert_eq!(event.namespace, CRI_NAMESPACE, "{event:?}");
        if want(&event.event) {
            return (at, event);
        }
    }
}

/// A pod sandbox, stopped and removed on drop even when the test panics.
/// Cleanup runs on its own thread and runtime: the test's may be unwinding.
struct Pod {
    id: String,
    config: pb::PodSandboxConfig,
    _logs: tempfile::TempDir,
}

impl Drop for Pod {
    fn drop(&mut self) {
        let id = self.id.clone();
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let cri = match RuntimeClient::connect(Some(&endpoint()), Timeouts::default()).await
                {
                    Ok(c) => c,
                    Err(e) => return eprintln!("cleanup: connecting: {e}"),
                };
                let stop = pb::StopPodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                };
                if let Err(e) = cri.stop_pod_sandbox(stop).await {
                    eprintln!("cleanup: stopping pod {id}: {e}");
                }
                let rm = pb::RemovePodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                };
                if let Err(e) = cri.remove_pod_sandbox(rm).await {
                    eprintln!("cleanup: removing pod {id}: {e}");
                }
            });
        });
        let _ = cleanup.join();
    }
}

async fn cri() -> RuntimeClient {
    RuntimeClient::connect(Some(&endpoint()), Timeouts::default())
        .await
        .unwrap_or_else(|e| panic!("connecting to CRI: {e}"))
}

async fn pull(cri: &RuntimeClient, image: &str) {
    cri.pull_image(pb::PullImageRequest {
        image: Some(pb::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("pulling {image}: {e}"));
}

async fn run_pod(cri: &RuntimeClient, name: &str) -> Pod {
    pull(
        cri,
        &image("BERTH_TEST_PAUSE_IMAGE", "localhost:5000/pause:latest"),
    )
    .await;
    pull(cri, &busybox()).await;
    let logs = tempfile::tempdir().unwrap();
    let name = unique(name);
    let config = pb::PodSandboxConfig {
        metadata: Some(pb::PodSandboxMetadata {
            name: name.clone(),
            uid: format!("uid-{name}"),
            namespace: "berth-events-test".into(),
            attempt: 0,
        }),
        log_directory: logs.path().display().to_string(),
        linux: Some(Default::default()),
        ..Default::default()
    };
    let id = cri
        .run_pod_sandbox(pb::RunPodSandboxRequest {
            config: Some(config.clone()),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("RunPodSandbox {name}: {e}"))
        .pod_sandbox_id;
    Pod {
        id,
        config,
        _logs: logs,
    }
}

/// Creates a busybox container running `script` with `sh -c`; returns its ID.
async fn create(cri: &RuntimeClient, pod: &Pod, name: &str, script: &str) -> String {
    let config = pb::ContainerConfig {
        metadata: Some(pb::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(pb::ImageSpec {
            image: busybox(),
            ..Default::default()
        }),
        command: vec!["sh".into(), "-c".into(), script.into()],
        log_path: format!("{name}.log"),
        linux: Some(Default::default()),
        ..Default::default()
    };
    cri.create_container(pb::CreateContainerRequest {
        pod_sandbox_id: pod.id.clone(),
        config: Some(config),
        sandbox_config: Some(pod.config.clone()),
    })
    .await
    .unwrap_or_else(|e| panic!("CreateContainer {name}: {e}"))
    .container_id
}

async fn start(cri: &RuntimeClient, id: &str) {
    cri.start_container(pb::StartContainerRequest {
        container_id: id.into(),
    })
    .await
    .unwrap_or_else(|e| panic!("StartContainer {id}: {e}"));
}

/// The container's status once CRI reports it exited.
async fn exited_status(cri: &RuntimeClient, id: &str) -> pb::ContainerStatus {
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    loop {
        let status = cri
            .container_status(pb::ContainerStatusRequest {
                container_id: id.into(),
                verbose: false,
            })
            .await
            .unwrap_or_else(|e| panic!("ContainerStatus {id}: {e}"))
            .status
            .unwrap_or_else(|| panic!("ContainerStatus {id}: no status"));
        if status.state == pb::ContainerState::ContainerExited as i32 {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "container {id} not exited after {EVENT_TIMEOUT:?}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_exit_arrives_milliseconds_after_it_finished() {
    let mut rx = subscribe().await;
    let cri = cri().await;
    let pod = run_pod(&cri, "events-exit").await;
    let id = create(&cri, &pod, "exits", "sleep 0.2; exit 3").await;

    let (_, created) = wait_for(
        &mut rx,
        "ContainerCreate",
        |e| matches!(e, RuntimeEvent::ContainerCreate { id: c, .. } if *c == id),
    )
    .await;
    assert_eq!(created.topic, "/containers/create");
    assert!(
        matches!(&created.event, RuntimeEvent::ContainerCreate { image, .. } if !image.is_empty()),
        "{created:?}"
    );

    start(&cri, &id).await;
    let (_, started) = wait_for(
        &mut rx,
        "TaskStart",
        |e| matches!(e, RuntimeEvent::TaskStart { container_id, .. } if *container_id == id),
    )
    .await;
    assert_eq!(started.topic, "/tasks/start");
    let start_pid = match started.event {
        RuntimeEvent::TaskStart { pid, .. } => pid,
        _ => unreachable!(),
    };
    assert!(start_pid > 0, "{started:?}");

    let (arrived, exit) = wait_for(
        &mut rx,
        "TaskExit",
        |e| matches!(e, RuntimeEvent::TaskExit { container_id, .. } if *container_id == id),
    )
    .await;
    assert_eq!(exit.topic, "/tasks/exit");
    let RuntimeEvent::TaskExit {
        exec_id,
        pid,
        exit_status,
        exited_at,
        ..
    } = exit.event.clone()
    else {
        unreachable!()
    };
    assert_eq!(exec_id, None, "the init process's exit is not an exec's");
    assert!(!exit.event.is_exec());
    assert_eq!(pid, start_pid, "exit and start name the same process");
    assert_eq!(exit_status, 3, "{exit:?}");
    let exited_at = exited_at.unwrap_or_else(|| panic!("TaskExit without exited_at: {exit:?}"));

    // CRI's view of the same exit.
    let status = exited_status(&cri, &id).await;
    assert_eq!(status.exit_code, 3, "{status:?}");
    let finished_at = jiff::Timestamp::from_nanosecond(i128::from(status.finished_at)).unwrap();
    let skew = (exited_at.as_nanosecond() - finished_at.as_nanosecond()).abs();
    assert!(
        skew <= 1_000_000,
        "TaskExit.exited_at {exited_at} and ContainerStatus.finished_at {finished_at} differ by {skew} ns"
    );
    let delay = arrived.duration_since(finished_at);
    let delay_ms = delay.as_secs_f64() * 1000.0;
    println!(
        "container {id}: finished_at {finished_at}, TaskExit arrived {arrived}: {delay_ms:.2} ms later (envelope published {:?})",
        exit.timestamp
    );
    assert!(
        delay.as_secs_f64() >= 0.0,
        "the exit event arrived before the container finished ({delay_ms:.2} ms)"
    );
    // A 1 s relist sees exits ~0.9 s late on average; the event stream must
    // beat that by far even on a busy machine (a few ms when idle).
    assert!(
        delay_ms < 300.0,
        "TaskExit arrived {delay_ms:.2} ms after the container finished"
    );

    // containerd's CRI plugin deletes the task once it has handled the exit.
    let (_, deleted) = wait_for(
        &mut rx,
        "TaskDelete",
        |e| matches!(e, RuntimeEvent::TaskDelete { container_id, .. } if *container_id == id),
    )
    .await;
    assert!(
        matches!(
            deleted.event,
            RuntimeEvent::TaskDelete {
                exit_status: 3,
                exec_id: None,
                ..
            }
        ),
        "{deleted:?}"
    );

    cri.remove_container(pb::RemoveContainerRequest {
        container_id: id.clone(),
    })
    .await
    .unwrap_or_else(|e| panic!("RemoveContainer {id}: {e}"));
    let (_, removed) = wait_for(
        &mut rx,
        "ContainerDelete",
        |e| matches!(e, RuntimeEvent::ContainerDelete { id: c } if *c == id),
    )
    .await;
    assert_eq!(removed.topic, "/containers/delete");
    drop(pod);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_exit_names_the_exec_not_the_container() {
    let mut rx = subscribe().await;
    let cri = cri().await;
    let pod = run_pod(&cri, "events-exec").await;
    let id = create(&cri, &pod, "sleeper", "sleep 60").await;
    start(&cri, &id).await;
    wait_for(
        &mut rx,
        "TaskStart",
        |e| matches!(e, RuntimeEvent::TaskStart { container_id, .. } if *container_id == id),
    )
    .await;

    let out = cri
        .exec_sync(pb::ExecSyncRequest {
            container_id: id.clone(),
            cmd: vec!["sh".into(), "-c".into(), "exit 5".into()],
            timeout: 10,
        })
        .await
        .unwrap_or_else(|e| panic!("ExecSync in {id}: {e}"));
    assert_eq!(out.exit_code, 5);

    let (_, started) = wait_for(
        &mut rx,
        "TaskExecStarted",
        |e| matches!(e, RuntimeEvent::TaskExecStarted { container_id, .. } if *container_id == id),
    )
    .await;
    let exec = started.event.exec_id().unwrap().to_string();
    assert!(!exec.is_empty() && exec != id, "{started:?}");

    let (_, exit) = wait_for(
        &mut rx,
        "the exec's TaskExit",
        |e| matches!(e, RuntimeEvent::TaskExit { container_id, .. } if *container_id == id),
    )
    .await;
    assert!(exit.event.is_exec(), "{exit:?}");
    assert_eq!(exit.event.exec_id(), Some(exec.as_str()));
    assert!(
        matches!(exit.event, RuntimeEvent::TaskExit { exit_status: 5, .. }),
        "{exit:?}"
    );

    // The container itself is still running.
    let status = cri
        .container_status(pb::ContainerStatusRequest {
            container_id: id.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(
        status.state,
        pb::ContainerState::ContainerRunning as i32,
        "{status:?}"
    );
    drop(pod);
}
