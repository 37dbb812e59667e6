//! An in-process WebSocket server stands in for the runtime's stream server,
//! speaking the same framing as k8s.io/apimachinery's wsstream.
// tungstenite's handshake callback type returns a large error; not ours to shrink.
#![allow(clippy::unwrap_used, clippy::result_large_err)]

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

use super::*;

type ServerWs = WebSocketStream<TcpStream>;

const TIMEOUT: Duration = Duration::from_secs(10);

/// What the client put in its upgrade request.
#[derive(Debug, Default, Clone)]
struct Seen {
    protocols: String,
    uri: String,
}

/// Serves one WebSocket connection on 127.0.0.1, answering the handshake
/// with subprotocol `pick`, then runs `script` on it.
async fn serve<F, Fut>(
    pick: Option<&'static str>,
    path: &str,
    script: F,
) -> (String, tokio::task::JoinHandle<(Seen, Fut::Output)>)
where
    F: FnOnce(ServerWs) -> Fut + Send + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let seen2 = seen.clone();
        let ws =
            tokio_tungstenite::accept_hdr_async(tcp, move |req: &Request, mut resp: Response| {
                let mut s = seen2.lock().unwrap();
                s.protocols = req
                    .headers()
                    .get("Sec-WebSocket-Protocol")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                s.uri = req.uri().to_string();
                if let Some(p) = pick {
                    resp.headers_mut()
                        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(p));
                }
                Ok(resp)
            })
            .await
            .unwrap();
        let out = script(ws).await;
        let seen = seen.lock().unwrap().clone();
        (seen, out)
    });
    (format!("http://{addr}{path}"), handle)
}

async fn send(ws: &mut ServerWs, channel: u8, payload: &[u8]) {
    ws.send(Message::Binary(framed(channel, payload)))
        .await
        .unwrap();
}

/// Closes from the server side the way the Go server does, then drains so
/// the handshake completes.
async fn close(mut ws: ServerWs) {
    let _ = ws.close(None).await;
    while let Some(Ok(_)) = ws.next().await {}
}

