//! TLS bootstrap, client-certificate rotation and the serving certificate
//! against the real control plane of `tests/env/control-plane` (apiserver
//! with Node,RBAC and NodeRestriction, the controller-manager signing and
//! auto-approving node client certificates). Start it with
//! `tests/env/up --control-plane` (or `tests/env/control-plane up`).
//!
//! Every test uses its own node name (`certs-<pid>-<test>`) and deletes the
//! CertificateSigningRequests it made.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kubelet::certificate::csr::{SIGNER_KUBELET_CLIENT, SIGNER_KUBELET_SERVING};
use kubelet::certificate::{
    BootstrapConfig, CertificateError, CertificateStore, ClientCertSource,
    ClientCertificateManager, ClientProvider, ServingCertificateRequest, load_client_cert,
    request_serving_certificate,
};
use test_support::cluster::bootstrap_kubeconfig;

use common::bootstrap;

/// The admin client, once the apiserver answers `/readyz` (else the test
/// fails saying how to start the control plane), with the requests of
/// earlier runs swept.
async fn control_plane() -> kube::Client {
    let client = test_support::cluster::admin_client().await;
    sweep_stale_csrs(&client).await;
    client
}

/// Deletes requests left by earlier runs of these tests that failed before
/// cleaning up: those of `certs-<other pid>-*` nodes, including bootstrap
/// requests, whose subject holds the node name.
async fn sweep_stale_csrs(admin: &kube::Client) {
    let api: Api<CertificateSigningRequest> = Api::all(admin.clone());
    let Ok(list) = api.list(&ListParams::default()).await else {
        return;
    };
    let ours = format!("system:node:certs-{}-", std::process::id());
    for csr in list.items {
        let subject = common::csr_subject(&csr.spec.request.0);
        let stale = subject.contains("system:node:certs-") && !subject.contains(&ours);
        if stale && let Some(name) = &csr.metadata.name {
            let _ = api.delete(name, &DeleteParams::default()).await;
        }
    }
}

fn node_name(test: &str) -> String {
    format!("certs-{}-{test}", std::process::id())
}

/// Deletes the requests of `node` and the named ones.
async fn delete_csrs(admin: &kube::Client, node: &str, names: &[String]) {
    let api: Api<CertificateSigningRequest> = Api::all(admin.clone());
    let user = format!("system:node:{node}");
    let Ok(list) = api.list(&ListParams::default()).await else {
        return;
    };
    for csr in list.items {
        let name = csr.metadata.name.clone().unwrap_or_default();
        if csr.spec.username.as_deref() == Some(user.as_str()) || names.contains(&name) {
            let _ = api.delete(&name, &DeleteParams::default()).await;
        }
    }
}

/// The user the apiserver sees: a SelfSubjectReview.
async fn whoami(client: kube::Client) -> (String, Vec<String>) {
    let api: Api<SelfSubjectReview> = Api::all(client);
    let review = api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .expect("SelfSubjectReview with the node's credentials");
    let user = review
        .status
        .and_then(|s| s.user_info)
        .expect("the review has a user");
    (
        user.username.unwrap_or_default(),
        user.groups.unwrap_or_default(),
    )
}

fn condition<'a>(
    csr: &'a CertificateSigningRequest,
    type_: &str,
) -> Option<&'a CertificateSigningRequestCondition> {
    csr.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// Waits for a kubelet-serving request of `node`, then approves (or
