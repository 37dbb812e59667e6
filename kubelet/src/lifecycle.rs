//! The handler runner (the Go kubelet's `pkg/kubelet/lifecycle`,
//! `handlers.go`): runs an exec or httpGet action against one container
//! instance. Lifecycle hooks (postStart, preStop, also sleep) go through
//! [`HandlerRunner::run_hook`]; the prober's exec and httpGet probes use the
//! same runner, so both reach containers the same way.

use std::time::Duration;

use cri_client::RuntimeClient;
use cri_client::proto as pb;
use k8s_openapi::api::core::v1::{Container, HTTPGetAction, LifecycleHandler, Pod};

use crate::probe::{Outcome, http};

/// Runs handlers against containers: ExecSync through the runtime, httpGet
/// through the shared HTTP prober.
pub struct HandlerRunner {
    pub client: RuntimeClient,
    pub http: http::HttpProber,
    /// Where httpGet handlers of hostNetwork pods (or pods without an IP) go.
    pub host_ip: String,
}

impl HandlerRunner {
    pub fn new(client: RuntimeClient, host_ip: String) -> Self {
        HandlerRunner {
            client,
            http: http::HttpProber::new(),
            host_ip,
        }
    }

    /// Runs a command in the container: Ok(output) on exit code 0,
    /// Err(message) otherwise.
    pub async fn exec(
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

    /// An httpGet action as a lifecycle hook sends it (User-Agent
    /// kube-lifecycle/1.36): Ok(body) for a status of 200-399 (a redirect
    /// to another host included), Err(message) otherwise.
    pub async fn http_get(
        &self,
        pod: &Pod,
        container: &Container,
        pod_ip: &str,
        action: &HTTPGetAction,
        timeout: Duration,
    ) -> Result<String, String> {
        let req = http::HttpRequest::new(action, container, "lifecycle")?;
        let host_network = pod.spec.as_ref().and_then(|s| s.host_network) == Some(true);
        let default_host = if host_network || pod_ip.is_empty() {
            self.host_ip.as_str()
        } else {
            pod_ip
        };
        let url = req.url(req.host.as_deref().unwrap_or(default_host));
        match self.http.probe(&req, url, timeout).await {
            Outcome::Success(b) | Outcome::Warning(b) => Ok(b),
            Outcome::Failure(m) => Err(m),
        }
    }
}

/// What a hook runs against.
pub struct HookTarget<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    pub container_id: &'a str,
    pub pod_ip: &'a str,
}

/// The Go kubelet's `format.Pod`: `name_namespace(uid)`, used in hook
/// failure messages.
fn format_pod(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or(""),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.uid.as_deref().unwrap_or("")
    )
}

/// A Go `%v` of a string slice: `[a b c]`.
fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// Runs one handler. `limit` bounds an httpGet (the Go kubelet's client has
/// no timeout; berth keeps a bound so a dead endpoint can't hold the pod
/// worker forever). Exec hooks run without a timeout, as in the Go kubelet
/// (ExecSync timeout 0); preStop callers bound the whole hook by the grace
/// period. Err is the message for the container's status.
pub async fn run(
    runner: &HandlerRunner,
    target: &HookTarget<'_>,
    handler: &LifecycleHandler,
    limit: Duration,
) -> Result<(), String> {
    let c = target.container;
    if let Some(exec) = &handler.exec {
        let cmd = exec.command.clone().unwrap_or_default();
        return runner
            .exec(target.container_id, &cmd, Duration::ZERO)
            .await
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "Exec lifecycle hook ({}) for Container {:?} in Pod {:?} failed - error: {e}",
                    go_list(&cmd),
                    c.name,
                    format_pod(target.pod)
                )
            });
    }
    if let Some(http) = &handler.http_get {
        return runner
            .http_get(target.pod, c, target.pod_ip, http, limit)
            .await
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "HTTP lifecycle hook ({}) for Container {:?} in Pod {:?} failed - error: {e}",
                    http.path.as_deref().unwrap_or(""),
                    c.name,
                    format_pod(target.pod)
                )
            });
    }
    if let Some(sleep) = &handler.sleep {
        let secs = u64::try_from(sleep.seconds).unwrap_or(0);
        tokio::time::sleep(Duration::from_secs(secs)).await;
        return Ok(());
    }
    // tcpSocket is accepted by the API for compatibility but never runs.
    Err(format!(
        "Cannot run handler: invalid handler: {}",
        if handler.tcp_socket.is_some() {
            "tcpSocket is not supported as a lifecycle handler"
        } else {
            "no action set"
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_pod_like_the_go_kubelet() {
        let pod: Pod = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "web", "namespace": "prod", "uid": "u1"}}),
        )
        .unwrap();
        assert_eq!(format_pod(&pod), "web_prod(u1)");
        assert_eq!(
            go_list(&["sh".into(), "-c".into(), "exit 3".into()]),
            "[sh -c exit 3]"
        );
    }
}
