//! The kubelet's own Node object (the Go kubelet's `kubelet_node_status.go`):
//! registration, then a status computed every `nodeStatusUpdateFrequency`
//! and sent only when it changed or `nodeStatusReportFrequency` has passed.
//!
//! The apiserver client comes from a [`ClientSource`] on every request,
//! since certificate rotation swaps it. The runtime's health and images come
//! through [`NodeRuntime`], implemented for [`cri_client::RuntimeClient`]
//! and by test doubles. Every request is counted in [`NodeApiCounters`].

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use k8s_openapi::api::core::v1::{Node, Taint};
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::sync::watch;

use crate::cm::helpers::ResourceList;
use crate::cm::node_allocatable::{default_eviction_hard, node_allocatable_reservation};
use crate::nodestatus::labels::validate_taint;
use crate::nodestatus::machine::go_arch;
use crate::nodestatus::patch::node_status_patch;
use crate::nodestatus::setters::{self, RuntimeImage};
use crate::nodestatus::{
    MachineFacts, NodeStatusError, RuntimeCondition, RuntimeConditions, RuntimeState, SystemInfo,
    validate_node_labels,
};

/// The current apiserver client.
pub type ClientSource = Arc<dyn Fn() -> kube::Client + Send + Sync>;

/// Go's `nodeStatusUpdateRetry`.
pub const NODE_STATUS_UPDATE_RETRY: usize = 5;
/// The annotation that tells the attach/detach controller it manages this
/// node's volumes (Go's default `enableControllerAttachDetach`).
pub const CONTROLLER_MANAGED_ATTACH_DETACH: &str =
    "volumes.kubernetes.io/controller-managed-attach-detach";

/// The runtime did not answer.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RuntimeQueryError(pub String);

/// What the node status needs from the container runtime.
pub trait NodeRuntime: Send + Sync {
    /// The CRI `Status` conditions.
    fn status(&self) -> BoxFuture<'_, Result<RuntimeConditions, RuntimeQueryError>>;
    /// The CRI `ListImages` result.
    fn list_images(&self) -> BoxFuture<'_, Result<Vec<RuntimeImage>, RuntimeQueryError>>;
}

impl NodeRuntime for cri_client::RuntimeClient {
    fn status(&self) -> BoxFuture<'_, Result<RuntimeConditions, RuntimeQueryError>> {
        Box::pin(async move {
            let resp = cri_client::RuntimeClient::status(self, Default::default())
                .await
                .map_err(|e| RuntimeQueryError(e.to_string()))?;
            let conds = resp.status.map(|s| s.conditions).unwrap_or_default();
            let find = |t: &str| {
                conds
                    .iter()
                    .find(|c| c.r#type == t)
                    .map(|c| RuntimeCondition {
                        status: c.status,
                        reason: c.reason.clone(),
                        message: c.message.clone(),
                    })
            };
            Ok(RuntimeConditions {
                runtime_ready: find("RuntimeReady"),
                network_ready: find("NetworkReady"),
            })
        })
    }

    fn list_images(&self) -> BoxFuture<'_, Result<Vec<RuntimeImage>, RuntimeQueryError>> {
        Box::pin(async move {
            let resp = cri_client::RuntimeClient::list_images(self, Default::default())
                .await
                .map_err(|e| RuntimeQueryError(e.to_string()))?;
            Ok(resp
                .images
                .into_iter()
                .map(|i| RuntimeImage {
                    repo_tags: i.repo_tags,
                    repo_digests: i.repo_digests,
                    size: i.size,
                })
                .collect())
        })
    }
}

/// What the eviction manager says about the node (another issue); all
/// false until it exists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodePressure {
    pub memory: bool,
    pub disk: bool,
    pub pid: bool,
}

/// Apiserver requests made for the node and its lease, so a benchmark can
/// tell what an idle node costs the apiserver.
#[derive(Debug, Default)]
pub struct NodeApiCounters {
    pub node_creates: AtomicU64,
    pub node_gets: AtomicU64,
    pub node_status_patches: AtomicU64,
    pub lease_gets: AtomicU64,
    pub lease_creates: AtomicU64,
    pub lease_updates: AtomicU64,
}

