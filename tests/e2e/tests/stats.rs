//! berth's `/stats/summary` against the real containerd: a busy container
//! shows about one core, an idle one about none, memory and log usage are
//! real figures. Each test starts its own berth collecting every second.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Each test holds `exclusive()` for its whole run, on its own runtime, on purpose.
#![allow(clippy::await_holding_lock)]

use std::time::Duration;

use serde_json::Value;
use test_support::berth::{Berth, busybox_client, container_state, exclusive, pod_manifest};

const T: Duration = Duration::from_secs(40);

/// A one-container pod running `script` under `sh -c`.
fn sh_pod(name: &str, container: &str, script: &str) -> String {
    pod_manifest(
        name,
        &format!(
            r#"  terminationGracePeriodSeconds: 0
  containers:
  - name: {container}
    image: {{img}}
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "{script}"]
"#
        ),
    )
}

/// berth collecting stats every second, with busybox pulled.
async fn start_berth() -> Berth {
    busybox_client().await;
    let mut b = Berth::with_args(&["--housekeeping-interval", "1s"]);
    b.start();
    b
}

fn summary(b: &Berth) -> Option<Value> {
    serde_json::from_str(&b.get("/stats/summary")?).ok()
}

/// The named pod's entry in a summary.
fn pod_stats<'a>(s: &'a Value, b: &Berth, name: &str) -> Option<&'a Value> {
    let full = format!("{name}-{}", b.node);
    s["pods"]
        .as_array()?
        .iter()
        .find(|p| p["podRef"]["name"] == full.as_str())
}

fn container_stats<'a>(pod: &'a Value, name: &str) -> Option<&'a Value> {
    pod["containers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
}

async fn wait_running(b: &Berth, pod: &str, container: &str) {
    b.wait_pod(pod, "its container running", T, |p| {
        container_state(p, container) == "running"
    })
    .await;
}

