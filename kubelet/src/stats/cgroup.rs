//! Reading a cgroup's CPU, memory and pids counters from cgroupfs, v1 or v2,
//! the way cadvisor does for the Go kubelet. Every read goes through one
//! reused buffer; parsing doesn't allocate. A cgroup's files can stay open
//! between cycles ([`CgroupFiles`]): cgroupfs regenerates a file's content on
//! every read from offset 0, and a path walk down the hierarchy costs more
//! than the read itself.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Which cgroup hierarchy the host uses, and where each controller lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CgroupFs {
    /// One directory per controller (v1, including "hybrid" hosts whose v2
    /// hierarchy carries no controllers).
    V1 {
        cpuacct: PathBuf,
        memory: PathBuf,
        pids: PathBuf,
    },
    /// The unified hierarchy.
    V2 { root: PathBuf },
}

impl CgroupFs {
    /// Looks at `mount` (normally `/sys/fs/cgroup`): v2 when its top
    /// directory has `cgroup.controllers`, else v1 with the usual controller
    /// directories (`cpuacct` may be mounted as `cpu,cpuacct`).
    pub fn detect(mount: &Path) -> CgroupFs {
        if mount.join("cgroup.controllers").exists() {
            return CgroupFs::V2 {
                root: mount.to_path_buf(),
            };
        }
        let pick = |names: &[&str]| {
            names
                .iter()
                .map(|n| mount.join(n))
                .find(|p| p.is_dir())
                .unwrap_or_else(|| mount.join(names[0]))
        };
        CgroupFs::V1 {
            cpuacct: pick(&["cpuacct", "cpu,cpuacct", "cpuacct,cpu"]),
            memory: pick(&["memory"]),
            pids: pick(&["pids"]),
        }
    }

    pub fn is_v2(&self) -> bool {
        matches!(self, CgroupFs::V2 { .. })
    }

    /// The directory a cgroup path (`/kubepods/pod<uid>/<id>`) has in the
    /// hierarchy that tells whether it exists: memory on v1.
    pub fn dir(&self, cgroup: &str) -> PathBuf {
        let rel = cgroup.trim_start_matches('/');
        match self {
            CgroupFs::V1 { memory, .. } => memory.join(rel),
            CgroupFs::V2 { root } => root.join(rel),
        }
    }

    pub fn exists(&self, cgroup: &str) -> bool {
        self.dir(cgroup).is_dir()
    }

    /// Reads one cgroup's counters (`pids.current` only when `want_pids`:
    /// the Summary has a process count for pods, not containers). `Err` when
    /// the cgroup is gone (or its memory files can't be read); a missing CPU
    /// or pids file only leaves that part empty.
    pub fn read(
        &self,
        cgroup: &str,
        buf: &mut Vec<u8>,
        want_pids: bool,
    ) -> std::io::Result<CgroupSample> {
        self.read_with(cgroup, &mut CgroupFiles::default(), buf, want_pids)
    }

    /// [`read`](Self::read), through `files`: files it holds are re-read,
    /// others are opened and kept there. After an `Err`, drop `files` (the
    /// cgroup is gone or was replaced).
    pub fn read_with(
        &self,
        cgroup: &str,
        files: &mut CgroupFiles,
        buf: &mut Vec<u8>,
        want_pids: bool,
    ) -> std::io::Result<CgroupSample> {
        let rel = cgroup.trim_start_matches('/');
        let (mem, cpu, pids) = match self {
            CgroupFs::V1 {
                cpuacct,
                memory,
                pids,
            } => (memory.join(rel), cpuacct.join(rel), pids.join(rel)),
            CgroupFs::V2 { root } => {
                let d = root.join(rel);
                (d.clone(), d.clone(), d)
            }
        };
        let v2 = self.is_v2();
        let name = |v1: &'static str, v2_name: &'static str| if v2 { v2_name } else { v1 };
        let memory_usage = parse_u64(reread(
            &mut files.memory_usage,
            &mem,
            name("memory.usage_in_bytes", "memory.current"),
            buf,
        )?);
        let limit = reread(
            &mut files.memory_limit,
            &mem,
            name("memory.limit_in_bytes", "memory.max"),
            buf,
        )
        .ok()
        .and_then(parse_u64);
        let memory_limit = if v2 {
            limit
        } else {
            limit.filter(|&l| l < V1_UNLIMITED)
        };
        let stat = reread(&mut files.memory_stat, &mem, "memory.stat", buf)?;
        let memory_stat = if v2 {
            parse_v2_memory_stat(stat)
        } else {
            parse_v1_memory_stat(stat)
        };
        let cpu_text = reread(&mut files.cpu, &cpu, name("cpuacct.usage", "cpu.stat"), buf).ok();
        let cpu_usage_ns = if v2 {
            cpu_text.and_then(parse_v2_cpu_usage_ns)
        } else {
            cpu_text.and_then(parse_u64)
        };
        let pids = if want_pids {
            reread(&mut files.pids, &pids, "pids.current", buf)
                .ok()
                .and_then(parse_u64)
        } else {
            None
        };
        let s = CgroupSample {
            cpu_usage_ns,
            memory_usage,
            memory_limit,
            memory_stat,
            pids,
        };
        Ok(s)
    }