impl NodeApiCounters {
    pub fn total(&self) -> u64 {
        [
            &self.node_creates,
            &self.node_gets,
            &self.node_status_patches,
            &self.lease_gets,
            &self.lease_creates,
            &self.lease_updates,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }

    pub(crate) fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the node status needs from the kubelet's configuration.
#[derive(Clone, Debug)]
pub struct NodeStatusConfig {
    pub node_name: String,
    /// The `kubernetes.io/hostname` label and the Hostname address.
    pub hostname: String,
    /// `--node-ip`; else the address of the default route's interface.
    pub node_ip: Option<IpAddr>,
    /// `--node-labels`, checked by [`validate_node_labels`].
    pub node_labels: BTreeMap<String, String>,
    /// `registerWithTaints`: set when the node is created only, as the
    /// NodeRestriction admission plugin lets a node change taints no more.
    pub register_with_taints: Vec<Taint>,
    /// `registerNode`: create the Node. When false, as in Go, berth waits
    /// for someone else to create it and then keeps its status.
    pub register_node: bool,
    pub max_pods: u32,
    /// The kubelet's root directory, whose filesystem is ephemeral-storage.
    pub root_dir: PathBuf,
    pub kube_reserved: BTreeMap<String, String>,
    pub system_reserved: BTreeMap<String, String>,
    /// `evictionHard`; thresholds of memory.available and nodefs.available
    /// are held back from allocatable.
    pub eviction_hard: BTreeMap<String, String>,
    /// The kubelet server's port (daemonEndpoints).
    pub kubelet_port: u16,
    pub node_status_update_frequency: Duration,
    pub node_status_report_frequency: Duration,
    /// `nodeStatusMaxImages`; `None` for no cap (Go's -1).
    pub node_status_max_images: Option<usize>,
    /// The CRI `Version` answer: `containerd` and `1.6.20`.
    pub runtime_name: String,
    pub runtime_version: String,
}

impl NodeStatusConfig {
    /// Go's defaults for everything but the node's name.
    pub fn new(node_name: &str) -> Self {
        NodeStatusConfig {
            node_name: node_name.to_string(),
            hostname: node_name.to_string(),
            node_ip: None,
            node_labels: BTreeMap::new(),
            register_with_taints: Vec::new(),
            register_node: true,
            max_pods: 110,
            root_dir: PathBuf::from(crate::config::DEFAULT_ROOT_DIR),
            kube_reserved: BTreeMap::new(),
            system_reserved: BTreeMap::new(),
            eviction_hard: default_eviction_hard(),
            kubelet_port: 10250,
            node_status_update_frequency: Duration::from_secs(10),
            node_status_report_frequency: Duration::from_secs(300),
            node_status_max_images: Some(setters::NODE_STATUS_MAX_IMAGES),
            runtime_name: String::new(),
            runtime_version: String::new(),
        }
    }
}

/// Why talking to the apiserver about the node failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeSyncError {
    #[error("node {node}: {source}")]
    Api {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("node {node}: the node is not registered")]
    NotRegistered { node: String },
    #[error("node {node}: status update failed {tries} times; last: {last}")]
    RetriesExhausted {
        node: String,
        tries: usize,
        last: Box<NodeSyncError>,
    },
}

/// Whether to send a status now (Go's `tryUpdateNodeStatus` check): when it
/// changed, or when nothing was reported for `report_frequency`.
pub fn should_report(
    changed: bool,
    last_report: Option<Instant>,
    now: Instant,
    report_frequency: Duration,
) -> bool {
    changed || last_report.is_none_or(|at| now.saturating_duration_since(at) >= report_frequency)
}

/// The gateway of the IPv4 default route in `/proc/net/route`.
pub fn default_route_gateway(route_table: &str) -> Option<Ipv4Addr> {
    route_table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (dest, gateway, flags) = (f.get(1)?, f.get(2)?, f.get(3)?);
        let flags = u32::from_str_radix(flags, 16).ok()?;
        // RTF_UP; the table stores addresses little-endian.
        if *dest != "00000000" || flags & 1 == 0 {
            return None;
        }
        let g = u32::from_str_radix(gateway, 16).ok()?;
        Some(Ipv4Addr::from(g.swap_bytes()))
    })
}

