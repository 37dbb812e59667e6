//! The `KubeletConfiguration` file: reading it within limits, and checking every field.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Taint;
use serde_json::{Map, Value};

use super::duration::parse_go_duration;
use super::{API_VERSION, CgroupDriver, ConfigError, KIND, MAX_CONFIG_FILE_BYTES};

/// What the file said; `None` where it said nothing (or Go's zero value,
/// which the Go kubelet also replaces with the default).
#[derive(Debug, Default)]
pub(super) struct FileConfig {
    pub(super) static_pod_path: Option<PathBuf>,
    pub(super) file_check_frequency: Option<Duration>,
    pub(super) sync_frequency: Option<Duration>,
    pub(super) pod_logs_dir: Option<PathBuf>,
    pub(super) max_pods: Option<u32>,
    pub(super) runtime_request_timeout: Option<Duration>,
    pub(super) serialize_image_pulls: Option<bool>,
    pub(super) max_parallel_image_pulls: Option<u32>,
    pub(super) resolv_conf: Option<PathBuf>,
    pub(super) cluster_dns: Vec<IpAddr>,
    pub(super) cluster_domain: String,
    pub(super) read_only_port: Option<u16>,
    pub(super) address: Option<IpAddr>,
    pub(super) healthz_port: Option<u16>,
    pub(super) healthz_bind_address: Option<IpAddr>,
    pub(super) container_runtime_endpoint: Option<String>,
    pub(super) image_service_endpoint: Option<String>,
    pub(super) cgroup_driver: Option<CgroupDriver>,
    pub(super) cgroup_root: Option<String>,
    pub(super) cgroups_per_qos: Option<bool>,
    pub(super) kube_reserved: BTreeMap<String, String>,
    pub(super) system_reserved: BTreeMap<String, String>,
    pub(super) kube_reserved_cgroup: String,
    pub(super) system_reserved_cgroup: String,
    pub(super) enforce_node_allocatable: Option<Vec<String>>,
    pub(super) pod_pids_limit: Option<i64>,
    pub(super) cluster: ClusterFields,
    pub(super) server: ServerFields,
    pub(super) warnings: Vec<String>,
}

/// The kubelet API's fields: serving, `authentication`, `authorization`.
#[derive(Debug, Default)]
pub(super) struct ServerFields {
    pub(super) enable_server: Option<bool>,
    pub(super) tls_cert_file: Option<PathBuf>,
    pub(super) tls_private_key_file: Option<PathBuf>,
    pub(super) tls_min_version: Option<String>,
    pub(super) tls_cipher_suites: Option<Vec<String>>,
    pub(super) client_ca_file: Option<PathBuf>,
    pub(super) anonymous: Option<bool>,
    pub(super) webhook: Option<bool>,
    pub(super) webhook_cache_ttl: Option<Duration>,
    /// As written; checked with the flags.
    pub(super) authorization_mode: Option<String>,
    pub(super) cache_authorized_ttl: Option<Duration>,
    pub(super) cache_unauthorized_ttl: Option<Duration>,
    pub(super) enable_debugging_handlers: Option<bool>,
}

/// The fields about joining a cluster (used only with --kubeconfig).
#[derive(Debug, Default)]
pub(super) struct ClusterFields {
    pub(super) port: Option<u16>,
    pub(super) rotate_certificates: Option<bool>,
    pub(super) server_tls_bootstrap: Option<bool>,
    pub(super) register_node: Option<bool>,
    pub(super) register_with_taints: Vec<Taint>,
    pub(super) node_status_update_frequency: Option<Duration>,
    pub(super) node_status_report_frequency: Option<Duration>,
    pub(super) node_lease_duration_seconds: Option<u32>,
    pub(super) node_status_max_images: Option<i32>,
}

