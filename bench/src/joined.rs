//! `berth-bench joined [--pods 10] [--replicas 30] [--idle 60] [--settle 10]
//! [--repeat 1] [--quick] [--only berth|go]`: berth joined to the test
//! environment's control plane, beside the Go kubelet joined the same way,
//! one after the other in one run (the order alternates when repeated).
//!
//! Each kubelet joins through TLS bootstrap under a node name of its own
//! and, once its Node is Ready and schedulable, is measured on:
//! - **create → Ready**: a bare pod bound to the node (`spec.nodeName`),
//!   busybox `sleep 3600`, timed from the create request returning to its
//!   Ready condition True as a watch from the create's resourceVersion sees
//!   it; `--pods` times, one after the other, each deleted (and waited for,
//!   which is timed too) before the next;
//! - **RSS at 1 pod**: VmRSS with one such pod running, after `--settle`;
//! - **idle CPU and apiserver requests**, over the same `--idle` window
//!   with that one pod running and nothing changing: the kubelet's CPU
//!   (every thread sampled every 100 ms) and the delta of the apiserver's
//!   `apiserver_flowcontrol_dispatched_requests_total` for the flow schemas
//!   that match nodes (`system-node-high`, `system-nodes`), per minute;
//!   with `apiserver_request_total`'s delta by verb and resource beside it
//!   (cluster-wide: the controller-manager's and scheduler's requests are
//!   in it, but only one kubelet runs);
//! - **Deployment → all Ready**: `--replicas` replicas of the same pod with
//!   a nodeSelector on the node's hostname label, from the create returning
//!   to `readyReplicas` reaching the count, as a watch sees it; the
//!   kubelet's CPU time over it;
//! - **RSS at 30 pods** after `--settle`.
//!
//! Every pod gets the service account token volume the apiserver injects
//! (`kube-api-access-*`: a TokenRequest, the root CA ConfigMap and the
//! namespace, as on any cluster) and a 1 s grace period (`sleep` as PID 1 ignores SIGTERM). Each kubelet's pods live in a
//! namespace of its own, deleted at the end of its part and waited for,
//! then the kubelet is stopped and its Node deleted. The Go kubelet kills
//! every pod in the runtime it does not know, so it never runs beside
//! berth, is killed on drop, and dies with the benchmark (PDEATHSIG).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cri_client::RuntimeClient;
use cri_client::proto as pb;
use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams, WatchEvent, WatchParams};
use test_support::berth::Berth;
use test_support::cluster::{admin_kubeconfig, bootstrap_kubeconfig, kubectl};
use test_support::{busybox_image, endpoint, ensure_image, pause_image};

use crate::common::{patient_client, quantile, stat_cpu_seconds, status_mib};
use crate::gokubelet::{self, GoKubelet};
use crate::static_pods::cpu_seconds_over;
use crate::{flag, ms};

/// The flow schemas whose requests come from kubelets.
pub(crate) const NODE_SCHEMAS: [&str; 2] = ["system-node-high", "system-nodes"];

/// Where the kubelets' logs are kept after the run.
const LOG_DIR: &str = "/tmp/berth-bench-joined";

struct Opts {
    pods: usize,
    replicas: usize,
    idle: Duration,
    settle: Duration,
}

/// Which kubelet a part of a run measures.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Berth,
    Go,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Berth => "berth",
            Kind::Go => "Go kubelet",
        }
    }
    pub(crate) fn short(self) -> &'static str {
        match self {
            Kind::Berth => "berth",
            Kind::Go => "go",
        }
    }
}

