//! The fake, driven the way the kubelet drives it: through `RuntimeClient`.
//! This file: the state machines; `scripted`: what tests script and observe.

mod scripted;

use cri_client::proto as pb;
use cri_client::{Error, RuntimeClient};
use pb::{ContainerState as Cs, PodSandboxState as Ps};
use tokio::time::Instant;

use super::{FakeRuntime, StopBehaviour};

pub(super) fn busybox() -> String {
    crate::busybox_image()
}

pub(super) fn sandbox(name: &str, labels: &[(&str, &str)]) -> pb::PodSandboxConfig {
    let mut config = crate::sandbox_config(name, std::path::Path::new("/var/log/pods/fake"));
    config.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    config.annotations = [("note".to_string(), name.to_string())].into();
    config
}

pub(super) async fn run(client: &RuntimeClient, config: &pb::PodSandboxConfig) -> String {
    client
        .run_pod_sandbox(pb::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .expect("RunPodSandbox")
        .pod_sandbox_id
}

pub(super) async fn pull(client: &RuntimeClient, image: &str) -> Result<String, Error> {
    client
        .pull_image(pb::PullImageRequest {
            image: Some(pb::ImageSpec {
                image: image.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .map(|r| r.image_ref)
}

pub(super) async fn create(
    client: &RuntimeClient,
    pod: &str,
    pod_config: &pb::PodSandboxConfig,
    config: pb::ContainerConfig,
) -> Result<String, Error> {
    client
        .create_container(pb::CreateContainerRequest {
            pod_sandbox_id: pod.to_string(),
            config: Some(config),
            sandbox_config: Some(pod_config.clone()),
        })
        .await
        .map(|r| r.container_id)
}

pub(super) async fn start(client: &RuntimeClient, id: &str) {
    client
        .start_container(pb::StartContainerRequest {
            container_id: id.to_string(),
        })
        .await
        .expect("StartContainer");
}

pub(super) async fn status(client: &RuntimeClient, id: &str) -> Result<pb::ContainerStatus, Error> {
    client
        .container_status(pb::ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: false,
        })
        .await
        .map(|r| r.status.expect("status"))
}

pub(super) async fn pod_status(client: &RuntimeClient, id: &str) -> pb::PodSandboxStatus {
    client
        .pod_sandbox_status(pb::PodSandboxStatusRequest {
            pod_sandbox_id: id.to_string(),
            verbose: false,
        })
        .await
        .expect("PodSandboxStatus")
        .status
        .expect("status")
}

pub(super) async fn stop(client: &RuntimeClient, id: &str, timeout: i64) {
    client
        .stop_container(pb::StopContainerRequest {
            container_id: id.to_string(),
            timeout,
        })
        .await
        .expect("StopContainer");
}

/// A pod with one running busybox container named `name`.
pub(super) async fn running(
    client: &RuntimeClient,
    pod_name: &str,
    name: &str,
) -> (String, pb::PodSandboxConfig, String) {
    pull(client, &busybox()).await.expect("pull busybox");
    let config = sandbox(pod_name, &[("app", pod_name)]);
    let pod = run(client, &config).await;
    let id = create(
        client,
        &pod,
        &config,
        crate::container_config(name, &busybox(), &["sleep", "1d"]),
    )
    .await
    .expect("CreateContainer");
    start(client, &id).await;
    (pod, config, id)
}

#[tokio::test]
async fn lifecycle_with_a_container_that_ignores_sigterm() {
    let (fake, client) = FakeRuntime::start().await;
    fake.set_stop_behaviour("app", StopBehaviour::IgnoresSigterm);
    let (pod, _, id) = running(&client, "web", "app").await;

    let s = status(&client, &id).await.unwrap();
    assert_eq!(s.state, Cs::ContainerRunning as i32);
    assert!(s.started_at > s.created_at && s.finished_at == 0);
    assert_eq!(s.log_path, "/var/log/pods/fake/app/0.log");
    assert_eq!(s.image.unwrap().image, busybox());
    assert!(s.image_ref.contains("@sha256:"), "{}", s.image_ref);
    assert_eq!(s.labels["berth-test"], "true");
    let p = pod_status(&client, &pod).await;
    assert_eq!(p.state, Ps::SandboxReady as i32);
    assert!(p.network.unwrap().ip.starts_with("10.88."));
    assert_eq!(p.metadata.unwrap().name, "web");
    assert_eq!(p.annotations["note"], "web");

    // The grace period passes in virtual time: 30 s without waiting.
    tokio::time::pause();
    let before = Instant::now();
    stop(&client, &id, 30).await;
    assert_eq!(before.elapsed().as_secs(), 30);
    let s = status(&client, &id).await.unwrap();
    assert_eq!(
        (s.state, s.exit_code, s.reason.as_str()),
        (Cs::ContainerExited as i32, 137, "Error")
    );
    assert!(s.finished_at - s.started_at >= 30_000_000_000);

    client
        .stop_pod_sandbox(pb::StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .unwrap();
    let p = pod_status(&client, &pod).await;
    assert_eq!(p.state, Ps::SandboxNotready as i32);
    assert_eq!(p.network.unwrap().ip, "", "the IP goes with the network");
    client
        .remove_pod_sandbox(pb::RemovePodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .unwrap();
    let gone = status(&client, &id).await.unwrap_err();
    assert!(gone.is_not_found(), "{gone}");
    assert!(
        gone.to_string()
            .contains("an error occurred when try to find container")
    );

    let order = fake.calls_of(&["StopContainer", "StopPodSandbox", "RemovePodSandbox"]);
    let got: Vec<_> = order.iter().map(|c| (c.rpc, c.name.as_deref())).collect();
    assert_eq!(
        got,
        [
            ("StopContainer", Some("app")),
            ("StopPodSandbox", Some("berth-test/web")),
            ("RemovePodSandbox", Some("berth-test/web")),
        ]
    );
    assert_eq!(order[0].detail, "timeout=30");
}

#[tokio::test]
async fn stop_signals_and_kills() {
    let (fake, client) = FakeRuntime::start().await;
    let (pod, config, term) = running(&client, "p", "term").await;
    fake.set_stop_behaviour("graceful", StopBehaviour::ExitsOnSigtermWith(0));
    let mk = |n: &str| crate::container_config(n, &busybox(), &[]);
    let graceful = create(&client, &pod, &config, mk("graceful"))
        .await
        .unwrap();
    let killed = create(&client, &pod, &config, mk("killed")).await.unwrap();
    let never = create(&client, &pod, &config, mk("never")).await.unwrap();
    start(&client, &graceful).await;
    start(&client, &killed).await;

    stop(&client, &term, 10).await;
    stop(&client, &graceful, 10).await;
    stop(&client, &killed, 0).await;
    stop(&client, &never, 10).await; // not running: nothing to do
    let outcome = |s: pb::ContainerStatus| (s.state, s.exit_code, s.reason);
    let exited = Cs::ContainerExited as i32;
    assert_eq!(
        outcome(status(&client, &term).await.unwrap()),
        (exited, 143, "Error".into())
    );
    assert_eq!(
        outcome(status(&client, &graceful).await.unwrap()),
        (exited, 0, "Completed".into())
    );
    assert_eq!(
        outcome(status(&client, &killed).await.unwrap()),
        (exited, 137, "Error".into())
    );
    let s = status(&client, &never).await.unwrap();
    assert_eq!(s.state, Cs::ContainerCreated as i32);

    // A created container cannot start twice, nor in a stopped sandbox.
    let again = client
        .start_container(pb::StartContainerRequest {
            container_id: term.clone(),
        })
        .await
        .unwrap_err();
    assert!(
        again
            .to_string()
            .contains("container is in CONTAINER_EXITED state"),
        "{again}"
    );
    client
        .stop_pod_sandbox(pb::StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .unwrap();
    let err = client
        .start_container(pb::StartContainerRequest {
            container_id: never,
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is not running"), "{err}");

    // Exits of its own accord, and the OOM killer.
    let (_, _, own) = running(&client, "q", "own").await;
    assert_eq!(fake.exit_container("own", 3), own);
    let s = status(&client, &own).await.unwrap();
    assert_eq!((s.exit_code, s.reason.as_str()), (3, "Error"));
    assert!(s.finished_at >= s.started_at);
    let (_, _, oom) = running(&client, "r", "hog").await;
    fake.oom_kill_container(&oom[..12]);
    let s = status(&client, &oom).await.unwrap();
    assert_eq!((s.exit_code, s.reason.as_str()), (137, "OOMKilled"));
}

#[tokio::test]
async fn list_filters() {
    let (fake, client) = FakeRuntime::start().await;
    let (pod_a, config_a, run_a) = running(&client, "a", "one").await;
    let config_b = sandbox("b", &[("app", "b"), ("tier", "db")]);
    let pod_b = run(&client, &config_b).await;
    let mut two = crate::container_config("two", &busybox(), &[]);
    two.labels.insert("role".into(), "sidecar".into());
    let created_b = create(&client, &pod_b, &config_b, two).await.unwrap();
    fake.exit_container(&run_a, 0);
    let _ = config_a;

    let list = |filter: pb::ContainerFilter| {
        let client = client.clone();
        async move {
            let mut ids: Vec<String> = client
                .list_containers(pb::ListContainersRequest {
                    filter: Some(filter),
                })
                .await
                .unwrap()
                .containers
                .into_iter()
                .map(|c| c.id)
                .collect();
            ids.sort();
            ids
        }
    };
    let mut all = vec![run_a.clone(), created_b.clone()];
    all.sort();
    assert_eq!(list(pb::ContainerFilter::default()).await, all);
    let state = |s: Cs| Some(pb::ContainerStateValue { state: s as i32 });
    assert_eq!(
        list(pb::ContainerFilter {
            state: state(Cs::ContainerCreated),
            ..Default::default()
        })
        .await,
        vec![created_b.clone()]
    );
    assert_eq!(
        list(pb::ContainerFilter {
            state: state(Cs::ContainerRunning),
            ..Default::default()
        })
        .await,
        Vec::<String>::new()
    );
    assert_eq!(
        list(pb::ContainerFilter {
            pod_sandbox_id: pod_a[..8].into(),
            ..Default::default()
        })
        .await,
        vec![run_a.clone()]
    );
    assert_eq!(
        list(pb::ContainerFilter {
            id: created_b[..10].into(),
            ..Default::default()
        })
        .await,
        vec![created_b.clone()]
    );
    assert_eq!(
        list(pb::ContainerFilter {
            id: "nosuch".into(),
            ..Default::default()
        })
        .await,
        Vec::<String>::new()
    );
    let selector = [("role".to_string(), "sidecar".to_string())].into();
    assert_eq!(
        list(pb::ContainerFilter {
            label_selector: selector,
            ..Default::default()
        })
        .await,
        vec![created_b.clone()]
    );

    client
        .stop_pod_sandbox(pb::StopPodSandboxRequest {
            pod_sandbox_id: pod_a.clone(),
        })
        .await
        .unwrap();
    let pods = |filter: pb::PodSandboxFilter| {
        let client = client.clone();
        async move {
            client
                .list_pod_sandbox(pb::ListPodSandboxRequest {
                    filter: Some(filter),
                })
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|p| p.id)
                .collect::<Vec<_>>()
        }
    };
    let ready = Some(pb::PodSandboxStateValue {
        state: Ps::SandboxReady as i32,
    });
    assert_eq!(
        pods(pb::PodSandboxFilter {
            state: ready,
            ..Default::default()
        })
        .await,
        vec![pod_b.clone()]
    );
    let tier = [("tier".to_string(), "db".to_string())].into();
    assert_eq!(
        pods(pb::PodSandboxFilter {
            label_selector: tier,
            ..Default::default()
        })
        .await,
        vec![pod_b.clone()]
    );
    assert_eq!(
        pods(pb::PodSandboxFilter {
            id: pod_a.clone(),
            ..Default::default()
        })
        .await,
        vec![pod_a.clone()]
    );
    assert_eq!(pods(pb::PodSandboxFilter::default()).await.len(), 2);
}

#[tokio::test]
async fn names_are_reserved_until_removal() {
    let (_fake, client) = FakeRuntime::start().await;
    let (pod, config, first) = running(&client, "web", "app").await;
    let app = || crate::container_config("app", &busybox(), &[]);
    let err = create(&client, &pod, &config, app()).await.unwrap_err();
    let name = "app_web_berth-test_uid-web_0";
    assert_eq!(
        err.to_string(),
        format!(
            "CreateContainer: failed to reserve container name {name:?}: name {name:?} is reserved for {first:?} (Unknown)"
        )
    );
    // The next attempt is another name; removal frees the first.
    let mut retry = app();
    retry.metadata.as_mut().unwrap().attempt = 1;
    create(&client, &pod, &config, retry).await.unwrap();
    client
        .remove_container(pb::RemoveContainerRequest {
            container_id: first.clone(),
        })
        .await
        .unwrap();
    create(&client, &pod, &config, app()).await.unwrap();
    // Removing what is gone is fine, as in containerd.
    client
        .remove_container(pb::RemoveContainerRequest {
            container_id: first,
        })
        .await
        .unwrap();

    let dup = client
        .run_pod_sandbox(pb::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert!(
        dup.to_string()
            .contains(r#"failed to reserve sandbox name "web_berth-test_uid-web_0""#),
        "{dup}"
    );
    let missing = create(&client, "nosuch", &config, app()).await.unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
    let no_image = create(
        &client,
        &pod,
        &config,
        crate::container_config("x", "localhost:5000/never-pulled:1", &[]),
    )
    .await
    .unwrap_err();
    assert!(
        no_image.is_not_found() && no_image.to_string().contains("failed to resolve image"),
        "{no_image}"
    );
}

#[tokio::test]
async fn namespace_options_and_mounts_are_echoed() {
    let (_fake, client) = FakeRuntime::start().await;
    pull(&client, &busybox()).await.unwrap();
    let mut config = sandbox("host", &[]);
    let options = pb::NamespaceOption {
        network: pb::NamespaceMode::Node as i32,
        pid: pb::NamespaceMode::Container as i32,
        ipc: pb::NamespaceMode::Pod as i32,
        ..Default::default()
    };
    config.linux = Some(pb::LinuxPodSandboxConfig {
        security_context: Some(pb::LinuxSandboxSecurityContext {
            namespace_options: Some(options.clone()),
            ..Default::default()
        }),
        ..Default::default()
    });
    let pod = run(&client, &config).await;
    let p = pod_status(&client, &pod).await;
    assert_eq!(p.network.unwrap().ip, "", "host-network pods get no IP");
    assert_eq!(p.linux.unwrap().namespaces.unwrap().options, Some(options));

    let mut app = crate::container_config("app", &busybox(), &[]);
    let mount = pb::Mount {
        container_path: "/data".into(),
        host_path: "/var/lib/kubelet/pods/x/volumes/data".into(),
        readonly: true,
        ..Default::default()
    };
    app.mounts = vec![mount.clone()];
    app.annotations = [(
        "io.kubernetes.container.hash".to_string(),
        "abc".to_string(),
    )]
    .into();
    let id = create(&client, &pod, &config, app).await.unwrap();
    let s = status(&client, &id).await.unwrap();
    assert_eq!(s.mounts, [mount]);
    assert_eq!(s.annotations["io.kubernetes.container.hash"], "abc");
    assert_eq!(s.metadata.unwrap().name, "app");
    assert!(s.image_id.starts_with("sha256:"));
    assert_eq!(
        (s.state, s.started_at, s.reason.as_str()),
        (Cs::ContainerCreated as i32, 0, "")
    );
}