    /// Finds a process's cgroup in `/proc/<pid>/cgroup` text: the memory
    /// controller's line on v1, the `0::` line on v2.
    pub fn cgroup_of_process<'a>(&self, proc_cgroup: &'a str) -> Option<&'a str> {
        proc_cgroup.lines().find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            let wanted = match self {
                CgroupFs::V1 { .. } => controllers.split(',').any(|c| c == "memory"),
                CgroupFs::V2 { .. } => controllers.is_empty(),
            };
            wanted.then_some(path)
        })
    }
}

/// v1 reports "no limit" as PAGE_COUNTER_MAX pages (0x7FFFFFFFFFFFF000 on
/// 4 KiB pages); anything this large is no limit.
const V1_UNLIMITED: u64 = 1 << 62;

/// The counters of one cgroup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CgroupSample {
    /// Cumulative CPU time, all cores.
    pub cpu_usage_ns: Option<u64>,
    pub memory_usage: Option<u64>,
    /// `None` when unlimited.
    pub memory_limit: Option<u64>,
    pub memory_stat: MemoryStat,
    pub pids: Option<u64>,
}

impl CgroupSample {
    /// Working set as cadvisor computes it: usage minus inactive file
    /// pages, floored at 0.
    pub fn working_set(&self) -> Option<u64> {
        let usage = self.memory_usage?;
        Some(usage.saturating_sub(self.memory_stat.inactive_file.unwrap_or(0)))
    }

    /// Adds `other` into `self` (for pod totals summed from containers).
    pub fn add(&mut self, other: &CgroupSample) {
        fn sum(a: &mut Option<u64>, b: Option<u64>) {
            if let Some(b) = b {
                *a = Some(a.unwrap_or(0).saturating_add(b));
            }
        }
        sum(&mut self.cpu_usage_ns, other.cpu_usage_ns);
        sum(&mut self.memory_usage, other.memory_usage);
        sum(&mut self.pids, other.pids);
        let (m, o) = (&mut self.memory_stat, &other.memory_stat);
        sum(&mut m.inactive_file, o.inactive_file);
        sum(&mut m.rss, o.rss);
        sum(&mut m.pgfault, o.pgfault);
        sum(&mut m.pgmajfault, o.pgmajfault);
        // A sum of containers has no single limit.
        self.memory_limit = None;
    }
}

/// The memory.stat keys the Summary needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStat {
    pub inactive_file: Option<u64>,
    pub rss: Option<u64>,
    pub pgfault: Option<u64>,
    pub pgmajfault: Option<u64>,
}

/// One cgroup's counter files, open for re-reading (each field is the file
/// of the same name: `memory.current`/`memory.usage_in_bytes`, ...). Holds
/// up to five descriptors.
#[derive(Debug, Default)]
pub struct CgroupFiles {
    memory_usage: Option<File>,
    memory_limit: Option<File>,
    memory_stat: Option<File>,
    cpu: Option<File>,
    pids: Option<File>,
}

impl CgroupFiles {
    /// How many descriptors it holds.
    pub fn open_count(&self) -> usize {
        [
            &self.memory_usage,
            &self.memory_limit,
            &self.memory_stat,
            &self.cpu,
            &self.pids,
        ]
        .iter()
        .filter(|f| f.is_some())
        .count()
    }
}

/// Reads `dir/name` from its start through `slot`, opening it into `slot`
/// the first time. A failed read closes it, so the next try opens afresh.
fn reread<'b>(
    slot: &mut Option<File>,
    dir: &Path,
    name: &str,
    buf: &'b mut Vec<u8>,
) -> std::io::Result<&'b [u8]> {
    let f = match slot {
        Some(f) => f,
        None => slot.insert(File::open(dir.join(name))?),
    };
    match read_from_start(f, buf) {
        Ok(len) => Ok(&buf[..len]),
        Err(e) => {
            *slot = None;
            Err(e)
        }
    }
}

