//! Builds small, reproducible, single-layer OCI image layouts.
//!
//! Berth's tests cannot pull from Docker Hub, so the test environment
//! assembles its own images (`pause`, `busybox`) from files on the host.
//! The output is an OCI image layout directory (`oci-layout`, `index.json`,
//! `blobs/sha256/...`) that `skopeo copy oci:DIR:REF ...` can push.
//!
//! Everything that would vary between runs is pinned (mtime 0, uid/gid 0,
//! entries sorted, gzip header without a timestamp, no `created` field), so
//! building the same inputs twice yields the same manifest digest and a
//! second push is a no-op.

pub mod entry;
pub mod layer;
pub mod layout;

pub use entry::{Entry, EntryError, EntryKind};
pub use layer::{Layer, LayerError, build_layer};
pub use layout::{ImageConfig, LayoutError, Written, write_layout};

/// Any failure while building an image layout.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Entry(#[from] EntryError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Lower-case hex SHA-256 of `data`.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    format!("{:x}", sha2::Sha256::digest(data))
}

#[cfg(test)]
mod tests;
