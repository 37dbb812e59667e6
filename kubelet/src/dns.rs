//! A pod's DNS configuration from its dnsPolicy, the host's resolv.conf and
//! the kubelet's clusterDNS / clusterDomain (the Go kubelet's
//! `pkg/kubelet/network/dns`).

use std::net::IpAddr;
use std::path::PathBuf;

use cri_client::proto as pb;
use k8s_openapi::api::core::v1::Pod;

/// Limits the Go kubelet enforces (glibc reads at most 3 nameservers).
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;
const MAX_RESOLV_CONF_BYTES: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("reading resolvConf {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("resolvConf {path} is {size} bytes, more than a resolv.conf can sensibly be")]
    TooLarge { path: PathBuf, size: u64 },
    #[error(
        "spec.dnsPolicy {0:?} is not one of ClusterFirst, ClusterFirstWithHostNet, Default, None"
    )]
    UnknownPolicy(String),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// Parses resolv.conf text; unknown lines are ignored, as libc does.
pub fn parse_resolv_conf(text: &str) -> ResolvConf {
    let mut rc = ResolvConf::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or_default();
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => rc.nameservers.extend(words.next().map(str::to_string)),
            // The last search/domain line wins, as in libc.
            Some("search") | Some("domain") => rc.searches = words.map(str::to_string).collect(),
            Some("options") => rc.options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    rc
}

#[derive(Clone, Debug)]
pub struct DnsConfigurer {
    /// Empty: the host has no resolv.conf to inherit.
    pub resolv_conf: Option<PathBuf>,
    pub cluster_dns: Vec<IpAddr>,
    pub cluster_domain: String,
}

impl DnsConfigurer {
    fn host(&self) -> Result<ResolvConf, DnsError> {
        let Some(path) = &self.resolv_conf else {
            return Ok(ResolvConf::default());
        };
        let meta = std::fs::metadata(path).map_err(|source| DnsError::Read {
            path: path.clone(),
            source,
        })?;
        if meta.len() > MAX_RESOLV_CONF_BYTES {
            return Err(DnsError::TooLarge {
                path: path.clone(),
                size: meta.len(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| DnsError::Read {
            path: path.clone(),
            source,
        })?;
        Ok(parse_resolv_conf(&text))
    }

    /// The DNS config for the pod's sandbox.
    pub fn pod_dns_config(&self, pod: &Pod) -> Result<pb::DnsConfig, DnsError> {
        let spec = pod.spec.clone().unwrap_or_default();
        let host_network = spec.host_network.unwrap_or(false);
        let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
        let use_cluster = match policy {
            "ClusterFirst" => !host_network && !self.cluster_dns.is_empty(),
            "ClusterFirstWithHostNet" => !self.cluster_dns.is_empty(),
            "Default" | "None" => false,
            other => return Err(DnsError::UnknownPolicy(other.to_string())),
        };
        let mut rc = if policy == "None" {
            ResolvConf::default()
        } else if use_cluster {
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            let d = self.cluster_domain.trim_matches('.');
            let mut searches: Vec<String> = if d.is_empty() {
                Vec::new()
            } else {
                vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.to_string()]
            };
            searches.extend(self.host()?.searches);
            ResolvConf {
                nameservers: self.cluster_dns.iter().map(IpAddr::to_string).collect(),
                searches,
                options: vec!["ndots:5".into()],
            }
        } else {
            // "Default", and ClusterFirst without clusterDNS (the Go kubelet
            // falls back the same way, with a warning).
            self.host()?
        };
        if let Some(cfg) = &spec.dns_config {
            rc.nameservers
                .extend(cfg.nameservers.iter().flatten().cloned());
            rc.searches.extend(cfg.searches.iter().flatten().cloned());
            for opt in cfg.options.iter().flatten() {
                let name = opt.name.clone().unwrap_or_default();
                let rendered = match &opt.value {
                    Some(v) => format!("{name}:{v}"),
                    None => name.clone(),
                };
                // A pod option replaces the same-named one.
                rc.options
                    .retain(|o| o.split(':').next() != Some(name.as_str()));
                rc.options.push(rendered);
            }
        }
        dedup(&mut rc.nameservers);
        dedup(&mut rc.searches);
        rc.nameservers.truncate(MAX_NAMESERVERS);
        rc.searches.truncate(MAX_SEARCHES);
        Ok(pb::DnsConfig {
            servers: rc.nameservers,
            searches: rc.searches,
            options: rc.options,
        })
    }
}

fn dedup(v: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    v.retain(|s| seen.insert(s.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        let mut s = spec;
        s["containers"] = serde_json::json!([{"name": "c", "image": "i"}]);
        serde_json::from_value(serde_json::json!({"metadata": {"namespace": "prod"}, "spec": s}))
            .unwrap()
    }

    fn configurer(cluster: &[&str]) -> (tempfile::TempDir, DnsConfigurer) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("resolv.conf");
        std::fs::write(
            &p,
            "# comment\nnameserver 192.168.1.1\nnameserver 8.8.8.8 # trailing\nsearch lan example.com\noptions edns0\n",
        )
        .unwrap();
        let c = DnsConfigurer {
            resolv_conf: Some(p),
            cluster_dns: cluster.iter().map(|s| s.parse().unwrap()).collect(),
            cluster_domain: "cluster.local".into(),
        };
        (dir, c)
    }

    #[test]
    fn default_policy_inherits_the_host() {
        let (_d, c) = configurer(&["10.96.0.10"]);
        let cfg = c
            .pod_dns_config(&pod(serde_json::json!({"dnsPolicy": "Default"})))
            .unwrap();
        assert_eq!(cfg.servers, ["192.168.1.1", "8.8.8.8"]);
        assert_eq!(cfg.searches, ["lan", "example.com"]);
        assert_eq!(cfg.options, ["edns0"]);
    }

    #[test]
    fn cluster_first_uses_cluster_dns() {
        let (_d, c) = configurer(&["10.96.0.10"]);
        let cfg = c.pod_dns_config(&pod(serde_json::json!({}))).unwrap();
        assert_eq!(cfg.servers, ["10.96.0.10"]);
        assert_eq!(
            cfg.searches,
            [
                "prod.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "lan",
                "example.com"
            ]
        );
        assert_eq!(cfg.options, ["ndots:5"]);
        // hostNetwork with ClusterFirst falls back to the host's config.
        let cfg = c
            .pod_dns_config(&pod(serde_json::json!({"hostNetwork": true})))
            .unwrap();
        assert_eq!(cfg.servers, ["192.168.1.1", "8.8.8.8"]);
        let cfg = c
            .pod_dns_config(&pod(
                serde_json::json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}),
            ))
            .unwrap();
        assert_eq!(cfg.servers, ["10.96.0.10"]);
    }

