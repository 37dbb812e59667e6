//! Endpoint tests: fixture summaries rendered and compared line for line.

use std::sync::Arc;

use http::{Method, StatusCode};
use http_body_util::BodyExt;

use super::*;
use crate::container::runtime_pod::{
    ContainerInfo, ContainerState, ContainerStateKind, RuntimePod, SandboxState,
};
use crate::stats::summary::{
    ContainerStats, CpuStats, FsStats, MemoryStats, NodeStats, PodReference, PodStats, Summary,
    Time,
};

/// 2023-11-14T22:13:20.123456789Z
const T: i64 = 1_700_000_000_123_456_789;

fn cpu(ns: u64, at: i64) -> Option<CpuStats> {
    Some(CpuStats {
        time: Time::from_unix_nanos(at),
        usage_nano_cores: Some(1),
        usage_core_nano_seconds: Some(ns),
    })
}

fn memory(ws: u64, at: i64) -> Option<MemoryStats> {
    Some(MemoryStats {
        time: Time::from_unix_nanos(at),
        working_set_bytes: Some(ws),
        usage_bytes: Some(ws + 1000),
        rss_bytes: Some(ws / 2),
        ..Default::default()
    })
}

fn container(name: &str, start: i64) -> ContainerStats {
    ContainerStats {
        name: name.into(),
        start_time: Time::from_unix_nanos(start),
        cpu: cpu(1_500_000_000, T),
        memory: memory(52_428_800, T + 1_000_000),
        rootfs: Some(FsStats {
            time: Time::from_unix_nanos(T),
            used_bytes: Some(4096),
            ..Default::default()
        }),
        logs: None,
    }
}

fn summary() -> Summary {
    Summary {
        node: NodeStats {
            node_name: "node-a".into(),
            cpu: cpu(123_456_000_000_000, T),
            memory: memory(2_000_000_000, T + 2_000_000),
            ..Default::default()
        },
        pods: vec![PodStats {
            pod_ref: PodReference {
                name: "web".into(),
                namespace: "prod".into(),
                uid: "uid-1".into(),
            },
            start_time: Time::from_unix_nanos(1_600_000_000_000_000_000),
            // Sorted output puts "app" before "sidecar" whatever the order here.
            containers: vec![
                container("sidecar", 0),
                container("app", 1_699_999_000_500_000_000),
            ],
            cpu: cpu(3_000_000_000, T),
            memory: memory(104_857_600, T),
            ..Default::default()
        }],
    }
}