/// denies) it as the admin, as `kubectl certificate approve` does.
async fn decide_serving_csr(admin: kube::Client, node: String, decision: &'static str) -> String {
    let api: Api<CertificateSigningRequest> = Api::all(admin);
    let user = format!("system:node:{node}");
    loop {
        let list = api
            .list(&ListParams::default())
            .await
            .expect("listing CSRs");
        for mut csr in list.items {
            let pending = csr
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_none_or(|c| c.is_empty());
            if csr.spec.username.as_deref() != Some(user.as_str())
                || csr.spec.signer_name != SIGNER_KUBELET_SERVING
                || !pending
            {
                continue;
            }
            let name = csr.metadata.name.clone().unwrap_or_default();
            csr.status.get_or_insert_with(Default::default).conditions =
                Some(vec![CertificateSigningRequestCondition {
                    type_: decision.to_string(),
                    status: "True".to_string(),
                    reason: Some(format!("BerthTest{decision}")),
                    message: Some(format!("{decision} by the certificate_apiserver test")),
                    ..Default::default()
                }]);
            api.replace_subresource("approval", &name, &PostParams::default(), &csr)
                .await
                .expect("updating the approval");
            return name;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn bootstrap_reuse_and_rotation() {
    let admin = control_plane().await;
    let node = node_name("rotate");
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, bootstrap_csr) = bootstrap(tmp.path(), &node).await;

    // The controller-manager approved and signed the request.
    let csrs: Api<CertificateSigningRequest> = Api::all(admin.clone());
    let issued = csrs.get(&bootstrap_csr).await.unwrap();
    assert!(bootstrap_csr.starts_with("node-csr-"), "{bootstrap_csr}");
    assert_eq!(issued.spec.signer_name, SIGNER_KUBELET_CLIENT);
    assert_eq!(
        issued.spec.usages.as_deref().unwrap_or_default(),
        ["digital signature", "client auth"]
    );
    assert_eq!(
        issued.spec.username.as_deref(),
        Some("system:bootstrap:berth0")
    );
    assert!(
        condition(&issued, "Approved").is_some(),
        "{:?}",
        issued.status
    );

    // The files: a private pem, the current link, a kubeconfig using it.
    let pki = tmp.path().join("pki");
    let store = CertificateStore::client(&pki);
    let first = store
        .current()
        .unwrap()
        .expect("kubelet-client-current.pem");
    let cert = first.certificate().clone();
    assert_eq!(
        cert.common_name.as_deref(),
        Some(format!("system:node:{node}").as_str())
    );
    assert_eq!(cert.organizations, ["system:nodes"]);
    assert!(cert.client_auth);
    let link = pki.join("kubelet-client-current.pem");
    let target = std::fs::read_link(&link).unwrap();
    assert!(
        target.to_string_lossy().starts_with("kubelet-client-20"),
        "{target:?}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(pki.join(&target))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(!pki.join("kubelet-client.key.tmp").exists());
    let kubeconfig = std::fs::read_to_string(&cfg.kubeconfig).unwrap();
    assert!(
        kubeconfig.contains(&link.to_string_lossy().into_owned()),
        "{kubeconfig}"
    );
    assert!(!kubeconfig.contains("berthtestsecret0"));

    // The written kubeconfig authenticates as the node.
    let provider = ClientProvider::from_kubeconfig(&cfg.kubeconfig, &node, Some(&store))
        .await
        .unwrap();
    assert_eq!(provider.certificate().unwrap().serial, cert.serial);
    let (user, groups) = whoami(provider.client()).await;
    assert_eq!(user, format!("system:node:{node}"));
    assert!(groups.iter().any(|g| g == "system:nodes"), "{groups:?}");

    // A second start reuses the files: no request, nothing rewritten.
    let before = std::fs::read(&cfg.kubeconfig).unwrap();
    let count = |items: &[CertificateSigningRequest]| {
        items
            .iter()
            .filter(|c| c.spec.signer_name == SIGNER_KUBELET_CLIENT)
            .count()
    };
    let n_before = count(&csrs.list(&ListParams::default()).await.unwrap().items);
    assert_eq!(
        load_client_cert(&cfg).await.unwrap(),
        ClientCertSource::Kubeconfig
    );
    assert_eq!(std::fs::read(&cfg.kubeconfig).unwrap(), before);
    assert_eq!(std::fs::read_link(&link).unwrap(), target);
    let n_after = count(&csrs.list(&ListParams::default()).await.unwrap().items);
    assert_eq!(n_before, n_after, "a second load made a request");

    // Rotation: a new certificate through a request made as the node,
    // which the controller-manager approves (selfnodeclient).
    let mut changes = provider.changes();
    changes.borrow_and_update();
    let manager = ClientCertificateManager::with_csr_timeout(
        provider.clone(),
        store.clone(),
        Duration::from_secs(60),
    );
    let rotated = manager.rotate_now().await.expect("rotation");
    assert_ne!(rotated.serial, cert.serial);
    assert_eq!(rotated.common_name, cert.common_name);
    assert!(
        changes.has_changed().unwrap(),
        "the provider did not announce the new client"
    );
    assert_eq!(provider.certificate().unwrap().serial, rotated.serial);
    assert_eq!(
        store.current().unwrap().unwrap().certificate().serial,
        rotated.serial
    );
    let (user, _) = whoami(provider.client()).await;
    assert_eq!(user, format!("system:node:{node}"));
    let renewal = csrs
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|c| {
            c.spec.username.as_deref() == Some(format!("system:node:{node}").as_str())
                && c.spec.signer_name == SIGNER_KUBELET_CLIENT
        })
        .expect("the renewal request, made as the node");
    assert!(
        condition(&renewal, "Approved").is_some(),
        "{:?}",
        renewal.status
    );
    // The apiserver saw the new certificate: it issued it for this key.
    let issued_pem = renewal.status.unwrap().certificate.unwrap().0;
    let current_text = std::fs::read_to_string(&link).unwrap();
    assert!(current_text.starts_with(std::str::from_utf8(&issued_pem).unwrap().trim_end()));

    // A rotation that fails (here: not issued within 1 ms) changes nothing.
    let impatient = ClientCertificateManager::with_csr_timeout(
        provider.clone(),
        store.clone(),
        Duration::from_millis(1),
    );
    let e = impatient.rotate_now().await.unwrap_err();
    assert!(matches!(e, CertificateError::CsrTimeout { .. }), "{e}");
    assert_eq!(provider.certificate().unwrap().serial, rotated.serial);
    assert_eq!(
        store.current().unwrap().unwrap().certificate().serial,
        rotated.serial
    );
    let (user, _) = whoami(provider.client()).await;
    assert_eq!(user, format!("system:node:{node}"));

    // A new start (a fresh provider from the same kubeconfig) picks up the
    // rotated certificate through the link.
    let restarted = ClientProvider::from_kubeconfig(&cfg.kubeconfig, &node, None)
        .await
        .unwrap();
    assert_eq!(restarted.certificate().unwrap().serial, rotated.serial);
    let (user, _) = whoami(restarted.client()).await;
    assert_eq!(user, format!("system:node:{node}"));

    // Losing the kubeconfig but keeping the cert dir: no new request.
    std::fs::remove_file(&cfg.kubeconfig).unwrap();
    match load_client_cert(&cfg).await.unwrap() {
        ClientCertSource::CertDir(c) => assert_eq!(c.serial, rotated.serial),
        other => panic!("{other:?}"),
    }

    delete_csrs(&admin, &node, &[bootstrap_csr]).await;
}

#[tokio::test]
async fn the_rotation_loop_rotates_when_due() {
    let admin = control_plane().await;
    let node = node_name("loop");
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, bootstrap_csr) = bootstrap(tmp.path(), &node).await;
    let store = CertificateStore::client(&cfg.cert_dir);
    let provider = ClientProvider::from_kubeconfig(&cfg.kubeconfig, &node, Some(&store))
        .await
        .unwrap();
    let mut serials = vec![provider.certificate().unwrap().serial];
    let mut changes = provider.changes();
    changes.borrow_and_update();
    // Always due: the loop rotates at once, and again for each new
    // certificate.
    let manager = ClientCertificateManager::with_csr_timeout(
        provider.clone(),
        store.clone(),
        Duration::from_secs(60),
    )
    .with_deadline(|_| std::time::SystemTime::UNIX_EPOCH);
    let task = tokio::spawn(manager.run());
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(60), changes.changed())
            .await
            .expect("the loop did not rotate")
            .unwrap();
        let cert = changes.borrow_and_update().certificate.clone().unwrap();
        serials.push(cert.serial);
    }
    task.abort();
    let distinct: std::collections::HashSet<_> = serials.iter().collect();
    assert_eq!(distinct.len(), 3, "{serials:?}");
    let (user, _) = whoami(provider.client()).await;
    assert_eq!(user, format!("system:node:{node}"));

    delete_csrs(&admin, &node, &[bootstrap_csr]).await;
}

