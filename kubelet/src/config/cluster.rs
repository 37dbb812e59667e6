//! Joining a cluster (`--kubeconfig`): the credentials berth uses and how it
//! keeps its Node, with the Go kubelet's flags, fields and defaults.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Taint;

use super::file::ClusterFields;
use super::flags::KubeletFlags;
use super::{ConfigError, absolute};

/// How berth talks to the apiserver and keeps its Node. Present only with
/// `--kubeconfig`; without it berth runs standalone, as the Go kubelet.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// The kubeconfig berth uses; written by the TLS bootstrap when it
    /// does not exist and a bootstrap kubeconfig is given.
    pub kubeconfig: PathBuf,
    pub bootstrap_kubeconfig: Option<PathBuf>,
    /// Client and serving certificates (`--cert-dir`, default
    /// `<root-dir>/pki`).
    pub cert_dir: PathBuf,
    /// Renew the client certificate before it expires (default true, as
    /// kubeadm's and the Go kubelet's since 1.19).
    pub rotate_certificates: bool,
    /// Request the serving certificate from the apiserver.
    pub server_tls_bootstrap: bool,
    pub register_node: bool,
    /// `--node-labels` as given (`k=v,k2=v2`); checked when the node is made.
    pub node_labels: Option<String>,
    pub register_with_taints: Vec<Taint>,
    pub node_ip: Option<IpAddr>,
    /// The kubelet API's port, reported in the Node's daemon endpoints.
    pub port: u16,
    pub node_status_update_frequency: Duration,
    pub node_status_report_frequency: Duration,
    pub node_lease_duration_seconds: u32,
    /// -1: no limit.
    pub node_status_max_images: i32,
}

/// The cluster configuration from the flags and the file's fields; `None`
/// without `--kubeconfig`. Flags that only make sense with it are refused
/// without it, naming the flag.
pub(super) fn cluster_config(
    flags: &KubeletFlags,
    file: ClusterFields,
    root_dir: &Path,
) -> Result<Option<ClusterConfig>, ConfigError> {
    let Some(kubeconfig) = &flags.kubeconfig else {
        let needs: [(bool, &'static str); 3] = [
            (flags.bootstrap_kubeconfig.is_some(), "bootstrap-kubeconfig"),
            (flags.node_labels.is_some(), "node-labels"),
            (flags.node_ip.is_some(), "node-ip"),
        ];
        if let Some((_, flag)) = needs.into_iter().find(|(given, _)| *given) {
            return Err(ConfigError::InvalidFlag {
                flag,
                reason: "needs --kubeconfig (berth runs standalone without it)".into(),
            });
        }
        return Ok(None);
    };
    let kubeconfig = absolute(kubeconfig, "kubeconfig")?;
    let bootstrap_kubeconfig = match &flags.bootstrap_kubeconfig {
        Some(p) => Some(absolute(p, "bootstrap-kubeconfig")?),
        None => None,
    };
    let cert_dir = match &flags.cert_dir {
        Some(p) => absolute(p, "cert-dir")?,
        None => root_dir.join("pki"),
    };
    let update = file
        .node_status_update_frequency
        .unwrap_or(Duration::from_secs(10));
    Ok(Some(ClusterConfig {
        kubeconfig,
        bootstrap_kubeconfig,
        cert_dir,
        rotate_certificates: file.rotate_certificates.unwrap_or(true),
        server_tls_bootstrap: file.server_tls_bootstrap.unwrap_or(false),
        register_node: flags.register_node.or(file.register_node).unwrap_or(true),
        node_labels: flags.node_labels.clone().filter(|l| !l.trim().is_empty()),
        register_with_taints: file.register_with_taints,
        node_ip: flags.node_ip,
        port: file.port.unwrap_or(10250),
        node_status_update_frequency: update,
        // Go: the report frequency defaults to 5 minutes, and is never
        // shorter than the update frequency.
        node_status_report_frequency: file
            .node_status_report_frequency
            .unwrap_or(Duration::from_secs(300))
            .max(update),
        node_lease_duration_seconds: file.node_lease_duration_seconds.unwrap_or(40),
        node_status_max_images: file.node_status_max_images.unwrap_or(50),
    }))
}
