//! A fake CRI runtime for unit tests: an in-process gRPC server that speaks
//! `runtime.v1` on a unix socket, so code under test reaches it through an
//! ordinary [`RuntimeClient::connect`] and needs no test hooks of its own.
//!
//! ```no_run
//! # async fn demo() {
//! use test_support::fake_cri::{FakeRuntime, StopBehaviour};
//! let (fake, client) = FakeRuntime::start().await;
//! fake.set_stop_behaviour("nginx", StopBehaviour::IgnoresSigterm);
//! // ... drive the kubelet with `client`, then:
//! assert_eq!(fake.rpcs_of(&["StopContainer", "StopPodSandbox"]), ["StopContainer", "StopPodSandbox"]);
//! # }
//! ```
//!
//! What it models, after containerd's CRI plugin (2.x): the sandbox and
//! container state machines (created, running, exited; ready, not ready),
//! name reservation with containerd's error text, truncated-id lookup,
//! idempotent stop/remove, StopPodSandbox killing the pod's containers and
//! RemovePodSandbox removing them, the CRI list filters, exit codes (143
//! after SIGTERM, 137 after SIGKILL) and reasons (`Completed`, `Error`,
//! `OOMKilled`), pod IPs that vanish once the sandbox stops, images that
//! must be pulled before a container can use them, and container events
//! (for containers and for the sandbox itself) carrying the pod's status.
//! Timestamps and waits follow tokio's clock, so tests may pause time
//! (`#[tokio::test(start_paused = true)]` or `tokio::time::pause()`; the
//! test crate needs tokio's `test-util` feature in its dev-dependencies).
//!
//! What it does not: processes, logs (no log files are written), streaming
//! (Exec, Attach, PortForward), metrics, checkpoints and the list streams
//! answer Unimplemented; stats are all zeros; verbose `info` maps are
//! empty; registries, credentials and image layers do not exist (a pull
//! succeeds for any image in the known set); there is no CNI, cgroups or
//! seccomp validation, and the sandbox's own config is not checked beyond
//! metadata and runtime handler. RunPodSandbox needs no pulled pause image.
//!
//! The server runs on the test's own tokio runtime: [`crate::Pod`], whose
//! drop blocks the thread while it cleans up over a fresh connection, would
//! stall a current-thread test, so drive the fake with the client instead.
//!
//! Scripting and observation go through the [`FakeRuntime`] handle; a
//! pattern naming a container matches its id, its name or its image, and a
//! pattern naming an image matches the full reference or its last path
//! component (`busybox`).

mod behaviour;
mod images;
mod model;
mod runtime;
mod server;
mod shared;
#[cfg(test)]
mod tests;
mod views;

use std::sync::Arc;
use std::time::Duration;

use cri_client::RuntimeClient;
use cri_client::client::Timeouts;
use cri_proto::v1 as pb;
use tonic::Status;

use self::images::Image;
use self::shared::{Shared, container_matches};

/// Every RPC name the fake answers, for checking a test's spelling.
pub const RPCS: &[&str] = &[
    "Version",
    "RunPodSandbox",
    "StopPodSandbox",
    "RemovePodSandbox",
    "PodSandboxStatus",
    "ListPodSandbox",
    "StreamPodSandboxes",
    "CreateContainer",
    "StartContainer",
    "StopContainer",
    "RemoveContainer",
    "ListContainers",
    "StreamContainers",
    "ContainerStatus",
    "UpdateContainerResources",
    "ReopenContainerLog",
    "ExecSync",
    "Exec",
    "Attach",
    "PortForward",
    "ContainerStats",
    "ListContainerStats",
    "StreamContainerStats",
    "PodSandboxStats",
    "ListPodSandboxStats",
    "StreamPodSandboxStats",
    "UpdateRuntimeConfig",
    "Status",
    "CheckpointContainer",
    "GetContainerEvents",
    "ListMetricDescriptors",
    "ListPodSandboxMetrics",
    "StreamPodSandboxMetrics",
    "RuntimeConfig",
    "UpdatePodSandboxResources",
    "ListImages",
    "StreamImages",
    "ImageStatus",
    "PullImage",
    "RemoveImage",
    "ImageFsInfo",
];

