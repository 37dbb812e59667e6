//! The client side of the Kubernetes WebSocket channel protocol, which the
//! runtime's streaming server speaks behind the URLs returned by CRI `Exec`,
//! `Attach` and `PortForward`.
//!
//! Every binary message starts with one channel byte. For exec/attach the
//! channels are 0 stdin, 1 stdout, 2 stderr, 3 error (a `metav1.Status` JSON
//! from `v4.channel.k8s.io` on) and 4 resize (`{"Width":..,"Height":..}`).
//! `v5.channel.k8s.io` adds message `[255, channel]`, which closes one
//! channel, so the client can send stdin EOF and keep reading output.
//!
//! containerd 1.6 only speaks v4, which has no way to signal stdin EOF short
//! of closing the whole connection; the server then closes the command's
//! stdin and drops the connection, so any output the command writes after
//! EOF, and its exit status, are lost. kubectl never met this case (it used
//! SPDY until v5 existed). Berth does the best WebSocket allows: after local
//! stdin ends it keeps relaying output until the command exits on its own or
//! the output has been quiet for [`DEFAULT_EOF_LINGER`], then closes; if no
//! status arrived by then, the exit code is reported as 0.
//!
//! Port-forward uses its own layout on the same framing: the ports come from
//! the `port` query parameter, each port gets a data channel (2n) and an
//! error channel (2n+1), and the server's first message on each channel is
//! the port as 2 little-endian bytes. A stream URL is single-use and the
//! channel set is fixed at connect time, so each forwarded TCP connection
//! needs its own CRI `PortForward` call and WebSocket (kubectl multiplexes
//! connections over one SPDY session instead).

use std::time::Duration;

use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest, http::HeaderValue};

/// The channel protocol with the stdin close signal (Kubernetes 1.29+).
pub const V5_PROTOCOL: &str = "v5.channel.k8s.io";
/// The channel protocol containerd 1.6 speaks; status JSON on channel 3.
pub const V4_PROTOCOL: &str = "v4.channel.k8s.io";

/// How long output must stay quiet after local stdin EOF before a v4
/// session is closed to deliver that EOF. The same 0.5 s grace containerd
/// gives a finished port-forward copy.
pub const DEFAULT_EOF_LINGER: Duration = Duration::from_millis(500);

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE_STREAM: u8 = 255;

const PF_DATA: u8 = 0;
const PF_ERROR: u8 = 1;

const READ_BUF: usize = 32 * 1024;

/// Errors from a streaming session.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("stream URL {url:?} is invalid: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("connecting to the stream server at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: Box<tungstenite::Error>,
    },
    /// The server answered the upgrade with a plain HTTP error, e.g. 404
    /// for an expired or already-used token.
    #[error("stream server at {url} refused the upgrade: HTTP {status}: {body}")]
    Rejected {
        url: String,
        status: u16,
        body: String,
    },
    #[error(
        "stream server at {url} chose subprotocol {protocol:?}; berth speaks {V5_PROTOCOL} and {V4_PROTOCOL}"
    )]
    Protocol { url: String, protocol: String },
    #[error("stream connection to {url} broke: {source}")]
    Connection {
        url: String,
        #[source]
        source: Box<tungstenite::Error>,
    },
    #[error("{stream}: {source}")]
    Io {
        stream: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The remote side reported a failure other than a non-zero exit.
    #[error("remote command failed: {0}")]
    Remote(String),
    #[error("error channel protocol error: {reason} in {raw:?}")]
    BadStatus { reason: String, raw: String },
    #[error("stream from {url} ended without an exit status")]
    NoStatus { url: String },
    #[error("port-forward to port {port}: {message}")]
    PortForward { port: u16, message: String },
    #[error("port-forward: server announced port {got} on channel {channel}, expected {want}")]
    PortMismatch { channel: u8, got: u16, want: u16 },
}

/// A terminal size, as sent on the resize channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermSize {
    pub width: u16,
    pub height: u16,
}

/// The subprotocol the server picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    V4,
    V5,
}

/// A stdin type for sessions without stdin.
pub type NoStdin = tokio::io::Empty;
/// An output type for sessions without stdout or stderr.
pub type NoOutput = tokio::io::Sink;

