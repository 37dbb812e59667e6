//! Reading a kubeconfig into kube-rs's client config and the identity it
//! names, and writing the kubeconfig the TLS bootstrap leaves behind (the
//! clientcmd parts of Go's `bootstrap` package).
//!
//! kube-rs reads a client certificate and key itself when given paths, but
//! reads each file separately, so with one `kubelet-client-current.pem`
//! for both it would read the file twice (a rotation in between could mix
//! two pairs) and send the certificate twice. Berth reads the identity once
//! and hands kube-rs the certificate and the key as inline data.

use std::path::{Path, PathBuf};

use base64::Engine;
use kube::config::{
    AuthInfo, Cluster, Context, KubeConfigOptions, Kubeconfig, KubeconfigError, NamedAuthInfo,
    NamedCluster, NamedContext,
};

use super::pem::Identity;
use super::{CertificateError, Result};

/// A kubeconfig, resolved to its current context.
#[derive(Clone)]
pub struct LoadedKubeconfig {
    pub path: PathBuf,
    /// The current context's cluster; relative CA paths made absolute.
    pub cluster: Cluster,
    /// kube-rs's client config for the current context.
    pub config: kube::Config,
}

impl std::fmt::Debug for LoadedKubeconfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedKubeconfig")
            .field("path", &self.path)
            .field("server", &self.cluster.server)
            .finish_non_exhaustive()
    }
}

/// Reads and resolves the kubeconfig at `path`.
pub async fn load(path: &Path) -> Result<LoadedKubeconfig> {
    match std::fs::metadata(path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CertificateError::KubeconfigMissing {
                path: path.to_path_buf(),
            });
        }
        Err(e) => {
            return Err(CertificateError::KubeconfigRead {
                path: path.to_path_buf(),
                source: e,
            });
        }
    }
    let kc = Kubeconfig::read_from(path).map_err(|e| kubeconfig_error(path, e))?;
    let cluster = current_cluster(&kc).map_err(|reason| CertificateError::KubeconfigInvalid {
        path: path.to_path_buf(),
        reason,
    })?;
    if cluster.server.as_deref().unwrap_or_default().is_empty() {
        return Err(CertificateError::KubeconfigInvalid {
            path: path.to_path_buf(),
            reason: "the current context's cluster has no server".to_string(),
        });
    }
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| kubeconfig_error(path, e))?;
    Ok(LoadedKubeconfig {
        path: path.to_path_buf(),
        cluster,
        config,
    })
}

/// kube-rs's errors, without anything that could quote the file: a YAML
/// error's text can include a snippet of the input, which may hold a
/// token or key, so only its position is kept.
fn kubeconfig_error(path: &Path, e: KubeconfigError) -> CertificateError {
    let path = path.to_path_buf();
    match e {
        KubeconfigError::ReadConfig(source, _) => CertificateError::KubeconfigRead { path, source },
        KubeconfigError::Parse(err) => {
            let at = err
                .location()
                .map(|l| format!(" at line {} column {}", l.line(), l.column()))
                .unwrap_or_default();
            CertificateError::KubeconfigInvalid {
                path,
                reason: format!("not a valid kubeconfig YAML document{at}"),
            }
        }
        other => CertificateError::KubeconfigInvalid {
            path,
            reason: other.to_string(),
        },
    }
}

fn current_cluster(kc: &Kubeconfig) -> std::result::Result<Cluster, String> {
    let name = kc
        .current_context
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or("no current-context")?;
    let context = kc
        .contexts
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| c.context.as_ref())
        .ok_or_else(|| format!("current-context {name:?} is not among its contexts"))?;
    kc.clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.clone())
        .ok_or_else(|| {
            format!(
                "cluster {:?} of context {name:?} is not among its clusters",
                context.cluster
            )
        })
}

impl LoadedKubeconfig {
    /// The client certificate and key of the current user, read once
    /// each (once in all when both name the same file). `None` when the
    /// user has no client certificate (e.g. a bearer token).
    pub fn identity(&self) -> Result<Option<Identity>> {
        let auth = &self.config.auth_info;
        let key_data = inline_key(auth);
        let cert = Source::of(
            auth.client_certificate_data.clone(),
            auth.client_certificate.as_deref(),
            "client-certificate-data",
        );
        let key = Source::of(key_data, auth.client_key.as_deref(), "client-key-data");
        let invalid = |file: &str, reason: String| CertificateError::ClientCertificateInvalid {
            kubeconfig: self.path.clone(),
            file: file.to_string(),
            reason,
        };
        let (cert, key) = match (cert, key) {
            (None, None) => return Ok(None),
            (Some(c), None) => {
                return Err(invalid(
                    c.name(),
                    "client-certificate is set but client-key is not".to_string(),
                ));
            }
            (None, Some(k)) => {
                return Err(invalid(
                    k.name(),
                    "client-key is set but client-certificate is not".to_string(),
                ));
            }
            (Some(c), Some(k)) => (c, k),
        };
        let cert_text = cert.read().map_err(|r| invalid(cert.name(), r))?;
        let key_text = if cert.same_file(&key) {
            cert_text.clone()
        } else {
            key.read().map_err(|r| invalid(key.name(), r))?
        };
        let name = if cert.same_file(&key) {
            cert.name().to_string()
        } else {
            format!("{} and {}", cert.name(), key.name())
        };
        Identity::from_pem(&cert_text, &key_text)
            .map(Some)
            .map_err(|r| invalid(&name, r))
    }

