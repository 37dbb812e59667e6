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
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

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

/// The Go kubelet's flags that Berth honours, plus Berth's own `--trace-cri`.
#[derive(clap::Args, Debug, Clone)]
pub struct KubeletFlags {
    /// Load the configuration from this KubeletConfiguration file
    /// (kubelet.config.k8s.io/v1beta1, YAML or JSON). Flags override it.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Directory of static pod manifests, or a single manifest file
    /// (the file's staticPodPath).
    #[arg(long, value_name = "PATH")]
    pub pod_manifest_path: Option<PathBuf>,

    /// The CRI runtime's endpoint, e.g. unix:///run/containerd/containerd.sock.
    /// Without it berth uses containerd's default socket, or starts its own containerd.
    #[arg(long, value_name = "ENDPOINT")]
    pub container_runtime_endpoint: Option<String>,

    /// The CRI image service's endpoint, if it differs from the runtime's.
    #[arg(long, value_name = "ENDPOINT")]
    pub image_service_endpoint: Option<String>,

    /// Directory for the kubelet's state (volumes, the managed containerd).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_ROOT_DIR)]
    pub root_dir: PathBuf,

    /// Use this name as the node name instead of the machine's hostname.
    #[arg(long, value_name = "NAME")]
    pub hostname_override: Option<String>,

    /// Log verbosity, as klog's -v: 0-1 info, 2-4 debug, 5 and up trace.
    #[arg(short = 'v', long = "v", value_name = "LEVEL", default_value_t = 0)]
    pub verbosity: u8,

    /// Log every CRI call with its duration and status (berth only).
    #[arg(long)]
    pub trace_cri: bool,

    /// Port of the read-only HTTP server (/healthz, /pods); 0 disables it.
    #[arg(long, value_name = "PORT")]
    pub read_only_port: Option<u16>,

    /// IP address the read-only server listens on.
    #[arg(long, value_name = "IP")]
    pub address: Option<IpAddr>,

    /// How often resource usage stats are collected (cadvisor's flag; a
    /// Go duration, default 10s). There is no config file field for it.
    #[arg(long, value_name = "DURATION")]
    pub housekeeping_interval: Option<String>,

    #[command(flatten)]
    pub unsupported: UnsupportedFlags,
}

impl Default for KubeletFlags {
    fn default() -> Self {
        KubeletFlags {
            config: None,
            pod_manifest_path: None,
            container_runtime_endpoint: None,
            image_service_endpoint: None,
            root_dir: PathBuf::from(DEFAULT_ROOT_DIR),
            hostname_override: None,
            verbosity: 0,
            trace_cri: false,
            read_only_port: None,
            address: None,
            housekeeping_interval: None,
            unsupported: UnsupportedFlags::default(),
        }
    }
}

/// Go kubelet flags users commonly pass that Berth does not honour. They are
/// accepted by the parser (hidden from --help) so that `load` can explain
/// why, rather than clap printing "unexpected argument".
#[derive(clap::Args, Debug, Clone, Default)]
pub struct UnsupportedFlags {
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "")]
    pub kubeconfig: Option<String>,
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "")]
    pub bootstrap_kubeconfig: Option<String>,
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "")]
    pub network_plugin: Option<String>,
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "")]
    pub cni_bin_dir: Option<String>,
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "")]
    pub cni_conf_dir: Option<String>,
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "")]
    pub container_runtime: Option<String>,
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "")]
    pub cgroup_driver: Option<String>,
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "")]
    pub node_ip: Option<String>,
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "")]
    pub node_labels: Option<String>,
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "")]
    pub register_node: Option<String>,
}

impl UnsupportedFlags {
    /// The first unsupported flag given, with the reason.
    fn first_given(&self) -> Option<(&'static str, &'static str)> {
        const STANDALONE: &str =
            "berth runs standalone (static pods only) and does not talk to an apiserver";
        const CNI: &str = "removed from the Go kubelet in 1.24; pod networking is the runtime's CNI configuration";
        let table: [(&Option<String>, &'static str, &'static str); 10] = [
            (&self.kubeconfig, "kubeconfig", STANDALONE),
            (
                &self.bootstrap_kubeconfig,
                "bootstrap-kubeconfig",
                STANDALONE,
            ),
            (&self.node_ip, "node-ip", STANDALONE),
            (&self.node_labels, "node-labels", STANDALONE),
            (&self.register_node, "register-node", STANDALONE),
            (&self.network_plugin, "network-plugin", CNI),
            (&self.cni_bin_dir, "cni-bin-dir", CNI),
            (&self.cni_conf_dir, "cni-conf-dir", CNI),
            (
                &self.container_runtime,
                "container-runtime",
                "removed from the Go kubelet in 1.27; berth always talks CRI, use --container-runtime-endpoint",
            ),
            (
                &self.cgroup_driver,
                "cgroup-driver",
                "deprecated in the Go kubelet; set cgroupDriver in the --config file",
            ),
        ];
        table
            .into_iter()
            .find(|(v, _, _)| v.is_some())
            .map(|(_, f, w)| (f, w))
    }
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
        let mut cfg = match &flags.config {
            Some(path) => {
                let path = absolute(path, "config")?;
                let text = read_limited(&path)?;
                parse_file(&path, &text)?
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
            warnings: cfg.warnings,
        };
        for w in &config.warnings {
            tracing::warn!("{w}");
        }
        Ok(config)
    }
}

