//! Client certificate rotation (client-go's `util/certificate`
//! `certificate_manager.go`, as the kubelet uses it with
//! `rotateCertificates: true`): at a jittered point between 70 % and 90 %
//! of the certificate's lifetime, request a new one with the current
//! credentials, store it, and swap the client. A failure keeps the old
//! certificate and retries with back-off.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::Instrument;

use super::csr::{self, CsrRequest, CsrTemplate, PrivateKey};
use super::pem::{CertificateInfo, Identity, format_time};
use super::store::CertificateStore;
use super::transport::ClientProvider;
use super::{CertificateError, Result, blocking};

/// Retries of a failed rotation start here and double to [`MAX_BACKOFF`].
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(2);
pub const MAX_BACKOFF: Duration = Duration::from_secs(5 * 60);
/// How long [`ClientCertificateManager::run`] keeps trying after the
/// certificate expired (the Go kubelet's 5 minutes).
pub const EXIT_AFTER_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// When to rotate: `not_before + lifetime × (0.7 + 0.2 × jitter)`, with
/// `jitter` in [0, 1] (the Go certificate manager's window, so a fleet of
/// nodes does not renew at once).
pub fn rotation_deadline(cert: &CertificateInfo, jitter: f64) -> SystemTime {
    let fraction = 0.7 + 0.2 * jitter.clamp(0.0, 1.0);
    cert.not_before + cert.lifetime().mul_f64(fraction)
}

/// Requests a certificate for `template`, waits for it, and stores it.
/// Returns the CSR's name, the identity and the new file.
pub(crate) struct Issue<'a> {
    pub node: &'a str,
    pub client: &'a kube::Client,
    pub store: &'a CertificateStore,
    pub template: &'a CsrTemplate,
    pub key: &'a PrivateKey,
    pub name: Option<String>,
    pub signer_name: &'a str,
    pub usages: &'a [&'a str],
    pub timeout: Duration,
}

impl Issue<'_> {
    pub(crate) async fn run(self) -> Result<(String, Identity, std::path::PathBuf)> {
        // The CSR round trip's own log lines carry the node through the span.
        let span = tracing::info_span!("certificate", node = %self.node);
        self.run_in_span().instrument(span).await
    }

    async fn run_in_span(self) -> Result<(String, Identity, std::path::PathBuf)> {
        let request_pem = self.template.encode(self.key)?;
        let name = csr::submit(
            self.client,
            self.key,
            &CsrRequest {
                name: self.name,
                signer_name: self.signer_name,
                usages: self.usages,
                request_pem: &request_pem,
                expiration: None,
            },
        )
        .await?;
        tracing::info!(
            node = self.node,
            csr = %name,
            signer = self.signer_name,
            subject = %self.template.common_name,
            "certificate requested; waiting for approval and signing"
        );
        let identity =
            csr::wait_for_certificate(self.client, &name, self.key, self.timeout).await?;
        let store = self.store.clone();
        let id = identity.clone();
        let path = blocking(move || store.update(&id)).await?;
        Ok((name, identity, path))
    }
}

/// Rotates the node's client certificate. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ClientCertificateManager {
    shared: Arc<Shared>,
    deadline: fn(&CertificateInfo) -> SystemTime,
}

#[derive(Debug)]
struct Shared {
    provider: ClientProvider,
    store: CertificateStore,
    csr_timeout: Duration,
    /// One rotation at a time: the timer's and `rotate_now`'s.
    rotating: tokio::sync::Mutex<()>,
}

impl ClientCertificateManager {
    /// Rotates `provider`'s certificate into `store` (the client store of
    /// the cert dir, where the bootstrap kubeconfig points).
    pub fn new(provider: ClientProvider, store: CertificateStore) -> Self {
        Self::with_csr_timeout(provider, store, super::DEFAULT_CSR_TIMEOUT)
    }

    /// As [`new`](Self::new), waiting at most `csr_timeout` for each
    /// request to be issued.
    pub fn with_csr_timeout(
        provider: ClientProvider,
        store: CertificateStore,
        csr_timeout: Duration,
    ) -> Self {
        ClientCertificateManager {
            shared: Arc::new(Shared {
                provider,
                store,
                csr_timeout,
                rotating: tokio::sync::Mutex::new(()),
            }),
            deadline: |cert| rotation_deadline(cert, fastrand::f64()),
        }
    }

    /// Schedules rotations by `deadline` instead of a jittered 70–90 % of
    /// the lifetime (for tests, which cannot wait months).
    pub fn with_deadline(mut self, deadline: fn(&CertificateInfo) -> SystemTime) -> Self {
        self.deadline = deadline;
        self
    }

    pub fn provider(&self) -> &ClientProvider {
        &self.shared.provider
    }

    /// Requests a new certificate now with the current credentials; on
    /// success the new pair is on disk, `kubelet-client-current.pem`
    /// points at it and the provider hands out a client using it. On
    /// failure nothing changes.
    pub async fn rotate_now(&self) -> Result<CertificateInfo> {
        let _one = self.shared.rotating.lock().await;
        let provider = &self.shared.provider;
        let node = provider.node_name();
        let client = provider.client();
        let key = PrivateKey::generate()?;
        let template = CsrTemplate::client(node);
        let (csr, identity, path) = Issue {
            node,
            client: &client,
            store: &self.shared.store,
            template: &template,
            key: &key,
            // Renewals get generated names, as in Go.
            name: None,
            signer_name: csr::SIGNER_KUBELET_CLIENT,
            usages: &csr::CLIENT_USAGES,
            timeout: self.shared.csr_timeout,
        }
        .run()
        .await?;
        provider.install(&identity)?;
        let cert = identity.certificate().clone();
        tracing::info!(
            node,
            csr = %csr,
            serial = %cert.serial,
            not_after = %format_time(cert.not_after),
            file = %path.display(),
            "client certificate rotated"
        );
        Ok(cert)
    }

