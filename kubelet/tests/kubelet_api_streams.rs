//! The stream routes (/exec, /attach, /portForward, /run) over the real
//! TLS server, with a fake runtime whose URLs point at a plain TCP
//! "streaming server" in the test: what is relayed, what is not, and what
//! each failure answers. The real runtime is in tests/e2e
//! (kubelet_streams.rs).

#![allow(clippy::unwrap_used)]

mod api_common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api_common::{Ca, connect, request, server_config, start};
use futures_util::future::BoxFuture;
use kubelet::server::api::Limits;
use kubelet::server::streaming::{
    StreamOptions, StreamingError, StreamingRuntime, Target, handlers,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// What the fake runtime was asked, and the streaming server it points at.
struct FakeRuntime {
    backend: String,
    calls: Mutex<Vec<String>>,
}

impl FakeRuntime {
    fn url(&self, t: &Target, what: &str) -> Result<String, StreamingError> {
        match t.pod.as_str() {
            "missing" => Err(StreamingError::PodNotFound),
            "nocontainer" => Err(StreamingError::ContainerNotFound(t.container.clone())),
            "expired" => Ok(format!("{}/expired", self.backend)),
            "closed" => Ok("http://127.0.0.1:1/exec/x".into()),
            "tls" => Ok("https://127.0.0.1:1/exec/x".into()),
            _ => Ok(format!("{}/{what}/token", self.backend)),
        }
    }
}

impl StreamingRuntime for FakeRuntime {
    fn get_exec<'a>(
        &'a self,
        t: &'a Target,
        cmd: Vec<String>,
        o: StreamOptions,
    ) -> BoxFuture<'a, Result<String, StreamingError>> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("exec {cmd:?} {o:?}"));
        Box::pin(async move { self.url(t, "exec") })
    }
    fn get_attach<'a>(
        &'a self,
        t: &'a Target,
        o: StreamOptions,
    ) -> BoxFuture<'a, Result<String, StreamingError>> {
        self.calls.lock().unwrap().push(format!("attach {o:?}"));
        Box::pin(async move { self.url(t, "attach") })
    }
    fn get_port_forward<'a>(
        &'a self,
        t: &'a Target,
        ports: Vec<i32>,
    ) -> BoxFuture<'a, Result<String, StreamingError>> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("portforward {ports:?}"));
        Box::pin(async move { self.url(t, "portforward") })
    }
    fn run_in_container<'a>(
        &'a self,
        t: &'a Target,
        cmd: Vec<String>,
    ) -> BoxFuture<'a, Result<Vec<u8>, StreamingError>> {
        Box::pin(async move {
            self.url(t, "run")?;
            Ok(format!("ran {cmd:?}\n").into_bytes())
        })
    }
}

/// A streaming server: `/expired` answers 404; any other path switches
/// protocols and echoes. Each request's head is recorded; `closed` learns
/// when a stream's client side went away.
struct Backend {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    closed: tokio::sync::mpsc::UnboundedReceiver<()>,
}

async fn backend() -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let (tx, closed) = tokio::sync::mpsc::unbounded_channel();
    let seen = heads.clone();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut conn = BufReader::new(conn);
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if conn.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push_str(&line);
                    if line == "\r\n" {
                        break;
                    }
                }
                seen.lock().unwrap().push(head.clone());
                if head.starts_with("GET /expired") || head.starts_with("POST /expired") {
                    let body = "token expired";
                    let resp = format!(
                        "HTTP/1.1 404 Not Found\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    conn.get_mut().write_all(resp.as_bytes()).await.unwrap();
                    return;
                }
                conn.get_mut()
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: SPDY/3.1\r\nx-stream-protocol-version: v4.channel.k8s.io\r\n\r\n")
                    .await
                    .unwrap();
                let mut buf = [0u8; 4096];
                loop {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if conn.get_mut().write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = tx.send(());
            });
        }
    });
    Backend {
        addr,
        heads,
        closed,
    }
}

