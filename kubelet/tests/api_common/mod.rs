//! Shared by the kubelet API tests: a test CA issuing client
//! certificates, a real TLS client (rustls + hyper), and a kubelet API
//! started on an ephemeral port.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use kubelet::config::{AuthenticationConfig, AuthorizationConfig, AuthorizationMode, ServerConfig};
use kubelet::server::api::{ApiState, Handler, Limits};
use kubelet::server::setup::{ApiInputs, prepare};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;

/// A CA that issues client certificates.
pub struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

/// A client certificate and its key.
pub struct ClientCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    pub fn pem(&self) -> &str {
        &self.pem
    }

    pub fn write(&self, path: &Path) {
        std::fs::write(path, &self.pem).unwrap();
    }

    /// A client certificate for `cn` in groups `orgs`.
    pub fn client(&self, cn: &str, orgs: &[&str]) -> ClientCert {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        for o in orgs {
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, *o);
        }
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        ClientCert {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        }
    }
}

/// Trusts any server certificate (the servers here are self-signed), but
/// still checks the handshake signatures.
#[derive(Debug)]
struct AnyServer(rustls::crypto::WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

pub fn client_config(cert: Option<&ClientCert>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algs = provider.signature_verification_algorithms;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(algs)));
    Arc::new(match cert {
        Some(c) => builder
            .with_client_auth_cert(c.chain.clone(), c.key.clone_key())
            .unwrap(),
        None => builder.with_no_client_auth(),
    })
}

pub type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// A TLS connection to the server.
pub async fn connect(addr: SocketAddr, cert: Option<&ClientCert>) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(client_config(cert));
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// One request on a new connection: the status and the body, or why
/// there is none.
pub async fn request(
    addr: SocketAddr,
    cert: Option<&ClientCert>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, String), String> {
    let tls = connect(addr, cert).await.map_err(|e| format!("TLS: {e}"))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = send
        .send_request(req.body(Empty::<Bytes>::new()).unwrap())
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

pub async fn get(addr: SocketAddr, cert: Option<&ClientCert>, path: &str) -> (u16, String) {
    request(addr, cert, "GET", path, &[]).await.unwrap()
}

/// A server configuration on 127.0.0.1, port 0, AlwaysAllow, nothing to
/// authenticate with yet.
pub fn server_config(cert_dir: &Path) -> ServerConfig {
    ServerConfig {
        enabled: true,
        address: "127.0.0.1".parse().unwrap(),
        port: 0,
        cert_dir: cert_dir.to_path_buf(),
        tls_cert_file: None,
        tls_private_key_file: None,
        server_tls_bootstrap: false,
        tls_min_version: Default::default(),
        tls_cipher_suites: Vec::new(),
        authentication: AuthenticationConfig {
            anonymous: false,
            webhook: false,
            webhook_cache_ttl: Duration::from_secs(120),
            client_ca_file: None,
        },
        authorization: AuthorizationConfig {
            mode: AuthorizationMode::AlwaysAllow,
            cache_authorized_ttl: Duration::from_secs(300),
            cache_unauthorized_ttl: Duration::from_secs(30),
        },
        enable_debugging_handlers: true,
    }
}

/// Starts the kubelet API of node `node-a`; its address.
pub async fn start(
    config: ServerConfig,
    client: Option<
        tokio::sync::watch::Receiver<Option<kubelet::kubelet_node_status::ClientSource>>,
    >,
    limits: Limits,
    routes: Vec<(&'static str, Handler)>,
) -> SocketAddr {
    let enable_debugging_handlers = config.enable_debugging_handlers;
    let server = prepare(ApiInputs {
        config,
        node_name: "node-a".into(),
        node_ips: vec!["127.0.0.1".parse().unwrap()],
        client,
        state: ApiState {
            status: kubelet::status::StatusManager::new(),
            stats: None,
            pod_cache: kubelet::container::PodCache::new(),
            configz: serde_json::json!({"kubeletconfig": {"port": 10250}}),
            enable_debugging_handlers,
            healthz: kubelet::server::healthz::Healthz::new(Default::default()),
        },
        limits,
    })
    .await
    .unwrap()
    .expect("the server is on");
    let addr = server.local_addr().unwrap();
    let server = routes
        .into_iter()
        .fold(server, |s, (prefix, h)| s.route(prefix, h));
    server.spawn();
    addr
}

/// A handler that answers with the authenticated user: `name groups…`.
pub fn whoami() -> Handler {
    Arc::new(|req| {
        let user = req
            .extensions()
            .get::<kubelet::server::auth::UserInfo>()
            .cloned()
            .unwrap_or_default();
        Box::pin(async move {
            kubelet::server::api::reply(
                http::StatusCode::OK,
                "text/plain",
                format!("{} {}", user.name, user.groups.join(",")),
            )
        })
    })
}
