//! Manager and worker tests with scripted probe outcomes and tokio's paused
//! clock (sleeps advance virtual time, so periods of seconds run at once).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cri_client::RuntimeClient;
use cri_client::proto as pb;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::results::ProbeType;
use super::worker::{Action, ProbeSpec, Worker};
use super::*;
use crate::container::runtime_pod;
use crate::events::Recorder;
use crate::kuberuntime::labels;

type Script = Arc<Mutex<VecDeque<Result<Outcome, ProbeError>>>>;

fn manager() -> (Arc<ProbeManager>, mpsc::UnboundedReceiver<ProbeUpdate>) {
    manager_recording(Recorder::disabled())
}

fn manager_recording(
    recorder: Recorder,
) -> (Arc<ProbeManager>, mpsc::UnboundedReceiver<ProbeUpdate>) {
    // Never connects: scripted probes don't call the runtime.
    let ch = tonic::transport::Endpoint::from_static("http://localhost").connect_lazy();
    let client = RuntimeClient::from_channels("test".into(), ch.clone(), ch, Default::default());
    ProbeManager::with_recorder(
        Arc::new(crate::lifecycle::HandlerRunner::new(
            client,
            "192.0.2.10".into(),
        )),
        recorder,
    )
}

fn shared() -> Arc<PodShared> {
    Arc::new(PodShared {
        pref: "default/p".into(),
        uid: "u".into(),
        ip: Mutex::new(Arc::from("10.0.0.1")),
    })
}

fn script(items: impl IntoIterator<Item = Result<Outcome, ProbeError>>) -> Script {
    Arc::new(Mutex::new(items.into_iter().collect()))
}

fn ok() -> Result<Outcome, ProbeError> {
    Ok(Outcome::Success(String::new()))
}
fn fail(m: &str) -> Result<Outcome, ProbeError> {
    Ok(Outcome::Failure(m.into()))
}

fn left(s: &Script) -> usize {
    s.lock().unwrap().len()
}

/// Spawns one worker on `cid` with a 1 s period.
fn spawn(
    m: &Arc<ProbeManager>,
    kind: ProbeType,
    cid: &str,
    s: &Script,
    thresholds: (u32, u32),
    started: watch::Receiver<bool>,
    started_tx: Option<watch::Sender<bool>>,
) -> tokio::task::JoinHandle<()> {
    m.results.add("u", cid, kind);
    let w = Worker {
        manager: m.clone(),
        kind,
        spec: ProbeSpec {
            action: Action::Scripted(s.clone()),
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            success_threshold: thresholds.0,
            failure_threshold: thresholds.1,
        },
        pod: shared(),
        container: "c".into(),
        target: crate::events::ObjectRef::container(&Pod::default(), "c"),
        container_id: cid.into(),
        not_before: Instant::now(),
        started,
        started_tx,
        jitter_first: false,
        spread: false,
        series: m.probe_metrics.worker(kind, "c", "p", "default", "u"),
    };
    tokio::spawn(w.run())
}

/// Waits (in virtual time) until `cond` holds.
async fn until(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..600 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(start_paused = true)]
async fn liveness_kills_after_failure_threshold_and_stops() {
    let (m, mut rx) = manager();
    let s = script([
        ok(),
        fail("one"),
        fail("two"),
        ok(),
        fail("a"),
        fail("b"),
        fail("c\n"),
        ok(),
    ]);
    let (_tx, started) = watch::channel(true);
    let h = spawn(&m, ProbeType::Liveness, "c1", &s, (1, 3), started, None);
    assert_eq!(rx.try_recv().map(|u| u.uid).ok().as_deref(), Some("u"));
    // Alive from the start, before any probe.
    assert_eq!(
        m.results.get("c1", ProbeType::Liveness),
        Some(ProbeResult::Success)
    );
    until("two failures then a success", || left(&s) == 4).await;
    assert_eq!(m.kill_reason("u", "c1"), None, "2 failures < threshold 3");
    until("the worker to stop", || h.is_finished()).await;
    assert_eq!(
        m.kill_reason("u", "c1").map(|k| k.to_string()).as_deref(),
        Some("Liveness probe failed: c")
    );
    assert_eq!(left(&s), 1, "no probe after the kill decision (on hold)");
    assert!(rx.try_recv().is_ok(), "the failure was announced");
    assert!(rx.try_recv().is_err(), "only once");
}

