//! The RPCs whose outcome the test scripts or that wait: StopContainer's
//! grace period, ExecSync, and the container event stream.

use std::time::Duration;

use cri_proto::v1 as pb;
use pb::ContainerState as Cs;
use tokio::sync::broadcast::error::RecvError;
use tonic::Status;

use super::StopBehaviour;
use super::model::{SIGKILL_EXIT, SIGTERM_EXIT, container_not_found, state_name};
use super::runtime::{BoxStream, Runtime};

impl Runtime {
    /// True while the container exists and runs.
    fn running(&self, id: &str) -> bool {
        self.0
            .world()
            .model
            .containers
            .get(id)
            .is_some_and(|c| c.state == Cs::ContainerRunning)
    }

    pub(super) async fn stop(&self, id: &str, timeout: i64) -> Result<(), Status> {
        let (id, behaviour) = {
            let w = self.0.world();
            let id = w.model.container_id(id)?;
            let Some(c) = w.model.containers.get(&id) else {
                return Err(container_not_found(&id));
            };
            // Stopping anything but a running container is a no-op.
            if c.state != Cs::ContainerRunning {
                return Ok(());
            }
            (id, w.script.stop_behaviour(c))
        };
        let code = match behaviour {
            // No grace period: SIGKILL straight away.
            _ if timeout <= 0 => SIGKILL_EXIT,
            StopBehaviour::ExitsOnSigterm => SIGTERM_EXIT,
            StopBehaviour::ExitsOnSigtermWith(code) => code,
            StopBehaviour::IgnoresSigterm => {
                let now = tokio::time::Instant::now();
                // An absurd grace period must not overflow the clock.
                let deadline = now
                    .checked_add(Duration::from_secs(timeout.unsigned_abs()))
                    .unwrap_or(now + Duration::from_secs(100 * 365 * 86_400));
                let mut changed = self.0.subscribe();
                loop {
                    // It may exit on its own (or be removed) meanwhile.
                    if !self.running(&id) {
                        return Ok(());
                    }
                    tokio::select! {
                        _ = tokio::time::sleep_until(deadline) => break,
                        r = changed.changed() => if r.is_err() { break },
                    }
                }
                SIGKILL_EXIT
            }
        };
        self.0.update(|w| w.model.exit(&id, code, None));
        Ok(())
    }

    pub(super) async fn exec_sync(
        &self,
        r: pb::ExecSyncRequest,
    ) -> Result<pb::ExecSyncResponse, Status> {
        let result = {
            let w = self.0.world();
            let id = w.model.container_id(&r.container_id)?;
            let Some(c) = w.model.containers.get(&id) else {
                return Err(container_not_found(&id));
            };
            if c.state != Cs::ContainerRunning {
                return Err(Status::unknown(format!(
                    "failed to exec in container: container is in {} state",
                    state_name(c.state)
                )));
            }
            w.script.exec_result(c, &r.cmd)
        };
        if r.timeout > 0 && result.delay > Duration::from_secs(r.timeout.unsigned_abs()) {
            tokio::time::sleep(Duration::from_secs(r.timeout.unsigned_abs())).await;
            return Err(Status::deadline_exceeded(format!(
                "failed to exec in container: timeout {}s exceeded: context deadline exceeded",
                r.timeout
            )));
        }
        if !result.delay.is_zero() {
            tokio::time::sleep(result.delay).await;
        }
        Ok(pb::ExecSyncResponse {
            stdout: result.stdout,
            stderr: result.stderr,
            exit_code: result.exit_code,
        })
    }

    pub(super) fn events(&self) -> BoxStream<pb::ContainerEventResponse> {
        let rx = self.0.events.subscribe();
        let closed = self.0.closed.subscribe();
        Box::pin(futures_util::stream::unfold(
            (rx, closed),
            |(mut rx, mut closed)| async move {
                let item = tokio::select! {
                    ev = rx.recv() => match ev {
                        Ok(ev) => Ok(ev),
                        Err(RecvError::Lagged(n)) => Err(Status::resource_exhausted(format!(
                            "event subscriber fell {n} events behind"
                        ))),
                        Err(RecvError::Closed) => return None,
                    },
                    _ = closed.wait_for(|c| *c) => return None,
                };
                Some((item, (rx, closed)))
            },
        ))
    }
}
