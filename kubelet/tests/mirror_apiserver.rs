//! Mirror pods against the real control plane of `tests/env/control-plane`
//! (apiserver with Node,RBAC and NodeRestriction), with the node's own
//! credentials from a TLS bootstrap, so NodeRestriction judges every mirror
//! pod. Start it with `tests/env/up --control-plane`.
//!
//! The test uses its own node name (`mirror-<pid>-<test>`) and deletes its
//! Node, pods and CertificateSigningRequests at the end, also when it fails.
//! Nothing runs the pods: no kubelet serves that node.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::{Node, Pod, PodStatus};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use kubelet::certificate::ClientProvider;
use kubelet::mirror_client::{CONFIG_MIRROR_ANNOTATION, MirrorReconciler, is_mirror_pod};
use kubelet::status::StatusManager;
use static_pods::identity::{CONFIG_HASH_ANNOTATION, set_first_seen};
use test_support::cluster::{admin_client, on_own_runtime};
use tokio::sync::watch;

const NAMESPACE: &str = "default";
const WAIT: Duration = Duration::from_secs(30);

/// Deletes the test's Node, its pods and its CSRs when dropped, on a runtime
/// of its own (the test's runtime may be unwinding).
struct Cleanup {
    node: String,
    pods: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let node = self.node.clone();
        let pods = self.pods.clone();
        let _ = on_own_runtime(move || async move {
            let client = admin_client().await;
            let now = DeleteParams {
                grace_period_seconds: Some(0),
                ..DeleteParams::default()
            };
            let pod_api: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
            for pod in &pods {
                let _ = pod_api.delete(pod, &now).await;
            }
            let _ = Api::<Node>::all(client.clone())
                .delete(&node, &DeleteParams::default())
                .await;
            // The bootstrap request (made as the bootstrap token's user)
            // names the node in its subject; later ones are the node's.
            let csrs: Api<CertificateSigningRequest> = Api::all(client);
            let user = format!("system:node:{node}");
            if let Ok(list) = csrs.list(&ListParams::default()).await {
                for csr in list.items {
                    let mine = csr.spec.username.as_deref() == Some(user.as_str())
                        || common::csr_subject(&csr.spec.request.0).contains(&user);
                    if mine && let Some(name) = &csr.metadata.name {
                        let _ = csrs.delete(name, &DeleteParams::default()).await;
                    }
                }
            }
        });
    }
}

fn node_name(test: &str) -> String {
    format!("mirror-{}-{test}", std::process::id())
}

/// The node's client, from a TLS bootstrap with the control plane's
/// bootstrap kubeconfig.
async fn node_client(dir: &Path, node: &str) -> kube::Client {
    let (cfg, _) = common::bootstrap(dir, node).await;
    ClientProvider::from_kubeconfig(&cfg.kubeconfig, node, None)
        .await
        .expect("the node's client")
        .client()
}

/// A static pod as berth runs it: the manifest through the static-pods
/// crate (defaults, identity), then `config.seen`.
fn static_pod(dir: &Path, node: &str, manifest: &str) -> Arc<Pod> {
    let path = dir.join("manifest.yaml");
    let mut pod = static_pods::load_manifest(&path, manifest.as_bytes(), node)
        .unwrap_or_else(|e| panic!("{e}"));
    set_first_seen(&mut pod, jiff::Timestamp::now());
    Arc::new(pod)
}

fn manifest(name: &str, extra_label: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {NAMESPACE}\n  labels:\n    \
         berth-test: mirror\n    version: \"{extra_label}\"\nspec:\n  containers:\n  - name: c\n    \
         image: registry.k8s.io/pause:3.10\n"
    )
}

/// Mirror pods of `node` as the apiserver pod source will hand them over:
/// a watch on pods with spec.nodeName=<node>, as the node.
fn watch_mirrors(client: kube::Client, node: &str) -> watch::Receiver<Vec<Arc<Pod>>> {
    let (tx, rx) = watch::channel(Vec::new());
    let api: Api<Pod> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    tokio::spawn(async move {
        let mut stream = watcher(api, config).boxed();
        let mut pods: BTreeMap<String, Arc<Pod>> = BTreeMap::new();
        let mut listing: BTreeMap<String, Arc<Pod>> = BTreeMap::new();
        let key = |p: &Pod| p.metadata.uid.clone().unwrap_or_default();
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init) => listing.clear(),
                Ok(watcher::Event::InitApply(p)) => {
                    listing.insert(key(&p), Arc::new(p));
                }
                Ok(watcher::Event::InitDone) => pods = std::mem::take(&mut listing),
                Ok(watcher::Event::Apply(p)) => {
                    pods.insert(key(&p), Arc::new(p));
                }
                Ok(watcher::Event::Delete(p)) => {
                    pods.remove(&key(&p));
                }
                Err(e) => {
                    eprintln!("mirror watch: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
            let mirrors = pods
                .values()
                .filter(|p| is_mirror_pod(p))
                .cloned()
                .collect();
            if tx.send(mirrors).is_err() {
                return;
            }
        }
    });
    rx
}

