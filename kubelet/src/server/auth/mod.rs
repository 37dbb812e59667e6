//! Who is asking, and may they: the kubelet API's authentication and
//! authorization (Go's `pkg/kubelet/server/auth.go`, the filter in
//! `server.go` and `cmd/kubelet/app/auth.go`).
//!
//! - [`authn::Authenticator`]: a client certificate verified against the
//!   client CA (user = CN, groups = O), or a bearer token checked with a
//!   TokenReview (cached), or, when enabled, anonymous.
//! - [`request_attributes`]: the `nodes/<subresource>` a request needs,
//!   with the fine-grained subresource first and `proxy` as the fallback.
//! - [`authz::Authorizer`]: AlwaysAllow, or a SubjectAccessReview per
//!   attribute set (cached by the allowed and denied TTLs).
//! - [`KubeletAuth::check`]: the filter: 401 `Unauthorized`, 403 with Go's
//!   `Forbidden (…)` line, or the user.

pub mod authn;
pub mod authz;
pub mod cache;

use std::collections::BTreeMap;

use futures_util::future::BoxFuture;
use http::{HeaderMap, Method, StatusCode};

pub use authn::{Authenticator, ClientCa, KubeTokenReviewer, TokenAuthenticator};
pub use authz::{Authorizer, KubeAccessReviewer, WebhookAuthorizer};

/// An authenticated user, as the apiserver's `user.Info`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The user of requests no authenticator claimed (anonymous enabled).
pub const ANONYMOUS_USER: &str = "system:anonymous";
/// The group of the anonymous user.
pub const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";
/// The group every authenticated user gets (Go's `AuthenticatedGroupAdder`).
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

impl UserInfo {
    pub fn anonymous() -> Self {
        UserInfo {
            name: ANONYMOUS_USER.to_string(),
            groups: vec![UNAUTHENTICATED_GROUP.to_string()],
            ..Default::default()
        }
    }

    /// Adds `system:authenticated` unless the user already carries it or
    /// is anonymous, as Go's group adder.
    pub(crate) fn with_authenticated_group(mut self) -> Self {
        let is_anonymous =
            self.name == ANONYMOUS_USER || self.groups.iter().any(|g| g == UNAUTHENTICATED_GROUP);
        if !is_anonymous && !self.groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
            self.groups.push(AUTHENTICATED_GROUP.to_string());
        }
        self
    }
}

/// What a request asks to do to the node: Go's `authorizer.Attributes`
/// with resource `nodes`, API version v1, no namespace and no group.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Attributes {
    pub user: UserInfo,
    pub verb: String,
    pub resource: &'static str,
    pub subresource: &'static str,
    /// The node's name.
    pub name: String,
    pub path: String,
}

/// Why a request could not be authenticated or authorized. Never holds a
/// token or key.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("the client certificate is not valid for the client CA {ca}: {reason}")]
    ClientCertificate { ca: String, reason: String },
    #[error("the bearer token is not valid")]
    InvalidToken,
    #[error("TokenReview: {0}")]
    TokenReview(String),
    #[error("SubjectAccessReview: {0}")]
    AccessReview(String),
    #[error("the apiserver client is not ready yet")]
    NoClient,
}

/// The API verb for an HTTP method, as Go's attributes getter (HEAD is
/// read as GET: Go leaves the verb empty, which no RBAC rule but `*`
/// matches).
pub fn verb_for(method: &Method) -> &'static str {
    match *method {
        Method::GET | Method::HEAD => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "",
    }
}

/// Go's `isSubpath`: `path` itself, or below it.
fn is_subpath(subpath: &str, path: &str) -> bool {
    let path = path.strip_suffix('/').unwrap_or(path);
    subpath == path
        || (subpath.starts_with(path) && subpath.as_bytes().get(path.len()) == Some(&b'/'))
}

