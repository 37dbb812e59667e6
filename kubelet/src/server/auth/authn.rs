//! Authentication (Go's `BuildAuthn` with the apiserver's delegating
//! authenticator): client certificates against the client CA, bearer
//! tokens through a cached TokenReview, then anonymous when enabled.
//!
//! As in Go, a certificate that fails verification or a token the
//! apiserver rejects is an error (401), never a fall back to anonymous;
//! either method succeeding is enough.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use http::HeaderMap;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{DistinguishedName, RootCertStore};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::cache::{DEFAULT_CAPACITY, InFlight, TtlCache};
use super::{AuthError, TokenReviewer, UserInfo};
use crate::certificate::CertificateInfo;
use crate::kubelet_node_status::ClientSource;
use crate::server::tls::TlsError;

/// How long a rejected token stays rejected without asking again: short,
/// so a token created a moment ago is not locked out for the whole TTL.
pub const REJECTED_TOKEN_TTL: Duration = Duration::from_secs(10);
/// How long one TokenReview or SubjectAccessReview may take (Go's 10 s).
pub const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);

/// The client CA bundle (`x509.clientCAFile`), re-read when it changes, as
/// Go's dynamic CA content.
pub struct ClientCa {
    path: PathBuf,
    state: RwLock<CaState>,
}

struct CaState {
    text: String,
    verifier: Arc<dyn ClientCertVerifier>,
    subjects: Vec<DistinguishedName>,
}

impl std::fmt::Debug for ClientCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCa")
            .field("path", &self.path)
            .finish()
    }
}

fn ca_state(path: &Path, text: String) -> Result<CaState, TlsError> {
    let invalid = |reason: String| TlsError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let blocks = crate::certificate::pem::parse_blocks(&text).map_err(invalid)?;
    let mut roots = RootCertStore::empty();
    for b in blocks.into_iter().filter(|b| b.label == "CERTIFICATE") {
        roots
            .add(CertificateDer::from(b.der))
            .map_err(|e| invalid(format!("a CA certificate is not usable: {e}")))?;
    }
    if roots.is_empty() {
        return Err(invalid("no CERTIFICATE PEM block".into()));
    }
    let subjects = roots.subjects();
    let verifier = WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .map_err(|e| invalid(format!("building the client certificate verifier: {e}")))?;
    Ok(CaState {
        text,
        verifier,
        subjects,
    })
}