#[tokio::test]
async fn serving_certificate_is_issued_after_admin_approval() {
    let admin = control_plane().await;
    let node = node_name("serving");
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, bootstrap_csr) = bootstrap(tmp.path(), &node).await;
    let provider = ClientProvider::from_kubeconfig(&cfg.kubeconfig, &node, None)
        .await
        .unwrap();

    let approver = tokio::spawn(decide_serving_csr(admin.clone(), node.clone(), "Approved"));
    let mut req = ServingCertificateRequest::new(
        &node,
        vec![format!("{node}.example")],
        vec!["127.0.0.1".parse().unwrap()],
    );
    req.csr_timeout = Duration::from_secs(60);
    let issued = request_serving_certificate(&provider.client(), &cfg.cert_dir, &req)
        .await
        .expect("serving certificate");
    let approved = tokio::time::timeout(Duration::from_secs(5), approver)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(issued.csr_name, approved);

    let cert = issued.certificate();
    assert_eq!(
        cert.common_name.as_deref(),
        Some(format!("system:node:{node}").as_str())
    );
    assert_eq!(cert.organizations, ["system:nodes"]);
    assert!(cert.server_auth);
    assert_eq!(cert.dns_names, [format!("{node}.example")]);
    assert_eq!(
        cert.ip_addresses,
        ["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]
    );
    let current = tmp.path().join("pki/kubelet-server-current.pem");
    assert_eq!(issued.current_path, current);
    assert_eq!(
        std::fs::read_link(&current).unwrap(),
        PathBuf::from(issued.path.file_name().unwrap())
    );
    let stored = CertificateStore::server(&cfg.cert_dir)
        .current()
        .unwrap()
        .unwrap();
    assert_eq!(stored.certificate().serial, cert.serial);
    let csr = Api::<CertificateSigningRequest>::all(admin.clone())
        .get(&issued.csr_name)
        .await
        .unwrap();
    assert_eq!(csr.spec.signer_name, SIGNER_KUBELET_SERVING);
    assert_eq!(
        csr.spec.usages.as_deref().unwrap_or_default(),
        ["digital signature", "server auth"]
    );

    delete_csrs(&admin, &node, &[bootstrap_csr]).await;
}

