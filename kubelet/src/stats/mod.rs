//! The stats provider (the Go kubelet's `pkg/kubelet/stats` with the parts
//! of cadvisor it needs): CPU, memory, pids and filesystem usage per
//! container, per pod and for the node, refreshed every
//! `--housekeeping-interval` and kept in memory for the kubelet API
//! ([`StatsProvider::summary`] does no I/O).
//!
//! Each cycle takes the running pods from the [`PodCache`] (which PLEG's
//! relist fills, so stats never list the runtime), asks the runtime only for
//! ImageFsInfo, then reads cgroup files: the pod cgroup for pod totals, each
//! container's own cgroup for its figures. What cgroupfs can't give (a
//! container's writable layer) comes from ListContainerStats; where a cgroup
//! can't be found the runtime's figures are used instead. The file reads
//! (cgroupfs, /proc, statvfs, the log directory walks) run on one blocking
//! task per cycle, off the async runtime.

pub mod cgroup;
pub mod cri;
pub mod node;
pub mod summary;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use cri_client::RuntimeClient;
use cri_client::proto as pb;

use crate::container::{ContainerState, PodCache, RuntimePod, SandboxState};
use cgroup::{CgroupFiles, CgroupFs, CgroupSample};
use cri::val;
use node::FsInfo;
use summary::{
    ContainerStats, CpuStats, MemoryStats, NodeStats, PodReference, PodStats, ProcessStats,
    RlimitStats, RuntimeStats, Summary, Time,
};

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("the pod cache has not been filled yet (PLEG's first relist is pending)")]
    CacheNotReady,
    #[error("the stats collection task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// What one cycle works from: the pods (from the pod cache) and the
/// runtime's answers.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Every pod the runtime holds, as the pod cache last saw it.
    pub pods: Vec<Arc<RuntimePod>>,
    /// The latest ListContainerStats, by container id (empty until it first
    /// answers).
    pub container_stats: Arc<HashMap<String, pb::ContainerStats>>,
    /// The latest ListPodSandboxStats, by sandbox id, when the runtime
    /// answers it.
    pub sandbox_stats: Option<Arc<HashMap<String, pb::PodSandboxStats>>>,
    /// ImageFsInfo's first image filesystem.
    pub image_fs: Option<pb::FilesystemUsage>,
}

/// What the provider needs from the kubelet's configuration.
#[derive(Clone, Debug)]
pub struct StatsConfig {
    pub node_name: String,
    /// Where container logs live (`<podLogsDir>/<ns>_<name>_<uid>/<container>/`).
    pub pod_logs_dir: PathBuf,
    /// The kubelet's root dir; its filesystem is the node's `fs`.
    pub root_dir: PathBuf,
    /// cgroupRoot: where `kubepods` is.
    pub cgroup_root: String,
    /// `--housekeeping-interval`.
    pub interval: Duration,
    /// `/sys/fs/cgroup`, or a fixture in tests.
    pub cgroup_mount: PathBuf,
    /// `/proc`, or a fixture in tests.
    pub proc_dir: PathBuf,
}

impl StatsConfig {
    pub fn new(node_name: &str, pod_logs_dir: &Path, root_dir: &Path, cgroup_root: &str) -> Self {
        StatsConfig {
            node_name: node_name.to_string(),
            pod_logs_dir: pod_logs_dir.to_path_buf(),
            root_dir: root_dir.to_path_buf(),
            cgroup_root: cgroup_root.to_string(),
            interval: Duration::from_secs(10),
            cgroup_mount: PathBuf::from("/sys/fs/cgroup"),
            proc_dir: PathBuf::from("/proc"),
        }
    }
}

/// What one cycle did, for logs and the benchmark.
#[derive(Clone, Copy, Debug, Default)]
pub struct CycleReport {
    pub pods: usize,
    pub containers: usize,
    /// Time spent in CRI calls (ImageFsInfo, and ContainerStatus for a
    /// container whose cgroup isn't where berth looks).
    pub cri: Duration,
    /// Time spent reading cgroups, /proc and log directories and building
    /// the summary.
    pub reads: Duration,
    /// The whole cycle.
    pub took: Duration,
}

pub struct StatsProvider {
    client: RuntimeClient,
    cache: Arc<PodCache>,
    interval: Duration,
    /// Owned guards of it move into the cycle's blocking task.
    collector: Arc<tokio::sync::Mutex<Collector>>,
    latest: RwLock<Option<Arc<Summary>>>,
    /// The runtime's latest stats answers, refreshed off the cycle's path.
    runtime: RwLock<RuntimeAnswers>,
    /// Set by a cycle that found a pod without a pod cgroup: only then is
    /// ListPodSandboxStats worth asking.
    want_sandbox_stats: AtomicBool,
    refresh: tokio::sync::Mutex<RefreshState>,
    noted: std::sync::Mutex<HashSet<&'static str>>,
}

