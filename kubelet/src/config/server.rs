//! The kubelet API (port 10250): serving, `authentication` and
//! `authorization`, with the Go kubelet's flags, fields and defaults.
//!
//! Where Berth departs from Go:
//! - `authentication.anonymous.enabled` defaults to false, as kubeadm sets
//!   it (Go's flag default is true);
//! - without `--kubeconfig` there is no apiserver to ask, so token webhook
//!   authentication defaults to off and the authorization mode to
//!   AlwaysAllow; asking for either explicitly is an error naming the flag
//!   or field (Go fails at start with "no client provided");
//! - without an `address`, the API listens on 0.0.0.0 (Go's default) while
//!   the read-only port stays on 127.0.0.1;
//! - `--port 0` turns the API off.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::file::ServerFields;
use super::flags::KubeletFlags;
use super::{ConfigError, absolute, parse_go_duration};
use crate::server::tls::{TlsSettings, TlsVersion, cipher_suites, parse_tls_version};

/// The Go kubelet's API port.
pub const DEFAULT_PORT: u16 = 10250;

/// `authorization.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthorizationMode {
    AlwaysAllow,
    Webhook,
}

impl AuthorizationMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthorizationMode::AlwaysAllow => "AlwaysAllow",
            AuthorizationMode::Webhook => "Webhook",
        }
    }
}

/// `authentication`.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthenticationConfig {
    pub anonymous: bool,
    /// Bearer tokens through TokenReview.
    pub webhook: bool,
    pub webhook_cache_ttl: Duration,
    pub client_ca_file: Option<PathBuf>,
}

/// `authorization`.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthorizationConfig {
    pub mode: AuthorizationMode,
    pub cache_authorized_ttl: Duration,
    pub cache_unauthorized_ttl: Duration,
}

/// The kubelet API's configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    /// `enableServer` and a port other than 0.
    pub enabled: bool,
    pub address: IpAddr,
    pub port: u16,
    /// Where the self-signed `kubelet.crt`/`kubelet.key` go.
    pub cert_dir: PathBuf,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_private_key_file: Option<PathBuf>,
    /// Serve the `serverTLSBootstrap` certificate (joined mode only).
    pub server_tls_bootstrap: bool,
    pub tls_min_version: TlsVersion,
    /// Go's names, checked.
    pub tls_cipher_suites: Vec<String>,
    pub authentication: AuthenticationConfig,
    pub authorization: AuthorizationConfig,
    pub enable_debugging_handlers: bool,
}

impl ServerConfig {
    pub fn tls_settings(&self) -> TlsSettings {
        TlsSettings {
            min_version: self.tls_min_version,
            cipher_suites: self.tls_cipher_suites.clone(),
        }
    }
}

/// Names where a setting came from, for messages.
enum Origin<'a> {
    Flag(&'static str),
    Field(&'a Path, &'static str),
}

impl Origin<'_> {
    fn error(&self, reason: String) -> ConfigError {
        match self {
            Origin::Flag(flag) => ConfigError::InvalidFlag { flag, reason },
            Origin::Field(path, field) => ConfigError::InvalidField {
                path: path.to_path_buf(),
                field: (*field).to_string(),
                reason,
            },
        }
    }
}

/// The value of a flag or else the file's field, with where it came from.
fn pick<'a, T>(
    flag: Option<T>,
    flag_name: &'static str,
    field: Option<T>,
    file: Option<&'a Path>,
    field_name: &'static str,
) -> Option<(T, Origin<'a>)> {
    match (flag, field, file) {
        (Some(v), _, _) => Some((v, Origin::Flag(flag_name))),
        (None, Some(v), Some(path)) => Some((v, Origin::Field(path, field_name))),
        (None, Some(v), None) => Some((v, Origin::Flag(flag_name))),
        (None, None, _) => None,
    }
}

fn flag_duration(
    value: &Option<String>,
    flag: &'static str,
) -> Result<Option<Duration>, ConfigError> {
    match value {
        None => Ok(None),
        Some(s) => parse_go_duration(s)
            .map(Some)
            .ok_or_else(|| ConfigError::InvalidFlag {
                flag,
                reason: format!("{s:?} is not a duration (e.g. 30s, 2m)"),
            }),
    }
}

