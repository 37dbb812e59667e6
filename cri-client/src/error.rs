//! The crate's error type. Each module with failures of its own defines its
//! own error enum, wrapped here with `#[from]`.

/// Convenience alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a CRI client call can fail with, phrased so a user can act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Endpoint(#[from] crate::endpoint::EndpointError),
    #[error(transparent)]
    Logs(#[from] crate::logs::LogError),
    #[error(transparent)]
    Stream(#[from] crate::stream::StreamError),
}
