//! Authorization (Go's `BuildAuthz`): AlwaysAllow, or Webhook: a
//! SubjectAccessReview to the apiserver per attribute set, allowed answers
//! cached for `cacheAuthorizedTTL`, others for `cacheUnauthorizedTTL`,
//! errors not at all.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use tokio::sync::watch;

use super::authn::{REVIEW_TIMEOUT, retryable};
use super::cache::{DEFAULT_CAPACITY, InFlight, TtlCache};
use super::{AccessReviewer, Attributes, AuthError};
use crate::kubelet_node_status::ClientSource;

/// `authorization.mode`.
pub enum Authorizer {
    AlwaysAllow,
    Webhook(WebhookAuthorizer),
}

impl Authorizer {
    /// Whether `attrs` is allowed; `Err` when the apiserver gave no answer.
    pub async fn authorize(&self, attrs: &Attributes) -> Result<bool, AuthError> {
        match self {
            Authorizer::AlwaysAllow => Ok(true),
            Authorizer::Webhook(w) => w.authorize(attrs).await,
        }
    }
}

/// SubjectAccessReviews through an [`AccessReviewer`], with Go's caches.
pub struct WebhookAuthorizer {
    reviewer: Arc<dyn AccessReviewer>,
    allowed_ttl: Duration,
    denied_ttl: Duration,
    cache: TtlCache<Attributes, bool>,
    in_flight: InFlight<Attributes, Result<bool, AuthError>>,
}

impl WebhookAuthorizer {
    pub fn new(
        reviewer: Arc<dyn AccessReviewer>,
        allowed_ttl: Duration,
        denied_ttl: Duration,
    ) -> Self {
        WebhookAuthorizer {
            reviewer,
            allowed_ttl,
            denied_ttl,
            cache: TtlCache::new(DEFAULT_CAPACITY),
            in_flight: InFlight::default(),
        }
    }

    pub async fn authorize(&self, attrs: &Attributes) -> Result<bool, AuthError> {
        // The review does not carry the path of a resource request, so
        // neither does the key.
        let key = Attributes {
            path: String::new(),
            ..attrs.clone()
        };
        if let Some(allowed) = self.cache.get(&key) {
            return Ok(allowed);
        }
        let allowed = self
            .in_flight
            .run(key.clone(), || self.reviewer.review(attrs.clone()))
            .await?;
        let ttl = if allowed {
            self.allowed_ttl
        } else {
            self.denied_ttl
        };
        self.cache.insert(key, allowed, ttl);
        Ok(allowed)
    }
}

/// The SubjectAccessReview Go's webhook authorizer sends for `attrs`.
pub fn access_review(attrs: &Attributes) -> SubjectAccessReview {
    let user = &attrs.user;
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.name.clone()),
            uid: (!user.uid.is_empty()).then(|| user.uid.clone()),
            groups: Some(user.groups.clone()),
            extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(String::new()),
                verb: Some(attrs.verb.clone()),
                group: Some(String::new()),
                version: Some("v1".to_string()),
                resource: Some(attrs.resource.to_string()),
                subresource: Some(attrs.subresource.to_string()),
                name: Some(attrs.name.clone()),
                ..Default::default()
            }),
            non_resource_attributes: None,
        },
        ..Default::default()
    }
}

/// SubjectAccessReviews sent to the apiserver with the node's client, once
/// it is ready.
pub struct KubeAccessReviewer {
    client: watch::Receiver<Option<ClientSource>>,
}

impl KubeAccessReviewer {
    pub fn new(client: watch::Receiver<Option<ClientSource>>) -> Self {
        KubeAccessReviewer { client }
    }
}

