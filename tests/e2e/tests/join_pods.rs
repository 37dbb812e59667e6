//! Pods from the apiserver on a joined berth (issue 10), against the test
//! environment's real control plane and containerd: a Deployment's pods
//! run and report Ready, `kubectl delete` runs preStop within the grace
//! period and the object goes, restarts adopt what runs, and pods that do
//! not fit are rejected with the Go kubelet's reasons. Needs
//! `tests/env/up --control-plane`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::berth::exclusive;
use test_support::cluster::{Joined, TestNamespace, kubectl, require_control_plane};

fn busybox() -> String {
    test_support::busybox_image()
}

fn ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn container_id(p: &Value) -> String {
    p["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A bare pod bound to `node` (no scheduler), without the service account
/// token volume (projected volumes are issue 11).
fn pod_yaml(name: &str, node: &str, spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n  automountServiceAccountToken: false\n{spec}"
    )
}

#[test]
fn a_deployment_runs_and_a_deleted_pod_runs_prestop_within_its_grace_period() {
    require_control_plane();
    let _one = exclusive();
    let node = Joined::start();
    let ns = TestNamespace::create("join");
    let image = busybox();
    ns.apply(&format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      nodeSelector: {{kubernetes.io/hostname: {node}}}
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: 5
      containers:
      - name: web
        image: {image}
        command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
        readinessProbe: {{exec: {{command: ["true"]}}, periodSeconds: 1}}
"#,
        node = node.node()
    ));
    let t = Instant::now();
    loop {
        let d = ns.get(&["deployment", "web"]).unwrap();
        if d["status"]["readyReplicas"] == 3 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "the Deployment is not Ready: {}\n{}",
            d["status"],
            test_support::berth::tail(&node.berth.log(), 30)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let pods = ns.get(&["pods", "-l", "app=web"]).unwrap();
    let pods = pods["items"].as_array().unwrap();
    assert_eq!(pods.len(), 3);
    for p in pods {
        assert_eq!(p["spec"]["nodeName"], node.node());
        assert_eq!(p["status"]["phase"], "Running", "{}", p["status"]);
        assert!(ready(p));
        assert!(
            container_id(p).starts_with("containerd://"),
            "{}",
            p["status"]
        );
        assert!(
            p["status"]["podIP"]
                .as_str()
                .is_some_and(|ip| !ip.is_empty())
        );
        // The scheduler's condition is kept beside berth's.
        let scheduled = p["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "PodScheduled" && c["status"] == "True");
        assert!(scheduled);
    }
    let running: Vec<_> = ns
        .sandboxes()
        .into_iter()
        .filter(|s| s.state == 0)
        .collect();
    assert_eq!(running.len(), 3, "one sandbox per pod: {running:?}");

    // kubectl delete: preStop runs, the container ignores SIGTERM, so the
    // grace period (4 s, preStop included) bounds the stop; then the
    // object goes.
    let out = tempfile::tempdir_in("/run/berth-test").unwrap();
    ns.apply(&pod_yaml(
        "graceful",
        node.node(),
        &format!(
            r#"  terminationGracePeriodSeconds: 4
  volumes: [{{name: out, hostPath: {{path: {out}}}}}]
  containers:
  - name: c
    image: {image}
    command: ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]
    volumeMounts: [{{name: out, mountPath: /out}}]
    lifecycle:
      preStop: {{exec: {{command: ["sh", "-c", "echo ran > /out/prestop"]}}}}
"#,
            out = out.path().display()
        ),
    ));
    ns.wait_pod("graceful", "Running", Duration::from_secs(60), |p| {
        p["status"]["phase"] == "Running"
    });
    let began = Instant::now();
    kubectl(&["delete", "pod", "graceful", "-n", &ns.name, "--wait=true"]).unwrap();
    let took = began.elapsed();
    assert_eq!(
        std::fs::read_to_string(out.path().join("prestop"))
            .unwrap_or_default()
            .trim(),
        "ran",
        "preStop ran"
    );
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(12),
        "the 4 s grace period bounds the deletion: took {took:?}"
    );
    assert!(ns.get(&["pod", "graceful"]).is_none(), "the object is gone");
    let left: Vec<_> = ns
        .sandboxes()
        .into_iter()
        .filter(|s| s.metadata.as_ref().is_some_and(|m| m.name == "graceful"))
        .collect();
    assert!(left.is_empty(), "the sandbox is removed: {left:?}");
}

