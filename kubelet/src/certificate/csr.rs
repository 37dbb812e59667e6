//! Private keys, certificate requests, and the `certificates.k8s.io/v1`
//! CertificateSigningRequest round trip (client-go `util/certificate/csr`):
//! submit, then watch until the request is issued, denied or failed.

use std::fmt;
use std::net::IpAddr;
use std::pin::pin;
use std::time::Duration;

use base64::Engine;
use futures_util::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec, CertificateSigningRequestStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use sha2::{Digest, Sha256};

use super::pem::{Identity, SecretPem};
use super::{CertificateError, Result};

/// The signer of kubelet client certificates.
pub const SIGNER_KUBELET_CLIENT: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// The signer of kubelet serving certificates.
pub const SIGNER_KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";
/// The group every node's certificate names.
pub const NODES_GROUP: &str = "system:nodes";

pub const USAGE_DIGITAL_SIGNATURE: &str = "digital signature";
pub const USAGE_CLIENT_AUTH: &str = "client auth";
pub const USAGE_SERVER_AUTH: &str = "server auth";

/// The usages of a client certificate for an ECDSA key (an RSA key would
/// add "key encipherment"; berth only makes ECDSA keys, as the Go kubelet).
pub const CLIENT_USAGES: [&str; 2] = [USAGE_DIGITAL_SIGNATURE, USAGE_CLIENT_AUTH];
/// The usages of a serving certificate for an ECDSA key.
pub const SERVING_USAGES: [&str; 2] = [USAGE_DIGITAL_SIGNATURE, USAGE_SERVER_AUTH];

/// `system:node:<node>`, the user a node's certificate authenticates as.
pub fn node_user(node_name: &str) -> String {
    format!("system:node:{node_name}")
}

/// An ECDSA P-256 private key. Its `Debug` shows no key material.
pub struct PrivateKey(rcgen::KeyPair);

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(ECDSA P-256, <redacted>)")
    }
}

impl PrivateKey {
    /// A new ECDSA P-256 key, as the Go kubelet makes.
    pub fn generate() -> Result<Self> {
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map(PrivateKey)
            .map_err(CertificateError::Crypto)
    }

    /// A PKCS#8 PEM key, as [`PrivateKey::to_pem`] writes it.
    pub fn from_pem(pem: &SecretPem) -> Result<Self> {
        rcgen::KeyPair::from_pem(pem.expose())
            .map(PrivateKey)
            .map_err(CertificateError::Crypto)
    }

    /// PKCS#8 PEM (`PRIVATE KEY`).
    pub fn to_pem(&self) -> SecretPem {
        SecretPem::new(self.0.serialize_pem())
    }

    /// The public key as it appears in a certificate's or request's
    /// SubjectPublicKeyInfo (the uncompressed point).
    pub fn public_key(&self) -> &[u8] {
        self.0.public_key_raw()
    }
}

/// What a certificate request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsrTemplate {
    pub common_name: String,
    pub organizations: Vec<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
}

impl CsrTemplate {
    /// A node's client certificate: CN=system:node:<node>, O=system:nodes,
    /// no SANs (the apiserver rejects kubelet client requests with SANs).
    pub fn client(node_name: &str) -> Self {
        CsrTemplate {
            common_name: node_user(node_name),
            organizations: vec![NODES_GROUP.to_string()],
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
        }
    }

    /// A node's serving certificate, for its DNS names and addresses.
    pub fn serving(node_name: &str, dns_names: &[String], ip_addresses: &[IpAddr]) -> Self {
        CsrTemplate {
            common_name: node_user(node_name),
            organizations: vec![NODES_GROUP.to_string()],
            dns_names: dns_names.to_vec(),
            ip_addresses: ip_addresses.to_vec(),
        }
    }

