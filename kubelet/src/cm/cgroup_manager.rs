//! The cgroupfs driver (the Go kubelet's `cgroup_manager_linux.go` with its
//! v1 and v2 managers): creates, updates and removes cgroups by name
//! ("kubepods/burstable/pod<uid>", relative to the hierarchy roots).
//!
//! Values are written through cgroups-rs controllers; the layout (which
//! hierarchy is where) is ours, so tests can point it at a temporary
//! directory laid out like /sys/fs/cgroup.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cgroups_rs::fs::cgroup::Cgroup;
use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::cpuacct::CpuAcctController;
use cgroups_rs::fs::cpuset::CpuSetController;
use cgroups_rs::fs::hugetlb::HugeTlbController;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::pid::PidController;
use cgroups_rs::fs::{Controller, Hierarchy, MaxValue, Subsystem};

use super::CmError;
use super::helpers::{ResourceConfig, hugepage_size_name, shares_to_weight};

/// The v1 controllers pod cgroups are created in. runc adds the container
/// cgroups in every other hierarchy itself.
const V1_CONTROLLERS: [&str; 6] = ["cpu", "cpuacct", "cpuset", "memory", "pids", "hugetlb"];

/// Where the cgroup hierarchies are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One hierarchy per controller set: controller → mount point, plus
    /// every cgroup mount (named ones and a hybrid's empty v2 included), in
    /// which runc may have left directories to remove.
    V1 {
        controllers: BTreeMap<String, PathBuf>,
        all: Vec<PathBuf>,
    },
    /// The unified hierarchy and the controllers its root offers.
    V2 {
        root: PathBuf,
        controllers: Vec<String>,
    },
}

impl Layout {
    /// The host's layout, as libcontainer's `IsCgroup2UnifiedMode`: v2 only
    /// when /sys/fs/cgroup itself is cgroup2; a hybrid (v2 at
    /// /sys/fs/cgroup/unified) is v1.
    pub fn detect() -> Result<Layout, CmError> {
        let mountinfo =
            std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| CmError::Read {
                path: "/proc/self/mountinfo".into(),
                reason: e.to_string(),
            })?;
        if cgroups_rs::fs::hierarchies::is_cgroup2_unified_mode() {
            return Layout::v2_at(Path::new("/sys/fs/cgroup"));
        }
        Layout::v1_from_mountinfo(&mountinfo)
    }

    /// A v2 layout rooted at `root` (the real one or a test directory).
    pub fn v2_at(root: &Path) -> Result<Layout, CmError> {
        let path = root.join("cgroup.controllers");
        let text = std::fs::read_to_string(&path).map_err(|e| CmError::Read {
            path,
            reason: e.to_string(),
        })?;
        Ok(Layout::V2 {
            root: root.to_path_buf(),
            controllers: text.split_whitespace().map(String::from).collect(),
        })
    }

    /// The v1 hierarchies in a /proc/self/mountinfo text.
    pub fn v1_from_mountinfo(mountinfo: &str) -> Result<Layout, CmError> {
        let mut controllers: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut all = Vec::new();
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let mut right = right.split_whitespace();
            let fstype = right.next().unwrap_or("");
            let super_opts = right.nth(1).unwrap_or("");
            let Some(point) = left.split_whitespace().nth(4) else {
                continue;
            };
            let point = PathBuf::from(point);
            match fstype {
                "cgroup" => {
                    for opt in super_opts.split(',') {
                        // Shortest mount point wins, as the Go kubelet.
                        if V1_CONTROLLERS.contains(&opt)
                            && controllers
                                .get(opt)
                                .is_none_or(|p| p.as_os_str().len() > point.as_os_str().len())
                        {
                            controllers.insert(opt.to_string(), point.clone());
                        }
                    }
                    all.push(point);
                }
                "cgroup2" => all.push(point),
                _ => {}
            }
        }
        if !controllers.contains_key("cpu") || !controllers.contains_key("memory") {
            return Err(CmError::NoCgroups(
                "no cgroup v1 cpu and memory hierarchies (and /sys/fs/cgroup is not cgroup2)"
                    .into(),
            ));
        }
        all.sort();
        all.dedup();
        Ok(Layout::V1 { controllers, all })
    }
}

