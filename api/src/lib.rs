//! The parts of the Kubernetes API that berth's crates share: resource quantities, image
//! references, and the defaulting and validation of pods.
//!
//! The static pod source defaults and validates pods read from files with this crate; the
//! kubelet parses quantities and image references with it, and can validate pods from the
//! apiserver with the same code.
//!
//! ```
//! use api::{ImageRef, Quantity};
//!
//! let image = ImageRef::parse("busybox").unwrap();
//! assert_eq!(image.to_string(), "docker.io/library/busybox");
//! assert_eq!(image.with_default_tag(), "busybox:latest");
//! assert!(Quantity::parse("1Gi").unwrap() > Quantity::parse("1G").unwrap());
//! ```

pub mod defaults;
pub mod image;
pub mod names;
pub mod quantity;
pub mod validation;

pub use defaults::apply_api_defaults;
pub use image::{ImageRef, ImageRefError};
pub use names::NameError;
pub use quantity::{Quantity, QuantityError};
pub use validation::{FieldError, InvalidPod, check_pod, validate_pod};

/// Crate result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Root error of the crate; each module's error converts into it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Quantity(#[from] QuantityError),
    #[error(transparent)]
    ImageRef(#[from] ImageRefError),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    InvalidPod(#[from] InvalidPod),
}
