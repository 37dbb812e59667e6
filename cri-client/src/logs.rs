//! The CRI container log format and a reader for it.
//!
//! containerd writes each container's output to a file under
//! `/var/log/pods/<pod>/<container>/<attempt>.log`, one record per line:
//!
//! ```text
//! 2016-10-06T00:17:09.669794202Z stdout P first half of a long line
//! 2016-10-06T00:17:09.669794203Z stdout F second half
//! 2016-10-06T00:17:09.669794204Z stderr F a whole line
//! ```
//!
//! A `P` (partial) record continues in the next record of the same stream;
//! `F` (full) ends the line. [`read_logs`] prints a file the way the Go
//! kubelet's `ReadLogs` (k8s.io/cri-client/pkg/logs) does, with `tail`,
//! `since`, `timestamps`, `limit_bytes`, a stream filter and `follow`.
//!
//! Where Berth departs from the Go reader on purpose:
//! - `follow` keeps going across log rotation, both rename-and-create (the
//!   kubelet's own rotation) and copytruncate; the Go reader may stay on the
//!   old file or sit at a stale offset.
//! - A malformed record is skipped with a debug log, even when it is the
//!   first one (Go refuses the whole file when its first line parses neither
//!   as CRI nor as Docker JSON). The Docker JSON format is not read: containerd
//!   never writes it.
//! - Partial lines are joined per stream (Go tracks one "mid-line" flag for
//!   both streams), and `since` is decided by a line's first record, so a
//!   line is printed whole or not at all.
//! - With a stream filter, `tail` counts only that stream's records.
//!
//! While following, the reader sleeps on inotify events for the log's
//! directory (which cover writes, truncation, the rename and the new file),
//! looks at the file at least once a second anyway, and falls back to
//! polling every 250 ms when inotify cannot be set up.

use std::future::Future;
use std::io::{self, SeekFrom};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::tz::Offset;
use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// Block size for scanning a file backwards to find where `tail` starts.
const TAIL_BLOCK: usize = 64 * 1024;
/// How much of a record's start the backwards scan needs to see its stream.
const HEADER_PEEK: usize = 128;
/// Size of each forward read.
const READ_CHUNK: usize = 64 * 1024;
/// Output is buffered up to this size before it is written out.
const FLUSH_AT: usize = 64 * 1024;
/// A "line" longer than this without a newline is not a CRI record
/// (containerd splits at 16 KiB); it is dropped rather than buffered forever.
const MAX_RECORD: usize = 1024 * 1024;
/// With inotify, look at the file anyway this often, in case an event was
/// missed (the Go reader does the same every second).
const FORCE_CHECK: Duration = Duration::from_secs(1);
/// Without inotify, poll the file this often.
const POLL: Duration = Duration::from_millis(250);
/// How often `still_running` is asked while following.
const RUNNING_CHECK: Duration = Duration::from_secs(1);

/// Failures while reading a container log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("reading {}: {}", .path.display(), describe(.source))]
    Read { path: PathBuf, source: io::Error },
    #[error("watching {} for new log lines: {}", .path.display(), .source.desc())]
    Watch { path: PathBuf, source: Errno },
    #[error("writing log output: {}", describe(.source))]
    Write { source: io::Error },
    #[error("malformed CRI log line: {reason}")]
    Malformed { reason: String },
}

/// An OS error as its plain description ("No such file or directory"),
/// without Rust's " (os error 2)" suffix.
fn describe(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => Errno::from_raw(code).desc().to_owned(),
        None => err.to_string(),
    }
}

/// Which output stream a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    fn from_bytes(b: &[u8]) -> Option<Self> {
        match b {
            b"stdout" => Some(LogStream::Stdout),
            b"stderr" => Some(LogStream::Stderr),
            _ => None,
        }
    }

    fn index(self) -> usize {
        match self {
            LogStream::Stdout => 0,
            LogStream::Stderr => 1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

/// Which streams [`read_logs`] prints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StreamFilter {
    #[default]
    All,
    Stdout,
    Stderr,
}

impl StreamFilter {
    fn admits(self, stream: LogStream) -> bool {
        match self {
            StreamFilter::All => true,
            StreamFilter::Stdout => stream == LogStream::Stdout,
            StreamFilter::Stderr => stream == LogStream::Stderr,
        }
    }
}

/// What to print, as in `crictl logs` and the kubelet's `PodLogOptions`.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Start this many records before the end (`None`: from the start).
    /// Like the Go kubelet, this counts records in the file, so a long line
    /// split into `P` records counts once per record.
    pub tail: Option<u64>,
    /// Skip lines whose first record is older than this.
    pub since: Option<Timestamp>,
    /// Prefix each line with its RFC3339Nano timestamp and a space.
    pub timestamps: bool,
    /// Keep printing new lines, across rotation, until cancelled.
    pub follow: bool,
    /// Stop after this many output bytes (timestamps included).
    pub limit_bytes: Option<u64>,
    pub stream: StreamFilter,
}

/// One parsed record of a CRI log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine<'a> {
    pub timestamp: Timestamp,
    /// The UTC offset the runtime wrote the timestamp with (containerd uses
    /// the node's local time); kept so `--timestamps` echoes it like Go does.
    pub offset: Offset,
    pub stream: LogStream,
    /// `P`: the line continues in the next record of the same stream.
    pub partial: bool,
    /// The content, without the record's terminating newline.
    pub content: &'a [u8],
}

