//! `berthctl trace`: a CRI proxy. It serves RuntimeService and ImageService
//! on a unix socket, forwards every call to the real runtime unchanged and
//! reports each one (method, what it concerns, status code, latency) to a
//! [`TraceSink`] as it completes.
//!
//! The proxy is transparent to callers: request metadata (including the
//! `grpc-timeout` deadline) goes upstream, response metadata and statuses
//! (Unimplemented included) come back as the runtime sent them, and the
//! server-streaming `GetContainerEvents` is relayed message by message.

use std::future::Future;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use cri_proto::v1;
use cri_proto::v1::image_service_client::ImageServiceClient;
use cri_proto::v1::image_service_server::{ImageService, ImageServiceServer};
use cri_proto::v1::runtime_service_client::RuntimeServiceClient;
use cri_proto::v1::runtime_service_server::{RuntimeService, RuntimeServiceServer};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use tokio_stream::Stream;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status, Streaming};

/// Largest message relayed in either direction: 16 MiB, the Go kubelet's
/// CRI limit, rather than tonic's 4 MiB default (big ListContainers replies).
const MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

/// One completed call (or one stream opening or ending).
#[derive(Clone, Debug, PartialEq)]
pub struct TraceEvent {
    /// When the call arrived at the proxy.
    pub at: Timestamp,
    /// The CRI method, e.g. `RunPodSandbox`.
    pub method: &'static str,
    /// What the call concerns, e.g. `container=7929cade07a7`; may be empty.
    pub subject: String,
    /// The status the caller got.
    pub code: Code,
    /// The status message on error; a note for stream events; else empty.
    pub message: String,
    /// From arrival to the answer (for a stream's end: its whole life).
    pub latency: Duration,
}

/// Receives every [`TraceEvent`]. Called inline on the request path, so it
/// should be quick (print a line, push to a Vec, send on a channel).
pub trait TraceSink: Send + Sync + 'static {
    fn record(&self, ev: &TraceEvent);
}

impl<F: Fn(&TraceEvent) + Send + Sync + 'static> TraceSink for F {
    fn record(&self, ev: &TraceEvent) {
        self(ev)
    }
}

/// Why the proxy could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("cannot listen on {path}: another process is already serving on that socket")]
    SocketInUse { path: PathBuf },
    #[error("cannot listen on {path}: it exists and is not a socket (refusing to delete it)")]
    NotASocket { path: PathBuf },
    #[error("cannot inspect {path}: {source}")]
    Inspect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot remove the stale socket {path}: {source}")]
    RemoveStale {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {path}: {source}")]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("serving the trace proxy on {path} failed: {source}")]
    Serve {
        path: PathBuf,
        source: tonic::transport::Error,
    },
}

/// Formats an event as one line in the system time zone:
/// `10:41:02.123  ContainerStatus        container=ffff                  NotFound       0.4ms  container "ffff" not found`
pub fn format_event(ev: &TraceEvent) -> String {
    format_event_in(ev, &TimeZone::system())
}

fn format_event_in(ev: &TraceEvent, tz: &TimeZone) -> String {
    let time = ev
        .at
        .to_zoned(tz.clone())
        .strftime("%H:%M:%S%.3f")
        .to_string();
    let code = code_name(ev.code);
    let line = format!(
        "{time}  {:<22} {:<30}  {code:<10}{:>10}",
        ev.method,
        ev.subject,
        format_latency(ev.latency)
    );
    if ev.message.is_empty() {
        line
    } else {
        // Keep one event per line whatever the runtime put in its message.
        let message = ev.message.split_whitespace().collect::<Vec<_>>().join(" ");
        format!("{line}  {message}")
    }
}

/// The code as grpc-go spells it (`OK`, `Canceled`), which is what users
/// of crictl and the Go kubelet see in their logs; tonic's names otherwise.
fn code_name(code: Code) -> String {
    match code {
        Code::Ok => "OK".into(),
        Code::Cancelled => "Canceled".into(),
        other => format!("{other:?}"),
    }
}

