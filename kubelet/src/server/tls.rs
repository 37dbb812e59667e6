//! TLS for the kubelet API (Go's `InitializeTLS` and the serving side of
//! `pkg/kubelet/certificate`): rustls with ring.
//!
//! The serving certificate comes from the first of: `tlsCertFile` and
//! `tlsPrivateKeyFile`; the `kubelet-server-current.pem` that
//! `serverTLSBootstrap` keeps (read again while serving, so a rotated
//! certificate is used without a restart); a self-signed `kubelet.crt` and
//! `kubelet.key` in the cert dir, made once and reused.
//!
//! Clients are asked for a certificate only when a client CA is set, and a
//! presented certificate is checked by the authenticator, not the
//! handshake (Go's `RequestClientCert`): a bad certificate is a 401, and a
//! valid bearer token on the same request still counts.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme, SupportedCipherSuite};

use crate::certificate::pem::{Block, parse_blocks};
use crate::certificate::{CertificateStore, Identity};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "{0:?} is not a TLS cipher suite name (Go's names, e.g. TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)"
    )]
    UnknownCipherSuite(String),
    #[error(
        "{0} is not supported by berth: rustls offers only ECDHE suites with AES-GCM or ChaCha20-Poly1305"
    )]
    UnsupportedCipherSuite(String),
    #[error("{0:?} is not a TLS version (VersionTLS12 or VersionTLS13)")]
    UnknownVersion(String),
    #[error("{0} is not supported by berth: rustls speaks TLS 1.2 and 1.3 only")]
    UnsupportedVersion(String),
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("writing {}: {reason}", path.display())]
    Write { path: PathBuf, reason: String },
    #[error("generating the self-signed serving certificate: {0}")]
    Generate(String),
    #[error("building the TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// `tlsMinVersion`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsVersion {
    #[default]
    Tls12,
    Tls13,
}

/// Go's version names; empty is the default (TLS 1.2).
pub fn parse_tls_version(name: &str) -> Result<TlsVersion, TlsError> {
    match name {
        "" | "VersionTLS12" => Ok(TlsVersion::Tls12),
        "VersionTLS13" => Ok(TlsVersion::Tls13),
        "VersionTLS10" | "VersionTLS11" => Err(TlsError::UnsupportedVersion(name.to_string())),
        _ => Err(TlsError::UnknownVersion(name.to_string())),
    }
}

/// Go's names of suites rustls does not have (CBC, RC4, 3DES, static RSA).
const GO_ONLY_SUITES: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

/// One Go cipher suite name: the TLS 1.2 suite it names, `None` for a TLS
/// 1.3 suite (always on, not configurable, as in Go).
pub fn cipher_suite(name: &str) -> Result<Option<SupportedCipherSuite>, TlsError> {
    use rustls::crypto::ring::cipher_suite as cs;
    Ok(Some(match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
        | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => {
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => {
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_AES_128_GCM_SHA256" | "TLS_AES_256_GCM_SHA384" | "TLS_CHACHA20_POLY1305_SHA256" => {
            return Ok(None);
        }
        n if GO_ONLY_SUITES.contains(&n) => {
            return Err(TlsError::UnsupportedCipherSuite(n.to_string()));
        }
        n => return Err(TlsError::UnknownCipherSuite(n.to_string())),
    }))
}

/// The TLS 1.2 suites `names` allow, in their order; every name must be
/// known and supported.
pub fn cipher_suites(names: &[String]) -> Result<Vec<SupportedCipherSuite>, TlsError> {
    let mut out = Vec::new();
    for name in names {
        if let Some(s) = cipher_suite(name.trim())?
            && !out.contains(&s)
        {
            out.push(s);
        }
    }
    Ok(out)
}

/// The TLS settings of the kubelet API.
#[derive(Clone, Debug, Default)]
pub struct TlsSettings {
    pub min_version: TlsVersion,
    /// Go names; empty: rustls' defaults.
    pub cipher_suites: Vec<String>,
}

/// ring with the suites the settings allow: the TLS 1.3 suites always, the
/// TLS 1.2 ones given (all when none are), as Go's `CipherSuites`.
pub fn crypto_provider(settings: &TlsSettings) -> Result<CryptoProvider, TlsError> {
    let mut provider = rustls::crypto::ring::default_provider();
    let tls12 = cipher_suites(&settings.cipher_suites)?;
    if settings.min_version == TlsVersion::Tls13 && !settings.cipher_suites.is_empty() {
        tracing::warn!("TLS 1.3 cipher suites are not configurable; ignoring tlsCipherSuites");
    } else if !settings.cipher_suites.is_empty() {
        provider
            .cipher_suites
            .retain(|s| matches!(s, SupportedCipherSuite::Tls13(_)));
        provider.cipher_suites.extend(tls12);
    }
    Ok(provider)
}