#[tokio::test(start_paused = true)]
async fn every_failure_and_warning_is_an_event_worded_as_go() {
    let (recorder, mut events) = crate::events::channel("node-a");
    let (m, _rx) = manager_recording(recorder);
    let s = script([
        Ok(Outcome::Warning("Probe terminated redirects".into())),
        fail("HTTP probe failed with statuscode: 500"),
        ok(),
        fail("dial tcp 10.0.0.1:80: connect: connection refused"),
        fail("dial tcp 10.0.0.1:80: connect: connection refused"),
    ]);
    let (_tx, started) = watch::channel(true);
    let h = spawn(&m, ProbeType::Liveness, "c1", &s, (1, 2), started, None);
    until("the worker to stop", || h.is_finished()).await;
    let seen: Vec<(String, String, String)> = crate::events::drain(&mut events)
        .into_iter()
        .map(|(ty, reason, _, message)| (ty, reason, message))
        .collect();
    let w = |reason: &str, message: &str| {
        (
            "Warning".to_string(),
            reason.to_string(),
            message.to_string(),
        )
    };
    let refused = "Liveness probe failed: dial tcp 10.0.0.1:80: connect: connection refused";
    assert_eq!(
        seen,
        [
            w(
                "ProbeWarning",
                "Liveness probe warning: Probe terminated redirects"
            ),
            w(
                "Unhealthy",
                "Liveness probe failed: HTTP probe failed with statuscode: 500"
            ),
            w("Unhealthy", refused),
            w("Unhealthy", refused),
        ]
    );
}

/// Sleeps until `secs` (virtual) seconds after `t0`.
async fn at(t0: Instant, secs: f64) {
    tokio::time::sleep_until(t0 + Duration::from_secs_f64(secs)).await;
}

#[tokio::test(start_paused = true)]
async fn readiness_starts_unready_and_honours_thresholds() {
    let (m, mut rx) = manager();
    // Probes at t = 0, 1, 2, ...; a probe error is retried in the same
    // period and not counted.
    let s = script([
        ok(),
        ok(),
        fail("x"),
        Err(ProbeError::Runtime(cri_client::Error::Rpc {
            method: "ExecSync",
            code: tonic::Code::Unavailable,
            message: "runtime hiccup".into(),
        })),
        ok(),
        fail("x"),
        fail("x"),
    ]);
    let (_tx, started) = watch::channel(true);
    let t0 = Instant::now();
    let _h = spawn(&m, ProbeType::Readiness, "c1", &s, (2, 2), started, None);
    let _ = rx.try_recv();
    assert_eq!(
        m.readiness("u", "c1"),
        Some(false),
        "not ready before a success"
    );
    let mut seen = Vec::new();
    for t in 0..6 {
        at(t0, f64::from(t) + 0.5).await;
        seen.push((left(&s), m.readiness("u", "c1") == Some(true)));
    }
    assert_eq!(
        seen,
        [
            (6, false), // 1 success < successThreshold 2
            (5, true),
            (4, true), // 1 failure < failureThreshold 2
            (2, true), // error (ignored) then success: the failure run resets
            (1, true),
            (0, false),
        ]
    );
    let mut updates = 0;
    while rx.try_recv().is_ok() {
        updates += 1;
    }
    assert_eq!(updates, 2, "ready, then unready");
    // Readiness failures never kill.
    assert_eq!(m.kill_reason("u", "c1"), None);
}

