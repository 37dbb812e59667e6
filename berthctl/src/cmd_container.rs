//! Container commands: create, run, start, stop, rm, ps, inspect, update,
//! stats, checkpoint.

use anyhow::{Context, Result, bail};
use cri_client::proto as pb;

use crate::cli::{
    CheckpointArgs, CreateArgs, IdsArgs, InspectArgs, PsArgs, RmArgs, RunArgs, StatsArgs, StopArgs,
    UpdateArgs,
};
use crate::{Ctx, cmd_image, filter, output, read_config_file, resolve};

pub async fn create(ctx: &Ctx, a: CreateArgs) -> Result<()> {
    let pod_id = resolve::pod_id(&ctx.client, &a.pod).await?;
    let config: pb::ContainerConfig = read_config_file(&a.container_config)?;
    let sandbox: pb::PodSandboxConfig = read_config_file(&a.pod_config)?;
    // crictl's create pulls only when asked (--with-pull or
    // pull-image-on-create in the config file).
    let pull =
        !a.pull.no_pull && (a.pull.with_pull || ctx.config.pull_image_on_create.unwrap_or(false));
    let id = create_in(ctx, &pod_id, config, sandbox, pull, &a.pull).await?;
    println!("{id}");
    Ok(())
}

async fn create_in(
    ctx: &Ctx,
    pod_id: &str,
    config: pb::ContainerConfig,
    sandbox: pb::PodSandboxConfig,
    pull: bool,
    opts: &crate::cli::PullOpts,
) -> Result<String> {
    if pull {
        let image = config.image.clone().unwrap_or_default().image;
        let auth = cmd_image::auth_config(opts.creds.as_deref(), opts.auth.as_deref(), None, None)?;
        cmd_image::pull_with(ctx, &image, auth, Some(sandbox.clone())).await?;
    }
    let resp = ctx
        .client
        .create_container(pb::CreateContainerRequest {
            pod_sandbox_id: pod_id.to_string(),
            config: Some(config),
            sandbox_config: Some(sandbox),
        })
        .await?;
    Ok(resp.container_id)
}

pub async fn run(ctx: &Ctx, a: RunArgs) -> Result<()> {
    let config: pb::ContainerConfig = read_config_file(&a.container_config)?;
    let sandbox: pb::PodSandboxConfig = read_config_file(&a.pod_config)?;
    let pod = ctx
        .client
        .run_pod_sandbox(pb::RunPodSandboxRequest {
            config: Some(sandbox.clone()),
            runtime_handler: a.runtime,
        })
        .await?;
    // crictl's run pulls unless --no-pull or disable-pull-on-run.
    let pull = !a.pull.no_pull && !ctx.config.disable_pull_on_run.unwrap_or(false);
    let id = create_in(ctx, &pod.pod_sandbox_id, config, sandbox, pull, &a.pull)
        .await
        .with_context(|| {
            format!(
                "creating the container in new pod sandbox {}",
                pod.pod_sandbox_id
            )
        })?;
    ctx.client
        .start_container(pb::StartContainerRequest {
            container_id: id.clone(),
        })
        .await?;
    println!("{id}");
    Ok(())
}

pub async fn start(ctx: &Ctx, a: IdsArgs) -> Result<()> {
    for id in resolve::container_ids(&ctx.client, &a.ids).await? {
        ctx.client
            .start_container(pb::StartContainerRequest {
                container_id: id.clone(),
            })
            .await?;
        println!("{id}");
    }
    Ok(())
}

pub async fn stop(ctx: &Ctx, a: StopArgs) -> Result<()> {
    for id in resolve::container_ids(&ctx.client, &a.ids).await? {
        ctx.client
            .stop_container(pb::StopContainerRequest {
                container_id: id.clone(),
                timeout: a.timeout,
            })
            .await?;
        println!("{id}");
    }
    Ok(())
}

/// What `rm` and `rmp` share: pick the targets (`--all` or resolved IDs),
/// refuse running ones without `-f` (as crictl), stop then remove the rest,
/// and fail at the end if any was refused.
pub struct Removal<'a> {
    pub kind: &'static str,
    pub all: &'a [(String, bool)],
    pub args: &'a RmArgs,
}

