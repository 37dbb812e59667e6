//! State shared by the gRPC services and the test's [`FakeRuntime`] handle:
//! the model, the script, the call log and counters, and the per-call
//! bookkeeping every handler goes through.
//!
//! [`FakeRuntime`]: super::FakeRuntime

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use cri_proto::v1 as pb;
use tokio::sync::{broadcast, watch};
use tonic::{Response, Status};

use super::model::{Container, Model};
use super::{Call, ExecResult, StopBehaviour, images};

/// What the test scripted.
pub(super) struct Script {
    pub fail_next: HashMap<String, VecDeque<Status>>,
    pub latency: HashMap<String, Duration>,
    pub pull_delay: Vec<(String, Duration)>,
    pub held_pulls: Vec<String>,
    pub stop: Vec<(String, StopBehaviour)>,
    pub exit_on_start: Vec<(String, i32)>,
    pub exec: Vec<(String, Option<Vec<String>>, ExecResult)>,
    pub events_unimplemented: bool,
    pub runtime_ready: (bool, String, String),
    pub network_ready: (bool, String, String),
    pub cgroup_driver: pb::CgroupDriver,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            fail_next: HashMap::new(),
            latency: HashMap::new(),
            pull_delay: Vec::new(),
            held_pulls: Vec::new(),
            stop: Vec::new(),
            exit_on_start: Vec::new(),
            exec: Vec::new(),
            events_unimplemented: false,
            runtime_ready: (true, String::new(), String::new()),
            network_ready: (true, String::new(), String::new()),
            cgroup_driver: pb::CgroupDriver::Cgroupfs,
        }
    }
}

/// True when a test's pattern names this container: its id, its name in
/// the pod spec, or its image.
pub(super) fn container_matches(pattern: &str, c: &Container) -> bool {
    c.id == pattern
        || c.short_name() == pattern
        || images::matches(pattern, c.image_ref())
        || images::matches(pattern, &c.image.name)
}

impl Script {
    /// The latest matching rule wins, so a test can override an earlier one.
    pub fn stop_behaviour(&self, c: &Container) -> StopBehaviour {
        self.stop
            .iter()
            .rev()
            .find(|(p, _)| container_matches(p, c))
            .map_or(StopBehaviour::ExitsOnSigterm, |(_, b)| *b)
    }

    pub fn exit_on_start(&self, c: &Container) -> Option<i32> {
        self.exit_on_start
            .iter()
            .rev()
            .find(|(p, _)| container_matches(p, c))
            .map(|(_, code)| *code)
    }

    pub fn exec_result(&self, c: &Container, cmd: &[String]) -> ExecResult {
        self.exec
            .iter()
            .rev()
            .find(|(p, want, _)| {
                container_matches(p, c) && want.as_deref().is_none_or(|w| w == cmd)
            })
            .map_or_else(ExecResult::default, |(_, _, r)| r.clone())
    }

    pub fn pull_delay(&self, image: &str) -> Duration {
        self.pull_delay
            .iter()
            .rev()
            .find(|(p, _)| images::matches(p, image))
            .map_or(Duration::ZERO, |(_, d)| *d)
    }

    pub fn pull_held(&self, image: &str) -> bool {
        self.held_pulls.iter().any(|p| images::matches(p, image))
    }
}

#[derive(Default)]
pub(super) struct Counters {
    pub calls: HashMap<&'static str, usize>,
    pub in_flight: HashMap<&'static str, usize>,
    pub cancelled: HashMap<&'static str, usize>,
    pub log: Vec<Call>,
}

pub(super) struct World {
    pub model: Model,
    pub script: Script,
    pub counters: Counters,
}

pub(super) struct Shared {
    world: Mutex<World>,
    /// Bumped after every change, so waiters (a held pull, a grace period,
    /// the test's `wait_until`) re-check their condition.
    changed: watch::Sender<u64>,
    pub events: broadcast::Sender<pb::ContainerEventResponse>,
    /// Set when the handle goes away: open event streams end.
    pub closed: watch::Sender<bool>,
}

impl Shared {
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(4096);
        Shared {
            world: Mutex::new(World {
                model: Model::new(events.clone()),
                script: Script::default(),
                counters: Counters::default(),
            }),
            changed: watch::channel(0).0,
            events,
            closed: watch::channel(false).0,
        }
    }

    /// The lock; a test that panicked while holding it leaves the state
    /// usable for the next assertion rather than poisoning every call.
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the world and wakes every waiter.
    pub fn update<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        let r = f(&mut self.world());
        self.touch();
        r
    }

    pub fn touch(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Runs one RPC: logs it, counts it while in flight (and as cancelled
    /// if its future is dropped before the end), applies the scripted
    /// latency and injected failure, then `body`.
    pub async fn call<T, F>(
        &self,
        rpc: &'static str,
        key: &str,
        detail: String,
        body: F,
    ) -> Result<Response<T>, Status>
    where
        F: Future<Output = Result<T, Status>>,
    {
        let mut guard = self.enter(rpc, key, detail);
        let latency = self.world().script.latency.get(rpc).copied();
        if let Some(d) = latency {
            tokio::time::sleep(d).await;
        }
        let injected = self.update(|w| {
            w.script
                .fail_next
                .get_mut(rpc)
                .and_then(VecDeque::pop_front)
        });
        let result = match injected {
            Some(status) => Err(status),
            None => body.await,
        };
        guard.finished = true;
        result.map(Response::new)
    }

    fn enter(&self, rpc: &'static str, key: &str, detail: String) -> CallGuard<'_> {
        self.update(|w| {
            let name = w.model.describe(key);
            *w.counters.calls.entry(rpc).or_default() += 1;
            *w.counters.in_flight.entry(rpc).or_default() += 1;
            w.counters.log.push(Call {
                rpc,
                key: key.to_string(),
                name,
                detail,
            });
        });
        CallGuard {
            shared: self,
            rpc,
            finished: false,
        }
    }
}

/// One RPC in progress; see [`Shared::call`].
struct CallGuard<'a> {
    shared: &'a Shared,
    rpc: &'static str,
    finished: bool,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        let (rpc, finished) = (self.rpc, self.finished);
        self.shared.update(|w| {
            if let Some(n) = w.counters.in_flight.get_mut(rpc) {
                *n = n.saturating_sub(1);
            }
            if !finished {
                *w.counters.cancelled.entry(rpc).or_default() += 1;
            }
        });
    }
}
