//! The command-line flags: the Go kubelet's that Berth honours, and those it refuses.

use std::net::IpAddr;
use std::path::PathBuf;

use super::DEFAULT_ROOT_DIR;

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

    /// Port of the healthz server (plain HTTP, `/healthz` only; default
    /// 10248); 0 disables it.
    #[arg(long, value_name = "PORT")]
    pub healthz_port: Option<u16>,

    /// IP address the healthz server listens on (default 127.0.0.1).
    #[arg(long, value_name = "IP")]
    pub healthz_bind_address: Option<std::net::IpAddr>,

    /// IP address the read-only server and the kubelet API listen on
    /// (default: 127.0.0.1 for the read-only server, 0.0.0.0 for the API).
    #[arg(long, value_name = "IP")]
    pub address: Option<IpAddr>,

    /// Port of the kubelet API (HTTPS, authenticated; default 10250); 0
    /// disables it.
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,

    /// The kubelet API's serving certificate (with --tls-private-key-file).
    /// Without them: the serverTLSBootstrap certificate, else a self-signed
    /// one in --cert-dir.
    #[arg(long, value_name = "PATH")]
    pub tls_cert_file: Option<PathBuf>,

    /// The key of --tls-cert-file.
    #[arg(long, value_name = "PATH")]
    pub tls_private_key_file: Option<PathBuf>,

    /// The lowest TLS version the kubelet API accepts: VersionTLS12
    /// (default) or VersionTLS13.
    #[arg(long, value_name = "VERSION")]
    pub tls_min_version: Option<String>,

    /// TLS 1.2 cipher suites the kubelet API offers, Go's names separated by
    /// commas (default: all rustls has).
    #[arg(long, value_name = "SUITES", value_delimiter = ',')]
    pub tls_cipher_suites: Option<Vec<String>>,

    /// Authenticate kubelet API clients whose certificate this CA bundle
    /// signed (user = CN, groups = O).
    #[arg(long, value_name = "PATH")]
    pub client_ca_file: Option<PathBuf>,

    /// Let kubelet API requests no method authenticated through as
    /// system:anonymous (default false).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub anonymous_auth: Option<bool>,

    /// Check bearer tokens with a TokenReview (default true with
    /// --kubeconfig).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub authentication_token_webhook: Option<bool>,

    /// How long TokenReview answers are cached (default 2m).
    #[arg(long, value_name = "DURATION")]
    pub authentication_token_webhook_cache_ttl: Option<String>,

    /// AlwaysAllow or Webhook (a SubjectAccessReview per request; default
    /// with --kubeconfig).
    #[arg(long, value_name = "MODE")]
    pub authorization_mode: Option<String>,

    /// How long allowed SubjectAccessReview answers are cached (default 5m).
    #[arg(long, value_name = "DURATION")]
    pub authorization_webhook_cache_authorized_ttl: Option<String>,

    /// How long denied SubjectAccessReview answers are cached (default 30s).
    #[arg(long, value_name = "DURATION")]
    pub authorization_webhook_cache_unauthorized_ttl: Option<String>,

    /// Serve logs, exec, attach, port-forward and run on the kubelet API
    /// (default true).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub enable_debugging_handlers: Option<bool>,

    /// How often resource usage stats are collected (cadvisor's flag; a
    /// Go duration, default 10s). There is no config file field for it.
    #[arg(long, value_name = "DURATION")]
    pub housekeeping_interval: Option<String>,

    /// Join a cluster: the kubeconfig of the apiserver berth reports to.
    /// With --bootstrap-kubeconfig it is written after the TLS bootstrap.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// A kubeconfig with a bootstrap token, used to request berth's client
    /// certificate when --kubeconfig does not exist yet (TLS bootstrap).
    #[arg(long, value_name = "PATH")]
    pub bootstrap_kubeconfig: Option<PathBuf>,

    /// Where the client and serving certificates are kept, and the
    /// self-signed kubelet.crt and kubelet.key (default <root-dir>/pki).
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,

    /// Labels to add when registering the node, key=value pairs separated
    /// by commas.
    #[arg(long, value_name = "LABELS")]
    pub node_labels: Option<String>,

    /// Register the node with the apiserver (default true with --kubeconfig).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub register_node: Option<bool>,

    /// The node's InternalIP (default: the address of the interface with
    /// the default route).
    #[arg(long, value_name = "IP")]
    pub node_ip: Option<IpAddr>,

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
            healthz_port: None,
            healthz_bind_address: None,
            address: None,
            port: None,
            tls_cert_file: None,
            tls_private_key_file: None,
            tls_min_version: None,
            tls_cipher_suites: None,
            client_ca_file: None,
            anonymous_auth: None,
            authentication_token_webhook: None,
            authentication_token_webhook_cache_ttl: None,
            authorization_mode: None,
            authorization_webhook_cache_authorized_ttl: None,
            authorization_webhook_cache_unauthorized_ttl: None,
            enable_debugging_handlers: None,
            housekeeping_interval: None,
            kubeconfig: None,
            bootstrap_kubeconfig: None,
            cert_dir: None,
            node_labels: None,
            register_node: None,
            node_ip: None,
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
    pub network_plugin: Option<String>,
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "")]
    pub cni_bin_dir: Option<String>,
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "")]
    pub cni_conf_dir: Option<String>,
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "")]
    pub container_runtime: Option<String>,
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "")]
    pub cgroup_driver: Option<String>,
}

impl UnsupportedFlags {
    /// The first unsupported flag given, with the reason.
    pub(super) fn first_given(&self) -> Option<(&'static str, &'static str)> {
        const CNI: &str = "removed from the Go kubelet in 1.24; pod networking is the runtime's CNI configuration";
        let table: [(&Option<String>, &'static str, &'static str); 5] = [
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
