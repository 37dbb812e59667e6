use super::discovery::socket_from_args;
use super::image_import::{layout_ref_name, split_tag, tar_layout};
use super::render::write_default_cni_conf;
use super::supervise::log_tail;
use super::*;

#[test]
fn image_tags_and_layout_ref_names() {
    assert_eq!(
        split_tag("localhost:5000/pause:latest"),
        ("localhost:5000/pause", "latest")
    );
    assert_eq!(
        split_tag("localhost:5000/pause"),
        ("localhost:5000/pause", "latest")
    );
    assert_eq!(
        split_tag("registry.k8s.io/pause:3.9"),
        ("registry.k8s.io/pause", "3.9")
    );
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(layout_ref_name(dir.path()), None);
    std::fs::write(
        dir.path().join("index.json"),
        r#"{"manifests":[{"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}"#,
    )
    .unwrap();
    assert_eq!(layout_ref_name(dir.path()).as_deref(), Some("v1"));
}

/// Serialises the tests that run a process named `containerd` or call
/// start(), which would otherwise see each other's processes.
static CONTAINERD_PROCS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn opts(root: &Path) -> ManagedOptions {
    ManagedOptions {
        pause_image: "localhost:5000/pause:latest".into(),
        ..ManagedOptions::for_root_dir(root)
    }
}

