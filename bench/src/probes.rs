//! `berth-bench probes [--pods 110] [--seconds 60]`: N static pods, each a
//! busybox httpd with a 1 s exec readiness probe and a 1 s httpGet liveness
//! probe. Once all are Ready, over a window of about `--seconds`:
//!
//! - berth's CPU (% of one core, utime+stime from /proc/PID/stat) and RSS;
//! - containerd's and the pods' shims' CPU (the ExecSync work), children
//!   (runc) included;
//! - berth's probe latency per kind (p50/p90/p99/max), from the histogram
//!   berth logs under `berth::probe_latency` (two snapshots subtracted);
//! - the raw floor in the same run: the same exec and HTTP GET made
//!   directly from here, one at a time, while berth's probes go on.
//!
//! Figures only; nothing is asserted.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cri_client::RuntimeClient;
use cri_client::proto as pb;
use test_support::berth::{Berth, exclusive};
use test_support::{busybox_image, client, ensure_image};

use crate::common::{remove_pods, stat_cpu_seconds, status_mib};
use crate::flag;

fn manifest(i: usize) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: probe-{i}}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: web
    image: {img}
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "mkdir -p /www && echo ok > /www/healthz && exec httpd -f -p 8080 -h /www"]
    readinessProbe:
      exec: {{command: ["test", "-f", "/www/healthz"]}}
      periodSeconds: 1
    livenessProbe:
      httpGet: {{path: /healthz, port: 8080}}
      periodSeconds: 1
"#,
        img = busybox_image()
    )
}

/// containerd of the test runtime and the shims of `sandboxes`.
fn runtime_pids(sandboxes: &[String]) -> (Vec<u32>, Vec<u32>) {
    let sock = test_support::endpoint()
        .trim_start_matches("unix://")
        .to_string();
    let mut containerd = Vec::new();
    let mut shims = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<&str> = cmd.split('\0').collect();
        let exe = args.first().copied().unwrap_or_default();
        if exe.ends_with("containerd-shim-runc-v2") {
            let id = args
                .iter()
                .position(|a| *a == "-id")
                .and_then(|i| args.get(i + 1));
            if id.is_some_and(|id| sandboxes.iter().any(|s| s == id)) {
                shims.push(pid);
            }
        } else if (exe == "containerd" || exe.ends_with("/containerd"))
            && (cmd.contains(&sock) || cmd.contains("berth-test"))
        {
            containerd.push(pid);
        }
    }
    (containerd, shims)
}

fn total_cpu(pids: &[u32]) -> f64 {
    pids.iter().map(|&p| stat_cpu_seconds(p, true)).sum()
}

/// One cumulative histogram line of berth's log.
#[derive(Debug, Default)]
struct Histogram {
    count: u64,
    failures: u64,
    errors: u64,
    buckets: HashMap<usize, u64>,
}

/// The latest cumulative histogram per kind in berth's log.
type Histograms = HashMap<String, Histogram>;

fn histograms(log: &str) -> (usize, Histograms) {
    let mut out = Histograms::new();
    let mut lines = 0;
    for l in log
        .lines()
        .filter(|l| l.contains("probe latency histogram"))
    {
        lines += 1;
        let field = |name: &str| -> Option<String> {
            let at = l.find(&format!(" {name}="))? + name.len() + 2;
            let v = l[at..].split_whitespace().next()?;
            Some(v.trim_matches('"').to_string())
        };
        let (Some(kind), Some(count)) = (field("kind"), field("count")) else {
            continue;
        };
        let num = |name: &str| field(name).and_then(|e| e.parse().ok()).unwrap_or(0);
        let buckets = field("buckets")
            .unwrap_or_default()
            .split(',')
            .filter_map(|kv| {
                let (k, v) = kv.split_once(':')?;
                Some((k.parse().ok()?, v.parse().ok()?))
            })
            .collect();
        out.insert(
            kind,
            Histogram {
                count: count.parse().unwrap_or(0),
                failures: num("failures"),
                errors: num("errors"),
                buckets,
            },
        );
    }
    (lines, out)
}