/// The subresources a request to `path` may be authorized by, in the order
/// they are tried: Go 1.36's fine-grained one (`pods`, `healthz`,
/// `configz`) first with `proxy` after it, or the one dedicated
/// subresource (`stats`, `metrics`, `log`, `checkpoint`, `statusz`, and
/// `configz` for `/flagz`), else `proxy`.
pub fn subresources_for(path: &str) -> Vec<&'static str> {
    let mut out = Vec::with_capacity(2);
    if is_subpath(path, "/pods") || is_subpath(path, "/runningpods/") {
        out.push("pods");
    } else if is_subpath(path, "/healthz") {
        out.push("healthz");
    } else if is_subpath(path, "/configz") {
        out.push("configz");
    }
    let dedicated = [
        ("/stats/", "stats"),
        ("/metrics", "metrics"),
        ("/logs/", "log"),
        ("/checkpoint/", "checkpoint"),
        ("/statusz", "statusz"),
        ("/flagz", "configz"),
    ];
    match dedicated.iter().find(|(p, _)| is_subpath(path, p)) {
        Some((_, sub)) => out.push(sub),
        None => out.push("proxy"),
    }
    out
}

/// The attribute sets for a request, tried in order until one is allowed.
pub fn request_attributes(
    user: &UserInfo,
    method: &Method,
    path: &str,
    node_name: &str,
) -> Vec<Attributes> {
    let verb = verb_for(method);
    subresources_for(path)
        .into_iter()
        .map(|subresource| Attributes {
            user: user.clone(),
            verb: verb.to_string(),
            resource: "nodes",
            subresource,
            name: node_name.to_string(),
            path: path.to_string(),
        })
        .collect()
}

/// Reviews a bearer token: `Ok(Some(user))` authenticated, `Ok(None)`
/// rejected (an answer to cache), `Err` no answer (not cached).
pub trait TokenReviewer: Send + Sync + 'static {
    fn review(&self, token: String) -> BoxFuture<'static, Result<Option<UserInfo>, AuthError>>;
}

/// Reviews one attribute set: `Ok(true)` allowed, `Ok(false)` denied or no
/// opinion (an answer to cache), `Err` no answer (not cached).
pub trait AccessReviewer: Send + Sync + 'static {
    fn review(&self, attrs: Attributes) -> BoxFuture<'static, Result<bool, AuthError>>;
}

/// A refusal: the status and the body Go writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub body: String,
}

impl Refusal {
    fn unauthorized() -> Self {
        Refusal {
            status: StatusCode::UNAUTHORIZED,
            body: "Unauthorized".to_string(),
        }
    }
}

/// Go's 403 body: the attributes differ only by subresource, so the first
/// one speaks for all, with every subresource tried.
pub fn forbidden_message(attrs: &[Attributes]) -> String {
    let subs: Vec<&str> = attrs.iter().map(|a| a.subresource).collect();
    match attrs.first() {
        Some(a) => format!(
            "Forbidden (user={}, verb={}, resource={}, subresource(s)=[{}])\n",
            a.user.name,
            a.verb,
            a.resource,
            subs.join(" ")
        ),
        None => "Authorization error: could not determine attributes for request".to_string(),
    }
}

/// The kubelet API's filter: authentication, then authorization.
pub struct KubeletAuth {
    pub authenticator: Authenticator,
    pub authorizer: Authorizer,
    pub node_name: String,
}