impl LogLine<'_> {
    /// The timestamp in Go's RFC3339NanoFixed layout: always nine fractional
    /// digits, `Z` for a zero offset.
    pub fn format_timestamp(&self) -> String {
        let mut out = Vec::with_capacity(36);
        write_timestamp(self.timestamp, self.offset, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

fn write_timestamp(ts: Timestamp, offset: Offset, out: &mut Vec<u8>) {
    use std::io::Write as _;
    let dt = offset.to_datetime(ts);
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.subsec_nanosecond()
    );
    let secs = offset.seconds();
    if secs == 0 {
        out.push(b'Z');
    } else {
        let sign = if secs < 0 { '-' } else { '+' };
        let abs = secs.unsigned_abs();
        let _ = write!(out, "{sign}{:02}:{:02}", abs / 3600, abs / 60 % 60);
    }
}

fn malformed(reason: String) -> LogError {
    LogError::Malformed { reason }
}

/// A short, printable excerpt of raw bytes for error messages.
fn excerpt(b: &[u8]) -> String {
    let cut = b.get(..64).unwrap_or(b);
    let mut s = String::from_utf8_lossy(cut).into_owned();
    if cut.len() < b.len() {
        s.push('…');
    }
    s
}

/// Split at the first space: the token and everything after the space.
fn split_space(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = b.iter().position(|&c| c == b' ')?;
    Some((b.get(..i)?, b.get(i + 1..)?))
}

/// Parse one record, `<RFC3339 time> <stdout|stderr> <tag>[:<tag>...] <content>`.
/// A single trailing newline is allowed and not part of the content. Tags
/// other than `P` count as full, as in Go, to stay forward compatible.
pub fn parse_line(line: &[u8]) -> Result<LogLine<'_>, LogError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let (ts, rest) = split_space(line)
        .ok_or_else(|| malformed(format!("no timestamp in {:?}", excerpt(line))))?;
    let (stream, rest) = split_space(rest).ok_or_else(|| {
        malformed(format!(
            "no stream after the timestamp in {:?}",
            excerpt(line)
        ))
    })?;
    let (tags, content) = split_space(rest)
        .ok_or_else(|| malformed(format!("no tag after the stream in {:?}", excerpt(line))))?;
    let (timestamp, offset) = parse_timestamp(ts)?;
    let stream = LogStream::from_bytes(stream).ok_or_else(|| {
        malformed(format!(
            "stream {:?} is neither stdout nor stderr",
            excerpt(stream)
        ))
    })?;
    let partial = tags.split(|&c| c == b':').next() == Some(b"P");
    Ok(LogLine {
        timestamp,
        offset,
        stream,
        partial,
        content,
    })
}

fn parse_timestamp(ts: &[u8]) -> Result<(Timestamp, Offset), LogError> {
    let bad = |why: &dyn std::fmt::Display| {
        malformed(format!("timestamp {:?} is not RFC3339: {why}", excerpt(ts)))
    };
    let pieces = jiff::fmt::temporal::Pieces::parse(ts).map_err(|e| bad(&e))?;
    let time = pieces.time().ok_or_else(|| bad(&"no time of day"))?;
    let offset = pieces
        .to_numeric_offset()
        .ok_or_else(|| bad(&"no UTC offset"))?;
    let timestamp = offset
        .to_timestamp(pieces.date().to_datetime(time))
        .map_err(|e| bad(&e))?;
    Ok((timestamp, offset))
}

/// Print the container log at `path`: stdout records to `stdout`, stderr
/// records to `stderr`. With `opts.follow` this runs until `cancel` fires.
///
/// The Go kubelet also stops following once the container stops running;
/// here the caller does that by cancelling, or uses [`read_logs_until`].
/// A closed output (EPIPE, e.g. `berthctl logs | head`) ends the read
/// cleanly.
pub async fn read_logs(
    path: &Path,
    opts: &LogOptions,
    stdout: &mut (impl AsyncWrite + Unpin),
    stderr: &mut (impl AsyncWrite + Unpin),
    cancel: CancellationToken,
) -> Result<(), LogError> {
    read_logs_until(path, opts, stdout, stderr, cancel, || async { true }).await
}

/// [`read_logs`], and when following, ask `still_running` (at most once a
/// second, when caught up) whether the container still runs; once it says no,
/// print what is left in the file and return, as the Go kubelet does.
pub async fn read_logs_until<F, Fut>(
    path: &Path,
    opts: &LogOptions,
    stdout: &mut (impl AsyncWrite + Unpin),
    stderr: &mut (impl AsyncWrite + Unpin),
    cancel: CancellationToken,
    mut still_running: F,
) -> Result<(), LogError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let mut sink = Sink::new(opts, stdout, stderr);
    if sink.exhausted() || (!opts.follow && opts.tail == Some(0)) {
        return Ok(());
    }
    let mut src = Source::open(path).await?;
    if let Some(n) = opts.tail {
        let start = src.tail_start(n, opts.stream).await?;
        src.seek_to(start).await?;
    }
    let watcher = if opts.follow {
        Watcher::new(&src.path)
    } else {
        None
    };
    let mut last_check: Option<Instant> = None;
    let mut stopping = false;
    let result = async {
        loop {
            if src.read_available(&mut sink, &cancel).await? == Flow::Stop {
                return Ok(());
            }
            if !opts.follow {
                // An unterminated last record is printed when reading the
                // whole file, but not after `tail`, as in Go.
                if opts.tail.is_none() {
                    src.emit_pending(&mut sink).await?;
                }
                return Ok(());
            }
            match src.check_rotation().await? {
                Rotation::Same => {}
                Rotation::Truncated => {
                    tracing::debug!(path = %src.path.display(), "log file was truncated, reading it from the start");
                    src.restart().await?;
                    continue;
                }
                Rotation::Replaced => {
                    // Finish the old file first: the runtime writes to it
                    // until it reopens the log.
                    if src.read_available(&mut sink, &cancel).await? == Flow::Stop {
                        return Ok(());
                    }
                    if src.emit_pending(&mut sink).await? == Flow::Stop {
                        return Ok(());
                    }
                    if src.reopen().await? {
                        tracing::debug!(path = %src.path.display(), "log file was rotated, following the new one");
                    }
                    continue;
                }
            }
            if stopping {
                src.emit_pending(&mut sink).await?;
                return Ok(());
            }
            sink.flush().await?;
            if sink.closed {
                return Ok(());
            }
            if last_check.is_none_or(|t| t.elapsed() >= RUNNING_CHECK) {
                last_check = Some(Instant::now());
                if !still_running().await {
                    // Read once more: lines written just before it exited.
                    stopping = true;
                    continue;
                }
            }
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Ok(()),
                () = wait_for_change(watcher.as_ref(), &src.path) => {}
            }
        }
    }
    .await;
    // Whatever ended the read, print what is buffered.
    let flushed = sink.flush().await;
    result.and(flushed)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// Turns records into output: filters, joins partial lines, adds
