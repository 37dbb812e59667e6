//! httpGet probes and hooks (the Go kubelet's `pkg/probe/http`): one GET
//! per probe on a fresh connection (`Connection: close`, as Go's probe
//! transport disables keep-alives), HTTP/1.1, HTTPS without certificate
//! verification, up to 10 redirects on the same host, 200-399 is success.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Container, HTTPGetAction};
use tokio::io::{AsyncRead, AsyncWrite};

use super::tcp::{DialError, dial, join_host_port};
use super::{MAX_OUTPUT, Outcome, PortError, resolve_port};

/// The Kubernetes minor release Berth follows, for User-Agent
/// ("kube-probe/1.36", as the Go kubelet of that release sends).
pub const KUBE_VERSION: &str = "1.36";

/// Go's client follows at most 10 redirects.
const MAX_REDIRECTS: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// Where one request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub scheme: Scheme,
    /// Without brackets for IPv6.
    pub host: String,
    pub port: u16,
    /// Path and query, starting with '/'.
    pub target: String,
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme.as_str(),
            join_host_port(&self.host, self.port),
            self.target
        )
    }
}

/// Why an httpGet action can't be turned into a request.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("httpGet.scheme {0:?} is not HTTP or HTTPS")]
    Scheme(String),
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("httpGet.httpHeaders: invalid header name {name:?}")]
    HeaderName {
        name: String,
        #[source]
        source: header::InvalidHeaderName,
    },
    #[error("httpGet.httpHeaders: invalid value for header {name:?}")]
    HeaderValue {
        name: String,
        #[source]
        source: header::InvalidHeaderValue,
    },
}

