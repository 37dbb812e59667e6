//! `oci-image`: writes a reproducible single-layer OCI image layout.
//!
//! Example (the busybox test image):
//! ```text
//! oci-image --out /tmp/bb --file /bin/busybox:/bin/busybox:0755 \
//!     --symlink busybox:/bin/sh --dir /tmp:1777 --cmd sh
//! skopeo copy oci:/tmp/bb:latest docker://localhost:5000/busybox:latest
//! ```

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use oci_image::{Entry, ImageConfig, build_layer, write_layout};

/// Write an OCI image layout (oci-layout, index.json, blobs/sha256) holding
/// one gzip layer built from the given entries. Missing parent directories
/// are added with mode 0755; every entry is owned by 0:0 with mtime 0.
/// Prints the manifest digest.
#[derive(Debug, Parser)]
#[command(name = "oci-image", version)]
struct Cli {
    /// Output directory (created, or replaced if it already holds a layout).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Tag stored as org.opencontainers.image.ref.name in index.json.
    #[arg(long, default_value = "latest", value_name = "NAME")]
    ref_name: String,
    /// Copy a host file: HOST_SRC:/container/path[:octal-mode]. Without a
    /// mode the host file's permissions are kept. Repeatable.
    #[arg(long, value_name = "SPEC")]
    file: Vec<String>,
    /// Add a symlink: TARGET:/link/path. Repeatable.
    #[arg(long, value_name = "SPEC")]
    symlink: Vec<String>,
    /// Add a directory: /path[:octal-mode] (default 0755). Repeatable.
    #[arg(long, value_name = "SPEC")]
    dir: Vec<String>,
    /// One entrypoint argument; repeat for more (`--entrypoint=-c` for
    /// values starting with '-').
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    entrypoint: Vec<String>,
    /// One cmd argument; repeat for more.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    cmd: Vec<String>,
    /// An environment variable, KEY=VALUE. Repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Working directory of the image's processes.
    #[arg(long, value_name = "DIR")]
    workdir: Option<String>,
    /// User (name or uid[:gid]) the image's processes run as.
    #[arg(long, value_name = "USER")]
    user: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    for kv in &cli.env {
        if !kv.contains('=') || kv.starts_with('=') {
            anyhow::bail!("--env {kv:?}: expected KEY=VALUE");
        }
    }
    let mut entries = Vec::new();
    for spec in &cli.file {
        entries.push(Entry::parse_file(spec)?);
    }
    for spec in &cli.symlink {
        entries.push(Entry::parse_symlink(spec)?);
    }
    for spec in &cli.dir {
        entries.push(Entry::parse_dir(spec)?);
    }
    let layer = build_layer(&entries).context("building the layer")?;
    let config = ImageConfig {
        entrypoint: cli.entrypoint,
        cmd: cli.cmd,
        env: cli.env,
        workdir: cli.workdir,
        user: cli.user,
    };
    let written = write_layout(&cli.out, &cli.ref_name, &config, &layer)
        .with_context(|| format!("writing the layout to {}", cli.out.display()))?;
    println!("{}", written.manifest_digest);
    Ok(())
}
