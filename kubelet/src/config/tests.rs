use super::file::{edit_distance, suggest};
use super::*;
use clap::Parser;

#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    flags: KubeletFlags,
}

fn flags(args: &[&str]) -> KubeletFlags {
    let mut argv = vec!["berth"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).unwrap().flags
}

/// Writes `body` (with the type header prepended) to a temp config file.
fn config_file(body: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let text = format!("apiVersion: {API_VERSION}\nkind: {KIND}\n{body}");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn load_body(body: &str) -> Result<KubeletConfig, ConfigError> {
    let (_dir, path) = config_file(body);
    let f = KubeletFlags {
        config: Some(path),
        hostname_override: Some("node-a".into()),
        ..Default::default()
    };
    KubeletConfig::load(&f)
}

fn err(body: &str) -> String {
    load_body(body).unwrap_err().to_string()
}

#[test]
fn defaults_without_a_file_match_the_go_kubelet() {
    let c = KubeletConfig::load(&flags(&["--hostname-override", "Node-A "])).unwrap();
    assert_eq!(c.static_pod_path, None);
    assert_eq!(c.file_check_frequency, Duration::from_secs(20));
    assert_eq!(c.sync_frequency, Duration::from_secs(60));
    assert_eq!(c.pod_logs_dir, PathBuf::from("/var/log/pods"));
    assert_eq!(c.max_pods, 110);
    assert_eq!(c.runtime_request_timeout, Duration::from_secs(120));
    assert!(c.serialize_image_pulls);
    assert_eq!(c.resolv_conf, PathBuf::from("/etc/resolv.conf"));
    assert!(c.cluster_dns.is_empty());
    assert_eq!(c.cluster_domain, "");
    assert_eq!(c.read_only_port, 10255);
    assert_eq!(c.address, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(c.healthz_port, 10248);
    assert_eq!(c.root_dir, PathBuf::from("/var/lib/kubelet"));
    assert_eq!(c.node_name, "node-a");
    assert_eq!(c.container_runtime_endpoint, None);
    assert_eq!(c.verbosity, 0);
    assert!(!c.trace_cri);
    assert_eq!(c.cgroup_driver, CgroupDriver::Cgroupfs);
    assert!(c.cgroups_per_qos);
    assert_eq!(c.cgroup_root, "/");
    assert_eq!(c.enforce_node_allocatable, vec!["pods".to_string()]);
    assert_eq!(c.pod_pids_limit, -1);
    assert!(c.warnings.is_empty());
}

#[test]
fn node_name_defaults_to_the_lowercased_hostname() {
    let c = KubeletConfig::load(&KubeletFlags::default()).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(c.node_name, host.trim().to_ascii_lowercase());
}

#[test]
fn file_fields_are_read() {
    let c = load_body(
        "staticPodPath: /etc/kubernetes/manifests
fileCheckFrequency: 5s
syncFrequency: 1m30s
podLogsDir: /srv/logs
maxPods: 30
runtimeRequestTimeout: 500ms
serializeImagePulls: false
maxParallelImagePulls: 3
resolvConf: /run/systemd/resolve/resolv.conf
clusterDNS: [10.96.0.10, 'fd00::a']
clusterDomain: cluster.local
readOnlyPort: 0
address: 0.0.0.0
healthzPort: 0
containerRuntimeEndpoint: unix:///run/x.sock
cgroupDriver: systemd
cgroupsPerQOS: false
kubeReserved: {cpu: 100m, memory: 1}
enforceNodeAllocatable: []
podPidsLimit: 1024
",
    )
    .unwrap();
    assert_eq!(
        c.static_pod_path,
        Some(PathBuf::from("/etc/kubernetes/manifests"))
    );
    assert_eq!(c.file_check_frequency, Duration::from_secs(5));
    assert_eq!(c.sync_frequency, Duration::from_secs(90));
    assert_eq!(c.pod_logs_dir, PathBuf::from("/srv/logs"));
    assert_eq!(c.max_pods, 30);
    assert_eq!(c.runtime_request_timeout, Duration::from_millis(500));
    assert!(!c.serialize_image_pulls);
    assert_eq!(c.max_parallel_image_pulls, Some(3));
    assert_eq!(
        c.resolv_conf,
        PathBuf::from("/run/systemd/resolve/resolv.conf")
    );
    assert_eq!(
        c.cluster_dns,
        vec![
            "10.96.0.10".parse::<IpAddr>().unwrap(),
            "fd00::a".parse().unwrap()
        ]
    );
    assert_eq!(c.cluster_domain, "cluster.local");
    assert_eq!(c.read_only_port, 0);
    assert_eq!(c.address, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert_eq!(c.healthz_port, 0);
    assert_eq!(
        c.container_runtime_endpoint.as_deref(),
        Some("unix:///run/x.sock")
    );
    assert_eq!(c.cgroup_driver, CgroupDriver::Systemd);
    assert!(!c.cgroups_per_qos);
    assert_eq!(c.cgroup_root, "");
    assert_eq!(c.kube_reserved.get("cpu").map(String::as_str), Some("100m"));
    assert_eq!(c.kube_reserved.get("memory").map(String::as_str), Some("1"));
    assert!(c.enforce_node_allocatable.is_empty());
    assert_eq!(c.pod_pids_limit, 1024);
}

#[test]
fn json_files_are_read_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"apiVersion":"{API_VERSION}","kind":"{KIND}","maxPods":7,"syncFrequency":"2m"}}"#
        ),
    )
    .unwrap();
    let f = KubeletFlags {
        config: Some(path),
        hostname_override: Some("n".into()),
        ..Default::default()
    };
    let c = KubeletConfig::load(&f).unwrap();
    assert_eq!(c.max_pods, 7);
    assert_eq!(c.sync_frequency, Duration::from_secs(120));
}