/// Local ends of an exec/attach session. Set exactly the streams the CRI
/// request asked for: the server opens only those channels.
pub struct StreamIo<I, O, E> {
    pub stdin: Option<I>,
    pub stdout: Option<O>,
    pub stderr: Option<E>,
    /// Resize events are only sent with a TTY: without one the server has
    /// no reader for them and would stall the whole connection.
    pub tty: bool,
    pub resize: Option<mpsc::Receiver<TermSize>>,
}

impl<I, O, E> Default for StreamIo<I, O, E> {
    fn default() -> Self {
        StreamIo {
            stdin: None,
            stdout: None,
            stderr: None,
            tty: false,
            resize: None,
        }
    }
}

/// Runs an exec or attach session on `url` and returns the remote exit code
/// (0 on success; always 0 for attach, whose status carries no code).
pub async fn run_remote_command<I, O, E>(
    url: &str,
    io: StreamIo<I, O, E>,
) -> Result<i32, StreamError>
where
    I: AsyncRead + Unpin,
    O: AsyncWrite + Unpin,
    E: AsyncWrite + Unpin,
{
    run_remote_command_with_linger(url, io, DEFAULT_EOF_LINGER).await
}

/// [`run_remote_command`] with an explicit quiet time after stdin EOF
/// before a v4 session is closed (see the module docs).
pub async fn run_remote_command_with_linger<I, O, E>(
    url: &str,
    io: StreamIo<I, O, E>,
    eof_linger: Duration,
) -> Result<i32, StreamError>
where
    I: AsyncRead + Unpin,
    O: AsyncWrite + Unpin,
    E: AsyncWrite + Unpin,
{
    let (ws, protocol) = connect(url, &format!("{V5_PROTOCOL}, {V4_PROTOCOL}")).await?;
    let protocol = match protocol.as_str() {
        V5_PROTOCOL => Protocol::V5,
        V4_PROTOCOL => Protocol::V4,
        _ => {
            return Err(StreamError::Protocol {
                url: url.to_owned(),
                protocol,
            });
        }
    };
    tracing::debug!(url, ?protocol, "stream connected");
    let (mut sink, mut source) = ws.split();
    let StreamIo {
        stdin,
        stdout,
        stderr,
        tty,
        resize,
    } = io;
    let (activity_tx, activity_rx) = watch::channel(Instant::now());
    let resize = resize.filter(|_| tty);

    let reader = read_output(&mut source, stdout, stderr, &activity_tx);
    let writer = write_input(&mut sink, stdin, resize, protocol, eof_linger, activity_rx);
    tokio::pin!(reader, writer);
    let mut writer_live = true;
    let mut we_closed = false;
    let end = loop {
        tokio::select! {
            biased;
            end = &mut reader => break end?,
            w = &mut writer, if writer_live => {
                writer_live = false;
                match w? {
                    WriterEnd::Closed => we_closed = true,
                    WriterEnd::Done => {}
                }
            }
        }
    };

    if !end.status.is_empty() {
        return decode_status(&end.status);
    }
    if we_closed {
        tracing::debug!(
            url,
            "v4 session closed to deliver stdin EOF; exit status unavailable, reporting 0"
        );
        return Ok(0);
    }
    match end.error {
        Some(e) => Err(StreamError::Connection {
            url: url.to_owned(),
            source: Box::new(e),
        }),
        None => Err(StreamError::NoStatus {
            url: url.to_owned(),
        }),
    }
}

/// Forwards one local connection to `port` in the pod sandbox behind `url`
/// (a fresh CRI `PortForward` URL), copying bytes both ways until either
/// side closes.
pub async fn port_forward<S>(url: &str, port: u16, local: S) -> Result<(), StreamError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    port_forward_with_linger(url, port, local, DEFAULT_EOF_LINGER).await
}

