//! Image commands: images, inspecti, imagefsinfo, pull, rmi.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use base64::Engine;
use cri_client::proto as pb;

use crate::cli::{ImagesArgs, InspectArgs, OutputArgs, PullArgs, RmiArgs};
use crate::{Ctx, output, read_config_file, resolve};

pub async fn images(ctx: &Ctx, a: ImagesArgs) -> Result<()> {
    let format = output::OutputFormat::parse_or(&a.output, output::OutputFormat::Table)?;
    let filter = a.filter.as_ref().map(|f| pb::ImageFilter {
        image: Some(pb::ImageSpec {
            image: f.clone(),
            ..Default::default()
        }),
    });
    let mut images = ctx
        .client
        .list_images(pb::ListImagesRequest { filter })
        .await?
        .images;
    if let Some(want) = &a.filter {
        // containerd ignores the filter; apply it the way crictl's users expect.
        images.retain(|i| {
            i.repo_tags
                .iter()
                .chain(&i.repo_digests)
                .any(|t| matches_ref(t, want))
                || i.id.contains(want.as_str())
        });
    }
    let opts = output::ImageListOptions {
        quiet: a.quiet,
        no_trunc: a.no_trunc,
        digests: a.digests,
        pinned: a.pinned,
        verbose: a.verbose,
    };
    output::print_images(&mut std::io::stdout().lock(), format, &images, &opts)?;
    Ok(())
}

/// `busybox` matches `docker.io/library/busybox:latest`, `localhost:5000/busybox`
/// matches every tag of that repository.
fn matches_ref(tag: &str, want: &str) -> bool {
    let repo = tag
        .rsplit_once(':')
        .filter(|(_, t)| !t.contains('/'))
        .map_or(tag, |(r, _)| r);
    tag == want
        || repo == want
        || tag.ends_with(&format!("/{want}"))
        || repo.ends_with(&format!("/{want}"))
}

pub async fn inspecti(ctx: &Ctx, a: InspectArgs) -> Result<()> {
    let format = output::OutputFormat::parse_or(&a.out.output, output::OutputFormat::Json)?;
    for given in &a.ids {
        let resp = ctx
            .client
            .image_status(pb::ImageStatusRequest {
                image: Some(pb::ImageSpec {
                    image: resolve::image_id(&ctx.client, given).await?,
                    ..Default::default()
                }),
                verbose: !a.quiet,
            })
            .await?;
        output::print_inspecti(&mut std::io::stdout().lock(), format, &resp)?;
    }
    Ok(())
}

pub async fn imagefsinfo(ctx: &Ctx, a: OutputArgs) -> Result<()> {
    let format = output::OutputFormat::parse_or(&a.output, output::OutputFormat::Json)?;
    let resp = ctx
        .client
        .image_fs_info(pb::ImageFsInfoRequest::default())
        .await?;
    output::print_imagefsinfo(&mut std::io::stdout().lock(), format, &resp)?;
    Ok(())
}

/// Credentials from `--creds user[:pass]`, `--auth base64` or
/// `--username/--password`, as crictl.
pub fn auth_config(
    creds: Option<&str>,
    auth: Option<&str>,
    username: Option<&str>,
    password: Option<&str>,
) -> Result<Option<pb::AuthConfig>> {
    let given = [creds.is_some(), auth.is_some(), username.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        bail!("give only one of --creds, --auth and --username");
    }
    if let Some(c) = creds {
        let (user, pass) = c.split_once(':').unwrap_or((c, ""));
        if user.is_empty() {
            bail!("--creds: empty user name; expected USERNAME[:PASSWORD]");
        }
        return Ok(Some(pb::AuthConfig {
            username: user.to_string(),
            password: pass.to_string(),
            ..Default::default()
        }));
    }
    if let Some(a) = auth {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(a.trim())
            .context("--auth: not valid base64")?;
        if !decoded.contains(&b':') {
            bail!("--auth: expected base64 of USERNAME:PASSWORD");
        }
        return Ok(Some(pb::AuthConfig {
            auth: a.trim().to_string(),
            ..Default::default()
        }));
    }
    if let Some(u) = username {
        return Ok(Some(pb::AuthConfig {
            username: u.to_string(),
            password: password.unwrap_or_default().to_string(),
            ..Default::default()
        }));
    }
    Ok(None)
}

pub async fn pull(ctx: &Ctx, a: PullArgs) -> Result<()> {
    let auth = auth_config(
        a.creds.as_deref(),
        a.auth.as_deref(),
        a.username.as_deref(),
        a.password.as_deref(),
    )?;
    let sandbox = match &a.pod_config {
        Some(p) => Some(read_config_file::<pb::PodSandboxConfig>(p)?),
        None => None,
    };
    let image_ref = pull_with(ctx, &a.image, auth, sandbox).await?;
    println!("Image is up to date for {image_ref}");
    Ok(())
}

