//! The containerd child process: starting it, waiting for its CRI, stopping it.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use cri_client::RuntimeClient;
use cri_client::client::Timeouts;
use cri_client::proto::v1 as pb;
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};

use super::discovery::{cap_effective_has, find_running_containerd};
use super::image_import::ensure_pause_image;
use super::render::{containerd_config, write_default_cni_conf, write_file};
use super::{CAP_SYS_RESOURCE, ManagedOptions, ManagedRuntimeError, Result, SOCKET, STATE_DIR};

/// A running containerd child process. Dropping it kills containerd
/// (best effort); [`stop`](Self::stop) shuts it down gracefully.
/// Either way, running pods survive in their shims.
#[derive(Debug)]
pub struct ManagedContainerd {
    child: Option<Child>,
    log_path: PathBuf,
}

impl ManagedContainerd {
    /// Writes containerd's config, starts it, waits until its CRI answers and
    /// makes sure the pause image is there.
    pub async fn start(opts: ManagedOptions) -> Result<ManagedContainerd> {
        if let Some(other) = find_running_containerd(Path::new("/proc")) {
            return Err(ManagedRuntimeError::AlreadyRunning {
                pid: other.pid,
                socket: other.socket,
            });
        }
        let root = opts.containerd_root();
        for dir in [root.clone(), PathBuf::from(STATE_DIR), opts.cni_conf_dir()] {
            std::fs::create_dir_all(&dir)
                .map_err(|source| ManagedRuntimeError::Io { path: dir, source })?;
        }
        let restrict_oom = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| cap_effective_has(&s, CAP_SYS_RESOURCE))
            // Unknown: restricting only clamps oom_score_adj, so it is the safe guess.
            .is_none_or(|has| !has);
        let config = containerd_config(&opts, restrict_oom);
        write_file(&opts.config_path(), config.as_bytes())?;
        write_default_cni_conf(&opts)?;

        let log_path = opts.log_path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| ManagedRuntimeError::Io {
                path: log_path.clone(),
                source,
            })?;
        let log_err = log.try_clone().map_err(|source| ManagedRuntimeError::Io {
            path: log_path.clone(),
            source,
        })?;
        tracing::info!(
            config = %opts.config_path().display(),
            log = %log_path.display(),
            restrict_oom_score_adj = restrict_oom,
            "starting managed containerd"
        );
        let child = Command::new(&opts.containerd_bin)
            .arg("--config")
            .arg(opts.config_path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Its own process group: a Ctrl-C at berth's terminal must not
            // reach containerd before berth has decided to stop it.
            .process_group(0)
            .spawn()
            .map_err(|source| ManagedRuntimeError::Spawn {
                bin: opts.containerd_bin.clone(),
                source,
            })?;
        // From here on, an early return drops `managed`, which kills containerd.
        let mut managed = ManagedContainerd {
            child: Some(child),
            log_path,
        };
        let client = managed.wait_ready(opts.ready_timeout).await?;
        ensure_pause_image(&client, &opts).await?;
        Ok(managed)
    }

    /// The CRI endpoint, `unix:///run/berth/containerd/containerd.sock`.
    pub fn endpoint(&self) -> String {
        format!("unix://{SOCKET}")
    }

    /// containerd's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// SIGTERM, then SIGKILL if containerd has not exited after 10 s.
    pub async fn stop(mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        match timeout(Duration::from_secs(10), child.wait()).await {
            Ok(Ok(status)) => tracing::info!(%status, "managed containerd exited"),
            Ok(Err(e)) => tracing::warn!("waiting for the managed containerd: {e}"),
            Err(_) => {
                tracing::warn!("managed containerd ignored SIGTERM for 10s; killing it");
                let _ = child.kill().await;
            }
        }
    }

    /// Polls the CRI every 100 ms until it answers, containerd exits, or
    /// `limit` passes.
    async fn wait_ready(&mut self, limit: Duration) -> Result<RuntimeClient> {
        let deadline = Instant::now() + limit;
        let timeouts = Timeouts {
            call: Duration::from_secs(2),
            ..Timeouts::default()
        };
        let endpoint = self.endpoint();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(ManagedRuntimeError::Exited {
                    status: status.to_string(),
                    log: self.log_path.clone(),
                    tail: log_tail(&self.log_path, 20),
                });
            }
            let last_error = match RuntimeClient::connect(Some(&endpoint), timeouts).await {
                Ok(client) => match client.version(pb::VersionRequest::default()).await {
                    Ok(v) => {
                        tracing::info!(
                            runtime = %format!("{} {}", v.runtime_name, v.runtime_version),
                            "managed containerd is ready"
                        );
                        return Ok(client);
                    }
                    Err(e) => e.to_string(),
                },
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(ManagedRuntimeError::NotReady {
                    timeout: limit,
                    last_error,
                    log: self.log_path.clone(),
                    tail: log_tail(&self.log_path, 20),
                });
            }
            sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for ManagedContainerd {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

/// The last `n` lines of a log file (at most its last 64 KiB).
pub(super) fn log_tail(path: &Path, n: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let read = || -> io::Result<String> {
        let mut f = std::fs::File::open(path)?;
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    match read() {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(cannot read the log: {e})"),
    }
}