/// Reads all of `f` from offset 0 into `buf` (grown, never zeroed again);
/// returns the length.
fn read_from_start(f: &File, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    if buf.len() < 8192 {
        buf.resize(8192, 0);
    }
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        let n = f.read_at(&mut buf[len..], len as u64)?;
        if n == 0 {
            return Ok(len);
        }
        len += n;
    }
}

/// Reads a whole (small) file into `buf`, which is kept between calls.
/// cgroupfs reports size 0, so read until EOF rather than trusting stat.
/// `buf` keeps its length (only its prefix is the file): it is zeroed when
/// it grows, not on every read.
pub fn read_into<'b>(path: &Path, buf: &'b mut Vec<u8>) -> std::io::Result<&'b [u8]> {
    let mut f = File::open(path)?;
    if buf.len() < 8192 {
        buf.resize(8192, 0);
    }
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        let n = f.read(&mut buf[len..])?;
        if n == 0 {
            break;
        }
        len += n;
    }
    Ok(&buf[..len])
}

/// A file holding one decimal number (v2's "max" reads as `None`).
pub fn parse_u64(text: &[u8]) -> Option<u64> {
    let t = text.trim_ascii();
    if t.is_empty() || !t.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(t).ok()?.parse().ok()
}

/// `key value` lines, as memory.stat and cpu.stat are.
fn key_values(text: &[u8]) -> impl Iterator<Item = (&[u8], u64)> {
    text.split(|&b| b == b'\n').filter_map(|line| {
        let sp = line.iter().position(|&b| b == b' ')?;
        Some((&line[..sp], parse_u64(&line[sp + 1..])?))
    })
}

/// The value of `key` in a `key value` file (memory.stat, /proc/vmstat).
pub fn stat_value(text: &[u8], key: &[u8]) -> Option<u64> {
    key_values(text).find(|(k, _)| *k == key).map(|(_, v)| v)
}

/// v1 memory.stat. The `total_` keys cover the cgroup and its children, as
/// cadvisor uses for RSS and the working set. Page faults also use the
/// `total_` keys, as containerd's CRI stats and v2 do (cadvisor's v1
/// ContainerData uses the cgroup's own `pgfault`, ~0 for a pod cgroup).
pub fn parse_v1_memory_stat(text: &[u8]) -> MemoryStat {
    let mut m = MemoryStat::default();
    for (k, v) in key_values(text) {
        match k {
            b"total_inactive_file" => m.inactive_file = Some(v),
            b"total_rss" => m.rss = Some(v),
            b"total_pgfault" => m.pgfault = Some(v),
            b"total_pgmajfault" => m.pgmajfault = Some(v),
            _ => {}
        }
    }
    m
}

/// v2 memory.stat (always hierarchical); RSS is `anon`, as cadvisor.
pub fn parse_v2_memory_stat(text: &[u8]) -> MemoryStat {
    let mut m = MemoryStat::default();
    for (k, v) in key_values(text) {
        match k {
            b"inactive_file" => m.inactive_file = Some(v),
            b"anon" => m.rss = Some(v),
            b"pgfault" => m.pgfault = Some(v),
            b"pgmajfault" => m.pgmajfault = Some(v),
            _ => {}
        }
    }
    m
}

/// v2 cpu.stat's `usage_usec`, in nanoseconds.
pub fn parse_v2_cpu_usage_ns(text: &[u8]) -> Option<u64> {
    key_values(text)
        .find(|(k, _)| *k == b"usage_usec")
        .map(|(_, v)| v.saturating_mul(1000))
}

/// Where a pod's cgroup may be, under `cgroup_root`, for each QoS class and
/// both drivers' naming (cgroupfs `kubepods/burstable/pod<uid>`, systemd
/// `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice`).
pub fn pod_cgroup_candidates(cgroup_root: &str, uid: &str) -> [String; 6] {
    let root = cgroup_root.trim_end_matches('/');
    let u = uid.replace('-', "_");
    [
        format!("{root}/kubepods/pod{uid}"),
        format!("{root}/kubepods/burstable/pod{uid}"),
        format!("{root}/kubepods/besteffort/pod{uid}"),
        format!("{root}/kubepods.slice/kubepods-pod{u}.slice"),
        format!("{root}/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u}.slice"),
        format!("{root}/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{u}.slice"),
    ]
}

