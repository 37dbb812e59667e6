//! The kubelet API's container streams, as Go's `pkg/kubelet/server`
//! serves them:
//!
//! | route | CRI call | then |
//! |---|---|---|
//! | `GET/POST /exec/{ns}/{pod}[/{uid}]/{container}?command=…&input=1&output=1&error=1&tty=1` | Exec | [`proxy_stream`] |
//! | `GET/POST /attach/{ns}/{pod}[/{uid}]/{container}?input=1&output=1…` | Attach | [`proxy_stream`] |
//! | `GET/POST /portForward/{ns}/{pod}[/{uid}]` (`?port=N` over WebSocket) | PortForward | [`proxy_stream`] |
//! | `POST /run/{ns}/{pod}[/{uid}]/{container}?cmd=…` | ExecSync | stdout then stderr as the body |
//!
//! `kubectl exec`, `attach`, `port-forward` and `cp` reach these through
//! the apiserver, which speaks SPDY to the kubelet; the runtime's streaming
//! server (containerd's speaks SPDY and WebSocket v4) does the protocol
//! work and the kubelet relays the bytes.
//!
//! The pod is looked up by namespace and name among the pods the kubelet
//! runs (404 "pod does not exist"), the container among the runtime's
//! running containers of that pod (500 `container not found ("name")`, as
//! Go answers). An attach's TTY follows the container's spec, as in Go: a
//! running process's terminal cannot change. The stream options accept
//! `1` (what the apiserver sends) and also `true`.

use std::sync::Arc;

use cri_client::RuntimeClient;
use cri_client::proto as pb;
use futures_util::future::BoxFuture;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::api::{Body, Handler, reply};
use super::logs::request::{check_label, check_subdomain, echo, segment};
use super::proxy::{is_upgrade_request, proxy_stream};
use crate::container::PodCache;
use crate::status::StatusManager;

/// The pod (and container) a request names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub namespace: String,
    pub pod: String,
    /// The pod UID from the path's optional segment.
    pub uid: Option<String>,
    /// Empty for `/portForward`.
    pub container: String,
}

impl Target {
    fn describe(&self) -> String {
        if self.container.is_empty() {
            format!("{}/{}", self.namespace, self.pod)
        } else {
            format!("{}/{}/{}", self.namespace, self.pod, self.container)
        }
    }
}

/// The streams a client asked for (Go's `remotecommand.Options`), from the
/// query parameters `input`, `output`, `error` and `tty` (the names the
/// apiserver uses towards kubelets; a pod's `exec` subresource calls them
/// `stdin`, `stdout`, `stderr`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// Why a stream could not be set up. [`StreamingError::status`] is the
/// HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamingError {
    #[error("{0}")]
    BadRequest(String),
    #[error("pod does not exist")]
    PodNotFound,
    /// The pod exists but the runtime has no running sandbox for it.
    #[error("pod not found ({0:?})")]
    PodNotRunning(String),
    #[error("container not found ({0:?})")]
    ContainerNotFound(String),
    /// The runtime refused; the gRPC code picks the status, as Go's
    /// `streaming.WriteError` does.
    #[error("{message}")]
    Runtime { code: tonic::Code, message: String },
}

impl StreamingError {
    pub fn status(&self) -> StatusCode {
        match self {
            StreamingError::BadRequest(_) => StatusCode::BAD_REQUEST,
            StreamingError::PodNotFound => StatusCode::NOT_FOUND,
            StreamingError::PodNotRunning(_) | StreamingError::ContainerNotFound(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            StreamingError::Runtime { code, .. } => match code {
                tonic::Code::NotFound => StatusCode::NOT_FOUND,
                tonic::Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
                tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
                tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                tonic::Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }
}

impl From<cri_client::Error> for StreamingError {
    fn from(e: cri_client::Error) -> Self {
        StreamingError::Runtime {
            code: e.code().unwrap_or(tonic::Code::Unknown),
            message: e.to_string(),
        }
    }
}

/// What the handlers need from the kubelet: the runtime's streaming URLs
/// for a pod's containers. [`CriStreaming`] in berth; a fake in tests.
pub trait StreamingRuntime: Send + Sync + 'static {
    fn get_exec<'a>(
        &'a self,
        target: &'a Target,
        cmd: Vec<String>,
        opts: StreamOptions,
    ) -> BoxFuture<'a, Result<String, StreamingError>>;

    fn get_attach<'a>(
        &'a self,
        target: &'a Target,
        opts: StreamOptions,
    ) -> BoxFuture<'a, Result<String, StreamingError>>;