async fn setup() -> (SocketAddr, Backend, Arc<FakeRuntime>, tempfile::TempDir, Ca) {
    let be = backend().await;
    let runtime = Arc::new(FakeRuntime {
        backend: format!("http://{}", be.addr),
        calls: Mutex::new(Vec::new()),
    });
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test-ca");
    let ca_file = dir.path().join("ca.crt");
    ca.write(&ca_file);
    let mut config = server_config(&dir.path().join("pki"));
    config.authentication.client_ca_file = Some(ca_file);
    let addr = start(config, None, Limits::default(), handlers(runtime.clone())).await;
    (addr, be, runtime, dir, ca)
}

const UPGRADE: [(&str, &str); 3] = [
    ("connection", "Upgrade"),
    ("upgrade", "SPDY/3.1"),
    ("x-stream-protocol-version", "v4.channel.k8s.io"),
];

#[tokio::test]
async fn an_upgrade_is_relayed_and_spliced() {
    let (addr, mut be, runtime, _dir, ca) = setup().await;
    let alice = ca.client("alice", &["devs"]);
    let mut tls = connect(addr, Some(&alice)).await.unwrap();
    tls.write_all(
        b"POST /exec/default/web/c?command=sh&command=-c&command=echo%20hi&input=1&output=1&tty=1 HTTP/1.1\r\n\
          host: localhost\r\nconnection: Upgrade\r\nupgrade: SPDY/3.1\r\n\
          x-stream-protocol-version: v4.channel.k8s.io\r\nx-stream-protocol-version: v3.channel.k8s.io\r\n\
          authorization: Bearer secret-token\r\n\r\n",
    )
    .await
    .unwrap();
    // The 101 and the runtime's choice of protocol.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tls.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        head.contains("x-stream-protocol-version: v4.channel.k8s.io"),
        "{head}"
    );
    // Bytes both ways, through the kubelet.
    for msg in [
        &b"hello"[..],
        &[0u8, 1, 2, 255][..],
        &vec![7u8; 100_000][..],
    ] {
        tls.write_all(msg).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        tls.read_exact(&mut back).await.unwrap();
        assert_eq!(back, msg);
    }
    // What reached the runtime: the stream's headers, the URL's path, no
    // kubelet credentials, the runtime's own host.
    let sent = be.heads.lock().unwrap()[0].to_ascii_lowercase();
    assert!(sent.starts_with("post /exec/token http/1.1\r\n"), "{sent}");
    assert!(sent.contains("upgrade: spdy/3.1"), "{sent}");
    assert!(
        sent.contains("x-stream-protocol-version: v3.channel.k8s.io"),
        "{sent}"
    );
    assert!(!sent.contains("secret-token"), "{sent}");
    assert!(sent.contains(&format!("host: {}", be.addr)), "{sent}");
    assert_eq!(
        runtime.calls.lock().unwrap()[0],
        format!(
            "exec {:?} {:?}",
            ["sh", "-c", "echo hi"],
            StreamOptions {
                stdin: true,
                stdout: true,
                stderr: false,
                tty: true
            }
        )
    );
    // The client leaving closes the runtime's side.
    drop(tls);
    tokio::time::timeout(Duration::from_secs(5), be.closed.recv())
        .await
        .expect("the runtime's connection is closed when the client goes");
}

