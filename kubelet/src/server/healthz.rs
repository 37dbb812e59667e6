//! `/healthz` as the Go kubelet installs it (`healthz.InstallHandler` with
//! the `ping`, `log` and `syncloop` checks): on the kubelet API, and alone
//! on the healthz port (`healthzBindAddress:healthzPort`, 127.0.0.1:10248,
//! plain HTTP without authentication, which is what kubeadm and systemd
//! units poll).
//!
//! | path | answer |
//! |---|---|
//! | `/healthz` | `ok`, or 500 listing each check (`[-]syncloop failed: reason withheld`) |
//! | `/healthz?verbose` | every check and `healthz check passed` |
//! | `/healthz?exclude=syncloop` | without that check |
//! | `/healthz/<check>` | `ok`, or 500 `internal server error: <why>` |

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::sync_loop::{SYNC_LOOP_STUCK_AFTER, SyncLoopMonitor};

/// The checks behind `/healthz`.
#[derive(Clone, Debug)]
pub struct Healthz {
    sync_loop: Arc<SyncLoopMonitor>,
}

const CHECKS: [&str; 3] = ["ping", "log", "syncloop"];

impl Healthz {
    pub fn new(sync_loop: Arc<SyncLoopMonitor>) -> Self {
        Healthz { sync_loop }
    }

    fn run(&self, name: &str) -> Result<(), String> {
        match name {
            // Go's log check is that klog can flush; tracing writes
            // unbuffered, so there is nothing that can be stuck.
            "ping" | "log" => Ok(()),
            _ => self.sync_loop.check(SYNC_LOOP_STUCK_AFTER),
        }
    }

    /// Whether `path` is one of ours (`/healthz`, `/healthz/`, `/healthz/<x>`).
    pub fn serves(path: &str) -> bool {
        path == "/healthz" || path.starts_with("/healthz/")
    }

    /// Answers a request for a path [`Healthz::serves`].
    pub fn handle(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
    ) -> Response<Full<Bytes>> {
        if method != Method::GET && method != Method::HEAD {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} is not allowed on {path}\n"),
            );
        }
        let sub = path.trim_start_matches("/healthz").trim_matches('/');
        if !sub.is_empty() {
            return match CHECKS.iter().find(|c| **c == sub) {
                Some(check) => match self.run(check) {
                    Ok(()) => text(StatusCode::OK, "ok"),
                    Err(why) => text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("internal server error: {why}\n"),
                    ),
                },
                None => text(StatusCode::NOT_FOUND, "404 page not found\n"),
            };
        }
        let params: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let verbose = params.iter().any(|(k, _)| k == "verbose");
        let excluded: Vec<&str> = params
            .iter()
            .filter(|(k, _)| k == "exclude")
            .map(|(_, v)| v.trim())
            .collect();
        let mut report = String::new();
        let mut failed = false;
        for check in CHECKS {
            if excluded.contains(&check) {
                report.push_str(&format!("[+]{check} excluded: ok\n"));
                continue;
            }
            match self.run(check) {
                Ok(()) => report.push_str(&format!("[+]{check} ok\n")),
                Err(why) => {
                    failed = true;
                    tracing::warn!(check, "healthz check failed: {why}");
                    report.push_str(&format!("[-]{check} failed: reason withheld\n"));
                }
            }
        }
        for name in excluded.iter().filter(|e| !CHECKS.contains(e)) {
            report.push_str(&format!(
                "warn: some health checks cannot be excluded: no matches for \"{name}\"\n"
            ));
        }
        if failed {
            report.push_str("healthz check failed\n");
            text(StatusCode::INTERNAL_SERVER_ERROR, report)
        } else if verbose {
            report.push_str("healthz check passed\n");
            text(StatusCode::OK, report)
        } else {
            text(StatusCode::OK, "ok")
        }
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = super::reply(status, "text/plain; charset=utf-8", body);
    resp.headers_mut().insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    resp
}

/// Serves `/healthz` alone on `listener` (the healthz port), until the task
/// is dropped.
pub async fn serve(listener: TcpListener, healthz: Healthz) {
    let healthz = Arc::new(healthz);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("healthz port: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let healthz = healthz.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let path = req.uri().path();
                let resp = if Healthz::serves(path) {
                    healthz.handle(req.method(), path, req.uri().query())
                } else {
                    text(StatusCode::NOT_FOUND, "404 page not found\n")
                };
                async move { Ok::<_, Infallible>(resp) }
            });
            if let Err(e) = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(30))
                .max_buf_size(64 * 1024)
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(%peer, "healthz port: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn get(h: &Healthz, path: &str, query: Option<&str>) -> (u16, String) {
        let r = h.handle(&Method::GET, path, query);
        let code = r.status().as_u16();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (code, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn checks_verbose_exclude_and_single() {
        let monitor = Arc::new(SyncLoopMonitor::default());
        let h = Healthz::new(monitor.clone());
        assert_eq!(get(&h, "/healthz", None).await, (200, "ok".into()));
        assert_eq!(
            get(&h, "/healthz", Some("verbose")).await,
            (
                200,
                "[+]ping ok\n[+]log ok\n[+]syncloop ok\nhealthz check passed\n".into()
            )
        );
        assert_eq!(get(&h, "/healthz/ping", None).await, (200, "ok".into()));
        assert_eq!(get(&h, "/healthz/syncloop", None).await, (200, "ok".into()));
        assert_eq!(get(&h, "/healthz/nope", None).await.0, 404);
        assert_eq!(
            h.handle(&Method::POST, "/healthz", None).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );

        // A sync loop that ended fails the check, unless excluded.
        monitor.mark_exited_for_test();
        assert_eq!(
            get(&h, "/healthz", None).await,
            (
                500,
                "[+]ping ok\n[+]log ok\n[-]syncloop failed: reason withheld\nhealthz check failed\n"
                    .into()
            )
        );
        assert_eq!(
            get(&h, "/healthz/syncloop", None).await,
            (
                500,
                "internal server error: the sync loop has ended\n".into()
            )
        );
        assert_eq!(
            get(&h, "/healthz", Some("exclude=syncloop&verbose=1")).await,
            (
                200,
                "[+]ping ok\n[+]log ok\n[+]syncloop excluded: ok\nhealthz check passed\n".into()
            )
        );
    }
}
