//! `berth-bench object-volumes [--edits 10] [--go-samples 1] [--pods 110]
//! [--idle 60] [--settle 10] [--quick] [--parts standalone,joined,go,cost]`:
//! how fast a ConfigMap edit reaches a running container, and what
//! watching the objects of many pods costs (issue 11), in one run.
//!
//! - **standalone edit → visible**: berth on a manifest directory holding a
//!   ConfigMap (its own file) and a busybox `sleep 3600` pod mounting it at
//!   `/cfg`; each edit rewrites the ConfigMap's file (write a temporary
//!   file, rename it over) with a new value, then `cat /cfg/value` runs in
//!   the container through CRI ExecSync, 20 ms apart, until the new value
//!   shows; timed from just before the write to the end of the ExecSync that
//!   saw it. The standalone Go kubelet cannot mount ConfigMaps at all (its
//!   static pods may not reference API objects), so there is no Go figure.
//! - **joined edit → visible**: berth joined through TLS bootstrap, a
//!   ConfigMap and the same pod (bound by `spec.nodeName`) in a namespace
//!   of its own; each edit is a merge patch through the apiserver, timed
//!   from just before the patch request. Then the Go kubelet joined the same
//!   way, never beside berth, with the same pod: `--go-samples` edits, each
//!   polled for up to 150 s.
//! - **cost at `--pods` pods**: berth joined with that many pods bound to
//!   it, each mounting a ConfigMap and a Secret of its own and reading one
//!   env var from its ConfigMap (twice `--pods` watched objects), plus the
//!   injected token volume; created 10 at a time, all Ready seen by a watch,
//!   then after `--settle` berth's VmRSS and its idle CPU over `--idle`
//!   (every thread's schedstat every 100 ms), with the node's apiserver
//!   requests per minute and the apiserver's open WATCH requests on
//!   configmaps and secrets (cluster-wide) beside them. The baseline is a
//!   fresh berth (a Node of its own) with the same pods and no object
//!   volumes nor env, in the same run, first; the cost of the watches is
//!   the difference.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cri_client::RuntimeClient;
use cri_client::proto as pb;
use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use test_support::berth::Berth;
use test_support::busybox_image;

use crate::common::{quantile, stat_cpu_seconds, status_mib};
use crate::gokubelet;
use crate::joined::{
    NODE_SCHEMAS, Running, Setup, clean_up, create_namespace, creds_dir, join, label, metrics,
    pod_ready, restarts, setup, sum_prefix, wait_pod_ready,
};
use crate::static_pods::cpu_seconds_over;
use crate::{flag, ms};

/// How long berth's edits are polled for before the sample counts as not
/// seen.
const BERTH_LIMIT: Duration = Duration::from_secs(30);
/// The same for the Go kubelet: its sync period (1 m) plus jitter and
/// cache TTL.
const GO_LIMIT: Duration = Duration::from_secs(150);
/// Between two ExecSync polls.
const POLL: Duration = Duration::from_millis(20);
/// The file the pods read, under their ConfigMap mount.
const FILE: &str = "/cfg/value";

struct Opts {
    edits: usize,
    go_samples: usize,
    pods: usize,
    idle: Duration,
    settle: Duration,
    parts: Vec<String>,
}

impl Opts {
    fn wants(&self, part: &str) -> bool {
        self.parts.iter().any(|p| p == part)
    }
}

/// One edit → visible series.
#[derive(Default)]
struct Edits {
    /// Per edit; None when not seen within the limit.
    latency: Vec<Option<Duration>>,
    /// Every ExecSync's round trip, the measurement's resolution.
    exec_rtt: Vec<Duration>,
    /// Per edit, how many ExecSyncs it took (1: the first one, started
    /// right after the edit, already saw the new value).
    polls: Vec<usize>,
    node: String,
    log: PathBuf,
}