/// Fields Berth reads.
pub(super) const SUPPORTED: &[&str] = &[
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
    "port",
    "rotateCertificates",
    "serverTLSBootstrap",
    "registerNode",
    "registerWithTaints",
    "nodeStatusUpdateFrequency",
    "nodeStatusReportFrequency",
    "nodeLeaseDurationSeconds",
    "nodeStatusMaxImages",
    "enableServer",
    "tlsCertFile",
    "tlsPrivateKeyFile",
    "tlsCipherSuites",
    "tlsMinVersion",
    "authentication",
    "authorization",
    "enableDebuggingHandlers",
];

/// Fields Berth accepts and ignores: they concern TLS curves, eviction,
/// image GC or resource managers, which Berth does not have yet, and
/// ignoring them does not change which pods run or how.
pub(super) const IGNORED: &[&str] = &[
    "httpCheckFrequency",
    "staticPodURLHeader",
    "tlsCurvePreferences",
    "registryPullQPS",
    "registryBurst",
    "imagePullCredentialsVerificationPolicy",
    "preloadedImagesVerificationAllowlist",
    "eventRecordQPS",
    "eventBurst",
    "enableContentionProfiling",
    "oomScoreAdj",
    "streamingConnectionIdleTimeout",
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
    "tracing",
    "localStorageCapacityIsolation",
    "failCgroupV1",
    "userNamespaces",
];

/// A field Berth cannot honour: accepted only while it keeps its harmless
/// default value.
pub(super) struct Refused {
    field: &'static str,
    harmless: fn(&Value) -> bool,
    why: &'static str,
}

