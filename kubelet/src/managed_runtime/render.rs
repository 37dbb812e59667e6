//! containerd's config file and the default CNI network, as the managed instance uses them.

use std::path::Path;

use super::{BRIDGE, ManagedOptions, ManagedRuntimeError, POD_SUBNET, Result, SOCKET, STATE_DIR};

/// Generates containerd 1.6's config (version 2) for the managed instance.
pub fn containerd_config(opts: &ManagedOptions, restrict_oom_score_adj: bool) -> String {
    let root = opts.containerd_root();
    let q = |p: &Path| toml_str(&p.to_string_lossy());
    let cri = "plugins.\"io.containerd.grpc.v1.cri\"";
    format!(
        r#"# Written by berth for its managed containerd; rewritten at every start.
version = 2
root = {root}
state = {state}

[grpc]
  address = {socket}

[plugins."io.containerd.internal.v1.opt"]
  path = {opt}

[{cri}]
  sandbox_image = {pause}
  # Without CAP_SYS_RESOURCE (e.g. in a user namespace or a restricted
  # container) lowering oom_score_adj fails; containerd then clamps instead.
  restrict_oom_score_adj = {restrict_oom_score_adj}

[{cri}.containerd]
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  # The cgroupfs driver, as the kubelet's default cgroupDriver.
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = {cni_bin}
  conf_dir = {cni_conf}

# The project's local registry serves plain HTTP on localhost:5000.
[{cri}.registry.mirrors."localhost:5000"]
  endpoint = ["http://localhost:5000"]
"#,
        root = q(&root),
        state = toml_str(STATE_DIR),
        socket = toml_str(SOCKET),
        opt = q(&root.join("opt")),
        pause = toml_str(&opts.pause_image),
        cni_bin = q(&opts.cni_bin_dir),
        cni_conf = q(&opts.cni_conf_dir()),
    )
}

/// The pod network written when the CNI conf dir has no network yet:
/// bridge + host-local, then portmap for hostPort. No loopback plugin:
/// containerd's CRI brings up `lo` in every sandbox itself.
pub fn default_cni_conflist(opts: &ManagedOptions) -> String {
    let data_dir = opts.containerd_root().join("cni").join("networks");
    let data_dir = data_dir.to_string_lossy();
    let conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "berth",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": POD_SUBNET }]],
                    "routes": [{ "dst": "0.0.0.0/0" }],
                    "dataDir": data_dir,
                }
            },
            { "type": "portmap", "capabilities": { "portMappings": true } }
        ]
    });
    // Serialising a json! value cannot fail; fall back to compact just in case.
    serde_json::to_string_pretty(&conf).unwrap_or_else(|_| conf.to_string())
}

/// Writes the default network unless the user already put one there.
pub(super) fn write_default_cni_conf(opts: &ManagedOptions) -> Result<()> {
    let dir = opts.cni_conf_dir();
    let entries = std::fs::read_dir(&dir).map_err(|source| ManagedRuntimeError::Io {
        path: dir.clone(),
        source,
    })?;
    let has_network = entries.filter_map(|e| e.ok()).any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        [".conflist", ".conf", ".json"]
            .iter()
            .any(|ext| name.ends_with(ext))
    });
    if has_network {
        return Ok(());
    }
    write_file(
        &dir.join("10-berth.conflist"),
        default_cni_conflist(opts).as_bytes(),
    )
}

pub(super) fn write_file(path: &Path, data: &[u8]) -> Result<()> {
    // Write-then-rename so a crash never leaves containerd a torn file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| ManagedRuntimeError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// A TOML basic string.
pub(super) fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