    #[test]
    fn cluster_first_without_cluster_dns_falls_back() {
        let (_d, c) = configurer(&[]);
        let cfg = c.pod_dns_config(&pod(serde_json::json!({}))).unwrap();
        assert_eq!(cfg.servers, ["192.168.1.1", "8.8.8.8"]);
    }

    #[test]
    fn none_policy_and_pod_dns_config() {
        let (_d, c) = configurer(&[]);
        let cfg = c
            .pod_dns_config(&pod(serde_json::json!({"dnsPolicy": "None", "dnsConfig": {
                "nameservers": ["1.1.1.1", "1.1.1.1", "9.9.9.9", "8.8.4.4", "4.4.4.4"],
                "searches": ["a.b"], "options": [{"name": "ndots", "value": "2"}, {"name": "rotate"}]}})))
            .unwrap();
        assert_eq!(
            cfg.servers,
            ["1.1.1.1", "9.9.9.9", "8.8.4.4"],
            "deduplicated, at most 3"
        );
        assert_eq!(cfg.searches, ["a.b"]);
        assert_eq!(cfg.options, ["ndots:2", "rotate"]);
        let e = c
            .pod_dns_config(&pod(serde_json::json!({"dnsPolicy": "Bogus"})))
            .unwrap_err();
        assert!(e.to_string().contains("\"Bogus\""));
    }

    #[test]
    fn missing_resolv_conf_names_the_file() {
        let c = DnsConfigurer {
            resolv_conf: Some("/nonexistent/resolv.conf".into()),
            cluster_dns: vec![],
            cluster_domain: String::new(),
        };
        let e = c
            .pod_dns_config(&pod(serde_json::json!({})))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("reading resolvConf /nonexistent/resolv.conf:"),
            "{e}"
        );
    }
}
