//! Images: reference normalization as containerd does it, the image record,
//! and the `ImageService`.

use std::pin::Pin;
use std::sync::Arc;

use cri_proto::v1 as pb;
use cri_proto::v1::image_service_server::ImageService;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::model::mix;
use super::shared::Shared;

/// One image the fake can pull.
#[derive(Clone, Debug)]
pub(super) struct Image {
    /// The normalized reference, `docker.io/library/busybox:latest`.
    pub name: String,
    /// `sha256:<64 hex>`, what PullImage answers and `image_id` carries.
    pub id: String,
    /// `<repository>@sha256:<64 hex>`.
    pub digest_ref: String,
    pub size: u64,
}

impl Image {
    pub fn new(reference: &str) -> Self {
        let name = normalize(reference);
        let id = format!("sha256:{}", hex_of(&name, 1));
        let digest_ref = format!("{}@sha256:{}", repository(&name), hex_of(&name, 2));
        Image {
            name,
            id,
            digest_ref,
            size: 1_000_000,
        }
    }

    /// True when `reference` (a name, the id, a unique id prefix without
    /// `sha256:`, or the digest reference) is this image.
    pub fn answers_to(&self, reference: &str) -> bool {
        if reference.is_empty() {
            return false;
        }
        let hex = self.id.trim_start_matches("sha256:");
        reference == self.id
            || (reference.len() >= 12 && hex.starts_with(reference))
            || reference == self.digest_ref
            || normalize(reference) == self.name
    }

    pub fn to_proto(&self) -> pb::Image {
        pb::Image {
            id: self.id.clone(),
            repo_tags: vec![self.name.clone()],
            repo_digests: vec![self.digest_ref.clone()],
            size: self.size,
            uid: None,
            username: String::new(),
            spec: Some(pb::ImageSpec {
                image: self.id.clone(),
                ..Default::default()
            }),
            pinned: false,
        }
    }
}