    /// The PKCS#10 request for `key`, PEM (`CERTIFICATE REQUEST`).
    pub fn encode(&self, key: &PrivateKey) -> Result<String> {
        let mut params = rcgen::CertificateParams::default();
        // rcgen's default subject is a placeholder CN: start empty.
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, self.common_name.as_str());
        for o in &self.organizations {
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, o.as_str());
        }
        for d in &self.dns_names {
            let name = rcgen::string::Ia5String::try_from(d.as_str()).map_err(|_| {
                CertificateError::InvalidRequest(format!("DNS name {d:?} is not ASCII"))
            })?;
            params.subject_alt_names.push(rcgen::SanType::DnsName(name));
        }
        for ip in &self.ip_addresses {
            params
                .subject_alt_names
                .push(rcgen::SanType::IpAddress(*ip));
        }
        params
            .serialize_request(&key.0)
            .and_then(|r| r.pem())
            .map_err(CertificateError::Crypto)
    }

    /// `node-csr-<digest>`: a name fixed by the key, subject and usages, so
    /// a kubelet restarted while waiting finds its own request again (the
    /// Go kubelet names bootstrap requests the same way).
    pub fn digested_name(&self, key: &PrivateKey, usages: &[&str]) -> String {
        let mut h = Sha256::new();
        // Length-prefixed fields, so no two inputs hash alike by shifting
        // a boundary.
        let mut field = |b: &[u8]| {
            h.update((b.len() as u64).to_be_bytes());
            h.update(b);
        };
        field(key.public_key());
        field(self.common_name.as_bytes());
        for o in &self.organizations {
            field(o.as_bytes());
        }
        for u in usages {
            field(u.as_bytes());
        }
        let digest = h.finalize();
        format!(
            "node-csr-{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
        )
    }
}

/// One request to submit.
#[derive(Debug)]
pub struct CsrRequest<'a> {
    /// A fixed name, or `None` for a generated `csr-xxxxx` one.
    pub name: Option<String>,
    pub signer_name: &'a str,
    pub usages: &'a [&'a str],
    /// The PKCS#10 request, PEM.
    pub request_pem: &'a str,
    /// How long the certificate should be valid; the signer may shorten it.
    pub expiration: Option<Duration>,
}

/// Creates the CertificateSigningRequest; returns its name. When a request
/// of the fixed name exists already, it is used if it was made with the
/// same key, signer and usages (a restart while waiting), else it is a
/// [`CertificateError::CsrConflict`].
pub async fn submit(
    client: &kube::Client,
    key: &PrivateKey,
    req: &CsrRequest<'_>,
) -> Result<String> {
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta {
            name: req.name.clone(),
            generate_name: req.name.is_none().then(|| "csr-".to_string()),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(req.request_pem.as_bytes().to_vec()),
            signer_name: req.signer_name.to_string(),
            usages: Some(req.usages.iter().map(|u| u.to_string()).collect()),
            expiration_seconds: req
                .expiration
                .map(|d| i32::try_from(d.as_secs()).unwrap_or(i32::MAX)),
            ..Default::default()
        },
        status: None,
    };
    let what = req.name.as_deref().unwrap_or("csr-*");
    match api.create(&PostParams::default(), &csr).await {
        Ok(created) => Ok(created.metadata.name.unwrap_or_default()),
        Err(kube::Error::Api(status)) if status.is_already_exists() && req.name.is_some() => {
            let name = req.name.clone().unwrap_or_default();
            let existing = api.get(&name).await.map_err(|e| {
                CertificateError::from_kube(format!("reading CertificateSigningRequest {name}"), e)
            })?;
            ensure_compatible(&name, &existing, key, req)?;
            Ok(name)
        }
        Err(e) => Err(CertificateError::from_kube(
            format!(
                "creating CertificateSigningRequest {what} (signer {})",
                req.signer_name
            ),
            e,
        )),
    }
}