#[test]
fn config_names_its_own_paths_and_settings() {
    let o = opts(Path::new("/var/lib/kubelet"));
    let text = containerd_config(&o, true);
    for want in [
        "version = 2\n",
        "root = \"/var/lib/kubelet/containerd\"",
        "state = \"/run/berth/containerd\"",
        "address = \"/run/berth/containerd/containerd.sock\"",
        "path = \"/var/lib/kubelet/containerd/opt\"",
        "sandbox_image = \"localhost:5000/pause:latest\"",
        "restrict_oom_score_adj = true",
        "SystemdCgroup = false",
        "bin_dir = \"/usr/lib/cni\"",
        "conf_dir = \"/var/lib/kubelet/containerd/cni/net.d\"",
        "[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"localhost:5000\"]",
        "endpoint = [\"http://localhost:5000\"]",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert!(containerd_config(&o, false).contains("restrict_oom_score_adj = false"));
    // The socket path fits a sockaddr_un, with room for containerd's ".ttrpc".
    assert!(SOCKET.len() + ".ttrpc".len() < 108);
}

#[test]
fn config_strings_are_escaped() {
    let mut o = opts(Path::new("/srv/we\"ird\\dir"));
    o.pause_image = "a\nb".into();
    let text = containerd_config(&o, false);
    assert!(
        text.contains(r#"root = "/srv/we\"ird\\dir/containerd""#),
        "{text}"
    );
    assert!(text.contains(r#"sandbox_image = "a\nb""#), "{text}");
}

/// containerd itself parses the generated file (`config dump` loads the
/// config and prints it without starting the daemon).
#[test]
fn containerd_accepts_the_generated_config() {
    let _serial = CONTAINERD_PROCS.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path());
    std::fs::create_dir_all(o.containerd_root()).unwrap();
    std::fs::write(o.config_path(), containerd_config(&o, true)).unwrap();
    let out = match std::process::Command::new("containerd")
        .arg("--config")
        .arg(o.config_path())
        .args(["config", "dump"])
        .output()
    {
        Ok(out) => out,
        Err(e) => panic!("containerd must be installed for this test: {e}"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("sandbox_image = \"localhost:5000/pause:latest\""),
        "{stdout}"
    );
    assert!(stdout.contains("restrict_oom_score_adj = true"), "{stdout}");
    assert!(
        stdout.contains(&format!("root = \"{}\"", o.containerd_root().display())),
        "{stdout}"
    );
    assert!(
        stdout.contains("address = \"/run/berth/containerd/containerd.sock\""),
        "{stdout}"
    );
}

#[test]
fn default_cni_network_is_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path());
    std::fs::create_dir_all(o.cni_conf_dir()).unwrap();
    write_default_cni_conf(&o).unwrap();
    let path = o.cni_conf_dir().join("10-berth.conflist");
    let conf: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(conf["plugins"][0]["type"], "bridge");
    assert_eq!(conf["plugins"][0]["bridge"], "berth0");
    assert_eq!(conf["plugins"][0]["ipam"]["type"], "host-local");
    assert_eq!(
        conf["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
        "10.89.0.0/16"
    );
    assert_eq!(conf["plugins"][1]["type"], "portmap");
    // A network the user wrote is left alone, and ours is not added.
    std::fs::remove_file(&path).unwrap();
    std::fs::write(o.cni_conf_dir().join("05-mine.conflist"), "{}").unwrap();
    write_default_cni_conf(&o).unwrap();
    assert!(!path.exists());
}

#[test]
fn cap_sys_resource_is_read_from_cap_eff() {
    let status = |eff: &str| {
        format!(
            "Name:\tberth\nCapInh:\t0000000000000000\nCapEff:\t{eff}\nCapBnd:\t000001ffffffffff\n"
        )
    };
    assert_eq!(
        cap_effective_has(&status("000001ffffffffff"), 24),
        Some(true)
    );
    // Docker's default set lacks CAP_SYS_RESOURCE (bit 24).
    assert_eq!(
        cap_effective_has(&status("00000000a80425fb"), 24),
        Some(false)
    );
    assert_eq!(
        cap_effective_has(&status("000001fffeffffff"), 24),
        Some(false)
    );
    assert_eq!(
        cap_effective_has(&status("0000000001000000"), 24),
        Some(true)
    );
    assert_eq!(cap_effective_has(&status("zz"), 24), None);
    assert_eq!(cap_effective_has("Name:\tx\n", 24), None);
    assert_eq!(
        cap_effective_has(&status("ffffffffffffffff"), 99),
        Some(false)
    );
}

fn fake_proc(entries: &[(u32, &str, &[&str])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("self")).unwrap();
    for (pid, comm, args) in entries {
        let p = dir.path().join(pid.to_string());
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("comm"), format!("{comm}\n")).unwrap();
        let mut cmdline = Vec::new();
        for a in *args {
            cmdline.extend_from_slice(a.as_bytes());
            cmdline.push(0);
        }
        std::fs::write(p.join("cmdline"), cmdline).unwrap();
    }
    dir
}

#[test]
fn finds_containerd_but_not_its_shims() {
    let proc = fake_proc(&[
        (
            10,
            "containerd-shim",
            &["/usr/bin/containerd-shim-runc-v2", "-namespace", "k8s.io"],
        ),
        (20, "bash", &["bash"]),
    ]);
    assert_eq!(find_running_containerd(proc.path()), None);

    let proc = fake_proc(&[
        (10, "containerd-shim", &["/usr/bin/containerd-shim-runc-v2"]),
        (
            30,
            "containerd",
            &["containerd", "--address", "/run/berth-test/containerd.sock"],
        ),
    ]);
    assert_eq!(
        find_running_containerd(proc.path()),
        Some(RunningContainerd {
            pid: 30,
            socket: "/run/berth-test/containerd.sock".into()
        })
    );
}

#[test]
fn socket_comes_from_flags_or_config() {
    let s =
        |args: &[&str]| socket_from_args(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>());
    assert_eq!(s(&["containerd", "-a", "/x.sock"]), "/x.sock");
    assert_eq!(s(&["containerd", "--address=/y.sock"]), "/y.sock");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
            &cfg,
            "version = 2\n[plugins.x]\n  address = \"/not/this\"\n[grpc]\n  uid = 0\n  address = \"/run/berth-test/containerd.sock\"\n",
        )
        .unwrap();
    assert_eq!(
        s(&["containerd", "--config", cfg.to_str().unwrap()]),
        "/run/berth-test/containerd.sock"
    );
    let cfg_flag = format!("-c={}", cfg.display());
    assert_eq!(
        s(&["containerd", &cfg_flag]),
        "/run/berth-test/containerd.sock"
    );
    assert_eq!(
        s(&["containerd", "-c", "/nonexistent.toml"]),
        SYSTEM_CONTAINERD_SOCKET
    );
}

/// Runs a harmless process whose command name is `containerd` (a copy of
/// bash), and checks that start() refuses, naming its pid and socket,
/// before touching anything.
#[tokio::test]
async fn start_refuses_while_another_containerd_runs() {
    let _serial = CONTAINERD_PROCS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("containerd");
    std::fs::copy("/bin/bash", &fake).unwrap();
    let mut child = std::process::Command::new(&fake)
        .args([
            "-c",
            "sleep 30; true",
            "--address",
            "/run/fake-berth-test.sock",
        ])
        .spawn()
        .unwrap();
    let root = dir.path().join("root");
    let result = ManagedContainerd::start(opts(&root)).await;
    let _ = child.kill();
    let _ = child.wait();
    let e = result.unwrap_err().to_string();
    assert!(
        e.starts_with("another containerd is already running (pid "),
        "{e}"
    );
    // Another containerd (the test env's, or a parallel test's
    // `containerd config dump`) may be named instead; ours, if named,
    // must come with the socket from its command line.
    if e.contains(&format!("(pid {},", child.id())) {
        assert!(e.contains("socket /run/fake-berth-test.sock)"), "{e}");
    }
    assert!(!root.exists(), "start() wrote files before refusing");
}

/// A stand-in for containerd: a script (so no second containerd ever
/// runs), whose output must land in containerd.log.
fn fake_containerd(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("fake-containerd");
    std::fs::write(&bin, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn other_containerd_runs() -> bool {
    let found = find_running_containerd(Path::new("/proc"));
    if let Some(c) = &found {
        eprintln!(
            "skipping: containerd pid {} runs (socket {})",
            c.pid, c.socket
        );
    }
    found.is_some()
}

#[tokio::test]
async fn a_containerd_that_exits_is_reported_with_its_log() {
    let _serial = CONTAINERD_PROCS.lock().await;
    if other_containerd_runs() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(&dir.path().join("root"));
    o.containerd_bin =
        fake_containerd(dir.path(), "echo 'failed to load plugin: boom' >&2; exit 3");
    let e = ManagedContainerd::start(o.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("containerd exited during startup (exit status: 3)"),
        "{e}"
    );
    assert!(
        e.contains("containerd.log") && e.ends_with("failed to load plugin: boom"),
        "{e}"
    );
    // The config and network were written before starting it.
    assert!(o.config_path().is_file());
    assert!(o.cni_conf_dir().join("10-berth.conflist").is_file());
}

#[tokio::test]
async fn a_containerd_that_never_answers_times_out_and_is_killed() {
    let _serial = CONTAINERD_PROCS.lock().await;
    if other_containerd_runs() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(&dir.path().join("root"));
    let pid_file = dir.path().join("pid");
    o.containerd_bin = fake_containerd(
        dir.path(),
        &format!(
            "echo $$ > {}; echo 'still loading'; exec sleep 30",
            pid_file.display()
        ),
    );
    o.ready_timeout = Duration::from_millis(500);
    let e = ManagedContainerd::start(o).await.unwrap_err().to_string();
    assert!(
        e.starts_with(
            "containerd did not answer on unix:///run/berth/containerd/containerd.sock within 500ms"
        ),
        "{e}"
    );
    assert!(e.ends_with("still loading"), "{e}");
    // Dropping the half-started instance killed it.
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{pid}/cmdline")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "fake containerd {pid} still running"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn layout_is_archived_with_relative_names() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("index.json"), "{}").unwrap();
    std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
    std::fs::write(dir.path().join("blobs/sha256/abc"), "blob").unwrap();
    let bytes = tar_layout(dir.path()).unwrap();
    let mut archive = tar::Archive::new(bytes.as_slice());
    let mut names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches('/')
                .to_string()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "blobs",
            "blobs/sha256",
            "blobs/sha256/abc",
            "index.json",
            "oci-layout"
        ]
    );
}

#[test]
fn log_tail_keeps_the_last_lines() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("l.log");
    let text: String = (1..=30).map(|i| format!("line {i}\n")).collect();
    std::fs::write(&log, text).unwrap();
    let tail = log_tail(&log, 3);
    assert_eq!(tail, "line 28\nline 29\nline 30");
    assert!(log_tail(&dir.path().join("missing"), 3).starts_with("(cannot read the log: "));
}
