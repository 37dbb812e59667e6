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
use std::time::Duration;

use hyper_rustls::FixedServerNameResolver;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::ServerName;
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
    // The TLS config is made here; no request is sent.
    let client = new_client(loaded.config_with(identity)).map_err(|e| {
        CertificateError::KubeconfigInvalid {
            path: loaded.path.clone(),
            reason: format!("building the apiserver client: {e}"),
        }
    })?;
    Ok(Current {
        client,
        certificate: identity.map(|i| i.certificate().clone()),
    })
}

/// How often an HTTP/2 connection to the apiserver that has been silent is
/// pinged, and how long the answer may take before the connection is
/// dropped (client-go's `ReadIdleTimeout` and `PingTimeout`): a watch on a
/// dead connection is noticed in 45 s, not at the next request.
const H2_PING_INTERVAL: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(15);

/// A `kube::Client` for `config` that speaks HTTP/2 when the apiserver
/// offers it (ALPN), as client-go does. kube-rs's own builder speaks
/// HTTP/1.1 only, so each open watch held a TLS connection of its own:
/// with a watch per referenced ConfigMap and Secret, 110 pods held 230
/// connections (about 45 KiB each in berth, and a goroutine pair each in
/// the apiserver). Over HTTP/2 they are streams of one connection.
///
/// The layers are kube-rs's (base URI, then the credentials: a bearer
/// token or an exec plugin; a client certificate is in the TLS config),
/// without its tracing and retry layers, which berth does not use.
pub(crate) fn new_client(config: kube::Config) -> std::result::Result<kube::Client, kube::Error> {
    use kube::client::ConfigExt;
    use tower::ServiceBuilder;

    let tls = config.rustls_client_config()?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(config.connect_timeout);
    http.set_nodelay(true);
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let builder = match config.tls_server_name.as_deref() {
        Some(name) => {
            let name = ServerName::try_from(name.to_string()).map_err(|e| {
                kube::Error::Service(format!("tls-server-name {name:?}: {e}").into())
            })?;
            builder.with_server_name_resolver(FixedServerNameResolver::new(name))
        }
        None => builder,
    };
    let https = builder.enable_http1().enable_http2().wrap_connector(http);
    let hyper: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .http2_keep_alive_interval(H2_PING_INTERVAL)
            .http2_keep_alive_timeout(H2_PING_TIMEOUT)
            .http2_keep_alive_while_idle(true)
            .build(https);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(tower::BoxError::from)
        .service(hyper);
    Ok(kube::Client::new(service, config.default_namespace))
}
