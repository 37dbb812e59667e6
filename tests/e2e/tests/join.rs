//! berth joining the test environment's real control plane (issue 10):
//! TLS bootstrap, the Node and its Lease, checked with kubectl. Needs
//! `tests/env/up --control-plane`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use test_support::berth::exclusive;
use test_support::cluster::{
    Joined, get_json, is_ready, kubectl, node_condition, require_control_plane, wait_node,
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
    let mut joined = Joined::new(&["--node-labels", "berth.dev/test=join"]);
    let n = joined.run(Duration::from_secs(90));
    let node = joined.node().to_string();
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
    let kubeconfig = joined.kubeconfig();
    assert!(kubeconfig.is_file(), "the bootstrap writes --kubeconfig");
    assert!(
        joined
            .cert_dir()
            .join("kubelet-client-current.pem")
            .exists(),
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
    joined.berth.stop();
    joined.berth.start();
    std::thread::sleep(Duration::from_secs(3));
    wait_node(&node, "Ready", Duration::from_secs(30), is_ready);
    assert_eq!(
        client_csrs(),
        csrs_before,
        "a restart asks for no certificate"
    );
}

/// The controller-manager signs certificates for a short time while this
/// lives (`tests/env/control-plane signing-duration`), the usual lifetime
/// again once dropped.
struct ShortCertificates;

impl ShortCertificates {
    fn set(duration: &str) -> ShortCertificates {
        control_plane_signing(duration);
        ShortCertificates
    }
}

impl Drop for ShortCertificates {
    fn drop(&mut self) {
        control_plane_signing("default");
    }
}

fn control_plane_signing(duration: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../env/control-plane");
    let out = std::process::Command::new(script)
        .args(["signing-duration", duration])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "control-plane signing-duration {duration}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The serial and notAfter of a PEM certificate, from openssl.
fn serial_and_end(pem: &std::path::Path) -> (String, String) {
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-enddate", "-in"])
        .arg(pem)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_default()
            .to_string()
    };
    (field("serial="), field("notAfter="))
}

#[test]
fn the_client_certificate_rotates_before_a_short_lifetime_ends() {
    require_control_plane();
    let _one = exclusive();
    let _short = ShortCertificates::set("60s");
    let joined = Joined::start();
    let (b, node) = (&joined.berth, joined.node());
    let current = joined.cert_dir().join("kubelet-client-current.pem");
    let (first, first_end) = serial_and_end(&current);
    assert!(!first.is_empty(), "a client certificate in --cert-dir");

    // Rotated at 70–90 % of its 60 s.
    let t = std::time::Instant::now();
    let (second, _) = loop {
        let now = serial_and_end(&current);
        if !now.0.is_empty() && now.0 != first {
            break now;
        }
        assert!(
            t.elapsed() < Duration::from_secs(75),
            "not rotated within 75 s (first certificate ends {first_end})\n{}",
            test_support::berth::tail(&b.log(), 20)
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_ne!(second, first);
    // Past the first certificate's end, the node still renews its Lease
    // and stays Ready: every client uses the new certificate.
    std::thread::sleep(Duration::from_secs(
        60u64.saturating_sub(t.elapsed().as_secs()) + 5,
    ));
    let renewed = |at: &str| {
        get_json(&["lease", "-n", "kube-node-lease", node])
            .and_then(|l| l["spec"]["renewTime"].as_str().map(str::to_string))
            .filter(|r| r != at)
    };
    let before = renewed("").unwrap();
    let t = std::time::Instant::now();
    while renewed(&before).is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the Lease is not renewed after the first certificate expired\n{}",
            test_support::berth::tail(&b.log(), 20)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    wait_node(node, "Ready", Duration::from_secs(5), is_ready);
}

#[test]
fn server_tls_bootstrap_requests_a_serving_certificate_that_lands_once_approved() {
    require_control_plane();
    let _one = exclusive();
    let mut joined = Joined::new(&[]);
    joined.append_config("serverTLSBootstrap: true\n");
    joined.berth.start();
    let node = joined.node().to_string();
    let b = &joined.berth;
    // The kubelet-serving CSR, from the node itself, waits for an approver.
    let t = std::time::Instant::now();
    let csr = loop {
        let all = get_json(&["csr"]).unwrap();
        let mine = all["items"].as_array().unwrap().iter().find(|c| {
            c["spec"]["signerName"] == "kubernetes.io/kubelet-serving"
                && c["spec"]["username"] == format!("system:node:{node}")
        });
        if let Some(c) = mine {
            break c["metadata"]["name"].as_str().unwrap().to_string();
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no kubelet-serving CSR from {node}\n{}",
            test_support::berth::tail(&b.log(), 20)
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    kubectl(&["certificate", "approve", &csr]).unwrap();
    let current = joined.cert_dir().join("kubelet-server-current.pem");
    let t = std::time::Instant::now();
    while !current.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the approved serving certificate is not in --cert-dir\n{}",
            test_support::berth::tail(&b.log(), 20)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let text = std::process::Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-subject",
            "-ext",
            "subjectAltName",
            "-in",
        ])
        .arg(&current)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains(&format!("system:node:{node}")), "{text}");
    assert!(text.contains(&format!("DNS:{node}")), "{text}");
    assert!(text.contains("IP Address:"), "{text}");
    joined.berth.stop();
    let _ = kubectl(&["delete", "csr", &csr]);
}

#[test]
fn a_stopped_node_goes_not_ready_and_comes_back_ready() {
    require_control_plane();
    let _one = exclusive();
    let mut node = Joined::start();
    let name = node.node().to_string();
    node.berth.stop();
    // The controller-manager's node lifecycle controller (grace 20 s in the
    // test environment) marks a node whose Lease stopped as Unknown.
    let n = wait_node(&name, "NotReady", Duration::from_secs(60), |n| {
        node_condition(n, "Ready").is_some_and(|(s, _, _)| s == "Unknown")
    });
    let (_, reason, message) = node_condition(&n, "Ready").unwrap();
    assert_eq!(reason, "NodeStatusUnknown");
    assert_eq!(message, "Kubelet stopped posting node status.");
    node.berth.start();
    let n = wait_node(&name, "Ready again", Duration::from_secs(30), is_ready);
    assert_eq!(node_condition(&n, "Ready").unwrap().1, "KubeletReady");
}