/// Where containerd puts a container with no pod cgroup parent (its
/// namespace, `k8s.io`, as the parent), then the bare id.
pub fn default_container_cgroups(id: &str) -> [String; 2] {
    [format!("/k8s.io/{id}"), format!("/{id}")]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    const V1_STAT: &str = "cache 4096\nrss 8192\npgfault 3\npgmajfault 1\ninactive_file 0\n\
        total_cache 98304\ntotal_rss 131072\ntotal_pgfault 1519\ntotal_pgmajfault 2\n\
        total_inactive_anon 122880\ntotal_inactive_file 12288\ntotal_active_file 0\n";

    const V2_STAT: &str = "anon 2097152\nfile 1048576\nkernel 65536\n\
        inactive_anon 0\nactive_anon 2097152\ninactive_file 524288\nactive_file 524288\n\
        pgfault 4242\npgmajfault 7\n";

    #[test]
    fn v1_files_parse() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(
            d,
            "memory/kubepods/podu/c1/memory.usage_in_bytes",
            "565248\n",
        );
        write(
            d,
            "memory/kubepods/podu/c1/memory.limit_in_bytes",
            "9223372036854771712\n",
        );
        write(d, "memory/kubepods/podu/c1/memory.stat", V1_STAT);
        write(d, "cpuacct/kubepods/podu/c1/cpuacct.usage", "20817777\n");
        write(d, "pids/kubepods/podu/c1/pids.current", "3\n");
        let fs = CgroupFs::detect(d);
        assert!(!fs.is_v2());
        assert!(fs.exists("/kubepods/podu/c1"));
        let mut buf = Vec::new();
        let s = fs.read("/kubepods/podu/c1", &mut buf, true).unwrap();
        assert_eq!(s.cpu_usage_ns, Some(20_817_777));
        assert_eq!(s.memory_usage, Some(565_248));
        assert_eq!(s.memory_limit, None, "v1's huge limit means none");
        assert_eq!(
            s.memory_stat,
            MemoryStat {
                inactive_file: Some(12288),
                rss: Some(131_072),
                pgfault: Some(1519),
                pgmajfault: Some(2),
            }
        );
        assert_eq!(s.working_set(), Some(565_248 - 12288));
        assert_eq!(s.pids, Some(3));
        // A limit, and a cgroup without a pids file.
        write(d, "memory/x/memory.usage_in_bytes", "10\n");
        write(d, "memory/x/memory.limit_in_bytes", "1048576\n");
        write(d, "memory/x/memory.stat", "total_inactive_file 99\n");
        let s = fs.read("/x", &mut buf, true).unwrap();
        assert_eq!(s.memory_limit, Some(1_048_576));
        assert_eq!(s.pids, None);
        assert_eq!(s.cpu_usage_ns, None);
        // Working set never goes below zero.
        assert_eq!(s.working_set(), Some(0));
        // A cgroup that's gone is an error.
        assert!(fs.read("/gone", &mut buf, true).is_err());
    }

    #[test]
    fn v2_files_parse() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "cgroup.controllers", "cpuset cpu io memory pids\n");
        write(d, "kubepods/burstable/podu/memory.current", "3670016\n");
        write(d, "kubepods/burstable/podu/memory.max", "max\n");
        write(d, "kubepods/burstable/podu/memory.stat", V2_STAT);
        write(
            d,
            "kubepods/burstable/podu/cpu.stat",
            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 0\n",
        );
        write(d, "kubepods/burstable/podu/pids.current", "2\n");
        let fs = CgroupFs::detect(d);
        assert!(fs.is_v2());
        let mut buf = Vec::new();
        let s = fs.read("/kubepods/burstable/podu", &mut buf, true).unwrap();
        assert_eq!(s.cpu_usage_ns, Some(1_500_000));
        assert_eq!(s.memory_usage, Some(3_670_016));
        assert_eq!(s.memory_limit, None, "\"max\" is no limit");
        assert_eq!(s.memory_stat.rss, Some(2_097_152));
        assert_eq!(s.memory_stat.pgfault, Some(4242));
        assert_eq!(s.memory_stat.pgmajfault, Some(7));
        assert_eq!(s.working_set(), Some(3_670_016 - 524_288));
        assert_eq!(s.pids, Some(2));
        // Floor at zero on v2 too.
        write(d, "a/memory.current", "100\n");
        write(d, "a/memory.max", "4096\n");
        write(d, "a/memory.stat", "inactive_file 4096\n");
        let s = fs.read("a", &mut buf, true).unwrap();
        assert_eq!(s.working_set(), Some(0));
        assert_eq!(s.memory_limit, Some(4096));
    }

    #[test]
    fn open_files_are_reread_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "cgroup.controllers", "cpu memory pids\n");
        write(d, "c/memory.current", "1000000\n");
        write(d, "c/memory.max", "max\n");
        write(d, "c/memory.stat", V2_STAT);
        write(d, "c/cpu.stat", "usage_usec 1500\n");
        let fs = CgroupFs::detect(d);
        let mut files = CgroupFiles::default();
        let mut buf = Vec::new();
        let s = fs.read_with("/c", &mut files, &mut buf, false).unwrap();
        assert_eq!(s.memory_usage, Some(1_000_000));
        assert_eq!(files.open_count(), 4, "pids.current isn't wanted");
        // Shorter content than before: only the new bytes count.
        write(d, "c/memory.current", "7\n");
        write(d, "c/cpu.stat", "usage_usec 2\n");
        let s = fs.read_with("/c", &mut files, &mut buf, true).unwrap();
        assert_eq!(s.memory_usage, Some(7));
        assert_eq!(s.cpu_usage_ns, Some(2000));
        assert_eq!(s.pids, None, "no pids.current");
        assert_eq!(files.open_count(), 4, "a missing file isn't kept");
        write(d, "c/pids.current", "3\n");
        let s = fs.read_with("/c", &mut files, &mut buf, true).unwrap();
        assert_eq!(s.pids, Some(3));
        assert_eq!(files.open_count(), 5);
        // A cgroup that isn't there.
        let mut none = CgroupFiles::default();
        assert!(fs.read_with("/gone", &mut none, &mut buf, true).is_err());
        assert_eq!(none.open_count(), 0);
    }

    #[test]
    fn garbage_never_panics() {
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"-1\n"), None);
        assert_eq!(parse_u64(b"99999999999999999999999"), None);
        assert_eq!(parse_u64(b" 42 \n"), Some(42));
        let m = parse_v1_memory_stat(b"total_rss\ntotal_pgfault x\n\xff\xfe 1\n total_rss 5");
        assert_eq!(m, MemoryStat::default());
        assert_eq!(parse_v2_cpu_usage_ns(b"user_usec 5\n"), None);
        assert_eq!(
            parse_v2_cpu_usage_ns(&b"usage_usec 18446744073709551615\n"[..]),
            Some(u64::MAX)
        );
    }

    #[test]
    fn large_files_are_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        let text = "x".repeat(50_000);
        std::fs::write(&p, &text).unwrap();
        let mut buf = Vec::new();
        assert_eq!(read_into(&p, &mut buf).unwrap().len(), 50_000);
        std::fs::write(&p, "7\n").unwrap();
        assert_eq!(read_into(&p, &mut buf).unwrap(), b"7\n");
    }

    #[test]
    fn process_cgroup_lines() {
        let v1 = CgroupFs::V1 {
            cpuacct: "/c".into(),
            memory: "/m".into(),
            pids: "/p".into(),
        };
        let text = "9:name=systemd:/k8s.io/abc\n4:memory:/k8s.io/abc\n2:cpu,cpuacct:/k8s.io/abc\n0::/k8s.io/abc\n";
        assert_eq!(v1.cgroup_of_process(text), Some("/k8s.io/abc"));
        let v2 = CgroupFs::V2 { root: "/r".into() };
        assert_eq!(
            v2.cgroup_of_process("0::/kubepods/podu/abc\n"),
            Some("/kubepods/podu/abc")
        );
        assert_eq!(v1.cgroup_of_process("0::/x\n"), None);
        assert_eq!(v1.cgroup_of_process("garbage"), None);
    }

    #[test]
    fn candidates() {
        let c = pod_cgroup_candidates("/", "a-b");
        assert_eq!(c[0], "/kubepods/poda-b");
        assert_eq!(c[2], "/kubepods/besteffort/poda-b");
        assert_eq!(
            c[4],
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-poda_b.slice"
        );
        assert_eq!(
            pod_cgroup_candidates("/berth", "u")[1],
            "/berth/kubepods/burstable/podu"
        );
    }
}
