//! Error types shared by the crate's modules.

use std::path::{Path, PathBuf};

pub use api::FieldError;

/// Crate result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Root error of the crate; each module's error converts into it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// A [`crate::Config`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("node name is empty")]
    EmptyNodeName,
    #[error(
        "node name {0:?} is not a valid RFC 1123 subdomain (static pod names get it as a suffix)"
    )]
    InvalidNodeName(String),
    #[error("file check frequency must be greater than zero")]
    ZeroFileCheckFrequency,
    #[error("max file size must be greater than zero")]
    ZeroMaxFileSize,
}

/// Why one manifest file produced no (new) pod.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestErrorKind {
    #[error("cannot read file: {0}")]
    Read(String),
    #[error("not a regular file")]
    NotRegularFile,
    #[error("file is larger than the {limit}-byte limit ({size} bytes); refusing to read it")]
    TooLarge { size: u64, limit: u64 },
    #[error("file is empty")]
    Empty,
    #[error("file is not valid UTF-8: {0}")]
    NotUtf8(String),
    #[error("invalid YAML: {0}")]
    Yaml(String),
    #[error("invalid JSON: {0}")]
    Json(String),
    /// Only from [`crate::load_manifest`], which reads exactly one Pod; the directory source
    /// reads every document of a file.
    #[error("file holds more than one document; expected exactly one Pod")]
    MultipleDocuments,
    #[error("file holds more than {limit} documents; refusing to read it")]
    TooManyDocuments { limit: usize },
    #[error("apiVersion: {0}")]
    ApiVersion(String),
    #[error("kind: {0}")]
    Kind(String),
    /// Validation failures; all of them, not just the first.
    #[error("{}", api::InvalidPod(.0.clone()))]
    Invalid(Vec<FieldError>),
    #[error("pod {pod:?} is already defined by {}", .other.display())]
    DuplicatePod { pod: String, other: PathBuf },
    /// A ConfigMap or Secret whose kind, namespace and name another document already took.
    #[error("{kind} {name:?} is already defined by {}", .other.display())]
    DuplicateObject {
        /// "configmap" or "secret".
        kind: &'static str,
        /// `namespace/name`.
        name: String,
        other: PathBuf,
    },
}

/// An error tied to the manifest file, and in a file of several documents to the document,
/// it came from.
///
/// Displays as `<path>: <why>`, e.g. `web.yaml: spec.containers[1].name: duplicate name "c"`,
/// or `<path>: document <n>: <why>` when the file holds more than one document.
///
/// Never carries a Secret's values: the messages name keys and fields only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}{kind}", .path.display(), DocumentPrefix(*.document))]
pub struct ManifestError {
    pub path: PathBuf,
    /// 1-based position among the file's documents (empty ones not counted); None for a
    /// problem of the whole file, or when the file holds a single document.
    pub document: Option<usize>,
    pub kind: ManifestErrorKind,
}

struct DocumentPrefix(Option<usize>);

impl std::fmt::Display for DocumentPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(n) => write!(f, "document {n}: "),
            None => Ok(()),
        }
    }
}

impl ManifestError {
    pub fn new(path: &Path, kind: ManifestErrorKind) -> Self {
        Self {
            path: path.to_path_buf(),
            document: None,
            kind,
        }
    }

    /// The same error, tied to one document of the file.
    #[must_use]
    pub fn in_document(mut self, document: Option<usize>) -> Self {
        self.document = document;
        self
    }

    /// The field errors when this is a validation failure, else empty.
    pub fn field_errors(&self) -> &[FieldError] {
        match &self.kind {
            ManifestErrorKind::Invalid(errors) => errors,
            _ => &[],
        }
    }
}
