//! containerd's own event stream, the fastest way to learn that a container
//! started or exited.
//!
//! containerd serves `containerd.services.events.v1.Events/Subscribe` on the
//! same socket as CRI, including 1.6, which has no CRI `GetContainerEvents`.
//! [`ContainerdEvents::subscribe`] opens that stream for one containerd
//! namespace (`k8s.io` for everything CRI creates) and decodes each
//! envelope's payload into a [`RuntimeEvent`].
//!
//! A runtime that does not serve the service (CRI-O, cri-dockerd) answers
//! `Unimplemented`, reported as [`EventsError::Unimplemented`] so callers can
//! fall back to relisting.
//!
//! Exec'd processes report through the same topics as the container's init
//! process: a `/tasks/exit` for an exec carries the exec ID. Such events
//! have [`RuntimeEvent::exec_id`] set and [`RuntimeEvent::is_exec`] true; a
//! kubelet ignores them when tracking container state.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use cri_proto::containerd::events as ev;
use cri_proto::containerd::services::events::v1 as pb;
use cri_proto::prost::Message;
use cri_proto::prost_types;
use futures_util::{Stream, StreamExt};
use pb::events_client::EventsClient;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::endpoint::{Endpoint, EndpointError};

/// The containerd namespace CRI plugins put pods and containers in.
pub const CRI_NAMESPACE: &str = "k8s.io";

/// The gRPC header containerd reads the namespace from.
const NAMESPACE_HEADER: &str = "containerd-namespace";

/// The RPC, for error messages.
const SUBSCRIBE: &str = "containerd.services.events.v1.Events/Subscribe";

/// How long [`ContainerdEvents::subscribe`] waits for an immediate answer
/// (Unimplemented, a broken connection) before taking the subscription as
/// live. containerd answers a healthy Subscribe only with its first event.
pub const SUBSCRIBE_SETTLE: Duration = Duration::from_millis(200);

/// How long [`ContainerdEvents::connect`] waits for the socket.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Seconds of Go's zero `time.Time` (0001-01-01T00:00:00Z), which containerd
/// sends for "never".
const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// Why subscribing to, or reading, containerd's event stream failed.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error(
        "invalid containerd namespace {namespace:?}: expected letters and digits separated by single '.', '_' or '-', at most 76 characters"
    )]
    InvalidNamespace { namespace: String },
    /// The runtime does not serve containerd's event service, as CRI-O.
    #[error("the runtime at {endpoint} does not serve {SUBSCRIBE} (not containerd?): {message}")]
    Unimplemented { endpoint: String, message: String },
    /// Subscribing failed, or the open stream broke.
    #[error("{SUBSCRIBE} at {endpoint}: {message} ({code:?})")]
    Rpc {
        endpoint: String,
        code: Code,
        message: String,
    },
    /// One envelope's payload did not decode as the type its URL names. The
    /// stream goes on after this error.
    #[error("containerd event {topic:?}: payload {type_url:?} does not decode: {source}")]
    Decode {
        topic: String,
        type_url: String,
        #[source]
        source: cri_proto::prost::DecodeError,
    },
}

