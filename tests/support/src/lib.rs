//! Helpers shared by Berth's end-to-end tests and benchmarks. Everything here
//! talks to the real containerd that `tests/env/up` starts, except
//! [`fake_cri`], an in-process fake runtime for fast unit tests.
//!
//! These helpers panic with a clear message on failure: they run only in
//! tests and benchmarks, where a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod berth;
pub mod cluster;
pub mod fake_cri;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cri_client::RuntimeClient;
use cri_client::client::Timeouts;
use cri_client::proto as pb;

pub const DEFAULT_ENDPOINT: &str = "unix:///run/berth-test/containerd.sock";

/// The runtime endpoint under test (`BERTH_TEST_ENDPOINT`).
pub fn endpoint() -> String {
    std::env::var("BERTH_TEST_ENDPOINT").unwrap_or_else(|_| DEFAULT_ENDPOINT.to_string())
}

pub fn busybox_image() -> String {
    std::env::var("BERTH_TEST_BUSYBOX_IMAGE")
        .unwrap_or_else(|_| "localhost:5000/busybox:latest".into())
}

pub fn pause_image() -> String {
    std::env::var("BERTH_TEST_PAUSE_IMAGE").unwrap_or_else(|_| "localhost:5000/pause:latest".into())
}

/// The registry that requires credentials, and them.
pub fn auth_registry() -> (String, String, String) {
    (
        std::env::var("BERTH_TEST_AUTH_REGISTRY").unwrap_or_else(|_| "localhost:5001".into()),
        std::env::var("BERTH_TEST_AUTH_USER").unwrap_or_else(|_| "berth".into()),
        std::env::var("BERTH_TEST_AUTH_PASS").unwrap_or_else(|_| "berth-pass".into()),
    )
}

/// Connects to the test runtime, or fails the test with what to do.
pub async fn client() -> RuntimeClient {
    let timeouts = Timeouts {
        call: Duration::from_secs(10),
        ..Timeouts::default()
    };
    match RuntimeClient::connect(Some(&endpoint()), timeouts).await {
        Ok(c) => c,
        Err(e) => panic!("the test runtime is not reachable ({e}); run tests/env/up first"),
    }
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{:x}", std::process::id(), nanos & 0xffff)
}

/// A sandbox config as crictl's examples write it.
pub fn sandbox_config(name: &str, log_dir: &Path) -> pb::PodSandboxConfig {
    pb::PodSandboxConfig {
        metadata: Some(pb::PodSandboxMetadata {
            name: name.to_string(),
            uid: format!("uid-{name}"),
            namespace: "berth-test".into(),
            attempt: 0,
        }),
        hostname: name.chars().take(63).collect(),
        log_directory: log_dir.display().to_string(),
        labels: [("berth-test".to_string(), "true".to_string())].into(),
        linux: Some(pb::LinuxPodSandboxConfig::default()),
        ..Default::default()
    }
}

pub fn container_config(name: &str, image: &str, command: &[&str]) -> pb::ContainerConfig {
    pb::ContainerConfig {
        metadata: Some(pb::ContainerMetadata {
            name: name.to_string(),
            attempt: 0,
        }),
        image: Some(pb::ImageSpec {
            image: image.to_string(),
            ..Default::default()
        }),
        command: command.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}/0.log"),
        labels: [("berth-test".to_string(), "true".to_string())].into(),
        linux: Some(pb::LinuxContainerConfig::default()),
        ..Default::default()
    }
}

