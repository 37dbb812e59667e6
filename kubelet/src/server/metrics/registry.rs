//! `/metrics`: the kubelet's own series (Go's legacy registry as the
//! kubelet fills it), through `prometheus-client`'s text 0.0.4 encoder.
//!
//! Computed at scrape time from memory, as Go's PLEG computes them at each
//! relist:
//! - `kubelet_node_name{node}` (always 1);
//! - `kubelet_running_pods`: pods with a ready sandbox in the pod cache;
//! - `kubelet_running_containers{container_state}`: the pod cache's
//!   containers by state (`created`, `running`, `exited`, `unknown`; all
//!   four always, where Go keeps a state's last count once it was seen);
//! - `process_*` (client_golang's process collector): CPU time, resident
//!   and virtual memory, open and maximum file descriptors and start time,
//!   read from `/proc/self`.
//!
//! Counted as the kubelet works ([`crate::metrics`]):
//! `kubelet_started_pods_total`, `kubelet_started_pods_errors_total`,
//! `kubelet_started_containers_total{container_type}`,
//! `kubelet_started_containers_errors_total{code,container_type}`.
//!
//! Not served yet: the kubelet's other operation counters and latencies
//! (`kubelet_pod_start_duration_seconds`,
//! `kubelet_runtime_operations_*`, `kubelet_pleg_relist_*`, …), the Go
//! runtime's `go_*` series, and the apiserver client's `rest_client_*`.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::container::{ContainerStateKind, PodCache};

/// What `/metrics` reads.
#[derive(Debug)]
pub struct KubeletCollector {
    pub node_name: String,
    pub pod_cache: Arc<PodCache>,
    /// `/proc`, or a fixture in tests.
    pub proc_self: std::path::PathBuf,
}

impl KubeletCollector {
    /// A registry with the kubelet's series.
    pub fn registry(self) -> Registry {
        let mut r = Registry::default();
        r.register_collector(Box::new(self));
        r
    }
}

