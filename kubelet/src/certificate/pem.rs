//! PEM blocks, what the kubelet needs to know of a certificate, and a
//! certificate chain with its private key (Go's `certutil`/`keyutil` and
//! `tls.Certificate`).

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;

const CERTIFICATE: &str = "CERTIFICATE";
const KEY_LABELS: [&str; 3] = ["PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"];

/// PEM text holding a private key. Its `Debug` shows no key material.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretPem(String);

impl SecretPem {
    pub fn new(pem: String) -> Self {
        SecretPem(pem)
    }

    /// The PEM text. Only for writing files and building TLS configs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretPem(<redacted>)")
    }
}

/// One `-----BEGIN LABEL-----` … `-----END LABEL-----` block.
#[derive(Clone)]
pub(crate) struct Block {
    pub label: String,
    /// The block's text, BEGIN and END lines included, newline-terminated.
    pub text: String,
    pub der: Vec<u8>,
}

/// Splits PEM text into blocks; text between blocks is ignored, as Go's
/// `pem.Decode` does. The error never quotes the input.
pub(crate) fn parse_blocks(text: &str) -> Result<Vec<Block>, String> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, String, String)> = None; // label, text, base64
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r').trim();
        match &mut open {
            None => {
                if let Some(label) = marker(line, "-----BEGIN ") {
                    open = Some((label.to_string(), format!("{line}\n"), String::new()));
                }
            }
            Some((label, block_text, b64)) => {
                if let Some(end) = marker(line, "-----END ") {
                    if end != label {
                        return Err(format!(
                            "PEM block {label} ends with END {end} on line {}",
                            i + 1
                        ));
                    }
                    block_text.push_str(line);
                    block_text.push('\n');
                    let der = base64::engine::general_purpose::STANDARD
                        .decode(b64.as_bytes())
                        .map_err(|_| {
                            format!(
                                "PEM block {label} ending on line {} is not valid base64",
                                i + 1
                            )
                        })?;
                    blocks.push(Block {
                        label: label.clone(),
                        text: std::mem::take(block_text),
                        der,
                    });
                    open = None;
                } else if line.contains(':') {
                    // RFC 1421 headers (Proc-Type, DEK-Info): encrypted keys,
                    // which the kubelet cannot use.
                    return Err(format!("PEM block {label} has headers (an encrypted key?)"));
                } else {
                    block_text.push_str(line);
                    block_text.push('\n');
                    b64.push_str(line);
                }
            }
        }
    }
    if let Some((label, _, _)) = open {
        return Err(format!("PEM block {label} has no END line"));
    }
    Ok(blocks)
}

fn marker<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    line.strip_prefix(prefix)?.strip_suffix("-----")
}

/// What the kubelet needs to know of an X.509 certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateInfo {
    /// The serial number, hex, as `openssl x509 -serial` without colons.
    pub serial: String,
    pub common_name: Option<String>,
    pub organizations: Vec<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub client_auth: bool,
    pub server_auth: bool,
    /// The subject public key (the BIT STRING's contents).
    pub public_key: Vec<u8>,
}

impl CertificateInfo {
    /// Parses one DER certificate. The error says what is wrong, never
    /// quotes the input.
    pub fn from_der(der: &[u8]) -> Result<Self, String> {
        let (rest, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| format!("not an X.509 certificate: {e}"))?;
        if !rest.is_empty() {
            return Err("trailing data after the certificate".to_string());
        }
        let subject = cert.subject();
        let text = |a: &x509_parser::x509::AttributeTypeAndValue<'_>| {
            a.as_str().map(str::to_string).map_err(|e| e.to_string())
        };
        let common_name = subject.iter_common_name().next().map(text).transpose()?;
        let organizations = subject
            .iter_organization()
            .map(text)
            .collect::<Result<Vec<_>, _>>()?;
        let mut dns_names = Vec::new();
        let mut ip_addresses = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    x509_parser::extensions::GeneralName::DNSName(d) => {
                        dns_names.push((*d).to_string());
                    }
                    x509_parser::extensions::GeneralName::IPAddress(b) => {
                        if let Some(ip) = ip_from_bytes(b) {
                            ip_addresses.push(ip);
                        }
                    }
                    _ => {}
                }
            }
        }
        let (client_auth, server_auth) = match cert.extended_key_usage() {
            Ok(Some(eku)) => (eku.value.client_auth, eku.value.server_auth),
            _ => (false, false),
        };
        Ok(CertificateInfo {
            serial: cert.raw_serial_as_string().replace(':', ""),
            common_name,
            organizations,
            not_before: system_time(cert.validity().not_before.timestamp()),
            not_after: system_time(cert.validity().not_after.timestamp()),
            dns_names,
            ip_addresses,
            client_auth,
            server_auth,
            public_key: cert.public_key().subject_public_key.data.to_vec(),
        })
    }

    /// Whether the certificate has expired at `now` (Go's kubelet checks
    /// only NotAfter, so a clock slightly behind the CA does not force a
    /// new bootstrap).
    pub fn expired_at(&self, now: SystemTime) -> bool {
        now > self.not_after
    }

    /// The total validity period.
    pub fn lifetime(&self) -> Duration {
        self.not_after
            .duration_since(self.not_before)
            .unwrap_or(Duration::ZERO)
    }
}

pub(crate) fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
        _ => None,
    }
}