/// timestamps, applies the byte limit, and batches writes.
struct Sink<'o, O, E> {
    opts: &'o LogOptions,
    stdout: &'o mut O,
    stderr: &'o mut E,
    buf: Vec<u8>,
    buf_stream: LogStream,
    remaining: Option<u64>,
    /// Per stream: the last printed record was `P`, so the next one
    /// continues its line.
    mid_line: [bool; 2],
    /// Per stream: the line in progress is older than `since`.
    skipping: [bool; 2],
    /// The reader of our output went away.
    closed: bool,
}

impl<'o, O, E> Sink<'o, O, E>
where
    O: AsyncWrite + Unpin,
    E: AsyncWrite + Unpin,
{
    fn new(opts: &'o LogOptions, stdout: &'o mut O, stderr: &'o mut E) -> Self {
        Sink {
            opts,
            stdout,
            stderr,
            buf: Vec::with_capacity(FLUSH_AT),
            buf_stream: LogStream::Stdout,
            remaining: opts.limit_bytes,
            mid_line: [false; 2],
            skipping: [false; 2],
            closed: false,
        }
    }

    fn exhausted(&self) -> bool {
        self.closed || self.remaining == Some(0)
    }

    async fn emit(&mut self, line: &LogLine<'_>) -> Result<Flow, LogError> {
        if !self.opts.stream.admits(line.stream) {
            return Ok(Flow::Continue);
        }
        let i = line.stream.index();
        let starts_line = !self.mid_line.get(i).copied().unwrap_or(false);
        if let Some(m) = self.mid_line.get_mut(i) {
            *m = line.partial;
        }
        if starts_line {
            let old = self.opts.since.is_some_and(|s| line.timestamp < s);
            if let Some(s) = self.skipping.get_mut(i) {
                *s = old;
            }
        }
        if self.skipping.get(i).copied().unwrap_or(false) {
            return Ok(Flow::Continue);
        }
        // One buffer for both streams keeps their relative order: switch
        // streams only after writing out the other one's bytes.
        if line.stream != self.buf_stream {
            self.flush().await?;
            self.buf_stream = line.stream;
        }
        let start = self.buf.len();
        if starts_line && self.opts.timestamps {
            write_timestamp(line.timestamp, line.offset, &mut self.buf);
            self.buf.push(b' ');
        }
        self.buf.extend_from_slice(line.content);
        if !line.partial {
            self.buf.push(b'\n');
        }
        if let Some(rem) = self.remaining {
            let added = (self.buf.len() - start) as u64;
            if added >= rem {
                let keep = usize::try_from(rem).unwrap_or(usize::MAX);
                self.buf.truncate(start.saturating_add(keep));
                self.remaining = Some(0);
                self.flush().await?;
                return Ok(Flow::Stop);
            }
            self.remaining = Some(rem - added);
        }
        if self.buf.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(if self.closed {
            Flow::Stop
        } else {
            Flow::Continue
        })
    }

    async fn flush(&mut self) -> Result<(), LogError> {
        if self.buf.is_empty() || self.closed {
            self.buf.clear();
            return Ok(());
        }
        let res = match self.buf_stream {
            LogStream::Stdout => write_flush(self.stdout, &self.buf).await,
            LogStream::Stderr => write_flush(self.stderr, &self.buf).await,
        };
        self.buf.clear();
        match res {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                tracing::debug!("log output closed by its reader, stopping");
                self.closed = true;
                Ok(())
            }
            Err(source) => Err(LogError::Write { source }),
        }
    }
}

async fn write_flush(w: &mut (impl AsyncWrite + Unpin), buf: &[u8]) -> io::Result<()> {
    w.write_all(buf).await?;
    w.flush().await
}

enum Rotation {
    Same,
    /// The file shrank below what we have read: copytruncate.
    Truncated,
    /// The path now names another file: rename-and-create.
    Replaced,
}

/// The log file being read, and the bytes of a record not yet terminated.
struct Source {
    path: PathBuf,
    file: tokio::fs::File,
    /// File offset just past the last byte read.
    pos: u64,
    pending: Vec<u8>,
    /// Dropping an overlong record until its newline.
    discarding: bool,
    chunk: Vec<u8>,
}