#[test]
fn resource_metrics_are_gos_lines() {
    let text = resource::render_resource(Some(&summary()));
    let want = "\
# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container=\"app\",namespace=\"prod\",pod=\"web\"} 1.5 1700000000123
container_cpu_usage_seconds_total{container=\"sidecar\",namespace=\"prod\",pod=\"web\"} 1.5 1700000000123
# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container=\"app\",namespace=\"prod\",pod=\"web\"} 5.24288e+07 1700000000124
container_memory_working_set_bytes{container=\"sidecar\",namespace=\"prod\",pod=\"web\"} 5.24288e+07 1700000000124
# HELP container_start_time_seconds [STABLE] Start time of the container since unix epoch in seconds
# TYPE container_start_time_seconds gauge
container_start_time_seconds{container=\"app\",namespace=\"prod\",pod=\"web\"} 1.6999990005e+09
# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 123456 1700000000123
# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 2e+09 1700000000125
# HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the pod in core-seconds
# TYPE pod_cpu_usage_seconds_total counter
pod_cpu_usage_seconds_total{namespace=\"prod\",pod=\"web\"} 3 1700000000123
# HELP pod_memory_working_set_bytes [STABLE] Current working set of the pod in bytes
# TYPE pod_memory_working_set_bytes gauge
pod_memory_working_set_bytes{namespace=\"prod\",pod=\"web\"} 1.048576e+08 1700000000123
# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise
# TYPE resource_scrape_error gauge
resource_scrape_error 0
";
    assert_eq!(text, want);
}

#[test]
fn resource_metrics_without_stats_are_a_scrape_error() {
    assert_eq!(
        resource::render_resource(None),
        "# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise\n\
         # TYPE resource_scrape_error gauge\nresource_scrape_error 1\n"
    );
    // Unknown figures are left out, not written as zero.
    let mut s = summary();
    s.node.cpu = None;
    s.pods[0].containers[0].memory = None;
    s.pods[0].memory.as_mut().unwrap().working_set_bytes = None;
    let text = resource::render_resource(Some(&s));
    assert!(!text.contains("node_cpu_usage_seconds_total"), "{text}");
    assert!(!text.contains("pod_memory_working_set_bytes"), "{text}");
    assert_eq!(
        text.matches("container_memory_working_set_bytes{").count(),
        1
    );
}

#[test]
fn resource_metrics_parse_back() {
    let text = resource::render_resource(Some(&summary()));
    let scrape =
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parses");
    let find = |name: &str, container: Option<&str>| {
        scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == name && container.is_none_or(|c| s.labels.get("container") == Some(c))
            })
            .unwrap_or_else(|| panic!("{name} {container:?} missing"))
    };
    let s = find("container_cpu_usage_seconds_total", Some("app"));
    assert_eq!(s.labels.get("pod"), Some("web"));
    assert_eq!(s.labels.get("namespace"), Some("prod"));
    assert!(matches!(s.value, prometheus_parse::Value::Counter(v) if v == 1.5));
    assert_eq!(s.timestamp.timestamp_millis(), 1_700_000_000_123);
    let s = find("node_memory_working_set_bytes", None);
    assert!(matches!(s.value, prometheus_parse::Value::Gauge(v) if v == 2e9));
    let s = find("container_memory_working_set_bytes", Some("sidecar"));
    assert!(matches!(s.value, prometheus_parse::Value::Gauge(v) if v == 52_428_800.0));
    assert_eq!(scrape.samples.len(), 10);
}

fn runtime_pod() -> Arc<RuntimePod> {
    let info = |name: &str| ContainerInfo {
        pod_uid: "uid-1".into(),
        name: name.into(),
        ..Default::default()
    };
    let mut app = ContainerState::new(
        "cid-app".into(),
        "sb".into(),
        info("app"),
        ContainerStateKind::Running,
        2,
    );
    app.image = "registry.example/app:1".into();
    // An older, exited instance of the same container is not the one.
    let mut old = ContainerState::new(
        "cid-old".into(),
        "sb".into(),
        info("app"),
        ContainerStateKind::Exited,
        1,
    );
    old.image = "registry.example/app:0".into();
    let created = ContainerState::new(
        "cid-new".into(),
        "sb".into(),
        info("init"),
        ContainerStateKind::Created,
        3,
    );
    Arc::new(RuntimePod {
        uid: "uid-1".into(),
        name: "web".into(),
        namespace: "prod".into(),
        sandboxes: vec![SandboxState {
            id: "sb".into(),
            attempt: 0,
            ready: true,
            created_at: 1,
            hash: String::new(),
            ip: "10.0.0.2".into(),
        }],
        containers: vec![created, app, old],
    })
}

#[test]
fn cadvisor_metrics_carry_cadvisors_labels() {
    let text = cadvisor::render_cadvisor(
        Some(&summary()),
        &[runtime_pod()],
        &[(
            ("uid-1".to_string(), "sidecar".to_string()),
            "docker.io/library/side:2".to_string(),
        )]
        .into(),
    );
    let app = "container=\"app\",image=\"registry.example/app:1\",name=\"cid-app\",namespace=\"prod\",pod=\"web\"";
    // The sidecar has no running instance in the pod cache (no name), but
    // its status names its image.
    let sidecar = "container=\"sidecar\",image=\"docker.io/library/side:2\",name=\"\",namespace=\"prod\",pod=\"web\"";
    let pod = "container=\"\",image=\"\",name=\"\",namespace=\"prod\",pod=\"web\"";
    let root = "container=\"\",id=\"/\",image=\"\",name=\"\",namespace=\"\",pod=\"\"";
    for line in [
        "# HELP container_cpu_usage_seconds_total Cumulative cpu time consumed in seconds.".to_string(),
        "# TYPE container_cpu_usage_seconds_total counter".to_string(),
        "container_cpu_usage_seconds_total{container=\"app\",cpu=\"total\",image=\"registry.example/app:1\",name=\"cid-app\",namespace=\"prod\",pod=\"web\"} 1.5 1700000000123".to_string(),
        "container_cpu_usage_seconds_total{container=\"sidecar\",cpu=\"total\",image=\"docker.io/library/side:2\",name=\"\",namespace=\"prod\",pod=\"web\"} 1.5 1700000000123".to_string(),
        "container_cpu_usage_seconds_total{container=\"\",cpu=\"total\",image=\"\",name=\"\",namespace=\"prod\",pod=\"web\"} 3 1700000000123".to_string(),
        "container_cpu_usage_seconds_total{container=\"\",cpu=\"total\",id=\"/\",image=\"\",name=\"\",namespace=\"\",pod=\"\"} 123456 1700000000123".to_string(),
        format!("container_memory_working_set_bytes{{{app}}} 5.24288e+07 1700000000124"),
        format!("container_memory_working_set_bytes{{{root}}} 2e+09 1700000000125"),
        format!("container_memory_rss{{{app}}} 2.62144e+07 1700000000124"),
        format!("container_memory_usage_bytes{{{pod}}} 1.048586e+08 1700000000123"),
        format!("container_fs_usage_bytes{{{app}}} 4096 1700000000123"),
        format!("container_start_time_seconds{{{app}}} 1.6999990005e+09"),
        "container_scrape_error 0".to_string(),
    ] {
        assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
    }
    // No start time before the epoch's first second (unknown).
    assert!(!text.contains(&format!("container_start_time_seconds{{{sidecar}}}")));
    assert_eq!(
        cadvisor::render_cadvisor(None, &[], &Default::default()),
        "# HELP container_scrape_error 1 if there was an error while getting container metrics, 0 otherwise\n\
         # TYPE container_scrape_error gauge\ncontainer_scrape_error 1\n"
    );
}

/// A fake `/proc` with a process and a boot time.
fn proc_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("self");
    std::fs::create_dir_all(s.join("fd")).unwrap();
    for fd in ["0", "1", "2"] {
        std::fs::write(s.join("fd").join(fd), "").unwrap();
    }
    // utime 250, stime 50 ticks; starttime 12345 ticks after boot.
    let mut stat = "42 (berth (x) y) S".to_string();
    for n in 4..=52 {
        let v = match n {
            14 => "250".to_string(),
            15 => "50".to_string(),
            22 => "12345".to_string(),
            _ => "0".to_string(),
        };
        stat.push(' ');
        stat.push_str(&v);
    }
    std::fs::write(s.join("stat"), stat + "\n").unwrap();
    std::fs::write(
        s.join("status"),
        "Name:\tberth\nVmSize:\t  204800 kB\nVmRSS:\t   10240 kB\n",
    )
    .unwrap();
    std::fs::write(
        s.join("limits"),
        "Limit                     Soft Limit           Hard Limit           Units     \n\
         Max open files            1048576              1048576              files     \n",
    )
    .unwrap();
    std::fs::write(dir.path().join("stat"), "cpu 1 2 3\nbtime 1700000000\n").unwrap();
    dir
}

fn endpoints(
    stats: Option<Arc<crate::stats::StatsProvider>>,
    status: Option<Arc<StatusManager>>,
) -> (MetricsEndpoints, tempfile::TempDir) {
    let cache = PodCache::new();
    cache.set("uid-1", runtime_pod(), std::time::Instant::now());
    let proc = proc_fixture();
    let e = MetricsEndpoints::with_proc(
        MetricsSources {
            node_name: "node-a".into(),
            stats,
            pod_cache: cache,
            status,
            prober: ProberMetrics::default(),
        },
        proc.path().to_path_buf(),
    );
    (e, proc)
}

async fn body(resp: Response<Body>) -> String {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn kubelet_registry() {
    let (e, _proc) = endpoints(None, None);
    let resp = e.answer(&Method::GET, "/metrics");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[http::header::CONTENT_TYPE], CONTENT_TYPE);
    let text = body(resp).await;
    for line in [
        "# HELP kubelet_node_name [ALPHA] The node's name. The count is always 1.",
        "# TYPE kubelet_node_name gauge",
        "kubelet_node_name{node=\"node-a\"} 1",
        "# HELP kubelet_running_pods [ALPHA] Number of pods that have a running pod sandbox",
        "kubelet_running_pods 1",
        "kubelet_running_containers{container_state=\"created\"} 1",
        "kubelet_running_containers{container_state=\"exited\"} 1",
        "kubelet_running_containers{container_state=\"running\"} 1",
        "kubelet_running_containers{container_state=\"unknown\"} 0",
        "# TYPE process_cpu_seconds_total counter",
        "process_cpu_seconds_total 3.0",
        "process_open_fds 3",
        "process_max_fds 1048576",
        "process_resident_memory_bytes 10485760",
        "process_virtual_memory_bytes 209715200",
        "process_start_time_seconds 1700000123.45",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in\n{text}"
        );
    }
}

#[tokio::test]
async fn routes_methods_and_content_type() {
    let (e, _proc) = endpoints(None, None);
    for path in [
        "/metrics",
        "/metrics/resource",
        "/metrics/probes",
        "/metrics/cadvisor",
    ] {
        let resp = e.answer(&Method::GET, path);
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_eq!(resp.headers()[http::header::CONTENT_TYPE], CONTENT_TYPE);
        assert_eq!(e.answer(&Method::HEAD, path).status(), StatusCode::OK);
        for m in [Method::POST, Method::PUT, Method::DELETE] {
            assert_eq!(
                e.answer(&m, path).status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{m} {path}"
            );
        }
    }
    for path in [
        "/metrics/x",
        "/metrics/",
        "/metricsfoo",
        "/metrics/resource/x",
    ] {
        assert_eq!(
            e.answer(&Method::GET, path).status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    // Stats off: a scrape error, not a failure.
    let text = body(e.answer(&Method::GET, "/metrics/resource")).await;
    assert!(text.ends_with("resource_scrape_error 1\n"), "{text}");
}

#[tokio::test]
async fn resource_endpoint_serves_the_providers_summary() {
    let ch = tonic::transport::Endpoint::from_static("http://localhost").connect_lazy();
    let client = cri_client::RuntimeClient::from_channels(
        "unix:///nonexistent".into(),
        ch.clone(),
        ch,
        Default::default(),
    );
    let dir = tempfile::tempdir().unwrap();
    let stats = crate::stats::StatsProvider::new(
        client,
        PodCache::new(),
        crate::stats::StatsConfig::new("node-a", dir.path(), dir.path(), "/"),
    );
    let status = StatusManager::new();
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "prod", "uid": "uid-1"},
        "spec": {"containers": []}}))
    .unwrap();
    let app_status: k8s_openapi::api::core::v1::ContainerStatus =
        serde_json::from_value(serde_json::json!({
            "name": "app", "image": "nginx:1.25", "imageID": "", "ready": true, "restartCount": 0}))
        .unwrap();
    status.set_pod_status(
        &Arc::new(pod),
        k8s_openapi::api::core::v1::PodStatus {
            container_statuses: Some(vec![app_status]),
            ..Default::default()
        },
    );
    let (e, _proc) = endpoints(Some(stats.clone()), Some(status));
    // Before the first stats cycle: a scrape error.
    let text = body(e.answer(&Method::GET, "/metrics/resource")).await;
    assert!(text.ends_with("resource_scrape_error 1\n"), "{text}");
    stats.set_summary_for_test(summary());
    let text = body(e.answer(&Method::GET, "/metrics/resource")).await;
    assert_eq!(text, resource::render_resource(Some(&summary())));
    let text = body(e.answer(&Method::GET, "/metrics/cadvisor")).await;
    // The image is the one the pod's status names.
    assert!(
        text.contains("container=\"app\",image=\"nginx:1.25\",name=\"cid-app\""),
        "{text}"
    );
}