/// What a container does when StopContainer sends its stop signal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StopBehaviour {
    /// Dies of the signal at once: exit code 143.
    #[default]
    ExitsOnSigterm,
    /// Handles the signal and exits at once with this code.
    ExitsOnSigtermWith(i32),
    /// Keeps running through the whole grace period (`timeout` seconds of
    /// tokio time), then is SIGKILLed: exit code 137.
    IgnoresSigterm,
}

/// What a scripted ExecSync answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecResult {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// How long the command runs; longer than the request's timeout gives
    /// DeadlineExceeded after the timeout.
    pub delay: Duration,
}

impl ExecResult {
    pub fn exit(code: i32) -> Self {
        ExecResult {
            exit_code: code,
            ..Default::default()
        }
    }

    pub fn stdout(text: &str) -> Self {
        ExecResult {
            stdout: text.as_bytes().to_vec(),
            ..Default::default()
        }
    }
}

/// One call the fake received, logged on arrival.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The CRI method, e.g. `StopContainer`.
    pub rpc: &'static str,
    /// What it was about: the container or sandbox id, the image reference,
    /// `namespace/name` for RunPodSandbox, the container's name for
    /// CreateContainer; empty for calls about nothing in particular.
    pub key: String,
    /// The container's name or the pod's `namespace/name` when the key was
    /// an existing container or sandbox id at the time of the call.
    pub name: Option<String>,
    /// More: `timeout=30` for StopContainer, the command for ExecSync,
    /// `pod=<id>` for CreateContainer.
    pub detail: String,
}

/// The test's handle on a running fake. Clones share the fake; the server
/// stops (and its socket goes away) when the last clone is dropped.
#[derive(Clone)]
pub struct FakeRuntime {
    shared: Arc<Shared>,
    server: Arc<server::ServerGuard>,
}

fn check_rpc(rpc: &str) {
    assert!(
        RPCS.contains(&rpc),
        "{rpc:?} is not a CRI method the fake knows (see fake_cri::RPCS)"
    );
}

impl FakeRuntime {
    /// Starts a fake on the current tokio runtime with the test images
    /// ([`crate::busybox_image`], [`crate::pause_image`]) known but not yet
    /// pulled, and a client with default deadlines.
    pub async fn start() -> (FakeRuntime, RuntimeClient) {
        Self::start_with(Timeouts::default()).await
    }

    pub async fn start_with(timeouts: Timeouts) -> (FakeRuntime, RuntimeClient) {
        let shared = Arc::new(Shared::new());
        let server = Arc::new(server::serve(Arc::clone(&shared)));
        let fake = FakeRuntime { shared, server };
        fake.add_known_image(&crate::busybox_image());
        fake.add_known_image(&crate::pause_image());
        let client = fake.connect(timeouts).await;
        (fake, client)
    }

    /// `unix:///tmp/berth-fake-cri-XXXX/fake.sock`.
    pub fn endpoint(&self) -> &str {
        &self.server.endpoint
    }

    /// Another client of this fake.
    pub async fn connect(&self, timeouts: Timeouts) -> RuntimeClient {
        RuntimeClient::connect(Some(self.endpoint()), timeouts)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the fake CRI runtime: {e}"))
    }

    // ---- images ----

    /// Lets PullImage fetch `reference`.
    pub fn add_known_image(&self, reference: &str) {
        let image = Image::new(reference);
        self.shared.update(|w| {
            w.model
                .known_images
                .entry(image.name.clone())
                .or_insert(image);
        });
    }

    /// Makes `reference` known and already pulled.
    pub fn preload_image(&self, reference: &str) {
        let image = Image::new(reference);
        self.shared.update(|w| {
            w.model.present.insert(image.name.clone());
            w.model
                .known_images
                .entry(image.name.clone())
                .or_insert(image);
        });
    }

    /// True when `reference` has been pulled (and not removed).
    pub fn image_present(&self, reference: &str) -> bool {
        self.shared.world().model.local_image(reference).is_some()
    }

