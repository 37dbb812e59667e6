//! The handler runner (the Go kubelet's `pkg/kubelet/lifecycle`,
//! `handlers.go`): runs an exec or httpGet action against one container
//! instance. Lifecycle hooks (postStart, preStop, also sleep) go through
//! [`HandlerRunner::run_hook`]; the prober's exec and httpGet probes use the
//! same runner, so both reach containers the same way.
//!
//! [`predicate`] is the pod admission of `predicate.go`.

pub mod predicate;

use std::time::Duration;

use cri_client::RuntimeClient;
use cri_client::proto as pb;
use k8s_openapi::api::core::v1::{Container, HTTPGetAction, LifecycleHandler, Pod};

use crate::probe::{Outcome, http};

/// Why a handler's action failed ([`HandlerRunner::exec`],
/// [`HandlerRunner::http_get`]).
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The runtime could not run the command.
    #[error(transparent)]
    Runtime(#[from] cri_client::Error),
    #[error("command {command:?} exited with {exit_code}: {output}")]
    ExitCode {
        command: Vec<String>,
        exit_code: i32,
        /// stdout then stderr.
        output: String,
    },
    #[error(transparent)]
    Request(#[from] http::RequestError),
    /// The GET failed: a transport error or a status of 400 or more, in
    /// the HTTP prober's words.
    #[error("{0}")]
    HttpFailed(String),
}

/// Why a lifecycle hook failed, worded as the Go kubelet words it: the
/// message of a PostStartHookError and of the hook's log line.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error(
        "Exec lifecycle hook ({}) for Container {container:?} in Pod {pod:?} failed - error: {source}",
        go_list(.command)
    )]
    Exec {
        command: Vec<String>,
        container: String,
        /// The pod as Go's `format.Pod` writes it.
        pod: String,
        #[source]
        source: HandlerError,
    },
    #[error(
        "HTTP lifecycle hook ({path}) for Container {container:?} in Pod {pod:?} failed - error: {source}"
    )]
    Http {
        path: String,
        container: String,
        /// The pod as Go's `format.Pod` writes it.
        pod: String,
        #[source]
        source: HandlerError,
    },
    #[error("Cannot run handler: invalid handler: {0}")]
    InvalidHandler(&'static str),
}

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
    /// Err otherwise.
    pub async fn exec(
        &self,
        container_id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<String, HandlerError> {
        let r = self
            .client
            .exec_sync(pb::ExecSyncRequest {
                container_id: container_id.to_string(),
                cmd: cmd.to_vec(),
                timeout: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
            })
            .await?;
        let mut out = String::from_utf8_lossy(&r.stdout).into_owned();
        out.push_str(&String::from_utf8_lossy(&r.stderr));
        if r.exit_code == 0 {
            Ok(out)
        } else {
            Err(HandlerError::ExitCode {
                command: cmd.to_vec(),
                exit_code: r.exit_code,
                output: out,
            })
        }
    }

    /// An httpGet action as a lifecycle hook sends it (User-Agent
    /// kube-lifecycle/1.36): Ok(body) for a status of 200-399 (a redirect
    /// to another host included), Err otherwise.
    pub async fn http_get(
        &self,
        pod: &Pod,
        container: &Container,
        pod_ip: &str,
        action: &HTTPGetAction,
        timeout: Duration,
    ) -> Result<String, HandlerError> {
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
            Outcome::Failure(m) => Err(HandlerError::HttpFailed(m)),
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
/// period. Err's text is the message for the container's status.
pub async fn run(
    runner: &HandlerRunner,
    target: &HookTarget<'_>,
    handler: &LifecycleHandler,
    limit: Duration,
) -> Result<(), HookError> {
    let c = target.container;
    if let Some(exec) = &handler.exec {
        let cmd = exec.command.clone().unwrap_or_default();
        return runner
            .exec(target.container_id, &cmd, Duration::ZERO)
            .await
            .map(|_| ())
            .map_err(|source| HookError::Exec {
                command: cmd,
                container: c.name.clone(),
                pod: format_pod(target.pod),
                source,
            });
    }
    if let Some(http) = &handler.http_get {
        return runner
            .http_get(target.pod, c, target.pod_ip, http, limit)
            .await
            .map(|_| ())
            .map_err(|source| HookError::Http {
                path: http.path.clone().unwrap_or_default(),
                container: c.name.clone(),
                pod: format_pod(target.pod),
                source,
            });
    }
    if let Some(sleep) = &handler.sleep {
        let secs = u64::try_from(sleep.seconds).unwrap_or(0);
        tokio::time::sleep(Duration::from_secs(secs)).await;
        return Ok(());
    }
    // tcpSocket is accepted by the API for compatibility but never runs.
    Err(HookError::InvalidHandler(if handler.tcp_socket.is_some() {
        "tcpSocket is not supported as a lifecycle handler"
    } else {
        "no action set"
    }))
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

    #[test]
    fn hook_errors_read_as_the_go_kubelet_writes_them() {
        let cmd: Vec<String> = ["sh", "-c", "exit 3"].map(String::from).to_vec();
        let exec = HookError::Exec {
            command: cmd.clone(),
            container: "bad".into(),
            pod: "web_prod(u1)".into(),
            source: HandlerError::ExitCode {
                command: cmd,
                exit_code: 3,
                output: "broken-3\n".into(),
            },
        };
        assert_eq!(
            exec.to_string(),
            "Exec lifecycle hook ([sh -c exit 3]) for Container \"bad\" in Pod \"web_prod(u1)\" \
             failed - error: command [\"sh\", \"-c\", \"exit 3\"] exited with 3: broken-3\n"
        );
        let http = HookError::Http {
            path: "/started".into(),
            container: "web".into(),
            pod: "web_prod(u1)".into(),
            source: HandlerError::HttpFailed("HTTP probe failed with statuscode: 500".into()),
        };
        assert_eq!(
            http.to_string(),
            "HTTP lifecycle hook (/started) for Container \"web\" in Pod \"web_prod(u1)\" \
             failed - error: HTTP probe failed with statuscode: 500"
        );
    }

    #[tokio::test]
    async fn handlers_that_cannot_run_fail_without_calling_the_runtime() {
        // Never connects: none of these handlers reaches the runtime.
        let ch = tonic::transport::Endpoint::from_static("http://localhost").connect_lazy();
        let client =
            RuntimeClient::from_channels("test".into(), ch.clone(), ch, Default::default());
        let runner = HandlerRunner::new(client, "192.0.2.10".into());
        let pod: Pod = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "web", "namespace": "prod", "uid": "u1"}}),
        )
        .unwrap();
        let container = Container {
            name: "web".into(),
            ..Default::default()
        };
        let target = HookTarget {
            pod: &pod,
            container: &container,
            container_id: "c1",
            pod_ip: "10.0.0.1",
        };
        let run_hook = |handler: serde_json::Value| {
            let handler: LifecycleHandler = serde_json::from_value(handler).unwrap();
            let target = &target;
            let runner = &runner;
            async move {
                run(runner, target, &handler, Duration::from_secs(1))
                    .await
                    .unwrap_err()
                    .to_string()
            }
        };
        assert_eq!(
            run_hook(serde_json::json!({})).await,
            "Cannot run handler: invalid handler: no action set"
        );
        assert_eq!(
            run_hook(serde_json::json!({"tcpSocket": {"port": 80}})).await,
            "Cannot run handler: invalid handler: tcpSocket is not supported as a lifecycle handler"
        );
        assert_eq!(
            run_hook(serde_json::json!({"httpGet": {"path": "/x", "port": "nope"}})).await,
            "HTTP lifecycle hook (/x) for Container \"web\" in Pod \"web_prod(u1)\" failed - \
             error: port \"nope\" not found in the ports of container \"web\""
        );
        assert_eq!(
            run_hook(serde_json::json!({"httpGet": {"scheme": "FTP", "port": 80}})).await,
            "HTTP lifecycle hook () for Container \"web\" in Pod \"web_prod(u1)\" failed - \
             error: httpGet.scheme \"ftp\" is not HTTP or HTTPS"
        );
    }
}