/// Waits for berth to log a new histogram snapshot (every 10 s).
async fn next_snapshot(b: &Berth, after_lines: usize) -> Result<(usize, Histograms, Instant)> {
    let t = Instant::now();
    loop {
        let (n, h) = histograms(&b.log());
        // All kinds of one snapshot are logged together; wait past them.
        if n > after_lines && !h.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let (n, h) = histograms(&b.log());
            return Ok((n, h, Instant::now()));
        }
        if t.elapsed() > Duration::from_secs(30) {
            bail!(
                "berth logged no probe latency histogram in 30 s (is berth::probe_latency enabled?)"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of bucket `i`, as berth's prober::metrics defines buckets
/// (1.05^i µs, geometric middle).
fn bucket_ms(i: usize) -> f64 {
    1.05f64.powf(i as f64 + 0.5) / 1000.0
}

/// p50/p90/p99/max (ms) of a bucket histogram.
fn quantiles(h: &HashMap<usize, u64>) -> Option<[f64; 4]> {
    let mut v: Vec<(usize, u64)> = h
        .iter()
        .map(|(k, n)| (*k, *n))
        .filter(|(_, n)| *n > 0)
        .collect();
    v.sort_unstable();
    let total: u64 = v.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    let q = |p: f64| {
        let want = ((total as f64) * p).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (k, n) in &v {
            seen += n;
            if seen >= want {
                return bucket_ms(*k);
            }
        }
        bucket_ms(v[v.len() - 1].0)
    };
    Some([q(0.5), q(0.9), q(0.99), bucket_ms(v[v.len() - 1].0)])
}

fn raw_quantiles(mut v: Vec<Duration>) -> [f64; 4] {
    v.sort_unstable();
    let q = |p: f64| {
        let i = (((v.len() as f64) * p).ceil() as usize).clamp(1, v.len()) - 1;
        crate::ms(v[i])
    };
    [q(0.5), q(0.9), q(0.99), q(1.0)]
}

/// One HTTP/1.1 GET with Connection: close, as the probe sends it.
fn raw_get(ip: &str) -> Result<()> {
    let mut s = std::net::TcpStream::connect((ip, 8080))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        s,
        "GET /healthz HTTP/1.1\r\nHost: {ip}:8080\r\nUser-Agent: kube-probe/1.36\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    if !resp.starts_with(b"HTTP/1.1 200") && !resp.starts_with(b"HTTP/1.0 200") {
        bail!("GET /healthz on {ip}: {}", String::from_utf8_lossy(&resp));
    }
    Ok(())
}

async fn ready_count(b: &Berth) -> usize {
    b.pods()
        .iter()
        .filter(|p| p["status"]["containerStatuses"][0]["ready"].as_bool() == Some(true))
        .count()
}

pub async fn run(args: &[String]) -> Result<()> {
    let pods: usize = flag(args, "--pods", 110)?;
    let seconds: u64 = flag(args, "--seconds", 60)?;
    let _one = exclusive();
    let c = client().await;
    ensure_image(&c, &busybox_image()).await;

    let mut b = Berth::new();
    b.rust_log = "warn,berth::probe_latency=debug".into();
    b.start();
    let pid = b.pid().context("berth pid")?;
    let result = measure(&c, &b, pid, pods, seconds).await;

    eprintln!("probes: cleaning up ...");
    remove_pods(&c, &b, "probe", pods).await;
    b.stop();
    result
}

async fn measure(c: &RuntimeClient, b: &Berth, pid: u32, pods: usize, seconds: u64) -> Result<()> {
    eprintln!("probes: starting {pods} pods ...");
    let t = Instant::now();
    for i in 0..pods {
        b.write_manifest(&format!("probe-{i}.yaml"), &manifest(i));
    }
    loop {
        let n = ready_count(b).await;
        if n >= pods {
            break;
        }
        if t.elapsed() > Duration::from_secs(600) {
            bail!("only {n} of {pods} pods Ready after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let all_ready = t.elapsed();
    eprintln!(
        "probes: all {pods} Ready after {:.1} s; settling ...",
        all_ready.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;

    let sandboxes: Vec<String> = b
        .runtime_sandboxes(c)
        .await
        .into_iter()
        .map(|s| s.id)
        .collect();
    let (containerd, shims) = runtime_pids(&sandboxes);

    // The window runs from one histogram snapshot to the one at least
    // `seconds` later.
    let (_, h0, t0) = next_snapshot(b, histograms(&b.log()).0).await?;
    let berth0 = stat_cpu_seconds(pid, false);
    let ctrd0 = total_cpu(&containerd);
    let shim0 = total_cpu(&shims);
    eprintln!("probes: measuring for about {seconds} s ...");
    tokio::time::sleep(Duration::from_secs(seconds).saturating_sub(Duration::from_millis(500)))
        .await;
    let (_, h1, t1) = next_snapshot(b, histograms(&b.log()).0).await?;
    let window = t1 - t0;
    let berth_cpu = (stat_cpu_seconds(pid, false) - berth0) / window.as_secs_f64() * 100.0;
    let ctrd_cpu = (total_cpu(&containerd) - ctrd0) / window.as_secs_f64() * 100.0;
    let shim_cpu = (total_cpu(&shims) - shim0) / window.as_secs_f64() * 100.0;
    let rss = status_mib(pid, "VmRSS:");
    let hwm = status_mib(pid, "VmHWM:");
    let still_ready = ready_count(b).await;
    let restarts: i64 = b
        .pods()
        .iter()
        .filter_map(|p| p["status"]["containerStatuses"][0]["restartCount"].as_i64())
        .sum();

    println!();
    println!(
        "{pods} pods, exec readiness + httpGet liveness every 1 s; all Ready {:.1} s after the manifests were written; window {:.1} s; {still_ready}/{pods} Ready at its end, {restarts} restarts",
        all_ready.as_secs_f64(),
        window.as_secs_f64()
    );
    println!();
    println!("| process | CPU (% of one core) | RSS (peak) |");
    println!("|---|---|---|");
    println!("| berth | {berth_cpu:.2} % | {rss:.1} MiB ({hwm:.1} MiB) |");
    println!(
        "| containerd ({} process) | {ctrd_cpu:.1} % | |",
        containerd.len()
    );
    println!(
        "| {} shims (+ runc children) | {shim_cpu:.1} % | |",
        shims.len()
    );
    println!();
    println!("| probe | probes/s | failed | errors | p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|---|---|---|");
    for (kind, label) in [("exec", "exec (berth)"), ("http", "httpGet (berth)")] {
        let (Some(a), Some(z)) = (h0.get(kind), h1.get(kind)) else {
            continue;
        };
        let diff: HashMap<usize, u64> = z
            .buckets
            .iter()
            .map(|(k, n)| (*k, n - a.buckets.get(k).copied().unwrap_or(0)))
            .collect();
        let rate = (z.count - a.count) as f64 / window.as_secs_f64();
        if let Some([p50, p90, p99, max]) = quantiles(&diff) {
            println!(
                "| {label} | {rate:.1} | {} | {} | {p50:.2} ms | {p90:.2} ms | {p99:.2} ms | {max:.2} ms |",
                z.failures - a.failures,
                z.errors - a.errors
            );
        }
    }

    // The raw floor, under the same load: one container's exec and one
    // pod's GET, made directly, one at a time.
    eprintln!("probes: raw floor ...");
    let first = b.pod("probe-0").context("pod probe-0")?;
    let cid = first["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("containerd://")
        .to_string();
    let ip = first["status"]["podIP"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (mut raw_exec, mut raw_http) = (Vec::new(), Vec::new());
    let (mut exec_failed, mut http_failed) = (0, 0);
    // At most 50 of each, or 30 s: on a saturated runtime an exec takes
    // seconds.
    let floor_start = Instant::now();
    while raw_exec.len() < 50 && floor_start.elapsed() < Duration::from_secs(30) {
        let s = Instant::now();
        let r = c
            .exec_sync(pb::ExecSyncRequest {
                container_id: cid.clone(),
                cmd: vec!["test".into(), "-f".into(), "/www/healthz".into()],
                timeout: 1,
            })
            .await;
        raw_exec.push(s.elapsed());
        if !matches!(r, Ok(ref r) if r.exit_code == 0) {
            exec_failed += 1;
        }
        let s = Instant::now();
        let ip2 = ip.clone();
        if !matches!(
            tokio::task::spawn_blocking(move || raw_get(&ip2)).await,
            Ok(Ok(()))
        ) {
            http_failed += 1;
        }
        raw_http.push(s.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let [p50, p90, p99, max] = raw_quantiles(raw_exec);
    println!(
        "| exec (raw ExecSync, floor) | | {exec_failed} | | {p50:.2} ms | {p90:.2} ms | {p99:.2} ms | {max:.2} ms |"
    );
    let [p50, p90, p99, max] = raw_quantiles(raw_http);
    println!(
        "| httpGet (raw GET, floor) | | {http_failed} | | {p50:.2} ms | {p90:.2} ms | {p99:.2} ms | {max:.2} ms |"
    );

    eprintln!("probes: in-process cost ...");
    let micro = tokio::task::spawn_blocking(move || in_process_cost(&cid, &ip)).await??;
    println!();
    println!(
        "berth's probe code alone, in this process on one thread (CPU per call, user+sys): exec {:.0} µs, httpGet {:.0} µs (a CRI Version call: {:.0} µs)",
        micro.0, micro.1, micro.2
    );
    Ok(())
}

/// CPU time of the calling thread, seconds (schedstat: ns resolution).
fn thread_cpu() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1e9
}

/// Berth's own probe code (kubelet::prober) run here on a current-thread
/// runtime, as berth runs it: thread CPU per exec and per httpGet probe.
fn in_process_cost(cid: &str, ip: &str) -> Result<(f64, f64, f64)> {
    use k8s_openapi::api::core::v1::{Container, HTTPGetAction};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use kubelet::probe::http::{HttpProber, HttpRequest};
    const N: usize = 300;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let c = client().await;
        let c2 = c.clone();
        let m = kubelet::lifecycle::HandlerRunner::new(c, "127.0.0.1".into());
        let cmd: Vec<String> = ["test", "-f", "/www/healthz"].map(String::from).to_vec();
        // A CRI call that does nothing, for scale.
        let t = thread_cpu();
        for _ in 0..N {
            c2.version(Default::default()).await?;
        }
        let version = (thread_cpu() - t) / N as f64 * 1e6;
        // Failures (timeouts on a loaded machine) cost the same here; at
        // most 20 s of execs.
        let t = thread_cpu();
        let (start, mut n) = (Instant::now(), 0);
        while n < N && start.elapsed() < Duration::from_secs(20) {
            let _ = m.exec(cid, &cmd, Duration::from_secs(1)).await;
            n += 1;
        }
        let exec = (thread_cpu() - t) / n.max(1) as f64 * 1e6;
        let action = HTTPGetAction {
            path: Some("/healthz".into()),
            port: IntOrString::Int(8080),
            ..Default::default()
        };
        let req = HttpRequest::new(&action, &Container::default(), "probe")?;
        let prober = HttpProber::new();
        let t = thread_cpu();
        for _ in 0..N {
            let o = prober
                .probe(&req, req.url(ip), Duration::from_secs(1))
                .await;
            if !matches!(o, kubelet::probe::Outcome::Success(_)) {
                bail!("in-process httpGet: {o:?}");
            }
        }
        let http = (thread_cpu() - t) / N as f64 * 1e6;
        Ok((exec, http, version))
    })
}
