//! The kubelet's apiserver client, replaced when its certificate changes
//! (Go's `pkg/kubelet/certificate/transport.go` swaps the certificate
//! under a live transport and closes old connections; kube-rs builds its
//! TLS config with the client, so berth builds a new client instead).
//!
//! Holders call [`ClientProvider::client`] per use (a clone of a
//! `kube::Client` is cheap) rather than keeping one; long-lived watches
//! can follow [`ClientProvider::changes`] to restart on the new client.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;

use super::kubeconfig::{self, LoadedKubeconfig};
use super::pem::{CertificateInfo, Identity};
use super::store::CertificateStore;
use super::{CertificateError, Result};

/// The client in use and the certificate it presents.
#[derive(Clone)]
pub struct Current {
    pub client: kube::Client,
    /// `None` when the kubeconfig authenticates otherwise (a token).
    pub certificate: Option<CertificateInfo>,
}

/// Hands out the current `kube::Client`; cheap to clone, all clones see
/// the same client.
#[derive(Clone)]
pub struct ClientProvider {
    shared: Arc<Shared>,
}

struct Shared {
    node_name: String,
    kubeconfig: LoadedKubeconfig,
    tx: watch::Sender<Current>,
}

impl std::fmt::Debug for ClientProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientProvider")
            .field("node_name", &self.shared.node_name)
            .field("kubeconfig", &self.shared.kubeconfig.path)
            .field("certificate", &self.certificate().map(|c| c.serial))
            .finish()
    }
}

impl ClientProvider {
    /// A client for the kubeconfig at `path`. With `store` (certificate
    /// rotation on), the store's current certificate, when there is one,
    /// takes the place of the kubeconfig's, as in the Go kubelet: a
    /// rotated certificate survives a restart even if the kubeconfig names
    /// another file.
    pub async fn from_kubeconfig(
        path: &Path,
        node_name: &str,
        store: Option<&CertificateStore>,
    ) -> Result<Self> {
        let loaded = kubeconfig::load(path).await?;
        let from_store = match store {
            Some(s) => s.current()?,
            None => None,
        };
        let identity = match from_store {
            Some(id) => Some(id),
            None => loaded.identity()?,
        };
        let current = build(&loaded, identity.as_ref())?;
        if let Some(cert) = &current.certificate {
            tracing::info!(
                node = node_name,
                kubeconfig = %path.display(),
                serial = %cert.serial,
                not_after = %super::pem::format_time(cert.not_after),
                "apiserver client uses a client certificate"
            );
        }
        let (tx, _) = watch::channel(current);
        Ok(ClientProvider {
            shared: Arc::new(Shared {
                node_name: node_name.to_string(),
                kubeconfig: loaded,
                tx,
            }),
        })
    }

    /// The current client.
    pub fn client(&self) -> kube::Client {
        self.shared.tx.borrow().client.clone()
    }

    /// The certificate the current client presents.
    pub fn certificate(&self) -> Option<CertificateInfo> {
        self.shared.tx.borrow().certificate.clone()
    }

    /// Sees every replacement of the client.
    pub fn changes(&self) -> watch::Receiver<Current> {
        self.shared.tx.subscribe()
    }

    pub fn node_name(&self) -> &str {
        &self.shared.node_name
    }

    /// The kubeconfig this provider was built from.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.shared.kubeconfig.path
    }

    /// Replaces the client with one presenting `identity`.
    pub(crate) fn install(&self, identity: &Identity) -> Result<()> {
        let current = build(&self.shared.kubeconfig, Some(identity))?;
        self.shared.tx.send_replace(current);
        Ok(())
    }
}

fn build(loaded: &LoadedKubeconfig, identity: Option<&Identity>) -> Result<Current> {
    let config = loaded.config_with(identity);
    // The TLS config is made here; no request is sent.
    let client =
        kube::Client::try_from(config).map_err(|e| CertificateError::KubeconfigInvalid {
            path: loaded.path.clone(),
            reason: format!("building the apiserver client: {e}"),
        })?;
    Ok(Current {
        client,
        certificate: identity.map(|i| i.certificate().clone()),
    })
}