impl Source {
    async fn open(path: &Path) -> Result<Self, LogError> {
        // Resolve symlinks (/var/log/containers links into /var/log/pods) so
        // rotation is detected on the real file, as Go does.
        let path = tokio::fs::canonicalize(path)
            .await
            .map_err(|source| LogError::Read {
                path: path.to_owned(),
                source,
            })?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|source| LogError::Read {
                path: path.clone(),
                source,
            })?;
        Ok(Source {
            path,
            file,
            pos: 0,
            pending: Vec::new(),
            discarding: false,
            chunk: vec![0; READ_CHUNK],
        })
    }

    fn err(&self, source: io::Error) -> LogError {
        LogError::Read {
            path: self.path.clone(),
            source,
        }
    }

    async fn seek_to(&mut self, pos: u64) -> Result<(), LogError> {
        self.file
            .seek(SeekFrom::Start(pos))
            .await
            .map_err(|e| self.err(e))?;
        self.pos = pos;
        self.pending.clear();
        self.discarding = false;
        Ok(())
    }

    async fn restart(&mut self) -> Result<(), LogError> {
        if !self.pending.is_empty() {
            tracing::debug!(path = %self.path.display(), bytes = self.pending.len(), "dropping an unterminated record cut off by truncation");
        }
        self.seek_to(0).await
    }

    /// Where reading must start to print the last `n` records (of the
    /// filtered stream), scanning backwards so a huge file is not read whole.
    async fn tail_start(&mut self, n: u64, filter: StreamFilter) -> Result<u64, LogError> {
        let file = self
            .file
            .try_clone()
            .await
            .map_err(|e| self.err(e))?
            .into_std()
            .await;
        tokio::task::spawn_blocking(move || tail_start(&file, n, filter))
            .await
            .map_err(|e| self.err(io::Error::other(e)))?
            .map_err(|e| self.err(e))
    }

    /// Read to the current end of the file, printing every complete record.
    async fn read_available<O, E>(
        &mut self,
        sink: &mut Sink<'_, O, E>,
        cancel: &CancellationToken,
    ) -> Result<Flow, LogError>
    where
        O: AsyncWrite + Unpin,
        E: AsyncWrite + Unpin,
    {
        let mut chunk = std::mem::take(&mut self.chunk);
        let flow = loop {
            if cancel.is_cancelled() {
                break Ok(Flow::Stop);
            }
            let n = match self.file.read(&mut chunk).await {
                Ok(0) => break Ok(Flow::Continue),
                Ok(n) => n,
                Err(e) => break Err(self.err(e)),
            };
            self.pos += n as u64;
            let data = chunk.get(..n).unwrap_or_default();
            match self.take(data, sink).await {
                Ok(Flow::Continue) => {}
                other => break other,
            }
        };
        self.chunk = chunk;
        flow
    }

    /// Split freshly read bytes into records, joining them with what was
    /// left over from the previous read.
    async fn take<O, E>(
        &mut self,
        mut data: &[u8],
        sink: &mut Sink<'_, O, E>,
    ) -> Result<Flow, LogError>
    where
        O: AsyncWrite + Unpin,
        E: AsyncWrite + Unpin,
    {
        while let Some(nl) = data.iter().position(|&c| c == b'\n') {
            let (head, rest) = data.split_at(nl + 1);
            data = rest;
            if self.discarding {
                self.discarding = false;
                continue;
            }
            let flow = if self.pending.is_empty() {
                self.emit_record(head, sink).await?
            } else {
                let mut record = std::mem::take(&mut self.pending);
                record.extend_from_slice(head);
                let flow = self.emit_record(&record, sink).await?;
                record.clear();
                self.pending = record;
                flow
            };
            if flow == Flow::Stop {
                return Ok(Flow::Stop);
            }
        }
        if !self.discarding {
            self.pending.extend_from_slice(data);
            if self.pending.len() > MAX_RECORD {
                tracing::debug!(path = %self.path.display(), "dropping a record longer than {MAX_RECORD} bytes");
                self.pending.clear();
                self.discarding = true;
            }
        }
        Ok(Flow::Continue)
    }

    async fn emit_record<O, E>(
        &self,
        record: &[u8],
        sink: &mut Sink<'_, O, E>,
    ) -> Result<Flow, LogError>
    where
        O: AsyncWrite + Unpin,
        E: AsyncWrite + Unpin,
    {
        match parse_line(record) {
            Ok(line) => sink.emit(&line).await,
            Err(e) => {
                tracing::debug!(path = %self.path.display(), "skipping log record: {e}");
                Ok(Flow::Continue)
            }
        }
    }

    /// Print the unterminated record at the end of the file, if any: the
    /// writer will not finish it (the file ends or was rotated away).
    async fn emit_pending<O, E>(&mut self, sink: &mut Sink<'_, O, E>) -> Result<Flow, LogError>
    where
        O: AsyncWrite + Unpin,
        E: AsyncWrite + Unpin,
    {
        if self.pending.is_empty() || self.discarding {
            return Ok(Flow::Continue);
        }
        let record = std::mem::take(&mut self.pending);
        tracing::debug!(path = %self.path.display(), "log file ends with an unterminated record");
        self.emit_record(&record, sink).await
    }

    async fn check_rotation(&mut self) -> Result<Rotation, LogError> {
        let ours = self.file.metadata().await.map_err(|e| self.err(e))?;
        if ours.len() < self.pos {
            return Ok(Rotation::Truncated);
        }
        match tokio::fs::metadata(&self.path).await {
            Ok(now) if (now.dev(), now.ino()) != (ours.dev(), ours.ino()) => Ok(Rotation::Replaced),
            Ok(_) => Ok(Rotation::Same),
            // Renamed away and not yet recreated: keep reading the old file,
            // the runtime still writes to it until it reopens the log.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Rotation::Same),
            Err(e) => {
                tracing::debug!(path = %self.path.display(), "cannot stat log file: {e}");
                Ok(Rotation::Same)
            }
        }
    }

    /// Switch to the file now at `path`. False if it vanished meanwhile.
    async fn reopen(&mut self) -> Result<bool, LogError> {
        match tokio::fs::File::open(&self.path).await {
            Ok(file) => {
                self.file = file;
                self.pos = 0;
                self.pending.clear();
                self.discarding = false;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.err(e)),
        }
    }
}

