//! Pod sandbox commands: runp, stopp, rmp, inspectp, pods, statsp, metricsp.

use anyhow::{Result, bail};
use cri_client::proto as pb;

use crate::cli::{IdsArgs, InspectArgs, OutputArgs, PodsArgs, RmArgs, RunpArgs, StatspArgs};
use crate::{Ctx, filter, output, read_config_file, resolve};

pub async fn runp(ctx: &Ctx, a: RunpArgs) -> Result<()> {
    let config: pb::PodSandboxConfig = read_config_file(&a.pod_config)?;
    let resp = ctx
        .client
        .run_pod_sandbox(pb::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: a.runtime,
        })
        .await?;
    println!("{}", resp.pod_sandbox_id);
    Ok(())
}

pub async fn stopp(ctx: &Ctx, a: IdsArgs) -> Result<()> {
    for id in resolve::pod_ids(&ctx.client, &a.ids).await? {
        ctx.client
            .stop_pod_sandbox(pb::StopPodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await?;
        println!("Stopped sandbox {id}");
    }
    Ok(())
}

pub async fn rmp(ctx: &Ctx, a: RmArgs) -> Result<()> {
    let all: Vec<(String, bool)> = ctx
        .client
        .list_pod_sandbox(pb::ListPodSandboxRequest::default())
        .await?
        .items
        .into_iter()
        .map(|p| (p.id, p.state == pb::PodSandboxState::SandboxReady as i32))
        .collect();
    let resolved = if a.all || a.ids.is_empty() {
        Vec::new()
    } else {
        resolve::pod_ids(&ctx.client, &a.ids).await?
    };
    let removal = crate::cmd_container::Removal {
        kind: "pod sandbox",
        all: &all,
        args: &a,
    };
    let stop = |id: String| async move {
        ctx.client
            .stop_pod_sandbox(pb::StopPodSandboxRequest { pod_sandbox_id: id })
            .await?;
        Ok(())
    };
    let remove = |id: String| async move {
        ctx.client
            .remove_pod_sandbox(pb::RemovePodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await?;
        println!("Removed sandbox {id}");
        Ok(())
    };
    removal.run(resolved, stop, remove).await
}

pub async fn inspectp(ctx: &Ctx, a: InspectArgs) -> Result<()> {
    let format = output::OutputFormat::parse_or(&a.out.output, output::OutputFormat::Json)?;
    for id in resolve::pod_ids(&ctx.client, &a.ids).await? {
        let resp = ctx
            .client
            .pod_sandbox_status(pb::PodSandboxStatusRequest {
                pod_sandbox_id: id,
                verbose: !a.quiet,
            })
            .await?;
        output::print_inspectp(&mut std::io::stdout().lock(), format, &resp)?;
    }
    Ok(())
}

pub async fn pods(ctx: &Ctx, a: PodsArgs) -> Result<()> {
    let f = &a.filter;
    let format = output::OutputFormat::parse_or(&f.output, output::OutputFormat::Table)?;
    let state = match f.state.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("") => None,
        Some("ready" | "sandbox_ready") => Some(pb::PodSandboxState::SandboxReady),
        Some("notready" | "sandbox_notready") => Some(pb::PodSandboxState::SandboxNotready),
        Some(other) => bail!("--state {other:?}: expected ready or notready"),
    };
    let filter = pb::PodSandboxFilter {
        id: String::new(),
        state: state.map(|s| pb::PodSandboxStateValue { state: s as i32 }),
        label_selector: filter::labels(&f.label)?,
    };
    let name = filter::regex("name", f.name.as_deref())?;
    let namespace = filter::regex("namespace", f.namespace.as_deref())?;
    let mut items = ctx
        .client
        .list_pod_sandbox(pb::ListPodSandboxRequest {
            filter: Some(filter),
        })
        .await?
        .items;
    items.retain(|p| {
        let meta = p.metadata.clone().unwrap_or_default();
        f.id.as_deref().is_none_or(|id| p.id.starts_with(id))
            && filter::matches(&name, &meta.name)
            && filter::matches(&namespace, &meta.namespace)
    });
    filter::newest_first(&mut items, |p| p.created_at, f.latest, f.last);
    let opts = output::ListOptions {
        quiet: f.quiet,
        no_trunc: f.no_trunc,
        verbose: f.verbose,
    };
    output::print_pods(
        &mut std::io::stdout().lock(),
        format,
        &items,
        &opts,
        output::now(),
    )?;
    Ok(())
}

pub async fn statsp(ctx: &Ctx, a: StatspArgs) -> Result<()> {
    let format = output::OutputFormat::parse_or(&a.out.output, output::OutputFormat::Table)?;
    let filter = pb::PodSandboxStatsFilter {
        id: match &a.id {
            Some(id) => resolve::pod_id(&ctx.client, id).await?,
            None => String::new(),
        },
        label_selector: filter::labels(&a.label)?,
    };
    loop {
        let resp = ctx
            .client
            .list_pod_sandbox_stats(pb::ListPodSandboxStatsRequest {
                filter: Some(filter.clone()),
            })
            .await?;
        output::print_statsp(&mut std::io::stdout().lock(), format, &resp)?;
        if !a.watch {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_secs(a.seconds.max(1))).await;
    }
}

pub async fn metricsp(ctx: &Ctx, a: OutputArgs) -> Result<()> {
    let format = output::OutputFormat::parse_or(&a.output, output::OutputFormat::Json)?;
    let resp = ctx
        .client
        .list_pod_sandbox_metrics(pb::ListPodSandboxMetricsRequest::default())
        .await?;
    output::print_value(&mut std::io::stdout().lock(), format, &resp)?;
    Ok(())
}
