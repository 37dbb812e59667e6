//! A containerd that berth starts and owns, as k3s does, for machines where
//! no runtime is configured or listening.
//!
//! Layout (the socket lives under /run because unix socket paths are
//! limited to 108 bytes and `--root-dir` may be long):
//! - root:   `<root_dir>/containerd` (also holds `config.toml`,
//!   `containerd.log` and `cni/net.d`)
//! - state:  [`STATE_DIR`]
//! - socket: [`SOCKET`]
//!
//! Only one containerd may run on a machine: two of them fight over
//! /run/netns. So [`ManagedContainerd::start`] refuses when any other
//! containerd process exists, and names it.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod discovery;
mod image_import;
mod render;
mod supervise;
#[cfg(test)]
mod tests;

pub use discovery::{RunningContainerd, cap_effective_has, find_running_containerd};
pub use render::{containerd_config, default_cni_conflist};
pub use supervise::ManagedContainerd;

/// containerd's state directory (sockets, task state); tmpfs.
pub const STATE_DIR: &str = "/run/berth/containerd";
/// The managed containerd's gRPC socket.
pub const SOCKET: &str = "/run/berth/containerd/containerd.sock";
/// The socket a system containerd listens on when not told otherwise.
pub const SYSTEM_CONTAINERD_SOCKET: &str = "/run/containerd/containerd.sock";
/// Berth's own pause image, under the name the test environment's local
/// registry publishes it as.
pub const DEFAULT_PAUSE_IMAGE: &str = "localhost:5000/pause:latest";
/// Where a package would install the pause image's OCI layout.
pub const DEFAULT_PAUSE_IMAGE_LAYOUT: &str = "/usr/share/berth/images/pause";
/// The managed pod network. It differs from the test environment's
/// 10.88.0.0/16 (containerd's usual default) so the two never overlap.
pub const POD_SUBNET: &str = "10.89.0.0/16";
/// The bridge the managed pod network uses.
pub const BRIDGE: &str = "berth0";

/// Largest pause image layout berth will stream into `ctr import`.
pub(super) const MAX_LAYOUT_BYTES: usize = 256 * 1024 * 1024;
/// Bit of CAP_SYS_RESOURCE in the capability sets.
pub(super) const CAP_SYS_RESOURCE: u32 = 24;

/// Why the managed containerd could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ManagedRuntimeError {
    #[error(
        "another containerd is already running (pid {pid}, socket {socket}); only one containerd may manage \
         /run/netns on a machine, so berth will not start its own: stop that one, or use it with \
         --container-runtime-endpoint unix://{socket}"
    )]
    AlreadyRunning { pid: u32, socket: String },
    #[error("preparing {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("starting {}: {source}", bin.display())]
    Spawn {
        bin: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("containerd exited during startup ({status}); last lines of {}:\n{tail}", log.display())]
    Exited {
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error(
        "containerd did not answer on unix://{SOCKET} within {timeout:?} (last error: {last_error}); \
         last lines of {}:\n{tail}", log.display()
    )]
    NotReady {
        timeout: Duration,
        last_error: String,
        log: PathBuf,
        tail: String,
    },
    #[error(
        "the pause image {image} is not in the runtime, there is no OCI image layout at {layout} to import it \
         from, and pulling it failed: {pull_error}"
    )]
    NoPauseImage {
        image: String,
        layout: String,
        pull_error: String,
    },
    #[error("importing the pause image {image} from {}: {reason}", layout.display())]
    PauseImport {
        image: String,
        layout: PathBuf,
        reason: String,
    },
    #[error("asking the managed containerd for the pause image {image}: {source}")]
    Cri {
        image: String,
        #[source]
        source: cri_client::Error,
    },
}

pub(super) type Result<T, E = ManagedRuntimeError> = std::result::Result<T, E>;

/// How to run the managed containerd.
#[derive(Debug, Clone)]
pub struct ManagedOptions {
    /// The kubelet's `--root-dir`; containerd's root is `<root_dir>/containerd`.
    pub root_dir: PathBuf,
    pub containerd_bin: PathBuf,
    /// `ctr`, used to import the pause image's layout.
    pub ctr_bin: PathBuf,
    /// containerd's `sandbox_image`.
    pub pause_image: String,
    /// An OCI image layout to import `pause_image` from when the runtime
    /// lacks it, so pods run without any registry.
    pub pause_image_layout: Option<PathBuf>,
    pub cni_bin_dir: PathBuf,
    /// How long containerd may take to answer CRI calls after starting.
    pub ready_timeout: Duration,
}

impl ManagedOptions {
    /// Defaults for a kubelet root dir. `BERTH_PAUSE_IMAGE` and
    /// `BERTH_PAUSE_IMAGE_LAYOUT` override the pause image and its layout.
    pub fn for_root_dir(root_dir: &Path) -> Self {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        ManagedOptions {
            root_dir: root_dir.to_path_buf(),
            containerd_bin: PathBuf::from("containerd"),
            ctr_bin: PathBuf::from("ctr"),
            pause_image: env("BERTH_PAUSE_IMAGE")
                .unwrap_or_else(|| DEFAULT_PAUSE_IMAGE.to_string()),
            pause_image_layout: Some(PathBuf::from(
                env("BERTH_PAUSE_IMAGE_LAYOUT")
                    .unwrap_or_else(|| DEFAULT_PAUSE_IMAGE_LAYOUT.to_string()),
            )),
            cni_bin_dir: PathBuf::from("/usr/lib/cni"),
            ready_timeout: Duration::from_secs(30),
        }
    }

    /// containerd's root directory.
    pub fn containerd_root(&self) -> PathBuf {
        self.root_dir.join("containerd")
    }

    pub fn config_path(&self) -> PathBuf {
        self.containerd_root().join("config.toml")
    }

    pub fn log_path(&self) -> PathBuf {
        self.containerd_root().join("containerd.log")
    }

    pub fn cni_conf_dir(&self) -> PathBuf {
        self.containerd_root().join("cni").join("net.d")
    }
}
