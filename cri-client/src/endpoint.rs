//! CRI endpoints: parsing `unix:///path` (or a bare path, as crictl accepts)
//! and opening a gRPC channel over the socket.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint as TonicEndpoint};

/// The sockets tried, in order, when no endpoint is configured: containerd,
/// CRI-O, cri-dockerd. Same list as crictl, but tried without its delays.
pub const DEFAULT_ENDPOINTS: &[&str] = &[
    "unix:///run/containerd/containerd.sock",
    "unix:///run/crio/crio.sock",
    "unix:///var/run/cri-dockerd.sock",
];

/// A parsed CRI endpoint. Only unix sockets exist for CRI on Linux.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    path: PathBuf,
}

/// Why an endpoint could not be parsed or reached.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("invalid runtime endpoint {0:?}: expected unix:///path/to/socket or an absolute path")]
    Invalid(String),
    #[error(
        "unsupported runtime endpoint {endpoint:?}: scheme {scheme:?} is not supported on Linux, use unix://"
    )]
    UnsupportedScheme { endpoint: String, scheme: String },
    #[error("no CRI runtime listening at {endpoint} ({reason}): is {hint} running?")]
    NotListening {
        endpoint: String,
        reason: String,
        hint: &'static str,
    },
    #[error("connecting to {endpoint} timed out after {timeout:?}")]
    ConnectTimeout { endpoint: String, timeout: Duration },
    #[error("none of the default runtime endpoints answered; tried:\n{}", tried.join("\n"))]
    NoneAnswered { tried: Vec<String> },
}

impl Endpoint {
    /// Parses `unix:///path`, `unix:/path`, `unix://path` or a bare absolute path.
    pub fn parse(s: &str) -> Result<Self, EndpointError> {
        let s = s.trim();
        let path = if let Some(rest) = s.strip_prefix("unix://") {
            rest
        } else if let Some(rest) = s.strip_prefix("unix:") {
            rest
        } else if let Some((scheme, _)) = s.split_once("://") {
            return Err(EndpointError::UnsupportedScheme {
                endpoint: s.to_string(),
                scheme: scheme.to_string(),
            });
        } else {
            s
        };
        // `unix://relative` is how some users spell a relative socket; crictl
        // joins it to the working directory, Berth insists on absolute paths
        // so that a config file means the same thing from anywhere.
        if !path.starts_with('/') || path.contains('\0') {
            return Err(EndpointError::Invalid(s.to_string()));
        }
        Ok(Endpoint {
            path: PathBuf::from(path),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A guess at the runtime behind the socket, for error messages.
    fn runtime_hint(&self) -> &'static str {
        let p = self.path.to_string_lossy();
        if p.contains("crio") {
            "CRI-O"
        } else if p.contains("dockerd") {
            "cri-dockerd"
        } else {
            "containerd"
        }
    }

    /// Opens an HTTP/2 channel over the socket, failing fast (with a message a
    /// user can act on) when nothing listens there.
    pub async fn connect(&self, timeout: Duration) -> Result<Channel, EndpointError> {
        let path = self.path.clone();
        let connector = tower::service_fn(move |_: http::Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, io::Error>(TokioIo::new(stream))
            }
        });
        // The authority is never used on a unix socket, but tonic needs a URI.
        let tonic_ep = TonicEndpoint::from_static("http://localhost").connect_timeout(timeout);
        let channel = tonic_ep.connect_with_connector(connector);
        match tokio::time::timeout(timeout, channel).await {
            Ok(Ok(ch)) => Ok(ch),
            Ok(Err(e)) => Err(EndpointError::NotListening {
                endpoint: self.to_string(),
                reason: io_reason(&e),
                hint: self.runtime_hint(),
            }),
            Err(_) => Err(EndpointError::ConnectTimeout {
                endpoint: self.to_string(),
                timeout,
            }),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unix://{}", self.path.display())
    }
}

impl std::str::FromStr for Endpoint {
    type Err = EndpointError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Endpoint::parse(s)
    }
}

/// The innermost io::Error's text ("No such file or directory"), which is
/// what a user needs, rather than tonic's "transport error".
fn io_reason(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut last = e.to_string();
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return strip_os_error(&io.to_string());
        }
        last = err.to_string();
        cur = err.source();
    }
    last
}

/// "No such file or directory (os error 2)" -> "No such file or directory".
fn strip_os_error(s: &str) -> String {
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s.to_string(),
    }
}

/// Connects to the first default endpoint that answers. All candidates are
/// tried at once, so a missing containerd costs nothing (unlike crictl, which
/// waits on each in turn). Returns the endpoint used along with the channel.
pub async fn connect_default(timeout: Duration) -> Result<(Endpoint, Channel), EndpointError> {
    let candidates: Vec<Endpoint> = DEFAULT_ENDPOINTS
        .iter()
        .filter_map(|s| Endpoint::parse(s).ok())
        .collect();
    let attempts = candidates.iter().map(|ep| ep.connect(timeout));
    let results = futures_util::future::join_all(attempts).await;
    let mut tried = Vec::new();
    for (ep, res) in candidates.into_iter().zip(results) {
        match res {
            Ok(ch) => return Ok((ep, ch)),
            Err(e) => tried.push(format!("  {ep}: {}", short_reason(&e))),
        }
    }
    Err(EndpointError::NoneAnswered { tried })
}

fn short_reason(e: &EndpointError) -> String {
    match e {
        EndpointError::NotListening { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_unix_forms() {
        for s in [
            "unix:///run/containerd/containerd.sock",
            "unix:/run/containerd/containerd.sock",
            "/run/containerd/containerd.sock",
            "  unix:///run/containerd/containerd.sock\n",
        ] {
            let ep = Endpoint::parse(s).unwrap();
            assert_eq!(
                ep.path(),
                Path::new("/run/containerd/containerd.sock"),
                "{s}"
            );
            assert_eq!(ep.to_string(), "unix:///run/containerd/containerd.sock");
        }
    }

    #[test]
    fn rejects_bad_endpoints() {
        let e = Endpoint::parse("tcp://127.0.0.1:1234").unwrap_err();
        assert!(e.to_string().contains("scheme \"tcp\""), "{e}");
        let e = Endpoint::parse("npipe:////./pipe/containerd").unwrap_err();
        assert!(e.to_string().contains("npipe"), "{e}");
        for bad in ["", "relative.sock", "unix://relative.sock", "unix:///a\0b"] {
            assert!(
                matches!(Endpoint::parse(bad), Err(EndpointError::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn missing_socket_names_endpoint_and_reason() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("containerd.sock");
        let ep = Endpoint::parse(sock.to_str().unwrap()).unwrap();
        let err = ep.connect(Duration::from_secs(2)).await.unwrap_err();
        let msg = err.to_string();
        assert_eq!(
            msg,
            format!(
                "no CRI runtime listening at unix://{} (No such file or directory): is containerd running?",
                sock.display()
            )
        );
    }

    #[tokio::test]
    async fn refused_socket_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("crio.sock");
        // A socket file with no listener behind it: connect is refused.
        drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
        let ep = Endpoint::parse(sock.to_str().unwrap()).unwrap();
        let msg = ep
            .connect(Duration::from_secs(2))
            .await
            .unwrap_err()
            .to_string();
        assert!(msg.contains("Connection refused"), "{msg}");
        assert!(msg.ends_with("is CRI-O running?"), "{msg}");
    }
}
