//! The kubelet's event recorder: client-go's `tools/record` as the Go
//! kubelet uses it (`makeEventRecorder`), writing core/v1 Events with source
//! `kubelet` on this node.
//!
//! A [`Recorder`] is a cheap handle: [`Recorder::event`] logs the event,
//! stamps it and queues it without waiting. The task [`start`] returns takes
//! the queue, runs each event through the [`correlator`] (aggregation,
//! de-duplication, the per-object spam filter) and writes it through the
//! [`sink`], retrying a bounded number of times. In standalone mode
//! [`Recorder::disabled`] only logs.

pub mod correlator;
pub mod reasons;
pub mod sink;

use std::future::Future;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use tokio::sync::mpsc;

use crate::kubelet_node_status::ClientSource;
use correlator::{Correlator, event_name};
use sink::{ApiSink, EventSink, SinkOptions};

/// The source component of the kubelet's events (Go's `componentKubelet`).
pub const COMPONENT_KUBELET: &str = "kubelet";
/// Go's `maxQueuedEvents`: events waiting for the writer; more are dropped.
pub const MAX_QUEUED_EVENTS: usize = 1000;

/// An event's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an event is about: client-go's `ObjectReference` as the kubelet
/// builds it for a pod, one of its containers, or the Node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectRef {
    pub kind: String,
    pub api_version: String,
    /// Empty for cluster-scoped objects (the event then lives in `default`).
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub resource_version: Option<String>,
    pub field_path: Option<String>,
}

/// Go's `ImplicitContainerPrefix`: the fieldPath of a container that is
/// not in the pod's spec.
const IMPLICIT_CONTAINER_PREFIX: &str = "implicitly required container ";

impl ObjectRef {
    /// The pod itself (`ref.GetReference`).
    pub fn pod(pod: &Pod) -> Self {
        let m = &pod.metadata;
        ObjectRef {
            kind: "Pod".into(),
            api_version: "v1".into(),
            namespace: m.namespace.clone().unwrap_or_default(),
            name: m.name.clone().unwrap_or_default(),
            uid: m.uid.clone().unwrap_or_default(),
            resource_version: m.resource_version.clone().filter(|v| !v.is_empty()),
            field_path: None,
        }
    }

    /// One of the pod's containers (Go's `GenerateContainerRef`): fieldPath
    /// `spec.containers{name}`, `spec.initContainers{name}` or
    /// `spec.ephemeralContainers{name}`.
    pub fn container(pod: &Pod, container: &str) -> Self {
        let mut r = ObjectRef::pod(pod);
        r.field_path = Some(container_field_path(pod, container));
        r
    }

    /// The Node, as the Go kubelet refers to it: its name doubles as UID and
    /// it has no namespace.
    pub fn node(name: &str) -> Self {
        ObjectRef {
            kind: "Node".into(),
            name: name.into(),
            uid: name.into(),
            ..Default::default()
        }
    }

    /// `namespace/name`, for log lines.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn to_reference(&self) -> ObjectReference {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        ObjectReference {
            kind: opt(&self.kind),
            api_version: opt(&self.api_version),
            namespace: opt(&self.namespace),
            name: opt(&self.name),
            uid: opt(&self.uid),
            resource_version: self.resource_version.clone(),
            field_path: self.field_path.clone(),
        }
    }
}

fn container_field_path(pod: &Pod, container: &str) -> String {
    let Some(spec) = pod.spec.as_ref() else {
        return format!("{IMPLICIT_CONTAINER_PREFIX}{container}");
    };
    let path = |list: &str, i: usize, name: &str| {
        if name.is_empty() {
            format!("spec.{list}[{i}]")
        } else {
            format!("spec.{list}{{{name}}}")
        }
    };
    if let Some(i) = spec.containers.iter().position(|c| c.name == container) {
        return path("containers", i, container);
    }
    let inits = spec.init_containers.iter().flatten();
    if let Some(i) = inits.clone().position(|c| c.name == container) {
        return path("initContainers", i, container);
    }
    let ephemeral = spec.ephemeral_containers.iter().flatten();
    if let Some(i) = ephemeral.clone().position(|c| c.name == container) {
        return path("ephemeralContainers", i, container);
    }
    format!("{IMPLICIT_CONTAINER_PREFIX}{container}")
}

/// A duration as Go prints a `time.Duration` truncated to milliseconds
/// (`313ms`, `1.594s`, `2m0s`), for messages that quote pull times.
pub fn go_duration(d: std::time::Duration) -> String {
    let whole_ms = std::time::Duration::from_millis(d.as_millis().try_into().unwrap_or(u64::MAX));
    crate::config::format_go_duration(whole_ms)
}

