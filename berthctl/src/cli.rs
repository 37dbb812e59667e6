//! berthctl's command line: crictl's commands and flags, plus `tree` and
//! `trace`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "berthctl",
    version,
    about = "A crictl-compatible client for CRI runtimes, from the Berth project",
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Runtime endpoint (unix:///path or a path). Default: the first of
    /// containerd, CRI-O and cri-dockerd's sockets that answers.
    #[arg(short = 'r', long, env = "CONTAINER_RUNTIME_ENDPOINT")]
    pub runtime_endpoint: Option<String>,
    /// Image service endpoint; the runtime endpoint when unset.
    #[arg(short = 'i', long, env = "IMAGE_SERVICE_ENDPOINT")]
    pub image_endpoint: Option<String>,
    /// Timeout for connecting and for each quick call (e.g. 2s, 500ms, 1m).
    #[arg(short = 't', long, value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Log every CRI call with its duration, and other debug output.
    #[arg(short = 'D', long)]
    pub debug: bool,
    /// crictl-style config file.
    #[arg(short = 'c', long, env = "CRI_CONFIG_FILE", default_value = crate::config::DEFAULT_CONFIG)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

/// Accepts Go-style durations (`2s`, `500ms`, `1m30s`) and, as crictl's
/// config file does, a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Attach to a running container.
    Attach(AttachArgs),
    /// Create a new container in a pod sandbox.
    Create(CreateArgs),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// Show the status of one or more containers.
    Inspect(InspectArgs),
    /// Fetch the logs of a container.
    Logs(LogsArgs),
    /// Forward local ports to a pod sandbox.
    PortForward(PortForwardArgs),
    /// List containers.
    Ps(PsArgs),
    /// Remove one or more containers.
    Rm(RmArgs),
    /// Run a new container inside a new sandbox.
    Run(RunArgs),
    /// Start one or more created containers.
    Start(IdsArgs),
    /// Stop one or more running containers.
    Stop(StopArgs),
    /// Update the resources of one or more running containers.
    Update(UpdateArgs),
    /// Show container resource usage.
    Stats(StatsArgs),
    /// Run a new pod sandbox.
    Runp(RunpArgs),
    /// Stop one or more running pod sandboxes.
    Stopp(IdsArgs),
    /// Remove one or more pod sandboxes.
    Rmp(RmArgs),
    /// Show the status of one or more pod sandboxes.
    Inspectp(InspectArgs),
    /// List pod sandboxes.
    Pods(PodsArgs),
    /// Show pod sandbox resource usage.
    Statsp(StatspArgs),
    /// Show pod sandbox metrics (ListPodSandboxMetrics).
    Metricsp(OutputArgs),
    /// List images.
    #[command(alias = "img")]
    Images(ImagesArgs),
    /// Show the status of one or more images.
    Inspecti(InspectArgs),
    /// Show image filesystem usage.
    Imagefsinfo(OutputArgs),
    /// Pull an image from a registry.
    Pull(PullArgs),
    /// Remove one or more images.
    Rmi(RmiArgs),
    /// Checkpoint one or more running containers.
    Checkpoint(CheckpointArgs),
    /// Show the runtime's name and version.
    Version(OutputArgs),
    /// Show the runtime's status and configuration.
    Info(OutputArgs),
    /// Show the runtime's configuration (RuntimeConfig).
    RuntimeConfig(OutputArgs),
    /// Stream container events.
    Events(OutputArgs),
    /// Get and set berthctl (crictl) configuration options.
    Config(ConfigArgs),
    /// Print a shell completion script.
    Completion(CompletionArgs),
    /// Show every pod with its sandbox and containers in one view.
    Tree(TreeArgs),
    /// Serve a CRI proxy on SOCKET that forwards to the runtime and prints
    /// every call.
    Trace(TraceArgs),
}

#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Output format: json, yaml or table.
    #[arg(short = 'o', long, default_value = "")]
    pub output: String,
}

#[derive(Args, Debug)]
pub struct IdsArgs {
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
}

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// Keep stdin open.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Allocate a TTY (must match how the container was created).
    #[arg(short = 't', long)]
    pub tty: bool,
    #[arg(value_name = "CONTAINER-ID")]
    pub id: String,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    #[arg(value_name = "POD-ID")]
    pub pod: String,
    #[arg(value_name = "container-config.[json|yaml]")]
    pub container_config: PathBuf,
    #[arg(value_name = "pod-config.[json|yaml]")]
    pub pod_config: PathBuf,
    #[command(flatten)]
    pub pull: PullOpts,
}

