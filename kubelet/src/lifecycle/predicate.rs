//! Pod admission: the predicate admit handler of the Go kubelet
//! (`pkg/kubelet/lifecycle/predicate.go`, `predicateAdmitHandler.Admit`).
//! Before a pod the apiserver bound to this node gets a pod worker, [`admit`]
//! judges it against the Node berth last registered and the pods already
//! admitted, and says why it may not run here.
//!
//! Checked in Go's order; only the first failure is reported, as Go does:
//!
//! 1. the pod's `kubernetes.io/os` label, then `spec.os.name`, against the
//!    OS berth runs on (`PodOSSelectorNodeLabelDoesNotMatch`,
//!    `PodOSNotSupported`). Go compares with `runtime.GOOS`, not the Node's
//!    label, and so does berth;
//! 2. `securityContext.supplementalGroupsPolicy: Strict` against the Node's
//!    `status.features` (`SupplementalGroupsPolicyNotSupported`);
//! 3. resources against `status.allocatable` (the scheduler's
//!    `noderesources.Fits`): the pod count, cpu, memory, ephemeral-storage,
//!    then hugepages and extended resources by name (`OutOf<resource>`). The
//!    pod's request is component-helpers' `PodRequests`: the sum of the
//!    containers and sidecars or the peak of the init phase, whichever is
//!    larger, pod-level requests (cpu, memory, hugepages) in place of the
//!    containers' when set, plus `spec.overhead`. Extended resources the Node
//!    does not list are not checked (`removeMissingExtendedResources`);
//! 4. `nodeSelector` and required node affinity (`NodeAffinity`, component-
//!    helpers' `nodeaffinity.GetRequiredNodeAffinity`);
//! 5. `spec.nodeName` (`NodeName`);
//! 6. host ports of containers and sidecars against the admitted pods'
//!    (`NodePorts`, `HostPortInfo.CheckConflict`);
//! 7. the Node's `NoExecute` taints, except for static pods
//!    (`TaintToleration`, component-helpers' `FindMatchingUntoleratedTaint`).
//!
//! Reasons and messages are Go's, so a rejected pod reads the same in
//! `kubectl describe` whichever kubelet rejected it.
//!
//! Departures, on purpose:
//! - Go decodes quantities before a pod reaches the kubelet, so a malformed
//!   one never gets here. Berth receives them as strings: a malformed
//!   request, pod-level request or overhead in the pod being admitted
//!   rejects it with `UnexpectedAdmissionError`, naming the field; in an
//!   admitted pod or in the Node's allocatable it counts as absent.
//! - Go walks extended resources in map order; berth in name order, so the
//!   reported one is stable.
//! - Not here (the integrator's or later work): re-reading the Node when node
//!   affinity is the only failure ([`AdmitFailure::is_node_affinity`]), the
//!   critical-pod preemption of `HandleAdmissionFailure`, in-place resize
//!   (admitted pods count their spec, not their status resources), the
//!   alpha `NotEvictPodOnKubeletRestart` and taint `Gt`/`Lt` operators (both
//!   off by default in Go), and the other admit handlers (eviction,
//!   sysctls, node shutdown, resource managers).

use std::collections::BTreeMap;

use api::Quantity;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use crate::cm::helpers::{self, ResourceList};
use crate::podconfig::API_SOURCE;
use crate::{pod_ref, pod_uid};