/// Why a request got no response. Go turns these into probe failures,
/// `Get "URL": ` followed by this text.
#[derive(Debug, thiserror::Error)]
enum TransportError {
    #[error(transparent)]
    Dial(#[from] DialError),
    #[error("building the request: {0}")]
    Request(#[source] http::Error),
    #[error("setting up TLS: {0}")]
    TlsSetup(#[source] rustls::Error),
    #[error("invalid TLS server name {name:?}: {source}")]
    ServerName {
        name: String,
        #[source]
        source: rustls::pki_types::InvalidDnsNameError,
    },
    #[error("tls: {0}")]
    Tls(#[source] std::io::Error),
    #[error(transparent)]
    Handshake(hyper::Error),
    /// Sending the request or reading the response; the text has hyper's
    /// causes too ("connection closed before message completed", ...).
    #[error("{}", hyper_error(.0))]
    Exchange(#[source] hyper::Error),
}

/// An httpGet action resolved against its container (port names, headers),
/// built once per worker. `host` None means "the pod's address", looked up
/// at each probe.
#[derive(Clone, Debug)]
pub struct HttpRequest {
    pub scheme: Scheme,
    pub host: Option<String>,
    pub port: u16,
    pub target: String,
    pub headers: HeaderMap,
    /// A `Host` header from httpHeaders: sent instead of host:port.
    pub host_header: Option<String>,
}

impl HttpRequest {
    /// Resolves `action` for `container`. `purpose` names the User-Agent
    /// ("probe" or "lifecycle", as in Go's kube-probe / kube-lifecycle).
    pub fn new(
        action: &HTTPGetAction,
        container: &Container,
        purpose: &str,
    ) -> Result<HttpRequest, RequestError> {
        let scheme = match action.scheme.as_deref().map(str::to_ascii_lowercase) {
            None => Scheme::Http,
            Some(s) if s.is_empty() || s == "http" => Scheme::Http,
            Some(s) if s == "https" => Scheme::Https,
            Some(s) => return Err(RequestError::Scheme(s)),
        };
        let port = resolve_port(&action.port, container)?;
        let mut headers = HeaderMap::new();
        let mut host_header = None;
        for h in action.http_headers.iter().flatten() {
            let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|source| {
                RequestError::HeaderName {
                    name: h.name.clone(),
                    source,
                }
            })?;
            if name == header::HOST {
                host_header = Some(h.value.clone());
                continue;
            }
            let value =
                HeaderValue::from_str(&h.value).map_err(|source| RequestError::HeaderValue {
                    name: h.name.clone(),
                    source,
                })?;
            headers.append(name, value);
        }
        // Go's rules: a default User-Agent and Accept unless given; a header
        // given as empty is not sent.
        if !headers.contains_key(header::USER_AGENT) {
            let ua = format!("kube-{purpose}/{KUBE_VERSION}");
            if let Ok(v) = HeaderValue::from_str(&ua) {
                headers.insert(header::USER_AGENT, v);
            }
        }
        if !headers.contains_key(header::ACCEPT) {
            headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        }
        for name in [header::USER_AGENT, header::ACCEPT] {
            if headers.get(&name).is_some_and(|v| v.is_empty()) {
                headers.remove(&name);
            }
        }
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        Ok(HttpRequest {
            scheme,
            host: action.host.clone().filter(|h| !h.is_empty()),
            port,
            target: normalize_target(action.path.as_deref().unwrap_or("")),
            headers,
            host_header: host_header.filter(|h| !h.is_empty()),
        })
    }

    /// The first URL, with `default_host` (the pod's address) unless the
    /// action names a host.
    pub fn url(&self, default_host: &str) -> Url {
        Url {
            scheme: self.scheme,
            host: self
                .host
                .clone()
                .unwrap_or_else(|| default_host.to_string()),
            port: self.port,
            target: self.target.clone(),
        }
    }
}

/// A path as a request target: a leading '/', no fragment, and bytes that
/// may not appear in a URL percent-encoded (Go's url.Parse is as lenient).
fn normalize_target(path: &str) -> String {
    let path = path.split('#').next().unwrap_or("");
    let mut out = String::with_capacity(path.len() + 1);
    if !path.starts_with('/') {
        out.push('/');
    }
    for b in path.bytes() {
        if b.is_ascii_graphic() && !b"\"<>\\^`{|}".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Shared state of all HTTP probes: one TLS configuration for the process.
#[derive(Default)]
pub struct HttpProber {
    tls: OnceLock<Result<tokio_rustls::TlsConnector, rustls::Error>>,
}

/// One response: status, Location, and at most MAX_OUTPUT bytes of body.
struct Response {
    status: u16,
    location: Option<String>,
    body: Vec<u8>,
}

impl HttpProber {
    pub fn new() -> Self {
        Self::default()
    }

    /// GETs `url` following Go's redirect rules, within `timeout` overall.
    pub async fn probe(&self, req: &HttpRequest, url: Url, timeout: Duration) -> Outcome {
        // What the request was doing when the deadline hit, for the message.
        let reading_body = AtomicBool::new(false);
        let redirected = std::sync::Mutex::new(None);
        let fut = self.follow(req, &url, &reading_body, &redirected);
        match tokio::time::timeout(timeout, fut).await {
            Ok(o) => o,
            Err(_) => {
                let current = redirected
                    .lock()
                    .ok()
                    .and_then(|u| u.as_ref().map(Url::to_string))
                    .unwrap_or_else(|| url.to_string());
                let what = if reading_body.load(Ordering::Relaxed) {
                    "Client.Timeout or context cancellation while reading body"
                } else {
                    "Client.Timeout exceeded while awaiting headers"
                };
                Outcome::Failure(format!(
                    "Get {current:?}: context deadline exceeded ({what})"
                ))
            }
        }
    }

    async fn follow(
        &self,
        req: &HttpRequest,
        first: &Url,
        reading_body: &AtomicBool,
        redirected: &std::sync::Mutex<Option<Url>>,
    ) -> Outcome {
        let mut url = first.clone();
        let mut host_header = req.host_header.clone();
        let mut redirects = 0;
        loop {
            reading_body.store(false, Ordering::Relaxed);
            let resp = match self
                .fetch(&url, &req.headers, host_header.as_deref(), reading_body)
                .await
            {
                Ok(r) => r,
                // Go turns transport errors into failures too.
                Err(e) => return Outcome::Failure(format!("Get {:?}: {e}", url.to_string())),
            };
            let redirect = matches!(resp.status, 301 | 302 | 303 | 307 | 308);
            if let (true, Some(loc)) = (redirect, resp.location.as_deref()) {
                let Some(next) = resolve_location(&url, loc) else {
                    return Outcome::Failure(format!(
                        "Get {:?}: failed to parse Location header {loc:?}",
                        url.to_string()
                    ));
                };
                // Another host ends the chain; Go counts it as success with
                // a warning.
                if !next.host.eq_ignore_ascii_case(&first.host) {
                    return warning(&resp.body);
                }
                if redirects >= MAX_REDIRECTS {
                    return Outcome::Failure(format!("Get {loc:?}: stopped after 10 redirects"));
                }
                redirects += 1;
                // Go keeps a Host override only across relative redirects.
                if is_absolute(loc) {
                    host_header = None;
                }
                url = next;
                if let Ok(mut r) = redirected.lock() {
                    *r = Some(url.clone());
                }
                continue;
            }
            return match resp.status {
                200..=299 => Outcome::Success(String::from_utf8_lossy(&resp.body).into_owned()),
                300..=399 => warning(&resp.body),
                s => Outcome::Failure(format!("HTTP probe failed with statuscode: {s}")),
            };
        }
    }

    /// One request on a new connection.
    async fn fetch(
        &self,
        url: &Url,
        headers: &HeaderMap,
        host_header: Option<&str>,
        reading_body: &AtomicBool,
    ) -> Result<Response, TransportError> {
        let addr = join_host_port(&url.host, url.port);
        let tcp = dial(&url.host, url.port).await?;
        // Go sends the URL's host:port unless a Host header overrides it.
        let host = host_header.unwrap_or(&addr);
        let mut builder = http::Request::get(url.target.as_str()).header(header::HOST, host);
        if let Some(h) = builder.headers_mut() {
            h.extend(headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let request = builder
            .body(Empty::<Bytes>::new())
            .map_err(TransportError::Request)?;
        match url.scheme {
            Scheme::Http => exchange(tcp, request, reading_body).await,
            Scheme::Https => {
                let tls = self.tls()?;
                let name = rustls::pki_types::ServerName::try_from(url.host.clone()).map_err(
                    |source| TransportError::ServerName {
                        name: url.host.clone(),
                        source,
                    },
                )?;
                let stream = tls.connect(name, tcp).await.map_err(TransportError::Tls)?;
                exchange(stream, request, reading_body).await
            }
        }
    }

    /// The process-wide TLS connector, built on first use.
    fn tls(&self) -> Result<tokio_rustls::TlsConnector, TransportError> {
        self.tls
            .get_or_init(|| tls_config().map(tokio_rustls::TlsConnector::from))
            .clone()
            .map_err(TransportError::TlsSetup)
    }
}

fn warning(body: &[u8]) -> Outcome {
    Outcome::Warning(format!(
        "Probe terminated redirects, Response body: {}",
        String::from_utf8_lossy(body)
    ))
}

/// Sends `request` over `io` and reads the response, driving the
/// connection in the same task (no task per probe).
async fn exchange<T>(
    io: T,
    request: http::Request<Empty<Bytes>>,
    reading_body: &AtomicBool,
) -> Result<Response, TransportError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        // Go writes canonical header names; some servers care.
        .title_case_headers(true)
        .handshake::<_, Empty<Bytes>>(TokioIo::new(io))
        .await
        .map_err(TransportError::Handshake)?;
    let work = async move {
        let resp = sender
            .send_request(request)
            .await
            .map_err(TransportError::Exchange)?;
        reading_body.store(true, Ordering::Relaxed);
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = Vec::new();
        // Failures don't show the body; don't read it.
        if status < 400 {
            let mut incoming = resp.into_body();
            while body.len() < MAX_OUTPUT {
                match incoming.frame().await {
                    None => break,
                    Some(Ok(f)) => {
                        if let Ok(d) = f.into_data() {
                            let n = d.len().min(MAX_OUTPUT - body.len());
                            body.extend_from_slice(&d[..n]);
                        }
                    }
                    Some(Err(e)) => return Err(TransportError::Exchange(e)),
                }
            }
        }
        Ok(Response {
            status,
            location,
            body,
        })
    };
    let mut work = std::pin::pin!(work);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        biased;
        r = &mut work => r,
        // The connection ended first (closed, or an error the request will
        // report too): let the request finish with what it got.
        _ = &mut conn => work.await,
    }
}

/// hyper's error with its cause ("connection closed before message
/// completed", "connection reset by peer", ...).
fn hyper_error(e: &hyper::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            msg = format!("{msg}: {}", super::tcp::dial_error(io));
        } else {
            msg = format!("{msg}: {s}");
        }
        src = s.source();
    }
    msg
}

fn is_absolute(loc: &str) -> bool {
    loc.starts_with("//") || loc.split_once("://").is_some_and(|(s, _)| !s.contains('/'))
}

/// The URL a Location header points to, relative to `base`.
pub fn resolve_location(base: &Url, loc: &str) -> Option<Url> {
    let loc = loc.trim();
    let (scheme, rest) = if let Some((s, rest)) = loc.split_once("://") {
        if s.contains('/') {
            (None, loc)
        } else {
            match s.to_ascii_lowercase().as_str() {
                "http" => (Some(Scheme::Http), rest),
                "https" => (Some(Scheme::Https), rest),
                _ => return None,
            }
        }
    } else if let Some(rest) = loc.strip_prefix("//") {
        (Some(base.scheme), rest)
    } else {
        (None, loc)
    };
    if let Some(scheme) = scheme {
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        let (host, port) = split_authority(authority, scheme)?;
        return Some(Url {
            scheme,
            host,
            port,
            target: normalize_target(path),
        });
    }
    let target = if loc.starts_with('/') {
        normalize_target(loc)
    } else if loc.starts_with('?') {
        let path = base.target.split('?').next().unwrap_or("/");
        normalize_target(&format!("{path}{loc}"))
    } else {
        let path = base.target.split('?').next().unwrap_or("/");
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        normalize_target(&format!("{dir}/{loc}"))
    };
    Some(Url {
        target,
        ..base.clone()
    })
}

fn split_authority(a: &str, scheme: Scheme) -> Option<(String, u16)> {
    if let Some(rest) = a.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) if !p.is_empty() => p.parse().ok()?,
            _ => scheme.default_port(),
        };
        return Some((host.to_string(), port));
    }
    match a.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() => Some((h.to_string(), p.parse().ok()?)),
        Some((h, _)) => Some((h.to_string(), scheme.default_port())),
        None if a.is_empty() => None,
        None => Some((a.to_string(), scheme.default_port())),
    }
}

