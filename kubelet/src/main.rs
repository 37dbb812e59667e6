//! `berth`: runs the pods in a manifest directory through the CRI, like the
//! Go kubelet in standalone mode.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use cri_client::RuntimeClient;
use cri_client::client::Timeouts;
use kubelet::config::{KubeletConfig, KubeletFlags};
use kubelet::container::{PodCache, Runtime};
use kubelet::dns::DnsConfigurer;
use kubelet::images::ImageManager;
use kubelet::kubelet::{Kubelet, PodRuntimeHelper};
use kubelet::kuberuntime::{KubeRuntimeManager, RuntimeSettings};
use kubelet::lifecycle::HandlerRunner;
use kubelet::managed_runtime::{ManagedContainerd, ManagedOptions};
use kubelet::mirror_client::MirrorReconciler;
use kubelet::pleg::Pleg;
use kubelet::pod_workers::PodWorkers;
use kubelet::podconfig::{API_SOURCE, FILE_SOURCE, PodConfig};
use kubelet::status::StatusManager;
use kubelet::sync_loop::{self, Admission, SourceUpdate};
use kubelet::volumes::VolumeManager;
use kubelet::volumes::objects::{ObjectVolumes, PodObjects};
use tokio::sync::mpsc;

#[derive(Parser, Debug)]
#[command(
    name = "berth",
    version,
    about = "A kubelet for static pods, through the CRI"
)]
struct Cli {
    #[command(flatten)]
    flags: KubeletFlags,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match KubeletConfig::load(&cli.flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berth: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    init_tracing(&config);
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth: starting the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(run(config));
    // Don't wait for blocking threads (file watching, log reads) to notice.
    rt.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let msg = error_chain(&e);
            tracing::error!("{msg}");
            eprintln!("berth: {msg}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// "context: cause: cause", skipping causes whose text the previous message
/// already includes (some errors quote their source).
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

fn init_tracing(config: &KubeletConfig) {
    // klog-style verbosity: 0-1 info, 2-4 debug, 5+ trace for berth itself.
    let level = match config.verbosity {
        0 | 1 => "info",
        2..=4 => "debug",
        _ => "trace",
    };
    let mut filter = std::env::var("RUST_LOG")
        .unwrap_or_else(|_| format!("warn,kubelet={level},berth={level},static_pods={level}"));
    // --trace-cri wins over RUST_LOG for the one target it is about.
    if config.trace_cri {
        filter.push_str(",berth::cri=debug");
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .init();
}

/// The node's address for hostIP and probes: the default route
/// interface's, as the Node's InternalIP (127.0.0.1 without a route).
fn host_ip() -> String {
    kubelet::kubelet_node_status::default_node_ip()
        .map_or_else(|_| "127.0.0.1".to_string(), |ip| ip.to_string())
}

async fn connect_runtime(
    config: &KubeletConfig,
) -> Result<(RuntimeClient, Option<ManagedContainerd>)> {
    let timeouts = Timeouts {
        call: config.runtime_request_timeout.min(Duration::from_secs(10)),
        lifecycle: config.runtime_request_timeout,
        pull: None,
    };
    if let Some(ep) = &config.container_runtime_endpoint {
        let client = RuntimeClient::connect_split(
            Some(ep),
            config.image_service_endpoint.as_deref(),
            timeouts,
        )
        .await
        .with_context(|| format!("connecting to --container-runtime-endpoint {ep}"))?;
        return Ok((client, None));
    }
    const DEFAULT: &str = "unix:///run/containerd/containerd.sock";
    if let Ok(client) = RuntimeClient::connect(Some(DEFAULT), timeouts).await {
        tracing::info!("using the runtime at {DEFAULT}");
        return Ok((client, None));
    }
    // Nothing listens: run containerd ourselves, as k3s does.
    tracing::info!("no runtime at {DEFAULT}; starting a managed containerd");
    let managed = ManagedContainerd::start(ManagedOptions::for_root_dir(&config.root_dir))
        .await
        .context("starting the managed containerd")?;
    let client = RuntimeClient::connect(Some(&managed.endpoint()), timeouts)
        .await
        .context("connecting to the managed containerd")?;
    Ok((client, Some(managed)))
}

async fn run(config: KubeletConfig) -> Result<()> {
    let (client, managed) = connect_runtime(&config).await?;
    // Every CRI call counts in /metrics' runtime operation series.
    let client = client.with_observer(Arc::new(kubelet::metrics::RuntimeOperations));
    let version = client.version(Default::default()).await?;
    tracing::info!(
        node = %config.node_name,
        runtime = %format!("{} {}", version.runtime_name, version.runtime_version),
        endpoint = client.endpoint(),
        "berth starting"
    );
    let result = run_with(
        config,
        client,
        version.runtime_name,
        version.runtime_version,
    )
    .await;
    if let Some(m) = managed {
        tracing::info!("stopping the managed containerd (pods keep running in their shims)");
        m.stop().await;
    }
    result
}

/// Removes orphaned pod cgroups (pods gone while berth was down, or whose
/// removal found processes still running): every 60 s, the first run
/// shortly after start, as the Go kubelet's housekeeping. The pods with
/// sandboxes come from the pod cache, not from another runtime listing.
async fn cleanup_pod_cgroups(cache: Arc<PodCache>, cm: Arc<kubelet::cm::ContainerManager>) {
    let mut delay = Duration::from_secs(2);
    loop {
        tokio::time::sleep(delay).await;
        delay = Duration::from_secs(60);
        if !cache.initialized() {
            continue;
        }
        let active: std::collections::HashSet<String> = cache
            .pods()
            .iter()
            .filter(|p| !p.sandboxes.is_empty())
            .map(|p| p.uid.clone())
            .collect();
        let cm = cm.clone();
        // Walks the cgroup file system: keep it off the async threads.
        if let Err(e) = tokio::task::spawn_blocking(move || cm.cleanup_orphans(&active)).await {
            tracing::warn!("pod cgroup clean-up: {e}");
        }
    }
}

/// Joined mode, once the credentials work: the apiserver pod source, the
/// status writer, the event writer and the mirror pods of the static pods.
async fn run_api_tasks(
    handles: kubelet::cluster::ClusterHandles,
    node_name: String,
    src_tx: mpsc::Sender<SourceUpdate>,
    api_sink: Option<kubelet::status::apiserver::ApiStatusSink>,
    status: Arc<StatusManager>,
    statics: tokio::sync::watch::Receiver<Vec<Arc<k8s_openapi::api::core::v1::Pod>>>,
    events: Option<mpsc::Receiver<k8s_openapi::api::core::v1::Event>>,
) {
    let Some(client) = handles.client().await else {
        return;
    };
    let (mirrors_tx, mirrors) = tokio::sync::watch::channel(Vec::new());
    tokio::spawn(kubelet::podconfig::apiserver::run(
        client.clone(),
        node_name.clone(),
        src_tx,
        mirrors_tx,
    ));
    if let Some(sink) = api_sink {
        tokio::spawn(sink.writer(client.clone()).run());
    }
    if let Some(rx) = events {
        use kubelet::events::{correlator::Correlator, sink};
        tokio::spawn(sink::run(
            rx,
            Arc::new(sink::ApiSink::new(client.clone())),
            Correlator::default(),
            sink::SinkOptions::default(),
        ));
    }
    let reconciler = MirrorReconciler::new(client, node_name, handles.node_uid.clone(), status);
    tokio::spawn(reconciler.run(statics, mirrors));
}

async fn run_with(
    config: KubeletConfig,
    client: RuntimeClient,
    runtime_name: String,
    runtime_version: String,
) -> Result<()> {
    std::fs::create_dir_all(&config.pod_logs_dir)
        .with_context(|| format!("creating podLogsDir {}", config.pod_logs_dir.display()))?;
    let host_ip = host_ip();
    // The node's addresses, for a self-signed serving certificate.
    let mut node_ips: Vec<std::net::IpAddr> = config
        .cluster
        .as_ref()
        .and_then(|c| c.node_ip)
        .into_iter()
        .collect();
    node_ips.extend(host_ip.parse::<std::net::IpAddr>().ok());
    node_ips.dedup();
    let cm = kubelet::cm::ContainerManager::new(kubelet::cm::CmConfig {
        driver: config.cgroup_driver,
        cgroup_root: config.cgroup_root.clone(),
        cgroups_per_qos: config.cgroups_per_qos,
        kube_reserved: config.kube_reserved.clone(),
        system_reserved: config.system_reserved.clone(),
        enforce_node_allocatable: config.enforce_node_allocatable.clone(),
        pod_pids_limit: config.pod_pids_limit,
    })
    .context("setting up the container manager (cgroups)")?;
    let cm = Arc::new(cm);
    let cache = PodCache::new();
    tokio::spawn(cleanup_pod_cgroups(cache.clone(), cm.clone()));
    let handlers = Arc::new(HandlerRunner::new(client.clone(), host_ip.clone()));
    // Events go to the apiserver in joined mode (queued until the
    // credentials work); standalone, they are only logged.
    let (recorder, mut events) = match config.cluster {
        Some(_) => {
            let (r, rx) = kubelet::events::channel(&config.node_name);
            (r, Some(rx))
        }
        None => (kubelet::events::Recorder::disabled(), None),
    };
    let (probes, probe_updates) =
        kubelet::prober::ProbeManager::with_recorder(handlers.clone(), recorder.clone());
    let prober_metrics = probes.prober_metrics();
    let volumes = Arc::new(VolumeManager::new(config.root_dir.clone()));
    // ConfigMaps and Secrets: the manifest directory's for static pods; in
    // joined mode the apiserver's (watches start once the credentials
    // work) for API pods, and service account tokens.
    let static_objects = Arc::new(kubelet::objects::StaticObjects::default());
    let (api_client_tx, api_client) = tokio::sync::watch::channel(None);
    let (watch_client_tx, watch_client) = tokio::sync::watch::channel(None);
    let pod_objects = PodObjects {
        api: config.cluster.as_ref().map(|_| {
            kubelet::objects::apiserver::ApiObjects::new(watch_client.clone())
                as Arc<dyn kubelet::objects::ObjectGetter>
        }),
        local: static_objects.clone(),
    };
    let tokens = config
        .cluster
        .as_ref()
        .map(|_| Arc::new(kubelet::token::TokenManager::new(api_client.clone())));
    let node_allocatable = kubelet::kubelet_node_status::machine_allocatable(
        &config.root_dir,
        config.max_pods,
        &config.kube_reserved,
        &config.system_reserved,
    );
    let object_volumes = ObjectVolumes::new(
        volumes.clone(),
        pod_objects.clone(),
        tokens,
        node_allocatable
            .iter()
            .map(|(k, v)| (k.clone(), format!("{v}n")))
            .collect(),
        recorder.clone(),
    );
    tokio::spawn(object_volumes.clone().run_refresh());
    let helper = Arc::new(PodRuntimeHelper {
        dns: DnsConfigurer {
            resolv_conf: (!config.resolv_conf.as_os_str().is_empty())
                .then(|| config.resolv_conf.clone()),
            cluster_dns: config.cluster_dns.clone(),
            cluster_domain: config.cluster_domain.clone(),
        },
        cm: cm.clone(),
        volumes: volumes.clone(),
        node_name: config.node_name.clone(),
        host_ip: host_ip.clone(),
        objects: pod_objects,
        node_allocatable,
        recorder: recorder.clone(),
    });
    let runtime: Arc<dyn Runtime> = Arc::new(
        KubeRuntimeManager::new(
            client.clone(),
            ImageManager::new(client.clone(), config.serialize_image_pulls)
                .with_recorder(recorder.clone()),
            helper,
            handlers,
            RuntimeSettings {
                pod_logs_dir: config.pod_logs_dir.clone(),
            },
        )
        .with_recorder(recorder),
    );
    // Joined mode writes pod statuses to the apiserver too.
    let api_sink = config
        .cluster
        .is_some()
        .then(kubelet::status::apiserver::ApiStatusSink::new);
    let mut sinks: Vec<Arc<dyn kubelet::status::StatusSink>> =
        vec![Arc::new(kubelet::status::LogSink)];
    if let Some(s) = &api_sink {
        sinks.push(Arc::new(s.clone()));
    }
    let status = StatusManager::with_sinks(sinks);
    let pleg = Pleg::new(runtime.clone(), cache.clone());
    let relist = pleg.trigger();
    tokio::spawn(kubelet::pleg::watch_cri_events(
        client.clone(),
        relist.clone(),
    ));
    tokio::spawn(kubelet::pleg::watch_containerd_events(
        client.endpoint().to_string(),
        relist.clone(),
    ));
    let kl = Arc::new(Kubelet {
        runtime,
        cm,
        volumes,
        probes,
        status: status.clone(),
        host_ip,
        runtime_name: runtime_name.clone(),
        reasons: Default::default(),
        object_volumes,
    });
    let (workers, mut terminated) =
        PodWorkers::new(kl, cache.clone(), relist, config.sync_frequency);
    // A deleted API pod's object goes once its final status is written;
    // static pods need no finalizing.
    let finalizer = api_sink.clone();
    tokio::spawn(async move {
        while let Some(t) = terminated.recv().await {
            tracing::debug!(uid = %t.uid, "pod terminated");
            if let (Some(sink), Some(pod)) = (&finalizer, &t.pod) {
                sink.finalize(pod);
            }
        }
    });

    // Stats are collected from the start, as cadvisor housekeeping is.
    let mut stats_config = kubelet::stats::StatsConfig::new(
        &config.node_name,
        &config.pod_logs_dir,
        &config.root_dir,
        &config.cgroup_root,
    );
    stats_config.interval = config.housekeeping_interval;
    let stats = kubelet::stats::StatsProvider::new(client.clone(), cache.clone(), stats_config);
    tokio::spawn(stats.clone().run());
    tokio::spawn(kubelet::heap::trim_periodically(kubelet::heap::TRIM_PERIOD));

    // Joined mode: credentials, the Node and its Lease, beside the pods.
    let (src_tx, src_rx) = mpsc::channel(16);
    // The static pods as last read, for their mirror pods.
    let (statics_tx, statics_rx) = tokio::sync::watch::channel(Vec::new());
    let mut expected = Vec::new();
    let mut admission = None;
    let mut api_client = None;
    let mut cluster = match config.cluster.clone() {
        Some(cl) => {
            tracing::info!(node = %config.node_name, kubeconfig = %cl.kubeconfig.display(), "joining the cluster");
            let (handles, task) = kubelet::cluster::start(kubelet::cluster::ClusterInputs {
                config: cl,
                node_name: config.node_name.clone(),
                root_dir: config.root_dir.clone(),
                max_pods: config.max_pods,
                kube_reserved: config.kube_reserved.clone(),
                system_reserved: config.system_reserved.clone(),
                runtime: client.clone(),
                runtime_name,
                runtime_version,
            })?;
            expected.push(API_SOURCE);
            api_client = Some(handles.client.clone());
            // The object getters and token manager follow the cluster client.
            let mut from = handles.client.clone();
            tokio::spawn(async move {
                while from.changed().await.is_ok() {
                    api_client_tx.send_replace(from.borrow_and_update().clone());
                }
            });
            let mut from = handles.watch_client.clone();
            tokio::spawn(async move {
                while from.changed().await.is_ok() {
                    watch_client_tx.send_replace(from.borrow_and_update().clone());
                }
            });
            admission = Some(Admission::new(
                handles.node.clone(),
                status.clone(),
                Arc::new(|node: &_, admitted: &[&_], pod: &_| {
                    kubelet::lifecycle::predicate::admit(node, admitted, pod)
                        .map_err(|f| (f.reason, f.message))
                }),
            ));
            tokio::spawn(run_api_tasks(
                handles,
                config.node_name.clone(),
                src_tx.clone(),
                api_sink.clone(),
                status.clone(),
                statics_rx,
                events.take(),
            ));
            Some(tokio::spawn(task))
        }
        None => None,
    };

    // The sync loop's liveness, for /healthz on every port.
    let sync_monitor = Arc::new(kubelet::sync_loop::SyncLoopMonitor::default());
    let healthz = kubelet::server::healthz::Healthz::new(sync_monitor.clone());
    if config.healthz_port != 0 {
        let addr = SocketAddr::new(config.healthz_bind_address, config.healthz_port);
        let listener = kubelet::server::bind(addr).await?;
        tracing::info!("serving /healthz on http://{addr}");
        tokio::spawn(kubelet::server::healthz::serve(listener, healthz.clone()));
    }

    // The kubelet API on port 10250, authenticated and authorized.
    let api_server = kubelet::server::setup::prepare(kubelet::server::setup::ApiInputs {
        config: config.server.clone(),
        node_name: config.node_name.clone(),
        node_ips,
        client: api_client,
        state: kubelet::server::api::ApiState {
            status: status.clone(),
            stats: Some(stats.clone()),
            pod_cache: cache.clone(),
            configz: config.configz(),
            enable_debugging_handlers: config.server.enable_debugging_handlers,
            healthz: healthz.clone(),
        },
        limits: Default::default(),
    })
    .await?;
    if let Some(server) = api_server {
        let streaming = Arc::new(kubelet::server::streaming::CriStreaming::new(
            status.clone(),
            cache.clone(),
            client.clone(),
        ));
        kubelet::server::streaming::handlers(streaming)
            .into_iter()
            .fold(server, |server, (prefix, handler)| {
                server.route(prefix, handler)
            })
            .route(
                "/containerLogs/",
                kubelet::server::logs::handler(Arc::new(
                    kubelet::server::logs::CriLogLocator::new(status.clone(), client.clone()),
                )),
            )
            // /metrics, /metrics/resource, /metrics/probes, /metrics/cadvisor.
            .route(
                "/metrics",
                kubelet::server::metrics::handler(kubelet::server::metrics::MetricsSources {
                    node_name: config.node_name.clone(),
                    stats: Some(stats.clone()),
                    pod_cache: cache.clone(),
                    status: Some(status.clone()),
                    prober: prober_metrics,
                }),
            )
            .spawn();
    }

    if config.read_only_port != 0 {
        let addr = SocketAddr::new(config.address, config.read_only_port);
        let listener = kubelet::server::bind(addr).await?;
        tracing::info!("serving /healthz, /pods and /stats/summary on http://{addr}");
        tokio::spawn(kubelet::server::serve_with_stats(
            listener,
            status.clone(),
            Some(stats),
            Some(healthz),
        ));
    }

    if let Some(path) = config.static_pod_path.clone() {
        expected.push(FILE_SOURCE);
        let mut source_config = static_pods::Config::new(path, config.node_name.clone());
        source_config.file_check_frequency = config.file_check_frequency;
        let source = static_pods::StaticPodSource::new(source_config).context("staticPodPath")?;
        let (mut snapshots, _handle) = source.spawn();
        // The first snapshot comes after the first scan, even of an empty or
        // missing directory: only then may orphans be removed.
        if snapshots.changed().await.is_err() {
            anyhow::bail!("the manifest source stopped before its first scan");
        }
        tokio::spawn(async move {
            loop {
                let pods: Vec<_> = {
                    let snapshot = snapshots.borrow_and_update();
                    // Objects first: a pod's first sync finds them.
                    static_objects.set_snapshot(&snapshot);
                    snapshot.pods.iter().map(|p| Arc::clone(&p.pod)).collect()
                };
                statics_tx.send_replace(pods.clone());
                if src_tx
                    .send(SourceUpdate {
                        source: FILE_SOURCE,
                        pods,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                if snapshots.changed().await.is_err() {
                    return;
                }
            }
        });
    } else {
        tracing::warn!("no staticPodPath / --pod-manifest-path given: no static pods");
        statics_tx.send_replace(Vec::new());
        drop(src_tx);
    }

    let (pleg_tx, pleg_rx) = mpsc::unbounded_channel();
    tokio::spawn(pleg.run(pleg_tx));
    let config_merge = PodConfig::new(&expected);
    let main_loop = sync_loop::run(
        config_merge,
        workers,
        src_rx,
        pleg_rx,
        probe_updates,
        admission,
        sync_monitor,
    );

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let cluster_ended = async {
        match cluster.as_mut() {
            Some(task) => task.await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = main_loop => {}
        ended = cluster_ended => match ended {
            Ok(e) => return Err(e.into()),
            Err(e) => anyhow::bail!("the cluster task ended: {e}"),
        },
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; exiting (pods keep running)"),
        _ = term.recv() => tracing::info!("terminated; exiting (pods keep running)"),
    }
    Ok(())
}
