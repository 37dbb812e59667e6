//! TLS bootstrap (Go's `pkg/kubelet/certificate/bootstrap`,
//! `LoadClientCert`): make sure `--kubeconfig` holds a valid client
//! certificate, getting one with the `--bootstrap-kubeconfig` credentials
//! when it does not.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::csr::{self, CsrTemplate, PrivateKey};
use super::kubeconfig;
use super::manager::Issue;
use super::pem::{CertificateInfo, SecretPem, format_time};
use super::store::{self, CertificateStore};
use super::{CertificateError, Result, blocking};

/// How long the bootstrap waits for its request to be issued by default.
/// Go's kubelet waits an hour; a quarter is plenty when an approver runs
/// and gives a stuck node a clear error sooner.
pub const DEFAULT_CSR_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The key of a request in flight, kept so that a kubelet restarted while
/// waiting asks again with the same key and so finds its own request (the
/// name is derived from the key). Removed once the certificate is stored.
pub const BOOTSTRAP_KEY_FILE: &str = "kubelet-client.key.tmp";

/// The inputs of [`load_client_cert`].
#[derive(Clone, Debug)]
pub struct BootstrapConfig {
    /// `--kubeconfig`: read if valid, written after a bootstrap.
    pub kubeconfig: PathBuf,
    /// `--bootstrap-kubeconfig`.
    pub bootstrap_kubeconfig: Option<PathBuf>,
    /// `--cert-dir` (berth: `<root-dir>/pki`).
    pub cert_dir: PathBuf,
    pub node_name: String,
    /// How long to wait for the request to be approved and issued.
    pub csr_timeout: Duration,
}

impl BootstrapConfig {
    pub fn new(
        kubeconfig: impl Into<PathBuf>,
        bootstrap_kubeconfig: Option<PathBuf>,
        cert_dir: impl Into<PathBuf>,
        node_name: &str,
    ) -> Self {
        BootstrapConfig {
            kubeconfig: kubeconfig.into(),
            bootstrap_kubeconfig,
            cert_dir: cert_dir.into(),
            node_name: node_name.to_string(),
            csr_timeout: DEFAULT_CSR_TIMEOUT,
        }
    }
}

/// Where the kubeconfig's credentials came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientCertSource {
    /// The kubeconfig was usable as it was: a valid client certificate, or
    /// other credentials (a token) when no bootstrap kubeconfig is given.
    Kubeconfig,
    /// The cert dir held a valid certificate from an earlier bootstrap;
    /// the kubeconfig was written to use it, no request was made.
    CertDir(CertificateInfo),
    /// A new certificate was requested with the bootstrap credentials.
    Bootstrapped {
        csr_name: String,
        certificate: CertificateInfo,
    },
}