/// What the file said; `None` where it said nothing (or Go's zero value,
/// which the Go kubelet also replaces with the default).
#[derive(Debug, Default)]
struct FileConfig {
    static_pod_path: Option<PathBuf>,
    file_check_frequency: Option<Duration>,
    sync_frequency: Option<Duration>,
    pod_logs_dir: Option<PathBuf>,
    max_pods: Option<u32>,
    runtime_request_timeout: Option<Duration>,
    serialize_image_pulls: Option<bool>,
    max_parallel_image_pulls: Option<u32>,
    resolv_conf: Option<PathBuf>,
    cluster_dns: Vec<IpAddr>,
    cluster_domain: String,
    read_only_port: Option<u16>,
    address: Option<IpAddr>,
    healthz_port: Option<u16>,
    healthz_bind_address: Option<IpAddr>,
    container_runtime_endpoint: Option<String>,
    image_service_endpoint: Option<String>,
    cgroup_driver: Option<CgroupDriver>,
    cgroup_root: Option<String>,
    cgroups_per_qos: Option<bool>,
    kube_reserved: BTreeMap<String, String>,
    system_reserved: BTreeMap<String, String>,
    kube_reserved_cgroup: String,
    system_reserved_cgroup: String,
    enforce_node_allocatable: Option<Vec<String>>,
    pod_pids_limit: Option<i64>,
    warnings: Vec<String>,
}

/// Fields Berth reads.
const SUPPORTED: &[&str] = &[
    "apiVersion",
    "kind",
    "staticPodPath",
    "fileCheckFrequency",
    "syncFrequency",
    "podLogsDir",
    "maxPods",
    "runtimeRequestTimeout",
    "serializeImagePulls",
    "maxParallelImagePulls",
    "resolvConf",
    "clusterDNS",
    "clusterDomain",
    "readOnlyPort",
    "address",
    "healthzPort",
    "healthzBindAddress",
    "containerRuntimeEndpoint",
    "imageServiceEndpoint",
    "cgroupDriver",
    "cgroupRoot",
    "cgroupsPerQOS",
    "kubeReserved",
    "systemReserved",
    "kubeReservedCgroup",
    "systemReservedCgroup",
    "enforceNodeAllocatable",
    "podPidsLimit",
];

/// Fields Berth accepts and ignores: they concern the apiserver, the TLS
/// server, node status, eviction, image GC or resource managers, none of
/// which Berth has, and ignoring them does not change which pods run or how.
const IGNORED: &[&str] = &[
    "enableServer",
    "httpCheckFrequency",
    "staticPodURLHeader",
    "port",
    "tlsCertFile",
    "tlsPrivateKeyFile",
    "tlsCipherSuites",
    "tlsCurvePreferences",
    "tlsMinVersion",
    "rotateCertificates",
    "serverTLSBootstrap",
    "authentication",
    "authorization",
    "registryPullQPS",
    "registryBurst",
    "imagePullCredentialsVerificationPolicy",
    "preloadedImagesVerificationAllowlist",
    "eventRecordQPS",
    "eventBurst",
    "enableDebuggingHandlers",
    "enableContentionProfiling",
    "oomScoreAdj",
    "streamingConnectionIdleTimeout",
    "nodeStatusUpdateFrequency",
    "nodeStatusReportFrequency",
    "nodeLeaseDurationSeconds",
    "imageMinimumGCAge",
    "imageMaximumGCAge",
    "imageGCHighThresholdPercent",
    "imageGCLowThresholdPercent",
    "volumeStatsAggPeriod",
    "kubeletCgroups",
    "systemCgroups",
    "singleProcessOOMKill",
    "cpuManagerPolicyOptions",
    "cpuManagerReconcilePeriod",
    "draManagerReconcilePeriod",
    "topologyManagerScope",
    "topologyManagerPolicyOptions",
    "qosReserved",
    "hairpinMode",
    "podCIDR",
    "cpuCFSQuotaPeriod",
    "nodeStatusMaxImages",
    "maxOpenFiles",
    "contentType",
    "kubeAPIQPS",
    "kubeAPIBurst",
    "evictionHard",
    "evictionSoft",
    "evictionSoftGracePeriod",
    "evictionPressureTransitionPeriod",
    "evictionMaxPodGracePeriod",
    "evictionMinimumReclaim",
    "mergeDefaultEvictionSettings",
    "podsPerCore",
    "enableControllerAttachDetach",
    "protectKernelDefaults",
    "makeIPTablesUtilChains",
    "iptablesMasqueradeBit",
    "iptablesDropBit",
    "featureGates",
    "failSwapOn",
    "memorySwap",
    "containerLogMaxSize",
    "containerLogMaxFiles",
    "containerLogMaxWorkers",
    "containerLogMonitorInterval",
    "configMapAndSecretChangeDetectionStrategy",
    "reservedSystemCPUs",
    "showHiddenMetricsForVersion",
    "allowedUnsafeSysctls",
    "volumePluginDir",
    "providerID",
    "kernelMemcgNotification",
    "logging",
    "enableSystemLogHandler",
    "enableSystemLogQuery",
    "shutdownGracePeriod",
    "shutdownGracePeriodCriticalPods",
    "shutdownGracePeriodByPodPriority",
    "crashLoopBackOff",
    "reservedMemory",
    "enableProfilingHandler",
    "enableDebugFlagsHandler",
    "memoryThrottlingFactor",
    "memoryReservationPolicy",
    "registerWithTaints",
    "registerNode",
    "tracing",
    "localStorageCapacityIsolation",
    "failCgroupV1",
    "userNamespaces",
];

/// A field Berth cannot honour: accepted only while it keeps its harmless
/// default value.
struct Refused {
    field: &'static str,
    harmless: fn(&Value) -> bool,
    why: &'static str,
}