/// The byte offset of the `n`-th last complete record of `filter`'s stream
/// (every record for `All`, malformed ones included, like Go's tail). An
/// unterminated last record is not counted. Reads backwards in blocks.
fn tail_start(file: &std::fs::File, n: u64, filter: StreamFilter) -> io::Result<u64> {
    let size = file.metadata()?.len();
    let mut right = size;
    // The first bytes at `right`, so a record starting at the end of a block
    // can still be classified by stream.
    let mut next_head: Vec<u8> = Vec::new();
    let mut seen_last_newline = false;
    let mut count = 0u64;
    let counts = |header: &[u8]| -> bool {
        match filter {
            StreamFilter::All => true,
            _ => record_stream(header).is_some_and(|s| filter.admits(s)),
        }
    };
    let mut block = Vec::with_capacity(TAIL_BLOCK + HEADER_PEEK);
    while right > 0 {
        let left = right.saturating_sub(TAIL_BLOCK as u64);
        let len = usize::try_from(right - left).unwrap_or(TAIL_BLOCK);
        block.clear();
        block.resize(len, 0);
        file.read_exact_at(&mut block, left)?;
        block.extend_from_slice(&next_head);
        for i in (0..len).rev() {
            if block.get(i) != Some(&b'\n') {
                continue;
            }
            let line_start = left + i as u64 + 1;
            if !seen_last_newline {
                // Ends the last complete record; what follows is unterminated.
                seen_last_newline = true;
                if n == 0 {
                    return Ok(line_start);
                }
                continue;
            }
            if counts(block.get(i + 1..).unwrap_or_default()) {
                count += 1;
                if count == n {
                    return Ok(line_start);
                }
            }
        }
        next_head.clear();
        next_head.extend_from_slice(block.get(..len.min(HEADER_PEEK)).unwrap_or_default());
        right = left;
    }
    // Fewer than n records (or none complete): start at the beginning.
    Ok(0)
}

/// The stream of a record from its first bytes, without parsing it all.
fn record_stream(header: &[u8]) -> Option<LogStream> {
    let line = header.split(|&c| c == b'\n').next()?;
    let (_, rest) = split_space(line)?;
    let end = rest.iter().position(|&c| c == b' ')?;
    LogStream::from_bytes(rest.get(..end)?)
}

/// inotify on the log's directory: reports writes, truncation, renames and
/// the creation of the new file, for the file and whatever replaces it.
struct Watcher {
    fd: AsyncFd<InotifyFd>,
}

struct InotifyFd(Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl Watcher {
    /// None (and polling instead) when inotify is unavailable, e.g. the
    /// user's inotify instances are used up; following must still work.
    fn new(file: &Path) -> Option<Self> {
        match Self::try_new(file) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::debug!("{e}; polling every {POLL:?} instead");
                None
            }
        }
    }

    fn try_new(file: &Path) -> Result<Self, LogError> {
        let dir = file.parent().unwrap_or(Path::new("/")).to_owned();
        let watch_err = |source| LogError::Watch {
            path: dir.clone(),
            source,
        };
        let ino =
            Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).map_err(watch_err)?;
        ino.add_watch(
            &dir,
            AddWatchFlags::IN_MODIFY
                | AddWatchFlags::IN_ATTRIB
                | AddWatchFlags::IN_CREATE
                | AddWatchFlags::IN_MOVED_FROM
                | AddWatchFlags::IN_MOVED_TO
                | AddWatchFlags::IN_DELETE
                | AddWatchFlags::IN_CLOSE_WRITE,
        )
        .map_err(watch_err)?;
        // `AsyncFd::register` (unsafe) only asks that the fd stay open and
        // unchanged while registered; InotifyFd owns it and never swaps it, so
        // the safe, deprecated constructor is sound here and keeps this
        // crate free of `unsafe`.
        #[allow(deprecated)]
        let registered = AsyncFd::new(InotifyFd(ino));
        let fd = registered.map_err(|e| LogError::Watch {
            path: dir.clone(),
            source: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        })?;
        Ok(Watcher { fd })
    }

    /// Wait until something happens in the directory, then drain the queue
    /// (the caller re-examines the file anyway, so the events' details do
    /// not matter).
    async fn changed(&self) -> Result<(), Errno> {
        loop {
            let mut guard = self
                .fd
                .readable()
                .await
                .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))?;
            let mut any = false;
            loop {
                match guard.get_inner().0.read_events() {
                    Ok(events) => any |= !events.is_empty(),
                    Err(Errno::EAGAIN) => {
                        guard.clear_ready();
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            if any {
                return Ok(());
            }
        }
    }
}