#[tokio::test]
async fn failures_answer_with_their_status() {
    let (addr, _be, runtime, _dir, ca) = setup().await;
    let alice = ca.client("alice", &[]);
    let up = |path: &'static str| {
        let alice = &alice;
        async move {
            request(addr, Some(alice), "POST", path, &UPGRADE)
                .await
                .unwrap()
        }
    };
    // The runtime's refusal is passed on.
    assert_eq!(
        up("/exec/default/expired/c?command=ls&output=1").await,
        (404, "token expired".into())
    );
    // Nothing listening: 500 naming the address.
    let (code, body) = up("/attach/default/closed/c?output=1").await;
    assert_eq!(code, 500);
    assert!(body.contains("127.0.0.1:1"), "{body}");
    let (code, body) = up("/attach/default/tls/c?output=1").await;
    assert_eq!(code, 500);
    assert!(body.contains("cannot use"), "{body}");
    assert_eq!(
        up("/exec/default/missing/c?command=ls&output=1").await,
        (404, "pod does not exist\n".into())
    );
    assert_eq!(
        up("/exec/default/nocontainer/c?command=ls&output=1").await,
        (500, "container not found (\"c\")\n".into())
    );
    // Options and paths are checked before the runtime is asked.
    let before = runtime.calls.lock().unwrap().len();
    let (code, body) = up("/exec/default/web/c?command=ls").await;
    assert_eq!(
        (code, body.as_str()),
        (
            400,
            "you must specify at least 1 of stdin, stdout, stderr\n"
        )
    );
    assert_eq!(up("/exec/default/web/c?output=1").await.0, 400);
    assert_eq!(up("/exec/default/web/..?command=ls&output=1").await.0, 400);
    assert_eq!(up("/exec/default/web?command=ls&output=1").await.0, 400);
    assert_eq!(
        up("/exec/default/web/c/d/e?command=ls&output=1").await.0,
        400
    );
    assert_eq!(up("/portForward/default/web/uid/extra").await.0, 400);
    assert_eq!(
        runtime.calls.lock().unwrap().len(),
        before,
        "the runtime was not asked"
    );
    // A plain request is no stream.
    let (code, body) = request(
        addr,
        Some(&alice),
        "GET",
        "/exec/default/web/c?command=ls&output=1",
        &[],
    )
    .await
    .unwrap();
    assert_eq!((code, body.as_str()), (400, "Upgrade request required\n"));
    let (code, _) = request(
        addr,
        Some(&alice),
        "PUT",
        "/exec/default/web/c?command=ls&output=1",
        &UPGRADE,
    )
    .await
    .unwrap();
    assert_eq!(code, 405);
    // /run: POST only, the output as the body.
    let (code, body) = request(
        addr,
        Some(&alice),
        "POST",
        "/run/default/web/c?cmd=cat%20/etc/hostname",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(
        (code, body.as_str()),
        (200, "ran [\"cat\", \"/etc/hostname\"]\n")
    );
    assert_eq!(
        request(addr, Some(&alice), "GET", "/run/default/web/c?cmd=ls", &[])
            .await
            .unwrap()
            .0,
        405
    );
    // No certificate: nothing reaches the runtime.
    let before = runtime.calls.lock().unwrap().len();
    let (code, _) = request(
        addr,
        None,
        "POST",
        "/exec/default/web/c?command=ls&output=1",
        &UPGRADE,
    )
    .await
    .unwrap();
    assert_eq!(code, 401);
    assert_eq!(runtime.calls.lock().unwrap().len(), before);
}

#[tokio::test]
async fn websocket_port_forward_names_its_ports() {
    let (addr, _be, runtime, _dir, ca) = setup().await;
    let alice = ca.client("alice", &[]);
    let ws = [
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-protocol", "v4.channel.k8s.io"),
    ];
    let (code, body) = request(addr, Some(&alice), "GET", "/portForward/default/web", &ws)
        .await
        .unwrap();
    assert_eq!(
        (code, body.as_str()),
        (400, "query parameter \"port\" is required\n")
    );
    assert_eq!(
        request(
            addr,
            Some(&alice),
            "GET",
            "/portForward/default/web?port=99999",
            &ws
        )
        .await
        .unwrap()
        .0,
        400
    );
    // Over SPDY the ports travel in the stream, not the query.
    let r = request(
        addr,
        Some(&alice),
        "GET",
        "/portForward/default/web?port=80",
        &UPGRADE,
    )
    .await;
    assert!(r.is_err() || r.as_ref().unwrap().0 == 101, "{r:?}");
    let r = request(
        addr,
        Some(&alice),
        "GET",
        "/portForward/default/web?port=80&port=443",
        &ws,
    )
    .await;
    assert!(r.is_err() || r.as_ref().unwrap().0 == 101, "{r:?}");
    let calls = runtime.calls.lock().unwrap().clone();
    assert_eq!(calls, ["portforward []", "portforward [80, 443]"]);
}
