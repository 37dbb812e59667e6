//! The kubelet's configuration: command-line flags plus an optional
//! `KubeletConfiguration` file (`kubelet.config.k8s.io/v1beta1`).
//!
//! Flag names, field names and defaults are the Go kubelet's, and so is the
//! precedence: a flag given on the command line overrides the file.
//!
//! Where Berth departs from the Go kubelet:
//! - an unknown field is an error; the Go kubelet retries with a lenient
//!   decoder and only logs "using lenient decoding", which hides typos;
//! - `readOnlyPort` defaults to 10255 and `address` to 127.0.0.1 (Go: 0, i.e.
//!   disabled since v1beta1, and 0.0.0.0), because the read-only server is
//!   Berth's only status endpoint and it must not be reachable off the node;
//! - `containerRuntimeEndpoint` has no default (Go: containerd's socket): when
//!   unset, `berth` probes containerd's socket and otherwise runs a managed
//!   containerd (see [`crate::managed_runtime`]);
//! - fields Berth has no use for are accepted and reported in
//!   [`KubeletConfig::warnings`]; fields whose being ignored would change what
//!   runs are refused.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod cluster;
mod configz;
mod duration;
mod file;
mod flags;
mod server;
#[cfg(test)]
mod tests;

pub use cluster::ClusterConfig;
pub use duration::{format_go_duration, parse_go_duration};
use file::{FileConfig, parse_file, read_limited};
pub use flags::{KubeletFlags, UnsupportedFlags};
pub use server::{AuthenticationConfig, AuthorizationConfig, AuthorizationMode, ServerConfig};

/// The file's `apiVersion`.
pub const API_VERSION: &str = "kubelet.config.k8s.io/v1beta1";
/// The file's `kind`.
pub const KIND: &str = "KubeletConfiguration";
/// Config files larger than this are refused before parsing.
pub const MAX_CONFIG_FILE_BYTES: u64 = 1024 * 1024;
/// Default `--root-dir`, as the Go kubelet.
pub const DEFAULT_ROOT_DIR: &str = "/var/lib/kubelet";
/// Berth's default read-only port (the Go kubelet's historical 10255).
pub const DEFAULT_READ_ONLY_PORT: u16 = 10255;

/// Why the configuration could not be loaded. Every message names the flag,
/// or the file and field, it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("flag --{flag} is not supported by berth: {why}")]
    UnsupportedFlag {
        flag: &'static str,
        why: &'static str,
    },
    #[error("--{flag}: {reason}")]
    InvalidFlag { flag: &'static str, reason: String },
    #[error("reading config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: the config file is larger than {MAX_CONFIG_FILE_BYTES} bytes; berth refuses it", path.display())]
    TooLarge { path: PathBuf },
    #[error("{}: not a valid YAML or JSON document: {reason}", path.display())]
    Parse { path: PathBuf, reason: String },
    #[error("{}: {reason}", path.display())]
    Document { path: PathBuf, reason: String },
    #[error("{}: unknown field {field:?}: not a {KIND} ({API_VERSION}) field{}", path.display(),
        suggestion.map(|s| format!("; did you mean {s:?}?")).unwrap_or_default())]
    UnknownField {
        path: PathBuf,
        field: String,
        suggestion: Option<&'static str>,
    },
    #[error("{}: {field}: {reason}", path.display())]
    InvalidField {
        path: PathBuf,
        field: String,
        reason: String,
    },
    #[error("{}: {field}: not supported by berth: {why}", path.display())]
    UnsupportedField {
        path: PathBuf,
        field: &'static str,
        why: &'static str,
    },
    #[error("cannot determine the node name: {0}; pass --hostname-override")]
    NodeName(String),
}

/// The cgroup driver the kubelet and the runtime agree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupDriver {
    Cgroupfs,
    Systemd,
}