/// One kubelet's figures from one part of a run.
struct Part {
    kind: Kind,
    node: String,
    join: Duration,
    create_ready: Vec<Duration>,
    delete_gone: Vec<Duration>,
    deployment: Duration,
    deployment_cpu_s: f64,
    rss1_mib: f64,
    rss30_mib: f64,
    hwm_mib: f64,
    idle_cpu_pct: f64,
    /// Container restarts summed over the pods: with 1 pod after the idle
    /// window, with 30 after their settle. Not 0: something killed them
    /// (another kubelet on the runtime kills pods it does not know).
    restarts: (i32, i32),
    /// Per flow schema, requests per minute.
    node_rpm: BTreeMap<String, f64>,
    /// apiserver_request_total per "VERB resource[/sub]", per minute.
    breakdown: Vec<(String, f64)>,
    log: PathBuf,
}

impl Part {
    fn node_rpm_total(&self) -> f64 {
        self.node_rpm.values().sum()
    }
    fn create_ready_median(&self) -> Duration {
        let mut v = self.create_ready.clone();
        v.sort();
        quantile(&v, 0.5)
    }
}

/// A running kubelet of either kind.
pub(crate) enum Running {
    Berth(Box<Berth>),
    Go(GoKubelet),
}

impl Running {
    pub(crate) fn pid(&self) -> u32 {
        match self {
            Running::Berth(b) => b.pid().unwrap_or_default(),
            Running::Go(g) => g.pid(),
        }
    }
    fn log_path(&self) -> PathBuf {
        match self {
            Running::Berth(b) => b.log_file(),
            Running::Go(g) => g.log_path(),
        }
    }
    pub(crate) fn log_tail(&self) -> String {
        test_support::berth::tail(
            &std::fs::read_to_string(self.log_path()).unwrap_or_default(),
            40,
        )
    }
    /// Keeps its log under [`LOG_DIR`] and stops it.
    pub(crate) fn stop(self, node: &str) -> PathBuf {
        let _ = std::fs::create_dir_all(LOG_DIR);
        let kept = PathBuf::from(LOG_DIR).join(format!("{node}.log"));
        let _ = std::fs::copy(self.log_path(), &kept);
        match self {
            Running::Berth(mut b) => b.stop(),
            Running::Go(g) => g.kill(),
        }
        kept
    }
}

/// What a joined kubelet gets beyond the benchmarks' defaults.
#[derive(Clone, Debug, Default)]
pub(crate) struct JoinExtra {
    /// Flags added to berth's.
    pub berth_args: Vec<String>,
    /// KubeletConfiguration lines added to berth's.
    pub berth_config: String,
    pub go: gokubelet::Extra,
}

/// Starts a joined kubelet (berth, or the Go kubelet `go`) under a node name
/// of its own and waits for its Node to be Ready and schedulable.
pub(crate) async fn join(
    kube: &Client,
    go: Option<&std::path::Path>,
    tag: &str,
    extra: &JoinExtra,
) -> Result<(Running, String)> {
    let (running, node) = match go {
        None => {
            let creds = creds_dir(tag);
            std::fs::create_dir_all(&creds)?;
            let kubeconfig = creds.join("kubelet.conf");
            let mut args = vec![
                "--kubeconfig".to_string(),
                kubeconfig.display().to_string(),
                "--bootstrap-kubeconfig".to_string(),
                bootstrap_kubeconfig().display().to_string(),
            ];
            args.extend(extra.berth_args.iter().cloned());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut b = Berth::with_args(&args);
            b.append_config(&extra.berth_config);
            b.rust_log = "info".into();
            b.start();
            let node = b.node.clone();
            (Running::Berth(Box::new(b)), node)
        }
        Some(bin) => {
            let node = format!("gokubelet-{tag}");
            (
                Running::Go(GoKubelet::start_joined_with(bin, &node, &extra.go).await?),
                node,
            )
        }
    };
    if let Err(e) = wait_node_schedulable(kube, &node, &running).await {
        let _ = running.stop(&node);
        let _ = Api::<Node>::all(kube.clone())
            .delete(&node, &Default::default())
            .await;
        return Err(e);
    }
    Ok((running, node))
}

/// Where berth's client kubeconfig goes.
pub(crate) fn creds_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("berth-bench-joined-{tag}"))
}

