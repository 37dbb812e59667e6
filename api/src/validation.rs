//! The subset of the apiserver's Pod validation that covers fields the kubelet acts on.
//!
//! Runs on the defaulted pod (name already suffixed with the node name), as the Go kubelet
//! validates after `applyDefaults`. Every problem is collected, not just the first.

use std::collections::{BTreeMap, HashMap, HashSet};

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, LifecycleHandler, Pod, PodSpec, Probe, ResourceRequirements,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use crate::image::ImageRef;
use crate::names::{
    DNS1123_SUBDOMAIN_MAX, NameError, dns1123_label, dns1123_subdomain, env_var_name, iana_svc_name,
};
use crate::quantity::Quantity;

/// One problem with one field, e.g. `spec.containers[1].name: duplicate name "c"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {detail}")]
pub struct FieldError {
    /// Field path in the pod, e.g. `spec.containers[0].image`.
    pub field: String,
    /// What is wrong with it.
    pub detail: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            detail: detail.into(),
        }
    }
}

/// Every validation failure of one pod, joined with `; ` when displayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", join_fields(.0))]
pub struct InvalidPod(pub Vec<FieldError>);

fn join_fields(errors: &[FieldError]) -> String {
    let parts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    parts.join("; ")
}

/// [`validate_pod`] as a `Result`, for callers that stop at an invalid pod.
pub fn check_pod(pod: &Pod) -> Result<(), InvalidPod> {
    let errors = validate_pod(pod);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(InvalidPod(errors))
    }
}

