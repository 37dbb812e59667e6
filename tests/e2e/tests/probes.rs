//! Liveness, readiness and startup probes with a real berth against the
//! real containerd: what /pods says (ready, started, conditions, restart
//! count, lastState message) and what the runtime runs.
//!
//! The gRPC probe test needs a grpc.health.v1 server the pod's IP answers
//! for. The busybox image has none, so the test serves one itself (tonic-
//! health, built from the workspace) on a socket it opens *inside the pod's
//! network namespace* (a thread setns()es into the sandbox's netns, binds,
//! and the socket stays there). berth then probes the pod IP as it would
//! any pod, and the test flips the served status to see both outcomes. No
//! extra binary or image is needed, and no traffic leaves the machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Each test holds `exclusive()` for its whole run, on its own runtime, on purpose.
#![allow(clippy::await_holding_lock)]

use std::time::{Duration, Instant};

use cri_client::proto as pb;
use serde_json::Value;
use test_support::berth::{
    Berth, busybox_client, condition, container_id, container_state, container_status, exclusive,
    pod_manifest, restart_count,
};
use test_support::busybox_image;

const T: Duration = Duration::from_secs(30);

fn ready(p: &Value, name: &str) -> bool {
    container_status(p, name)["ready"].as_bool() == Some(true)
}

fn started(p: &Value, name: &str) -> Option<bool> {
    container_status(p, name)["started"].as_bool()
}

async fn setup(rust_log: Option<&str>) -> (cri_client::RuntimeClient, Berth) {
    let c = busybox_client().await;
    let mut b = Berth::new();
    if let Some(l) = rust_log {
        b.rust_log = l.into();
    }
    b.start();
    (c, b)
}

/// Writes `<name>.yaml`: a pod with this grace period and `containers`
/// (YAML list items, in which `{img}` stands for the busybox image).
fn write_pod(b: &Berth, name: &str, grace: u32, containers: &str) {
    let spec = format!("  terminationGracePeriodSeconds: {grace}\n  containers:\n{containers}");
    b.write_manifest(&format!("{name}.yaml"), &pod_manifest(name, &spec));
}

/// Readiness over httpGet (named port): Ready once the file is served,
/// NotReady once it is removed, without a restart.
#[tokio::test]
async fn http_readiness_follows_the_served_file() {
    let _one = exclusive();
    let (c, b) = setup(None).await;
    write_pod(
        &b,
        "web",
        0,
        r#"  - name: httpd
    image: {img}
    command: ["sh", "-c", "mkdir -p /www && echo ok > /www/healthz && exec httpd -f -p 8080 -h /www"]
    ports: [{name: http, containerPort: 8080}]
    readinessProbe:
      httpGet: {path: /healthz, port: http}
      periodSeconds: 1
      failureThreshold: 1
"#,
    );
    let p = b
        .wait_pod("web", "httpd ready", T, |p| {
            ready(p, "httpd") && condition(p, "Ready") == "True"
        })
        .await;
    assert_eq!(condition(&p, "ContainersReady"), "True");
    assert_eq!(started(&p, "httpd"), Some(true));

    let out = c
        .exec_sync(pb::ExecSyncRequest {
            container_id: container_id(&p, "httpd"),
            cmd: vec!["rm".into(), "/www/healthz".into()],
            timeout: 5,
        })
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0);
    let p = b
        .wait_pod("web", "httpd not ready", T, |p| {
            !ready(p, "httpd") && condition(p, "Ready") == "False"
        })
        .await;
    assert_eq!(condition(&p, "ContainersReady"), "False");
    assert_eq!(container_state(&p, "httpd"), "running");
    assert_eq!(restart_count(&p, "httpd"), 0, "readiness never restarts");
}

/// A failing exec liveness probe restarts the container; the reason is
/// kept in lastState.terminated.message.
#[tokio::test]
async fn failing_exec_liveness_restarts_the_container() {
    let _one = exclusive();
    let (_c, b) = setup(None).await;
    write_pod(
        &b,
        "live",
        1,
        r#"  - name: app
    image: {img}
    command: ["sleep", "3600"]
    livenessProbe:
      exec: {command: ["sh", "-c", "echo no-such-file; test -f /tmp/missing"]}
      periodSeconds: 1
      failureThreshold: 2
"#,
    );
    let p = b
        .wait_pod("live", "a restart after the liveness failure", T, |p| {
            restart_count(p, "app") >= 1
                && container_status(p, "app")["lastState"]["terminated"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("Liveness probe failed"))
        })
        .await;
    let msg = container_status(&p, "app")["lastState"]["terminated"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        msg, "Liveness probe failed: no-such-file",
        "the probe's output is the reason"
    );
    assert!(
        b.log().contains("Liveness probe failed: no-such-file"),
        "berth logs the decision"
    );
}