// The cross-process lock is held for the whole run on purpose.
#[allow(clippy::await_holding_lock)]
pub async fn run(args: &[String]) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let opts = Opts {
        pods: flag(args, "--pods", if quick { 3 } else { 10 })?,
        replicas: flag(args, "--replicas", 30)?,
        idle: Duration::from_secs(flag(args, "--idle", if quick { 20 } else { 60 })?),
        settle: Duration::from_secs(flag(args, "--settle", if quick { 5 } else { 10 })?),
    };
    let repeat: usize = flag(args, "--repeat", 1)?;
    let only: String = flag(args, "--only", String::new())?;
    let mut kinds = vec![Kind::Berth, Kind::Go];
    match only.as_str() {
        "" => {}
        "berth" => kinds = vec![Kind::Berth],
        "go" => kinds = vec![Kind::Go],
        other => bail!("--only: berth or go, not {other:?}"),
    }
    let go_bin = gokubelet::binary();
    if go_bin.is_none() && kinds.contains(&Kind::Go) {
        eprintln!("joined: no Go kubelet built (tests/env/control-plane build); berth only");
        kinds.retain(|k| *k == Kind::Berth);
    }

    let Setup { cri, kube, _one } = setup("joined", true, go_bin.as_deref()).await?;
    let kube = kube.context("no apiserver client")?;
    println!(
        "{} pods create → Ready, {}-replica Deployment, idle window {} s, settle {} s, {repeat} run(s)",
        opts.pods,
        opts.replicas,
        opts.idle.as_secs(),
        opts.settle.as_secs()
    );

    let mut parts: Vec<Part> = Vec::new();
    for r in 0..repeat {
        let mut order = kinds.clone();
        if r % 2 == 1 {
            order.reverse();
        }
        for kind in order {
            eprintln!("joined: run {}, {} ...", r + 1, kind.name());
            let p = part(kind, go_bin.as_deref(), &kube, &cri, &opts, r).await?;
            eprintln!(
                "joined: run {}, {}: create → Ready median {:.0} ms, Deployment {:.2} s, RSS {:.1}/{:.1} MiB, idle CPU {:.2} %, {:.1} node requests/min",
                r + 1,
                kind.name(),
                ms(p.create_ready_median()),
                p.deployment.as_secs_f64(),
                p.rss1_mib,
                p.rss30_mib,
                p.idle_cpu_pct,
                p.node_rpm_total()
            );
            parts.push(p);
        }
    }
    report(&parts, &opts);
    let left = std::process::Command::new("pgrep")
        .args(["-f", "bin/kubelet"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    if !left.is_empty() {
        eprintln!("joined: WARNING: a Go kubelet still runs: {left}");
    }
    Ok(())
}

/// What a benchmark on the real runtime starts with: the runtime with the
/// test images, the control plane's admin client (when asked for), the
/// machine lock, and the header line naming the commit, apiserver and
/// runtime, with the Go kubelet's version under it.
pub(crate) struct Setup {
    pub cri: RuntimeClient,
    pub kube: Option<Client>,
    pub _one: test_support::berth::Exclusive,
}

pub(crate) async fn setup(
    name: &str,
    with_apiserver: bool,
    go_bin: Option<&std::path::Path>,
) -> Result<Setup> {
    let cri = patient_client().await?;
    ensure_image(&cri, &busybox_image()).await;
    ensure_image(&cri, &pause_image()).await;
    let kube = if with_apiserver {
        Some(admin_client().await?)
    } else {
        None
    };
    let version = cri.version(Default::default()).await?;
    let one = test_support::berth::exclusive();
    let server = match &kube {
        Some(k) => k.apiserver_version().await?.git_version,
        None => "–".into(),
    };
    println!(
        "# berth-bench {name}: commit {}, apiserver {server}, {} {} at {}",
        commit(),
        version.runtime_name,
        version.runtime_version,
        endpoint()
    );
    if let Some(bin) = go_bin {
        println!(
            "Go kubelet: {} ({})",
            gokubelet::version(bin),
            bin.display()
        );
    }
    Ok(Setup {
        cri,
        kube,
        _one: one,
    })
}

pub(crate) async fn admin_client() -> Result<Client> {
    let kc = kube::config::Kubeconfig::read_from(admin_kubeconfig())?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await?;
    Ok(Client::try_from(cfg)?)
}

pub(crate) fn commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let id = git(&["rev-parse", "--short", "HEAD"]);
    let dirty = !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty();
    format!("{id}{}", if dirty { "-dirty" } else { "" })
}