impl Edits {
    /// The median, a miss counting as beyond every seen value; None when
    /// the median is a miss (or there are no samples).
    fn median(&self) -> Option<Duration> {
        let mut all: Vec<Duration> = self
            .latency
            .iter()
            .map(|l| l.unwrap_or(Duration::MAX))
            .collect();
        all.sort();
        let m = *all.get(all.len().saturating_sub(1) / 2)?;
        (m != Duration::MAX).then_some(m)
    }
    fn max(&self) -> Option<Duration> {
        if self.latency.iter().any(Option::is_none) {
            return None;
        }
        self.latency.iter().flatten().max().copied()
    }
    fn rtt_median(&self) -> Duration {
        let mut v = self.exec_rtt.clone();
        v.sort();
        quantile(&v, 0.5)
    }
    fn list(&self, limit: Duration) -> String {
        self.latency
            .iter()
            .map(|l| match l {
                Some(d) => format!("{:.0}", ms(*d)),
                None => format!("> {:.0}", ms(limit)),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One cost phase: `pods` pods on a fresh berth, with or without their
/// object volumes.
struct Cost {
    objects: bool,
    node: String,
    pods: usize,
    allocatable: String,
    all_ready: Duration,
    start_cpu_s: f64,
    rss_mib: f64,
    hwm_mib: f64,
    threads: usize,
    idle_cpu_pct: f64,
    node_rpm: f64,
    /// Open WATCH requests on configmaps and secrets, cluster-wide, at the
    /// end of the idle window.
    watches: (f64, f64),
    restarts: i32,
    log: PathBuf,
}

/// How an edit is made.
enum Editor<'a> {
    /// The ConfigMap's file in berth's manifest directory.
    File(&'a Berth),
    /// A merge patch of the ConfigMap through the apiserver.
    Api(&'a Api<ConfigMap>),
}

/// The ConfigMap every edit series uses.
const CM: &str = "objbench-cfg";

impl Editor<'_> {
    async fn edit(&self, value: &str) -> Result<()> {
        match self {
            Editor::File(b) => {
                b.write_manifest("cfg.yaml", &standalone_configmap(value));
                Ok(())
            }
            Editor::Api(api) => {
                api.patch(
                    CM,
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({"data": {"value": value}})),
                )
                .await?;
                Ok(())
            }
        }
    }
}

fn standalone_configmap(value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {CM}}}\ndata: {{value: \"{value}\"}}\n"
    )
}

fn standalone_pod() -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: objbench}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: c
    image: {}
    imagePullPolicy: IfNotPresent
    command: [sleep, '3600']
    volumeMounts: [{{name: cfg, mountPath: /cfg}}]
  volumes:
  - {{name: cfg, configMap: {{name: {CM}}}}}
",
        busybox_image()
    )
}

/// The edit pod for a joined kubelet: bound to `node`, mounting [`CM`].
fn joined_pod(node: &str) -> Result<Pod> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "objbench"},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "c",
                "image": busybox_image(),
                "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "3600"],
                "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}],
            }],
            "volumes": [{"name": "cfg", "configMap": {"name": CM}}],
        },
    }))?)
}

fn configmap(name: &str, value: &str) -> Result<ConfigMap> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"value": value},
    }))?)
}

fn secret(name: &str, value: &str) -> Result<Secret> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name},
        "stringData": {"token": value},
    }))?)
}

/// Cost pod `i`: with `objects`, its own ConfigMap and Secret mounted and
/// one env var from the ConfigMap; without, the bare pod.
fn cost_pod(i: usize, node: &str, objects: bool) -> Result<Pod> {
    let mut container = serde_json::json!({
        "name": "c",
        "image": busybox_image(),
        "imagePullPolicy": "IfNotPresent",
        "command": ["sleep", "3600"],
    });
    let mut spec = serde_json::json!({
        "nodeName": node,
        "terminationGracePeriodSeconds": 1,
    });
    if objects {
        container["env"] = serde_json::json!([{
            "name": "VALUE",
            "valueFrom": {"configMapKeyRef": {"name": format!("cm-{i}"), "key": "value"}},
        }]);
        container["volumeMounts"] = serde_json::json!([
            {"name": "cfg", "mountPath": "/cfg"},
            {"name": "sec", "mountPath": "/sec"},
        ]);
        spec["volumes"] = serde_json::json!([
            {"name": "cfg", "configMap": {"name": format!("cm-{i}")}},
            {"name": "sec", "secret": {"secretName": format!("sec-{i}")}},
        ]);
    }
    spec["containers"] = serde_json::json!([container]);
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": format!("p-{i}")},
        "spec": spec,
    }))?)
}