/// A certificate chain and key from PEM text.
pub fn certified_key(
    provider: &CryptoProvider,
    cert_pem: &str,
    key_pem: &str,
) -> Result<CertifiedKey, String> {
    let certs: Vec<CertificateDer<'static>> = parse_blocks(cert_pem)?
        .into_iter()
        .filter(|b| b.label == "CERTIFICATE")
        .map(|b| CertificateDer::from(b.der))
        .collect();
    if certs.is_empty() {
        return Err("no CERTIFICATE PEM block".into());
    }
    let key = parse_blocks(key_pem)?
        .into_iter()
        .find_map(|Block { label, der, .. }| match label.as_str() {
            "PRIVATE KEY" => Some(PrivateKeyDer::Pkcs8(der.into())),
            "EC PRIVATE KEY" => Some(PrivateKeyDer::Sec1(der.into())),
            "RSA PRIVATE KEY" => Some(PrivateKeyDer::Pkcs1(der.into())),
            _ => None,
        })
        .ok_or("no private key PEM block (PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)")?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("the private key is not usable: {e}"))?;
    let ck = CertifiedKey::new(certs, key);
    ck.keys_match()
        .map_err(|e| format!("the private key does not match the certificate: {e}"))?;
    Ok(ck)
}

/// Where the serving certificate comes from.
#[derive(Clone, Debug)]
pub enum CertSource {
    /// `tlsCertFile` and `tlsPrivateKeyFile` (or the self-signed pair).
    Files { cert: PathBuf, key: PathBuf },
    /// The `serverTLSBootstrap` store; none until the first is issued.
    Store(CertificateStore),
}

/// The serving certificate in use, for rustls to present; read again by
/// [`ServingCert::watch`], so a rotated certificate is picked up.
pub struct ServingCert {
    source: CertSource,
    provider: Arc<CryptoProvider>,
    current: RwLock<Option<(String, Arc<CertifiedKey>)>>,
    /// The "no certificate yet" warning is logged once, not per handshake.
    warned: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for ServingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingCert")
            .field("source", &self.source)
            .finish()
    }
}

impl ServingCert {
    /// Loads the certificate now: files must be usable; the store may be
    /// empty still (handshakes fail until a certificate is issued, as in Go).
    pub fn load(source: CertSource, provider: Arc<CryptoProvider>) -> Result<Arc<Self>, TlsError> {
        let s = Arc::new(ServingCert {
            source,
            provider,
            current: RwLock::new(None),
            warned: std::sync::atomic::AtomicBool::new(false),
        });
        s.reload()?;
        Ok(s)
    }

    fn read_source(&self) -> Result<Option<(String, String, PathBuf)>, TlsError> {
        match &self.source {
            CertSource::Files { cert, key } => {
                let read = |p: &Path| {
                    std::fs::read_to_string(p).map_err(|source| TlsError::Read {
                        path: p.to_path_buf(),
                        source,
                    })
                };
                Ok(Some((read(cert)?, read(key)?, cert.clone())))
            }
            CertSource::Store(store) => {
                let path = store.current_path();
                match store.current() {
                    Ok(Some(id)) => Ok(Some((
                        id.cert_pem().to_string(),
                        id.key_pem().expose().to_string(),
                        path,
                    ))),
                    Ok(None) => Ok(None),
                    Err(e) => Err(TlsError::Invalid {
                        path,
                        reason: e.to_string(),
                    }),
                }
            }
        }
    }

    /// Reads the source again; true when the certificate changed. A bad new
    /// certificate keeps the old one.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let Some((cert, key, path)) = self.read_source()? else {
            return Ok(false);
        };
        let unchanged = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|(c, _)| *c == cert);
        if unchanged {
            return Ok(false);
        }
        let ck = certified_key(&self.provider, &cert, &key)
            .map_err(|reason| TlsError::Invalid { path, reason })?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some((cert, Arc::new(ck)));
        Ok(true)
    }

    /// Whether a certificate is there to present.
    pub fn ready(&self) -> bool {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Reads the source every `every`, for ever.
    pub async fn watch(self: Arc<Self>, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            let s = self.clone();
            match tokio::task::spawn_blocking(move || s.reload()).await {
                Ok(Ok(true)) => {
                    tracing::info!(source = ?self.source, "kubelet API: serving certificate loaded")
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => {
                    tracing::warn!("kubelet API serving certificate: {e}; keeping the previous one")
                }
                Err(e) => tracing::warn!("kubelet API serving certificate reload: {e}"),
            }
        }
    }
}