/// Validates a defaulted pod; returns every problem found.
pub fn validate_pod(pod: &Pod) -> Vec<FieldError> {
    let mut errs = Errors::default();
    let meta = &pod.metadata;
    match meta.name.as_deref() {
        None | Some("") => errs.push("metadata.name", "required value"),
        Some(name) => errs.check(
            "metadata.name",
            name,
            dns1123_subdomain(name, DNS1123_SUBDOMAIN_MAX),
        ),
    }
    if let Some(ns) = meta.namespace.as_deref() {
        errs.check("metadata.namespace", ns, dns1123_label(ns));
    }
    match &pod.spec {
        None => errs.push("spec", "required value"),
        Some(spec) => validate_spec(spec, &mut errs),
    }
    errs.0
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: impl Into<String>, detail: impl Into<String>) {
        self.0.push(FieldError::new(field, detail));
    }

    /// Records `invalid value "<value>": <why>` when `result` is an error.
    fn check(&mut self, field: impl Into<String>, value: &str, result: Result<(), NameError>) {
        if let Err(why) = result {
            self.push(field, format!("invalid value {value:?}: {why}"));
        }
    }

    fn one_of(&mut self, field: impl Into<String>, value: Option<&str>, allowed: &[&str]) {
        if let Some(v) = value
            && !allowed.contains(&v)
        {
            self.push(
                field,
                format!(
                    "unsupported value {v:?}: must be one of {}",
                    allowed
                        .iter()
                        .map(|a| format!("{a:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    }
}

fn validate_spec(spec: &PodSpec, errs: &mut Errors) {
    errs.one_of(
        "spec.restartPolicy",
        spec.restart_policy.as_deref(),
        &["Always", "OnFailure", "Never"],
    );
    if let Some(g) = spec.termination_grace_period_seconds
        && g < 0
    {
        errs.push(
            "spec.terminationGracePeriodSeconds",
            format!("invalid value {g}: must be greater than or equal to 0"),
        );
    }

    let volume_names = validate_volumes(spec.volumes.as_deref().unwrap_or_default(), errs);

    if spec.containers.is_empty() {
        errs.push("spec.containers", "at least one container is required");
    }
    // Names are unique across init and regular containers, as the apiserver requires.
    let mut container_names = HashSet::new();
    let init = spec.init_containers.as_deref().unwrap_or_default();
    for (i, c) in init.iter().enumerate() {
        let path = format!("spec.initContainers[{i}]");
        validate_container(c, &path, true, &volume_names, &mut container_names, errs);
    }
    for (i, c) in spec.containers.iter().enumerate() {
        let path = format!("spec.containers[{i}]");
        validate_container(c, &path, false, &volume_names, &mut container_names, errs);
    }
    if let Some(resources) = &spec.resources {
        validate_resources(resources, "spec.resources", errs);
    }
}

fn validate_volumes(volumes: &[Volume], errs: &mut Errors) -> HashSet<String> {
    let mut names = HashSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let path = format!("spec.volumes[{i}]");
        if v.name.is_empty() {
            errs.push(format!("{path}.name"), "required value");
        } else {
            errs.check(format!("{path}.name"), &v.name, dns1123_label(&v.name));
            if !names.insert(v.name.clone()) {
                errs.push(
                    format!("{path}.name"),
                    format!("duplicate name {:?}", v.name),
                );
            }
        }
        // Zero sources cannot happen here: defaulting turned it into an emptyDir.
        let sources = volume_source_count(v);
        if sources > 1 {
            errs.push(
                path.clone(),
                format!("may not specify more than 1 volume type (found {sources})"),
            );
        }
        if let Some(hp) = &v.host_path {
            if !hp.path.starts_with('/') {
                errs.push(
                    format!("{path}.hostPath.path"),
                    format!("invalid value {:?}: must be an absolute path", hp.path),
                );
            }
            errs.one_of(
                format!("{path}.hostPath.type"),
                hp.type_.as_deref(),
                &[
                    "",
                    "DirectoryOrCreate",
                    "Directory",
                    "FileOrCreate",
                    "File",
                    "Socket",
                    "CharDevice",
                    "BlockDevice",
                ],
            );
        }
    }
    names
}

/// How many volume sources a volume sets; the apiserver requires exactly one.
pub fn volume_source_count(v: &Volume) -> usize {
    [
        v.aws_elastic_block_store.is_some(),
        v.azure_disk.is_some(),
        v.azure_file.is_some(),
        v.cephfs.is_some(),
        v.cinder.is_some(),
        v.config_map.is_some(),
        v.csi.is_some(),
        v.downward_api.is_some(),
        v.empty_dir.is_some(),
        v.ephemeral.is_some(),
        v.fc.is_some(),
        v.flex_volume.is_some(),
        v.flocker.is_some(),
        v.gce_persistent_disk.is_some(),
        v.git_repo.is_some(),
        v.glusterfs.is_some(),
        v.host_path.is_some(),
        v.image.is_some(),
        v.iscsi.is_some(),
        v.nfs.is_some(),
        v.persistent_volume_claim.is_some(),
        v.photon_persistent_disk.is_some(),
        v.portworx_volume.is_some(),
        v.projected.is_some(),
        v.quobyte.is_some(),
        v.rbd.is_some(),
        v.scale_io.is_some(),
        v.secret.is_some(),
        v.storageos.is_some(),
        v.vsphere_volume.is_some(),
    ]
    .into_iter()
    .filter(|set| *set)
    .count()
}

fn validate_container(
    c: &Container,
    path: &str,
    is_init: bool,
    volumes: &HashSet<String>,
    names: &mut HashSet<String>,
    errs: &mut Errors,
) {
    if c.name.is_empty() {
        errs.push(format!("{path}.name"), "required value");
    } else {
        errs.check(format!("{path}.name"), &c.name, dns1123_label(&c.name));
        if !names.insert(c.name.clone()) {
            errs.push(
                format!("{path}.name"),
                format!("duplicate name {:?}", c.name),
            );
        }
    }

    match c.image.as_deref() {
        None | Some("") => errs.push(format!("{path}.image"), "required value"),
        Some(image) => {
            if let Err(why) = ImageRef::parse(image) {
                errs.push(
                    format!("{path}.image"),
                    format!("invalid image reference {image:?}: {why}"),
                );
            }
        }
    }

    if is_init {
        // On an init container the only allowed value is Always, which makes it a sidecar.
        if let Some(p) = c.restart_policy.as_deref()
            && p != "Always"
        {
            errs.push(
                format!("{path}.restartPolicy"),
                format!("unsupported value {p:?}: only \"Always\" is allowed on an init container"),
            );
        }
    } else {
        errs.one_of(
            format!("{path}.restartPolicy"),
            c.restart_policy.as_deref(),
            &["Always", "OnFailure", "Never"],
        );
    }
    errs.one_of(
        format!("{path}.imagePullPolicy"),
        c.image_pull_policy.as_deref(),
        &["Always", "IfNotPresent", "Never"],
    );
    errs.one_of(
        format!("{path}.terminationMessagePolicy"),
        c.termination_message_policy.as_deref(),
        &["File", "FallbackToLogsOnError"],
    );

    validate_ports(c.ports.as_deref().unwrap_or_default(), path, errs);
    validate_env(c.env.as_deref().unwrap_or_default(), path, errs);
    if let Some(r) = &c.resources {
        validate_resources(r, &format!("{path}.resources"), errs);
    }
    validate_mounts(
        c.volume_mounts.as_deref().unwrap_or_default(),
        path,
        volumes,
        errs,
    );

    for (field, probe) in [
        ("livenessProbe", &c.liveness_probe),
        ("readinessProbe", &c.readiness_probe),
        ("startupProbe", &c.startup_probe),
    ] {
        if let Some(p) = probe {
            validate_probe(p, &format!("{path}.{field}"), errs);
        }
    }
    if let Some(lifecycle) = &c.lifecycle {
        for (field, handler) in [
            ("postStart", &lifecycle.post_start),
            ("preStop", &lifecycle.pre_stop),
        ] {
            if let Some(h) = handler {
                validate_handler(h, &format!("{path}.lifecycle.{field}"), errs);
            }
        }
    }
}

fn validate_ports(ports: &[ContainerPort], path: &str, errs: &mut Errors) {
    let mut names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let path = format!("{path}.ports[{i}]");
        if !(1..=65535).contains(&p.container_port) {
            errs.push(
                format!("{path}.containerPort"),
                format!(
                    "invalid value {}: must be between 1 and 65535, inclusive",
                    p.container_port
                ),
            );
        }
        // hostPort 0 means "not exposed on the host".
        if let Some(hp) = p.host_port
            && hp != 0
            && !(1..=65535).contains(&hp)
        {
            errs.push(
                format!("{path}.hostPort"),
                format!("invalid value {hp}: must be between 1 and 65535, inclusive"),
            );
        }
        errs.one_of(
            format!("{path}.protocol"),
            p.protocol.as_deref(),
            &["TCP", "UDP", "SCTP"],
        );
        if let Some(name) = p.name.as_deref() {
            errs.check(format!("{path}.name"), name, iana_svc_name(name));
            if !names.insert(name) {
                errs.push(format!("{path}.name"), format!("duplicate name {name:?}"));
            }
        }
    }
}

fn validate_env(env: &[EnvVar], path: &str, errs: &mut Errors) {
    for (i, e) in env.iter().enumerate() {
        let field = format!("{path}.env[{i}].name");
        if e.name.is_empty() {
            errs.push(field, "required value");
        } else {
            errs.check(field, &e.name, env_var_name(&e.name));
        }
    }
}

fn validate_resources(r: &ResourceRequirements, path: &str, errs: &mut Errors) {
    let limits = parse_quantities(r.limits.as_ref(), &format!("{path}.limits"), errs);
    let requests = parse_quantities(r.requests.as_ref(), &format!("{path}.requests"), errs);
    for (name, request) in &requests {
        if let Some(limit) = limits.get(name)
            && request > limit
        {
            errs.push(
                format!("{path}.requests[{name}]"),
                format!("invalid value \"{request}\": must be less than or equal to {name} limit of {limit}"),
            );
        }
    }
}

fn parse_quantities<'a>(
    map: Option<&'a BTreeMap<String, ApiQuantity>>,
    path: &str,
    errs: &mut Errors,
) -> HashMap<&'a str, Quantity> {
    let mut out = HashMap::new();
    for (name, q) in map.into_iter().flatten() {
        let field = format!("{path}[{name}]");
        match Quantity::parse(&q.0) {
            Ok(v) if v.is_negative() => errs.push(
                field,
                format!(
                    "invalid value {:?}: must be greater than or equal to 0",
                    q.0
                ),
            ),
            Ok(v) => {
                out.insert(name.as_str(), v);
            }
            Err(e) => errs.push(field, e.to_string()),
        }
    }
    out
}

fn validate_mounts(
    mounts: &[VolumeMount],
    path: &str,
    volumes: &HashSet<String>,
    errs: &mut Errors,
) {
    let mut paths = HashSet::new();
    for (i, m) in mounts.iter().enumerate() {
        let path = format!("{path}.volumeMounts[{i}]");
        if m.name.is_empty() {
            errs.push(format!("{path}.name"), "required value");
        } else if !volumes.contains(&m.name) {
            errs.push(
                format!("{path}.name"),
                format!("not found: no volume named {:?} in spec.volumes", m.name),
            );
        }
        if m.mount_path.is_empty() {
            errs.push(format!("{path}.mountPath"), "required value");
        } else if !m.mount_path.starts_with('/') {
            errs.push(
                format!("{path}.mountPath"),
                format!("invalid value {:?}: must be an absolute path", m.mount_path),
            );
        } else if !paths.insert(m.mount_path.as_str()) {
            errs.push(
                format!("{path}.mountPath"),
                format!("invalid value {:?}: must be unique", m.mount_path),
            );
        }
    }
}

fn validate_probe(p: &Probe, path: &str, errs: &mut Errors) {
    let count = [
        p.exec.is_some(),
        p.http_get.is_some(),
        p.tcp_socket.is_some(),
        p.grpc.is_some(),
    ]
    .into_iter()
    .filter(|set| *set)
    .count();
    handler_count(count, path, errs);
}

fn validate_handler(h: &LifecycleHandler, path: &str, errs: &mut Errors) {
    let count = [
        h.exec.is_some(),
        h.http_get.is_some(),
        h.tcp_socket.is_some(),
        h.sleep.is_some(),
    ]
    .into_iter()
    .filter(|set| *set)
    .count();
    handler_count(count, path, errs);
}

fn handler_count(count: usize, path: &str, errs: &mut Errors) {
    match count {
        0 => errs.push(path, "must specify a handler type"),
        1 => {}
        _ => errs.push(path, "may not specify more than 1 handler type"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defaults::apply_api_defaults;

    fn pod(v: serde_json::Value) -> Pod {
        let mut pod: Pod = serde_json::from_value(v).unwrap();
        apply_api_defaults(&mut pod);
        pod
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn a_defaulted_minimal_pod_is_valid() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}));
        assert_eq!(validate_pod(&p), []);
        assert_eq!(check_pod(&p), Ok(()));
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "Web"},
            "spec": {
                "containers": [
                    {"name": "c", "image": "Busybox",
                     "ports": [{"containerPort": 0}],
                     "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}},
                    {"name": "c", "image": "busybox@sha256:abc"}],
                "volumes": [{"name": "v", "hostPath": {"path": "rel"}}]}}));
        let errors = validate_pod(&p);
        assert_eq!(
            fields(&errors),
            [
                "metadata.name",
                "spec.volumes[0].hostPath.path",
                "spec.containers[0].image",
                "spec.containers[0].ports[0].containerPort",
                "spec.containers[0].resources.requests[cpu]",
                "spec.containers[1].name",
                "spec.containers[1].image",
            ]
        );
        assert_eq!(
            errors[2].to_string(),
            "spec.containers[0].image: invalid image reference \"Busybox\": path component \"Busybox\" must be lowercase letters and digits, separated by '.', '_', '__' or '-'"
        );
        assert_eq!(
            errors[4].detail,
            "invalid value \"2\": must be less than or equal to cpu limit of 1"
        );
        let err = check_pod(&p).unwrap_err();
        assert_eq!(err.0, errors);
        assert!(
            err.to_string().starts_with(
                "metadata.name: invalid value \"Web\": a lowercase RFC 1123 subdomain"
            ),
            "{err}"
        );
        assert_eq!(err.to_string().matches("; ").count(), errors.len() - 1);
    }

    #[test]
    fn a_pod_without_spec_or_name_is_refused() {
        let p: Pod = serde_json::from_value(serde_json::json!({"metadata": {}})).unwrap();
        assert_eq!(fields(&validate_pod(&p)), ["metadata.name", "spec"]);
    }
}