impl EventsError {
    /// The gRPC status code behind this error, if it came from the runtime.
    pub fn code(&self) -> Option<Code> {
        match self {
            EventsError::Unimplemented { .. } => Some(Code::Unimplemented),
            EventsError::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True when the runtime has no containerd event service at all, so
    /// reconnecting is pointless and relisting is the only source.
    pub fn is_unimplemented(&self) -> bool {
        matches!(self, EventsError::Unimplemented { .. })
    }
}

/// One decoded event with its envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerdEvent {
    /// When containerd published it (`None` if the envelope had no time).
    pub timestamp: Option<jiff::Timestamp>,
    /// The containerd namespace it happened in.
    pub namespace: String,
    /// The topic, e.g. `/tasks/exit`.
    pub topic: String,
    pub event: RuntimeEvent,
}

/// The payload of a containerd event, for the topics a kubelet cares about.
///
/// `container_id` is the CRI container (or sandbox) ID: the CRI plugin
/// names containerd containers and tasks after them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuntimeEvent {
    /// `/tasks/start`: the init process of a container is running.
    TaskStart { container_id: String, pid: u32 },
    /// `/tasks/exit`: a process exited. `exec_id` is `None` for the
    /// container's init process, `Some` for an exec'd process.
    TaskExit {
        container_id: String,
        exec_id: Option<String>,
        pid: u32,
        exit_status: u32,
        exited_at: Option<jiff::Timestamp>,
    },
    /// `/tasks/delete`: the runtime removed the task (after its exit).
    TaskDelete {
        container_id: String,
        exec_id: Option<String>,
        pid: u32,
        exit_status: u32,
        exited_at: Option<jiff::Timestamp>,
    },
    /// `/tasks/oom`: the container's cgroup ran out of memory.
    TaskOom { container_id: String },
    /// `/tasks/exec-started`: an exec'd process is running.
    TaskExecStarted {
        container_id: String,
        exec_id: String,
        pid: u32,
    },
    /// `/tasks/paused`.
    TaskPaused { container_id: String },
    /// `/tasks/resumed`.
    TaskResumed { container_id: String },
    /// `/containers/create`: the container record exists (no process yet).
    ContainerCreate { id: String, image: String },
    /// `/containers/delete`: the container record is gone.
    ContainerDelete { id: String },
    /// Any other event (images, snapshots, `/tasks/create`, ...), undecoded.
    Other { topic: String, type_url: String },
}

impl RuntimeEvent {
    /// The container (or sandbox) the event is about, if it is about one.
    pub fn container_id(&self) -> Option<&str> {
        match self {
            RuntimeEvent::TaskStart { container_id, .. }
            | RuntimeEvent::TaskExit { container_id, .. }
            | RuntimeEvent::TaskDelete { container_id, .. }
            | RuntimeEvent::TaskOom { container_id }
            | RuntimeEvent::TaskExecStarted { container_id, .. }
            | RuntimeEvent::TaskPaused { container_id }
            | RuntimeEvent::TaskResumed { container_id } => Some(container_id),
            RuntimeEvent::ContainerCreate { id, .. } | RuntimeEvent::ContainerDelete { id } => {
                Some(id)
            }
            RuntimeEvent::Other { .. } => None,
        }
    }

    /// The exec ID, for events about an exec'd process.
    pub fn exec_id(&self) -> Option<&str> {
        match self {
            RuntimeEvent::TaskExit { exec_id, .. } | RuntimeEvent::TaskDelete { exec_id, .. } => {
                exec_id.as_deref()
            }
            RuntimeEvent::TaskExecStarted { exec_id, .. } => Some(exec_id),
            _ => None,
        }
    }

    /// True for events about an exec'd process rather than the container's
    /// own (init) process; these do not change the container's state.
    pub fn is_exec(&self) -> bool {
        self.exec_id().is_some()
    }
}

/// A client for containerd's event service. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ContainerdEvents {
    endpoint: String,
    client: EventsClient<Channel>,
}

impl ContainerdEvents {
    /// Connects to containerd at `endpoint` (`unix:///path` or a path),
    /// normally the CRI endpoint itself.
    pub async fn connect(endpoint: &str) -> Result<Self, EventsError> {
        let ep = Endpoint::parse(endpoint)?;
        let channel = ep.connect(CONNECT_TIMEOUT).await?;
        Ok(Self::from_channel(ep.to_string(), channel))
    }

    /// Uses an open channel, e.g. the CRI client's, so both share one
    /// connection. `endpoint` is only used in error messages.
    pub fn from_channel(endpoint: String, channel: Channel) -> Self {
        ContainerdEvents {
            endpoint,
            client: EventsClient::new(channel),
        }
    }