/// cgroups-rs's view of our layout: the controllers berth writes.
#[derive(Clone, Debug)]
struct Tree(Layout);

impl Hierarchy for Tree {
    fn subsystems(&self) -> Vec<Subsystem> {
        let mut subs = Vec::new();
        let (v2, list): (bool, Vec<(String, PathBuf)>) = match &self.0 {
            Layout::V1 { controllers, .. } => (
                false,
                controllers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            Layout::V2 { root, controllers } => (
                true,
                controllers
                    .iter()
                    .map(|c| (c.clone(), root.clone()))
                    .collect(),
            ),
        };
        for (name, point) in list {
            let base = point.clone();
            match name.as_str() {
                "cpu" => subs.push(Subsystem::Cpu(CpuController::new(point, base, v2))),
                "cpuacct" => subs.push(Subsystem::CpuAcct(CpuAcctController::new(point, base))),
                "cpuset" => subs.push(Subsystem::CpuSet(CpuSetController::new(point, base, v2))),
                "memory" => subs.push(Subsystem::Mem(MemController::new(point, base, v2))),
                "pids" => subs.push(Subsystem::Pid(PidController::new(point, base, v2))),
                "hugetlb" => subs.push(Subsystem::HugeTlb(HugeTlbController::new(point, base, v2))),
                _ => {}
            }
        }
        subs
    }

    fn root(&self) -> PathBuf {
        match &self.0 {
            Layout::V1 { controllers, .. } => controllers
                .values()
                .next()
                .and_then(|p| p.parent())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup")),
            Layout::V2 { root, .. } => root.clone(),
        }
    }

    fn root_control_group(&self) -> Cgroup {
        Cgroup::load(Box::new(self.clone()), "")
    }

    fn parent_control_group(&self, path: &str) -> Cgroup {
        let parent = Path::new(path).parent().unwrap_or(Path::new(""));
        Cgroup::load(Box::new(self.clone()), parent)
    }

    fn v2(&self) -> bool {
        matches!(self.0, Layout::V2 { .. })
    }
}

/// The reason of a cgroups-rs error: its io cause when it has one.
fn reason(e: &cgroups_rs::fs::error::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => cause.to_string(),
        None => e.to_string(),
    }
}

/// Creates, updates and removes cgroups in one layout.
#[derive(Clone, Debug)]
pub struct CgroupManager {
    tree: Tree,
    /// Hugepage sizes the host offers ("2MB"), for the QoS tiers.
    hugepage_sizes: Vec<String>,
}

impl CgroupManager {
    pub fn new(layout: Layout) -> Self {
        CgroupManager {
            tree: Tree(layout),
            hugepage_sizes: host_hugepage_sizes(),
        }
    }

    pub fn layout(&self) -> &Layout {
        &self.tree.0
    }

    pub fn is_v2(&self) -> bool {
        self.tree.v2()
    }

    /// Whether the hugetlb controller is there to take hugepage limits.
    pub fn has_hugetlb(&self) -> bool {
        match &self.tree.0 {
            Layout::V1 { controllers, .. } => controllers.contains_key("hugetlb"),
            Layout::V2 { controllers, .. } => controllers.iter().any(|c| c == "hugetlb"),
        }
    }

    pub fn hugepage_sizes(&self) -> &[String] {
        &self.hugepage_sizes
    }

    fn load(&self, name: &str) -> Cgroup {
        Cgroup::load(Box::new(self.tree.clone()), name.trim_start_matches('/'))
    }

