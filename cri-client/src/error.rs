//! The crate's error type. Modules with failures of their own define their
//! own error enum, wrapped here with `#[from]`.

use std::time::Duration;

/// Convenience alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a CRI client call can fail with, phrased so a user can act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Endpoint(#[from] crate::endpoint::EndpointError),
    /// The runtime answered with an error status.
    #[error("{method}: {message} ({code:?})")]
    Rpc {
        method: &'static str,
        code: tonic::Code,
        message: String,
    },
    #[error("runtime {runtime} does not implement {method}")]
    Unimplemented {
        method: &'static str,
        runtime: String,
    },
    #[error("{method} timed out after {timeout:?}")]
    Timeout {
        method: &'static str,
        timeout: Duration,
    },
    #[error("{method}: runtime at {endpoint} is unavailable: {message}")]
    Unavailable {
        method: &'static str,
        endpoint: String,
        message: String,
    },
    #[error(transparent)]
    Logs(#[from] crate::logs::LogError),
    #[error(transparent)]
    Stream(#[from] crate::stream::StreamError),
}

impl Error {
    /// The gRPC status code behind this error, if it came from a call.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            Error::Rpc { code, .. } => Some(*code),
            Error::Unimplemented { .. } => Some(tonic::Code::Unimplemented),
            Error::Timeout { .. } => Some(tonic::Code::DeadlineExceeded),
            Error::Unavailable { .. } => Some(tonic::Code::Unavailable),
            _ => None,
        }
    }

    /// True when the runtime said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        self.code() == Some(tonic::Code::NotFound)
    }
}
