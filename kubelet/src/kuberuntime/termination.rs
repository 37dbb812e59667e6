//! Termination messages of exited containers (the Go kubelet's
//! `getTerminationMessage` and `readLastStringFromContainerLogs`).
//!
//! The host file mounted at `terminationMessagePath` is found through the
//! container's own mounts as the runtime reports them, and the path and
//! policy through its annotations, so the message can be read again after
//! berth restarts.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use cri_client::proto as pb;

use super::labels;

/// The Go kubelet's limits: the last 4 KiB of the message file; for
/// FallbackToLogsOnError the last 80 log lines, at most 2 KiB.
pub const MAX_MESSAGE_LENGTH: u64 = 4096;
pub const MAX_LOG_LINES: usize = 80;
pub const MAX_LOG_LENGTH: usize = 2048;
/// How much of a log file's end is read to find its last lines.
const LOG_READ_WINDOW: u64 = 256 * 1024;

/// Reads at most `max` bytes from the end of a file.
fn read_at_most(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    if len > max {
        f.seek(SeekFrom::Start(len - max))?;
    }
    let mut buf = Vec::new();
    f.take(max).read_to_end(&mut buf)?;
    Ok(buf)
}

/// The last `lines` log entries of a CRI-format log ("<time> <stream>
/// <P|F> <content>"), stdout and stderr together, cut to the last
/// `max_len` bytes. Partial ("P") entries join the entry that completes them.
pub fn log_tail(raw: &[u8], lines: usize, max_len: usize) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut entries: Vec<String> = Vec::new();
    let mut partial = String::new();
    for line in text.lines() {
        let mut parts = line.splitn(4, ' ');
        let (Some(_time), Some(_stream), Some(tag)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let content = parts.next().unwrap_or("");
        partial.push_str(content);
        if tag == "P" {
            continue;
        }
        partial.push('\n');
        entries.push(std::mem::take(&mut partial));
    }
    let start = entries.len().saturating_sub(lines);
    let joined: String = entries[start..].concat();
    let bytes = joined.as_bytes();
    let cut = bytes.len().saturating_sub(max_len);
    String::from_utf8_lossy(&bytes[cut..]).into_owned()
}

/// The message for an exited container's `state.terminated.message`: the
/// runtime's own message, then (after ": ") the termination message file's
/// content, or with FallbackToLogsOnError and a failure, the log tail.
pub fn termination_message(st: &pb::ContainerStatus) -> String {
    let path = st
        .annotations
        .get(labels::CONTAINER_TERMINATION_MESSAGE_PATH)
        .map(String::as_str)
        .unwrap_or("");
    let policy = st
        .annotations
        .get(labels::CONTAINER_TERMINATION_MESSAGE_POLICY)
        .map(String::as_str)
        .unwrap_or("");
    // A container that could not even start has no logs to fall back to.
    let fallback =
        policy == "FallbackToLogsOnError" && st.exit_code != 0 && st.reason != "ContainerCannotRun";
    let (mut message, check_logs) = from_file(st, path, fallback);
    if check_logs {
        message = match read_at_most(Path::new(&st.log_path), LOG_READ_WINDOW) {
            Ok(raw) => log_tail(&raw, MAX_LOG_LINES, MAX_LOG_LENGTH),
            Err(e) => format!("Error on reading termination message from logs: {e}"),
        };
    }
    let mut out = st.message.clone();
    if !message.is_empty() {
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&message);
    }
    out
}

/// The message file's content, and whether the logs should be read instead.
fn from_file(st: &pb::ContainerStatus, path: &str, fallback: bool) -> (String, bool) {
    if path.is_empty() {
        return (String::new(), fallback);
    }
    let Some(mount) = st.mounts.iter().find(|m| m.container_path == path) else {
        return (String::new(), fallback);
    };
    match read_at_most(Path::new(&mount.host_path), MAX_MESSAGE_LENGTH) {
        Ok(data) => {
            let empty = data.is_empty();
            (
                String::from_utf8_lossy(&data).into_owned(),
                fallback && empty,
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (String::new(), fallback),
        Err(e) => (
            format!("Error on reading termination log {}: {e}", mount.host_path),
            false,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(dir: &Path, policy: &str, exit_code: i32) -> pb::ContainerStatus {
        pb::ContainerStatus {
            exit_code,
            log_path: dir.join("0.log").display().to_string(),
            mounts: vec![pb::Mount {
                container_path: "/dev/termination-log".into(),
                host_path: dir.join("msg").display().to_string(),
                ..Default::default()
            }],
            annotations: [
                (
                    labels::CONTAINER_TERMINATION_MESSAGE_PATH.to_string(),
                    "/dev/termination-log".to_string(),
                ),
                (
                    labels::CONTAINER_TERMINATION_MESSAGE_POLICY.to_string(),
                    policy.to_string(),
                ),
            ]
            .into(),
            ..Default::default()
        }
    }

    #[test]
    fn file_message_wins_and_is_cut_to_4k() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("msg"), "bye").unwrap();
        std::fs::write(
            d.path().join("0.log"),
            "2024-01-01T00:00:00Z stdout F log\n",
        )
        .unwrap();
        assert_eq!(termination_message(&status(d.path(), "File", 1)), "bye");
        assert_eq!(
            termination_message(&status(d.path(), "FallbackToLogsOnError", 1)),
            "bye"
        );
        let long = format!("{}END", "x".repeat(5000));
        std::fs::write(d.path().join("msg"), &long).unwrap();
        let m = termination_message(&status(d.path(), "File", 0));
        assert_eq!(m.len(), 4096);
        assert!(m.ends_with("END"));
    }

    #[test]
    fn fallback_to_logs_only_on_error_with_an_empty_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("msg"), "").unwrap();
        let log: String = (0..100)
            .map(|i| format!("2024-01-01T00:00:00Z stderr F line {i}\n"))
            .collect();
        std::fs::write(d.path().join("0.log"), log).unwrap();
        assert_eq!(termination_message(&status(d.path(), "File", 1)), "");
        assert_eq!(
            termination_message(&status(d.path(), "FallbackToLogsOnError", 0)),
            ""
        );
        let m = termination_message(&status(d.path(), "FallbackToLogsOnError", 2));
        assert!(m.starts_with("line 20\n"), "{m}");
        assert!(m.ends_with("line 99\n"));
        // The runtime's own message comes first.
        let mut st = status(d.path(), "FallbackToLogsOnError", 2);
        st.message = "oom".into();
        assert!(termination_message(&st).starts_with("oom: line 20"));
    }

    #[test]
    fn log_tail_joins_partials_and_keeps_the_last_2k() {
        let raw = b"t stdout P hel\nt stdout F lo\nbad\nt stderr F x\n";
        assert_eq!(log_tail(raw, 80, 2048), "hello\nx\n");
        assert_eq!(log_tail(raw, 1, 2048), "x\n");
        let big: String = (0..50)
            .map(|_| format!("t stdout F {}\n", "y".repeat(99)))
            .collect();
        assert_eq!(log_tail(big.as_bytes(), 80, 2048).len(), 2048);
    }

    #[test]
    fn missing_mount_or_file_is_no_message() {
        let d = tempfile::tempdir().unwrap();
        let mut st = status(d.path(), "File", 1);
        assert_eq!(termination_message(&st), "");
        st.mounts.clear();
        assert_eq!(termination_message(&st), "");
    }
}
