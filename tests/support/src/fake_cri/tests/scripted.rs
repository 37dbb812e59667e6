//! Scripted behaviour and observation: pulls, events, faults, exec, stats,
//! and waits under paused time.

use std::time::Duration;

use cri_client::Error;
use cri_client::proto as pb;
use pb::{ContainerEventType as Ev, ContainerState as Cs};
use tokio::time::Instant;
use tonic::{Code, Status};

use super::{busybox, pull, running, status, stop};
use crate::fake_cri::{ExecResult, FakeRuntime, StopBehaviour};

#[tokio::test(start_paused = true)]
async fn works_with_time_paused_from_the_start() {
    let (fake, client) = FakeRuntime::start().await;
    fake.set_stop_behaviour("app", StopBehaviour::IgnoresSigterm);
    let before = Instant::now();
    let (_, _, id) = running(&client, "paused", "app").await;
    assert!(
        before.elapsed() < Duration::from_secs(1),
        "setting up took {:?} of virtual time",
        before.elapsed()
    );
    stop(&client, &id, 5).await;
    assert_eq!(before.elapsed().as_secs(), 5);
}

#[tokio::test(start_paused = true)]
async fn a_stop_ends_when_the_container_exits_during_the_grace_period() {
    let (fake, client) = FakeRuntime::start().await;
    fake.set_stop_behaviour("app", StopBehaviour::IgnoresSigterm);
    let (_, _, id) = running(&client, "grace", "app").await;
    let before = Instant::now();
    let c = client.clone();
    let stopping = {
        let id = id.clone();
        tokio::spawn(async move { stop(&c, &id, 60).await })
    };
    fake.wait_until("StopContainer arrives", |f| {
        f.in_flight("StopContainer") == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        status(&client, &id).await.unwrap().state,
        Cs::ContainerRunning as i32
    );
    fake.exit_container("app", 0);
    stopping.await.unwrap();
    assert_eq!(before.elapsed().as_secs(), 2);
    let s = status(&client, &id).await.unwrap();
    assert_eq!((s.exit_code, s.reason.as_str()), (0, "Completed"));
}
#[tokio::test]
async fn pull_delays_holds_and_cancellation() {
    let (fake, client) = FakeRuntime::start().await;
    tokio::time::pause();
    fake.set_pull_delay("busybox", Duration::from_secs(5));
    let before = Instant::now();
    let image_ref = pull(&client, &busybox()).await.unwrap();
    assert_eq!(before.elapsed().as_secs(), 5);
    assert!(image_ref.starts_with("sha256:"));
    assert!(fake.image_present("busybox") || fake.image_present(&busybox()));

    let unknown = pull(&client, "localhost:5000/nope").await.unwrap_err();
    assert_eq!(unknown.code(), Some(Code::NotFound));
    assert!(
        unknown
            .to_string()
            .contains(r#"failed to resolve reference "localhost:5000/nope:latest""#),
        "{unknown}"
    );

    // A held pull that the caller gives up on is seen as cancelled.
    fake.hold_pulls("pause");
    let c2 = client.clone();
    let pending = tokio::spawn(async move { pull(&c2, &crate::pause_image()).await });
    fake.wait_until("the pull arrives", |f| f.in_flight("PullImage") == 1)
        .await;
    pending.abort();
    fake.wait_until("the pull is cancelled", |f| f.cancelled("PullImage") == 1)
        .await;
    assert_eq!(fake.in_flight("PullImage"), 0);
    assert!(!fake.image_present(&crate::pause_image()));

    // Released, a pull completes.
    let c3 = client.clone();
    let held = tokio::spawn(async move { pull(&c3, &crate::pause_image()).await });
    fake.wait_until("the second pull arrives", |f| f.in_flight("PullImage") == 1)
        .await;
    fake.release_pulls("pause");
    held.await.unwrap().unwrap();
    assert!(fake.image_present(&crate::pause_image()));
    assert_eq!(fake.call_count("PullImage"), 4);
    assert_eq!(fake.cancelled("PullImage"), 1);

    let listed = client
        .list_images(pb::ListImagesRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.images.len(), 2);
    client
        .remove_image(pb::RemoveImageRequest {
            image: Some(pb::ImageSpec {
                image: image_ref,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    assert!(!fake.image_present(&busybox()));
}

#[tokio::test]
async fn container_events_carry_the_pod_status() {
    let (fake, client) = FakeRuntime::start().await;
    let mut events = client
        .get_container_events(pb::GetEventsRequest::default())
        .await
        .unwrap();
    let (pod, _, id) = running(&client, "ev", "app").await;
    fake.exit_container("app", 0);
    client
        .remove_pod_sandbox(pb::RemovePodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .unwrap();

    let mut got = Vec::new();
    while got.len() < 8 {
        let ev = tokio::time::timeout(Duration::from_secs(5), events.message())
            .await
            .expect("an event within 5 s")
            .unwrap()
            .expect("the stream stays open");
        let status = ev.pod_sandbox_status.clone().expect("pod status");
        assert_eq!(status.id, pod);
        assert_eq!(status.metadata.unwrap().name, "ev");
        let who = if ev.container_id == pod { "pod" } else { "app" };
        got.push((who, Ev::try_from(ev.container_event_type).unwrap()));
        if ev.container_id == id && ev.container_event_type == Ev::ContainerStoppedEvent as i32 {
            let s = &ev.containers_statuses[0];
            assert_eq!(
                (s.state, s.exit_code, s.reason.as_str()),
                (Cs::ContainerExited as i32, 0, "Completed")
            );
        }
    }
    use Ev::*;
    assert_eq!(
        got,
        [
            ("pod", ContainerCreatedEvent),
            ("pod", ContainerStartedEvent),
            ("app", ContainerCreatedEvent),
            ("app", ContainerStartedEvent),
            ("app", ContainerStoppedEvent),
            ("pod", ContainerStoppedEvent),
            ("app", ContainerDeletedEvent),
            ("pod", ContainerDeletedEvent),
        ]
    );

    // Dropping the handle ends the stream and the socket.
    let endpoint = fake.endpoint().to_string();
    drop(fake);
    let end = tokio::time::timeout(Duration::from_secs(5), events.message()).await;
    assert!(matches!(end, Ok(Ok(None)) | Ok(Err(_))), "{end:?}");
    let path = endpoint.trim_start_matches("unix://");
    assert!(!std::path::Path::new(path).exists(), "{path} still exists");
}

#[tokio::test]
async fn events_unimplemented_like_containerd_1_6() {
    let (fake, client) = FakeRuntime::start().await;
    fake.set_events_unimplemented(true);
    let err = client
        .get_container_events(pb::GetEventsRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unimplemented { .. }), "{err}");
    let exec = client.exec(pb::ExecRequest::default()).await.unwrap_err();
    assert_eq!(exec.code(), Some(Code::Unimplemented));
}

#[tokio::test]
async fn injected_failures_latency_and_exec_scripts() {
    let (fake, client) = FakeRuntime::start().await;
    let (_, _, id) = running(&client, "probe", "app").await;

    fake.fail_next(
        "ContainerStatus",
        Status::unavailable("runtime is restarting"),
    );
    let err = status(&client, &id).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::Unavailable));
    status(&client, &id)
        .await
        .expect("only the next call fails");

    tokio::time::pause();
    fake.set_latency("Version", Duration::from_secs(1));
    let before = Instant::now();
    client.version(pb::VersionRequest::default()).await.unwrap();
    assert_eq!(before.elapsed().as_secs(), 1);

    let exec = |cmd: &[&str], timeout: i64| {
        let client = client.clone();
        let req = pb::ExecSyncRequest {
            container_id: id.clone(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout,
        };
        async move { client.exec_sync(req).await }
    };
    fake.set_exec_result("app", Some(&["cat", "/ready"]), ExecResult::stdout("ok"));
    fake.set_exec_result("busybox", Some(&["false"]), ExecResult::exit(1));
    fake.set_exec_result(
        "app",
        Some(&["slow"]),
        ExecResult {
            delay: Duration::from_secs(5),
            ..Default::default()
        },
    );
    let r = exec(&["cat", "/ready"], 1).await.unwrap();
    assert_eq!((r.exit_code, r.stdout.as_slice()), (0, &b"ok"[..]));
    assert_eq!(exec(&["false"], 1).await.unwrap().exit_code, 1);
    assert_eq!(exec(&["true"], 1).await.unwrap().exit_code, 0);
    let slow = exec(&["slow"], 2).await.unwrap_err();
    assert_eq!(slow.code(), Some(Code::DeadlineExceeded), "{slow}");
    let cmds: Vec<String> = fake
        .calls_of(&["ExecSync"])
        .into_iter()
        .map(|c| c.detail)
        .collect();
    assert_eq!(cmds, ["cat /ready", "false", "true", "slow"]);

    fake.exit_container(&id, 0);
    let dead = exec(&["true"], 1).await.unwrap_err();
    assert!(dead.to_string().contains("CONTAINER_EXITED"), "{dead}");
}

#[tokio::test]
async fn runtime_status_config_and_stats() {
    let (fake, client) = FakeRuntime::start().await;
    let st = client.status(pb::StatusRequest::default()).await.unwrap();
    let conds: Vec<_> = st
        .status
        .unwrap()
        .conditions
        .into_iter()
        .map(|c| (c.r#type, c.status))
        .collect();
    assert_eq!(
        conds,
        [("RuntimeReady".into(), true), ("NetworkReady".into(), true)]
    );
    fake.set_network_ready(false, "NetworkPluginNotReady", "cni config uninitialized");
    let st = client.status(pb::StatusRequest::default()).await.unwrap();
    let net = &st.status.unwrap().conditions[1];
    assert_eq!(
        (net.status, net.reason.as_str()),
        (false, "NetworkPluginNotReady")
    );
    let cfg = client
        .runtime_config(pb::RuntimeConfigRequest::default())
        .await
        .unwrap();
    assert_eq!(
        cfg.linux.unwrap().cgroup_driver,
        pb::CgroupDriver::Cgroupfs as i32
    );

    let (pod, _, id) = running(&client, "stats", "app").await;
    let stats = client
        .list_container_stats(pb::ListContainerStatsRequest::default())
        .await
        .unwrap()
        .stats;
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].attributes.as_ref().unwrap().id, id);
    let pods = client
        .list_pod_sandbox_stats(pb::ListPodSandboxStatsRequest::default())
        .await
        .unwrap()
        .stats;
    assert_eq!(pods[0].attributes.as_ref().unwrap().id, pod);
    assert_eq!(pods[0].linux.as_ref().unwrap().containers.len(), 1);
    let fs = client
        .image_fs_info(pb::ImageFsInfoRequest::default())
        .await
        .unwrap();
    assert!(fs.image_filesystems[0].used_bytes.unwrap().value > 0);
    client
        .update_container_resources(pb::UpdateContainerResourcesRequest {
            container_id: id.clone(),
            linux: Some(pb::LinuxContainerResources {
                cpu_shares: 512,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let s = status(&client, &id).await.unwrap();
    assert_eq!(s.resources.unwrap().linux.unwrap().cpu_shares, 512);
    fake.exit_container("app", 0);
    let stats = client
        .list_container_stats(pb::ListContainerStatsRequest::default())
        .await
        .unwrap()
        .stats;
    assert!(stats.is_empty(), "no stats for exited containers");
}