/// The node's address when none is configured: the source address the
/// kernel picks towards the default gateway, i.e. the default route
/// interface's address. Connecting a UDP socket sends nothing.
pub fn default_node_ip() -> Result<IpAddr, NodeStatusError> {
    let table = std::fs::read_to_string("/proc/net/route")
        .map_err(|e| NodeStatusError::Address(format!("reading /proc/net/route: {e}")))?;
    let gw = default_route_gateway(&table).ok_or_else(|| {
        NodeStatusError::Address("no IPv4 default route; set the node IP (--node-ip)".into())
    })?;
    // A directly connected default route has gateway 0.0.0.0: any address
    // outside local networks finds the same interface.
    let target = if gw.is_unspecified() {
        Ipv4Addr::new(192, 0, 2, 1)
    } else {
        gw
    };
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|s| s.connect((target, 9)).map(|()| s))
        .and_then(|s| s.local_addr())
        .map_err(|e| {
            NodeStatusError::Address(format!("finding the default route's address: {e}"))
        })?;
    Ok(sock.ip())
}

/// The node's allocatable (nano-units): the machine's capacity less the
/// reservations and the default hard eviction thresholds, as the Node
/// reports it; the capacity alone when a reservation does not parse (the
/// Node's registration reports that error).
pub fn machine_allocatable(
    root_dir: &std::path::Path,
    max_pods: u32,
    kube_reserved: &BTreeMap<String, String>,
    system_reserved: &BTreeMap<String, String>,
) -> ResourceList {
    let facts = MachineFacts::read(root_dir);
    let capacity = setters::capacity(&facts, max_pods);
    match node_allocatable_reservation(
        &capacity,
        kube_reserved,
        system_reserved,
        &default_eviction_hard(),
    ) {
        Ok(reservation) => setters::allocatable(&capacity, &reservation),
        Err(_) => capacity,
    }
}

/// Go's `validateNodeIP`: a `--node-ip` must be a unicast address of this
/// machine (binding a socket to it proves it is assigned here).
pub fn validate_node_ip(ip: IpAddr) -> Result<IpAddr, NodeStatusError> {
    let why = if ip.is_loopback() {
        Some("is a loopback address")
    } else if ip.is_unspecified() {
        Some("is the unspecified address")
    } else if ip.is_multicast() {
        Some("is a multicast address")
    } else if matches!(ip, IpAddr::V4(v4) if v4.is_link_local()) {
        Some("is a link-local address")
    } else if UdpSocket::bind((ip, 0)).is_err() {
        Some("is not an address of any interface of this machine")
    } else {
        None
    };
    match why {
        Some(why) => Err(NodeStatusError::Address(format!("--node-ip {ip} {why}"))),
        None => Ok(ip),
    }
}

/// Registers the node and keeps its status current.
pub struct NodeStatusManager {
    config: NodeStatusConfig,
    client: ClientSource,
    runtime: Arc<dyn NodeRuntime>,
    pressure: watch::Receiver<NodePressure>,
    counters: Arc<NodeApiCounters>,
    system: SystemInfo,
    capacity: ResourceList,
    allocatable: ResourceList,
    node_ip: IpAddr,
    arch: &'static str,
    state: RuntimeState,
    images: Vec<RuntimeImage>,
    /// The node as the apiserver last returned it; `None` until registered.
    last_node: Option<Node>,
    last_report: Option<Instant>,
    node_uid: watch::Sender<Option<String>>,
    /// The node as last written, for admission (allocatable, labels, taints).
    node: watch::Sender<Option<Arc<Node>>>,
    /// Whether the apiserver is unreachable, so an outage is logged once.
    outage: bool,
}

impl NodeStatusManager {
    /// Checks the configuration and reads the machine. Fails on bad labels,
    /// taints or reservations, and when no node IP can be found.
    pub fn new(
        config: NodeStatusConfig,
        client: ClientSource,
        runtime: Arc<dyn NodeRuntime>,
    ) -> Result<Self, NodeStatusError> {
        let facts = MachineFacts::read(&config.root_dir);
        Self::with_machine(config, client, runtime, facts, SystemInfo::read())
    }

