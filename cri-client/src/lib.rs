//! A typed async client for the Kubernetes Container Runtime Interface (v1).
//!
//! The kubelet and `berthctl` reach the runtime only through this crate:
//! no caller builds gRPC requests inline.
//!
//! - [`endpoint`]: parse `unix:///path` endpoints and pick a default one.
//! - [`client`]: [`RuntimeClient`], every RuntimeService and ImageService RPC.
//! - [`stream`]: the WebSocket channel protocol behind Exec, Attach and PortForward URLs.
//! - [`logs`]: the CRI container log format (`<time> <stream> <P|F> <msg>`).
//! - [`trace`]: a CRI proxy that forwards every call and reports it.

pub mod client;
pub mod containerd_events;
pub mod endpoint;
pub mod error;
pub mod logs;
pub mod stream;
pub mod trace;

pub use client::{CallObserver, RuntimeClient};
pub use cri_proto as proto;
pub use error::{Error, Result};
