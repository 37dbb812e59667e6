//! `/containerLogs` over the real TLS server, with a log file in a temp
//! dir behind a fake locator: hostile paths and queries are refused before
//! anything is opened, and a follower that disconnects lets go of the file.
//! The handler's own cases are unit tests (server/logs/tests.rs); the real
//! runtime is in tests/e2e (kubelet_api.rs).

#![allow(clippy::unwrap_used)]

mod api_common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use api_common::{Ca, connect, request, server_config, start};
use futures_util::future::BoxFuture;
use kubelet::server::api::Limits;
use kubelet::server::logs::{LogLocator, LogTarget, LogsError, handler};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct OneFile {
    path: PathBuf,
    located: AtomicUsize,
}

impl LogLocator for OneFile {
    fn locate<'a>(
        &'a self,
        ns: &'a str,
        pod: &'a str,
        container: &'a str,
        _previous: bool,
    ) -> BoxFuture<'a, Result<LogTarget, LogsError>> {
        self.located.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if (ns, pod, container) != ("default", "web", "c") {
                return Err(LogsError::PodNotFound { pod: pod.into() });
            }
            Ok(LogTarget {
                path: self.path.clone(),
                pod_uid: "uid".into(),
                container_id: "cid".into(),
            })
        })
    }

    fn is_running<'a>(&'a self, _: &'a LogTarget) -> BoxFuture<'a, bool> {
        Box::pin(async { true })
    }
}

/// Whether this process holds `path` open.
fn holds_open(path: &Path) -> bool {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == path))
}

#[tokio::test]
async fn hostile_requests_and_a_follower_that_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("0.log");
    let mut text = String::new();
    for i in 0..1000 {
        text.push_str(&format!(
            "2026-12-02T10:00:00.000000000Z stdout F line {i}\n"
        ));
    }
    std::fs::write(&log, &text).unwrap();
    let locator = Arc::new(OneFile {
        path: log.canonicalize().unwrap(),
        located: AtomicUsize::new(0),
    });
    let ca = Ca::new("test-ca");
    let ca_file = dir.path().join("ca.crt");
    ca.write(&ca_file);
    let mut config = server_config(&dir.path().join("pki"));
    config.authentication.client_ca_file = Some(ca_file);
    let addr = start(
        config,
        None,
        Limits::default(),
        vec![("/containerLogs/", handler(locator.clone()))],
    )
    .await;
    let alice = ca.client("alice", &[]);

    let (code, body) = request(
        addr,
        Some(&alice),
        "GET",
        "/containerLogs/default/web/c?tailLines=2",
        &[],
    )
    .await
    .unwrap();
    assert_eq!((code, body.as_str()), (200, "line 998\nline 999\n"));
    let before = locator.located.load(Ordering::SeqCst);

    // Traversal in the path, encoded or not, and bad queries: 400, and the
    // locator is never asked.
    for path in [
        "/containerLogs/default/web/..",
        "/containerLogs/default/web/%2e%2e",
        "/containerLogs/default/..%2F..%2Fetc/passwd",
        "/containerLogs/default/web/c%2F..%2F..%2Fetc%2Fshadow",
        "/containerLogs/../../etc/passwd",
        "/containerLogs/default/web/c?sinceTime=../../etc",
        "/containerLogs/default/web/c?tailLines=-5",
        "/containerLogs/default/web/c?limitBytes=0",
    ] {
        let (code, _) = request(addr, Some(&alice), "GET", path, &[]).await.unwrap();
        assert_eq!(code, 400, "{path}");
    }
    // A query near the header limit: answered, briefly.
    let long = format!(
        "/containerLogs/default/web/c?sinceTime={}",
        "9".repeat(60_000)
    );
    let (code, body) = request(addr, Some(&alice), "GET", &long, &[])
        .await
        .unwrap();
    assert_eq!(code, 400);
    assert!(body.len() < 400, "{} bytes", body.len());
    // Beyond the limit: 414 URI Too Long from the server itself (sent raw:
    // the http crate refuses to build such a URI).
    let mut tls = connect(addr, Some(&alice)).await.unwrap();
    let raw = format!(
        "GET /containerLogs/default/web/c?x={} HTTP/1.1\r\nhost: localhost\r\n\r\n",
        "a".repeat(70_000)
    );
    let _ = tls.write_all(raw.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 414"), "{answer}");
    assert_eq!(locator.located.load(Ordering::SeqCst), before);
    // Unknown pods: 404.
    let (code, _) = request(
        addr,
        Some(&alice),
        "GET",
        "/containerLogs/default/nobody/c",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(code, 404);

    // A follower: gets the tail, holds the file while connected, and lets
    // go of it soon after it disconnects.
    let mut tls = connect(addr, Some(&alice)).await.unwrap();
    tls.write_all(
        b"GET /containerLogs/default/web/c?follow=true&tailLines=1 HTTP/1.1\r\nhost: localhost\r\n\r\n",
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("line 999") {
        let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(holds_open(&locator.path), "the follower reads the file");
    drop(tls);
    let t = Instant::now();
    while holds_open(&locator.path) {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the file is still open 5 s after the follower left"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And the server serves on.
    let (code, _) = request(
        addr,
        Some(&alice),
        "GET",
        "/containerLogs/default/web/c?tailLines=1",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(code, 200);
}