#[test]
fn go_zero_values_mean_the_default() {
    let c = load_body("syncFrequency: 0s\nmaxPods: 0\nstaticPodPath: ''\n").unwrap();
    assert_eq!(c.sync_frequency, Duration::from_secs(60));
    assert_eq!(c.max_pods, 110);
    assert_eq!(c.static_pod_path, None);
}

#[test]
fn empty_resolv_conf_disables_host_dns() {
    let c = load_body("resolvConf: ''\n").unwrap();
    assert_eq!(c.resolv_conf, PathBuf::new());
}

#[test]
fn relative_paths_in_the_file_resolve_against_its_directory() {
    let (dir, path) = config_file("staticPodPath: manifests\nresolvConf: r.conf\n");
    let f = KubeletFlags {
        config: Some(path),
        hostname_override: Some("n".into()),
        ..Default::default()
    };
    let c = KubeletConfig::load(&f).unwrap();
    assert_eq!(c.static_pod_path, Some(dir.path().join("manifests")));
    assert_eq!(c.resolv_conf, dir.path().join("r.conf"));
}

#[test]
fn flags_override_the_file() {
    let (_dir, path) = config_file(
        "staticPodPath: /from/file
readOnlyPort: 1111
address: 10.0.0.1
containerRuntimeEndpoint: unix:///from/file.sock
",
    );
    let path = path.to_str().unwrap();
    let c = KubeletConfig::load(&flags(&[
        "--config",
        path,
        "--pod-manifest-path=/from/flag",
        "--read-only-port",
        "2222",
        "--healthz-port=0",
        "--healthz-bind-address=127.0.0.3",
        "--address",
        "127.0.0.2",
        "--container-runtime-endpoint",
        "unix:///from/flag.sock",
        "--image-service-endpoint",
        "/img.sock",
        "--root-dir",
        "/srv/kubelet",
        "--hostname-override",
        "N1",
        "-v",
        "4",
        "--trace-cri",
    ]))
    .unwrap();
    assert_eq!(c.static_pod_path, Some(PathBuf::from("/from/flag")));
    assert_eq!(c.read_only_port, 2222);
    assert_eq!(
        (c.healthz_port, c.healthz_bind_address.to_string().as_str()),
        (0, "127.0.0.3")
    );
    assert_eq!(c.address, "127.0.0.2".parse::<IpAddr>().unwrap());
    assert_eq!(
        c.container_runtime_endpoint.as_deref(),
        Some("unix:///from/flag.sock")
    );
    assert_eq!(c.image_service_endpoint.as_deref(), Some("/img.sock"));
    assert_eq!(c.root_dir, PathBuf::from("/srv/kubelet"));
    assert_eq!(c.node_name, "n1");
    assert_eq!(c.verbosity, 4);
    assert!(c.trace_cri);
    assert_eq!(c.config_file.as_deref(), Some(Path::new(path)));
}

