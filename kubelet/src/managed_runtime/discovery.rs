//! Finding a containerd that is already running, and what it may do.

use std::path::Path;

use super::SYSTEM_CONTAINERD_SOCKET;

/// Whether capability `cap` is in the `CapEff` mask of a
/// `/proc/<pid>/status` text; `None` if the line is missing or malformed.
pub fn cap_effective_has(status: &str, cap: u32) -> Option<bool> {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    let mask = u64::from_str_radix(hex, 16).ok()?;
    Some(cap < 64 && mask & (1u64 << cap) != 0)
}

/// A containerd process found in /proc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningContainerd {
    pub pid: u32,
    /// Its gRPC socket, from its command line or config file, or the default.
    pub socket: String,
}

/// The first process under `proc_root` whose command name is exactly
/// `containerd` (shims are `containerd-shim*`, so they do not match).
pub fn find_running_containerd(proc_root: &Path) -> Option<RunningContainerd> {
    let mut pids: Vec<u32> = std::fs::read_dir(proc_root)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.into_iter().find_map(|pid| {
        let dir = proc_root.join(pid.to_string());
        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
        if comm.trim_end() != "containerd" {
            return None;
        }
        // A zombie (exited, not yet reaped) manages nothing.
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        if stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        {
            return None;
        }
        let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        Some(RunningContainerd {
            pid,
            socket: socket_from_args(&args),
        })
    })
}

/// containerd's socket from its arguments: `--address`/`-a`, else the
/// `[grpc] address` of its `--config`/`-c` file, else the default.
pub(super) fn socket_from_args(args: &[String]) -> String {
    let value_of = |long: &str, short: &str| -> Option<String> {
        let mut it = args.iter().skip(1);
        while let Some(a) = it.next() {
            for name in [long, short] {
                if a == name {
                    return it.next().cloned();
                }
                if let Some(v) = a.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
                    return Some(v.to_string());
                }
            }
        }
        None
    };
    if let Some(addr) = value_of("--address", "-a") {
        return addr;
    }
    let config = value_of("--config", "-c").unwrap_or_else(|| "/etc/containerd/config.toml".into());
    read_small(Path::new(&config))
        .and_then(|text| grpc_address_in_config(&text))
        .unwrap_or_else(|| SYSTEM_CONTAINERD_SOCKET.to_string())
}

pub(super) fn read_small(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(1024 * 1024)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// The `address` key of the `[grpc]` table, read line by line; enough for
/// naming a socket in an error message.
pub(super) fn grpc_address_in_config(text: &str) -> Option<String> {
    let mut in_grpc = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_grpc = line == "[grpc]";
            continue;
        }
        if !in_grpc {
            continue;
        }
        if let Some((key, value)) = line.split_once('=')
            && key.trim() == "address"
        {
            let v = value.trim().trim_matches(|c| c == '"' || c == '\'');
            return (!v.is_empty()).then(|| v.to_string());
        }
    }
    None
}
