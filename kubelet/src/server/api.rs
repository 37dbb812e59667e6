//! The kubelet API on port 10250 (Go's `pkg/kubelet/server` secure
//! server): HTTPS, every request authenticated and authorized
//! ([`KubeletAuth`]), then routed.
//!
//! Built-in routes: `/healthz`, `/pods`, `/stats/summary` (the read-only
//! port's handlers), `/runningpods/` and `/configz`. Other endpoints are
//! added with [`KubeletApi::route`]:
//!
//! ```ignore
//! let api = KubeletApi::new(auth, state)
//!     .route("/containerLogs/", logs_handler)   // issue 12's logs
//!     .route("/exec/", exec_handler);
//! tokio::spawn(api::serve(listener, tls, Arc::new(api), Limits::default()));
//! ```
//!
//! A handler gets the whole request (the authenticated [`UserInfo`] is in
//! its extensions) and may stream its body or upgrade the connection.
//! With `enableDebuggingHandlers: false`, `/run/`, `/exec/`, `/attach/`,
//! `/portForward/`, `/containerLogs/`, `/runningpods/`, `/debug/pprof/` and
//! `/logs/` answer Go's 405 whatever is routed there, and `/configz` is
//! not served.
//!
//! Connections cost bounded memory: at most `max_connections` at once
//! (more wait in the listen backlog), the TLS handshake within
//! `handshake_timeout`, each request's headers (and an idle keep-alive
//! connection's next request) within `header_read_timeout`, headers at
//! most `max_header_bytes` (431 beyond). HTTP/2 is offered by ALPN, with
//! at most 100 streams a connection, closed when idle as long.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::auth::{KubeletAuth, UserInfo};
use crate::container::PodCache;
use crate::stats::StatsProvider;
use crate::status::StatusManager;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A response body: whole or streamed.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;
/// A handler for the paths under a prefix.
pub type Handler =
    Arc<dyn Fn(Request<Incoming>) -> BoxFuture<'static, Response<Body>> + Send + Sync>;

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A response with a body and its content type.
pub fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    resp
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    reply(status, "text/plain; charset=utf-8", body)
}

/// The paths `enableDebuggingHandlers: false` turns off (Go's
/// `InstallDebuggingDisabledHandlers`).
pub const DEBUGGING_PATHS: [&str; 8] = [
    "/run/",
    "/exec/",
    "/attach/",
    "/portForward/",
    "/containerLogs/",
    "/runningpods/",
    "/debug/pprof/",
    "/logs/",
];

/// What the built-in routes read.
pub struct ApiState {
    pub status: Arc<StatusManager>,
    pub stats: Option<Arc<StatsProvider>>,
    /// The runtime's pods, for `/runningpods/`.
    pub pod_cache: Arc<PodCache>,
    /// The body of `/configz`: `{"kubeletconfig": …}`.
    pub configz: serde_json::Value,
    pub enable_debugging_handlers: bool,
    /// `/healthz` and its checks.
    pub healthz: super::healthz::Healthz,
}

/// The router behind the auth filter.
pub struct KubeletApi {
    auth: KubeletAuth,
    state: ApiState,
    routes: Vec<(&'static str, Handler)>,
}

impl KubeletApi {
    pub fn new(auth: KubeletAuth, state: ApiState) -> Self {
        KubeletApi {
            auth,
            state,
            routes: Vec::new(),
        }
    }

    /// Serves the paths starting with `prefix` (e.g. `"/containerLogs/"`)
    /// with `handler`, after authentication and authorization. The first
    /// matching prefix wins; the built-in routes come before any.
    pub fn route(mut self, prefix: &'static str, handler: Handler) -> Self {
        self.routes.push((prefix, handler));
        self
    }

    /// Answers one request from a client that presented `peer_certificates`.
    pub async fn handle(
        &self,
        mut req: Request<Incoming>,
        peer_certificates: Option<&[CertificateDer<'static>]>,
    ) -> Response<Body> {
        let user = match self
            .auth
            .check(
                req.method(),
                req.uri().path(),
                req.headers(),
                peer_certificates,
            )
            .await
        {
            Ok(user) => user,
            Err(refusal) => return text(refusal.status, refusal.body),
        };
        tracing::trace!(user = %user.name, method = %req.method(), path = req.uri().path(), "kubelet API request");
        req.extensions_mut().insert::<UserInfo>(user);
        self.dispatch(req).await
    }

    async fn dispatch(&self, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_string();
        let state = &self.state;
        let debugging_path = DEBUGGING_PATHS
            .iter()
            .any(|p| path.starts_with(p) || path == p.trim_end_matches('/'));
        if !state.enable_debugging_handlers && debugging_path {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "Debug endpoints are disabled.\n",
            );
        }
        let read = req.method() == Method::GET || req.method() == Method::HEAD;
        if super::healthz::Healthz::serves(&path) {
            let resp = state.healthz.handle(req.method(), &path, req.uri().query());
            return resp.map(|b| b.map_err(|never| match never {}).boxed_unsync());
        }
        match path.as_str() {
            "/pods" | "/pods/" | "/stats/summary" | "/stats/summary/" => {
                let resp = super::handle_with_stats(
                    req.method(),
                    &path,
                    req.uri().query(),
                    &state.status,
                    state.stats.as_deref(),
                );
                return resp.map(|b| b.map_err(|never| match never {}).boxed_unsync());
            }
            "/runningpods/" | "/runningpods" if read => {
                return json(&running_pods(&state.pod_cache));
            }
            "/configz" if read && state.enable_debugging_handlers => {
                return json(&state.configz);
            }
            "/runningpods/" | "/runningpods" | "/configz" if state.enable_debugging_handlers => {
                return text(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("{} is not allowed on {path}\n", req.method()),
                );
            }
            _ => {}
        }
        if let Some((_, handler)) = self.routes.iter().find(|(p, _)| path.starts_with(p)) {
            return handler(req).await;
        }
        text(StatusCode::NOT_FOUND, "404 page not found\n")
    }
}

fn json(value: &serde_json::Value) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(body) => reply(StatusCode::OK, "application/json", body),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the answer: {e}\n"),
        ),
    }
}