    /// Pulls of images matching `pattern` take `delay` (tokio time).
    pub fn set_pull_delay(&self, pattern: &str, delay: Duration) {
        self.shared
            .update(|w| w.script.pull_delay.push((pattern.to_string(), delay)));
    }

    /// Pulls of images matching `pattern` wait until [`release_pulls`].
    ///
    /// [`release_pulls`]: Self::release_pulls
    pub fn hold_pulls(&self, pattern: &str) {
        self.shared
            .update(|w| w.script.held_pulls.push(pattern.to_string()));
    }

    pub fn release_pulls(&self, pattern: &str) {
        self.shared
            .update(|w| w.script.held_pulls.retain(|p| p != pattern));
    }

    // ---- containers ----

    /// How containers matching `pattern` react to StopContainer.
    pub fn set_stop_behaviour(&self, pattern: &str, behaviour: StopBehaviour) {
        self.shared
            .update(|w| w.script.stop.push((pattern.to_string(), behaviour)));
    }

    /// Containers matching `pattern` exit with `code` as soon as they start.
    pub fn set_exit_on_start(&self, pattern: &str, code: i32) {
        self.shared
            .update(|w| w.script.exit_on_start.push((pattern.to_string(), code)));
    }

    /// What ExecSync answers in containers matching `pattern`, for `cmd`
    /// exactly or (None) any command. Unscripted commands exit 0, silently.
    pub fn set_exec_result(&self, pattern: &str, cmd: Option<&[&str]>, result: ExecResult) {
        let cmd = cmd.map(|c| c.iter().map(|s| s.to_string()).collect());
        self.shared
            .update(|w| w.script.exec.push((pattern.to_string(), cmd, result)));
    }

    /// The running container `id_or_name` names: an id or unique id prefix
    /// (12 characters or more), else the newest running container of that
    /// name (or image).
    fn running_container(&self, id_or_name: &str) -> String {
        let w = self.shared.world();
        if let Some(c) = w.model.container_by_test_id(id_or_name) {
            return c.id.clone();
        }
        w.model
            .containers
            .values()
            .filter(|c| c.state == pb::ContainerState::ContainerRunning)
            .filter(|c| container_matches(id_or_name, c))
            .max_by_key(|c| c.created_at)
            .map(|c| c.id.clone())
            .unwrap_or_else(|| panic!("no running container matches {id_or_name:?}"))
    }

    /// The container's process exits on its own with `code`. Returns its id.
    /// Panics unless a matching container is running.
    pub fn exit_container(&self, id_or_name: &str, code: i32) -> String {
        self.end_container(id_or_name, code, None)
    }

    /// The kernel OOM-kills the container: exit 137, reason `OOMKilled`.
    pub fn oom_kill_container(&self, id_or_name: &str) -> String {
        self.end_container(id_or_name, model::SIGKILL_EXIT, Some("OOMKilled"))
    }

    fn end_container(&self, id_or_name: &str, code: i32, reason: Option<&str>) -> String {
        let id = self.running_container(id_or_name);
        let exited = self.shared.update(|w| w.model.exit(&id, code, reason));
        assert!(exited, "container {id} ({id_or_name:?}) is not running");
        id
    }

    /// The status of a container by id, id prefix (12 characters or more)
    /// or the newest of that name.
    pub fn container(&self, id_or_name: &str) -> Option<pb::ContainerStatus> {
        let w = self.shared.world();
        let c = w.model.container_by_test_id(id_or_name).or_else(|| {
            w.model
                .containers
                .values()
                .filter(|c| c.short_name() == id_or_name)
                .max_by_key(|c| c.created_at)
        })?;
        Some(w.model.container_status(c))
    }

    /// Statuses of every container, oldest first.
    pub fn containers(&self) -> Vec<pb::ContainerStatus> {
        let w = self.shared.world();
        let mut all: Vec<_> = w
            .model
            .containers
            .values()
            .map(|c| w.model.container_status(c))
            .collect();
        all.sort_by_key(|c| c.created_at);
        all
    }

    /// Statuses of every sandbox, oldest first.
    pub fn sandboxes(&self) -> Vec<pb::PodSandboxStatus> {
        let w = self.shared.world();
        let mut all: Vec<_> = w
            .model
            .sandboxes
            .values()
            .map(|s| w.model.sandbox_status(s))
            .collect();
        all.sort_by_key(|s| s.created_at);
        all
    }

