//! The upgrade-aware proxy between a kubelet API client and the runtime's
//! streaming server (Go's `proxyStream`, an `UpgradeAwareHandler` with
//! `upgradeRequired`): `/exec`, `/attach` and `/portForward` get a URL from
//! the CRI and the kubelet relays the client's upgrade request to it.
//!
//! The relay is transparent: the client's headers (`Upgrade`,
//! `Connection`, `X-Stream-Protocol-Version`, `Sec-WebSocket-*`) go to the
//! runtime as they came, so SPDY/3.1 and the WebSocket channel protocols
//! work alike and the runtime picks the protocol version. If the runtime
//! answers `101 Switching Protocols`, that answer goes back to the client
//! and the two upgraded connections are spliced until either side closes;
//! any other answer is passed back whole. The kubelet's own credentials
//! (`Authorization`) are not forwarded.
//!
//! Upgrades need HTTP/1.1: a request over HTTP/2, or one that asks for no
//! upgrade, gets 400 "Upgrade request required".

use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::api::{Body, reply};

/// How long the runtime's streaming server has to accept the connection
/// and answer the upgrade.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether the request asks to switch protocols (`Connection: Upgrade`
/// with an `Upgrade` header), as Go's `httpstream.IsUpgradeRequest`.
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers.get_all(header::CONNECTION).iter().any(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
        })
}

/// Request headers that describe the hop to the kubelet, not the stream.
const NOT_FORWARDED: [header::HeaderName; 4] = [
    header::HOST,
    header::AUTHORIZATION,
    header::PROXY_AUTHORIZATION,
    header::CONTENT_LENGTH,
];

/// Why the runtime's stream could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("the runtime returned a streaming URL berth cannot use: {0:?}")]
    BadLocation(String),
    #[error("connecting to the runtime's streaming server at {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("the runtime's streaming server at {addr} did not answer within {after:?}")]
    Timeout { addr: String, after: Duration },
}

/// Relays the upgrade request `req` to `location` (an `http://` URL from
/// ExecResponse, AttachResponse or PortForwardResponse) and, once both
/// sides switched protocols, splices them. `what` names the stream in logs
/// (e.g. `exec default/web/nginx`).
pub async fn proxy_stream(
    mut req: Request<Incoming>,
    location: &str,
    what: String,
) -> Response<Body> {
    if !is_upgrade_request(req.headers()) {
        return reply(
            StatusCode::BAD_REQUEST,
            "text/plain; charset=utf-8",
            "Upgrade request required\n",
        );
    }
    let (backend_req, addr) = match backend_request(&req, location) {
        Ok(r) => r,
        Err(e) => return failure(&what, e),
    };
    let mut resp = match tokio::time::timeout(CONNECT_TIMEOUT, send(backend_req, &addr)).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => return failure(&what, e),
        Err(_) => {
            return failure(
                &what,
                ProxyError::Timeout {
                    addr,
                    after: CONNECT_TIMEOUT,
                },
            );
        }
    };
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        tracing::debug!(stream = %what, status = %resp.status(), "the runtime refused the stream upgrade");
        return resp.map(|b| b.map_err(Into::into).boxed_unsync());
    }
    let backend = hyper::upgrade::on(&mut resp);
    let client = hyper::upgrade::on(&mut req);
    let span = tracing::debug_span!("stream", stream = %what);
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            let (client, backend) = match tokio::try_join!(client, backend) {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::debug!("the upgrade did not complete: {e}");
                    return;
                }
            };
            let mut client = TokioIo::new(client);
            let mut backend = TokioIo::new(backend);
            match tokio::io::copy_bidirectional(&mut client, &mut backend).await {
                Ok((up, down)) => tracing::debug!(up, down, "stream closed"),
                Err(e) => tracing::debug!("stream ended: {e}"),
            }
        },
        span,
    ));
    // The runtime's 101, headers and all (the chosen protocol, the
    // WebSocket accept key), without a body.
    let mut out = Response::new(super::api::full(""));
    *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *out.headers_mut() = std::mem::take(resp.headers_mut());
    out
}

/// The request to send to the runtime, and the address to send it to.
fn backend_request(
    req: &Request<Incoming>,
    location: &str,
) -> Result<(Request<http_body_util::Empty<bytes::Bytes>>, String), ProxyError> {
    let bad = || ProxyError::BadLocation(location.to_owned());
    let uri: http::Uri = location.parse().map_err(|_| bad())?;
    if uri.scheme_str() != Some("http") {
        // containerd serves plain HTTP on loopback unless TLS streaming is
        // configured, which berth does not support yet.
        return Err(bad());
    }
    let authority = uri.authority().ok_or_else(bad)?.clone();
    let addr = match authority.port_u16() {
        Some(_) => authority.as_str().to_owned(),
        None => format!("{}:80", authority.host()),
    };
    let path = uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    let mut out = Request::builder()
        .method(req.method().clone())
        .uri(path)
        .body(http_body_util::Empty::new())
        .map_err(|_| bad())?;
    let headers = out.headers_mut();
    for (name, value) in req.headers() {
        if !NOT_FORWARDED.contains(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
        headers.insert(header::HOST, host);
    }
    Ok((out, addr))
}

async fn send(
    req: Request<http_body_util::Empty<bytes::Bytes>>,
    addr: &str,
) -> Result<Response<Incoming>, ProxyError> {
    let err = |e: &dyn std::fmt::Display| ProxyError::Connect {
        addr: addr.to_owned(),
        reason: e.to_string(),
    };
    let stream = TcpStream::connect(addr).await.map_err(|e| err(&e))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| err(&e))?;
    let addr_for_log = addr.to_owned();
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(addr = %addr_for_log, "runtime stream connection: {e}");
        }
    });
    sender.send_request(req).await.map_err(|e| err(&e))
}

/// Go's responder: 500 with the error, logged.
fn failure(what: &str, e: ProxyError) -> Response<Body> {
    tracing::warn!(stream = %what, "proxying the stream: {e}");
    reply(
        StatusCode::INTERNAL_SERVER_ERROR,
        "text/plain; charset=utf-8",
        format!("{e}\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_requests_are_recognised() {
        let mut h = HeaderMap::new();
        assert!(!is_upgrade_request(&h));
        h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        assert!(!is_upgrade_request(&h));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(is_upgrade_request(&h));
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        assert!(!is_upgrade_request(&h));
    }
}