/// [`port_forward`] with an explicit quiet time after the local side stops
/// sending: v4 cannot half-close, so the connection is closed once the pod
/// side has been quiet that long.
pub async fn port_forward_with_linger<S>(
    url: &str,
    port: u16,
    local: S,
    eof_linger: Duration,
) -> Result<(), StreamError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let sep = if url.contains('?') { '&' } else { '?' };
    let full = format!("{url}{sep}port={port}");
    let (ws, protocol) = connect(&full, V4_PROTOCOL).await?;
    if protocol != V4_PROTOCOL {
        return Err(StreamError::Protocol {
            url: full,
            protocol,
        });
    }
    let (mut sink, mut source) = ws.split();
    let (local_r, mut local_w) = tokio::io::split(local);
    let (activity_tx, activity_rx) = watch::channel(Instant::now());

    let mut we_closed = false;
    let end = {
        let reader = pf_read(&mut source, &mut local_w, port, &activity_tx);
        let writer = pf_write(&mut sink, local_r, eof_linger, activity_rx);
        tokio::pin!(reader, writer);
        let mut writer_live = true;
        loop {
            tokio::select! {
                biased;
                end = &mut reader => break end,
                w = &mut writer, if writer_live => {
                    writer_live = false;
                    we_closed = matches!(w?, WriterEnd::Closed);
                }
            }
        }
    };
    // Pass the pod side's close on to the local peer; it may be gone already.
    let _ = local_w.shutdown().await;
    let end = end?;
    if !end.status.is_empty() {
        return Err(StreamError::PortForward {
            port,
            message: String::from_utf8_lossy(&end.status).into_owned(),
        });
    }
    match end.error {
        Some(e) if !we_closed => Err(StreamError::Connection {
            url: full,
            source: Box::new(e),
        }),
        _ => Ok(()),
    }
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Upgrades `url` offering `protocols` (one comma-separated header: the Go
/// server only reads the first header line) and returns the chosen one.
async fn connect(url: &str, protocols: &str) -> Result<(WsStream, String), StreamError> {
    let invalid = |reason: &str| StreamError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let ws_url = if let Some(rest) = url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if url.starts_with("ws://") {
        url.to_owned()
    } else if url.starts_with("https://") || url.starts_with("wss://") {
        // containerd serves plain http unless enable_tls_streaming is set.
        return Err(invalid(
            "TLS stream URLs are not supported; disable enable_tls_streaming in containerd",
        ));
    } else {
        return Err(invalid("expected an http:// URL"));
    };
    let mut req = ws_url
        .as_str()
        .into_client_request()
        .map_err(|e| invalid(&e.to_string()))?;
    let value = HeaderValue::from_str(protocols).map_err(|e| invalid(&e.to_string()))?;
    req.headers_mut().insert("Sec-WebSocket-Protocol", value);
    let (ws, resp) = tokio_tungstenite::connect_async_with_config(req, None, true)
        .await
        .map_err(|e| match e {
            tungstenite::Error::Http(resp) => StreamError::Rejected {
                url: url.to_owned(),
                status: resp.status().as_u16(),
                body: resp
                    .body()
                    .as_deref()
                    .map(|b| String::from_utf8_lossy(b).trim().to_owned())
                    .unwrap_or_default(),
            },
            other => StreamError::Connect {
                url: url.to_owned(),
                source: Box::new(other),
            },
        })?;
    let chosen = resp
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_owned();
    Ok((ws, chosen))
}

/// What the reading half saw before the connection ended.
struct ReadEnd {
    /// Raw bytes from the error channel.
    status: Vec<u8>,
    /// Set when the connection broke instead of closing cleanly.
    error: Option<tungstenite::Error>,
}

enum WriterEnd {
    /// Nothing more to send; the connection stays open.
    Done,
    /// We closed the connection to deliver EOF (v4).
    Closed,
}

async fn read_output<S, O, E>(
    source: &mut S,
    mut stdout: Option<O>,
    mut stderr: Option<E>,
    activity: &watch::Sender<Instant>,
) -> Result<ReadEnd, StreamError>
where
    S: Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
    O: AsyncWrite + Unpin,
    E: AsyncWrite + Unpin,
{
    let mut status = Vec::new();
    while let Some(msg) = source.next().await {
        let data = match msg {
            Ok(Message::Binary(data)) => data,
            Ok(Message::Close(_)) => break,
            Ok(Message::Text(_)) => {
                tracing::debug!(
                    "ignoring a text message; only binary channel protocols are negotiated"
                );
                continue;
            }
            Ok(_) => continue,
            Err(e) => {
                return Ok(ReadEnd {
                    status,
                    error: Some(e),
                });
            }
        };
        // An empty payload is the server's "channel open" hello.
        let Some((&channel, payload)) = data.split_first() else {
            continue;
        };
        match channel {
            STDOUT | STDERR if !payload.is_empty() => {
                activity.send_replace(Instant::now());
                if channel == STDOUT {
                    if let Some(out) = stdout.as_mut() {
                        write_flush(out, payload, "writing stdout").await?;
                    }
                } else if let Some(err) = stderr.as_mut() {
                    write_flush(err, payload, "writing stderr").await?;
                }
            }
            ERROR => status.extend_from_slice(payload),
            _ => tracing::trace!(channel, len = payload.len(), "ignoring frame"),
        }
    }
    Ok(ReadEnd {
        status,
        error: None,
    })
}

async fn write_flush<W: AsyncWrite + Unpin>(
    out: &mut W,
    data: &[u8],
    what: &'static str,
) -> Result<(), StreamError> {
    out.write_all(data)
        .await
        .map_err(|source| StreamError::Io {
            stream: what,
            source,
        })?;
    out.flush().await.map_err(|source| StreamError::Io {
        stream: what,
        source,
    })
}

async fn write_input<K, I>(
    sink: &mut K,
    mut stdin: Option<I>,
    mut resize: Option<mpsc::Receiver<TermSize>>,
    protocol: Protocol,
    eof_linger: Duration,
    mut activity: watch::Receiver<Instant>,
) -> Result<WriterEnd, StreamError>
where
    K: Sink<Message, Error = tungstenite::Error> + Unpin,
    I: AsyncRead + Unpin,
{
    let mut buf = vec![0u8; READ_BUF + 1];
    loop {
        if stdin.is_none() && resize.is_none() {
            return Ok(WriterEnd::Done);
        }
        let frame = tokio::select! {
            n = read_opt(&mut stdin, &mut buf) => {
                let n = n.map_err(|source| StreamError::Io { stream: "reading stdin", source })?;
                if n > 0 {
                    framed(STDIN, buf.get(1..=n).unwrap_or_default())
                } else {
                    stdin = None;
                    match protocol {
                        Protocol::V5 => Bytes::from_static(&[CLOSE_STREAM, STDIN]),
                        Protocol::V4 => {
                            linger(eof_linger, &mut activity).await;
                            tracing::debug!("stdin ended; closing the v4 session to deliver EOF");
                            if let Err(e) = sink.send(Message::Close(None)).await {
                                tracing::debug!(error = %e, "closing the stream connection");
                            }
                            return Ok(WriterEnd::Closed);
                        }
                    }
                }
            }
            size = recv_opt(&mut resize) => match size {
                Some(TermSize { width, height }) => {
                    let json = serde_json::json!({ "Width": width, "Height": height }).to_string();
                    framed(RESIZE, json.as_bytes())
                }
                None => {
                    resize = None;
                    continue;
                }
            }
        };
        if let Err(e) = sink.send(Message::Binary(frame)).await {
            // The reader sees the same broken connection and reports it.
            tracing::debug!(error = %e, "sending to the stream server");
            return Ok(WriterEnd::Done);
        }
    }
}

/// Reads into `buf[1..]`, leaving room for the channel byte; never resolves
/// without a reader.
async fn read_opt<I: AsyncRead + Unpin>(
    r: &mut Option<I>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match (r, buf.get_mut(1..)) {
        (Some(r), Some(body)) => r.read(body).await,
        _ => std::future::pending().await,
    }
}

async fn recv_opt(rx: &mut Option<mpsc::Receiver<TermSize>>) -> Option<TermSize> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn framed(channel: u8, payload: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(payload.len() + 1);
    v.push(channel);
    v.extend_from_slice(payload);
    Bytes::from(v)
}

/// Waits until nothing has arrived from the server for `quiet`.
async fn linger(quiet: Duration, activity: &mut watch::Receiver<Instant>) {
    let start = Instant::now();
    loop {
        let last = (*activity.borrow_and_update()).max(start);
        tokio::select! {
            _ = tokio::time::sleep_until(last + quiet) => return,
            changed = activity.changed() => if changed.is_err() { return },
        }
    }
}

async fn pf_read<S, W>(
    source: &mut S,
    local: &mut W,
    port: u16,
    activity: &watch::Sender<Instant>,
) -> Result<ReadEnd, StreamError>
where
    S: Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut prefixes = [PortPrefix::default(), PortPrefix::default()];
    let mut errors = Vec::new();
    while let Some(msg) = source.next().await {
        let data = match msg {
            Ok(Message::Binary(data)) => data,
            Ok(Message::Close(_)) => break,
            Ok(_) => continue,
            Err(e) => {
                return Ok(ReadEnd {
                    status: errors,
                    error: Some(e),
                });
            }
        };
        let Some((&channel, payload)) = data.split_first() else {
            continue;
        };
        let Some(prefix) = prefixes.get_mut(usize::from(channel)) else {
            tracing::trace!(channel, "ignoring port-forward frame on an unknown channel");
            continue;
        };
        let payload = prefix.strip(payload);
        if let Some(got) = prefix.port()
            && got != port
        {
            return Err(StreamError::PortMismatch {
                channel,
                got,
                want: port,
            });
        }
        if payload.is_empty() {
            continue;
        }
        match channel {
            PF_DATA => {
                activity.send_replace(Instant::now());
                local
                    .write_all(payload)
                    .await
                    .map_err(|source| StreamError::Io {
                        stream: "writing to the local connection",
                        source,
                    })?;
                local.flush().await.map_err(|source| StreamError::Io {
                    stream: "writing to the local connection",
                    source,
                })?;
            }
            PF_ERROR => errors.extend_from_slice(payload),
            _ => {}
        }
    }
    Ok(ReadEnd {
        status: errors,
        error: None,
    })
}