/// One kubelet's part: join, measure, clean up whatever happened.
async fn part(
    kind: Kind,
    go_bin: Option<&std::path::Path>,
    kube: &Client,
    cri: &RuntimeClient,
    opts: &Opts,
    run: usize,
) -> Result<Part> {
    let tag = format!("{}-{}-{run}", kind.short(), std::process::id());
    let ns = format!("joinbench-{tag}");
    create_namespace(kube, &ns).await?;
    let t = Instant::now();
    let (running, node) = match kind {
        Kind::Berth => {
            // Its client kubeconfig; the certificates go under its root
            // directory, removed with it.
            let creds = creds_dir(&tag);
            std::fs::create_dir_all(&creds)?;
            let kubeconfig = creds.join("kubelet.conf");
            let mut b = Berth::with_args(&[
                "--kubeconfig",
                &kubeconfig.display().to_string(),
                "--bootstrap-kubeconfig",
                &bootstrap_kubeconfig().display().to_string(),
            ]);
            // Info: pod start-up steps with their timestamps, for where
            // create → Ready goes; nothing is logged at idle.
            b.rust_log = "info".into();
            b.start();
            let node = b.node.clone();
            (Running::Berth(Box::new(b)), node)
        }
        Kind::Go => {
            let node = format!("gokubelet-{tag}");
            let bin = go_bin.context("no Go kubelet")?;
            (
                Running::Go(GoKubelet::start_joined(bin, &node).await?),
                node,
            )
        }
    };
    let measured = async {
        wait_node_schedulable(kube, &node, &running).await?;
        let join = t.elapsed();
        measure(kind, kube, &ns, &node, &running, opts, join).await
    }
    .await;
    let cleaned = clean_up(kube, cri, &ns, &node, running, Duration::from_secs(180)).await;
    let _ = std::fs::remove_dir_all(creds_dir(&tag));
    match (measured, cleaned) {
        (Ok(mut p), Ok(log)) => {
            p.log = log;
            Ok(p)
        }
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(e),
    }
}