#[test]
fn klog_verbosity_spellings_parse() {
    assert_eq!(flags(&["--v=3"]).verbosity, 3);
    assert_eq!(flags(&["-v", "5"]).verbosity, 5);
    assert_eq!(flags(&["-v=2"]).verbosity, 2);
    assert_eq!(flags(&["-v6"]).verbosity, 6);
}

#[test]
fn relative_flag_paths_become_absolute() {
    let c = KubeletConfig::load(&flags(&[
        "--pod-manifest-path",
        "pods",
        "--hostname-override",
        "n",
    ]))
    .unwrap();
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(c.static_pod_path, Some(cwd.join("pods")));
}

#[test]
fn unsupported_go_flags_are_explained() {
    let e = KubeletConfig::load(&flags(&["--network-plugin=cni"]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("flag --network-plugin is not supported by berth") && e.contains("1.24"),
        "{e}"
    );
    let e = KubeletConfig::load(&flags(&["--cgroup-driver", "systemd"]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--cgroup-driver") && e.contains("cgroupDriver"),
        "{e}"
    );
}

#[test]
fn kubeconfig_joins_a_cluster_with_the_go_kubelets_defaults() {
    let c = KubeletConfig::load(&flags(&["--hostname-override", "n"])).unwrap();
    assert_eq!(c.cluster, None);
    let (_dir, path) = config_file(
        "nodeStatusUpdateFrequency: 20s\nregisterWithTaints:\n- {key: dedicated, value: edge, effect: NoSchedule}\nport: 10251\n",
    );
    let c = KubeletConfig::load(&flags(&[
        "--config",
        path.to_str().unwrap(),
        "--hostname-override",
        "n",
        "--root-dir",
        "/var/lib/b",
        "--kubeconfig",
        "/etc/k/kubelet.conf",
        "--bootstrap-kubeconfig",
        "/etc/k/bootstrap.conf",
        "--node-labels",
        "node-role.kubernetes.io/edge=,zone=a",
        "--register-node=false",
    ]))
    .unwrap();
    let cl = c.cluster.expect("cluster config");
    assert_eq!(cl.kubeconfig, PathBuf::from("/etc/k/kubelet.conf"));
    assert_eq!(
        cl.bootstrap_kubeconfig,
        Some(PathBuf::from("/etc/k/bootstrap.conf"))
    );
    assert_eq!(cl.cert_dir, PathBuf::from("/var/lib/b/pki"));
    assert!(cl.rotate_certificates);
    assert!(!cl.register_node);
    assert_eq!(cl.port, 10251);
    assert_eq!(cl.node_status_update_frequency, Duration::from_secs(20));
    assert_eq!(cl.node_status_report_frequency, Duration::from_secs(300));
    assert_eq!(cl.node_lease_duration_seconds, 40);
    assert_eq!(cl.node_status_max_images, 50);
    assert_eq!(cl.register_with_taints.len(), 1);
    assert_eq!(cl.register_with_taints[0].effect, "NoSchedule");
    assert_eq!(
        cl.node_labels.as_deref(),
        Some("node-role.kubernetes.io/edge=,zone=a")
    );
}

#[test]
fn cluster_flags_without_kubeconfig_and_bad_taints_are_refused_by_name() {
    let e = KubeletConfig::load(&flags(&["--bootstrap-kubeconfig", "/b.conf"]))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "--bootstrap-kubeconfig: needs --kubeconfig (berth runs standalone without it)"
    );
    let (_dir, path) = config_file("registerWithTaints:\n- {key: a, effect: Sometimes}\n");
    let e = KubeletConfig::load(&flags(&["--config", path.to_str().unwrap()]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("registerWithTaints[0]") && e.contains("Sometimes"),
        "{e}"
    );
    let (_dir, path) = config_file("registerWithTaints: yes\n");
    let e = KubeletConfig::load(&flags(&["--config", path.to_str().unwrap()]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("registerWithTaints"), "{e}");
}

#[test]
fn bad_flag_endpoint_is_an_error_naming_the_flag() {
    let e = KubeletConfig::load(&flags(&["--container-runtime-endpoint", "tcp://1.2.3.4:5"]))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("--container-runtime-endpoint: "), "{e}");
    assert!(e.contains("tcp"), "{e}");
}

#[test]
fn wrong_api_version_or_kind_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    let load = |text: &str| {
        std::fs::write(&path, text).unwrap();
        let f = KubeletFlags {
            config: Some(path.clone()),
            hostname_override: Some("n".into()),
            ..Default::default()
        };
        KubeletConfig::load(&f).unwrap_err().to_string()
    };
    let e = load("apiVersion: kubelet.config.k8s.io/v1alpha1\nkind: KubeletConfiguration\n");
    assert!(
        e.contains("c.yaml: apiVersion \"kubelet.config.k8s.io/v1alpha1\" is not supported"),
        "{e}"
    );
    let e = load("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: Pod\n");
    assert!(
        e.contains("c.yaml: kind \"Pod\" is not supported; expected \"KubeletConfiguration\""),
        "{e}"
    );
    let e = load("kind: KubeletConfiguration\n");
    assert!(e.contains("apiVersion is missing"), "{e}");
    let e = load("");
    assert!(e.contains("c.yaml: the file is empty"), "{e}");
    let e = load("- a\n- b\n");
    assert!(e.contains("expected a KubeletConfiguration mapping"), "{e}");
    let e = load("maxPods: [\n");
    assert!(
        e.contains("c.yaml: not a valid YAML or JSON document"),
        "{e}"
    );
}

#[test]
fn unknown_field_names_field_file_and_suggestion() {
    let e = err("staticPodPth: /x\n");
    assert!(
        e.contains("config.yaml: unknown field \"staticPodPth\""),
        "{e}"
    );
    assert!(e.contains("did you mean \"staticPodPath\"?"), "{e}");
    let e = err("frobnicate: 1\n");
    assert!(e.ends_with("unknown field \"frobnicate\": not a KubeletConfiguration (kubelet.config.k8s.io/v1beta1) field"), "{e}");
}

#[test]
fn ignored_fields_become_one_warning() {
    let c = load_body(
            "tlsCurvePreferences: [23]\nevictionHard: {memory.available: 100Mi}\nimageGCHighThresholdPercent: 90\n",
        )
        .unwrap();
    assert_eq!(c.warnings.len(), 1);
    let w = &c.warnings[0];
    assert!(
        w.contains("config.yaml: ignoring fields berth does not use: "),
        "{w}"
    );
    for f in [
        "tlsCurvePreferences",
        "evictionHard",
        "imageGCHighThresholdPercent",
    ] {
        assert!(w.contains(f), "{w}");
    }
}

#[test]
fn behaviour_changing_fields_are_refused_unless_default() {
    let e = err("runOnce: true\n");
    assert!(
        e.contains("config.yaml: runOnce: not supported by berth"),
        "{e}"
    );
    let e = err("cpuManagerPolicy: static\n");
    assert!(
        e.contains("cpuManagerPolicy: not supported by berth"),
        "{e}"
    );
    let e = err("staticPodURL: http://x/pods\n");
    assert!(
        e.contains("staticPodURL") && e.contains("staticPodPath"),
        "{e}"
    );
    // Their defaults are fine, as kubeadm writes them.
    load_body("runOnce: false\ncpuManagerPolicy: none\nseccompDefault: false\ncpuCFSQuota: true\n")
        .unwrap();
}

#[test]
fn invalid_values_name_file_and_field() {
    let cases: &[(&str, &str)] = &[
        (
            "syncFrequency: soon\n",
            "config.yaml: syncFrequency: \"soon\" is not a duration",
        ),
        (
            "fileCheckFrequency: -5s\n",
            "fileCheckFrequency: \"-5s\" is negative",
        ),
        (
            "fileCheckFrequency: 20\n",
            "fileCheckFrequency: expected a string, got 20",
        ),
        ("maxPods: -1\n", "maxPods: -1 is negative"),
        (
            "maxPods: many\n",
            "maxPods: expected an integer, got \"many\"",
        ),
        (
            "readOnlyPort: 70000\n",
            "readOnlyPort: 70000 is not a port number",
        ),
        (
            "address: localhost\n",
            "address: \"localhost\" is not an IP address",
        ),
        (
            "clusterDNS: [10.0.0.10, dns]\n",
            "clusterDNS[1]: \"dns\" is not an IP address",
        ),
        ("clusterDNS: 10.0.0.10\n", "clusterDNS: expected a list"),
        (
            "serializeImagePulls: 'no'\n",
            "serializeImagePulls: expected true or false",
        ),
        (
            "cgroupDriver: systemdd\n",
            "cgroupDriver: \"systemdd\" is not a cgroup driver",
        ),
        (
            "cgroupRoot: kubepods\n",
            "cgroupRoot: \"kubepods\" is not an absolute cgroup path",
        ),
        ("podLogsDir: /\n", "podLogsDir: must not be \"/\""),
        (
            "containerRuntimeEndpoint: tcp://x:1\n",
            "containerRuntimeEndpoint: unsupported runtime endpoint",
        ),
        (
            "serializeImagePulls: true\nmaxParallelImagePulls: 4\n",
            "maxParallelImagePulls: cannot be more than 1",
        ),
        (
            "kubeReserved: {cpu: [1]}\n",
            "kubeReserved.cpu: expected a quantity string",
        ),
    ];
    for (body, want) in cases {
        let e = err(body);
        assert!(e.contains(want), "for {body:?}: got {e:?}, want {want:?}");
    }
}

#[test]
fn duplicate_keys_are_refused() {
    let e = err("maxPods: 1\nmaxPods: 2\n");
    assert!(e.contains("not a valid YAML or JSON document"), "{e}");
}

#[test]
fn oversized_files_are_refused_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.yaml");
    let mut text = format!("apiVersion: {API_VERSION}\nkind: {KIND}\n");
    text.push_str(&"# padding\n".repeat(120_000));
    std::fs::write(&path, text).unwrap();
    let f = KubeletFlags {
        config: Some(path),
        ..Default::default()
    };
    let e = KubeletConfig::load(&f).unwrap_err().to_string();
    assert!(
        e.contains("big.yaml: the config file is larger than 1048576 bytes"),
        "{e}"
    );
}

