//! berthctl: a crictl-compatible CLI for CRI runtimes.
//!
//! Same commands, flags, columns and JSON as crictl 1.36, so scripts keep
//! working; it starts in a few milliseconds, finds the runtime without
//! crictl's slow fallback, and adds `tree` and `trace`.

mod cli;
mod cmd_container;
mod cmd_image;
mod cmd_pod;
mod cmd_runtime;
mod cmd_stream;
mod config;
mod filter;
mod output;
mod resolve;
mod term;
mod tree;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use cli::{Cli, Command};
use cri_client::RuntimeClient;
use cri_client::client::Timeouts;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One thread is plenty for a CLI and starts fastest.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berthctl: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(run(cli));
    // Don't wait for a blocking stdin read (exec -i, attach) that will never
    // return: the session is over.
    rt.shutdown_background();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berthctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Settings after merging flags, environment and the config file, in
/// crictl's order of precedence (flag/env over file).
pub struct Ctx {
    pub client: RuntimeClient,
    pub config: config::CrictlConfig,
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let file_config = config::CrictlConfig::load(&cli.config)?;
    let debug = cli.debug || file_config.debug.unwrap_or(false);
    init_tracing(debug);

    // Commands that need no runtime.
    match &cli.command {
        Command::Config(args) => {
            return cmd_runtime::config(args, &cli.config, file_config).map(|_| ExitCode::SUCCESS);
        }
        Command::Completion(args) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(args.shell, &mut cmd, "berthctl", &mut std::io::stdout());
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }

    let timeout = cli
        .timeout
        .or(file_config.timeout.map(Duration::from_secs))
        .unwrap_or(Duration::from_secs(2));
    let timeouts = Timeouts {
        call: timeout,
        ..Timeouts::default()
    };
    let endpoint = cli
        .runtime_endpoint
        .clone()
        .or(file_config.runtime_endpoint.clone());
    let image_endpoint = cli
        .image_endpoint
        .clone()
        .or(file_config.image_endpoint.clone());
    let client =
        RuntimeClient::connect_split(endpoint.as_deref(), image_endpoint.as_deref(), timeouts)
            .await
            .context("connecting to the runtime")?;
    if endpoint.is_none() {
        // Say which default answered: crictl's silent guessing (and its slow,
        // noisy fallback) is a common complaint.
        tracing::info!(
            "no runtime endpoint configured; using {}",
            client.endpoint()
        );
        if !matches!(cli.command, Command::Version(_)) {
            eprintln!(
                "berthctl: using {} (set -r, CONTAINER_RUNTIME_ENDPOINT or runtime-endpoint in {} to choose)",
                client.endpoint(),
                cli.config.display()
            );
        }
    }
    let ctx = Ctx {
        client,
        config: file_config,
    };

    match cli.command {
        Command::Attach(a) => return cmd_stream::attach(&ctx, a).await,
        Command::Create(a) => cmd_container::create(&ctx, a).await?,
        Command::Exec(a) => return cmd_stream::exec(&ctx, a).await,
        Command::Inspect(a) => cmd_container::inspect(&ctx, a).await?,
        Command::Logs(a) => cmd_stream::logs(&ctx, a).await?,
        Command::PortForward(a) => cmd_stream::port_forward(&ctx, a).await?,
        Command::Ps(a) => cmd_container::ps(&ctx, a).await?,
        Command::Rm(a) => cmd_container::rm(&ctx, a).await?,
        Command::Run(a) => cmd_container::run(&ctx, a).await?,
        Command::Start(a) => cmd_container::start(&ctx, a).await?,
        Command::Stop(a) => cmd_container::stop(&ctx, a).await?,
        Command::Update(a) => cmd_container::update(&ctx, a).await?,
        Command::Stats(a) => cmd_container::stats(&ctx, a).await?,
        Command::Runp(a) => cmd_pod::runp(&ctx, a).await?,
        Command::Stopp(a) => cmd_pod::stopp(&ctx, a).await?,
        Command::Rmp(a) => cmd_pod::rmp(&ctx, a).await?,
        Command::Inspectp(a) => cmd_pod::inspectp(&ctx, a).await?,
        Command::Pods(a) => cmd_pod::pods(&ctx, a).await?,
        Command::Statsp(a) => cmd_pod::statsp(&ctx, a).await?,
        Command::Metricsp(a) => cmd_pod::metricsp(&ctx, a).await?,
        Command::Images(a) => cmd_image::images(&ctx, a).await?,
        Command::Inspecti(a) => cmd_image::inspecti(&ctx, a).await?,
        Command::Imagefsinfo(a) => cmd_image::imagefsinfo(&ctx, a).await?,
        Command::Pull(a) => cmd_image::pull(&ctx, a).await?,
        Command::Rmi(a) => cmd_image::rmi(&ctx, a).await?,
        Command::Checkpoint(a) => cmd_container::checkpoint(&ctx, a).await?,
        Command::Version(a) => cmd_runtime::version(&ctx, a).await?,
        Command::Info(a) => cmd_runtime::info(&ctx, a).await?,
        Command::RuntimeConfig(a) => cmd_runtime::runtime_config(&ctx, a).await?,
        Command::Events(a) => cmd_runtime::events(&ctx, a).await?,
        Command::Tree(a) => tree::tree(&ctx, a).await?,
        Command::Trace(a) => cmd_runtime::trace(&ctx, a).await?,
        Command::Config(_) | Command::Completion(_) => {}
    }
    Ok(ExitCode::SUCCESS)
}

fn init_tracing(debug: bool) {
    let filter = if debug {
        "debug,h2=info,hyper=info,tower=info"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .init();
}

/// Reads a pod or container config file, JSON or YAML (crictl accepts both,
/// with snake_case or camelCase keys).
pub fn read_config_file<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T> {
    const MAX: u64 = 4 * 1024 * 1024;
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.len() > MAX {
        anyhow::bail!(
            "{}: {} bytes is larger than the 4 MiB limit",
            path.display(),
            meta.len()
        );
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let parsed = if text.trim_start().starts_with('{') {
        serde_json::from_str(&text).map_err(anyhow::Error::from)
    } else {
        serde_saphyr::from_str(&text).map_err(anyhow::Error::from)
    };
    parsed.with_context(|| format!("{}: not a valid config", path.display()))
}
