//! Runs a real `berth` process for end-to-end tests and benchmarks: its own
//! manifest directory, root dir, log dir and read-only port, pointed at the
//! test containerd.
//!
//! Only one berth may run against a runtime at a time: each removes pods it
//! finds there but doesn't want, as the Go kubelet does. Tests that start
//! berth take [`exclusive`] first.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cri_client::proto as pb;
use serde_json::Value;

use crate::cluster::{remove_sandboxes, with_cri};
use crate::{berth_bin, endpoint, unique};

/// Held while a berth runs: serialises berth instances within one test
/// binary (a mutex) and across test binaries and processes (a `flock` on a
/// file under /run/berth-test), since test runners may run binaries at once.
pub struct Exclusive {
    _file: Option<nix::fcntl::Flock<std::fs::File>>,
    _guard: std::sync::MutexGuard<'static, ()>,
}

/// The sandboxes of a kubelet's static pods on `node` (their names end in
/// `-<node>`), in any state.
pub async fn node_sandboxes(
    client: &cri_client::RuntimeClient,
    node: &str,
) -> Result<Vec<pb::PodSandbox>, cri_client::Error> {
    let suffix = format!("-{node}");
    Ok(client
        .list_pod_sandbox(pb::ListPodSandboxRequest::default())
        .await?
        .items
        .into_iter()
        .filter(|s| {
            s.metadata
                .as_ref()
                .is_some_and(|m| m.name.ends_with(&suffix))
        })
        .collect())
}

/// Serialises berth instances; see [`Exclusive`].
pub fn exclusive() -> Exclusive {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Path::new("/run/berth-test");
    let _ = std::fs::create_dir_all(dir);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("berth-e2e.lock"))
        .ok()
        .and_then(|f| nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).ok());
    Exclusive {
        _file: file,
        _guard: guard,
    }
}

