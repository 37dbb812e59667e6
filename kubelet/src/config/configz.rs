//! `/configz`: the effective configuration as a v1beta1
//! `KubeletConfiguration` under the key `kubeletconfig`, as the Go kubelet
//! registers it with `configz`.

use serde_json::{Value, json};

use super::{CgroupDriver, KubeletConfig, format_go_duration as d};

impl KubeletConfig {
    /// The body of `/configz`.
    pub fn configz(&self) -> Value {
        let s = &self.server;
        let path = |p: &Option<std::path::PathBuf>| {
            p.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        let mut c = json!({
            "enableServer": s.enabled,
            "staticPodPath": path(&self.static_pod_path),
            "podLogsDir": self.pod_logs_dir.display().to_string(),
            "syncFrequency": d(self.sync_frequency),
            "fileCheckFrequency": d(self.file_check_frequency),
            "address": s.address.to_string(),
            "port": s.port,
            "readOnlyPort": self.read_only_port,
            "tlsCertFile": path(&s.tls_cert_file),
            "tlsPrivateKeyFile": path(&s.tls_private_key_file),
            "tlsCipherSuites": s.tls_cipher_suites,
            "tlsMinVersion": match s.tls_min_version {
                crate::server::tls::TlsVersion::Tls12 => "VersionTLS12",
                crate::server::tls::TlsVersion::Tls13 => "VersionTLS13",
            },
            "serverTLSBootstrap": s.server_tls_bootstrap,
            "authentication": {
                "x509": {"clientCAFile": path(&s.authentication.client_ca_file)},
                "webhook": {
                    "enabled": s.authentication.webhook,
                    "cacheTTL": d(s.authentication.webhook_cache_ttl),
                },
                "anonymous": {"enabled": s.authentication.anonymous},
            },
            "authorization": {
                "mode": s.authorization.mode.as_str(),
                "webhook": {
                    "cacheAuthorizedTTL": d(s.authorization.cache_authorized_ttl),
                    "cacheUnauthorizedTTL": d(s.authorization.cache_unauthorized_ttl),
                },
            },
            "clusterDomain": self.cluster_domain,
            "clusterDNS": self.cluster_dns.iter().map(|ip| ip.to_string()).collect::<Vec<_>>(),
            "healthzPort": self.healthz_port,
            "healthzBindAddress": self.healthz_bind_address.to_string(),
            "cgroupRoot": self.cgroup_root,
            "cgroupsPerQOS": self.cgroups_per_qos,
            "cgroupDriver": match self.cgroup_driver {
                CgroupDriver::Cgroupfs => "cgroupfs",
                CgroupDriver::Systemd => "systemd",
            },
            "runtimeRequestTimeout": d(self.runtime_request_timeout),
            "maxPods": self.max_pods,
            "podPidsLimit": self.pod_pids_limit,
            "resolvConf": self.resolv_conf.display().to_string(),
            "serializeImagePulls": self.serialize_image_pulls,
            "kubeReserved": self.kube_reserved,
            "systemReserved": self.system_reserved,
            "kubeReservedCgroup": self.kube_reserved_cgroup,
            "systemReservedCgroup": self.system_reserved_cgroup,
            "enforceNodeAllocatable": self.enforce_node_allocatable,
            "containerRuntimeEndpoint": self.container_runtime_endpoint.clone().unwrap_or_default(),
            "imageServiceEndpoint": self.image_service_endpoint.clone().unwrap_or_default(),
            "enableDebuggingHandlers": s.enable_debugging_handlers,
        });
        if let (Some(n), Some(obj)) = (self.max_parallel_image_pulls, c.as_object_mut()) {
            obj.insert("maxParallelImagePulls".into(), json!(n));
        }
        if let (Some(cl), Some(obj)) = (&self.cluster, c.as_object_mut()) {
            let extra = json!({
                "rotateCertificates": cl.rotate_certificates,
                "registerNode": cl.register_node,
                "registerWithTaints": cl.register_with_taints,
                "nodeStatusUpdateFrequency": d(cl.node_status_update_frequency),
                "nodeStatusReportFrequency": d(cl.node_status_report_frequency),
                "nodeLeaseDurationSeconds": cl.node_lease_duration_seconds,
                "nodeStatusMaxImages": cl.node_status_max_images,
            });
            if let Value::Object(m) = extra {
                obj.extend(m);
            }
        }
        json!({ "kubeletconfig": c })
    }
}