/// The pod's `kubernetes.io/os` label names another OS.
pub const POD_OS_SELECTOR_NODE_LABEL_DOES_NOT_MATCH: &str = "PodOSSelectorNodeLabelDoesNotMatch";
/// The pod's `spec.os.name` names another OS.
pub const POD_OS_NOT_SUPPORTED: &str = "PodOSNotSupported";
/// There is no Node to judge against (see [`AdmitFailure::invalid_node_info`]).
pub const INVALID_NODE_INFO: &str = "InvalidNodeInfo";
/// `supplementalGroupsPolicy: Strict` on a node whose runtime lacks it.
pub const SUPPLEMENTAL_GROUPS_POLICY_NOT_SUPPORTED: &str = "SupplementalGroupsPolicyNotSupported";
/// Admission could not judge the pod (berth: a malformed quantity).
pub const UNEXPECTED_ADMISSION_ERROR: &str = "UnexpectedAdmissionError";
/// Prefix of the reason for a resource the node is short of.
pub const INSUFFICIENT_RESOURCE_PREFIX: &str = "OutOf";
pub const OUT_OF_CPU: &str = "OutOfcpu";
pub const OUT_OF_MEMORY: &str = "OutOfmemory";
pub const OUT_OF_EPHEMERAL_STORAGE: &str = "OutOfephemeral-storage";
pub const OUT_OF_PODS: &str = "OutOfpods";
/// The scheduler plugins whose names are the predicate reasons.
pub const NODE_AFFINITY: &str = "NodeAffinity";
pub const NODE_NAME: &str = "NodeName";
pub const NODE_PORTS: &str = "NodePorts";
pub const TAINT_TOLERATION: &str = "TaintToleration";

const NODE_AFFINITY_DESC: &str = "node(s) didn't match Pod's node affinity/selector";
const NODE_NAME_DESC: &str = "node(s) didn't match the requested node name";
const NODE_PORTS_DESC: &str = "node(s) didn't have free ports for the requested pod ports";
const TAINT_TOLERATION_DESC: &str = "node(s) had taints that the pod didn't tolerate";

const OS_LABEL: &str = "kubernetes.io/os";
const CONFIG_SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";
const BIND_ALL_HOST_IP: &str = "0.0.0.0";

/// Why a pod may not run on this node: the reason and message the pod's
/// status carries once the integrator rejects it (phase Failed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct AdmitFailure {
    pub reason: String,
    pub message: String,
}

