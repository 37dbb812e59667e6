//! Joining a cluster (`--kubeconfig`): berth's credentials, then its Node
//! and the Node's Lease, as tasks beside the pods. The Go kubelet starts
//! the same pieces from `cmd/kubelet/app/server.go` (client config, TLS
//! bootstrap, certificate manager) and `kubelet.go` (`syncNodeStatus`, the
//! node lease controller).
//!
//! Pods never wait for the apiserver: a pending CSR or an unreachable
//! apiserver is retried here, logged once per cause, while static pods run.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cri_client::RuntimeClient;
use k8s_openapi::api::core::v1::Node;
use tokio::sync::watch;

use crate::certificate::{
    BootstrapConfig, CertificateError, CertificateStore, ClientCertificateManager, ClientProvider,
    load_client_cert,
};
use crate::config::ClusterConfig;
use crate::kubelet_node_status::{
    ClientSource, NodeApiCounters, NodeStatusConfig, NodeStatusManager,
};
use crate::nodelease::NodeLeaseController;
use crate::nodestatus::{NodeStatusError, parse_node_labels};

/// What ends berth in joined mode.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    NodeStatus(#[from] NodeStatusError),
    /// The client certificate expired and could not be renewed: as the Go
    /// kubelet, berth exits so that its supervisor restarts it into a new
    /// TLS bootstrap.
    #[error("client certificate rotation: {0}")]
    Certificate(#[from] CertificateError),
}

/// The parts of the kubelet's configuration the cluster tasks need.
pub struct ClusterInputs {
    pub config: ClusterConfig,
    pub node_name: String,
    pub root_dir: PathBuf,
    pub max_pods: u32,
    pub kube_reserved: std::collections::BTreeMap<String, String>,
    pub system_reserved: std::collections::BTreeMap<String, String>,
    pub runtime: RuntimeClient,
    /// The CRI Version answer, for the Node's containerRuntimeVersion.
    pub runtime_name: String,
    pub runtime_version: String,
}

/// What the rest of berth gets from the cluster tasks, as each becomes
/// known: the client (once credentials work), the Node as last written
/// and its UID (once registered).
#[derive(Clone)]
pub struct ClusterHandles {
    pub client: watch::Receiver<Option<ClientSource>>,
    /// Clients for long-lived watches (many to an HTTP/2 connection).
    pub watch_client: watch::Receiver<Option<WatchSource>>,
    pub node: watch::Receiver<Option<Arc<Node>>>,
    pub node_uid: watch::Receiver<Option<String>>,
}

impl ClusterHandles {
    /// The client, once the credentials work.
    pub async fn client(&self) -> Option<ClientSource> {
        let mut rx = self.client.clone();
        rx.wait_for(Option::is_some).await.ok()?.clone()
    }
}

/// Hands out a client for one long-lived watch
/// ([`ClientProvider::watch_client`](crate::certificate::ClientProvider::watch_client)).
pub type WatchSource = Arc<dyn Fn() -> crate::certificate::WatchClient + Send + Sync>;

/// Copies every value of `from` into `to`, for as long as both exist.
fn forward<T: Clone + Send + Sync + 'static>(mut from: watch::Receiver<T>, to: watch::Sender<T>) {
    tokio::spawn(async move {
        loop {
            to.send_replace(from.borrow_and_update().clone());
            if from.changed().await.is_err() || to.is_closed() {
                return;
            }
        }
    });
}

