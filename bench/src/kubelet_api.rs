//! `berth-bench kubelet-api [--log-mb 64] [--requests 200] [--execs 20]
//! [--only berth|go]`: the kubelet API on port 10250, berth beside the Go
//! kubelet, one after the other in one run, each joined to the test
//! environment's control plane with the same settings: HTTPS with x509
//! client certificates (the control plane's CA; the requests carry the
//! apiserver's kubelet client certificate) and AlwaysAllow, so what is
//! timed is the kubelet, not a webhook.
//!
//! With one pod on the node (busybox writing a `--log-mb` MB CRI log, then
//! sleeping), each kubelet is measured on:
//! - **`/containerLogs`**: one reader of the whole log (the log file's MB
//!   over the wall time; median of 3), and 10 concurrent readers (wall
//!   time until all are done); the floor is reading the file from the page
//!   cache in-process;
//! - **`/pods`, `/stats/summary`, `/metrics`**: `--requests` GETs, one
//!   after the other on one keep-alive connection (median, p95);
//! - **RSS with 10 followers**: VmRSS before, and with 10
//!   `follow=true&tailLines=10` readers of that log connected for 3 s;
//! - **`kubectl exec pod -- echo hi`** through the apiserver (SPDY to the
//!   kubelet, which relays to containerd's stream server), `--execs` runs
//!   after 2 warm-ups (median); beside it `kubectl get pod -o name`
//!   (kubectl alone: start-up, TLS, one request) and the raw floor, CRI
//!   ExecSync made in-process.
//!
//! The Go kubelet gets `containerLogMaxSize: 1Gi` so that it does not
//! rotate the log mid-run (berth does not rotate logs). Needs
//! `tests/env/up --control-plane`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use cri_client::RuntimeClient;
use cri_client::proto as pb;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, PostParams};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use test_support::busybox_image;
use test_support::cluster::{admin_kubeconfig, kubectl_bin};

use crate::common::{quantile, status_mib};
use crate::gokubelet;
use crate::joined::{
    JoinExtra, Kind, Running, Setup, clean_up, create_namespace, join, setup, wait_pod_ready,
};
use crate::{flag, ms};

const CP_DIR: &str = "/etc/berth-test/control-plane";
const POD: &str = "biglog";
/// One line of the log: 90 characters and a newline. In the CRI file each
/// gets a 40-byte prefix (`<RFC 3339 nano> stdout F `).
const LINE: &str =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqr";
const CRI_PREFIX: usize = 40;

struct Opts {
    log_mb: usize,
    requests: usize,
    execs: usize,
}

#[derive(Default)]
struct Dist {
    median: Duration,
    p95: Duration,
}

fn dist(mut v: Vec<Duration>) -> Dist {
    v.sort_unstable();
    Dist {
        median: quantile(&v, 0.5),
        p95: quantile(&v, 0.95),
    }
}

/// One kubelet's figures.
#[derive(Default)]
struct Figures {
    log_file_bytes: u64,
    body_bytes: u64,
    floor_mbps: f64,
    one_reader_mbps: f64,
    ten_readers: Duration,
    pods: Dist,
    summary: Option<Dist>,
    metrics: Option<Dist>,
    rss_before: f64,
    rss_followers: f64,
    exec: Dist,
    kubectl_alone: Dist,
    exec_sync_floor: Dist,
}