/// A startup probe holds liveness back: the liveness probe would fail at
/// once (failureThreshold 1) but runs only after startup succeeded, when
/// it passes; started goes false, then true, and nothing restarts.
#[tokio::test]
async fn startup_probe_holds_back_liveness() {
    let _one = exclusive();
    let (_c, b) = setup(None).await;
    write_pod(
        &b,
        "slow",
        0,
        r#"  - name: app
    image: {img}
    command: ["sh", "-c", "(sleep 5; touch /tmp/started) & exec sleep 3600"]
    startupProbe:
      exec: {command: ["test", "-f", "/tmp/started"]}
      periodSeconds: 1
      failureThreshold: 30
    livenessProbe:
      exec: {command: ["test", "-f", "/tmp/started"]}
      periodSeconds: 1
      failureThreshold: 1
"#,
    );
    let p = b
        .wait_pod("slow", "running, not started", T, |p| {
            container_state(p, "app") == "running" && started(p, "app") == Some(false)
        })
        .await;
    assert!(!ready(&p, "app"), "not ready before started");
    assert_eq!(condition(&p, "Ready"), "False");
    let t = Instant::now();
    b.wait_pod("slow", "started", T, |p| {
        started(p, "app") == Some(true) && ready(p, "app")
    })
    .await;
    assert!(
        t.elapsed() > Duration::from_secs(2),
        "started only once the file appeared ({:?})",
        t.elapsed()
    );
    // Liveness runs now and passes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let p = b.pod("slow").unwrap();
    assert_eq!(restart_count(&p, "app"), 0, "{}", p["status"]);
    assert_eq!(container_state(&p, "app"), "running");
    assert!(!b.log().contains("probe failed"), "no kill decision");
}

/// The sandbox's init PID, from containerd's verbose sandbox info.
async fn sandbox_pid(c: &cri_client::RuntimeClient, b: &Berth, name: &str) -> u32 {
    let s = b
        .runtime_sandboxes(c)
        .await
        .into_iter()
        .find(|s| {
            s.metadata
                .as_ref()
                .is_some_and(|m| m.name.starts_with(&format!("{name}-")))
        })
        .expect("the pod's sandbox");
    let st = c
        .pod_sandbox_status(pb::PodSandboxStatusRequest {
            pod_sandbox_id: s.id,
            verbose: true,
        })
        .await
        .unwrap();
    let info: Value = serde_json::from_str(st.info.get("info").expect("verbose info")).unwrap();
    u32::try_from(info["pid"].as_u64().expect("sandbox pid")).unwrap()
}

/// A TCP listener opened inside the network namespace of `pid`.
fn listen_in_netns(pid: u32, port: u16) -> tokio::net::TcpListener {
    let l = std::thread::spawn(move || {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).unwrap();
        // Only this thread moves; it ends right after binding.
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        std::net::TcpListener::bind(("0.0.0.0", port)).unwrap()
    })
    .join()
    .unwrap();
    l.set_nonblocking(true).unwrap();
    tokio::net::TcpListener::from_std(l).unwrap()
}

/// Serves grpc.health.v1 on `l` until the test ends.
fn serve_health(l: tokio::net::TcpListener) -> tonic_health::server::HealthReporter {
    let (reporter, service) = tonic_health::server::health_reporter();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = l.accept().await else {
                return;
            };
            let svc = service.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let mut svc = svc.clone();
                    tower::Service::call(&mut svc, req)
                });
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
            });
        }
    });
    reporter
}