/// Makes sure `cfg.kubeconfig` can authenticate the node:
///
/// 1. a kubeconfig whose client certificate parses and has not expired is
///    kept as is;
/// 2. otherwise, with a bootstrap kubeconfig: a valid
///    `kubelet-client-current.pem` in the cert dir is reused, else a new
///    ECDSA key and a `kube-apiserver-client-kubelet` request for
///    `system:node:<node>` are made with the bootstrap credentials, and
///    the issued pair is stored in the cert dir;
///    then the kubeconfig is written (the bootstrap kubeconfig's cluster,
///    `kubelet-client-current.pem` as certificate and key);
/// 3. without one, an unusable kubeconfig is an error saying why.
pub async fn load_client_cert(cfg: &BootstrapConfig) -> Result<ClientCertSource> {
    let node = cfg.node_name.as_str();
    let state = kubeconfig_certificate(&cfg.kubeconfig).await;
    let reason = match (state, &cfg.bootstrap_kubeconfig) {
        (Ok(Some(cert)), _) => {
            tracing::info!(
                node,
                kubeconfig = %cfg.kubeconfig.display(),
                serial = %cert.serial,
                not_after = %format_time(cert.not_after),
                "the kubeconfig's client certificate is valid"
            );
            return Ok(ClientCertSource::Kubeconfig);
        }
        (Ok(None), None) => return Ok(ClientCertSource::Kubeconfig),
        (Err(e), None) => {
            return Err(CertificateError::NoBootstrapKubeconfig {
                reason: Box::new(e),
            });
        }
        (Ok(None), Some(_)) => CertificateError::ClientCertificateInvalid {
            kubeconfig: cfg.kubeconfig.clone(),
            file: "user".to_string(),
            reason: "no client certificate".to_string(),
        },
        (Err(e), Some(_)) => e,
    };
    let Some(bootstrap_path) = &cfg.bootstrap_kubeconfig else {
        return Err(CertificateError::NoBootstrapKubeconfig {
            reason: Box::new(reason),
        });
    };
    tracing::info!(
        node,
        reason = %reason,
        bootstrap_kubeconfig = %bootstrap_path.display(),
        "no usable client certificate in the kubeconfig; TLS bootstrap"
    );
    let bootstrap = kubeconfig::load(bootstrap_path).await?;
    let cert_dir = std::path::absolute(&cfg.cert_dir)
        .map_err(|e| CertificateError::io("resolving", &cfg.cert_dir, e))?;
    let store = CertificateStore::client(&cert_dir);

    // A certificate from an earlier bootstrap whose kubeconfig was lost.
    match store.current() {
        Ok(Some(id)) if id.expired_at(SystemTime::now()).is_none() => {
            let cert = id.certificate().clone();
            write_kubeconfig(cfg, &bootstrap.cluster, &store).await?;
            tracing::info!(
                node,
                file = %store.current_path().display(),
                serial = %cert.serial,
                "using the valid client certificate in the cert dir; kubeconfig written"
            );
            return Ok(ClientCertSource::CertDir(cert));
        }
        Ok(Some(_)) => tracing::info!(
            node,
            file = %store.current_path().display(),
            "the client certificate in the cert dir has expired"
        ),
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(node, error = %e, "ignoring the cert dir's current client certificate")
        }
    }

    let client = kube::Client::try_from(bootstrap.config_with(None)).map_err(|e| {
        CertificateError::KubeconfigInvalid {
            path: bootstrap_path.clone(),
            reason: format!("building the apiserver client: {e}"),
        }
    })?;
    let key = {
        let dir = cert_dir.clone();
        let owner = node.to_string();
        let pem = blocking(move || bootstrap_key(&dir, &owner)).await?;
        PrivateKey::from_pem(&pem)?
    };
    let template = CsrTemplate::client(node);
    let name = template.digested_name(&key, &csr::CLIENT_USAGES);
    let issued = Issue {
        node,
        client: &client,
        store: &store,
        template: &template,
        key: &key,
        name: Some(name),
        signer_name: csr::SIGNER_KUBELET_CLIENT,
        usages: &csr::CLIENT_USAGES,
        timeout: cfg.csr_timeout,
    }
    .run()
    .await;
    let key_file = cert_dir.join(BOOTSTRAP_KEY_FILE);
    let (csr_name, identity, path) = match issued {
        Ok(done) => done,
        Err(e) => {
            // A denied or failed request stays so: the next attempt needs
            // a new key, hence a new request. Otherwise keep the key, so a
            // restart finds the request in flight.
            if matches!(
                e,
                CertificateError::CsrDenied { .. } | CertificateError::CsrFailed { .. }
            ) {
                remove_bootstrap_key(&key_file, node);
            }
            return Err(with_bootstrap_context(e, bootstrap_path));
        }
    };
    remove_bootstrap_key(&key_file, node);
    write_kubeconfig(cfg, &bootstrap.cluster, &store).await?;
    let certificate = identity.certificate().clone();
    tracing::info!(
        node,
        csr = %csr_name,
        serial = %certificate.serial,
        not_after = %format_time(certificate.not_after),
        file = %path.display(),
        kubeconfig = %cfg.kubeconfig.display(),
        "TLS bootstrap done: client certificate issued"
    );
    Ok(ClientCertSource::Bootstrapped {
        csr_name,
        certificate,
    })
}