pub async fn run(args: &[String]) -> Result<()> {
    let opts = Opts {
        log_mb: flag(args, "--log-mb", 64)?,
        requests: flag(args, "--requests", 200)?,
        execs: flag(args, "--execs", 20)?,
    };
    if opts.requests == 0 || opts.execs == 0 || opts.log_mb == 0 {
        bail!("--log-mb, --requests and --execs must be at least 1");
    }
    let only: String = flag(args, "--only", String::new())?;
    let mut kinds = match only.as_str() {
        "" => vec![Kind::Berth, Kind::Go],
        "berth" => vec![Kind::Berth],
        "go" => vec![Kind::Go],
        other => bail!("--only: berth or go, not {other:?}"),
    };
    let go_bin = gokubelet::binary();
    if go_bin.is_none() && kinds.contains(&Kind::Go) {
        eprintln!("kubelet-api: no Go kubelet built (tests/env/control-plane build); berth only");
        kinds.retain(|k| *k == Kind::Berth);
    }
    let tls = Arc::new(client_tls().context(
        "the control plane's CA and kubelet client certificate (tests/env/up --control-plane)",
    )?);
    let Setup { cri, kube, _one } = setup("kubelet-api", true, go_bin.as_deref()).await?;
    let kube = kube.context("no apiserver client")?;
    println!(
        "{} MB log, {} requests per endpoint, {} execs; HTTPS with x509 client certificates, AlwaysAllow",
        opts.log_mb, opts.requests, opts.execs
    );
    let mut all = Vec::new();
    for kind in kinds {
        eprintln!("kubelet-api: {} ...", kind.name());
        let f = part(kind, go_bin.as_deref(), &kube, &cri, &tls, &opts).await?;
        all.push((kind, f));
    }
    report(&all);
    Ok(())
}

fn client_tls() -> Result<rustls::ClientConfig> {
    let cert = PathBuf::from(CP_DIR).join("apiserver-kubelet-client.crt");
    let key = PathBuf::from(CP_DIR).join("apiserver-kubelet-client.key");
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .with_context(|| cert.display().to_string())?
        .collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&key).with_context(|| key.display().to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // The kubelets' serving certificates are self-signed (berth's and the
    // Go kubelet's own), so the server is not verified; both get the same
    // client.
    let algs = provider.signature_verification_algorithms;
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(algs)))
        .with_client_auth_cert(chain, key)?)
}

#[derive(Debug)]
struct AnyServer(rustls::crypto::WebPkiSupportedAlgorithms);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// A keep-alive HTTP/1.1 connection to a kubelet API.
async fn connect(port: u16, tls: &Arc<rustls::ClientConfig>) -> Result<SendRequest<Empty<Bytes>>> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true)?;
    let stream = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(send)
}

/// GET `path`: the status and the body's length (the body is read and
/// dropped as it comes).
async fn get(send: &mut SendRequest<Empty<Bytes>>, path: &str) -> Result<(u16, u64)> {
    get_keeping(send, path, &mut Vec::new()).await
}

/// [`get`], keeping the body's first 512 bytes in `head`.
async fn get_keeping(
    send: &mut SendRequest<Empty<Bytes>>,
    path: &str,
    head: &mut Vec<u8>,
) -> Result<(u16, u64)> {
    send.ready().await?;
    let req = http::Request::get(path)
        .header("host", "localhost")
        .body(Empty::new())?;
    let resp = send.send_request(req).await?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            n += data.len() as u64;
            let room = 512usize.saturating_sub(head.len());
            head.extend_from_slice(&data[..room.min(data.len())]);
        }
    }
    Ok((status, n))
}