pub struct Berth {
    pub node: String,
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// The kubelet API's port (served when joined).
    pub api_port: u16,
    /// The healthz port (plain HTTP, /healthz only).
    pub healthz_port: u16,
    child: Option<Child>,
    extra_args: Vec<String>,
    /// No --container-runtime-endpoint: berth starts its own containerd.
    pub managed: bool,
    /// berth's RUST_LOG; benchmarks turn the per-call trace off.
    pub rust_log: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Berth {
    /// Prepares directories and config; call [`start`](Self::start) next.
    pub fn new() -> Berth {
        Self::with_args(&[])
    }

    pub fn with_args(extra: &[&str]) -> Berth {
        let dir = tempfile::Builder::new()
            .prefix("berth-e2e")
            .tempdir()
            .unwrap();
        for d in ["manifests", "root", "logs"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let port = free_port();
        let api_port = free_port();
        let healthz_port = free_port();
        let b = Berth {
            node: unique("node").to_lowercase(),
            dir,
            port,
            api_port,
            healthz_port,
            child: None,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            managed: false,
            rust_log: "info,berth::cri=debug".into(),
        };
        // The kubelet API gets a port of its own too: joined berths serve
        // it, and several may run at once beside a kubelet on 10250.
        let config = format!(
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nstaticPodPath: {}\npodLogsDir: {}\nreadOnlyPort: {}\nport: {}\nhealthzPort: {}\nfileCheckFrequency: 20s\nsyncFrequency: 1m\n",
            b.manifests().display(),
            b.logs_dir().display(),
            port,
            api_port,
            healthz_port
        );
        std::fs::write(b.dir.path().join("config.yaml"), config).unwrap();
        b
    }

    /// Adds lines (each ending in a newline) to its KubeletConfiguration;
    /// before [`start`](Self::start).
    pub fn append_config(&self, lines: &str) {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("config.yaml"))
            .unwrap()
            .write_all(lines.as_bytes())
            .unwrap();
    }

    pub fn manifests(&self) -> PathBuf {
        self.dir.path().join("manifests")
    }
    pub fn root_dir(&self) -> PathBuf {
        self.dir.path().join("root")
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.dir.path().join("logs")
    }
    pub fn log_file(&self) -> PathBuf {
        self.dir.path().join("berth.log")
    }

    /// Starts berth and waits for its read-only port.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "berth already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_file())
            .unwrap();
        let mut cmd = Command::new(berth_bin());
        cmd.arg("--config")
            .arg(self.dir.path().join("config.yaml"))
            .arg("--root-dir")
            .arg(self.root_dir())
            .arg("--hostname-override")
            .arg(&self.node)
            .args(&self.extra_args);
        if self.managed {
            // Import the project's pause image from its OCI layout, as on a
            // machine with no registry.
            let layout = std::env::var("BERTH_TEST_PAUSE_LAYOUT")
                .unwrap_or_else(|_| "/var/lib/berth-test/images/pause".into());
            cmd.env("BERTH_PAUSE_IMAGE_LAYOUT", layout);
            cmd.env("BERTH_PAUSE_IMAGE", "localhost/berth/pause:latest");
        } else {
            cmd.arg("--container-runtime-endpoint").arg(endpoint());
        }
        let child = cmd
            .env("RUST_LOG", &self.rust_log)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting berth");
        self.child = Some(child);
        for _ in 0..600 {
            if self.get("/healthz").is_some() {
                return;
            }
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("berth exited at start ({st}):\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("berth did not answer /healthz within 60 s:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: no clean-up of any kind, as a crash or OOM kill.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            for _ in 0..100 {
                if c.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// A plain HTTP/1.0 GET on the read-only port.
    pub fn get(&self, path: &str) -> Option<String> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\n\r\n").ok()?;
        let mut resp = String::new();
        s.read_to_string(&mut resp).ok()?;
        let (head, body) = resp.split_once("\r\n\r\n")?;
        (head.starts_with("HTTP/1.") && head.get(8..12) == Some(" 200")).then(|| body.to_string())
    }

    /// `/pods`: every pod with its status.
    pub fn pods(&self) -> Vec<Value> {
        self.get("/pods")
            .and_then(|b| serde_json::from_str::<Value>(&b).ok())
            .and_then(|v| v["items"].as_array().cloned())
            .unwrap_or_default()
    }

    /// The pod whose name (before the node suffix) is `name`.
    pub fn pod(&self, name: &str) -> Option<Value> {
        let full = format!("{name}-{}", self.node);
        self.pods()
            .into_iter()
            .find(|p| p["metadata"]["name"] == full.as_str())
    }

    pub fn write_manifest(&self, file: &str, text: &str) {
        // Write then rename, as an editor or config tool would.
        let tmp = self.manifests().join(format!(".{file}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.manifests().join(file)).unwrap();
    }

    pub fn remove_manifest(&self, file: &str) {
        std::fs::remove_file(self.manifests().join(file)).unwrap();
    }

    /// Waits until `check` holds for the named pod's JSON (status included).
    pub async fn wait_pod(
        &self,
        name: &str,
        what: &str,
        limit: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(p) = self.pod(name)
                && check(&p)
            {
                return p;
            }
            if std::time::Instant::now() > deadline {
                panic!(
                    "timed out after {limit:?} waiting for pod {name}: {what}\nlast seen: {}\n--- berth log ---\n{}",
                    self.pod(name)
                        .map(|p| p["status"].to_string())
                        .unwrap_or_default(),
                    tail(&self.log(), 60)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the named pod is gone from `/pods`.
    pub async fn wait_pod_gone(&self, name: &str, limit: Duration) {
        let deadline = std::time::Instant::now() + limit;
        while self.pod(name).is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "pod {name} was not removed within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sandboxes in the runtime that belong to this berth's node.
    pub async fn runtime_sandboxes(
        &self,
        client: &cri_client::RuntimeClient,
    ) -> Vec<pb::PodSandbox> {
        node_sandboxes(client, &self.node).await.unwrap()
    }

    /// Containers in the runtime that belong to this berth's node.
    pub async fn runtime_containers(
        &self,
        client: &cri_client::RuntimeClient,
    ) -> Vec<pb::Container> {
        let suffix = format!("-{}", self.node);
        client
            .list_containers(pb::ListContainersRequest::default())
            .await
            .unwrap()
            .containers
            .into_iter()
            .filter(|c| {
                c.labels
                    .get("io.kubernetes.pod.name")
                    .is_some_and(|n| n.ends_with(&suffix))
            })
            .collect()
    }
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A pod's container statuses, init containers' after the others.
pub fn container_statuses(pod: &Value) -> impl Iterator<Item = &Value> {
    let status = &pod["status"];
    status["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(
            status["initContainerStatuses"]
                .as_array()
                .into_iter()
                .flatten(),
        )
}

/// The status of container `name` (init containers included), `Null` when
/// the pod has none.
pub fn container_status<'a>(pod: &'a Value, name: &str) -> &'a Value {
    container_statuses(pod)
        .find(|c| c["name"] == name)
        .unwrap_or(&Value::Null)
}

/// Container state of `name` in a pod's status: "running", "waiting",
/// "terminated" or "".
pub fn container_state(pod: &Value, name: &str) -> String {
    container_status(pod, name)["state"]
        .as_object()
        .and_then(|s| s.keys().next().cloned())
        .unwrap_or_default()
}

/// The runtime's ID of container `name`, without the `containerd://`
/// prefix; "" when it has none yet.
pub fn container_id(pod: &Value, name: &str) -> String {
    container_status(pod, name)["containerID"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("containerd://")
        .to_string()
}

/// `restartCount` of container `name`; -1 when the pod has no status for it.
pub fn restart_count(pod: &Value, name: &str) -> i64 {
    container_status(pod, name)["restartCount"]
        .as_i64()
        .unwrap_or(-1)
}

/// The pod's phase, "" when it has none.
pub fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or_default()
}

/// "True"/"False" of a pod condition, "" when absent.
pub fn condition(pod: &Value, kind: &str) -> String {
    pod["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
        .and_then(|c| c["status"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// A static pod manifest for `name` whose `spec:` is `spec` (YAML indented
/// by two spaces); `{img}` in it stands for the busybox image.
pub fn pod_manifest(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{}",
        spec.replace("{img}", &crate::busybox_image())
    )
}

/// A runtime client with the busybox image pulled: what a berth test needs
/// before it writes manifests.
pub async fn busybox_client() -> cri_client::RuntimeClient {
    let c = crate::client().await;
    crate::ensure_image(&c, &crate::busybox_image()).await;
    c
}

/// The runtime's status of one container; None when it is gone.
pub async fn runtime_status(
    client: &cri_client::RuntimeClient,
    id: &str,
) -> Option<pb::ContainerStatus> {
    client
        .container_status(pb::ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: false,
        })
        .await
        .ok()?
        .status
}

/// PIDs of live containerd processes whose command line mentions `needle`.
pub fn containerd_pids(needle: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            cmd.starts_with("containerd\0") && cmd.contains(needle) && !stat.contains(") Z ")
        })
        .collect()
}

impl Drop for Berth {
    fn drop(&mut self) {
        self.kill9();
        if self.managed {
            // berth was killed without stopping its containerd: do it here.
            for pid in containerd_pids(&self.root_dir().display().to_string()) {
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status();
                for _ in 0..50 {
                    if containerd_pids(&self.root_dir().display().to_string()).is_empty() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        // Remove what this node ran, so later tests start clean.
        let node = self.node.clone();
        let sandboxes =
            with_cri(move |client| async move { node_sandboxes(&client, &node).await.ok() });
        remove_sandboxes(sandboxes.unwrap_or_default());
    }
}

impl Default for Berth {
    fn default() -> Self {
        Self::new()
    }
}

/// Where a pod's container logs live under this berth's podLogsDir.
pub fn pod_log_dir(b: &Berth, pod: &Value) -> PathBuf {
    let m = &pod["metadata"];
    b.logs_dir().join(format!(
        "{}_{}_{}",
        m["namespace"].as_str().unwrap_or_default(),
        m["name"].as_str().unwrap_or_default(),
        m["uid"].as_str().unwrap_or_default()
    ))
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
