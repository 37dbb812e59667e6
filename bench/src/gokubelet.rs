//! The Go kubelet, run standalone on a static pod directory against the
//! same containerd, for side-by-side figures. `tests/env/control-plane
//! build` builds it (v1.36, from `tests/env/k8s`) into
//! `/var/lib/berth-test/k8s/<version>/bin/kubelet`; `BERTH_GO_KUBELET`
//! names another binary. Benchmarks skip it, saying so, when it is absent.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cri_client::RuntimeClient;
use cri_client::proto as pb;
use futures_util::future::join_all;
use test_support::endpoint;

/// The Go kubelet binary to compare with, if one is built.
pub fn binary() -> Option<PathBuf> {
    match std::env::var("BERTH_GO_KUBELET") {
        Ok(p) => Some(PathBuf::from(p)).filter(|p| p.is_file()),
        Err(_) => test_support::cluster::k8s_bin("kubelet"),
    }
}

/// `kubelet --version` of `bin`, e.g. "Kubernetes v1.36.3".
pub fn version(bin: &Path) -> String {
    Command::new(bin)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// One Go kubelet process with its own directory and node name.
pub struct GoKubelet {
    dir: PathBuf,
    pub node: String,
    /// Its kubelet API (HTTPS on 127.0.0.1).
    pub api_port: u16,
    child: Child,
}

/// Settings beyond the defaults of [`GoKubelet::start`].
#[derive(Clone, Debug, Default)]
pub struct Extra {
    /// `authentication.x509.clientCAFile`: client certificates it accepts
    /// on its API (none by default, so the API answers 401).
    pub client_ca_file: Option<PathBuf>,
    /// KubeletConfiguration lines appended as they are (keys the defaults
    /// do not set).
    pub config: String,
    /// `address` for its API instead of 127.0.0.1 (e.g. `0.0.0.0`, so that
    /// the apiserver can reach it at the Node's InternalIP for exec).
    pub address: Option<String>,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// How a Go kubelet runs: standalone on its manifest directory, or joined
/// to the test environment's control plane.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Standalone,
    /// TLS bootstrap with the environment's bootstrap kubeconfig into its
    /// own `--kubeconfig` and `--cert-dir`, then registers the Node and runs
    /// the pods bound to it.
    Joined,
}

impl GoKubelet {
    /// Starts `bin` standalone on an empty manifest directory and waits for
    /// its healthz. Its settings are the ones berth's benchmarks use where
    /// they exist (file check 20 s, sync 1 m), cgroupfs as berth, no
    /// eviction or image GC (the machine's disk would trigger them), and
    /// no API port beyond localhost.
    pub async fn start(bin: &Path) -> Result<GoKubelet> {
        let node = format!("gokubelet{}", std::process::id());
        Self::start_as(bin, &node, Mode::Standalone, &Extra::default()).await
    }

    /// Starts `bin` joined to the control plane as `node` (the same
    /// settings as [`start`](Self::start), plus the bootstrap and client
    /// kubeconfigs) and waits for its healthz; the Node's registration and
    /// readiness are the caller's to wait for.
    pub async fn start_joined(bin: &Path, node: &str) -> Result<GoKubelet> {
        Self::start_as(bin, node, Mode::Joined, &Extra::default()).await
    }

    /// [`start_joined`](Self::start_joined) with `extra` settings.
    pub async fn start_joined_with(bin: &Path, node: &str, extra: &Extra) -> Result<GoKubelet> {
        Self::start_as(bin, node, Mode::Joined, extra).await
    }

    async fn start_as(bin: &Path, node: &str, mode: Mode, extra: &Extra) -> Result<GoKubelet> {
        let node = node.to_string();
        let dir = std::env::temp_dir().join(format!("berth-bench-{node}"));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["manifests", "root", "logs", "pki"] {
            std::fs::create_dir_all(dir.join(d))
                .with_context(|| format!("creating {}", dir.join(d).display()))?;
        }
        // Free ports for its API (10250 by default: another kubelet may
        // hold it) and healthz.
        let (port, healthz) = (free_port()?, free_port()?);
        let config = format!(
            "apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: {manifests}
podLogsDir: {logs}
containerRuntimeEndpoint: {endpoint}
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
address: {address}
port: {port}
readOnlyPort: 0
healthzPort: {healthz}
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: false}}
  x509: {{clientCAFile: {client_ca}}}
authorization: {{mode: AlwaysAllow}}
evictionHard: {{}}
imageGCHighThresholdPercent: 100
localStorageCapacityIsolation: false
fileCheckFrequency: 20s
syncFrequency: 1m
",
            manifests = dir.join("manifests").display(),
            logs = dir.join("logs").display(),
            endpoint = endpoint(),
            address = extra.address.as_deref().unwrap_or("127.0.0.1"),
            client_ca = extra
                .client_ca_file
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        ) + &extra.config;
        std::fs::write(dir.join("config.yaml"), config)?;
        let log = std::fs::File::create(dir.join("kubelet.log"))?;
        let mut cmd = Command::new(bin);
        cmd.arg("--config")
            .arg(dir.join("config.yaml"))
            .arg("--root-dir")
            .arg(dir.join("root"))
            .arg("--hostname-override")
            .arg(&node);
        if mode == Mode::Joined {
            cmd.arg("--bootstrap-kubeconfig")
                .arg(test_support::cluster::bootstrap_kubeconfig())
                .arg("--kubeconfig")
                .arg(dir.join("kubelet.conf"))
                .arg("--cert-dir")
                .arg(dir.join("pki"));
        }
        // SIGKILL it when the benchmark dies without running Drop (a
        // signal, an abort): it must never outlive the benchmark.
        // SAFETY: prctl is async-signal-safe and touches no memory of the
        // parent.
        #[allow(unsafe_code)]
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut k = GoKubelet {
            dir,
            node,
            api_port: port,
            child,
        };
        let t = Instant::now();
        loop {
            if healthy(healthz).await {
                break;
            }
            if let Some(st) = k.child.try_wait()? {
                bail!("the Go kubelet exited ({st}):\n{}", k.log_tail());
            }
            if t.elapsed() > Duration::from_secs(60) {
                bail!("the Go kubelet was not healthy in 60 s:\n{}", k.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(k)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log file (stderr).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("kubelet.log")
    }

    /// Kills it (SIGKILL: it has no state worth a clean stop here) and
    /// removes its directory; the runtime is left to the caller.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.unmount_root();
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// The kubelet bind-mounts its root directory onto itself; undone so
    /// that the directory can go.
    fn unmount_root(&self) {
        let root = self.dir.join("root");
        let mounted = std::fs::read_to_string("/proc/self/mounts")
            .unwrap_or_default()
            .lines()
            .any(|l| l.split_whitespace().nth(1) == root.to_str());
        if mounted {
            let _ = Command::new("umount").arg("-l").arg(&root).status();
        }
    }

    pub fn manifests(&self) -> PathBuf {
        self.dir.join("manifests")
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("kubelet.log")).unwrap_or_default();
        test_support::berth::tail(&log, 30)
    }

    /// Stops it and removes what it left in the runtime: it stops removed
    /// pods at once but leaves their sandboxes to its garbage collector.
    pub async fn stop(mut self, client: &RuntimeClient) -> Result<()> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let left = test_support::berth::node_sandboxes(client, &self.node).await?;
        join_all(left.into_iter().map(|s| {
            let client = client.clone();
            async move {
                let _ = client
                    .stop_pod_sandbox(pb::StopPodSandboxRequest {
                        pod_sandbox_id: s.id.clone(),
                    })
                    .await;
                client
                    .remove_pod_sandbox(pb::RemovePodSandboxRequest {
                        pod_sandbox_id: s.id,
                    })
                    .await
            }
        }))
        .await;
        self.unmount_root();
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(())
    }
}

/// A Go kubelet kills every pod in the runtime it does not know of, berth's
/// and the floor's included: it must never outlive its benchmark.
impl Drop for GoKubelet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn healthy(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let req = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body).await;
    body.starts_with("HTTP/1.1 200") && body.ends_with("ok")
}
