//! The `RuntimeService` half of the fake.

use std::pin::Pin;
use std::sync::Arc;

use cri_proto::v1 as pb;
use cri_proto::v1::runtime_service_server::RuntimeService;
use pb::ContainerState as Cs;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::model::{container_not_found, state_name};
use super::shared::Shared;

pub(super) type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[derive(Clone)]
pub(super) struct Runtime(pub Arc<Shared>);

pub(super) fn unimplemented<T>(rpc: &str) -> Result<T, Status> {
    Err(Status::unimplemented(format!(
        "unknown method {rpc} for service runtime.v1.RuntimeService"
    )))
}

impl Runtime {
    async fn not_modelled<T>(&self, rpc: &'static str) -> Result<Response<T>, Status> {
        self.0
            .call(rpc, "", String::new(), async { unimplemented(rpc) })
            .await
    }
}

#[tonic::async_trait]
impl RuntimeService for Runtime {
    async fn version(
        &self,
        _r: Request<pb::VersionRequest>,
    ) -> Result<Response<pb::VersionResponse>, Status> {
        self.0
            .call("Version", "", String::new(), async {
                Ok(pb::VersionResponse {
                    version: "0.1.0".into(),
                    runtime_name: "containerd".into(),
                    runtime_version: "v2.1.0-berth-fake".into(),
                    runtime_api_version: "v1".into(),
                })
            })
            .await
    }

    async fn status(
        &self,
        _r: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        self.0
            .call("Status", "", String::new(), async {
                let w = self.0.world();
                Ok(w.model.status_response(&w.script))
            })
            .await
    }

    async fn runtime_config(
        &self,
        _r: Request<pb::RuntimeConfigRequest>,
    ) -> Result<Response<pb::RuntimeConfigResponse>, Status> {
        self.0
            .call("RuntimeConfig", "", String::new(), async {
                let driver = self.0.world().script.cgroup_driver;
                Ok(pb::RuntimeConfigResponse {
                    linux: Some(pb::LinuxRuntimeConfiguration {
                        cgroup_driver: driver as i32,
                    }),
                })
            })
            .await
    }

    async fn update_runtime_config(
        &self,
        r: Request<pb::UpdateRuntimeConfigRequest>,
    ) -> Result<Response<pb::UpdateRuntimeConfigResponse>, Status> {
        let r = r.into_inner();
        let cidr = r
            .runtime_config
            .and_then(|c| c.network_config)
            .map(|n| n.pod_cidr)
            .unwrap_or_default();
        self.0
            .call("UpdateRuntimeConfig", &cidr, String::new(), async {
                if !cidr.is_empty() {
                    self.0.update(|w| w.model.pod_cidr = cidr.clone());
                }
                Ok(pb::UpdateRuntimeConfigResponse {})
            })
            .await
    }

    async fn run_pod_sandbox(
        &self,
        r: Request<pb::RunPodSandboxRequest>,
    ) -> Result<Response<pb::RunPodSandboxResponse>, Status> {
        let r = r.into_inner();
        let meta = r
            .config
            .as_ref()
            .and_then(|c| c.metadata.clone())
            .unwrap_or_default();
        let key = format!("{}/{}", meta.namespace, meta.name);
        self.0
            .call("RunPodSandbox", &key, String::new(), async {
                let id = self.0.update(|w| w.model.run_sandbox(r))?;
                Ok(pb::RunPodSandboxResponse { pod_sandbox_id: id })
            })
            .await
    }

    async fn stop_pod_sandbox(
        &self,
        r: Request<pb::StopPodSandboxRequest>,
    ) -> Result<Response<pb::StopPodSandboxResponse>, Status> {
        let id = r.into_inner().pod_sandbox_id;
        self.0
            .call("StopPodSandbox", &id, String::new(), async {
                self.0.update(|w| w.model.stop_sandbox(&id))?;
                Ok(pb::StopPodSandboxResponse {})
            })
            .await
    }

    async fn remove_pod_sandbox(
        &self,
        r: Request<pb::RemovePodSandboxRequest>,
    ) -> Result<Response<pb::RemovePodSandboxResponse>, Status> {
        let id = r.into_inner().pod_sandbox_id;
        self.0
            .call("RemovePodSandbox", &id, String::new(), async {
                self.0.update(|w| w.model.remove_sandbox(&id))?;
                Ok(pb::RemovePodSandboxResponse {})
            })
            .await
    }

