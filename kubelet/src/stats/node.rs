//! Node-level figures from /proc and statvfs: what cadvisor reports for the
//! root container, the filesystems, and the pid rlimit.

use std::path::Path;

use super::cgroup::parse_u64;
use super::summary::{FsStats, Time};

/// The parts of /proc/meminfo the node summary needs, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemInfo {
    pub total: u64,
    pub free: u64,
    pub inactive_file: u64,
    pub anon: u64,
}

pub fn parse_meminfo(text: &[u8]) -> MemInfo {
    let mut m = MemInfo::default();
    for line in text.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let key = &line[..colon];
        let rest = line[colon + 1..].trim_ascii();
        let num = rest.split(|&b| b == b' ').next().unwrap_or_default();
        let Some(kib) = parse_u64(num) else { continue };
        let bytes = kib.saturating_mul(1024);
        match key {
            b"MemTotal" => m.total = bytes,
            b"MemFree" => m.free = bytes,
            b"Inactive(file)" => m.inactive_file = bytes,
            b"AnonPages" => m.anon = bytes,
            _ => {}
        }
    }
    m
}

/// From /proc/stat: the busy CPU time of all cores in nanoseconds (user,
/// nice, system, irq, softirq, steal; not idle or iowait), and the boot time
/// in seconds since the epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcStat {
    pub busy_ns: Option<u64>,
    pub boot_time: Option<i64>,
}

/// USER_HZ: /proc/stat counts in 1/100 s on every Linux architecture berth
/// builds for.
const USER_HZ: u64 = 100;

pub fn parse_proc_stat(text: &[u8]) -> ProcStat {
    let mut s = ProcStat::default();
    for line in text.split(|&b| b == b'\n') {
        if let Some(rest) = line.strip_prefix(b"cpu ") {
            let f: Vec<u64> = rest
                .split(|&b| b == b' ')
                .filter(|w| !w.is_empty())
                .map(|w| parse_u64(w).unwrap_or(0))
                .collect();
            // user nice system idle iowait irq softirq steal ...
            let at = |i: usize| f.get(i).copied().unwrap_or(0);
            let ticks = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
            s.busy_ns = Some(ticks.saturating_mul(1_000_000_000 / USER_HZ));
        } else if let Some(rest) = line.strip_prefix(b"btime ") {
            s.boot_time = parse_u64(rest).and_then(|v| i64::try_from(v).ok());
        }
    }
    s
}

/// One filesystem's capacity, as the Go kubelet's FsStats reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsInfo {
    pub capacity: u64,
    pub available: u64,
    pub used: u64,
    pub inodes: u64,
    pub inodes_free: u64,
}

pub fn fs_info(path: &Path) -> Option<FsInfo> {
    let s = nix::sys::statvfs::statvfs(path).ok()?;
    let frsize = s.fragment_size();
    let blocks = s.blocks();
    Some(FsInfo {
        capacity: blocks.saturating_mul(frsize),
        available: s.blocks_available().saturating_mul(frsize),
        used: blocks
            .saturating_sub(s.blocks_free())
            .saturating_mul(frsize),
        inodes: s.files(),
        inodes_free: s.files_free(),
    })
}

impl FsInfo {
    /// The whole filesystem (the node's `fs`).
    pub fn whole(&self, time: Time) -> FsStats {
        FsStats {
            time,
            available_bytes: Some(self.available),
            capacity_bytes: Some(self.capacity),
            used_bytes: Some(self.used),
            inodes_free: Some(self.inodes_free),
            inodes: Some(self.inodes),
            inodes_used: Some(self.inodes.saturating_sub(self.inodes_free)),
        }
    }

    /// A part of it: `used`/`inodes_used` are the part's own, the rest the
    /// filesystem's, as for container rootfs and logs.
    pub fn part(info: Option<&FsInfo>, time: Time, used: u64, inodes_used: u64) -> FsStats {
        FsStats {
            time,
            available_bytes: info.map(|i| i.available),
            capacity_bytes: info.map(|i| i.capacity),
            used_bytes: Some(used),
            inodes_free: info.map(|i| i.inodes_free),
            inodes: info.map(|i| i.inodes),
            inodes_used: Some(inodes_used),
        }
    }
}