async fn wait_for_change(watcher: Option<&Watcher>, path: &Path) {
    match watcher {
        Some(w) => {
            tokio::select! {
                r = w.changed() => {
                    if let Err(e) = r {
                        tracing::debug!(path = %path.display(), "inotify read failed: {}", e.desc());
                        tokio::time::sleep(POLL).await;
                    }
                }
                () = tokio::time::sleep(FORCE_CHECK) => {}
            }
        }
        None => tokio::time::sleep(POLL).await,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::io::Write as _;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};

    const T0: &str = "2024-05-01T10:00:00.000000001Z";
    const T1: &str = "2024-05-01T10:00:01.5Z";
    const T2: &str = "2024-05-01T10:00:02Z";

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    // ---- parsing ----

    #[test]
    fn parses_full_and_partial_records() {
        let l = parse_line(b"2016-10-06T00:17:09.669794202Z stdout F hello world\n").unwrap();
        assert_eq!(l.timestamp, ts("2016-10-06T00:17:09.669794202Z"));
        assert_eq!(l.offset, Offset::UTC);
        assert_eq!(l.stream, LogStream::Stdout);
        assert!(!l.partial);
        assert_eq!(l.content, b"hello world");

        let l = parse_line(b"2016-10-06T00:17:09Z stderr P part").unwrap();
        assert_eq!(l.stream, LogStream::Stderr);
        assert!(l.partial);
        assert_eq!(l.content, b"part");
    }

    #[test]
    fn multi_part_tags_use_the_first_part() {
        assert!(
            parse_line(b"2016-10-06T00:17:09Z stdout P:x:y a")
                .unwrap()
                .partial
        );
        assert!(
            !parse_line(b"2016-10-06T00:17:09Z stdout F:P a")
                .unwrap()
                .partial
        );
        // Unknown tags count as full (forward compatible, as in Go).
        assert!(
            !parse_line(b"2016-10-06T00:17:09Z stdout X a")
                .unwrap()
                .partial
        );
    }

    #[test]
    fn content_keeps_spaces_binary_and_cr() {
        let l = parse_line(b"2016-10-06T00:17:09Z stdout F  a  b \xff\x00\r\n").unwrap();
        assert_eq!(l.content, b" a  b \xff\x00\r");
        let l = parse_line(b"2016-10-06T00:17:09Z stdout F \n").unwrap();
        assert_eq!(l.content, b"");
    }

    #[test]
    fn timestamps_with_offsets_and_any_precision() {
        let l = parse_line(b"2024-05-01T12:00:00.5+02:00 stdout F x").unwrap();
        assert_eq!(l.timestamp, ts("2024-05-01T10:00:00.5Z"));
        assert_eq!(l.offset.seconds(), 7200);
        assert_eq!(l.format_timestamp(), "2024-05-01T12:00:00.500000000+02:00");
        let raw = format!("{T1} stdout F x");
        let l = parse_line(raw.as_bytes()).unwrap();
        assert_eq!(l.format_timestamp(), "2024-05-01T10:00:01.500000000Z");
        let l = parse_line(b"2024-05-01T10:00:00-05:30 stdout F x").unwrap();
        assert_eq!(l.format_timestamp(), "2024-05-01T10:00:00.000000000-05:30");
    }

    #[test]
    fn malformed_records_are_errors_naming_the_problem() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "no timestamp"),
            (b"garbage", "no timestamp"),
            (b"2016-10-06T00:17:09Z stdout", "no stream"),
            (b"2016-10-06T00:17:09Z stdout F", "no tag"),
            (b"yesterday stdout F x", "not RFC3339"),
            (b"2016-10-06 stdout F x", "not RFC3339"),
            (b"2016-10-06T00:17:09 stdout F x", "not RFC3339"),
            (
                b"2016-10-06T00:17:09Z stdin F x",
                "neither stdout nor stderr",
            ),
            (b"\xff\xfe \xff \xff \xff", "not RFC3339"),
        ];
        for (input, want) in cases {
            let err = parse_line(input).unwrap_err().to_string();
            assert!(err.contains(want), "{input:?}: {err}");
        }
    }

    // ---- reading ----

    /// An AsyncWrite the test can look into while a reader task writes.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    impl AsyncWrite for Shared {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn log_file(content: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, content).unwrap();
        (dir, path)
    }

    async fn read(path: &Path, opts: &LogOptions) -> (String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        read_logs(path, opts, &mut out, &mut err, CancellationToken::new())
            .await
            .unwrap();
        (
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }

    async fn read_content(content: &str, opts: &LogOptions) -> (String, String) {
        let (_dir, path) = log_file(content);
        read(&path, opts).await
    }

    fn sample() -> String {
        format!(
            "{T0} stdout F one\n\
             {T0} stderr F err one\n\
             {T1} stdout P tw\n\
             {T1} stdout F o\n\
             not a record\n\
             {T2} stderr F err two\n\
             {T2} stdout F three\n"
        )
    }

    #[tokio::test]
    async fn splits_streams_joins_partials_and_skips_malformed() {
        let (out, err) = read_content(&sample(), &LogOptions::default()).await;
        assert_eq!(out, "one\ntwo\nthree\n");
        assert_eq!(err, "err one\nerr two\n");
    }

    #[tokio::test]
    async fn malformed_first_line_does_not_stop_the_read() {
        let (out, _) =
            read_content(&format!("junk\n{T0} stdout F a\n"), &LogOptions::default()).await;
        assert_eq!(out, "a\n");
    }

    #[tokio::test]
    async fn partials_are_joined_per_stream() {
        let content =
            format!("{T0} stdout P a\n{T0} stderr P x\n{T1} stdout F b\n{T1} stderr F y\n");
        let opts = LogOptions {
            timestamps: true,
            ..Default::default()
        };
        let (out, err) = read_content(&content, &opts).await;
        assert_eq!(out, "2024-05-01T10:00:00.000000001Z ab\n");
        assert_eq!(err, "2024-05-01T10:00:00.000000001Z xy\n");
    }

    #[tokio::test]
    async fn timestamps_prefix_each_line() {
        let opts = LogOptions {
            timestamps: true,
            stream: StreamFilter::Stdout,
            ..Default::default()
        };
        let (out, err) = read_content(&sample(), &opts).await;
        assert_eq!(
            out,
            "2024-05-01T10:00:00.000000001Z one\n\
             2024-05-01T10:00:01.500000000Z two\n\
             2024-05-01T10:00:02.000000000Z three\n"
        );
        assert_eq!(err, "");
    }

    #[tokio::test]
    async fn stream_filter() {
        let opts = LogOptions {
            stream: StreamFilter::Stderr,
            ..Default::default()
        };
        assert_eq!(
            read_content(&sample(), &opts).await,
            (String::new(), "err one\nerr two\n".into())
        );
    }

    #[tokio::test]
    async fn since_filters_by_the_first_record_of_a_line() {
        let opts = LogOptions {
            since: Some(ts(T1)),
            ..Default::default()
        };
        // The line at exactly `since` is kept (Go skips only older ones).
        let (out, err) = read_content(&sample(), &opts).await;
        assert_eq!(out, "two\nthree\n");
        assert_eq!(err, "err two\n");

        // A line starting before `since` is skipped whole.
        let content = format!("{T0} stdout P old\n{T2} stdout F tail\n{T2} stdout F new\n");
        let opts = LogOptions {
            since: Some(ts(T1)),
            ..Default::default()
        };
        assert_eq!(read_content(&content, &opts).await.0, "new\n");
    }

    #[tokio::test]
    async fn limit_bytes_cuts_output() {
        let limit = |n| LogOptions {
            limit_bytes: Some(n),
            ..Default::default()
        };
        assert_eq!(
            read_content(&sample(), &limit(6)).await,
            ("one\n".into(), "er".into())
        );
        assert_eq!(
            read_content(&sample(), &limit(4)).await,
            ("one\n".into(), String::new())
        );
        assert_eq!(
            read_content(&sample(), &limit(0)).await,
            (String::new(), String::new())
        );
        // The timestamp prefix counts towards the limit.
        let opts = LogOptions {
            limit_bytes: Some(33),
            timestamps: true,
            ..Default::default()
        };
        assert_eq!(
            read_content(&sample(), &opts).await.0,
            "2024-05-01T10:00:00.000000001Z on"
        );
    }

    fn numbered(n: usize, stream_of: impl Fn(usize) -> &'static str) -> String {
        (0..n)
            .map(|i| format!("{T0} {} F line {i}\n", stream_of(i)))
            .collect()
    }

    #[tokio::test]
    async fn tail_counts_records_from_the_end() {
        let content = numbered(5, |_| "stdout");
        let tail = |n| LogOptions {
            tail: Some(n),
            ..Default::default()
        };
        assert_eq!(read_content(&content, &tail(2)).await.0, "line 3\nline 4\n");
        assert_eq!(read_content(&content, &tail(0)).await.0, "");
        assert_eq!(
            read_content(&content, &tail(5)).await.0,
            read_content(&content, &tail(100)).await.0
        );
        assert_eq!(
            read_content(&content, &tail(100)).await.0.lines().count(),
            5
        );
        // An unterminated last record is neither counted nor printed.
        let cut = format!("{content}{T0} stdout F unfinished");
        assert_eq!(read_content(&cut, &tail(1)).await.0, "line 4\n");
        // Without tail it is printed (the writer is gone), as in Go.
        assert!(
            read_content(&cut, &LogOptions::default())
                .await
                .0
                .ends_with("line 4\nunfinished\n")
        );
        assert_eq!(read_content("", &tail(3)).await.0, "");
    }

    #[tokio::test]
    async fn tail_with_a_stream_filter_counts_that_stream() {
        let content = numbered(10, |i| if i % 3 == 0 { "stderr" } else { "stdout" });
        let opts = LogOptions {
            tail: Some(2),
            stream: StreamFilter::Stderr,
            ..Default::default()
        };
        assert_eq!(read_content(&content, &opts).await.1, "line 6\nline 9\n");
    }

    #[tokio::test]
    async fn tail_over_a_file_larger_than_the_block() {
        let content = numbered(50_000, |i| if i % 2 == 0 { "stdout" } else { "stderr" });
        assert!(content.len() > 10 * TAIL_BLOCK);
        let opts = LogOptions {
            tail: Some(3),
            ..Default::default()
        };
        let (out, err) = read_content(&content, &opts).await;
        assert_eq!(out, "line 49998\n");
        assert_eq!(err, "line 49997\nline 49999\n");
    }

    /// The backwards scan against a naive forward count, with records that
    /// straddle block boundaries and stream headers split across blocks.
    #[test]
    fn tail_start_matches_a_forward_count() {
        let mut content = Vec::new();
        let mut starts = Vec::new();
        for i in 0..3000usize {
            starts.push(content.len());
            let stream = if i % 5 == 0 { "stderr" } else { "stdout" };
            let pad = "x".repeat((i * 37) % 300);
            content.extend_from_slice(format!("{T0} {stream} F {i} {pad}\n").as_bytes());
        }
        content.extend_from_slice(b"2024 unterminated");
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&content).unwrap();
        for filter in [
            StreamFilter::All,
            StreamFilter::Stderr,
            StreamFilter::Stdout,
        ] {
            let matching: Vec<usize> = starts
                .iter()
                .enumerate()
                .filter(|(i, _)| match filter {
                    StreamFilter::All => true,
                    StreamFilter::Stderr => i % 5 == 0,
                    StreamFilter::Stdout => i % 5 != 0,
                })
                .map(|(_, s)| *s)
                .collect();
            for n in [1u64, 2, 7, 100, 599, 600, 601, 2399, 2400, 2999, 3000, 5000] {
                let want = usize::try_from(n)
                    .ok()
                    .and_then(|n| matching.len().checked_sub(n))
                    .and_then(|i| matching.get(i).copied())
                    .unwrap_or(0) as u64;
                assert_eq!(
                    tail_start(&f, n, filter).unwrap(),
                    want,
                    "{filter:?} tail {n}"
                );
            }
        }
        let end_of_complete = content.len() - b"2024 unterminated".len();
        assert_eq!(
            tail_start(&f, 0, StreamFilter::All).unwrap(),
            end_of_complete as u64
        );
    }

    #[tokio::test]
    async fn missing_file_error_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pods/x/0.log");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let e = read_logs(
            &path,
            &LogOptions::default(),
            &mut out,
            &mut err,
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("reading {}: No such file or directory", path.display())
        );
    }

    #[tokio::test]
    async fn closed_output_ends_the_read_cleanly() {
        let (_dir, path) = log_file(&numbered(10, |_| "stdout"));
        let (r, mut w) = tokio::io::duplex(16);
        drop(r);
        let mut err = Vec::new();
        read_logs(
            &path,
            &LogOptions::default(),
            &mut w,
            &mut err,
            CancellationToken::new(),
        )
        .await
        .unwrap();
    }

    // ---- follow ----

    struct Follower {
        out: Shared,
        err: Shared,
        cancel: CancellationToken,
        task: tokio::task::JoinHandle<Result<(), LogError>>,
    }

    fn follow(path: &Path, opts: LogOptions) -> Follower {
        let (out, err, cancel) = (
            Shared::default(),
            Shared::default(),
            CancellationToken::new(),
        );
        let (mut o, mut e, c, path) = (out.clone(), err.clone(), cancel.clone(), path.to_owned());
        let opts = LogOptions {
            follow: true,
            ..opts
        };
        let task = tokio::spawn(async move { read_logs(&path, &opts, &mut o, &mut e, c).await });
        Follower {
            out,
            err,
            cancel,
            task,
        }
    }

    /// Wait (bounded) until stdout ends with `want`.
    async fn wait_out(f: &Follower, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = f.out.text();
            if text.ends_with(want) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {want:?}, have {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn stop(f: Follower) {
        f.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(1), f.task)
            .await
            .expect("follow did not stop within 1s of cancel")
            .unwrap()
            .unwrap();
    }

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn rec(stream: &str, tag: &str, text: &str) -> String {
        format!("{T0} {stream} {tag} {text}\n")
    }

    #[tokio::test]
    async fn follow_sees_appended_lines_and_completes_partial_records() {
        let (_dir, path) = log_file(&rec("stdout", "F", "a"));
        let f = follow(&path, LogOptions::default());
        wait_out(&f, "a\n").await;
        append(&path, &rec("stdout", "F", "b"));
        wait_out(&f, "a\nb\n").await;
        // A record written in two pieces is printed once complete.
        append(&path, &format!("{T0} stdout P c"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        append(&path, "d\n");
        append(&path, &rec("stdout", "F", "e"));
        append(&path, &rec("stderr", "F", "oops"));
        assert_eq!(wait_out(&f, "e\n").await, "a\nb\ncde\n");
        let deadline = Instant::now() + Duration::from_secs(10);
        while f.err.text() != "oops\n" {
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop(f).await;
    }

    #[tokio::test]
    async fn follow_with_tail_starts_near_the_end() {
        let (_dir, path) = log_file(&numbered(5, |_| "stdout"));
        let f = follow(
            &path,
            LogOptions {
                tail: Some(1),
                ..Default::default()
            },
        );
        wait_out(&f, "line 4\n").await;
        append(&path, &rec("stdout", "F", "more"));
        assert_eq!(wait_out(&f, "more\n").await, "line 4\nmore\n");
        stop(f).await;
    }

    #[tokio::test]
    async fn follow_across_rename_rotation() {
        let (dir, path) = log_file(&rec("stdout", "F", "1"));
        let f = follow(&path, LogOptions::default());
        wait_out(&f, "1\n").await;
        for round in 0..3 {
            // As the kubelet rotates: rename, the runtime keeps writing to
            // the renamed file until it reopens, then writes the new one.
            let mut old = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            old.write_all(rec("stdout", "F", &format!("r{round} a")).as_bytes())
                .unwrap();
            std::fs::rename(
                &path,
                dir.path().join(format!("0.log.2024050110000{round}")),
            )
            .unwrap();
            old.write_all(rec("stdout", "P", &format!("r{round} b")).as_bytes())
                .unwrap();
            std::fs::write(&path, rec("stdout", "F", &format!("-new r{round} c"))).unwrap();
            append(&path, &rec("stdout", "F", &format!("r{round} d")));
            wait_out(&f, &format!("r{round} d\n")).await;
        }
        let want: String = std::iter::once("1\n".to_owned())
            .chain((0..3).map(|r| format!("r{r} a\nr{r} b-new r{r} c\nr{r} d\n")))
            .collect();
        assert_eq!(f.out.text(), want);
        stop(f).await;
    }

    #[tokio::test]
    async fn follow_waits_while_the_file_is_renamed_away() {
        let (dir, path) = log_file(&rec("stdout", "F", "1"));
        let f = follow(&path, LogOptions::default());
        wait_out(&f, "1\n").await;
        let mut old = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::fs::rename(&path, dir.path().join("0.log.old")).unwrap();
        old.write_all(rec("stdout", "F", "2").as_bytes()).unwrap();
        wait_out(&f, "1\n2\n").await;
        std::fs::write(&path, rec("stdout", "F", "3")).unwrap();
        assert_eq!(wait_out(&f, "3\n").await, "1\n2\n3\n");
        stop(f).await;
    }

    #[tokio::test]
    async fn follow_across_copytruncate() {
        let (_dir, path) = log_file(&rec("stdout", "F", "first line, longer than what follows"));
        let f = follow(&path, LogOptions::default());
        wait_out(&f, "follows\n").await;
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(0).unwrap();
        append(&path, &rec("stdout", "F", "after"));
        assert_eq!(
            wait_out(&f, "after\n").await,
            "first line, longer than what follows\nafter\n"
        );
        append(&path, &rec("stdout", "F", "more"));
        assert_eq!(
            wait_out(&f, "more\n").await,
            "first line, longer than what follows\nafter\nmore\n"
        );
        stop(f).await;
    }

    #[tokio::test]
    async fn cancel_ends_follow_promptly() {
        let (_dir, path) = log_file(&rec("stdout", "F", "a"));
        let f = follow(&path, LogOptions::default());
        wait_out(&f, "a\n").await;
        let t = Instant::now();
        stop(f).await;
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn follow_stops_when_the_container_stops() {
        let (_dir, path) = log_file(&rec("stdout", "F", "a"));
        let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (out, err) = (Shared::default(), Shared::default());
        let task = {
            let (running, path, mut o, mut e) =
                (running.clone(), path.clone(), out.clone(), err.clone());
            tokio::spawn(async move {
                let opts = LogOptions {
                    follow: true,
                    ..Default::default()
                };
                let check = || {
                    let r = running.load(std::sync::atomic::Ordering::SeqCst);
                    async move { r }
                };
                read_logs_until(
                    &path,
                    &opts,
                    &mut o,
                    &mut e,
                    CancellationToken::new(),
                    check,
                )
                .await
            })
        };
        let f = Follower {
            out: out.clone(),
            err: err.clone(),
            cancel: CancellationToken::new(),
            task,
        };
        wait_out(&f, "a\n").await;
        // The last words before exit, unterminated, are still printed.
        append(&path, &rec("stdout", "F", "bye"));
        append(&path, &format!("{T0} stdout F end"));
        running.store(false, std::sync::atomic::Ordering::SeqCst);
        tokio::time::timeout(Duration::from_secs(5), f.task)
            .await
            .expect("follow did not end after the container stopped")
            .unwrap()
            .unwrap();
        assert_eq!(out.text(), "a\nbye\nend\n");
        assert_eq!(err.text(), "");
    }
}