    async fn pod_sandbox_status(
        &self,
        r: Request<pb::PodSandboxStatusRequest>,
    ) -> Result<Response<pb::PodSandboxStatusResponse>, Status> {
        let id = r.into_inner().pod_sandbox_id;
        self.0
            .call("PodSandboxStatus", &id, String::new(), async {
                let mut w = self.0.world();
                let id = w.model.sandbox_id(&id)?;
                let timestamp = w.model.now();
                let s = &w.model.sandboxes[&id];
                Ok(pb::PodSandboxStatusResponse {
                    status: Some(w.model.sandbox_status(s)),
                    info: Default::default(),
                    containers_statuses: w.model.statuses_in(&id),
                    timestamp,
                })
            })
            .await
    }

    async fn list_pod_sandbox(
        &self,
        r: Request<pb::ListPodSandboxRequest>,
    ) -> Result<Response<pb::ListPodSandboxResponse>, Status> {
        let filter = r.into_inner().filter;
        self.0
            .call("ListPodSandbox", "", String::new(), async {
                let items = self.0.world().model.list_sandboxes(filter.as_ref());
                Ok(pb::ListPodSandboxResponse { items })
            })
            .await
    }

    async fn create_container(
        &self,
        r: Request<pb::CreateContainerRequest>,
    ) -> Result<Response<pb::CreateContainerResponse>, Status> {
        let r = r.into_inner();
        let name = r
            .config
            .as_ref()
            .and_then(|c| c.metadata.as_ref())
            .map(|m| m.name.clone())
            .unwrap_or_default();
        let detail = format!("pod={}", r.pod_sandbox_id);
        self.0
            .call("CreateContainer", &name, detail, async {
                let id = self.0.update(|w| w.model.create_container(r))?;
                Ok(pb::CreateContainerResponse { container_id: id })
            })
            .await
    }

    async fn start_container(
        &self,
        r: Request<pb::StartContainerRequest>,
    ) -> Result<Response<pb::StartContainerResponse>, Status> {
        let id = r.into_inner().container_id;
        self.0
            .call("StartContainer", &id, String::new(), async {
                self.0.update(|w| {
                    w.model.start_container(&id)?;
                    let id = w.model.container_id(&id)?;
                    let exit = w
                        .model
                        .containers
                        .get(&id)
                        .and_then(|c| w.script.exit_on_start(c));
                    if let Some(code) = exit {
                        w.model.exit(&id, code, None);
                    }
                    Ok::<_, Status>(())
                })?;
                Ok(pb::StartContainerResponse {})
            })
            .await
    }

    async fn stop_container(
        &self,
        r: Request<pb::StopContainerRequest>,
    ) -> Result<Response<pb::StopContainerResponse>, Status> {
        let r = r.into_inner();
        let detail = format!("timeout={}", r.timeout);
        self.0
            .call("StopContainer", &r.container_id, detail, async {
                self.stop(&r.container_id, r.timeout).await?;
                Ok(pb::StopContainerResponse {})
            })
            .await
    }

    async fn remove_container(
        &self,
        r: Request<pb::RemoveContainerRequest>,
    ) -> Result<Response<pb::RemoveContainerResponse>, Status> {
        let id = r.into_inner().container_id;
        self.0
            .call("RemoveContainer", &id, String::new(), async {
                self.0.update(|w| w.model.remove_container(&id));
                Ok(pb::RemoveContainerResponse {})
            })
            .await
    }

    async fn list_containers(
        &self,
        r: Request<pb::ListContainersRequest>,
    ) -> Result<Response<pb::ListContainersResponse>, Status> {
        let filter = r.into_inner().filter;
        self.0
            .call("ListContainers", "", String::new(), async {
                let containers = self.0.world().model.list_containers(filter.as_ref());
                Ok(pb::ListContainersResponse { containers })
            })
            .await
    }

