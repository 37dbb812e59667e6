//! The kubelet's view of the container runtime (the Go kubelet's
//! `pkg/kubelet/container`): the runtime pod types, the [`Runtime`] seam the
//! kubelet drives, and the [`PodCache`] that PLEG fills.

pub mod cache;
pub mod runtime;
pub mod runtime_pod;

pub use cache::PodCache;
pub use runtime::{Runtime, RuntimeHelper};
pub use runtime_pod::{ContainerState, ContainerStateKind, RuntimePod, SandboxState};