/// Waits until `f` gives a value from a fresh summary.
async fn wait_summary<T>(b: &Berth, what: &str, f: impl Fn(&Value) -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + T;
    loop {
        if let Some(v) = summary(b).as_ref().and_then(&f) {
            return v;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}; last summary: {:?}\nberth log:\n{}",
                summary(b),
                b.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn nano_cores(v: &Value) -> Option<u64> {
    v["cpu"]["usageNanoCores"].as_u64()
}

#[tokio::test]
async fn busy_container_uses_a_core_and_idle_one_none() {
    let _one = exclusive();
    let mut b = start_berth().await;
    b.write_manifest("busy.yaml", &sh_pod("busy", "spin", "while :; do :; done"));
    b.write_manifest("idle.yaml", &sh_pod("idle", "nap", "exec sleep 3600"));
    wait_running(&b, "busy", "spin").await;
    wait_running(&b, "idle", "nap").await;

    // Node figures are there from the first cycle.
    let s = wait_summary(&b, "a summary", |s| Some(s.clone())).await;
    assert_eq!(s["node"]["nodeName"], b.node.as_str());
    assert!(s["node"]["cpu"]["usageCoreNanoSeconds"].as_u64().unwrap() > 0);
    let nm = &s["node"]["memory"];
    assert!(nm["workingSetBytes"].as_u64().unwrap() > 0);
    assert!(nm["availableBytes"].as_u64().unwrap() > 0);
    assert!(s["node"]["fs"]["capacityBytes"].as_u64().unwrap() > 0);
    assert!(s["node"]["rlimit"]["maxpid"].as_i64().unwrap() > 0);

    // A rate needs two samples of each container; take several after that
    // and use the median, as a 2-core machine may be briefly busy.
    let mut busy = Vec::new();
    let mut busy_pod = Vec::new();
    let mut idle = Vec::new();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (b_c, b_p, i_c) = wait_summary(&b, "CPU rates for both pods", |s| {
            let bp = pod_stats(s, &b, "busy")?;
            let ip = pod_stats(s, &b, "idle")?;
            Some((
                nano_cores(container_stats(bp, "spin")?)?,
                nano_cores(bp)?,
                nano_cores(container_stats(ip, "nap")?)?,
            ))
        })
        .await;
        busy.push(b_c);
        busy_pod.push(b_p);
        idle.push(i_c);
    }
    let median = |v: &mut Vec<u64>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    let (bm, bpm) = (median(&mut busy), median(&mut busy_pod));
    assert!(
        (600_000_000..=1_300_000_000).contains(&bm),
        "busy container: {busy:?} nanocores"
    );
    assert!(
        (600_000_000..=1_300_000_000).contains(&bpm),
        "busy pod (pod totals include the container): {busy_pod:?}"
    );
    assert!(
        idle.iter().all(|&n| n < 50_000_000),
        "idle container: {idle:?} nanocores"
    );

    // Memory: a working set, never above usage; pause isn't a container
    // but the pod has totals and a process count.
    let s = summary(&b).unwrap();
    for (pod, ctr) in [("busy", "spin"), ("idle", "nap")] {
        let p = pod_stats(&s, &b, pod).unwrap();
        assert_eq!(p["containers"].as_array().unwrap().len(), 1, "{p}");
        let m = &container_stats(p, ctr).unwrap()["memory"];
        let ws = m["workingSetBytes"].as_u64().unwrap();
        let usage = m["usageBytes"].as_u64().unwrap();
        assert!(ws > 0 && ws <= usage, "{pod}: {m}");
        let pm = &p["memory"];
        assert!(pm["workingSetBytes"].as_u64().unwrap() >= ws, "{pod}: {pm}");
        assert!(
            p["process_stats"]["process_count"].as_u64().unwrap() >= 1,
            "{p}"
        );
        assert_eq!(p["podRef"]["namespace"], "default");
        assert!(p["podRef"]["uid"].as_str().is_some_and(|u| !u.is_empty()));
        assert!(
            container_stats(p, ctr).unwrap()["rootfs"]["usedBytes"].is_u64(),
            "{p}"
        );
    }
    // The pod's cumulative CPU covers the container's.
    let p = pod_stats(&s, &b, "busy").unwrap();
    let pod_cpu = p["cpu"]["usageCoreNanoSeconds"].as_u64().unwrap();
    let ctr_cpu = container_stats(p, "spin").unwrap()["cpu"]["usageCoreNanoSeconds"]
        .as_u64()
        .unwrap();
    assert!(pod_cpu >= ctr_cpu, "pod {pod_cpu} < container {ctr_cpu}");
    b.stop();
}

#[tokio::test]
async fn log_usage_grows_with_stdout() {
    let _one = exclusive();
    let mut b = start_berth().await;
    // About 20 KB a second on stdout.
    b.write_manifest(
        "chatty.yaml",
        &sh_pod(
            "chatty",
            "talk",
            "while :; do yes 0123456789012345678901234567890123456789 | head -n 500; sleep 1; done",
        ),
    );
    wait_running(&b, "chatty", "talk").await;
    let logs = |s: &Value| -> Option<(u64, u64)> {
        let l = &container_stats(pod_stats(s, &b, "chatty")?, "talk")?["logs"];
        Some((l["usedBytes"].as_u64()?, l["inodesUsed"].as_u64()?))
    };
    let (first, inodes) = wait_summary(&b, "log usage", |s| logs(s).filter(|l| l.0 > 0)).await;
    assert!(inodes >= 2, "the directory and 0.log: {inodes}");
    let later = wait_summary(&b, "log usage to grow", |s| {
        logs(s).map(|l| l.0).filter(|&u| u >= first + 40_000)
    })
    .await;
    // What berth reports is what is on disk (allocated blocks): take the
    // summary, then measure the directory straight after.
    let s = summary(&b).unwrap();
    let (now, _) = logs(&s).unwrap();
    assert!(now >= later, "usage never shrinks while the file grows");
    let p = b.pod("chatty").unwrap();
    let dir = b.logs_dir().join(format!(
        "default_{}_{}/talk",
        p["metadata"]["name"].as_str().unwrap(),
        p["metadata"]["uid"].as_str().unwrap()
    ));
    let on_disk: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| std::fs::metadata(e.unwrap().path()).unwrap().len())
        .sum();
    // Blocks round up (and the directory counts); the file keeps growing by
    // ~20 KB a second and the summary is up to a second old.
    assert!(
        now <= on_disk + 64 * 1024 && on_disk <= now + 128 * 1024,
        "reported {now}, on disk {on_disk} in {}",
        dir.display()
    );
    let eph = pod_stats(&s, &b, "chatty").unwrap()["ephemeral-storage"]["usedBytes"]
        .as_u64()
        .unwrap();
    assert!(eph >= now, "ephemeral-storage {eph} covers logs {now}");
    b.stop();
}
