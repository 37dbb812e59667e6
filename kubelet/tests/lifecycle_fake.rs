//! The pod workers, the kubelet-level sync, `kuberuntime` and PLEG, wired as
//! `berth` wires them, against the fake CRI runtime of `test_support`: the
//! pod lifecycle in milliseconds to seconds. The same paths run against the
//! real containerd in `tests/e2e`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kubelet::cm::helpers::MachineInfo;
use kubelet::cm::{CmConfig, ContainerManager};
use kubelet::config::CgroupDriver;
use kubelet::container::{PodCache, Runtime};
use kubelet::dns::DnsConfigurer;
use kubelet::events::Recorder;
use kubelet::images::ImageManager;
use kubelet::kubelet::{Kubelet, PodRuntimeHelper};
use kubelet::kuberuntime::{KubeRuntimeManager, RuntimeSettings};
use kubelet::lifecycle::HandlerRunner;
use kubelet::pleg::{Pleg, PlegEvent};
use kubelet::pod_workers::PodWorkers;
use kubelet::prober::ProbeManager;
use kubelet::status::{StatusChange, StatusManager, StatusSink};
use kubelet::volumes::VolumeManager;
use kubelet::volumes::objects::{ObjectVolumes, PodObjects};
use test_support::fake_cri::{FakeRuntime, StopBehaviour};
use tokio::sync::mpsc;

struct Node {
    fake: FakeRuntime,
    client: cri_client::RuntimeClient,
    runtime: Arc<dyn Runtime>,
    workers: Arc<PodWorkers>,
    status: Arc<StatusManager>,
    terminated: mpsc::UnboundedReceiver<kubelet::pod_workers::Terminated>,
    published: Arc<Published>,
    _dir: tempfile::TempDir,
}

/// A kubelet on the fake runtime; `events` says whether the fake streams
/// CRI container events (else PLEG falls back to relisting every second).
async fn node(events: bool) -> Node {
    let (fake, client) = FakeRuntime::start().await;
    fake.set_events_unimplemented(!events);
    let dir = tempfile::tempdir().expect("tempdir");
    let cm = Arc::new(
        ContainerManager::with_layout(
            CmConfig {
                driver: CgroupDriver::Cgroupfs,
                cgroup_root: "/".into(),
                cgroups_per_qos: false,
                kube_reserved: Default::default(),
                system_reserved: Default::default(),
                enforce_node_allocatable: vec![],
                pod_pids_limit: -1,
            },
            None,
            MachineInfo {
                memory_capacity: 1 << 30,
                num_cpus: 2,
                pid_max: 4_194_304,
            },
        )
        .expect("container manager"),
    );
    let volumes = Arc::new(VolumeManager::new(dir.path().join("root")));
    let handlers = Arc::new(HandlerRunner::new(client.clone(), "127.0.0.1".into()));
    let (probes, mut probe_updates) = ProbeManager::new(handlers.clone());
    let objects = PodObjects::local_only(Arc::new(kubelet::objects::NoObjects));
    let object_volumes = ObjectVolumes::new(
        volumes.clone(),
        objects.clone(),
        None,
        Default::default(),
        Recorder::disabled(),
    );
    let helper = Arc::new(PodRuntimeHelper {
        dns: DnsConfigurer {
            resolv_conf: None,
            cluster_dns: vec![],
            cluster_domain: "cluster.local".into(),
        },
        cm: cm.clone(),
        volumes: volumes.clone(),
        node_name: "fake-node".into(),
        host_ip: "127.0.0.1".into(),
        objects: objects.clone(),
        node_allocatable: Default::default(),
        recorder: Recorder::disabled(),
    });
    let runtime: Arc<dyn Runtime> = Arc::new(KubeRuntimeManager::new(
        client.clone(),
        ImageManager::new(client.clone(), false),
        helper,
        handlers,
        RuntimeSettings {
            pod_logs_dir: dir.path().join("pods"),
        },
    ));
    let (client_for_test, runtime_for_test) = (client.clone(), runtime.clone());
    let cache = PodCache::new();
    let published = Arc::new(Published::default());
    let status = StatusManager::with_sinks(vec![published.clone()]);
    let pleg = Pleg::new(runtime.clone(), cache.clone());
    let relist = pleg.trigger();
    tokio::spawn(kubelet::pleg::watch_cri_events(client, relist.clone()));
    let kl = Arc::new(Kubelet {
        runtime,
        cm,
        volumes,
        probes,
        status: status.clone(),
        host_ip: "127.0.0.1".into(),
        runtime_name: "fake".into(),
        reasons: Default::default(),
        object_volumes,
    });
    let (workers, terminated) = PodWorkers::new(kl, cache, relist, Duration::from_secs(60));
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(pleg.run(tx));
    let w = workers.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                Some(ev) = rx.recv() => if let PlegEvent::PodChanged(uid) = ev { w.notify(&uid) },
                Some(u) = probe_updates.recv() => w.notify(&u.uid),
                else => return,
            }
        }
    });
    Node {
        fake,
        client: client_for_test,
        runtime: runtime_for_test,
        workers,
        status,
        terminated,
        published,
        _dir: dir,
    }
}