impl KubeletAuth {
    /// The user behind a request, if it may go on; else the answer Go gives.
    pub async fn check(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        peer_certificates: Option<&[rustls::pki_types::CertificateDer<'static>]>,
    ) -> Result<UserInfo, Refusal> {
        let user = match self
            .authenticator
            .authenticate(headers, peer_certificates)
            .await
        {
            Ok(Some(user)) => user,
            Ok(None) => return Err(Refusal::unauthorized()),
            Err(e) => {
                // Debug: clients with bad credentials must not flood the log.
                tracing::debug!(%path, "kubelet API: unable to authenticate the request: {e}");
                return Err(Refusal::unauthorized());
            }
        };
        let attrs = request_attributes(&user, method, path, &self.node_name);
        for attr in &attrs {
            match self.authorizer.authorize(attr).await {
                Ok(true) => return Ok(user),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(user = %attr.user.name, verb = %attr.verb, subresource = attr.subresource, "kubelet API: authorization error: {e}");
                    return Err(Refusal {
                        status: StatusCode::INTERNAL_SERVER_ERROR,
                        body: format!(
                            "Authorization error (user={}, verb={}, resource={}, subresource={})",
                            attr.user.name, attr.verb, attr.resource, attr.subresource
                        ),
                    });
                }
            }
        }
        let body = forbidden_message(&attrs);
        tracing::debug!(user = %user.name, %path, "kubelet API: {}", body.trim_end());
        Err(Refusal {
            status: StatusCode::FORBIDDEN,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(path: &str) -> Vec<&'static str> {
        subresources_for(path)
    }

    #[test]
    fn paths_map_to_go_subresources() {
        assert_eq!(subs("/pods"), ["pods", "proxy"]);
        assert_eq!(subs("/pods/"), ["pods", "proxy"]);
        assert_eq!(subs("/runningpods/"), ["pods", "proxy"]);
        assert_eq!(subs("/runningpods"), ["pods", "proxy"]);
        assert_eq!(subs("/healthz"), ["healthz", "proxy"]);
        assert_eq!(subs("/healthz/ping"), ["healthz", "proxy"]);
        assert_eq!(subs("/configz"), ["configz", "proxy"]);
        assert_eq!(subs("/stats/summary"), ["stats"]);
        assert_eq!(subs("/stats"), ["stats"]);
        assert_eq!(subs("/metrics"), ["metrics"]);
        assert_eq!(subs("/metrics/cadvisor"), ["metrics"]);
        assert_eq!(subs("/metrics/resource"), ["metrics"]);
        assert_eq!(subs("/metrics/probes"), ["metrics"]);
        assert_eq!(subs("/logs/syslog"), ["log"]);
        assert_eq!(subs("/checkpoint/ns/p/c"), ["checkpoint"]);
        assert_eq!(subs("/statusz"), ["statusz"]);
        assert_eq!(subs("/flagz"), ["configz"]);
        assert_eq!(subs("/containerLogs/ns/p/c"), ["proxy"]);
        assert_eq!(subs("/exec/ns/p/c"), ["proxy"]);
        assert_eq!(subs("/"), ["proxy"]);
        // A prefix that is not a path segment is not a subpath.
        assert_eq!(subs("/podsx"), ["proxy"]);
        assert_eq!(subs("/statsx"), ["proxy"]);
        assert_eq!(subs("/metricsfoo"), ["proxy"]);
        assert_eq!(subs("/healthzz"), ["proxy"]);
    }

    #[test]
    fn verbs_follow_the_method() {
        assert_eq!(verb_for(&Method::GET), "get");
        assert_eq!(verb_for(&Method::HEAD), "get");
        assert_eq!(verb_for(&Method::POST), "create");
        assert_eq!(verb_for(&Method::PUT), "update");
        assert_eq!(verb_for(&Method::PATCH), "patch");
        assert_eq!(verb_for(&Method::DELETE), "delete");
        assert_eq!(verb_for(&Method::OPTIONS), "");
    }

    #[test]
    fn attributes_name_the_node_and_the_forbidden_line_is_gos() {
        let user = UserInfo {
            name: "alice".into(),
            ..Default::default()
        };
        let attrs = request_attributes(&user, &Method::GET, "/pods", "node-1");
        assert_eq!(attrs.len(), 2);
        assert!(attrs.iter().all(|a| a.name == "node-1"
            && a.resource == "nodes"
            && a.verb == "get"
            && a.path == "/pods"));
        assert_eq!(
            forbidden_message(&attrs),
            "Forbidden (user=alice, verb=get, resource=nodes, subresource(s)=[pods proxy])\n"
        );
        let attrs = request_attributes(&user, &Method::POST, "/exec/ns/p/c", "node-1");
        assert_eq!(
            forbidden_message(&attrs),
            "Forbidden (user=alice, verb=create, resource=nodes, subresource(s)=[proxy])\n"
        );
    }

    #[test]
    fn authenticated_group_is_added_once_and_not_to_anonymous() {
        let u = UserInfo {
            name: "bob".into(),
            groups: vec!["devs".into()],
            ..Default::default()
        }
        .with_authenticated_group();
        assert_eq!(u.groups, ["devs", AUTHENTICATED_GROUP]);
        assert_eq!(u.clone().with_authenticated_group().groups, u.groups);
        let a = UserInfo::anonymous().with_authenticated_group();
        assert_eq!(a.groups, [UNAUTHENTICATED_GROUP]);
    }
}
