//! `/metrics/cadvisor`: the container series of cAdvisor's Prometheus
//! collector that dashboards and `kubectl`-side tooling query, built from
//! the same in-memory stats summary as `/metrics/resource`, with the
//! runtime's container IDs and images from the pod cache.
//!
//! Served, each sample stamped with the time its figure was read:
//! `container_cpu_usage_seconds_total{cpu="total"}`,
//! `container_memory_working_set_bytes`, `container_memory_rss`,
//! `container_memory_usage_bytes`, `container_fs_usage_bytes` (a
//! container's writable layer), `container_start_time_seconds` and
//! `container_scrape_error`. There is a series per running container
//! (labels `container`, `image`, `name` = the runtime's container ID,
//! `namespace`, `pod`), per pod (`container=""`, as cAdvisor's pod cgroup)
//! and for the node (`id="/"`, the root cgroup). `image` is the image the
//! container's status names (the pod spec's, as `kubectl` shows it), or
//! failing that the runtime's image field, which may be an image ID where
//! cAdvisor shows the runtime's image name.
//!
//! Missing against cAdvisor:
//! - the `id` label (the cgroup path) of container and pod series: the
//!   summary doesn't carry cgroup paths;
//! - the `device` label of `container_fs_usage_bytes`, and the node's and
//!   pods' filesystem series;
//! - every other cAdvisor family (network, blkio, CPU throttling, per-CPU
//!   usage, page cache, swap, tasks, `container_last_seen`, `machine_*`,
//!   `container_spec_*`), and series for the system cgroups (kubepods,
//!   the runtime, the kubelet) and sandbox (pause) containers.

use std::collections::HashMap;
use std::sync::Arc;

use super::resource::{millis, seconds};
use super::text::{Family, Kind, render};
use crate::container::RuntimePod;
use crate::stats::summary::{ContainerStats, CpuStats, FsStats, MemoryStats, Summary};

/// The families served, with cAdvisor's help texts.
struct Families {
    cpu: Family,
    working_set: Family,
    rss: Family,
    usage: Family,
    fs_usage: Family,
    start: Family,
}

impl Families {
    fn new() -> Self {
        Families {
            cpu: Family::new(
                "container_cpu_usage_seconds_total",
                "Cumulative cpu time consumed in seconds.",
                Kind::Counter,
            ),
            working_set: Family::new(
                "container_memory_working_set_bytes",
                "Current working set in bytes.",
                Kind::Gauge,
            ),
            rss: Family::new("container_memory_rss", "Size of RSS in bytes.", Kind::Gauge),
            usage: Family::new(
                "container_memory_usage_bytes",
                "Current memory usage in bytes, including all memory regardless of when it was accessed",
                Kind::Gauge,
            ),
            fs_usage: Family::new(
                "container_fs_usage_bytes",
                "Number of bytes that are consumed by the container on this filesystem.",
                Kind::Gauge,
            ),
            start: Family::new(
                "container_start_time_seconds",
                "Start time of the container since unix epoch in seconds.",
                Kind::Gauge,
            ),
        }
    }

    fn cpu(&mut self, labels: &[(&'static str, String)], cpu: Option<&CpuStats>) {
        if let Some((c, ns)) = cpu.and_then(|c| Some((c, c.usage_core_nano_seconds?))) {
            let mut l = labels.to_vec();
            l.push(("cpu", "total".to_string()));
            self.cpu.push(l, seconds(ns), Some(millis(c.time)));
        }
    }

    fn memory(&mut self, labels: &[(&'static str, String)], memory: Option<&MemoryStats>) {
        let Some(m) = memory else { return };
        let ts = Some(millis(m.time));
        for (family, v) in [
            (&mut self.working_set, m.working_set_bytes),
            (&mut self.rss, m.rss_bytes),
            (&mut self.usage, m.usage_bytes),
        ] {
            if let Some(v) = v {
                family.push(labels.to_vec(), v as f64, ts);
            }
        }
    }

    fn fs(&mut self, labels: &[(&'static str, String)], fs: Option<&FsStats>) {
        if let Some((f, used)) = fs.and_then(|f| Some((f, f.used_bytes?))) {
            self.fs_usage
                .push(labels.to_vec(), used as f64, Some(millis(f.time)));
        }
    }
}

fn labels(
    container: &str,
    image: &str,
    name: &str,
    namespace: &str,
    pod: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("container", container.to_string()),
        ("image", image.to_string()),
        ("name", name.to_string()),
        ("namespace", namespace.to_string()),
        ("pod", pod.to_string()),
    ]
}

/// Images by pod UID and container name, from the pods' statuses.
pub type StatusImages = HashMap<(String, String), String>;

/// The body of `/metrics/cadvisor` for `summary` (`None`: no stats yet),
/// the runtime's pods and the images their statuses name.
pub fn render_cadvisor(
    summary: Option<&Summary>,
    pods: &[Arc<RuntimePod>],
    images: &StatusImages,
) -> String {
    let mut scrape_error = Family::new(
        "container_scrape_error",
        "1 if there was an error while getting container metrics, 0 otherwise",
        Kind::Gauge,
    );
    let Some(summary) = summary else {
        scrape_error.push(vec![], 1.0, None);
        return render(vec![scrape_error]);
    };
    scrape_error.push(vec![], 0.0, None);
    let by_uid: HashMap<&str, &RuntimePod> = pods.iter().map(|p| (p.uid.as_str(), &**p)).collect();
    let mut f = Families::new();

    let mut root = labels("", "", "", "", "");
    root.push(("id", "/".to_string()));
    f.cpu(&root, summary.node.cpu.as_ref());
    f.memory(&root, summary.node.memory.as_ref());

    for pod in &summary.pods {
        let (ns, name) = (&pod.pod_ref.namespace, &pod.pod_ref.name);
        let pod_labels = labels("", "", "", ns, name);
        f.cpu(&pod_labels, pod.cpu.as_ref());
        f.memory(&pod_labels, pod.memory.as_ref());
        let rt = by_uid.get(pod.pod_ref.uid.as_str());
        for c in &pod.containers {
            let image = images.get(&(pod.pod_ref.uid.clone(), c.name.clone()));
            container(&mut f, rt.copied(), image.map(String::as_str), ns, name, c);
        }
    }
    render(vec![
        f.cpu,
        f.working_set,
        f.rss,
        f.usage,
        f.fs_usage,
        f.start,
        scrape_error,
    ])
}

fn container(
    f: &mut Families,
    rt: Option<&RuntimePod>,
    status_image: Option<&str>,
    ns: &str,
    pod: &str,
    c: &ContainerStats,
) {
    // The running instance the stats are of (lists are newest first).
    let instance = rt.and_then(|rt| rt.running_containers().find(|i| i.name() == c.name));
    let (id, runtime_image) = instance.map_or(("", ""), |i| (i.id.as_str(), i.image.as_str()));
    let image = status_image.unwrap_or(runtime_image);
    let l = labels(&c.name, image, id, ns, pod);
    f.cpu(&l, c.cpu.as_ref());
    f.memory(&l, c.memory.as_ref());
    f.fs(&l, c.rootfs.as_ref());
    if c.start_time.unix_nanos >= 1_000_000_000 {
        f.start.push(l, c.start_time.unix_nanos as f64 / 1e9, None);
    }
}