fn system_time(unix: i64) -> SystemTime {
    match u64::try_from(unix) {
        Ok(s) => UNIX_EPOCH + Duration::from_secs(s),
        Err(_) => UNIX_EPOCH - Duration::from_secs(unix.unsigned_abs()),
    }
}

/// RFC 3339, for messages.
pub fn format_time(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t).map_or_else(|_| format!("{t:?}"), |ts| ts.to_string())
}

/// A client or serving identity: a certificate chain (leaf first) and its
/// private key.
#[derive(Clone)]
pub struct Identity {
    cert_pem: String,
    key_pem: SecretPem,
    leaf: CertificateInfo,
    /// The leaf, then any intermediates.
    chain: Vec<CertificateInfo>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("chain", &self.chain)
            .field("key", &self.key_pem)
            .finish()
    }
}

impl Identity {
    /// From the certificate PEM and key PEM, which may be the same text (a
    /// `kubelet-client-*.pem` holds both). Certificates are taken from the
    /// first, the key from the second.
    pub fn from_pem(cert_text: &str, key_text: &str) -> Result<Self, String> {
        let certs: Vec<Block> = parse_blocks(cert_text)?
            .into_iter()
            .filter(|b| b.label == CERTIFICATE)
            .collect();
        if certs.is_empty() {
            return Err("no CERTIFICATE PEM block".to_string());
        }
        let key = parse_blocks(key_text)?
            .into_iter()
            .find(|b| KEY_LABELS.contains(&b.label.as_str()))
            .ok_or_else(|| {
                "no private key PEM block (PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)"
                    .to_string()
            })?;
        let chain = certs
            .iter()
            .enumerate()
            .map(|(i, b)| {
                CertificateInfo::from_der(&b.der).map_err(|e| format!("certificate {}: {e}", i + 1))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let leaf = chain
            .first()
            .cloned()
            .ok_or_else(|| "no CERTIFICATE PEM block".to_string())?;
        Ok(Identity {
            cert_pem: certs.iter().map(|b| b.text.as_str()).collect(),
            key_pem: SecretPem(key.text),
            leaf,
            chain,
        })
    }

    /// The leaf certificate.
    pub fn certificate(&self) -> &CertificateInfo {
        &self.leaf
    }

    pub fn chain(&self) -> &[CertificateInfo] {
        &self.chain
    }

    /// The certificates, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> &SecretPem {
        &self.key_pem
    }

    /// The first certificate of the chain expired at `now`, if any (Go
    /// checks every certificate of the chain).
    pub fn expired_at(&self, now: SystemTime) -> Option<&CertificateInfo> {
        self.chain.iter().find(|c| c.expired_at(now))
    }

    /// The text of a `kubelet-*.pem` file: certificates, then the key.
    pub fn to_file_pem(&self) -> SecretPem {
        SecretPem(format!("{}{}", self.cert_pem, self.key_pem.expose()))
    }
}

#[cfg(test)]
pub(crate) mod testing {
    /// A self-signed client certificate and its key, PEM.
    pub(crate) fn self_signed(cn: &str, orgs: &[&str]) -> (String, String) {
        self_signed_with(cn, orgs, |_| {})
    }

    /// Like `self_signed`, with the parameters adjusted by `edit` (e.g. the
    /// validity period).
    pub(crate) fn self_signed_with(
        cn: &str,
        orgs: &[&str],
        edit: impl FnOnce(&mut rcgen::CertificateParams),
    ) -> (String, String) {
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
        edit(&mut params);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

#[cfg(test)]
mod tests {
    use super::testing::self_signed;
    use super::*;

    #[test]
    fn identity_from_one_file_and_from_two() {
        let (cert, key) = self_signed("system:node:n1", &["system:nodes"]);
        let both = format!("{cert}{key}");
        let one = Identity::from_pem(&both, &both).unwrap();
        let two = Identity::from_pem(&cert, &key).unwrap();
        assert_eq!(one.certificate(), two.certificate());
        let c = one.certificate();
        assert_eq!(c.common_name.as_deref(), Some("system:node:n1"));
        assert_eq!(c.organizations, ["system:nodes"]);
        assert!(c.client_auth && !c.server_auth);
        assert_eq!(one.cert_pem(), cert);
        assert_eq!(one.key_pem().expose(), key);
        assert!(!format!("{one:?}").contains("PRIVATE KEY"));
        assert_eq!(one.to_file_pem().expose(), both);
    }

    #[test]
    fn bad_pem_says_what_is_wrong_without_quoting() {
        let (cert, key) = self_signed("x", &[]);
        assert_eq!(
            Identity::from_pem(&key, &key).unwrap_err(),
            "no CERTIFICATE PEM block"
        );
        assert!(
            Identity::from_pem(&cert, &cert)
                .unwrap_err()
                .contains("no private key")
        );
        let truncated = &cert[..cert.len() - 20];
        assert!(
            Identity::from_pem(truncated, &key)
                .unwrap_err()
                .contains("no END line")
        );
        let garbage =
            "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n";
        let e = Identity::from_pem(garbage, &key).unwrap_err();
        assert!(
            e.contains("not valid base64") && !e.contains("not base64 at all"),
            "{e}"
        );
        let not_x509 = "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";
        assert!(
            Identity::from_pem(not_x509, &key)
                .unwrap_err()
                .contains("not an X.509 certificate")
        );
    }
}
