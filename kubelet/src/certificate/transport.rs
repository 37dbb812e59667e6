//! The kubelet's apiserver client, replaced when its certificate changes
//! (Go's `pkg/kubelet/certificate/transport.go` swaps the certificate
//! under a live transport and closes old connections; kube-rs builds its
//! TLS config with the client, so berth builds a new client instead).
//!
//! Holders call [`ClientProvider::client`] per use (a clone of a
//! `kube::Client` is cheap) rather than keeping one; long-lived watches
//! can follow [`ClientProvider::changes`] to restart on the new client.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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
    /// What the client presents, for the watch connections' clients.
    identity: Option<Identity>,
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
    /// HTTP/2 connections for long-lived watches (see [`WatchClient`]).
    watch_shards: Mutex<Vec<Shard>>,
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
                watch_shards: Mutex::default(),
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
        // New watches go to connections with the new certificate; the old
        // ones end with the watches still on them.
        self.lock_shards().clear();
        self.shared.tx.send_replace(current);
        Ok(())
    }

    fn lock_shards(&self) -> std::sync::MutexGuard<'_, Vec<Shard>> {
        self.shared
            .watch_shards
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// A client for one long-lived watch, over HTTP/2 on a connection that
    /// carries at most [`WATCHES_PER_CONNECTION`] of them; hold the
    /// [`WatchClient`] as long as the watch runs. Falls back to the main
    /// client if an HTTP/2 client cannot be built.
    pub fn watch_client(&self) -> WatchClient {
        let mut shards = self.lock_shards();
        if let Some(s) = shards
            .iter()
            .find(|s| s.active.load(Ordering::Relaxed) < WATCHES_PER_CONNECTION)
        {
            return WatchClient::on(s);
        }
        let identity = self.shared.tx.borrow().identity.clone();
        match new_h2_client(self.shared.kubeconfig.config_with(identity.as_ref())) {
            Ok(client) => {
                shards.push(Shard {
                    client,
                    active: Arc::default(),
                });
                let s = shards.last().expect("just pushed");
                WatchClient::on(s)
            }
            Err(e) => {
                tracing::warn!(error = %e, "building an HTTP/2 apiserver client for watches; using the main client");
                WatchClient {
                    client: self.client(),
                    _slot: None,
                }
            }
        }
    }
}

/// How many watches share one HTTP/2 connection. The apiserver lets a
/// connection carry 100 concurrent streams or more; client-go opens
/// another connection when one is full, but hyper-util's pool queues the
/// request on the full one, so berth opens a connection per this many
/// watches itself.
pub const WATCHES_PER_CONNECTION: usize = 64;

struct Shard {
    client: kube::Client,
    active: Arc<AtomicUsize>,
}

/// A client for one long-lived watch (from [`ClientProvider::watch_client`]);
/// its place on the connection is given back when it is dropped.
pub struct WatchClient {
    pub client: kube::Client,
    _slot: Option<Slot>,
}

impl WatchClient {
    fn on(shard: &Shard) -> WatchClient {
        shard.active.fetch_add(1, Ordering::Relaxed);
        WatchClient {
            client: shard.client.clone(),
            _slot: Some(Slot(shard.active.clone())),
        }
    }
}

struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
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
        identity: identity.cloned(),
    })
}

/// How often an HTTP/2 connection to the apiserver that has been silent is
/// pinged, and how long the answer may take before the connection is
/// dropped (client-go's `ReadIdleTimeout` and `PingTimeout`): a watch on a
/// dead connection is noticed in 45 s.
const H2_PING_INTERVAL: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(15);

/// A `kube::Client` for `config` that speaks HTTP/2 (ALPN h2, HTTP/1.1 if
/// the server offers only that), with its own connection pool. kube-rs's
/// builder speaks HTTP/1.1 only, where each open watch holds a TLS
/// connection of its own (about 45 KiB each in berth at 220 watches).
///
/// The layers are kube-rs's (base URI, then the credentials: a bearer
/// token or an exec plugin; a client certificate is in the TLS config),
/// without its tracing and retry layers.
fn new_h2_client(config: kube::Config) -> std::result::Result<kube::Client, kube::Error> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn active(p: &ClientProvider) -> Vec<usize> {
        p.lock_shards()
            .iter()
            .map(|s| s.active.load(Ordering::Relaxed))
            .collect()
    }

    #[tokio::test]
    async fn watches_fill_a_connection_then_open_another() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubelet.conf");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
        )
        .unwrap();
        let p = ClientProvider::from_kubeconfig(&path, "n", None)
            .await
            .unwrap();
        let mut held: Vec<_> = (0..=WATCHES_PER_CONNECTION)
            .map(|_| p.watch_client())
            .collect();
        assert_eq!(active(&p), vec![WATCHES_PER_CONNECTION, 1]);
        // A watch that ends gives its place back, and the next one takes
        // the first connection with room.
        held.swap_remove(0);
        assert_eq!(active(&p), vec![WATCHES_PER_CONNECTION - 1, 1]);
        held.push(p.watch_client());
        assert_eq!(active(&p), vec![WATCHES_PER_CONNECTION, 1]);
        held.clear();
        assert_eq!(active(&p), vec![0, 0]);
    }
}