    fn get_port_forward<'a>(
        &'a self,
        target: &'a Target,
        ports: Vec<i32>,
    ) -> BoxFuture<'a, Result<String, StreamingError>>;

    /// Runs `cmd` to completion: stdout followed by stderr, as Go's
    /// `RunInContainer`.
    fn run_in_container<'a>(
        &'a self,
        target: &'a Target,
        cmd: Vec<String>,
    ) -> BoxFuture<'a, Result<Vec<u8>, StreamingError>>;
}

/// The four routes' handlers, keyed by prefix, for [`super::api::KubeletApi::route`].
pub fn handlers(runtime: Arc<dyn StreamingRuntime>) -> Vec<(&'static str, Handler)> {
    [Kind::Exec, Kind::Attach, Kind::PortForward, Kind::Run]
        .into_iter()
        .map(|kind| {
            let runtime = runtime.clone();
            let h: Handler = Arc::new(move |req| {
                let runtime = runtime.clone();
                Box::pin(async move { serve(kind, runtime.as_ref(), req).await })
            });
            (kind.prefix(), h)
        })
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Exec,
    Attach,
    PortForward,
    Run,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Exec => "/exec/",
            Kind::Attach => "/attach/",
            Kind::PortForward => "/portForward/",
            Kind::Run => "/run/",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Exec => "exec",
            Kind::Attach => "attach",
            Kind::PortForward => "port-forward",
            Kind::Run => "run",
        }
    }
}

fn text(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response<Body> {
    reply(status, "text/plain; charset=utf-8", body)
}

async fn serve(
    kind: Kind,
    runtime: &dyn StreamingRuntime,
    req: Request<Incoming>,
) -> Response<Body> {
    let allowed = match kind {
        Kind::Run => req.method() == Method::POST,
        _ => req.method() == Method::GET || req.method() == Method::POST,
    };
    if !allowed {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} is not allowed on {}\n", req.method(), kind.prefix()),
        );
    }
    match prepare(kind, runtime, &req).await {
        Ok(Prepared::Stream { url, what }) => proxy_stream(req, &url, what).await,
        Ok(Prepared::Output(out)) => reply(StatusCode::OK, "application/json", out),
        Err(e) => {
            tracing::debug!(path = req.uri().path(), "kubelet API {}: {e}", kind.name());
            text(e.status(), format!("{e}\n"))
        }
    }
}

enum Prepared {
    Stream { url: String, what: String },
    Output(Vec<u8>),
}

async fn prepare(
    kind: Kind,
    runtime: &dyn StreamingRuntime,
    req: &Request<Incoming>,
) -> Result<Prepared, StreamingError> {
    let target = parse_path(kind, req.uri().path())?;
    let query = Query::parse(req.uri().query().unwrap_or(""));
    let what = format!("{} {}", kind.name(), target.describe());
    let url = match kind {
        Kind::Exec => {
            let opts = query.stream_options()?;
            let cmd = query.all("command");
            if cmd.is_empty() {
                return Err(StreamingError::BadRequest(
                    "no command given: add command=… to the query".into(),
                ));
            }
            tracing::info!(pod = %format!("{}/{}", target.namespace, target.pod), container = %target.container, ?cmd, "exec");
            runtime.get_exec(&target, cmd, opts).await?
        }
        Kind::Attach => runtime.get_attach(&target, query.stream_options()?).await?,
        Kind::PortForward => {
            let ports = if is_websocket(req) {
                query.ports()?
            } else {
                Vec::new()
            };
            runtime.get_port_forward(&target, ports).await?
        }
        Kind::Run => {
            // For legacy reasons, split on single spaces, as Go does.
            let cmd: Vec<String> = query
                .first("cmd")
                .unwrap_or_default()
                .split(' ')
                .map(str::to_owned)
                .collect();
            tracing::info!(pod = %format!("{}/{}", target.namespace, target.pod), container = %target.container, ?cmd, "run");
            return Ok(Prepared::Output(
                runtime.run_in_container(&target, cmd).await?,
            ));
        }
    };
    Ok(Prepared::Stream { url, what })
}