#[tokio::test]
async fn a_denied_or_unanswered_serving_request_fails_clearly() {
    let admin = control_plane().await;
    let node = node_name("denied");
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, bootstrap_csr) = bootstrap(tmp.path(), &node).await;
    let provider = ClientProvider::from_kubeconfig(&cfg.kubeconfig, &node, None)
        .await
        .unwrap();
    let mut req = ServingCertificateRequest::new(&node, vec![format!("{node}.example")], vec![]);

    // Nobody approves it: a timeout naming the request.
    req.csr_timeout = Duration::from_secs(3);
    let e = request_serving_certificate(&provider.client(), &cfg.cert_dir, &req)
        .await
        .unwrap_err();
    assert!(matches!(e, CertificateError::CsrTimeout { .. }), "{e}");
    assert!(e.to_string().contains("was not issued within 3 s"), "{e}");
    delete_csrs(&admin, &node, &[]).await;

    // Denied: the condition's reason and message.
    let denier = tokio::spawn(decide_serving_csr(admin.clone(), node.clone(), "Denied"));
    req.csr_timeout = Duration::from_secs(60);
    let e = request_serving_certificate(&provider.client(), &cfg.cert_dir, &req)
        .await
        .unwrap_err();
    let denied = tokio::time::timeout(Duration::from_secs(5), denier)
        .await
        .unwrap()
        .unwrap();
    match &e {
        CertificateError::CsrDenied {
            name,
            reason,
            message,
        } => {
            assert_eq!(name, &denied);
            assert_eq!(reason, "BerthTestDenied");
            assert!(message.contains("Denied by the certificate_apiserver test"));
        }
        other => panic!("{other}"),
    }
    assert!(!cfg.cert_dir.join("kubelet-server-current.pem").exists());

    delete_csrs(&admin, &node, &[bootstrap_csr]).await;
}

#[tokio::test]
async fn bootstrap_with_a_wrong_token_fails_clearly() {
    let _admin = control_plane().await;
    let node = node_name("badtoken");
    let tmp = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(bootstrap_kubeconfig()).unwrap();
    assert!(
        good.contains("berth0.berthtestsecret0"),
        "the bootstrap token changed"
    );
    let bad = tmp.path().join("bootstrap.conf");
    std::fs::write(
        &bad,
        good.replace("berth0.berthtestsecret0", "berth0.wrongsecret00000"),
    )
    .unwrap();
    let mut cfg = BootstrapConfig::new(
        tmp.path().join("kubelet.conf"),
        Some(bad.clone()),
        tmp.path().join("pki"),
        &node,
    );
    cfg.csr_timeout = Duration::from_secs(30);
    let e = tokio::time::timeout(Duration::from_secs(60), load_client_cert(&cfg))
        .await
        .expect("the bootstrap hung")
        .unwrap_err();
    assert_eq!(e.api_status(), Some(401), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("creating CertificateSigningRequest node-csr-"),
        "{text}"
    );
    assert!(text.contains(&bad.to_string_lossy().into_owned()), "{text}");
    assert!(text.contains("Unauthorized"), "{text}");
    assert!(!text.contains("wrongsecret"), "{text}");
    assert!(!tmp.path().join("kubelet.conf").exists());
}