#[derive(Clone, Default)]
struct RuntimeAnswers {
    containers: Arc<HashMap<String, pb::ContainerStats>>,
    sandboxes: Option<Arc<HashMap<String, pb::PodSandboxStats>>>,
}

#[derive(Default)]
struct RefreshState {
    round: u64,
    sandbox_stats_failing: bool,
    sandbox_stats_retry_at: u64,
}

impl StatsProvider {
    /// A provider that reads the running pods from `cache` and asks `client`
    /// only for what the cache can't say.
    pub fn new(
        client: RuntimeClient,
        cache: Arc<PodCache>,
        config: StatsConfig,
    ) -> Arc<StatsProvider> {
        Arc::new(StatsProvider {
            client,
            cache,
            interval: config.interval,
            collector: Arc::new(tokio::sync::Mutex::new(Collector::new(config))),
            latest: RwLock::new(None),
            runtime: RwLock::new(RuntimeAnswers::default()),
            want_sandbox_stats: AtomicBool::new(false),
            refresh: tokio::sync::Mutex::new(RefreshState::default()),
            noted: std::sync::Mutex::new(HashSet::new()),
        })
    }

    /// The latest summary; `None` until the first cycle has finished.
    pub fn summary(&self) -> Option<Arc<Summary>> {
        self.latest.read().ok().and_then(|g| g.clone())
    }

    #[cfg(test)]
    pub(crate) fn set_summary_for_test(&self, s: Summary) {
        if let Ok(mut g) = self.latest.write() {
            *g = Some(Arc::new(s));
        }
    }

    /// Logs `msg` at info the first time `key` comes up, at debug after.
    fn note_once(&self, key: &'static str, msg: &str) {
        let first = self
            .noted
            .lock()
            .map(|mut n| n.insert(key))
            .unwrap_or(false);
        if first {
            tracing::info!("{msg} (noted once)");
        } else {
            tracing::debug!("{msg}");
        }
    }

    /// Asks the runtime for its own stats (ListContainerStats, and
    /// ListPodSandboxStats when a pod has no pod cgroup) and keeps the
    /// answers for the next cycles. These feed container rootfs usage and
    /// stand in for cgroups berth can't find; containerd answers them by
    /// asking every shim, too slowly to sit in the cycle.
    pub async fn refresh_runtime_stats(&self) {
        let mut st = self.refresh.lock().await;
        st.round += 1;
        let containers = match cri::container_stats(&self.client).await {
            Ok(m) => Some(Arc::new(m)),
            Err(e) => {
                self.note_once(
                    "list-container-stats",
                    &format!(
                        "ListContainerStats failed ({e}); container rootfs usage is left out \
                         and containers without a cgroup have no stats"
                    ),
                );
                None
            }
        };
        let mut sandboxes = None;
        if self.want_sandbox_stats.load(Ordering::Relaxed) && st.round >= st.sandbox_stats_retry_at
        {
            match cri::sandbox_stats(&self.client).await {
                Ok(m) => {
                    if st.sandbox_stats_failing {
                        tracing::info!(
                            "ListPodSandboxStats answers again; using it for pods without a pod cgroup"
                        );
                    }
                    st.sandbox_stats_failing = false;
                    sandboxes = Some(Arc::new(m));
                }
                Err(e) => {
                    st.sandbox_stats_failing = true;
                    // containerd 1.6 refuses it while any sandbox lacks a
                    // cgroup parent: try again now and then, not every time.
                    st.sandbox_stats_retry_at = st.round + SANDBOX_STATS_RETRY_ROUNDS;
                    self.note_once(
                        "list-pod-sandbox-stats",
                        &format!(
                            "ListPodSandboxStats failed ({e}); pod totals come from the \
                             containers' cgroups instead"
                        ),
                    );
                }
            }
        }
        if let Ok(mut r) = self.runtime.write() {
            r.containers = containers.unwrap_or_default();
            r.sandboxes = sandboxes;
        }
    }