/// Go's `format.Pod`: `name_namespace(uid)`.
pub fn format_pod(pod: &Pod) -> String {
    let m = &pod.metadata;
    format!(
        "{}_{}({})",
        m.name.as_deref().unwrap_or(""),
        m.namespace.as_deref().unwrap_or(""),
        m.uid.as_deref().unwrap_or("")
    )
}

struct Shared {
    tx: mpsc::Sender<Event>,
    node_name: String,
}

/// Records events about pods, containers and the Node. Cloning is cheap;
/// recording never blocks.
#[derive(Clone, Default)]
pub struct Recorder {
    shared: Option<Arc<Shared>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.shared {
            Some(s) => write!(f, "Recorder({})", s.node_name),
            None => f.write_str("Recorder(disabled)"),
        }
    }
}

impl Recorder {
    /// A recorder that only logs (standalone mode, tests).
    pub fn disabled() -> Self {
        Recorder { shared: None }
    }

    /// Whether events reach an apiserver.
    pub fn is_enabled(&self) -> bool {
        self.shared.is_some()
    }

    /// Records an event. The message is logged at debug level and, when
    /// enabled, queued for the apiserver; a full queue drops it.
    pub fn event(&self, obj: &ObjectRef, ty: EventType, reason: &str, message: impl Into<String>) {
        let message = message.into();
        log_event(obj, ty, reason, &message);
        let Some(shared) = &self.shared else {
            return;
        };
        let event = make_event(
            obj,
            ty,
            reason,
            message,
            &shared.node_name,
            Timestamp::now(),
        );
        match shared.tx.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::debug!(object = %obj.key(), uid = %obj.uid, reason, "too many queued events, dropped event");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::debug!(object = %obj.key(), uid = %obj.uid, reason, "event recorder stopped, dropped event");
            }
        }
    }
}

fn log_event(obj: &ObjectRef, ty: EventType, reason: &str, message: &str) {
    let field_path = obj.field_path.as_deref().unwrap_or("");
    if obj.kind == "Pod" {
        tracing::debug!(
            pod = %obj.key(), uid = %obj.uid, field_path, r#type = %ty, reason,
            "event: {message}"
        );
    } else {
        tracing::debug!(
            kind = %obj.kind, object = %obj.key(), uid = %obj.uid, field_path,
            r#type = %ty, reason, "event: {message}"
        );
    }
}

/// client-go's `makeEvent` plus the recorder's source: a new event in the
/// object's namespace (`default` for cluster-scoped objects), named after
/// the object and the time.
pub fn make_event(
    obj: &ObjectRef,
    ty: EventType,
    reason: &str,
    message: String,
    node_name: &str,
    at: Timestamp,
) -> Event {
    let namespace = if obj.namespace.is_empty() {
        "default".to_string()
    } else {
        obj.namespace.clone()
    };
    Event {
        metadata: ObjectMeta {
            name: Some(event_name(&obj.name, at)),
            namespace: Some(namespace),
            ..Default::default()
        },
        involved_object: obj.to_reference(),
        reason: Some(reason.to_string()),
        message: Some(message),
        first_timestamp: Some(Time(at)),
        last_timestamp: Some(Time(at)),
        count: Some(1),
        type_: Some(ty.as_str().to_string()),
        source: Some(EventSource {
            component: Some(COMPONENT_KUBELET.to_string()),
            host: Some(node_name.to_string()),
        }),
        reporting_component: Some(COMPONENT_KUBELET.to_string()),
        reporting_instance: Some(node_name.to_string()),
        ..Default::default()
    }
}

/// A recorder writing to the apiserver, and the task that does the
/// writing; it ends once every clone of the recorder is dropped.
pub fn start(
    client: ClientSource,
    node_name: &str,
) -> (Recorder, impl Future<Output = ()> + Send + 'static) {
    start_with_sink(
        Arc::new(ApiSink::new(client)),
        node_name,
        Correlator::default(),
        SinkOptions::default(),
    )
}

/// [`start`] with another sink, correlator (clock) or retry policy.
pub fn start_with_sink(
    sink: Arc<dyn EventSink>,
    node_name: &str,
    correlator: Correlator,
    options: SinkOptions,
) -> (Recorder, impl Future<Output = ()> + Send + 'static) {
    let (recorder, rx) = channel(node_name);
    (recorder, sink::run(rx, sink, correlator, options))
}

/// A recorder whose events wait, uncorrelated, in the returned queue (of
/// [`MAX_QUEUED_EVENTS`]): for a writer of the caller's own, or for tests
/// that check which events a component records.
pub fn channel(node_name: &str) -> (Recorder, mpsc::Receiver<Event>) {
    let (tx, rx) = mpsc::channel(MAX_QUEUED_EVENTS);
    let recorder = Recorder {
        shared: Some(Arc::new(Shared {
            tx,
            node_name: node_name.to_string(),
        })),
    };
    (recorder, rx)
}