/// Polls `f` until it gives a value, or fails saying what was awaited.
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

/// The live mirror pod `name` (present, not being deleted) carrying `hash`.
async fn current_mirror(pods: &Api<Pod>, name: &str, hash: &str) -> Option<Pod> {
    let pod = pods.get_opt(name).await.ok()??;
    (pod.metadata.deletion_timestamp.is_none()
        && annotation(&pod, CONFIG_MIRROR_ANNOTATION) == Some(hash))
    .then_some(pod)
}

/// The node's bootstrapped client, once the node has registered its Node;
/// and the Node's UID.
async fn registered_node(dir: &Path, node: &str) -> (kube::Client, String) {
    let client = node_client(dir, node).await;
    let mut node_obj = Node::default();
    node_obj.metadata.name = Some(node.to_string());
    let created = Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node_obj)
        .await
        .expect("the node creates its Node");
    (client, created.metadata.uid.clone().unwrap())
}

/// A reconciler of `node`, running until the handle is aborted.
fn start_reconciler(
    client: &kube::Client,
    node: &str,
    node_uid: watch::Receiver<Option<String>>,
    status: Arc<StatusManager>,
    statics: watch::Receiver<Vec<Arc<Pod>>>,
) -> tokio::task::JoinHandle<()> {
    let source = {
        let client = client.clone();
        Arc::new(move || client.clone())
    };
    let mirrors = watch_mirrors(client.clone(), node);
    let reconciler = MirrorReconciler::new(source, node.to_string(), node_uid, status);
    tokio::spawn(reconciler.run(statics, mirrors))
}

