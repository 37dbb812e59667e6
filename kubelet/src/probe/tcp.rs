//! tcpSocket probes (the Go kubelet's `pkg/probe/tcp`): success when a TCP
//! connection opens within the timeout; the connection is closed at once.

use std::time::Duration;

use tokio::net::TcpStream;

use super::Outcome;

/// Connects to `host:port` within `timeout`. Errors are failures, with Go's
/// wording ("dial tcp 10.0.0.1:80: connect: connection refused").
pub async fn probe(host: &str, port: u16, timeout: Duration) -> Outcome {
    let addr = join_host_port(host, port);
    match tokio::time::timeout(timeout, dial(host, port)).await {
        // Dropping the stream closes it. Berth sets no SO_LINGER (Go uses
        // 1 s): a lingering close would block berth's only thread.
        Ok(Ok(_stream)) => Outcome::Success(String::new()),
        Ok(Err(e)) => Outcome::Failure(e.to_string()),
        Err(_) => Outcome::Failure(format!("dial tcp {addr}: i/o timeout")),
    }
}

/// A TCP connection that could not be opened, worded as Go words it
/// ("dial tcp 10.0.0.1:80: connect: connection refused").
#[derive(Debug, thiserror::Error)]
#[error("dial tcp {addr}: {}", dial_error(.source))]
pub struct DialError {
    /// `host:port`, as Go's JoinHostPort writes it.
    pub addr: String,
    #[source]
    pub source: std::io::Error,
}

/// Opens a TCP connection (the caller bounds the time).
pub async fn dial(host: &str, port: u16) -> Result<TcpStream, DialError> {
    let s = TcpStream::connect((host, port))
        .await
        .map_err(|source| DialError {
            addr: join_host_port(host, port),
            source,
        })?;
    // Requests are written in one go; don't wait for ACKs.
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// An I/O error as Go's net package words it, for messages users compare
/// with the Go kubelet's.
pub fn dial_error(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => "connect: connection refused".into(),
        K::HostUnreachable => "connect: no route to host".into(),
        K::NetworkUnreachable => "connect: network is unreachable".into(),
        K::TimedOut => "i/o timeout".into(),
        K::ConnectionReset => "read: connection reset by peer".into(),
        _ => e.to_string(),
    }
}

/// `host:port`, with brackets around an IPv6 address (Go's JoinHostPort).
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn open_and_closed_ports() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(
            probe("127.0.0.1", port, Duration::from_secs(1)).await,
            Outcome::Success(String::new())
        );
        drop(l);
        let out = probe("127.0.0.1", port, Duration::from_secs(1)).await;
        assert_eq!(
            out,
            Outcome::Failure(format!(
                "dial tcp 127.0.0.1:{port}: connect: connection refused"
            ))
        );
    }

    #[test]
    fn ipv6_is_bracketed() {
        assert_eq!(join_host_port("::1", 80), "[::1]:80");
        assert_eq!(join_host_port("10.0.0.1", 80), "10.0.0.1:80");
    }
}