async fn pf_write<K, R>(
    sink: &mut K,
    mut local: R,
    eof_linger: Duration,
    mut activity: watch::Receiver<Instant>,
) -> Result<WriterEnd, StreamError>
where
    K: Sink<Message, Error = tungstenite::Error> + Unpin,
    R: AsyncRead + Unpin,
{
    let mut buf = vec![0u8; READ_BUF];
    loop {
        let n = local
            .read(&mut buf)
            .await
            .map_err(|source| StreamError::Io {
                stream: "reading from the local connection",
                source,
            })?;
        if n == 0 {
            linger(eof_linger, &mut activity).await;
            if let Err(e) = sink.send(Message::Close(None)).await {
                tracing::debug!(error = %e, "closing the port-forward connection");
            }
            return Ok(WriterEnd::Closed);
        }
        let frame = framed(PF_DATA, buf.get(..n).unwrap_or_default());
        if let Err(e) = sink.send(Message::Binary(frame)).await {
            tracing::debug!(error = %e, "sending to the stream server");
            return Ok(WriterEnd::Done);
        }
    }
}

/// The 2-byte little-endian port the server writes first on each channel.
#[derive(Default)]
struct PortPrefix {
    bytes: [u8; 2],
    seen: usize,
}

impl PortPrefix {
    /// Consumes what is still missing of the prefix and returns the rest.
    fn strip<'p>(&mut self, mut payload: &'p [u8]) -> &'p [u8] {
        while self.seen < 2 {
            let Some((&b, rest)) = payload.split_first() else {
                break;
            };
            if let Some(slot) = self.bytes.get_mut(self.seen) {
                *slot = b;
            }
            self.seen += 1;
            payload = rest;
        }
        payload
    }

    /// The port, once both bytes have arrived.
    fn port(&self) -> Option<u16> {
        (self.seen == 2).then(|| u16::from_le_bytes(self.bytes))
    }
}