fn is_websocket(req: &Request<Incoming>) -> bool {
    is_upgrade_request(req.headers())
        && req
            .headers()
            .get(http::header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// `{ns}/{pod}[/{uid}]/{container}` (no container for port-forward).
fn parse_path(kind: Kind, path: &str) -> Result<Target, StreamingError> {
    let bad = StreamingError::BadRequest;
    let rest = path.strip_prefix(kind.prefix()).unwrap_or("");
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let parts: Vec<&str> = rest.split('/').collect();
    let want = if kind == Kind::PortForward {
        "{namespace}/{pod}[/{uid}]"
    } else {
        "{namespace}/{pod}[/{uid}]/{container}"
    };
    let (ns, pod, uid, container) = match (kind, parts.as_slice()) {
        (Kind::PortForward, [ns, pod]) => (*ns, *pod, None, ""),
        (Kind::PortForward, [ns, pod, uid]) => (*ns, *pod, Some(*uid), ""),
        (_, [ns, pod, c]) if kind != Kind::PortForward => (*ns, *pod, None, *c),
        (_, [ns, pod, uid, c]) if kind != Kind::PortForward => (*ns, *pod, Some(*uid), *c),
        _ => {
            return Err(bad(format!("{}: want {}{want}", echo(path), kind.prefix())));
        }
    };
    let msg = |e: super::logs::LogsError| bad(e.to_string());
    let namespace = segment("namespace", ns).map_err(msg)?;
    let pod = segment("pod name", pod).map_err(msg)?;
    check_label("namespace", &namespace).map_err(msg)?;
    check_subdomain("pod name", &pod).map_err(msg)?;
    let uid = match uid {
        Some(u) => Some(segment("pod UID", u).map_err(msg)?),
        None => None,
    };
    let container = if kind == Kind::PortForward {
        String::new()
    } else {
        let c = segment("container name", container).map_err(msg)?;
        check_label("container name", &c).map_err(msg)?;
        c
    };
    Ok(Target {
        namespace,
        pod,
        uid,
        container,
    })
}

/// A decoded query string.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: &str) -> Self {
        Query(
            form_urlencoded::parse(raw.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn first(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.first(key), Some("1" | "true" | "True" | "TRUE"))
    }

    /// Go's `NewOptions`: with a TTY, stderr is merged into stdout.
    fn stream_options(&self) -> Result<StreamOptions, StreamingError> {
        let tty = self.flag("tty");
        let opts = StreamOptions {
            stdin: self.flag("input"),
            stdout: self.flag("output"),
            stderr: self.flag("error") && !tty,
            tty,
        };
        if !opts.stdin && !opts.stdout && !opts.stderr {
            return Err(StreamingError::BadRequest(
                "you must specify at least 1 of stdin, stdout, stderr".into(),
            ));
        }
        Ok(opts)
    }

    /// Go's `NewV4Options`: a WebSocket port-forward names its ports.
    fn ports(&self) -> Result<Vec<i32>, StreamingError> {
        let raw = self.all("port");
        if raw.is_empty() {
            return Err(StreamingError::BadRequest(
                "query parameter \"port\" is required".into(),
            ));
        }
        let mut ports = Vec::new();
        for list in &raw {
            for p in list.split(',') {
                let n: u16 = p.parse().map_err(|e| {
                    StreamingError::BadRequest(format!(
                        "unable to parse {} as a port: {e}",
                        echo(p)
                    ))
                })?;
                if n == 0 {
                    return Err(StreamingError::BadRequest(format!(
                        "port {} must be > 0",
                        echo(p)
                    )));
                }
                ports.push(i32::from(n));
            }
        }
        Ok(ports)
    }
}

/// [`StreamingRuntime`] over berth's state: the pod from the status
/// manager, its running containers and sandbox from the pod cache (which
/// PLEG keeps current), the URL from the CRI.
pub struct CriStreaming {
    status: Arc<StatusManager>,
    cache: Arc<PodCache>,
    runtime: RuntimeClient,
}

impl CriStreaming {
    pub fn new(status: Arc<StatusManager>, cache: Arc<PodCache>, runtime: RuntimeClient) -> Self {
        CriStreaming {
            status,
            cache,
            runtime,
        }
    }

    /// The pod's UID and (for attach) its spec's TTY setting for the
    /// container.
    fn pod(&self, t: &Target) -> Result<(String, Option<bool>), StreamingError> {
        let pod = self
            .status
            .find(&t.namespace, &t.pod)
            .ok_or(StreamingError::PodNotFound)?;
        let uid = crate::pod_uid(&pod).to_owned();
        if t.uid.as_ref().is_some_and(|u| *u != uid) {
            return Err(StreamingError::PodNotRunning(full_name(t)));
        }
        let tty = pod.spec.as_ref().and_then(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
                .find(|c| c.name == t.container)
                .map(|c| c.tty.unwrap_or(false))
        });
        Ok((uid, tty))
    }

    fn container_id(&self, t: &Target, uid: &str) -> Result<String, StreamingError> {
        self.cache
            .get(uid)
            .running_containers()
            .find(|c| c.name() == t.container)
            .map(|c| c.id.clone())
            .ok_or_else(|| StreamingError::ContainerNotFound(t.container.clone()))
    }
}

fn full_name(t: &Target) -> String {
    format!("{}_{}", t.pod, t.namespace)
}

impl StreamingRuntime for CriStreaming {
    fn get_exec<'a>(
        &'a self,
        target: &'a Target,
        cmd: Vec<String>,
        opts: StreamOptions,
    ) -> BoxFuture<'a, Result<String, StreamingError>> {
        Box::pin(async move {
            let (uid, _) = self.pod(target)?;
            let id = self.container_id(target, &uid)?;
            tracing::debug!(pod = %format!("{}/{}", target.namespace, target.pod), %uid, container_id = %id, "exec requested");
            let resp = self
                .runtime
                .exec(pb::ExecRequest {
                    container_id: id,
                    cmd,
                    tty: opts.tty,
                    stdin: opts.stdin,
                    stdout: opts.stdout,
                    stderr: opts.stderr,
                })
                .await?;
            Ok(resp.url)
        })
    }

    fn get_attach<'a>(
        &'a self,
        target: &'a Target,
        opts: StreamOptions,
    ) -> BoxFuture<'a, Result<String, StreamingError>> {
        Box::pin(async move {
            let (uid, spec_tty) = self.pod(target)?;
            let id = self.container_id(target, &uid)?;
            let tty = spec_tty.unwrap_or(opts.tty);
            let resp = self
                .runtime
                .attach(pb::AttachRequest {
                    container_id: id,
                    stdin: opts.stdin,
                    tty,
                    stdout: opts.stdout,
                    stderr: opts.stderr && !tty,
                })
                .await?;
            Ok(resp.url)
        })
    }

    fn get_port_forward<'a>(
        &'a self,
        target: &'a Target,
        ports: Vec<i32>,
    ) -> BoxFuture<'a, Result<String, StreamingError>> {
        Box::pin(async move {
            let (uid, _) = self.pod(target)?;
            let pod = self.cache.get(&uid);
            let sandbox = pod
                .sandboxes
                .iter()
                .find(|s| s.ready)
                .ok_or_else(|| StreamingError::PodNotRunning(full_name(target)))?;
            tracing::debug!(pod = %format!("{}/{}", target.namespace, target.pod), %uid, sandbox = %sandbox.id, ?ports, "port-forward requested");
            let resp = self
                .runtime
                .port_forward(pb::PortForwardRequest {
                    pod_sandbox_id: sandbox.id.clone(),
                    port: ports,
                })
                .await?;
            Ok(resp.url)
        })
    }

    fn run_in_container<'a>(
        &'a self,
        target: &'a Target,
        cmd: Vec<String>,
    ) -> BoxFuture<'a, Result<Vec<u8>, StreamingError>> {
        Box::pin(async move {
            let (uid, _) = self.pod(target)?;
            let id = self.container_id(target, &uid)?;
            let resp = self
                .runtime
                .exec_sync(pb::ExecSyncRequest {
                    container_id: id,
                    cmd,
                    timeout: 0,
                })
                .await?;
            let mut out = resp.stdout;
            out.extend_from_slice(&resp.stderr);
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(ns: &str, pod: &str, uid: Option<&str>, c: &str) -> Target {
        Target {
            namespace: ns.into(),
            pod: pod.into(),
            uid: uid.map(Into::into),
            container: c.into(),
        }
    }

    #[test]
    fn paths_with_and_without_a_uid() {
        assert_eq!(
            parse_path(Kind::Exec, "/exec/default/web/nginx").unwrap(),
            target("default", "web", None, "nginx")
        );
        assert_eq!(
            parse_path(Kind::Attach, "/attach/default/web/1234/nginx/").unwrap(),
            target("default", "web", Some("1234"), "nginx")
        );
        assert_eq!(
            parse_path(Kind::PortForward, "/portForward/kube-system/dns").unwrap(),
            target("kube-system", "dns", None, "")
        );
        assert_eq!(
            parse_path(Kind::PortForward, "/portForward/a/b/u").unwrap(),
            target("a", "b", Some("u"), "")
        );
        for bad in [
            "/exec/default/web",
            "/exec/default/web/a/b/c",
            "/exec//web/c",
            "/exec/default/../c",
            "/exec/default/web/%2e%2e",
            "/exec/default/web/a%2Fb",
            "/exec/Default/web/c",
            "/portForward/a",
            "/portForward/a/b/c/d",
            "/run/%zz/b/c",
        ] {
            let kind = match bad.split('/').nth(1) {
                Some("portForward") => Kind::PortForward,
                Some("run") => Kind::Run,
                _ => Kind::Exec,
            };
            let e = parse_path(kind, bad).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{bad}: {e}");
        }
    }

    #[test]
    fn stream_options_follow_go() {
        let o = Query::parse("input=1&output=1&error=1&tty=1")
            .stream_options()
            .unwrap();
        // A TTY merges stderr into stdout.
        assert_eq!(
            o,
            StreamOptions {
                stdin: true,
                stdout: true,
                stderr: false,
                tty: true
            }
        );
        let o = Query::parse("output=true&error=1&stdin=1")
            .stream_options()
            .unwrap();
        assert!(o.stdout && o.stderr && !o.stdin && !o.tty);
        let e = Query::parse("tty=1&output=0&stdout=1")
            .stream_options()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "you must specify at least 1 of stdin, stdout, stderr"
        );
        let q = Query::parse("command=sh&command=-c&command=echo%20hi+there");
        assert_eq!(q.all("command"), ["sh", "-c", "echo hi there"]);
    }

    #[test]
    fn websocket_ports_are_checked() {
        assert_eq!(
            Query::parse("port=80&port=443,8080").ports().unwrap(),
            [80, 443, 8080]
        );
        assert!(Query::parse("").ports().is_err());
        assert!(Query::parse("port=0").ports().is_err());
        assert!(Query::parse("port=70000").ports().is_err());
        assert!(Query::parse("port=x").ports().is_err());
    }

    #[test]
    fn runtime_codes_pick_the_status() {
        let e = |code| StreamingError::Runtime {
            code,
            message: String::new(),
        };
        assert_eq!(e(tonic::Code::NotFound).status(), StatusCode::NOT_FOUND);
        assert_eq!(
            e(tonic::Code::Internal).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(StreamingError::PodNotFound.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            StreamingError::ContainerNotFound("c".into()).to_string(),
            "container not found (\"c\")"
        );
    }
}