/// Waits until the status manager maps the static pod `static_uid` to the
/// mirror pod's `api_uid`.
async fn wait_api_uid(what: &str, status: &StatusManager, static_uid: &str, api_uid: &str) {
    eventually(what, || {
        let ok = status.api_uid(static_uid) == api_uid;
        async move { ok.then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn mirror_pods_follow_static_pods_as_the_node() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("kubelet=debug")
        .try_init();
    let admin = admin_client().await;
    let node = node_name("follow");
    let tmp = tempfile::tempdir().unwrap();
    let good = static_pod(tmp.path(), &node, &manifest("web", "1"));
    let good_name = good.metadata.name.clone().unwrap();
    let good_uid = uid(&good);
    // NodeRestriction refuses a mirror that references a secret.
    let refused = static_pod(
        &tmp.path().join("b"),
        &node,
        &format!(
            "{}  volumes:\n  - name: s\n    secret:\n      secretName: berth-test-nothing\n",
            manifest("refused", "1")
        ),
    );
    let refused_name = refused.metadata.name.clone().unwrap();
    let _cleanup = Cleanup {
        node: node.clone(),
        pods: vec![good_name.clone(), refused_name.clone()],
    };

    // The Node, registered by the node itself.
    let (client, node_uid) = registered_node(tmp.path(), &node).await;

    let status = StatusManager::with_sinks(vec![]);
    let (uid_tx, uid_rx) = watch::channel(None);
    let (statics_tx, statics_rx) = watch::channel(Vec::new());
    let task = start_reconciler(&client, &node, uid_rx, status.clone(), statics_rx);

    // Nothing is created before the Node's UID is known.
    statics_tx.send_replace(vec![good.clone(), refused.clone()]);
    let pods: Api<Pod> = Api::namespaced(admin.clone(), NAMESPACE);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(pods.get_opt(&good_name).await.unwrap().is_none());
    uid_tx.send_replace(Some(node_uid.clone()));

    // The mirror appears, owned by the Node, carrying the static pod's hash.
    let hash = annotation(&good, CONFIG_HASH_ANNOTATION)
        .unwrap()
        .to_string();
    let mirror = eventually("the mirror pod", || {
        current_mirror(&pods, &good_name, &hash)
    })
    .await;
    let owners = mirror.metadata.owner_references.clone().unwrap();
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(owners[0].api_version, "v1");
    assert_eq!(owners[0].kind, "Node");
    assert_eq!(owners[0].name, node);
    assert_eq!(owners[0].uid, node_uid);
    assert_eq!(owners[0].controller, Some(true));
    assert_eq!(
        mirror.spec.as_ref().unwrap().node_name.as_deref(),
        Some(node.as_str())
    );
    assert_eq!(
        annotation(&mirror, "kubernetes.io/config.source"),
        Some("file")
    );
    assert_ne!(uid(&mirror), good_uid, "the apiserver assigns the UID");
    let first = uid(&mirror);
    wait_api_uid(
        "the mirror UID in the status manager",
        &status,
        &good_uid,
        &first,
    )
    .await;

    // The refused one got no mirror, and the good one was not held up.
    assert!(pods.get_opt(&refused_name).await.unwrap().is_none());

    // Deleted as kubectl does (with the grace period): the mirror is
    // being deleted, so the reconciler removes it at once and makes a new
    // one.
    pods.delete(&good_name, &DeleteParams::default())
        .await
        .unwrap();
    let second = eventually("a new mirror pod", || async {
        current_mirror(&pods, &good_name, &hash)
            .await
            .filter(|p| uid(p) != first)
    })
    .await;
    let second = uid(&second);
    wait_api_uid(
        "the new mirror UID in the status manager",
        &status,
        &good_uid,
        &second,
    )
    .await;

    // A new version of the static pod (same UID, new hash): the mirror is
    // replaced.
    let edited = static_pod(tmp.path(), &node, &manifest("web", "2"));
    assert_eq!(uid(&edited), good_uid);
    let new_hash = annotation(&edited, CONFIG_HASH_ANNOTATION)
        .unwrap()
        .to_string();
    assert_ne!(new_hash, hash);
    statics_tx.send_replace(vec![edited.clone(), refused.clone()]);
    let third = eventually("the replaced mirror pod", || {
        current_mirror(&pods, &good_name, &new_hash)
    })
    .await;
    assert_ne!(uid(&third), second);
    assert_eq!(
        third.metadata.labels.as_ref().unwrap()["version"],
        "2",
        "the mirror carries the new version"
    );
    let third = uid(&third);
    wait_api_uid(
        "the replaced mirror UID in the status manager",
        &status,
        &good_uid,
        &third,
    )
    .await;

    // The static pod leaves while it still terminates (the status manager
    // knows it): the mirror stays until the pod is removed from the node.
    status.set_pod_status(&edited, PodStatus::default());
    statics_tx.send_replace(vec![refused.clone()]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let still = pods
        .get_opt(&good_name)
        .await
        .unwrap()
        .expect("the mirror stays");
    assert_eq!(uid(&still), third);
    status.remove(&good_uid);
    eventually("the orphaned mirror to be deleted", || async {
        pods.get_opt(&good_name)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(status.api_uid(&good_uid), good_uid);
    assert!(pods.get_opt(&refused_name).await.unwrap().is_none());

    task.abort();
}

#[tokio::test]
async fn a_restarted_reconciler_adopts_mirrors_and_deletes_orphans_once_statics_spoke() {
    let admin = admin_client().await;
    let node = node_name("restart");
    let tmp = tempfile::tempdir().unwrap();
    let kept = static_pod(tmp.path(), &node, &manifest("kept", "1"));
    let gone = static_pod(tmp.path(), &node, &manifest("gone", "1"));
    let (kept_name, gone_name) = (
        kept.metadata.name.clone().unwrap(),
        gone.metadata.name.clone().unwrap(),
    );
    let _cleanup = Cleanup {
        node: node.clone(),
        pods: vec![kept_name.clone(), gone_name.clone()],
    };
    let (client, node_uid) = registered_node(tmp.path(), &node).await;
    let known_uid = || watch::channel(Some(node_uid.clone())).1;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), NAMESPACE);

    // A first berth makes both mirrors.
    let (first_tx, first_rx) = watch::channel(vec![kept.clone(), gone.clone()]);
    let first = start_reconciler(
        &client,
        &node,
        known_uid(),
        StatusManager::with_sinks(vec![]),
        first_rx,
    );
    let hash = annotation(&kept, CONFIG_HASH_ANNOTATION)
        .unwrap()
        .to_string();
    let kept_mirror = eventually("the first mirror", || {
        current_mirror(&pods, &kept_name, &hash)
    })
    .await;
    let gone_hash = annotation(&gone, CONFIG_HASH_ANNOTATION)
        .unwrap()
        .to_string();
    eventually("the second mirror", || {
        current_mirror(&pods, &gone_name, &gone_hash)
    })
    .await;
    first.abort();
    drop(first_tx);

    // The next berth starts before its manifest directory was read: no
    // mirror counts as an orphan yet.
    let status = StatusManager::with_sinks(vec![]);
    let (statics_tx, statics_rx) = watch::channel(Vec::new());
    let second = start_reconciler(&client, &node, known_uid(), status.clone(), statics_rx);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(pods.get_opt(&kept_name).await.unwrap().is_some());
    assert!(pods.get_opt(&gone_name).await.unwrap().is_some());

    // The directory now holds one of them: its mirror is adopted as it is,
    // the other's is deleted.
    statics_tx.send_replace(vec![kept.clone()]);
    eventually("the orphan to be deleted", || async {
        pods.get_opt(&gone_name)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let kept_uid = uid(&kept_mirror);
    wait_api_uid(
        "the adopted mirror's UID in the status manager",
        &status,
        &uid(&kept),
        &kept_uid,
    )
    .await;
    let still = pods.get_opt(&kept_name).await.unwrap().unwrap();
    assert_eq!(uid(&still), kept_uid, "the current mirror was not replaced");
    second.abort();
}
