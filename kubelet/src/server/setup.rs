//! Starting the kubelet API from the configuration (Go's `BuildAuth`,
//! `InitializeTLS` and `ListenAndServeKubeletServer`): the serving
//! certificate, the client CA, the authenticator and authorizer, the
//! listener.
//!
//! ```ignore
//! if let Some(server) = setup::prepare(inputs).await? {
//!     server.route("/containerLogs/", logs_handler).spawn();
//! }
//! ```

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::api::{ApiState, Handler, KubeletApi, Limits};
use super::auth::{
    Authenticator, Authorizer, ClientCa, KubeAccessReviewer, KubeTokenReviewer, KubeletAuth,
    TokenAuthenticator, WebhookAuthorizer,
};
use super::tls::{self, CertSource, ServingCert, TlsError};
use crate::certificate::CertificateStore;
use crate::config::{AuthorizationMode, ServerConfig};
use crate::kubelet_node_status::ClientSource;

/// How often the serving certificate and the client CA are read again.
pub const RELOAD_PERIOD: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("kubelet API: {0}")]
    Tls(#[from] TlsError),
    #[error("kubelet API: binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("kubelet API: {0} needs the apiserver client (--kubeconfig)")]
    NoClient(&'static str),
}

/// What the kubelet API needs from the rest of berth.
pub struct ApiInputs {
    pub config: ServerConfig,
    pub node_name: String,
    /// The node's addresses, for a self-signed certificate's SANs.
    pub node_ips: Vec<IpAddr>,
    /// The apiserver client, once ready (joined mode).
    pub client: Option<watch::Receiver<Option<ClientSource>>>,
    pub state: ApiState,
    pub limits: Limits,
}

/// A bound, configured kubelet API, not serving yet.
pub struct KubeletApiServer {
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    api: KubeletApi,
    serving: Arc<ServingCert>,
    client_ca: Option<Arc<ClientCa>>,
    limits: Limits,
}

impl KubeletApiServer {
    /// Adds a handler (see [`KubeletApi::route`]).
    pub fn route(mut self, prefix: &'static str, handler: Handler) -> Self {
        self.api = self.api.route(prefix, handler);
        self
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves, and keeps the certificate and CA fresh, on spawned tasks.
    pub fn spawn(self) {
        tokio::spawn(self.serving.watch(RELOAD_PERIOD));
        if let Some(ca) = self.client_ca {
            tokio::spawn(ca.watch(RELOAD_PERIOD));
        }
        tokio::spawn(super::api::serve(
            self.listener,
            self.tls,
            Arc::new(self.api),
            self.limits,
        ));
    }
}

/// The serving certificate's source: the files, the serverTLSBootstrap
/// store, or a self-signed pair made in the cert dir.
fn cert_source(inputs: &ApiInputs) -> Result<CertSource, TlsError> {
    let c = &inputs.config;
    if let (Some(cert), Some(key)) = (&c.tls_cert_file, &c.tls_private_key_file) {
        return Ok(CertSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        });
    }
    if c.server_tls_bootstrap {
        return Ok(CertSource::Store(CertificateStore::server(&c.cert_dir)));
    }
    let (cert, key) = tls::self_signed(&c.cert_dir, &inputs.node_name, &inputs.node_ips)?;
    Ok(CertSource::Files { cert, key })
}

/// Builds and binds the kubelet API; `None` when it is off (`enableServer:
/// false`, port 0, or no way to authenticate anyone).
pub async fn prepare(inputs: ApiInputs) -> Result<Option<KubeletApiServer>, SetupError> {
    let c = &inputs.config;
    if !c.enabled {
        tracing::info!("kubelet API off (enableServer: false or --port 0)");
        return Ok(None);
    }
    let client_ca = match &c.authentication.client_ca_file {
        Some(path) => Some(ClientCa::load(path)?),
        None => None,
    };
    let tokens = match (c.authentication.webhook, &inputs.client) {
        (false, _) => None,
        (true, Some(client)) => Some(TokenAuthenticator::new(
            Arc::new(KubeTokenReviewer::new(client.clone())),
            c.authentication.webhook_cache_ttl,
        )),
        (true, None) => return Err(SetupError::NoClient("token webhook authentication")),
    };
    let authenticator = Authenticator {
        client_ca: client_ca.clone(),
        tokens,
        anonymous: c.authentication.anonymous,
    };
    if !authenticator.is_configured() {
        tracing::info!(
            "kubelet API (port {}) off: no way to authenticate clients; set --client-ca-file \
             (authentication.x509.clientCAFile), or join a cluster for bearer tokens",
            c.port
        );
        return Ok(None);
    }
    let authorizer = match (c.authorization.mode, &inputs.client) {
        (AuthorizationMode::AlwaysAllow, _) => Authorizer::AlwaysAllow,
        (AuthorizationMode::Webhook, Some(client)) => Authorizer::Webhook(WebhookAuthorizer::new(
            Arc::new(KubeAccessReviewer::new(client.clone())),
            c.authorization.cache_authorized_ttl,
            c.authorization.cache_unauthorized_ttl,
        )),
        (AuthorizationMode::Webhook, None) => {
            return Err(SetupError::NoClient("Webhook authorization"));
        }
    };

    let settings = c.tls_settings();
    let provider = Arc::new(tls::crypto_provider(&settings)?);
    let source = cert_source(&inputs)?;
    let serving = ServingCert::load(source, provider.clone())?;
    let tls = tls::server_config(
        &settings,
        provider,
        serving.clone(),
        client_ca.as_ref().map(|ca| ca.subjects()),
    )?;
    let addr = SocketAddr::new(c.address, c.port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| SetupError::Bind { addr, source })?;
    tracing::info!(
        %addr,
        authorization = c.authorization.mode.as_str(),
        client_ca = client_ca.is_some(),
        token_webhook = c.authentication.webhook,
        anonymous = c.authentication.anonymous,
        "serving the kubelet API on https://{addr}"
    );
    let api = KubeletApi::new(
        KubeletAuth {
            authenticator,
            authorizer,
            node_name: inputs.node_name.clone(),
        },
        inputs.state,
    );
    Ok(Some(KubeletApiServer {
        listener,
        tls,
        api,
        serving,
        client_ca,
        limits: inputs.limits,
    }))
}
