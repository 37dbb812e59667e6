//! Service account tokens for projected volumes (the Go kubelet's
//! `pkg/kubelet/token`): a TokenRequest per pod, service account, audience
//! and lifetime, bound to the pod, cached, and requested again once 80 % of
//! its lifetime or 24 hours have passed, as Go does. The token itself never
//! appears in logs or errors.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, PostParams};
use tokio::sync::watch;

use crate::kubelet_node_status::ClientSource;
use crate::{pod_ref, pod_uid};

/// The shortest lifetime the apiserver grants (and Go's floor).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The lifetime when the volume does not say.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// A token older than this is replaced whatever its lifetime.
const MAX_TOKEN_AGE: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no apiserver credentials yet")]
    NoClient,
    #[error("requesting a token for service account {namespace}/{name}: {message}")]
    Request {
        namespace: String,
        name: String,
        message: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    namespace: String,
    service_account: String,
    audience: String,
    expiration_seconds: i64,
    pod_uid: String,
}

#[derive(Clone)]
struct Cached {
    token: String,
    issued: SystemTime,
    expires: SystemTime,
}

impl Cached {
    /// Go's `requiresRefresh`: past 80 % of the lifetime, or a day old.
    fn needs_refresh(&self, now: SystemTime) -> bool {
        let ttl = self
            .expires
            .duration_since(self.issued)
            .unwrap_or(Duration::ZERO);
        let age = now.duration_since(self.issued).unwrap_or(Duration::ZERO);
        age >= ttl.mul_f64(0.8) || age >= MAX_TOKEN_AGE
    }

    /// When [`needs_refresh`](Self::needs_refresh) turns true.
    fn refresh_at(&self) -> SystemTime {
        let ttl = self
            .expires
            .duration_since(self.issued)
            .unwrap_or(Duration::ZERO);
        self.issued + ttl.mul_f64(0.8).min(MAX_TOKEN_AGE)
    }
}

pub struct TokenManager {
    client: watch::Receiver<Option<ClientSource>>,
    cache: Mutex<HashMap<Key, Cached>>,
}

impl TokenManager {
    pub fn new(client: watch::Receiver<Option<ClientSource>>) -> Self {
        TokenManager {
            client,
            cache: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Cached>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pod's token for `audience` ("" for the apiserver's own) with
    /// the given lifetime (raised to the 600 s floor): cached while fresh.
    pub async fn token(
        &self,
        pod: &Pod,
        audience: &str,
        expiration_seconds: Option<i64>,
    ) -> Result<String, TokenError> {
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let service_account = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".into());
        let key = Key {
            namespace: namespace.clone(),
            service_account: service_account.clone(),
            audience: audience.to_string(),
            expiration_seconds: expiration_seconds
                .unwrap_or(DEFAULT_EXPIRATION_SECONDS)
                .max(MIN_EXPIRATION_SECONDS),
            pod_uid: pod_uid(pod).to_string(),
        };
        let now = SystemTime::now();
        if let Some(c) = self.lock().get(&key).filter(|c| !c.needs_refresh(now)) {
            return Ok(c.token.clone());
        }
        let source = self.client.borrow().clone().ok_or(TokenError::NoClient)?;
        let api: Api<ServiceAccount> = Api::namespaced(source(), &namespace);
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: (!audience.is_empty()).then(|| vec![audience.to_string()]),
                expiration_seconds: Some(key.expiration_seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: pod.metadata.name.clone(),
                    uid: pod.metadata.uid.clone(),
                }),
            }),
            ..Default::default()
        };
        // A pod just bound here may be refused for a moment, until the Node
        // authorizer has seen the binding: retry such a 403 briefly.
        let mut tries = 0;
        let answer = loop {
            tries += 1;
            match api
                .create_token_request(&service_account, &PostParams::default(), &request)
                .await
            {
                Ok(a) => break a,
                Err(kube::Error::Api(e)) if e.code == 403 && tries < 4 => {
                    tokio::time::sleep(Duration::from_millis(100) * tries).await;
                }
                Err(e) => {
                    return Err(TokenError::Request {
                        namespace: namespace.clone(),
                        name: service_account.clone(),
                        message: e.to_string(),
                    });
                }
            }
        };
        let no_token = || TokenError::Request {
            namespace: namespace.clone(),
            name: service_account.clone(),
            message: "the answer has no token".into(),
        };
        let status = answer.status.ok_or_else(no_token)?;
        let token = status.token.ok_or_else(no_token)?;
        let expires = status
            .expiration_timestamp
            .map(|t| SystemTime::from(t.0))
            .unwrap_or(now + Duration::from_secs(key.expiration_seconds.unsigned_abs()));
        tracing::debug!(pod = %pod_ref(pod), uid = %key.pod_uid, service_account = %service_account, audience, "service account token issued");
        self.lock().insert(
            key,
            Cached {
                token: token.clone(),
                issued: now,
                expires,
            },
        );
        Ok(token)
    }

    /// The earliest time a cached token is due for refresh, so volumes
    /// get the new token then rather than at the next resync.
    pub fn next_refresh(&self) -> Option<SystemTime> {
        self.lock().values().map(Cached::refresh_at).min()
    }

    /// The UIDs of the pods with a token due for refresh at `now`.
    pub fn due_pods(&self, now: SystemTime) -> HashSet<String> {
        self.lock()
            .iter()
            .filter(|(_, c)| c.needs_refresh(now))
            .map(|(k, _)| k.pod_uid.clone())
            .collect()
    }

    /// Forgets a pod's tokens.
    pub fn remove_pod(&self, uid: &str) {
        self.lock().retain(|k, _| k.pod_uid != uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_at_80_percent_or_after_a_day() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let hour = Cached {
            token: String::new(),
            issued: t0,
            expires: t0 + Duration::from_secs(3600),
        };
        assert!(!hour.needs_refresh(t0 + Duration::from_secs(2879)));
        assert!(hour.needs_refresh(t0 + Duration::from_secs(2880)));
        let week = Cached {
            token: String::new(),
            issued: t0,
            expires: t0 + Duration::from_secs(7 * 24 * 3600),
        };
        assert!(!week.needs_refresh(t0 + Duration::from_secs(23 * 3600)));
        assert!(week.needs_refresh(t0 + MAX_TOKEN_AGE));
        assert_eq!(hour.refresh_at(), t0 + Duration::from_secs(2880));
        assert_eq!(week.refresh_at(), t0 + MAX_TOKEN_AGE);
    }
}
