//! Container streams through the kubelet API of a joined berth (issue 12),
//! against the real control plane and containerd: `kubectl exec` (exit
//! codes, stdin, a TTY), `kubectl cp` both ways, `kubectl port-forward`,
//! `kubectl attach`, all of which the apiserver relays to berth over SPDY;
//! `/run` with the apiserver's kubelet client certificate; and a user
//! without `nodes/proxy` refused. Needs `tests/env/up --control-plane`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::berth::exclusive;
use test_support::cluster::{
    Joined, TestNamespace, admin_kubeconfig, kubectl, kubectl_bin, require_control_plane,
};

const CLUSTER_CA: &str = "/etc/berth-test/control-plane/ca.crt";
const KUBELET_CLIENT: &str = "/etc/berth-test/control-plane/apiserver-kubelet-client";

fn running(p: &Value) -> bool {
    p["status"]["containerStatuses"]
        .as_array()
        .is_some_and(|a| a.iter().all(|c| c["state"]["running"].is_object()))
}

/// kubectl as the admin, with `stdin` fed to it.
fn kubectl_with_input(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(kubectl_bin())
        .arg("--kubeconfig")
        .arg(admin_kubeconfig())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn kubectl_exec_cp_port_forward_and_attach_reach_containers_on_berth() {
    require_control_plane();
    let _one = exclusive();
    let node = Joined::start_with(&["--client-ca-file", CLUSTER_CA]);
    let ns = TestNamespace::create("streams");
    ns.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: box}}
spec:
  nodeName: {node}
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  containers:
  - name: shell
    image: {img}
    command: ["sh", "-c", "mkdir -p /www && echo served-by-busybox > /www/index.html && httpd -f -p 8080 -h /www"]
  - name: reader
    image: {img}
    stdin: true
    command: ["sh", "-c", "while read line; do echo got:$line; done"]
