//! [`RuntimeClient`]: one typed async method per CRI RuntimeService and
//! ImageService RPC, with per-call deadlines and errors a user can act on.
//!
//! Every call is logged at debug level on the `berth::cri` target with its
//! duration and status code; `berth --trace-cri` turns that target on.

use std::future::Future;
use std::time::{Duration, Instant};

use cri_proto::v1 as pb;
use pb::image_service_client::ImageServiceClient;
use pb::runtime_service_client::RuntimeServiceClient;
use tokio::sync::OnceCell;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::endpoint::{self, Endpoint};
use crate::error::{Error, Result};

/// The tracing target every CRI call is logged on.
pub const TRACE_TARGET: &str = "berth::cri";

/// Deadlines for the three kinds of call.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// Connecting, and quick calls: lists, status, version (crictl's `-t`, 2 s).
    pub call: Duration,
    /// Calls that start or stop things: sandboxes, containers, image removal.
    /// The Go kubelet's runtimeRequestTimeout (2 min).
    pub lifecycle: Duration,
    /// PullImage; `None` means no deadline, as the Go kubelet.
    pub pull: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            call: Duration::from_secs(2),
            lifecycle: Duration::from_secs(120),
            pull: None,
        }
    }
}

/// A connected CRI client. Cheap to clone: clones share the HTTP/2 connection.
#[derive(Clone, Debug)]
pub struct RuntimeClient {
    endpoint: String,
    runtime: RuntimeServiceClient<Channel>,
    image: ImageServiceClient<Channel>,
    timeouts: Timeouts,
    /// "containerd 1.6.20", learnt lazily for Unimplemented errors.
    runtime_name: std::sync::Arc<OnceCell<String>>,
    observer: Option<std::sync::Arc<dyn CallObserver>>,
}

/// Sees every unary call as it completes: the CRI method (`RunPodSandbox`),
/// the status code and the latency. The kubelet's runtime operation
/// metrics hang here; it runs inline, so it must be quick.
pub trait CallObserver: Send + Sync + 'static {
    fn observe(&self, method: &'static str, code: Code, elapsed: Duration);
}

impl std::fmt::Debug for dyn CallObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallObserver")
    }
}

/// How long a call may take.
#[derive(Clone, Copy)]
enum Deadline {
    Call,
    Lifecycle,
    Pull,
    /// A call with a timeout of its own in the request (seconds; 0 = none),
    /// plus the lifecycle deadline on top for the runtime's own work.
    Plus(i64),
}

impl RuntimeClient {
    /// Connects to `endpoint`, or to the first default endpoint that answers.
    pub async fn connect(endpoint: Option<&str>, timeouts: Timeouts) -> Result<Self> {
        Self::connect_split(endpoint, None, timeouts).await
    }

    /// Like [`connect`](Self::connect), with a separate image service endpoint
    /// (crictl's `--image-endpoint`).
    pub async fn connect_split(
        endpoint: Option<&str>,
        image_endpoint: Option<&str>,
        timeouts: Timeouts,
    ) -> Result<Self> {
        let (ep, channel) = match endpoint {
            Some(s) => {
                let ep = Endpoint::parse(s)?;
                let ch = ep.connect(timeouts.call).await?;
                (ep, ch)
            }
            None => endpoint::connect_default(timeouts.call).await?,
        };
        let image_channel = match image_endpoint {
            Some(s) if Endpoint::parse(s)? != ep => {
                Endpoint::parse(s)?.connect(timeouts.call).await?
            }
            _ => channel.clone(),
        };
        Ok(Self::from_channels(
            ep.to_string(),
            channel,
            image_channel,
            timeouts,
        ))
    }

