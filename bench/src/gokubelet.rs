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
    child: Child,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl GoKubelet {
    /// Starts `bin` on an empty manifest directory and waits for its
    /// healthz. Its settings are the ones berth's benchmarks use where
    /// they exist (file check 20 s, sync 1 m), cgroupfs as berth, no
    /// eviction or image GC (the machine's disk would trigger them), and
    /// no API port beyond localhost.
    pub async fn start(bin: &Path) -> Result<GoKubelet> {
        let node = format!("gokubelet{}", std::process::id());
        let dir = std::env::temp_dir().join(format!("berth-bench-{node}"));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["manifests", "root", "logs"] {
            std::fs::create_dir_all(dir.join(d))
                .with_context(|| format!("creating {}", dir.join(d).display()))?;
        }
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
address: 127.0.0.1
port: {port}
readOnlyPort: 0
healthzPort: {healthz}
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: false}}
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
        );
        std::fs::write(dir.join("config.yaml"), config)?;
        let log = std::fs::File::create(dir.join("kubelet.log"))?;
        let child = Command::new(bin)
            .arg("--config")
            .arg(dir.join("config.yaml"))
            .arg("--root-dir")
            .arg(dir.join("root"))
            .arg("--hostname-override")
            .arg(&node)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut k = GoKubelet { dir, node, child };
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
