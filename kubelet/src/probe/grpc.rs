//! grpc probes (the Go kubelet's `pkg/probe/grpc`): grpc.health.v1
//! `Health/Check` for the probe's service over plaintext HTTP/2; SERVING is
//! success, anything else a failure worded as Go words it.

use std::time::Duration;

use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::Outcome;
use super::http::KUBE_VERSION;
use super::tcp::{dial_error, join_host_port};

/// One Check on a new connection, all within `timeout` (as Go: a new
/// client per probe, closed afterwards).
pub async fn probe(host: &str, port: u16, service: &str, timeout: Duration) -> Outcome {
    let addr = join_host_port(host, port);
    let endpoint = match Endpoint::from_shared(format!("http://{addr}")) {
        Ok(e) => e,
        Err(e) => {
            return Outcome::Failure(format!("error: failed to connect service at {addr:?}: {e}"));
        }
    };
    let endpoint = match endpoint.user_agent(format!("kube-probe/{KUBE_VERSION}")) {
        Ok(e) => e.connect_timeout(timeout).timeout(timeout),
        Err(e) => return Outcome::Failure(format!("error: {e}")),
    };
    let connected = tokio::time::Instant::now();
    let channel = match tokio::time::timeout(timeout, endpoint.connect()).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            return Outcome::Failure(format!(
                "error: failed to connect service at {addr:?}: {}",
                error_chain(&e)
            ));
        }
        Err(_) => {
            return Outcome::Failure(format!(
                "timeout: failed to connect service {addr:?} within {timeout:?}: context deadline exceeded"
            ));
        }
    };
    let left = timeout.saturating_sub(connected.elapsed());
    let mut client = HealthClient::new(channel);
    let req = HealthCheckRequest {
        service: service.to_string(),
    };
    let resp = match tokio::time::timeout(left, client.check(req)).await {
        Ok(Ok(r)) => r.into_inner(),
        Ok(Err(status)) => {
            return Outcome::Failure(match status.code() {
                tonic::Code::Unimplemented => format!(
                    "this server doesn't implement the grpc health protocol (grpc.health.v1.Health): {}",
                    status.message()
                ),
                tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
                    format!("timeout: health rpc did not complete within {timeout:?}")
                }
                code => format!(
                    "error: health rpc probe failed: rpc error: code = {code:?} desc = {}",
                    status.message()
                ),
            });
        }
        Err(_) => {
            return Outcome::Failure(format!(
                "timeout: health rpc did not complete within {timeout:?}"
            ));
        }
    };
    match ServingStatus::try_from(resp.status) {
        Ok(ServingStatus::Serving) => Outcome::Success("service healthy".into()),
        Ok(s) => Outcome::Failure(format!(
            "service unhealthy (responded with {:?})",
            s.as_str_name()
        )),
        Err(_) => Outcome::Failure(format!(
            "service unhealthy (responded with \"{}\")",
            resp.status
        )),
    }
}

/// A transport error with its causes ("transport error: connect: connection
/// refused").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let part = match s.downcast_ref::<std::io::Error>() {
            Some(io) => dial_error(io),
            None => s.to_string(),
        };
        if !msg.contains(&part) {
            msg = format!("{msg}: {part}");
        }
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tonic-health server on a free port: "" and "up" SERVING, "down"
    /// NOT_SERVING.
    async fn server() -> u16 {
        let (reporter, service) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("up", tonic_health::ServingStatus::Serving)
            .await;
        reporter
            .set_service_status("down", tonic_health::ServingStatus::NotServing)
            .await;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let _keep = reporter;
            loop {
                let Ok((stream, _)) = l.accept().await else {
                    return;
                };
                let svc = service.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let mut svc = svc.clone();
                        tower::Service::call(&mut svc, req)
                    });
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn serving_not_serving_unknown_and_closed() {
        let port = server().await;
        let t = Duration::from_secs(2);
        assert_eq!(
            probe("127.0.0.1", port, "", t).await,
            Outcome::Success("service healthy".into())
        );
        assert_eq!(
            probe("127.0.0.1", port, "up", t).await,
            Outcome::Success("service healthy".into())
        );
        assert_eq!(
            probe("127.0.0.1", port, "down", t).await,
            Outcome::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
        );
        let Outcome::Failure(m) = probe("127.0.0.1", port, "nope", t).await else {
            panic!("an unknown service must fail");
        };
        assert!(
            m.starts_with("error: health rpc probe failed: rpc error: code = NotFound"),
            "{m}"
        );

        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let Outcome::Failure(m) = probe("127.0.0.1", free, "", t).await else {
            panic!("a closed port must fail");
        };
        assert!(m.starts_with("error: failed to connect service at"), "{m}");
        assert!(m.contains("connection refused"), "{m}");
    }
}