#[tokio::test]
async fn probes_endpoint_renders_the_probers_series() {
    let prober = ProberMetrics::default();
    let w = prober.worker(
        crate::prober::results::ProbeType::Liveness,
        "app",
        "web",
        "prod",
        "uid-1",
    );
    use crate::prober::probe_metrics::Verdict;
    prober.record(
        &w,
        Verdict::Successful,
        std::time::Duration::from_millis(30),
    );
    prober.record(&w, Verdict::Failed, std::time::Duration::from_millis(1));
    let e = MetricsEndpoints::new(MetricsSources {
        node_name: "n".into(),
        stats: None,
        pod_cache: PodCache::new(),
        status: None,
        prober: prober.clone(),
    });
    let text = body(e.answer(&Method::GET, "/metrics/probes")).await;
    let labels = "container=\"app\",namespace=\"prod\",pod=\"web\"";
    for line in [
        "# HELP prober_probe_total [BETA] Cumulative number of a liveness, readiness or startup probe for a container by result.".to_string(),
        "# TYPE prober_probe_total counter".to_string(),
        format!("prober_probe_total{{{labels},pod_uid=\"uid-1\",probe_type=\"Liveness\",result=\"successful\"}} 1"),
        format!("prober_probe_total{{{labels},pod_uid=\"uid-1\",probe_type=\"Liveness\",result=\"failed\"}} 1"),
        "# HELP prober_probe_duration_seconds [ALPHA] Duration in seconds for a probe response.".to_string(),
        "# TYPE prober_probe_duration_seconds histogram".to_string(),
        format!("prober_probe_duration_seconds_bucket{{{labels},probe_type=\"Liveness\",le=\"0.025\"}} 0"),
        format!("prober_probe_duration_seconds_bucket{{{labels},probe_type=\"Liveness\",le=\"0.05\"}} 1"),
        format!("prober_probe_duration_seconds_bucket{{{labels},probe_type=\"Liveness\",le=\"+Inf\"}} 1"),
        format!("prober_probe_duration_seconds_count{{{labels},probe_type=\"Liveness\"}} 1"),
    ] {
        assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
    }
    prober.remove_pod("uid-1");
    let text = body(e.answer(&Method::GET, "/metrics/probes")).await;
    assert!(!text.contains("uid-1"), "{text}");
    assert!(!text.contains("pod=\"web\""), "{text}");
}