/// Drains what a [`channel`] recorder queued, as (type, reason, fieldPath,
/// message) — for tests.
pub fn drain(rx: &mut mpsc::Receiver<Event>) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push((
            e.type_.unwrap_or_default(),
            e.reason.unwrap_or_default(),
            e.involved_object.field_path.unwrap_or_default(),
            e.message.unwrap_or_default(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::future::BoxFuture;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use sink::SinkError;
    use std::sync::Mutex;

    fn pod() -> Pod {
        let c = |n: &str| Container {
            name: n.into(),
            ..Default::default()
        };
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("shop".into()),
                uid: Some("u-1".into()),
                resource_version: Some("42".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![c("app"), c("side")],
                init_containers: Some(vec![c("init")]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn references_as_go_builds_them() {
        let p = pod();
        let r = ObjectRef::pod(&p);
        assert_eq!(
            (
                r.kind.as_str(),
                r.api_version.as_str(),
                r.namespace.as_str()
            ),
            ("Pod", "v1", "shop")
        );
        assert_eq!(r.resource_version.as_deref(), Some("42"));
        assert_eq!(
            ObjectRef::container(&p, "side").field_path.as_deref(),
            Some("spec.containers{side}")
        );
        assert_eq!(
            ObjectRef::container(&p, "init").field_path.as_deref(),
            Some("spec.initContainers{init}")
        );
        assert_eq!(
            ObjectRef::container(&p, "ghost").field_path.as_deref(),
            Some("implicitly required container ghost")
        );
        let n = ObjectRef::node("node-a");
        assert_eq!((n.uid.as_str(), n.namespace.as_str()), ("node-a", ""));
    }

    #[test]
    fn events_carry_the_kubelet_source_and_live_with_their_object() {
        let at = Timestamp::from_second(1_800_000_000).unwrap();
        let e = make_event(
            &ObjectRef::container(&pod(), "app"),
            EventType::Warning,
            "BackOff",
            "Back-off restarting failed container".into(),
            "node-a",
            at,
        );
        assert_eq!(e.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(
            e.metadata.name,
            Some(format!("web.{:x}", 1_800_000_000_000_000_000u64))
        );
        let src = e.source.unwrap();
        assert_eq!(src.component.as_deref(), Some("kubelet"));
        assert_eq!(src.host.as_deref(), Some("node-a"));
        assert_eq!(e.reporting_component.as_deref(), Some("kubelet"));
        assert_eq!(e.reporting_instance.as_deref(), Some("node-a"));
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        assert_eq!(e.count, Some(1));
        assert_eq!(
            e.involved_object.field_path.as_deref(),
            Some("spec.containers{app}")
        );

        let node = make_event(
            &ObjectRef::node("node-a"),
            EventType::Normal,
            "Starting",
            "Starting kubelet.".into(),
            "node-a",
            at,
        );
        assert_eq!(node.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(node.involved_object.namespace, None);
    }

    /// Never answers: the writer is stuck on its first event.
    struct StuckSink(Mutex<usize>);

    impl EventSink for StuckSink {
        fn create<'a>(&'a self, _: &'a Event) -> BoxFuture<'a, Result<Event, SinkError>> {
            *self.0.lock().unwrap() += 1;
            Box::pin(std::future::pending())
        }
        fn patch<'a>(
            &'a self,
            _: &'a Event,
            _: &'a serde_json::Value,
        ) -> BoxFuture<'a, Result<Event, SinkError>> {
            Box::pin(std::future::pending())
        }
    }

    #[tokio::test]
    async fn a_full_queue_drops_instead_of_blocking() {
        let sink = Arc::new(StuckSink(Mutex::new(0)));
        let (rec, task) = start_with_sink(
            sink.clone(),
            "node-a",
            Correlator::default(),
            SinkOptions::default(),
        );
        let task = tokio::spawn(task);
        let obj = ObjectRef::pod(&pod());
        for i in 0..(MAX_QUEUED_EVENTS + 50) {
            rec.event(&obj, EventType::Normal, &format!("R{i}"), "m");
        }
        tokio::task::yield_now().await;
        assert_eq!(*sink.0.lock().unwrap(), 1);
        task.abort();
    }

    #[test]
    fn durations_print_as_go_does() {
        use std::time::Duration;
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_micros(313_900)), "313ms");
        assert_eq!(go_duration(Duration::from_millis(1594)), "1.594s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(62_500)), "1m2.5s");
        assert_eq!(go_duration(Duration::from_secs(120)), "2m0s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format_pod(&pod()), "web_shop(u-1)");
    }

    #[test]
    fn a_disabled_recorder_only_logs() {
        let rec = Recorder::disabled();
        assert!(!rec.is_enabled());
        rec.event(
            &ObjectRef::node("n"),
            EventType::Normal,
            "Starting",
            "Starting kubelet.",
        );
    }
}