    /// Collects once and publishes the result. Uses the pods the pod cache
    /// holds and the runtime stats from the last
    /// [`refresh_runtime_stats`](Self::refresh_runtime_stats). Fails, keeping
    /// the previous summary, until PLEG has filled the cache once.
    pub async fn collect(&self) -> Result<CycleReport, StatsError> {
        let started = Instant::now();
        if !self.cache.initialized() {
            return Err(StatsError::CacheNotReady);
        }
        let image_fs = cri::image_fs(&self.client).await;
        let mut cri_time = started.elapsed();
        let mut snap = Snapshot {
            pods: self.cache.pods(),
            image_fs,
            ..Default::default()
        };
        if let Ok(r) = self.runtime.read() {
            snap.container_stats = r.containers.clone();
            snap.sandbox_stats = r.sandboxes.clone();
        }
        let snap = Arc::new(snap);
        let collector = self.collector.clone().lock_owned().await;
        // Steady state is one blocking task; a container whose cgroup isn't
        // where berth looks costs a ContainerStatus and a second one.
        let s = snap.clone();
        let (collector, first) = with_collector(collector, move |c| c.start_cycle(&s)).await?;
        let Built {
            summary,
            lacks_cgroup,
            reads,
        } = match first {
            Ok(built) => built,
            Err(lookups) => {
                let t = Instant::now();
                let pids = futures_util::future::join_all(
                    lookups
                        .iter()
                        .map(|id| cri::container_pid(&self.client, id)),
                )
                .await;
                cri_time += t.elapsed();
                let learned: Vec<_> = lookups.into_iter().zip(pids).collect();
                with_collector(collector, move |c| c.finish_cycle(&snap, learned))
                    .await?
                    .1
            }
        };
        self.want_sandbox_stats
            .store(lacks_cgroup, Ordering::Relaxed);
        let report = CycleReport {
            pods: summary.pods.len(),
            containers: summary.pods.iter().map(|p| p.containers.len()).sum(),
            cri: cri_time,
            reads,
            took: started.elapsed(),
        };
        if let Ok(mut g) = self.latest.write() {
            *g = Some(Arc::new(summary));
        }
        Ok(report)
    }

    /// Collects every interval until the task is dropped, with the
    /// runtime's stats refreshed on a task of their own (spawned once). A
    /// failed cycle keeps the previous summary; failures are logged when
    /// they start and when they stop, not every cycle.
    pub async fn run(self: Arc<Self>) {
        let me = self.clone();
        let refresher = tokio::spawn(async move {
            let mut tick = tokio::time::interval(me.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                me.refresh_runtime_stats().await;
            }
        });
        // Ends the refresher when this task is dropped.
        let _refresher = AbortOnDrop(refresher);
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            match self.collect().await {
                Ok(r) => {
                    if failing {
                        tracing::info!("stats collection works again");
                    }
                    failing = false;
                    tracing::trace!(pods = r.pods, took = ?r.took, cri = ?r.cri, "stats collected");
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(
                            "collecting stats: {e}; /stats/summary keeps the last figures"
                        );
                    }
                    failing = true;
                }
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `f` on the collector on a blocking thread (it reads files), handing
/// the lock back with the result.
async fn with_collector<T: Send + 'static>(
    mut guard: tokio::sync::OwnedMutexGuard<Collector>,
    f: impl FnOnce(&mut Collector) -> T + Send + 'static,
) -> Result<(tokio::sync::OwnedMutexGuard<Collector>, T), tokio::task::JoinError> {
    tokio::task::spawn_blocking(move || {
        let r = f(&mut guard);
        (guard, r)
    })
    .await
}

/// What a cycle's file reads produced.
struct Built {
    summary: Summary,
    /// Some reported pod has no pod cgroup (ListPodSandboxStats may help).
    lacks_cgroup: bool,
    /// Time the reads and the summary took.
    reads: Duration,
}

/// After ListPodSandboxStats fails, refreshes to skip before trying again.
const SANDBOX_STATS_RETRY_ROUNDS: u64 = 30;
/// ContainerStatus lookups (for containers whose cgroup isn't at a known
/// place) per cycle, so a runtime without host cgroups can't make a cycle
/// slow.
const MAX_PID_LOOKUPS: usize = 32;

/// Which clock a CPU sample's time is on: ours (monotonic) or the runtime's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Clock {
    Local,
    Runtime,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CpuSample {
    clock: Clock,
    at_ns: u64,
    usage_ns: u64,
}

/// CPU usage in nanocores between two samples of one counter, as cadvisor:
/// none for the first sample, after a counter reset, or across clocks.
fn nano_cores(prev: Option<&CpuSample>, cur: &CpuSample) -> Option<u64> {
    let prev = prev?;
    if prev.clock != cur.clock || cur.usage_ns < prev.usage_ns || cur.at_ns <= prev.at_ns {
        return None;
    }
    let used = u128::from(cur.usage_ns - prev.usage_ns);
    let elapsed = u128::from(cur.at_ns - prev.at_ns);
    u64::try_from(used * 1_000_000_000 / elapsed).ok()
}

/// Cycle-to-cycle state, and the code that reads cgroups and builds the
/// summary (everything but the CRI calls, so tests drive it with fixtures).
struct Collector {
    config: StatsConfig,
    cgroups: CgroupFs,
    buf: Vec<u8>,
    epoch: Instant,
    /// Container (and sandbox) id → its cgroup, or `None` when it has none
    /// the provider can find.
    container_cgroups: HashMap<String, Option<String>>,
    /// Pod UID → the pod's cgroup.
    pod_cgroups: HashMap<String, String>,
    /// Last CPU sample per container id, `pod/<uid>` and `node`.
    cpu: HashMap<String, CpuSample>,
    /// Open counter files by cgroup, re-read every cycle.
    files: HashMap<String, CgroupFiles>,
    /// Descriptors `files` holds, and how many it may hold.
    fds_open: usize,
    fd_budget: usize,
}

/// How many descriptors the stats may keep open: half of what the soft
/// RLIMIT_NOFILE leaves after 512 for everything else (none when it can't
/// be read; cgroups are then opened on every read).
fn fd_budget() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next())
        .map_or(Some(0), |v| {
            if v == "unlimited" {
                Some(usize::MAX)
            } else {
                v.parse().ok()
            }
        })
        .unwrap_or(0);
    soft.saturating_sub(512) / 2
}