impl AccessReviewer for KubeAccessReviewer {
    fn review(&self, attrs: Attributes) -> BoxFuture<'static, Result<bool, AuthError>> {
        let source = self.client.borrow().clone();
        Box::pin(async move {
            let source = source.ok_or(AuthError::NoClient)?;
            let review = access_review(&attrs);
            let mut delay = Duration::from_millis(500);
            let mut attempt = 0;
            loop {
                attempt += 1;
                let api: Api<SubjectAccessReview> = Api::all(source());
                let sent = tokio::time::timeout(
                    REVIEW_TIMEOUT,
                    api.create(&PostParams::default(), &review),
                )
                .await;
                match sent {
                    Ok(Ok(answer)) => {
                        return Ok(answer.status.is_some_and(|s| s.allowed));
                    }
                    Ok(Err(e)) if attempt < 3 && retryable(&e) => {}
                    Ok(Err(e)) => return Err(AuthError::AccessReview(e.to_string())),
                    Err(_) if attempt < 3 => {}
                    Err(_) => {
                        return Err(AuthError::AccessReview(format!(
                            "no answer within {REVIEW_TIMEOUT:?}"
                        )));
                    }
                }
                tokio::time::sleep(delay).await;
                delay = delay.mul_f64(1.5);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::auth::{KubeletAuth, UserInfo, request_attributes};
    use http::{Method, StatusCode};
    use std::sync::Mutex;

    /// The reviews a fake saw: (user, subresource).
    type Seen = Arc<Mutex<Vec<(String, &'static str)>>>;

    /// Allows what `allow` lists as (user, subresource); records every
    /// review; fails for user "err".
    #[derive(Default)]
    struct FakeReviewer {
        allow: Vec<(&'static str, &'static str)>,
        seen: Seen,
    }

    impl AccessReviewer for FakeReviewer {
        fn review(&self, attrs: Attributes) -> BoxFuture<'static, Result<bool, AuthError>> {
            self.seen
                .lock()
                .unwrap()
                .push((attrs.user.name.clone(), attrs.subresource));
            let allowed = self
                .allow
                .iter()
                .any(|(u, s)| *u == attrs.user.name && *s == attrs.subresource);
            let fail = attrs.user.name == "err";
            Box::pin(async move {
                if fail {
                    Err(AuthError::AccessReview("apiserver away".into()))
                } else {
                    Ok(allowed)
                }
            })
        }
    }

    fn user(name: &str) -> UserInfo {
        UserInfo {
            name: name.into(),
            ..Default::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn decisions_are_cached_by_their_ttls() {
        let fake = FakeReviewer {
            allow: vec![("alice", "proxy")],
            ..Default::default()
        };
        let seen = fake.seen.clone();
        let w = WebhookAuthorizer::new(
            Arc::new(fake),
            Duration::from_secs(300),
            Duration::from_secs(30),
        );
        let a = &request_attributes(&user("alice"), &Method::GET, "/exec/a/b/c", "n")[0];
        let b = &request_attributes(&user("bob"), &Method::GET, "/exec/a/b/c", "n")[0];
        assert!(w.authorize(a).await.unwrap());
        assert!(!w.authorize(b).await.unwrap());
        // Another path with the same attributes is the same decision.
        let a2 = &request_attributes(&user("alice"), &Method::GET, "/run/x/y/z", "n")[0];
        assert!(w.authorize(a2).await.unwrap());
        assert!(!w.authorize(b).await.unwrap());
        assert_eq!(seen.lock().unwrap().len(), 2);
        // The denial expires after 30 s, the permission after 5 min.
        tokio::time::advance(Duration::from_secs(31)).await;
        w.authorize(a).await.unwrap();
        w.authorize(b).await.unwrap();
        assert_eq!(seen.lock().unwrap().len(), 3);
        tokio::time::advance(Duration::from_secs(300)).await;
        w.authorize(a).await.unwrap();
        assert_eq!(seen.lock().unwrap().len(), 4);
        // Errors are not cached.
        let e = &request_attributes(&user("err"), &Method::GET, "/pods", "n")[0];
        assert!(w.authorize(e).await.is_err());
        assert!(w.authorize(e).await.is_err());
        assert_eq!(seen.lock().unwrap().len(), 6);
    }

    fn auth(allow: Vec<(&'static str, &'static str)>) -> (KubeletAuth, Seen) {
        let fake = FakeReviewer {
            allow,
            ..Default::default()
        };
        let seen = fake.seen.clone();
        let authz = Authorizer::Webhook(WebhookAuthorizer::new(
            Arc::new(fake),
            Duration::from_secs(300),
            Duration::from_secs(30),
        ));
        let a = KubeletAuth {
            authenticator: crate::server::auth::Authenticator {
                anonymous: true,
                ..Default::default()
            },
            authorizer: authz,
            node_name: "node-1".into(),
        };
        (a, seen)
    }

    #[tokio::test]
    async fn fine_grained_first_then_proxy() {
        let anon = "system:anonymous";
        let h = http::HeaderMap::new();
        // Only nodes/pods: /pods is allowed with one review.
        let (a, seen) = auth(vec![(anon, "pods")]);
        assert!(a.check(&Method::GET, "/pods", &h, None).await.is_ok());
        assert_eq!(*seen.lock().unwrap(), [(anon.to_string(), "pods")]);
        // Only nodes/proxy: /pods falls back to proxy.
        let (a, seen) = auth(vec![(anon, "proxy")]);
        assert!(a.check(&Method::GET, "/pods", &h, None).await.is_ok());
        assert_eq!(
            *seen.lock().unwrap(),
            [(anon.to_string(), "pods"), (anon.to_string(), "proxy")]
        );
        // nodes/proxy does not give /stats.
        let r = a.check(&Method::GET, "/stats/summary", &h, None).await;
        let r = r.unwrap_err();
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(
            r.body,
            "Forbidden (user=system:anonymous, verb=get, resource=nodes, subresource(s)=[stats])\n"
        );
        // Nothing: 403 naming both.
        let (a, _) = auth(vec![]);
        let r = a
            .check(&Method::GET, "/healthz", &h, None)
            .await
            .unwrap_err();
        assert_eq!(
            r.body,
            "Forbidden (user=system:anonymous, verb=get, resource=nodes, subresource(s)=[healthz proxy])\n"
        );
    }

    #[test]
    fn the_review_has_gos_fields() {
        let mut u = user("alice");
        u.groups = vec!["g".into()];
        let attrs = &request_attributes(&u, &Method::POST, "/exec/a/b/c", "n1")[0];
        let v = serde_json::to_value(access_review(attrs)).unwrap();
        assert_eq!(v["spec"]["user"], "alice");
        assert_eq!(v["spec"]["groups"], serde_json::json!(["g"]));
        let ra = &v["spec"]["resourceAttributes"];
        assert_eq!(ra["verb"], "create");
        assert_eq!(ra["resource"], "nodes");
        assert_eq!(ra["subresource"], "proxy");
        assert_eq!(ra["name"], "n1");
        assert_eq!(ra["version"], "v1");
        assert_eq!(ra["group"], "");
        assert_eq!(ra["namespace"], "");
    }
}