/// The running container `c` whose pod's CRI name is `pod` in `namespace`.
async fn container_of(cri: &RuntimeClient, namespace: &str, pod: &str) -> Result<Option<String>> {
    Ok(cri
        .list_containers(pb::ListContainersRequest {
            filter: Some(pb::ContainerFilter {
                state: Some(pb::ContainerStateValue {
                    state: pb::ContainerState::ContainerRunning as i32,
                }),
                ..Default::default()
            }),
        })
        .await?
        .containers
        .into_iter()
        .find(|c| {
            c.labels.get("io.kubernetes.pod.name").map(String::as_str) == Some(pod)
                && c.labels
                    .get("io.kubernetes.pod.namespace")
                    .map(String::as_str)
                    == Some(namespace)
                && c.metadata.as_ref().is_some_and(|m| m.name == "c")
        })
        .map(|c| c.id))
}

async fn wait_container(
    cri: &RuntimeClient,
    namespace: &str,
    pod: &str,
    limit: Duration,
    log_tail: impl Fn() -> String,
) -> Result<String> {
    let t = Instant::now();
    loop {
        if let Some(id) = container_of(cri, namespace, pod).await? {
            return Ok(id);
        }
        if t.elapsed() > limit {
            bail!(
                "no running container for {namespace}/{pod} in {limit:?}\n--- kubelet log ---\n{}",
                log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `cat FILE` in the container: its stdout, and the call's round trip.
async fn read_value(cri: &RuntimeClient, id: &str) -> (String, Duration) {
    let t = Instant::now();
    let out = cri
        .exec_sync(pb::ExecSyncRequest {
            container_id: id.to_string(),
            cmd: vec!["cat".into(), FILE.into()],
            timeout: 5,
        })
        .await
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    (out, t.elapsed())
}

/// Polls until the container shows `value`; how long from `t0`, None
/// after `limit`.
async fn wait_value(
    cri: &RuntimeClient,
    id: &str,
    value: &str,
    t0: Instant,
    limit: Duration,
    rtt: &mut Vec<Duration>,
) -> Option<Duration> {
    loop {
        let (seen, took) = read_value(cri, id).await;
        rtt.push(took);
        if seen == value {
            return Some(t0.elapsed());
        }
        if t0.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `n` edits, one after the other, each polled until visible; the first
/// value must already show.
async fn edit_series(
    cri: &RuntimeClient,
    id: &str,
    editor: &Editor<'_>,
    first: &str,
    n: usize,
    limit: Duration,
    tag: &str,
) -> Result<Edits> {
    let mut e = Edits::default();
    let mut rtt = Vec::new();
    if wait_value(
        cri,
        id,
        first,
        Instant::now(),
        Duration::from_secs(60),
        &mut rtt,
    )
    .await
    .is_none()
    {
        bail!(
            "{tag}: the container does not show the first value {first:?}: {:?}",
            read_value(cri, id).await.0
        );
    }
    for i in 0..n {
        // A pause between edits, with a varying offset, so an edit does not
        // land at the same phase of anything periodic each time.
        tokio::time::sleep(Duration::from_millis(1000 + 137 * (i as u64 % 7))).await;
        let value = format!("{tag}-edit-{i}");
        let t0 = Instant::now();
        editor.edit(&value).await?;
        let calls = e.exec_rtt.len();
        let l = wait_value(cri, id, &value, t0, limit, &mut e.exec_rtt).await;
        e.polls.push(e.exec_rtt.len() - calls);
        eprintln!(
            "object-volumes: {tag} edit {}: {}",
            i + 1,
            l.map_or("not seen".to_string(), |d| format!("{:.0} ms", ms(d)))
        );
        e.latency.push(l);
    }
    Ok(e)
}

// The cross-process lock is held for the whole run on purpose.
#[allow(clippy::await_holding_lock)]
pub async fn run(args: &[String]) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let parts: String = flag(args, "--parts", "standalone,joined,go,cost".to_string())?;
    let opts = Opts {
        edits: flag(args, "--edits", if quick { 3 } else { 10 })?,
        go_samples: flag(args, "--go-samples", 1)?,
        pods: flag(args, "--pods", if quick { 30 } else { 110 })?,
        idle: Duration::from_secs(flag(args, "--idle", if quick { 20 } else { 60 })?),
        settle: Duration::from_secs(flag(args, "--settle", 10)?),
        parts: parts.split(',').map(|s| s.trim().to_string()).collect(),
    };
    for p in &opts.parts {
        if !["standalone", "joined", "go", "cost"].contains(&p.as_str()) {
            bail!("--parts: standalone, joined, go or cost, not {p:?}");
        }
    }
    let mut go_bin = gokubelet::binary();
    if go_bin.is_none() && opts.wants("go") {
        eprintln!(
            "object-volumes: no Go kubelet built (tests/env/control-plane build); berth only"
        );
    }
    if !opts.wants("go") {
        go_bin = None;
    }

    let joined = opts.wants("joined") || opts.wants("go") || opts.wants("cost");
    let Setup { cri, kube, _one } = setup("object-volumes", joined, go_bin.as_deref()).await?;
    println!(
        "{} edits per berth series, {} for the Go kubelet (polled up to {} s), ExecSync `cat {FILE}` every {} ms; cost at {} pods, settle {} s, idle window {} s",
        opts.edits,
        opts.go_samples,
        GO_LIMIT.as_secs(),
        POLL.as_millis(),
        opts.pods,
        opts.settle.as_secs(),
        opts.idle.as_secs()
    );

    let mut standalone = None;
    if opts.wants("standalone") {
        eprintln!("object-volumes: standalone berth ...");
        standalone = Some(standalone_edits(&cri, &opts).await?);
    }
    let mut berth_joined = None;
    let mut go_joined = None;
    let mut costs = Vec::new();
    if let Some(kube) = &kube {
        if opts.wants("joined") {
            eprintln!("object-volumes: joined berth, edits ...");
            berth_joined = Some(joined_edits(kube, &cri, None, opts.edits, BERTH_LIMIT).await?);
        }
        if let Some(bin) = &go_bin {
            eprintln!("object-volumes: joined Go kubelet, edits ...");
            let r = joined_edits(kube, &cri, Some(bin), opts.go_samples, GO_LIMIT).await;
            go_joined = Some(r?);
        }
        if opts.wants("cost") {
            for objects in [false, true] {
                eprintln!(
                    "object-volumes: joined berth, {} pods {} object volumes ...",
                    opts.pods,
                    if objects { "with" } else { "without" }
                );
                let c = cost(kube, &cri, &opts, objects).await?;
                eprintln!(
                    "object-volumes: {} pods {}: all Ready {:.1} s, RSS {:.1} MiB, idle CPU {:.2} %",
                    c.pods,
                    if objects { "with objects" } else { "bare" },
                    c.all_ready.as_secs_f64(),
                    c.rss_mib,
                    c.idle_cpu_pct
                );
                costs.push(c);
            }
        }
    }
    report(
        &opts,
        standalone.as_ref(),
        berth_joined.as_ref(),
        go_joined.as_ref(),
        &costs,
    );
    let left = std::process::Command::new("pgrep")
        .args(["-f", "bin/kubelet"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    if !left.is_empty() {
        eprintln!("object-volumes: WARNING: a Go kubelet still runs: {left}");
    }
    Ok(())
}

/// Standalone berth: the ConfigMap's file edited `opts.edits` times.
async fn standalone_edits(cri: &RuntimeClient, opts: &Opts) -> Result<Edits> {
    let mut b = Berth::new();
    b.rust_log = "info".into();
    b.write_manifest("cfg.yaml", &standalone_configmap("first"));
    b.write_manifest("app.yaml", &standalone_pod());
    b.start();
    let pod = format!("objbench-{}", b.node);
    let measured = async {
        let id = wait_container(cri, "default", &pod, Duration::from_secs(120), || {
            test_support::berth::tail(&b.log(), 40)
        })
        .await?;
        edit_series(
            cri,
            &id,
            &Editor::File(&b),
            "first",
            opts.edits,
            BERTH_LIMIT,
            "standalone",
        )
        .await
    }
    .await;
    // Remove the pod through berth, then stop it.
    let _ = std::fs::remove_file(b.manifests().join("app.yaml"));
    let t = Instant::now();
    while !b.runtime_sandboxes(cri).await.is_empty() && t.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = keep_log(&b.log_file(), &b.node);
    b.stop();
    let mut e = measured?;
    e.node = b.node.clone();
    e.log = log;
    Ok(e)
}

fn keep_log(from: &Path, node: &str) -> PathBuf {
    let dir = PathBuf::from("/tmp/berth-bench-object-volumes");
    let _ = std::fs::create_dir_all(&dir);
    let kept = dir.join(format!("{node}.log"));
    let _ = std::fs::copy(from, &kept);
    kept
}

/// A joined kubelet with the edit pod; `n` edits through the apiserver.
async fn joined_edits(
    kube: &Client,
    cri: &RuntimeClient,
    go: Option<&Path>,
    n: usize,
    limit: Duration,
) -> Result<Edits> {
    let who = if go.is_some() { "go" } else { "berth" };
    let tag = format!("{who}-edits-{}", std::process::id());
    let ns = format!("objbench-{tag}");
    create_namespace(kube, &ns).await?;
    let cms: Api<ConfigMap> = Api::namespaced(kube.clone(), &ns);
    cms.create(&PostParams::default(), &configmap(CM, "first")?)
        .await?;
    let (running, node) = match join(kube, go, &tag, &Default::default()).await {
        Ok(r) => r,
        Err(e) => {
            let _ = Api::<k8s_openapi::api::core::v1::Namespace>::all(kube.clone())
                .delete(&ns, &Default::default())
                .await;
            return Err(e);
        }
    };
    let measured = async {
        let pods: Api<Pod> = Api::namespaced(kube.clone(), &ns);
        let created = pods
            .create(&PostParams::default(), &joined_pod(&node)?)
            .await?;
        wait_pod_ready(&pods, &created, &running).await?;
        let id = wait_container(cri, &ns, "objbench", Duration::from_secs(30), || {
            running.log_tail()
        })
        .await?;
        edit_series(cri, &id, &Editor::Api(&cms), "first", n, limit, who).await
    }
    .await;
    let cleaned = clean_up(kube, cri, &ns, &node, running, Duration::from_secs(180)).await;
    let _ = std::fs::remove_dir_all(creds_dir(&tag));
    let mut e = measured?;
    e.log = cleaned?;
    e.node = node;
    Ok(e)
}

/// Creates `items` through `api`, 10 at a time.
async fn create_all<K>(api: &Api<K>, items: Vec<K>) -> Result<()>
where
    K: Clone + std::fmt::Debug,
    Api<K>: Creates<K>,
{
    let results: Vec<Result<(), kube::Error>> = futures_util::stream::iter(items)
        .map(|obj| {
            let api = api.clone();
            async move { api.create_one(obj).await }
        })
        .buffer_unordered(10)
        .collect()
        .await;
    for r in results {
        r?;
    }
    Ok(())
}

/// [`Api::create`] for the kinds the cost phases create (naming serde's
/// bounds would need serde as a dependency).
trait Creates<K> {
    async fn create_one(&self, obj: K) -> Result<(), kube::Error>;
}

macro_rules! creates {
    ($($k:ty),*) => {$(
        impl Creates<$k> for Api<$k> {
            async fn create_one(&self, obj: $k) -> Result<(), kube::Error> {
                self.create(&PostParams::default(), &obj).await.map(|_| ())
            }
        }
    )*};
}
creates!(ConfigMap, Secret, Pod);

/// Watches the namespace's pods until `n` are Ready; relists when a watch
/// ends; fails after `limit`.
async fn wait_all_ready(
    pods: &Api<Pod>,
    n: usize,
    limit: Duration,
    running: &Running,
) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let list = pods.list(&Default::default()).await?;
        let mut ready: HashSet<String> = list
            .items
            .iter()
            .filter(|p| pod_ready(p))
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        if ready.len() >= n {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!(
                "{} of {n} pods Ready after {limit:?}\n--- kubelet log ---\n{}",
                ready.len(),
                running.log_tail()
            );
        }
        let rv = list.metadata.resource_version.unwrap_or_default();
        let wp = WatchParams::default().timeout(left.as_secs().clamp(1, 290) as u32);
        let mut events = pods.watch(&wp, &rv).await?.boxed();
        while let Some(e) = events.try_next().await? {
            match e {
                WatchEvent::Added(p) | WatchEvent::Modified(p) => {
                    let name = p.metadata.name.clone().unwrap_or_default();
                    if pod_ready(&p) {
                        ready.insert(name);
                    } else {
                        ready.remove(&name);
                    }
                }
                WatchEvent::Deleted(p) => {
                    ready.remove(&p.metadata.name.clone().unwrap_or_default());
                }
                WatchEvent::Error(_) => break,
                _ => {}
            }
            if ready.len() >= n {
                return Ok(());
            }
        }
    }
}

/// Open WATCH requests on `resource` (cluster-wide) in /metrics.
fn open_watches(metrics: &str, resource: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("apiserver_longrunning_requests{"))
        .filter(|l| label(l, "verb") == "WATCH" && label(l, "resource") == resource)
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// One cost phase on a fresh joined berth.
async fn cost(kube: &Client, cri: &RuntimeClient, opts: &Opts, objects: bool) -> Result<Cost> {
    let tag = format!(
        "cost-{}-{}",
        if objects { "objects" } else { "bare" },
        std::process::id()
    );
    let ns = format!("objbench-{tag}");
    create_namespace(kube, &ns).await?;
    if objects {
        let cms: Api<ConfigMap> = Api::namespaced(kube.clone(), &ns);
        let secrets: Api<Secret> = Api::namespaced(kube.clone(), &ns);
        create_all(
            &cms,
            (0..opts.pods)
                .map(|i| configmap(&format!("cm-{i}"), &format!("value-{i}")))
                .collect::<Result<_>>()?,
        )
        .await?;
        create_all(
            &secrets,
            (0..opts.pods)
                .map(|i| secret(&format!("sec-{i}"), &format!("token-{i}")))
                .collect::<Result<_>>()?,
        )
        .await?;
    }
    let (running, node) = match join(kube, None, &tag, &Default::default()).await {
        Ok(r) => r,
        Err(e) => {
            let _ = Api::<k8s_openapi::api::core::v1::Namespace>::all(kube.clone())
                .delete(&ns, &Default::default())
                .await;
            return Err(e);
        }
    };
    let measured = async {
        let nodes: Api<Node> = Api::all(kube.clone());
        let allocatable = nodes
            .get(&node)
            .await?
            .status
            .and_then(|s| s.allocatable)
            .and_then(|a| a.get("pods").map(|q| q.0.clone()))
            .unwrap_or_default();
        if allocatable.parse::<usize>().is_ok_and(|a| a < opts.pods) {
            bail!(
                "node {node} allows {allocatable} pods, fewer than {}",
                opts.pods
            );
        }
        let pid = running.pid();
        let pods: Api<Pod> = Api::namespaced(kube.clone(), &ns);
        let cpu0 = stat_cpu_seconds(pid, false);
        let t = Instant::now();
        create_all(
            &pods,
            (0..opts.pods)
                .map(|i| cost_pod(i, &node, objects))
                .collect::<Result<_>>()?,
        )
        .await?;
        wait_all_ready(&pods, opts.pods, Duration::from_secs(600), &running).await?;
        let all_ready = t.elapsed();
        let start_cpu_s = stat_cpu_seconds(pid, false) - cpu0;
        tokio::time::sleep(opts.settle).await;
        let rss_mib = status_mib(pid, "VmRSS:");
        let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|d| d.count())
            .unwrap_or(0);
        let before = metrics().await?;
        let t = Instant::now();
        let cpu = cpu_seconds_over(pid, opts.idle).await;
        let after = metrics().await?;
        let per_min = 60.0 / t.elapsed().as_secs_f64();
        let node_rpm = NODE_SCHEMAS
            .iter()
            .map(|s| {
                let key =
                    format!("apiserver_flowcontrol_dispatched_requests_total{{flow_schema=\"{s}\"");
                (sum_prefix(&after, &key) - sum_prefix(&before, &key)) * per_min
            })
            .sum();
        let hwm_mib = status_mib(pid, "VmHWM:");
        Ok(Cost {
            objects,
            node: node.clone(),
            pods: opts.pods,
            allocatable,
            all_ready,
            start_cpu_s,
            rss_mib,
            hwm_mib,
            threads,
            idle_cpu_pct: cpu / opts.idle.as_secs_f64() * 100.0,
            node_rpm,
            watches: (
                open_watches(&after, "configmaps"),
                open_watches(&after, "secrets"),
            ),
            restarts: restarts(&pods).await?,
            log: PathBuf::new(),
        })
    }
    .await;
    let cleaned = clean_up(kube, cri, &ns, &node, running, Duration::from_secs(600)).await;
    let _ = std::fs::remove_dir_all(creds_dir(&tag));
    let mut c = measured?;
    c.log = cleaned.context("cleaning up the cost phase")?;
    Ok(c)
}

fn secs(d: Option<Duration>, limit: Duration) -> String {
    match d {
        Some(d) => format!("{:.2} s", d.as_secs_f64()),
        None => format!("> {} s", limit.as_secs()),
    }
}

fn report(
    opts: &Opts,
    standalone: Option<&Edits>,
    joined: Option<&Edits>,
    go: Option<&Edits>,
    costs: &[Cost],
) {
    let not_run = "not run".to_string();
    let med = |e: Option<&Edits>, limit: Duration| {
        e.map_or(not_run.clone(), |e| {
            format!("{} (max {})", secs(e.median(), limit), secs(e.max(), limit))
        })
    };
    println!();
    println!("| measure | berth | Go kubelet | target for berth |");
    println!("|---|---|---|---|");
    println!(
        "| ConfigMap edit → visible in the container, standalone (median of {}) | {} | cannot mount ConfigMaps standalone | ≤ 2 s |",
        opts.edits,
        med(standalone, BERTH_LIMIT)
    );
    println!(
        "| ConfigMap edit → visible in the container, joined (median of {} for berth, {} for Go) | {} | {} | ≤ 2 s |",
        opts.edits,
        opts.go_samples,
        med(joined, BERTH_LIMIT),
        if go.is_some() {
            med(go, GO_LIMIT)
        } else {
            not_run.clone()
        }
    );
    let bare = costs.iter().find(|c| !c.objects);
    let with = costs.iter().find(|c| c.objects);
    if let (Some(b), Some(w)) = (bare, with) {
        println!(
            "| RSS joined at {} pods with {} watched objects (without: {:.1} MiB) | {:.1} MiB (+{:.1}) | – | ≤ 20 MB |",
            w.pods,
            2 * w.pods,
            b.rss_mib,
            w.rss_mib,
            w.rss_mib - b.rss_mib
        );
        println!(
            "| idle CPU joined at {} pods with {} watched objects (without: {:.2} %) | {:.2} % ({:+.2}) | – | ≤ 0.3 % of a core |",
            w.pods,
            2 * w.pods,
            b.idle_cpu_pct,
            w.idle_cpu_pct,
            w.idle_cpu_pct - b.idle_cpu_pct
        );
    }
    println!();
    println!("Per series and phase:");
    for (what, e, limit) in [
        ("standalone berth", standalone, BERTH_LIMIT),
        ("joined berth", joined, BERTH_LIMIT),
        ("joined Go kubelet", go, GO_LIMIT),
    ] {
        if let Some(e) = e {
            println!();
            println!(
                "- {what}{} (log: {})",
                if e.node.is_empty() {
                    String::new()
                } else {
                    format!(" as node {}", e.node)
                },
                e.log.display()
            );
            println!("  - edit → visible, ms: {}", e.list(limit));
            println!(
                "  - ExecSyncs until seen, per edit: {}",
                e.polls
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            println!(
                "  - ExecSync `cat` round trip (the resolution, plus the {} ms poll gap): median {:.0} ms over {} calls",
                POLL.as_millis(),
                ms(e.rtt_median()),
                e.exec_rtt.len()
            );
        }
    }
    for c in costs {
        println!();
        println!(
            "- joined berth, {} pods {} as node {} (allocatable pods {}; log: {})",
            c.pods,
            if c.objects {
                "each with its ConfigMap and Secret mounted and an env var from the ConfigMap"
            } else {
                "without object volumes (baseline)"
            },
            c.node,
            c.allocatable,
            c.log.display()
        );
        println!(
            "  - first create → all Ready {:.1} s ({:.1} s of berth CPU); after a {} s settle: VmRSS {:.1} MiB, VmHWM {:.1} MiB (at the end of the window), {} threads",
            c.all_ready.as_secs_f64(),
            c.start_cpu_s,
            opts.settle.as_secs(),
            c.rss_mib,
            c.hwm_mib,
            c.threads
        );
        println!(
            "  - idle CPU {:.2} % over {} s; node requests/min {:.1}; open WATCH requests cluster-wide: configmaps {:.0}, secrets {:.0}; container restarts {}{}",
            c.idle_cpu_pct,
            opts.idle.as_secs(),
            c.node_rpm,
            c.watches.0,
            c.watches.1,
            c.restarts,
            if c.restarts == 0 {
                ""
            } else {
                " (NOT 0: figures suspect)"
            }
        );
    }
}
