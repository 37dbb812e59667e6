//! Reading a container's log together with its rotated files.
//!
//! The kubelet rotates `N.log` by renaming it to `N.log.<YYYYMMDD-HHMMSS>`
//! (the rotation time, in the node's local time) and asking the runtime to
//! reopen the log; older rotated files are later gzipped to
//! `N.log.<stamp>.gz`. The Go kubelet serves only the live file. Here the
//! rotated files are read first, oldest first, then the live one:
//!
//! - `tail` counts records backwards from the end of the live file, then of
//!   the newest rotated file, and so on, reading plain files backwards in
//!   blocks; a gzipped file is decompressed once to count its records and
//!   again to print the wanted ones.
//! - `since` skips whole rotated files that hold only older lines: a plain
//!   file by its last record, a gzipped one by the time in its name.
//! - Partial lines join across files, since one sink sees every record.
//!
//! The live file is opened first and rotated files with the same inode are
//! ignored, so a rotation that happens while the request starts neither
//! loses nor repeats a file.

use std::future::Future;
use std::io::{self, BufRead, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::read::{Flow, Sink, Source, counts, last_record_time, tail_scan};
use super::{LogError, LogOptions, StreamFilter, read_current};

/// Size of each decompressed chunk handed from the blocking pool.
const GZ_CHUNK: usize = 128 * 1024;
/// How much of a record's start is enough to tell its stream.
const HEADER_PEEK: usize = 128;

/// One rotated file of a container log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotatedLog {
    pub path: PathBuf,
    /// The rotation time from the name, `YYYYMMDD-HHMMSS`.
    pub stamp: String,
    pub gzipped: bool,
}

impl RotatedLog {
    /// Every line in the file was written before this instant: the rotation
    /// time rounded up to the next second. The stamp is read both as local
    /// time and as UTC and the later one is kept, so a rotator that wrote it
    /// in either zone is never mistaken for an earlier one.
    pub fn written_before(&self) -> Option<Timestamp> {
        let dt = jiff::civil::DateTime::strptime("%Y%m%d-%H%M%S", &self.stamp).ok()?;
        let utc = dt.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
        let local = dt
            .to_zoned(jiff::tz::TimeZone::system())
            .map(|z| z.timestamp())
            .unwrap_or(utc);
        utc.max(local)
            .checked_add(jiff::SignedDuration::from_secs(1))
            .ok()
    }
}

/// The rotated files of the log at `current`, oldest first. A stamp that
/// exists both plain and gzipped (compression in progress) is listed once,
/// plain; the compressor's temporary files are not listed.
pub fn rotated_logs(current: &Path) -> io::Result<Vec<RotatedLog>> {
    let Some(base) = current.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let dir = current.parent().unwrap_or(Path::new("."));
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(base).and_then(|r| r.strip_prefix('.')) else {
            continue;
        };
        let (stamp, gzipped) = match rest.strip_suffix(".gz") {
            Some(s) => (s, true),
            None => (rest, false),
        };
        if !is_stamp(stamp) {
            continue;
        }
        found.push(RotatedLog {
            path: entry.path(),
            stamp: stamp.to_owned(),
            gzipped,
        });
    }
    // Oldest first; for one stamp, plain before gzipped, then drop the gzip.
    found.sort_by(|a, b| (&a.stamp, a.gzipped).cmp(&(&b.stamp, b.gzipped)));
    found.dedup_by(|later, earlier| later.stamp == earlier.stamp);
    Ok(found)
}

