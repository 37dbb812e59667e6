//! berth joining the test environment's real control plane (issue 10):
//! TLS bootstrap, the Node and its Lease, checked with kubectl. Needs
//! `tests/env/up --control-plane`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use test_support::berth::{Berth, exclusive};
use test_support::cluster::{
    bootstrap_kubeconfig, get_json, kubectl, node_condition, require_control_plane, wait_node,
};

fn nproc() -> String {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .to_string()
}

fn mem_total_ki() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// How many client-certificate CSRs for kubelets the apiserver holds.
fn client_csrs() -> usize {
    let all = get_json(&["csr"]).unwrap();
    all["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet")
        .count()
}

#[test]
fn a_node_joins_through_tls_bootstrap_goes_ready_and_keeps_its_credentials_across_a_restart() {
    require_control_plane();
    let _one = exclusive();
    let creds = tempfile::tempdir().unwrap();
    let kubeconfig = creds.path().join("kubelet.conf");
    let mut b = Berth::with_args(&[
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--bootstrap-kubeconfig",
        bootstrap_kubeconfig().to_str().unwrap(),
        "--node-labels",
        "berth.dev/test=join",
    ]);
    b.start();
    let node = b.node.clone();
    let ready =
        |n: &serde_json::Value| node_condition(n, "Ready").is_some_and(|(s, _, _)| s == "True");
    let n = wait_node(&node, "Ready", Duration::from_secs(90), ready);
    let (_, reason, message) = node_condition(&n, "Ready").unwrap();
    assert_eq!(reason, "KubeletReady");
    assert_eq!(message, "kubelet is posting ready status");
    for (kind, status) in [
        ("MemoryPressure", "False"),
        ("DiskPressure", "False"),
        ("PIDPressure", "False"),
    ] {
        assert_eq!(node_condition(&n, kind).unwrap().0, status, "{kind}");
    }
    let st = &n["status"];
    assert_eq!(st["capacity"]["cpu"], nproc());
    assert_eq!(st["capacity"]["memory"], format!("{}Ki", mem_total_ki()));
    assert_eq!(st["capacity"]["pods"], "110");
    assert!(
        st["nodeInfo"]["containerRuntimeVersion"]
            .as_str()
            .unwrap()
            .starts_with("containerd://"),
        "{}",
        st["nodeInfo"]
    );
    assert_eq!(n["metadata"]["labels"]["kubernetes.io/hostname"], node);
    assert_eq!(n["metadata"]["labels"]["berth.dev/test"], "join");
    let addresses = st["addresses"].as_array().unwrap();
    assert!(
        addresses.iter().any(|a| a["type"] == "InternalIP"),
        "{addresses:?}"
    );

    // The credentials: written by the bootstrap, a node identity.
    assert!(kubeconfig.is_file(), "the bootstrap writes --kubeconfig");
    let pki = b.root_dir().join("pki");
    assert!(
        pki.join("kubelet-client-current.pem").exists(),
        "the client certificate is in --cert-dir"
    );
    let whoami = std::process::Command::new(test_support::cluster::kubectl_bin())
        .args([
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "auth",
            "whoami",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    let who: serde_json::Value = serde_json::from_slice(&whoami.stdout).unwrap_or_default();
    assert_eq!(
        who["status"]["userInfo"]["username"],
        format!("system:node:{node}"),
        "{}",
        String::from_utf8_lossy(&whoami.stderr)
    );

    // The Lease, renewed by the node.
    let lease = get_json(&["lease", "-n", "kube-node-lease", &node]).expect("the node's Lease");
    assert_eq!(lease["spec"]["holderIdentity"], node);
    let renewed = lease["spec"]["renewTime"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_secs(12));
    let lease = get_json(&["lease", "-n", "kube-node-lease", &node]).unwrap();
    assert_ne!(
        lease["spec"]["renewTime"].as_str().unwrap(),
        renewed,
        "renewed within 10 s"
    );
    // Owned by the Node once the lease controller knows its UID.
    let owner = &lease["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "Node");
    assert_eq!(owner["uid"], n["metadata"]["uid"]);

    // A restart reuses the kubeconfig: no new CSR, and the node stays Ready.
    let csrs_before = client_csrs();
    b.stop();
    b.start();
    std::thread::sleep(Duration::from_secs(3));
    wait_node(&node, "Ready", Duration::from_secs(30), ready);
    assert_eq!(
        client_csrs(),
        csrs_before,
        "a restart asks for no certificate"
    );
    b.stop();
    let _ = kubectl(&["delete", "node", &node, "--wait=false"]);
}