    /// The endpoint, as given to [`from_channel`](Self::from_channel) or
    /// as `unix:///path` after [`connect`](Self::connect).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Subscribes to the events of containerd namespace `namespace` that
    /// match any of `filters` (containerd filter syntax, e.g.
    /// `topic~="/tasks/"`), or to all of its events when `filters` is empty.
    ///
    /// containerd's event service ignores the namespace header when
    /// choosing what to send, so `namespace=="<namespace>"` is added to
    /// every filter here; envelopes from other namespaces are also dropped
    /// on arrival.
    ///
    /// Fails with [`EventsError::Unimplemented`] if the runtime has no such
    /// service. containerd confirms a subscription only with its first
    /// event, so this returns after [`SUBSCRIBE_SETTLE`] when nothing has
    /// answered; by then containerd has registered the subscriber. Events
    /// from before that are not replayed: relist once after subscribing.
    ///
    /// The stream has no deadline. It yields
    /// [`EventsError::Decode`] for an undecodable payload and goes on; it
    /// yields [`EventsError::Rpc`] and ends when the connection breaks or
    /// containerd closes the stream with an error; it ends with no error if
    /// containerd closes it cleanly. Either way, resubscribe.
    pub async fn subscribe(
        &self,
        namespace: &str,
        filters: &[&str],
    ) -> Result<
        impl Stream<Item = Result<ContainerdEvent, EventsError>> + Send + 'static,
        EventsError,
    > {
        let header = namespace_header(namespace)?;
        let mut request = tonic::Request::new(pb::SubscribeRequest {
            filters: scoped_filters(namespace, filters),
        });
        request.metadata_mut().insert(NAMESPACE_HEADER, header);
        let mut client = self.client.clone();
        let mut call: PendingCall = Box::pin(async move { client.subscribe(request).await });
        // containerd sends the response headers only along with the first
        // event, so the call does not complete on a quiet node. A runtime
        // without the service, or a broken connection, answers at once;
        // after a short settle time the subscription is taken as live and
        // the stream finishes the call when it is first polled.
        let state = match tokio::time::timeout(SUBSCRIBE_SETTLE, &mut call).await {
            Ok(Ok(response)) => State::Open(Box::new(response.into_inner())),
            Ok(Err(status)) => return Err(map_status(&self.endpoint, status)),
            Err(_) => State::Pending(call),
        };
        tracing::debug!(endpoint = %self.endpoint, namespace, ?filters, "subscribed to containerd events");

        let endpoint = self.endpoint.clone();
        let namespace = namespace.to_string();
        let events = futures_util::stream::unfold(state, move |state| {
            let endpoint = endpoint.clone();
            let namespace = namespace.clone();
            async move {
                let mut stream = match state {
                    State::Open(stream) => stream,
                    State::Pending(call) => match call.await {
                        Ok(response) => Box::new(response.into_inner()),
                        Err(status) => {
                            return Some((Err(map_status(&endpoint, status)), State::Done));
                        }
                    },
                    State::Done => return None,
                };
                loop {
                    match stream.message().await {
                        Ok(Some(envelope)) => {
                            if envelope.namespace != namespace {
                                continue;
                            }
                            return Some((decode_envelope(envelope), State::Open(stream)));
                        }
                        Ok(None) => return None,
                        Err(status) => {
                            return Some((Err(map_status(&endpoint, status)), State::Done));
                        }
                    }
                }
            }
        });
        Ok(events.boxed())
    }
}

/// The Subscribe call, possibly still waiting for containerd's headers.
type PendingCall = Pin<
    Box<
        dyn Future<Output = Result<tonic::Response<tonic::Streaming<pb::Envelope>>, Status>> + Send,
    >,
>;

/// Where the event stream is.
enum State {
    /// Subscribed, headers not yet received (no event yet).
    Pending(PendingCall),
    Open(Box<tonic::Streaming<pb::Envelope>>),
    /// Failed; the error has been yielded.
    Done,
}