/// Go's `/runningpods/`: the runtime's pods with a running container or a
/// ready sandbox, each as a v1 Pod with only name, namespace, UID and its
/// running containers' names and images (`ToAPIPod`).
pub fn running_pods(cache: &PodCache) -> serde_json::Value {
    let mut pods = cache.pods();
    pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let items: Vec<serde_json::Value> = pods
        .iter()
        .filter(|p| p.running_containers().next().is_some() || p.sandboxes.iter().any(|s| s.ready))
        .map(|p| {
            let containers: Vec<serde_json::Value> = p
                .running_containers()
                .map(|c| serde_json::json!({"name": c.name(), "image": c.image, "resources": {}}))
                .collect();
            serde_json::json!({
                "metadata": {"name": p.name, "namespace": p.namespace, "uid": p.uid, "creationTimestamp": null},
                "spec": {"containers": containers},
                "status": {},
            })
        })
        .collect();
    serde_json::json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})
}

/// Requests under way on a connection, and when the last one ended.
struct Activity {
    active: std::sync::atomic::AtomicUsize,
    last: std::sync::Mutex<tokio::time::Instant>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            active: Default::default(),
            last: std::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }
}

impl Activity {
    fn start(&self) {
        self.active
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn end(&self) {
        self.active
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = tokio::time::Instant::now();
    }

    /// No request under way, and none for `idle`.
    fn idle_for(&self, idle: Duration) -> bool {
        self.active.load(std::sync::atomic::Ordering::SeqCst) == 0
            && self
                .last
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .elapsed()
                >= idle
    }
}

/// A request under way, for [`Activity`].
struct Busy(Arc<Activity>);

impl Busy {
    fn new(activity: Arc<Activity>) -> Self {
        activity.start();
        Busy(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// An HTTP/2 connection (ALPN "h2"): at most 100 streams, headers within
/// `max_header_bytes`, and shut down gracefully (streams under way finish)
/// once idle for `header_read_timeout`, as HTTP/1.1 keep-alive is.
async fn serve_h2<S>(
    io: TokioIo<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>,
    svc: S,
    limits: &Limits,
    activity: &Activity,
) -> Result<(), hyper::Error>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let conn = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .timer(TokioTimer::new())
        .max_concurrent_streams(100)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .serve_connection(io, svc);
    tokio::pin!(conn);
    let idle = limits.header_read_timeout;
    let mut tick = tokio::time::interval((idle / 4).max(Duration::from_millis(100)));
    let mut closing = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => return r,
            _ = tick.tick(), if !closing => {
                if activity.idle_for(idle) {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Bounds on what clients may hold.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub handshake_timeout: Duration,
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 2048,
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
        }
    }
}

/// Accepts TLS connections on `listener` and serves `api` on them, until
/// the task is dropped.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    api: Arc<KubeletApi>,
    limits: Limits,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // hyper's buffer holds the headers; it cannot be under 8 KiB.
    let max_buf = limits.max_header_bytes.max(8192);
    loop {
        // At the cap, connections wait in the kernel's backlog.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("kubelet API: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Streams (exec, attach, port-forward) send small frames both ways:
        // without this, Nagle and delayed ACKs add ~40 ms to round trips.
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let api = api.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let tls = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream))
                .await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "kubelet API: TLS handshake: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "kubelet API: no TLS handshake within {:?}", limits.handshake_timeout);
                    return;
                }
            };
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
            let certs: Arc<Option<Vec<CertificateDer<'static>>>> = Arc::new(
                tls.get_ref()
                    .1
                    .peer_certificates()
                    .map(|c| c.iter().map(|c| c.clone().into_owned()).collect()),
            );
            let activity = Arc::new(Activity::default());
            let seen = activity.clone();
            let svc = service_fn(move |req: Request<Incoming>| {
                let api = api.clone();
                let certs = certs.clone();
                let seen = seen.clone();
                async move {
                    // Ends with the request, even one the client gave up.
                    let _busy = Busy::new(seen);
                    Ok::<_, Infallible>(api.handle(req, certs.as_deref()).await)
                }
            });
            let served = if h2 {
                serve_h2(TokioIo::new(tls), svc, &limits, &activity).await
            } else {
                http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(limits.header_read_timeout)
                    .max_buf_size(max_buf)
                    .serve_connection(TokioIo::new(tls), svc)
                    .with_upgrades()
                    .await
            };
            if let Err(e) = served {
                tracing::debug!(%peer, "kubelet API: {e}");
            }
        });
    }
}
