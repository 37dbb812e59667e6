//! The kubelet's serving certificate (`serverTLSBootstrap: true`; Go's
//! `NewKubeletServerCertificateManager` in `pkg/kubelet/certificate`):
//! requested from the `kubernetes.io/kubelet-serving` signer for the
//! node's names and addresses. The controller-manager does not approve
//! these requests; a cluster admin or an approver must.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::csr::{self, CsrTemplate, PrivateKey};
use super::manager::Issue;
use super::pem::{CertificateInfo, Identity, format_time};
use super::store::CertificateStore;
use super::{CertificateError, DEFAULT_CSR_TIMEOUT, Result};

/// What to ask for.
#[derive(Clone, Debug)]
pub struct ServingCertificateRequest {
    pub node_name: String,
    /// The node's host names (at least one name or address is needed).
    pub dns_names: Vec<String>,
    /// The node's addresses.
    pub ip_addresses: Vec<IpAddr>,
    /// How long to wait for approval and signing.
    pub csr_timeout: Duration,
}

impl ServingCertificateRequest {
    pub fn new(node_name: &str, dns_names: Vec<String>, ip_addresses: Vec<IpAddr>) -> Self {
        ServingCertificateRequest {
            node_name: node_name.to_string(),
            dns_names,
            ip_addresses,
            csr_timeout: DEFAULT_CSR_TIMEOUT,
        }
    }
}

/// A certificate that was requested, issued and stored.
#[derive(Clone, Debug)]
pub struct IssuedCertificate {
    /// The CertificateSigningRequest's name.
    pub csr_name: String,
    pub identity: Identity,
    /// The new `kubelet-server-<timestamp>.pem`.
    pub path: PathBuf,
    /// `kubelet-server-current.pem`, now pointing at `path`.
    pub current_path: PathBuf,
}

impl IssuedCertificate {
    pub fn certificate(&self) -> &CertificateInfo {
        self.identity.certificate()
    }
}

/// Requests a serving certificate with `client` (the node's own
/// credentials), waits until it is approved and issued, and writes it to
/// `cert_dir` as `kubelet-server-<timestamp>.pem` with the
/// `kubelet-server-current.pem` link.
pub async fn request_serving_certificate(
    client: &kube::Client,
    cert_dir: &Path,
    req: &ServingCertificateRequest,
) -> Result<IssuedCertificate> {
    // The apiserver rejects kubelet-serving requests without a SAN.
    if req.dns_names.is_empty() && req.ip_addresses.is_empty() {
        return Err(CertificateError::InvalidRequest(format!(
            "a serving certificate for node {} needs at least one DNS name or IP address",
            req.node_name
        )));
    }
    let store = CertificateStore::server(cert_dir);
    let key = PrivateKey::generate()?;
    let template = CsrTemplate::serving(&req.node_name, &req.dns_names, &req.ip_addresses);
    let (csr_name, identity, path) = Issue {
        node: &req.node_name,
        client,
        store: &store,
        template: &template,
        key: &key,
        name: None,
        signer_name: csr::SIGNER_KUBELET_SERVING,
        usages: &csr::SERVING_USAGES,
        timeout: req.csr_timeout,
    }
    .run()
    .await?;
    let cert = identity.certificate();
    tracing::info!(
        node = %req.node_name,
        csr = %csr_name,
        serial = %cert.serial,
        not_after = %format_time(cert.not_after),
        file = %path.display(),
        "serving certificate issued"
    );
    Ok(IssuedCertificate {
        csr_name,
        identity,
        path,
        current_path: store.current_path(),
    })
}

/// Keeps a serving certificate in `cert_dir` for ever (Go's serving
/// certificate manager): requests one at start when none is there (or the
/// one there is past its rotation point), then again at 70–90 % of each
/// certificate's lifetime. Failures (an unapproved request times out) are
/// logged and retried, 30 s doubling to 10 min; nothing else waits for it.
pub async fn keep_serving_certificate(
    client: impl Fn() -> kube::Client,
    cert_dir: PathBuf,
    req: ServingCertificateRequest,
) {
    let store = CertificateStore::server(&cert_dir);
    let mut retry = Duration::from_secs(30);
    loop {
        let current = store.current().ok().flatten();
        if let Some(id) = &current {
            let deadline = super::manager::rotation_deadline(id.certificate(), fastrand::f64());
            if let Ok(wait) = deadline.duration_since(std::time::SystemTime::now()) {
                tokio::time::sleep(wait).await;
            }
        }
        match request_serving_certificate(&client(), &cert_dir, &req).await {
            Ok(_) => retry = Duration::from_secs(30),
            Err(e) => {
                tracing::warn!(node = %req.node_name, "requesting the serving certificate (serverTLSBootstrap): {e}; retrying in {retry:?}");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(Duration::from_secs(600));
            }
        }
    }
}