    /// The name of the certificate source, for messages: its file, or the
    /// kubeconfig field.
    pub fn certificate_source(&self) -> String {
        let auth = &self.config.auth_info;
        match (&auth.client_certificate_data, &auth.client_certificate) {
            (Some(_), _) => "client-certificate-data".to_string(),
            (None, Some(p)) => p.clone(),
            (None, None) => "no client certificate".to_string(),
        }
    }

    /// The client config with `identity` as its client certificate and key
    /// (inline), or with the kubeconfig's own credentials when `None`.
    pub fn config_with(&self, identity: Option<&Identity>) -> kube::Config {
        let mut config = self.config.clone();
        if let Some(id) = identity {
            let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
            config.auth_info.client_certificate = None;
            config.auth_info.client_key = None;
            config.auth_info.client_certificate_data = Some(b64(id.cert_pem()));
            config.auth_info.client_key_data = Some(b64(id.key_pem().expose()).into());
        }
        config
    }
}

/// `client-key-data`. kube-rs keeps it as a `secrecy` string, readable only
/// through that crate's trait; its own serializer writes it out, so read it
/// back from there instead of adding the crate.
fn inline_key(auth: &AuthInfo) -> Option<String> {
    auth.client_key_data.as_ref()?;
    serde_json::to_value(auth)
        .ok()?
        .get("client-key-data")?
        .as_str()
        .map(str::to_string)
}