    /// Wraps already-open channels (used by the trace proxy and tests).
    pub fn from_channels(
        endpoint: String,
        runtime: Channel,
        image: Channel,
        timeouts: Timeouts,
    ) -> Self {
        // CRI messages can be large (ListContainers on a busy node, verbose
        // status); the Go kubelet allows 16 MiB, so do we.
        const MAX_MSG: usize = 16 * 1024 * 1024;
        RuntimeClient {
            endpoint,
            runtime: RuntimeServiceClient::new(runtime)
                .max_decoding_message_size(MAX_MSG)
                .max_encoding_message_size(MAX_MSG),
            image: ImageServiceClient::new(image)
                .max_decoding_message_size(MAX_MSG)
                .max_encoding_message_size(MAX_MSG),
            timeouts,
            runtime_name: Default::default(),
            observer: None,
        }
    }

    /// This client (and its clones) report every call to `observer`.
    pub fn with_observer(mut self, observer: std::sync::Arc<dyn CallObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The endpoint this client is connected to, as `unix:///path`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    fn deadline(&self, d: Deadline) -> Option<Duration> {
        match d {
            Deadline::Call => Some(self.timeouts.call),
            Deadline::Lifecycle => Some(self.timeouts.lifecycle.max(self.timeouts.call)),
            Deadline::Pull => self.timeouts.pull,
            Deadline::Plus(secs) if secs > 0 => Some(
                Duration::from_secs(secs as u64) + self.timeouts.lifecycle.max(self.timeouts.call),
            ),
            Deadline::Plus(_) => None,
        }
    }

    /// Runs one call with its deadline, logs it, and maps the status.
    async fn call<T, F>(&self, method: &'static str, deadline: Deadline, fut: F) -> Result<T>
    where
        F: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        let start = Instant::now();
        let limit = self.deadline(deadline);
        let result = match limit {
            Some(limit) => match tokio::time::timeout(limit, fut).await {
                Ok(r) => r,
                Err(_) => Err(Status::deadline_exceeded("client deadline")),
            },
            None => fut.await,
        };
        let code = result.as_ref().map_or_else(|s| s.code(), |_| Code::Ok);
        let elapsed = start.elapsed();
        tracing::debug!(target: TRACE_TARGET, method, ?code, ?elapsed, "CRI call");
        if let Some(o) = &self.observer {
            o.observe(method, code, elapsed);
        }
        match result {
            Ok(resp) => Ok(resp.into_inner()),
            Err(status) => Err(self.map_status(method, status, limit).await),
        }
    }

    async fn map_status(
        &self,
        method: &'static str,
        status: Status,
        limit: Option<Duration>,
    ) -> Error {
        match status.code() {
            Code::Unimplemented => Error::Unimplemented {
                method,
                runtime: self.runtime_name().await,
            },
            Code::DeadlineExceeded => Error::Timeout {
                method,
                timeout: limit.unwrap_or_default(),
            },
            Code::Unavailable => Error::Unavailable {
                method,
                endpoint: self.endpoint.clone(),
                message: status.message().to_string(),
            },
            code => Error::Rpc {
                method,
                code,
                message: status.message().to_string(),
            },
        }
    }

    /// "containerd 1.6.20", or the endpoint when the runtime won't say.
    async fn runtime_name(&self) -> String {
        self.runtime_name
            .get_or_init(|| async {
                let mut c = self.runtime.clone();
                let req = pb::VersionRequest::default();
                match tokio::time::timeout(self.timeouts.call, c.version(req)).await {
                    Ok(Ok(v)) => {
                        let v = v.into_inner();
                        format!("{} {}", v.runtime_name, v.runtime_version)
                    }
                    _ => format!("at {}", self.endpoint),
                }
            })
            .await
            .clone()
    }
}

/// Generates one typed method per server-streaming RPC. The stream has no
/// deadline: it lives as long as the caller keeps it. Runtimes that lack the
/// RPC (containerd 1.6 for all of these) give [`Error::Unimplemented`], and
/// callers fall back to the unary calls.
macro_rules! streaming {
    ($( $svc:ident $fn:ident $name:literal ($req:ident) -> $resp:ident; )*) => {
        impl RuntimeClient {
            $(
                #[doc = concat!("CRI `", $name, "` (server-streaming).")]
                pub async fn $fn(&self, req: pb::$req) -> Result<tonic::codec::Streaming<pb::$resp>> {
                    let mut client = self.$svc.clone();
                    self.call($name, Deadline::Pull, async move { client.$fn(req).await }).await
                }
            )*
        }
    };
}

streaming! {
    runtime get_container_events "GetContainerEvents" (GetEventsRequest) -> ContainerEventResponse;
    runtime stream_pod_sandboxes "StreamPodSandboxes" (StreamPodSandboxesRequest) -> StreamPodSandboxesResponse;
    runtime stream_containers "StreamContainers" (StreamContainersRequest) -> StreamContainersResponse;
    runtime stream_container_stats "StreamContainerStats" (StreamContainerStatsRequest) -> StreamContainerStatsResponse;
    runtime stream_pod_sandbox_stats "StreamPodSandboxStats" (StreamPodSandboxStatsRequest) -> StreamPodSandboxStatsResponse;
    runtime stream_pod_sandbox_metrics "StreamPodSandboxMetrics" (StreamPodSandboxMetricsRequest) -> StreamPodSandboxMetricsResponse;
    image stream_images "StreamImages" (StreamImagesRequest) -> StreamImagesResponse;
}

/// Generates one typed method per unary RPC.
macro_rules! unary {
    ($( $svc:ident $fn:ident $name:literal ($req:ident) -> $resp:ident, $deadline:expr; )*) => {
        impl RuntimeClient {
            $(
                #[doc = concat!("CRI `", $name, "`.")]
                pub async fn $fn(&self, req: pb::$req) -> Result<pb::$resp> {
                    #[allow(unused_variables)]
                    let deadline: Deadline = {
                        let req = &req;
                        $deadline(req)
                    };
                    let mut client = self.$svc.clone();
                    let mut request = tonic::Request::new(req);
                    if let Some(limit) = self.deadline(deadline) {
                        request.set_timeout(limit);
                    }
                    self.call($name, deadline, async move { client.$fn(request).await }).await
                }
            )*
        }
    };
}

fn quick<T>(_: &T) -> Deadline {
    Deadline::Call
}
fn lifecycle<T>(_: &T) -> Deadline {
    Deadline::Lifecycle
}

unary! {
    runtime version "Version" (VersionRequest) -> VersionResponse, quick;
    runtime run_pod_sandbox "RunPodSandbox" (RunPodSandboxRequest) -> RunPodSandboxResponse, lifecycle;
    runtime stop_pod_sandbox "StopPodSandbox" (StopPodSandboxRequest) -> StopPodSandboxResponse, lifecycle;
    runtime remove_pod_sandbox "RemovePodSandbox" (RemovePodSandboxRequest) -> RemovePodSandboxResponse, lifecycle;
    runtime pod_sandbox_status "PodSandboxStatus" (PodSandboxStatusRequest) -> PodSandboxStatusResponse, quick;
    runtime list_pod_sandbox "ListPodSandbox" (ListPodSandboxRequest) -> ListPodSandboxResponse, quick;
    runtime create_container "CreateContainer" (CreateContainerRequest) -> CreateContainerResponse, lifecycle;
    runtime start_container "StartContainer" (StartContainerRequest) -> StartContainerResponse, lifecycle;
    runtime stop_container "StopContainer" (StopContainerRequest) -> StopContainerResponse,
        |r: &pb::StopContainerRequest| Deadline::Plus(r.timeout.max(1));
    runtime remove_container "RemoveContainer" (RemoveContainerRequest) -> RemoveContainerResponse, lifecycle;
    runtime list_containers "ListContainers" (ListContainersRequest) -> ListContainersResponse, quick;
    runtime container_status "ContainerStatus" (ContainerStatusRequest) -> ContainerStatusResponse, quick;
    runtime update_container_resources "UpdateContainerResources" (UpdateContainerResourcesRequest) -> UpdateContainerResourcesResponse, lifecycle;
    runtime reopen_container_log "ReopenContainerLog" (ReopenContainerLogRequest) -> ReopenContainerLogResponse, lifecycle;
    runtime exec_sync "ExecSync" (ExecSyncRequest) -> ExecSyncResponse,
        |r: &pb::ExecSyncRequest| Deadline::Plus(r.timeout);
    runtime exec "Exec" (ExecRequest) -> ExecResponse, quick;
    runtime attach "Attach" (AttachRequest) -> AttachResponse, quick;
    runtime port_forward "PortForward" (PortForwardRequest) -> PortForwardResponse, quick;
    runtime container_stats "ContainerStats" (ContainerStatsRequest) -> ContainerStatsResponse, quick;
    runtime list_container_stats "ListContainerStats" (ListContainerStatsRequest) -> ListContainerStatsResponse, quick;
    runtime pod_sandbox_stats "PodSandboxStats" (PodSandboxStatsRequest) -> PodSandboxStatsResponse, quick;
    runtime list_pod_sandbox_stats "ListPodSandboxStats" (ListPodSandboxStatsRequest) -> ListPodSandboxStatsResponse, quick;
    runtime update_runtime_config "UpdateRuntimeConfig" (UpdateRuntimeConfigRequest) -> UpdateRuntimeConfigResponse, quick;
    runtime status "Status" (StatusRequest) -> StatusResponse, quick;
    runtime checkpoint_container "CheckpointContainer" (CheckpointContainerRequest) -> CheckpointContainerResponse,
        |r: &pb::CheckpointContainerRequest| Deadline::Plus(r.timeout);
    runtime list_metric_descriptors "ListMetricDescriptors" (ListMetricDescriptorsRequest) -> ListMetricDescriptorsResponse, quick;
    runtime list_pod_sandbox_metrics "ListPodSandboxMetrics" (ListPodSandboxMetricsRequest) -> ListPodSandboxMetricsResponse, quick;
    runtime runtime_config "RuntimeConfig" (RuntimeConfigRequest) -> RuntimeConfigResponse, quick;
    runtime update_pod_sandbox_resources "UpdatePodSandboxResources" (UpdatePodSandboxResourcesRequest) -> UpdatePodSandboxResourcesResponse, lifecycle;
    image list_images "ListImages" (ListImagesRequest) -> ListImagesResponse, quick;
    image image_status "ImageStatus" (ImageStatusRequest) -> ImageStatusResponse, quick;
    image pull_image "PullImage" (PullImageRequest) -> PullImageResponse, |_: &pb::PullImageRequest| Deadline::Pull;
    image remove_image "RemoveImage" (RemoveImageRequest) -> RemoveImageResponse, lifecycle;
    image image_fs_info "ImageFsInfo" (ImageFsInfoRequest) -> ImageFsInfoResponse, quick;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(timeouts: Timeouts) -> RuntimeClient {
        // A lazily-connecting channel; these tests never send a request.
        let ch = tonic::transport::Endpoint::from_static("http://localhost").connect_lazy();
        RuntimeClient::from_channels("unix:///nonexistent".into(), ch.clone(), ch, timeouts)
    }

    #[tokio::test]
    async fn deadlines_follow_the_kind_of_call() {
        let c = client(Timeouts::default());
        assert_eq!(c.deadline(Deadline::Call), Some(Duration::from_secs(2)));
        assert_eq!(
            c.deadline(Deadline::Lifecycle),
            Some(Duration::from_secs(120))
        );
        assert_eq!(c.deadline(Deadline::Pull), None);
        assert_eq!(
            c.deadline(Deadline::Plus(10)),
            Some(Duration::from_secs(130))
        );
        // ExecSync with timeout 0 means "no timeout" in CRI.
        assert_eq!(c.deadline(Deadline::Plus(0)), None);
        // A larger --timeout than the lifecycle deadline wins.
        let c = client(Timeouts {
            call: Duration::from_secs(300),
            ..Timeouts::default()
        });
        assert_eq!(
            c.deadline(Deadline::Lifecycle),
            Some(Duration::from_secs(300))
        );
    }
}