/// 64 hex characters derived from `name`, stable across runs.
fn hex_of(name: &str, salt: u64) -> String {
    // FNV-1a, then splitmix to spread it over 256 bits.
    let seed = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64 ^ salt, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (1..=4u64)
        .map(|i| {
            format!(
                "{:016x}",
                mix(seed.wrapping_add(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
            )
        })
        .collect()
}

/// `busybox` -> `docker.io/library/busybox:latest`;
/// `localhost:5000/busybox` -> `localhost:5000/busybox:latest`.
/// Digest references keep their digest and get no tag.
pub(super) fn normalize(reference: &str) -> String {
    let r = reference.trim();
    if r.is_empty() {
        return String::new();
    }
    let (first, _) = r.split_once('/').unwrap_or((r, ""));
    let has_domain =
        r.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let full = if has_domain {
        r.to_string()
    } else if r.contains('/') {
        format!("docker.io/{r}")
    } else {
        format!("docker.io/library/{r}")
    };
    let last = full.rsplit('/').next().unwrap_or("");
    if full.contains('@') || last.contains(':') {
        full
    } else {
        format!("{full}:latest")
    }
}

/// The repository of a normalized reference, without tag or digest.
fn repository(name: &str) -> &str {
    let no_digest = name.split('@').next().unwrap_or(name);
    match no_digest.rfind(':') {
        Some(i) if !no_digest[i..].contains('/') => &no_digest[..i],
        _ => no_digest,
    }
}

/// True when a test's pattern names this image reference: equal once both
/// are normalized, or the repository's last path component (`busybox` for
/// `localhost:5000/busybox:latest`).
pub(super) fn matches(pattern: &str, reference: &str) -> bool {
    if pattern.is_empty() || reference.is_empty() {
        return false;
    }
    let name = normalize(reference);
    normalize(pattern) == name || repository(&name).rsplit('/').next() == Some(pattern)
}

pub(super) fn usage(timestamp: i64, bytes: u64, inodes: u64) -> pb::FilesystemUsage {
    pb::FilesystemUsage {
        timestamp,
        fs_id: Some(pb::FilesystemIdentifier {
            mountpoint: "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs".into(),
        }),
        used_bytes: Some(pb::UInt64Value { value: bytes }),
        inodes_used: Some(pb::UInt64Value { value: inodes }),
    }
}

fn spec_ref(spec: Option<&pb::ImageSpec>) -> String {
    spec.map(|s| s.image.clone()).unwrap_or_default()
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The `ImageService` half of the fake.
#[derive(Clone)]
pub(super) struct Images(pub Arc<Shared>);

impl Images {
    async fn pull(&self, reference: String) -> Result<pb::PullImageResponse, Status> {
        let name = normalize(&reference);
        let delay = {
            let w = self.0.world();
            if !w.model.known_images.contains_key(&name) {
                return Err(Status::not_found(format!(
                    "failed to pull and unpack image {name:?}: failed to resolve reference {name:?}: {name}: not found"
                )));
            }
            w.script.pull_delay(&name)
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut changed = self.0.subscribe();
        while self.0.world().script.pull_held(&name) {
            if changed.changed().await.is_err() {
                break;
            }
        }
        self.0.update(|w| {
            let image = w.model.known_images.get(&name).cloned();
            match image {
                Some(image) => {
                    w.model.present.insert(name.clone());
                    Ok(pb::PullImageResponse { image_ref: image.id })
                }
                None => Err(Status::not_found(format!(
                    "failed to pull and unpack image {name:?}: failed to resolve reference {name:?}: {name}: not found"
                ))),
            }
        })
    }
}

#[tonic::async_trait]
impl ImageService for Images {
    async fn list_images(
        &self,
        _request: Request<pb::ListImagesRequest>,
    ) -> Result<Response<pb::ListImagesResponse>, Status> {
        // containerd ignores the filter; so does the fake.
        self.0
            .call("ListImages", "", String::new(), async {
                let w = self.0.world();
                let images = w
                    .model
                    .known_images
                    .values()
                    .filter(|i| w.model.present.contains(&i.name))
                    .map(Image::to_proto)
                    .collect();
                Ok(pb::ListImagesResponse { images })
            })
            .await
    }

    async fn image_status(
        &self,
        request: Request<pb::ImageStatusRequest>,
    ) -> Result<Response<pb::ImageStatusResponse>, Status> {
        let reference = spec_ref(request.get_ref().image.as_ref());
        self.0
            .call("ImageStatus", &reference, String::new(), async {
                let w = self.0.world();
                let image = w.model.local_image(&reference).map(Image::to_proto);
                Ok(pb::ImageStatusResponse {
                    image,
                    info: Default::default(),
                })
            })
            .await
    }

    async fn pull_image(
        &self,
        request: Request<pb::PullImageRequest>,
    ) -> Result<Response<pb::PullImageResponse>, Status> {
        let reference = spec_ref(request.get_ref().image.as_ref());
        self.0
            .call(
                "PullImage",
                &reference,
                String::new(),
                self.pull(reference.clone()),
            )
            .await
    }

    async fn remove_image(
        &self,
        request: Request<pb::RemoveImageRequest>,
    ) -> Result<Response<pb::RemoveImageResponse>, Status> {
        let reference = spec_ref(request.get_ref().image.as_ref());
        self.0
            .call("RemoveImage", &reference, String::new(), async {
                // An image that is not there is already removed.
                self.0.update(|w| {
                    if let Some(name) = w.model.local_image(&reference).map(|i| i.name.clone()) {
                        w.model.present.remove(&name);
                    }
                });
                Ok(pb::RemoveImageResponse {})
            })
            .await
    }

    async fn image_fs_info(
        &self,
        _request: Request<pb::ImageFsInfoRequest>,
    ) -> Result<Response<pb::ImageFsInfoResponse>, Status> {
        self.0
            .call("ImageFsInfo", "", String::new(), async {
                let mut w = self.0.world();
                let (bytes, count) = w
                    .model
                    .known_images
                    .values()
                    .filter(|i| w.model.present.contains(&i.name))
                    .fold((0, 0), |(b, n), i| (b + i.size, n + 1));
                let now = w.model.now();
                Ok(pb::ImageFsInfoResponse {
                    image_filesystems: vec![usage(now, bytes, count * 16)],
                    container_filesystems: Vec::new(),
                })
            })
            .await
    }

    type StreamImagesStream = BoxStream<pb::StreamImagesResponse>;

    async fn stream_images(
        &self,
        _request: Request<pb::StreamImagesRequest>,
    ) -> Result<Response<Self::StreamImagesStream>, Status> {
        self.0
            .call("StreamImages", "", String::new(), async {
                Err(Status::unimplemented("unknown method StreamImages"))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_normalize_like_containerd() {
        assert_eq!(normalize("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(
            normalize("library/busybox:1.36"),
            "docker.io/library/busybox:1.36"
        );
        assert_eq!(
            normalize("localhost:5000/busybox"),
            "localhost:5000/busybox:latest"
        );
        assert_eq!(normalize("quay.io/a/b:v1"), "quay.io/a/b:v1");
        assert_eq!(normalize("a/b@sha256:00"), "docker.io/a/b@sha256:00");
        assert_eq!(
            repository("localhost:5000/busybox:latest"),
            "localhost:5000/busybox"
        );
        assert_eq!(
            repository("localhost:5000/busybox"),
            "localhost:5000/busybox"
        );
    }

    #[test]
    fn patterns_match_short_names_and_full_references() {
        assert!(matches("busybox", "localhost:5000/busybox:latest"));
        assert!(matches("busybox", "busybox"));
        assert!(matches(
            "localhost:5000/busybox",
            "localhost:5000/busybox:latest"
        ));
        assert!(!matches("busy", "localhost:5000/busybox:latest"));
        assert!(!matches("pause", "localhost:5000/busybox:latest"));
        let img = Image::new("localhost:5000/busybox:latest");
        assert!(img.answers_to(&img.id));
        assert!(img.answers_to(&img.digest_ref));
        assert!(img.answers_to("localhost:5000/busybox"));
        assert!(!img.answers_to("busybox"));
        assert_ne!(img.id, Image::new("busybox").id);
    }
}
