//! A containerd that berth starts and owns, as k3s does, for machines where
//! no runtime is configured or listening.
//!
//! Layout (the socket lives under /run because unix socket paths are
//! limited to 108 bytes and `--root-dir` may be long):
//! - root:   `<root_dir>/containerd` (also holds `config.toml`,
//!   `containerd.log` and `cni/net.d`)
//! - state:  [`STATE_DIR`]
//! - socket: [`SOCKET`]
//!
//! Only one containerd may run on a machine: two of them fight over
//! /run/netns. So [`ManagedContainerd::start`] refuses when any other
//! containerd process exists, and names it.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use cri_client::RuntimeClient;
use cri_client::client::Timeouts;
use cri_client::proto::v1 as pb;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};

/// containerd's state directory (sockets, task state); tmpfs.
pub const STATE_DIR: &str = "/run/berth/containerd";
/// The managed containerd's gRPC socket.
pub const SOCKET: &str = "/run/berth/containerd/containerd.sock";
/// The socket a system containerd listens on when not told otherwise.
pub const SYSTEM_CONTAINERD_SOCKET: &str = "/run/containerd/containerd.sock";
/// Berth's own pause image, under the name the test environment's local
/// registry publishes it as.
pub const DEFAULT_PAUSE_IMAGE: &str = "localhost:5000/pause:latest";
/// Where a package would install the pause image's OCI layout.
pub const DEFAULT_PAUSE_IMAGE_LAYOUT: &str = "/usr/share/berth/images/pause";
/// The managed pod network. It differs from the test environment's
/// 10.88.0.0/16 (containerd's usual default) so the two never overlap.
pub const POD_SUBNET: &str = "10.89.0.0/16";
/// The bridge the managed pod network uses.
pub const BRIDGE: &str = "berth0";

/// Largest pause image layout berth will stream into `ctr import`.
const MAX_LAYOUT_BYTES: usize = 256 * 1024 * 1024;
/// Bit of CAP_SYS_RESOURCE in the capability sets.
const CAP_SYS_RESOURCE: u32 = 24;

/// Why the managed containerd could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ManagedRuntimeError {
    #[error(
        "another containerd is already running (pid {pid}, socket {socket}); only one containerd may manage \
         /run/netns on a machine, so berth will not start its own: stop that one, or use it with \
         --container-runtime-endpoint unix://{socket}"
    )]
    AlreadyRunning { pid: u32, socket: String },
    #[error("preparing {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("starting {}: {source}", bin.display())]
    Spawn {
        bin: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("containerd exited during startup ({status}); last lines of {}:\n{tail}", log.display())]
    Exited {
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error(
        "containerd did not answer on unix://{SOCKET} within {timeout:?} (last error: {last_error}); \
         last lines of {}:\n{tail}", log.display()
    )]
    NotReady {
        timeout: Duration,
        last_error: String,
        log: PathBuf,
        tail: String,
    },
    #[error(
        "the pause image {image} is not in the runtime, there is no OCI image layout at {layout} to import it \
         from, and pulling it failed: {pull_error}"
    )]
    NoPauseImage {
        image: String,
        layout: String,
        pull_error: String,
    },
    #[error("importing the pause image {image} from {}: {reason}", layout.display())]
    PauseImport {
        image: String,
        layout: PathBuf,
        reason: String,
    },
    #[error("asking the managed containerd for the pause image {image}: {source}")]
    Cri {
        image: String,
        #[source]
        source: cri_client::Error,
    },
}

type Result<T, E = ManagedRuntimeError> = std::result::Result<T, E>;

/// How to run the managed containerd.
#[derive(Debug, Clone)]
pub struct ManagedOptions {
    /// The kubelet's `--root-dir`; containerd's root is `<root_dir>/containerd`.
    pub root_dir: PathBuf,
    pub containerd_bin: PathBuf,
    /// `ctr`, used to import the pause image's layout.
    pub ctr_bin: PathBuf,
    /// containerd's `sandbox_image`.
    pub pause_image: String,
    /// An OCI image layout to import `pause_image` from when the runtime
    /// lacks it, so pods run without any registry.
    pub pause_image_layout: Option<PathBuf>,
    pub cni_bin_dir: PathBuf,
    /// How long containerd may take to answer CRI calls after starting.
    pub ready_timeout: Duration,
}