    /// As [`Self::new`] with the machine's figures given.
    pub fn with_machine(
        config: NodeStatusConfig,
        client: ClientSource,
        runtime: Arc<dyn NodeRuntime>,
        facts: MachineFacts,
        system: SystemInfo,
    ) -> Result<Self, NodeStatusError> {
        validate_node_labels(&config.node_labels)?;
        for t in &config.register_with_taints {
            validate_taint(t)?;
        }
        let capacity = setters::capacity(&facts, config.max_pods);
        let reservation = node_allocatable_reservation(
            &capacity,
            &config.kube_reserved,
            &config.system_reserved,
            &config.eviction_hard,
        )?;
        let allocatable = setters::allocatable(&capacity, &reservation);
        let node_ip = match config.node_ip {
            Some(ip) => ip,
            None => default_node_ip()?,
        };
        Ok(NodeStatusManager {
            config,
            client,
            runtime,
            pressure: watch::channel(NodePressure::default()).1,
            counters: Arc::new(NodeApiCounters::default()),
            system,
            capacity,
            allocatable,
            node_ip,
            arch: go_arch(),
            state: RuntimeState::default(),
            images: Vec::new(),
            last_node: None,
            last_report: None,
            node_uid: watch::channel(None).0,
            node: watch::channel(None).0,
            outage: false,
        })
    }

    /// Pressure conditions follow this channel.
    pub fn with_pressure(mut self, pressure: watch::Receiver<NodePressure>) -> Self {
        self.pressure = pressure;
        self
    }

    /// Counts into these counters (shared with the lease controller).
    pub fn with_counters(mut self, counters: Arc<NodeApiCounters>) -> Self {
        self.counters = counters;
        self
    }

    pub fn counters(&self) -> Arc<NodeApiCounters> {
        self.counters.clone()
    }

    /// The node's UID once registered, for the lease's owner reference.
    pub fn node_uid(&self) -> watch::Receiver<Option<String>> {
        self.node_uid.subscribe()
    }

    /// The Node as the apiserver last returned it (None until registered);
    /// pod admission reads its allocatable, labels and taints.
    pub fn node(&self) -> watch::Receiver<Option<Arc<Node>>> {
        self.node.subscribe()
    }

    pub fn node_ip(&self) -> IpAddr {
        self.node_ip
    }

    fn api(&self) -> Api<Node> {
        Api::all((self.client)())
    }

    fn api_error(&self, source: kube::Error) -> NodeSyncError {
        NodeSyncError::Api {
            node: self.config.node_name.clone(),
            source,
        }
    }

    /// The Node as first created (Go's `initialNode`), status included.
    pub fn initial_node(&self) -> Node {
        let mut labels = setters::default_labels(&self.config.hostname, self.arch);
        for (k, v) in &self.config.node_labels {
            labels.insert(k.clone(), v.clone());
        }
        let mut node = Node::default();
        node.metadata.name = Some(self.config.node_name.clone());
        node.metadata.labels = Some(labels);
        node.metadata.annotations = Some(BTreeMap::from([(
            CONTROLLER_MANAGED_ATTACH_DETACH.to_string(),
            "true".to_string(),
        )]));
        let spec = node.spec.get_or_insert_with(Default::default);
        if !self.config.register_with_taints.is_empty() {
            spec.taints = Some(self.config.register_with_taints.clone());
        }
        self.set_node_status(&mut node, Instant::now());
        node
    }

    /// Refreshes the runtime's status and images (failures keep the last
    /// images and let the runtime state age into "down").
    async fn refresh_runtime(&mut self) {
        let node = &self.config.node_name;
        match self.runtime.status().await {
            Ok(s) => self.state.record(Some(&s), Instant::now()),
            Err(e) => {
                tracing::debug!(node = %node, error = %e, "container runtime status failed");
                self.state.record(None, Instant::now());
            }
        }
        match self.runtime.list_images().await {
            Ok(images) => self.images = images,
            Err(e) => tracing::debug!(node = %node, error = %e, "listing images failed"),
        }
    }

    /// Applies every setter (Go's `setNodeStatus`), conditions last so
    /// Ready sees the capacity.
    fn set_node_status(&self, node: &mut Node, now: Instant) {
        let t = setters::now();
        setters::node_address(node, self.node_ip, &self.config.hostname);
        setters::machine_info(node, &self.capacity, &self.allocatable, &self.system);
        setters::version_info(
            node,
            &self.system,
            &self.config.runtime_name,
            &self.config.runtime_version,
            &setters::kubelet_version(),
            self.arch,
        );
        setters::daemon_endpoints(node, self.config.kubelet_port);
        setters::images(
            node,
            &self.images,
            self.config.node_status_max_images.unwrap_or(usize::MAX),
        );
        let pressure = *self.pressure.borrow();
        setters::memory_pressure_condition(node, pressure.memory, &t);
        setters::disk_pressure_condition(node, pressure.disk, &t);
        setters::pid_pressure_condition(node, pressure.pid, &t);
        setters::ready_condition(node, &self.state.errors(now), &t);
    }

