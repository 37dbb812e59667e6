//! Commands that stream: exec, attach, port-forward and logs.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use cri_client::logs::{LogOptions, StreamFilter};
use cri_client::proto as pb;
use cri_client::stream::StreamIo;
use tokio_util::sync::CancellationToken;

use crate::cli::{AttachArgs, ExecArgs, LogsArgs, PortForwardArgs};
use crate::{Ctx, resolve, term};

/// The remote exit code as ours: 0–255 pass through, anything else is 1.
fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

pub async fn exec(ctx: &Ctx, a: ExecArgs) -> Result<ExitCode> {
    let id = resolve::container_id(&ctx.client, &a.id).await?;
    if a.sync {
        let resp = ctx
            .client
            .exec_sync(pb::ExecSyncRequest {
                container_id: id,
                cmd: a.cmd,
                timeout: a.timeout,
            })
            .await?;
        use std::io::Write;
        std::io::stdout().write_all(&resp.stdout)?;
        std::io::stderr().write_all(&resp.stderr)?;
        return Ok(exit_code(resp.exit_code));
    }
    let tty = a.tty && std::io::stdin().is_terminal();
    if a.tty && !tty {
        eprintln!("berthctl: stdin is not a terminal; running without a TTY");
    }
    let resp = ctx
        .client
        .exec(pb::ExecRequest {
            container_id: id,
            cmd: a.cmd,
            tty,
            stdin: a.interactive,
            stdout: true,
            // With a TTY, stderr is merged into stdout by the runtime.
            stderr: !tty,
        })
        .await?;
    stream_session(&resp.url, a.interactive, tty).await
}

pub async fn attach(ctx: &Ctx, a: AttachArgs) -> Result<ExitCode> {
    let id = resolve::container_id(&ctx.client, &a.id).await?;
    let code = attach_session(ctx, &a, &id).await?;
    // The attach stream carries no exit code; if the container ended with
    // the session, report its exit code (crictl always says 0). The runtime
    // may record the exit a moment after the stream closes.
    for _ in 0..10 {
        let status = ctx
            .client
            .container_status(pb::ContainerStatusRequest {
                container_id: id.clone(),
                verbose: false,
            })
            .await?
            .status;
        match status {
            Some(st) if st.state == pb::ContainerState::ContainerExited as i32 => {
                return Ok(exit_code(st.exit_code));
            }
            Some(st) if st.state == pb::ContainerState::ContainerRunning as i32 => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await
            }
            _ => break,
        }
    }
    Ok(code)
}

async fn attach_session(ctx: &Ctx, a: &AttachArgs, id: &str) -> Result<ExitCode> {
    let id = id.to_string();
    let tty = a.tty && std::io::stdin().is_terminal();
    let resp = ctx
        .client
        .attach(pb::AttachRequest {
            container_id: id,
            stdin: a.stdin,
            tty,
            stdout: true,
            stderr: !tty,
        })
        .await?;
    stream_session(&resp.url, a.stdin, tty).await
}

/// Connects our stdio to a remote command, in raw mode when there's a TTY.
async fn stream_session(url: &str, stdin: bool, tty: bool) -> Result<ExitCode> {
    let _raw = if tty {
        Some(term::RawModeGuard::new()?)
    } else {
        None
    };
    let resize = if tty {
        Some(term::watch_resize())
    } else {
        None
    };
    let io = StreamIo {
        stdin: stdin.then(tokio::io::stdin),
        stdout: Some(tokio::io::stdout()),
        stderr: (!tty).then(tokio::io::stderr),
        tty,
        resize,
    };
    let code = cri_client::stream::run_remote_command(url, io).await?;
    Ok(exit_code(code))
}

/// `[LOCAL:]REMOTE` as kubectl and crictl take it.
fn parse_port_pair(s: &str) -> Result<(u16, u16)> {
    let parse = |p: &str| -> Result<u16> {
        p.parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| format!("port mapping {s:?}: {p:?} is not a port (1-65535)"))
    };
    match s.split_once(':') {
        Some(("", remote)) => Ok((0, parse(remote)?)),
        Some((local, remote)) => Ok((parse(local)?, parse(remote)?)),
        None => {
            let p = parse(s)?;
            Ok((p, p))
        }
    }
}

pub async fn port_forward(ctx: &Ctx, a: PortForwardArgs) -> Result<()> {
    let pod = resolve::pod_id(&ctx.client, &a.pod).await?;
    let pairs: Vec<(u16, u16)> = a
        .ports
        .iter()
        .map(|p| parse_port_pair(p))
        .collect::<Result<_>>()?;
    let mut tasks = tokio::task::JoinSet::new();
    for (local, remote) in pairs {
        let listener = tokio::net::TcpListener::bind((a.address.as_str(), local))
            .await
            .with_context(|| format!("listening on {}:{local}", a.address))?;
        let bound = listener.local_addr()?;
        println!("Forwarding from {bound} -> {remote}");
        let client = ctx.client.clone();
        let pod = pod.clone();
        tasks.spawn(async move {
            loop {
                let (conn, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("accept on {bound}: {e}");
                        continue;
                    }
                };
                println!("Handling connection for {remote}");
                let client = client.clone();
                let pod = pod.clone();
                // One PortForward URL and WebSocket per connection, as kubectl.
                tokio::spawn(async move {
                    let url = match client
                        .port_forward(pb::PortForwardRequest {
                            pod_sandbox_id: pod,
                            port: vec![i32::from(remote)],
                        })
                        .await
                    {
                        Ok(r) => r.url,
                        Err(e) => {
                            eprintln!("port-forward {peer} -> {remote}: {e}");
                            return;
                        }
                    };
                    if let Err(e) = cri_client::stream::port_forward(&url, remote, conn).await {
                        eprintln!("port-forward {peer} -> {remote}: {e}");
                    }
                });
            }
        });
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = tasks.join_next() => bail!("a port-forward listener stopped"),
    }
}

