//! Container lifecycle hooks (the Go kubelet's `pkg/kubelet/lifecycle`,
//! `handlers.go`): runs a postStart or preStop handler (exec, httpGet or
//! sleep) against one container instance.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod};

use crate::prober::ProbeManager;

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
    probes: &ProbeManager,
    target: &HookTarget<'_>,
    handler: &LifecycleHandler,
    limit: Duration,
) -> Result<(), String> {
    let c = target.container;
    if let Some(exec) = &handler.exec {
        let cmd = exec.command.clone().unwrap_or_default();
        return probes
            .run_exec(target.container_id, &cmd, Duration::ZERO)
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
        return probes
            .run_http_get(target.pod, c, target.pod_ip, http, limit)
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