/// The kubelet's effective configuration: file, then flags, then defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeletConfig {
    /// The `--config` file this came from, if any.
    pub config_file: Option<PathBuf>,
    /// Where static pod manifests are read from; `None` runs no pods.
    pub static_pod_path: Option<PathBuf>,
    pub file_check_frequency: Duration,
    pub sync_frequency: Duration,
    pub pod_logs_dir: PathBuf,
    pub max_pods: u32,
    pub runtime_request_timeout: Duration,
    pub serialize_image_pulls: bool,
    /// `None`: no limit (only meaningful with `serialize_image_pulls: false`).
    pub max_parallel_image_pulls: Option<u32>,
    /// The resolv.conf pods inherit; empty disables host DNS, as in Go.
    pub resolv_conf: PathBuf,
    pub cluster_dns: Vec<IpAddr>,
    pub cluster_domain: String,
    /// 0 disables the read-only server.
    pub read_only_port: u16,
    pub address: IpAddr,
    /// 0 disables the healthz server.
    pub healthz_port: u16,
    pub healthz_bind_address: IpAddr,
    pub root_dir: PathBuf,
    /// Lowercased, as the Go kubelet does.
    pub node_name: String,
    pub container_runtime_endpoint: Option<String>,
    pub image_service_endpoint: Option<String>,
    pub trace_cri: bool,
    pub verbosity: u8,
    pub cgroup_driver: CgroupDriver,
    /// "/" when cgroupsPerQOS is on and no root was given, as the Go kubelet.
    pub cgroup_root: String,
    pub cgroups_per_qos: bool,
    pub kube_reserved: BTreeMap<String, String>,
    pub system_reserved: BTreeMap<String, String>,
    pub kube_reserved_cgroup: String,
    pub system_reserved_cgroup: String,
    pub enforce_node_allocatable: Vec<String>,
    /// -1: no per-pod limit.
    pub pod_pids_limit: i64,
    /// How often the stats provider collects (`--housekeeping-interval`).
    pub housekeeping_interval: Duration,
    /// Set with `--kubeconfig`: berth joins a cluster.
    pub cluster: Option<ClusterConfig>,
    /// The kubelet API (port 10250).
    pub server: ServerConfig,
    /// Fields of the file that Berth accepted but does not act on, as one
    /// line each; `berth` logs them once logging is up.
    pub warnings: Vec<String>,
}

impl KubeletConfig {
    /// Loads the file named by `--config` (if any) and applies the flags on top.
    pub fn load(flags: &KubeletFlags) -> Result<KubeletConfig, ConfigError> {
        if let Some((flag, why)) = flags.unsupported.first_given() {
            return Err(ConfigError::UnsupportedFlag { flag, why });
        }
        let file_path = match &flags.config {
            Some(path) => Some(absolute(path, "config")?),
            None => None,
        };
        let mut cfg = match &file_path {
            Some(path) => {
                let text = read_limited(path)?;
                parse_file(path, &text)?
            }
            None => FileConfig::default(),
        };

        // Flags win over the file, as in the Go kubelet.
        if let Some(p) = &flags.pod_manifest_path {
            cfg.static_pod_path = Some(absolute(p, "pod-manifest-path")?);
        }
        if let Some(ep) = &flags.container_runtime_endpoint {
            check_endpoint_flag(ep, "container-runtime-endpoint")?;
            cfg.container_runtime_endpoint = Some(ep.clone());
        }
        if let Some(ep) = &flags.image_service_endpoint {
            check_endpoint_flag(ep, "image-service-endpoint")?;
            cfg.image_service_endpoint = Some(ep.clone());
        }
        if let Some(port) = flags.read_only_port {
            cfg.read_only_port = Some(port);
        }
        if let Some(port) = flags.healthz_port {
            cfg.healthz_port = Some(port);
        }
        if let Some(addr) = flags.healthz_bind_address {
            cfg.healthz_bind_address = Some(addr);
        }
        if let Some(addr) = flags.address {
            cfg.address = Some(addr);
        }
        let root_dir = absolute(&flags.root_dir, "root-dir")?;
        let housekeeping_interval = match &flags.housekeeping_interval {
            Some(s) => match parse_go_duration(s) {
                Some(d) if !d.is_zero() => d,
                Some(_) => {
                    return Err(ConfigError::InvalidFlag {
                        flag: "housekeeping-interval",
                        reason: "must be greater than 0".into(),
                    });
                }
                None => {
                    return Err(ConfigError::InvalidFlag {
                        flag: "housekeeping-interval",
                        reason: format!("{s:?} is not a duration (e.g. 10s, 1m)"),
                    });
                }
            },
            // cadvisor's default.
            None => Duration::from_secs(10),
        };
        let node_name = node_name(flags.hostname_override.as_deref())?;
        let server = server::server_config(
            flags,
            std::mem::take(&mut cfg.server),
            file_path.as_deref(),
            cfg.cluster.port,
            cfg.cluster.server_tls_bootstrap.unwrap_or(false),
            cfg.address,
            &root_dir,
        )?;
        if let Some(port) = flags.port.filter(|p| *p > 0) {
            cfg.cluster.port = Some(port);
        }
        let cluster = cluster::cluster_config(flags, std::mem::take(&mut cfg.cluster), &root_dir)?;

        let cgroups_per_qos = cfg.cgroups_per_qos.unwrap_or(true);
        let cgroup_root = match cfg.cgroup_root {
            Some(r) if !r.is_empty() => r,
            _ if cgroups_per_qos => "/".to_string(),
            _ => String::new(),
        };
        // Go: serializeImagePulls defaults to false once maxParallelImagePulls >= 2.
        let serialize_image_pulls = cfg
            .serialize_image_pulls
            .unwrap_or(cfg.max_parallel_image_pulls.is_none_or(|n| n < 2));

        let config = KubeletConfig {
            config_file: flags.config.clone(),
            static_pod_path: cfg.static_pod_path,
            file_check_frequency: cfg.file_check_frequency.unwrap_or(Duration::from_secs(20)),
            sync_frequency: cfg.sync_frequency.unwrap_or(Duration::from_secs(60)),
            pod_logs_dir: cfg
                .pod_logs_dir
                .unwrap_or_else(|| PathBuf::from("/var/log/pods")),
            max_pods: cfg.max_pods.unwrap_or(110),
            runtime_request_timeout: cfg
                .runtime_request_timeout
                .unwrap_or(Duration::from_secs(120)),
            serialize_image_pulls,
            max_parallel_image_pulls: cfg.max_parallel_image_pulls,
            resolv_conf: cfg
                .resolv_conf
                .unwrap_or_else(|| PathBuf::from("/etc/resolv.conf")),
            cluster_dns: cfg.cluster_dns,
            cluster_domain: cfg.cluster_domain,
            read_only_port: cfg.read_only_port.unwrap_or(DEFAULT_READ_ONLY_PORT),
            address: cfg.address.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            healthz_port: cfg.healthz_port.unwrap_or(10248),
            healthz_bind_address: cfg
                .healthz_bind_address
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            root_dir,
            node_name,
            container_runtime_endpoint: cfg.container_runtime_endpoint,
            image_service_endpoint: cfg.image_service_endpoint,
            trace_cri: flags.trace_cri,
            verbosity: flags.verbosity,
            cgroup_driver: cfg.cgroup_driver.unwrap_or(CgroupDriver::Cgroupfs),
            cgroup_root,
            cgroups_per_qos,
            kube_reserved: cfg.kube_reserved,
            system_reserved: cfg.system_reserved,
            kube_reserved_cgroup: cfg.kube_reserved_cgroup,
            system_reserved_cgroup: cfg.system_reserved_cgroup,
            enforce_node_allocatable: cfg
                .enforce_node_allocatable
                .unwrap_or_else(|| vec!["pods".to_string()]),
            pod_pids_limit: cfg.pod_pids_limit.unwrap_or(-1),
            housekeeping_interval,
            cluster,
            server,
            warnings: cfg.warnings,
        };
        for w in &config.warnings {
            tracing::warn!("{w}");
        }
        Ok(config)
    }
}

