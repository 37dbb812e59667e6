#![allow(clippy::unwrap_used)]

use super::read::tail_scan;
use super::*;
use std::io::Write as _;

/// A record at `secs` seconds after 2024-05-01T10:00:00Z.
fn at(secs: u32, stream: &str, tag: &str, text: &str) -> String {
    format!(
        "2024-05-01T10:{:02}:{:02}.000000000Z {stream} {tag} {text}\n",
        secs / 60,
        secs % 60
    )
}

fn lines(range: std::ops::Range<u32>, prefix: &str) -> String {
    range
        .map(|i| at(i, "stdout", "F", &format!("{prefix}{i}")))
        .collect()
}

fn gz(path: &Path, content: &str) {
    let f = std::fs::File::create(path).unwrap();
    let mut enc = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    enc.write_all(content.as_bytes()).unwrap();
    enc.finish().unwrap();
}

/// 0.log.<a>.gz (lines 0-9), 0.log.<b>.gz (10-19), 0.log.<c> (20-29) and
/// 0.log (30-39), with rotation stamps far in the past.
fn rotated_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    gz(&d.join("0.log.20240501-100010.gz"), &lines(0..10, "a"));
    gz(&d.join("0.log.20240501-100020.gz"), &lines(10..20, "b"));
    std::fs::write(d.join("0.log.20240501-100030"), lines(20..30, "c")).unwrap();
    std::fs::write(d.join("0.log"), lines(30..40, "d")).unwrap();
    // Neither rotated files of 0.log nor the current one.
    std::fs::write(d.join("0.log.20240501-100040.tmp"), "junk\n").unwrap();
    std::fs::write(d.join("1.log.20240501-100040"), at(0, "stdout", "F", "x")).unwrap();
    std::fs::write(d.join("0.logx.20240501-100040"), at(0, "stdout", "F", "x")).unwrap();
    let path = d.join("0.log");
    (dir, path)
}

async fn read_all(path: &Path, opts: &LogOptions) -> (String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    read_rotated_logs_until(
        path,
        opts,
        &mut out,
        &mut err,
        CancellationToken::new(),
        || async { true },
    )
    .await
    .unwrap();
    (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn want(range: std::ops::Range<u32>) -> String {
    range
        .map(|i| {
            let p = ["a", "b", "c", "d"][(i / 10) as usize];
            format!("{p}{i}\n")
        })
        .collect()
}

#[test]
fn lists_rotated_files_oldest_first_plain_over_gzip() {
    let (dir, path) = rotated_dir();
    // Compression in progress: the same stamp plain and gzipped.
    gz(&dir.path().join("0.log.20240501-100030.gz"), "");
    let logs = rotated_logs(&path).unwrap();
    let names: Vec<_> = logs
        .iter()
        .map(|l| l.path.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "0.log.20240501-100010.gz",
            "0.log.20240501-100020.gz",
            "0.log.20240501-100030"
        ]
    );
    assert!(logs[0].gzipped && !logs[2].gzipped);
    assert_eq!(logs[1].stamp, "20240501-100020");
    // The stamp read as UTC or local time, whichever is later, plus 1 s.
    let before = logs[1].written_before().unwrap();
    assert!(before >= ts("2024-05-01T10:00:21Z"), "{before}");
}

#[tokio::test]
async fn reads_gzipped_rotated_and_current_files_in_order() {
    let (_dir, path) = rotated_dir();
    let (out, err) = read_all(&path, &LogOptions::default()).await;
    assert_eq!(out, want(0..40));
    assert_eq!(err, "");
}

#[tokio::test]
async fn tail_counts_back_across_files() {
    let (_dir, path) = rotated_dir();
    for n in [0u64, 1, 5, 10, 11, 20, 25, 35, 40, 41, 1000] {
        let opts = LogOptions {
            tail: Some(n),
            ..Default::default()
        };
        let (out, _) = read_all(&path, &opts).await;
        let from = 40u32.saturating_sub(u32::try_from(n).unwrap());
        assert_eq!(out, want(from..40), "tail {n}");
    }
}

#[tokio::test]
async fn tail_with_a_stream_filter_counts_that_stream_across_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let mut old = String::new();
    for i in 0..10 {
        old.push_str(&at(i, "stderr", "F", &format!("e{i}")));
        old.push_str(&at(i, "stdout", "F", &format!("o{i}")));
    }
    gz(&dir.path().join("0.log.20240501-100010.gz"), &old);
    let path = dir.path().join("0.log");
    std::fs::write(
        &path,
        at(20, "stdout", "F", "o20") + &at(20, "stderr", "F", "e20"),
    )
    .unwrap();
    let opts = LogOptions {
        tail: Some(3),
        stream: StreamFilter::Stderr,
        ..Default::default()
    };
    let (out, err) = read_all(&path, &opts).await;
    assert_eq!(out, "");
    assert_eq!(err, "e8\ne9\ne20\n");
}