/// Pulls `image`; on a terminal, shows a spinner with the elapsed time (CRI's
/// PullImage reports no progress of its own).
pub async fn pull_with(
    ctx: &Ctx,
    image: &str,
    auth: Option<pb::AuthConfig>,
    sandbox: Option<pb::PodSandboxConfig>,
) -> Result<String> {
    let req = pb::PullImageRequest {
        image: Some(pb::ImageSpec {
            image: image.to_string(),
            ..Default::default()
        }),
        auth,
        sandbox_config: sandbox,
    };
    let call = ctx.client.pull_image(req);
    let resp = if std::io::stderr().is_terminal() {
        let start = Instant::now();
        let mut call = std::pin::pin!(call);
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(120));
        let frames = ['|', '/', '-', '\\'];
        let mut n = 0usize;
        let result = loop {
            tokio::select! {
                r = &mut call => break r,
                _ = tick.tick() => {
                    n += 1;
                    eprint!("\r{} pulling {image} ({:.1}s)", frames[n % frames.len()], start.elapsed().as_secs_f64());
                    let _ = std::io::stderr().flush();
                }
            }
        };
        eprint!("\r\x1b[2K");
        result
    } else {
        call.await
    };
    let resp = resp.with_context(|| format!("pulling image {image}"))?;
    Ok(resp.image_ref)
}

pub async fn rmi(ctx: &Ctx, a: RmiArgs) -> Result<()> {
    let images = ctx
        .client
        .list_images(pb::ListImagesRequest::default())
        .await?
        .images;
    let pinned = pinned_ids(ctx, &images).await;
    let targets: Vec<String> = if a.prune {
        let used: HashSet<String> = ctx
            .client
            .list_containers(pb::ListContainersRequest::default())
            .await?
            .containers
            .into_iter()
            .map(|c| c.image_ref)
            .collect();
        images
            .iter()
            .filter(|i| !used.contains(&i.id) && !pinned.contains(&i.id))
            .map(|i| i.id.clone())
            .collect()
    } else if a.all {
        images
            .iter()
            .filter(|i| !pinned.contains(&i.id))
            .map(|i| i.id.clone())
            .collect()
    } else if a.ids.is_empty() {
        bail!("rmi: give at least one image, or --all / --prune");
    } else {
        let mut ids = Vec::new();
        for given in &a.ids {
            ids.push(resolve::image_id(&ctx.client, given).await?);
        }
        ids
    };
    for id in targets {
        let tags = images
            .iter()
            .find(|i| i.id == id)
            .map(|i| i.repo_tags.clone())
            .unwrap_or_default();
        ctx.client
            .remove_image(pb::RemoveImageRequest {
                image: Some(pb::ImageSpec {
                    image: id.clone(),
                    ..Default::default()
                }),
            })
            .await?;
        for t in tags {
            println!("Deleted: {t}");
        }
        if a.prune || a.all {
            println!("Deleted: {id}");
        }
    }
    Ok(())
}

/// Images that must survive `rmi --all/--prune`: those the runtime marks
/// pinned, plus its sandbox (pause) image, which containerd 1.6 does not mark.
async fn pinned_ids(ctx: &Ctx, images: &[pb::Image]) -> HashSet<String> {
    let mut pinned: HashSet<String> = images
        .iter()
        .filter(|i| i.pinned)
        .map(|i| i.id.clone())
        .collect();
    if let Ok(status) = ctx.client.status(pb::StatusRequest { verbose: true }).await
        && let Some(sandbox_image) = status
            .info
            .get("config")
            .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok())
            .and_then(|v| {
                v.get("sandboxImage")
                    .and_then(|s| s.as_str())
                    .map(str::to_string)
            })
    {
        for i in images {
            if i.repo_tags
                .iter()
                .any(|t| *t == sandbox_image || normalize(t) == normalize(&sandbox_image))
            {
                pinned.insert(i.id.clone());
            }
        }
    }
    pinned
}

/// `pause:3.6` and `docker.io/library/pause:3.6` name the same image; a
/// reference that doesn't parse is compared as written.
fn normalize(r: &str) -> String {
    api::ImageRef::parse(r).map_or_else(|_| r.to_string(), |r| r.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creds_and_auth() {
        let a = auth_config(Some("berth:pw:with:colons"), None, None, None)
            .unwrap()
            .unwrap();
        assert_eq!(
            (a.username.as_str(), a.password.as_str()),
            ("berth", "pw:with:colons")
        );
        let a = auth_config(None, Some("YmVydGg6cHc="), None, None)
            .unwrap()
            .unwrap();
        assert_eq!(a.auth, "YmVydGg6cHc=");
        assert!(
            auth_config(None, Some("!!"), None, None)
                .unwrap_err()
                .to_string()
                .contains("base64")
        );
        assert!(auth_config(Some(":pw"), None, None, None).is_err());
        assert!(auth_config(Some("a:b"), Some("YTpi"), None, None).is_err());
        assert!(auth_config(None, None, None, None).unwrap().is_none());
    }

    #[test]
    fn references() {
        assert!(matches_ref("docker.io/library/busybox:latest", "busybox"));
        assert!(matches_ref(
            "localhost:5000/busybox:latest",
            "localhost:5000/busybox"
        ));
        assert!(matches_ref(
            "localhost:5000/busybox:latest",
            "localhost:5000/busybox:latest"
        ));
        assert!(!matches_ref("localhost:5000/busybox:latest", "box"));
        assert_eq!(normalize("pause:3.6"), "docker.io/library/pause:3.6");
        assert_eq!(
            normalize("localhost:5000/pause:latest"),
            "localhost:5000/pause:latest"
        );
        assert_eq!(
            normalize("registry.k8s.io/pause:3.6"),
            "registry.k8s.io/pause:3.6"
        );
    }
}
