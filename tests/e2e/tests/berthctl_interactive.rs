//! berthctl's interactive and maintenance commands against the real
//! containerd: `exec -it` and `attach` through a real pseudo-terminal,
//! `stats`, and `rmi --prune` (which must keep the pause image).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cri_client::proto as pb;
use test_support::{
    Pod, berthctl_bin, busybox_image, client, container_config, endpoint, ensure_image, pause_image,
};

/// Runs berthctl with a pty as its terminal; sends `input` (slowly, like a
/// person) and returns everything it printed and its exit code.
fn on_a_terminal(args: &[&str], input: &[&str]) -> (String, Option<i32>) {
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave: OwnedFd = pty.slave;
    let mut child = Command::new(berthctl_bin())
        .arg("-r")
        .arg(endpoint())
        .args(args)
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(pty.master);
    let mut reader = master.try_clone().unwrap();
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        // EIO once every slave fd is closed, i.e. berthctl exited.
        while let Ok(n) = reader.read(&mut chunk) {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&buf).to_string()
    });
    std::thread::sleep(Duration::from_millis(1500));
    for line in input {
        master.write_all(line.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("berthctl {args:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(master);
    (out.join().unwrap(), status.code())
}

#[tokio::test]
async fn exec_it_is_a_real_terminal_and_passes_the_exit_code() {
    let c = client().await;
    ensure_image(&c, &busybox_image()).await;
    let pod = Pod::run(&c, "tty").await;
    let id = pod
        .start(
            &c,
            container_config("sh", &busybox_image(), &["sleep", "3600"]),
        )
        .await;
    let (out, code) = on_a_terminal(
        &["exec", "-it", &id[..12], "sh"],
        &["tty; echo cols=$(stty size)\r", "exit 7\r"],
    );
    assert!(
        out.contains("/dev/pts/"),
        "the command sees a terminal:\n{out}"
    );
    assert!(out.contains("cols="), "{out}");
    assert_eq!(code, Some(7), "exit code passed through:\n{out}");
}

#[tokio::test]
async fn attach_to_a_terminal_container() {
    let c = client().await;
    ensure_image(&c, &busybox_image()).await;
    let pod = Pod::run(&c, "attach").await;
    let mut cfg = container_config("shell", &busybox_image(), &["sh"]);
    cfg.stdin = true;
    cfg.tty = true;
    let id = pod.start(&c, cfg).await;
    let (out, code) = on_a_terminal(
        &["attach", "-i", "-t", &id],
        &["echo attached-$((40+2))\r", "exit 3\r"],
    );
    assert!(out.contains("attached-42"), "{out}");
    assert_eq!(code, Some(3), "{out}");
    let st = c
        .container_status(pb::ContainerStatusRequest {
            container_id: id,
            verbose: false,
        })
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(st.state, pb::ContainerState::ContainerExited as i32);
    assert_eq!(st.exit_code, 3);
}

#[tokio::test]
async fn stats_show_running_containers() {
    let c = client().await;
    ensure_image(&c, &busybox_image()).await;
    let pod = Pod::run(&c, "stats").await;
    let id = pod
        .start(
            &c,
            container_config(
                "busy",
                &busybox_image(),
                &["sh", "-c", "while :; do :; done"],
            ),
        )
        .await;
    let out = Command::new(berthctl_bin())
        .args(["-r", &endpoint(), "stats", "--id", &id[..12]])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = text
        .lines()
        .find(|l| l.starts_with(&id[..13]))
        .unwrap_or_else(|| panic!("{text}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1], "busy");
    let cpu: f64 = cols[2].parse().unwrap();
    assert!(cpu > 20.0, "a busy loop shows CPU use: {row}");
    let out = Command::new(berthctl_bin())
        .args(["-r", &endpoint(), "stats", "-o", "json", "--id", &id])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["stats"][0]["attributes"]["id"], id.as_str());
}

#[tokio::test]
async fn rmi_prune_keeps_pinned_and_used_images() {
    let c = client().await;
    ensure_image(&c, &busybox_image()).await;
    ensure_image(&c, &pause_image()).await;
    // An image nothing uses: busybox's layout pushed under another config.
    let oci_image = test_support::berthctl_bin().with_file_name("oci-image");
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let st = Command::new(&oci_image)
        .arg("--out")
        .arg(&layout)
        .args([
            "--file",
            "/bin/busybox:/bin/busybox:0755",
            "--env",
            "PRUNE_ME=1",
            "--cmd",
            "/bin/busybox",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}; tests/env/up builds it", oci_image.display()));
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let registry = std::env::var("BERTH_TEST_REGISTRY").unwrap_or_else(|_| "localhost:5000".into());
    let unused = format!("{registry}/berth-prune-me:latest");
    let st = Command::new("skopeo")
        .args([
            "copy",
            "--insecure-policy",
            "--quiet",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!("docker://{unused}"))
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    ensure_image(&c, &unused).await;
    // busybox is in use by a running container.
    let pod = Pod::run(&c, "prune").await;
    pod.start(
        &c,
        container_config("user", &busybox_image(), &["sleep", "3600"]),
    )
    .await;

    let out = Command::new(berthctl_bin())
        .args(["-r", &endpoint(), "rmi", "--prune"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("Deleted: {unused}")), "{text}");
    let have = |image: String| {
        let c = &c;
        async move {
            c.image_status(pb::ImageStatusRequest {
                image: Some(pb::ImageSpec {
                    image,
                    ..Default::default()
                }),
                verbose: false,
            })
            .await
            .unwrap()
            .image
            .is_some()
        }
    };
    assert!(!have(unused).await, "the unused image is gone");
    assert!(
        have(pause_image()).await,
        "the sandbox (pause) image is kept"
    );
    assert!(have(busybox_image()).await, "an image in use is kept");
}
