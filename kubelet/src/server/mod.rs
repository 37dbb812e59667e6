//! The kubelet's read-only HTTP port (10255 by default, on 127.0.0.1):
//! `/healthz`, `/pods` (a v1 PodList with full status) and `/stats/summary`
//! (the `stats/v1alpha1` Summary), as the Go kubelet's read-only port serves
//! them. The authenticated 10250 API is [`api`], behind [`auth`], over
//! [`tls`].

pub mod api;
pub mod auth;
pub mod setup;
pub mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::stats::StatsProvider;
use crate::status::StatusManager;

pub mod healthz;
pub mod logs;
pub mod metrics;
pub mod proxy;
pub mod streaming;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("binding the read-only port {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

fn reply(code: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = code;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    resp
}

/// Answers one request. Pure, so tests call it without a socket.
pub fn handle(method: &Method, path: &str, status: &StatusManager) -> Response<Full<Bytes>> {
    handle_with_stats(method, path, None, status, None)
}

/// [`handle`], with `/stats/summary` served from `stats` when given.
/// `query` is the raw query string: `only_cpu_and_memory=true` trims the
/// summary to what metrics-server once read (Go's `GetCPUAndMemoryStats`).
pub fn handle_with_stats(
    method: &Method,
    path: &str,
    query: Option<&str>,
    status: &StatusManager,
    stats: Option<&StatsProvider>,
) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            format!("{method} is not allowed on {path}\n"),
        );
    }
    match path.trim_end_matches('/') {
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok"),
        "/pods" => {
            let list = serde_json::json!({
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": {},
                "items": status.pods(),
            });
            match serde_json::to_vec(&list) {
                Ok(body) => reply(StatusCode::OK, "application/json", body),
                Err(e) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    format!("encoding pods: {e}\n"),
                ),
            }
        }
        "/stats/summary" => match stats.map(StatsProvider::summary) {
            None => reply(
                StatusCode::NOT_FOUND,
                "text/plain",
                "/stats/summary: stats collection is off\n",
            ),
            Some(None) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "/stats/summary: no stats collected yet; retry after the first housekeeping interval\n",
            ),
            Some(Some(summary)) => match if only_cpu_and_memory(query) {
                crate::stats::to_json(&crate::stats::summary::cpu_and_memory_only(&summary))
            } else {
                crate::stats::to_json(&summary)
            } {
                Ok(body) => reply(StatusCode::OK, "application/json", body),
                Err(e) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    format!("encoding the stats summary: {e}\n"),
                ),
            },
        },
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            format!("{path} not found; try /healthz, /pods or /stats/summary\n"),
        ),
    }
}

/// Go reads the parameter only when given once, as a Go bool
/// (`strconv.ParseBool`); anything else means the whole summary.
fn only_cpu_and_memory(query: Option<&str>) -> bool {
    let values: Vec<_> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "only_cpu_and_memory")
        .map(|(_, v)| v)
        .collect();
    matches!(
        values.as_slice(),
        [v] if matches!(v.as_ref(), "1" | "t" | "T" | "true" | "TRUE" | "True")
    )
}

/// Binds `addr` and serves until the task is dropped.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

pub async fn serve(listener: TcpListener, status: Arc<StatusManager>) {
    serve_with_stats(listener, status, None, None).await
}

