//! Reading a log file: records from a byte offset on, `tail`'s backwards
//! scan for where to start, and the sink that filters, joins and writes
//! them.

use std::io::{self, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::{
    LogError, LogLine, LogOptions, LogStream, StreamFilter, parse_line, split_space,
    write_timestamp,
};

/// Block size for scanning a file backwards to find where `tail` starts.
pub(super) const TAIL_BLOCK: usize = 64 * 1024;
/// How much of a record's start the backwards scan needs to see its stream.
const HEADER_PEEK: usize = 128;
/// Size of each forward read: each is a trip to the blocking pool, so
/// fewer, larger reads go faster on a busy machine.
const READ_CHUNK: usize = 256 * 1024;
/// The read size of a reader that has caught up with a growing log (a
/// follower): small, so that a thousand idle followers cost little; a read
/// that fills it switches back to [`READ_CHUNK`].
const TRICKLE_CHUNK: usize = 16 * 1024;
/// Output is buffered up to this size before it is written out.
const FLUSH_AT: usize = 64 * 1024;
/// A "line" longer than this without a newline is not a CRI record
/// (containerd splits at 16 KiB); it is dropped rather than buffered forever.
const MAX_RECORD: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    Continue,
    Stop,
}

/// Turns records into output: filters, joins partial lines, adds
/// timestamps, applies the byte limit, and batches writes.
pub(super) struct Sink<'o, O, E> {
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
    pub(super) closed: bool,
}

impl<'o, O, E> Sink<'o, O, E>
where
    O: AsyncWrite + Unpin,
    E: AsyncWrite + Unpin,
{
    pub(super) fn new(opts: &'o LogOptions, stdout: &'o mut O, stderr: &'o mut E) -> Self {
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

    pub(super) fn exhausted(&self) -> bool {
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

    pub(super) async fn flush(&mut self) -> Result<(), LogError> {
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

/// The log file being read, and the bytes of a record not yet terminated.
pub(super) struct Source {
    pub(super) path: PathBuf,
    pub(super) file: tokio::fs::File,
    /// File offset just past the last byte read.
    pub(super) pos: u64,
    pub(super) pending: Vec<u8>,
    /// Dropping an overlong record until its newline.
    pub(super) discarding: bool,
    /// Records still to pass over before printing (`tail` inside a file
    /// that cannot be read backwards): counted as [`tail_scan`] counts.
    pub(super) skip: u64,
    pub(super) filter: StreamFilter,
    chunk: Vec<u8>,
}

impl Source {
    pub(super) async fn open(path: &Path) -> Result<Self, LogError> {
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
            skip: 0,
            filter: StreamFilter::All,
            chunk: vec![0; READ_CHUNK],
        })
    }

    pub(super) fn err(&self, source: io::Error) -> LogError {
        LogError::Read {
            path: self.path.clone(),
            source,
        }
    }

    pub(super) async fn seek_to(&mut self, pos: u64) -> Result<(), LogError> {
        self.file
            .seek(SeekFrom::Start(pos))
            .await
            .map_err(|e| self.err(e))?;
        self.pos = pos;
        self.pending.clear();
        self.discarding = false;
        Ok(())
    }

    /// Where the last `n` records start (see [`tail_scan`]), scanning
    /// backwards so a huge file is not read whole.
    pub(super) async fn tail_start(
        &mut self,
        n: u64,
        filter: StreamFilter,
    ) -> Result<u64, LogError> {
        Ok(self.tail_scan(n, filter).await?.0)
    }

    /// [`tail_scan`] on the open file, on the blocking pool.
    pub(super) async fn tail_scan(
        &mut self,
        n: u64,
        filter: StreamFilter,
    ) -> Result<(u64, u64), LogError> {
        let file = self
            .file
            .try_clone()
            .await
            .map_err(|e| self.err(e))?
            .into_std()
            .await;
        tokio::task::spawn_blocking(move || tail_scan(&file, n, filter))
            .await
            .map_err(|e| self.err(io::Error::other(e)))?
            .map_err(|e| self.err(e))
    }

    /// Read to the current end of the file, printing every complete record.
    pub(super) async fn read_available<O, E>(
        &mut self,
        sink: &mut Sink<'_, O, E>,
        cancel: &CancellationToken,
    ) -> Result<Flow, LogError>
    where
        O: AsyncWrite + Unpin,
        E: AsyncWrite + Unpin,
    {
        let mut chunk = std::mem::take(&mut self.chunk);
        if chunk.is_empty() {
            chunk = vec![0; TRICKLE_CHUNK];
        }
        let mut read = 0;
        let flow = loop {
            if cancel.is_cancelled() {
                break Ok(Flow::Stop);
            }
            let n = match self.file.read(&mut chunk).await {
                Ok(0) => break Ok(Flow::Continue),
                Ok(n) => n,
                Err(e) => break Err(self.err(e)),
            };
            read += n;
            if n == chunk.len() && chunk.len() < READ_CHUNK {
                // More than a trickle: back to large reads.
                chunk = vec![0; READ_CHUNK];
            }
            self.pos += n as u64;
            let data = chunk.get(..n).unwrap_or_default();
            match self.take(data, sink).await {
                Ok(Flow::Continue) => {}
                other => break other,
            }
        };
        if matches!(flow, Ok(Flow::Continue)) && chunk.len() > TRICKLE_CHUNK && read < READ_CHUNK {
            // Caught up (the end of the file, little read this time): let go
            // of the large buffers, ours and the one tokio's File keeps for
            // its blocking reads (a fresh handle on the same open file, so
            // the position is kept).
            chunk = Vec::new();
            if let Ok(fresh) = self.file.try_clone().await {
                self.file = fresh;
            }
        }
        self.chunk = chunk;
        flow
    }

    /// Split freshly read bytes into records, joining them with what was
    /// left over from the previous read.
    pub(super) async fn take<O, E>(
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
        &mut self,
        record: &[u8],
        sink: &mut Sink<'_, O, E>,
    ) -> Result<Flow, LogError>
    where
        O: AsyncWrite + Unpin,
        E: AsyncWrite + Unpin,
    {
        if self.skip > 0 {
            if counts(self.filter, record) {
                self.skip -= 1;
            }
            return Ok(Flow::Continue);
        }
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
    pub(super) async fn emit_pending<O, E>(
        &mut self,
        sink: &mut Sink<'_, O, E>,
    ) -> Result<Flow, LogError>
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
}

/// The byte offset of the `n`-th last complete record of `filter`'s stream
/// (every record for `All`, malformed ones included, like Go's tail). An
/// unterminated last record is not counted. Reads backwards in blocks.
#[cfg(test)]
pub(super) fn tail_start(file: &std::fs::File, n: u64, filter: StreamFilter) -> io::Result<u64> {
    Ok(tail_scan(file, n, filter)?.0)
}

/// Where the last `n` counted records of the file start, and how many were
/// found: `(offset, n)` when the file has that many, `(0, fewer)` when not,
/// so the caller can go on counting in the file before this one.
pub(super) fn tail_scan(
    file: &std::fs::File,
    n: u64,
    filter: StreamFilter,
) -> io::Result<(u64, u64)> {
    let size = file.metadata()?.len();
    let mut right = size;
    // The first bytes at `right`, so a record starting at the end of a block
    // can still be classified by stream.
    let mut next_head: Vec<u8> = Vec::new();
    let mut seen_last_newline = false;
    let mut count = 0u64;
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
                    return Ok((line_start, 0));
                }
                continue;
            }
            if counts(filter, block.get(i + 1..).unwrap_or_default()) {
                count += 1;
                if count == n {
                    return Ok((line_start, count));
                }
            }
        }
        next_head.clear();
        next_head.extend_from_slice(block.get(..len.min(HEADER_PEEK)).unwrap_or_default());
        right = left;
    }
    // Fewer than n records (or none complete): start at the beginning. The
    // first record has no newline before it; count it too.
    if seen_last_newline && size > 0 {
        let mut head = vec![0; usize::try_from(size.min(HEADER_PEEK as u64)).unwrap_or(0)];
        file.read_exact_at(&mut head, 0)?;
        if counts(filter, &head) {
            count += 1;
            if count == n {
                return Ok((0, count));
            }
        }
    }
    Ok((0, count))
}

