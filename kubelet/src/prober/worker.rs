//! One probe of one container instance (the Go kubelet's
//! `prober/worker.go`): a task that probes every periodSeconds, counts
//! consecutive results against the thresholds and records decided results.
//!
//! As in Go: nothing runs before initialDelaySeconds after the container
//! started; liveness and readiness wait for the startup probe to succeed;
//! once a liveness or startup probe has failed failureThreshold times the
//! worker stops (Go puts it on hold until a new instance appears, and a new
//! instance gets new workers here).

use crate::container::runtime::KillReason;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use super::metrics::Ended;
use super::probe_metrics::{Verdict, WorkerSeries};
use super::results::{ProbeResult, ProbeType};
use super::{PodShared, ProbeError, ProbeManager};
use crate::events::{EventType, ObjectRef, reasons};
use crate::probe::http::{HttpRequest, RequestError};
use crate::probe::{Outcome, PortError, resolve_port};

/// How often a probe is tried when the runtime can't run it at all, within
/// one period (Go's maxProbeRetries).
const MAX_RETRIES: usize = 3;

/// Why a probe can't be run as written.
#[derive(Debug, thiserror::Error)]
pub enum InvalidProbe {
    #[error(transparent)]
    HttpGet(#[from] RequestError),
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("grpc.port: invalid port number: {0}")]
    GrpcPort(i32),
    #[error("missing probe handler (exec, httpGet, tcpSocket or grpc)")]
    NoHandler,
}

/// What a probe does, resolved once when its worker starts.
#[derive(Clone, Debug)]
pub enum Action {
    Exec(Vec<String>),
    Http(Box<HttpRequest>),
    Tcp {
        host: Option<String>,
        port: u16,
    },
    Grpc {
        port: u16,
        service: String,
    },
    /// The probe can't be run (bad port name, no handler): every attempt is
    /// a probe error, which Go logs and ignores.
    Invalid(Arc<InvalidProbe>),
    /// Canned outcomes, for worker tests.
    #[cfg(test)]
    Scripted(Arc<std::sync::Mutex<std::collections::VecDeque<Result<Outcome, super::ProbeError>>>>),
}

/// A probe's parameters with the API's defaults applied.
#[derive(Clone, Debug)]
pub struct ProbeSpec {
    pub action: Action,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

fn positive(v: Option<i32>, default: u32) -> u32 {
    v.and_then(|v| u32::try_from(v).ok())
        .filter(|&v| v > 0)
        .unwrap_or(default)
}

impl ProbeSpec {
    /// `probe` of `container` with the API server's defaults: period 10 s,
    /// timeout 1 s, success 1, failure 3, no initial delay.
    pub fn new(probe: &Probe, container: &Container, kind: ProbeType) -> ProbeSpec {
        let action = if let Some(e) = &probe.exec {
            Action::Exec(expand_command(
                e.command.as_deref().unwrap_or_default(),
                container,
            ))
        } else if let Some(h) = &probe.http_get {
            match HttpRequest::new(h, container, "probe") {
                Ok(r) => Action::Http(Box::new(r)),
                Err(e) => Action::Invalid(Arc::new(e.into())),
            }
        } else if let Some(t) = &probe.tcp_socket {
            match resolve_port(&t.port, container) {
                Ok(port) => Action::Tcp {
                    host: t.host.clone().filter(|h| !h.is_empty()),
                    port,
                },
                Err(e) => Action::Invalid(Arc::new(e.into())),
            }
        } else if let Some(g) = &probe.grpc {
            match u16::try_from(g.port).ok().filter(|&p| p > 0) {
                Some(port) => Action::Grpc {
                    port,
                    service: g.service.clone().unwrap_or_default(),
                },
                None => Action::Invalid(Arc::new(InvalidProbe::GrpcPort(g.port))),
            }
        } else {
            Action::Invalid(Arc::new(InvalidProbe::NoHandler))
        };
        // Validation requires successThreshold 1 for liveness and startup.
        let success_threshold = match kind {
            ProbeType::Readiness => positive(probe.success_threshold, 1),
            _ => 1,
        };
        ProbeSpec {
            action,
            initial_delay: Duration::from_secs(
                probe
                    .initial_delay_seconds
                    .and_then(|v| u64::try_from(v).ok())
                    .unwrap_or(0),
            ),
            period: Duration::from_secs(u64::from(positive(probe.period_seconds, 10))),
            timeout: Duration::from_secs(u64::from(positive(probe.timeout_seconds, 1))),
            success_threshold,
            failure_threshold: positive(probe.failure_threshold, 3),
        }
    }
}

/// `$(VAR)` in an exec probe's command, from the container's literal env
/// values only (Go's ExpandContainerCommandOnlyStatic).
fn expand_command(cmd: &[String], container: &Container) -> Vec<String> {
    if !cmd.iter().any(|a| a.contains("$(")) {
        return cmd.to_vec();
    }
    let vars = container
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect();
    cmd.iter()
        .map(|a| crate::envvars::expand(a, &vars))
        .collect()
}

/// Consecutive-result counting, as the Go worker does it.
#[derive(Debug)]
pub struct Thresholds {
    success: u32,
    failure: u32,
    last: Option<ProbeResult>,
    run: u32,
}

impl Thresholds {
    pub fn new(success: u32, failure: u32) -> Self {
        Thresholds {
            success,
            failure,
            last: None,
            run: 0,
        }
    }

