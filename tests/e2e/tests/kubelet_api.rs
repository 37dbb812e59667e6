//! The kubelet API on a joined berth (issue 12), against the real control
//! plane and containerd: `kubectl logs` through the apiserver (which
//! authenticates to berth with its kubelet client certificate), and a
//! request without credentials refused. Needs
//! `tests/env/up --control-plane`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use test_support::berth::exclusive;
use test_support::cluster::{Joined, TestNamespace, kubectl, require_control_plane};

const CLUSTER_CA: &str = "/etc/berth-test/control-plane/ca.crt";

fn running(p: &Value) -> bool {
    p["status"]["containerStatuses"][0]["state"]["running"].is_object()
}

#[test]
fn kubectl_logs_reaches_berth_and_anonymous_requests_are_refused() {
    require_control_plane();
    let _one = exclusive();
    let node = Joined::start_with(&["--client-ca-file", CLUSTER_CA]);
    let ns = TestNamespace::create("logs");
    ns.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: talker}}\nspec:\n  nodeName: {node}\n  automountServiceAccountToken: false\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {img}\n    command: [\"sh\", \"-c\", \"for i in 1 2 3; do echo line$i; done; sleep 3600\"]\n",
        node = node.node(),
        img = test_support::busybox_image()
    ));
    ns.wait_pod("talker", "running", Duration::from_secs(60), running);

    let all = kubectl(&["logs", "-n", &ns.name, "talker"]).unwrap();
    assert_eq!(all, "line1\nline2\nline3\n");
    let last = kubectl(&["logs", "-n", &ns.name, "talker", "--tail=1"]).unwrap();
    assert_eq!(last, "line3\n");
    let stamped = kubectl(&["logs", "-n", &ns.name, "talker", "--timestamps"]).unwrap();
    assert!(
        stamped.lines().all(|l| l.contains("Z line")),
        "RFC 3339 timestamps: {stamped}"
    );
    let err = kubectl(&["logs", "-n", &ns.name, "talker", "--previous"]).unwrap_err();
    assert!(err.contains("previous terminated container"), "{err}");

    // No credentials: 401 from berth itself.
    let port = node.berth.api_port;
    let out = Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("https://127.0.0.1:{port}/pods"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "401");
}