/// `YYYYMMDD-HHMMSS`.
fn is_stamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 15
        && b.iter().enumerate().all(|(i, c)| {
            if i == 8 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

/// Where reading starts in one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// At this byte of the (decompressed) content.
    Offset(u64),
    /// After this many counted records.
    Skip(u64),
}

/// [`super::read_logs_until`] over the rotated files of `path` and then
/// `path` itself. With `opts.follow`, the live file is followed as there,
/// across further rotations.
pub async fn read_rotated_logs_until<F, Fut>(
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
    let rotated = list_others(&src).await;
    let (files, current_start) = plan(&mut src, rotated, opts).await?;
    let result = async {
        for (log, start) in files {
            if read_rotated(&log, start, &mut sink, opts.stream, &cancel).await? == Flow::Stop {
                return Ok(());
            }
        }
        src.seek_to(current_start).await?;
        read_current(&mut src, &mut sink, opts, &cancel, still_running).await
    }
    .await;
    let flushed = sink.flush().await;
    result.and(flushed)
}

/// The rotated files beside the live one, without the live file itself
/// (it may have been renamed since we opened it).
async fn list_others(src: &Source) -> Vec<RotatedLog> {
    let live = src.file.metadata().await.ok().map(|m| (m.dev(), m.ino()));
    let path = src.path.clone();
    let listed = tokio::task::spawn_blocking(move || {
        let mut logs = rotated_logs(&path)?;
        logs.retain(|l| {
            std::fs::metadata(&l.path)
                .map(|m| Some((m.dev(), m.ino())) != live)
                .unwrap_or(true)
        });
        Ok::<_, io::Error>(logs)
    })
    .await;
    match listed {
        Ok(Ok(logs)) => logs,
        Ok(Err(e)) => {
            tracing::debug!(path = %src.path.display(), "cannot list rotated log files: {e}");
            Vec::new()
        }
        Err(e) => {
            tracing::debug!(path = %src.path.display(), "listing rotated log files: {e}");
            Vec::new()
        }
    }
}

/// Which rotated files to read and from where, and where the live file
/// starts.
async fn plan(
    src: &mut Source,
    rotated: Vec<RotatedLog>,
    opts: &LogOptions,
) -> Result<(Vec<(RotatedLog, Start)>, u64), LogError> {
    let mut starts = vec![Start::Offset(0); rotated.len()];
    let mut first = 0;
    let mut current_start = 0;
    if let Some(n) = opts.tail {
        let (offset, found) = src.tail_scan(n, opts.stream).await?;
        current_start = offset;
        if found >= n {
            first = rotated.len();
        } else {
            let mut need = n - found;
            for (i, log) in rotated.iter().enumerate().rev() {
                let (start, got) = tail_of(log, need, opts.stream).await;
                if let Some(s) = starts.get_mut(i) {
                    *s = start;
                }
                if got >= need {
                    first = i;
                    break;
                }
                need -= got;
            }
        }
    }
    if let Some(since) = opts.since {
        while let Some(log) = rotated.get(first) {
            if !older_than(log, since).await {
                break;
            }
            tracing::debug!(path = %log.path.display(), "rotated log holds only lines before `since`, skipping it");
            first += 1;
        }
    }
    let files = rotated.into_iter().zip(starts).skip(first).collect();
    Ok((files, current_start))
}

/// Where the last `need` counted records of a rotated file start, and how
/// many it has (up to `need`). A file that cannot be read counts as empty.
async fn tail_of(log: &RotatedLog, need: u64, filter: StreamFilter) -> (Start, u64) {
    let log = log.clone();
    let res = tokio::task::spawn_blocking(move || -> io::Result<(Start, u64)> {
        match open_plain(&log)? {
            Some(file) => {
                let (offset, got) = tail_scan(&file, need, filter)?;
                Ok((Start::Offset(offset), got))
            }
            None => {
                let total = count_gz_records(&gz_path(&log), filter)?;
                Ok(if total > need {
                    (Start::Skip(total - need), need)
                } else {
                    (Start::Skip(0), total)
                })
            }
        }
    })
    .await;
    match res {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::debug!("cannot count the records of a rotated log: {e}");
            (Start::Skip(0), 0)
        }
        Err(e) => {
            tracing::debug!("counting the records of a rotated log: {e}");
            (Start::Skip(0), 0)
        }
    }
}

/// The plain file, or None when it is (or has meanwhile become) gzipped.
fn open_plain(log: &RotatedLog) -> io::Result<Option<std::fs::File>> {
    if log.gzipped {
        return Ok(None);
    }
    match std::fs::File::open(&log.path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn gz_path(log: &RotatedLog) -> PathBuf {
    if log.gzipped {
        log.path.clone()
    } else {
        let mut p = log.path.clone().into_os_string();
        p.push(".gz");
        PathBuf::from(p)
    }
}

/// Whether every line of the file is older than `since`.
async fn older_than(log: &RotatedLog, since: Timestamp) -> bool {
    if log.written_before().is_some_and(|t| t <= since) {
        return true;
    }
    let log = log.clone();
    tokio::task::spawn_blocking(move || match open_plain(&log) {
        Ok(Some(file)) => last_record_time(&file)
            .ok()
            .flatten()
            .is_some_and(|(t, partial)| t < since && !partial),
        _ => false,
    })
    .await
    .unwrap_or(false)
}

/// Print one rotated file from `start`. A file that vanished or cannot be
/// decompressed is skipped with a debug log; only a failed write ends the
/// read.
async fn read_rotated<O, E>(
    log: &RotatedLog,
    start: Start,
    sink: &mut Sink<'_, O, E>,
    filter: StreamFilter,
    cancel: &CancellationToken,
) -> Result<Flow, LogError>
where
    O: AsyncWrite + Unpin,
    E: AsyncWrite + Unpin,
{
    let mut src = match open_rotated(log).await {
        Some(s) => s,
        None => return Ok(Flow::Continue),
    };
    src.filter = filter;
    let (offset, skip) = match start {
        Start::Offset(o) => (o, 0),
        Start::Skip(k) => (0, k),
    };
    src.skip = skip;
    let gz = src.path.extension().is_some_and(|e| e == "gz");
    let flow = if gz {
        read_gz(&mut src, offset, sink, cancel).await
    } else {
        match src.seek_to(offset).await {
            Ok(()) => src.read_available(sink, cancel).await,
            Err(e) => Err(e),
        }
    };
    let flow = match flow {
        Err(LogError::Read { path, source }) => {
            tracing::debug!(path = %path.display(), "skipping the rest of a rotated log: {source}");
            Flow::Continue
        }
        other => other?,
    };
    if flow == Flow::Stop {
        return Ok(Flow::Stop);
    }
    // Nobody writes to a rotated file any more: an unterminated last record
    // is as complete as it gets.
    src.emit_pending(sink).await
}

async fn open_rotated(log: &RotatedLog) -> Option<Source> {
    match Source::open(&log.path).await {
        Ok(s) => return Some(s),
        Err(e) if log.gzipped => {
            tracing::debug!("rotated log is gone: {e}");
            return None;
        }
        Err(_) => {}
    }
    // Gzipped since it was listed.
    match Source::open(&gz_path(log)).await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::debug!("rotated log is gone: {e}");
            None
        }
    }
}