enum Source<'a> {
    Inline { field: &'static str, b64: String },
    File(&'a str),
}

impl<'a> Source<'a> {
    fn of(data: Option<String>, file: Option<&'a str>, field: &'static str) -> Option<Self> {
        match (data, file) {
            (Some(b64), _) => Some(Source::Inline { field, b64 }),
            (None, Some(f)) if !f.is_empty() => Some(Source::File(f)),
            _ => None,
        }
    }

    fn name(&self) -> &str {
        match self {
            Source::Inline { field, .. } => field,
            Source::File(f) => f,
        }
    }

    fn same_file(&self, other: &Source<'_>) -> bool {
        matches!((self, other), (Source::File(a), Source::File(b)) if a == b)
    }

    fn read(&self) -> std::result::Result<String, String> {
        let bytes = match self {
            Source::Inline { b64, .. } => base64::engine::general_purpose::STANDARD
                .decode(b64.trim().as_bytes())
                .map_err(|_| "not valid base64".to_string())?,
            Source::File(f) => std::fs::read(f).map_err(|e| format!("cannot read: {e}"))?,
        };
        String::from_utf8(bytes).map_err(|_| "not PEM text".to_string())
    }
}

/// The kubeconfig a bootstrapped kubelet uses from then on: the bootstrap
/// kubeconfig's cluster, and `pem` (a `kubelet-client-current.pem`) as the
/// client certificate and key. Written whole, mode 0600.
pub fn write_for_client_pem(path: &Path, cluster: &Cluster, pem: &Path) -> Result<()> {
    let pem = pem.to_string_lossy().into_owned();
    let kc = Kubeconfig {
        api_version: Some("v1".to_string()),
        kind: Some("Config".to_string()),
        clusters: vec![NamedCluster {
            name: "default-cluster".to_string(),
            cluster: Some(cluster.clone()),
            ..Default::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: "default-auth".to_string(),
            auth_info: Some(AuthInfo {
                client_certificate: Some(pem.clone()),
                client_key: Some(pem),
                ..Default::default()
            }),
            ..Default::default()
        }],
        contexts: vec![NamedContext {
            name: "default-context".to_string(),
            context: Some(Context {
                cluster: "default-cluster".to_string(),
                user: Some("default-auth".to_string()),
                namespace: Some("default".to_string()),
                ..Default::default()
            }),
            ..Default::default()
        }],
        current_context: Some("default-context".to_string()),
        ..Default::default()
    };
    let yaml = serde_saphyr::to_string(&kc).map_err(|e| CertificateError::KubeconfigInvalid {
        path: path.to_path_buf(),
        reason: format!("serializing: {e}"),
    })?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| CertificateError::io("creating directory", dir, e))?;
    }
    super::store::write_atomic(path, yaml.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificate::pem::testing::{self_signed, self_signed_with};

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBfjCCASWgAwIBAgIUZ7Qsiwan2joRz01p25/cy1XNNiwwCgYIKoZIzj0EAwIw\n-----END CERTIFICATE-----\n";

    fn kubeconfig(dir: &Path, user: &str) -> PathBuf {
        let path = dir.join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n{user}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n"
            ),
        )
        .unwrap();
        path
    }

    #[tokio::test]
    async fn a_missing_kubeconfig_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("nope.conf");
        let e = load(&path).await.unwrap_err();
        assert!(matches!(e, CertificateError::KubeconfigMissing { .. }));
        assert!(e.to_string().contains("nope.conf"), "{e}");
    }

    #[tokio::test]
    async fn garbage_yaml_is_named_without_quoting_it() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("bad.conf");
        std::fs::write(&path, "users:\n- name: u\n  user: {token: s3cr3t-token\n").unwrap();
        let e = load(&path).await.unwrap_err().to_string();
        assert!(e.contains("bad.conf") && e.contains("invalid"), "{e}");
        assert!(!e.contains("s3cr3t"), "{e}");
    }

    #[tokio::test]
    async fn a_missing_certificate_file_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let path = kubeconfig(
            tmp.path(),
            "    client-certificate: missing.pem\n    client-key: missing.pem",
        );
        let loaded = load(&path).await.unwrap();
        let e = loaded.identity().unwrap_err();
        let text = e.to_string();
        // Relative paths resolve against the kubeconfig's directory.
        let missing = tmp.path().join("missing.pem");
        assert!(
            text.contains(&missing.to_string_lossy().into_owned()),
            "{text}"
        );
        assert!(text.contains("cannot read"), "{text}");
        assert!(matches!(
            e,
            CertificateError::ClientCertificateInvalid { .. }
        ));
    }

    #[tokio::test]
    async fn a_garbage_certificate_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("client.pem"), "garbage, not PEM\n").unwrap();
        let path = kubeconfig(
            tmp.path(),
            "    client-certificate: client.pem\n    client-key: client.pem",
        );
        let e = load(&path)
            .await
            .unwrap()
            .identity()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("client.pem") && e.contains("no CERTIFICATE PEM block"),
            "{e}"
        );
        assert!(e.contains("kubeconfig"), "{e}");
    }

    #[tokio::test]
    async fn identity_from_files_and_from_inline_data() {
        let tmp = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed("system:node:n", &["system:nodes"]);
        std::fs::write(tmp.path().join("c.pem"), format!("{cert}{key}")).unwrap();
        let from_file = load(&kubeconfig(
            tmp.path(),
            "    client-certificate: c.pem\n    client-key: c.pem",
        ))
        .await
        .unwrap()
        .identity()
        .unwrap()
        .unwrap();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let loaded = load(&kubeconfig(
            tmp.path(),
            &format!(
                "    client-certificate-data: {}\n    client-key-data: {}",
                b64(&cert),
                b64(&key)
            ),
        ))
        .await
        .unwrap();
        let inline = loaded.identity().unwrap().unwrap();
        assert_eq!(from_file.certificate(), inline.certificate());
        assert_eq!(inline.key_pem().expose(), key);
        // The client config carries the pair inline, once.
        let config = loaded.config_with(Some(&inline));
        assert!(config.auth_info.client_certificate.is_none());
        assert_eq!(
            inline_key(&config.auth_info).as_deref(),
            Some(b64(&key).as_str())
        );
        // A token user has no identity.
        let token = load(&kubeconfig(tmp.path(), "    token: abc"))
            .await
            .unwrap();
        assert!(token.identity().unwrap().is_none());
        // Expiry is seen.
        let (old, old_key) = self_signed_with("system:node:n", &[], |p| {
            p.not_before = rcgen::date_time_ymd(2000, 1, 1);
            p.not_after = rcgen::date_time_ymd(2001, 1, 1);
        });
        let expired = Identity::from_pem(&old, &old_key).unwrap();
        assert!(expired.expired_at(std::time::SystemTime::now()).is_some());
    }

    #[tokio::test]
    async fn written_kubeconfig_points_at_the_pem() {
        let tmp = tempfile::tempdir().unwrap();
        let cluster = Cluster {
            server: Some("https://10.0.0.1:6443".to_string()),
            certificate_authority_data: Some(base64::engine::general_purpose::STANDARD.encode(CA)),
            ..Default::default()
        };
        let path = tmp.path().join("sub/kubelet.conf");
        let pem = tmp.path().join("pki/kubelet-client-current.pem");
        write_for_client_pem(&path, &cluster, &pem).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let kc = Kubeconfig::read_from(&path).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("default-context"));
        let auth = kc.auth_infos[0].auth_info.as_ref().unwrap();
        let p = pem.to_string_lossy().into_owned();
        assert_eq!(auth.client_certificate.as_deref(), Some(p.as_str()));
        assert_eq!(auth.client_key.as_deref(), Some(p.as_str()));
        let c = kc.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(c.server.as_deref(), Some("https://10.0.0.1:6443"));
        assert_eq!(
            c.certificate_authority_data,
            cluster.certificate_authority_data
        );
    }
}