#[tokio::test(start_paused = true)]
async fn startup_holds_back_liveness_until_it_succeeds() {
    let (m, _rx) = manager();
    let startup = script([fail("not yet"), fail("not yet"), ok()]);
    let live = script([fail("dead")]);
    let (tx, started) = watch::channel(false);
    let hs = spawn(
        &m,
        ProbeType::Startup,
        "c1",
        &startup,
        (1, 5),
        started.clone(),
        Some(tx),
    );
    let hl = spawn(&m, ProbeType::Liveness, "c1", &live, (1, 1), started, None);
    assert_eq!(m.started("u", "c1"), Some(false));
    until("two startup failures", || left(&startup) == 1).await;
    assert_eq!(left(&live), 1, "liveness waits for startup");
    assert_eq!(m.started("u", "c1"), Some(false));
    assert_eq!(m.kill_reason("u", "c1"), None, "2 failures < threshold 5");
    until("startup success", || hs.is_finished()).await;
    assert_eq!(m.started("u", "c1"), Some(true));
    until("liveness to run", || hl.is_finished()).await;
    assert_eq!(
        m.kill_reason("u", "c1").map(|k| k.to_string()).as_deref(),
        Some("Liveness probe failed: dead")
    );
}

#[tokio::test(start_paused = true)]
async fn startup_failure_kills_and_liveness_never_runs() {
    let (m, _rx) = manager();
    let startup = script([fail("no"), fail("no")]);
    let live = script([ok()]);
    let (tx, started) = watch::channel(false);
    let hs = spawn(
        &m,
        ProbeType::Startup,
        "c1",
        &startup,
        (1, 2),
        started.clone(),
        Some(tx),
    );
    let hl = spawn(&m, ProbeType::Liveness, "c1", &live, (1, 3), started, None);
    until("both workers to stop", || {
        hs.is_finished() && hl.is_finished()
    })
    .await;
    assert_eq!(
        m.kill_reason("u", "c1").map(|k| k.to_string()).as_deref(),
        Some("Startup probe failed: no")
    );
    assert_eq!(m.started("u", "c1"), Some(false));
    assert_eq!(left(&live), 1);
}

