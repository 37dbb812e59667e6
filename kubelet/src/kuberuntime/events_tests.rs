//! The events the runtime manager and the image manager record, against the
//! fake CRI runtime of `test_support`.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use k8s_openapi::api::core::v1::{Container, Pod};
use test_support::fake_cri::FakeRuntime;
use tokio::sync::mpsc;

use super::*;
use crate::container::runtime::RunContainerOptions;
use crate::events::{self, drain};

/// No DNS, cgroups or mounts: enough for the fake runtime.
struct BareHelper;

impl RuntimeHelper for BareHelper {
    fn dns_config(&self, _: &Pod) -> Result<pb::DnsConfig, DnsError> {
        Ok(pb::DnsConfig::default())
    }
    fn cgroup_parent(&self, _: &Pod) -> String {
        String::new()
    }
    fn run_container_options<'a>(
        &'a self,
        _: &'a Pod,
        _: &'a Container,
        _: u32,
        _: &'a str,
    ) -> BoxFuture<'a, Result<RunContainerOptions, Waiting>> {
        Box::pin(async { Ok(RunContainerOptions::default()) })
    }
}

struct Setup {
    fake: FakeRuntime,
    manager: KubeRuntimeManager,
    events: mpsc::Receiver<k8s_openapi::api::core::v1::Event>,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let (fake, client) = FakeRuntime::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (recorder, events) = events::channel("node-a");
    let handlers = Arc::new(HandlerRunner::new(client.clone(), "127.0.0.1".into()));
    let manager = KubeRuntimeManager::new(
        client.clone(),
        ImageManager::new(client, false).with_recorder(recorder.clone()),
        Arc::new(BareHelper),
        handlers,
        RuntimeSettings {
            pod_logs_dir: dir.path().join("pods"),
        },
    )
    .with_recorder(recorder);
    Setup {
        fake,
        manager,
        events,
        _dir: dir,
    }
}

fn pod(uid: &str, image: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("web-{uid}"), "namespace": "shop", "uid": uid},
        "spec": {
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "app", "image": image, "imagePullPolicy": "IfNotPresent"}],
        },
    }))
    .expect("pod")
}

type Seen = Vec<(String, String, String, String)>;

fn ev(ty: &str, reason: &str, message: &str) -> (String, String, String, String) {
    (
        ty.into(),
        reason.into(),
        "spec.containers{app}".into(),
        message.into(),
    )
}

#[tokio::test]
async fn a_start_records_pulling_pulled_created_started_and_a_kill_killing() {
    let mut s = setup().await;
    s.fake.add_known_image("localhost:5000/busybox:1.36");
    let p = pod("u1", "localhost:5000/busybox:1.36");
    let result = s.manager.sync_pod(&p, &RuntimePod::default()).await;
    assert!(result.waiting.is_empty(), "{:?}", result.waiting);
    let mut seen: Seen = drain(&mut s.events);
    assert_eq!(seen.len(), 4, "{seen:#?}");
    let pulled = seen.remove(1);
    assert_eq!(
        seen,
        [
            ev(
                "Normal",
                "Pulling",
                "Pulling image \"localhost:5000/busybox:1.36\""
            ),
            ev("Normal", "Created", "Container created"),
            ev("Normal", "Started", "Container started"),
        ]
    );
    assert_eq!((pulled.0.as_str(), pulled.1.as_str()), ("Normal", "Pulled"));
    assert!(
        pulled
            .3
            .starts_with("Successfully pulled image \"localhost:5000/busybox:1.36\" in ")
            && pulled
                .3
                .contains(" including waiting). Image size: 1000000 bytes."),
        "{}",
        pulled.3
    );

    // Present now: the second pod's start says so.
    let p2 = pod("u2", "localhost:5000/busybox:1.36");
    s.manager.sync_pod(&p2, &RuntimePod::default()).await;
    let seen = drain(&mut s.events);
    assert_eq!(
        seen[0],
        ev(
            "Normal",
            "Pulled",
            "Container image \"localhost:5000/busybox:1.36\" already present on machine and can be accessed by the pod"
        )
    );

    let pods = s.manager.list_pods().await.expect("list");
    let rt = pods.get("u1").expect("the pod runs");
    s.manager
        .kill_pod(Some(&p), rt, Some(1))
        .await
        .expect("kill");
    assert_eq!(
        drain(&mut s.events),
        [ev("Normal", "Killing", "Stopping container app")]
    );
}

#[tokio::test]
async fn a_failed_pull_records_failed_twice_then_back_off() {
    let mut s = setup().await;
    let p = pod("u3", "localhost:5000/absent:1");
    let result = s.manager.sync_pod(&p, &RuntimePod::default()).await;
    assert_eq!(
        result.waiting.get("app").map(|w| w.reason.as_str()),
        Some("ErrImagePull")
    );
    let seen = drain(&mut s.events);
    assert_eq!(seen.len(), 3, "{seen:#?}");
    assert_eq!(
        seen[0],
        ev(
            "Normal",
            "Pulling",
            "Pulling image \"localhost:5000/absent:1\""
        )
    );
    assert_eq!(
        (seen[1].0.as_str(), seen[1].1.as_str()),
        ("Warning", "Failed")
    );
    assert!(
        seen[1]
            .3
            .starts_with("Failed to pull image \"localhost:5000/absent:1\": "),
        "{}",
        seen[1].3
    );
    assert_eq!(seen[2], ev("Warning", "Failed", "Error: ErrImagePull"));

    let pods = s.manager.list_pods().await.expect("list");
    let rt = pods.get("u3").cloned().unwrap_or_default();
    s.manager.sync_pod(&p, &rt).await;
    assert_eq!(
        drain(&mut s.events),
        [
            ev(
                "Normal",
                "BackOff",
                "Back-off pulling image \"localhost:5000/absent:1\""
            ),
            ev("Warning", "Failed", "Error: ImagePullBackOff"),
        ]
    );
}

#[test]
fn killing_messages_follow_compute_pod_actions() {
    use crate::container::runtime::KillReason;
    let k = |reason| KillAction {
        id: "c1".into(),
        name: "app".into(),
        reason,
        grace: None,
    };
    assert_eq!(
        killing_message(&k(KillReason::LivenessFailed("x".into())), true).as_deref(),
        Some("Container app failed liveness probe, will be restarted")
    );
    assert_eq!(
        killing_message(&k(KillReason::StartupFailed("x".into())), false).as_deref(),
        Some("Container app failed startup probe")
    );
    assert_eq!(
        killing_message(&k(KillReason::SpecChanged), false).as_deref(),
        Some("Container app definition changed, will be restarted")
    );
    assert_eq!(killing_message(&k(KillReason::PodTerminating), true), None);
}