#[test]
fn alias_bombs_and_deep_nesting_are_refused() {
    let mut bomb = String::from("featureGates:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    let mut prev = 'a';
    for c in 'b'..='k' {
        bomb.push_str(&format!(
                "  {c}: &{c} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        prev = c;
    }
    let e = err(&bomb);
    assert!(e.contains("not a valid YAML or JSON document"), "{e}");
    let deep = format!("logging: {}{}\n", "[".repeat(200), "]".repeat(200));
    let e = err(&deep);
    assert!(e.contains("not a valid YAML or JSON document"), "{e}");
}

#[test]
fn missing_config_file_names_it() {
    let f = KubeletFlags {
        config: Some("/nonexistent/berth.yaml".into()),
        ..Default::default()
    };
    let e = KubeletConfig::load(&f).unwrap_err().to_string();
    assert!(
        e.starts_with("reading config file /nonexistent/berth.yaml: "),
        "{e}"
    );
}

#[test]
fn housekeeping_interval_flag() {
    let c = KubeletConfig::load(&flags(&["--hostname-override", "n"])).unwrap();
    assert_eq!(c.housekeeping_interval, Duration::from_secs(10));
    let c = KubeletConfig::load(&flags(&[
        "--hostname-override",
        "n",
        "--housekeeping-interval",
        "1s",
    ]))
    .unwrap();
    assert_eq!(c.housekeeping_interval, Duration::from_secs(1));
    let c = KubeletConfig::load(&flags(&[
        "--hostname-override=n",
        "--housekeeping-interval=1m30s",
    ]))
    .unwrap();
    assert_eq!(c.housekeeping_interval, Duration::from_secs(90));
    for (bad, want) in [
        ("10", "--housekeeping-interval: \"10\" is not a duration"),
        ("0s", "--housekeeping-interval: must be greater than 0"),
        ("-1s", "is not a duration"),
    ] {
        let arg = format!("--housekeeping-interval={bad}");
        let e = KubeletConfig::load(&flags(&["--hostname-override", "n", &arg]))
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{bad}: {e}");
    }
}

#[test]
fn go_durations_parse() {
    let d = |s| parse_go_duration(s);
    assert_eq!(d("0"), Some(Duration::ZERO));
    assert_eq!(d("20s"), Some(Duration::from_secs(20)));
    assert_eq!(d("1m30s"), Some(Duration::from_secs(90)));
    assert_eq!(d("1.5h"), Some(Duration::from_secs(5400)));
    assert_eq!(d("300ms"), Some(Duration::from_millis(300)));
    assert_eq!(d("2h45m10.5s"), Some(Duration::from_millis(9_910_500)));
    assert_eq!(d("10us"), Some(Duration::from_micros(10)));
    assert_eq!(d("10\u{b5}s"), Some(Duration::from_micros(10)));
    assert_eq!(d("7ns"), Some(Duration::from_nanos(7)));
    assert_eq!(d(".5s"), Some(Duration::from_millis(500)));
    assert_eq!(d("+5s"), Some(Duration::from_secs(5)));
    for bad in [
        "", "5", "s", "1d", "1m 30s", "-1s", ".s", "1..5s", "soon", "3000000h",
    ] {
        assert_eq!(d(bad), None, "{bad:?}");
    }
}

#[test]
fn edit_distance_is_levenshtein() {
    assert_eq!(edit_distance("kitten", "sitting"), 3);
    assert_eq!(edit_distance("", "abc"), 3);
    assert_eq!(edit_distance("same", "same"), 0);
    assert_eq!(suggest("maxpods"), Some("maxPods"));
    assert_eq!(suggest("zzzzzzzz"), None);
}

#[test]
fn kubelet_api_defaults_standalone_and_joined() {
    let c = KubeletConfig::load(&flags(&["--hostname-override", "n", "--root-dir", "/r"])).unwrap();
    let s = &c.server;
    assert!(s.enabled);
    assert_eq!(s.port, 10250);
    assert_eq!(s.address, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert_eq!(c.address, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(s.cert_dir, PathBuf::from("/r/pki"));
    assert!(!s.authentication.anonymous);
    assert!(!s.authentication.webhook);
    assert_eq!(s.authorization.mode, AuthorizationMode::AlwaysAllow);
    assert!(s.enable_debugging_handlers);
    assert_eq!(s.authentication.webhook_cache_ttl, Duration::from_secs(120));
    assert_eq!(
        s.authorization.cache_authorized_ttl,
        Duration::from_secs(300)
    );
    assert_eq!(
        s.authorization.cache_unauthorized_ttl,
        Duration::from_secs(30)
    );

    let c = KubeletConfig::load(&flags(&[
        "--hostname-override",
        "n",
        "--kubeconfig",
        "/k.conf",
        "--port",
        "10350",
    ]))
    .unwrap();
    assert!(c.server.authentication.webhook);
    assert_eq!(c.server.authorization.mode, AuthorizationMode::Webhook);
    assert_eq!(c.server.port, 10350);
    assert_eq!(c.cluster.unwrap().port, 10350);
    let c = KubeletConfig::load(&flags(&["--hostname-override", "n", "--port", "0"])).unwrap();
    assert!(!c.server.enabled);
}

#[test]
fn kubelet_api_fields_and_flags() {
    let c = load_body(
        "address: 10.0.0.1\nport: 10260\ntlsCertFile: a.crt\ntlsPrivateKeyFile: a.key\ntlsMinVersion: VersionTLS13\n\
         tlsCipherSuites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\nenableDebuggingHandlers: false\n\
         authentication:\n  x509: {clientCAFile: /ca.crt}\n  anonymous: {enabled: true}\n  webhook: {enabled: false, cacheTTL: 1m}\n\
         authorization:\n  mode: AlwaysAllow\n  webhook: {cacheAuthorizedTTL: 1m, cacheUnauthorizedTTL: 5s}\n",
    )
    .unwrap();
    let s = &c.server;
    assert_eq!(s.address, "10.0.0.1".parse::<IpAddr>().unwrap());
    assert_eq!(s.port, 10260);
    assert!(s.tls_cert_file.as_ref().unwrap().ends_with("a.crt"));
    assert!(s.tls_cert_file.as_ref().unwrap().is_absolute());
    assert_eq!(s.tls_min_version, crate::server::tls::TlsVersion::Tls13);
    assert_eq!(
        s.tls_cipher_suites,
        ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"]
    );
    assert!(!s.enable_debugging_handlers);
    assert_eq!(
        s.authentication.client_ca_file,
        Some(PathBuf::from("/ca.crt"))
    );
    assert!(s.authentication.anonymous);
    assert_eq!(s.authentication.webhook_cache_ttl, Duration::from_secs(60));
    assert_eq!(
        s.authorization.cache_unauthorized_ttl,
        Duration::from_secs(5)
    );
    let z = c.configz();
    assert_eq!(
        z["kubeletconfig"]["authorization"]["webhook"]["cacheAuthorizedTTL"],
        "1m0s"
    );
    assert_eq!(z["kubeletconfig"]["port"], 10260);
    assert_eq!(z["kubeletconfig"]["tlsMinVersion"], "VersionTLS13");

    let f = flags(&[
        "--hostname-override",
        "n",
        "--client-ca-file",
        "/x/ca.pem",
        "--anonymous-auth",
        "--tls-cipher-suites",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_AES_128_GCM_SHA256",
        "--enable-debugging-handlers=false",
        "--authorization-mode",
        "AlwaysAllow",
    ]);
    let s = KubeletConfig::load(&f).unwrap().server;
    assert!(s.authentication.anonymous);
    assert_eq!(
        s.authentication.client_ca_file,
        Some(PathBuf::from("/x/ca.pem"))
    );
    assert_eq!(s.tls_cipher_suites.len(), 2);
    assert!(!s.enable_debugging_handlers);
}

#[test]
fn kubelet_api_errors_name_the_flag_or_field() {
    let e = err("tlsCipherSuites: [TLS_RSA_WITH_RC4_128_SHA]\n");
    assert!(
        e.contains(
            "config.yaml: tlsCipherSuites: TLS_RSA_WITH_RC4_128_SHA is not supported by berth"
        ),
        "{e}"
    );
    let e = err("tlsMinVersion: VersionTLS11\n");
    assert!(
        e.contains("tlsMinVersion: VersionTLS11 is not supported"),
        "{e}"
    );
    let e = err("tlsCertFile: /a.crt\n");
    assert!(e.contains("tlsPrivateKeyFile: is missing"), "{e}");
    let e = err("authorization:\n  mode: Webhook\n");
    assert!(
        e.contains("authorization.mode: Webhook authorization"),
        "{e}"
    );
    assert!(e.contains("needs --kubeconfig"), "{e}");
    let e = err("authentication:\n  webhook: {enabled: true}\n");
    assert!(
        e.contains("authentication.webhook.enabled: token webhook"),
        "{e}"
    );
    let e = err("authorization:\n  mode: RBAC\n");
    assert!(e.contains("unknown authorization mode \"RBAC\""), "{e}");
    let e = err("authentication:\n  anonymus: {enabled: true}\n");
    assert!(e.contains("authentication.anonymus: unknown field"), "{e}");
    let e = err("authentication:\n  webhook: {cacheTTL: soon}\n");
    assert!(
        e.contains("authentication.webhook.cacheTTL: \"soon\" is not a duration"),
        "{e}"
    );

    let load = |args: &[&str]| {
        let mut all = vec!["--hostname-override", "n"];
        all.extend_from_slice(args);
        KubeletConfig::load(&flags(&all)).unwrap_err().to_string()
    };
    let e = load(&["--tls-cipher-suites", "TLS_NOPE"]);
    assert!(
        e.starts_with("--tls-cipher-suites: \"TLS_NOPE\" is not a TLS cipher suite name"),
        "{e}"
    );
    let e = load(&["--authorization-mode", "Webhook"]);
    assert!(
        e.starts_with("--authorization-mode: Webhook authorization"),
        "{e}"
    );
    let e = load(&["--authentication-token-webhook"]);
    assert!(
        e.starts_with("--authentication-token-webhook: token webhook"),
        "{e}"
    );
    let e = load(&["--tls-min-version", "tls13"]);
    assert!(e.contains("is not a TLS version"), "{e}");
    let e = load(&["--tls-cert-file", "/a"]);
    assert!(e.starts_with("--tls-private-key-file: is missing"), "{e}");
}