    /// Counts one result; Some(result) once it has been seen enough times
    /// in a row to be recorded.
    pub fn observe(&mut self, result: ProbeResult) -> Option<ProbeResult> {
        if self.last == Some(result) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(result);
            self.run = 1;
        }
        let needed = match result {
            ProbeResult::Success => self.success,
            ProbeResult::Failure => self.failure,
            ProbeResult::Unknown => 1,
        };
        (self.run >= needed).then_some(result)
    }
}

pub struct Worker {
    pub manager: Arc<ProbeManager>,
    pub kind: ProbeType,
    pub spec: ProbeSpec,
    pub pod: Arc<PodShared>,
    pub container: String,
    /// What the worker's events are about: the container in its pod.
    pub target: ObjectRef,
    pub container_id: String,
    /// When the first probe may run: container start + initialDelaySeconds.
    pub not_before: Instant,
    /// True once the startup probe (if any) has succeeded.
    pub started: watch::Receiver<bool>,
    /// The startup worker announces success here.
    pub started_tx: Option<watch::Sender<bool>>,
    /// Wait a random part of the period before the first probe too (berth
    /// just started and adopts running containers: don't probe them all at
    /// once).
    pub jitter_first: bool,
    /// Probe at a random phase of the period after the first probe (off
    /// only in tests, for exact timing).
    pub spread: bool,
    /// This worker's `/metrics/probes` series.
    pub series: WorkerSeries,
}