fn pod(probes: bool) -> Arc<Pod> {
    let tcp = |port| Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(port),
            host: None,
        }),
        period_seconds: Some(1),
        ..Default::default()
    };
    Arc::new(Pod {
        metadata: ObjectMeta {
            name: Some("p".into()),
            namespace: Some("default".into()),
            uid: Some("u".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![
                Container {
                    name: "web".into(),
                    readiness_probe: probes.then(|| tcp(1)),
                    liveness_probe: probes.then(|| tcp(1)),
                    ..Default::default()
                },
                Container {
                    name: "plain".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn runtime(ids: &[(&str, &str, bool)]) -> runtime_pod::RuntimePod {
    let containers: Vec<pb::Container> = ids
        .iter()
        .map(|(id, name, running)| pb::Container {
            id: id.to_string(),
            state: if *running {
                pb::ContainerState::ContainerRunning as i32
            } else {
                pb::ContainerState::ContainerExited as i32
            },
            labels: [
                (labels::POD_UID.to_string(), "u".to_string()),
                (labels::CONTAINER_NAME.to_string(), name.to_string()),
            ]
            .into(),
            ..Default::default()
        })
        .collect();
    crate::kuberuntime::convert::group(&[], &containers)
        .remove("u")
        .unwrap_or_default()
}

#[tokio::test(start_paused = true)]
async fn update_pod_tracks_running_instances() {
    let (m, mut rx) = manager();
    let p = pod(true);
    // Nothing running: nothing to do.
    m.update_pod(&p, &runtime(&[]), "");
    assert_eq!(m.worker_count(), 0);

    m.update_pod(
        &p,
        &runtime(&[("c1", "web", true), ("p1", "plain", true)]),
        "",
    );
    assert_eq!(m.worker_count(), 2);
    assert_eq!(m.readiness("u", "c1"), Some(false));
    assert_eq!(m.kill_reason("u", "c1"), None);
    assert_eq!(m.readiness("u", "p1"), None, "no readiness probe");
    assert_eq!(m.started("u", "c1"), None, "no startup probe");
    assert!(rx.try_recv().is_ok(), "new results are announced");
    while rx.try_recv().is_ok() {}

    // The same state again changes nothing (the common case).
    m.update_pod(
        &p,
        &runtime(&[("c1", "web", true), ("p1", "plain", true)]),
        "",
    );
    assert_eq!(m.worker_count(), 2);
    assert!(rx.try_recv().is_err());

    // Without a pod IP the tcp probes error, which isn't counted: still
    // unready, still alive.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(m.readiness("u", "c1"), Some(false));
    assert_eq!(m.kill_reason("u", "c1"), None);

    // A restart: the old instance's workers and results go, the new one
    // starts fresh.
    m.update_pod(
        &p,
        &runtime(&[
            ("c1", "web", false),
            ("c2", "web", true),
            ("p1", "plain", true),
        ]),
        "",
    );
    assert_eq!(m.worker_count(), 2);
    assert_eq!(m.readiness("u", "c1"), None);
    assert_eq!(m.readiness("u", "c2"), Some(false));

    m.remove_pod("u");
    assert_eq!(m.worker_count(), 0);
    assert_eq!(m.readiness("u", "c2"), None);
    assert!(m.results.is_empty());

    // A pod without probes keeps no results.
    let (m, _rx) = manager();
    m.update_pod(&pod(false), &runtime(&[("c1", "web", true)]), "10.0.0.1");
    assert_eq!(m.worker_count(), 0);
    assert!(m.results.is_empty());
}

fn probes_text(m: &ProbeManager) -> String {
    let mut r = prometheus_client::registry::Registry::default();
    m.prober_metrics().register(&mut r);
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &r).unwrap();
    out
}

#[tokio::test(start_paused = true)]
async fn probe_counters_follow_results_and_go_with_the_pod() {
    let (m, _rx) = manager();
    // A probe error (retried within the period, then dropped) is not
    // counted, as in Go.
    let s = script([
        ok(),
        fail("no"),
        Err(ProbeError::NoPodIp),
        Err(ProbeError::NoPodIp),
        Err(ProbeError::NoPodIp),
        ok(),
    ]);
    let (_tx, started) = watch::channel(true);
    let _h = spawn(&m, ProbeType::Readiness, "c1", &s, (1, 3), started, None);
    until("every scripted probe", || left(&s) == 0).await;
    let text = probes_text(&m);
    let labels = r#"container="c",namespace="default",pod="p",pod_uid="u",probe_type="Readiness""#;
    assert!(
        text.contains(&format!(
            "prober_probe_total{{{labels},result=\"successful\"}} 2\n"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "prober_probe_total{{{labels},result=\"failed\"}} 1\n"
        )),
        "{text}"
    );
    assert!(!text.contains("result=\"unknown\""), "{text}");
    // Durations of the two successes (virtual time: no time passed).
    assert!(
        text.contains(
            "prober_probe_duration_seconds_count{container=\"c\",namespace=\"default\",pod=\"p\",probe_type=\"Readiness\"} 2\n"
        ),
        "{text}"
    );
    assert!(text.contains("# HELP prober_probe_total [BETA] Cumulative number of a liveness, readiness or startup probe for a container by result.\n"), "{text}");
    assert!(
        text.contains("# TYPE prober_probe_total counter\n"),
        "{text}"
    );

    // The pod goes (spawned directly, the manager has no entry for it):
    // its series go too.
    m.remove_pod("u");
    let text = probes_text(&m);
    assert!(!text.contains("pod=\"p\""), "{text}");
}