/// The kubeconfig's client certificate if it is valid; `None` if the
/// kubeconfig uses no client certificate; an error saying what is wrong
/// otherwise (Go's `isClientConfigStillValid`).
pub async fn kubeconfig_certificate(path: &Path) -> Result<Option<CertificateInfo>> {
    let loaded = kubeconfig::load(path).await?;
    let Some(identity) = loaded.identity()? else {
        return Ok(None);
    };
    if let Some(expired) = identity.expired_at(SystemTime::now()) {
        return Err(CertificateError::ClientCertificateExpired {
            kubeconfig: path.to_path_buf(),
            file: loaded.certificate_source(),
            not_after: format_time(expired.not_after),
        });
    }
    Ok(Some(identity.certificate().clone()))
}

/// The key of the request in flight: the one a previous attempt left, or
/// a new one written for the next attempt.
fn bootstrap_key(cert_dir: &Path, node: &str) -> Result<SecretPem> {
    let path = cert_dir.join(BOOTSTRAP_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let pem = SecretPem::new(text);
            if PrivateKey::from_pem(&pem).is_ok() {
                return Ok(pem);
            }
            tracing::warn!(node, file = %path.display(), "the saved bootstrap key does not parse; making a new one");
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(CertificateError::io("reading", path, e)),
    }
    let pem = PrivateKey::generate()?.to_pem();
    store::create_dir(cert_dir)?;
    store::write_private(&path, &pem)?;
    Ok(pem)
}

fn remove_bootstrap_key(key_file: &Path, node: &str) {
    if let Err(e) = std::fs::remove_file(key_file)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(node, file = %key_file.display(), error = %e, "removing the bootstrap key");
    }
}

async fn write_kubeconfig(
    cfg: &BootstrapConfig,
    cluster: &kube::config::Cluster,
    store: &CertificateStore,
) -> Result<()> {
    let path = cfg.kubeconfig.clone();
    let cluster = cluster.clone();
    let pem = store.current_path();
    blocking(move || kubeconfig::write_for_client_pem(&path, &cluster, &pem)).await
}