#[tokio::test]
async fn started_counters_are_on_metrics() {
    use crate::kuberuntime::actions::ContainerKind;
    // Process-wide, as in Go: other tests may count too, so only lower
    // bounds are checked.
    let c = &*crate::metrics::COUNTERS;
    c.pod_starting();
    c.pod_start_failed();
    c.container_starting(ContainerKind::Sidecar);
    c.container_start_failed(ContainerKind::App, "CreateContainerError");
    let (e, _proc) = endpoints(None, None);
    let text = body(e.answer(&Method::GET, "/metrics")).await;
    let value = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {prefix:?} in\n{text}"))
    };
    assert!(value("kubelet_started_pods_total ") >= 1.0);
    assert!(value("kubelet_started_pods_errors_total ") >= 1.0);
    assert!(value("kubelet_started_containers_total{container_type=\"init_container\"} ") >= 1.0);
    assert!(
        value(
            "kubelet_started_containers_errors_total{code=\"CreateContainerError\",container_type=\"container\"} "
        ) >= 1.0
    );
    assert!(
        text.contains("# HELP kubelet_started_pods_total [ALPHA] Cumulative number of pods started\n# TYPE kubelet_started_pods_total counter\n"),
        "{text}"
    );
}

#[tokio::test]
async fn runtime_operations_and_pleg_are_on_metrics() {
    use cri_client::CallObserver;
    let ops = crate::metrics::RuntimeOperations;
    ops.observe(
        "ListPodSandbox",
        tonic::Code::Ok,
        std::time::Duration::from_millis(3),
    );
    ops.observe(
        "StopContainer",
        tonic::Code::DeadlineExceeded,
        std::time::Duration::from_secs(2),
    );
    crate::metrics::COUNTERS.pleg_relist_duration.observe(0.002);
    let (e, _proc) = endpoints(None, None);
    let text = body(e.answer(&Method::GET, "/metrics")).await;
    let value = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {prefix:?} in\n{text}"))
    };
    assert!(value("kubelet_runtime_operations_total{operation_type=\"list_podsandbox\"} ") >= 1.0);
    assert!(
        value("kubelet_runtime_operations_errors_total{operation_type=\"stop_container\"} ") >= 1.0
    );
    // 3 ms is in the first bucket (5 ms); 2 s is above 1.22 s (5 ms × 2.5⁶).
    assert!(
        value(
            "kubelet_runtime_operations_duration_seconds_bucket{operation_type=\"list_podsandbox\",le=\"0.005\"} "
        ) >= 1.0
    );
    assert!(
        text.contains("kubelet_runtime_operations_duration_seconds_bucket{operation_type=\"stop_container\",le=\"1.220703125\"} 0\n"),
        "{text}"
    );
    assert!(value("kubelet_pleg_relist_duration_seconds_count ") >= 1.0);
    assert!(
        text.contains("# TYPE kubelet_pleg_relist_duration_seconds histogram\n"),
        "{text}"
    );
}

