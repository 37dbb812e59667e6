//! Writes the OCI image layout directory (image-spec v1.0 `image-layout`).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::image::{
    ANNOTATION_REF_NAME, Arch, ConfigBuilder, Descriptor, DescriptorBuilder, ImageConfiguration,
    ImageConfigurationBuilder, ImageIndexBuilder, ImageManifestBuilder, MediaType,
    OciLayoutBuilder, Os, PlatformBuilder, RootFsBuilder, Sha256Digest,
};

use crate::layer::Layer;

/// Why the layout could not be written.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("ref name {0:?} is empty or contains whitespace")]
    BadRefName(String),
    #[error("building {what}: {source}")]
    Spec {
        what: &'static str,
        source: oci_spec::OciSpecError,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "refusing to replace {}: it exists but is neither empty nor an OCI layout (no oci-layout file)",
        .0.display()
    )]
    NotALayout(PathBuf),
}

/// The runtime settings stored in the image config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Written {
    /// `sha256:...` of the manifest; registries report the same digest
    /// after `skopeo copy`, since the manifest bytes are pushed unchanged.
    pub manifest_digest: String,
}

fn spec_err(what: &'static str) -> impl FnOnce(oci_spec::OciSpecError) -> LayoutError {
    move |source| LayoutError::Spec { what, source }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LayoutError {
    let path = path.to_path_buf();
    move |source| LayoutError::Io { path, source }
}

fn digest(hex: &str) -> Result<Sha256Digest, LayoutError> {
    hex.parse().map_err(spec_err("a sha256 digest"))
}

/// Writes a layout for one linux/amd64 image with `layer` into `out`,
/// tagged `ref_name`. The layout is assembled in a sibling temp directory
/// and renamed into place, so `out` is never left half-written; an existing
/// layout at `out` is replaced.
pub fn write_layout(
    out: &Path,
    ref_name: &str,
    config: &ImageConfig,
    layer: &Layer,
) -> Result<Written, LayoutError> {
    if ref_name.is_empty() || ref_name.chars().any(char::is_whitespace) {
        return Err(LayoutError::BadRefName(ref_name.to_owned()));
    }
    check_replaceable(out)?;

    let image_config = image_configuration(config, layer)?;
    let config_json = image_config
        .to_string()
        .map_err(spec_err("the image config"))?;
    let config_hex = crate::sha256_hex(config_json.as_bytes());

    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(
            MediaType::ImageConfig,
            config_json.len() as u64,
            digest(&config_hex)?,
        ))
        .layers(vec![Descriptor::new(
            MediaType::ImageLayerGzip,
            layer.blob.len() as u64,
            digest(&layer.digest)?,
        )])
        .build()
        .map_err(spec_err("the manifest"))?;
    let manifest_json = manifest.to_string().map_err(spec_err("the manifest"))?;
    let manifest_hex = crate::sha256_hex(manifest_json.as_bytes());

    let platform = PlatformBuilder::default()
        .architecture(Arch::Amd64)
        .os(Os::Linux)
        .build()
        .map_err(spec_err("the platform"))?;
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![
            DescriptorBuilder::default()
                .media_type(MediaType::ImageManifest)
                .size(manifest_json.len() as u64)
                .digest(digest(&manifest_hex)?)
                .platform(platform)
                .annotations(HashMap::from([(
                    ANNOTATION_REF_NAME.to_owned(),
                    ref_name.to_owned(),
                )]))
                .build()
                .map_err(spec_err("the index entry"))?,
        ])
        .build()
        .map_err(spec_err("the index"))?;
    let layout = OciLayoutBuilder::default()
        .image_layout_version("1.0.0")
        .build()
        .map_err(spec_err("oci-layout"))?;

    let tmp = sibling(out, &format!(".tmp-{}", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
    }
    let blobs = tmp.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
    let write = |path: PathBuf, data: &[u8]| fs::write(&path, data).map_err(io_err(&path));
    write(blobs.join(&layer.digest), &layer.blob)?;
    write(blobs.join(&config_hex), config_json.as_bytes())?;
    write(blobs.join(&manifest_hex), manifest_json.as_bytes())?;
    let index_json = index.to_string().map_err(spec_err("the index"))?;
    write(tmp.join("index.json"), index_json.as_bytes())?;
    let layout_json = layout.to_string().map_err(spec_err("oci-layout"))?;
    write(tmp.join("oci-layout"), layout_json.as_bytes())?;

    if out.exists() {
        fs::remove_dir_all(out).map_err(io_err(out))?;
    }
    fs::rename(&tmp, out).map_err(io_err(out))?;
    Ok(Written {
        manifest_digest: format!("sha256:{manifest_hex}"),
    })
}

fn image_configuration(
    config: &ImageConfig,
    layer: &Layer,
) -> Result<ImageConfiguration, LayoutError> {
    let mut runtime = ConfigBuilder::default();
    if !config.entrypoint.is_empty() {
        runtime = runtime.entrypoint(config.entrypoint.clone());
    }
    if !config.cmd.is_empty() {
        runtime = runtime.cmd(config.cmd.clone());
    }
    if !config.env.is_empty() {
        runtime = runtime.env(config.env.clone());
    }
    if let Some(dir) = &config.workdir {
        runtime = runtime.working_dir(dir.clone());
    }
    if let Some(user) = &config.user {
        runtime = runtime.user(user.clone());
    }
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(vec![format!("sha256:{}", layer.diff_id)])
        .build()
        .map_err(spec_err("the rootfs"))?;
    // No `created` time: it would change the digest on every build.
    ImageConfigurationBuilder::default()
        .architecture(Arch::Amd64)
        .os(Os::Linux)
        .config(runtime.build().map_err(spec_err("the runtime config"))?)
        .rootfs(rootfs)
        .build()
        .map_err(spec_err("the image config"))
}

/// `out` may be replaced only if it is missing, empty, or a layout we (or
/// another tool) wrote; anything else is probably a mistyped `--out`.
fn check_replaceable(out: &Path) -> Result<(), LayoutError> {
    match fs::read_dir(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(out)(e)),
        Ok(mut it) => {
            if it.next().is_none() || out.join("oci-layout").is_file() {
                Ok(())
            } else {
                Err(LayoutError::NotALayout(out.to_path_buf()))
            }
        }
    }
}

/// `out` with `suffix` appended to its last component.
fn sibling(out: &Path, suffix: &str) -> PathBuf {
    let mut name = out
        .file_name()
        .map(std::ffi::OsStr::to_os_string)
        .unwrap_or_else(|| "oci-layout".into());
    name.push(suffix);
    out.with_file_name(name)
}