/// Says which credentials an apiserver error came with.
fn with_bootstrap_context(e: CertificateError, bootstrap: &Path) -> CertificateError {
    let suffix = format!(
        " with the credentials of bootstrap kubeconfig {}",
        bootstrap.display()
    );
    match e {
        CertificateError::Api { action, source } => CertificateError::Api {
            action: action + &suffix,
            source,
        },
        CertificateError::Unreachable { action, source } => CertificateError::Unreachable {
            action: action + &suffix,
            source,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificate::pem::testing::{self_signed, self_signed_with};

    fn write_kc(dir: &Path, name: &str, user: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n{user}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n"
            ),
        )
        .unwrap();
        path
    }

    #[tokio::test]
    async fn a_valid_kubeconfig_is_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed("system:node:n", &["system:nodes"]);
        std::fs::write(tmp.path().join("c.pem"), format!("{cert}{key}")).unwrap();
        let kc = write_kc(
            tmp.path(),
            "kubelet.conf",
            "    client-certificate: c.pem\n    client-key: c.pem",
        );
        let before = std::fs::read(&kc).unwrap();
        let cfg = BootstrapConfig::new(&kc, None, tmp.path().join("pki"), "n");
        assert_eq!(
            load_client_cert(&cfg).await.unwrap(),
            ClientCertSource::Kubeconfig
        );
        assert_eq!(std::fs::read(&kc).unwrap(), before);
        assert!(!tmp.path().join("pki").exists());
    }

    #[tokio::test]
    async fn without_bootstrap_the_reason_is_the_error() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("kubelet.conf");
        let cfg = BootstrapConfig::new(&missing, None, tmp.path(), "n");
        let e = load_client_cert(&cfg).await.unwrap_err().to_string();
        assert!(e.contains("kubelet.conf does not exist"), "{e}");
        assert!(e.contains("--bootstrap-kubeconfig"), "{e}");

        let (old, old_key) = self_signed_with("system:node:n", &[], |p| {
            p.not_before = rcgen::date_time_ymd(2000, 1, 1);
            p.not_after = rcgen::date_time_ymd(2001, 1, 1);
        });
        std::fs::write(tmp.path().join("old.pem"), format!("{old}{old_key}")).unwrap();
        let kc = write_kc(
            tmp.path(),
            "expired.conf",
            "    client-certificate: old.pem\n    client-key: old.pem",
        );
        let cfg = BootstrapConfig::new(&kc, None, tmp.path(), "n");
        let e = load_client_cert(&cfg).await.unwrap_err().to_string();
        assert!(
            e.contains("old.pem") && e.contains("expired at 2001-01-01"),
            "{e}"
        );

        // A token kubeconfig is fine when there is nothing to bootstrap.
        let kc = write_kc(tmp.path(), "token.conf", "    token: abc");
        let cfg = BootstrapConfig::new(&kc, None, tmp.path(), "n");
        assert_eq!(
            load_client_cert(&cfg).await.unwrap(),
            ClientCertSource::Kubeconfig
        );
    }

    #[tokio::test]
    async fn a_missing_bootstrap_kubeconfig_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = BootstrapConfig::new(
            tmp.path().join("kubelet.conf"),
            Some(tmp.path().join("bootstrap.conf")),
            tmp.path().join("pki"),
            "n",
        );
        let e = load_client_cert(&cfg).await.unwrap_err();
        assert!(
            matches!(e, CertificateError::KubeconfigMissing { ref path } if path.ends_with("bootstrap.conf")),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_valid_certificate_in_the_cert_dir_is_reused_without_a_request() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = tmp.path().join("pki");
        let (cert, key) = self_signed("system:node:n", &["system:nodes"]);
        let id = crate::certificate::Identity::from_pem(&cert, &key).unwrap();
        CertificateStore::client(&pki).update(&id).unwrap();
        // The bootstrap kubeconfig's server does not answer: no request may
        // be made.
        let bootstrap = write_kc(tmp.path(), "bootstrap.conf", "    token: abc.def");
        let kc = tmp.path().join("kubelet.conf");
        let cfg = BootstrapConfig::new(&kc, Some(bootstrap), &pki, "n");
        let got = load_client_cert(&cfg).await.unwrap();
        assert_eq!(got, ClientCertSource::CertDir(id.certificate().clone()));
        let written = kubeconfig_certificate(&kc).await.unwrap().unwrap();
        assert_eq!(written.serial, id.certificate().serial);
        // And now the kubeconfig alone is enough.
        assert_eq!(
            load_client_cert(&cfg).await.unwrap(),
            ClientCertSource::Kubeconfig
        );
    }

    #[tokio::test]
    async fn an_unreachable_apiserver_is_a_clear_error_and_the_key_is_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = tmp.path().join("pki");
        let bootstrap = write_kc(tmp.path(), "bootstrap.conf", "    token: abc.def");
        let cfg = BootstrapConfig::new(tmp.path().join("kubelet.conf"), Some(bootstrap), &pki, "n");
        let e = load_client_cert(&cfg).await.unwrap_err();
        assert!(matches!(e, CertificateError::Unreachable { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("unreachable") && text.contains("bootstrap.conf"),
            "{text}"
        );
        assert!(!text.contains("abc.def"), "{text}");
        // The key of the attempt stays for the next one, private.
        use std::os::unix::fs::PermissionsExt;
        let key = pki.join(BOOTSTRAP_KEY_FILE);
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let first = std::fs::read(&key).unwrap();
        let _ = load_client_cert(&cfg).await.unwrap_err();
        assert_eq!(std::fs::read(&key).unwrap(), first);
    }
}
