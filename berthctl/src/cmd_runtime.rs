//! Runtime-wide commands: version, info, runtime-config, events, config,
//! trace.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Result, bail};
use cri_client::proto as pb;
use futures_util::StreamExt;

use crate::cli::{ConfigArgs, OutputArgs, TraceArgs};
use crate::config::{CrictlConfig, KEYS};
use crate::{Ctx, output};

pub async fn version(ctx: &Ctx, a: OutputArgs) -> Result<()> {
    let format = output::OutputFormat::parse_or(&a.output, output::OutputFormat::Table)?;
    let resp = ctx.client.version(pb::VersionRequest::default()).await?;
    output::print_version(&mut std::io::stdout().lock(), format, &resp)?;
    Ok(())
}

pub async fn info(ctx: &Ctx, a: OutputArgs) -> Result<()> {
    let format = output::OutputFormat::parse_or(&a.output, output::OutputFormat::Json)?;
    let resp = ctx
        .client
        .status(pb::StatusRequest { verbose: true })
        .await?;
    output::print_info(&mut std::io::stdout().lock(), format, &resp)?;
    Ok(())
}

pub async fn runtime_config(ctx: &Ctx, a: OutputArgs) -> Result<()> {
    let format = output::OutputFormat::parse_or(&a.output, output::OutputFormat::Json)?;
    let resp = ctx
        .client
        .runtime_config(pb::RuntimeConfigRequest::default())
        .await?;
    output::print_value(&mut std::io::stdout().lock(), format, &resp)?;
    Ok(())
}

pub async fn events(ctx: &Ctx, a: OutputArgs) -> Result<()> {
    let format = output::OutputFormat::parse_or(&a.output, output::OutputFormat::Json)?;
    let mut stream = ctx
        .client
        .get_container_events(pb::GetEventsRequest::default())
        .await?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            ev = stream.next() => match ev {
                Some(Ok(ev)) => output::print_value(&mut std::io::stdout().lock(), format, &ev)?,
                Some(Err(status)) => bail!("event stream ended: {}", status.message()),
                None => return Ok(()),
            }
        }
    }
}

/// crictl's `config`: `--get KEY`, `--set KEY=VALUE`, `--list`, or
/// positional `KEY [VALUE]`.
pub fn config(a: &ConfigArgs, path: &Path, mut cfg: CrictlConfig) -> Result<()> {
    if a.list {
        for key in KEYS {
            println!("{key}: {}", cfg.get(key)?);
        }
        return Ok(());
    }
    if let Some(key) = &a.get {
        println!("{}", cfg.get(key)?);
        return Ok(());
    }
    let mut sets: Vec<(String, String)> = Vec::new();
    for s in a.set.iter().flat_map(|s| s.split(',')) {
        let Some((k, v)) = s.split_once('=') else {
            bail!("--set {s:?}: expected KEY=VALUE");
        };
        sets.push((k.trim().to_string(), v.trim().to_string()));
    }
    match a.args.as_slice() {
        [] => {}
        [key] if sets.is_empty() => {
            println!("{}", cfg.get(key)?);
            return Ok(());
        }
        [key, value] => sets.push((key.clone(), value.clone())),
        _ => bail!("config: expected KEY [VALUE], --get KEY, --set KEY=VALUE or --list"),
    }
    if sets.is_empty() {
        bail!("config: expected KEY [VALUE], --get KEY, --set KEY=VALUE or --list");
    }
    for (k, v) in &sets {
        cfg.set(k, v)?;
    }
    cfg.save(path)
}

/// Prints each traced call on stdout as it completes.
struct StdoutSink;

impl cri_client::trace::TraceSink for StdoutSink {
    fn record(&self, ev: &cri_client::trace::TraceEvent) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        // A closed stdout (e.g. `| head`) must not take the proxy down.
        let _ = writeln!(out, "{}", cri_client::trace::format_event(ev));
        let _ = out.flush();
    }
}

pub async fn trace(ctx: &Ctx, a: TraceArgs) -> Result<()> {
    let upstream = cri_client::endpoint::Endpoint::parse(ctx.client.endpoint())?
        .connect(ctx.client.timeouts().call)
        .await?;
    eprintln!(
        "berthctl trace: serving CRI on unix://{} -> {} (Ctrl-C to stop)",
        a.listen.display(),
        ctx.client.endpoint()
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    cri_client::trace::serve(&a.listen, upstream, Arc::new(StdoutSink), shutdown).await?;
    Ok(())
}
