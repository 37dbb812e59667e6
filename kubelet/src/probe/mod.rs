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

/// Why a probe's or hook's port can't be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("port {name:?} not found in the ports of container {container:?}")]
    NotFound { name: String, container: String },
    #[error("invalid port number: {0}")]
    Invalid(i64),
}

/// A probe's port: a number, or the name of one of the container's ports
/// (Go's ResolveContainerPort, including its fallback to a number written
/// as a string).
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, PortError> {
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
                None => name.parse::<i64>().map_err(|_| PortError::NotFound {
                    name: name.clone(),
                    container: container.name.clone(),
                })?,
            }
        }
    };
    u16::try_from(n)
        .ok()
        .filter(|&p| p > 0)
        .ok_or(PortError::Invalid(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_errors_name_the_port_and_container() {
        let c = Container {
            name: "web".into(),
            ..Default::default()
        };
        let err = |p| resolve_port(&p, &c).unwrap_err().to_string();
        assert_eq!(
            err(IntOrString::String("nope".into())),
            "port \"nope\" not found in the ports of container \"web\""
        );
        assert_eq!(err(IntOrString::Int(70000)), "invalid port number: 70000");
        assert_eq!(
            err(IntOrString::String("0".into())),
            "invalid port number: 0"
        );
        assert_eq!(resolve_port(&IntOrString::String("81".into()), &c), Ok(81));
    }
}