/// `245.3ms` below ten seconds, `12.3s` above (streams can live for hours).
fn format_latency(d: Duration) -> String {
    if d < Duration::from_secs(10) {
        format!("{:.1}ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// What a request concerns, for the trace line. Requests without an object
/// (Version, Status, ...) keep the empty default.
pub trait Subject {
    fn subject(&self) -> String {
        String::new()
    }
}

/// `key=value` pairs joined by spaces, skipping empty values.
fn pairs(parts: &[(&str, &str)]) -> String {
    parts
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A full 64-hex runtime id shortened to 12 characters, as crictl prints it;
/// anything else (names, short ids) unchanged.
fn short(id: &str) -> &str {
    if id.len() > 12 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        id.get(..12).unwrap_or(id)
    } else {
        id
    }
}

fn image_ref(spec: Option<&v1::ImageSpec>) -> &str {
    spec.map_or("", |s| s.image.as_str())
}

/// Label selector as `k=v,k2=v2`, sorted so equal filters print equally.
fn labels(selector: &std::collections::HashMap<String, String>) -> String {
    let mut kv: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    kv.sort();
    kv.join(",")
}

fn state_name<E: TryFrom<i32>>(value: Option<i32>, name: fn(&E) -> &'static str) -> &'static str {
    value
        .and_then(|v| E::try_from(v).ok())
        .map_or("", |e| name(&e))
}

macro_rules! subjects {
    (
        none: $($plain:ident),* ;
        $(by $field:ident as $key:literal: $($by:ident),* ;)*
        other: $($ty:ident => |$r:ident| $body:expr;)*
    ) => {
        $(impl Subject for v1::$plain {})*
        $($(impl Subject for v1::$by {
            fn subject(&self) -> String {
                pairs(&[($key, short(&self.$field))])
            }
        })*)*
        $(impl Subject for v1::$ty {
            fn subject(&self) -> String {
                let $r = self;
                $body
            }
        })*
    };
}

subjects! {
    none: VersionRequest, StatusRequest, RuntimeConfigRequest, GetEventsRequest,
        ListMetricDescriptorsRequest, ListPodSandboxMetricsRequest, ImageFsInfoRequest,
        StreamPodSandboxMetricsRequest;
    by pod_sandbox_id as "pod": StopPodSandboxRequest, RemovePodSandboxRequest,
        PodSandboxStatusRequest, PodSandboxStatsRequest, UpdatePodSandboxResourcesRequest;
    by container_id as "container": StartContainerRequest, StopContainerRequest,
        RemoveContainerRequest, ContainerStatusRequest, UpdateContainerResourcesRequest,
        ReopenContainerLogRequest, AttachRequest, ContainerStatsRequest, CheckpointContainerRequest;
    other:
    RunPodSandboxRequest => |r| {
        let meta = r.config.as_ref().and_then(|c| c.metadata.as_ref());
        let pod = meta.map(|m| format!("{}/{}", m.namespace, m.name)).unwrap_or_default();
        let uid = meta.map_or("", |m| m.uid.as_str());
        pairs(&[("pod", &pod), ("uid", uid), ("handler", &r.runtime_handler)])
    };
    PortForwardRequest => |r| {
        let ports = r.port.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
        pairs(&[("pod", short(&r.pod_sandbox_id)), ("ports", &ports)])
    };
    ListPodSandboxRequest => |r| r.filter.as_ref().map(|f| pairs(&[
        ("pod", short(&f.id)),
        ("state", state_name(f.state.as_ref().map(|s| s.state), v1::PodSandboxState::as_str_name)),
        ("labels", &labels(&f.label_selector)),
    ])).unwrap_or_default();
    ListPodSandboxStatsRequest => |r| r.filter.as_ref().map(|f| pairs(&[
        ("pod", short(&f.id)),
        ("labels", &labels(&f.label_selector)),
    ])).unwrap_or_default();
    CreateContainerRequest => |r| {
        let name = r.config.as_ref().and_then(|c| c.metadata.as_ref()).map_or("", |m| m.name.as_str());
        pairs(&[("pod", short(&r.pod_sandbox_id)), ("container", name)])
    };
    ExecSyncRequest => |r| pairs(&[("container", short(&r.container_id)), ("cmd", &r.cmd.join(" "))]);
    ExecRequest => |r| pairs(&[("container", short(&r.container_id)), ("cmd", &r.cmd.join(" "))]);
    ListContainersRequest => |r| r.filter.as_ref().map(|f| pairs(&[
        ("container", short(&f.id)),
        ("pod", short(&f.pod_sandbox_id)),
        ("state", state_name(f.state.as_ref().map(|s| s.state), v1::ContainerState::as_str_name)),
        ("labels", &labels(&f.label_selector)),
    ])).unwrap_or_default();
    ListContainerStatsRequest => |r| r.filter.as_ref().map(|f| pairs(&[
        ("container", short(&f.id)),
        ("pod", short(&f.pod_sandbox_id)),
        ("labels", &labels(&f.label_selector)),
    ])).unwrap_or_default();
    UpdateRuntimeConfigRequest => |r| {
        let cidr = r.runtime_config.as_ref().and_then(|c| c.network_config.as_ref()).map_or("", |n| n.pod_cidr.as_str());
        pairs(&[("pod-cidr", cidr)])
    };
    ListImagesRequest => |r| pairs(&[("image", image_ref(r.filter.as_ref().and_then(|f| f.image.as_ref())))]);
    ImageStatusRequest => |r| pairs(&[("image", image_ref(r.image.as_ref()))]);
    PullImageRequest => |r| pairs(&[("image", image_ref(r.image.as_ref()))]);
    RemoveImageRequest => |r| pairs(&[("image", image_ref(r.image.as_ref()))]);
    // The streaming lists take the same filters as their unary twins.
    StreamPodSandboxesRequest => |r| v1::ListPodSandboxRequest { filter: r.filter.clone() }.subject();
    StreamContainersRequest => |r| v1::ListContainersRequest { filter: r.filter.clone() }.subject();
    StreamContainerStatsRequest => |r| v1::ListContainerStatsRequest { filter: r.filter.clone() }.subject();
    StreamPodSandboxStatsRequest => |r| v1::ListPodSandboxStatsRequest { filter: r.filter.clone() }.subject();
    StreamImagesRequest => |r| v1::ListImagesRequest { filter: r.filter.clone() }.subject();
}

/// Headers that belong to one gRPC hop, not to the call: tonic sets them
/// itself on each side. Forwarding an `grpc-accept-encoding` in particular
/// would invite the runtime to compress replies this build cannot decode.
const HOP_HEADERS: &[&str] = &[
    "te",
    "content-type",
    "content-length",
    "grpc-encoding",
    "grpc-accept-encoding",
    "accept-encoding",
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
];

fn end_to_end(mut md: MetadataMap) -> MetadataMap {
    for h in HOP_HEADERS {
        md.remove(*h);
    }
    md
}

/// The caller's deadline from its `grpc-timeout` header (`<digits><unit>`).
/// The header itself is forwarded, so the runtime enforces the same deadline;
/// this copy only tells a timeout apart from a caller hanging up.
fn grpc_timeout(md: &MetadataMap) -> Option<Duration> {
    let raw = md.get("grpc-timeout")?.to_str().ok()?;
    let unit = raw.get(raw.len().checked_sub(1)?..)?;
    let n: u64 = raw.get(..raw.len() - 1)?.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn upstream_request<T>(request: Request<T>) -> Request<T> {
    let (md, _, msg) = request.into_parts();
    Request::from_parts(end_to_end(md), Default::default(), msg)
}

fn downstream<T>(result: Result<Response<T>, Status>) -> Result<Response<T>, Status> {
    match result {
        Ok(resp) => {
            let (md, msg, _) = resp.into_parts();
            Ok(Response::from_parts(
                end_to_end(md),
                msg,
                Default::default(),
            ))
        }
        Err(status) => Err(downstream_status(status)),
    }
}

fn downstream_status(s: Status) -> Status {
    let md = end_to_end(s.metadata().clone());
    Status::with_details_and_metadata(s.code(), s.message(), s.details().to_vec().into(), md)
}

/// One call in progress. It reports itself when dropped, so a call that
/// never finishes (the caller hung up, or tonic dropped it at the deadline)
/// still gets its line.
struct InFlight {
    sink: Arc<dyn TraceSink>,
    method: &'static str,
    subject: String,
    at: Timestamp,
    start: Instant,
    deadline: Option<Duration>,
    outcome: Option<(Code, String)>,
}

impl InFlight {
    fn finish(&mut self, code: Code, message: impl Into<String>) {
        self.outcome = Some((code, message.into()));
    }

    /// A fresh record of the same call, for a stream's second event.
    fn again(&self) -> InFlight {
        InFlight {
            sink: Arc::clone(&self.sink),
            subject: self.subject.clone(),
            outcome: None,
            ..*self
        }
    }

    fn finish_with<T>(&mut self, result: &Result<T, Status>) {
        match result {
            Ok(_) => self.finish(Code::Ok, ""),
            Err(s) => self.finish(s.code(), s.message()),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let latency = self.start.elapsed();
        let (code, message) = self.outcome.take().unwrap_or_else(|| match self.deadline {
            Some(d) if latency >= d => (
                Code::DeadlineExceeded,
                format!("caller's deadline of {d:?} passed"),
            ),
            _ => (
                Code::Cancelled,
                "caller went away before the runtime answered".into(),
            ),
        });
        self.sink.record(&TraceEvent {
            at: self.at,
            method: self.method,
            subject: std::mem::take(&mut self.subject),
            code,
            message,
            latency,
        });
    }
}

/// A relayed server stream. Reports when it ends: cleanly, with the
/// runtime's error, or because the caller dropped it.
pub struct TracedStream<T> {
    inner: Streaming<T>,
    call: InFlight,
    messages: u64,
}

impl<T> Stream for TracedStream<T> {
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let item = match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(item) => item,
        };
        match &item {
            Some(Ok(_)) => this.messages += 1,
            Some(Err(s)) => this.call.finish(s.code(), s.message()),
            None => {
                let note = format!("stream ended after {} messages", this.messages);
                this.call.finish(Code::Ok, note);
            }
        }
        Poll::Ready(item.map(|r| r.map_err(downstream_status)))
    }
}

impl<T> Drop for TracedStream<T> {
    fn drop(&mut self) {
        let deadline_passed = self
            .call
            .deadline
            .is_some_and(|d| self.call.start.elapsed() >= d);
        if self.call.outcome.is_none() && !deadline_passed {
            let note = format!("caller closed the stream after {} messages", self.messages);
            self.call.finish(Code::Cancelled, note);
        }
    }
}

/// The proxy: implements both CRI services by forwarding to `upstream`.
#[derive(Clone)]
pub struct TraceProxy {
    upstream: Channel,
    sink: Arc<dyn TraceSink>,
}

impl TraceProxy {
    pub fn new(upstream: Channel, sink: Arc<dyn TraceSink>) -> Self {
        TraceProxy { upstream, sink }
    }

    /// Both gRPC services. [`serve`] runs them on a unix socket; they also
    /// fit `tonic::transport::Server::add_service` where tonic's `router`
    /// feature is on.
    pub fn into_services(
        self,
    ) -> (
        RuntimeServiceServer<TraceProxy>,
        ImageServiceServer<TraceProxy>,
    ) {
        let runtime = RuntimeServiceServer::new(self.clone())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE);
        let image = ImageServiceServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE);
        (runtime, image)
    }

    fn runtime(&self) -> RuntimeServiceClient<Channel> {
        RuntimeServiceClient::new(self.upstream.clone())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }

    fn image(&self) -> ImageServiceClient<Channel> {
        ImageServiceClient::new(self.upstream.clone())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }

    fn begin<T: Subject>(&self, method: &'static str, request: &Request<T>) -> InFlight {
        InFlight {
            sink: Arc::clone(&self.sink),
            method,
            subject: request.get_ref().subject(),
            at: Timestamp::now(),
            start: Instant::now(),
            deadline: grpc_timeout(request.metadata()),
            outcome: None,
        }
    }

    /// Forwards one unary call through `call` and reports it.
    async fn unary<Req, Resp, F, Fut>(
        &self,
        method: &'static str,
        request: Request<Req>,
        call: F,
    ) -> Result<Response<Resp>, Status>
    where
        Req: Subject,
        F: FnOnce(Request<Req>) -> Fut,
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        let mut inflight = self.begin(method, &request);
        let result = downstream(call(upstream_request(request)).await);
        inflight.finish_with(&result);
        result
    }

    /// Opens a server stream upstream: one event when it opens (or fails
    /// to), another when it ends.
    async fn stream<Req, Resp, F, Fut>(
        &self,
        method: &'static str,
        request: Request<Req>,
        call: F,
    ) -> Result<Response<TracedStream<Resp>>, Status>
    where
        Req: Subject,
        F: FnOnce(Request<Req>) -> Fut,
        Fut: Future<Output = Result<Response<Streaming<Resp>>, Status>>,
    {
        let mut opening = self.begin(method, &request);
        let (md, inner, ext) = match downstream(call(upstream_request(request)).await) {
            Ok(resp) => {
                opening.finish(Code::Ok, "stream opened");
                resp.into_parts()
            }
            Err(status) => {
                opening.finish(status.code(), status.message());
                return Err(status);
            }
        };
        let call = opening.again();
        drop(opening);
        let stream = TracedStream {
            inner,
            call,
            messages: 0,
        };
        Ok(Response::from_parts(end_to_end(md), stream, ext))
    }
}

/// Generates one service impl whose unary methods each forward through
/// [`TraceProxy::unary`] with the named client; `extra` holds hand-written
/// items (the streaming methods).
macro_rules! forward {
    (
        $service:ident via $client:ident {
            $($rpc:ident => $name:ident($req:ident) -> $resp:ident;)*
        }
        streams {
            $($srpc:ident => $sname:ident($sreq:ident) -> $sresp:ident as $assoc:ident;)*
        }
    ) => {
        #[tonic::async_trait]
        impl $service for TraceProxy {
            $(async fn $rpc(&self, request: Request<v1::$req>) -> Result<Response<v1::$resp>, Status> {
                let mut client = self.$client();
                self.unary(stringify!($name), request, move |r| async move { client.$rpc(r).await }).await
            })*
            $(
                type $assoc = TracedStream<v1::$sresp>;
                async fn $srpc(&self, request: Request<v1::$sreq>) -> Result<Response<Self::$assoc>, Status> {
                    let mut client = self.$client();
                    self.stream(stringify!($sname), request, move |r| async move { client.$srpc(r).await }).await
                }
            )*
        }
    };
}

forward! {
    RuntimeService via runtime {
        version => Version(VersionRequest) -> VersionResponse;
        run_pod_sandbox => RunPodSandbox(RunPodSandboxRequest) -> RunPodSandboxResponse;
        stop_pod_sandbox => StopPodSandbox(StopPodSandboxRequest) -> StopPodSandboxResponse;
        remove_pod_sandbox => RemovePodSandbox(RemovePodSandboxRequest) -> RemovePodSandboxResponse;
        pod_sandbox_status => PodSandboxStatus(PodSandboxStatusRequest) -> PodSandboxStatusResponse;
        list_pod_sandbox => ListPodSandbox(ListPodSandboxRequest) -> ListPodSandboxResponse;
        create_container => CreateContainer(CreateContainerRequest) -> CreateContainerResponse;
        start_container => StartContainer(StartContainerRequest) -> StartContainerResponse;
        stop_container => StopContainer(StopContainerRequest) -> StopContainerResponse;
        remove_container => RemoveContainer(RemoveContainerRequest) -> RemoveContainerResponse;
        list_containers => ListContainers(ListContainersRequest) -> ListContainersResponse;
        container_status => ContainerStatus(ContainerStatusRequest) -> ContainerStatusResponse;
        update_container_resources => UpdateContainerResources(UpdateContainerResourcesRequest) -> UpdateContainerResourcesResponse;
        reopen_container_log => ReopenContainerLog(ReopenContainerLogRequest) -> ReopenContainerLogResponse;
        exec_sync => ExecSync(ExecSyncRequest) -> ExecSyncResponse;
        exec => Exec(ExecRequest) -> ExecResponse;
        attach => Attach(AttachRequest) -> AttachResponse;
        port_forward => PortForward(PortForwardRequest) -> PortForwardResponse;
        container_stats => ContainerStats(ContainerStatsRequest) -> ContainerStatsResponse;
        list_container_stats => ListContainerStats(ListContainerStatsRequest) -> ListContainerStatsResponse;
        pod_sandbox_stats => PodSandboxStats(PodSandboxStatsRequest) -> PodSandboxStatsResponse;
        list_pod_sandbox_stats => ListPodSandboxStats(ListPodSandboxStatsRequest) -> ListPodSandboxStatsResponse;
        update_runtime_config => UpdateRuntimeConfig(UpdateRuntimeConfigRequest) -> UpdateRuntimeConfigResponse;
        status => Status(StatusRequest) -> StatusResponse;
        checkpoint_container => CheckpointContainer(CheckpointContainerRequest) -> CheckpointContainerResponse;
        list_metric_descriptors => ListMetricDescriptors(ListMetricDescriptorsRequest) -> ListMetricDescriptorsResponse;
        list_pod_sandbox_metrics => ListPodSandboxMetrics(ListPodSandboxMetricsRequest) -> ListPodSandboxMetricsResponse;
        runtime_config => RuntimeConfig(RuntimeConfigRequest) -> RuntimeConfigResponse;
        update_pod_sandbox_resources => UpdatePodSandboxResources(UpdatePodSandboxResourcesRequest) -> UpdatePodSandboxResourcesResponse;
    }
    streams {
        get_container_events => GetContainerEvents(GetEventsRequest) -> ContainerEventResponse as GetContainerEventsStream;
        stream_pod_sandboxes => StreamPodSandboxes(StreamPodSandboxesRequest) -> StreamPodSandboxesResponse as StreamPodSandboxesStream;
        stream_containers => StreamContainers(StreamContainersRequest) -> StreamContainersResponse as StreamContainersStream;
        stream_container_stats => StreamContainerStats(StreamContainerStatsRequest) -> StreamContainerStatsResponse as StreamContainerStatsStream;
        stream_pod_sandbox_stats => StreamPodSandboxStats(StreamPodSandboxStatsRequest) -> StreamPodSandboxStatsResponse as StreamPodSandboxStatsStream;
        stream_pod_sandbox_metrics => StreamPodSandboxMetrics(StreamPodSandboxMetricsRequest) -> StreamPodSandboxMetricsResponse as StreamPodSandboxMetricsStream;
    }
}

forward! {
    ImageService via image {
        list_images => ListImages(ListImagesRequest) -> ListImagesResponse;
        image_status => ImageStatus(ImageStatusRequest) -> ImageStatusResponse;
        pull_image => PullImage(PullImageRequest) -> PullImageResponse;
        remove_image => RemoveImage(RemoveImageRequest) -> RemoveImageResponse;
        image_fs_info => ImageFsInfo(ImageFsInfoRequest) -> ImageFsInfoResponse;
    }
    streams {
        stream_images => StreamImages(StreamImagesRequest) -> StreamImagesResponse as StreamImagesStream;
    }
}

/// Serves the proxy on `listen` until `shutdown` resolves. A stale socket
/// left by a crashed run is replaced; a live one (or a non-socket file) is
/// an error. The socket file is removed again on the way out.
pub async fn serve(
    listen: &Path,
    upstream: Channel,
    sink: Arc<dyn TraceSink>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), TraceError> {
    remove_stale_socket(listen).await?;
    let listener = tokio::net::UnixListener::bind(listen).map_err(|source| TraceError::Bind {
        path: listen.to_path_buf(),
        source,
    })?;
    let _cleanup = SocketFile::new(listen);
    tracing::info!(socket = %listen.display(), "CRI trace proxy listening");
    let (runtime, image) = TraceProxy::new(upstream, sink).into_services();
    tonic::transport::Server::builder()
        .serve_with_incoming_shutdown(
            CriRouter { runtime, image },
            tokio_stream::wrappers::UnixListenerStream::new(listener),
            shutdown,
        )
        .await
        .map_err(|source| TraceError::Serve {
            path: listen.to_path_buf(),
            source,
        })
}

/// Sends each request to the service its path names. Two fixed services do
/// not justify tonic's axum-based `router` feature.
#[derive(Clone)]
struct CriRouter {
    runtime: RuntimeServiceServer<TraceProxy>,
    image: ImageServiceServer<TraceProxy>,
}

impl tower::Service<http::Request<tonic::body::Body>> for CriRouter {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = <RuntimeServiceServer<TraceProxy> as tower::Service<
        http::Request<tonic::body::Body>,
    >>::Future;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Both generated services are always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let image = <ImageServiceServer<TraceProxy> as tonic::server::NamedService>::NAME;
        let is_image = req
            .uri()
            .path()
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(image))
            .is_some_and(|rest| rest.starts_with('/'));
        // Anything else, unknown services included, gets the runtime
        // service's own Unimplemented answer.
        if is_image {
            self.image.call(req)
        } else {
            self.runtime.call(req)
        }
    }
}

