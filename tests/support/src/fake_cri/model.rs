//! The in-memory runtime: sandboxes, containers and images, and the state
//! transitions containerd's CRI plugin makes between them. Every method
//! runs under the fake's one lock and never waits; whatever has to wait
//! (grace periods, pull delays) lives in the service handlers.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cri_proto::v1 as pb;
use pb::{ContainerEventType as Ev, ContainerState as Cs, PodSandboxState as Ps};
use tokio::sync::broadcast;
use tonic::Status;

use super::images::Image;

/// Exit code of a process killed by SIGKILL, as containerd reports it.
pub(super) const SIGKILL_EXIT: i32 = 137;
/// Exit code of a process that died of SIGTERM.
pub(super) const SIGTERM_EXIT: i32 = 143;

pub(super) struct Sandbox {
    pub id: String,
    /// The reserved name, `<name>_<namespace>_<uid>_<attempt>`.
    pub name: String,
    pub config: pb::PodSandboxConfig,
    pub runtime_handler: String,
    pub state: Ps,
    pub created_at: i64,
    /// The address the fake CNI gave it; empty for host-network pods.
    pub ip: String,
}

impl Sandbox {
    pub fn host_network(&self) -> bool {
        self.namespace_options()
            .is_some_and(|o| o.network == pb::NamespaceMode::Node as i32)
    }

    pub fn namespace_options(&self) -> Option<&pb::NamespaceOption> {
        self.config
            .linux
            .as_ref()?
            .security_context
            .as_ref()?
            .namespace_options
            .as_ref()
    }

    /// `namespace/name` of the pod, for the call log.
    pub fn pod_name(&self) -> String {
        let m = self.config.metadata.clone().unwrap_or_default();
        format!("{}/{}", m.namespace, m.name)
    }
}

pub(super) struct Container {
    pub id: String,
    pub sandbox_id: String,
    /// The reserved name, `<name>_<pod>_<namespace>_<uid>_<attempt>`.
    pub name: String,
    pub config: pb::ContainerConfig,
    pub state: Cs,
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    /// The image as it was resolved at creation.
    pub image: Image,
    pub log_path: String,
    pub resources: Option<pb::LinuxContainerResources>,
}

impl Container {
    pub fn short_name(&self) -> &str {
        self.config
            .metadata
            .as_ref()
            .map_or("", |m| m.name.as_str())
    }

    pub fn image_ref(&self) -> &str {
        self.config.image.as_ref().map_or("", |i| i.image.as_str())
    }
}

/// Wall-clock nanoseconds that follow tokio's clock, so a test with paused
/// time sees `finished_at - started_at` equal the (virtual) grace period.
/// Strictly increasing: two objects never share a creation time.
struct Clock {
    base_unix: i64,
    base: tokio::time::Instant,
    last: i64,
}

impl Clock {
    fn new() -> Self {
        let base_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        Clock {
            base_unix,
            base: tokio::time::Instant::now(),
            last: 0,
        }
    }

    fn now(&mut self) -> i64 {
        let elapsed = i64::try_from(self.base.elapsed().as_nanos()).unwrap_or(i64::MAX);
        let t = self.base_unix.saturating_add(elapsed).max(self.last + 1);
        self.last = t;
        t
    }
}

/// 64-hex ids, as containerd makes them, from a seeded splitmix64.
pub(super) struct Ids(u64);

impl Ids {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Ids(nanos ^ (u64::from(std::process::id()) << 32))
    }

    pub fn next(&mut self) -> String {
        (0..4)
            .map(|_| {
                self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
                format!("{:016x}", mix(self.0))
            })
            .collect()
    }
}

pub(super) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub(super) fn container_not_found(id: &str) -> Status {
    Status::not_found(format!(
        "an error occurred when try to find container {id:?}: not found"
    ))
}

pub(super) fn sandbox_not_found(id: &str) -> Status {
    Status::not_found(format!(
        "an error occurred when try to find sandbox {id:?}: not found"
    ))
}

/// containerd's name for a state in its messages.
pub(super) fn state_name(s: Cs) -> &'static str {
    s.as_str_name()
}