fn read_text(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

impl ClientCa {
    /// Reads the bundle; an unreadable file or one without certificates is
    /// an error naming it.
    pub fn load(path: &Path) -> Result<Arc<Self>, TlsError> {
        let state = ca_state(path, read_text(path)?)?;
        Ok(Arc::new(ClientCa {
            path: path.to_path_buf(),
            state: RwLock::new(state),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, CaState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The CAs' subjects, the hint a TLS server sends with its request for
    /// a certificate.
    pub fn subjects(&self) -> Vec<DistinguishedName> {
        self.read().subjects.clone()
    }

    /// Reads the file again; true when the bundle changed. A bad new file
    /// keeps the old bundle.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let text = read_text(&self.path)?;
        if text == self.read().text {
            return Ok(false);
        }
        let state = ca_state(&self.path, text)?;
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = state;
        Ok(true)
    }

    /// Re-reads the bundle every `every`, for ever.
    pub async fn watch(self: Arc<Self>, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            let ca = self.clone();
            match tokio::task::spawn_blocking(move || ca.reload()).await {
                Ok(Ok(true)) => {
                    tracing::info!(file = %self.path.display(), "client CA bundle reloaded");
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => tracing::warn!("client CA bundle: {e}; keeping the previous one"),
                Err(e) => tracing::warn!("client CA bundle reload: {e}"),
            }
        }
    }

    /// Go's x509 authenticator: the chain must lead to one of the CAs and
    /// allow client auth; the user is the CN (none: not authenticated),
    /// the groups the Os.
    pub fn verify(&self, chain: &[CertificateDer<'static>]) -> Result<Option<UserInfo>, AuthError> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Ok(None);
        };
        let verifier = self.read().verifier.clone();
        let fail = |reason: String| AuthError::ClientCertificate {
            ca: self.path.display().to_string(),
            reason,
        };
        verifier
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map_err(|e| fail(e.to_string()))?;
        let info = CertificateInfo::from_der(leaf).map_err(fail)?;
        Ok(info
            .common_name
            .filter(|cn| !cn.is_empty())
            .map(|name| UserInfo {
                name,
                groups: info.organizations,
                ..Default::default()
            }))
    }
}

/// The bearer token of a request, as Go's `bearertoken` reads it.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let mut parts = value.trim().splitn(3, ' ');
    let scheme = parts.next()?;
    let token = parts.next()?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Bearer tokens through a [`TokenReviewer`], answers cached by the
/// token's SHA-256 (the token itself is never kept): accepted for the
/// cache TTL, rejected for at most [`REJECTED_TOKEN_TTL`], errors not at
/// all.
pub struct TokenAuthenticator {
    reviewer: Arc<dyn TokenReviewer>,
    ttl: Duration,
    cache: TtlCache<[u8; 32], Option<UserInfo>>,
    in_flight: InFlight<[u8; 32], Result<Option<UserInfo>, AuthError>>,
}

impl TokenAuthenticator {
    pub fn new(reviewer: Arc<dyn TokenReviewer>, ttl: Duration) -> Self {
        TokenAuthenticator {
            reviewer,
            ttl,
            cache: TtlCache::new(DEFAULT_CAPACITY),
            in_flight: InFlight::default(),
        }
    }

    pub async fn authenticate(&self, token: &str) -> Result<Option<UserInfo>, AuthError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(answer) = self.cache.get(&key) {
            return Ok(answer);
        }
        let answer = self
            .in_flight
            .run(key, || self.reviewer.review(token.to_string()))
            .await?;
        let ttl = match answer {
            Some(_) => self.ttl,
            None => self.ttl.min(REJECTED_TOKEN_TTL),
        };
        self.cache.insert(key, answer.clone(), ttl);
        Ok(answer)
    }
}

/// TokenReviews sent to the apiserver with the node's client, once it is
/// ready.
pub struct KubeTokenReviewer {
    client: watch::Receiver<Option<ClientSource>>,
}

impl KubeTokenReviewer {
    pub fn new(client: watch::Receiver<Option<ClientSource>>) -> Self {
        KubeTokenReviewer { client }
    }
}

/// Whether a failed review is worth sending again (no answer, or the
/// apiserver overloaded).
pub(crate) fn retryable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 429 || s.code >= 500,
        _ => true,
    }
}

impl TokenReviewer for KubeTokenReviewer {
    fn review(&self, token: String) -> BoxFuture<'static, Result<Option<UserInfo>, AuthError>> {
        let source = self.client.borrow().clone();
        Box::pin(async move {
            let source = source.ok_or(AuthError::NoClient)?;
            let review = TokenReview {
                spec: TokenReviewSpec {
                    token,
                    audiences: None,
                },
                ..Default::default()
            };
            let mut delay = Duration::from_millis(500);
            let mut attempt = 0;
            let answer = loop {
                attempt += 1;
                let api: Api<TokenReview> = Api::all(source());
                let sent = tokio::time::timeout(
                    REVIEW_TIMEOUT,
                    api.create(&PostParams::default(), &review),
                )
                .await;
                match sent {
                    Ok(Ok(answer)) => break answer,
                    Ok(Err(e)) if attempt < 3 && retryable(&e) => {}
                    Ok(Err(e)) => return Err(AuthError::TokenReview(e.to_string())),
                    Err(_) if attempt < 3 => {}
                    Err(_) => {
                        return Err(AuthError::TokenReview(format!(
                            "no answer within {REVIEW_TIMEOUT:?}"
                        )));
                    }
                }
                tokio::time::sleep(delay).await;
                delay = delay.mul_f64(1.5);
            };
            let status = answer.status.unwrap_or_default();
            if status.authenticated == Some(true) {
                let user = status.user.unwrap_or_default();
                return Ok(Some(UserInfo {
                    name: user.username.unwrap_or_default(),
                    uid: user.uid.unwrap_or_default(),
                    groups: user.groups.unwrap_or_default(),
                    extra: user.extra.unwrap_or_default(),
                }));
            }
            match status.error.filter(|e| !e.is_empty()) {
                Some(e) => Err(AuthError::TokenReview(e)),
                None => Ok(None),
            }
        })
    }
}

/// The methods a request may authenticate with.
#[derive(Default)]
pub struct Authenticator {
    pub client_ca: Option<Arc<ClientCa>>,
    pub tokens: Option<TokenAuthenticator>,
    pub anonymous: bool,
}

impl Authenticator {
    /// Whether any method is on (Go refuses to start without one).
    pub fn is_configured(&self) -> bool {
        self.client_ca.is_some() || self.tokens.is_some() || self.anonymous
    }