#[tokio::test]
async fn since_skips_older_files_and_lines() {
    let (dir, path) = rotated_dir();
    let opts = LogOptions {
        since: Some(ts("2024-05-01T10:00:25Z")),
        ..Default::default()
    };
    let (out, _) = read_all(&path, &opts).await;
    assert_eq!(out, want(25..40));
    // Files wholly before `since` may even be unreadable.
    std::fs::write(dir.path().join("0.log.20240501-100010.gz"), "not gzip").unwrap();
    let opts = LogOptions {
        since: Some(ts("2024-05-02T10:00:00Z")),
        ..Default::default()
    };
    let (out, _) = read_all(&path, &opts).await;
    assert_eq!(out, "");
}

#[tokio::test]
async fn since_and_tail_together() {
    let (_dir, path) = rotated_dir();
    let opts = LogOptions {
        since: Some(ts("2024-05-01T10:00:25Z")),
        tail: Some(30),
        ..Default::default()
    };
    assert_eq!(read_all(&path, &opts).await.0, want(25..40));
    let opts = LogOptions {
        since: Some(ts("2024-05-01T10:00:05Z")),
        tail: Some(12),
        ..Default::default()
    };
    assert_eq!(read_all(&path, &opts).await.0, want(28..40));
}

#[tokio::test]
async fn partial_lines_join_across_files_and_limit_counts_all() {
    let dir = tempfile::tempdir().unwrap();
    gz(
        &dir.path().join("0.log.20240501-100010.gz"),
        &(at(0, "stdout", "F", "one") + &at(1, "stdout", "P", "tw")),
    );
    let path = dir.path().join("0.log");
    std::fs::write(
        &path,
        at(2, "stdout", "F", "o") + &at(3, "stdout", "F", "three"),
    )
    .unwrap();
    let (out, _) = read_all(&path, &LogOptions::default()).await;
    assert_eq!(out, "one\ntwo\nthree\n");
    let opts = LogOptions {
        limit_bytes: Some(6),
        ..Default::default()
    };
    assert_eq!(read_all(&path, &opts).await.0, "one\ntw");
    let opts = LogOptions {
        timestamps: true,
        tail: Some(3),
        ..Default::default()
    };
    // tail 3 starts at the P record in the gzipped file.
    assert_eq!(
        read_all(&path, &opts).await.0,
        "2024-05-01T10:00:01.000000000Z two\n2024-05-01T10:00:03.000000000Z three\n"
    );
}