async fn measure(
    kind: Kind,
    kube: &Client,
    ns: &str,
    node: &str,
    running: &Running,
    opts: &Opts,
    join: Duration,
) -> Result<Part> {
    let pid = running.pid();
    let pods: Api<Pod> = Api::namespaced(kube.clone(), ns);

    // Pod create → Ready, one pod at a time.
    let mut create_ready = Vec::new();
    let mut delete_gone = Vec::new();
    for i in 0..opts.pods {
        let name = format!("ready-{i}");
        let created = pods
            .create(&PostParams::default(), &pod(&name, node)?)
            .await?;
        let t = Instant::now();
        wait_pod_ready(&pods, &created, running).await?;
        create_ready.push(t.elapsed());
        let t = Instant::now();
        pods.delete(&name, &DeleteParams::default()).await?;
        wait_pods_gone(&pods, Some(&name), Duration::from_secs(120), running).await?;
        delete_gone.push(t.elapsed());
    }

    // One pod running: RSS, then the idle window.
    let steady = pods
        .create(&PostParams::default(), &pod("steady", node)?)
        .await?;
    wait_pod_ready(&pods, &steady, running).await?;
    tokio::time::sleep(opts.settle).await;
    let rss1_mib = status_mib(pid, "VmRSS:");
    let before = metrics().await?;
    let t = Instant::now();
    let cpu = cpu_seconds_over(pid, opts.idle).await;
    let after = metrics().await?;
    let window = t.elapsed();
    let idle_cpu_pct = cpu / opts.idle.as_secs_f64() * 100.0;
    let per_min = 60.0 / window.as_secs_f64();
    let node_rpm = NODE_SCHEMAS
        .iter()
        .map(|s| {
            let key =
                format!("apiserver_flowcontrol_dispatched_requests_total{{flow_schema=\"{s}\"");
            let d = sum_prefix(&after, &key) - sum_prefix(&before, &key);
            (s.to_string(), d * per_min)
        })
        .collect();
    let mut breakdown: Vec<(String, f64)> = request_breakdown(&after)
        .into_iter()
        .map(|(k, v)| {
            let was = request_breakdown(&before).get(&k).copied().unwrap_or(0.0);
            (k, (v - was) * per_min)
        })
        .filter(|(_, v)| *v > 0.0)
        .collect();
    breakdown.sort_by(|a, b| b.1.total_cmp(&a.1));
    let restarts1 = restarts(&pods).await?;
    pods.delete("steady", &DeleteParams::default()).await?;
    wait_pods_gone(&pods, Some("steady"), Duration::from_secs(120), running).await?;

    // The Deployment.
    let deployments: Api<Deployment> = Api::namespaced(kube.clone(), ns);
    let cpu0 = stat_cpu_seconds(pid, false);
    let created = deployments
        .create(
            &PostParams::default(),
            &deployment("web", node, opts.replicas)?,
        )
        .await?;
    let t = Instant::now();
    wait_deployment_ready(&deployments, &created, opts.replicas, running).await?;
    let deployment = t.elapsed();
    let deployment_cpu_s = stat_cpu_seconds(pid, false) - cpu0;
    tokio::time::sleep(opts.settle).await;
    let rss30_mib = status_mib(pid, "VmRSS:");
    let hwm_mib = status_mib(pid, "VmHWM:");
    let restarts30 = restarts(&pods).await?;

    Ok(Part {
        kind,
        node: node.to_string(),
        join,
        create_ready,
        delete_gone,
        deployment,
        deployment_cpu_s,
        rss1_mib,
        rss30_mib,
        hwm_mib,
        idle_cpu_pct,
        restarts: (restarts1, restarts30),
        node_rpm,
        breakdown,
        log: PathBuf::new(),
    })
}

/// Deletes the namespace and waits for its pods to go (the kubelet's
/// work), stops the kubelet, deletes its Node and removes whatever the
/// runtime still holds of the namespace. Returns where its log was kept.
pub(crate) async fn clean_up(
    kube: &Client,
    cri: &RuntimeClient,
    ns: &str,
    node: &str,
    running: Running,
    limit: Duration,
) -> Result<PathBuf> {
    let namespaces: Api<Namespace> = Api::all(kube.clone());
    let _ = namespaces.delete(ns, &DeleteParams::default()).await;
    let pods: Api<Pod> = Api::namespaced(kube.clone(), ns);
    let gone = wait_pods_gone(&pods, None, limit, &running).await;
    let log = running.stop(node);
    let nodes: Api<Node> = Api::all(kube.clone());
    let _ = nodes.delete(node, &DeleteParams::default()).await;
    let left: Vec<_> = cri
        .list_pod_sandbox(pb::ListPodSandboxRequest::default())
        .await?
        .items
        .into_iter()
        .filter(|s| s.metadata.as_ref().is_some_and(|m| m.namespace == ns))
        .collect();
    for s in left {
        let _ = cri
            .stop_pod_sandbox(pb::StopPodSandboxRequest {
                pod_sandbox_id: s.id.clone(),
            })
            .await;
        let _ = cri
            .remove_pod_sandbox(pb::RemovePodSandboxRequest {
                pod_sandbox_id: s.id,
            })
            .await;
    }
    gone.with_context(|| format!("cleaning up {ns}"))?;
    Ok(log)
}