    /// The user, `None` when nobody is claimed and anonymous is off, or the
    /// error that makes the request unauthorized.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        peer_certificates: Option<&[CertificateDer<'static>]>,
    ) -> Result<Option<UserInfo>, AuthError> {
        let mut error = None;
        if let (Some(ca), Some(chain)) = (&self.client_ca, peer_certificates) {
            match ca.verify(chain) {
                Ok(Some(user)) => return Ok(Some(user.with_authenticated_group())),
                Ok(None) => {}
                Err(e) => error = Some(e),
            }
        }
        if let (Some(tokens), Some(token)) = (&self.tokens, bearer_token(headers)) {
            match tokens.authenticate(token).await {
                Ok(Some(user)) => return Ok(Some(user.with_authenticated_group())),
                Ok(None) => error = Some(AuthError::InvalidToken),
                Err(e) => error = Some(e),
            }
        }
        match error {
            Some(e) => Err(e),
            None if self.anonymous => Ok(Some(UserInfo::anonymous())),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Accepts "good" as alice, fails on "broken", rejects the rest;
    /// counts the calls.
    struct FakeReviewer(Arc<AtomicUsize>);

    impl TokenReviewer for FakeReviewer {
        fn review(&self, token: String) -> BoxFuture<'static, Result<Option<UserInfo>, AuthError>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                match token.as_str() {
                    "good" => Ok(Some(UserInfo {
                        name: "alice".into(),
                        groups: vec!["devs".into()],
                        ..Default::default()
                    })),
                    "broken" => Err(AuthError::TokenReview("apiserver away".into())),
                    _ => Ok(None),
                }
            })
        }
    }

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, auth.parse().unwrap());
        h
    }

    fn token_authn(anonymous: bool) -> (Authenticator, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let a = Authenticator {
            client_ca: None,
            tokens: Some(TokenAuthenticator::new(
                Arc::new(FakeReviewer(calls.clone())),
                Duration::from_secs(120),
            )),
            anonymous,
        };
        (a, calls)
    }

    #[test]
    fn bearer_tokens_are_read_as_go_reads_them() {
        assert_eq!(bearer_token(&headers("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&headers("bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&headers("  Bearer abc  ")), Some("abc"));
        assert_eq!(bearer_token(&headers("Bearer abc def")), Some("abc"));
        assert_eq!(bearer_token(&headers("Bearer  abc")), None);
        assert_eq!(bearer_token(&headers("Basic abc")), None);
        assert_eq!(bearer_token(&headers("Bearer")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_are_cached_for_the_ttl_and_rejections_briefly() {
        let (a, calls) = token_authn(false);
        let u = a.authenticate(&headers("Bearer good"), None).await.unwrap();
        let u = u.unwrap();
        assert_eq!(u.name, "alice");
        assert_eq!(u.groups, ["devs", "system:authenticated"]);
        a.authenticate(&headers("Bearer good"), None).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(121)).await;
        a.authenticate(&headers("Bearer good"), None).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        // Rejected: an error (401), cached for REJECTED_TOKEN_TTL only.
        let e = a.authenticate(&headers("Bearer bad"), None).await;
        assert!(matches!(e, Err(AuthError::InvalidToken)), "{e:?}");
        a.authenticate(&headers("Bearer bad"), None).await.ok();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        tokio::time::advance(REJECTED_TOKEN_TTL + Duration::from_secs(1)).await;
        a.authenticate(&headers("Bearer bad"), None).await.ok();
        assert_eq!(calls.load(Ordering::SeqCst), 4);

        // No answer: an error, not cached.
        assert!(
            a.authenticate(&headers("Bearer broken"), None)
                .await
                .is_err()
        );
        assert!(
            a.authenticate(&headers("Bearer broken"), None)
                .await
                .is_err()
        );
        assert_eq!(calls.load(Ordering::SeqCst), 6);
    }

    #[tokio::test]
    async fn anonymous_only_when_nothing_was_presented() {
        let (a, _) = token_authn(true);
        let u = a.authenticate(&HeaderMap::new(), None).await.unwrap();
        assert_eq!(u, Some(UserInfo::anonymous()));
        // A bad token is not anonymous.
        assert!(a.authenticate(&headers("Bearer bad"), None).await.is_err());
        let (a, _) = token_authn(false);
        assert_eq!(a.authenticate(&HeaderMap::new(), None).await.unwrap(), None);
        assert!(!Authenticator::default().is_configured());
    }
}
