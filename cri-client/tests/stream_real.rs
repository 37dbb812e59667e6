//! Exec, Attach and PortForward sessions against the real containerd that
//! `tests/env/up` starts (`BERTH_TEST_ENDPOINT`, default
//! unix:///run/berth-test/containerd.sock). The CRI calls go through the raw
//! tonic stubs so only the streaming client is under test here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use cri_client::stream::{self, NoOutput, NoStdin, StreamError, StreamIo, TermSize};
use cri_proto::v1 as pb;
use cri_proto::v1::image_service_client::ImageServiceClient;
use cri_proto::v1::runtime_service_client::RuntimeServiceClient;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::{Channel, Endpoint};

const DEFAULT_ENDPOINT: &str = "unix:///run/berth-test/containerd.sock";
const TIMEOUT: Duration = Duration::from_secs(60);

fn socket_path() -> PathBuf {
    let endpoint = std::env::var("BERTH_TEST_ENDPOINT").unwrap_or_else(|_| DEFAULT_ENDPOINT.into());
    let path = endpoint
        .strip_prefix("unix://")
        .unwrap_or_else(|| panic!("BERTH_TEST_ENDPOINT={endpoint:?} is not a unix:// endpoint"));
    PathBuf::from(path)
}

fn image(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.into())
}

async fn connect() -> Channel {
    let path = socket_path();
    assert!(
        path.exists(),
        "no containerd socket at {}; run tests/env/up first",
        path.display()
    );
    let p = path.clone();
    Endpoint::try_from("http://[::]:50051")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_| {
            let p = p.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(p).await?))
            }
        }))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "connecting to {}: {e}; run tests/env/up first",
                path.display()
            )
        })
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{:x}", std::process::id(), nanos & 0xff_ffff)
}

/// A running pod sandbox, stopped and removed on drop even when the test
/// panics. Cleanup runs on its own thread and connection: the test's
/// runtime may be the one unwinding.
struct Pod {
    id: String,
    config: pb::PodSandboxConfig,
    rt: RuntimeServiceClient<Channel>,
    _logs: tempfile::TempDir,
}

impl Drop for Pod {
    fn drop(&mut self) {
        let id = self.id.clone();
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut c = RuntimeServiceClient::new(connect().await);
                let stop = pb::StopPodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                };
                if let Err(e) = c.stop_pod_sandbox(stop).await {
                    eprintln!("cleanup: stopping pod {id}: {e}");
                }
                let rm = pb::RemovePodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                };
                if let Err(e) = c.remove_pod_sandbox(rm).await {
                    eprintln!("cleanup: removing pod {id}: {e}");
                }
            });
        });
        let _ = cleanup.join();
    }
}