/// [`serve`], with `/stats/summary` from `stats` and `/healthz` (with its
/// sub-checks) from `healthz`.
pub async fn serve_with_stats(
    listener: TcpListener,
    status: Arc<StatusManager>,
    stats: Option<Arc<StatsProvider>>,
    healthz: Option<healthz::Healthz>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("read-only port: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let status = status.clone();
        let stats = stats.clone();
        let healthz = healthz.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let path = req.uri().path();
                let resp = match &healthz {
                    Some(h) if healthz::Healthz::serves(path) => {
                        h.handle(req.method(), path, req.uri().query())
                    }
                    _ => handle_with_stats(
                        req.method(),
                        req.uri().path(),
                        req.uri().query(),
                        &status,
                        stats.as_deref(),
                    ),
                };
                async move { Ok::<_, Infallible>(resp) }
            });
            // A malformed request is hyper's to refuse (400); it never
            // reaches us, and never takes the server down.
            if let Err(e) = http1::Builder::new()
                .max_buf_size(64 * 1024)
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(%peer, "read-only port: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn routes() {
        let status = StatusManager::new();
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u"}, "spec": {"containers": []}}))
        .unwrap();
        status.set_pod_status(
            &std::sync::Arc::new(pod),
            k8s_openapi::api::core::v1::PodStatus {
                phase: Some("Running".into()),
                ..Default::default()
            },
        );
        let r = handle(&Method::GET, "/healthz", &status);
        assert_eq!(r.status(), StatusCode::OK);
        let r = handle(&Method::GET, "/pods", &status);
        assert_eq!(r.status(), StatusCode::OK);
        let body = r.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["kind"], "PodList");
        assert_eq!(v["items"][0]["status"]["phase"], "Running");
        assert_eq!(
            handle(&Method::POST, "/pods", &status).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            handle(&Method::GET, "/nope", &status).status(),
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn stats_summary() {
        let status = StatusManager::new();
        // Off: not found.
        let r = handle(&Method::GET, "/stats/summary", &status);
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        // On, before the first cycle: unavailable, not an empty summary.
        let ch = tonic::transport::Endpoint::from_static("http://localhost").connect_lazy();
        let client = cri_client::RuntimeClient::from_channels(
            "unix:///nonexistent".into(),
            ch.clone(),
            ch,
            Default::default(),
        );
        let dir = tempfile::tempdir().unwrap();
        let stats = StatsProvider::new(
            client,
            crate::container::PodCache::new(),
            crate::stats::StatsConfig::new("n", dir.path(), dir.path(), "/"),
        );
        let r = handle_with_stats(&Method::GET, "/stats/summary", None, &status, Some(&stats));
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        // A failed cycle (PLEG hasn't filled the pod cache) keeps it that way.
        assert!(stats.collect().await.is_err());
        let r = handle_with_stats(&Method::GET, "/stats/summary/", None, &status, Some(&stats));
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        // Once collected: the Summary as JSON.
        stats.set_summary_for_test(crate::stats::summary::Summary {
            node: crate::stats::summary::NodeStats {
                node_name: "n".into(),
                ..Default::default()
            },
            pods: vec![],
        });
        let r = handle_with_stats(&Method::GET, "/stats/summary", None, &status, Some(&stats));
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[http::header::CONTENT_TYPE], "application/json");
        let body = r.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["node"]["nodeName"], "n");
        assert_eq!(v["pods"], serde_json::json!([]));
        // only_cpu_and_memory: the filesystems are left out.
        use crate::stats::summary::{CpuStats, FsStats, NodeStats, PodStats, Summary};
        stats.set_summary_for_test(Summary {
            node: NodeStats {
                node_name: "n".into(),
                cpu: Some(CpuStats::default()),
                fs: Some(FsStats::default()),
                ..Default::default()
            },
            pods: vec![PodStats {
                cpu: Some(CpuStats::default()),
                ephemeral_storage: Some(FsStats::default()),
                ..Default::default()
            }],
        });
        for (query, trimmed) in [
            ("only_cpu_and_memory=true", true),
            ("only_cpu_and_memory=1", true),
            ("only_cpu_and_memory=false", false),
            ("only_cpu_and_memory=yes", false),
            ("only_cpu_and_memory=true&only_cpu_and_memory=true", false),
            ("other=1", false),
        ] {
            let r = handle_with_stats(
                &Method::GET,
                "/stats/summary",
                Some(query),
                &status,
                Some(&stats),
            );
            let body = r.into_body().collect().await.unwrap().to_bytes();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert!(v["node"]["cpu"].is_object(), "{query}");
            assert!(v["pods"][0]["cpu"].is_object(), "{query}");
            assert_eq!(v["node"]["fs"].is_null(), trimmed, "{query}");
            assert_eq!(
                v["pods"][0]["ephemeral-storage"].is_null(),
                trimmed,
                "{query}"
            );
        }
        assert_eq!(
            handle_with_stats(&Method::POST, "/stats/summary", None, &status, Some(&stats))
                .status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[tokio::test]
    async fn garbage_on_the_socket_does_not_hurt() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let status = StatusManager::new();
        tokio::spawn(serve(listener, status));
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"\x00\x01 NOT HTTP AT ALL\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        assert!(
            String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 400"),
            "{}",
            String::from_utf8_lossy(&buf)
        );
        // The server still answers afterwards.
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf).ends_with("ok"));
    }
}