pub(crate) async fn create_namespace(kube: &Client, ns: &str) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(kube.clone());
    let obj: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}
    }))?;
    namespaces.create(&PostParams::default(), &obj).await?;
    // Pods are refused until the controller-manager made the default
    // ServiceAccount, token or not.
    let sas: Api<ServiceAccount> = Api::namespaced(kube.clone(), ns);
    let t = Instant::now();
    while sas.get_opt("default").await?.is_none() {
        if t.elapsed() > Duration::from_secs(30) {
            bail!("no default ServiceAccount in {ns}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

fn pod_spec(node_field: serde_json::Value) -> serde_json::Value {
    let mut spec = serde_json::json!({
        "terminationGracePeriodSeconds": 1,
        "containers": [{
            "name": "c",
            "image": busybox_image(),
            "imagePullPolicy": "IfNotPresent",
            "command": ["sleep", "3600"],
        }],
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), node_field.as_object()) {
        spec.extend(extra.clone());
    }
    spec
}

/// A bare pod bound to `node` (no scheduler).
fn pod(name: &str, node: &str) -> Result<Pod> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": pod_spec(serde_json::json!({"nodeName": node})),
    }))?)
}

/// `replicas` of the same pod, scheduled onto `node` by its hostname label.
fn deployment(name: &str, node: &str, replicas: usize) -> Result<Deployment> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": pod_spec(serde_json::json!({
                    "nodeSelector": {"kubernetes.io/hostname": node}
                })),
            },
        },
    }))?)
}

pub(crate) fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Watches `created` from its resourceVersion until its Ready condition is
/// True; fails after 120 s.
pub(crate) async fn wait_pod_ready(
    pods: &Api<Pod>,
    created: &Pod,
    running: &Running,
) -> Result<()> {
    let name = created.metadata.name.clone().unwrap_or_default();
    let rv = created
        .metadata
        .resource_version
        .clone()
        .unwrap_or_default();
    let wp = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(120);
    let mut events = pods.watch(&wp, &rv).await?.boxed();
    while let Some(e) = events.try_next().await? {
        match e {
            WatchEvent::Added(p) | WatchEvent::Modified(p) if pod_ready(&p) => return Ok(()),
            WatchEvent::Error(e) => bail!("watching pod {name}: {e:?}"),
            _ => {}
        }
    }
    bail!(
        "pod {name} not Ready in 120 s; last: {:?}\n--- kubelet log ---\n{}",
        pods.get_opt(&name).await?.and_then(|p| p.status),
        running.log_tail()
    )
}

/// Watches the Deployment until `readyReplicas` is `replicas`; fails after
/// 5 minutes.
async fn wait_deployment_ready(
    deployments: &Api<Deployment>,
    created: &Deployment,
    replicas: usize,
    running: &Running,
) -> Result<()> {
    let name = created.metadata.name.clone().unwrap_or_default();
    let rv = created
        .metadata
        .resource_version
        .clone()
        .unwrap_or_default();
    let wp = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(300);
    let ready = |d: &Deployment| {
        d.status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .is_some_and(|r| r as usize >= replicas)
    };
    let mut events = deployments.watch(&wp, &rv).await?.boxed();
    while let Some(e) = events.try_next().await? {
        match e {
            WatchEvent::Added(d) | WatchEvent::Modified(d) if ready(&d) => return Ok(()),
            WatchEvent::Error(e) => bail!("watching deployment {name}: {e:?}"),
            _ => {}
        }
    }
    bail!(
        "deployment {name} not Ready in 300 s; last: {:?}\n--- kubelet log ---\n{}",
        deployments.get_opt(&name).await?.and_then(|d| d.status),
        running.log_tail()
    )
}

/// Container restarts summed over the namespace's pods.
pub(crate) async fn restarts(pods: &Api<Pod>) -> Result<i32> {
    Ok(pods
        .list(&Default::default())
        .await?
        .items
        .iter()
        .filter_map(|p| p.status.as_ref()?.container_statuses.as_ref())
        .flatten()
        .map(|c| c.restart_count)
        .sum())
}