const REFUSED: &[Refused] = &[
    Refused {
        field: "staticPodURL",
        harmless: |v| v.as_str().is_some_and(str::is_empty),
        why: "berth reads static pods from files only; use staticPodPath",
    },
    Refused {
        field: "runOnce",
        harmless: |v| v == &Value::Bool(false),
        why: "berth always runs as a daemon",
    },
    Refused {
        field: "seccompDefault",
        harmless: |v| v == &Value::Bool(false),
        why: "the RuntimeDefault seccomp profile is not applied by default yet",
    },
    Refused {
        field: "cpuCFSQuota",
        harmless: |v| v == &Value::Bool(true),
        why: "CPU limits are always enforced with CFS quota",
    },
    Refused {
        field: "cpuManagerPolicy",
        harmless: |v| {
            v.as_str()
                .is_some_and(|s| s.is_empty() || s.eq_ignore_ascii_case("none"))
        },
        why: "berth has no CPU manager; only \"none\" is accepted",
    },
    Refused {
        field: "memoryManagerPolicy",
        harmless: |v| {
            v.as_str()
                .is_some_and(|s| s.is_empty() || s.eq_ignore_ascii_case("none"))
        },
        why: "berth has no memory manager; only \"None\" is accepted",
    },
    Refused {
        field: "topologyManagerPolicy",
        harmless: |v| v.as_str().is_some_and(|s| s.is_empty() || s == "none"),
        why: "berth has no topology manager; only \"none\" is accepted",
    },
];

/// Reads at most [`MAX_CONFIG_FILE_BYTES`] (plus one, to detect more).
fn read_limited(path: &Path) -> Result<String, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut buf = Vec::new();
    file.take(MAX_CONFIG_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(read_err)?;
    if buf.len() as u64 > MAX_CONFIG_FILE_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    String::from_utf8(buf).map_err(|_| ConfigError::Parse {
        path: path.to_path_buf(),
        reason: "the file is not UTF-8 text".into(),
    })
}

/// Parses YAML (or JSON, which is also YAML) with limits that stop alias
/// bombs and deeply nested documents long before they cost anything.
fn parse_document(path: &Path, text: &str) -> Result<Value, ConfigError> {
    let parse_err = |reason: String| ConfigError::Parse {
        path: path.to_path_buf(),
        reason,
    };
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text).map_err(|e| parse_err(e.to_string()));
    }
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: 32,
            max_documents: 1,
            max_nodes: 20_000,
            max_aliases: 200,
            max_anchors: 200,
            max_total_scalar_bytes: MAX_CONFIG_FILE_BYTES as usize,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 20_000,
            max_replay_stack_depth: 16,
        },
        duplicate_keys: serde_saphyr::options::DuplicateKeyPolicy::Error,
    };
    serde_saphyr::from_str_with_options(text, options).map_err(|e| parse_err(e.to_string()))
}

/// Parses and validates a config file's text. `path` is used in messages
/// and to resolve relative paths (as the Go kubelet: against its directory).
fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    let doc = parse_document(path, text)?;
    let map = match doc {
        Value::Object(m) => m,
        Value::Null => {
            return Err(ConfigError::Document {
                path: path.to_path_buf(),
                reason: format!("the file is empty; expected a {KIND} document"),
            });
        }
        _ => {
            return Err(ConfigError::Document {
                path: path.to_path_buf(),
                reason: format!("expected a {KIND} mapping at the top level"),
            });
        }
    };
    let fields = Fields {
        path,
        dir: path.parent().unwrap_or(Path::new("/")),
        map: &map,
    };
    check_type_meta(&fields)?;

    let mut out = FileConfig::default();
    let mut ignored = Vec::new();
    for (key, value) in &map {
        if SUPPORTED.contains(&key.as_str()) {
            continue;
        }
        if let Some(name) = IGNORED.iter().find(|f| **f == key) {
            ignored.push(*name);
            continue;
        }
        if let Some(r) = REFUSED.iter().find(|r| r.field == key) {
            if value.is_null() || (r.harmless)(value) {
                continue;
            }
            return Err(ConfigError::UnsupportedField {
                path: path.to_path_buf(),
                field: r.field,
                why: r.why,
            });
        }
        return Err(ConfigError::UnknownField {
            path: path.to_path_buf(),
            field: key.clone(),
            suggestion: suggest(key),
        });
    }
    if !ignored.is_empty() {
        out.warnings.push(format!(
            "{}: ignoring fields berth does not use: {}",
            path.display(),
            ignored.join(", ")
        ));
    }

    out.static_pod_path = fields
        .path_field("staticPodPath")?
        .filter(|p| !p.as_os_str().is_empty());
    out.file_check_frequency = fields.duration("fileCheckFrequency")?;
    out.sync_frequency = fields.duration("syncFrequency")?;
    out.pod_logs_dir = fields
        .path_field("podLogsDir")?
        .filter(|p| !p.as_os_str().is_empty());
    if out.pod_logs_dir.as_deref() == Some(Path::new("/")) {
        return Err(fields.invalid("podLogsDir", "must not be \"/\"".into()));
    }
    out.max_pods = fields
        .uint("maxPods", u32::MAX as u64)?
        .map(|n| n as u32)
        .filter(|n| *n > 0);
    out.runtime_request_timeout = fields.duration("runtimeRequestTimeout")?;
    out.serialize_image_pulls = fields.bool("serializeImagePulls")?;
    out.max_parallel_image_pulls = fields
        .uint("maxParallelImagePulls", i32::MAX as u64)?
        .map(|n| n as u32);
    if out.max_parallel_image_pulls == Some(0) {
        return Err(fields.invalid("maxParallelImagePulls", "must be at least 1".into()));
    }
    if out.serialize_image_pulls == Some(true)
        && out.max_parallel_image_pulls.is_some_and(|n| n > 1)
    {
        // Same rule as the Go kubelet's validation.
        return Err(fields.invalid(
            "maxParallelImagePulls",
            "cannot be more than 1 when serializeImagePulls is true".into(),
        ));
    }
    // resolvConf: "" is meaningful (no host DNS), so keep it rather than default.
    out.resolv_conf = match fields.string("resolvConf")? {
        Some(s) if s.is_empty() => Some(PathBuf::new()),
        Some(_) => fields.path_field("resolvConf")?,
        None => None,
    };
    out.cluster_dns = fields.ip_list("clusterDNS")?;
    out.cluster_domain = fields.string("clusterDomain")?.unwrap_or_default();
    out.read_only_port = fields.port("readOnlyPort")?;
    out.address = fields.ip("address")?;
    out.healthz_port = fields.port("healthzPort")?;
    out.healthz_bind_address = fields.ip("healthzBindAddress")?;
    out.container_runtime_endpoint = fields.endpoint("containerRuntimeEndpoint")?;
    out.image_service_endpoint = fields.endpoint("imageServiceEndpoint")?;
    out.cgroup_driver = match fields.string("cgroupDriver")?.as_deref() {
        None | Some("") => None,
        Some("cgroupfs") => Some(CgroupDriver::Cgroupfs),
        Some("systemd") => Some(CgroupDriver::Systemd),
        Some(other) => {
            return Err(fields.invalid(
                "cgroupDriver",
                format!("{other:?} is not a cgroup driver (expected \"cgroupfs\" or \"systemd\")"),
            ));
        }
    };
    out.cgroup_root = fields.string("cgroupRoot")?;
    if let Some(root) = out
        .cgroup_root
        .as_deref()
        .filter(|r| !r.is_empty() && !r.starts_with('/'))
    {
        return Err(fields.invalid(
            "cgroupRoot",
            format!("{root:?} is not an absolute cgroup path"),
        ));
    }
    out.cgroups_per_qos = fields.bool("cgroupsPerQOS")?;
    out.kube_reserved = fields.string_map("kubeReserved")?;
    out.system_reserved = fields.string_map("systemReserved")?;
    out.kube_reserved_cgroup = fields.string("kubeReservedCgroup")?.unwrap_or_default();
    out.system_reserved_cgroup = fields.string("systemReservedCgroup")?.unwrap_or_default();
    out.enforce_node_allocatable = fields.string_list("enforceNodeAllocatable")?;
    out.pod_pids_limit = fields.int("podPidsLimit")?.map(|n| n.max(-1));
    Ok(out)
}

