//! The Node object's status, one setter per part, as the Go kubelet's
//! `pkg/kubelet/nodestatus`: machine info (capacity and allocatable),
//! addresses, version info, daemon endpoints, images and the four
//! conditions. The setters are pure: they take the node and their inputs and
//! change only their part, so each is tested on its own;
//! [`crate::kubelet_node_status`] reads the inputs and sends the result.

pub mod labels;
pub mod machine;
pub mod patch;
pub mod runtime_state;
pub mod setters;

pub use labels::{parse_node_labels, parse_taints, validate_node_labels};
pub use machine::{MachineFacts, SystemInfo};
pub use runtime_state::{RuntimeCondition, RuntimeConditions, RuntimeState};
pub use setters::RuntimeImage;

/// Why the node's configuration or status can't be built.
#[derive(Debug, thiserror::Error)]
pub enum NodeStatusError {
    #[error("--node-labels: label {label:?}: {reason}")]
    NodeLabel { label: String, reason: String },
    #[error("registerWithTaints: taint {taint:?}: {reason}")]
    Taint { taint: String, reason: String },
    #[error("node allocatable: {0}")]
    Allocatable(#[from] crate::cm::CmError),
    #[error("node address: {0}")]
    Address(String),
}