/// Feed the decompressed content of `src`'s file, from byte `offset` on, to
/// the sink. Decompression runs on the blocking pool, a chunk ahead.
async fn read_gz<O, E>(
    src: &mut Source,
    offset: u64,
    sink: &mut Sink<'_, O, E>,
    cancel: &CancellationToken,
) -> Result<Flow, LogError>
where
    O: AsyncWrite + Unpin,
    E: AsyncWrite + Unpin,
{
    let mut rx = gunzip(src.path.clone(), offset);
    loop {
        let chunk = tokio::select! {
            biased;
            () = cancel.cancelled() => return Ok(Flow::Stop),
            c = rx.recv() => c,
        };
        match chunk {
            None => return Ok(Flow::Continue),
            Some(Err(e)) => return Err(src.err(e)),
            Some(Ok(data)) => {
                if src.take(&data, sink).await? == Flow::Stop {
                    return Ok(Flow::Stop);
                }
            }
        }
    }
}

/// Decompress `path` on the blocking pool, dropping the first `skip` bytes,
/// in chunks of at most [`GZ_CHUNK`] with one waiting at most. Dropping the
/// receiver stops the work.
fn gunzip(path: PathBuf, skip: u64) -> mpsc::Receiver<io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::channel(1);
    tokio::task::spawn_blocking(move || {
        let mut dec = match std::fs::File::open(&path) {
            Ok(f) => flate2::read::MultiGzDecoder::new(io::BufReader::with_capacity(GZ_CHUNK, f)),
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        if skip > 0 {
            match io::copy(&mut (&mut dec).take(skip), &mut io::sink()) {
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
        loop {
            let mut buf = vec![0; GZ_CHUNK];
            let mut filled = 0;
            while filled < buf.len() {
                match dec.read(buf.get_mut(filled..).unwrap_or_default()) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
            if filled == 0 {
                return;
            }
            buf.truncate(filled);
            if tx.blocking_send(Ok(buf)).is_err() {
                return;
            }
        }
    });
    rx
}

/// The number of complete records of a gzipped log that `tail` counts.
fn count_gz_records(path: &Path, filter: StreamFilter) -> io::Result<u64> {
    let file = std::fs::File::open(path)?;
    let dec = flate2::read::MultiGzDecoder::new(io::BufReader::with_capacity(GZ_CHUNK, file));
    let mut r = io::BufReader::with_capacity(GZ_CHUNK, dec);
    let mut count = 0u64;
    // The start of the record in progress, enough to tell its stream.
    let mut head: Vec<u8> = Vec::with_capacity(HEADER_PEEK);
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(count);
        }
        let len = buf.len();
        let mut rest = buf;
        while !rest.is_empty() {
            let nl = rest.iter().position(|&c| c == b'\n');
            let piece = match nl {
                Some(i) => rest.get(..i).unwrap_or_default(),
                None => rest,
            };
            if head.len() < HEADER_PEEK {
                let want = (HEADER_PEEK - head.len()).min(piece.len());
                head.extend_from_slice(piece.get(..want).unwrap_or_default());
            }
            match nl {
                Some(i) => {
                    if counts(filter, &head) {
                        count += 1;
                    }
                    head.clear();
                    rest = rest.get(i + 1..).unwrap_or_default();
                }
                None => rest = &[],
            }
        }
        r.consume(len);
    }
}