/// The pod cache's counts: pods with a ready sandbox, containers by state.
pub fn running_counts(cache: &PodCache) -> (i64, [(&'static str, i64); 4]) {
    let mut pods = 0;
    let mut states = [
        ("created", 0),
        ("exited", 0),
        ("running", 0),
        ("unknown", 0),
    ];
    for p in cache.pods() {
        if p.sandboxes.iter().any(|s| s.ready) {
            pods += 1;
        }
        for c in &p.containers {
            let i = match c.state {
                ContainerStateKind::Created => 0,
                ContainerStateKind::Exited => 1,
                ContainerStateKind::Running => 2,
                ContainerStateKind::Unknown => 3,
            };
            states[i].1 += 1;
        }
    }
    (pods, states)
}

fn gauge<N: EncodeGaugeValue + std::fmt::Debug>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    v: N,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(v);
    g.encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

impl Collector for KubeletCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let (pods, states) = running_counts(&self.pod_cache);
        {
            let mut m = encoder.encode_descriptor(
                "kubelet_node_name",
                "[ALPHA] The node's name. The count is always 1.",
                None,
                MetricType::Gauge,
            )?;
            let labels = [("node", self.node_name.as_str())];
            ConstGauge::new(1i64).encode(m.encode_family(&labels)?)?;
        }
        {
            let mut m = encoder.encode_descriptor(
                "kubelet_running_containers",
                "[BETA] Number of containers currently running",
                None,
                MetricType::Gauge,
            )?;
            for (state, n) in states {
                let labels = [("container_state", state)];
                ConstGauge::new(n).encode(m.encode_family(&labels)?)?;
            }
        }
        gauge(
            &mut encoder,
            "kubelet_running_pods",
            "[ALPHA] Number of pods that have a running pod sandbox",
            pods,
        )?;
        // Families in name order, as Go's registry writes them.
        let counters = &*crate::metrics::COUNTERS;
        let counter_families: [(&str, &str, &dyn EncodeMetric); 6] = [
            (
                "kubelet_runtime_operations",
                "[ALPHA] Cumulative number of runtime operations by operation type.",
                &counters.runtime_operations,
            ),
            (
                "kubelet_runtime_operations_errors",
                "[ALPHA] Cumulative number of runtime operation errors by operation type.",
                &counters.runtime_operations_errors,
            ),
            (
                "kubelet_started_containers_errors",
                "[ALPHA] Cumulative number of errors when starting containers",
                &counters.started_containers_errors,
            ),
            (
                "kubelet_started_containers",
                "[ALPHA] Cumulative number of containers started",
                &counters.started_containers,
            ),
            (
                "kubelet_started_pods_errors",
                "[ALPHA] Cumulative number of errors when starting pods",
                &counters.started_pods_errors,
            ),
            (
                "kubelet_started_pods",
                "[ALPHA] Cumulative number of pods started",
                &counters.started_pods,
            ),
        ];
        for (name, help, metric) in counter_families {
            // prometheus-client appends `_total` to a counter's name.
            metric.encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)?;
        }
        let histograms: [(&str, &str, &dyn EncodeMetric); 3] = [
            (
                "kubelet_pod_start_duration_seconds",
                "[ALPHA] Duration in seconds from kubelet seeing a pod for the first time to the pod starting to run",
                &counters.pod_start_duration,
            ),
            (
                "kubelet_runtime_operations_duration_seconds",
                "[ALPHA] Duration in seconds of runtime operations. Broken down by operation type.",
                &counters.runtime_operations_duration,
            ),
            (
                "kubelet_pleg_relist_duration_seconds",
                "[ALPHA] Duration in seconds for relisting pods in PLEG.",
                &counters.pleg_relist_duration,
            ),
        ];
        for (name, help, metric) in histograms {
            metric.encode(encoder.encode_descriptor(name, help, None, MetricType::Histogram)?)?;
        }
        let p = process_stats(&self.proc_self);
        if let Some(cpu) = p.cpu_seconds {
            // prometheus-client appends `_total` to a counter's name.
            ConstCounter::new(cpu).encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                MetricType::Counter,
            )?)?;
        }
        let gauges = [
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                p.max_fds,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                p.open_fds,
            ),
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                p.resident_bytes,
            ),
        ];
        for (name, help, v) in gauges {
            if let Some(v) = v {
                gauge(&mut encoder, name, help, v)?;
            }
        }
        if let Some(v) = p.start_time_seconds {
            gauge(
                &mut encoder,
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                v,
            )?;
        }
        if let Some(v) = p.virtual_bytes {
            gauge(
                &mut encoder,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                v,
            )?;
        }
        Ok(())
    }
}

/// The process figures, each `None` when its file can't be read.
#[derive(Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: Option<f64>,
    pub open_fds: Option<i64>,
    pub max_fds: Option<i64>,
    pub resident_bytes: Option<i64>,
    pub virtual_bytes: Option<i64>,
    pub start_time_seconds: Option<f64>,
}

/// Clock ticks in `/proc/<pid>/stat`: USER_HZ, 100 on every Linux ABI.
const USER_HZ: f64 = 100.0;

/// Reads `<proc>/self/{stat,status,limits,fd}` and `<proc>/stat`.
pub fn process_stats(proc: &std::path::Path) -> ProcessStats {
    let read = |p: &str| std::fs::read_to_string(proc.join(p)).ok();
    let mut out = ProcessStats::default();
    if let Some(stat) = read("self/stat") {
        // Fields after the command (which may hold spaces and parentheses),
        // numbered from 3 (state) as in proc(5).
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
        if let (Some(utime), Some(stime)) = (field(14), field(15)) {
            out.cpu_seconds = Some((utime + stime) / USER_HZ);
        }
        let boot = read("stat").and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<f64>().ok())
        });
        if let (Some(boot), Some(start)) = (boot, field(22)) {
            out.start_time_seconds = Some(boot + start / USER_HZ);
        }
    }
    if let Some(status) = read("self/status") {
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
                .map(|v| v.saturating_mul(1024))
        };
        out.resident_bytes = kib("VmRSS:");
        out.virtual_bytes = kib("VmSize:");
    }
    if let Some(limits) = read("self/limits") {
        out.max_fds = limits
            .lines()
            .find_map(|l| l.strip_prefix("Max open files"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<i64>().ok());
    }
    if let Ok(dir) = std::fs::read_dir(proc.join("self/fd")) {
        out.open_fds = i64::try_from(dir.count()).ok();
    }
    out
}
