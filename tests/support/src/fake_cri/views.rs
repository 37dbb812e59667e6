//! What the model shows: statuses, lists with the CRI filters, and stats.

use cri_proto::v1 as pb;
use pb::{ContainerState as Cs, PodSandboxState as Ps};

use super::images;
use super::model::{Container, Model, Sandbox, labels_match, resolve};
use super::shared::Script;

impl Model {
    pub fn sandbox_status(&self, s: &Sandbox) -> pb::PodSandboxStatus {
        let ip = if s.state == Ps::SandboxReady {
            s.ip.clone()
        } else {
            String::new()
        };
        pb::PodSandboxStatus {
            id: s.id.clone(),
            metadata: s.config.metadata.clone(),
            state: s.state as i32,
            created_at: s.created_at,
            network: Some(pb::PodSandboxNetworkStatus {
                ip,
                additional_ips: Vec::new(),
            }),
            linux: Some(pb::LinuxPodSandboxStatus {
                namespaces: Some(pb::Namespace {
                    options: s.namespace_options().cloned(),
                }),
            }),
            labels: s.config.labels.clone(),
            annotations: s.config.annotations.clone(),
            runtime_handler: s.runtime_handler.clone(),
        }
    }

    pub fn list_sandboxes(&self, filter: Option<&pb::PodSandboxFilter>) -> Vec<pb::PodSandbox> {
        let id = match filter.map(|f| f.id.as_str()) {
            Some(id) if !id.is_empty() => match resolve(&self.sandboxes, id) {
                Some(id) => Some(id),
                None => return Vec::new(),
            },
            _ => None,
        };
        self.sandboxes
            .values()
            .filter(|s| id.as_ref().is_none_or(|id| &s.id == id))
            .filter(|s| {
                filter
                    .and_then(|f| f.state.as_ref())
                    .is_none_or(|st| st.state == s.state as i32)
            })
            .filter(|s| filter.is_none_or(|f| labels_match(&s.config.labels, &f.label_selector)))
            .map(|s| pb::PodSandbox {
                id: s.id.clone(),
                metadata: s.config.metadata.clone(),
                state: s.state as i32,
                created_at: s.created_at,
                labels: s.config.labels.clone(),
                annotations: s.config.annotations.clone(),
                runtime_handler: s.runtime_handler.clone(),
            })
            .collect()
    }

    pub fn container_status(&self, c: &Container) -> pb::ContainerStatus {
        // As containerd: the image's tag and repo digest while the image
        // still exists, else what the config said and the image id.
        let present = self.present.contains(&c.image.name);
        let (image, image_ref) = if present {
            (c.image.name.clone(), c.image.digest_ref.clone())
        } else {
            (c.image_ref().to_string(), c.image.id.clone())
        };
        pb::ContainerStatus {
            id: c.id.clone(),
            metadata: c.config.metadata.clone(),
            state: c.state as i32,
            created_at: c.created_at,
            started_at: c.started_at,
            finished_at: c.finished_at,
            exit_code: c.exit_code,
            image: Some(pb::ImageSpec {
                image,
                ..Default::default()
            }),
            image_ref,
            reason: c.reason.clone(),
            message: c.message.clone(),
            labels: c.config.labels.clone(),
            annotations: c.config.annotations.clone(),
            mounts: c.config.mounts.clone(),
            log_path: c.log_path.clone(),
            resources: Some(pb::ContainerResources {
                linux: c.resources.clone(),
                windows: None,
            }),
            image_id: c.image.id.clone(),
            user: None,
            stop_signal: c.config.stop_signal,
        }
    }

    pub fn statuses_in(&self, sandbox_id: &str) -> Vec<pb::ContainerStatus> {
        self.containers
            .values()
            .filter(|c| c.sandbox_id == sandbox_id)
            .map(|c| self.container_status(c))
            .collect()
    }

    pub fn list_containers(&self, filter: Option<&pb::ContainerFilter>) -> Vec<pb::Container> {
        let id = match filter.map(|f| f.id.as_str()) {
            Some(id) if !id.is_empty() => match resolve(&self.containers, id) {
                Some(id) => Some(id),
                None => return Vec::new(),
            },
            _ => None,
        };
        let sandbox = match filter.map(|f| f.pod_sandbox_id.as_str()) {
            Some(s) if !s.is_empty() => match resolve(&self.sandboxes, s) {
                Some(s) => Some(s),
                None => return Vec::new(),
            },
            _ => None,
        };
        self.containers
            .values()
            .filter(|c| id.as_ref().is_none_or(|id| &c.id == id))
            .filter(|c| sandbox.as_ref().is_none_or(|s| &c.sandbox_id == s))
            .filter(|c| {
                filter
                    .and_then(|f| f.state.as_ref())
                    .is_none_or(|st| st.state == c.state as i32)
            })
            .filter(|c| filter.is_none_or(|f| labels_match(&c.config.labels, &f.label_selector)))
            .map(|c| {
                let status = self.container_status(c);
                pb::Container {
                    id: c.id.clone(),
                    pod_sandbox_id: c.sandbox_id.clone(),
                    metadata: c.config.metadata.clone(),
                    image: status.image,
                    image_ref: status.image_ref,
                    state: c.state as i32,
                    created_at: c.created_at,
                    labels: c.config.labels.clone(),
                    annotations: c.config.annotations.clone(),
                    image_id: c.image.id.clone(),
                }
            })
            .collect()
    }

