//! The kubelet API's token authentication and Webhook authorization
//! against the real control plane of `tests/env/control-plane` (start it
//! with `tests/env/up --control-plane`): ServiceAccount tokens through
//! TokenReview, RBAC on nodes/<subresource> through SubjectAccessReview,
//! both sent with a node's own bootstrapped credentials, as berth sends
//! them; and the cached decisions.

#![allow(clippy::unwrap_used)]

mod api_common;
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use api_common::{request, server_config, start};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};
use kubelet::certificate::ClientProvider;
use kubelet::config::AuthorizationMode;
use kubelet::kubelet_node_status::ClientSource;
use kubelet::server::api::Limits;

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        ..Default::default()
    }
}

/// A ClusterRole allowing `verbs` on `nodes/<sub>`.
async fn role(admin: &kube::Client, name: &str, sub: &str, verbs: &[&str]) {
    let api: Api<ClusterRole> = Api::all(admin.clone());
    let role = ClusterRole {
        metadata: meta(name),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec![format!("nodes/{sub}")]),
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
            ..Default::default()
        }]),
        ..Default::default()
    };
    api.create(&PostParams::default(), &role).await.unwrap();
}

async fn bind(admin: &kube::Client, name: &str, role: &str, ns: &str, sa: &str) {
    let api: Api<ClusterRoleBinding> = Api::all(admin.clone());
    let binding = ClusterRoleBinding {
        metadata: meta(name),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: role.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: sa.into(),
            namespace: Some(ns.into()),
            ..Default::default()
        }]),
    };
    api.create(&PostParams::default(), &binding).await.unwrap();
}