/// One pod to report: its newest ready sandbox and, per container name,
/// the newest running instance in that sandbox (sorted by name).
struct PodView<'a> {
    pod: &'a RuntimePod,
    sandbox: &'a SandboxState,
    containers: Vec<&'a ContainerState>,
}

impl PodView<'_> {
    fn pod_ref(&self) -> PodReference {
        PodReference {
            name: self.pod.name.clone(),
            namespace: self.pod.namespace.clone(),
            uid: self.pod.uid.clone(),
        }
    }
}

/// The pods to report, by namespace and name: those with a ready sandbox (a
/// pod whose sandbox is being replaced briefly has two; the newest counts).
fn pod_views(snap: &Snapshot) -> Vec<PodView<'_>> {
    let mut views: Vec<PodView<'_>> = snap
        .pods
        .iter()
        .filter(|p| !p.uid.is_empty())
        .filter_map(|p| {
            let sandbox = p
                .sandboxes
                .iter()
                .filter(|s| s.ready)
                .max_by_key(|s| (s.created_at, s.attempt))?;
            let mut containers: Vec<&ContainerState> = Vec::new();
            for c in p
                .containers
                .iter()
                .filter(|c| c.is_running() && c.sandbox_id == sandbox.id)
            {
                match containers.iter_mut().find(|o| o.name() == c.name()) {
                    Some(o) if o.created_at >= c.created_at => {}
                    Some(o) => *o = c,
                    None => containers.push(c),
                }
            }
            containers.sort_by(|a, b| a.name().cmp(b.name()));
            Some(PodView {
                pod: p,
                sandbox,
                containers,
            })
        })
        .collect();
    views.sort_by(|a, b| (&a.pod.namespace, &a.pod.name).cmp(&(&b.pod.namespace, &b.pod.name)));
    views
}

impl Collector {
    fn new(config: StatsConfig) -> Collector {
        let cgroups = CgroupFs::detect(&config.cgroup_mount);
        Collector {
            config,
            cgroups,
            buf: Vec::with_capacity(8192),
            epoch: Instant::now(),
            container_cgroups: HashMap::new(),
            pod_cgroups: HashMap::new(),
            cpu: HashMap::new(),
            files: HashMap::new(),
            fds_open: 0,
            fd_budget: fd_budget(),
        }
    }