    fn registered(&mut self, node: Node) {
        let uid = node.metadata.uid.clone();
        if uid.is_some() && *self.node_uid.borrow() != uid {
            self.node_uid.send_replace(uid);
        }
        self.node.send_replace(Some(Arc::new(node.clone())));
        self.last_node = Some(node);
    }

    /// One registration attempt (Go's `tryRegisterWithAPIServer`): create
    /// the node; if it exists, make the default labels and the
    /// attach/detach annotation ours again and send the current status,
    /// leaving what other components set.
    pub async fn try_register(&mut self) -> Result<(), NodeSyncError> {
        self.refresh_runtime().await;
        let node = self.initial_node();
        let api = self.api();
        NodeApiCounters::bump(&self.counters.node_creates);
        match api.create(&PostParams::default(), &node).await {
            Ok(created) => {
                tracing::info!(node = %self.config.node_name, "registered the node");
                self.last_report = Some(Instant::now());
                self.registered(created);
                return Ok(());
            }
            Err(kube::Error::Api(s)) if s.is_already_exists() => {}
            Err(e) => return Err(self.api_error(e)),
        }
        NodeApiCounters::bump(&self.counters.node_gets);
        let existing = api
            .get(&self.config.node_name)
            .await
            .map_err(|e| self.api_error(e))?;
        let mut wanted = existing.clone();
        let labels = wanted.metadata.labels.get_or_insert_with(BTreeMap::new);
        for (k, v) in setters::default_labels(&self.config.hostname, self.arch) {
            labels.insert(k, v);
        }
        wanted
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(CONTROLLER_MANAGED_ATTACH_DETACH.into(), "true".into());
        self.set_node_status(&mut wanted, Instant::now());
        let node = match node_status_patch(&existing, &wanted) {
            Some(patch) => self.send_patch(&patch).await?,
            None => existing,
        };
        tracing::info!(node = %self.config.node_name, "the node was registered before; reconciled it");
        self.last_report = Some(Instant::now());
        self.registered(node);
        Ok(())
    }