impl Removal<'_> {
    pub async fn run<S, FS, R, FR>(self, resolved: Vec<String>, stop: S, remove: R) -> Result<()>
    where
        S: Fn(String) -> FS,
        FS: std::future::Future<Output = Result<()>>,
        R: Fn(String) -> FR,
        FR: std::future::Future<Output = Result<()>>,
    {
        let ids = if self.args.all {
            self.all.iter().map(|(id, _)| id.clone()).collect()
        } else if self.args.ids.is_empty() {
            bail!("give at least one {} ID, or --all", self.kind);
        } else {
            resolved
        };
        let mut refused = 0;
        for id in ids {
            let running = self.all.iter().any(|(i, r)| *i == id && *r);
            if running && !self.args.force {
                eprintln!("{} {id} is running, stop it first or use -f", self.kind);
                refused += 1;
                continue;
            }
            if running {
                stop(id.clone()).await?;
            }
            remove(id).await?;
        }
        if refused > 0 {
            bail!("{refused} {}(s) not removed", self.kind);
        }
        Ok(())
    }
}

pub async fn rm(ctx: &Ctx, a: RmArgs) -> Result<()> {
    let all: Vec<(String, bool)> = ctx
        .client
        .list_containers(pb::ListContainersRequest::default())
        .await?
        .containers
        .into_iter()
        .map(|c| (c.id, c.state == pb::ContainerState::ContainerRunning as i32))
        .collect();
    let resolved = if a.all || a.ids.is_empty() {
        Vec::new()
    } else {
        resolve::container_ids(&ctx.client, &a.ids).await?
    };
    let removal = Removal {
        kind: "container",
        all: &all,
        args: &a,
    };
    let stop = |id: String| async move {
        ctx.client
            .stop_container(pb::StopContainerRequest {
                container_id: id,
                timeout: 0,
            })
            .await?;
        Ok(())
    };
    let remove = |id: String| async move {
        ctx.client
            .remove_container(pb::RemoveContainerRequest {
                container_id: id.clone(),
            })
            .await?;
        println!("{id}");
        Ok(())
    };
    removal.run(resolved, stop, remove).await
}

fn container_state(s: &str) -> Result<pb::ContainerState> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "created" | "container_created" => pb::ContainerState::ContainerCreated,
        "running" | "container_running" => pb::ContainerState::ContainerRunning,
        "exited" | "container_exited" => pb::ContainerState::ContainerExited,
        "unknown" | "container_unknown" => pb::ContainerState::ContainerUnknown,
        other => bail!("--state {other:?}: expected created, running, exited or unknown"),
    })
}

pub async fn ps(ctx: &Ctx, a: PsArgs) -> Result<()> {
    let f = &a.filter;
    let format = output::OutputFormat::parse_or(&f.output, output::OutputFormat::Table)?;
    let state = match f.state.as_deref() {
        Some(s) if !s.is_empty() => Some(container_state(s)?),
        // Like crictl: running ones only, unless -a (or --latest/--last,
        // which look at every container).
        _ if a.all || f.latest || f.last > 0 => None,
        _ => Some(pb::ContainerState::ContainerRunning),
    };
    let pod_id = match &a.pod {
        Some(p) => resolve::pod_id(&ctx.client, p).await?,
        None => String::new(),
    };
    let req_filter = pb::ContainerFilter {
        id: String::new(),
        state: state.map(|s| pb::ContainerStateValue { state: s as i32 }),
        pod_sandbox_id: pod_id,
        label_selector: filter::labels(&f.label)?,
    };
    let name = filter::regex("name", f.name.as_deref())?;
    let namespace = filter::regex("namespace", f.namespace.as_deref())?;
    let mut items = ctx
        .client
        .list_containers(pb::ListContainersRequest {
            filter: Some(req_filter),
        })
        .await?
        .containers;
    items.retain(|c| {
        let meta = c.metadata.clone().unwrap_or_default();
        let ns = c
            .labels
            .get("io.kubernetes.pod.namespace")
            .map_or("", String::as_str);
        let image = c.image.as_ref().map_or("", |i| i.image.as_str());
        f.id.as_deref().is_none_or(|id| c.id.starts_with(id))
            && filter::matches(&name, &meta.name)
            && filter::matches(&namespace, ns)
            && a.image.as_deref().is_none_or(|want| {
                image == want
                    || image.starts_with(&format!("{want}:"))
                    || c.image_ref == want
                    || c.image_ref.contains(want)
            })
    });
    filter::newest_first(&mut items, |c| c.created_at, f.latest, f.last);
    let opts = output::ListOptions {
        quiet: f.quiet,
        no_trunc: f.no_trunc,
        verbose: f.verbose,
    };
    output::print_containers(
        &mut std::io::stdout().lock(),
        format,
        &items,
        &opts,
        output::now(),
    )?;
    Ok(())
}