async fn part(
    kind: Kind,
    go_bin: Option<&Path>,
    kube: &Client,
    cri: &RuntimeClient,
    tls: &Arc<rustls::ClientConfig>,
    opts: &Opts,
) -> Result<Figures> {
    let tag = format!("api-{}-{}", kind.short(), std::process::id());
    let ns = format!("apibench-{tag}");
    create_namespace(kube, &ns).await?;
    let ca = PathBuf::from(CP_DIR).join("ca.crt");
    let extra = JoinExtra {
        berth_args: vec![
            "--client-ca-file".into(),
            ca.display().to_string(),
            "--authorization-mode".into(),
            "AlwaysAllow".into(),
        ],
        berth_config: String::new(),
        go: gokubelet::Extra {
            client_ca_file: Some(ca),
            config: "containerLogMaxSize: 1Gi\n".into(),
            // The apiserver dials the Node's InternalIP for exec.
            address: Some("0.0.0.0".into()),
        },
    };
    let go = if kind == Kind::Go { go_bin } else { None };
    let (running, node) = join(kube, go, &tag, &extra).await?;
    let port = match &running {
        Running::Berth(b) => b.api_port,
        Running::Go(g) => g.api_port,
    };
    let measured = measure(kube, cri, tls, &ns, &node, port, &running, opts).await;
    let cleaned = clean_up(kube, cri, &ns, &node, running, Duration::from_secs(120)).await;
    let _ = std::fs::remove_dir_all(crate::joined::creds_dir(&tag));
    let f = measured?;
    cleaned?;
    Ok(f)
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    kube: &Client,
    cri: &RuntimeClient,
    tls: &Arc<rustls::ClientConfig>,
    ns: &str,
    node: &str,
    port: u16,
    running: &Running,
    opts: &Opts,
) -> Result<Figures> {
    let mut f = Figures::default();
    let pid = running.pid();
    // The pod: a log of --log-mb MB in CRI format, then idle.
    let lines = opts.log_mb * 1_000_000 / (LINE.len() + 1 + CRI_PREFIX);
    let pods: Api<Pod> = Api::namespaced(kube.clone(), ns);
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": POD},
        "spec": {
            "nodeName": node,
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "c",
                "image": busybox_image(),
                "command": ["sh", "-c", format!("yes {LINE} | head -n {lines}; exec sleep 3600")],
            }],
        },
    }))?;
    let created = pods.create(&PostParams::default(), &pod).await?;
    wait_pod_ready(&pods, &created, running).await?;
    let log_path =
        wait_log_written(cri, ns, lines as u64 * (LINE.len() + 1 + CRI_PREFIX) as u64).await?;
    f.log_file_bytes = std::fs::metadata(&log_path)?.len();
    let mb = f.log_file_bytes as f64 / 1e6;

    // The floor: the file from the page cache (read twice; the second).
    let mut floor = Duration::ZERO;
    for _ in 0..2 {
        let t = Instant::now();
        let path = log_path.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
            use std::io::Read;
            let mut file = std::fs::File::open(path)?;
            let mut buf = vec![0u8; 1 << 20];
            let mut n = 0;
            loop {
                match file.read(&mut buf)? {
                    0 => return Ok(n),
                    k => n += k as u64,
                }
            }
        })
        .await??;
        floor = t.elapsed();
    }
    f.floor_mbps = mb / floor.as_secs_f64();

    let logs_path = format!("/containerLogs/{ns}/{POD}/c");
    let mut one = Vec::new();
    for _ in 0..3 {
        let mut c = connect(port, tls).await?;
        let t = Instant::now();
        let (status, n) = get(&mut c, &logs_path).await?;
        if status != 200 {
            bail!("GET {logs_path}: {status}\n{}", running.log_tail());
        }
        one.push(t.elapsed());
        f.body_bytes = n;
    }
    f.one_reader_mbps = mb / dist(one).median.as_secs_f64();
    let t = Instant::now();
    let readers: Vec<_> = (0..10)
        .map(|_| {
            let tls = tls.clone();
            let path = logs_path.clone();
            tokio::spawn(async move {
                let mut c = connect(port, &tls).await?;
                get(&mut c, &path).await
            })
        })
        .collect();
    for r in readers {
        let (status, n) = r.await??;
        if status != 200 || n != f.body_bytes {
            bail!(
                "a concurrent reader got {status} with {n} bytes (want {})",
                f.body_bytes
            );
        }
    }
    f.ten_readers = t.elapsed();
    eprintln!(
        "kubelet-api: log {:.1} MB: 1 reader {:.0} MB/s, 10 readers {:.2} s",
        mb,
        f.one_reader_mbps,
        f.ten_readers.as_secs_f64()
    );

    // The small endpoints on one keep-alive connection.
    let mut c = connect(port, tls).await?;
    f.pods = timed_gets(&mut c, "/pods", opts.requests, Duration::from_secs(5)).await?;
    f.summary = timed_gets(
        &mut c,
        "/stats/summary",
        opts.requests,
        Duration::from_secs(60),
    )
    .await
    .map_err(|e| eprintln!("kubelet-api: /stats/summary: {e}"))
    .ok();
    f.metrics = timed_gets(&mut c, "/metrics", opts.requests, Duration::from_secs(5))
        .await
        .map_err(|e| eprintln!("kubelet-api: /metrics: {e}"))
        .ok();

    // RSS with 10 followers of the idle log.
    tokio::time::sleep(Duration::from_secs(2)).await;
    f.rss_before = status_mib(pid, "VmRSS:");
    let stop = tokio_util::sync::CancellationToken::new();
    let follow = format!("{logs_path}?follow=true&tailLines=10");
    let followers: Vec<_> = (0..10)
        .map(|_| {
            let (tls, path, stop) = (tls.clone(), follow.clone(), stop.clone());
            tokio::spawn(async move {
                let mut c = connect(port, &tls).await?;
                tokio::select! {
                    r = get(&mut c, &path) => r.map(|_| ()),
                    _ = stop.cancelled() => Ok(()),
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    f.rss_followers = status_mib(pid, "VmRSS:");
    stop.cancel();
    for fl in followers {
        fl.await??;
    }

    // kubectl exec through the apiserver, kubectl alone, and the CRI floor.
    let exec = ["exec", "-n", ns, POD, "--", "echo", "hi"];
    let alone = ["get", "pod", "-n", ns, POD, "-o", "name"];
    f.exec = time_kubectl(&exec, "hi\n", opts.execs)?;
    f.kubectl_alone = time_kubectl(&alone, &format!("pod/{POD}\n"), opts.execs)?;
    let id = container_id(cri, ns).await?;
    let mut floor = Vec::new();
    for i in 0..opts.execs + 2 {
        let t = Instant::now();
        let r = cri
            .exec_sync(pb::ExecSyncRequest {
                container_id: id.clone(),
                cmd: vec!["echo".into(), "hi".into()],
                timeout: 10,
            })
            .await?;
        if r.stdout != b"hi\n" {
            bail!("ExecSync said {:?}", String::from_utf8_lossy(&r.stdout));
        }
        if i >= 2 {
            floor.push(t.elapsed());
        }
    }
    f.exec_sync_floor = dist(floor);
    Ok(f)
}

/// `n` GETs of `path`, after it first answers 200 (within `ready`).
async fn timed_gets(
    c: &mut SendRequest<Empty<Bytes>>,
    path: &str,
    n: usize,
    ready: Duration,
) -> Result<Dist> {
    let t = Instant::now();
    loop {
        let mut head = Vec::new();
        match get_keeping(c, path, &mut head).await?.0 {
            200 => break,
            s if t.elapsed() > ready => {
                bail!("GET {path}: {s} {}", String::from_utf8_lossy(&head).trim())
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let (status, _) = get(c, path).await?;
        if status != 200 {
            bail!("GET {path}: {status}");
        }
        v.push(t.elapsed());
    }
    Ok(dist(v))
}

/// `kubectl args` `n` times after 2 warm-ups, checking its output.
fn time_kubectl(args: &[&str], want: &str, n: usize) -> Result<Dist> {
    let mut v = Vec::new();
    for i in 0..n + 2 {
        let t = Instant::now();
        let out = std::process::Command::new(kubectl_bin())
            .arg("--kubeconfig")
            .arg(admin_kubeconfig())
            .args(args)
            .output()?;
        let took = t.elapsed();
        if String::from_utf8_lossy(&out.stdout) != want {
            bail!(
                "kubectl {}: {:?} {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if i >= 2 {
            v.push(took);
        }
    }
    Ok(dist(v))
}

async fn container_id(cri: &RuntimeClient, ns: &str) -> Result<String> {
    let list = cri
        .list_containers(pb::ListContainersRequest {
            filter: Some(pb::ContainerFilter {
                label_selector: [("io.kubernetes.pod.namespace".to_string(), ns.to_string())]
                    .into(),
                state: Some(pb::ContainerStateValue {
                    state: pb::ContainerState::ContainerRunning as i32,
                }),
                ..Default::default()
            }),
        })
        .await?;
    list.containers
        .into_iter()
        .next()
        .map(|c| c.id)
        .with_context(|| format!("no running container in {ns}"))
}

/// Waits until the pod's CRI log has `want` bytes; its path.
async fn wait_log_written(cri: &RuntimeClient, ns: &str, want: u64) -> Result<PathBuf> {
    let id = container_id(cri, ns).await?;
    let st = cri
        .container_status(pb::ContainerStatusRequest {
            container_id: id,
            verbose: false,
        })
        .await?
        .status
        .context("no container status")?;
    let path = PathBuf::from(st.log_path);
    let t = Instant::now();
    // Go's RFC 3339 nano timestamps drop trailing zeros, so the prefix is
    // at most 40 bytes: done once near `want` and no longer growing.
    let mut last = (0, Instant::now());
    loop {
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if len != last.0 {
            last = (len, Instant::now());
        } else if len >= want / 100 * 98 && last.1.elapsed() > Duration::from_secs(2) {
            return Ok(path);
        }
        if t.elapsed() > Duration::from_secs(300) {
            bail!("{}: {len} of {want} bytes after 300 s", path.display());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn report(all: &[(Kind, Figures)]) {
    let Some((_, first)) = all.first() else {
        return;
    };
    println!();
    println!(
        "log: {:.1} MB CRI file, {:.1} MB of log text",
        first.log_file_bytes as f64 / 1e6,
        first.body_bytes as f64 / 1e6
    );
    print!("\n| measure |");
    for (k, _) in all {
        print!(" {} |", k.name());
    }
    println!(" floor |");
    print!("|---|");
    for _ in all {
        print!("---|");
    }
    println!("---|");
    let row = |what: &str, cell: &dyn Fn(&Figures) -> String, floor: String| {
        print!("| {what} |");
        for (_, f) in all {
            print!(" {} |", cell(f));
        }
        println!(" {floor} |");
    };
    let d = |x: &Dist| format!("{:.2} ms (p95 {:.2})", ms(x.median), ms(x.p95));
    row(
        "`/containerLogs`, 1 reader",
        &|f| format!("{:.0} MB/s", f.one_reader_mbps),
        format!("{:.0} MB/s (file read)", first.floor_mbps),
    );
    row(
        "`/containerLogs`, 10 concurrent readers",
        &|f| format!("{:.2} s in all", f.ten_readers.as_secs_f64()),
        "–".into(),
    );
    row("`/pods` at 1 pod", &|f| d(&f.pods), "–".into());
    row(
        "`/stats/summary` at 1 pod",
        &|f| f.summary.as_ref().map_or("failed".into(), d),
        "–".into(),
    );
    row(
        "`/metrics` at 1 pod",
        &|f| f.metrics.as_ref().map_or("failed".into(), d),
        "–".into(),
    );
    row(
        "`kubectl exec pod -- echo hi`",
        &|f| format!("{:.0} ms", ms(f.exec.median)),
        format!("{:.1} ms (CRI ExecSync)", ms(first.exec_sync_floor.median)),
    );
    row(
        "kubectl alone (`get pod -o name`)",
        &|f| format!("{:.0} ms", ms(f.kubectl_alone.median)),
        "–".into(),
    );
    row(
        "RSS idle, then with 10 followers",
        &|f| {
            format!(
                "{:.1} → {:.1} MiB (+{:.1})",
                f.rss_before,
                f.rss_followers,
                f.rss_followers - f.rss_before
            )
        },
        "–".into(),
    );
}