    /// Finds the pod cgroup of each pod and the cgroup of each container
    /// (and sandbox) not seen before. Returns the ids to look up by pid.
    fn resolve_cgroups(&mut self, snap: &Snapshot) -> Vec<String> {
        let pods = pod_views(snap);
        // Forget what is gone.
        let live: HashSet<&str> = pods
            .iter()
            .flat_map(|v| {
                std::iter::once(v.sandbox.id.as_str())
                    .chain(v.containers.iter().map(|c| c.id.as_str()))
            })
            .collect();
        self.container_cgroups
            .retain(|id, _| live.contains(id.as_str()));
        let uids: HashSet<&str> = pods.iter().map(|v| v.pod.uid.as_str()).collect();
        self.pod_cgroups
            .retain(|uid, _| uids.contains(uid.as_str()));
        // Close the files of cgroups no longer read.
        let read: HashSet<&str> = self
            .pod_cgroups
            .values()
            .chain(self.container_cgroups.values().flatten())
            .map(String::as_str)
            .chain(std::iter::once("/"))
            .collect();
        let fds_open = &mut self.fds_open;
        self.files.retain(|cg, f| {
            let keep = read.contains(cg.as_str());
            if !keep {
                *fds_open = fds_open.saturating_sub(f.open_count());
            }
            keep
        });

        let mut lookups = Vec::new();
        for v in &pods {
            let uid = &v.pod.uid;
            if !self.pod_cgroups.contains_key(uid) {
                let found = cgroup::pod_cgroup_candidates(&self.config.cgroup_root, uid)
                    .into_iter()
                    .find(|c| self.cgroups.exists(c));
                if let Some(c) = found {
                    self.pod_cgroups.insert(uid.clone(), c);
                }
            }
            let pod_cg = self.pod_cgroups.get(uid).cloned();
            let ids = std::iter::once(v.sandbox.id.as_str())
                .chain(v.containers.iter().map(|c| c.id.as_str()));
            for id in ids {
                if self.container_cgroups.contains_key(id) {
                    continue;
                }
                let mut candidates: Vec<String> = Vec::with_capacity(3);
                if let Some(p) = &pod_cg {
                    candidates.push(format!("{p}/{id}"));
                }
                candidates.extend(cgroup::default_container_cgroups(id));
                match candidates.into_iter().find(|c| self.cgroups.exists(c)) {
                    Some(c) => {
                        self.container_cgroups.insert(id.to_string(), Some(c));
                    }
                    None if lookups.len() < MAX_PID_LOOKUPS => lookups.push(id.to_string()),
                    None => {}
                }
            }
        }
        lookups
    }

    /// Records a container's cgroup from its process's /proc/<pid>/cgroup.
    fn learn_pid(&mut self, id: &str, pid: Option<u32>) {
        let cg = pid.and_then(|pid| {
            let path = self.config.proc_dir.join(pid.to_string()).join("cgroup");
            let text = std::fs::read_to_string(path).ok()?;
            let cg = self.cgroups.cgroup_of_process(&text)?.to_string();
            self.cgroups.exists(&cg).then_some(cg)
        });
        if cg.is_none() {
            tracing::debug!(
                container = id,
                "no cgroup found for the container; using the runtime's stats for it"
            );
        }
        self.container_cgroups.insert(id.to_string(), cg);
    }

    fn some_pod_lacks_a_cgroup(&self, snap: &Snapshot) -> bool {
        pod_views(snap)
            .iter()
            .any(|v| !self.pod_cgroups.contains_key(&v.pod.uid))
    }

    /// A cycle's file work: finds new cgroups, then reads everything and
    /// builds the summary, unless some container's cgroup needs its pid
    /// (`Err` with the ids to look up; then [`Self::finish_cycle`]).
    fn start_cycle(&mut self, snap: &Snapshot) -> Result<Built, Vec<String>> {
        let started = Instant::now();
        let lookups = self.resolve_cgroups(snap);
        if !lookups.is_empty() {
            return Err(lookups);
        }
        Ok(self.finish(snap, started))
    }

    /// Records the looked-up pids' cgroups, then reads and builds.
    fn finish_cycle(&mut self, snap: &Snapshot, learned: Vec<(String, Option<u32>)>) -> Built {
        let started = Instant::now();
        for (id, pid) in learned {
            self.learn_pid(&id, pid);
        }
        self.finish(snap, started)
    }