#[tokio::test]
async fn broken_or_vanished_rotated_files_are_skipped() {
    let (dir, path) = rotated_dir();
    // A truncated gzip: what decompresses is printed, then the next file.
    let full = std::fs::read(dir.path().join("0.log.20240501-100020.gz")).unwrap();
    std::fs::write(dir.path().join("0.log.20240501-100020.gz"), &full[..10]).unwrap();
    let (out, _) = read_all(&path, &LogOptions::default()).await;
    assert!(out.starts_with(&want(0..10)), "{out}");
    assert!(out.ends_with(&want(20..40)), "{out}");
    // No rotated files at all: just the live one.
    let other = tempfile::tempdir().unwrap();
    let p = other.path().join("0.log");
    std::fs::write(&p, lines(0..3, "a")).unwrap();
    assert_eq!(read_all(&p, &LogOptions::default()).await.0, want(0..3));
    // A missing live file is an error naming it.
    let e = read_rotated_logs_until(
        &other.path().join("9.log"),
        &LogOptions::default(),
        &mut Vec::new(),
        &mut Vec::new(),
        CancellationToken::new(),
        || async { true },
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("9.log"), "{e}");
}

#[test]
fn tail_scan_reports_how_many_it_found() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    std::fs::write(&p, lines(0..5, "a")).unwrap();
    let f = std::fs::File::open(&p).unwrap();
    assert_eq!(tail_scan(&f, 9, StreamFilter::All).unwrap(), (0, 5));
    assert_eq!(tail_scan(&f, 5, StreamFilter::All).unwrap(), (0, 5));
    let one = at(0, "stdout", "F", "a0").len() as u64;
    assert_eq!(tail_scan(&f, 4, StreamFilter::All).unwrap(), (one, 4));
    assert_eq!(tail_scan(&f, 3, StreamFilter::Stderr).unwrap(), (0, 0));
    std::fs::write(&p, "").unwrap();
    let f = std::fs::File::open(&p).unwrap();
    assert_eq!(tail_scan(&f, 3, StreamFilter::All).unwrap(), (0, 0));
}

#[tokio::test]
async fn follow_continues_across_rotation_and_ends_when_the_container_stops() {
    let (dir, path) = rotated_dir();
    let out = Arc::new(Mutex::new(Vec::<u8>::new()));
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let task = {
        let (out, running, path) = (out.clone(), running.clone(), path.clone());
        tokio::spawn(async move {
            let opts = LogOptions {
                follow: true,
                tail: Some(2),
                ..Default::default()
            };
            let mut buf = SharedVec(out);
            let mut err = Vec::new();
            read_rotated_logs_until(
                &path,
                &opts,
                &mut buf,
                &mut err,
                CancellationToken::new(),
                move || {
                    let r = running.load(std::sync::atomic::Ordering::SeqCst);
                    async move { r }
                },
            )
            .await
        })
    };
    let text = || String::from_utf8(out.lock().unwrap().clone()).unwrap();
    let wait = |want: String| async move {
        for _ in 0..500 {
            if text().ends_with(&want) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {want:?}, have {:?}", text());
    };
    wait(want(38..40)).await;
    let append = |p: &Path, s: String| {
        let mut f = std::fs::OpenOptions::new().append(true).open(p).unwrap();
        f.write_all(s.as_bytes()).unwrap();
    };
    append(&path, at(40, "stdout", "F", "e40"));
    wait("e40\n".into()).await;
    // Rotate: rename, then the runtime reopens and writes the new file.
    std::fs::rename(&path, dir.path().join("0.log.20240501-100041")).unwrap();
    std::fs::write(&path, at(42, "stdout", "F", "e42")).unwrap();
    wait("e40\ne42\n".into()).await;
    append(&path, at(43, "stdout", "F", "e43"));
    running.store(false, std::sync::atomic::Ordering::SeqCst);
    let r = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("follow did not end after the container stopped");
    r.unwrap().unwrap();
    assert_eq!(text(), "d38\nd39\ne40\ne42\ne43\n");
}

/// An AsyncWrite into a shared buffer.
struct SharedVec(Arc<Mutex<Vec<u8>>>);

impl AsyncWrite for SharedVec {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        self.0.lock().unwrap().extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

use std::sync::{Arc, Mutex};
use std::time::Duration;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}