#[tokio::test]
async fn every_endpoint_parses() {
    let ch = tonic::transport::Endpoint::from_static("http://localhost").connect_lazy();
    let client = cri_client::RuntimeClient::from_channels(
        "unix:///nonexistent".into(),
        ch.clone(),
        ch,
        Default::default(),
    );
    let dir = tempfile::tempdir().unwrap();
    let stats = crate::stats::StatsProvider::new(
        client,
        PodCache::new(),
        crate::stats::StatsConfig::new("node-a", dir.path(), dir.path(), "/"),
    );
    stats.set_summary_for_test(summary());
    let prober = ProberMetrics::default();
    let w = prober.worker(
        crate::prober::results::ProbeType::Readiness,
        "app",
        "web",
        "prod",
        "uid-1",
    );
    prober.record(
        &w,
        crate::prober::probe_metrics::Verdict::Successful,
        std::time::Duration::from_millis(3),
    );
    let cache = PodCache::new();
    cache.set("uid-1", runtime_pod(), std::time::Instant::now());
    let e = MetricsEndpoints::new(MetricsSources {
        node_name: "node-a".into(),
        stats: Some(stats),
        pod_cache: cache,
        status: None,
        prober,
    });
    for (path, at_least) in [
        ("/metrics", 10),
        ("/metrics/resource", 10),
        ("/metrics/probes", 2),
        ("/metrics/cadvisor", 20),
    ] {
        let text = body(e.answer(&Method::GET, path)).await;
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
            .unwrap_or_else(|err| panic!("{path}: {err}\n{text}"));
        assert!(
            scrape.samples.len() >= at_least,
            "{path}: {} samples\n{text}",
            scrape.samples.len()
        );
    }
}