#[test]
fn a_restart_adopts_running_pods_and_cleans_up_pods_deleted_while_down() {
    require_control_plane();
    let _one = exclusive();
    let mut node = Joined::start();
    let ns = TestNamespace::create("restart");
    let image = busybox();
    let spec = format!(
        "  terminationGracePeriodSeconds: 2\n  containers:\n  - name: c\n    image: {image}\n    command: [\"sleep\", \"3600\"]\n"
    );
    for name in ["keep", "deleted", "forced"] {
        ns.apply(&pod_yaml(name, node.node(), &spec));
    }
    let mut ids = std::collections::HashMap::new();
    for name in ["keep", "deleted", "forced"] {
        let p = ns.wait_pod(name, "Ready", Duration::from_secs(60), ready);
        ids.insert(name, container_id(&p));
    }

    // Killed at once: nothing is stopped, the pods keep running.
    node.berth.kill9();
    kubectl(&["delete", "pod", "deleted", "-n", &ns.name, "--wait=false"]).unwrap();
    kubectl(&[
        "delete",
        "pod",
        "forced",
        "-n",
        &ns.name,
        "--grace-period=0",
        "--force",
        "--wait=false",
    ])
    .unwrap();
    let terminating = ns.get(&["pod", "deleted"]).unwrap();
    assert!(
        terminating["metadata"]["deletionTimestamp"].is_string(),
        "without a kubelet the pod waits in Terminating"
    );
    node.berth.start();

    // The pod deleted while berth was down is stopped and its object goes;
    // the force-deleted one is found in the runtime and removed.
    let t = Instant::now();
    loop {
        let names: Vec<String> = ns
            .sandboxes()
            .iter()
            .filter_map(|s| s.metadata.as_ref().map(|m| m.name.clone()))
            .collect();
        let gone = ns.get(&["pod", "deleted"]).is_none();
        if gone && names == ["keep"] {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "after the restart: object 'deleted' gone={gone}, sandboxes {names:?}\n{}",
            test_support::berth::tail(&node.berth.log(), 30)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // The survivor was adopted: same container, no restart, still Ready.
    std::thread::sleep(Duration::from_secs(3));
    let keep = ns.get(&["pod", "keep"]).unwrap();
    assert_eq!(
        container_id(&keep),
        ids["keep"],
        "the running container is kept"
    );
    assert_eq!(keep["status"]["containerStatuses"][0]["restartCount"], 0);
    assert!(ready(&keep), "{}", keep["status"]);
    let sandboxes = ns.sandboxes();
    assert_eq!(sandboxes.len(), 1, "no duplicate sandbox: {sandboxes:?}");
}

#[test]
fn pods_that_do_not_fit_are_rejected_with_the_go_kubelets_reasons() {
    require_control_plane();
    let _one = exclusive();
    let node = Joined::start();
    let ns = TestNamespace::create("admit");
    let image = busybox();
    ns.apply(&pod_yaml(
        "too-big",
        node.node(),
        &format!(
            "  containers:\n  - name: c\n    image: {image}\n    command: [\"sleep\", \"3600\"]\n    resources: {{requests: {{cpu: \"1000\"}}}}\n"
        ),
    ));
    ns.apply(&pod_yaml(
        "elsewhere",
        node.node(),
        &format!(
            "  nodeSelector: {{berth.dev/nowhere: \"true\"}}\n  containers:\n  - name: c\n    image: {image}\n    command: [\"sleep\", \"3600\"]\n"
        ),
    ));
    for (name, reason, message) in [
        (
            "too-big",
            "OutOfcpu",
            "Pod was rejected: Node didn't have enough resource: cpu, requested: 1000000, used: 0, capacity: ",
        ),
        (
            "elsewhere",
            "NodeAffinity",
            "Pod was rejected: Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector",
        ),
    ] {
        let p = ns.wait_pod(name, "Failed", Duration::from_secs(30), |p| {
            p["status"]["phase"] == "Failed"
        });
        assert_eq!(p["status"]["reason"], reason, "{}", p["status"]);
        assert!(
            p["status"]["message"]
                .as_str()
                .unwrap()
                .starts_with(message),
            "{}",
            p["status"]["message"]
        );
    }
    assert!(ns.sandboxes().is_empty(), "nothing of a rejected pod runs");
}

#[test]
fn a_static_pod_has_a_mirror_pod_that_is_recreated_after_kubectl_delete() {
    require_control_plane();
    let _one = exclusive();
    let node = Joined::start();
    let ns = TestNamespace::create("mirror");
    let image = busybox();
    node.berth.write_manifest(
        "web.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: web, namespace: {ns}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {image}\n    command: [\"sleep\", \"3600\"]\n",
            ns = ns.name
        ),
    );
    let name = format!("web-{}", node.node());
    let mirror = ns.wait_pod(&name, "Ready", Duration::from_secs(60), ready);
    let annotations = &mirror["metadata"]["annotations"];
    assert!(
        annotations["kubernetes.io/config.mirror"].is_string(),
        "{annotations}"
    );
    assert_eq!(
        annotations["kubernetes.io/config.mirror"],
        annotations["kubernetes.io/config.hash"]
    );
    assert_eq!(annotations["kubernetes.io/config.source"], "file");
    let owner = &mirror["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "Node");
    assert_eq!(owner["name"], node.node());
    assert_eq!(mirror["status"]["phase"], "Running");
    let first_uid = mirror["metadata"]["uid"].as_str().unwrap().to_string();
    let container = container_id(&mirror);

    // kubectl delete: the mirror comes back (a new object), the static pod
    // itself never stopped, and its status flows to the new mirror.
    kubectl(&["delete", "pod", &name, "-n", &ns.name, "--wait=true"]).unwrap();
    let again = ns.wait_pod(&name, "recreated and Ready", Duration::from_secs(30), |p| {
        p["metadata"]["uid"] != first_uid.as_str() && ready(p)
    });
    assert_eq!(
        container_id(&again),
        container,
        "the static pod kept running"
    );
    assert_eq!(again["status"]["containerStatuses"][0]["restartCount"], 0);

    // The manifest removed: the pod stops and its mirror goes.
    node.berth.remove_manifest("web.yaml");
    let t = Instant::now();
    while ns.get(&["pod", &name]).is_some() {
        assert!(
            t.elapsed() < Duration::from_secs(40),
            "the mirror outlived its static pod"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn kubectl_get_events_shows_the_kubelets_events() {
    require_control_plane();
    let _one = exclusive();
    let node = Joined::start();
    let ns = TestNamespace::create("events");
    let image = busybox();
    ns.apply(&pod_yaml(
        "noisy",
        node.node(),
        &format!(
            r#"  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: {image}
    command: ["sleep", "3600"]
    readinessProbe: {{exec: {{command: ["sh", "-c", "echo not yet; exit 1"]}}, periodSeconds: 1}}
"#
        ),
    ));
    let events = |want: &[&str]| {
        let t = Instant::now();
        loop {
            let list = ns
                .get(&["events", "--field-selector", "involvedObject.name=noisy"])
                .unwrap();
            let items = list["items"].as_array().cloned().unwrap_or_default();
            let reasons: Vec<String> = items
                .iter()
                .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
                .collect();
            let all = want.iter().all(|w| reasons.iter().any(|r| r == w));
            if all || t.elapsed() > Duration::from_secs(30) {
                return items;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    let find = |items: &[Value], reason: &str| -> Value {
        items
            .iter()
            .find(|e| e["reason"] == reason)
            .cloned()
            .unwrap_or_else(|| panic!("no {reason} event in {items:#?}"))
    };
    let items = events(&["Pulled", "Created", "Started", "Unhealthy"]);
    for reason in ["Pulled", "Created", "Started", "Unhealthy"] {
        let e = find(&items, reason);
        assert_eq!(e["source"]["component"], "kubelet");
        assert_eq!(e["source"]["host"], node.node());
        assert_eq!(e["involvedObject"]["kind"], "Pod");
        assert_eq!(e["involvedObject"]["fieldPath"], "spec.containers{c}");
    }
    let unhealthy = find(&items, "Unhealthy");
    assert_eq!(unhealthy["type"], "Warning");
    assert!(
        unhealthy["message"]
            .as_str()
            .unwrap()
            .starts_with("Readiness probe failed: not yet"),
        "{unhealthy}"
    );
    assert_eq!(find(&items, "Started")["message"], "Container started");
    // Repeats of one event are counted on one object.
    std::thread::sleep(Duration::from_secs(3));
    let again = find(&events(&["Unhealthy"]), "Unhealthy");
    assert!(
        again["count"].as_i64().unwrap_or(1) > 1,
        "repeated probe failures are one event with a count: {again}"
    );
    kubectl(&["delete", "pod", "noisy", "-n", &ns.name, "--wait=true"]).unwrap();
    let killing = find(&events(&["Killing"]), "Killing");
    assert_eq!(killing["message"], "Stopping container c");
}