    // ---- faults and runtime state ----

    /// The next call of `rpc` fails with `status` (queued: call it twice to
    /// fail the next two calls).
    pub fn fail_next(&self, rpc: &str, status: Status) {
        check_rpc(rpc);
        self.shared.update(|w| {
            w.script
                .fail_next
                .entry(rpc.to_string())
                .or_default()
                .push_back(status);
        });
    }

    /// Every call of `rpc` waits `latency` (tokio time) before it is served.
    pub fn set_latency(&self, rpc: &str, latency: Duration) {
        check_rpc(rpc);
        self.shared
            .update(|w| w.script.latency.insert(rpc.to_string(), latency));
    }

    /// GetContainerEvents answers Unimplemented, as containerd 1.6 does.
    pub fn set_events_unimplemented(&self, unimplemented: bool) {
        self.shared
            .update(|w| w.script.events_unimplemented = unimplemented);
    }

    /// The `RuntimeReady` condition Status reports.
    pub fn set_runtime_ready(&self, ready: bool, reason: &str, message: &str) {
        let cond = (ready, reason.to_string(), message.to_string());
        self.shared.update(|w| w.script.runtime_ready = cond);
    }

    /// The `NetworkReady` condition Status reports.
    pub fn set_network_ready(&self, ready: bool, reason: &str, message: &str) {
        let cond = (ready, reason.to_string(), message.to_string());
        self.shared.update(|w| w.script.network_ready = cond);
    }

    pub fn set_cgroup_driver(&self, driver: pb::CgroupDriver) {
        self.shared.update(|w| w.script.cgroup_driver = driver);
    }

    // ---- observation ----

    /// Every call so far, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.world().counters.log.clone()
    }

    /// The calls of the named methods, in order: for asserting the order of
    /// lifecycle calls while ignoring polling (Status, List*...).
    pub fn calls_of(&self, rpcs: &[&str]) -> Vec<Call> {
        rpcs.iter().for_each(|r| check_rpc(r));
        self.calls()
            .into_iter()
            .filter(|c| rpcs.contains(&c.rpc))
            .collect()
    }

    /// Like [`calls_of`](Self::calls_of), only the method names.
    pub fn rpcs_of(&self, rpcs: &[&str]) -> Vec<&'static str> {
        self.calls_of(rpcs).into_iter().map(|c| c.rpc).collect()
    }

    pub fn clear_calls(&self) {
        self.shared.update(|w| w.counters.log.clear());
    }

    /// How many calls of `rpc` arrived (not reset by `clear_calls`).
    pub fn call_count(&self, rpc: &str) -> usize {
        check_rpc(rpc);
        self.count(|c| c.calls.get(rpc).copied())
    }

    /// Calls of `rpc` being served right now.
    pub fn in_flight(&self, rpc: &str) -> usize {
        check_rpc(rpc);
        self.count(|c| c.in_flight.get(rpc).copied())
    }

    /// Calls of `rpc` whose caller went away (or whose deadline passed)
    /// before the fake answered.
    pub fn cancelled(&self, rpc: &str) -> usize {
        check_rpc(rpc);
        self.count(|c| c.cancelled.get(rpc).copied())
    }

    fn count(&self, f: impl FnOnce(&shared::Counters) -> Option<usize>) -> usize {
        f(&self.shared.world().counters).unwrap_or(0)
    }

    /// Waits until `pred` holds, re-checking after every change to the fake.
    /// Panics, naming `what`, after 60 s of tokio time (at once under paused
    /// time when nothing else can happen).
    pub async fn wait_until(&self, what: &str, mut pred: impl FnMut(&FakeRuntime) -> bool) {
        let mut changed = self.shared.subscribe();
        let wait = async {
            while !pred(self) {
                if changed.changed().await.is_err() {
                    return;
                }
            }
        };
        if tokio::time::timeout(Duration::from_secs(60), wait)
            .await
            .is_err()
        {
            panic!("fake CRI: timed out waiting until {what}");
        }
    }
}