/// Every status the manager published, in order.
#[derive(Default)]
struct Published(std::sync::Mutex<Vec<(String, k8s_openapi::api::core::v1::PodStatus)>>);

impl StatusSink for Published {
    fn status_changed(&self, change: &StatusChange<'_>) {
        let uid = change.pod.metadata.uid.clone().unwrap_or_default();
        self.0
            .lock()
            .expect("published")
            .push((uid, change.status.clone()));
    }
}

fn pod(name: &str, grace: i64, command: &str) -> Arc<Pod> {
    Arc::new(
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
            "spec": {
                "terminationGracePeriodSeconds": grace,
                "restartPolicy": "Always",
                "containers": [{"name": "main", "image": test_support::busybox_image(),
                    "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", command]}]
            }
        }))
        .expect("pod"),
    )
}

fn desired(pods: &[&Arc<Pod>]) -> HashMap<String, Arc<Pod>> {
    pods.iter()
        .map(|p| (p.metadata.uid.clone().unwrap_or_default(), Arc::clone(p)))
        .collect()
}

fn phase(n: &Node, uid: &str) -> String {
    n.status.get(uid).and_then(|s| s.phase).unwrap_or_default()
}

fn running_containers(n: &Node, pod_name: &str) -> usize {
    n.fake
        .containers()
        .iter()
        .filter(|c| {
            c.state == cri_client::proto::ContainerState::ContainerRunning as i32
                && c.labels.get("io.kubernetes.pod.name").map(String::as_str) == Some(pod_name)
        })
        .count()
}

