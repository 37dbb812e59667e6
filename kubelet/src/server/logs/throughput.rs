//! The handler's read throughput on a 64 MiB CRI log, one reader and ten at
//! once. Ignored by default (it wants an optimised build):
//!
//! ```text
//! cargo test -p berth-kubelet --release --lib server::logs::throughput -- --ignored --nocapture
//! ```
//!
//! It runs on a current-thread runtime, as berth does (file reads go to the
//! blocking pool), and prints MB/s and the peak resident set it reached.

#![allow(clippy::unwrap_used)]

use std::io::{BufWriter, Write as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use http::Method;
use http_body_util::BodyExt;

use super::{LogLocator, LogTarget, LogsError, container_logs};

const SIZE: u64 = 64 << 20;

struct One(PathBuf, std::sync::atomic::AtomicBool);

impl LogLocator for One {
    fn locate<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: &'a str,
        _: bool,
    ) -> BoxFuture<'a, Result<LogTarget, LogsError>> {
        Box::pin(async move {
            Ok(LogTarget {
                path: self.0.clone(),
                pod_uid: "u".into(),
                container_id: "c".into(),
            })
        })
    }
    fn is_running<'a>(&'a self, _: &'a LogTarget) -> BoxFuture<'a, bool> {
        Box::pin(async move { self.1.load(std::sync::atomic::Ordering::SeqCst) })
    }
}

/// A 64 MiB log of lines of 40 to 200 bytes, a few of them split into
/// `P` records, both streams; returns the bytes the reader should output.
fn write_log(path: &std::path::Path) -> u64 {
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let (mut written, mut out, mut i) = (0u64, 0u64, 0u64);
    let filler = "the quick brown fox jumps over the lazy dog 0123456789 ".repeat(4);
    while written < SIZE {
        let len = 40 + (i * 7919 % 160) as usize;
        let text = filler.get(..len).unwrap();
        let stream = if i % 10 == 0 { "stderr" } else { "stdout" };
        let ns = i % 1_000_000_000;
        let line = if i % 50 == 0 {
            let (a, b) = text.split_at(len / 2);
            format!(
                "2026-12-02T07:00:00.{ns:09}Z {stream} P {a}\n2026-12-02T07:00:00.{ns:09}Z {stream} F {b}\n"
            )
        } else {
            format!("2026-12-02T07:00:00.{ns:09}Z {stream} F {text}\n")
        };
        w.write_all(line.as_bytes()).unwrap();
        written += line.len() as u64;
        out += len as u64 + 1;
        i += 1;
    }
    w.flush().unwrap();
    out
}

async fn read_all(loc: Arc<dyn LogLocator>) -> u64 {
    let resp = container_logs(loc, &Method::GET, "/containerLogs/default/p/c", None).await;
    drain(resp.into_body(), u64::MAX).await.0
}

/// Read `resp` until `want` bytes came or it ended; the body is handed back
/// (None once ended) so a follower can be kept open.
async fn drain(mut body: super::LogsBody, want: u64) -> (u64, Option<super::LogsBody>) {
    let mut n = 0u64;
    while n < want {
        match body.frame().await {
            Some(frame) => {
                n += frame
                    .unwrap()
                    .into_data()
                    .map(|d| d.len() as u64)
                    .unwrap_or(0)
            }
            None => return (n, None),
        }
    }
    (n, Some(body))
}

/// Peak resident set (VmHWM) in KiB, after resetting it.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
fn peak_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

#[test]
#[ignore = "a benchmark: run with --release -- --ignored --nocapture"]
fn throughput_64mib() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let expected = write_log(&path);
    let size = std::fs::metadata(&path).unwrap().len();
    let one = Arc::new(One(path, std::sync::atomic::AtomicBool::new(false)));
    let loc: Arc<dyn LogLocator> = one.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Warm the page cache, as a log just written is.
        assert_eq!(read_all(loc.clone()).await, expected);
        let base = rss_kib();
        reset_peak();
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            assert_eq!(read_all(loc.clone()).await, expected);
            best = best.min(t.elapsed());
        }
        let one_peak = peak_kib().saturating_sub(base);
        println!(
            "1 reader: {size} B in {:.3} s = {:.0} MB/s (best of 3), peak RSS +{one_peak} KiB",
            best.as_secs_f64(),
            mbps(size, best)
        );
        reset_peak();
        let t = Instant::now();
        let readers: Vec<_> = (0..10)
            .map(|_| tokio::spawn(read_all(loc.clone())))
            .collect();
        for r in readers {
            assert_eq!(r.await.unwrap(), expected);
        }
        let all = t.elapsed();
        let ten_peak = peak_kib().saturating_sub(base);
        println!(
            "10 concurrent readers: {} B in {:.3} s = {:.0} MB/s in all, peak RSS +{ten_peak} KiB",
            size * 10,
            all.as_secs_f64(),
            mbps(size * 10, all)
        );
        // Ten followers of a running container: each reads the whole log,
        // then waits for more with its request open.
        one.1.store(true, std::sync::atomic::Ordering::SeqCst);
        reset_peak();
        let t = Instant::now();
        let followers: Vec<_> = (0..10)
            .map(|_| {
                let loc = loc.clone();
                tokio::spawn(async move {
                    let resp = container_logs(
                        loc,
                        &Method::GET,
                        "/containerLogs/default/p/c",
                        Some("follow=true"),
                    )
                    .await;
                    drain(resp.into_body(), expected).await
                })
            })
            .collect();
        let mut open = Vec::new();
        for f in followers {
            let (n, body) = f.await.unwrap();
            assert_eq!(n, expected);
            open.push(body.expect("a follower's body ended while the container runs"));
        }
        let caught_up = t.elapsed();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let follow_peak = peak_kib().saturating_sub(base);
        let idle_rss = rss_kib().saturating_sub(base);
        println!(
            "10 followers: caught up in {:.3} s, peak RSS +{follow_peak} KiB, +{idle_rss} KiB while they wait",
            caught_up.as_secs_f64()
        );
        drop(open);
        let t = Instant::now();
        while Arc::strong_count(&one) > 2 {
            assert!(t.elapsed() < Duration::from_secs(2), "followers outlived their clients");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
}