pub async fn inspect(ctx: &Ctx, a: InspectArgs) -> Result<()> {
    let format = output::OutputFormat::parse_or(&a.out.output, output::OutputFormat::Json)?;
    for id in resolve::container_ids(&ctx.client, &a.ids).await? {
        let resp = ctx
            .client
            .container_status(pb::ContainerStatusRequest {
                container_id: id,
                verbose: !a.quiet,
            })
            .await?;
        output::print_inspect(&mut std::io::stdout().lock(), format, &resp, output::now())?;
    }
    Ok(())
}

pub async fn update(ctx: &Ctx, a: UpdateArgs) -> Result<()> {
    let resources = pb::LinuxContainerResources {
        cpu_period: a.cpu_period.unwrap_or_default(),
        cpu_quota: a.cpu_quota.unwrap_or_default(),
        cpu_shares: a.cpu_share.unwrap_or_default(),
        cpuset_cpus: a.cpuset_cpus.clone().unwrap_or_default(),
        cpuset_mems: a.cpuset_mems.clone().unwrap_or_default(),
        memory_limit_in_bytes: a.memory.unwrap_or_default(),
        ..Default::default()
    };
    for id in resolve::container_ids(&ctx.client, &a.ids).await? {
        ctx.client
            .update_container_resources(pb::UpdateContainerResourcesRequest {
                container_id: id.clone(),
                linux: Some(resources.clone()),
                ..Default::default()
            })
            .await?;
        println!("{id}");
    }
    Ok(())
}

pub async fn stats(ctx: &Ctx, a: StatsArgs) -> Result<()> {
    let format = output::OutputFormat::parse_or(&a.out.output, output::OutputFormat::Table)?;
    let id = match a.id.as_deref().or(a.filter_id.as_deref()) {
        Some(id) => resolve::container_id(&ctx.client, id).await?,
        None => String::new(),
    };
    let pod = match &a.pod {
        Some(p) => resolve::pod_id(&ctx.client, p).await?,
        None => String::new(),
    };
    let filter = pb::ContainerStatsFilter {
        id,
        pod_sandbox_id: pod,
        label_selector: filter::labels(&a.label)?,
    };
    let list = || async {
        let mut stats = ctx
            .client
            .list_container_stats(pb::ListContainerStatsRequest {
                filter: Some(filter.clone()),
            })
            .await?;
        if !a.all {
            // Stats of exited containers are noise; crictl shows running
            // ones unless -a.
            let running = ctx
                .client
                .list_containers(pb::ListContainersRequest {
                    filter: Some(pb::ContainerFilter {
                        state: Some(pb::ContainerStateValue {
                            state: pb::ContainerState::ContainerRunning as i32,
                        }),
                        ..Default::default()
                    }),
                })
                .await?
                .containers;
            stats.stats.retain(|s| {
                s.attributes
                    .as_ref()
                    .is_some_and(|at| running.iter().any(|c| c.id == at.id))
            });
        }
        anyhow::Ok(stats)
    };
    let interval = std::time::Duration::from_secs(a.seconds.max(1));
    let mut previous = list().await?;
    loop {
        tokio::time::sleep(interval).await;
        let current = list().await?;
        output::print_stats(&mut std::io::stdout().lock(), format, &previous, &current)?;
        if !a.watch {
            return Ok(());
        }
        previous = current;
    }
}

pub async fn checkpoint(ctx: &Ctx, a: CheckpointArgs) -> Result<()> {
    for id in resolve::container_ids(&ctx.client, &a.ids).await? {
        ctx.client
            .checkpoint_container(pb::CheckpointContainerRequest {
                container_id: id.clone(),
                location: a.export.clone(),
                timeout: 0,
            })
            .await?;
        println!("{id}");
    }
    Ok(())
}