fn check_endpoint_flag(ep: &str, flag: &'static str) -> Result<(), ConfigError> {
    cri_client::endpoint::Endpoint::parse(ep)
        .map(|_| ())
        .map_err(|e| ConfigError::InvalidFlag {
            flag,
            reason: e.to_string(),
        })
}

/// Makes a flag's path absolute against the working directory, so that the
/// rest of berth never depends on where it was started.
fn absolute(p: &Path, flag: &'static str) -> Result<PathBuf, ConfigError> {
    if p.as_os_str().is_empty() {
        return Err(ConfigError::InvalidFlag {
            flag,
            reason: "the path is empty".into(),
        });
    }
    std::path::absolute(p).map_err(|e| ConfigError::InvalidFlag {
        flag,
        reason: format!("{}: {e}", p.display()),
    })
}

/// The node name: the override or the machine's hostname, trimmed and
/// lowercased, as the Go kubelet's `GetHostname`.
fn node_name(hostname_override: Option<&str>) -> Result<String, ConfigError> {
    let raw = match hostname_override {
        Some(h) if !h.trim().is_empty() => h.to_string(),
        _ => machine_hostname()?,
    };
    let name = raw.trim().to_ascii_lowercase();
    if name.is_empty() {
        return Err(ConfigError::NodeName("the hostname is empty".into()));
    }
    Ok(name)
}

fn machine_hostname() -> Result<String, ConfigError> {
    const SOURCES: [&str; 2] = ["/proc/sys/kernel/hostname", "/etc/hostname"];
    let mut last = String::new();
    for src in SOURCES {
        match std::fs::read_to_string(src) {
            Ok(s) if !s.trim().is_empty() => return Ok(s),
            Ok(_) => last = format!("{src} is empty"),
            Err(e) => last = format!("reading {src}: {e}"),
        }
    }
    Err(ConfigError::NodeName(last))
}
