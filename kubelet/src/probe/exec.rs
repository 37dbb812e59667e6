//! exec probes (the Go kubelet's `pkg/probe/exec`): the command runs in the
//! container through CRI ExecSync with the probe's timeout; exit code 0 is
//! success, anything else a failure whose message is the command's output.

use std::time::Duration;

use cri_client::RuntimeClient;
use cri_client::proto as pb;

use super::{MAX_OUTPUT, Outcome};

/// Runs `cmd` in `container_id`. Err is a probe error (the runtime could
/// not run the command at all); the worker drops such results, as Go does.
pub async fn probe(
    client: &RuntimeClient,
    container_id: &str,
    cmd: &[String],
    timeout: Duration,
) -> Result<Outcome, cri_client::Error> {
    let req = pb::ExecSyncRequest {
        container_id: container_id.to_string(),
        cmd: cmd.to_vec(),
        // Whole seconds, at least 1: 0 would mean "no timeout" to the runtime.
        timeout: i64::try_from(timeout.as_secs().max(1)).unwrap_or(i64::MAX),
    };
    match client.exec_sync(req).await {
        Ok(r) => {
            let out = output(&r.stdout, &r.stderr);
            Ok(if r.exit_code == 0 {
                Outcome::Success(out)
            } else {
                Outcome::Failure(out)
            })
        }
        // The runtime's deadline ran out: a failed probe, as the Go kubelet
        // (ExecProbeTimeout) words it.
        Err(e) if e.code() == Some(tonic::Code::DeadlineExceeded) => Ok(Outcome::Failure(format!(
            "command {:?} timed out",
            cmd.join(" ")
        ))),
        Err(e) => Err(e),
    }
}

/// stdout then stderr, at most MAX_OUTPUT bytes (Go limits the combined
/// writer to 10 KiB).
fn output(stdout: &[u8], stderr: &[u8]) -> String {
    let take_out = stdout.len().min(MAX_OUTPUT);
    let take_err = stderr.len().min(MAX_OUTPUT - take_out);
    let mut b = Vec::with_capacity(take_out + take_err);
    b.extend_from_slice(&stdout[..take_out]);
    b.extend_from_slice(&stderr[..take_err]);
    String::from_utf8_lossy(&b).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_bounded() {
        assert_eq!(output(b"a", b"b"), "ab");
        let big = vec![b'x'; MAX_OUTPUT + 5];
        assert_eq!(output(&big, b"err").len(), MAX_OUTPUT);
        assert_eq!(output(b"12", &big).len(), MAX_OUTPUT);
    }
}
