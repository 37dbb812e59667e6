//! What the node is made of, read from the host: CPUs and memory (the
//! container manager's [`MachineInfo`]), hugepages, the root directory's
//! filesystem size, and the identity strings of `nodeInfo` (cadvisor's
//! machine info and version info in the Go kubelet).
//!
//! Each reader takes its path, so tests feed fake files.

use std::path::Path;

use crate::cm::helpers::MachineInfo;

/// Hugepages of one size: page size in bytes and the number of pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HugePages {
    pub page_size: i64,
    pub count: i64,
}

/// The node's resources as the status setters need them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineFacts {
    pub machine: MachineInfo,
    pub hugepages: Vec<HugePages>,
    /// Bytes of the filesystem holding the kubelet's root directory; `None`
    /// when statvfs failed (no ephemeral-storage capacity then, as Go).
    pub root_fs_capacity: Option<i64>,
}

/// The strings of `status.nodeInfo` that come from the host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SystemInfo {
    pub machine_id: String,
    pub system_uuid: String,
    pub boot_id: String,
    pub kernel_version: String,
    pub os_image: String,
}

pub const HUGEPAGES_DIR: &str = "/sys/kernel/mm/hugepages";

impl MachineFacts {
    /// Reads the host's figures; `root_dir` is the kubelet's root directory.
    pub fn read(root_dir: &Path) -> Self {
        MachineFacts {
            machine: MachineInfo::read(),
            hugepages: read_hugepages(Path::new(HUGEPAGES_DIR)),
            root_fs_capacity: fs_capacity(root_dir),
        }
    }
}

/// One entry per `hugepages-<N>kB` directory, with its `nr_hugepages`
/// (0 when unreadable); none when the directory is absent.
pub fn read_hugepages(dir: &Path) -> Vec<HugePages> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<HugePages> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let page_size = parse_hugepages_dir_name(name.to_str()?)?;
            let count = std::fs::read_to_string(e.path().join("nr_hugepages"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            Some(HugePages { page_size, count })
        })
        .collect();
    out.sort_by_key(|h| h.page_size);
    out
}

/// `hugepages-2048kB` → 2 MiB in bytes.
pub fn parse_hugepages_dir_name(name: &str) -> Option<i64> {
    let kb: i64 = name
        .strip_prefix("hugepages-")?
        .strip_suffix("kB")?
        .parse()
        .ok()?;
    kb.checked_mul(1024).filter(|b| *b > 0)
}

/// Size in bytes of the filesystem holding `path`.
pub fn fs_capacity(path: &Path) -> Option<i64> {
    // The root directory may not exist yet on a fresh node: ask its parent.
    let existing = path.ancestors().find(|p| p.exists())?;
    let st = nix::sys::statvfs::statvfs(existing).ok()?;
    // The field types vary by platform; on 64-bit Linux both are u64.
    #[allow(clippy::useless_conversion)]
    let (blocks, frsize) = (u64::from(st.blocks()), u64::from(st.fragment_size()));
    i64::try_from(blocks.checked_mul(frsize)?).ok()
}

/// `PRETTY_NAME` of an os-release file, unquoted; "Linux" when absent, as
/// cadvisor.
pub fn parse_os_release(text: &str) -> String {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("PRETTY_NAME="))
        .map(|v| {
            let v = v.trim();
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v)
                .to_string()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "Linux".to_string())
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

impl SystemInfo {
    /// Reads the host's identity; a file that can't be read leaves its
    /// field empty (product_uuid is root-only and absent in many VMs).
    pub fn read() -> Self {
        let os_image = std::fs::read_to_string("/etc/os-release")
            .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
            .map(|t| parse_os_release(&t))
            .unwrap_or_else(|_| "Linux".to_string());
        SystemInfo {
            machine_id: read_trimmed("/etc/machine-id"),
            system_uuid: read_trimmed("/sys/class/dmi/id/product_uuid"),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
            kernel_version: read_trimmed("/proc/sys/kernel/osrelease"),
            os_image,
        }
    }
}

/// The architecture under Go's name (`GOARCH`), as `kubernetes.io/arch`
/// and `nodeInfo.architecture` use it.
pub fn go_arch() -> &'static str {
    go_arch_of(std::env::consts::ARCH)
}

/// Rust's architecture names mapped to Go's.
pub fn go_arch_of(rust_arch: &'static str) -> &'static str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "loongarch64" => "loong64",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hugepages_from_a_fake_sysfs() {
        let dir = tempfile::tempdir().unwrap();
        let two = dir.path().join("hugepages-2048kB");
        std::fs::create_dir(&two).unwrap();
        std::fs::write(two.join("nr_hugepages"), "16\n").unwrap();
        // A size whose count can't be read counts as 0.
        std::fs::create_dir(dir.path().join("hugepages-1048576kB")).unwrap();
        std::fs::create_dir(dir.path().join("other")).unwrap();
        assert_eq!(
            read_hugepages(dir.path()),
            vec![
                HugePages {
                    page_size: 2 << 20,
                    count: 16
                },
                HugePages {
                    page_size: 1 << 30,
                    count: 0
                },
            ]
        );
        assert!(read_hugepages(&dir.path().join("absent")).is_empty());
        assert_eq!(parse_hugepages_dir_name("hugepages-64kB"), Some(64 << 10));
        assert_eq!(parse_hugepages_dir_name("hugepages-x"), None);
    }

    #[test]
    fn os_release_pretty_name() {
        assert_eq!(
            parse_os_release("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"),
            "Debian GNU/Linux 12 (bookworm)"
        );
        assert_eq!(parse_os_release("PRETTY_NAME=Alpine"), "Alpine");
        assert_eq!(parse_os_release("NAME=x\n"), "Linux");
    }

    #[test]
    fn arch_names_are_go_names() {
        assert_eq!(go_arch_of("x86_64"), "amd64");
        assert_eq!(go_arch_of("aarch64"), "arm64");
        assert!(!go_arch().is_empty());
    }

    #[test]
    fn root_fs_capacity_of_a_missing_dir_is_its_parents() {
        let dir = tempfile::tempdir().unwrap();
        let here = fs_capacity(dir.path()).unwrap();
        assert!(here > 0);
        assert_eq!(fs_capacity(&dir.path().join("not/yet")), Some(here));
    }
}
