//! `GET /containerLogs/{namespace}/{pod}/{container}` of the kubelet API
//! (port 10250): a container's log, as the Go kubelet's `getContainerLogs`
//! serves it, with the query parameters of a v1 `PodLogOptions` (`follow`,
//! `tailLines` or the old `tail`, `sinceSeconds`, `sinceTime`, `timestamps`,
//! `limitBytes`, `previous`, `stream`).
//!
//! The handler is [`container_logs`]; it finds the log file through a
//! [`LogLocator`] ([`CriLogLocator`] in berth: the status manager's pods and
//! the runtime's `ContainerStatus`) and streams it with
//! `cri_client::logs::read_rotated_logs_until`, which, unlike the Go kubelet,
//! also reads the rotated files (`N.log.<stamp>`, `N.log.<stamp>.gz`) before
//! the live one.
//!
//! The body is produced by one task per request, through a channel of four
//! 64 KiB chunks, so a reader holds a few hundred KiB at most however large
//! the log and however slow the client. The task ends when the log is read,
//! when a followed container stops and its log is drained, or as soon as the
//! client goes away (the body is dropped), even while it waits for new lines.
//!
//! Wiring, in a hyper service:
//!
//! ```ignore
//! if req.uri().path().starts_with(server::logs::PREFIX) {
//!     let resp = server::logs::container_logs(
//!         locator.clone(), req.method(), req.uri().path(), req.uri().query()).await;
//!     return Ok(resp.map(|b| b.boxed()));   // http_body_util::BodyExt::boxed
//! }
//! ```

mod locator;
pub(super) mod request;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod throughput;

use std::convert::Infallible;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Method, Response, StatusCode};
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, PollSender};

pub use locator::CriLogLocator;
pub use request::{LogQuery, LogRequest, PREFIX, parse};

/// Chunks in flight between the reader task and the connection.
const CHANNEL_CHUNKS: usize = 4;

/// Why a log request fails. [`LogsError::status`] is its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogsError {
    /// A malformed path or query, or options the API refuses.
    #[error("{0}")]
    BadRequest(String),
    #[error("pod {pod:?} does not exist")]
    PodNotFound { pod: String },
    #[error("container {container:?} not found in pod {pod:?}")]
    ContainerNotFound { container: String, pod: String },
    /// The container has no log to show in this state, with Go's message
    /// ("previous terminated container … not found", "… is waiting to
    /// start: …").
    #[error("{0}")]
    Unavailable(String),
    /// The runtime could not say where the log is.
    #[error("{0}")]
    Runtime(String),
    #[error("failed to open log file {path:?}: {reason}")]
    Open { path: PathBuf, reason: String },
}

