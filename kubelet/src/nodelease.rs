//! The node's heartbeat Lease in `kube-node-lease` (the lease controller of
//! `k8s.io/component-helpers/apimachinery/lease` as the Go kubelet runs it):
//! renewed every quarter of its duration, updated from the last version it
//! wrote so a renewal costs one request, re-read on conflict, created when
//! missing.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference};
use kube::api::{Api, PostParams};
use tokio::sync::watch;

use crate::kubelet_node_status::{ClientSource, NodeApiCounters};

pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// Go's `nodeLeaseDurationSeconds` default.
pub const DEFAULT_LEASE_DURATION_SECONDS: i32 = 40;
/// Go's `maxUpdateRetries`.
pub const MAX_UPDATE_RETRIES: usize = 5;
const BACKOFF_START: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(7);

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("node {node}: lease: {source}")]
    Api {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("node {node}: lease update failed {tries} times")]
    RetriesExhausted { node: String, tries: usize },
}

/// Keeps the node's Lease renewed.
pub struct NodeLeaseController {
    client: ClientSource,
    node_name: String,
    duration_seconds: i32,
    renew_interval: Duration,
    counters: Arc<NodeApiCounters>,
    node_uid: watch::Receiver<Option<String>>,
    latest: Option<Lease>,
    outage: bool,
}

impl NodeLeaseController {
    /// `node_uid` gives the Node's UID once known (the owner reference).
    pub fn new(
        client: ClientSource,
        node_name: &str,
        duration_seconds: i32,
        counters: Arc<NodeApiCounters>,
        node_uid: watch::Receiver<Option<String>>,
    ) -> Self {
        let duration_seconds = duration_seconds.max(1);
        NodeLeaseController {
            client,
            node_name: node_name.to_string(),
            duration_seconds,
            // A quarter of the duration, as Go's kubelet.
            renew_interval: Duration::from_millis(u64::from(duration_seconds.unsigned_abs()) * 250),
            counters,
            node_uid,
            latest: None,
            outage: false,
        }
    }

    pub fn renew_interval(&self) -> Duration {
        self.renew_interval
    }

    /// The lease as last written or read.
    pub fn latest(&self) -> Option<&Lease> {
        self.latest.as_ref()
    }

    fn api(&self) -> Api<Lease> {
        Api::namespaced((self.client)(), NODE_LEASE_NAMESPACE)
    }

    fn api_error(&self, source: kube::Error) -> LeaseError {
        LeaseError::Api {
            node: self.node_name.clone(),
            source,
        }
    }

    /// `base` (or a fresh lease) held by this node, renewed now, owned by
    /// the Node once its UID is known.
    fn new_lease(&self, base: Option<&Lease>) -> Lease {
        let mut lease = base.cloned().unwrap_or_default();
        lease.metadata.name = Some(self.node_name.clone());
        lease.metadata.namespace = Some(NODE_LEASE_NAMESPACE.to_string());
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.holder_identity = Some(self.node_name.clone());
        spec.lease_duration_seconds = Some(self.duration_seconds);
        spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        let owned = lease
            .metadata
            .owner_references
            .as_ref()
            .is_some_and(|o| !o.is_empty());
        if !owned && let Some(uid) = self.node_uid.borrow().clone() {
            lease.metadata.owner_references = Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: self.node_name.clone(),
                uid,
                ..Default::default()
            }]);
        }
        lease
    }

    /// Gets the lease, creating it when missing; says whether it created it.
    async fn ensure_lease(&self) -> Result<(Lease, bool), LeaseError> {
        let api = self.api();
        NodeApiCounters::bump(&self.counters.lease_gets);
        match api.get_opt(&self.node_name).await {
            Ok(Some(l)) => Ok((l, false)),
            Ok(None) => {
                NodeApiCounters::bump(&self.counters.lease_creates);
                let l = api
                    .create(&PostParams::default(), &self.new_lease(None))
                    .await
                    .map_err(|e| self.api_error(e))?;
                Ok((l, true))
            }
            Err(e) => Err(self.api_error(e)),
        }
    }

    /// [`Self::ensure_lease`] until it works, 200 ms doubling to 7 s apart.
    async fn backoff_ensure_lease(&mut self) -> (Lease, bool) {
        let mut delay = BACKOFF_START;
        loop {
            match self.ensure_lease().await {
                Ok(r) => {
                    self.recovered();
                    return r;
                }
                Err(e) => self.failed(&e),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(BACKOFF_MAX);
        }
    }

    /// Updates from `base`, re-reading on conflict, up to five times.
    async fn retry_update_lease(&mut self, mut base: Lease) -> Result<(), LeaseError> {
        for _ in 0..MAX_UPDATE_RETRIES {
            let lease = self.new_lease(Some(&base));
            NodeApiCounters::bump(&self.counters.lease_updates);
            match self
                .api()
                .replace(&self.node_name, &PostParams::default(), &lease)
                .await
            {
                Ok(l) => {
                    self.latest = Some(l);
                    return Ok(());
                }
                Err(kube::Error::Api(s)) if s.is_conflict() => {
                    tracing::debug!(node = %self.node_name, "lease changed under us; re-reading it");
                    base = self.backoff_ensure_lease().await.0;
                }
                Err(e) => {
                    let e = self.api_error(e);
                    tracing::debug!(node = %self.node_name, error = %e, "lease update failed");
                }
            }
        }
        Err(LeaseError::RetriesExhausted {
            node: self.node_name.clone(),
            tries: MAX_UPDATE_RETRIES,
        })
    }

    /// One renewal (Go's `sync`): update from the lease last written; if
    /// that fails, get or create it and update that.
    pub async fn sync(&mut self) {
        if let Some(latest) = self.latest.clone() {
            match self.retry_update_lease(latest).await {
                Ok(()) => {
                    self.recovered();
                    return;
                }
                Err(e) => self.failed(&e),
            }
        }
        let (lease, created) = self.backoff_ensure_lease().await;
        self.latest = Some(lease.clone());
        if created {
            tracing::info!(node = %self.node_name, "created the node lease");
            return;
        }
        match self.retry_update_lease(lease).await {
            Ok(()) => self.recovered(),
            Err(e) => self.failed(&e),
        }
    }

    fn failed(&mut self, e: &LeaseError) {
        if self.outage {
            tracing::debug!(node = %self.node_name, error = %e, "lease renewal failed again");
        } else {
            self.outage = true;
            tracing::warn!(node = %self.node_name, error = %e, "lease renewal failed; retrying until the apiserver answers");
        }
    }

    fn recovered(&mut self) {
        if self.outage {
            self.outage = false;
            tracing::info!(node = %self.node_name, "lease renewed again");
        }
    }

    /// Renews for ever: at once, then every interval plus up to 4 % of it
    /// (Go's `JitterUntil` with factor 0.04), so a fleet of nodes does not
    /// renew in step.
    pub async fn run(mut self) {
        loop {
            let started = tokio::time::Instant::now();
            self.sync().await;
            let wait = self.renew_interval.mul_f64(1.0 + 0.04 * fastrand::f64());
            tokio::time::sleep_until(started + wait).await;
        }
    }
}
