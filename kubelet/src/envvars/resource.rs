//! `resourceFieldRef`: a container's requests and limits as the downward API
//! shows them (Go's `ExtractContainerResourceValue` and
//! `defaultPodLimitsForDownwardAPI`).
//!
//! The value is the quantity divided by the divisor, rounded up to a whole
//! number, computed exactly in nano-units. A limit the container leaves
//! unset (or at zero) reads as the pod-level limit when the pod sets one,
//! else as the node's allocatable; hugepages are never defaulted.

use std::collections::BTreeMap;

use api::Quantity;
use k8s_openapi::api::core::v1::{Container, Pod, ResourceFieldSelector};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use super::EnvError;

const NANOS_PER_UNIT: i128 = 1_000_000_000;

/// Requests or limits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Requests,
    Limits,
}

/// The resources the downward API exposes; `hugepages-<size>` aside, the
/// rest are refused as Go refuses them.
fn parse_resource(resource: &str) -> Option<(Side, &str)> {
    let (side, name) = if let Some(n) = resource.strip_prefix("requests.") {
        (Side::Requests, n)
    } else if let Some(n) = resource.strip_prefix("limits.") {
        (Side::Limits, n)
    } else {
        return None;
    };
    let known =
        matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-");
    known.then_some((side, name))
}

/// The container a selector reads: the named one (regular containers
/// first, then init containers) or, without a name, the one being started.
fn target_container<'a>(
    pod: &'a Pod,
    container: &'a Container,
    name: Option<&str>,
) -> Result<&'a Container, EnvError> {
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return Ok(container);
    };
    let spec = pod.spec.as_ref();
    spec.into_iter()
        .flat_map(|s| s.containers.iter())
        .chain(
            spec.into_iter()
                .flat_map(|s| s.init_containers.iter().flatten()),
        )
        .find(|c| c.name == name)
        .ok_or_else(|| EnvError::ContainerNotFound {
            name: name.to_string(),
        })
}

fn parse_nanos(var: &str, field: &str, q: &ApiQuantity) -> Result<i128, EnvError> {
    Quantity::parse(&q.0)
        .map(|q| q.as_nanos())
        .map_err(|source| EnvError::InvalidQuantity {
            name: var.to_string(),
            field: field.to_string(),
            value: q.0.clone(),
            source,
        })
}

/// `ceil(value / divisor)`, both in nano-units, as Go renders it: 0 for a
/// value or divisor that is not positive, capped at `i64::MAX`.
pub(super) fn ceil_ratio(value: i128, divisor: i128) -> i64 {
    if value <= 0 || divisor <= 0 {
        return 0;
    }
    // Both are at most about 9.2e27 (Quantity's cap), so the sum cannot
    // overflow an i128.
    let ratio = (value + divisor - 1) / divisor;
    i64::try_from(ratio).unwrap_or(i64::MAX)
}

/// The value of a `resourceFieldRef` for the variable `var` of
/// `container`. `node_allocatable` holds nano-units by resource name.
pub fn resource_field_value(
    pod: &Pod,
    container: &Container,
    selector: &ResourceFieldSelector,
    node_allocatable: Option<&BTreeMap<String, i128>>,
    var: &str,
) -> Result<String, EnvError> {
    let target = target_container(pod, container, selector.container_name.as_deref())?;
    let (side, resource) =
        parse_resource(&selector.resource).ok_or_else(|| EnvError::UnsupportedResource {
            resource: selector.resource.clone(),
        })?;

    let divisor = match &selector.divisor {
        Some(d) => parse_nanos(var, "divisor", d)?,
        None => 0,
    };
    // A zero (or absent) divisor means 1.
    let divisor = if divisor == 0 {
        NANOS_PER_UNIT
    } else {
        divisor
    };

    let resources = target.resources.as_ref();
    let list = match side {
        Side::Requests => resources.and_then(|r| r.requests.as_ref()),
        Side::Limits => resources.and_then(|r| r.limits.as_ref()),
    };
    let field = format!("{}[{resource}]", selector.resource);
    let mut value = match list.and_then(|l| l.get(resource)) {
        Some(q) => parse_nanos(var, &field, q)?,
        None => 0,
    };
    if side == Side::Limits
        && value == 0
        && matches!(resource, "cpu" | "memory" | "ephemeral-storage")
    {
        value = default_limit(pod, resource, node_allocatable, var)?;
    }
    Ok(ceil_ratio(value, divisor).to_string())
}

/// An unset limit: the node's allocatable, replaced by the pod-level limit
/// (cpu and memory only) when the pod sets one and the node reports the
/// resource.
fn default_limit(
    pod: &Pod,
    resource: &str,
    node_allocatable: Option<&BTreeMap<String, i128>>,
    var: &str,
) -> Result<i128, EnvError> {
    let Some(allocatable) = node_allocatable.and_then(|a| a.get(resource)).copied() else {
        return Ok(0);
    };
    if matches!(resource, "cpu" | "memory")
        && let Some(q) = pod
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get(resource))
    {
        let pod_limit = parse_nanos(var, &format!("spec.resources.limits[{resource}]"), q)?;
        if pod_limit != 0 {
            return Ok(pod_limit);
        }
    }
    Ok(allocatable)
}
