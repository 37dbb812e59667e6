//! The Kubernetes control plane of the test environment (`tests/env/up
//! --control-plane`): its kubeconfigs and kubectl, for tests that join
//! berth to it. Everything is checked through kubectl, as a user would.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

const CONTROL_PLANE_DIR: &str = "/etc/berth-test/control-plane";

/// The admin kubeconfig.
pub fn admin_kubeconfig() -> PathBuf {
    PathBuf::from(CONTROL_PLANE_DIR).join("admin.conf")
}

/// A kubeconfig with the environment's bootstrap token.
pub fn bootstrap_kubeconfig() -> PathBuf {
    PathBuf::from(CONTROL_PLANE_DIR).join("bootstrap.conf")
}

/// A binary `tests/env/control-plane build` made (`kubectl`, `kubelet`,
/// ...), from the newest build; None if none was built.
pub fn k8s_bin(name: &str) -> Option<PathBuf> {
    let mut built: Vec<PathBuf> = std::fs::read_dir("/var/lib/berth-test/k8s")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.is_file())
        .collect();
    built.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    built.pop()
}

/// The kubectl `tests/env/control-plane build` made (the newest build).
pub fn kubectl_bin() -> PathBuf {
    if let Ok(p) = std::env::var("BERTH_TEST_KUBECTL") {
        return PathBuf::from(p);
    }
    k8s_bin("kubectl")
        .expect("no kubectl under /var/lib/berth-test/k8s: run tests/env/up --control-plane")
}

/// Runs kubectl as the admin; Ok(stdout) or Err(stderr).
pub fn kubectl(args: &[&str]) -> Result<String, String> {
    let out = Command::new(kubectl_bin())
        .arg("--kubeconfig")
        .arg(admin_kubeconfig())
        .args(args)
        .output()
        .expect("running kubectl");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `kubectl get <what> -o json`, or None if it is not there.
pub fn get_json(args: &[&str]) -> Option<Value> {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    kubectl(&all)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
}

/// Panics with the command to run when the control plane does not answer.
pub fn require_control_plane() {
    match kubectl(&["get", "--raw", "/readyz"]) {
        Ok(s) if s.trim() == "ok" => {}
        other => {
            panic!("the control plane is not up ({other:?}): run tests/env/up --control-plane")
        }
    }
}

/// The node's condition `kind` ("Ready", ...): its status, reason and message.
pub fn node_condition(node: &Value, kind: &str) -> Option<(String, String, String)> {
    node["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (s("status"), s("reason"), s("message"))
        })
}

/// Polls `kubectl get node <name>` until `ok` holds; returns that node.
pub fn wait_node(name: &str, what: &str, limit: Duration, ok: impl Fn(&Value) -> bool) -> Value {
    let t = Instant::now();
    loop {
        if let Some(n) = get_json(&["node", name]).filter(|n| ok(n)) {
            return n;
        }
        assert!(
            t.elapsed() < limit,
            "node {name}: not {what} after {limit:?}; last seen: {}",
            get_json(&["node", name]).map_or("no node".to_string(), |n| n["status"].to_string())
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