/// The id `id` names: itself, or the one id it is a unique prefix of
/// (containerd's truncated-id index). Empty or ambiguous names nothing.
pub(super) fn resolve<V>(map: &BTreeMap<String, V>, id: &str) -> Option<String> {
    if id.is_empty() {
        return None;
    }
    if map.contains_key(id) {
        return Some(id.to_string());
    }
    let mut hits = map
        .range(id.to_string()..)
        .take_while(|(k, _)| k.starts_with(id));
    match (hits.next(), hits.next()) {
        (Some((k, _)), None) => Some(k.clone()),
        _ => None,
    }
}

pub(super) fn labels_match(
    labels: &HashMap<String, String>,
    selector: &HashMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

pub(super) struct Model {
    pub sandboxes: BTreeMap<String, Sandbox>,
    pub containers: BTreeMap<String, Container>,
    sandbox_names: HashMap<String, String>,
    container_names: HashMap<String, String>,
    /// Images that a pull can fetch, by normalized reference.
    pub known_images: BTreeMap<String, Image>,
    /// Normalized references of the images pulled (or preloaded).
    pub present: BTreeSet<String>,
    /// Handlers RunPodSandbox accepts.
    pub handlers: Vec<String>,
    pub pod_cidr: String,
    next_ip: u32,
    pub ids: Ids,
    clock: Clock,
    events: broadcast::Sender<pb::ContainerEventResponse>,
}

impl Model {
    pub fn new(events: broadcast::Sender<pb::ContainerEventResponse>) -> Self {
        Model {
            sandboxes: BTreeMap::new(),
            containers: BTreeMap::new(),
            sandbox_names: HashMap::new(),
            container_names: HashMap::new(),
            known_images: BTreeMap::new(),
            present: BTreeSet::new(),
            handlers: vec![String::new(), "runc".into()],
            pod_cidr: String::new(),
            next_ip: 1,
            ids: Ids::new(),
            clock: Clock::new(),
            events,
        }
    }

    pub fn now(&mut self) -> i64 {
        self.clock.now()
    }

    pub fn sandbox_id(&self, id: &str) -> Result<String, Status> {
        resolve(&self.sandboxes, id).ok_or_else(|| sandbox_not_found(id))
    }

    pub fn container_id(&self, id: &str) -> Result<String, Status> {
        resolve(&self.containers, id).ok_or_else(|| container_not_found(id))
    }

    pub fn container(&self, id: &str) -> Option<&Container> {
        resolve(&self.containers, id).and_then(|id| self.containers.get(&id))
    }

    /// A human name for a call's key (a full id, as the kubelet sends):
    /// the container's name or the pod's `namespace/name`.
    pub fn describe(&self, key: &str) -> Option<String> {
        if let Some(c) = self.containers.get(key) {
            return Some(c.short_name().to_string());
        }
        self.sandboxes.get(key).map(Sandbox::pod_name)
    }

    /// The container a test names by id or by an id prefix of at least 12
    /// characters (shorter prefixes could be mistaken for names: `cafe`).
    pub fn container_by_test_id(&self, id: &str) -> Option<&Container> {
        if id.len() >= 12 {
            self.container(id)
        } else {
            self.containers.get(id)
        }
    }

    // ---- sandboxes ----

    pub fn run_sandbox(&mut self, req: pb::RunPodSandboxRequest) -> Result<String, Status> {
        let config = req.config.unwrap_or_default();
        let Some(meta) = config.metadata.clone() else {
            return Err(Status::invalid_argument(
                "sandbox config must include metadata",
            ));
        };
        if !self.handlers.contains(&req.runtime_handler) {
            return Err(Status::unknown(format!(
                "failed to get sandbox runtime: no runtime for {:?} is configured",
                req.runtime_handler
            )));
        }
        let name = [
            meta.name.as_str(),
            &meta.namespace,
            &meta.uid,
            &meta.attempt.to_string(),
        ]
        .join("_");
        if let Some(owner) = self.sandbox_names.get(&name) {
            return Err(Status::unknown(format!(
                "failed to reserve sandbox name {name:?}: name {name:?} is reserved for {owner:?}"
            )));
        }
        let id = self.ids.next();
        let mut sandbox = Sandbox {
            id: id.clone(),
            name: name.clone(),
            config,
            runtime_handler: req.runtime_handler,
            state: Ps::SandboxReady,
            created_at: self.now(),
            ip: String::new(),
        };
        if !sandbox.host_network() {
            sandbox.ip = self.next_ip();
        }
        self.sandbox_names.insert(name, id.clone());
        self.sandboxes.insert(id.clone(), sandbox);
        self.emit(&id, &id, Ev::ContainerCreatedEvent);
        self.emit(&id, &id, Ev::ContainerStartedEvent);
        Ok(id)
    }

    /// 10.88.x.y, containerd's default bridge network, never .0 or .255.
    fn next_ip(&mut self) -> String {
        loop {
            self.next_ip = self.next_ip.wrapping_add(1);
            let (hi, lo) = ((self.next_ip >> 8) & 0xff, self.next_ip & 0xff);
            if lo != 0 && lo != 255 {
                return format!("10.88.{hi}.{lo}");
            }
        }
    }

    /// Kills the sandbox's running containers and tears down its network.
    pub fn stop_sandbox(&mut self, id: &str) -> Result<(), Status> {
        let id = self.sandbox_id(id)?;
        let running: Vec<String> = self
            .containers
            .values()
            .filter(|c| c.sandbox_id == id && c.state == Cs::ContainerRunning)
            .map(|c| c.id.clone())
            .collect();
        for c in running {
            self.exit(&c, SIGKILL_EXIT, None);
        }
        let Some(sandbox) = self.sandboxes.get_mut(&id) else {
            return Err(sandbox_not_found(&id));
        };
        if sandbox.state == Ps::SandboxReady {
            sandbox.state = Ps::SandboxNotready;
            sandbox.ip.clear();
            self.emit(&id, &id, Ev::ContainerStoppedEvent);
        }
        Ok(())
    }

    /// Stops the sandbox if needed, then deletes it and its containers.
    /// A sandbox that does not exist is already removed.
    pub fn remove_sandbox(&mut self, id: &str) -> Result<(), Status> {
        let Some(id) = resolve(&self.sandboxes, id) else {
            return Ok(());
        };
        self.stop_sandbox(&id)?;
        let members: Vec<String> = self
            .containers
            .values()
            .filter(|c| c.sandbox_id == id)
            .map(|c| c.id.clone())
            .collect();
        for c in members {
            self.remove_container(&c);
        }
        self.emit(&id, &id, Ev::ContainerDeletedEvent);
        if let Some(s) = self.sandboxes.remove(&id) {
            self.sandbox_names.remove(&s.name);
        }
        Ok(())
    }

    // ---- containers ----

    pub fn create_container(&mut self, req: pb::CreateContainerRequest) -> Result<String, Status> {
        let sandbox_id = resolve(&self.sandboxes, &req.pod_sandbox_id).ok_or_else(|| {
            Status::not_found(format!(
                "failed to find sandbox id {:?}: not found",
                req.pod_sandbox_id
            ))
        })?;
        let config = req.config.unwrap_or_default();
        let Some(meta) = config.metadata.clone() else {
            return Err(Status::invalid_argument(
                "container config must include metadata",
            ));
        };
        let Some(sandbox) = self.sandboxes.get(&sandbox_id) else {
            return Err(sandbox_not_found(&sandbox_id));
        };
        let pod = sandbox.config.metadata.clone().unwrap_or_default();
        let log_dir = sandbox.config.log_directory.clone();
        let name = [
            meta.name.as_str(),
            &pod.name,
            &pod.namespace,
            &pod.uid,
            &meta.attempt.to_string(),
        ]
        .join("_");
        if let Some(owner) = self.container_names.get(&name) {
            return Err(Status::unknown(format!(
                "failed to reserve container name {name:?}: name {name:?} is reserved for {owner:?}"
            )));
        }
        let wanted = config.image.as_ref().map_or("", |i| i.image.as_str());
        let image = self.local_image(wanted).cloned().ok_or_else(|| {
            Status::not_found(format!(
                "failed to create containerd container: failed to resolve image {wanted:?}: not found"
            ))
        })?;
        let log_path = if log_dir.is_empty() || config.log_path.is_empty() {
            String::new()
        } else {
            std::path::Path::new(&log_dir)
                .join(&config.log_path)
                .display()
                .to_string()
        };
        let id = self.ids.next();
        let container = Container {
            id: id.clone(),
            sandbox_id: sandbox_id.clone(),
            name: name.clone(),
            resources: config.linux.as_ref().and_then(|l| l.resources.clone()),
            config,
            state: Cs::ContainerCreated,
            created_at: self.now(),
            started_at: 0,
            finished_at: 0,
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
            image,
            log_path,
        };
        self.container_names.insert(name, id.clone());
        self.containers.insert(id.clone(), container);
        self.emit(&id, &sandbox_id, Ev::ContainerCreatedEvent);
        Ok(id)
    }

    /// A pulled image by reference, id or digest.
    pub fn local_image(&self, reference: &str) -> Option<&Image> {
        self.known_images
            .values()
            .filter(|i| self.present.contains(&i.name))
            .find(|i| i.answers_to(reference))
    }

    pub fn start_container(&mut self, id: &str) -> Result<(), Status> {
        let id = self.container_id(id)?;
        let now = self.now();
        let Some(c) = self.containers.get_mut(&id) else {
            return Err(container_not_found(&id));
        };
        if c.state != Cs::ContainerCreated {
            return Err(Status::unknown(format!(
                "failed to set starting state for container {id:?}: container is in {} state",
                state_name(c.state)
            )));
        }
        let ready = self
            .sandboxes
            .get(&c.sandbox_id)
            .is_some_and(|s| s.state == Ps::SandboxReady);
        if !ready {
            return Err(Status::unknown(format!(
                "sandbox container {:?} is not running",
                c.sandbox_id
            )));
        }
        c.state = Cs::ContainerRunning;
        c.started_at = now;
        let sandbox_id = c.sandbox_id.clone();
        self.emit(&id, &sandbox_id, Ev::ContainerStartedEvent);
        Ok(())
    }

    /// The container's process ended with `code`; `reason` overrides the
    /// one the code implies (`OOMKilled`). Nothing happens unless it was
    /// running; returns whether it was.
    pub fn exit(&mut self, id: &str, code: i32, reason: Option<&str>) -> bool {
        let now = self.now();
        let Some(c) = self.containers.get_mut(id) else {
            return false;
        };
        if c.state != Cs::ContainerRunning {
            return false;
        }
        c.state = Cs::ContainerExited;
        c.finished_at = now;
        c.exit_code = code;
        c.reason = match reason {
            Some(r) => r.to_string(),
            None if code == 0 => "Completed".into(),
            None => "Error".into(),
        };
        let sandbox_id = c.sandbox_id.clone();
        let id = c.id.clone();
        self.emit(&id, &sandbox_id, Ev::ContainerStoppedEvent);
        true
    }

    /// Removes a container, killing it first if it runs. Unknown ids are
    /// already removed.
    pub fn remove_container(&mut self, id: &str) {
        let Some(id) = resolve(&self.containers, id) else {
            return;
        };
        self.exit(&id, SIGKILL_EXIT, None);
        let Some(c) = self.containers.get(&id) else {
            return;
        };
        let sandbox_id = c.sandbox_id.clone();
        self.emit(&id, &sandbox_id, Ev::ContainerDeletedEvent);
        if let Some(c) = self.containers.remove(&id) {
            self.container_names.remove(&c.name);
        }
    }

    /// Sends one container event (for a sandbox: `container_id ==
    /// sandbox_id`) with the pod's current status, as containerd does.
    fn emit(&mut self, container_id: &str, sandbox_id: &str, kind: Ev) {
        let created_at = self.now();
        let pod_sandbox_status = self
            .sandboxes
            .get(sandbox_id)
            .map(|s| self.sandbox_status(s));
        let containers_statuses = self.statuses_in(sandbox_id);
        // No subscriber is fine: events are not kept.
        let _ = self.events.send(pb::ContainerEventResponse {
            container_id: container_id.to_string(),
            container_event_type: kind as i32,
            created_at,
            pod_sandbox_status,
            containers_statuses,
        });
    }
}