/// Bytes (allocated blocks × 512) and inodes under `dir`, staying on its
/// device and not following symlinks, as the Go kubelet's `du`-like walk
/// for log directories. `None` when `dir` doesn't exist.
pub fn disk_usage(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let top = std::fs::symlink_metadata(dir).ok()?;
    let dev = top.dev();
    let mut bytes = top.blocks().saturating_mul(512);
    let mut inodes = 1u64;
    if !top.is_dir() {
        return Some((bytes, inodes));
    }
    let mut stack = vec![dir.to_path_buf()];
    // Log directories are shallow; the depth bound only guards against a
    // pathological tree.
    let mut visited = 0usize;
    while let Some(d) = stack.pop() {
        visited += 1;
        if visited > 10_000 {
            break;
        }
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            // Relative to the open directory, without following symlinks.
            let Ok(md) = e.metadata() else {
                continue;
            };
            if md.dev() != dev {
                continue;
            }
            bytes = bytes.saturating_add(md.blocks().saturating_mul(512));
            inodes += 1;
            if md.is_dir() {
                stack.push(e.path());
            }
        }
    }
    Some((bytes, inodes))
}

/// The pid limit and process count, as the Go kubelet's pidlimit package:
/// /proc/sys/kernel/pid_max and sysinfo(2)'s process count.
pub fn rlimit(buf: &mut Vec<u8>) -> (Option<i64>, Option<i64>) {
    let max = super::cgroup::read_into(Path::new("/proc/sys/kernel/pid_max"), buf)
        .ok()
        .and_then(parse_u64)
        .and_then(|v| i64::try_from(v).ok());
    let cur = nix::sys::sysinfo::sysinfo()
        .ok()
        .map(|s| i64::from(s.process_count()));
    (max, cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo() {
        let m = parse_meminfo(
            b"MemTotal:       24576000 kB\nMemFree:         1000 kB\nMemAvailable:   20000000 kB\n\
              Inactive(file):   2048 kB\nAnonPages:        4 kB\nHugePages_Total:       0\nbogus\n",
        );
        assert_eq!(m.total, 24_576_000 * 1024);
        assert_eq!(m.free, 1000 * 1024);
        assert_eq!(m.inactive_file, 2048 * 1024);
        assert_eq!(m.anon, 4096);
    }

    #[test]
    fn proc_stat() {
        let s = parse_proc_stat(
            b"cpu  100 5 50 9000 7 1 2 3 0 0\ncpu0 50 2 25 4500 3 0 1 1 0 0\nintr 1 2\nbtime 1700000000\n",
        );
        assert_eq!(s.busy_ns, Some(161 * 10_000_000));
        assert_eq!(s.boot_time, Some(1_700_000_000));
        assert_eq!(parse_proc_stat(b"nonsense"), ProcStat::default());
    }

    #[test]
    fn disk_usage_counts_files_and_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("c");
        std::fs::create_dir_all(&d).unwrap();
        let (b0, i0) = disk_usage(&d).unwrap();
        assert_eq!(i0, 1);
        std::fs::write(d.join("0.log"), vec![b'x'; 64 * 1024]).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("link")).unwrap();
        let (b1, i1) = disk_usage(&d).unwrap();
        assert_eq!(i1, 3);
        assert!(b1 >= b0 + 64 * 1024, "{b0} -> {b1}");
        assert_eq!(disk_usage(&dir.path().join("missing")), None);
    }

    #[test]
    fn statvfs_of_a_real_path() {
        let f = fs_info(Path::new("/")).unwrap();
        assert!(f.capacity > 0 && f.available <= f.capacity);
        let s = f.whole(Time::default());
        assert_eq!(s.used_bytes, Some(f.used));
    }
}
