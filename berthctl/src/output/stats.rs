//! `stats` and `statsp`: CPU percentages from two samples and their tables.

use super::*;

fn cpu_percent(id: &str, cpu: u64, old_cpu: u64, ts: i64, old_ts: i64) -> Result<f64> {
    if cpu == 0 {
        return Ok(0.0);
    }
    let duration = ts.saturating_sub(old_ts);
    if duration == 0 {
        return Err(OutputError::StaleCpuSample { id: id.to_owned() });
    }
    // Go subtracts as uint64 and wraps; a counter that went backwards
    // shows 0 here instead of an absurd number.
    Ok(cpu.saturating_sub(old_cpu) as f64 / duration as f64 * 100.0)
}

fn sorted_container_stats(resp: &pb::ListContainerStatsResponse) -> Vec<pb::ContainerStats> {
    let mut stats = resp.stats.clone();
    stats.sort_by(|a, b| {
        let ida = a.attributes.as_ref().map_or("", |x| x.id.as_str());
        let idb = b.attributes.as_ref().map_or("", |x| x.id.as_str());
        ida.cmp(idb)
    });
    stats
}

/// `berthctl stats`. The table needs two samples (CPU % is the change in
/// CPU time between them, as crictl computes it); JSON and YAML print the
/// newer one. crictl also hides rows with no CPU and memory unless `-a`;
/// the caller already filters to running containers for that.
pub fn print_stats(
    w: &mut impl Write,
    format: OutputFormat,
    previous: &pb::ListContainerStatsResponse,
    current: &pb::ListContainerStatsResponse,
) -> Result<()> {
    let current_sorted = sorted_container_stats(current);
    if format != OutputFormat::Table {
        return print_value(
            w,
            format,
            &pb::ListContainerStatsResponse {
                stats: current_sorted,
            },
        );
    }
    let text = render_stats(previous, &current_sorted)?;
    w.write_all(text.as_bytes())?;
    Ok(())
}

fn render_stats(
    previous: &pb::ListContainerStatsResponse,
    current: &[pb::ContainerStats],
) -> Result<String> {
    let old: HashMap<&str, &pb::ContainerStats> = previous
        .stats
        .iter()
        .filter_map(|s| s.attributes.as_ref().map(|a| (a.id.as_str(), s)))
        .collect();
    let mut t = Table::new();
    t.row([
        "CONTAINER",
        "NAME",
        "CPU %",
        "MEM",
        "DISK",
        "INODES",
        "SWAP",
    ]);
    for s in current {
        let attrs = s.attributes.clone().unwrap_or_default();
        let Some(prev) = old.get(attrs.id.as_str()) else {
            // Appeared between the samples: no CPU rate yet.
            continue;
        };
        let cpu_of = |st: &pb::ContainerStats| {
            st.cpu.as_ref().map_or((0, 0), |c| {
                (
                    c.usage_core_nano_seconds.as_ref().map_or(0, |v| v.value),
                    c.timestamp,
                )
            })
        };
        let (cpu, ts) = cpu_of(s);
        let (old_cpu, old_ts) = cpu_of(prev);
        let mem = s
            .memory
            .as_ref()
            .and_then(|m| m.working_set_bytes.as_ref())
            .map_or(0, |v| v.value);
        let disk = s
            .writable_layer
            .as_ref()
            .and_then(|l| l.used_bytes.as_ref())
            .map_or(0, |v| v.value);
        let inodes = s
            .writable_layer
            .as_ref()
            .and_then(|l| l.inodes_used.as_ref())
            .map_or(0, |v| v.value);
        let swap = s
            .swap
            .as_ref()
            .and_then(|x| x.swap_usage_bytes.as_ref())
            .map_or(0, |v| v.value);
        let perc = cpu_percent(&attrs.id, cpu, old_cpu, ts, old_ts)?;
        t.row([
            truncate_id(&attrs.id, false),
            attrs.metadata.map(|m| m.name).unwrap_or_default(),
            format!("{perc:.2}"),
            human_size(mem as f64),
            human_size(disk as f64),
            inodes.to_string(),
            human_size(swap as f64),
        ]);
    }
    Ok(format!("{CLEAR_SCREEN}{}", t.render()))
}