/// Whether `tail` counts the record starting with `header`.
pub(super) fn counts(filter: StreamFilter, header: &[u8]) -> bool {
    match filter {
        StreamFilter::All => true,
        _ => record_stream(header).is_some_and(|s| filter.admits(s)),
    }
}

/// The timestamp of the last complete record and whether it is partial,
/// when it fits in one block at the end of the file and parses.
pub(super) fn last_record_time(
    file: &std::fs::File,
) -> io::Result<Option<(jiff::Timestamp, bool)>> {
    let size = file.metadata()?.len();
    let left = size.saturating_sub(TAIL_BLOCK as u64);
    let mut block = vec![0; usize::try_from(size - left).unwrap_or(0)];
    file.read_exact_at(&mut block, left)?;
    let Some(end) = block.iter().rposition(|&c| c == b'\n') else {
        return Ok(None);
    };
    let body = block.get(..end).unwrap_or_default();
    let start = match body.iter().rposition(|&c| c == b'\n') {
        Some(i) => i + 1,
        None if left == 0 => 0,
        None => return Ok(None),
    };
    Ok(parse_line(body.get(start..).unwrap_or_default())
        .ok()
        .map(|l| (l.timestamp, l.partial)))
}

/// The stream of a record from its first bytes, without parsing it all.
fn record_stream(header: &[u8]) -> Option<LogStream> {
    let line = header.split(|&c| c == b'\n').next()?;
    let (_, rest) = split_space(line)?;
    let end = rest.iter().position(|&c| c == b' ')?;
    LogStream::from_bytes(rest.get(..end)?)
}