#[derive(Args, Debug, Clone, Default)]
pub struct PullOpts {
    /// Don't pull the image before creating (crictl's default for create).
    #[arg(long)]
    pub no_pull: bool,
    /// Pull the image before creating.
    #[arg(long)]
    pub with_pull: bool,
    /// Registry credentials, USERNAME[:PASSWORD].
    #[arg(long)]
    pub creds: Option<String>,
    /// Registry auth, base64 of USERNAME:PASSWORD.
    #[arg(long)]
    pub auth: Option<String>,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Run with ExecSync and print the output when it ends.
    #[arg(short = 's', long)]
    pub sync: bool,
    /// ExecSync timeout in seconds (0: none).
    #[arg(long, default_value_t = 0)]
    pub timeout: i64,
    /// Pass stdin to the command.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    #[arg(value_name = "CONTAINER-ID")]
    pub id: String,
    #[arg(
        value_name = "COMMAND",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub cmd: Vec<String>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    #[command(flatten)]
    pub out: OutputArgs,
    /// Only print the status, not the runtime's verbose info.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow the log, across rotations, until the container exits or Ctrl-C.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Print the logs of the previous instance of the container.
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Only logs newer than a relative duration (5s, 2m) or an RFC3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// Number of lines to show from the end (-1: all).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub tail: i64,
    /// Prefix each line with its timestamp.
    #[arg(long = "timestamps")]
    pub timestamps: bool,
    /// Stop after this many bytes (0 or less: no limit).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub limit_bytes: i64,
    /// Only this stream: stdout or stderr (default both).
    #[arg(long)]
    pub stream: Option<String>,
    #[arg(value_name = "CONTAINER-ID")]
    pub id: String,
}

#[derive(Args, Debug)]
pub struct PortForwardArgs {
    #[arg(value_name = "POD-ID")]
    pub pod: String,
    /// [LOCAL_PORT:]REMOTE_PORT
    #[arg(required = true, value_name = "[LOCAL_PORT:]REMOTE_PORT")]
    pub ports: Vec<String>,
    /// Local address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub address: String,
}

/// Filters shared by `ps` and `pods`.
#[derive(Args, Debug, Clone, Default)]
pub struct ListFilter {
    /// Filter by ID (prefix).
    #[arg(long)]
    pub id: Option<String>,
    /// Filter by name (regular expression).
    #[arg(long)]
    pub name: Option<String>,
    /// Filter by label KEY=VALUE (repeatable).
    #[arg(long)]
    pub label: Vec<String>,
    /// Filter by state.
    #[arg(long)]
    pub state: Option<String>,
    /// Filter by pod namespace (regular expression).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Show only the most recently created one.
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Show the N most recently created.
    #[arg(short = 'n', long, default_value_t = 0)]
    pub last: usize,
    /// Only print IDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Output format: json, yaml or table.
    #[arg(short = 'o', long, default_value = "table")]
    pub output: String,
    /// Don't truncate IDs.
    #[arg(long)]
    pub no_trunc: bool,
    /// Verbose output.
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    #[command(flatten)]
    pub filter: ListFilter,
    /// Show all containers, not only running ones.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Filter by pod sandbox ID (prefix).
    #[arg(short = 'p', long)]
    pub pod: Option<String>,
    /// Filter by image.
    #[arg(long)]
    pub image: Option<String>,
}