"#,
        node = node.node(),
        img = test_support::busybox_image()
    ));
    ns.wait_pod("box", "running", Duration::from_secs(60), running);
    let n = ns.name.as_str();

    // exec: stdout, stderr and the exit code come back apart.
    let out = kubectl_with_input(
        &[
            "exec",
            "-n",
            n,
            "box",
            "-c",
            "shell",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
        b"",
    );
    assert_eq!(text(&out.stdout), "out\n", "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("err\n"), "{}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));

    // exec -i: stdin reaches the process, and its end ends the process.
    let big: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let out = kubectl_with_input(
        &[
            "exec", "-i", "-n", n, "box", "-c", "shell", "--", "wc", "-c",
        ],
        &big,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "200000");

    // exec -it under a pseudo-terminal: the process has a TTY.
    let kubectl_cmd = format!(
        "{} --kubeconfig {} exec -it -n {n} box -c shell -- sh -c 'tty; stty size'",
        kubectl_bin().display(),
        admin_kubeconfig().display()
    );
    let out = Command::new("script")
        .args(["-qec", &kubectl_cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let shown = text(&out.stdout);
    assert!(
        shown.contains("/dev/pts/"),
        "tty: {shown:?} {}",
        text(&out.stderr)
    );

    // cp both ways (tar over exec).
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("payload.bin");
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&local, &payload).unwrap();
    kubectl(&[
        "cp",
        "-c",
        "shell",
        local.to_str().unwrap(),
        &format!("{n}/box:/tmp/payload.bin"),
    ])
    .unwrap();
    let sum = kubectl(&[
        "exec",
        "-n",
        n,
        "box",
        "-c",
        "shell",
        "--",
        "wc",
        "-c",
        "/tmp/payload.bin",
    ])
    .unwrap();
    assert!(sum.starts_with("300000 "), "{sum}");
    let back = dir.path().join("back.bin");
    kubectl(&[
        "cp",
        "-c",
        "shell",
        &format!("{n}/box:/tmp/payload.bin"),
        back.to_str().unwrap(),
    ])
    .unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), payload);

    // port-forward to busybox httpd in the pod.
    let mut pf = Command::new(kubectl_bin())
        .arg("--kubeconfig")
        .arg(admin_kubeconfig())
        .args(["port-forward", "-n", n, "pod/box", ":8080"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(pf.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    // "Forwarding from 127.0.0.1:41234 -> 8080"
    let port: u16 = first
        .split_once("127.0.0.1:")
        .and_then(|(_, r)| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("port-forward said {first:?}"));
    for _ in 0..3 {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "10"])
            .arg(format!("http://127.0.0.1:{port}/index.html"))
            .output()
            .unwrap();
        assert_eq!(
            text(&out.stdout),
            "served-by-busybox\n",
            "{}",
            text(&out.stderr)
        );
    }
    pf.kill().ok();
    pf.wait().ok();

    // attach -i: what we type reaches the container's stdin; its answer is
    // in the log.
    let mut attach = Command::new(kubectl_bin())
        .arg("--kubeconfig")
        .arg(admin_kubeconfig())
        .args(["attach", "-i", "-n", n, "box", "-c", "reader"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = attach.stdin.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = String::new();
    while Instant::now() < deadline {
        // The stream may not be up yet when the first line is written.
        stdin.write_all(b"hello-attach\n").unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(Duration::from_millis(500));
        seen = kubectl(&["logs", "-n", n, "box", "-c", "reader"]).unwrap_or_default();
        if seen.contains("got:hello-attach") {
            break;
        }
    }
    drop(stdin);
    attach.kill().ok();
    let mut err = String::new();
    attach.stderr.take().unwrap().read_to_string(&mut err).ok();
    attach.wait().ok();
    assert!(
        seen.contains("got:hello-attach"),
        "log {seen:?}; attach said {err:?}"
    );

    // /run with the apiserver's kubelet client certificate.
    let port = node.berth.api_port;
    let out = Command::new("curl")
        .args(["-sk", "-X", "POST", "--cert"])
        .arg(format!("{KUBELET_CLIENT}.crt"))
        .arg("--key")
        .arg(format!("{KUBELET_CLIENT}.key"))
        .arg(format!(
            "https://127.0.0.1:{port}/run/{n}/box/shell?cmd=cat%20/www/index.html"
        ))
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "served-by-busybox\n");
    // A plain GET on /exec is not an upgrade: 400.
    let out = Command::new("curl")
        .args(["-sk", "-w", " %{http_code}", "--cert"])
        .arg(format!("{KUBELET_CLIENT}.crt"))
        .arg("--key")
        .arg(format!("{KUBELET_CLIENT}.key"))
        .arg(format!(
            "https://127.0.0.1:{port}/exec/{n}/box/shell?command=ls&output=1"
        ))
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "Upgrade request required\n 400");
    // A pod that isn't there: 404.
    let out = Command::new("curl")
        .args(["-sk", "-X", "POST", "-w", " %{http_code}", "--cert"])
        .arg(format!("{KUBELET_CLIENT}.crt"))
        .arg("--key")
        .arg(format!("{KUBELET_CLIENT}.key"))
        .arg(format!(
            "https://127.0.0.1:{port}/run/{n}/nobody/shell?cmd=ls"
        ))
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "pod does not exist\n 404");

    // The healthz port: plain HTTP, Go's checks.
    let out = Command::new("curl")
        .args(["-s", "-w", " %{http_code}"])
        .arg(format!(
            "http://127.0.0.1:{}/healthz?verbose",
            node.berth.healthz_port
        ))
        .output()
        .unwrap();
    assert_eq!(
        text(&out.stdout),
        "[+]ping ok\n[+]log ok\n[+]syncloop ok\nhealthz check passed\n 200"
    );

    // A service account token (authenticated by TokenReview) without
    // nodes/proxy: 403 from berth's SubjectAccessReview, nothing run.
    kubectl(&["create", "serviceaccount", "-n", n, "nobody"]).unwrap();
    let token = kubectl(&["create", "token", "-n", n, "nobody"]).unwrap();
    let out = Command::new("curl")
        .args(["-sk", "-X", "POST", "-w", " %{http_code}", "-H"])
        .arg(format!("Authorization: Bearer {}", token.trim()))
        .arg(format!(
            "https://127.0.0.1:{port}/run/{n}/box/shell?cmd=touch%20/tmp/pwned"
        ))
        .output()
        .unwrap();
    let said = text(&out.stdout);
    assert!(said.ends_with(" 403"), "{said}");
    assert!(said.contains("subresource(s)=[proxy]"), "{said}");
    let gone = kubectl(&[
        "exec",
        "-n",
        n,
        "box",
        "-c",
        "shell",
        "--",
        "ls",
        "/tmp/pwned",
    ]);
    assert!(gone.is_err(), "{gone:?}");
}