/// CPU time, memory and CPU timestamp of a pod's stats, Linux or Windows.
fn pod_usage(s: &pb::PodSandboxStats, id: &str) -> Result<(u64, u64, i64, u64)> {
    match (&s.linux, &s.windows) {
        (Some(_), Some(_)) => Err(OutputError::MixedPodStats { id: id.to_owned() }),
        (Some(l), None) => {
            let cpu = l.cpu.unwrap_or_default();
            Ok((
                cpu.usage_core_nano_seconds.map_or(0, |v| v.value),
                l.memory
                    .as_ref()
                    .and_then(|m| m.working_set_bytes.as_ref())
                    .map_or(0, |v| v.value),
                cpu.timestamp,
                cpu.usage_nano_cores.map_or(0, |v| v.value),
            ))
        }
        (None, Some(wi)) => {
            let cpu = wi.cpu.unwrap_or_default();
            Ok((
                cpu.usage_core_nano_seconds.map_or(0, |v| v.value),
                wi.memory
                    .as_ref()
                    .and_then(|m| m.working_set_bytes.as_ref())
                    .map_or(0, |v| v.value),
                cpu.timestamp,
                cpu.usage_nano_cores.map_or(0, |v| v.value),
            ))
        }
        (None, None) => Ok((0, 0, 0, 0)),
    }
}

fn sorted_pod_stats(resp: &pb::ListPodSandboxStatsResponse) -> Vec<pb::PodSandboxStats> {
    let mut stats = resp.stats.clone();
    stats.sort_by(|a, b| {
        let ida = a.attributes.as_ref().map_or("", |x| x.id.as_str());
        let idb = b.attributes.as_ref().map_or("", |x| x.id.as_str());
        ida.cmp(idb)
    });
    stats
}

/// `berthctl statsp` from a single sample. crictl samples twice and
/// divides the CPU time used by the time between; with one sample this
/// uses the runtime's own `usageNanoCores` rate instead. See
/// [`print_statsp_sampled`] for crictl's two-sample way.
pub fn print_statsp(
    w: &mut impl Write,
    format: OutputFormat,
    resp: &pb::ListPodSandboxStatsResponse,
) -> Result<()> {
    let stats = sorted_pod_stats(resp);
    if format != OutputFormat::Table {
        return print_value(w, format, &pb::ListPodSandboxStatsResponse { stats });
    }
    let mut t = Table::new();
    t.row(["POD", "POD ID", "CPU %", "MEM"]);
    for s in &stats {
        let attrs = s.attributes.clone().unwrap_or_default();
        let id = truncate_id(&attrs.id, false);
        let (cpu, mem, _, nano_cores) = pod_usage(s, &id)?;
        if cpu == 0 && mem == 0 {
            continue;
        }
        t.row([
            attrs.metadata.map(|m| m.name).unwrap_or_default(),
            id,
            format!("{:.2}", nano_cores as f64 / 1e9 * 100.0),
            human_size(mem as f64),
        ]);
    }
    write!(w, "{CLEAR_SCREEN}{}", t.render())?;
    Ok(())
}

/// `berthctl statsp` exactly as crictl computes it, from two samples.
// main.rs samples once today; kept for a crictl-exact `statsp`.
#[allow(dead_code)]
pub fn print_statsp_sampled(
    w: &mut impl Write,
    format: OutputFormat,
    previous: &pb::ListPodSandboxStatsResponse,
    current: &pb::ListPodSandboxStatsResponse,
) -> Result<()> {
    let stats = sorted_pod_stats(current);
    if format != OutputFormat::Table {
        return print_value(w, format, &pb::ListPodSandboxStatsResponse { stats });
    }
    let old: HashMap<&str, &pb::PodSandboxStats> = previous
        .stats
        .iter()
        .filter_map(|s| s.attributes.as_ref().map(|a| (a.id.as_str(), s)))
        .collect();
    let mut t = Table::new();
    t.row(["POD", "POD ID", "CPU %", "MEM"]);
    for s in &stats {
        let attrs = s.attributes.clone().unwrap_or_default();
        let id = truncate_id(&attrs.id, false);
        let (cpu, mem, ts, _) = pod_usage(s, &id)?;
        if cpu == 0 && mem == 0 {
            continue;
        }
        let Some(prev) = old.get(attrs.id.as_str()) else {
            continue;
        };
        let (old_cpu, _, old_ts, _) = pod_usage(prev, &id)?;
        let perc = cpu_percent(&id, cpu, old_cpu, ts, old_ts)?;
        t.row([
            attrs.metadata.map(|m| m.name).unwrap_or_default(),
            id,
            format!("{perc:.2}"),
            human_size(mem as f64),
        ]);
    }
    write!(w, "{CLEAR_SCREEN}{}", t.render())?;
    Ok(())
}