/// Receives the next binary frame, or None on close.
async fn recv(ws: &mut ServerWs) -> Option<Vec<u8>> {
    loop {
        match ws.next().await? {
            Ok(Message::Binary(b)) => return Some(b.to_vec()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

fn exit_status(code: u8) -> Vec<u8> {
    serde_json::json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: exit status {code}"),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
    .to_string()
    .into_bytes()
}

fn noio() -> StreamIo<NoStdin, NoOutput, NoOutput> {
    StreamIo::default()
}

const SUCCESS: &[u8] = br#"{"metadata":{},"status":"Success"}"#;

async fn timed<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(TIMEOUT, f)
        .await
        .expect("test timed out")
}

#[tokio::test]
async fn v4_demuxes_stdout_stderr_and_exit_code() {
    let (url, server) = serve(Some(V4_PROTOCOL), "/exec/tok", |mut ws| async move {
        send(&mut ws, STDOUT, b"").await;
        send(&mut ws, STDOUT, b"out\n").await;
        send(&mut ws, STDERR, b"err\n").await;
        send(&mut ws, ERROR, &exit_status(3)).await;
        close(ws).await;
    })
    .await;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let io = StreamIo::<NoStdin, _, _> {
        stdout: Some(&mut out),
        stderr: Some(&mut err),
        ..Default::default()
    };
    let code = timed(run_remote_command(&url, io)).await.unwrap();
    assert_eq!(code, 3);
    assert_eq!(out, b"out\n");
    assert_eq!(err, b"err\n");
    let (seen, ()) = server.await.unwrap();
    assert_eq!(seen.protocols, "v5.channel.k8s.io, v4.channel.k8s.io");
    assert_eq!(seen.uri, "/exec/tok");
}

#[tokio::test]
async fn v5_signals_stdin_eof_with_close_stream() {
    let (url, server) = serve(Some(V5_PROTOCOL), "/exec/tok", |mut ws| async move {
        let mut frames = Vec::new();
        while let Some(f) = recv(&mut ws).await {
            let done = f == [CLOSE_STREAM, STDIN];
            frames.push(f);
            if done {
                break;
            }
        }
        // Like `cat`: output only after EOF, and the status after that.
        let input: Vec<u8> = frames
            .iter()
            .filter(|f| f.first() == Some(&STDIN))
            .flat_map(|f| f[1..].to_vec())
            .collect();
        send(&mut ws, STDOUT, &input).await;
        send(&mut ws, ERROR, SUCCESS).await;
        close(ws).await;
        frames
    })
    .await;
    let mut out = Vec::new();
    let io = StreamIo::<_, _, NoOutput> {
        stdin: Some(&b"hello"[..]),
        stdout: Some(&mut out),
        ..Default::default()
    };
    let code = timed(run_remote_command(&url, io)).await.unwrap();
    assert_eq!(code, 0);
    assert_eq!(out, b"hello");
    let (_, frames) = server.await.unwrap();
    assert_eq!(frames.last().unwrap(), &vec![CLOSE_STREAM, STDIN]);
    assert_eq!(frames.first().unwrap(), &b"\x00hello".to_vec());
}

#[tokio::test]
async fn v4_stdin_eof_closes_once_output_settles() {
    let (url, server) = serve(Some(V4_PROTOCOL), "/exec/tok", |mut ws| async move {
        let mut echoed = false;
        // Echo stdin slowly; like containerd, end without a status when the
        // client closes.
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(f))) if f.first() == Some(&STDIN) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    send(&mut ws, STDOUT, &f[1..]).await;
                    echoed = true;
                }
                Some(Ok(Message::Close(_))) => return echoed,
                Some(Ok(_)) => {}
                _ => return false,
            }
        }
    })
    .await;
    let mut out = Vec::new();
    let io = StreamIo::<_, _, NoOutput> {
        stdin: Some(&b"hello"[..]),
        stdout: Some(&mut out),
        ..Default::default()
    };
    let code = timed(run_remote_command_with_linger(
        &url,
        io,
        Duration::from_millis(300),
    ))
    .await
    .unwrap();
    assert_eq!(code, 0);
    assert_eq!(out, b"hello");
    let (_, echoed_before_close) = server.await.unwrap();
    assert!(echoed_before_close, "client closed before the echo arrived");
}

#[tokio::test]
async fn status_ends_session_even_while_stdin_is_open() {
    let (url, server) = serve(Some(V4_PROTOCOL), "/exec/tok", |mut ws| async move {
        send(&mut ws, STDOUT, b"x").await;
        send(&mut ws, ERROR, &exit_status(7)).await;
        close(ws).await;
    })
    .await;
    // Stdin that never ends: the session must not wait for it.
    let (_keep_open, stdin) = tokio::io::duplex(64);
    let mut out = Vec::new();
    let io = StreamIo::<_, _, NoOutput> {
        stdin: Some(stdin),
        stdout: Some(&mut out),
        ..Default::default()
    };
    assert_eq!(timed(run_remote_command(&url, io)).await.unwrap(), 7);
    assert_eq!(out, b"x");
    server.await.unwrap();
}

