//! berthctl against the real containerd that `tests/env/up` starts: every
//! assertion is about what the runtime reports or what the CLI prints.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use cri_client::proto as pb;
use serde_json::Value;
use test_support::{
    Pod, berthctl_bin, busybox_image, client, container_config, endpoint, ensure_image, unique,
};

fn berthctl(args: &[&str]) -> Output {
    Command::new(berthctl_bin())
        .arg("-r")
        .arg(endpoint())
        .arg("-c")
        .arg("/nonexistent/crictl.yaml")
        .args(args)
        .output()
        .expect("running berthctl")
}

/// Runs berthctl and returns stdout, failing the test on a non-zero exit.
fn ok(args: &[&str]) -> String {
    let out = berthctl(args);
    assert!(
        out.status.success(),
        "berthctl {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs berthctl expecting failure; returns stderr.
fn fails(args: &[&str]) -> String {
    let out = berthctl(args);
    assert!(
        !out.status.success(),
        "berthctl {args:?} should have failed; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).expect("utf-8 output")
}

fn json(args: &[&str]) -> Value {
    let text = ok(args);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("berthctl {args:?}: not JSON ({e}):\n{text}"))
}

fn write_json(dir: &std::path::Path, name: &str, v: &Value) -> String {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    p.display().to_string()
}

/// crictl-style config files for a pod and a busybox container.
fn pod_and_container_files(dir: &std::path::Path, pod: &str, cmd: &[&str]) -> (String, String) {
    let pod_cfg = serde_json::json!({
        "metadata": {"name": pod, "namespace": "berth-test", "uid": format!("uid-{pod}"), "attempt": 0},
        "log_directory": dir.join("logs").display().to_string(),
        "labels": {"berth-test": "true", "app": pod},
        "linux": {}
    });
    let ctr_cfg = serde_json::json!({
        "metadata": {"name": "main"},
        "image": {"image": busybox_image()},
        "command": cmd,
        "log_path": "main/0.log",
        "labels": {"berth-test": "true"},
        "linux": {}
    });
    (
        write_json(dir, "pod.json", &pod_cfg),
        write_json(dir, "container.json", &ctr_cfg),
    )
}

#[tokio::test]
async fn version_and_info() {
    let v = ok(&["version"]);
    assert!(v.contains("RuntimeName:  containerd"), "{v}");
    assert!(v.contains("RuntimeApiVersion:  v1"), "{v}");
    let info = json(&["info"]);
    assert!(info.get("status").is_some(), "info has no status: {info}");
    assert!(info.get("config").is_some(), "info has no config: {info}");
}

#[tokio::test]
async fn full_pod_lifecycle() {
    let c = client().await;
    ensure_image(&c, &busybox_image()).await;
    let dir = tempfile::tempdir().unwrap();
    let name = unique("life");
    let (pod_file, ctr_file) = pod_and_container_files(
        dir.path(),
        &name,
        &[
            "sh",
            "-c",
            "echo hello-out; echo hello-err >&2; exec sleep 3600",
        ],
    );

    let pod_id = ok(&["runp", &pod_file]).trim().to_string();
    assert_eq!(pod_id.len(), 64, "runp prints the sandbox ID: {pod_id:?}");
    let ctr_id = ok(&["create", &pod_id[..12], &ctr_file, &pod_file])
        .trim()
        .to_string();
    assert_eq!(ctr_id.len(), 64);
    ok(&["start", &ctr_id[..12]]);

    // The runtime itself says it runs.
    let st = c
        .container_status(pb::ContainerStatusRequest {
            container_id: ctr_id.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(st.state, pb::ContainerState::ContainerRunning as i32);

    // pods / ps tables and JSON.
    let pods = ok(&["pods", "--name", &name]);
    assert!(pods.starts_with("POD ID"), "{pods}");
    assert!(
        pods.contains(&pod_id[..13]) && pods.contains("Ready"),
        "{pods}"
    );
    let pj = json(&["pods", "--name", &name, "-o", "json"]);
    assert_eq!(pj["items"][0]["id"], pod_id.as_str());
    assert_eq!(pj["items"][0]["state"], "SANDBOX_READY");
    assert_eq!(pj["items"][0]["metadata"]["namespace"], "berth-test");
    let ps = ok(&["ps", "--pod", &pod_id[..10]]);
    assert!(ps.contains(&ctr_id[..13]) && ps.contains("Running"), "{ps}");
    let psj = json(&["ps", "--pod", &pod_id, "-o", "json"]);
    assert_eq!(psj["containers"][0]["id"], ctr_id.as_str());
    assert_eq!(psj["containers"][0]["podSandboxId"], pod_id.as_str());
    assert_eq!(psj["containers"][0]["state"], "CONTAINER_RUNNING");

    // tree shows the pod, its sandbox and the container.
    let tree = ok(&["tree", "--namespace", "^berth-test$"]);
    let block = tree
        .split("\n\n")
        .find(|b| b.contains(&name))
        .unwrap_or_else(|| panic!("pod {name} not in tree:\n{tree}"));
    assert!(block.contains(&pod_id[..13]), "{block}");
    assert!(
        block.contains("main") && block.contains("Running"),
        "{block}"
    );
    assert!(block.contains("netns:   /"), "netns path shown: {block}");
    let tj = json(&["tree", "-o", "json"]);
    let node = tj["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == pod_id.as_str())
        .expect("pod in tree json");
    assert_eq!(node["containers"][0]["id"], ctr_id.as_str());
    assert!(node["pausePid"].as_i64().unwrap() > 1);

    // logs: both streams, from the CRI log file the runtime wrote.
    let logs = wait_logs(&ctr_id, "hello-err").await;
    assert!(logs.0.contains("hello-out"), "stdout: {}", logs.0);
    assert!(logs.1.contains("hello-err"), "stderr: {}", logs.1);
    let stamped = ok(&["logs", "--timestamps", "--stream", "stdout", &ctr_id]);
    assert!(
        stamped
            .lines()
            .any(|l| l.ends_with(" hello-out") && l.starts_with("20")),
        "{stamped}"
    );

    // exec, sync and streaming; exit codes pass through.
    let out = berthctl(&["exec", "-s", &ctr_id, "sh", "-c", "echo via-sync; exit 3"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "via-sync\n");
    assert_eq!(out.status.code(), Some(3));
    let out = berthctl(&[
        "exec",
        &ctr_id,
        "sh",
        "-c",
        "echo via-stream; echo e >&2; exit 4",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "via-stream\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "e\n");
    assert_eq!(out.status.code(), Some(4));
    let mut child = Command::new(berthctl_bin())
        .args(["-r", &endpoint(), "exec", "-i", &ctr_id, "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"piped-in\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "piped-in\n");
    assert!(out.status.success());

    // inspect shows what the runtime holds.
    let ins = json(&["inspect", &ctr_id]);
    assert_eq!(ins["status"]["id"], ctr_id.as_str());
    assert_eq!(ins["status"]["state"], "CONTAINER_RUNNING");
    assert!(ins["info"]["pid"].as_i64().unwrap() > 1, "{}", ins["info"]);
    let insp = json(&["inspectp", &pod_id]);
    assert_eq!(insp["status"]["metadata"]["name"], name.as_str());

    // Teardown through the CLI; the runtime confirms.
    ok(&["stop", "--timeout", "1", &ctr_id]);
    ok(&["rm", &ctr_id]);
    ok(&["stopp", &pod_id]);
    let out = ok(&["rmp", &pod_id]);
    assert_eq!(out.trim(), format!("Removed sandbox {pod_id}"));
    let left = c
        .list_pod_sandbox(pb::ListPodSandboxRequest {
            filter: Some(pb::PodSandboxFilter {
                id: pod_id.clone(),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    assert!(left.items.is_empty(), "sandbox still there: {left:?}");
}

async fn wait_logs(ctr: &str, want: &str) -> (String, String) {
    for _ in 0..50 {
        let out = berthctl(&["logs", ctr]);
        let (o, e) = (
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        );
        if o.contains(want) || e.contains(want) {
            return (o, e);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("log line {want:?} never appeared for {ctr}");
}

#[tokio::test]
async fn logs_tail_and_follow_until_exit() {
    let c = client().await;
    ensure_image(&c, &busybox_image()).await;
    let pod = Pod::run(&c, "logs").await;
    let id = pod
        .start(
            &c,
            container_config(
                "counter",
                &busybox_image(),
                &[
                    "sh",
                    "-c",
                    "for i in 1 2 3 4 5; do echo line-$i; sleep 0.3; done",
                ],
            ),
        )
        .await;
    // -f returns by itself once the container exits, with every line.
    let start = std::time::Instant::now();
    let out = ok(&["logs", "-f", &id]);
    assert_eq!(out, "line-1\nline-2\nline-3\nline-4\nline-5\n");
    assert!(start.elapsed() < Duration::from_secs(15));
    assert_eq!(ok(&["logs", "--tail", "2", &id]), "line-4\nline-5\n");
    assert_eq!(ok(&["logs", "--tail", "0", &id]), "");
    assert_eq!(ok(&["logs", "--limit-bytes", "9", &id]), "line-1\nli");
    let e = fails(&["logs", "--previous", &id]);
    assert!(e.contains("no previous instance"), "{e}");
}

#[tokio::test]
async fn filters_quiet_latest_and_yaml() {
    let c = client().await;
    ensure_image(&c, &busybox_image()).await;
    let a = Pod::run(&c, "filt-a").await;
    let b = Pod::run(&c, "filt-b").await;
    let ca = a
        .start(
            &c,
            container_config("web", &busybox_image(), &["sleep", "3600"]),
        )
        .await;
    let cb = b
        .start(
            &c,
            container_config("db", &busybox_image(), &["sleep", "3600"]),
        )
        .await;

    let q = ok(&["pods", "-q", "--name", &a.name]);
    assert_eq!(q.trim(), a.id, "-q prints full IDs");
    let q = ok(&[
        "pods",
        "-q",
        "--label",
        "berth-test=true",
        "--name",
        "filt-(a|b)",
    ]);
    assert!(q.contains(&a.id) && q.contains(&b.id), "{q}");
    let latest = ok(&["pods", "-q", "--latest", "--name", "filt-"]);
    assert_eq!(latest.trim(), b.id, "b was created last");
    assert_eq!(
        ok(&["pods", "-q", "--state", "notready", "--name", &a.name]).trim(),
        ""
    );

    let ps = ok(&["ps", "-q", "--name", "^web$", "--pod", &a.id]);
    assert_eq!(ps.trim(), ca);
    let ps = ok(&["ps", "-q", "--name", "^db$"]);
    assert!(ps.contains(&cb) && !ps.contains(&ca), "{ps}");
    let nt = ok(&["ps", "--no-trunc", "--pod", &b.id]);
    assert!(nt.contains(&cb), "--no-trunc shows the full ID: {nt}");

    let y = ok(&["pods", "-o", "yaml", "--name", &a.name]);
    assert!(y.starts_with("items:\n"), "{y}");
    assert!(y.contains(&format!("id: {}", a.id)), "{y}");
    let e = fails(&["pods", "-o", "xml"]);
    assert!(e.contains("xml"), "{e}");
    let e = fails(&["pods", "--name", "("]);
    assert!(
        e.contains("--name \"(\": invalid regular expression"),
        "{e}"
    );
}

#[tokio::test]
async fn errors_name_what_went_wrong() {
    let out = Command::new(berthctl_bin())
        .args(["-r", "unix:///run/berth-test/nothing-here.sock", "pods"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "berthctl: connecting to the runtime: no CRI runtime listening at unix:///run/berth-test/nothing-here.sock (No such file or directory): is containerd running?"
    );
    let e = fails(&["inspect", "zzzz"]);
    assert!(e.contains("container \"zzzz\" not found"), "{e}");
    let e = fails(&["stopp", "zzzz"]);
    assert!(e.contains("pod sandbox \"zzzz\" not found"), "{e}");
    let e = fails(&["events"]);
    assert!(e.contains("does not implement GetContainerEvents"), "{e}");
    assert_eq!(e.lines().count(), 1, "one clear line: {e}");

    // Nothing configured and no runtime on the default sockets: one error
    // that lists what was tried (crictl's fallback is slow and noisy).
    let dir = tempfile::tempdir().unwrap();
    let start = std::time::Instant::now();
    let out = Command::new(berthctl_bin())
        .args(["-c"])
        .arg(dir.path().join("none.yaml"))
        .arg("pods")
        .env_remove("CONTAINER_RUNTIME_ENDPOINT")
        .env_remove("IMAGE_SERVICE_ENDPOINT")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("none of the default runtime endpoints answered"),
        "{e}"
    );
    for sock in [
        "containerd/containerd.sock",
        "crio/crio.sock",
        "cri-dockerd.sock",
    ] {
        assert!(e.contains(sock), "{sock} listed: {e}");
    }
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "no slow fallback: {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn config_file_and_completion() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("crictl.yaml");
    let run = |args: &[&str]| {
        Command::new(berthctl_bin())
            .arg("-c")
            .arg(&cfg)
            .args(args)
            .env_remove("CONTAINER_RUNTIME_ENDPOINT")
            .output()
            .unwrap()
    };
    let out = run(&[
        "config",
        "--set",
        &format!("runtime-endpoint={}", endpoint()),
        "--set",
        "timeout=5",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        text.contains(&format!("runtime-endpoint: {}", endpoint())),
        "{text}"
    );
    let out = run(&["config", "--get", "timeout"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "5");
    // The file now points berthctl at the runtime: no -r needed.
    let out = run(&["version"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("RuntimeName:  containerd"));
    let out = run(&["config", "--set", "colour=blue"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown config key \"colour\""));
    let out = run(&["completion", "bash"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("berthctl"),
        "a bash completion script"
    );
}

#[tokio::test]
async fn ambiguous_prefix_lists_the_matches() {
    let c = client().await;
    ensure_image(&c, &busybox_image()).await;
    let pod = Pod::run(&c, "ambig").await;
    // Create containers until two IDs share a first character (at most 17).
    let mut ids: Vec<String> = Vec::new();
    let shared = loop {
        let n = ids.len();
        let id = pod
            .start(
                &c,
                container_config(&format!("c{n}"), &busybox_image(), &["sleep", "3600"]),
            )
            .await;
        if let Some(other) = ids.iter().find(|o| o.as_bytes()[0] == id.as_bytes()[0]) {
            break (other.clone(), id);
        }
        ids.push(id);
    };
    let prefix = &shared.0[..1];
    let all = c
        .list_containers(pb::ListContainersRequest::default())
        .await
        .unwrap();
    let matching: Vec<&str> = all
        .containers
        .iter()
        .map(|c| c.id.as_str())
        .filter(|id| id.starts_with(prefix))
        .collect();
    let e = fails(&["inspect", prefix]);
    assert!(
        e.contains(&format!("container ID prefix \"{prefix}\" is ambiguous")),
        "{e}"
    );
    for id in matching {
        assert!(e.contains(id), "match {id} not listed: {e}");
    }
}

#[tokio::test]
async fn pull_with_and_without_credentials() {
    let (registry, user, pass) = test_support::auth_registry();
    let image = format!("{registry}/busybox:latest");
    let e = fails(&["pull", &image]);
    assert!(e.contains("pulling image"), "{e}");
    let out = ok(&["pull", "--creds", &format!("{user}:{pass}"), &image]);
    assert!(out.starts_with("Image is up to date for sha256:"), "{out}");
    let c = client().await;
    let st = c
        .image_status(pb::ImageStatusRequest {
            image: Some(pb::ImageSpec {
                image: image.clone(),
                ..Default::default()
            }),
            verbose: false,
        })
        .await
        .unwrap();
    let img = st.image.expect("the runtime has the image");
    assert!(img.repo_tags.contains(&image), "{:?}", img.repo_tags);
    let list = ok(&["images"]);
    assert!(list.starts_with("IMAGE"), "{list}");
    assert!(list.contains(&format!("{registry}/busybox")), "{list}");
    let ij = json(&["images", "-o", "json"]);
    assert!(
        ij["images"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == img.id.as_str())
    );
    let ins = json(&["inspecti", &image]);
    assert_eq!(ins["status"]["id"], img.id.as_str());
    // Remove only this tag: the same image is used under other names.
    ok(&["rmi", &image]);
}

#[tokio::test]
async fn trace_proxy_shows_calls() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("trace.sock");
    let mut proxy = Command::new(berthctl_bin())
        .args(["-r", &endpoint(), "trace", "--listen"])
        .arg(&sock)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let via = format!("unix://{}", sock.display());
    let out = Command::new(berthctl_bin())
        .args(["-r", &via, "pods", "-q"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(berthctl_bin())
        .args([
            "-r",
            &via,
            "inspect",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    std::thread::sleep(Duration::from_millis(300));
    proxy.kill().unwrap();
    let mut text = String::new();
    proxy
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let _ = proxy.wait();
    let list = text
        .lines()
        .find(|l| l.contains("ListPodSandbox"))
        .unwrap_or_else(|| panic!("no ListPodSandbox in trace:\n{text}"));
    assert!(list.contains("OK"), "{list}");
    let status = text
        .lines()
        .find(|l| l.contains("ContainerStatus"))
        .unwrap_or_else(|| panic!("no ContainerStatus in trace:\n{text}"));
    assert!(
        status.contains("NotFound") && status.contains("0123456789ab"),
        "{status}"
    );
}

#[tokio::test]
async fn port_forward_reaches_the_pod() {
    let c = client().await;
    ensure_image(&c, &busybox_image()).await;
    let pod = Pod::run(&c, "pf").await;
    pod.start(
        &c,
        container_config(
            "web",
            &busybox_image(),
            &["sh", "-c", "mkdir -p /www && echo forwarded-ok > /www/index.html && exec httpd -f -p 8080 -h /www"],
        ),
    )
    .await;
    let mut child = Command::new(berthctl_bin())
        .args(["-r", &endpoint(), "port-forward", &pod.id, ":8080"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = Vec::new();
    let mut byte = [0u8; 1];
    while stdout.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        first.push(byte[0]);
    }
    let line = String::from_utf8(first).unwrap();
    let addr = line
        .strip_prefix("Forwarding from ")
        .and_then(|r| r.split(" -> ").next())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    let body = test_support::wait_for("httpd in the pod", Duration::from_secs(10), || {
        let addr = addr.clone();
        async move {
            let mut s = std::net::TcpStream::connect(&addr).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
            s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").ok()?;
            let mut resp = String::new();
            s.read_to_string(&mut resp).ok()?;
            resp.contains("200 OK").then_some(resp)
        }
    })
    .await;
    child.kill().unwrap();
    let _ = child.wait();
    assert!(body.ends_with("forwarded-ok\n"), "{body}");
}

#[tokio::test]
async fn run_update_and_the_remaining_commands() {
    let c = client().await;
    ensure_image(&c, &busybox_image()).await;
    let dir = tempfile::tempdir().unwrap();
    let name = unique("run");
    let (pod_file, ctr_file) = pod_and_container_files(dir.path(), &name, &["sleep", "3600"]);
    // run = runp + create + start, printing the container ID.
    let id = ok(&["run", &ctr_file, &pod_file]).trim().to_string();
    let ps = json(&["ps", "--id", &id, "-o", "json"]);
    assert_eq!(ps["containers"][0]["state"], "CONTAINER_RUNNING");
    let pod_id = ps["containers"][0]["podSandboxId"]
        .as_str()
        .unwrap()
        .to_string();

    // update changes the container's cgroup limits in the runtime.
    ok(&[
        "update",
        "--memory",
        "67108864",
        "--cpu-quota",
        "50000",
        "--cpu-period",
        "100000",
        &id,
    ]);
    let st = c
        .container_status(pb::ContainerStatusRequest {
            container_id: id.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .status
        .unwrap();
    let res = st
        .resources
        .and_then(|r| r.linux)
        .expect("linux resources reported");
    assert_eq!(res.memory_limit_in_bytes, 67_108_864);
    assert_eq!(res.cpu_quota, 50_000);

    let fs = json(&["imagefsinfo"]);
    assert!(
        fs["status"]["imageFilesystems"][0]["fsId"]["mountpoint"].is_string(),
        "{fs}"
    );

    // Calls containerd 1.6 doesn't implement (or, for ListPodSandboxStats,
    // can't answer for sandboxes without a cgroup parent): one line each,
    // naming the RPC.
    for (args, rpc) in [
        (&["statsp"][..], "ListPodSandboxStats"),
        (&["metricsp"], "ListPodSandboxMetrics"),
        (&["runtime-config"], "RuntimeConfig"),
    ] {
        let out = berthctl(args);
        if !out.status.success() {
            let e = String::from_utf8_lossy(&out.stderr);
            assert!(e.contains(rpc), "{args:?}: {e}");
            assert_eq!(e.trim().lines().count(), 1, "{args:?}: {e}");
        }
    }
    let e = fails(&["checkpoint", "--export", "/tmp/x.tar", &id]);
    assert!(e.contains("CheckpointContainer"), "{e}");

    ok(&["rmp", "-f", &pod_id]);
    assert!(ok(&["pods", "-q", "--id", &pod_id]).trim().is_empty());
}