fn ensure_compatible(
    name: &str,
    existing: &CertificateSigningRequest,
    key: &PrivateKey,
    req: &CsrRequest<'_>,
) -> Result<()> {
    let conflict = |reason: &str| CertificateError::CsrConflict {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if existing.spec.signer_name != req.signer_name {
        return Err(conflict("another signer"));
    }
    let usages: Vec<&str> = existing
        .spec
        .usages
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();
    if usages != req.usages {
        return Err(conflict("other usages"));
    }
    let text = String::from_utf8_lossy(&existing.spec.request.0);
    let blocks = super::pem::parse_blocks(&text).map_err(|e| conflict(&e))?;
    let der = blocks
        .iter()
        .find(|b| b.label == "CERTIFICATE REQUEST")
        .map(|b| b.der.as_slice())
        .ok_or_else(|| conflict("its request has no CERTIFICATE REQUEST block"))?;
    use x509_parser::prelude::FromDer;
    let (_, parsed) = x509_parser::certification_request::X509CertificationRequest::from_der(der)
        .map_err(|_| conflict("its request does not parse"))?;
    if parsed
        .certification_request_info
        .subject_pki
        .subject_public_key
        .data[..]
        != *key.public_key()
    {
        return Err(conflict("another key"));
    }
    Ok(())
}

/// What a CSR's status says, if it says anything final.
fn outcome(
    name: &str,
    status: Option<&CertificateSigningRequestStatus>,
) -> Option<Result<Vec<u8>>> {
    let status = status?;
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let text = |c: &k8s_openapi::api::certificates::v1::CertificateSigningRequestCondition| {
        (
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default(),
        )
    };
    // Denied or Failed win over Approved, as in client-go.
    for c in conditions {
        if c.status == "False" {
            continue;
        }
        match c.type_.as_str() {
            "Denied" => {
                let (reason, message) = text(c);
                return Some(Err(CertificateError::CsrDenied {
                    name: name.to_string(),
                    reason,
                    message,
                }));
            }
            "Failed" => {
                let (reason, message) = text(c);
                return Some(Err(CertificateError::CsrFailed {
                    name: name.to_string(),
                    reason,
                    message,
                }));
            }
            _ => {}
        }
    }
    let approved = conditions
        .iter()
        .any(|c| c.type_ == "Approved" && c.status != "False");
    match &status.certificate {
        Some(cert) if approved && !cert.0.is_empty() => Some(Ok(cert.0.clone())),
        _ => None,
    }
}

/// Waits until the CSR is approved and its certificate issued, then
/// returns the certificate with `key` as an [`Identity`]. Watches the one
/// object; a watch that ends or breaks is started again after a fresh
/// read. Fails on Denied, Failed, deletion, an answer the apiserver gives
/// as an error (e.g. 403), or after `timeout`.
pub async fn wait_for_certificate(
    client: &kube::Client,
    name: &str,
    key: &PrivateKey,
    timeout: Duration,
) -> Result<Identity> {
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let waiting = async {
        loop {
            let csr = match api.get_opt(name).await {
                Ok(Some(csr)) => csr,
                Ok(None) => {
                    return Err(CertificateError::CsrDeleted {
                        name: name.to_string(),
                    });
                }
                Err(e) if transient(&e) => {
                    tracing::debug!(csr = name, error = %e, "reading the CertificateSigningRequest failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Err(e) => {
                    return Err(CertificateError::from_kube(
                        format!("reading CertificateSigningRequest {name}"),
                        e,
                    ));
                }
            };
            if let Some(done) = outcome(name, csr.status.as_ref()) {
                return done;
            }
            let version = csr.metadata.resource_version.unwrap_or_default();
            let params = WatchParams::default()
                .fields(&format!("metadata.name={name}"))
                .timeout(290);
            let stream = match api.watch(&params, &version).await {
                Ok(s) => s,
                Err(e) if transient(&e) => {
                    tracing::debug!(csr = name, error = %e, "watching the CertificateSigningRequest failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Err(e) => {
                    return Err(CertificateError::from_kube(
                        format!("watching CertificateSigningRequest {name}"),
                        e,
                    ));
                }
            };
            let mut stream = pin!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(WatchEvent::Added(csr)) | Ok(WatchEvent::Modified(csr)) => {
                        if let Some(done) = outcome(name, csr.status.as_ref()) {
                            return done;
                        }
                    }
                    Ok(WatchEvent::Deleted(_)) => {
                        return Err(CertificateError::CsrDeleted {
                            name: name.to_string(),
                        });
                    }
                    Ok(WatchEvent::Bookmark(_)) => {}
                    // Expired resource version or a broken stream: read again.
                    Ok(WatchEvent::Error(_)) | Err(_) => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        break;
                    }
                }
            }
        }
    };
    let der = tokio::time::timeout(timeout, waiting).await.map_err(|_| {
        CertificateError::CsrTimeout {
            name: name.to_string(),
            timeout,
        }
    })??;
    issued_identity(name, &der, key)
}