#[derive(Deserialize)]
struct Status {
    #[serde(default)]
    status: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    reason: String,
    details: Option<StatusDetails>,
}

#[derive(Deserialize)]
struct StatusDetails {
    #[serde(default)]
    causes: Vec<StatusCause>,
}

#[derive(Deserialize)]
struct StatusCause {
    /// `type` in Go, serialised as `reason`.
    #[serde(default)]
    reason: String,
    #[serde(default)]
    message: String,
}

/// Turns the error channel's `metav1.Status` into an exit code, the way
/// client-go's v4 error decoder does.
fn decode_status(raw: &[u8]) -> Result<i32, StreamError> {
    let bad = |reason: String| StreamError::BadStatus {
        reason,
        raw: String::from_utf8_lossy(raw).into_owned(),
    };
    let status: Status = serde_json::from_slice(raw).map_err(|e| bad(e.to_string()))?;
    match status.status.as_str() {
        "Success" => Ok(0),
        "Failure" if status.reason == "NonZeroExitCode" => {
            let details = status
                .details
                .ok_or_else(|| bad("details must be set".into()))?;
            let cause = details
                .causes
                .iter()
                .find(|c| c.reason == "ExitCode")
                .ok_or_else(|| bad("no ExitCode cause given".into()))?;
            // Exit codes fit in a byte, as client-go also insists.
            cause
                .message
                .parse::<u8>()
                .map(i32::from)
                .map_err(|_| bad(format!("invalid exit code value {:?}", cause.message)))
        }
        "Failure" => Err(StreamError::Remote(if status.message.is_empty() {
            status.reason
        } else {
            status.message
        })),
        other => Err(bad(format!("unknown status {other:?}"))),
    }
}

#[cfg(test)]
mod tests;