    async fn container_status(
        &self,
        r: Request<pb::ContainerStatusRequest>,
    ) -> Result<Response<pb::ContainerStatusResponse>, Status> {
        let id = r.into_inner().container_id;
        self.0
            .call("ContainerStatus", &id, String::new(), async {
                let w = self.0.world();
                let c = w
                    .model
                    .container(&id)
                    .ok_or_else(|| container_not_found(&id))?;
                Ok(pb::ContainerStatusResponse {
                    status: Some(w.model.container_status(c)),
                    info: Default::default(),
                })
            })
            .await
    }

    async fn update_container_resources(
        &self,
        r: Request<pb::UpdateContainerResourcesRequest>,
    ) -> Result<Response<pb::UpdateContainerResourcesResponse>, Status> {
        let r = r.into_inner();
        self.0
            .call(
                "UpdateContainerResources",
                &r.container_id,
                String::new(),
                async {
                    self.0.update(|w| {
                        let id = w.model.container_id(&r.container_id)?;
                        let Some(c) = w.model.containers.get_mut(&id) else {
                            return Err(container_not_found(&id));
                        };
                        if !matches!(c.state, Cs::ContainerRunning | Cs::ContainerCreated) {
                            return Err(Status::unknown(format!(
                                "failed to update resources: container {id:?} is in {} state",
                                state_name(c.state)
                            )));
                        }
                        if r.linux.is_some() {
                            c.resources = r.linux.clone();
                        }
                        Ok(())
                    })?;
                    Ok(pb::UpdateContainerResourcesResponse {})
                },
            )
            .await
    }

    async fn reopen_container_log(
        &self,
        r: Request<pb::ReopenContainerLogRequest>,
    ) -> Result<Response<pb::ReopenContainerLogResponse>, Status> {
        let id = r.into_inner().container_id;
        self.0
            .call("ReopenContainerLog", &id, String::new(), async {
                let w = self.0.world();
                let c = w
                    .model
                    .container(&id)
                    .ok_or_else(|| container_not_found(&id))?;
                if c.state != Cs::ContainerRunning {
                    return Err(Status::unknown("container is not running"));
                }
                Ok(pb::ReopenContainerLogResponse {})
            })
            .await
    }

    async fn exec_sync(
        &self,
        r: Request<pb::ExecSyncRequest>,
    ) -> Result<Response<pb::ExecSyncResponse>, Status> {
        let r = r.into_inner();
        let id = r.container_id.clone();
        let detail = r.cmd.join(" ");
        self.0
            .call("ExecSync", &id, detail, self.exec_sync(r))
            .await
    }

    async fn container_stats(
        &self,
        r: Request<pb::ContainerStatsRequest>,
    ) -> Result<Response<pb::ContainerStatsResponse>, Status> {
        let id = r.into_inner().container_id;
        self.0
            .call("ContainerStats", &id, String::new(), async {
                let mut w = self.0.world();
                let id = w.model.container_id(&id)?;
                let stats = w.model.container_stats(&id);
                Ok(pb::ContainerStatsResponse { stats })
            })
            .await
    }

    async fn list_container_stats(
        &self,
        r: Request<pb::ListContainerStatsRequest>,
    ) -> Result<Response<pb::ListContainerStatsResponse>, Status> {
        let filter = r.into_inner().filter.unwrap_or_default();
        self.0
            .call("ListContainerStats", "", String::new(), async {
                let stats = self.0.world().model.list_container_stats(&filter);
                Ok(pb::ListContainerStatsResponse { stats })
            })
            .await
    }

    async fn pod_sandbox_stats(
        &self,
        r: Request<pb::PodSandboxStatsRequest>,
    ) -> Result<Response<pb::PodSandboxStatsResponse>, Status> {
        let id = r.into_inner().pod_sandbox_id;
        self.0
            .call("PodSandboxStats", &id, String::new(), async {
                let mut w = self.0.world();
                let id = w.model.sandbox_id(&id)?;
                let stats = w.model.sandbox_stats(&id);
                Ok(pb::PodSandboxStatsResponse { stats })
            })
            .await
    }

    async fn list_pod_sandbox_stats(
        &self,
        r: Request<pb::ListPodSandboxStatsRequest>,
    ) -> Result<Response<pb::ListPodSandboxStatsResponse>, Status> {
        let filter = r.into_inner().filter.unwrap_or_default();
        self.0
            .call("ListPodSandboxStats", "", String::new(), async {
                let stats = self.0.world().model.list_sandbox_stats(&filter);
                Ok(pb::ListPodSandboxStatsResponse { stats })
            })
            .await
    }