    /// The cgroup's directory in each hierarchy it is created in.
    pub fn paths(&self, name: &str) -> Vec<PathBuf> {
        let name = name.trim_start_matches('/');
        match &self.tree.0 {
            Layout::V1 { controllers, .. } => {
                // Co-mounted controllers (cpu,cpuacct) share a directory.
                let mut v: Vec<PathBuf> = controllers.values().map(|p| p.join(name)).collect();
                v.sort();
                v.dedup();
                v
            }
            Layout::V2 { root, .. } => vec![root.join(name)],
        }
    }

    /// The cgroup's directory in every hierarchy, also those only runc
    /// writes to (devices, freezer, name=systemd, a hybrid's unified).
    fn all_paths(&self, name: &str) -> Vec<PathBuf> {
        let name = name.trim_start_matches('/');
        match &self.tree.0 {
            Layout::V1 { all, .. } => all.iter().map(|p| p.join(name)).collect(),
            Layout::V2 { root, .. } => vec![root.join(name)],
        }
    }

    /// Whether the cgroup exists (in its first hierarchy).
    pub fn exists(&self, name: &str) -> bool {
        self.paths(name).first().is_some_and(|p| p.is_dir())
    }

    /// Creates the cgroup (and its parents) and writes `rc`.
    pub fn create(&self, name: &str, rc: &ResourceConfig) -> Result<(), CmError> {
        match &self.tree.0 {
            Layout::V1 { .. } => {
                let cg = self.load(name);
                for sub in cg.subsystems() {
                    let c = sub.to_controller();
                    // cgroups-rs copies cpuset.cpus/mems from the parent here.
                    c.create().map_err(|e| CmError::Create {
                        path: c.path().to_path_buf(),
                        reason: reason(&e),
                    })?;
                }
                if let (Some(cs), Layout::V1 { controllers, .. }) =
                    (cg.controller_of::<CpuSetController>(), &self.tree.0)
                    && let Some(mount) = controllers.get("cpuset")
                {
                    fill_cpuset(mount, cs.path())?;
                }
            }
            Layout::V2 { root, controllers } => {
                // As libcontainer: enable the root's controllers in every
                // ancestor's subtree_control, then make the directory.
                let enable: Vec<String> = controllers.iter().map(|c| format!("+{c}")).collect();
                let mut dir = root.clone();
                let parts: Vec<&str> = name
                    .trim_start_matches('/')
                    .split('/')
                    .filter(|p| !p.is_empty())
                    .collect();
                for part in parts {
                    if !enable.is_empty() {
                        enable_subtree(&dir, &enable)?;
                    }
                    dir.push(part);
                    match std::fs::create_dir(&dir) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                        Err(e) => {
                            return Err(CmError::Create {
                                path: dir,
                                reason: e.to_string(),
                            });
                        }
                    }
                }
            }
        }
        self.update(name, rc)
    }

    /// Writes `rc` to an existing cgroup.
    pub fn update(&self, name: &str, rc: &ResourceConfig) -> Result<(), CmError> {
        let cg = self.load(name);
        let v2 = self.is_v2();
        let werr = |path: PathBuf, value: String| {
            move |e: cgroups_rs::fs::error::Error| CmError::Write {
                value,
                path,
                reason: reason(&e),
            }
        };
        if let Some(cpu) = cg.controller_of::<CpuController>() {
            if let Some(shares) = rc.cpu_shares {
                let (file, v) = if v2 {
                    ("cpu.weight", shares_to_weight(shares))
                } else {
                    ("cpu.shares", shares)
                };
                cpu.set_shares(v)
                    .map_err(werr(cpu.path().join(file), v.to_string()))?;
            }
            if let Some(quota) = rc.cpu_quota {
                let period = rc.cpu_period.unwrap_or(super::helpers::QUOTA_PERIOD);
                if v2 {
                    // Written whole: cgroups-rs would read the old value first.
                    let q = if quota > 0 {
                        quota.to_string()
                    } else {
                        "max".into()
                    };
                    let line = format!("{q} {period}");
                    let path = cpu.path().join("cpu.max");
                    std::fs::write(&path, &line).map_err(|e| CmError::Write {
                        value: line,
                        path,
                        reason: e.to_string(),
                    })?;
                } else {
                    // Period first: a quota is checked against the period.
                    cpu.set_cfs_period(period).map_err(werr(
                        cpu.path().join("cpu.cfs_period_us"),
                        period.to_string(),
                    ))?;
                    cpu.set_cfs_quota(quota)
                        .map_err(werr(cpu.path().join("cpu.cfs_quota_us"), quota.to_string()))?;
                }
            }
        } else if rc.cpu_shares.is_some() || rc.cpu_quota.is_some() {
            return Err(CmError::NoController("cpu"));
        }
        if let Some(mem) = rc.memory {
            let Some(m) = cg.controller_of::<MemController>() else {
                return Err(CmError::NoController("memory"));
            };
            let file = if v2 {
                "memory.max"
            } else {
                "memory.limit_in_bytes"
            };
            let value = if v2 && mem <= 0 { -1 } else { mem };
            m.set_limit(value)
                .map_err(werr(m.path().join(file), value.to_string()))?;
        }
        if let Some(pids) = rc.pids_limit {
            let Some(p) = cg.controller_of::<PidController>() else {
                return Err(CmError::NoController("pids"));
            };
            let v = if pids > 0 {
                MaxValue::Value(pids)
            } else {
                MaxValue::Max
            };
            p.set_pid_max(v)
                .map_err(werr(p.path().join("pids.max"), pids.to_string()))?;
        }
        if !rc.hugepage_limits.is_empty()
            && let Some(h) = cg.controller_of::<HugeTlbController>()
        {
            for (size, limit) in &rc.hugepage_limits {
                let Some(size) = hugepage_size_name(*size) else {
                    continue;
                };
                let limit = u64::try_from(*limit).unwrap_or(0);
                let file = if v2 {
                    format!("hugetlb.{size}.max")
                } else {
                    format!("hugetlb.{size}.limit_in_bytes")
                };
                h.set_limit_in_bytes(&size, limit)
                    .map_err(werr(h.path().join(file), limit.to_string()))?;
            }
        }
        Ok(())
    }

    /// The process IDs in the cgroup and all its descendants, in every
    /// hierarchy.
    pub fn pids(&self, name: &str) -> Result<Vec<u64>, CmError> {
        let mut out = Vec::new();
        for dir in self.all_paths(name) {
            collect_pids(&dir, &mut out)?;
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// The names of the cgroup's child directories, in any hierarchy.
    pub fn children(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        for dir in self.all_paths(name) {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir())
                    && let Some(n) = e.file_name().to_str()
                {
                    out.push(n.to_string());
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Removes the cgroup in every hierarchy: leftover child directories
    /// bottom-up, then the cgroup itself. A cgroup with live processes
    /// can't go (the kernel says EBUSY); the first such error is returned
    /// after trying every hierarchy.
    pub fn destroy(&self, name: &str) -> Result<(), CmError> {
        let mut first = None;
        for dir in self.all_paths(name) {
            if let Err(e) = remove_tree(&dir)
                && first.is_none()
            {
                first = Some(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// Copies cpuset.cpus/mems down from the nearest ancestor that has them
/// into every empty level from below `mount` to `dir`: a v1 cpuset cgroup
/// with empty values can't take tasks.
fn fill_cpuset(mount: &Path, dir: &Path) -> Result<(), CmError> {
    let Ok(rel) = dir.strip_prefix(mount) else {
        return Ok(());
    };
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let mut cur = mount.to_path_buf();
        let mut value = std::fs::read_to_string(cur.join(file)).unwrap_or_default();
        for part in rel.components() {
            cur.push(part);
            let path = cur.join(file);
            let own = std::fs::read_to_string(&path).unwrap_or_default();
            if own.trim().is_empty() {
                if value.trim().is_empty() {
                    return Err(CmError::Read {
                        path,
                        reason: "empty, and so are its parents'".into(),
                    });
                }
                std::fs::write(&path, value.trim()).map_err(|e| CmError::Write {
                    value: value.trim().to_string(),
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            } else {
                value = own;
            }
        }
    }
    Ok(())
}

fn enable_subtree(dir: &Path, enable: &[String]) -> Result<(), CmError> {
    let path = dir.join("cgroup.subtree_control");
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    let missing: Vec<&String> = enable
        .iter()
        .filter(|c| !current.split_whitespace().any(|have| have == &c[1..]))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let all = enable.join(" ");
    if std::fs::write(&path, &all).is_ok() {
        return Ok(());
    }
    // One at a time, so one unavailable controller doesn't block the rest.
    for c in missing {
        if let Err(e) = std::fs::write(&path, c) {
            tracing::warn!("writing {c} to {}: {e}", path.display());
        }
    }
    Ok(())
}

fn collect_pids(dir: &Path, out: &mut Vec<u64>) -> Result<(), CmError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(CmError::Read {
                path: dir.to_path_buf(),
                reason: e.to_string(),
            });
        }
    };
    let procs = dir.join("cgroup.procs");
    match std::fs::read_to_string(&procs) {
        Ok(text) => out.extend(text.lines().filter_map(|l| l.trim().parse::<u64>().ok())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(CmError::Read {
                path: procs,
                reason: e.to_string(),
            });
        }
    }
    for e in rd.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            collect_pids(&e.path(), out)?;
        }
    }
    Ok(())
}

/// Removes `dir` and its subdirectories, deepest first. cgroupfs
/// directories hold only kernel files, which go with `rmdir`; in a test
/// tree the plain files are removed first.
fn remove_tree(dir: &Path) -> Result<(), CmError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(CmError::Remove {
                path: dir.to_path_buf(),
                reason: e.to_string(),
            });
        }
    };
    for e in rd.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&e.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) && !is_cgroupfs(dir) => {
            std::fs::remove_dir_all(dir).map_err(|e| CmError::Remove {
                path: dir.to_path_buf(),
                reason: e.to_string(),
            })
        }
        Err(e) => {
            let busy = e.raw_os_error() == Some(libc::EBUSY);
            Err(CmError::Remove {
                path: dir.to_path_buf(),
                reason: if busy {
                    format!("{e}: processes still run in it")
                } else {
                    e.to_string()
                },
            })
        }
    }
}