    fn finish(&mut self, snap: &Snapshot, started: Instant) -> Built {
        let lacks_cgroup = self.some_pod_lacks_a_cgroup(snap);
        let summary = self.build(snap);
        Built {
            summary,
            lacks_cgroup,
            reads: started.elapsed(),
        }
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Reads a cgroup, through its open files while the descriptor budget
    /// allows. A failed read closes them; callers forget where the cgroup
    /// was so the next cycle looks again.
    fn read_cgroup(&mut self, cg: &str, want_pids: bool) -> Option<(CgroupSample, u64)> {
        let r = match self.files.get_mut(cg) {
            Some(files) => {
                let before = files.open_count();
                let r = self.cgroups.read_with(cg, files, &mut self.buf, want_pids);
                let after = if r.is_ok() { files.open_count() } else { 0 };
                self.fds_open = (self.fds_open + after).saturating_sub(before);
                if r.is_err() {
                    self.files.remove(cg);
                }
                r
            }
            None => {
                let mut files = CgroupFiles::default();
                let r = self
                    .cgroups
                    .read_with(cg, &mut files, &mut self.buf, want_pids);
                let n = files.open_count();
                if r.is_ok() && self.fds_open + n <= self.fd_budget {
                    self.fds_open += n;
                    self.files.insert(cg.to_string(), files);
                }
                r
            }
        };
        r.ok().map(|s| (s, self.now_ns()))
    }

    fn cpu_stats(
        &self,
        next: &mut HashMap<String, CpuSample>,
        key: String,
        time: Time,
        sample: Option<CpuSample>,
    ) -> Option<CpuStats> {
        let s = sample?;
        let rate = nano_cores(self.cpu.get(&key), &s);
        next.insert(key, s);
        Some(CpuStats {
            time,
            usage_nano_cores: rate,
            usage_core_nano_seconds: Some(s.usage_ns),
        })
    }

    fn build(&mut self, snap: &Snapshot) -> Summary {
        let now = Time::now();
        let mut next_cpu: HashMap<String, CpuSample> = HashMap::with_capacity(self.cpu.len());
        let root_fs =
            node::fs_info(&self.config.root_dir).or_else(|| node::fs_info(Path::new("/")));
        let logs_fs = node::fs_info(&self.config.pod_logs_dir).or(root_fs);
        let mut mount_fs: HashMap<String, Option<FsInfo>> = HashMap::new();

        let node = self.node_stats(now, &mut next_cpu, root_fs, snap, &mut mount_fs);

        let mut pods = Vec::new();
        for v in pod_views(snap) {
            let pref = v.pod_ref();
            let sb = v.sandbox;
            let mut p = PodStats {
                pod_ref: pref.clone(),
                start_time: Time::from_unix_nanos(sb.created_at),
                ..Default::default()
            };
            // Pod totals from the containers' cgroups when there's no pod
            // cgroup: the sandbox (pause) container counts too.
            let has_pod_cgroup = self.pod_cgroups.contains_key(&pref.uid);
            let mut summed: Option<(CgroupSample, u64)> = None;
            if !has_pod_cgroup {
                summed = self.container_sample(&sb.id, true);
            }
            let (mut eph_used, mut eph_inodes) = (0u64, 0u64);
            for c in &v.containers {
                let name = c.name().to_string();
                let mut cs = ContainerStats {
                    name: name.clone(),
                    start_time: Time::from_unix_nanos(c.created_at),
                    ..Default::default()
                };
                let cri_stats = snap.container_stats.get(&c.id);
                // Containers' pids only count toward a pod summed from them.
                match self.container_sample(&c.id, !has_pod_cgroup) {
                    Some((s, at)) => {
                        cs.cpu = self.cpu_stats(
                            &mut next_cpu,
                            c.id.clone(),
                            now,
                            s.cpu_usage_ns.map(|u| CpuSample {
                                clock: Clock::Local,
                                at_ns: at,
                                usage_ns: u,
                            }),
                        );
                        cs.memory = Some(memory_stats(now, &s, s.memory_limit));
                        if !has_pod_cgroup {
                            match &mut summed {
                                Some((sum, _)) => sum.add(&s),
                                None => summed = Some((s, at)),
                            }
                        }
                    }
                    None => {
                        // No cgroup: the runtime's own figures.
                        if let Some(st) = cri_stats {
                            cs.cpu = st.cpu.and_then(|cpu| {
                                let usage = val(cpu.usage_core_nano_seconds)?;
                                self.cpu_stats(
                                    &mut next_cpu,
                                    c.id.clone(),
                                    Time::from_unix_nanos(cpu.timestamp),
                                    Some(CpuSample {
                                        clock: Clock::Runtime,
                                        at_ns: u64::try_from(cpu.timestamp).unwrap_or(0),
                                        usage_ns: usage,
                                    }),
                                )
                            });
                            cs.memory = st.memory.map(cri_memory);
                        }
                        tracing::debug!(pod = %format!("{}/{}", pref.namespace, pref.name), uid = %pref.uid,
                            container = %name, "no cgroup for the container; runtime figures used");
                    }
                }
                if let Some(wl) = cri_stats.and_then(|s| s.writable_layer.as_ref()) {
                    let mp = wl
                        .fs_id
                        .as_ref()
                        .map(|f| f.mountpoint.clone())
                        .unwrap_or_default();
                    let info = *mount_fs.entry(mp.clone()).or_insert_with(|| {
                        (!mp.is_empty())
                            .then(|| node::fs_info(Path::new(&mp)))
                            .flatten()
                    });
                    let used = val(wl.used_bytes).unwrap_or(0);
                    let inodes = val(wl.inodes_used).unwrap_or(0);
                    eph_used += used;
                    eph_inodes += inodes;
                    cs.rootfs = Some(FsInfo::part(info.as_ref(), now, used, inodes));
                }
                let log_dir = self
                    .config
                    .pod_logs_dir
                    .join(format!("{}_{}_{}", pref.namespace, pref.name, pref.uid))
                    .join(&name);
                if let Some((used, inodes)) = node::disk_usage(&log_dir) {
                    eph_used += used;
                    eph_inodes += inodes;
                    cs.logs = Some(FsInfo::part(logs_fs.as_ref(), now, used, inodes));
                }
                p.containers.push(cs);
            }
            p.ephemeral_storage = Some(FsInfo::part(root_fs.as_ref(), now, eph_used, eph_inodes));

            let pod_key = format!("pod/{}", pref.uid);
            let pod_cg = self.pod_cgroups.get(&pref.uid).cloned();
            let pod_sample = match pod_cg.as_deref().and_then(|cg| self.read_cgroup(cg, true)) {
                Some(s) => Some(s),
                None => {
                    if pod_cg.is_some() {
                        self.pod_cgroups.remove(&pref.uid);
                    }
                    None
                }
            };
            let from_runtime = snap
                .sandbox_stats
                .as_deref()
                .and_then(|m| m.get(&sb.id))
                .and_then(|s| s.linux.as_ref());
            match (pod_sample, from_runtime) {
                (Some((s, at)), _) => {
                    self.pod_from_sample(&mut p, &mut next_cpu, pod_key, now, &s, at)
                }
                (None, Some(l)) => {
                    p.cpu = l.cpu.and_then(|cpu| {
                        let usage = val(cpu.usage_core_nano_seconds)?;
                        self.cpu_stats(
                            &mut next_cpu,
                            pod_key,
                            Time::from_unix_nanos(cpu.timestamp),
                            Some(CpuSample {
                                clock: Clock::Runtime,
                                at_ns: u64::try_from(cpu.timestamp).unwrap_or(0),
                                usage_ns: usage,
                            }),
                        )
                    });
                    p.memory = l.memory.map(cri_memory);
                    p.process_stats = l.process.map(|pr| ProcessStats {
                        process_count: val(pr.process_count),
                    });
                }
                (None, None) => {
                    if let Some((s, at)) = summed {
                        self.pod_from_sample(&mut p, &mut next_cpu, pod_key, now, &s, at);
                    }
                }
            }
            pods.push(p);
        }
        self.cpu = next_cpu;
        Summary { node, pods }
    }

    fn container_sample(&mut self, id: &str, want_pids: bool) -> Option<(CgroupSample, u64)> {
        let cg = self.container_cgroups.get(id).cloned().flatten()?;
        let r = self.read_cgroup(&cg, want_pids);
        if r.is_none() {
            // Moved or gone: look again next cycle.
            self.container_cgroups.remove(id);
        }
        r
    }

    fn pod_from_sample(
        &self,
        p: &mut PodStats,
        next_cpu: &mut HashMap<String, CpuSample>,
        key: String,
        now: Time,
        s: &CgroupSample,
        at: u64,
    ) {
        p.cpu = self.cpu_stats(
            next_cpu,
            key,
            now,
            s.cpu_usage_ns.map(|u| CpuSample {
                clock: Clock::Local,
                at_ns: at,
                usage_ns: u,
            }),
        );
        p.memory = Some(memory_stats(now, s, s.memory_limit));
        p.process_stats = s.pids.map(|n| ProcessStats {
            process_count: Some(n),
        });
    }

    fn node_stats(
        &mut self,
        now: Time,
        next_cpu: &mut HashMap<String, CpuSample>,
        root_fs: Option<FsInfo>,
        snap: &Snapshot,
        mount_fs: &mut HashMap<String, Option<FsInfo>>,
    ) -> NodeStats {
        let proc_dir = self.config.proc_dir.clone();
        let stat = cgroup::read_into(&proc_dir.join("stat"), &mut self.buf)
            .map(node::parse_proc_stat)
            .unwrap_or_default();
        let meminfo = cgroup::read_into(&proc_dir.join("meminfo"), &mut self.buf)
            .map(node::parse_meminfo)
            .unwrap_or_default();
        // The root cgroup, as cadvisor's "/" container; v2's root has no
        // memory files, so memory then comes from /proc/meminfo.
        let root = if self.cgroups.is_v2() {
            None
        } else {
            self.read_cgroup("/", false)
        };
        let at = self.now_ns();
        let cpu_ns = match &self.cgroups {
            CgroupFs::V1 { .. } => root.and_then(|(s, _)| s.cpu_usage_ns),
            CgroupFs::V2 { root } => cgroup::read_into(&root.join("cpu.stat"), &mut self.buf)
                .ok()
                .and_then(cgroup::parse_v2_cpu_usage_ns),
        }
        .or(stat.busy_ns);
        let cpu = self.cpu_stats(
            next_cpu,
            "node".to_string(),
            now,
            cpu_ns.map(|u| CpuSample {
                clock: Clock::Local,
                at_ns: at,
                usage_ns: u,
            }),
        );
        let capacity = (meminfo.total > 0).then_some(meminfo.total);
        let memory = match root.filter(|(s, _)| s.memory_usage.is_some()) {
            Some((s, _)) => Some(memory_stats(now, &s, capacity)),
            None if meminfo.total > 0 => {
                let (pgfault, pgmajfault) =
                    match cgroup::read_into(&proc_dir.join("vmstat"), &mut self.buf) {
                        Ok(t) => (
                            cgroup::stat_value(t, b"pgfault"),
                            cgroup::stat_value(t, b"pgmajfault"),
                        ),
                        Err(_) => (None, None),
                    };
                let usage = meminfo.total.saturating_sub(meminfo.free);
                let s = CgroupSample {
                    memory_usage: Some(usage),
                    memory_stat: cgroup::MemoryStat {
                        inactive_file: Some(meminfo.inactive_file),
                        rss: Some(meminfo.anon),
                        pgfault,
                        pgmajfault,
                    },
                    ..Default::default()
                };
                Some(memory_stats(now, &s, capacity))
            }
            None => None,
        };
        let image_fs = snap.image_fs.as_ref().map(|f| {
            let mp = f
                .fs_id
                .as_ref()
                .map(|i| i.mountpoint.clone())
                .unwrap_or_default();
            let info = *mount_fs.entry(mp.clone()).or_insert_with(|| {
                (!mp.is_empty())
                    .then(|| node::fs_info(Path::new(&mp)))
                    .flatten()
            });
            FsInfo::part(
                info.as_ref(),
                now,
                val(f.used_bytes).unwrap_or(0),
                val(f.inodes_used).unwrap_or(0),
            )
        });
        let (max_pid, cur) = node::rlimit(&mut self.buf);
        NodeStats {
            node_name: self.config.node_name.clone(),
            system_containers: Vec::new(),
            start_time: Time::from_unix_nanos(
                stat.boot_time.unwrap_or(0).saturating_mul(1_000_000_000),
            ),
            cpu,
            memory,
            fs: root_fs.map(|f| f.whole(now)),
            runtime: Some(RuntimeStats { image_fs }),
            rlimit: Some(RlimitStats {
                time: now,
                max_pid,
                num_of_running_processes: cur,
            }),
        }
    }
}

/// MemoryStats from a cgroup sample; `limit` gives availableBytes (limit −
/// working set), omitted without a limit, as the Go kubelet.
fn memory_stats(time: Time, s: &CgroupSample, limit: Option<u64>) -> MemoryStats {
    let ws = s.working_set();
    MemoryStats {
        time,
        available_bytes: limit.zip(ws).map(|(l, w)| l.saturating_sub(w)),
        usage_bytes: s.memory_usage,
        working_set_bytes: ws,
        rss_bytes: s.memory_stat.rss,
        page_faults: s.memory_stat.pgfault,
        major_page_faults: s.memory_stat.pgmajfault,
    }
}

fn cri_memory(m: pb::MemoryUsage) -> MemoryStats {
    MemoryStats {
        time: Time::from_unix_nanos(m.timestamp),
        // containerd reports 0 when there is no limit: omit it, as for cgroups.
        available_bytes: val(m.available_bytes).filter(|&v| v > 0),
        usage_bytes: val(m.usage_bytes),
        working_set_bytes: val(m.working_set_bytes),
        rss_bytes: val(m.rss_bytes),
        page_faults: val(m.page_faults),
        major_page_faults: val(m.major_page_faults),
    }
}

/// Serializes a summary for `/stats/summary`.
pub fn to_json(s: &Summary) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(s)
}

#[cfg(test)]
mod tests;