#[derive(Args, Debug)]
pub struct PodsArgs {
    #[command(flatten)]
    pub filter: ListFilter,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Stop running ones first.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove all of them.
    #[arg(short = 'a', long)]
    pub all: bool,
    #[arg(value_name = "ID")]
    pub ids: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[arg(value_name = "container-config.[json|yaml]")]
    pub container_config: PathBuf,
    #[arg(value_name = "pod-config.[json|yaml]")]
    pub pod_config: PathBuf,
    /// Runtime handler for the sandbox.
    #[arg(long, default_value = "")]
    pub runtime: String,
    #[command(flatten)]
    pub pull: PullOpts,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before killing the container.
    #[arg(long, default_value_t = 0)]
    pub timeout: i64,
    #[arg(required = true, value_name = "CONTAINER-ID")]
    pub ids: Vec<String>,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    #[arg(long)]
    pub cpu_period: Option<i64>,
    #[arg(long)]
    pub cpu_quota: Option<i64>,
    #[arg(long)]
    pub cpu_share: Option<i64>,
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Memory limit in bytes.
    #[arg(long)]
    pub memory: Option<i64>,
    #[arg(required = true, value_name = "CONTAINER-ID")]
    pub ids: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Show all containers (default: running ones).
    #[arg(short = 'a', long)]
    pub all: bool,
    #[arg(long)]
    pub id: Option<String>,
    #[arg(long)]
    pub label: Vec<String>,
    #[arg(short = 'p', long)]
    pub pod: Option<String>,
    #[command(flatten)]
    pub out: OutputArgs,
    /// Sample interval for CPU %, seconds.
    #[arg(short = 's', long, default_value_t = 1)]
    pub seconds: u64,
    /// Refresh continuously.
    #[arg(short = 'w', long)]
    pub watch: bool,
    #[arg(value_name = "ID")]
    pub filter_id: Option<String>,
}

#[derive(Args, Debug)]
pub struct StatspArgs {
    #[arg(long)]
    pub id: Option<String>,
    #[arg(long)]
    pub label: Vec<String>,
    #[command(flatten)]
    pub out: OutputArgs,
    #[arg(short = 's', long, default_value_t = 1)]
    pub seconds: u64,
    #[arg(short = 'w', long)]
    pub watch: bool,
}

#[derive(Args, Debug)]
pub struct RunpArgs {
    #[arg(value_name = "pod-config.[json|yaml]")]
    pub pod_config: PathBuf,
    /// Runtime handler.
    #[arg(long, default_value = "")]
    pub runtime: String,
}

#[derive(Args, Debug)]
pub struct ImagesArgs {
    #[arg(long)]
    pub digests: bool,
    #[arg(long)]
    pub no_trunc: bool,
    #[arg(long)]
    pub pinned: bool,
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[arg(short = 'v', long)]
    pub verbose: bool,
    #[arg(short = 'o', long, default_value = "table")]
    pub output: String,
    /// Only images matching REPOSITORY[:TAG].
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub filter: Option<String>,
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Registry credentials, USERNAME[:PASSWORD].
    #[arg(long)]
    pub creds: Option<String>,
    /// Registry auth, base64 of USERNAME:PASSWORD.
    #[arg(long)]
    pub auth: Option<String>,
    /// Registry user name (password from --password or asked for).
    #[arg(long)]
    pub username: Option<String>,
    #[arg(long)]
    pub password: Option<String>,
    /// Pod sandbox config to pull for (runtime handler, annotations).
    #[arg(long)]
    pub pod_config: Option<PathBuf>,
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Remove all images (pinned ones are kept).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Remove images no container uses (pinned ones are kept).
    #[arg(long)]
    pub prune: bool,
    #[arg(value_name = "IMAGE-ID")]
    pub ids: Vec<String>,
}

#[derive(Args, Debug)]
pub struct CheckpointArgs {
    /// Where to write the checkpoint archive.
    #[arg(long)]
    pub export: String,
    #[arg(required = true, value_name = "CONTAINER-ID")]
    pub ids: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// Print the value of KEY.
    #[arg(long, value_name = "KEY")]
    pub get: Option<String>,
    /// Set KEY=VALUE (repeatable, or comma-separated).
    #[arg(long, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// List all keys and values.
    #[arg(short = 'l', long)]
    pub list: bool,
    /// `config KEY VALUE` sets, `config KEY` gets, as crictl.
    #[arg(value_name = "ARGS")]
    pub args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct CompletionArgs {
    /// bash, zsh or fish.
    #[arg(default_value = "bash")]
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
pub struct TreeArgs {
    #[command(flatten)]
    pub out: OutputArgs,
    /// Filter by pod namespace (regular expression).
    #[arg(long)]
    pub namespace: Option<String>,
}

#[derive(Args, Debug)]
pub struct TraceArgs {
    /// Socket to serve the proxy on.
    #[arg(long, value_name = "SOCKET")]
    pub listen: PathBuf,
}
