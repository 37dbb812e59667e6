//! `/metrics/resource`: what metrics-server scrapes (Go's
//! `pkg/kubelet/metrics/collectors/resource_metrics.go`), from the stats
//! summary in memory.
//!
//! Node, container and pod CPU (cumulative core-seconds) and working set,
//! each sample stamped with the time its figure was read, and
//! `container_start_time_seconds` (unstamped, as in Go). When there is no
//! summary yet (the first stats cycle hasn't finished, or stats are off)
//! only `resource_scrape_error 1` is served.
//!
//! Not served: the swap series (`node_swap_usage_bytes`,
//! `container_swap_usage_bytes`, `pod_swap_usage_bytes`), since berth's
//! summary has no swap figures; and `scrape_error`, which Go deprecated in
//! 1.29 and hides from 1.30 on (`resource_scrape_error` replaces it).

use super::text::{Family, Kind, render};
use crate::stats::summary::{PodStats, Summary, Time};

const NODE_CPU: (&str, &str) = (
    "node_cpu_usage_seconds_total",
    "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
);
const NODE_MEMORY: (&str, &str) = (
    "node_memory_working_set_bytes",
    "[STABLE] Current working set of the node in bytes",
);
const CONTAINER_CPU: (&str, &str) = (
    "container_cpu_usage_seconds_total",
    "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
);
const CONTAINER_MEMORY: (&str, &str) = (
    "container_memory_working_set_bytes",
    "[STABLE] Current working set of the container in bytes",
);
const CONTAINER_START: (&str, &str) = (
    "container_start_time_seconds",
    "[STABLE] Start time of the container since unix epoch in seconds",
);
const POD_CPU: (&str, &str) = (
    "pod_cpu_usage_seconds_total",
    "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
);
const POD_MEMORY: (&str, &str) = (
    "pod_memory_working_set_bytes",
    "[STABLE] Current working set of the pod in bytes",
);
const SCRAPE_ERROR: (&str, &str) = (
    "resource_scrape_error",
    "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
);

fn family((name, help): (&'static str, &'static str), kind: Kind) -> Family {
    Family::new(name, help, kind)
}

/// Milliseconds since the epoch, as Go stamps a sample.
pub fn millis(t: Time) -> i64 {
    t.unix_nanos.div_euclid(1_000_000)
}

/// Seconds from nanoseconds, as Go divides them.
pub fn seconds(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

/// The body of `/metrics/resource` for `summary` (`None`: no stats yet).
pub fn render_resource(summary: Option<&Summary>) -> String {
    let mut scrape_error = family(SCRAPE_ERROR, Kind::Gauge);
    let Some(summary) = summary else {
        scrape_error.push(vec![], 1.0, None);
        return render(vec![scrape_error]);
    };
    scrape_error.push(vec![], 0.0, None);
    let mut node_cpu = family(NODE_CPU, Kind::Counter);
    let mut node_memory = family(NODE_MEMORY, Kind::Gauge);
    let mut container_cpu = family(CONTAINER_CPU, Kind::Counter);
    let mut container_memory = family(CONTAINER_MEMORY, Kind::Gauge);
    let mut container_start = family(CONTAINER_START, Kind::Gauge);
    let mut pod_cpu = family(POD_CPU, Kind::Counter);
    let mut pod_memory = family(POD_MEMORY, Kind::Gauge);

    let node = &summary.node;
    if let Some((cpu, ns)) = node
        .cpu
        .as_ref()
        .and_then(|c| Some((c, c.usage_core_nano_seconds?)))
    {
        node_cpu.push(vec![], seconds(ns), Some(millis(cpu.time)));
    }
    if let Some((m, ws)) = node
        .memory
        .as_ref()
        .and_then(|m| Some((m, m.working_set_bytes?)))
    {
        node_memory.push(vec![], ws as f64, Some(millis(m.time)));
    }

    for pod in &summary.pods {
        let PodStats { pod_ref, .. } = pod;
        let pod_labels = || {
            vec![
                ("pod", pod_ref.name.clone()),
                ("namespace", pod_ref.namespace.clone()),
            ]
        };
        for c in &pod.containers {
            let labels = || {
                let mut l = pod_labels();
                l.push(("container", c.name.clone()));
                l
            };
            // Go skips a start time at or before the epoch's first second.
            if c.start_time.unix_nanos >= 1_000_000_000 {
                container_start.push(labels(), c.start_time.unix_nanos as f64 / 1e9, None);
            }
            if let Some((cpu, ns)) = c
                .cpu
                .as_ref()
                .and_then(|x| Some((x, x.usage_core_nano_seconds?)))
            {
                container_cpu.push(labels(), seconds(ns), Some(millis(cpu.time)));
            }
            if let Some((m, ws)) = c
                .memory
                .as_ref()
                .and_then(|x| Some((x, x.working_set_bytes?)))
            {
                container_memory.push(labels(), ws as f64, Some(millis(m.time)));
            }
        }
        if let Some((cpu, ns)) = pod
            .cpu
            .as_ref()
            .and_then(|x| Some((x, x.usage_core_nano_seconds?)))
        {
            pod_cpu.push(pod_labels(), seconds(ns), Some(millis(cpu.time)));
        }
        if let Some((m, ws)) = pod
            .memory
            .as_ref()
            .and_then(|x| Some((x, x.working_set_bytes?)))
        {
            pod_memory.push(pod_labels(), ws as f64, Some(millis(m.time)));
        }
    }
    render(vec![
        node_cpu,
        node_memory,
        container_start,
        container_cpu,
        container_memory,
        pod_cpu,
        pod_memory,
        scrape_error,
    ])
}