    type GetContainerEventsStream = BoxStream<pb::ContainerEventResponse>;

    async fn get_container_events(
        &self,
        _r: Request<pb::GetEventsRequest>,
    ) -> Result<Response<Self::GetContainerEventsStream>, Status> {
        self.0
            .call("GetContainerEvents", "", String::new(), async {
                if self.0.world().script.events_unimplemented {
                    return unimplemented("GetContainerEvents");
                }
                Ok(self.events())
            })
            .await
    }

    // The RPCs the fake does not model: logged, counted and open to
    // injected failures like the others, then Unimplemented.

    async fn exec(
        &self,
        _r: Request<pb::ExecRequest>,
    ) -> Result<Response<pb::ExecResponse>, Status> {
        self.not_modelled("Exec").await
    }

    async fn attach(
        &self,
        _r: Request<pb::AttachRequest>,
    ) -> Result<Response<pb::AttachResponse>, Status> {
        self.not_modelled("Attach").await
    }

    async fn port_forward(
        &self,
        _r: Request<pb::PortForwardRequest>,
    ) -> Result<Response<pb::PortForwardResponse>, Status> {
        self.not_modelled("PortForward").await
    }

    async fn checkpoint_container(
        &self,
        _r: Request<pb::CheckpointContainerRequest>,
    ) -> Result<Response<pb::CheckpointContainerResponse>, Status> {
        self.not_modelled("CheckpointContainer").await
    }

    async fn list_metric_descriptors(
        &self,
        _r: Request<pb::ListMetricDescriptorsRequest>,
    ) -> Result<Response<pb::ListMetricDescriptorsResponse>, Status> {
        self.not_modelled("ListMetricDescriptors").await
    }

    async fn list_pod_sandbox_metrics(
        &self,
        _r: Request<pb::ListPodSandboxMetricsRequest>,
    ) -> Result<Response<pb::ListPodSandboxMetricsResponse>, Status> {
        self.not_modelled("ListPodSandboxMetrics").await
    }

    async fn update_pod_sandbox_resources(
        &self,
        _r: Request<pb::UpdatePodSandboxResourcesRequest>,
    ) -> Result<Response<pb::UpdatePodSandboxResourcesResponse>, Status> {
        self.not_modelled("UpdatePodSandboxResources").await
    }

    type StreamPodSandboxesStream = BoxStream<pb::StreamPodSandboxesResponse>;

    async fn stream_pod_sandboxes(
        &self,
        _r: Request<pb::StreamPodSandboxesRequest>,
    ) -> Result<Response<Self::StreamPodSandboxesStream>, Status> {
        self.not_modelled("StreamPodSandboxes").await
    }

    type StreamContainersStream = BoxStream<pb::StreamContainersResponse>;

    async fn stream_containers(
        &self,
        _r: Request<pb::StreamContainersRequest>,
    ) -> Result<Response<Self::StreamContainersStream>, Status> {
        self.not_modelled("StreamContainers").await
    }

    type StreamContainerStatsStream = BoxStream<pb::StreamContainerStatsResponse>;

    async fn stream_container_stats(
        &self,
        _r: Request<pb::StreamContainerStatsRequest>,
    ) -> Result<Response<Self::StreamContainerStatsStream>, Status> {
        self.not_modelled("StreamContainerStats").await
    }

    type StreamPodSandboxStatsStream = BoxStream<pb::StreamPodSandboxStatsResponse>;

    async fn stream_pod_sandbox_stats(
        &self,
        _r: Request<pb::StreamPodSandboxStatsRequest>,
    ) -> Result<Response<Self::StreamPodSandboxStatsStream>, Status> {
        self.not_modelled("StreamPodSandboxStats").await
    }

    type StreamPodSandboxMetricsStream = BoxStream<pb::StreamPodSandboxMetricsResponse>;

    async fn stream_pod_sandbox_metrics(
        &self,
        _r: Request<pb::StreamPodSandboxMetricsRequest>,
    ) -> Result<Response<Self::StreamPodSandboxMetricsStream>, Status> {
        self.not_modelled("StreamPodSandboxMetrics").await
    }
}