impl AdmitFailure {
    fn new(reason: impl Into<String>, message: impl Into<String>) -> Self {
        AdmitFailure {
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// A scheduler plugin's failure, worded as Go's `PredicateFailureError`.
    fn predicate(name: &str, desc: &str) -> Self {
        AdmitFailure::new(name, format!("Predicate {name} failed: {desc}"))
    }

    fn insufficient(short: &Insufficient) -> Self {
        let reason = match short.resource.as_str() {
            "cpu" => OUT_OF_CPU.to_string(),
            "memory" => OUT_OF_MEMORY.to_string(),
            "ephemeral-storage" => OUT_OF_EPHEMERAL_STORAGE.to_string(),
            "pods" => OUT_OF_PODS.to_string(),
            other => format!("{INSUFFICIENT_RESOURCE_PREFIX}{other}"),
        };
        AdmitFailure::new(
            reason,
            format!(
                "Node didn't have enough resource: {}, requested: {}, used: {}, capacity: {}",
                short.resource, short.requested, short.used, short.capacity
            ),
        )
    }

    /// What Go answers when it has no Node to judge against, e.g. before
    /// berth has registered it.
    pub fn invalid_node_info() -> Self {
        AdmitFailure::new(INVALID_NODE_INFO, "Kubelet cannot get node info.")
    }

    /// Whether node affinity is what failed. Go then fetches the Node from
    /// the apiserver (its cached labels may be stale) and admits once more.
    pub fn is_node_affinity(&self) -> bool {
        self.reason == NODE_AFFINITY
    }
}

/// Whether `pod` may run on `node`, as the Go kubelet's predicate admit
/// handler decides. `node` is the Node berth last registered or updated
/// (allocatable, labels, taints, features); `admitted` are the pods already
/// admitted to it. Terminal pods (Succeeded, Failed) and `pod` itself (by
/// UID) in `admitted` are ignored. Pure: no I/O, no clock.
pub fn admit(node: &Node, admitted: &[&Pod], pod: &Pod) -> Result<(), AdmitFailure> {
    let result = check(node, admitted, pod);
    if let Err(failure) = &result {
        tracing::debug!(
            pod = %pod_ref(pod),
            uid = %pod_uid(pod),
            reason = %failure.reason,
            "pod not admitted: {}",
            failure.message
        );
    }
    result
}

fn check(node: &Node, admitted: &[&Pod], pod: &Pod) -> Result<(), AdmitFailure> {
    if rejects_os_label(pod) {
        return Err(AdmitFailure::new(
            POD_OS_SELECTOR_NODE_LABEL_DOES_NOT_MATCH,
            "Failed to admit pod as the `kubernetes.io/os` label doesn't match node label",
        ));
    }
    if rejects_os_field(pod) {
        return Err(AdmitFailure::new(
            POD_OS_NOT_SUPPORTED,
            "Failed to admit pod as the OS field doesn't match node OS",
        ));
    }
    if rejects_supplemental_groups_policy(pod, node) {
        return Err(AdmitFailure::new(
            SUPPLEMENTAL_GROUPS_POLICY_NOT_SUPPORTED,
            "SupplementalGroupsPolicy=Strict is not supported in this node",
        ));
    }

    let others: Vec<&Pod> = admitted
        .iter()
        .copied()
        .filter(|other| !is_terminal(other) && !same_pod(other, pod))
        .collect();

    let allocatable = Resource::from_list(&helpers::parse_list(
        node.status.as_ref().and_then(|s| s.allocatable.as_ref()),
    ));
    let mut bad = None;
    let request = Resource::from_list(&pod_requests(pod, Some(&allocatable.scalar), &mut bad));
    if let Some(bad) = bad {
        return Err(AdmitFailure::new(
            UNEXPECTED_ADMISSION_ERROR,
            format!("Failed to admit pod: invalid quantity: {bad}"),
        ));
    }
    let mut used = Resource::default();
    for other in &others {
        // Admitted pods were judged already; a bad quantity there counts as absent.
        let mut ignored = None;
        used.add(&Resource::from_list(&pod_requests(
            other,
            None,
            &mut ignored,
        )));
    }
    if let Some(short) = fits_request(&request, &allocatable, &used, others.len()).first() {
        return Err(AdmitFailure::insufficient(short));
    }

    if !matches_required_node_affinity(pod, node) {
        return Err(AdmitFailure::predicate(NODE_AFFINITY, NODE_AFFINITY_DESC));
    }
    if !fits_node_name(pod, node) {
        return Err(AdmitFailure::predicate(NODE_NAME, NODE_NAME_DESC));
    }
    if !fits_host_ports(pod, &others) {
        return Err(AdmitFailure::predicate(NODE_PORTS, NODE_PORTS_DESC));
    }
    // Go leaves static pods alone here: they are the node's own.
    if !is_static_pod(pod) {
        let taints = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_deref())
            .unwrap_or_default();
        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or_default();
        if untolerated_no_execute_taint(taints, tolerations).is_some() {
            return Err(AdmitFailure::predicate(
                TAINT_TOLERATION,
                TAINT_TOLERATION_DESC,
            ));
        }
    }
    Ok(())
}

// ---- OS and node features ----

fn rejects_os_label(pod: &Pod) -> bool {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(OS_LABEL))
        .is_some_and(|os| os != std::env::consts::OS)
}

fn rejects_os_field(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.os.as_ref())
        .is_some_and(|os| os.name != std::env::consts::OS)
}

/// `Strict` needs the runtime's support, which the Node reports in
/// `status.features` (absent means unsupported). The policy is beta or GA in
/// every Go release berth follows, so the check is always on.
fn rejects_supplemental_groups_policy(pod: &Pod, node: &Node) -> bool {
    let strict = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|sc| sc.supplemental_groups_policy.as_deref())
        == Some("Strict");
    let supported = node
        .status
        .as_ref()
        .and_then(|s| s.features.as_ref())
        .and_then(|f| f.supplemental_groups_policy)
        .unwrap_or(false);
    strict && !supported
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn same_pod(a: &Pod, b: &Pod) -> bool {
    let uid = pod_uid(b);
    !uid.is_empty() && pod_uid(a) == uid
}

/// Go's `types.IsStaticPod`: a config source other than the apiserver.
/// Without the annotation the pod counts as the apiserver's.
fn is_static_pod(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONFIG_SOURCE_ANNOTATION))
        .is_some_and(|source| source != API_SOURCE)
}

// ---- resources ----