/// Polls every 50 ms until the pod `name` (or, with None, every pod of the
/// namespace) is gone.
pub(crate) async fn wait_pods_gone(
    pods: &Api<Pod>,
    name: Option<&str>,
    limit: Duration,
    running: &Running,
) -> Result<()> {
    let t = Instant::now();
    loop {
        let left = match name {
            Some(n) => usize::from(pods.get_opt(n).await?.is_some()),
            None => pods.list(&Default::default()).await?.items.len(),
        };
        if left == 0 {
            return Ok(());
        }
        if t.elapsed() > limit {
            bail!(
                "{left} pod(s) not gone after {limit:?}\n--- kubelet log ---\n{}",
                running.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the Node every 100 ms until it is Ready with no NoSchedule or
/// NoExecute taint (the scheduler places the Deployment's pods); fails
/// after 120 s.
pub(crate) async fn wait_node_schedulable(
    kube: &Client,
    node: &str,
    running: &Running,
) -> Result<()> {
    let nodes: Api<Node> = Api::all(kube.clone());
    let t = Instant::now();
    loop {
        let n = nodes.get_opt(node).await?;
        let ready = n.as_ref().is_some_and(|n| {
            let ready = n
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            let tainted = n
                .spec
                .as_ref()
                .and_then(|s| s.taints.as_ref())
                .is_some_and(|t| t.iter().any(|t| t.effect != "PreferNoSchedule"));
            ready && !tainted
        });
        if ready {
            return Ok(());
        }
        if t.elapsed() > Duration::from_secs(120) {
            bail!(
                "node {node} not Ready and schedulable in 120 s: {:?}\n--- kubelet log ---\n{}",
                n.and_then(|n| n.status).map(|s| s.conditions),
                running.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The apiserver's /metrics, as its admin.
pub(crate) async fn metrics() -> Result<String> {
    tokio::task::spawn_blocking(|| kubectl(&["get", "--raw", "/metrics"]))
        .await?
        .map_err(|e| anyhow::anyhow!("kubectl get --raw /metrics: {e}"))
}

/// The sum of the samples whose line starts with `prefix`.
pub(crate) fn sum_prefix(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// The value of `label` in a sample line's label set.
pub(crate) fn label<'a>(line: &'a str, label: &str) -> &'a str {
    let key = format!("{label}=\"");
    line.find(&key)
        .map(|i| &line[i + key.len()..])
        .and_then(|rest| rest.split_once('"').map(|(v, _)| v))
        .unwrap_or("")
}

/// `apiserver_request_total` summed by "VERB resource[/subresource]".
fn request_breakdown(metrics: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for l in metrics
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let Some(v) = l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()) else {
            continue;
        };
        let (resource, sub) = (label(l, "resource"), label(l, "subresource"));
        let what = match (resource, sub) {
            ("", s) => s.to_string(),
            (r, "") => r.to_string(),
            (r, s) => format!("{r}/{s}"),
        };
        *out.entry(format!("{} {what}", label(l, "verb")))
            .or_insert(0.0) += v;
    }
    out
}

fn median_of(parts: &[&Part], f: impl Fn(&Part) -> f64) -> f64 {
    let mut v: Vec<f64> = parts.iter().map(|p| f(p)).collect();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        0.0
    } else {
        v[(v.len() - 1) / 2]
    }
}

fn report(parts: &[Part], opts: &Opts) {
    let of = |k: Kind| parts.iter().filter(|p| p.kind == k).collect::<Vec<_>>();
    let (b, g) = (of(Kind::Berth), of(Kind::Go));
    let runs = b.len().max(g.len());
    let cell = |ps: &[&Part], f: &dyn Fn(&Part) -> f64, fmt: &dyn Fn(f64) -> String| {
        if ps.is_empty() {
            "–".to_string()
        } else {
            fmt(median_of(ps, f))
        }
    };
    type Row<'a> = (
        &'a str,
        Box<dyn Fn(&Part) -> f64>,
        Box<dyn Fn(f64) -> String>,
        &'a str,
    );
    let secs = |v: f64| format!("{v:.2} s");
    let mib = |v: f64| format!("{v:.1} MiB");
    let rows: Vec<Row<'_>> = vec![
        (
            "start → Node Ready and schedulable",
            Box::new(|p: &Part| p.join.as_secs_f64()),
            Box::new(secs),
            "–",
        ),
        (
            "API pod create → Ready (median)",
            Box::new(|p: &Part| p.create_ready_median().as_secs_f64()),
            Box::new(secs),
            "≤ the Go kubelet",
        ),
        (
            "30-replica Deployment → all Ready",
            Box::new(|p: &Part| p.deployment.as_secs_f64()),
            Box::new(secs),
            "≤ 1.05× the Go kubelet",
        ),
        (
            "kubelet CPU time during the Deployment",
            Box::new(|p: &Part| p.deployment_cpu_s),
            Box::new(secs),
            "–",
        ),
        (
            "RSS joined, at 1 pod",
            Box::new(|p: &Part| p.rss1_mib),
            Box::new(mib),
            "≤ 20 MB",
        ),
        (
            "RSS joined, at 30 pods",
            Box::new(|p: &Part| p.rss30_mib),
            Box::new(mib),
            "≤ 20 MB",
        ),
        (
            "peak RSS (VmHWM)",
            Box::new(|p: &Part| p.hwm_mib),
            Box::new(mib),
            "–",
        ),
        (
            "idle CPU joined (1 pod)",
            Box::new(|p: &Part| p.idle_cpu_pct),
            Box::new(|v: f64| format!("{v:.2} %")),
            "≤ 0.3 % of a core",
        ),
        (
            "apiserver requests/min, idle node (1 pod)",
            Box::new(|p: &Part| p.node_rpm_total()),
            Box::new(|v: f64| format!("{v:.1}")),
            "≤ the Go kubelet",
        ),
    ];
    println!();
    println!(
        "| measure ({}) | berth | Go kubelet | target for berth |",
        if runs > 1 {
            format!("median of {runs} runs")
        } else {
            "1 run".to_string()
        }
    );
    println!("|---|---|---|---|");
    for (what, f, fmt, target) in &rows {
        println!(
            "| {what} | {} | {} | {target} |",
            cell(&b, f.as_ref(), fmt.as_ref()),
            cell(&g, f.as_ref(), fmt.as_ref())
        );
    }
    println!();
    println!("Per run (in the order run):");
    for p in parts {
        println!();
        println!(
            "- {} as node {} (log: {})",
            p.kind.name(),
            p.node,
            p.log.display()
        );
        let list = |v: &[Duration]| {
            v.iter()
                .map(|d| format!("{:.0}", ms(*d)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "  - create → Ready ({} pods), ms: {}",
            opts.pods,
            list(&p.create_ready)
        );
        println!("  - delete → object gone, ms: {}", list(&p.delete_gone));
        println!(
            "  - Deployment {:.2} s ({:.2} s CPU), RSS {:.1} MiB at 1 pod, {:.1} MiB at {} pods, idle CPU {:.2} %",
            p.deployment.as_secs_f64(),
            p.deployment_cpu_s,
            p.rss1_mib,
            p.rss30_mib,
            opts.replicas,
            p.idle_cpu_pct
        );
        println!(
            "  - container restarts: {} at 1 pod, {} at {} pods{}",
            p.restarts.0,
            p.restarts.1,
            opts.replicas,
            if p.restarts == (0, 0) {
                ""
            } else {
                " (NOT 0: pods were killed; figures suspect)"
            }
        );
        println!(
            "  - node flow schemas, requests/min: {}",
            p.node_rpm
                .iter()
                .map(|(k, v)| format!("{k} {v:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "  - apiserver_request_total/min, cluster-wide (controllers and scheduler included): {}",
            p.breakdown
                .iter()
                .map(|(k, v)| format!("{k} {v:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}