async fn remove_stale_socket(path: &Path) -> Result<(), TraceError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(TraceError::Inspect {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if !meta.file_type().is_socket() {
        return Err(TraceError::NotASocket {
            path: path.to_path_buf(),
        });
    }
    if tokio::net::UnixStream::connect(path).await.is_ok() {
        return Err(TraceError::SocketInUse {
            path: path.to_path_buf(),
        });
    }
    std::fs::remove_file(path).map_err(|source| TraceError::RemoveStale {
        path: path.to_path_buf(),
        source,
    })
}

/// Removes the socket we bound when dropped, unless another process has
/// since replaced it with its own.
struct SocketFile {
    path: PathBuf,
    inode: Option<(u64, u64)>,
}

impl SocketFile {
    fn new(path: &Path) -> Self {
        let inode = std::fs::symlink_metadata(path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        SocketFile {
            path: path.to_path_buf(),
            inode,
        }
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let now = std::fs::symlink_metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if now.is_some()
            && now == self.inode
            && let Err(e) = std::fs::remove_file(&self.path)
        {
            tracing::warn!(socket = %self.path.display(), error = %e, "cannot remove trace socket");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(
        method: &'static str,
        subject: &str,
        code: Code,
        message: &str,
        ms: f64,
    ) -> TraceEvent {
        TraceEvent {
            at: "2024-05-01T10:41:02.123456Z".parse().unwrap(),
            method,
            subject: subject.into(),
            code,
            message: message.into(),
            latency: Duration::from_secs_f64(ms / 1000.0),
        }
    }

    #[test]
    fn formats_like_the_examples() {
        let ev = event(
            "RunPodSandbox",
            "pod=default/web-node1 uid=1234",
            Code::Ok,
            "",
            245.3,
        );
        assert_eq!(
            format_event_in(&ev, &TimeZone::UTC),
            "10:41:02.123  RunPodSandbox          pod=default/web-node1 uid=1234  OK           245.3ms"
        );
        let ev = event(
            "ContainerStatus",
            "container=ffff",
            Code::NotFound,
            "container \"ffff\"\nnot found",
            0.4,
        );
        assert_eq!(
            format_event_in(&ev, &TimeZone::UTC),
            "10:41:02.123  ContainerStatus        container=ffff                  NotFound       0.4ms  container \"ffff\" not found"
        );
        let ev = event(
            "GetContainerEvents",
            "",
            Code::Ok,
            "stream ended after 3 messages",
            65_000.0,
        );
        assert_eq!(
            format_event_in(&ev, &TimeZone::UTC),
            "10:41:02.123  GetContainerEvents                                     OK             65.0s  stream ended after 3 messages"
        );
    }

    #[test]
    fn subjects_per_request_type() {
        let long = "7929cade07a7f1e2d3c4b5a6978812345678901234567890abcdefabcdefabcd";
        let run = v1::RunPodSandboxRequest {
            config: Some(v1::PodSandboxConfig {
                metadata: Some(v1::PodSandboxMetadata {
                    name: "web-node1".into(),
                    namespace: "default".into(),
                    uid: "1234".into(),
                    attempt: 0,
                }),
                ..Default::default()
            }),
            runtime_handler: String::new(),
        };
        assert_eq!(run.subject(), "pod=default/web-node1 uid=1234");
        let create = v1::CreateContainerRequest {
            pod_sandbox_id: long.into(),
            config: Some(v1::ContainerConfig {
                metadata: Some(v1::ContainerMetadata {
                    name: "web".into(),
                    attempt: 0,
                }),
                ..Default::default()
            }),
            sandbox_config: None,
        };
        assert_eq!(create.subject(), "pod=7929cade07a7 container=web");
        let start = v1::StartContainerRequest {
            container_id: long.into(),
        };
        assert_eq!(start.subject(), "container=7929cade07a7");
        let status = v1::ContainerStatusRequest {
            container_id: "ffff".into(),
            verbose: false,
        };
        assert_eq!(status.subject(), "container=ffff");
        let pull = v1::PullImageRequest {
            image: Some(v1::ImageSpec {
                image: "localhost:5000/busybox:latest".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(pull.subject(), "image=localhost:5000/busybox:latest");
        let list = v1::ListContainersRequest {
            filter: Some(v1::ContainerFilter {
                pod_sandbox_id: long.into(),
                state: Some(v1::ContainerStateValue {
                    state: v1::ContainerState::ContainerRunning as i32,
                }),
                label_selector: [("b".to_string(), "2".to_string()), ("a".into(), "1".into())]
                    .into_iter()
                    .collect(),
                ..Default::default()
            }),
        };
        assert_eq!(
            list.subject(),
            "pod=7929cade07a7 state=CONTAINER_RUNNING labels=a=1,b=2"
        );
        // An unknown enum value and missing optional parts never panic.
        let odd = v1::ListPodSandboxRequest {
            filter: Some(v1::PodSandboxFilter {
                state: Some(v1::PodSandboxStateValue { state: 99 }),
                ..Default::default()
            }),
        };
        assert_eq!(odd.subject(), "");
        assert_eq!(v1::RunPodSandboxRequest::default().subject(), "");
        assert_eq!(v1::ImageStatusRequest::default().subject(), "");
        assert_eq!(v1::VersionRequest::default().subject(), "");
        let exec = v1::ExecSyncRequest {
            container_id: "abc".into(),
            cmd: vec!["ls".into(), "-l".into()],
            timeout: 0,
        };
        assert_eq!(exec.subject(), "container=abc cmd=ls -l");
    }

    #[test]
    fn short_ids_only_shorten_hex() {
        assert_eq!(short("ffff"), "ffff");
        assert_eq!(short("0123456789abcdef0"), "0123456789ab");
        assert_eq!(
            short("a-very-long-container-name"),
            "a-very-long-container-name"
        );
        assert_eq!(short("ééééééééééééééé"), "ééééééééééééééé");
    }

    #[test]
    fn parses_grpc_timeout() {
        let mut md = MetadataMap::new();
        for (raw, want) in [
            ("2S", Some(Duration::from_secs(2))),
            ("150m", Some(Duration::from_millis(150))),
            ("1H", Some(Duration::from_secs(3600))),
            ("7n", Some(Duration::from_nanos(7))),
            ("S", None),
            ("12x", None),
            ("-1S", None),
        ] {
            md.insert("grpc-timeout", raw.parse().unwrap());
            assert_eq!(grpc_timeout(&md), want, "{raw}");
        }
        assert_eq!(grpc_timeout(&MetadataMap::new()), None);
    }

    #[test]
    fn hop_headers_are_dropped_others_kept() {
        let mut md = MetadataMap::new();
        md.insert("grpc-accept-encoding", "gzip".parse().unwrap());
        md.insert("content-type", "application/grpc".parse().unwrap());
        md.insert("grpc-timeout", "5S".parse().unwrap());
        md.insert("x-request-id", "42".parse().unwrap());
        let md = end_to_end(md);
        assert!(md.get("grpc-accept-encoding").is_none());
        assert!(md.get("content-type").is_none());
        assert_eq!(md.get("grpc-timeout").unwrap(), "5S");
        assert_eq!(md.get("x-request-id").unwrap(), "42");
    }

    #[test]
    fn unfinished_call_reports_cancelled_or_deadline() {
        let events = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = {
            let events = Arc::clone(&events);
            move |ev: &TraceEvent| events.lock().unwrap().push(ev.clone())
        };
        let sink: Arc<dyn TraceSink> = Arc::new(sink);
        for deadline in [None, Some(Duration::ZERO)] {
            drop(InFlight {
                sink: Arc::clone(&sink),
                method: "Version",
                subject: String::new(),
                at: Timestamp::now(),
                start: Instant::now(),
                deadline,
                outcome: None,
            });
        }
        let codes: Vec<Code> = events.lock().unwrap().iter().map(|e| e.code).collect();
        assert_eq!(codes, [Code::Cancelled, Code::DeadlineExceeded]);
    }
}