impl ManagedOptions {
    /// Defaults for a kubelet root dir. `BERTH_PAUSE_IMAGE` and
    /// `BERTH_PAUSE_IMAGE_LAYOUT` override the pause image and its layout.
    pub fn for_root_dir(root_dir: &Path) -> Self {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        ManagedOptions {
            root_dir: root_dir.to_path_buf(),
            containerd_bin: PathBuf::from("containerd"),
            ctr_bin: PathBuf::from("ctr"),
            pause_image: env("BERTH_PAUSE_IMAGE")
                .unwrap_or_else(|| DEFAULT_PAUSE_IMAGE.to_string()),
            pause_image_layout: Some(PathBuf::from(
                env("BERTH_PAUSE_IMAGE_LAYOUT")
                    .unwrap_or_else(|| DEFAULT_PAUSE_IMAGE_LAYOUT.to_string()),
            )),
            cni_bin_dir: PathBuf::from("/usr/lib/cni"),
            ready_timeout: Duration::from_secs(30),
        }
    }

    /// containerd's root directory.
    pub fn containerd_root(&self) -> PathBuf {
        self.root_dir.join("containerd")
    }

    pub fn config_path(&self) -> PathBuf {
        self.containerd_root().join("config.toml")
    }

    pub fn log_path(&self) -> PathBuf {
        self.containerd_root().join("containerd.log")
    }

    pub fn cni_conf_dir(&self) -> PathBuf {
        self.containerd_root().join("cni").join("net.d")
    }
}

/// A running containerd child process. Dropping it kills containerd
/// (best effort); [`stop`](Self::stop) shuts it down gracefully.
/// Either way, running pods survive in their shims.
#[derive(Debug)]
pub struct ManagedContainerd {
    child: Option<Child>,
    log_path: PathBuf,
}

impl ManagedContainerd {
    /// Writes containerd's config, starts it, waits until its CRI answers and
    /// makes sure the pause image is there.
    pub async fn start(opts: ManagedOptions) -> Result<ManagedContainerd> {
        if let Some(other) = find_running_containerd(Path::new("/proc")) {
            return Err(ManagedRuntimeError::AlreadyRunning {
                pid: other.pid,
                socket: other.socket,
            });
        }
        let root = opts.containerd_root();
        for dir in [root.clone(), PathBuf::from(STATE_DIR), opts.cni_conf_dir()] {
            std::fs::create_dir_all(&dir)
                .map_err(|source| ManagedRuntimeError::Io { path: dir, source })?;
        }
        let restrict_oom = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| cap_effective_has(&s, CAP_SYS_RESOURCE))
            // Unknown: restricting only clamps oom_score_adj, so it is the safe guess.
            .is_none_or(|has| !has);
        let config = containerd_config(&opts, restrict_oom);
        write_file(&opts.config_path(), config.as_bytes())?;
        write_default_cni_conf(&opts)?;

