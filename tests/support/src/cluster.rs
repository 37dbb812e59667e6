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

/// A namespace for one test's API objects. Dropping it deletes the
/// namespace and removes, through the CRI, every sandbox of its pods that a
/// killed berth left behind.
pub struct TestNamespace {
    pub name: String,
}

impl TestNamespace {
    pub fn create(prefix: &str) -> TestNamespace {
        let name = crate::unique(prefix).to_lowercase();
        kubectl(&["create", "namespace", &name]).expect("creating the test namespace");
        // The namespace's default ServiceAccount comes from the
        // controller-manager; pods are refused until it exists.
        let t = Instant::now();
        while kubectl(&["get", "serviceaccount", "default", "-n", &name]).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "no default ServiceAccount in {name}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        TestNamespace { name }
    }

    /// `kubectl apply -f -` of `yaml` in this namespace.
    pub fn apply(&self, yaml: &str) {
        let mut child = Command::new(kubectl_bin())
            .arg("--kubeconfig")
            .arg(admin_kubeconfig())
            .args(["apply", "-n", &self.name, "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("running kubectl");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(yaml.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "kubectl apply: {}\n{yaml}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `kubectl get <what> -n <ns> -o json`.
    pub fn get(&self, what: &[&str]) -> Option<Value> {
        let mut args = what.to_vec();
        args.extend_from_slice(&["-n", &self.name]);
        get_json(&args)
    }

    /// Polls a pod until `ok` holds; returns it.
    pub fn wait_pod(
        &self,
        name: &str,
        what: &str,
        limit: Duration,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        let t = Instant::now();
        loop {
            if let Some(p) = self.get(&["pod", name]).filter(|p| ok(p)) {
                return p;
            }
            assert!(
                t.elapsed() < limit,
                "pod {}/{name}: not {what} after {limit:?}; last seen: {}",
                self.name,
                self.get(&["pod", name])
                    .map_or("no pod".to_string(), |p| p["status"].to_string())
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The runtime's sandboxes of this namespace's pods.
    pub fn sandboxes(&self) -> Vec<cri_client::proto::PodSandbox> {
        namespace_sandboxes(&self.name)
    }
}

/// Runs the future `f` makes on a runtime of its own, on a thread of its
/// own: for synchronous tests, and for `Drop`s while the test's runtime may
/// be unwinding. None when it panicked or no runtime could be built.
pub fn on_own_runtime<T: Send + 'static, F>(f: impl FnOnce() -> F + Send + 'static) -> Option<T>
where
    F: std::future::Future<Output = T>,
{
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        Some(rt.block_on(f()))
    })
    .join()
    .ok()
    .flatten()
}

/// Runs `f` with a CRI client on a thread of its own (tests are
/// synchronous); None when the runtime does not answer.
pub fn with_cri<T: Send + 'static, F>(
    f: impl FnOnce(cri_client::RuntimeClient) -> F + Send + 'static,
) -> Option<T>
where
    F: std::future::Future<Output = Option<T>>,
{
    on_own_runtime(move || async move {
        let client =
            cri_client::RuntimeClient::connect(Some(&crate::endpoint()), Default::default())
                .await
                .ok()?;
        f(client).await
    })
    .flatten()
}

/// Stops and removes these sandboxes (with their containers) through the
/// CRI, ignoring errors: the clean-up of a test.
pub fn remove_sandboxes(sandboxes: Vec<cri_client::proto::PodSandbox>) {
    if sandboxes.is_empty() {
        return;
    }
    let _ = with_cri(move |client| async move {
        for s in sandboxes {
            let _ = client
                .stop_pod_sandbox(cri_client::proto::StopPodSandboxRequest {
                    pod_sandbox_id: s.id.clone(),
                })
                .await;
            let _ = client
                .remove_pod_sandbox(cri_client::proto::RemovePodSandboxRequest {
                    pod_sandbox_id: s.id,
                })
                .await;
        }
        Some(())
    });
}

/// The runtime's sandboxes whose pods are in `namespace`, in any state.
pub fn namespace_sandboxes(namespace: &str) -> Vec<cri_client::proto::PodSandbox> {
    let ns = namespace.to_string();
    with_cri(move |client| async move {
        let items = client
            .list_pod_sandbox(Default::default())
            .await
            .ok()?
            .items;
        Some(
            items
                .into_iter()
                .filter(|s| s.metadata.as_ref().is_some_and(|m| m.namespace == ns))
                .collect(),
        )
    })
    .unwrap_or_default()
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let _ = kubectl(&["delete", "namespace", &self.name, "--wait=false"]);
        remove_sandboxes(namespace_sandboxes(&self.name));
    }
}

/// Whether the node's Ready condition is True.
pub fn is_ready(node: &Value) -> bool {
    node_condition(node, "Ready").is_some_and(|(s, _, _)| s == "True")
}

/// A berth joined to the control plane through TLS bootstrap (its
/// `--kubeconfig` in a directory of its own, the environment's
/// `--bootstrap-kubeconfig`). The Node object is deleted when it is dropped.
pub struct Joined {
    pub berth: crate::berth::Berth,
    creds: tempfile::TempDir,
}

impl Joined {
    /// Started and Ready.
    pub fn start() -> Joined {
        Self::start_with(&[])
    }