/// `--since`: a relative duration (`10s`, `5m`) or an RFC3339 time.
fn parse_since(s: &str, now: jiff::Timestamp) -> Result<jiff::Timestamp> {
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Ok(ts);
    }
    let d = humantime::parse_duration(s).with_context(|| {
        format!("--since {s:?}: expected a duration such as 10s or 5m, or an RFC3339 time")
    })?;
    let span = jiff::SignedDuration::try_from(d).context("--since: duration too large")?;
    now.checked_sub(span).context("--since: duration too large")
}

/// The log of the previous instance: `<attempt-1>.log` beside the current
/// one, which is where the kubelet (and crictl's --previous) looks.
fn previous_log_path(current: &str, attempt: u32) -> Result<PathBuf> {
    if attempt == 0 {
        bail!("the container has no previous instance (restart count 0)");
    }
    let path = PathBuf::from(current);
    let dir = path
        .parent()
        .context("container log path has no directory")?;
    Ok(dir.join(format!("{}.log", attempt - 1)))
}

pub async fn logs(ctx: &Ctx, a: LogsArgs) -> Result<()> {
    let id = resolve::container_id(&ctx.client, &a.id).await?;
    let status = ctx
        .client
        .container_status(pb::ContainerStatusRequest {
            container_id: id.clone(),
            verbose: false,
        })
        .await?
        .status
        .context("runtime returned no container status")?;
    if status.log_path.is_empty() {
        bail!("container {id} has no log path");
    }
    let attempt = status.metadata.as_ref().map_or(0, |m| m.attempt);
    let path = if a.previous {
        previous_log_path(&status.log_path, attempt)?
    } else {
        PathBuf::from(&status.log_path)
    };
    let opts = LogOptions {
        tail: u64::try_from(a.tail).ok(),
        since: a
            .since
            .as_deref()
            .map(|s| parse_since(s, jiff::Timestamp::now()))
            .transpose()?,
        timestamps: a.timestamps,
        follow: a.follow && !a.previous,
        limit_bytes: u64::try_from(a.limit_bytes).ok().filter(|n| *n > 0),
        stream: match a.stream.as_deref() {
            None | Some("" | "all") => StreamFilter::All,
            Some("stdout") => StreamFilter::Stdout,
            Some("stderr") => StreamFilter::Stderr,
            Some(other) => bail!("--stream {other:?}: expected stdout or stderr"),
        },
    };
    // Ctrl-C ends a follow cleanly; so does the container stopping, as with
    // crictl and the kubelet (read_logs_until drains the file first).
    let cancel = CancellationToken::new();
    let on_ctrl_c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_ctrl_c.cancel();
        }
    });
    let client = ctx.client.clone();
    let still_running = move || {
        let client = client.clone();
        let id = id.clone();
        async move {
            client
                .container_status(pb::ContainerStatusRequest {
                    container_id: id,
                    verbose: false,
                })
                .await
                .ok()
                .and_then(|r| r.status)
                .is_some_and(|s| s.state == pb::ContainerState::ContainerRunning as i32)
        }
    };
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    cri_client::logs::read_logs_until(
        &path,
        &opts,
        &mut stdout,
        &mut stderr,
        cancel,
        still_running,
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_pairs() {
        assert_eq!(parse_port_pair("8080").unwrap(), (8080, 8080));
        assert_eq!(parse_port_pair("9000:80").unwrap(), (9000, 80));
        assert_eq!(parse_port_pair(":80").unwrap(), (0, 80));
        assert!(parse_port_pair("0").is_err());
        assert!(
            parse_port_pair("70000")
                .unwrap_err()
                .to_string()
                .contains("\"70000\"")
        );
        assert!(parse_port_pair("a:b").is_err());
    }

    #[test]
    fn since_forms() {
        let now: jiff::Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
        assert_eq!(
            parse_since("90s", now).unwrap().to_string(),
            "2026-11-22T09:58:30Z"
        );
        assert_eq!(
            parse_since("2026-11-22T08:00:00Z", now)
                .unwrap()
                .to_string(),
            "2026-11-22T08:00:00Z"
        );
        assert!(
            parse_since("yesterday", now)
                .unwrap_err()
                .to_string()
                .contains("--since")
        );
    }

    #[test]
    fn previous_path() {
        assert_eq!(
            previous_log_path("/var/log/pods/ns_p_u/c/3.log", 3).unwrap(),
            PathBuf::from("/var/log/pods/ns_p_u/c/2.log")
        );
        assert!(previous_log_path("/var/log/pods/ns_p_u/c/0.log", 0).is_err());
    }
}