        let log_path = opts.log_path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| ManagedRuntimeError::Io {
                path: log_path.clone(),
                source,
            })?;
        let log_err = log.try_clone().map_err(|source| ManagedRuntimeError::Io {
            path: log_path.clone(),
            source,
        })?;
        tracing::info!(
            config = %opts.config_path().display(),
            log = %log_path.display(),
            restrict_oom_score_adj = restrict_oom,
            "starting managed containerd"
        );
        let child = Command::new(&opts.containerd_bin)
            .arg("--config")
            .arg(opts.config_path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Its own process group: a Ctrl-C at berth's terminal must not
            // reach containerd before berth has decided to stop it.
            .process_group(0)
            .spawn()
            .map_err(|source| ManagedRuntimeError::Spawn {
                bin: opts.containerd_bin.clone(),
                source,
            })?;
        // From here on, an early return drops `managed`, which kills containerd.
        let mut managed = ManagedContainerd {
            child: Some(child),
            log_path,
        };
        let client = managed.wait_ready(opts.ready_timeout).await?;
        ensure_pause_image(&client, &opts).await?;
        Ok(managed)
    }

    /// The CRI endpoint, `unix:///run/berth/containerd/containerd.sock`.
    pub fn endpoint(&self) -> String {
        format!("unix://{SOCKET}")
    }

    /// containerd's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// SIGTERM, then SIGKILL if containerd has not exited after 10 s.
    pub async fn stop(mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        match timeout(Duration::from_secs(10), child.wait()).await {
            Ok(Ok(status)) => tracing::info!(%status, "managed containerd exited"),
            Ok(Err(e)) => tracing::warn!("waiting for the managed containerd: {e}"),
            Err(_) => {
                tracing::warn!("managed containerd ignored SIGTERM for 10s; killing it");
                let _ = child.kill().await;
            }
        }
    }

    /// Polls the CRI every 100 ms until it answers, containerd exits, or
    /// `limit` passes.
    async fn wait_ready(&mut self, limit: Duration) -> Result<RuntimeClient> {
        let deadline = Instant::now() + limit;
        let timeouts = Timeouts {
            call: Duration::from_secs(2),
            ..Timeouts::default()
        };
        let endpoint = self.endpoint();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(ManagedRuntimeError::Exited {
                    status: status.to_string(),
                    log: self.log_path.clone(),
                    tail: log_tail(&self.log_path, 20),
                });
            }
            let last_error = match RuntimeClient::connect(Some(&endpoint), timeouts).await {
                Ok(client) => match client.version(pb::VersionRequest::default()).await {
                    Ok(v) => {
                        tracing::info!(
                            runtime = %format!("{} {}", v.runtime_name, v.runtime_version),
                            "managed containerd is ready"
                        );
                        return Ok(client);
                    }
                    Err(e) => e.to_string(),
                },
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(ManagedRuntimeError::NotReady {
                    timeout: limit,
                    last_error,
                    log: self.log_path.clone(),
                    tail: log_tail(&self.log_path, 20),
                });
            }
            sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for ManagedContainerd {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

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
fn write_default_cni_conf(opts: &ManagedOptions) -> Result<()> {
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

fn write_file(path: &Path, data: &[u8]) -> Result<()> {
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
fn toml_str(s: &str) -> String {
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
fn socket_from_args(args: &[String]) -> String {
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

fn read_small(path: &Path) -> Option<String> {
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
fn grpc_address_in_config(text: &str) -> Option<String> {
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

/// The last `n` lines of a log file (at most its last 64 KiB).
fn log_tail(path: &Path, n: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let read = || -> io::Result<String> {
        let mut f = std::fs::File::open(path)?;
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    match read() {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(cannot read the log: {e})"),
    }
}

async fn has_image(client: &RuntimeClient, image: &str) -> Result<bool> {
    let resp = client
        .image_status(pb::ImageStatusRequest {
            image: Some(image_spec(image)),
            verbose: false,
        })
        .await
        .map_err(|source| ManagedRuntimeError::Cri {
            image: image.to_string(),
            source,
        })?;
    Ok(resp.image.is_some())
}

fn image_spec(image: &str) -> pb::ImageSpec {
    pb::ImageSpec {
        image: image.to_string(),
        ..Default::default()
    }
}

/// Makes sure the runtime has the pause image: import it from the OCI
/// layout if there is one, else try to pull it.
async fn ensure_pause_image(client: &RuntimeClient, opts: &ManagedOptions) -> Result<()> {
    let image = &opts.pause_image;
    if has_image(client, image).await? {
        return Ok(());
    }
    let layout = opts
        .pause_image_layout
        .as_ref()
        .filter(|l| l.join("index.json").is_file());
    let Some(layout) = layout else {
        let pull = client.pull_image(pb::PullImageRequest {
            image: Some(image_spec(image)),
            ..Default::default()
        });
        let pull_error = match timeout(Duration::from_secs(120), pull).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out after 120s".to_string(),
        };
        return Err(ManagedRuntimeError::NoPauseImage {
            image: image.clone(),
            layout: opts.pause_image_layout.as_ref().map_or_else(
                || "(none configured)".to_string(),
                |l| l.display().to_string(),
            ),
            pull_error,
        });
    };
    tracing::info!(image, layout = %layout.display(), "importing the pause image");
    import_layout(&opts.ctr_bin, image, layout).await?;
    // The CRI plugin learns of imported images from containerd's events,
    // so it may take a moment to see it.
    for _ in 0..50 {
        if has_image(client, image).await? {
            return Ok(());
        }
        sleep(Duration::from_millis(100)).await;
    }
    Err(ManagedRuntimeError::PauseImport {
        image: image.clone(),
        layout: layout.to_path_buf(),
        reason: "ctr reported success, but ImageStatus still does not find the image".into(),
    })
}

/// `ctr -n k8s.io images import --base-name <repository> -`, fed the layout
/// as a tar stream (an OCI archive is a tar of the layout directory); ctr
/// names the image `<repository>:<the layout's ref name>`, and a different
/// tag is added with `ctr images tag`. (`--index-name` would leave the CRI
/// plugin with a dangling `import-<date>` name for the image.)
async fn import_layout(ctr: &Path, image: &str, layout: &Path) -> Result<()> {
    let fail = |reason: String| ManagedRuntimeError::PauseImport {
        image: image.to_string(),
        layout: layout.to_path_buf(),
        reason,
    };
    let dir = layout.to_path_buf();
    let archive = tokio::task::spawn_blocking(move || tar_layout(&dir))
        .await
        .map_err(|e| fail(format!("archiving the layout: {e}")))?
        .map_err(|e| fail(format!("archiving the layout: {e}")))?;
    let (repository, tag) = split_tag(image);
    let ref_name = layout_ref_name(layout).unwrap_or_else(|| "latest".to_string());
    let mut child = Command::new(ctr)
        .args([
            "--address",
            SOCKET,
            "-n",
            "k8s.io",
            "images",
            "import",
            "--base-name",
            repository,
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("starting {}: {e}", ctr.display())))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| fail("ctr has no stdin".into()))?;
    let write = async move {
        let r = stdin.write_all(&archive).await;
        drop(stdin);
        r
    };
    // Write and collect output together, so a chatty ctr cannot deadlock us.
    let run = async { tokio::join!(write, child.wait_with_output()) };
    let (written, output) = timeout(Duration::from_secs(120), run)
        .await
        .map_err(|_| fail("ctr did not finish within 120s".into()))?;
    let output = output.map_err(|e| fail(format!("waiting for ctr: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(fail(format!("ctr {}: {}", output.status, stderr.trim())));
    }
    written.map_err(|e| fail(format!("feeding ctr: {e}")))?;
    if tag != ref_name {
        let imported = format!("{repository}:{ref_name}");
        let out = Command::new(ctr)
            .args([
                "--address",
                SOCKET,
                "-n",
                "k8s.io",
                "images",
                "tag",
                "--force",
                &imported,
                image,
            ])
            .output()
            .await
            .map_err(|e| fail(format!("starting {}: {e}", ctr.display())))?;
        if !out.status.success() {
            return Err(fail(format!(
                "ctr images tag {imported} {image}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    Ok(())
}

/// `repo:tag` → (`repo`, `tag`); a reference without a tag means `latest`.
fn split_tag(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

/// The `org.opencontainers.image.ref.name` of the layout's first manifest.
fn layout_ref_name(layout: &Path) -> Option<String> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).ok()?).ok()?;
    index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
        .as_str()
        .map(str::to_string)
}

/// A tar of the layout directory's contents, with names relative to it.
fn tar_layout(dir: &Path) -> io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(CappedBuf(Vec::new()));
    builder.mode(tar::HeaderMode::Deterministic);
    let mut entries = std::fs::read_dir(dir)?.collect::<io::Result<Vec<_>>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        if entry.file_type()?.is_dir() {
            builder.append_dir_all(&name, entry.path())?;
        } else {
            builder.append_path_with_name(entry.path(), &name)?;
        }
    }
    Ok(builder.into_inner()?.0)
}

/// A Vec that refuses to grow past [`MAX_LAYOUT_BYTES`].
struct CappedBuf(Vec<u8>);

impl Write for CappedBuf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.0.len() + buf.len() > MAX_LAYOUT_BYTES {
            return Err(io::Error::other(format!(
                "the layout is larger than {MAX_LAYOUT_BYTES} bytes"
            )));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tags_and_layout_ref_names() {
        assert_eq!(
            split_tag("localhost:5000/pause:latest"),
            ("localhost:5000/pause", "latest")
        );
        assert_eq!(
            split_tag("localhost:5000/pause"),
            ("localhost:5000/pause", "latest")
        );
        assert_eq!(
            split_tag("registry.k8s.io/pause:3.9"),
            ("registry.k8s.io/pause", "3.9")
        );
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(layout_ref_name(dir.path()), None);
        std::fs::write(
            dir.path().join("index.json"),
            r#"{"manifests":[{"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}"#,
        )
        .unwrap();
        assert_eq!(layout_ref_name(dir.path()).as_deref(), Some("v1"));
    }

    /// Serialises the tests that run a process named `containerd` or call
    /// start(), which would otherwise see each other's processes.
    static CONTAINERD_PROCS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    fn opts(root: &Path) -> ManagedOptions {
        ManagedOptions {
            pause_image: "localhost:5000/pause:latest".into(),
            ..ManagedOptions::for_root_dir(root)
        }
    }

    #[test]
    fn config_names_its_own_paths_and_settings() {
        let o = opts(Path::new("/var/lib/kubelet"));
        let text = containerd_config(&o, true);
        for want in [
            "version = 2\n",
            "root = \"/var/lib/kubelet/containerd\"",
            "state = \"/run/berth/containerd\"",
            "address = \"/run/berth/containerd/containerd.sock\"",
            "path = \"/var/lib/kubelet/containerd/opt\"",
            "sandbox_image = \"localhost:5000/pause:latest\"",
            "restrict_oom_score_adj = true",
            "SystemdCgroup = false",
            "bin_dir = \"/usr/lib/cni\"",
            "conf_dir = \"/var/lib/kubelet/containerd/cni/net.d\"",
            "[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"localhost:5000\"]",
            "endpoint = [\"http://localhost:5000\"]",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
        assert!(containerd_config(&o, false).contains("restrict_oom_score_adj = false"));
        // The socket path fits a sockaddr_un, with room for containerd's ".ttrpc".
        assert!(SOCKET.len() + ".ttrpc".len() < 108);
    }

    #[test]
    fn config_strings_are_escaped() {
        let mut o = opts(Path::new("/srv/we\"ird\\dir"));
        o.pause_image = "a\nb".into();
        let text = containerd_config(&o, false);
        assert!(
            text.contains(r#"root = "/srv/we\"ird\\dir/containerd""#),
            "{text}"
        );
        assert!(text.contains(r#"sandbox_image = "a\nb""#), "{text}");
    }

    /// containerd itself parses the generated file (`config dump` loads the
    /// config and prints it without starting the daemon).
    #[test]
    fn containerd_accepts_the_generated_config() {
        let _serial = CONTAINERD_PROCS.blocking_lock();
        let dir = tempfile::tempdir().unwrap();
        let o = opts(dir.path());
        std::fs::create_dir_all(o.containerd_root()).unwrap();
        std::fs::write(o.config_path(), containerd_config(&o, true)).unwrap();
        let out = match std::process::Command::new("containerd")
            .arg("--config")
            .arg(o.config_path())
            .args(["config", "dump"])
            .output()
        {
            Ok(out) => out,
            Err(e) => panic!("containerd must be installed for this test: {e}"),
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("sandbox_image = \"localhost:5000/pause:latest\""),
            "{stdout}"
        );
        assert!(stdout.contains("restrict_oom_score_adj = true"), "{stdout}");
        assert!(
            stdout.contains(&format!("root = \"{}\"", o.containerd_root().display())),
            "{stdout}"
        );
        assert!(
            stdout.contains("address = \"/run/berth/containerd/containerd.sock\""),
            "{stdout}"
        );
    }

    #[test]
    fn default_cni_network_is_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let o = opts(dir.path());
        std::fs::create_dir_all(o.cni_conf_dir()).unwrap();
        write_default_cni_conf(&o).unwrap();
        let path = o.cni_conf_dir().join("10-berth.conflist");
        let conf: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(conf["plugins"][0]["type"], "bridge");
        assert_eq!(conf["plugins"][0]["bridge"], "berth0");
        assert_eq!(conf["plugins"][0]["ipam"]["type"], "host-local");
        assert_eq!(
            conf["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
            "10.89.0.0/16"
        );
        assert_eq!(conf["plugins"][1]["type"], "portmap");
        // A network the user wrote is left alone, and ours is not added.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(o.cni_conf_dir().join("05-mine.conflist"), "{}").unwrap();
        write_default_cni_conf(&o).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn cap_sys_resource_is_read_from_cap_eff() {
        let status = |eff: &str| {
            format!(
                "Name:\tberth\nCapInh:\t0000000000000000\nCapEff:\t{eff}\nCapBnd:\t000001ffffffffff\n"
            )
        };
        assert_eq!(
            cap_effective_has(&status("000001ffffffffff"), 24),
            Some(true)
        );
        // Docker's default set lacks CAP_SYS_RESOURCE (bit 24).
        assert_eq!(
            cap_effective_has(&status("00000000a80425fb"), 24),
            Some(false)
        );
        assert_eq!(
            cap_effective_has(&status("000001fffeffffff"), 24),
            Some(false)
        );
        assert_eq!(
            cap_effective_has(&status("0000000001000000"), 24),
            Some(true)
        );
        assert_eq!(cap_effective_has(&status("zz"), 24), None);
        assert_eq!(cap_effective_has("Name:\tx\n", 24), None);
        assert_eq!(
            cap_effective_has(&status("ffffffffffffffff"), 99),
            Some(false)
        );
    }

    fn fake_proc(entries: &[(u32, &str, &[&str])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("self")).unwrap();
        for (pid, comm, args) in entries {
            let p = dir.path().join(pid.to_string());
            std::fs::create_dir(&p).unwrap();
            std::fs::write(p.join("comm"), format!("{comm}\n")).unwrap();
            let mut cmdline = Vec::new();
            for a in *args {
                cmdline.extend_from_slice(a.as_bytes());
                cmdline.push(0);
            }
            std::fs::write(p.join("cmdline"), cmdline).unwrap();
        }
        dir
    }

    #[test]
    fn finds_containerd_but_not_its_shims() {
        let proc = fake_proc(&[
            (
                10,
                "containerd-shim",
                &["/usr/bin/containerd-shim-runc-v2", "-namespace", "k8s.io"],
            ),
            (20, "bash", &["bash"]),
        ]);
        assert_eq!(find_running_containerd(proc.path()), None);

        let proc = fake_proc(&[
            (10, "containerd-shim", &["/usr/bin/containerd-shim-runc-v2"]),
            (
                30,
                "containerd",
                &["containerd", "--address", "/run/berth-test/containerd.sock"],
            ),
        ]);
        assert_eq!(
            find_running_containerd(proc.path()),
            Some(RunningContainerd {
                pid: 30,
                socket: "/run/berth-test/containerd.sock".into()
            })
        );
    }

    #[test]
    fn socket_comes_from_flags_or_config() {
        let s = |args: &[&str]| {
            socket_from_args(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(s(&["containerd", "-a", "/x.sock"]), "/x.sock");
        assert_eq!(s(&["containerd", "--address=/y.sock"]), "/y.sock");
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        std::fs::write(
            &cfg,
            "version = 2\n[plugins.x]\n  address = \"/not/this\"\n[grpc]\n  uid = 0\n  address = \"/run/berth-test/containerd.sock\"\n",
        )
        .unwrap();
        assert_eq!(
            s(&["containerd", "--config", cfg.to_str().unwrap()]),
            "/run/berth-test/containerd.sock"
        );
        let cfg_flag = format!("-c={}", cfg.display());
        assert_eq!(
            s(&["containerd", &cfg_flag]),
            "/run/berth-test/containerd.sock"
        );
        assert_eq!(
            s(&["containerd", "-c", "/nonexistent.toml"]),
            SYSTEM_CONTAINERD_SOCKET
        );
    }

    /// Runs a harmless process whose command name is `containerd` (a copy of
    /// bash), and checks that start() refuses, naming its pid and socket,
    /// before touching anything.
    #[tokio::test]
    async fn start_refuses_while_another_containerd_runs() {
        let _serial = CONTAINERD_PROCS.lock().await;
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("containerd");
        std::fs::copy("/bin/bash", &fake).unwrap();
        let mut child = std::process::Command::new(&fake)
            .args([
                "-c",
                "sleep 30; true",
                "--address",
                "/run/fake-berth-test.sock",
            ])
            .spawn()
            .unwrap();
        let root = dir.path().join("root");
        let result = ManagedContainerd::start(opts(&root)).await;
        let _ = child.kill();
        let _ = child.wait();
        let e = result.unwrap_err().to_string();
        assert!(
            e.starts_with("another containerd is already running (pid "),
            "{e}"
        );
        // Another containerd (the test env's, or a parallel test's
        // `containerd config dump`) may be named instead; ours, if named,
        // must come with the socket from its command line.
        if e.contains(&format!("(pid {},", child.id())) {
            assert!(e.contains("socket /run/fake-berth-test.sock)"), "{e}");
        }
        assert!(!root.exists(), "start() wrote files before refusing");
    }

    /// A stand-in for containerd: a script (so no second containerd ever
    /// runs), whose output must land in containerd.log.
    fn fake_containerd(dir: &Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let bin = dir.join("fake-containerd");
        std::fs::write(&bin, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        bin
    }

    fn other_containerd_runs() -> bool {
        let found = find_running_containerd(Path::new("/proc"));
        if let Some(c) = &found {
            eprintln!(
                "skipping: containerd pid {} runs (socket {})",
                c.pid, c.socket
            );
        }
        found.is_some()
    }

    #[tokio::test]
    async fn a_containerd_that_exits_is_reported_with_its_log() {
        let _serial = CONTAINERD_PROCS.lock().await;
        if other_containerd_runs() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts(&dir.path().join("root"));
        o.containerd_bin =
            fake_containerd(dir.path(), "echo 'failed to load plugin: boom' >&2; exit 3");
        let e = ManagedContainerd::start(o.clone())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("containerd exited during startup (exit status: 3)"),
            "{e}"
        );
        assert!(
            e.contains("containerd.log") && e.ends_with("failed to load plugin: boom"),
            "{e}"
        );
        // The config and network were written before starting it.
        assert!(o.config_path().is_file());
        assert!(o.cni_conf_dir().join("10-berth.conflist").is_file());
    }

    #[tokio::test]
    async fn a_containerd_that_never_answers_times_out_and_is_killed() {
        let _serial = CONTAINERD_PROCS.lock().await;
        if other_containerd_runs() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts(&dir.path().join("root"));
        let pid_file = dir.path().join("pid");
        o.containerd_bin = fake_containerd(
            dir.path(),
            &format!(
                "echo $$ > {}; echo 'still loading'; exec sleep 30",
                pid_file.display()
            ),
        );
        o.ready_timeout = Duration::from_millis(500);
        let e = ManagedContainerd::start(o).await.unwrap_err().to_string();
        assert!(e.starts_with("containerd did not answer on unix:///run/berth/containerd/containerd.sock within 500ms"), "{e}");
        assert!(e.ends_with("still loading"), "{e}");
        // Dropping the half-started instance killed it.
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while Path::new(&format!("/proc/{pid}/cmdline")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "fake containerd {pid} still running"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn layout_is_archived_with_relative_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("index.json"), "{}").unwrap();
        std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        std::fs::write(dir.path().join("blobs/sha256/abc"), "blob").unwrap();
        let bytes = tar_layout(dir.path()).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .path()
                    .unwrap()
                    .to_string_lossy()
                    .trim_end_matches('/')
                    .to_string()
            })
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "blobs",
                "blobs/sha256",
                "blobs/sha256/abc",
                "index.json",
                "oci-layout"
            ]
        );
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("l.log");
        let text: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&log, text).unwrap();
        let tail = log_tail(&log, 3);
        assert_eq!(tail, "line 28\nline 29\nline 30");
        assert!(log_tail(&dir.path().join("missing"), 3).starts_with("(cannot read the log: "));
    }
}