/// tcpSocket readiness on a busybox nc that listens after 3 s, and a grpc
/// readiness probe on the test's own health server in the pod (see the
/// file's doc comment): NOT_SERVING keeps the container unready with Go's
/// message, SERVING makes it ready.
#[tokio::test]
async fn tcp_and_grpc_readiness() {
    let _one = exclusive();
    let (c, b) = setup(Some("info,kubelet::prober=debug")).await;
    write_pod(
        &b,
        "net",
        0,
        r#"  - name: nc
    image: {img}
    command: ["sh", "-c", "sleep 3; exec nc -ll -p 8081 -e true"]
    readinessProbe:
      tcpSocket: {port: 8081}
      periodSeconds: 1
  - name: grpc
    image: {img}
    command: ["sleep", "3600"]
    readinessProbe:
      grpc: {port: 50051, service: berth}
      periodSeconds: 1
      failureThreshold: 1
"#,
    );
    let p = b
        .wait_pod("net", "both running", T, |p| {
            container_state(p, "nc") == "running" && container_state(p, "grpc") == "running"
        })
        .await;
    assert!(!ready(&p, "grpc"), "nothing serves gRPC yet");

    let reporter = serve_health(listen_in_netns(sandbox_pid(&c, &b, "net").await, 50051));
    reporter
        .set_service_status("berth", tonic_health::ServingStatus::NotServing)
        .await;
    b.wait_pod("net", "nc ready", T, |p| ready(p, "nc")).await;
    let deadline = Instant::now() + T;
    while !b
        .log()
        .contains(r#"service unhealthy (responded with \"NOT_SERVING\")"#)
        && !b
            .log()
            .contains(r#"service unhealthy (responded with "NOT_SERVING")"#)
    {
        assert!(
            Instant::now() < deadline,
            "no NOT_SERVING failure logged:\n{}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let p = b.pod("net").unwrap();
    assert!(!ready(&p, "grpc"), "NOT_SERVING is not ready");
    assert_eq!(condition(&p, "Ready"), "False");

    reporter
        .set_service_status("berth", tonic_health::ServingStatus::Serving)
        .await;
    let p = b
        .wait_pod("net", "grpc ready", T, |p| {
            ready(p, "grpc") && condition(p, "Ready") == "True"
        })
        .await;
    assert!(ready(&p, "nc"));
}

/// A pod shaped like kubeadm's kube-apiserver static pod (hostNetwork,
/// httpGet startup/liveness/readiness probes to host 127.0.0.1 on a host
/// port, hostPath mounts, resource requests, priority class), with busybox
/// httpd in the apiserver's place, goes Running and Ready.
#[tokio::test]
async fn apiserver_shaped_static_pod_goes_ready() {
    let _one = exclusive();
    let (_c, b) = setup(None).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let pki = tempfile::tempdir().unwrap();
    let www = tempfile::tempdir().unwrap();
    for f in ["livez", "readyz"] {
        std::fs::write(www.path().join(f), "ok\n").unwrap();
    }
    b.write_manifest(
        "kube-apiserver.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint: 127.0.0.1:{port}
  labels:
    component: kube-apiserver
    tier: control-plane
  name: kube-apiserver
  namespace: kube-system
spec:
  containers:
  - command:
    - httpd
    - -f
    - -p
    - 127.0.0.1:{port}
    - -h
    - /var/www/api
    image: {img}
    imagePullPolicy: IfNotPresent
    livenessProbe:
      failureThreshold: 8
      httpGet:
        host: 127.0.0.1
        path: /livez
        port: {port}
        scheme: HTTP
      initialDelaySeconds: 1
      periodSeconds: 10
      timeoutSeconds: 15
    name: kube-apiserver
    readinessProbe:
      failureThreshold: 3
      httpGet:
        host: 127.0.0.1
        path: /readyz
        port: {port}
        scheme: HTTP
      periodSeconds: 1
      timeoutSeconds: 15
    resources:
      requests:
        cpu: 250m
    startupProbe:
      failureThreshold: 24
      httpGet:
        host: 127.0.0.1
        path: /livez
        port: {port}
        scheme: HTTP
      initialDelaySeconds: 1
      periodSeconds: 1
      timeoutSeconds: 15
    volumeMounts:
    - mountPath: /etc/kubernetes/pki
      name: k8s-certs
      readOnly: true
    - mountPath: /var/www/api
      name: www
      readOnly: true
  hostNetwork: true
  priority: 2000001000
  priorityClassName: system-node-critical
  securityContext:
    seccompProfile:
      type: RuntimeDefault
  terminationGracePeriodSeconds: 1
  volumes:
  - hostPath:
      path: {pki}
      type: DirectoryOrCreate
    name: k8s-certs
  - hostPath:
      path: {www}
      type: Directory
    name: www
"#,
            img = busybox_image(),
            pki = pki.path().display(),
            www = www.path().display(),
        ),
    );
    let p = b
        .wait_pod("kube-apiserver", "Running and Ready", T, |p| {
            p["status"]["phase"] == "Running"
                && ready(p, "kube-apiserver")
                && condition(p, "Ready") == "True"
        })
        .await;
    assert_eq!(started(&p, "kube-apiserver"), Some(true));
    assert_eq!(condition(&p, "ContainersReady"), "True");
    assert_eq!(restart_count(&p, "kube-apiserver"), 0);
    // The probes really reach the host port: /readyz going away makes the
    // pod NotReady.
    std::fs::remove_file(www.path().join("readyz")).unwrap();
    b.wait_pod("kube-apiserver", "NotReady", T, |p| {
        !ready(p, "kube-apiserver") && condition(p, "Ready") == "False"
    })
    .await;
}
