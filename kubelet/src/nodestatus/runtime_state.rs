//! What the runtime last said about its health (the Go kubelet's
//! `runtime.go` `runtimeState`, fed by `updateRuntimeUp`): the errors that
//! make the node's Ready condition False.

use std::time::{Duration, Instant};

/// One condition of the CRI `Status` response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuntimeCondition {
    pub status: bool,
    pub reason: String,
    pub message: String,
}

/// The two conditions the kubelet reads; `None` when the runtime did not
/// report the condition at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuntimeConditions {
    pub runtime_ready: Option<RuntimeCondition>,
    pub network_ready: Option<RuntimeCondition>,
}

impl RuntimeConditions {
    /// Both conditions true.
    pub fn ready() -> Self {
        let ok = RuntimeCondition {
            status: true,
            ..Default::default()
        };
        RuntimeConditions {
            runtime_ready: Some(ok.clone()),
            network_ready: Some(ok),
        }
    }
}

/// How long the runtime may go without a healthy status before the node
/// says "container runtime is down" (Go's `maxWaitForContainerRuntime`).
pub const BASE_RUNTIME_SYNC_THRESHOLD: Duration = Duration::from_secs(30);

/// Go prints a missing condition as `<nil>` and a present one as
/// `Type=bool reason:… message:…`.
fn describe(kind: &str, c: Option<&RuntimeCondition>) -> String {
    match c {
        None => "<nil>".to_string(),
        Some(c) => format!(
            "{kind}={} reason:{} message:{}",
            c.status, c.reason, c.message
        ),
    }
}

#[derive(Clone, Debug)]
pub struct RuntimeState {
    threshold: Duration,
    last_base_runtime_sync: Option<Instant>,
    runtime_error: Option<String>,
    network_error: Option<String>,
}

impl Default for RuntimeState {
    fn default() -> Self {
        RuntimeState::new(BASE_RUNTIME_SYNC_THRESHOLD)
    }
}

impl RuntimeState {
    pub fn new(threshold: Duration) -> Self {
        RuntimeState {
            threshold,
            last_base_runtime_sync: None,
            runtime_error: None,
            network_error: None,
        }
    }

    /// Records one CRI `Status` answer; `None` means the call failed, which
    /// (as in Go) changes nothing: the runtime turns "down" once the last
    /// healthy answer is older than the threshold.
    pub fn record(&mut self, status: Option<&RuntimeConditions>, now: Instant) {
        let Some(s) = status else {
            return;
        };
        self.network_error = match &s.network_ready {
            Some(c) if c.status => None,
            c => Some(format!(
                "container runtime network not ready: {}",
                describe("NetworkReady", c.as_ref())
            )),
        };
        match &s.runtime_ready {
            Some(c) if c.status => {
                self.runtime_error = None;
                self.last_base_runtime_sync = Some(now);
            }
            c => {
                self.runtime_error = Some(format!(
                    "container runtime not ready: {}",
                    describe("RuntimeReady", c.as_ref())
                ));
            }
        }
    }

    /// The runtime's errors then the network's, in Go's words; empty when
    /// both are healthy.
    pub fn errors(&self, now: Instant) -> Vec<String> {
        let mut errs = Vec::new();
        match self.last_base_runtime_sync {
            None => errs.push("container runtime status check may not have completed yet".into()),
            Some(at) if now.saturating_duration_since(at) >= self.threshold => {
                errs.push("container runtime is down".into());
            }
            Some(_) => {}
        }
        errs.extend(self.runtime_error.clone());
        errs.extend(self.network_error.clone());
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(status: bool, reason: &str, message: &str) -> Option<RuntimeCondition> {
        Some(RuntimeCondition {
            status,
            reason: reason.into(),
            message: message.into(),
        })
    }

    #[test]
    fn healthy_runtime_has_no_errors() {
        let t0 = Instant::now();
        let mut s = RuntimeState::default();
        assert_eq!(
            s.errors(t0),
            ["container runtime status check may not have completed yet"]
        );
        s.record(Some(&RuntimeConditions::ready()), t0);
        assert!(s.errors(t0 + Duration::from_secs(29)).is_empty());
    }

    #[test]
    fn network_not_ready_in_gos_words() {
        let t0 = Instant::now();
        let mut s = RuntimeState::default();
        s.record(
            Some(&RuntimeConditions {
                runtime_ready: cond(true, "", ""),
                network_ready: cond(
                    false,
                    "NetworkPluginNotReady",
                    "Network plugin returns error: cni plugin not initialized",
                ),
            }),
            t0,
        );
        assert_eq!(
            s.errors(t0),
            ["container runtime network not ready: NetworkReady=false \
              reason:NetworkPluginNotReady message:Network plugin returns error: \
              cni plugin not initialized"]
        );
        s.record(
            Some(&RuntimeConditions {
                runtime_ready: cond(true, "", ""),
                network_ready: None,
            }),
            t0,
        );
        assert_eq!(s.errors(t0), ["container runtime network not ready: <nil>"]);
    }

    #[test]
    fn runtime_goes_down_after_the_threshold_without_an_answer() {
        let t0 = Instant::now();
        let mut s = RuntimeState::default();
        s.record(Some(&RuntimeConditions::ready()), t0);
        s.record(None, t0 + Duration::from_secs(10));
        assert!(s.errors(t0 + Duration::from_secs(10)).is_empty());
        assert_eq!(
            s.errors(t0 + Duration::from_secs(31)),
            ["container runtime is down"]
        );
        s.record(
            Some(&RuntimeConditions {
                runtime_ready: cond(false, "Broken", "no shim"),
                network_ready: cond(true, "", ""),
            }),
            t0 + Duration::from_secs(32),
        );
        assert_eq!(
            s.errors(t0 + Duration::from_secs(32)),
            [
                "container runtime is down",
                "container runtime not ready: RuntimeReady=false reason:Broken message:no shim"
            ]
        );
    }
}