impl Worker {
    pub async fn run(mut self) {
        if self.kind != ProbeType::Startup && self.started.wait_for(|s| *s).await.is_err() {
            // The startup probe failed for good: this instance is going.
            return;
        }
        tokio::time::sleep_until(self.not_before).await;
        if self.jitter_first {
            tokio::time::sleep(jitter(self.spec.period)).await;
        }
        let mut thresholds =
            Thresholds::new(self.spec.success_threshold, self.spec.failure_threshold);
        // The first probe runs now; later ones at a random phase of the
        // period, so workers started together don't probe in lockstep.
        if !self.probe_once(&mut thresholds).await {
            return;
        }
        let first_tick = if self.jitter_first || !self.spread {
            Instant::now() + self.spec.period
        } else {
            Instant::now() + jitter(self.spec.period)
        };
        let mut ticks = tokio::time::interval_at(first_tick, self.spec.period);
        // Go's ticker drops ticks a slow probe missed.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            ticks.tick().await;
            if !self.probe_once(&mut thresholds).await {
                return;
            }
        }
    }

    /// One probe (with retries on probe errors); false when the worker is
    /// done with this instance.
    async fn probe_once(&mut self, thresholds: &mut Thresholds) -> bool {
        let mut attempts = 0;
        let started_at = Instant::now();
        let outcome = loop {
            attempts += 1;
            let t0 = Instant::now();
            let outcome = self
                .manager
                .run_probe(
                    &self.spec.action,
                    &self.pod,
                    &self.container_id,
                    self.spec.timeout,
                )
                .await;
            let ended = match &outcome {
                Ok(Outcome::Failure(_)) => Ended::Failure,
                Ok(_) => Ended::Success,
                Err(_) => Ended::Error,
            };
            self.manager
                .metrics
                .observe(&self.spec.action, t0.elapsed(), ended);
            if outcome.is_ok() || attempts >= MAX_RETRIES {
                break outcome;
            }
        };
        // Counted as Go counts them: probe errors are not.
        match &outcome {
            Ok(Outcome::Failure(_)) => self.manager.probe_metrics.record(
                &self.series,
                Verdict::Failed,
                started_at.elapsed(),
            ),
            Ok(_) => self.manager.probe_metrics.record(
                &self.series,
                Verdict::Successful,
                started_at.elapsed(),
            ),
            Err(_) => {}
        }
        let pref = &self.pod.pref;
        let uid = &self.pod.uid;
        let recorder = &self.manager.recorder;
        let (result, message) = match outcome {
            Err(e) => {
                tracing::debug!(pod = %pref, uid = %uid, container = %self.container, probe = %self.kind, "probe errored: {e}");
                // A pod without an address yet is berth's own wait, not
                // an error Go would see.
                if !matches!(e, ProbeError::NoPodIp) {
                    recorder.event(
                        &self.target,
                        EventType::Warning,
                        reasons::CONTAINER_UNHEALTHY,
                        format!(
                            "{} probe errored and resulted in unknown state: {e}",
                            self.kind
                        ),
                    );
                }
                return true;
            }
            Ok(Outcome::Success(_)) => (ProbeResult::Success, String::new()),
            Ok(Outcome::Warning(m)) => {
                tracing::debug!(pod = %pref, uid = %uid, container = %self.container, probe = %self.kind, "probe warning: {m}");
                recorder.event(
                    &self.target,
                    EventType::Warning,
                    reasons::CONTAINER_PROBE_WARNING,
                    format!("{} probe warning: {m}", self.kind),
                );
                (ProbeResult::Success, String::new())
            }
            Ok(Outcome::Failure(m)) => {
                tracing::debug!(pod = %pref, uid = %uid, container = %self.container, probe = %self.kind, "probe failed: {m}");
                // Every failure, not only the one that crosses the
                // threshold, as Go's prober records them.
                recorder.event(
                    &self.target,
                    EventType::Warning,
                    reasons::CONTAINER_UNHEALTHY,
                    format!("{} probe failed: {m}", self.kind),
                );
                (ProbeResult::Failure, m)
            }
        };
        let Some(decided) = thresholds.observe(result) else {
            return true;
        };
        let fatal = decided == ProbeResult::Failure && self.kind != ProbeType::Readiness;
        let kill_reason = fatal.then(|| {
            let m = format!("{} probe failed: {}", self.kind, message.trim_end());
            if self.kind == ProbeType::Startup {
                KillReason::StartupFailed(m)
            } else {
                KillReason::LivenessFailed(m)
            }
        });
        let changed = self.manager.results.set(
            uid,
            &self.container_id,
            self.kind,
            decided,
            kill_reason.clone(),
        );
        if changed {
            match &kill_reason {
                Some(reason) => {
                    let reason = reason.to_string();
                    tracing::info!(pod = %pref, uid = %uid, container = %self.container, probe = %self.kind, "{reason}; the container will be restarted")
                }
                None => {
                    tracing::info!(pod = %pref, uid = %uid, container = %self.container, probe = %self.kind, result = ?decided, "probe result changed")
                }
            }
        }
        if self.kind == ProbeType::Startup && decided == ProbeResult::Success {
            if let Some(tx) = &self.started_tx {
                tx.send_replace(true);
            }
            // Started for good: the startup probe is done with this instance.
            return false;
        }
        // A liveness/startup failure ends this instance; don't probe a
        // container that is being killed.
        !fatal
    }
}