fn map_status(endpoint: &str, status: Status) -> EventsError {
    match status.code() {
        Code::Unimplemented => EventsError::Unimplemented {
            endpoint: endpoint.to_string(),
            message: status.message().to_string(),
        },
        code => EventsError::Rpc {
            endpoint: endpoint.to_string(),
            code,
            message: status.message().to_string(),
        },
    }
}

/// Checks `namespace` against containerd's rule for namespace names and
/// makes the header value. The check also keeps it safe to splice into a
/// filter expression.
fn namespace_header(namespace: &str) -> Result<MetadataValue<tonic::metadata::Ascii>, EventsError> {
    let invalid = || EventsError::InvalidNamespace {
        namespace: namespace.to_string(),
    };
    if !valid_namespace(namespace) {
        return Err(invalid());
    }
    MetadataValue::try_from(namespace).map_err(|_| invalid())
}

/// containerd's namespace rule: alphanumeric runs joined by single `.`,
/// `_` or `-`, at most 76 characters.
fn valid_namespace(ns: &str) -> bool {
    if ns.is_empty() || ns.len() > 76 {
        return false;
    }
    ns.split(['.', '_', '-'])
        .all(|run| !run.is_empty() && run.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// ANDs the namespace into every filter (filters are OR-ed by containerd).
fn scoped_filters(namespace: &str, filters: &[&str]) -> Vec<String> {
    let scope = format!("namespace=={namespace:?}");
    if filters.is_empty() {
        return vec![scope];
    }
    filters
        .iter()
        .map(|f| {
            let f = f.trim();
            if f.is_empty() {
                scope.clone()
            } else {
                format!("{scope},{f}")
            }
        })
        .collect()
}

/// Decodes one envelope's payload by its type URL. Events without a
/// payload, or of types this module does not know, become
/// [`RuntimeEvent::Other`].
pub fn decode_envelope(envelope: pb::Envelope) -> Result<ContainerdEvent, EventsError> {
    let pb::Envelope {
        timestamp,
        namespace,
        topic,
        event,
    } = envelope;
    let event = match event {
        Some(any) => decode_any(&topic, &any)?,
        None => RuntimeEvent::Other {
            topic: topic.clone(),
            type_url: String::new(),
        },
    };
    Ok(ContainerdEvent {
        timestamp: timestamp.as_ref().and_then(to_jiff),
        namespace,
        topic,
        event,
    })
}

/// containerd 1.6 writes bare type names (`containerd.events.TaskExit`);
/// the usual `type.googleapis.com/` prefix is accepted too.
fn decode_any(topic: &str, any: &prost_types::Any) -> Result<RuntimeEvent, EventsError> {
    let name = any.type_url.rsplit('/').next().unwrap_or_default();
    let bytes = any.value.as_slice();
    let decode_err = |source| EventsError::Decode {
        topic: topic.to_string(),
        type_url: any.type_url.clone(),
        source,
    };
    let event = match name {
        "containerd.events.TaskStart" => {
            let e = ev::TaskStart::decode(bytes).map_err(decode_err)?;
            RuntimeEvent::TaskStart {
                container_id: e.container_id,
                pid: e.pid,
            }
        }
        "containerd.events.TaskExit" => {
            let e = ev::TaskExit::decode(bytes).map_err(decode_err)?;
            RuntimeEvent::TaskExit {
                exec_id: exec_id(&e.container_id, e.id),
                container_id: e.container_id,
                pid: e.pid,
                exit_status: e.exit_status,
                exited_at: e.exited_at.as_ref().and_then(to_jiff),
            }
        }
        "containerd.events.TaskDelete" => {
            let e = ev::TaskDelete::decode(bytes).map_err(decode_err)?;
            RuntimeEvent::TaskDelete {
                exec_id: exec_id(&e.container_id, e.id),
                container_id: e.container_id,
                pid: e.pid,
                exit_status: e.exit_status,
                exited_at: e.exited_at.as_ref().and_then(to_jiff),
            }
        }
        "containerd.events.TaskOOM" => {
            let e = ev::TaskOom::decode(bytes).map_err(decode_err)?;
            RuntimeEvent::TaskOom {
                container_id: e.container_id,
            }
        }
        "containerd.events.TaskExecStarted" => {
            let e = ev::TaskExecStarted::decode(bytes).map_err(decode_err)?;
            RuntimeEvent::TaskExecStarted {
                container_id: e.container_id,
                exec_id: e.exec_id,
                pid: e.pid,
            }
        }
        "containerd.events.TaskPaused" => {
            let e = ev::TaskPaused::decode(bytes).map_err(decode_err)?;
            RuntimeEvent::TaskPaused {
                container_id: e.container_id,
            }
        }
        "containerd.events.TaskResumed" => {
            let e = ev::TaskResumed::decode(bytes).map_err(decode_err)?;
            RuntimeEvent::TaskResumed {
                container_id: e.container_id,
            }
        }
        "containerd.events.ContainerCreate" => {
            let e = ev::ContainerCreate::decode(bytes).map_err(decode_err)?;
            RuntimeEvent::ContainerCreate {
                id: e.id,
                image: e.image,
            }
        }
        "containerd.events.ContainerDelete" => {
            let e = ev::ContainerDelete::decode(bytes).map_err(decode_err)?;
            RuntimeEvent::ContainerDelete { id: e.id }
        }
        _ => RuntimeEvent::Other {
            topic: topic.to_string(),
            type_url: any.type_url.clone(),
        },
    };
    Ok(event)
}

/// The init process reports its own ID as the container's (TaskExit) or
/// leaves it empty (TaskDelete); anything else is an exec ID.
fn exec_id(container_id: &str, id: String) -> Option<String> {
    (!id.is_empty() && id != container_id).then_some(id)
}

/// A protobuf timestamp as a jiff one; unset, Go's zero time and
/// out-of-range values are `None`.
fn to_jiff(ts: &prost_types::Timestamp) -> Option<jiff::Timestamp> {
    if (ts.seconds == 0 && ts.nanos == 0) || ts.seconds <= GO_ZERO_TIME_SECONDS {
        return None;
    }
    jiff::Timestamp::new(ts.seconds, ts.nanos).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any<M: Message>(type_url: &str, msg: &M) -> prost_types::Any {
        prost_types::Any {
            type_url: type_url.to_string(),
            value: msg.encode_to_vec(),
        }
    }

    fn envelope(topic: &str, event: Option<prost_types::Any>) -> pb::Envelope {
        pb::Envelope {
            timestamp: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 5,
            }),
            namespace: CRI_NAMESPACE.into(),
            topic: topic.into(),
            event,
        }
    }

    /// An envelope as containerd sends it: encoded, then decoded as ours.
    fn round_trip(env: pb::Envelope) -> Result<ContainerdEvent, EventsError> {
        let bytes = env.encode_to_vec();
        decode_envelope(pb::Envelope::decode(bytes.as_slice()).unwrap())
    }

    #[test]
    fn decodes_an_init_task_exit() {
        let exit = ev::TaskExit {
            container_id: "abc".into(),
            id: "abc".into(),
            pid: 4242,
            exit_status: 3,
            exited_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_001,
                nanos: 250_000_000,
            }),
        };
        let got = round_trip(envelope(
            "/tasks/exit",
            Some(any("containerd.events.TaskExit", &exit)),
        ))
        .unwrap();
        assert_eq!(
            got,
            ContainerdEvent {
                timestamp: Some(jiff::Timestamp::new(1_700_000_000, 5).unwrap()),
                namespace: "k8s.io".into(),
                topic: "/tasks/exit".into(),
                event: RuntimeEvent::TaskExit {
                    container_id: "abc".into(),
                    exec_id: None,
                    pid: 4242,
                    exit_status: 3,
                    exited_at: Some(jiff::Timestamp::new(1_700_000_001, 250_000_000).unwrap()),
                },
            }
        );
        assert_eq!(got.event.container_id(), Some("abc"));
        assert!(!got.event.is_exec());
    }

    #[test]
    fn an_exec_exit_carries_its_exec_id() {
        let exit = ev::TaskExit {
            container_id: "abc".into(),
            id: "exec-1".into(),
            pid: 7,
            exit_status: 0,
            exited_at: None,
        };
        let got = round_trip(envelope(
            "/tasks/exit",
            Some(any("type.googleapis.com/containerd.events.TaskExit", &exit)),
        ))
        .unwrap();
        assert_eq!(got.event.exec_id(), Some("exec-1"));
        assert!(got.event.is_exec());
        assert_eq!(got.event.container_id(), Some("abc"));
    }

    #[test]
    fn task_delete_with_an_empty_id_is_the_init_process() {
        let del = ev::TaskDelete {
            container_id: "abc".into(),
            pid: 9,
            exit_status: 137,
            exited_at: Some(prost_types::Timestamp {
                seconds: GO_ZERO_TIME_SECONDS,
                nanos: 0,
            }),
            id: String::new(),
        };
        let got = round_trip(envelope(
            "/tasks/delete",
            Some(any("containerd.events.TaskDelete", &del)),
        ))
        .unwrap();
        assert_eq!(
            got.event,
            RuntimeEvent::TaskDelete {
                container_id: "abc".into(),
                exec_id: None,
                pid: 9,
                exit_status: 137,
                exited_at: None,
            }
        );
    }

    #[test]
    fn decodes_start_oom_and_container_events() {
        let cases = [
            (
                any(
                    "containerd.events.TaskStart",
                    &ev::TaskStart {
                        container_id: "c1".into(),
                        pid: 11,
                    },
                ),
                RuntimeEvent::TaskStart {
                    container_id: "c1".into(),
                    pid: 11,
                },
            ),
            (
                any(
                    "containerd.events.TaskOOM",
                    &ev::TaskOom {
                        container_id: "c1".into(),
                    },
                ),
                RuntimeEvent::TaskOom {
                    container_id: "c1".into(),
                },
            ),
            (
                any(
                    "containerd.events.ContainerCreate",
                    &ev::ContainerCreate {
                        id: "c2".into(),
                        image: "localhost:5000/busybox:latest".into(),
                        runtime: None,
                    },
                ),
                RuntimeEvent::ContainerCreate {
                    id: "c2".into(),
                    image: "localhost:5000/busybox:latest".into(),
                },
            ),
            (
                any(
                    "containerd.events.ContainerDelete",
                    &ev::ContainerDelete { id: "c2".into() },
                ),
                RuntimeEvent::ContainerDelete { id: "c2".into() },
            ),
        ];
        for (payload, want) in cases {
            let url = payload.type_url.clone();
            let got = round_trip(envelope("/some/topic", Some(payload))).unwrap();
            assert_eq!(got.event, want, "{url}");
        }
    }

    #[test]
    fn unknown_types_and_missing_payloads_are_other() {
        let got = round_trip(envelope(
            "/images/update",
            Some(prost_types::Any {
                type_url: "containerd.events.ImageUpdate".into(),
                value: vec![0x0a, 0x01, b'x'],
            }),
        ))
        .unwrap();
        assert_eq!(
            got.event,
            RuntimeEvent::Other {
                topic: "/images/update".into(),
                type_url: "containerd.events.ImageUpdate".into(),
            }
        );
        assert_eq!(got.event.container_id(), None);
        let got = round_trip(envelope("/tasks/exit", None)).unwrap();
        assert!(matches!(got.event, RuntimeEvent::Other { .. }));
    }

    #[test]
    fn a_corrupt_payload_is_a_decode_error_naming_the_topic() {
        // Field 1 claims 100 bytes of string but the buffer ends.
        let err = round_trip(envelope(
            "/tasks/exit",
            Some(prost_types::Any {
                type_url: "containerd.events.TaskExit".into(),
                value: vec![0x0a, 100, b'a'],
            }),
        ))
        .unwrap_err();
        assert!(matches!(err, EventsError::Decode { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("/tasks/exit") && msg.contains("containerd.events.TaskExit"),
            "{msg}"
        );
        assert!(!err.is_unimplemented());
    }

    #[test]
    fn filters_are_scoped_to_the_namespace() {
        assert_eq!(
            scoped_filters("k8s.io", &[]),
            vec![r#"namespace=="k8s.io""#.to_string()]
        );
        assert_eq!(
            scoped_filters(
                "k8s.io",
                &[r#"topic~="/tasks/""#, r#"topic=="/containers/create""#]
            ),
            vec![
                r#"namespace=="k8s.io",topic~="/tasks/""#.to_string(),
                r#"namespace=="k8s.io",topic=="/containers/create""#.to_string(),
            ]
        );
    }

    #[test]
    fn namespaces_follow_containerds_rule() {
        for ok in ["k8s.io", "default", "moby", "a-b_c.d", "x1"] {
            assert!(valid_namespace(ok), "{ok}");
        }
        let too_long = "a".repeat(77);
        for bad in [
            "",
            ".k8s",
            "k8s.",
            "k8s..io",
            "k8s io",
            "k8s\",topic==\"x",
            "ns\n",
            too_long.as_str(),
        ] {
            assert!(!valid_namespace(bad), "{bad:?}");
            assert!(
                matches!(
                    namespace_header(bad),
                    Err(EventsError::InvalidNamespace { .. })
                ),
                "{bad:?}"
            );
        }
    }

    /// A gRPC server that serves nothing, as far as containerd's event
    /// service goes: the situation with CRI-O.
    #[tokio::test]
    async fn a_runtime_without_the_service_is_unimplemented() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("crio.sock");
        let listener = tokio::net::UnixListener::bind(&sock).unwrap();
        let svc = tower::service_fn(|_req: http::Request<tonic::body::Body>| async {
            Ok::<_, std::convert::Infallible>(
                Status::unimplemented("unknown service containerd.services.events.v1.Events")
                    .into_http::<tonic::body::Body>(),
            )
        });
        let server = tokio::spawn(tonic::transport::Server::builder().serve_with_incoming(
            svc,
            tokio_stream::wrappers::UnixListenerStream::new(listener),
        ));
        let events = ContainerdEvents::connect(sock.to_str().unwrap())
            .await
            .unwrap();
        let err = match events.subscribe(CRI_NAMESPACE, &[]).await {
            Ok(_) => panic!("subscribing to a server without the service succeeded"),
            Err(e) => e,
        };
        assert!(err.is_unimplemented(), "{err:?}");
        assert_eq!(err.code(), Some(Code::Unimplemented));
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("unix://{}", sock.display())) && msg.contains(SUBSCRIBE),
            "{msg}"
        );
        server.abort();
    }

    #[tokio::test]
    async fn an_invalid_namespace_is_refused_before_any_call() {
        // No server needed: the check runs first. A channel to nowhere.
        let channel = tonic::transport::Endpoint::from_static("http://localhost").connect_lazy();
        let events = ContainerdEvents::from_channel("unix:///nowhere".into(), channel);
        let err = match events.subscribe("bad namespace", &[]).await {
            Ok(_) => panic!("an invalid namespace was accepted"),
            Err(e) => e,
        };
        assert!(
            matches!(err, EventsError::InvalidNamespace { ref namespace } if namespace == "bad namespace"),
            "{err:?}"
        );
    }
}