async fn token(admin: &kube::Client, ns: &str, sa: &str) -> String {
    let api: Api<ServiceAccount> = Api::namespaced(admin.clone(), ns);
    api.create(
        &PostParams::default(),
        &ServiceAccount {
            metadata: meta(sa),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let req = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    api.create_token_request(sa, &PostParams::default(), &req)
        .await
        .unwrap()
        .status
        .unwrap()
        .token
        .unwrap()
}

/// Removes what the test made, also after a failure (with kubectl: the
/// test's runtime, which drives the kube client, is gone by then).
struct Cleanup {
    ns: String,
    node: String,
    cluster_objects: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        use base64::Engine;
        use test_support::cluster::{get_json, kubectl};
        let _ = kubectl(&["delete", "namespace", &self.ns, "--wait=false"]);
        for kind in ["clusterrolebinding", "clusterrole"] {
            let mut args = vec!["delete", kind, "--ignore-not-found"];
            args.extend(self.cluster_objects.iter().map(String::as_str));
            let _ = kubectl(&args);
        }
        let ours = format!("system:node:{}", self.node);
        let items = get_json(&["csr"]).map(|v| v["items"].clone());
        for csr in items
            .as_ref()
            .and_then(|i| i.as_array())
            .into_iter()
            .flatten()
        {
            let pem = base64::engine::general_purpose::STANDARD
                .decode(csr["spec"]["request"].as_str().unwrap_or_default())
                .unwrap_or_default();
            if common::csr_subject(&pem).contains(&ours)
                && let Some(name) = csr["metadata"]["name"].as_str()
            {
                let _ = kubectl(&["delete", "csr", name]);
            }
        }
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn tokens_and_rbac_decide_through_the_apiserver() {
    let admin = test_support::cluster::admin_client().await;
    let pid = std::process::id();
    let ns = format!("kapi-{pid}");
    let node = format!("kapi-{pid}-node");
    let (proxy_role, pods_role) = (format!("kapi-{pid}-proxy"), format!("kapi-{pid}-pods"));
    let late = format!("kapi-{pid}-late");
    let _cleanup = Cleanup {
        ns: ns.clone(),
        node: node.clone(),
        cluster_objects: vec![proxy_role.clone(), pods_role.clone(), late.clone()],
    };
    Api::<Namespace>::all(admin.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: meta(&ns),
                ..Default::default()
            },
        )
        .await
        .unwrap();

    // reader: nodes/proxy get; podsonly: nodes/pods get; nobody: nothing.
    role(&admin, &proxy_role, "proxy", &["get"]).await;
    role(&admin, &pods_role, "pods", &["get"]).await;
    let reader = token(&admin, &ns, "reader").await;
    let podsonly = token(&admin, &ns, "podsonly").await;
    let nobody = token(&admin, &ns, "nobody").await;
    bind(&admin, &proxy_role, &proxy_role, &ns, "reader").await;
    bind(&admin, &pods_role, &pods_role, &ns, "podsonly").await;

    // The reviews go out with a node's own credentials, as berth's do.
    let dir = tempfile::tempdir().unwrap();
    let (boot, _csr) = common::bootstrap(dir.path(), &node).await;
    let provider = ClientProvider::from_kubeconfig(&boot.kubeconfig, &node, None)
        .await
        .unwrap();
    let source: ClientSource = Arc::new(move || provider.client());
    let (_tx, client) = tokio::sync::watch::channel(Some(source));

    let mut config = server_config(&dir.path().join("pki"));
    config.authentication.webhook = true;
    config.authorization.mode = AuthorizationMode::Webhook;
    config.authorization.cache_unauthorized_ttl = Duration::from_secs(3);
    let addr = start(config, Some(client), Limits::default(), vec![]).await;

    let get = |tok: Option<String>, path: &'static str| async move {
        let auth = tok.map(|t| bearer(&t));
        let headers: Vec<(&str, &str)> = match &auth {
            Some(a) => vec![("authorization", a.as_str())],
            None => vec![],
        };
        request(addr, None, "GET", path, &headers).await.unwrap()
    };
    let user = |sa: &str| format!("system:serviceaccount:{ns}:{sa}");

    // No token, a made-up token: 401.
    assert_eq!(get(None, "/pods").await, (401, "Unauthorized".into()));
    assert_eq!(get(Some("not-a-token".into()), "/pods").await.0, 401);

    // The ServiceAccount token passes TokenReview; nodes/proxy allows
    // /pods and /healthz through the fallback (RBAC may take a moment to
    // see the new binding; denials are cached 3 s).
    let t = Instant::now();
    loop {
        let r = get(Some(reader.clone()), "/pods").await;
        if r.0 == 200 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "reader: {r:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        get(Some(reader.clone()), "/healthz").await,
        (200, "ok".into())
    );
    // nodes/proxy does not give stats, nor create.
    assert_eq!(
        get(Some(reader.clone()), "/stats/summary").await,
        (
            403,
            format!(
                "Forbidden (user={}, verb=get, resource=nodes, subresource(s)=[stats])\n",
                user("reader")
            )
        )
    );
    let auth = bearer(&reader);
    let r = request(
        addr,
        None,
        "POST",
        "/exec/a/b/c",
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(
        r.unwrap(),
        (
            403,
            format!(
                "Forbidden (user={}, verb=create, resource=nodes, subresource(s)=[proxy])\n",
                user("reader")
            )
        )
    );

    // Fine-grained: nodes/pods gives /pods but not /healthz.
    let t = Instant::now();
    loop {
        let r = get(Some(podsonly.clone()), "/pods").await;
        if r.0 == 200 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "podsonly: {r:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        get(Some(podsonly.clone()), "/healthz").await,
        (
            403,
            format!(
                "Forbidden (user={}, verb=get, resource=nodes, subresource(s)=[healthz proxy])\n",
                user("podsonly")
            )
        )
    );

    // Nothing granted: 403 with Go's line.
    let denied = (
        403,
        format!(
            "Forbidden (user={}, verb=get, resource=nodes, subresource(s)=[pods proxy])\n",
            user("nobody")
        ),
    );
    assert_eq!(get(Some(nobody.clone()), "/pods").await, denied);

    // Decisions are cached: nobody's denial for 3 s after a grant, the
    // reader's permission for 5 min after its binding is gone.
    bind(&admin, &late, &proxy_role, &ns, "nobody").await;
    Api::<ClusterRoleBinding>::all(admin.clone())
        .delete(&proxy_role, &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(get(Some(nobody.clone()), "/pods").await, denied);
    assert_eq!(get(Some(reader.clone()), "/pods").await.0, 200);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(get(Some(nobody.clone()), "/pods").await.0, 200);
    assert_eq!(get(Some(reader.clone()), "/pods").await.0, 200);
    // The apiserver itself no longer allows the reader: that 200 came
    // from the cache.
    let review = kubelet::server::auth::authz::access_review(&kubelet::server::auth::Attributes {
        user: kubelet::server::auth::UserInfo {
            name: user("reader"),
            groups: vec![
                "system:serviceaccounts".into(),
                "system:authenticated".into(),
            ],
            ..Default::default()
        },
        verb: "get".into(),
        resource: "nodes",
        subresource: "proxy",
        name: "node-a".into(),
        path: "/pods".into(),
    });
    let answer =
        Api::<k8s_openapi::api::authorization::v1::SubjectAccessReview>::all(admin.clone())
            .create(&PostParams::default(), &review)
            .await
            .unwrap();
    assert!(!answer.status.unwrap().allowed);
}