/// The API's configuration from the flags and the file's fields. `joined`:
/// `--kubeconfig` was given; `file` is the config file's path.
pub(super) fn server_config(
    flags: &KubeletFlags,
    fields: ServerFields,
    file: Option<&Path>,
    file_port: Option<u16>,
    server_tls_bootstrap: bool,
    address: Option<IpAddr>,
    root_dir: &Path,
) -> Result<ServerConfig, ConfigError> {
    let joined = flags.kubeconfig.is_some();
    let port = flags.port.or(file_port).unwrap_or(DEFAULT_PORT);
    let cert_dir = match &flags.cert_dir {
        Some(p) => absolute(p, "cert-dir")?,
        None => root_dir.join("pki"),
    };
    let tls_cert_file = match &flags.tls_cert_file {
        Some(p) => Some(absolute(p, "tls-cert-file")?),
        None => fields.tls_cert_file,
    };
    let tls_private_key_file = match &flags.tls_private_key_file {
        Some(p) => Some(absolute(p, "tls-private-key-file")?),
        None => fields.tls_private_key_file,
    };
    if tls_cert_file.is_some() != tls_private_key_file.is_some() {
        let (flag, field) = if tls_cert_file.is_some() {
            ("tls-private-key-file", "tlsPrivateKeyFile")
        } else {
            ("tls-cert-file", "tlsCertFile")
        };
        let origin = match file {
            Some(path) if flags.tls_cert_file.is_none() && flags.tls_private_key_file.is_none() => {
                Origin::Field(path, field)
            }
            _ => Origin::Flag(flag),
        };
        return Err(origin.error(
            "is missing: tlsCertFile and tlsPrivateKeyFile (--tls-cert-file and --tls-private-key-file) go together".into(),
        ));
    }

    let tls_min_version = match pick(
        flags.tls_min_version.clone(),
        "tls-min-version",
        fields.tls_min_version,
        file,
        "tlsMinVersion",
    ) {
        Some((v, origin)) => parse_tls_version(&v).map_err(|e| origin.error(e.to_string()))?,
        None => TlsVersion::Tls12,
    };
    let tls_cipher_suites = match pick(
        flags.tls_cipher_suites.clone(),
        "tls-cipher-suites",
        fields.tls_cipher_suites,
        file,
        "tlsCipherSuites",
    ) {
        Some((names, origin)) => {
            let names: Vec<String> = names
                .iter()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .collect();
            cipher_suites(&names).map_err(|e| origin.error(e.to_string()))?;
            names
        }
        None => Vec::new(),
    };

    let client_ca_file = match &flags.client_ca_file {
        Some(p) => Some(absolute(p, "client-ca-file")?),
        None => fields.client_ca_file,
    };
    let standalone = |what: &str| {
        format!("{what} needs --kubeconfig (the apiserver answers it), and berth runs standalone")
    };
    let webhook = match pick(
        flags.authentication_token_webhook,
        "authentication-token-webhook",
        fields.webhook,
        file,
        "authentication.webhook.enabled",
    ) {
        Some((true, origin)) if !joined => {
            return Err(origin.error(standalone("token webhook authentication (a TokenReview)")));
        }
        Some((v, _)) => v,
        None => joined,
    };
    let mode = match pick(
        flags.authorization_mode.clone(),
        "authorization-mode",
        fields.authorization_mode,
        file,
        "authorization.mode",
    ) {
        Some((m, origin)) => match m.as_str() {
            "AlwaysAllow" => AuthorizationMode::AlwaysAllow,
            "Webhook" if joined => AuthorizationMode::Webhook,
            "Webhook" => {
                return Err(
                    origin.error(standalone("Webhook authorization (a SubjectAccessReview)"))
                );
            }
            other => {
                return Err(origin.error(format!(
                    "unknown authorization mode {other:?} (AlwaysAllow or Webhook)"
                )));
            }
        },
        None if joined => AuthorizationMode::Webhook,
        None => AuthorizationMode::AlwaysAllow,
    };
    let webhook_cache_ttl = flag_duration(
        &flags.authentication_token_webhook_cache_ttl,
        "authentication-token-webhook-cache-ttl",
    )?
    .or(fields.webhook_cache_ttl)
    .unwrap_or(Duration::from_secs(120));
    let cache_authorized_ttl = flag_duration(
        &flags.authorization_webhook_cache_authorized_ttl,
        "authorization-webhook-cache-authorized-ttl",
    )?
    .or(fields.cache_authorized_ttl)
    .unwrap_or(Duration::from_secs(300));
    let cache_unauthorized_ttl = flag_duration(
        &flags.authorization_webhook_cache_unauthorized_ttl,
        "authorization-webhook-cache-unauthorized-ttl",
    )?
    .or(fields.cache_unauthorized_ttl)
    .unwrap_or(Duration::from_secs(30));

    Ok(ServerConfig {
        enabled: fields.enable_server.unwrap_or(true) && port != 0,
        address: address.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        port,
        cert_dir,
        tls_cert_file,
        tls_private_key_file,
        server_tls_bootstrap: joined && server_tls_bootstrap,
        tls_min_version,
        tls_cipher_suites,
        authentication: AuthenticationConfig {
            anonymous: flags.anonymous_auth.or(fields.anonymous).unwrap_or(false),
            webhook,
            webhook_cache_ttl,
            client_ca_file,
        },
        authorization: AuthorizationConfig {
            mode,
            cache_authorized_ttl,
            cache_unauthorized_ttl,
        },
        enable_debugging_handlers: flags
            .enable_debugging_handlers
            .or(fields.enable_debugging_handlers)
            .unwrap_or(true),
    })
}