async fn eventually(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_pod_still_present_with_a_deletion_timestamp_terminates_with_its_grace_and_is_reported() {
    let mut n = node(true).await;
    n.fake
        .set_stop_behaviour("busybox", StopBehaviour::IgnoresSigterm);
    let p = pod("web", 30, "sleep 3600");
    n.workers.update(&desired(&[&p]));
    eventually("web running", Duration::from_secs(5), || {
        running_containers(&n, "web") == 1
    })
    .await;
    eventually("status Running", Duration::from_secs(5), || {
        phase(&n, "uid-web") == "Running"
    })
    .await;
    // Its start was timed for kubelet_pod_start_duration_seconds.
    let mut reg = prometheus_client::registry::Registry::default();
    reg.register(
        "start",
        "",
        kubelet::metrics::COUNTERS.pod_start_duration.clone(),
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &reg).unwrap();
    let count: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("start_count "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(count >= 1, "{text}");

    // As the apiserver source will deliver it: still desired, being deleted
    // with a grace period of 2 s (shorter than the spec's 30 s).
    let mut deleting = (*p).clone();
    deleting.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
    deleting.metadata.deletion_grace_period_seconds = Some(2);
    let deleting = Arc::new(deleting);
    let began = Instant::now();
    n.fake.clear_calls();
    n.workers.update(&desired(&[&deleting]));
    let uid = tokio::time::timeout(Duration::from_secs(10), n.terminated.recv())
        .await
        .expect("terminated within 10 s")
        .expect("channel open")
        .uid;
    let took = began.elapsed();
    assert_eq!(uid, "uid-web");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(5),
        "the container ignores SIGTERM, so the deletion's grace (2 s) bounds it: took {took:?}"
    );
    let stop = n.fake.calls_of(&["StopContainer"]);
    assert_eq!(stop.len(), 1, "{stop:?}");
    assert_eq!(
        n.fake.rpcs_of(&[
            "StopContainer",
            "StopPodSandbox",
            "RemoveContainer",
            "RemovePodSandbox"
        ]),
        [
            "StopContainer",
            "StopPodSandbox",
            "RemoveContainer",
            "RemovePodSandbox"
        ]
    );
    assert!(n.fake.containers().is_empty() && n.fake.sandboxes().is_empty());
    assert!(n.status.get("uid-web").is_none(), "status removed");
    // Still listed by its source: the finished pod is not started again.
    n.workers.update(&desired(&[&deleting]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(n.fake.calls_of(&["RunPodSandbox"]).is_empty());
    assert!(!n.workers.has_worker("uid-web"));
}

#[tokio::test]
async fn removing_a_pod_cancels_its_sync_during_a_pull() {
    let mut n = node(true).await;
    n.fake.hold_pulls("busybox");
    let p = pod("slow", 5, "sleep 3600");
    n.workers.update(&desired(&[&p]));
    n.fake
        .wait_until("the pull in flight", |f| f.in_flight("PullImage") == 1)
        .await;
    n.workers.update(&HashMap::new());
    let uid = tokio::time::timeout(Duration::from_secs(5), n.terminated.recv())
        .await
        .expect("terminated without waiting for the held pull")
        .expect("channel open")
        .uid;
    assert_eq!(uid, "uid-slow");
    eventually("the pull cancelled", Duration::from_secs(2), || {
        n.fake.cancelled("PullImage") == 1
    })
    .await;
    assert_eq!(n.fake.call_count("CreateContainer"), 0);
    assert!(n.fake.sandboxes().is_empty(), "sandbox removed");
}

#[tokio::test]
async fn terminating_pods_hold_no_creation_slot_across_their_grace_period() {
    let mut n = node(true).await;
    // More pods than creation slots (16), all ignoring SIGTERM for 3 s.
    let pods: Vec<Arc<Pod>> = (0..20)
        .map(|i| pod(&format!("stubborn-{i}"), 3, "sleep 3600"))
        .collect();
    n.fake
        .set_stop_behaviour("main", StopBehaviour::IgnoresSigterm);
    let refs: Vec<&Arc<Pod>> = pods.iter().collect();
    n.workers.update(&desired(&refs));
    eventually("20 pods running", Duration::from_secs(10), || {
        n.fake
            .containers()
            .iter()
            .filter(|c| c.state == cri_client::proto::ContainerState::ContainerRunning as i32)
            .count()
            == 20
    })
    .await;
    let began = Instant::now();
    let fresh = pod("fresh", 1, "sleep 3600");
    n.workers.update(&desired(&[&fresh]));
    // While all 20 wait out their grace, a new pod still starts at once.
    eventually(
        "the new pod running during the others' grace",
        Duration::from_secs(2),
        || running_containers(&n, "fresh") == 1,
    )
    .await;
    assert!(began.elapsed() < Duration::from_secs(2));
    let mut done = 0;
    while done < 20 {
        tokio::time::timeout(Duration::from_secs(10), n.terminated.recv())
            .await
            .expect("all terminated")
            .expect("channel open");
        done += 1;
    }
    let took = began.elapsed();
    assert!(
        took < Duration::from_secs(6),
        "20 pods with a 3 s grace stop in one wave, not two: took {took:?}"
    );
}

#[tokio::test]
async fn a_container_exit_moves_status_through_events_and_through_the_relist_fallback() {
    for events in [true, false] {
        let n = node(events).await;
        let p = pod("exits", 1, "sleep 3600");
        let mut spec = (*p).clone();
        spec.spec.as_mut().expect("spec").restart_policy = Some("Never".into());
        let p = Arc::new(spec);
        n.workers.update(&desired(&[&p]));
        eventually("Running", Duration::from_secs(5), || {
            phase(&n, "uid-exits") == "Running"
        })
        .await;
        // Let the start-up relists settle, so only the exit can move status.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let exited = Instant::now();
        n.fake.exit_container("main", 7);
        eventually("Failed", Duration::from_secs(3), || {
            phase(&n, "uid-exits") == "Failed"
        })
        .await;
        let took = exited.elapsed();
        if events {
            // The safety-net relist runs every 10 s with a healthy stream:
            // only the event can explain a fast move.
            assert!(
                took < Duration::from_millis(500),
                "through events: {took:?}"
            );
        } else {
            assert!(
                took <= Duration::from_millis(1500),
                "through the 1 s relist: {took:?}"
            );
        }
        let st = n.status.get("uid-exits").expect("status");
        let term = st.container_statuses.expect("statuses")[0]
            .state
            .clone()
            .and_then(|s| s.terminated)
            .expect("terminated");
        assert_eq!(term.exit_code, 7);
    }
}

#[tokio::test]
async fn an_exit_is_published_before_the_sync_stops_the_finished_pods_sandbox() {
    let n = node(true).await;
    let mut spec = (*pod("finishes", 1, "sleep 3600")).clone();
    spec.spec.as_mut().expect("spec").restart_policy = Some("Never".into());
    let p = Arc::new(spec);
    n.workers.update(&desired(&[&p]));
    eventually("Running", Duration::from_secs(5), || {
        phase(&n, "uid-finishes") == "Running"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    n.fake.set_latency("StopPodSandbox", Duration::from_secs(3));
    n.fake.exit_container("main", 7);
    // The sync stops the finished pod's sandbox (that takes 3 s); the
    // status must show the exit meanwhile, not after.
    eventually("the sandbox stop under way", Duration::from_secs(2), || {
        n.fake.in_flight("StopPodSandbox") == 1
    })
    .await;
    eventually("Failed", Duration::from_secs(1), || {
        phase(&n, "uid-finishes") == "Failed"
    })
    .await;
    assert_eq!(
        n.fake.in_flight("StopPodSandbox"),
        1,
        "the sandbox stop is still in flight when the exit shows"
    );
}

#[tokio::test]
async fn a_crash_looping_container_keeps_its_waiting_reason_between_syncs() {
    let n = node(true).await;
    n.fake.set_exit_on_start("main", 1);
    let p = pod("crashes", 1, "exit 1");
    n.workers.update(&desired(&[&p]));
    let reason = |n: &Node| {
        n.status
            .get("uid-crashes")
            .and_then(|s| s.container_statuses)
            .and_then(|c| c[0].state.clone())
            .and_then(|s| s.waiting)
            .and_then(|w| w.reason)
            .unwrap_or_default()
    };
    eventually("CrashLoopBackOff", Duration::from_secs(5), || {
        reason(&n) == "CrashLoopBackOff"
    })
    .await;
    // From here every published status keeps the reason, however often
    // the pod syncs: the status a sync publishes before acting, from the
    // runtime view alone, takes it from the last sync's reasons instead of
    // showing the exited instance as the current state.
    let from = n.published.0.lock().expect("published").len();
    for _ in 0..10 {
        n.workers.notify("uid-crashes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let published = n.published.0.lock().expect("published");
    for (uid, st) in published[from..].iter().filter(|(u, _)| u == "uid-crashes") {
        let state = st.container_statuses.as_ref().expect("statuses")[0]
            .state
            .clone();
        let r = state.and_then(|s| s.waiting).and_then(|w| w.reason);
        assert_eq!(r.as_deref(), Some("CrashLoopBackOff"), "a status of {uid}");
    }
}

#[tokio::test]
async fn relists_fetch_a_created_containers_details_once_while_it_waits_to_start() {
    use cri_client::proto as pb;
    use kubelet::kuberuntime::labels;
    let n = node(false).await;
    n.fake.preload_image(&test_support::busybox_image());
    let uid = "uid-waits";
    let pod_labels: HashMap<String, String> = [
        (labels::POD_UID, uid),
        (labels::POD_NAME, "waits"),
        (labels::POD_NAMESPACE, "default"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = pb::PodSandboxConfig {
        metadata: Some(pb::PodSandboxMetadata {
            name: "waits".into(),
            uid: uid.into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        labels: pod_labels.clone(),
        ..Default::default()
    };
    let sandbox = n
        .client
        .run_pod_sandbox(pb::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .expect("sandbox")
        .pod_sandbox_id;
    let mut container_labels = pod_labels;
    container_labels.insert(labels::CONTAINER_NAME.into(), "main".into());
    let id = n
        .client
        .create_container(pb::CreateContainerRequest {
            pod_sandbox_id: sandbox,
            config: Some(pb::ContainerConfig {
                metadata: Some(pb::ContainerMetadata {
                    name: "main".into(),
                    attempt: 0,
                }),
                image: Some(pb::ImageSpec {
                    image: test_support::busybox_image(),
                    ..Default::default()
                }),
                labels: container_labels,
                ..Default::default()
            }),
            sandbox_config: Some(config),
        })
        .await
        .expect("create")
        .container_id;
    // A created container that has not started yet has no start or finish
    // time: its status call must still count as done, or every relist
    // (one per runtime event while 30 pods start) asks again.
    let cache = PodCache::new();
    let mut pleg = Pleg::new(n.runtime.clone(), cache.clone());
    let (tx, _rx) = mpsc::unbounded_channel();
    n.fake.clear_calls();
    for _ in 0..3 {
        pleg.relist(&tx).await.expect("relist");
    }
    let asked = n
        .fake
        .calls_of(&["ContainerStatus"])
        .into_iter()
        .filter(|c| c.key == id)
        .count();
    assert_eq!(asked, 1, "ContainerStatus calls for the created container");
    let view = cache.get(uid);
    assert_eq!(view.containers.len(), 1);
    assert!(view.containers[0].detailed);
}