/// A resource list in the units the fit check compares, as the scheduler's
/// `framework.Resource`: milli-CPU, bytes, counts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Resource {
    milli_cpu: i64,
    memory: i64,
    ephemeral_storage: i64,
    allowed_pods: i64,
    /// Hugepages, extended, `kubernetes.io/`-prefixed and attachable-volume
    /// resources.
    scalar: BTreeMap<String, i64>,
}

impl Resource {
    /// Go's `NewResource`: names that are neither the four native ones nor
    /// scalar are dropped.
    fn from_list(list: &ResourceList) -> Self {
        let mut r = Resource::default();
        for (name, nanos) in list {
            match name.as_str() {
                "cpu" => r.milli_cpu = r.milli_cpu.saturating_add(helpers::milli(*nanos)),
                "memory" => r.memory = r.memory.saturating_add(helpers::value(*nanos)),
                "ephemeral-storage" => {
                    r.ephemeral_storage = r.ephemeral_storage.saturating_add(helpers::value(*nanos))
                }
                "pods" => r.allowed_pods = r.allowed_pods.saturating_add(helpers::value(*nanos)),
                other if is_scalar_resource(other) => {
                    let e = r.scalar.entry(other.to_string()).or_insert(0);
                    *e = e.saturating_add(helpers::value(*nanos));
                }
                _ => {}
            }
        }
        r
    }

    fn add(&mut self, other: &Resource) {
        self.milli_cpu = self.milli_cpu.saturating_add(other.milli_cpu);
        self.memory = self.memory.saturating_add(other.memory);
        self.ephemeral_storage = self
            .ephemeral_storage
            .saturating_add(other.ephemeral_storage);
        self.allowed_pods = self.allowed_pods.saturating_add(other.allowed_pods);
        for (name, v) in &other.scalar {
            let e = self.scalar.entry(name.clone()).or_insert(0);
            *e = e.saturating_add(*v);
        }
    }
}

/// A resource the node is short of, as `noderesources.InsufficientResource`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Insufficient {
    resource: String,
    requested: i64,
    used: i64,
    capacity: i64,
}

/// `noderesources.fitsRequest`: every resource the node is short of, the
/// pod count first, then cpu, memory, ephemeral-storage and the scalars.
fn fits_request(
    request: &Resource,
    allocatable: &Resource,
    used: &Resource,
    pod_count: usize,
) -> Vec<Insufficient> {
    let mut short = Vec::new();
    let pod_count = i64::try_from(pod_count).unwrap_or(i64::MAX);
    if pod_count.saturating_add(1) > allocatable.allowed_pods {
        short.push(Insufficient {
            resource: "pods".into(),
            requested: 1,
            used: pod_count,
            capacity: allocatable.allowed_pods,
        });
    }
    let mut check = |resource: &str, requested: i64, used: i64, capacity: i64| {
        if requested > 0 && requested > capacity.saturating_sub(used) {
            short.push(Insufficient {
                resource: resource.to_string(),
                requested,
                used,
                capacity,
            });
        }
    };
    check(
        "cpu",
        request.milli_cpu,
        used.milli_cpu,
        allocatable.milli_cpu,
    );
    check("memory", request.memory, used.memory, allocatable.memory);
    check(
        "ephemeral-storage",
        request.ephemeral_storage,
        used.ephemeral_storage,
        allocatable.ephemeral_storage,
    );
    for (name, requested) in &request.scalar {
        check(
            name,
            *requested,
            used.scalar.get(name).copied().unwrap_or(0),
            allocatable.scalar.get(name).copied().unwrap_or(0),
        );
    }
    short
}

/// The pod's effective requests, component-helpers' `PodRequests` with
/// pod-level resources on (the Go default since 1.34). With `node_scalars`,
/// the containers' extended resources the node does not list are left out,
/// as the kubelet's `removeMissingExtendedResources`. The first malformed
/// quantity is described in `bad`; it counts as absent.
fn pod_requests(
    pod: &Pod,
    node_scalars: Option<&BTreeMap<String, i64>>,
    bad: &mut Option<String>,
) -> ResourceList {
    let Some(spec) = pod.spec.as_ref() else {
        return ResourceList::new();
    };
    let mut reqs = helpers::aggregate(pod, |c| {
        let mut r = container_requests(c, bad);
        if let Some(node) = node_scalars {
            r.retain(|name, _| !is_extended_resource(name) || node.contains_key(name));
        }
        r
    });
    let pod_level = spec.resources.as_ref().and_then(|r| r.requests.as_ref());
    for (name, v) in parse_strict(pod_level, || "pod-level request".into(), bad) {
        if is_supported_pod_level_resource(&name) {
            reqs.insert(name, v);
        }
    }
    for (name, v) in parse_strict(spec.overhead.as_ref(), || "overhead".into(), bad) {
        *reqs.entry(name).or_insert(0) += v;
    }
    reqs
}

