//! Making sure the managed runtime has the pause image: import its OCI layout with `ctr`,
//! or pull it.

use std::io::{self, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use api::image::{DEFAULT_TAG, ImageRef};
use cri_client::RuntimeClient;
use cri_client::proto::v1 as pb;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::time::{sleep, timeout};

use super::{MAX_LAYOUT_BYTES, ManagedOptions, ManagedRuntimeError, Result, SOCKET};

pub(super) async fn has_image(client: &RuntimeClient, image: &str) -> Result<bool> {
    let resp = client
        .image_status(pb::ImageStatusRequest {
            image: Some(image_spec(image)),
            verbose: false,
        })
        .await
        .map_err(|source| ManagedRuntimeError::Cri {
            image: image.to_string(),
            source,
        })?;
    Ok(resp.image.is_some())
}

pub(super) fn image_spec(image: &str) -> pb::ImageSpec {
    pb::ImageSpec {
        image: image.to_string(),
        ..Default::default()
    }
}

/// Makes sure the runtime has the pause image: import it from the OCI
/// layout if there is one, else try to pull it.
pub(super) async fn ensure_pause_image(
    client: &RuntimeClient,
    opts: &ManagedOptions,
) -> Result<()> {
    let image = &opts.pause_image;
    if has_image(client, image).await? {
        return Ok(());
    }
    let layout = opts
        .pause_image_layout
        .as_ref()
        .filter(|l| l.join("index.json").is_file());
    let Some(layout) = layout else {
        let pull = client.pull_image(pb::PullImageRequest {
            image: Some(image_spec(image)),
            ..Default::default()
        });
        let pull_error = match timeout(Duration::from_secs(120), pull).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out after 120s".to_string(),
        };
        return Err(ManagedRuntimeError::NoPauseImage {
            image: image.clone(),
            layout: opts.pause_image_layout.as_ref().map_or_else(
                || "(none configured)".to_string(),
                |l| l.display().to_string(),
            ),
            pull_error,
        });
    };
    tracing::info!(image, layout = %layout.display(), "importing the pause image");
    import_layout(&opts.ctr_bin, image, layout).await?;
    // The CRI plugin learns of imported images from containerd's events,
    // so it may take a moment to see it.
    for _ in 0..50 {
        if has_image(client, image).await? {
            return Ok(());
        }
        sleep(Duration::from_millis(100)).await;
    }
    Err(ManagedRuntimeError::PauseImport {
        image: image.clone(),
        layout: layout.to_path_buf(),
        reason: "ctr reported success, but ImageStatus still does not find the image".into(),
    })
}

/// `ctr -n k8s.io images import --base-name <repository> -`, fed the layout
/// as a tar stream (an OCI archive is a tar of the layout directory); ctr
/// names the image `<repository>:<the layout's ref name>`, and a different
/// tag is added with `ctr images tag`. (`--index-name` would leave the CRI
/// plugin with a dangling `import-<date>` name for the image.)
pub(super) async fn import_layout(ctr: &Path, image: &str, layout: &Path) -> Result<()> {
    let fail = |reason: String| ManagedRuntimeError::PauseImport {
        image: image.to_string(),
        layout: layout.to_path_buf(),
        reason,
    };
    let dir = layout.to_path_buf();
    let archive = tokio::task::spawn_blocking(move || tar_layout(&dir))
        .await
        .map_err(|e| fail(format!("archiving the layout: {e}")))?
        .map_err(|e| fail(format!("archiving the layout: {e}")))?;
    let (repository, tag) = split_tag(image);
    let ref_name = layout_ref_name(layout).unwrap_or_else(|| "latest".to_string());
    let mut child = Command::new(ctr)
        .args([
            "--address",
            SOCKET,
            "-n",
            "k8s.io",
            "images",
            "import",
            "--base-name",
            repository,
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("starting {}: {e}", ctr.display())))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| fail("ctr has no stdin".into()))?;
    let write = async move {
        let r = stdin.write_all(&archive).await;
        drop(stdin);
        r
    };
    // Write and collect output together, so a chatty ctr cannot deadlock us.
    let run = async { tokio::join!(write, child.wait_with_output()) };
    let (written, output) = timeout(Duration::from_secs(120), run)
        .await
        .map_err(|_| fail("ctr did not finish within 120s".into()))?;
    let output = output.map_err(|e| fail(format!("waiting for ctr: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(fail(format!("ctr {}: {}", output.status, stderr.trim())));
    }
    written.map_err(|e| fail(format!("feeding ctr: {e}")))?;
    if tag != ref_name {
        let imported = format!("{repository}:{ref_name}");
        let out = Command::new(ctr)
            .args([
                "--address",
                SOCKET,
                "-n",
                "k8s.io",
                "images",
                "tag",
                "--force",
                &imported,
                image,
            ])
            .output()
            .await
            .map_err(|e| fail(format!("starting {}: {e}", ctr.display())))?;
        if !out.status.success() {
            return Err(fail(format!(
                "ctr images tag {imported} {image}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    Ok(())
}

/// `repo:tag` → (`repo`, `tag`), split by the image reference grammar; a
/// reference without a tag means `latest`. A reference that does not parse is
/// left whole (ctr then reports what is wrong with it).
pub(super) fn split_tag(image: &str) -> (&str, &str) {
    let Ok(r) = ImageRef::parse(image) else {
        return (image, DEFAULT_TAG);
    };
    // The name and tag are the reference's own text, so they are slices of it.
    let name_len = r.name().len();
    let tag = r
        .tag()
        .and_then(|t| image.get(name_len + 1..name_len + 1 + t.len()));
    (
        image.get(..name_len).unwrap_or(image),
        tag.unwrap_or(DEFAULT_TAG),
    )
}

/// The `org.opencontainers.image.ref.name` of the layout's first manifest.
pub(super) fn layout_ref_name(layout: &Path) -> Option<String> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).ok()?).ok()?;
    index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
        .as_str()
        .map(str::to_string)
}

/// A tar of the layout directory's contents, with names relative to it.
pub(super) fn tar_layout(dir: &Path) -> io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(CappedBuf(Vec::new()));
    builder.mode(tar::HeaderMode::Deterministic);
    let mut entries = std::fs::read_dir(dir)?.collect::<io::Result<Vec<_>>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        if entry.file_type()?.is_dir() {
            builder.append_dir_all(&name, entry.path())?;
        } else {
            builder.append_path_with_name(entry.path(), &name)?;
        }
    }
    Ok(builder.into_inner()?.0)
}

/// A Vec that refuses to grow past [`MAX_LAYOUT_BYTES`].
pub(super) struct CappedBuf(Vec<u8>);

impl Write for CappedBuf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.0.len() + buf.len() > MAX_LAYOUT_BYTES {
            return Err(io::Error::other(format!(
                "the layout is larger than {MAX_LAYOUT_BYTES} bytes"
            )));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