    /// Rotates for ever: sleeps until the current certificate's deadline
    /// (recomputed whenever the certificate changes, e.g. by
    /// [`rotate_now`](Self::rotate_now)), then rotates, retrying with
    /// back-off while it fails. Returns only when the certificate has been
    /// expired for [`EXIT_AFTER_EXPIRY`] without a successful renewal: as
    /// the Go kubelet, the caller should then exit, so that the next start
    /// bootstraps again.
    pub async fn run(self) -> CertificateError {
        let provider = self.shared.provider.clone();
        let node = provider.node_name().to_string();
        let mut changes = provider.changes();
        loop {
            let cert = changes.borrow_and_update().certificate.clone();
            let Some(cert) = cert else {
                tracing::warn!(
                    node,
                    "the apiserver client uses no client certificate; nothing to rotate"
                );
                if changes.changed().await.is_err() {
                    return closed(&provider);
                }
                continue;
            };
            let deadline = (self.deadline)(&cert);
            let wait = deadline
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            tracing::info!(
                node,
                serial = %cert.serial,
                not_after = %format_time(cert.not_after),
                rotate_at = %format_time(deadline),
                "client certificate rotation scheduled"
            );
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                changed = changes.changed() => {
                    if changed.is_err() {
                        return closed(&provider);
                    }
                    continue;
                }
            }
            let mut backoff = INITIAL_BACKOFF;
            loop {
                match self.rotate_now().await {
                    Ok(_) => break,
                    Err(e) => {
                        if SystemTime::now() > cert.not_after + EXIT_AFTER_EXPIRY {
                            tracing::error!(
                                node,
                                error = %e,
                                not_after = %format_time(cert.not_after),
                                "the client certificate expired and could not be renewed"
                            );
                            return CertificateError::ClientCertificateExpired {
                                kubeconfig: provider.kubeconfig_path().to_path_buf(),
                                file: self.shared.store.current_path().display().to_string(),
                                not_after: format_time(cert.not_after),
                            };
                        }
                        let delay = backoff.mul_f64(0.9 + 0.2 * fastrand::f64());
                        tracing::warn!(
                            node,
                            error = %e,
                            retry_in = ?delay,
                            not_after = %format_time(cert.not_after),
                            "rotating the client certificate failed; the current one stays in use"
                        );
                        tokio::time::sleep(delay).await;
                        // Renewed meanwhile (rotate_now): schedule anew.
                        if changes.has_changed().unwrap_or(false) {
                            break;
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        }
    }
}

/// The provider's channel closed: cannot happen while the manager holds
/// the provider, but `run` must return something.
fn closed(provider: &ClientProvider) -> CertificateError {
    CertificateError::StoreInvalid {
        path: provider.kubeconfig_path().to_path_buf(),
        reason: "the client provider is gone".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(not_before: u64, not_after: u64) -> CertificateInfo {
        CertificateInfo {
            serial: "01".to_string(),
            common_name: None,
            organizations: Vec::new(),
            not_before: SystemTime::UNIX_EPOCH + Duration::from_secs(not_before),
            not_after: SystemTime::UNIX_EPOCH + Duration::from_secs(not_after),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            client_auth: true,
            server_auth: false,
            public_key: Vec::new(),
        }
    }

    fn secs(t: SystemTime) -> f64 {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    }

    #[test]
    fn deadline_is_between_70_and_90_percent() {
        let c = cert(1000, 2000);
        assert_eq!(secs(rotation_deadline(&c, 0.0)), 1700.0);
        assert_eq!(secs(rotation_deadline(&c, 1.0)), 1900.0);
        assert_eq!(secs(rotation_deadline(&c, 0.5)), 1800.0);
        // Out-of-range jitter is clamped.
        assert_eq!(secs(rotation_deadline(&c, 7.0)), 1900.0);
        let mut lo = f64::MAX;
        let mut hi = f64::MIN;
        for _ in 0..2000 {
            let s = secs(rotation_deadline(&c, fastrand::f64()));
            assert!((1700.0..=1900.0).contains(&s), "{s}");
            lo = lo.min(s);
            hi = hi.max(s);
        }
        // The jitter spreads over the window.
        assert!(lo < 1720.0 && hi > 1880.0, "{lo}..{hi}");
    }

    #[test]
    fn a_one_year_certificate_rotates_after_about_nine_months() {
        let year = 365 * 24 * 3600;
        let c = cert(0, year);
        let at = secs(rotation_deadline(&c, 0.0)) / (24.0 * 3600.0);
        assert!((255.0..=256.0).contains(&at), "{at}");
    }

    #[test]
    fn an_inverted_validity_rotates_at_once() {
        let c = cert(2000, 1000);
        assert_eq!(secs(rotation_deadline(&c, 0.5)), 2000.0);
    }
}