pub(super) const REFUSED: &[Refused] = &[
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
pub(super) fn read_limited(path: &Path) -> Result<String, ConfigError> {
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
pub(super) fn parse_document(path: &Path, text: &str) -> Result<Value, ConfigError> {
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
pub(super) fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
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
        prefix: String::new(),
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
    out.cluster = cluster_fields(&fields)?;
    out.server = server_fields(&fields)?;
    Ok(out)
}

fn server_fields(fields: &Fields<'_>) -> Result<ServerFields, ConfigError> {
    let mut out = ServerFields {
        enable_server: fields.bool("enableServer")?,
        tls_cert_file: fields
            .path_field("tlsCertFile")?
            .filter(|p| !p.as_os_str().is_empty()),
        tls_private_key_file: fields
            .path_field("tlsPrivateKeyFile")?
            .filter(|p| !p.as_os_str().is_empty()),
        tls_min_version: fields.string("tlsMinVersion")?.filter(|s| !s.is_empty()),
        tls_cipher_suites: fields.string_list("tlsCipherSuites")?,
        enable_debugging_handlers: fields.bool("enableDebuggingHandlers")?,
        ..Default::default()
    };
    if let Some(authn) = fields.nested("authentication", &["x509", "webhook", "anonymous"])? {
        if let Some(x509) = authn.nested("x509", &["clientCAFile"])? {
            out.client_ca_file = x509
                .path_field("clientCAFile")?
                .filter(|p| !p.as_os_str().is_empty());
        }
        if let Some(webhook) = authn.nested("webhook", &["enabled", "cacheTTL"])? {
            out.webhook = webhook.bool("enabled")?;
            out.webhook_cache_ttl = webhook.duration("cacheTTL")?;
        }
        if let Some(anonymous) = authn.nested("anonymous", &["enabled"])? {
            out.anonymous = anonymous.bool("enabled")?;
        }
    }
    if let Some(authz) = fields.nested("authorization", &["mode", "webhook"])? {
        out.authorization_mode = authz.string("mode")?.filter(|s| !s.is_empty());
        if let Some(webhook) =
            authz.nested("webhook", &["cacheAuthorizedTTL", "cacheUnauthorizedTTL"])?
        {
            out.cache_authorized_ttl = webhook.duration("cacheAuthorizedTTL")?;
            out.cache_unauthorized_ttl = webhook.duration("cacheUnauthorizedTTL")?;
        }
    }
    Ok(out)
}

fn cluster_fields(fields: &Fields<'_>) -> Result<ClusterFields, ConfigError> {
    let positive = |field: &str, d: Option<Duration>| match d {
        Some(d) if d < Duration::from_secs(1) => {
            Err(fields.invalid(field, format!("{d:?} is shorter than 1s")))
        }
        d => Ok(d),
    };
    Ok(ClusterFields {
        port: fields.port("port")?.filter(|p| *p > 0),
        rotate_certificates: fields.bool("rotateCertificates")?,
        server_tls_bootstrap: fields.bool("serverTLSBootstrap")?,
        register_node: fields.bool("registerNode")?,
        register_with_taints: fields.taints("registerWithTaints")?,
        node_status_update_frequency: positive(
            "nodeStatusUpdateFrequency",
            fields.duration("nodeStatusUpdateFrequency")?,
        )?,
        node_status_report_frequency: positive(
            "nodeStatusReportFrequency",
            fields.duration("nodeStatusReportFrequency")?,
        )?,
        node_lease_duration_seconds: fields
            .uint("nodeLeaseDurationSeconds", i32::MAX as u64)?
            .map(|n| n as u32)
            .filter(|n| *n > 0),
        node_status_max_images: match fields.int("nodeStatusMaxImages")? {
            Some(n) if n < -1 || n > i32::MAX as i64 => {
                return Err(fields.invalid(
                    "nodeStatusMaxImages",
                    format!("{n} is out of range (-1 for no limit, or a count)"),
                ));
            }
            n => n.map(|n| n as i32),
        },
    })
}

pub(super) fn check_type_meta(fields: &Fields<'_>) -> Result<(), ConfigError> {
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
pub(super) struct Fields<'a> {
    path: &'a Path,
    dir: &'a Path,
    map: &'a Map<String, Value>,
    /// `parent.` for the fields of a nested mapping, as messages name them.
    prefix: String,
}

impl<'a> Fields<'a> {
    fn invalid(&self, field: &str, reason: String) -> ConfigError {
        ConfigError::InvalidField {
            path: self.path.to_path_buf(),
            field: format!("{}{field}", self.prefix),
            reason,
        }
    }

    /// The mapping under `field`, whose keys must be among `known`.
    fn nested(&self, field: &str, known: &[&str]) -> Result<Option<Fields<'a>>, ConfigError> {
        let map: &'a Map<String, Value> = self.map;
        match map.get(field).filter(|v| !v.is_null()) {
            None => Ok(None),
            Some(Value::Object(m)) => {
                let prefix = format!("{}{field}.", self.prefix);
                if let Some(k) = m.keys().find(|k| !known.contains(&k.as_str())) {
                    return Err(ConfigError::InvalidField {
                        path: self.path.to_path_buf(),
                        field: format!("{prefix}{k}"),
                        reason: format!("unknown field; expected one of {}", known.join(", ")),
                    });
                }
                Ok(Some(Fields {
                    path: self.path,
                    dir: self.dir,
                    map: m,
                    prefix,
                }))
            }
            Some(other) => Err(self.invalid(
                field,
                format!("expected a mapping, got {}", describe(other)),
            )),
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

    /// Taints as the Node API has them; the effect must be one of the three
    /// the scheduler knows.
    fn taints(&self, field: &str) -> Result<Vec<Taint>, ConfigError> {
        let Some(v) = self.get(field) else {
            return Ok(Vec::new());
        };
        let taints: Vec<Taint> = serde_json::from_value(v.clone()).map_err(|e| {
            self.invalid(
                field,
                format!("expected a list of {{key, value, effect}}: {e}"),
            )
        })?;
        for (i, t) in taints.iter().enumerate() {
            let at = |reason: String| ConfigError::InvalidField {
                path: self.path.to_path_buf(),
                field: format!("{field}[{i}]"),
                reason,
            };
            if t.key.is_empty() {
                return Err(at("the key is empty".into()));
            }
            if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&t.effect.as_str()) {
                return Err(at(format!(
                    "effect {:?} is not NoSchedule, PreferNoSchedule or NoExecute",
                    t.effect
                )));
            }
        }
        Ok(taints)
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

pub(super) fn describe(v: &Value) -> String {
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
pub(super) fn suggest(field: &str) -> Option<&'static str> {
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

pub(super) fn edit_distance(a: &str, b: &str) -> usize {
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