/// A container's requests as the API holds them (the apiserver, and berth's
/// static-pod defaulting, have already copied limits into missing requests).
fn container_requests(c: &Container, bad: &mut Option<String>) -> ResourceList {
    let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
    parse_strict(requests, || format!("container {:?} request", c.name), bad)
}

/// Parses a resource list, keeping what parses and describing the first
/// entry that does not in `bad`.
fn parse_strict(
    list: Option<&BTreeMap<String, ApiQuantity>>,
    whose: impl Fn() -> String,
    bad: &mut Option<String>,
) -> ResourceList {
    let mut out = ResourceList::new();
    for (name, q) in list.into_iter().flatten() {
        match Quantity::parse(&q.0) {
            Ok(v) => {
                out.insert(name.clone(), v.as_nanos());
            }
            Err(e) => {
                if bad.is_none() {
                    *bad = Some(format!("{} {name}: {e}", whose()));
                }
            }
        }
    }
    out
}

/// `v1helper.IsPrefixedNativeResource`.
fn is_prefixed_native_resource(name: &str) -> bool {
    name.contains("kubernetes.io/")
}

/// `v1helper.IsExtendedResourceName`, less the qualified-name syntax check
/// the apiserver has already made.
fn is_extended_resource(name: &str) -> bool {
    let native = !name.contains('/') || is_prefixed_native_resource(name);
    !native && !name.starts_with("requests.")
}

fn is_hugepages_resource(name: &str) -> bool {
    name.starts_with("hugepages-")
}

/// `schedutil.IsScalarResourceName`.
fn is_scalar_resource(name: &str) -> bool {
    is_extended_resource(name)
        || is_hugepages_resource(name)
        || is_prefixed_native_resource(name)
        || name.starts_with("attachable-volumes-")
}

/// `IsSupportedPodLevelResource`.
fn is_supported_pod_level_resource(name: &str) -> bool {
    name == "cpu" || name == "memory" || is_hugepages_resource(name)
}

// ---- node name, node affinity ----

fn fits_node_name(pod: &Pod, node: &Node) -> bool {
    match pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
        None | Some("") => true,
        Some(name) => node.metadata.name.as_deref() == Some(name),
    }
}

/// `nodeSelector` (every label equal) and, when set, the required node
/// affinity's terms.
fn matches_required_node_affinity(pod: &Pod, node: &Node) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    let no_labels = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&no_labels);
    if let Some(selector) = spec.node_selector.as_ref()
        && !selector.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        Some(selector) => node_selector_matches(selector, node, labels),
        None => true,
    }
}

/// The terms are ORed. A term with neither expressions nor fields matches
/// nothing, and a term that does not parse is skipped, as Go's
/// `LazyErrorNodeSelector`; so no usable term means no match.
fn node_selector_matches(
    selector: &NodeSelector,
    node: &Node,
    labels: &BTreeMap<String, String>,
) -> bool {
    let node_name = node.metadata.name.as_deref().unwrap_or("");
    selector
        .node_selector_terms
        .iter()
        .any(|term| term_matches(term, node_name, labels) == Some(true))
}

/// None when the term is empty or does not parse.
fn term_matches(
    term: &NodeSelectorTerm,
    node_name: &str,
    labels: &BTreeMap<String, String>,
) -> Option<bool> {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return None;
    }
    let mut label_results = Vec::with_capacity(expressions.len());
    for req in expressions {
        label_results.push(label_requirement_matches(req, labels)?);
    }
    let mut field_results = Vec::with_capacity(fields.len());
    for req in fields {
        field_results.push(field_requirement_matches(req, node_name)?);
    }
    // Go consults fields only when the node has a name.
    let fields_ok = node_name.is_empty() || field_results.iter().all(|m| *m);
    Some(label_results.iter().all(|m| *m) && fields_ok)
}

