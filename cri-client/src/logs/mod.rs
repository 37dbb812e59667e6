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

mod follow;
mod read;
mod rotated;
#[cfg(test)]
mod rotated_tests;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::tz::Offset;
use nix::errno::Errno;
use tokio::io::AsyncWrite;
use tokio_util::sync::CancellationToken;

use follow::{Rotation, Watcher, wait_for_change};
use read::{Flow, Sink, Source};

pub use rotated::{RotatedLog, read_rotated_logs_until, rotated_logs};

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
    if let Some(parsed) = fast_timestamp(ts) {
        return Ok(parsed);
    }
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

/// The runtime's own layout, `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`,
/// parsed by hand: it is every record's first field, and the general parser
/// costs more than the rest of a record's handling. Anything else (and
/// anything out of range) is left to the general parser (None).
fn fast_timestamp(ts: &[u8]) -> Option<(Timestamp, Offset)> {
    let digit = |i: usize| -> Option<i64> {
        let c = *ts.get(i)?;
        c.is_ascii_digit().then(|| i64::from(c - b'0'))
    };
    let two = |i: usize| -> Option<i64> { Some(digit(i)? * 10 + digit(i + 1)?) };
    let at = |i: usize, c: u8| ts.get(i) == Some(&c);
    if !(at(4, b'-') && at(7, b'-') && at(10, b'T') && at(13, b':') && at(16, b':')) {
        return None;
    }
    let year = two(0)? * 100 + two(2)?;
    let (month, day) = (two(5)?, two(8)?);
    let (hour, minute, second) = (two(11)?, two(14)?, two(17)?);
    let mut i = 19;
    let mut nanos = 0i64;
    if at(i, b'.') {
        i += 1;
        let mut digits = 0;
        while let Some(d) = digit(i) {
            if digits == 9 {
                return None;
            }
            nanos = nanos * 10 + d;
            digits += 1;
            i += 1;
        }
        if digits == 0 {
            return None;
        }
        nanos *= 10i64.pow(9 - digits);
    }
    let offset = match ts.get(i) {
        Some(b'Z') if ts.len() == i + 1 => 0,
        Some(&sign @ (b'+' | b'-')) if ts.len() == i + 6 && at(i + 3, b':') => {
            let (h, m) = (two(i + 1)?, two(i + 4)?);
            if h > 23 || m > 59 {
                return None;
            }
            let secs = h * 3600 + m * 60;
            if sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Days since 1970-01-01 of a proleptic Gregorian date (the "days from
    // civil" formula, with years starting in March).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    let timestamp = Timestamp::new(secs, i32::try_from(nanos).ok()?).ok()?;
    let offset = Offset::from_seconds(i32::try_from(offset).ok()?).ok()?;
    Some((timestamp, offset))
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
    still_running: F,
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
    let result = read_current(&mut src, &mut sink, opts, &cancel, still_running).await;
    // Whatever ended the read, print what is buffered.
    let flushed = sink.flush().await;
    result.and(flushed)
}

/// Read the live log file from where `src` stands to its end, and with
/// `opts.follow` on, keep reading it (across rotation) until `cancel` fires
/// or `still_running` says the container stopped and the file is drained.
async fn read_current<O, E, F, Fut>(
    src: &mut Source,
    sink: &mut Sink<'_, O, E>,
    opts: &LogOptions,
    cancel: &CancellationToken,
    mut still_running: F,
) -> Result<(), LogError>
where
    O: AsyncWrite + Unpin,
    E: AsyncWrite + Unpin,
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let watcher = if opts.follow {
        Watcher::new(&src.path)
    } else {
        None
    };
    let mut last_check: Option<Instant> = None;
    let mut stopping = false;
    loop {
        if src.read_available(sink, cancel).await? == Flow::Stop {
            return Ok(());
        }
        if !opts.follow {
            // An unterminated last record is printed when reading the
            // whole file, but not after `tail`, as in Go.
            if opts.tail.is_none() {
                src.emit_pending(sink).await?;
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
                if src.read_available(sink, cancel).await? == Flow::Stop {
                    return Ok(());
                }
                if src.emit_pending(sink).await? == Flow::Stop {
                    return Ok(());
                }
                if src.reopen().await? {
                    tracing::debug!(path = %src.path.display(), "log file was rotated, following the new one");
                }
                continue;
            }
        }
        if stopping {
            src.emit_pending(sink).await?;
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
