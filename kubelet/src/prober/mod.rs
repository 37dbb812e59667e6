//! The prober (the Go kubelet's `pkg/kubelet/prober`): one worker per probe
//! of each running container; results feed the runtime manager (liveness,
//! startup) and status (readiness, started).
//!
//! SKELETON: the API below is what the rest of berth calls; the probe
//! kinds and workers are filled in by the probes work (issue 4).

use std::sync::Arc;
use std::time::Duration;

use cri_client::RuntimeClient;
use cri_client::proto as pb;
use k8s_openapi::api::core::v1::{Container, HTTPGetAction, Pod};
use tokio::sync::mpsc;

use crate::kuberuntime::runtime_pod::RuntimePod;

/// A probe result changed for this pod UID: sync it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeUpdate {
    pub uid: String,
}

pub struct ProbeManager {
    client: RuntimeClient,
    #[allow(dead_code)]
    host_ip: String,
    #[allow(dead_code)]
    updates: mpsc::UnboundedSender<ProbeUpdate>,
}

impl ProbeManager {
    /// The manager and the stream of result changes (for the sync loop).
    pub fn new(
        client: RuntimeClient,
        host_ip: String,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<ProbeUpdate>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Arc::new(ProbeManager {
                client,
                host_ip,
                updates: tx,
            }),
            rx,
        )
    }

    /// Called after every sync: starts a worker for each probe of each
    /// running container instance and stops workers of instances gone.
    pub fn update_pod(self: &Arc<Self>, _pod: &Arc<Pod>, _rt: &RuntimePod, _pod_ip: &str) {}

    /// The pod is gone: stop its workers and forget its results.
    pub fn remove_pod(&self, _uid: &str) {}

    /// Readiness of a running instance; None when it has no readiness probe.
    pub fn readiness(&self, _uid: &str, _container_id: &str) -> Option<bool> {
        None
    }

    /// Whether the startup probe has succeeded; None when there is none.
    pub fn started(&self, _uid: &str, _container_id: &str) -> Option<bool> {
        None
    }

    /// Some(message) once the liveness or startup probe of this instance
    /// has failed failureThreshold times, e.g. "Liveness probe failed: HTTP
    /// probe failed with statuscode: 500": the container must be killed.
    pub fn kill_reason(&self, _uid: &str, _container_id: &str) -> Option<String> {
        None
    }

    /// Runs a command in the container (exec probes and hooks): Ok(output)
    /// on exit code 0, Err(message) otherwise.
    pub async fn run_exec(
        &self,
        container_id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<String, String> {
        let r = self
            .client
            .exec_sync(pb::ExecSyncRequest {
                container_id: container_id.to_string(),
                cmd: cmd.to_vec(),
                timeout: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
            })
            .await
            .map_err(|e| e.to_string())?;
        let mut out = String::from_utf8_lossy(&r.stdout).into_owned();
        out.push_str(&String::from_utf8_lossy(&r.stderr));
        if r.exit_code == 0 {
            Ok(out)
        } else {
            Err(format!(
                "command {cmd:?} exited with {}: {out}",
                r.exit_code
            ))
        }
    }

    /// An httpGet action (probes and hooks) against the pod: Ok(body) for
    /// a success status, Err(message) otherwise.
    pub async fn run_http_get(
        &self,
        _pod: &Pod,
        _container: &Container,
        _pod_ip: &str,
        _action: &HTTPGetAction,
        _timeout: Duration,
    ) -> Result<String, String> {
        Err("httpGet is not implemented yet".into())
    }
}
