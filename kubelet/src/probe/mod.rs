//! The probe library (the Go kubelet's `pkg/probe`): one attempt of an exec,
//! httpGet, tcpSocket or grpc check. The prober's workers and the lifecycle
//! hooks' handler runner both use it.

pub mod exec;
pub mod grpc;
pub mod http;
pub mod tcp;

use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Probe output kept at most (Go reads at most 10 KiB of a body or of an
/// exec probe's output).
pub const MAX_OUTPUT: usize = 10 * 1024;

/// What one probe attempt found (Go's probe.Result with its output).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success(String),
    /// Counted as success; Go warns, e.g. a redirect to another host.
    Warning(String),
    Failure(String),
}

/// A probe's port: a number, or the name of one of the container's ports
/// (Go's ResolveContainerPort, including its fallback to a number written
/// as a string).
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    let n = match port {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(name) => {
            match container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
            {
                Some(p) => i64::from(p.container_port),
                None => name.parse::<i64>().map_err(|_| {
                    format!(
                        "port {name:?} not found in the ports of container {:?}",
                        container.name
                    )
                })?,
            }
        }
    };
    u16::try_from(n)
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| format!("invalid port number: {n}"))
}