/// The issued certificate (PEM, possibly with intermediates) and our key;
/// the leaf must carry our public key.
fn issued_identity(name: &str, cert: &[u8], key: &PrivateKey) -> Result<Identity> {
    let invalid = |reason: String| CertificateError::IssuedCertificateInvalid {
        name: name.to_string(),
        reason,
    };
    let text = std::str::from_utf8(cert).map_err(|_| invalid("not PEM text".to_string()))?;
    let identity = Identity::from_pem(text, key.to_pem().expose()).map_err(invalid)?;
    if identity.certificate().public_key != key.public_key() {
        return Err(invalid("it is not for the requested key".to_string()));
    }
    Ok(identity)
}

/// Errors worth another try: no answer, or the apiserver busy.
fn transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::certificates::v1::CertificateSigningRequestCondition;
    use x509_parser::prelude::FromDer;

    struct Parsed {
        cn: Vec<String>,
        orgs: Vec<String>,
        dns: Vec<String>,
        ips: Vec<IpAddr>,
        public_key: Vec<u8>,
    }

    fn parse_request(pem: &str) -> Parsed {
        let blocks = super::super::pem::parse_blocks(pem).unwrap();
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].label, "CERTIFICATE REQUEST");
        let (_, req) =
            x509_parser::certification_request::X509CertificationRequest::from_der(&blocks[0].der)
                .unwrap();
        let info = &req.certification_request_info;
        let cn = info
            .subject
            .iter_common_name()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        let orgs = info
            .subject
            .iter_organization()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        let (mut dns, mut ips) = (Vec::new(), Vec::new());
        for ext in req.requested_extensions().into_iter().flatten() {
            if let x509_parser::extensions::ParsedExtension::SubjectAlternativeName(san) = ext {
                for n in &san.general_names {
                    match n {
                        x509_parser::extensions::GeneralName::DNSName(d) => dns.push(d.to_string()),
                        x509_parser::extensions::GeneralName::IPAddress(b) => {
                            ips.push(super::super::pem::ip_from_bytes(b).unwrap())
                        }
                        other => panic!("unexpected SAN {other:?}"),
                    }
                }
            }
        }
        Parsed {
            cn,
            orgs,
            dns,
            ips,
            public_key: info.subject_pki.subject_public_key.data.to_vec(),
        }
    }

    #[test]
    fn client_request_names_the_node_and_nothing_else() {
        let key = PrivateKey::generate().unwrap();
        let pem = CsrTemplate::client("node-1").encode(&key).unwrap();
        let Parsed {
            cn,
            orgs,
            dns,
            ips,
            public_key,
        } = parse_request(&pem);
        assert_eq!(cn, ["system:node:node-1"]);
        assert_eq!(orgs, ["system:nodes"]);
        assert!(dns.is_empty() && ips.is_empty());
        assert_eq!(public_key, key.public_key());
        assert_eq!(CLIENT_USAGES, ["digital signature", "client auth"]);
        assert_eq!(SERVING_USAGES, ["digital signature", "server auth"]);
    }

    #[test]
    fn serving_request_carries_the_sans() {
        let key = PrivateKey::generate().unwrap();
        let ips: Vec<IpAddr> = vec!["10.0.0.7".parse().unwrap(), "fd00::7".parse().unwrap()];
        let pem = CsrTemplate::serving("node-1", &["node-1.example".to_string()], &ips)
            .encode(&key)
            .unwrap();
        let Parsed {
            cn,
            orgs,
            dns,
            ips: got_ips,
            ..
        } = parse_request(&pem);
        assert_eq!(cn, ["system:node:node-1"]);
        assert_eq!(orgs, ["system:nodes"]);
        assert_eq!(dns, ["node-1.example"]);
        assert_eq!(got_ips, ips);
    }

    #[test]
    fn digested_name_follows_key_and_subject() {
        let k1 = PrivateKey::generate().unwrap();
        let k2 = PrivateKey::generate().unwrap();
        let t = CsrTemplate::client("n");
        let a = t.digested_name(&k1, &CLIENT_USAGES);
        assert!(
            a.starts_with("node-csr-") && a.len() == "node-csr-".len() + 43,
            "{a}"
        );
        assert_eq!(a, t.digested_name(&k1, &CLIENT_USAGES));
        assert_ne!(a, t.digested_name(&k2, &CLIENT_USAGES));
        assert_ne!(
            a,
            CsrTemplate::client("m").digested_name(&k1, &CLIENT_USAGES)
        );
        // A key survives its PEM round trip, and so does the name.
        let again = PrivateKey::from_pem(&k1.to_pem()).unwrap();
        assert_eq!(a, t.digested_name(&again, &CLIENT_USAGES));
        assert!(!format!("{k1:?}").contains("PRIVATE"));
    }

    fn condition(type_: &str, reason: &str) -> CertificateSigningRequestCondition {
        CertificateSigningRequestCondition {
            type_: type_.to_string(),
            status: "True".to_string(),
            reason: Some(reason.to_string()),
            message: Some(format!("{reason} by test")),
            ..Default::default()
        }
    }

    #[test]
    fn outcome_reads_conditions() {
        let status = |conds: Vec<CertificateSigningRequestCondition>, cert: Option<&str>| {
            CertificateSigningRequestStatus {
                conditions: Some(conds),
                certificate: cert.map(|c| ByteString(c.as_bytes().to_vec())),
            }
        };
        assert!(outcome("x", None).is_none());
        // Approved but not yet signed: keep waiting.
        assert!(outcome("x", Some(&status(vec![condition("Approved", "A")], None))).is_none());
        let done = outcome(
            "x",
            Some(&status(vec![condition("Approved", "A")], Some("pem"))),
        );
        assert_eq!(done.unwrap().unwrap(), b"pem");
        let denied = outcome(
            "x",
            Some(&status(vec![condition("Denied", "NotMine")], None)),
        );
        let e = denied.unwrap().unwrap_err().to_string();
        assert_eq!(
            e,
            "CertificateSigningRequest x was denied: NotMine: NotMine by test"
        );
        let failed = outcome(
            "x",
            Some(&status(
                vec![
                    condition("Approved", "A"),
                    condition("Failed", "SignerError"),
                ],
                Some("pem"),
            )),
        );
        assert!(matches!(
            failed,
            Some(Err(CertificateError::CsrFailed { .. }))
        ));
    }

    #[test]
    fn an_issued_certificate_must_be_for_our_key() {
        let key = PrivateKey::generate().unwrap();
        let (other_cert, _) = super::super::pem::testing::self_signed("system:node:n", &[]);
        let e = issued_identity("x", other_cert.as_bytes(), &key).unwrap_err();
        assert!(e.to_string().contains("not for the requested key"), "{e}");
    }
}