/// One matchExpressions entry against the node's labels (the label
/// selector's `Requirement`); None when it does not parse.
fn label_requirement_matches(
    req: &NodeSelectorRequirement,
    labels: &BTreeMap<String, String>,
) -> Option<bool> {
    let values = req.values.as_deref().unwrap_or_default();
    let label = labels.get(&req.key);
    match req.operator.as_str() {
        "In" | "NotIn" => {
            if values.is_empty() {
                return None;
            }
            let found = label.is_some_and(|v| values.contains(v));
            Some(if req.operator == "In" { found } else { !found })
        }
        "Exists" | "DoesNotExist" => {
            if !values.is_empty() {
                return None;
            }
            Some(label.is_some() == (req.operator == "Exists"))
        }
        "Gt" | "Lt" => {
            let [bound] = values else {
                return None;
            };
            let bound: i64 = bound.parse().ok()?;
            let Some(actual) = label.and_then(|v| v.parse::<i64>().ok()) else {
                return Some(false);
            };
            Some(if req.operator == "Gt" {
                actual > bound
            } else {
                actual < bound
            })
        }
        _ => None,
    }
}

/// One matchFields entry: only `metadata.name` is a node field, and only In
/// and NotIn with one value parse.
fn field_requirement_matches(req: &NodeSelectorRequirement, node_name: &str) -> Option<bool> {
    let [value] = req.values.as_deref().unwrap_or_default() else {
        return None;
    };
    let actual = if req.key == "metadata.name" {
        node_name
    } else {
        ""
    };
    match req.operator.as_str() {
        "In" => Some(actual == value),
        "NotIn" => Some(actual != value),
        _ => None,
    }
}

// ---- host ports ----

/// A host port in use, with Go's defaults: no IP binds all, no protocol is TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HostPort<'a> {
    ip: &'a str,
    protocol: &'a str,
    port: i32,
}

/// The host ports of the regular containers and the sidecars (which run for
/// the pod's life); plain init containers hold none.
fn host_ports(pod: &Pod) -> Vec<HostPort<'_>> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| helpers::is_restartable_init(c));
    sidecars
        .chain(spec.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(host_port)
        .collect()
}

fn host_port(p: &ContainerPort) -> Option<HostPort<'_>> {
    let port = p.host_port.filter(|port| *port > 0)?;
    Some(HostPort {
        ip: p
            .host_ip
            .as_deref()
            .filter(|ip| !ip.is_empty())
            .unwrap_or(BIND_ALL_HOST_IP),
        protocol: p
            .protocol
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or("TCP"),
        port,
    })
}

/// Go's `HostPortInfo.CheckConflict` for each of the pod's ports: the same
/// protocol and port on the same IP, or on either side bound to all.
fn fits_host_ports(pod: &Pod, others: &[&Pod]) -> bool {
    let wanted = host_ports(pod);
    if wanted.is_empty() {
        return true;
    }
    let in_use: Vec<HostPort<'_>> = others.iter().flat_map(|p| host_ports(p)).collect();
    !wanted.iter().any(|want| {
        in_use.iter().any(|used| {
            used.protocol == want.protocol
                && used.port == want.port
                && (want.ip == BIND_ALL_HOST_IP
                    || used.ip == BIND_ALL_HOST_IP
                    || used.ip == want.ip)
        })
    })
}

// ---- taints ----

/// The first `NoExecute` taint no toleration tolerates; the kubelet ignores
/// the other effects, which only the scheduler enforces.
fn untolerated_no_execute_taint<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| t.effect == "NoExecute")
        .find(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
}

/// component-helpers' `ToleratesTaint`: an empty effect or key matches any,
/// `Exists` any value, `Equal` (or no operator) the same value. `Gt` and
/// `Lt` sit behind an alpha gate that is off, so they tolerate nothing.
fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("") {
        "" | "Equal" => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        "Exists" => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests;