    async fn send_patch(&self, patch: &serde_json::Value) -> Result<Node, NodeSyncError> {
        NodeApiCounters::bump(&self.counters.node_status_patches);
        self.api()
            .patch_status(
                &self.config.node_name,
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await
            .map_err(|e| self.api_error(e))
    }

    /// Registers, retrying with a backoff of 100 ms doubling to 7 s (Go's
    /// `registerWithAPIServer`) until it works.
    pub async fn register(&mut self) {
        let mut delay = Duration::from_millis(100);
        loop {
            let attempt = match self.config.register_node {
                true => self.try_register().await,
                false => self.try_adopt().await,
            };
            match attempt {
                Ok(()) => {
                    self.recovered();
                    return;
                }
                Err(e) => self.failed("registering the node", &e),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(7));
        }
    }

    /// `registerNode: false`: the Node must exist already; berth reads it
    /// and then keeps its status (Go still updates an existing node).
    async fn try_adopt(&mut self) -> Result<(), NodeSyncError> {
        NodeApiCounters::bump(&self.counters.node_gets);
        let node = self
            .api()
            .get(&self.config.node_name)
            .await
            .map_err(|e| self.api_error(e))?;
        self.registered(node);
        self.sync_node_status().await.map(|_| ())
    }

    fn failed(&mut self, what: &str, e: &NodeSyncError) {
        if self.outage {
            tracing::debug!(node = %self.config.node_name, error = %e, "{what} failed again");
        } else {
            self.outage = true;
            tracing::warn!(node = %self.config.node_name, error = %e, "{what} failed; retrying until the apiserver answers");
        }
    }

    fn recovered(&mut self) {
        if self.outage {
            self.outage = false;
            tracing::info!(node = %self.config.node_name, "the apiserver answers again");
        }
    }

    /// One status update (Go's `updateNodeStatus`): computes the status and,
    /// when [`should_report`] says so, patches what changed. The first
    /// attempt works from the node last seen; the others re-read it.
    /// Returns whether a patch was sent.
    pub async fn sync_node_status(&mut self) -> Result<bool, NodeSyncError> {
        if self.last_node.is_none() {
            return Err(NodeSyncError::NotRegistered {
                node: self.config.node_name.clone(),
            });
        }
        self.refresh_runtime().await;
        let mut last_err = None;
        for attempt in 0..NODE_STATUS_UPDATE_RETRY {
            match self.try_update_node_status(attempt).await {
                Ok(sent) => return Ok(sent),
                Err(e) => {
                    if let NodeSyncError::Api {
                        source: kube::Error::Api(s),
                        ..
                    } = &e
                        && s.is_not_found()
                    {
                        // Someone deleted the node: register it again.
                        tracing::warn!(node = %self.config.node_name, "the node is gone from the apiserver; registering it again");
                        self.last_node = None;
                        return Err(e);
                    }
                    tracing::debug!(node = %self.config.node_name, attempt, error = %e, "node status update failed");
                    last_err = Some(e);
                }
            }
        }
        Err(NodeSyncError::RetriesExhausted {
            node: self.config.node_name.clone(),
            tries: NODE_STATUS_UPDATE_RETRY,
            last: Box::new(last_err.unwrap_or(NodeSyncError::NotRegistered {
                node: self.config.node_name.clone(),
            })),
        })
    }

    async fn try_update_node_status(&mut self, attempt: usize) -> Result<bool, NodeSyncError> {
        let original = match (&self.last_node, attempt) {
            (Some(n), 0) => n.clone(),
            _ => {
                NodeApiCounters::bump(&self.counters.node_gets);
                let n = self
                    .api()
                    .get(&self.config.node_name)
                    .await
                    .map_err(|e| self.api_error(e))?;
                self.last_node = Some(n.clone());
                n
            }
        };
        let now = Instant::now();
        let mut node = original.clone();
        self.set_node_status(&mut node, now);
        let changed = setters::status_changed(original.status.as_ref(), node.status.as_ref());
        if !should_report(
            changed,
            self.last_report,
            now,
            self.config.node_status_report_frequency,
        ) {
            return Ok(false);
        }
        let Some(patch) = node_status_patch(&original, &node) else {
            return Ok(false);
        };
        let updated = self.send_patch(&patch).await?;
        self.last_report = Some(now);
        self.registered(updated);
        Ok(true)
    }

    /// Registers, then updates the status every `nodeStatusUpdateFrequency`
    /// for ever; apiserver failures are logged once per outage and retried.
    pub async fn run(mut self) {
        self.register().await;
        let mut tick = tokio::time::interval(self.config.node_status_update_frequency);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            if self.last_node.is_none() {
                self.register().await;
                continue;
            }
            match self.sync_node_status().await {
                Ok(_) => self.recovered(),
                Err(e) => self.failed("updating the node status", &e),
            }
        }
    }

    /// The node as last seen from the apiserver.
    pub fn last_node(&self) -> Option<&Node> {
        self.last_node.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_on_change_or_after_the_report_period_only() {
        let t0 = Instant::now();
        let five_min = Duration::from_secs(300);
        assert!(should_report(false, None, t0, five_min));
        assert!(!should_report(
            false,
            Some(t0),
            t0 + Duration::from_secs(10),
            five_min
        ));
        assert!(!should_report(
            false,
            Some(t0),
            t0 + Duration::from_secs(299),
            five_min
        ));
        assert!(should_report(false, Some(t0), t0 + five_min, five_min));
        assert!(should_report(
            true,
            Some(t0),
            t0 + Duration::from_secs(10),
            five_min
        ));
    }

    #[test]
    fn a_node_ip_must_be_a_unicast_address_of_this_machine() {
        for bad in [
            "127.0.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "169.254.1.1",
            "192.0.2.123",
        ] {
            let e = validate_node_ip(bad.parse().unwrap())
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("--node-ip {bad} ")), "{e}");
        }
        if let Ok(ip) = default_node_ip() {
            assert_eq!(validate_node_ip(ip).unwrap(), ip);
        }
    }

    #[test]
    fn default_route_from_proc_net_route() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                     eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(
            default_route_gateway(table),
            Some(Ipv4Addr::new(192, 168, 0, 1))
        );
        assert_eq!(default_route_gateway("Iface\tDestination\n"), None);
    }
}