/// TLS as the Go kubelet's probes do it: any certificate is accepted
/// (InsecureSkipVerify), but the handshake signatures are still checked.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AcceptAnyCert(provider.clone()));
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    use http::{Response as HttpResponse, StatusCode};
    use http_body_util::Full;
    use hyper::body::Incoming;
    use k8s_openapi::api::core::v1::{ContainerPort, HTTPHeader};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    /// A local server: /ok, /500, /same (302 to /ok), /other (302 to
    /// another host name), /loop (302 to itself), /slow (no answer for
    /// 5 s), /headers (echoes the request head), /big (20 KiB).
    struct Server {
        port: u16,
        hits: Arc<AtomicUsize>,
    }

    async fn handle(
        req: http::Request<Incoming>,
        port: u16,
    ) -> Result<HttpResponse<Full<Bytes>>, std::convert::Infallible> {
        let redirect = |to: String| {
            HttpResponse::builder()
                .status(StatusCode::FOUND)
                .header(header::LOCATION, to)
                .body(Full::new(Bytes::from_static(b"moved")))
                .unwrap()
        };
        let ok = |b: Bytes| HttpResponse::new(Full::new(b));
        Ok(match req.uri().path() {
            "/ok" => ok(Bytes::from_static(b"fine")),
            "/500" => HttpResponse::builder()
                .status(500)
                .body(Full::new(Bytes::from_static(b"broken")))
                .unwrap(),
            "/same" => redirect("/ok".into()),
            "/other" => redirect(format!("http://localhost:{port}/ok")),
            "/loop" => redirect("/loop".into()),
            "/slow" => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                ok(Bytes::new())
            }
            "/headers" => {
                let mut s = String::new();
                for (k, v) in req.headers() {
                    s.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("")));
                }
                ok(Bytes::from(s))
            }
            "/big" => ok(Bytes::from(vec![b'x'; 20 * 1024])),
            _ => HttpResponse::builder()
                .status(404)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        })
    }

    async fn server(tls: Option<tokio_rustls::TlsAcceptor>) -> Server {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else { return };
                h.fetch_add(1, Ordering::SeqCst);
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |r| handle(r, port));
                    let b = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(a) => {
                            if let Ok(s) = a.accept(s).await {
                                let _ = b.serve_connection(TokioIo::new(s), svc).await;
                            }
                        }
                        None => {
                            let _ = b.serve_connection(TokioIo::new(s), svc).await;
                        }
                    }
                });
            }
        });
        Server { port, hits }
    }

    fn container() -> Container {
        Container {
            name: "web".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    fn action(port: u16, path: &str) -> HTTPGetAction {
        HTTPGetAction {
            port: IntOrString::Int(i32::from(port)),
            path: Some(path.into()),
            ..Default::default()
        }
    }

    async fn get(port: u16, path: &str, timeout: Duration) -> Outcome {
        let req = HttpRequest::new(&action(port, path), &container(), "probe").unwrap();
        HttpProber::new()
            .probe(&req, req.url("127.0.0.1"), timeout)
            .await
    }

    const T: Duration = Duration::from_secs(2);

    #[tokio::test]
    async fn status_codes_and_body() {
        let s = server(None).await;
        assert_eq!(get(s.port, "/ok", T).await, Outcome::Success("fine".into()));
        assert_eq!(
            get(s.port, "/500", T).await,
            Outcome::Failure("HTTP probe failed with statuscode: 500".into())
        );
        let Outcome::Success(body) = get(s.port, "/big", T).await else {
            panic!("/big must succeed");
        };
        assert_eq!(body.len(), MAX_OUTPUT, "the body is read up to 10 KiB");
    }

    #[tokio::test]
    async fn redirects_follow_go_rules() {
        let s = server(None).await;
        assert_eq!(
            get(s.port, "/same", T).await,
            Outcome::Success("fine".into())
        );
        assert_eq!(
            s.hits.load(Ordering::SeqCst),
            2,
            "one connection per request"
        );
        assert_eq!(
            get(s.port, "/other", T).await,
            Outcome::Warning("Probe terminated redirects, Response body: moved".into())
        );
        s.hits.store(0, Ordering::SeqCst);
        assert_eq!(
            get(s.port, "/loop", T).await,
            Outcome::Failure("Get \"/loop\": stopped after 10 redirects".into())
        );
        assert_eq!(s.hits.load(Ordering::SeqCst), 11, "10 redirects followed");
    }

    #[tokio::test]
    async fn refused_and_timeout() {
        let s = server(None).await;
        let Outcome::Failure(m) = get(s.port, "/slow", Duration::from_millis(300)).await else {
            panic!("/slow must time out");
        };
        assert_eq!(
            m,
            format!(
                "Get \"http://127.0.0.1:{}/slow\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                s.port
            )
        );
        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert_eq!(
            get(free, "/", T).await,
            Outcome::Failure(format!(
                "Get \"http://127.0.0.1:{free}/\": dial tcp 127.0.0.1:{free}: connect: connection refused"
            ))
        );
    }

    #[tokio::test]
    async fn headers_host_override_and_named_port() {
        let s = server(None).await;
        let mut a = action(s.port, "headers");
        a.http_headers = Some(vec![
            HTTPHeader {
                name: "Host".into(),
                value: "example.test".into(),
            },
            HTTPHeader {
                name: "X-Custom".into(),
                value: "1".into(),
            },
            HTTPHeader {
                name: "x-custom".into(),
                value: "2".into(),
            },
        ]);
        let req = HttpRequest::new(&a, &container(), "probe").unwrap();
        assert_eq!(req.target, "/headers");
        let Outcome::Success(body) = HttpProber::new().probe(&req, req.url("127.0.0.1"), T).await
        else {
            panic!("/headers must succeed");
        };
        for want in [
            "host: example.test\n",
            "user-agent: kube-probe/1.36\n",
            "accept: */*\n",
            "connection: close\n",
            "x-custom: 1\n",
            "x-custom: 2\n",
        ] {
            assert!(body.contains(want), "{want:?} missing from:\n{body}");
        }
        // Without an override, Host is the URL's host:port; an empty
        // Accept is not sent; hooks say kube-lifecycle.
        let mut a = action(s.port, "/headers");
        a.http_headers = Some(vec![HTTPHeader {
            name: "Accept".into(),
            value: String::new(),
        }]);
        let req = HttpRequest::new(&a, &container(), "lifecycle").unwrap();
        let Outcome::Success(body) = HttpProber::new().probe(&req, req.url("127.0.0.1"), T).await
        else {
            panic!("/headers must succeed");
        };
        assert!(
            body.contains(&format!("host: 127.0.0.1:{}\n", s.port)),
            "{body}"
        );
        assert!(body.contains("user-agent: kube-lifecycle/1.36\n"), "{body}");
        assert!(!body.contains("accept:"), "{body}");

        let mut a = action(0, "/");
        a.port = IntOrString::String("http".into());
        assert_eq!(
            HttpRequest::new(&a, &container(), "probe").unwrap().port,
            8080
        );
        a.port = IntOrString::String("9090".into());
        assert_eq!(
            HttpRequest::new(&a, &container(), "probe").unwrap().port,
            9090
        );
        a.port = IntOrString::String("nope".into());
        assert!(HttpRequest::new(&a, &container(), "probe").is_err());
        a.port = IntOrString::Int(70000);
        assert!(HttpRequest::new(&a, &container(), "probe").is_err());
    }

    #[test]
    fn request_errors_name_the_field() {
        let err = |a: &HTTPGetAction| {
            HttpRequest::new(a, &container(), "probe")
                .unwrap_err()
                .to_string()
        };
        let mut a = action(80, "/");
        a.scheme = Some("Gopher".into());
        assert_eq!(err(&a), "httpGet.scheme \"gopher\" is not HTTP or HTTPS");
        let mut a = action(80, "/");
        a.http_headers = Some(vec![HTTPHeader {
            name: "bad name".into(),
            value: "1".into(),
        }]);
        assert_eq!(
            err(&a),
            "httpGet.httpHeaders: invalid header name \"bad name\""
        );
        let mut a = action(80, "/");
        a.http_headers = Some(vec![HTTPHeader {
            name: "X-Ok".into(),
            value: "line\nbreak".into(),
        }]);
        assert_eq!(
            err(&a),
            "httpGet.httpHeaders: invalid value for header \"X-Ok\""
        );
    }

    #[tokio::test]
    async fn https_with_a_self_signed_certificate() {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()),
        );
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
        let s = server(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await;
        let mut a = action(s.port, "/ok");
        a.scheme = Some("HTTPS".into());
        let req = HttpRequest::new(&a, &container(), "probe").unwrap();
        let prober = HttpProber::new();
        for host in ["127.0.0.1", "localhost"] {
            assert_eq!(
                prober.probe(&req, req.url(host), T).await,
                Outcome::Success("fine".into()),
                "{host}"
            );
        }
        // Plain HTTP to the TLS port fails, it doesn't hang.
        let Outcome::Failure(_) = get(s.port, "/ok", T).await else {
            panic!("HTTP to an HTTPS port must fail");
        };
    }

    #[test]
    fn locations_resolve_like_urls() {
        let base = Url {
            scheme: Scheme::Http,
            host: "10.0.0.1".into(),
            port: 8080,
            target: "/a/b?x=1".into(),
        };
        let r = |l| resolve_location(&base, l).map(|u| u.to_string());
        assert_eq!(r("/c").as_deref(), Some("http://10.0.0.1:8080/c"));
        assert_eq!(r("c").as_deref(), Some("http://10.0.0.1:8080/a/c"));
        assert_eq!(r("?y=2").as_deref(), Some("http://10.0.0.1:8080/a/b?y=2"));
        assert_eq!(r("https://h:9/z").as_deref(), Some("https://h:9/z"));
        assert_eq!(r("//h/z").as_deref(), Some("http://h:80/z"));
        assert_eq!(r("http://[::1]:81").as_deref(), Some("http://[::1]:81/"));
        assert_eq!(r("ftp://h/"), None);
        assert!(is_absolute("http://x/") && is_absolute("//x") && !is_absolute("/a://b"));
        assert_eq!(normalize_target("a b"), "/a%20b");
    }
}