impl ResolvesServerCert for ServingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let current = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(_, ck)| ck.clone());
        if current.is_none() && !self.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(
                "kubelet API: no serving certificate yet (serverTLSBootstrap: waiting for the CSR to be approved)"
            );
        }
        current
    }
}

/// `kubelet.crt` and `kubelet.key` in `cert_dir`: reused when they hold a
/// usable pair, else made anew (Go's `GenerateSelfSignedCertKey`, with an
/// ECDSA P-256 key and no separate CA: CN `<host>@<unix time>`, the host
/// and `addresses` as SANs, one year).
pub fn self_signed(
    cert_dir: &Path,
    host: &str,
    addresses: &[IpAddr],
) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert_path = cert_dir.join("kubelet.crt");
    let key_path = cert_dir.join("kubelet.key");
    if let (Ok(c), Ok(k)) = (
        std::fs::read_to_string(&cert_path),
        std::fs::read_to_string(&key_path),
    ) && Identity::from_pem(&c, &k).is_ok()
    {
        return Ok((cert_path, key_path));
    }
    let gen_err = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(gen_err)?;
    let now = jiff::Timestamp::now();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("{host}@{}", now.as_second()),
    );
    let mut sans = Vec::new();
    match host.parse::<IpAddr>() {
        Ok(ip) => sans.push(rcgen::SanType::IpAddress(ip)),
        Err(_) => sans.push(rcgen::SanType::DnsName(
            host.to_string().try_into().map_err(gen_err)?,
        )),
    }
    for ip in addresses {
        if !sans.contains(&rcgen::SanType::IpAddress(*ip)) {
            sans.push(rcgen::SanType::IpAddress(*ip));
        }
    }
    params.subject_alt_names = sans;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    let start = std::time::SystemTime::now() - Duration::from_secs(3600);
    params.not_before = start.into();
    params.not_after = (start + Duration::from_secs(365 * 24 * 3600 + 3600)).into();
    let cert = params.self_signed(&key).map_err(gen_err)?;
    let write = |path: &Path, text: &str| {
        crate::certificate::store::create_dir(cert_dir)
            .and_then(|()| crate::certificate::store::write_atomic(path, text.as_bytes()))
            .map_err(|e| TlsError::Write {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
    };
    write(&key_path, &key.serialize_pem())?;
    write(&cert_path, &cert.pem())?;
    tracing::info!(cert = %cert_path.display(), "kubelet API: generated a self-signed serving certificate");
    Ok((cert_path, key_path))
}

/// Asks for a client certificate without requiring one, and checks only
/// that the client holds its key; the chain is the authenticator's to
/// judge.
#[derive(Debug)]
pub struct RequestClientCert {
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl RequestClientCert {
    pub fn new(hints: Vec<DistinguishedName>, provider: &CryptoProvider) -> Self {
        RequestClientCert {
            hints,
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for RequestClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The server's TLS configuration: `certs` presented, client certificates
/// requested when `client_ca_subjects` is `Some`.
pub fn server_config(
    settings: &TlsSettings,
    provider: Arc<CryptoProvider>,
    certs: Arc<dyn ResolvesServerCert>,
    client_ca_subjects: Option<Vec<DistinguishedName>>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let versions: &[&'static rustls::SupportedProtocolVersion] = match settings.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS12, &rustls::version::TLS13],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let verifier: Arc<dyn ClientCertVerifier> = match client_ca_subjects {
        Some(hints) => Arc::new(RequestClientCert::new(hints, &provider)),
        None => WebPkiClientVerifier::no_client_auth(),
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificate::CertificateInfo;

    #[test]
    fn go_cipher_names_map_to_rustls_suites() {
        use rustls::crypto::ring::cipher_suite as cs;
        let names: Vec<String> = [
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            "TLS_AES_128_GCM_SHA256",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            cipher_suites(&names).unwrap(),
            [
                cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            ]
        );
        let e = cipher_suites(&["TLS_RSA_WITH_AES_128_CBC_SHA".into()]).unwrap_err();
        assert!(matches!(e, TlsError::UnsupportedCipherSuite(_)), "{e}");
        assert!(e.to_string().contains("not supported by berth"), "{e}");
        let e = cipher_suites(&["TLS_FOO".into()]).unwrap_err();
        assert!(matches!(e, TlsError::UnknownCipherSuite(_)), "{e}");
        assert!(e.to_string().contains("\"TLS_FOO\""), "{e}");
    }

    #[test]
    fn versions_and_providers() {
        assert_eq!(parse_tls_version("").unwrap(), TlsVersion::Tls12);
        assert_eq!(
            parse_tls_version("VersionTLS13").unwrap(),
            TlsVersion::Tls13
        );
        assert!(matches!(
            parse_tls_version("VersionTLS10"),
            Err(TlsError::UnsupportedVersion(_))
        ));
        assert!(matches!(
            parse_tls_version("TLS1.2"),
            Err(TlsError::UnknownVersion(_))
        ));
        let p = crypto_provider(&TlsSettings {
            min_version: TlsVersion::Tls12,
            cipher_suites: vec!["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384".into()],
        })
        .unwrap();
        let tls12: Vec<_> = p
            .cipher_suites
            .iter()
            .filter(|s| matches!(s, SupportedCipherSuite::Tls12(_)))
            .collect();
        assert_eq!(tls12.len(), 1);
        assert!(p.cipher_suites.len() > 1, "TLS 1.3 suites stay");
    }

    #[test]
    fn self_signed_is_made_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let (c, k) = self_signed(dir.path(), "node-a", &[ip]).unwrap();
        let first = std::fs::read_to_string(&c).unwrap();
        let id = Identity::from_pem(&first, &std::fs::read_to_string(&k).unwrap()).unwrap();
        let info = id.certificate();
        assert_eq!(info.dns_names, ["node-a"]);
        assert_eq!(info.ip_addresses, [ip]);
        assert!(info.server_auth);
        assert!(info.common_name.as_deref().unwrap().starts_with("node-a@"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&k).unwrap().permissions().mode() & 0o777,
            0o600
        );
        self_signed(dir.path(), "node-a", &[ip]).unwrap();
        assert_eq!(std::fs::read_to_string(&c).unwrap(), first);
        // A serving cert loads from the pair.
        let provider = Arc::new(crypto_provider(&TlsSettings::default()).unwrap());
        let s = ServingCert::load(CertSource::Files { cert: c, key: k }, provider).unwrap();
        assert!(s.ready());
    }

    /// A fresh serving identity, as the serverTLSBootstrap store keeps.
    fn identity(dir: &Path, host: &str) -> Identity {
        let sub = dir.join(host);
        let (c, k) = self_signed(&sub, host, &[]).unwrap();
        Identity::from_pem(
            &std::fs::read_to_string(c).unwrap(),
            &std::fs::read_to_string(k).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn the_bootstrap_certificate_is_picked_up_and_rotated_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let store = CertificateStore::server(dir.path().join("pki"));
        let provider = Arc::new(crypto_provider(&TlsSettings::default()).unwrap());
        let s = ServingCert::load(CertSource::Store(store.clone()), provider).unwrap();
        // Nothing issued yet: nothing to present, as in Go.
        assert!(!s.ready());
        assert!(!s.reload().unwrap());

        let first = identity(dir.path(), "first");
        store.update(&first).unwrap();
        assert!(s.reload().unwrap());
        assert!(!s.reload().unwrap(), "unchanged");
        let presented = |s: &ServingCert| {
            let guard = s.current.read().unwrap();
            let (_, ck) = guard.as_ref().unwrap();
            CertificateInfo::from_der(ck.end_entity_cert().unwrap()).unwrap()
        };
        assert_eq!(presented(&s).serial, first.certificate().serial);

        let second = identity(dir.path(), "second");
        store.update(&second).unwrap();
        assert!(s.reload().unwrap());
        assert_eq!(presented(&s).serial, second.certificate().serial);

        // A broken file keeps the certificate in use.
        std::fs::remove_file(store.current_path()).unwrap();
        std::fs::write(store.current_path(), "garbage").unwrap();
        assert!(s.reload().is_err());
        assert_eq!(presented(&s).serial, second.certificate().serial);
    }

    #[test]
    fn a_key_that_does_not_match_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) = self_signed(dir.path(), "a", &[]).unwrap();
        let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let provider = crypto_provider(&TlsSettings::default()).unwrap();
        let e = certified_key(
            &provider,
            &std::fs::read_to_string(c).unwrap(),
            &other.serialize_pem(),
        )
        .err()
        .unwrap();
        assert!(e.contains("does not match"), "{e}");
    }
}