fn check_type_meta(fields: &Fields<'_>) -> Result<(), ConfigError> {
    let doc_err = |reason: String| ConfigError::Document {
        path: fields.path.to_path_buf(),
        reason,
    };
    match fields.map.get("apiVersion") {
        Some(Value::String(v)) if v == API_VERSION => {}
        Some(Value::String(v)) => {
            return Err(doc_err(format!(
                "apiVersion {v:?} is not supported; expected {API_VERSION:?}"
            )));
        }
        _ => {
            return Err(doc_err(format!(
                "apiVersion is missing; expected {API_VERSION:?}"
            )));
        }
    }
    match fields.map.get("kind") {
        Some(Value::String(k)) if k == KIND => Ok(()),
        Some(Value::String(k)) => Err(doc_err(format!(
            "kind {k:?} is not supported; expected {KIND:?}"
        ))),
        _ => Err(doc_err(format!("kind is missing; expected {KIND:?}"))),
    }
}

/// Typed access to the file's fields, with errors naming file and field.
struct Fields<'a> {
    path: &'a Path,
    dir: &'a Path,
    map: &'a Map<String, Value>,
}

impl Fields<'_> {
    fn invalid(&self, field: &str, reason: String) -> ConfigError {
        ConfigError::InvalidField {
            path: self.path.to_path_buf(),
            field: field.to_string(),
            reason,
        }
    }

    /// The value, treating an explicit null as absent (as Go's decoder does).
    fn get(&self, field: &str) -> Option<&Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    fn string(&self, field: &str) -> Result<Option<String>, ConfigError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => {
                Err(self.invalid(field, format!("expected a string, got {}", describe(other))))
            }
        }
    }

    fn bool(&self, field: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.invalid(
                field,
                format!("expected true or false, got {}", describe(other)),
            )),
        }
    }

    fn int(&self, field: &str) -> Result<Option<i64>, ConfigError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.invalid(field, format!("{n} is not an integer"))),
            Some(other) => Err(self.invalid(
                field,
                format!("expected an integer, got {}", describe(other)),
            )),
        }
    }

    /// A non-negative integer no larger than `max`.
    fn uint(&self, field: &str, max: u64) -> Result<Option<u64>, ConfigError> {
        match self.int(field)? {
            None => Ok(None),
            Some(n) if n < 0 => Err(self.invalid(field, format!("{n} is negative"))),
            Some(n) if n as u64 > max => {
                Err(self.invalid(field, format!("{n} is larger than {max}")))
            }
            Some(n) => Ok(Some(n as u64)),
        }
    }

    /// A port; 0 (disabled) is kept as `Some(0)`.
    fn port(&self, field: &str) -> Result<Option<u16>, ConfigError> {
        match self.int(field)? {
            None => Ok(None),
            Some(n) => u16::try_from(n).map(Some).map_err(|_| {
                self.invalid(
                    field,
                    format!("{n} is not a port number (0-65535; 0 disables)"),
                )
            }),
        }
    }

    /// A Go duration string; zero means "use the default", as in Go.
    fn duration(&self, field: &str) -> Result<Option<Duration>, ConfigError> {
        let Some(s) = self.string(field)? else {
            return Ok(None);
        };
        if s.trim_start().starts_with('-') {
            return Err(self.invalid(field, format!("{s:?} is negative")));
        }
        match parse_go_duration(&s) {
            Some(d) if d.is_zero() => Ok(None),
            Some(d) => Ok(Some(d)),
            None => Err(self.invalid(
                field,
                format!("{s:?} is not a duration (expected Go syntax such as \"20s\", \"1m30s\", \"1.5h\")"),
            )),
        }
    }

    /// A path; relative ones are resolved against the file's directory.
    fn path_field(&self, field: &str) -> Result<Option<PathBuf>, ConfigError> {
        let Some(s) = self.string(field)? else {
            return Ok(None);
        };
        if s.contains('\0') {
            return Err(self.invalid(field, "contains a NUL byte".into()));
        }
        let p = Path::new(&s);
        Ok(Some(if p.is_absolute() || s.is_empty() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }))
    }

    fn ip(&self, field: &str) -> Result<Option<IpAddr>, ConfigError> {
        match self.string(field)? {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|_| self.invalid(field, format!("{s:?} is not an IP address"))),
        }
    }

    fn ip_list(&self, field: &str) -> Result<Vec<IpAddr>, ConfigError> {
        let Some(list) = self.string_list(field)? else {
            return Ok(Vec::new());
        };
        list.iter()
            .enumerate()
            .map(|(i, s)| {
                s.parse().map_err(|_| ConfigError::InvalidField {
                    path: self.path.to_path_buf(),
                    field: format!("{field}[{i}]"),
                    reason: format!("{s:?} is not an IP address"),
                })
            })
            .collect()
    }

    fn string_list(&self, field: &str) -> Result<Option<Vec<String>>, ConfigError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(ConfigError::InvalidField {
                        path: self.path.to_path_buf(),
                        field: format!("{field}[{i}]"),
                        reason: format!("expected a string, got {}", describe(other)),
                    }),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => {
                Err(self.invalid(field, format!("expected a list, got {}", describe(other))))
            }
        }
    }

    fn string_map(&self, field: &str) -> Result<BTreeMap<String, String>, ConfigError> {
        match self.get(field) {
            None => Ok(BTreeMap::new()),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    // YAML users write `cpu: 1`; Go's resource quantities accept it.
                    Value::Number(n) => Ok((k.clone(), n.to_string())),
                    other => Err(ConfigError::InvalidField {
                        path: self.path.to_path_buf(),
                        field: format!("{field}.{k}"),
                        reason: format!("expected a quantity string, got {}", describe(other)),
                    }),
                })
                .collect(),
            Some(other) => Err(self.invalid(
                field,
                format!("expected a mapping, got {}", describe(other)),
            )),
        }
    }

    fn endpoint(&self, field: &str) -> Result<Option<String>, ConfigError> {
        match self.string(field)? {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => match cri_client::endpoint::Endpoint::parse(&s) {
                Ok(_) => Ok(Some(s)),
                Err(e) => Err(self.invalid(field, e.to_string())),
            },
        }
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

/// The known field closest to a misspelt one, if any is close.
fn suggest(field: &str) -> Option<&'static str> {
    let lower = field.to_ascii_lowercase();
    SUPPORTED
        .iter()
        .chain(IGNORED)
        .chain(REFUSED.iter().map(|r| &r.field))
        .map(|k| (*k, edit_distance(&lower, &k.to_ascii_lowercase())))
        .filter(|(_, d)| *d <= 2)
        .min_by_key(|(_, d)| *d)
        .map(|(k, _)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Parses a Go `time.Duration` string: "300ms", "1m30s", "1.5h", "0".
/// Units: ns, us (µs), ms, s, m, h. Returns `None` for anything else,
/// negative values, and values beyond Go's ~292-year range.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => a.split_at(a.bytes().take_while(u8::is_ascii_digit).count()),
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let per_unit: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().ok()?
        };
        total = total.checked_add(whole.checked_mul(per_unit)?)?;
        // Digits past nanosecond precision cannot matter; 18 keeps this in range.
        let (mut frac, mut scale) = (0u128, 1u128);
        for d in frac_part.bytes().take(18) {
            frac = frac * 10 + u128::from(d - b'0');
            scale *= 10;
        }
        total = total.checked_add(frac * per_unit / scale)?;
        rest = after;
    }
    if total > i64::MAX as u128 {
        return None;
    }
    Some(Duration::from_nanos(total as u64))
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        flags: KubeletFlags,
    }

    fn flags(args: &[&str]) -> KubeletFlags {
        let mut argv = vec!["berth"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().flags
    }

    /// Writes `body` (with the type header prepended) to a temp config file.
    fn config_file(body: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        let text = format!("apiVersion: {API_VERSION}\nkind: {KIND}\n{body}");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    fn load_body(body: &str) -> Result<KubeletConfig, ConfigError> {
        let (_dir, path) = config_file(body);
        let f = KubeletFlags {
            config: Some(path),
            hostname_override: Some("node-a".into()),
            ..Default::default()
        };
        KubeletConfig::load(&f)
    }

    fn err(body: &str) -> String {
        load_body(body).unwrap_err().to_string()
    }

    #[test]
    fn defaults_without_a_file_match_the_go_kubelet() {
        let c = KubeletConfig::load(&flags(&["--hostname-override", "Node-A "])).unwrap();
        assert_eq!(c.static_pod_path, None);
        assert_eq!(c.file_check_frequency, Duration::from_secs(20));
        assert_eq!(c.sync_frequency, Duration::from_secs(60));
        assert_eq!(c.pod_logs_dir, PathBuf::from("/var/log/pods"));
        assert_eq!(c.max_pods, 110);
        assert_eq!(c.runtime_request_timeout, Duration::from_secs(120));
        assert!(c.serialize_image_pulls);
        assert_eq!(c.resolv_conf, PathBuf::from("/etc/resolv.conf"));
        assert!(c.cluster_dns.is_empty());
        assert_eq!(c.cluster_domain, "");
        assert_eq!(c.read_only_port, 10255);
        assert_eq!(c.address, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(c.healthz_port, 10248);
        assert_eq!(c.root_dir, PathBuf::from("/var/lib/kubelet"));
        assert_eq!(c.node_name, "node-a");
        assert_eq!(c.container_runtime_endpoint, None);
        assert_eq!(c.verbosity, 0);
        assert!(!c.trace_cri);
        assert_eq!(c.cgroup_driver, CgroupDriver::Cgroupfs);
        assert!(c.cgroups_per_qos);
        assert_eq!(c.cgroup_root, "/");
        assert_eq!(c.enforce_node_allocatable, vec!["pods".to_string()]);
        assert_eq!(c.pod_pids_limit, -1);
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn node_name_defaults_to_the_lowercased_hostname() {
        let c = KubeletConfig::load(&KubeletFlags::default()).unwrap();
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(c.node_name, host.trim().to_ascii_lowercase());
    }

    #[test]
    fn file_fields_are_read() {
        let c = load_body(
            "staticPodPath: /etc/kubernetes/manifests
fileCheckFrequency: 5s
syncFrequency: 1m30s
podLogsDir: /srv/logs
maxPods: 30
runtimeRequestTimeout: 500ms
serializeImagePulls: false
maxParallelImagePulls: 3
resolvConf: /run/systemd/resolve/resolv.conf
clusterDNS: [10.96.0.10, 'fd00::a']
clusterDomain: cluster.local
readOnlyPort: 0
address: 0.0.0.0
healthzPort: 0
containerRuntimeEndpoint: unix:///run/x.sock
cgroupDriver: systemd
cgroupsPerQOS: false
kubeReserved: {cpu: 100m, memory: 1}
enforceNodeAllocatable: []
podPidsLimit: 1024
",
        )
        .unwrap();
        assert_eq!(
            c.static_pod_path,
            Some(PathBuf::from("/etc/kubernetes/manifests"))
        );
        assert_eq!(c.file_check_frequency, Duration::from_secs(5));
        assert_eq!(c.sync_frequency, Duration::from_secs(90));
        assert_eq!(c.pod_logs_dir, PathBuf::from("/srv/logs"));
        assert_eq!(c.max_pods, 30);
        assert_eq!(c.runtime_request_timeout, Duration::from_millis(500));
        assert!(!c.serialize_image_pulls);
        assert_eq!(c.max_parallel_image_pulls, Some(3));
        assert_eq!(
            c.resolv_conf,
            PathBuf::from("/run/systemd/resolve/resolv.conf")
        );
        assert_eq!(
            c.cluster_dns,
            vec![
                "10.96.0.10".parse::<IpAddr>().unwrap(),
                "fd00::a".parse().unwrap()
            ]
        );
        assert_eq!(c.cluster_domain, "cluster.local");
        assert_eq!(c.read_only_port, 0);
        assert_eq!(c.address, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(c.healthz_port, 0);
        assert_eq!(
            c.container_runtime_endpoint.as_deref(),
            Some("unix:///run/x.sock")
        );
        assert_eq!(c.cgroup_driver, CgroupDriver::Systemd);
        assert!(!c.cgroups_per_qos);
        assert_eq!(c.cgroup_root, "");
        assert_eq!(c.kube_reserved.get("cpu").map(String::as_str), Some("100m"));
        assert_eq!(c.kube_reserved.get("memory").map(String::as_str), Some("1"));
        assert!(c.enforce_node_allocatable.is_empty());
        assert_eq!(c.pod_pids_limit, 1024);
    }

    #[test]
    fn json_files_are_read_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            format!(r#"{{"apiVersion":"{API_VERSION}","kind":"{KIND}","maxPods":7,"syncFrequency":"2m"}}"#),
        )
        .unwrap();
        let f = KubeletFlags {
            config: Some(path),
            hostname_override: Some("n".into()),
            ..Default::default()
        };
        let c = KubeletConfig::load(&f).unwrap();
        assert_eq!(c.max_pods, 7);
        assert_eq!(c.sync_frequency, Duration::from_secs(120));
    }

    #[test]
    fn go_zero_values_mean_the_default() {
        let c = load_body("syncFrequency: 0s\nmaxPods: 0\nstaticPodPath: ''\n").unwrap();
        assert_eq!(c.sync_frequency, Duration::from_secs(60));
        assert_eq!(c.max_pods, 110);
        assert_eq!(c.static_pod_path, None);
    }

    #[test]
    fn empty_resolv_conf_disables_host_dns() {
        let c = load_body("resolvConf: ''\n").unwrap();
        assert_eq!(c.resolv_conf, PathBuf::new());
    }

    #[test]
    fn relative_paths_in_the_file_resolve_against_its_directory() {
        let (dir, path) = config_file("staticPodPath: manifests\nresolvConf: r.conf\n");
        let f = KubeletFlags {
            config: Some(path),
            hostname_override: Some("n".into()),
            ..Default::default()
        };
        let c = KubeletConfig::load(&f).unwrap();
        assert_eq!(c.static_pod_path, Some(dir.path().join("manifests")));
        assert_eq!(c.resolv_conf, dir.path().join("r.conf"));
    }

    #[test]
    fn flags_override_the_file() {
        let (_dir, path) = config_file(
            "staticPodPath: /from/file
readOnlyPort: 1111
address: 10.0.0.1
containerRuntimeEndpoint: unix:///from/file.sock
",
        );
        let path = path.to_str().unwrap();
        let c = KubeletConfig::load(&flags(&[
            "--config",
            path,
            "--pod-manifest-path=/from/flag",
            "--read-only-port",
            "2222",
            "--address",
            "127.0.0.2",
            "--container-runtime-endpoint",
            "unix:///from/flag.sock",
            "--image-service-endpoint",
            "/img.sock",
            "--root-dir",
            "/srv/kubelet",
            "--hostname-override",
            "N1",
            "-v",
            "4",
            "--trace-cri",
        ]))
        .unwrap();
        assert_eq!(c.static_pod_path, Some(PathBuf::from("/from/flag")));
        assert_eq!(c.read_only_port, 2222);
        assert_eq!(c.address, "127.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(
            c.container_runtime_endpoint.as_deref(),
            Some("unix:///from/flag.sock")
        );
        assert_eq!(c.image_service_endpoint.as_deref(), Some("/img.sock"));
        assert_eq!(c.root_dir, PathBuf::from("/srv/kubelet"));
        assert_eq!(c.node_name, "n1");
        assert_eq!(c.verbosity, 4);
        assert!(c.trace_cri);
        assert_eq!(c.config_file.as_deref(), Some(Path::new(path)));
    }

    #[test]
    fn klog_verbosity_spellings_parse() {
        assert_eq!(flags(&["--v=3"]).verbosity, 3);
        assert_eq!(flags(&["-v", "5"]).verbosity, 5);
        assert_eq!(flags(&["-v=2"]).verbosity, 2);
        assert_eq!(flags(&["-v6"]).verbosity, 6);
    }

    #[test]
    fn relative_flag_paths_become_absolute() {
        let c = KubeletConfig::load(&flags(&[
            "--pod-manifest-path",
            "pods",
            "--hostname-override",
            "n",
        ]))
        .unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(c.static_pod_path, Some(cwd.join("pods")));
    }

    #[test]
    fn unsupported_go_flags_are_explained() {
        let e = KubeletConfig::load(&flags(&["--kubeconfig", "/etc/kubernetes/kubelet.conf"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("flag --kubeconfig is not supported by berth: "),
            "{e}"
        );
        assert!(e.contains("apiserver"), "{e}");
        let e = KubeletConfig::load(&flags(&["--network-plugin=cni"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("flag --network-plugin is not supported by berth") && e.contains("1.24"),
            "{e}"
        );
        let e = KubeletConfig::load(&flags(&["--cgroup-driver", "systemd"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--cgroup-driver") && e.contains("cgroupDriver"),
            "{e}"
        );
        let e = KubeletConfig::load(&flags(&["--register-node"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("flag --register-node"), "{e}");
    }

    #[test]
    fn bad_flag_endpoint_is_an_error_naming_the_flag() {
        let e = KubeletConfig::load(&flags(&["--container-runtime-endpoint", "tcp://1.2.3.4:5"]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--container-runtime-endpoint: "), "{e}");
        assert!(e.contains("tcp"), "{e}");
    }

    #[test]
    fn wrong_api_version_or_kind_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        let load = |text: &str| {
            std::fs::write(&path, text).unwrap();
            let f = KubeletFlags {
                config: Some(path.clone()),
                hostname_override: Some("n".into()),
                ..Default::default()
            };
            KubeletConfig::load(&f).unwrap_err().to_string()
        };
        let e = load("apiVersion: kubelet.config.k8s.io/v1alpha1\nkind: KubeletConfiguration\n");
        assert!(
            e.contains("c.yaml: apiVersion \"kubelet.config.k8s.io/v1alpha1\" is not supported"),
            "{e}"
        );
        let e = load("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: Pod\n");
        assert!(
            e.contains("c.yaml: kind \"Pod\" is not supported; expected \"KubeletConfiguration\""),
            "{e}"
        );
        let e = load("kind: KubeletConfiguration\n");
        assert!(e.contains("apiVersion is missing"), "{e}");
        let e = load("");
        assert!(e.contains("c.yaml: the file is empty"), "{e}");
        let e = load("- a\n- b\n");
        assert!(e.contains("expected a KubeletConfiguration mapping"), "{e}");
        let e = load("maxPods: [\n");
        assert!(
            e.contains("c.yaml: not a valid YAML or JSON document"),
            "{e}"
        );
    }

    #[test]
    fn unknown_field_names_field_file_and_suggestion() {
        let e = err("staticPodPth: /x\n");
        assert!(
            e.contains("config.yaml: unknown field \"staticPodPth\""),
            "{e}"
        );
        assert!(e.contains("did you mean \"staticPodPath\"?"), "{e}");
        let e = err("frobnicate: 1\n");
        assert!(e.ends_with("unknown field \"frobnicate\": not a KubeletConfiguration (kubelet.config.k8s.io/v1beta1) field"), "{e}");
    }

    #[test]
    fn ignored_fields_become_one_warning() {
        let c = load_body(
            "authentication:\n  anonymous: {enabled: false}\nevictionHard: {memory.available: 100Mi}\nrotateCertificates: true\n",
        )
        .unwrap();
        assert_eq!(c.warnings.len(), 1);
        let w = &c.warnings[0];
        assert!(
            w.contains("config.yaml: ignoring fields berth does not use: "),
            "{w}"
        );
        for f in ["authentication", "evictionHard", "rotateCertificates"] {
            assert!(w.contains(f), "{w}");
        }
    }

    #[test]
    fn behaviour_changing_fields_are_refused_unless_default() {
        let e = err("runOnce: true\n");
        assert!(
            e.contains("config.yaml: runOnce: not supported by berth"),
            "{e}"
        );
        let e = err("cpuManagerPolicy: static\n");
        assert!(
            e.contains("cpuManagerPolicy: not supported by berth"),
            "{e}"
        );
        let e = err("staticPodURL: http://x/pods\n");
        assert!(
            e.contains("staticPodURL") && e.contains("staticPodPath"),
            "{e}"
        );
        // Their defaults are fine, as kubeadm writes them.
        load_body(
            "runOnce: false\ncpuManagerPolicy: none\nseccompDefault: false\ncpuCFSQuota: true\n",
        )
        .unwrap();
    }

    #[test]
    fn invalid_values_name_file_and_field() {
        let cases: &[(&str, &str)] = &[
            (
                "syncFrequency: soon\n",
                "config.yaml: syncFrequency: \"soon\" is not a duration",
            ),
            (
                "fileCheckFrequency: -5s\n",
                "fileCheckFrequency: \"-5s\" is negative",
            ),
            (
                "fileCheckFrequency: 20\n",
                "fileCheckFrequency: expected a string, got 20",
            ),
            ("maxPods: -1\n", "maxPods: -1 is negative"),
            (
                "maxPods: many\n",
                "maxPods: expected an integer, got \"many\"",
            ),
            (
                "readOnlyPort: 70000\n",
                "readOnlyPort: 70000 is not a port number",
            ),
            (
                "address: localhost\n",
                "address: \"localhost\" is not an IP address",
            ),
            (
                "clusterDNS: [10.0.0.10, dns]\n",
                "clusterDNS[1]: \"dns\" is not an IP address",
            ),
            ("clusterDNS: 10.0.0.10\n", "clusterDNS: expected a list"),
            (
                "serializeImagePulls: 'no'\n",
                "serializeImagePulls: expected true or false",
            ),
            (
                "cgroupDriver: systemdd\n",
                "cgroupDriver: \"systemdd\" is not a cgroup driver",
            ),
            (
                "cgroupRoot: kubepods\n",
                "cgroupRoot: \"kubepods\" is not an absolute cgroup path",
            ),
            ("podLogsDir: /\n", "podLogsDir: must not be \"/\""),
            (
                "containerRuntimeEndpoint: tcp://x:1\n",
                "containerRuntimeEndpoint: unsupported runtime endpoint",
            ),
            (
                "serializeImagePulls: true\nmaxParallelImagePulls: 4\n",
                "maxParallelImagePulls: cannot be more than 1",
            ),
            (
                "kubeReserved: {cpu: [1]}\n",
                "kubeReserved.cpu: expected a quantity string",
            ),
        ];
        for (body, want) in cases {
            let e = err(body);
            assert!(e.contains(want), "for {body:?}: got {e:?}, want {want:?}");
        }
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let e = err("maxPods: 1\nmaxPods: 2\n");
        assert!(e.contains("not a valid YAML or JSON document"), "{e}");
    }

    #[test]
    fn oversized_files_are_refused_before_parsing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.yaml");
        let mut text = format!("apiVersion: {API_VERSION}\nkind: {KIND}\n");
        text.push_str(&"# padding\n".repeat(120_000));
        std::fs::write(&path, text).unwrap();
        let f = KubeletFlags {
            config: Some(path),
            ..Default::default()
        };
        let e = KubeletConfig::load(&f).unwrap_err().to_string();
        assert!(
            e.contains("big.yaml: the config file is larger than 1048576 bytes"),
            "{e}"
        );
    }

    #[test]
    fn alias_bombs_and_deep_nesting_are_refused() {
        let mut bomb = String::from("featureGates:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut prev = 'a';
        for c in 'b'..='k' {
            bomb.push_str(&format!(
                "  {c}: &{c} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
            prev = c;
        }
        let e = err(&bomb);
        assert!(e.contains("not a valid YAML or JSON document"), "{e}");
        let deep = format!("logging: {}{}\n", "[".repeat(200), "]".repeat(200));
        let e = err(&deep);
        assert!(e.contains("not a valid YAML or JSON document"), "{e}");
    }

    #[test]
    fn missing_config_file_names_it() {
        let f = KubeletFlags {
            config: Some("/nonexistent/berth.yaml".into()),
            ..Default::default()
        };
        let e = KubeletConfig::load(&f).unwrap_err().to_string();
        assert!(
            e.starts_with("reading config file /nonexistent/berth.yaml: "),
            "{e}"
        );
    }

    #[test]
    fn housekeeping_interval_flag() {
        let c = KubeletConfig::load(&flags(&["--hostname-override", "n"])).unwrap();
        assert_eq!(c.housekeeping_interval, Duration::from_secs(10));
        let c = KubeletConfig::load(&flags(&[
            "--hostname-override",
            "n",
            "--housekeeping-interval",
            "1s",
        ]))
        .unwrap();
        assert_eq!(c.housekeeping_interval, Duration::from_secs(1));
        let c = KubeletConfig::load(&flags(&[
            "--hostname-override=n",
            "--housekeeping-interval=1m30s",
        ]))
        .unwrap();
        assert_eq!(c.housekeeping_interval, Duration::from_secs(90));
        for (bad, want) in [
            ("10", "--housekeeping-interval: \"10\" is not a duration"),
            ("0s", "--housekeeping-interval: must be greater than 0"),
            ("-1s", "is not a duration"),
        ] {
            let arg = format!("--housekeeping-interval={bad}");
            let e = KubeletConfig::load(&flags(&["--hostname-override", "n", &arg]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn go_durations_parse() {
        let d = |s| parse_go_duration(s);
        assert_eq!(d("0"), Some(Duration::ZERO));
        assert_eq!(d("20s"), Some(Duration::from_secs(20)));
        assert_eq!(d("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(d("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(d("300ms"), Some(Duration::from_millis(300)));
        assert_eq!(d("2h45m10.5s"), Some(Duration::from_millis(9_910_500)));
        assert_eq!(d("10us"), Some(Duration::from_micros(10)));
        assert_eq!(d("10\u{b5}s"), Some(Duration::from_micros(10)));
        assert_eq!(d("7ns"), Some(Duration::from_nanos(7)));
        assert_eq!(d(".5s"), Some(Duration::from_millis(500)));
        assert_eq!(d("+5s"), Some(Duration::from_secs(5)));
        for bad in [
            "", "5", "s", "1d", "1m 30s", "-1s", ".s", "1..5s", "soon", "3000000h",
        ] {
            assert_eq!(d(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn edit_distance_is_levenshtein() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
        assert_eq!(suggest("maxpods"), Some("maxPods"));
        assert_eq!(suggest("zzzzzzzz"), None);
    }
}