/// Checks the node labels before talking to the apiserver, then returns
/// the handles and the task that joins the cluster: the task ends only with
/// an error that should end berth (a bad node configuration, or an expired
/// certificate that could not be renewed).
pub fn start(
    inputs: ClusterInputs,
) -> Result<(ClusterHandles, impl Future<Output = ClusterError>), ClusterError> {
    let cfg = &inputs.config;
    let node = inputs.node_name.clone();
    let mut status = NodeStatusConfig::new(&node);
    status.node_ip = cfg
        .node_ip
        .map(crate::kubelet_node_status::validate_node_ip)
        .transpose()?;
    if let Some(labels) = &cfg.node_labels {
        status.node_labels = parse_node_labels(labels)?;
    }
    status.register_with_taints = cfg.register_with_taints.clone();
    status.register_node = cfg.register_node;
    status.max_pods = inputs.max_pods;
    status.root_dir = inputs.root_dir.clone();
    status.kube_reserved = inputs.kube_reserved.clone();
    status.system_reserved = inputs.system_reserved.clone();
    status.kubelet_port = cfg.port;
    status.node_status_update_frequency = cfg.node_status_update_frequency;
    status.node_status_report_frequency = cfg.node_status_report_frequency;
    status.node_status_max_images = usize::try_from(cfg.node_status_max_images).ok();
    status.runtime_name = inputs.runtime_name.clone();
    status.runtime_version = inputs.runtime_version.clone();
    let counters = Arc::new(NodeApiCounters::default());
    let (client_tx, client) = watch::channel(None);
    let (watch_client_tx, watch_client) = watch::channel(None);
    let (node_tx, node_rx) = watch::channel(None);
    let (uid_tx, node_uid) = watch::channel(None);
    let handles = ClusterHandles {
        client,
        watch_client,
        node: node_rx,
        node_uid,
    };
    Ok((handles, async move {
        let provider = credentials(&inputs).await;
        let source: ClientSource = {
            let p = provider.clone();
            Arc::new(move || p.client())
        };
        let runtime = Arc::new(inputs.runtime.clone());
        let manager = match NodeStatusManager::new(status, source.clone(), runtime) {
            Ok(m) => m.with_counters(counters.clone()),
            Err(e) => return e.into(),
        };
        if inputs.config.server_tls_bootstrap {
            // The serving certificate for the node's names and address (the
            // 10250 server's); its requests wait for an approver.
            let req = crate::certificate::ServingCertificateRequest::new(
                &node,
                vec![node.clone()],
                vec![manager.node_ip()],
            );
            let s = source.clone();
            tokio::spawn(crate::certificate::kubelet::keep_serving_certificate(
                move || s(),
                inputs.config.cert_dir.clone(),
                req,
            ));
        }
        forward(manager.node(), node_tx);
        forward(manager.node_uid(), uid_tx);
        client_tx.send_replace(Some(source.clone()));
        let watches: WatchSource = {
            let p = provider.clone();
            Arc::new(move || p.watch_client())
        };
        watch_client_tx.send_replace(Some(watches));
        let cfg = &inputs.config;
        if !cfg.register_node {
            tracing::info!(node = %node, "registerNode is false: berth waits for the Node to exist, then keeps its status and Lease");
        }
        let lease = NodeLeaseController::new(
            source,
            &node,
            i32::try_from(cfg.node_lease_duration_seconds).unwrap_or(i32::MAX),
            counters,
            manager.node_uid(),
        );
        tokio::spawn(manager.run());
        tokio::spawn(lease.run());
        if cfg.rotate_certificates && provider.certificate().is_some() {
            let rotation =
                ClientCertificateManager::new(provider, CertificateStore::client(&cfg.cert_dir));
            return ClusterError::Certificate(rotation.run().await);
        }
        std::future::pending().await
    }))
}

/// The node's credentials: the TLS bootstrap when needed, then a client
/// provider; retried (2 s doubling to 1 min) until both work, logging each
/// new reason once.
async fn credentials(inputs: &ClusterInputs) -> ClientProvider {
    let cfg = &inputs.config;
    let node = inputs.node_name.as_str();
    let bootstrap = BootstrapConfig::new(
        cfg.kubeconfig.clone(),
        cfg.bootstrap_kubeconfig.clone(),
        cfg.cert_dir.clone(),
        node,
    );
    let store = CertificateStore::client(&cfg.cert_dir);
    let mut delay = Duration::from_secs(2);
    let mut last = String::new();
    loop {
        let attempt = async {
            let source = load_client_cert(&bootstrap).await?;
            tracing::info!(node, ?source, "apiserver credentials ready");
            ClientProvider::from_kubeconfig(
                &cfg.kubeconfig,
                node,
                cfg.rotate_certificates.then_some(&store),
            )
            .await
        };
        match attempt.await {
            Ok(p) => return p,
            Err(e) => {
                let msg = e.to_string();
                if msg != last {
                    tracing::warn!(
                        node,
                        "joining the cluster: {msg}; retrying (static pods keep running)"
                    );
                    last = msg;
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(60));
    }
}