    // ---- stats (all zeros) ----

    pub fn container_stats(&mut self, c_id: &str) -> Option<pb::ContainerStats> {
        let now = self.now();
        let c = self.containers.get(c_id)?;
        Some(pb::ContainerStats {
            attributes: Some(pb::ContainerAttributes {
                id: c.id.clone(),
                metadata: c.config.metadata.clone(),
                labels: c.config.labels.clone(),
                annotations: c.config.annotations.clone(),
            }),
            cpu: Some(pb::CpuUsage {
                timestamp: now,
                usage_core_nano_seconds: Some(pb::UInt64Value { value: 0 }),
                usage_nano_cores: Some(pb::UInt64Value { value: 0 }),
                psi: None,
            }),
            memory: Some(pb::MemoryUsage {
                timestamp: now,
                working_set_bytes: Some(pb::UInt64Value { value: 0 }),
                ..Default::default()
            }),
            writable_layer: Some(images::usage(now, 0, 0)),
            swap: None,
            io: None,
        })
    }

    /// Stats exist only for running containers (those with a task).
    pub fn running_in(&self, sandbox_id: Option<&str>) -> Vec<String> {
        self.containers
            .values()
            .filter(|c| c.state == Cs::ContainerRunning)
            .filter(|c| sandbox_id.is_none_or(|s| c.sandbox_id == s))
            .map(|c| c.id.clone())
            .collect()
    }

    pub fn sandbox_stats(&mut self, id: &str) -> Option<pb::PodSandboxStats> {
        let now = self.now();
        let running = self.running_in(Some(id));
        let containers = running
            .iter()
            .filter_map(|c| self.container_stats(c))
            .collect();
        let s = self.sandboxes.get(id)?;
        Some(pb::PodSandboxStats {
            attributes: Some(pb::PodSandboxAttributes {
                id: s.id.clone(),
                metadata: s.config.metadata.clone(),
                labels: s.config.labels.clone(),
                annotations: s.config.annotations.clone(),
            }),
            linux: Some(pb::LinuxPodSandboxStats {
                cpu: Some(pb::CpuUsage {
                    timestamp: now,
                    usage_core_nano_seconds: Some(pb::UInt64Value { value: 0 }),
                    usage_nano_cores: Some(pb::UInt64Value { value: 0 }),
                    psi: None,
                }),
                memory: Some(pb::MemoryUsage {
                    timestamp: now,
                    working_set_bytes: Some(pb::UInt64Value { value: 0 }),
                    ..Default::default()
                }),
                network: None,
                process: Some(pb::ProcessUsage {
                    timestamp: now,
                    process_count: Some(pb::UInt64Value { value: 0 }),
                }),
                containers,
                io: None,
            }),
            windows: None,
        })
    }

    /// Stats of the running containers the filter selects.
    pub fn list_container_stats(
        &mut self,
        filter: &pb::ContainerStatsFilter,
    ) -> Vec<pb::ContainerStats> {
        let running = Some(pb::ContainerStateValue {
            state: Cs::ContainerRunning as i32,
        });
        let listed: Vec<String> = self
            .list_containers(Some(&pb::ContainerFilter {
                id: filter.id.clone(),
                state: running,
                pod_sandbox_id: filter.pod_sandbox_id.clone(),
                label_selector: filter.label_selector.clone(),
            }))
            .into_iter()
            .map(|c| c.id)
            .collect();
        listed
            .iter()
            .filter_map(|id| self.container_stats(id))
            .collect()
    }

    /// Stats of the ready sandboxes (those with a pause task) the filter
    /// selects.
    pub fn list_sandbox_stats(
        &mut self,
        filter: &pb::PodSandboxStatsFilter,
    ) -> Vec<pb::PodSandboxStats> {
        let ready = Some(pb::PodSandboxStateValue {
            state: Ps::SandboxReady as i32,
        });
        let listed: Vec<String> = self
            .list_sandboxes(Some(&pb::PodSandboxFilter {
                id: filter.id.clone(),
                state: ready,
                label_selector: filter.label_selector.clone(),
            }))
            .into_iter()
            .map(|s| s.id)
            .collect();
        listed
            .iter()
            .filter_map(|id| self.sandbox_stats(id))
            .collect()
    }

    // ---- the runtime itself ----

    pub fn status_response(&self, script: &Script) -> pb::StatusResponse {
        let cond =
            |kind: &str, (status, reason, message): &(bool, String, String)| pb::RuntimeCondition {
                r#type: kind.into(),
                status: *status,
                reason: reason.clone(),
                message: message.clone(),
            };
        let handlers = self
            .handlers
            .iter()
            .map(|name| pb::RuntimeHandler {
                name: name.clone(),
                features: Some(pb::RuntimeHandlerFeatures {
                    recursive_read_only_mounts: true,
                    user_namespaces: true,
                }),
            })
            .collect();
        pb::StatusResponse {
            status: Some(pb::RuntimeStatus {
                conditions: vec![
                    cond("RuntimeReady", &script.runtime_ready),
                    cond("NetworkReady", &script.network_ready),
                ],
            }),
            info: Default::default(),
            runtime_handlers: handlers,
            features: Some(pb::RuntimeFeatures {
                supplemental_groups_policy: true,
                user_namespaces_host_network: false,
            }),
        }
    }
}
