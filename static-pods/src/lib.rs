//! The static pod source of the `berth` kubelet: watches a manifest directory
//! (`--pod-manifest-path` / `staticPodPath`) and publishes the desired set of static pods,
//! with the ConfigMaps and Secrets written beside them (which the Go kubelet cannot do:
//! its static pods may not reference API objects).
//!
//! A file holds one object or, in YAML, several documents separated by `---`, mixing
//! Pods, ConfigMaps and Secrets.
//!
//! Mirrors the Go kubelet's `pkg/kubelet/config/file.go`, `file_linux.go` and `common.go`,
//! with the departures noted where they happen (e.g. an invalid edit keeps the last valid pod).
//! The API defaulting and validation a manifest goes through are the `berth-api` crate's.
//!
//! ```no_run
//! # async fn demo() -> static_pods::Result<()> {
//! use static_pods::{Config, StaticPodSource};
//!
//! let source = StaticPodSource::new(Config::new("/etc/kubernetes/manifests", "node1"))?;
//! let (mut snapshots, _task) = source.spawn();
//! while snapshots.changed().await.is_ok() {
//!     let snapshot = snapshots.borrow_and_update().clone();
//!     for pod in &snapshot.pods {
//!         println!("{} {} from {}", pod.full_name(), pod.uid(), pod.path.display());
//!     }
//! }
//! # Ok(())
//! # }
//! ```

pub mod error;
pub mod identity;
pub mod manifest;
pub mod objects;
pub mod source;

#[cfg(test)]
mod manifest_validation_tests;
#[cfg(test)]
mod objects_tests;

pub use error::{ConfigError, Error, FieldError, ManifestError, ManifestErrorKind, Result};
pub use manifest::{
    DEFAULT_MAX_FILE_SIZE, DocumentResult, MAX_DOCUMENTS, ManifestObject, load_documents,
    load_manifest, load_manifest_with_limit,
};
pub use objects::{MAX_DATA_SIZE, RedactedSecret};
pub use source::{Config, DEFAULT_FILE_CHECK_FREQUENCY, Snapshot, StaticPod, StaticPodSource};