    /// With extra flags for berth; started and Ready.
    pub fn start_with(extra: &[&str]) -> Joined {
        let mut joined = Self::new(extra);
        joined.run(Duration::from_secs(60));
        joined
    }

    /// With extra flags for berth, not started yet: its config may still be
    /// changed ([`append_config`](Self::append_config)).
    pub fn new(extra: &[&str]) -> Joined {
        let creds = tempfile::tempdir().unwrap();
        let kubeconfig = creds.path().join("kubelet.conf");
        let bootstrap = bootstrap_kubeconfig();
        let mut args = vec![
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--bootstrap-kubeconfig",
            bootstrap.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        Joined {
            berth: crate::berth::Berth::with_args(&args),
            creds,
        }
    }

    /// Adds lines (each ending in a newline) to berth's KubeletConfiguration.
    pub fn append_config(&self, lines: &str) {
        self.berth.append_config(lines);
    }

    /// Starts berth and waits until its Node is Ready; returns the Node.
    pub fn run(&mut self, ready_within: Duration) -> Value {
        self.berth.start();
        wait_node(&self.berth.node, "Ready", ready_within, is_ready)
    }

    pub fn node(&self) -> &str {
        &self.berth.node
    }

    /// The `--kubeconfig` the bootstrap writes.
    pub fn kubeconfig(&self) -> PathBuf {
        self.creds.path().join("kubelet.conf")
    }

    /// The certificate directory (the default, under the root dir).
    pub fn cert_dir(&self) -> PathBuf {
        self.berth.root_dir().join("pki")
    }
}

impl Drop for Joined {
    fn drop(&mut self) {
        self.berth.stop();
        let _ = kubectl(&["delete", "node", &self.berth.node, "--wait=false"]);
    }
}

/// The admin's kube client, once the apiserver answers `/readyz` (within
/// 10 s); else the test fails saying how to start the control plane.
pub async fn admin_client() -> kube::Client {
    let admin = admin_kubeconfig();
    let up = async {
        let kc = kube::config::Kubeconfig::read_from(&admin)
            .map_err(|e| format!("{}: {e}", admin.display()))?;
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .map_err(|e| format!("{}: {e}", admin.display()))?;
        let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
        let req = http::Request::get("/readyz")
            .body(Vec::new())
            .map_err(|e| e.to_string())?;
        client
            .request_text(req)
            .await
            .map_err(|e| format!("/readyz: {e}"))?;
        Ok::<_, String>(client)
    };
    match tokio::time::timeout(Duration::from_secs(10), up).await {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => panic!("the control plane is not up: run tests/env/up --control-plane ({e})"),
        Err(_) => panic!(
            "the control plane is not up: run tests/env/up --control-plane \
             (no ready apiserver within 10 s with {})",
            admin.display()
        ),
    }
}

/// Runs `sh -c script` in a container through the CRI; its stdout.
pub fn exec(container_id: &str, script: &str) -> String {
    let (id, script) = (container_id.to_string(), script.to_string());
    with_cri(move |client| async move {
        let out = client
            .exec_sync(cri_client::proto::ExecSyncRequest {
                container_id: id,
                cmd: vec!["sh".into(), "-c".into(), script],
                timeout: 10,
            })
            .await
            .ok()?;
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    })
    .unwrap_or_default()
}