/// Pulls `image` unless the runtime already has it.
pub async fn ensure_image(client: &RuntimeClient, image: &str) {
    let have = client
        .image_status(pb::ImageStatusRequest {
            image: Some(pb::ImageSpec {
                image: image.to_string(),
                ..Default::default()
            }),
            verbose: false,
        })
        .await
        .expect("ImageStatus")
        .image
        .is_some();
    if !have {
        client
            .pull_image(pb::PullImageRequest {
                image: Some(pb::ImageSpec {
                    image: image.to_string(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| {
                panic!("pulling {image}: {e}; is tests/env/up's registry running?")
            });
    }
}

/// A running pod sandbox, stopped and removed when dropped (even when the
/// test panics), with its log directory.
pub struct Pod {
    pub id: String,
    pub name: String,
    pub config: pb::PodSandboxConfig,
    pub log_dir: tempfile::TempDir,
    endpoint: String,
}

impl Pod {
    /// Runs a new sandbox named after `prefix`.
    pub async fn run(client: &RuntimeClient, prefix: &str) -> Pod {
        let name = unique(prefix);
        let log_dir = tempfile::Builder::new()
            .prefix("berth-test-logs")
            .tempdir()
            .unwrap();
        let config = sandbox_config(&name, log_dir.path());
        let resp = client
            .run_pod_sandbox(pb::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            })
            .await
            .unwrap_or_else(|e| panic!("RunPodSandbox {name}: {e}"));
        Pod {
            id: resp.pod_sandbox_id,
            name,
            config,
            log_dir,
            endpoint: client.endpoint().to_string(),
        }
    }

    /// Creates and starts a container in this pod; returns its ID.
    pub async fn start(&self, client: &RuntimeClient, config: pb::ContainerConfig) -> String {
        let name = config.metadata.clone().unwrap_or_default().name;
        let id = client
            .create_container(pb::CreateContainerRequest {
                pod_sandbox_id: self.id.clone(),
                config: Some(config),
                sandbox_config: Some(self.config.clone()),
            })
            .await
            .unwrap_or_else(|e| panic!("CreateContainer {name}: {e}"))
            .container_id;
        client
            .start_container(pb::StartContainerRequest {
                container_id: id.clone(),
            })
            .await
            .unwrap_or_else(|e| panic!("StartContainer {name}: {e}"));
        id
    }

    pub fn log_path(&self, container: &str, attempt: u32) -> PathBuf {
        self.log_dir
            .path()
            .join(container)
            .join(format!("{attempt}.log"))
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let id = self.id.clone();
        let endpoint = self.endpoint.clone();
        // Drop can't await; clean up on a thread with its own runtime, which
        // also works when the test's runtime is shutting down.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let client = RuntimeClient::connect(Some(&endpoint), Timeouts::default())
                    .await
                    .ok()?;
                let _ = client
                    .stop_pod_sandbox(pb::StopPodSandboxRequest {
                        pod_sandbox_id: id.clone(),
                    })
                    .await;
                client
                    .remove_pod_sandbox(pb::RemovePodSandboxRequest { pod_sandbox_id: id })
                    .await
                    .ok()
            })
        });
        let _ = cleanup.join();
    }
}

/// Polls `check` every 100 ms until it returns `Some`, or fails after `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A binary of the workspace built alongside the running test or benchmark:
/// beside it (`target/<profile>/`, benchmarks) or one level up (test
/// binaries live in `target/<profile>/deps/`). `$VAR` overrides.
fn workspace_bin(name: &str, var: &str, package: &str) -> PathBuf {
    if let Ok(p) = std::env::var(var) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let here = exe.parent().expect("exe dir");
    let candidates = [here.join(name), here.parent().unwrap_or(here).join(name)];
    match candidates.iter().find(|p| p.exists()) {
        Some(p) => p.clone(),
        None => panic!(
            "{name} not found next to {}: build it first (cargo build -p {package} --bins), or set {var}",
            exe.display()
        ),
    }
}

/// The berthctl binary built alongside the test (`target/<profile>/berthctl`).
pub fn berthctl_bin() -> PathBuf {
    workspace_bin("berthctl", "BERTHCTL", "berthctl")
}

/// The berth binary built alongside the test.
pub fn berth_bin() -> PathBuf {
    workspace_bin("berth", "BERTH", "berth-kubelet")
}