/// A random duration in [0, period).
fn jitter(period: Duration) -> Duration {
    period.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_count_consecutive_results() {
        let mut t = Thresholds::new(2, 3);
        use ProbeResult::*;
        assert_eq!(t.observe(Success), None);
        assert_eq!(t.observe(Success), Some(Success));
        assert_eq!(t.observe(Success), Some(Success));
        assert_eq!(t.observe(Failure), None);
        assert_eq!(t.observe(Failure), None);
        // A success in between resets the failure run.
        assert_eq!(t.observe(Success), None);
        assert_eq!(t.observe(Failure), None);
        assert_eq!(t.observe(Failure), None);
        assert_eq!(t.observe(Failure), Some(Failure));
        assert_eq!(t.observe(Failure), Some(Failure));
    }

    #[test]
    fn defaults_follow_the_api() {
        let c = Container {
            name: "c".into(),
            ports: Some(vec![k8s_openapi::api::core::v1::ContainerPort {
                name: Some("web".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            env: Some(vec![k8s_openapi::api::core::v1::EnvVar {
                name: "F".into(),
                value: Some("/tmp/ok".into()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let p = Probe {
            tcp_socket: Some(k8s_openapi::api::core::v1::TCPSocketAction {
                port: k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(
                    "web".into(),
                ),
                host: None,
            }),
            success_threshold: Some(5),
            ..Default::default()
        };
        let s = ProbeSpec::new(&p, &c, ProbeType::Liveness);
        assert_eq!(s.period, Duration::from_secs(10));
        assert_eq!(s.timeout, Duration::from_secs(1));
        assert_eq!(s.initial_delay, Duration::ZERO);
        assert_eq!((s.success_threshold, s.failure_threshold), (1, 3));
        assert!(matches!(
            s.action,
            Action::Tcp {
                port: 8080,
                host: None
            }
        ));
        assert_eq!(
            ProbeSpec::new(&p, &c, ProbeType::Readiness).success_threshold,
            5
        );

        let p = Probe {
            exec: Some(k8s_openapi::api::core::v1::ExecAction {
                command: Some(vec!["test".into(), "-f".into(), "$(F)".into()]),
            }),
            ..Default::default()
        };
        let Action::Exec(cmd) = ProbeSpec::new(&p, &c, ProbeType::Liveness).action else {
            panic!("exec");
        };
        assert_eq!(cmd, ["test", "-f", "/tmp/ok"]);

        let p = Probe {
            tcp_socket: Some(k8s_openapi::api::core::v1::TCPSocketAction {
                port: k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(
                    "nope".into(),
                ),
                host: None,
            }),
            ..Default::default()
        };
        assert!(matches!(
            ProbeSpec::new(&p, &c, ProbeType::Liveness).action,
            Action::Invalid(_)
        ));
        assert!(matches!(
            ProbeSpec::new(&Probe::default(), &c, ProbeType::Liveness).action,
            Action::Invalid(_)
        ));
    }

    #[test]
    fn invalid_probes_say_why() {
        let c = Container {
            name: "c".into(),
            ..Default::default()
        };
        let why = |p: serde_json::Value| {
            let p: Probe = serde_json::from_value(p).unwrap();
            match ProbeSpec::new(&p, &c, ProbeType::Liveness).action {
                Action::Invalid(e) => super::super::ProbeError::Invalid(e).to_string(),
                other => panic!("{other:?} is not invalid"),
            }
        };
        assert_eq!(
            why(serde_json::json!({})),
            "missing probe handler (exec, httpGet, tcpSocket or grpc)"
        );
        assert_eq!(
            why(serde_json::json!({"grpc": {"port": 0}})),
            "grpc.port: invalid port number: 0"
        );
        assert_eq!(
            why(serde_json::json!({"tcpSocket": {"port": "web"}})),
            "port \"web\" not found in the ports of container \"c\""
        );
        assert_eq!(
            why(serde_json::json!({"httpGet": {"port": 80, "scheme": "ftp"}})),
            "httpGet.scheme \"ftp\" is not HTTP or HTTPS"
        );
    }
}