impl LogsError {
    /// 404 for an unknown pod or container; 400 otherwise, as the Go kubelet
    /// answers every failure to produce the log.
    pub fn status(&self) -> StatusCode {
        match self {
            LogsError::PodNotFound { .. } | LogsError::ContainerNotFound { .. } => {
                StatusCode::NOT_FOUND
            }
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// Where one container instance's log is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTarget {
    /// The live log file (`/var/log/pods/<ns>_<pod>_<uid>/<container>/<n>.log`).
    pub path: PathBuf,
    pub pod_uid: String,
    /// The runtime's ID of the instance, without the `<runtime>://` prefix.
    pub container_id: String,
}

/// Finds container logs: the seam between the handler and the kubelet's
/// pod state, so the handler is tested with plain files.
pub trait LogLocator: Send + Sync {
    /// The log of the container's current instance, or with `previous` of
    /// the one before it. Fails with [`LogsError::PodNotFound`] and
    /// [`LogsError::ContainerNotFound`] for unknown names.
    fn locate<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
        container: &'a str,
        previous: bool,
    ) -> BoxFuture<'a, Result<LogTarget, LogsError>>;

    /// Whether the instance still runs: `follow` ends once it does not and
    /// its log is read to the end.
    fn is_running<'a>(&'a self, target: &'a LogTarget) -> BoxFuture<'a, bool>;
}

/// [`container_logs`] as a route of the 10250 API
/// ([`KubeletApi::route`](super::api::KubeletApi::route)).
pub fn handler(locator: Arc<dyn LogLocator>) -> super::api::Handler {
    use http_body_util::BodyExt;
    Arc::new(move |req: http::Request<hyper::body::Incoming>| {
        let locator = locator.clone();
        Box::pin(async move {
            let (parts, _) = req.into_parts();
            container_logs(locator, &parts.method, parts.uri.path(), parts.uri.query())
                .await
                .map(|b| b.map_err(|never| match never {}).boxed_unsync())
        })
    })
}

/// Answers `GET` or `HEAD` on `/containerLogs/…`. `path` is the request's
/// path and `query` its query string, both as received (percent-encoded).
pub async fn container_logs(
    locator: Arc<dyn LogLocator>,
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> Response<LogsBody> {
    if method != Method::GET && method != Method::HEAD {
        let mut r = error_response(&LogsError::BadRequest(format!(
            "{method} is not allowed on /containerLogs"
        )));
        *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        if let Ok(v) = http::HeaderValue::from_str("GET, HEAD") {
            r.headers_mut().insert(http::header::ALLOW, v);
        }
        return r;
    }
    let req = match request::parse(path, query) {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    let target = match locator
        .locate(&req.namespace, &req.pod, &req.container, req.query.previous)
        .await
    {
        Ok(t) => t,
        Err(e) => {
            tracing::debug!(pod = %format!("{}/{}", req.namespace, req.pod), container = %req.container, "container logs: {e}");
            return error_response(&e);
        }
    };
    // Open failures are the client's 400 before any byte is sent, as in Go;
    // once streaming, a failure can only end the body.
    if let Err(e) = tokio::fs::File::open(&target.path).await {
        let e = LogsError::Open {
            path: target.path.clone(),
            reason: e.to_string(),
        };
        tracing::warn!(pod = %format!("{}/{}", req.namespace, req.pod), uid = %target.pod_uid, container = %req.container, "container logs: {e}");
        return error_response(&e);
    }
    let body = if method == Method::HEAD {
        LogsBody::full(Bytes::new())
    } else {
        stream_log(locator, req, target)
    };
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    resp
}

/// Start the reader task and hand back the receiving end as the body.
fn stream_log(locator: Arc<dyn LogLocator>, req: LogRequest, target: LogTarget) -> LogsBody {
    let (tx, rx) = mpsc::channel::<Bytes>(CHANNEL_CHUNKS);
    tokio::spawn(async move {
        let pod = format!("{}/{}", req.namespace, req.pod);
        let opts = req.query.options(jiff::Timestamp::now());
        let mut out = ChannelWriter(PollSender::new(tx.clone()));
        let mut err = ChannelWriter(PollSender::new(tx.clone()));
        let still_running = || {
            let (locator, target) = (locator.clone(), target.clone());
            async move { locator.is_running(&target).await }
        };
        let read = cri_client::logs::read_rotated_logs_until(
            &target.path,
            &opts,
            &mut out,
            &mut err,
            CancellationToken::new(),
            still_running,
        );
        tokio::select! {
            r = read => match r {
                Ok(()) => tracing::debug!(%pod, uid = %target.pod_uid, container = %req.container, "container logs sent"),
                Err(e) => tracing::warn!(%pod, uid = %target.pod_uid, container = %req.container, "container logs cut short: {e}"),
            },
            () = tx.closed() => {
                tracing::debug!(%pod, uid = %target.pod_uid, container = %req.container, "container logs: the client went away");
            }
        }
    });
    LogsBody {
        inner: Inner::Stream(rx),
    }
}

fn error_response(e: &LogsError) -> Response<LogsBody> {
    let mut resp = Response::new(LogsBody::full(Bytes::from(format!("{e}\n"))));
    *resp.status_mut() = e.status();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// The response body: a fixed message, or the log as the reader task
/// produces it. Dropping it (the client left) stops the task.
pub struct LogsBody {
    inner: Inner,
}

enum Inner {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl LogsBody {
    fn full(b: Bytes) -> Self {
        LogsBody {
            inner: Inner::Full(Some(b)),
        }
    }
}

impl Body for LogsBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.inner {
            Inner::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Inner::Stream(rx) => rx.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(&self.inner, Inner::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Inner::Full(None) => SizeHint::with_exact(0),
            Inner::Stream(_) => SizeHint::default(),
        }
    }
}

/// The reader's output into the body channel. A closed channel is a broken
/// pipe, which the reader takes as its cue to stop.
struct ChannelWriter(PollSender<Bytes>);

impl AsyncWrite for ChannelWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let gone = || io::Error::from(io::ErrorKind::BrokenPipe);
        if ready!(self.0.poll_reserve(cx)).is_err() {
            return Poll::Ready(Err(gone()));
        }
        match self.0.send_item(Bytes::copy_from_slice(buf)) {
            Ok(()) => Poll::Ready(Ok(buf.len())),
            Err(_) => Poll::Ready(Err(gone())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.close();
        Poll::Ready(Ok(()))
    }
}
