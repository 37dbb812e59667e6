#![allow(clippy::unwrap_used)]

use super::read::{TAIL_BLOCK, tail_start};
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

#[test]
fn the_fast_timestamp_parser_agrees_with_the_general_one() {
    let slow = |s: &str| {
        let p = jiff::fmt::temporal::Pieces::parse(s.as_bytes()).ok()?;
        let off = p.to_numeric_offset()?;
        let ts = off.to_timestamp(p.date().to_datetime(p.time()?)).ok()?;
        Some((ts, off))
    };
    let cases = [
        "2024-05-01T10:00:00.000000001Z",
        "2024-05-01T10:00:01.5Z",
        "2024-05-01T10:00:02Z",
        "2024-02-29T23:59:59.999999999+05:30",
        "2000-02-29T00:00:00-08:00",
        "1969-12-31T23:59:59.1Z",
        "0001-01-01T00:00:00Z",
        "9000-12-31T23:59:59.999999999-23:59",
        "2100-03-01T12:34:56.123456+00:00",
        "1970-01-01T00:00:00Z",
    ];
    for c in cases {
        let fast = fast_timestamp(c.as_bytes());
        assert!(fast.is_some(), "{c} should take the fast path");
        assert_eq!(fast, slow(c), "{c}");
        assert_eq!(parse_timestamp(c.as_bytes()).ok(), slow(c), "{c}");
    }
    // Left to the general parser, which decides.
    for c in [
        "2023-02-29T00:00:00Z",
        "2024-13-01T00:00:00Z",
        "2024-05-01T24:00:00Z",
        "2024-05-01T10:00:00.Z",
        "2024-05-01T10:00:00.0000000001Z",
        "2024-05-01t10:00:00z",
        "2024-05-01T10:00:00",
        "2024-05-01T10:00:00+0100",
        "2024-05-01T10:00:60Z",
        "2024-05-01T10:00:00Zjunk",
        "+2024-05-01T10:00:00Z",
        "9999-12-31T23:59:59.999999999-23:59",
    ] {
        assert_eq!(fast_timestamp(c.as_bytes()), None, "{c}");
        assert_eq!(parse_timestamp(c.as_bytes()).ok(), slow(c), "{c}");
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
    let (out, _) = read_content(&format!("junk\n{T0} stdout F a\n"), &LogOptions::default()).await;
    assert_eq!(out, "a\n");
}

#[tokio::test]
async fn partials_are_joined_per_stream() {
    let content = format!("{T0} stdout P a\n{T0} stderr P x\n{T1} stdout F b\n{T1} stderr F y\n");
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