/// Whether `dir` is on a cgroup file system (where rmdir is the only way).
fn is_cgroupfs(dir: &Path) -> bool {
    nix::sys::statfs::statfs(dir).is_ok_and(|s| {
        let t = s.filesystem_type();
        t == nix::sys::statfs::CGROUP_SUPER_MAGIC || t == nix::sys::statfs::CGROUP2_SUPER_MAGIC
    })
}

/// The host's hugepage sizes as the runtime names them ("2MB").
fn host_hugepage_sizes() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/sys/kernel/mm/hugepages") else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let kb: i64 = name
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            hugepage_size_name(kb.checked_mul(1024)?)
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cm::tests::read;

    /// A v1 tree like this machine's: one hierarchy per controller, the
    /// cpuset root with cpus and mems.
    fn v1_tree(dir: &Path) -> Layout {
        let mut controllers = BTreeMap::new();
        let mut all = Vec::new();
        for c in ["cpu", "cpuacct", "cpuset", "memory", "pids", "devices"] {
            let p = dir.join(c);
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join("cgroup.procs"), "").unwrap();
            if c != "devices" {
                controllers.insert(c.to_string(), p.clone());
            }
            all.push(p);
        }
        std::fs::write(dir.join("cpuset/cpuset.cpus"), "0-1\n").unwrap();
        std::fs::write(dir.join("cpuset/cpuset.mems"), "0\n").unwrap();
        Layout::V1 { controllers, all }
    }

    #[test]
    fn mountinfo_hybrid_is_v1() {
        let mi = "\
30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
33 30 0:29 / /sys/fs/cgroup/cpuacct rw - cgroup cgroup rw,cpuacct
34 30 0:30 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
35 30 0:31 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
36 30 0:32 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
";
        let Layout::V1 { controllers, all } = Layout::v1_from_mountinfo(mi).unwrap() else {
            panic!("not v1");
        };
        assert_eq!(controllers["cpu"], PathBuf::from("/sys/fs/cgroup/cpu"));
        assert_eq!(
            controllers["memory"],
            PathBuf::from("/sys/fs/cgroup/memory")
        );
        assert!(!controllers.contains_key("pids"));
        assert!(all.contains(&PathBuf::from("/sys/fs/cgroup/unified")));
        assert!(all.contains(&PathBuf::from("/sys/fs/cgroup/systemd")));
        assert!(Layout::v1_from_mountinfo("").is_err());
    }

    #[test]
    fn v1_create_update_destroy() {
        let tmp = tempfile::tempdir().unwrap();
        let m = CgroupManager::new(v1_tree(tmp.path()));
        let rc = ResourceConfig {
            cpu_shares: Some(1536),
            cpu_quota: Some(150_000),
            cpu_period: Some(100_000),
            memory: Some(64 << 20),
            pids_limit: Some(100),
            ..Default::default()
        };
        m.create("kubepods/burstable/podabc", &rc).unwrap();
        let t = tmp.path();
        assert_eq!(
            read(t.join("cpu/kubepods/burstable/podabc/cpu.shares")),
            "1536"
        );
        assert_eq!(
            read(t.join("cpu/kubepods/burstable/podabc/cpu.cfs_quota_us")),
            "150000"
        );
        assert_eq!(
            read(t.join("cpu/kubepods/burstable/podabc/cpu.cfs_period_us")),
            "100000"
        );
        assert_eq!(
            read(t.join("memory/kubepods/burstable/podabc/memory.limit_in_bytes")),
            (64 << 20).to_string()
        );
        assert_eq!(
            read(t.join("pids/kubepods/burstable/podabc/pids.max")),
            "100"
        );
        assert!(t.join("cpuacct/kubepods/burstable/podabc").is_dir());
        // cpuset values come down from the root so the cgroup can take tasks.
        assert_eq!(read(t.join("cpuset/kubepods/cpuset.cpus")), "0-1");
        assert_eq!(
            read(t.join("cpuset/kubepods/burstable/podabc/cpuset.mems")),
            "0"
        );
        assert!(m.exists("kubepods/burstable/podabc"));
        assert_eq!(m.children("kubepods/burstable"), vec!["podabc".to_string()]);

        // runc's container cgroups, also in a hierarchy berth doesn't write.
        std::fs::create_dir_all(t.join("memory/kubepods/burstable/podabc/ctr1")).unwrap();
        std::fs::create_dir_all(t.join("devices/kubepods/burstable/podabc/ctr1")).unwrap();
        std::fs::write(
            t.join("devices/kubepods/burstable/podabc/ctr1/cgroup.procs"),
            "42\n",
        )
        .unwrap();
        assert_eq!(m.pids("kubepods/burstable/podabc").unwrap(), vec![42]);
        std::fs::write(
            t.join("devices/kubepods/burstable/podabc/ctr1/cgroup.procs"),
            "",
        )
        .unwrap();
        assert!(m.pids("kubepods/burstable/podabc").unwrap().is_empty());

        m.destroy("kubepods/burstable/podabc").unwrap();
        for c in ["cpu", "cpuacct", "cpuset", "memory", "pids", "devices"] {
            assert!(!t.join(c).join("kubepods/burstable/podabc").exists(), "{c}");
            assert!(t.join(c).join("kubepods/burstable").is_dir() || c == "devices");
        }
        // Gone already: fine.
        m.destroy("kubepods/burstable/podabc").unwrap();
    }

    #[test]
    fn v1_unset_values_are_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let m = CgroupManager::new(v1_tree(tmp.path()));
        m.create(
            "kubepods/besteffort",
            &ResourceConfig {
                cpu_shares: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
        let t = tmp.path();
        assert_eq!(read(t.join("cpu/kubepods/besteffort/cpu.shares")), "2");
        assert!(!t.join("cpu/kubepods/besteffort/cpu.cfs_quota_us").exists());
        assert!(
            !t.join("memory/kubepods/besteffort/memory.limit_in_bytes")
                .exists()
        );
    }

    #[test]
    fn v2_create_update_destroy() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        std::fs::write(t.join("cgroup.controllers"), "cpuset cpu io memory pids\n").unwrap();
        std::fs::write(t.join("cgroup.subtree_control"), "").unwrap();
        let m = CgroupManager::new(Layout::v2_at(t).unwrap());
        assert!(m.is_v2());
        let rc = ResourceConfig {
            cpu_shares: Some(1024),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            memory: Some(128 << 20),
            pids_limit: Some(64),
            ..Default::default()
        };
        m.create("kubepods/podxyz", &rc).unwrap();
        let enabled = "+cpuset +cpu +io +memory +pids";
        assert_eq!(read(t.join("cgroup.subtree_control")), enabled);
        assert_eq!(read(t.join("kubepods/cgroup.subtree_control")), enabled);
        assert!(!t.join("kubepods/podxyz/cgroup.subtree_control").exists());
        assert_eq!(read(t.join("kubepods/podxyz/cpu.weight")), "100");
        assert_eq!(read(t.join("kubepods/podxyz/cpu.max")), "50000 100000");
        assert_eq!(
            read(t.join("kubepods/podxyz/memory.max")),
            (128 << 20).to_string()
        );
        assert_eq!(read(t.join("kubepods/podxyz/pids.max")), "64");
        // No limit → "max".
        m.update(
            "kubepods/podxyz",
            &ResourceConfig {
                cpu_quota: Some(-1),
                pids_limit: Some(0),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(read(t.join("kubepods/podxyz/cpu.max")), "max 100000");
        assert_eq!(read(t.join("kubepods/podxyz/pids.max")), "max");

        std::fs::write(t.join("kubepods/podxyz/cgroup.procs"), "7\n").unwrap();
        assert_eq!(m.pids("kubepods/podxyz").unwrap(), vec![7]);
        m.destroy("kubepods/podxyz").unwrap();
        assert!(!t.join("kubepods/podxyz").exists());
        assert!(t.join("kubepods").is_dir());
    }

    #[test]
    fn v2_without_cpu_controller_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("cgroup.controllers"), "memory pids\n").unwrap();
        let m = CgroupManager::new(Layout::v2_at(tmp.path()).unwrap());
        let err = m
            .create(
                "kubepods",
                &ResourceConfig {
                    cpu_shares: Some(2),
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert!(err.to_string().contains("cpu"), "{err}");
    }

    #[test]
    fn write_errors_name_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let m = CgroupManager::new(v1_tree(tmp.path()));
        // A directory where the file should be makes the write fail.
        std::fs::create_dir_all(tmp.path().join("cpu/kubepods/besteffort/cpu.shares")).unwrap();
        let err = m
            .create(
                "kubepods/besteffort",
                &ResourceConfig {
                    cpu_shares: Some(2),
                    ..Default::default()
                },
            )
            .unwrap_err()
            .to_string();
        let want = format!(
            "writing 2 to {}/cpu/kubepods/besteffort/cpu.shares: ",
            tmp.path().display()
        );
        assert!(err.starts_with(&want), "{err}");
        assert!(err.contains("os error"), "{err}");
    }
}
