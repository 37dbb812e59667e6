//! The kubelet's credentials for the apiserver: Go's `pkg/kubelet/certificate`
//! with its `bootstrap` package, and the parts of client-go's
//! `util/certificate` they build on.
//!
//! - [`bootstrap::load_client_cert`] is the TLS bootstrap: keep a valid
//!   kubeconfig, else get a client certificate with the bootstrap
//!   kubeconfig's credentials and write a kubeconfig that uses it.
//! - [`transport::ClientProvider`] hands out the current `kube::Client` and
//!   replaces it when the certificate changes (Go swaps the transport's
//!   certificate in place; a new client does the same for kube-rs).
//! - [`manager::ClientCertificateManager`] rotates the client certificate
//!   at a jittered 70–90 % of its lifetime.
//! - [`kubelet::request_serving_certificate`] gets the kubelet's serving
//!   certificate (`serverTLSBootstrap`).
//! - [`store::CertificateStore`] keeps `<prefix>-<timestamp>.pem` files and
//!   the `<prefix>-current.pem` symlink, as the Go kubelet's cert dir does.
//! - [`csr`] makes keys and requests, submits them and waits for the
//!   certificate.
//!
//! Private keys never appear in logs or errors: [`SecretPem`] redacts its
//! `Debug`, and errors carry paths and reasons, never file contents.
//!
//! At start-up, as the Go kubelet (`--kubeconfig`, `--bootstrap-kubeconfig`,
//! `--cert-dir`, `rotateCertificates`, `serverTLSBootstrap`):
//!
//! ```ignore
//! let cert_dir = root_dir.join("pki");
//! load_client_cert(&BootstrapConfig::new(&kubeconfig, bootstrap, &cert_dir, &node)).await?;
//! let store = CertificateStore::client(&cert_dir);
//! let provider = ClientProvider::from_kubeconfig(&kubeconfig, &node, rotate.then_some(&store)).await?;
//! if rotate {
//!     // Returns only when the certificate expired unrenewed: exit, so the
//!     // next start bootstraps again.
//!     tokio::spawn(ClientCertificateManager::new(provider.clone(), store).run());
//! }
//! if server_tls_bootstrap {
//!     let req = ServingCertificateRequest::new(&node, host_names, addresses);
//!     request_serving_certificate(&provider.client(), &cert_dir, &req).await?;
//! }
//! ```

pub mod bootstrap;
pub mod csr;
pub mod kubeconfig;
pub mod kubelet;
pub mod manager;
pub mod pem;
pub mod store;
pub mod transport;

use std::path::PathBuf;
use std::time::Duration;

pub use bootstrap::{BootstrapConfig, ClientCertSource, DEFAULT_CSR_TIMEOUT, load_client_cert};
pub use kubelet::{IssuedCertificate, ServingCertificateRequest, request_serving_certificate};
pub use manager::{ClientCertificateManager, rotation_deadline};
pub use pem::{CertificateInfo, Identity, SecretPem};
pub use store::CertificateStore;
pub use transport::{ClientProvider, WatchClient};

pub type Result<T, E = CertificateError> = std::result::Result<T, E>;

/// What can go wrong while getting or using the kubelet's certificates.
/// Each variant names the file, field or CSR it is about.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("kubeconfig {path} does not exist")]
    KubeconfigMissing { path: PathBuf },

    #[error("reading kubeconfig {path}: {source}")]
    KubeconfigRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("kubeconfig {path} is invalid: {reason}")]
    KubeconfigInvalid { path: PathBuf, reason: String },

    /// The client certificate or key a kubeconfig names cannot be used.
    /// `file` is the certificate or key file, or the kubeconfig field when
    /// the data is inline.
    #[error("client credentials of kubeconfig {kubeconfig} ({file}): {reason}")]
    ClientCertificateInvalid {
        kubeconfig: PathBuf,
        file: String,
        reason: String,
    },

    #[error("client certificate of kubeconfig {kubeconfig} ({file}) expired at {not_after}")]
    ClientCertificateExpired {
        kubeconfig: PathBuf,
        file: String,
        not_after: String,
    },

    /// The kubeconfig cannot be used and there is nothing to bootstrap
    /// from.
    #[error(
        "{reason}; and no bootstrap kubeconfig (--bootstrap-kubeconfig) to request a new client certificate"
    )]
    NoBootstrapKubeconfig { reason: Box<CertificateError> },

    /// A file in the cert dir is not a usable certificate and key.
    #[error("{path}: {reason}")]
    StoreInvalid { path: PathBuf, reason: String },

    /// The apiserver answered with an error.
    #[error("{action}: {source}")]
    Api {
        action: String,
        #[source]
        source: kube::Error,
    },

    /// No answer from the apiserver (connection refused, TLS failure,
    /// timeout).
    #[error("{action}: the apiserver is unreachable: {source}")]
    Unreachable {
        action: String,
        #[source]
        source: kube::Error,
    },

    #[error("CertificateSigningRequest {name} was denied: {reason}: {message}")]
    CsrDenied {
        name: String,
        reason: String,
        message: String,
    },

    #[error("CertificateSigningRequest {name} failed: {reason}: {message}")]
    CsrFailed {
        name: String,
        reason: String,
        message: String,
    },

    #[error("CertificateSigningRequest {name} was deleted before a certificate was issued")]
    CsrDeleted { name: String },

    #[error("CertificateSigningRequest {name} was not issued within {}", humanize(*.timeout))]
    CsrTimeout { name: String, timeout: Duration },

    /// A CSR of that name exists but was not made with our key and signer
    /// (Go's `ensureCompatible`).
    #[error(
        "CertificateSigningRequest {name} already exists and does not match this request: {reason}"
    )]
    CsrConflict { name: String, reason: String },

    #[error("CertificateSigningRequest {name} was issued an unusable certificate: {reason}")]
    IssuedCertificateInvalid { name: String, reason: String },

    /// The request itself is not one the apiserver would accept.
    #[error("invalid certificate request: {0}")]
    InvalidRequest(String),

    #[error("generating a private key or certificate request: {0}")]
    Crypto(#[source] rcgen::Error),

    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl CertificateError {
    /// Sorts a kube-rs error into an apiserver answer or no answer.
    pub(crate) fn from_kube(action: impl Into<String>, source: kube::Error) -> Self {
        let action = action.into();
        match source {
            kube::Error::Api(_) => CertificateError::Api { action, source },
            _ => CertificateError::Unreachable { action, source },
        }
    }

    /// The HTTP status the apiserver answered with, if it answered.
    pub fn api_status(&self) -> Option<u16> {
        match self {
            CertificateError::Api {
                source: kube::Error::Api(status),
                ..
            } => Some(status.code),
            _ => None,
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        CertificateError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

fn humanize(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else if secs > 0 {
        format!("{secs} s")
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// Runs a file operation on the blocking pool, as berth does for every
/// file write on its one async thread.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(CertificateError::Io {
            action: "running file operation",
            path: PathBuf::new(),
            source: std::io::Error::other(e.to_string()),
        }),
    }
}