#[tokio::test]
async fn failure_status_message_becomes_remote_error() {
    let (url, _server) = serve(Some(V4_PROTOCOL), "/exec/tok", |mut ws| async move {
        let body = br#"{"metadata":{},"status":"Failure","message":"error executing command in container: no such file","reason":"InternalError","code":500}"#;
        send(&mut ws, ERROR, body).await;
        close(ws).await;
    })
    .await;
    let err = timed(run_remote_command(&url, noio())).await.unwrap_err();
    match err {
        StreamError::Remote(msg) => {
            assert_eq!(msg, "error executing command in container: no such file")
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn close_without_status_is_an_error() {
    let (url, _server) = serve(Some(V4_PROTOCOL), "/exec/tok", close).await;
    let err = timed(run_remote_command(&url, noio())).await.unwrap_err();
    assert!(matches!(err, StreamError::NoStatus { .. }), "{err:?}");
}

#[tokio::test]
async fn resize_frames_are_sent_with_tty() {
    let (url, server) = serve(Some(V4_PROTOCOL), "/exec/tok", |mut ws| async move {
        let mut sizes = Vec::new();
        while sizes.len() < 2 {
            let f = recv(&mut ws).await.unwrap();
            if f.first() == Some(&RESIZE) {
                sizes.push(serde_json::from_slice::<serde_json::Value>(&f[1..]).unwrap());
            }
        }
        send(&mut ws, ERROR, SUCCESS).await;
        close(ws).await;
        sizes
    })
    .await;
    let (tx, rx) = mpsc::channel(4);
    tx.send(TermSize {
        width: 80,
        height: 24,
    })
    .await
    .unwrap();
    tx.send(TermSize {
        width: 120,
        height: 40,
    })
    .await
    .unwrap();
    let io = StreamIo::<NoStdin, _, NoOutput> {
        stdout: Some(tokio::io::sink()),
        tty: true,
        resize: Some(rx),
        ..Default::default()
    };
    assert_eq!(timed(run_remote_command(&url, io)).await.unwrap(), 0);
    let (_, sizes) = server.await.unwrap();
    assert_eq!(sizes[0], serde_json::json!({"Width": 80, "Height": 24}));
    assert_eq!(sizes[1], serde_json::json!({"Width": 120, "Height": 40}));
}

#[tokio::test]
async fn resize_frames_are_withheld_without_tty() {
    let (url, server) = serve(Some(V4_PROTOCOL), "/exec/tok", |mut ws| async move {
        let mut got = Vec::new();
        let _ = tokio::time::timeout(Duration::from_millis(300), async {
            while let Some(f) = recv(&mut ws).await {
                got.push(f);
            }
        })
        .await;
        send(&mut ws, ERROR, SUCCESS).await;
        close(ws).await;
        got
    })
    .await;
    let (tx, rx) = mpsc::channel(4);
    tx.send(TermSize {
        width: 80,
        height: 24,
    })
    .await
    .unwrap();
    let io = StreamIo {
        resize: Some(rx),
        ..noio()
    };
    assert_eq!(timed(run_remote_command(&url, io)).await.unwrap(), 0);
    let (_, got) = server.await.unwrap();
    assert!(got.is_empty(), "client sent {got:?}");
    drop(tx);
}

#[tokio::test]
async fn http_error_on_upgrade_is_reported() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let _ = tcp.read(&mut buf).await;
        let body = "token not found\n";
        let resp = format!(
            "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        tcp.write_all(resp.as_bytes()).await.unwrap();
        let _ = tcp.shutdown().await;
    });
    let err = timed(run_remote_command(
        &format!("http://{addr}/exec/gone"),
        noio(),
    ))
    .await
    .unwrap_err();
    match err {
        StreamError::Rejected { status, body, .. } => {
            assert_eq!(status, 404);
            assert_eq!(body, "token not found");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn unsupported_urls_are_rejected_before_connecting() {
    for url in ["https://127.0.0.1:1/exec/x", "unix:///run/x.sock"] {
        let err = run_remote_command(url, noio()).await.unwrap_err();
        assert!(
            matches!(err, StreamError::InvalidUrl { .. }),
            "{url}: {err:?}"
        );
    }
}

#[test]
fn decode_status_cases() {
    assert_eq!(decode_status(SUCCESS).unwrap(), 0);
    assert_eq!(decode_status(&exit_status(3)).unwrap(), 3);
    assert_eq!(decode_status(&exit_status(255)).unwrap(), 255);
    for bad in [
        &b"not json"[..],
        br#"{"status":"Failure","reason":"NonZeroExitCode"}"#,
        br#"{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"300"}]}}"#,
        br#"{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"Other","message":"1"}]}}"#,
        br#"{"status":"Weird"}"#,
    ] {
        let err = decode_status(bad).unwrap_err();
        assert!(matches!(err, StreamError::BadStatus { .. }), "{err:?}");
    }
    match decode_status(br#"{"status":"Failure","reason":"InternalError"}"#) {
        Err(StreamError::Remote(m)) => assert_eq!(m, "InternalError"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn port_prefix_may_arrive_split() {
    let mut p = PortPrefix::default();
    assert_eq!(p.strip(&[0x90]), b"");
    assert_eq!(p.port(), None);
    assert_eq!(p.strip(&[0x1f, b'h', b'i']), b"hi");
    assert_eq!(p.port(), Some(8080));
    assert_eq!(p.strip(b"more"), b"more");
}

#[tokio::test]
async fn port_forward_round_trips_bytes() {
    let (url, server) = serve(Some(V4_PROTOCOL), "/portforward/tok", |mut ws| async move {
        let prefix = 8080u16.to_le_bytes();
        send(&mut ws, PF_DATA, &prefix).await;
        send(&mut ws, PF_ERROR, &prefix).await;
        let mut got = Vec::new();
        while let Some(f) = recv(&mut ws).await {
            assert_eq!(f[0], PF_DATA, "client wrote to channel {}", f[0]);
            got.extend_from_slice(&f[1..]);
            let mut reply = b"echo:".to_vec();
            reply.extend_from_slice(&f[1..]);
            send(&mut ws, PF_DATA, &reply).await;
        }
        got
    })
    .await;
    let (mut user, ours) = tokio::io::duplex(1024);
    let fwd = tokio::spawn(async move {
        port_forward_with_linger(&url, 8080, ours, Duration::from_millis(100)).await
    });
    user.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 9];
    timed(user.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"echo:ping");
    // Local EOF ends the session, and the local side then sees EOF too.
    user.shutdown().await.unwrap();
    timed(fwd).await.unwrap().unwrap();
    let mut rest = Vec::new();
    timed(user.read_to_end(&mut rest)).await.unwrap();
    assert!(rest.is_empty());
    let (seen, got) = server.await.unwrap();
    assert_eq!(seen.uri, "/portforward/tok?port=8080");
    assert_eq!(seen.protocols, V4_PROTOCOL);
    assert_eq!(got, b"ping");
}

#[tokio::test]
async fn port_forward_error_channel_becomes_error() {
    let (url, _server) = serve(Some(V4_PROTOCOL), "/portforward/tok", |mut ws| async move {
        let prefix = 8080u16.to_le_bytes();
        send(&mut ws, PF_DATA, &prefix).await;
        send(&mut ws, PF_ERROR, &prefix).await;
        send(
            &mut ws,
            PF_ERROR,
            b"error forwarding port 8080 to pod abc: connection refused",
        )
        .await;
        close(ws).await;
    })
    .await;
    let (_user, ours) = tokio::io::duplex(1024);
    let err = timed(port_forward(&url, 8080, ours)).await.unwrap_err();
    match err {
        StreamError::PortForward { port, message } => {
            assert_eq!(port, 8080);
            assert_eq!(
                message,
                "error forwarding port 8080 to pod abc: connection refused"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn port_forward_checks_the_announced_port() {
    let (url, _server) = serve(Some(V4_PROTOCOL), "/portforward/tok", |mut ws| async move {
        send(&mut ws, PF_DATA, &9090u16.to_le_bytes()).await;
        close(ws).await;
    })
    .await;
    let (_user, ours) = tokio::io::duplex(1024);
    let err = timed(port_forward(&url, 8080, ours)).await.unwrap_err();
    assert!(
        matches!(
            err,
            StreamError::PortMismatch {
                channel: 0,
                got: 9090,
                want: 8080
            }
        ),
        "{err:?}"
    );
}