async fn pull(ch: &Channel, image: &str) {
    let mut img = ImageServiceClient::new(ch.clone());
    img.pull_image(pb::PullImageRequest {
        image: Some(pb::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("pulling {image}: {e}"));
}

async fn run_pod(name: &str) -> Pod {
    let ch = connect().await;
    pull(
        &ch,
        &image("BERTH_TEST_PAUSE_IMAGE", "localhost:5000/pause:latest"),
    )
    .await;
    pull(
        &ch,
        &image("BERTH_TEST_BUSYBOX_IMAGE", "localhost:5000/busybox:latest"),
    )
    .await;
    let logs = tempfile::tempdir().unwrap();
    let name = unique(name);
    let config = pb::PodSandboxConfig {
        metadata: Some(pb::PodSandboxMetadata {
            name: name.clone(),
            uid: format!("uid-{name}"),
            namespace: "berth-stream-test".into(),
            attempt: 0,
        }),
        log_directory: logs.path().display().to_string(),
        linux: Some(Default::default()),
        ..Default::default()
    };
    let mut rt = RuntimeServiceClient::new(ch);
    let id = rt
        .run_pod_sandbox(pb::RunPodSandboxRequest {
            config: Some(config.clone()),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("RunPodSandbox {name}: {e}"))
        .into_inner()
        .pod_sandbox_id;
    Pod {
        id,
        config,
        rt,
        _logs: logs,
    }
}

impl Pod {
    /// Creates and starts a busybox container running `command`.
    async fn container(&mut self, name: &str, command: &[&str], stdin: bool, tty: bool) -> String {
        let config = pb::ContainerConfig {
            metadata: Some(pb::ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(pb::ImageSpec {
                image: image("BERTH_TEST_BUSYBOX_IMAGE", "localhost:5000/busybox:latest"),
                ..Default::default()
            }),
            command: command.iter().map(|s| s.to_string()).collect(),
            log_path: format!("{name}.log"),
            stdin,
            tty,
            linux: Some(Default::default()),
            ..Default::default()
        };
        let id = self
            .rt
            .create_container(pb::CreateContainerRequest {
                pod_sandbox_id: self.id.clone(),
                config: Some(config),
                sandbox_config: Some(self.config.clone()),
            })
            .await
            .unwrap_or_else(|e| panic!("CreateContainer {name}: {e}"))
            .into_inner()
            .container_id;
        self.rt
            .start_container(pb::StartContainerRequest {
                container_id: id.clone(),
            })
            .await
            .unwrap_or_else(|e| panic!("StartContainer {name}: {e}"));
        id
    }

    async fn exec_url(&mut self, container: &str, cmd: &[&str], stdin: bool, tty: bool) -> String {
        self.rt
            .exec(pb::ExecRequest {
                container_id: container.into(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                tty,
                stdin,
                stdout: true,
                stderr: !tty,
            })
            .await
            .unwrap_or_else(|e| panic!("Exec {cmd:?}: {e}"))
            .into_inner()
            .url
    }

    async fn exec_sync(&mut self, container: &str, cmd: &[&str]) -> String {
        let resp = self
            .rt
            .exec_sync(pb::ExecSyncRequest {
                container_id: container.into(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                timeout: 10,
            })
            .await
            .unwrap_or_else(|e| panic!("ExecSync {cmd:?}: {e}"))
            .into_inner();
        String::from_utf8_lossy(&resp.stdout).into_owned()
    }

    async fn port_forward_url(&mut self, port: u16) -> String {
        self.rt
            .port_forward(pb::PortForwardRequest {
                pod_sandbox_id: self.id.clone(),
                port: vec![i32::from(port)],
            })
            .await
            .unwrap_or_else(|e| panic!("PortForward {port}: {e}"))
            .into_inner()
            .url
    }
}

async fn timed<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(TIMEOUT, f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {TIMEOUT:?}"))
}

#[tokio::test]
async fn exec_demuxes_output_and_reports_exit_code() {
    let mut pod = run_pod("exec-code").await;
    let c = pod
        .container("main", &["sleep", "3600"], false, false)
        .await;
    let url = pod
        .exec_url(
            &c,
            &["sh", "-c", "echo out; echo err >&2; exit 3"],
            false,
            false,
        )
        .await;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let io = StreamIo::<NoStdin, _, _> {
        stdout: Some(&mut out),
        stderr: Some(&mut err),
        ..Default::default()
    };
    let code = timed("exec", stream::run_remote_command(&url, io))
        .await
        .unwrap();
    assert_eq!(code, 3);
    assert_eq!(String::from_utf8_lossy(&out), "out\n");
    assert_eq!(String::from_utf8_lossy(&err), "err\n");

    // A URL is single-use: the stream server refuses it the second time.
    let again = timed(
        "exec again",
        stream::run_remote_command(&url, StreamIo::<NoStdin, NoOutput, NoOutput>::default()),
    )
    .await;
    assert!(
        matches!(again, Err(StreamError::Rejected { .. })),
        "{again:?}"
    );
}

#[tokio::test]
async fn exec_cat_gets_stdin_and_ends() {
    let mut pod = run_pod("exec-cat").await;
    let c = pod
        .container("main", &["sleep", "3600"], false, false)
        .await;
    let url = pod.exec_url(&c, &["cat"], true, false).await;
    let mut out = Vec::new();
    let io = StreamIo::<_, _, NoOutput> {
        stdin: Some(&b"hello\n"[..]),
        stdout: Some(&mut out),
        ..Default::default()
    };
    let code = timed("exec cat", stream::run_remote_command(&url, io))
        .await
        .unwrap();
    assert_eq!(code, 0);
    assert_eq!(String::from_utf8_lossy(&out), "hello\n");

    // cat must have seen EOF and exited, not be left behind in the container.
    let mut procs = String::new();
    for _ in 0..50 {
        procs = pod.exec_sync(&c, &["ps", "-o", "pid,args"]).await;
        if !procs
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some("cat"))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cat is still running after the session ended:\n{procs}");
}

#[tokio::test]
async fn exec_with_tty_follows_resize() {
    let mut pod = run_pod("exec-tty").await;
    let c = pod
        .container("main", &["sleep", "3600"], false, false)
        .await;
    let url = pod
        .exec_url(&c, &["sh", "-c", "sleep 1; stty size; tty"], true, true)
        .await;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(TermSize {
        width: 100,
        height: 30,
    })
    .await
    .unwrap();
    // A stdin that stays open, like an interactive terminal.
    let (_keyboard, stdin) = tokio::io::duplex(64);
    let mut out = Vec::new();
    let io = StreamIo::<_, _, NoOutput> {
        stdin: Some(stdin),
        stdout: Some(&mut out),
        tty: true,
        resize: Some(rx),
        ..Default::default()
    };
    let code = timed("exec -t", stream::run_remote_command(&url, io))
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("30 100"),
        "stty size did not see the resize: {out:?}"
    );
    assert!(out.contains("/dev/pts/"), "no tty in the exec: {out:?}");
    drop(tx);
}

#[tokio::test]
async fn attach_to_a_tty_container() {
    let mut pod = run_pod("attach").await;
    let c = pod.container("main", &["sh"], true, true).await;
    let url = pod
        .rt
        .attach(pb::AttachRequest {
            container_id: c.clone(),
            stdin: true,
            tty: true,
            stdout: true,
            stderr: false,
        })
        .await
        .unwrap()
        .into_inner()
        .url;
    let (mut keyboard, stdin) = tokio::io::duplex(256);
    keyboard
        .write_all(b"echo attached-$((6*7)); exit\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let io = StreamIo::<_, _, NoOutput> {
        stdin: Some(stdin),
        stdout: Some(&mut out),
        tty: true,
        ..Default::default()
    };
    // The shell exits, so the container stops and the attach ends.
    let code = timed("attach", stream::run_remote_command(&url, io))
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("attached-42"), "{out:?}");
}

#[tokio::test]
async fn port_forward_round_trips_bytes() {
    let mut pod = run_pod("portfwd").await;
    let script =
        "mkdir -p /www && echo hello-from-pod > /www/index.html && exec httpd -f -p 8080 -h /www";
    let _c = pod
        .container("web", &["sh", "-c", script], false, false)
        .await;

    let mut last = String::new();
    for _ in 0..30 {
        let url = pod.port_forward_url(8080).await;
        let (mut user, ours) = tokio::io::duplex(64 * 1024);
        let fwd = tokio::spawn(async move { stream::port_forward(&url, 8080, ours).await });
        user.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")
            .await
            .unwrap();
        let mut resp = Vec::new();
        timed(
            "reading the forwarded response",
            user.read_to_end(&mut resp),
        )
        .await
        .unwrap();
        let result = timed("port-forward session", fwd).await.unwrap();
        last = format!("{result:?}: {}", String::from_utf8_lossy(&resp));
        if result.is_ok() && String::from_utf8_lossy(&resp).contains("hello-from-pod") {
            return;
        }
        // httpd may not be listening yet.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no response through port-forward; last attempt: {last}");
}

#[tokio::test]
async fn port_forward_to_a_closed_port_reports_the_error() {
    let mut pod = run_pod("portfwd-closed").await;
    let url = pod.port_forward_url(9).await;
    let (_user, ours) = tokio::io::duplex(1024);
    let err = timed("port-forward", stream::port_forward(&url, 9, ours))
        .await
        .unwrap_err();
    match err {
        StreamError::PortForward { port: 9, message } => {
            assert!(message.contains("9"), "{message}");
        }
        other => panic!("expected a port-forward error, got {other:?}"),
    }
}
