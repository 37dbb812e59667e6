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

use crate::error::FieldError;
use crate::quantity::Quantity;

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;
const IANA_SVC_NAME_MAX: usize = 15;
const IMAGE_NAME_MAX: usize = 255;
const TAG_MAX: usize = 128;

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
    fn check(&mut self, field: impl Into<String>, value: &str, result: Result<(), String>) {
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
pub(crate) fn volume_source_count(v: &Volume) -> usize {
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
            if let Err(why) = ImageReference::parse(image) {
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

/// RFC 1123 label: lowercase alphanumerics and '-', alphanumeric at both ends, at most 63.
pub fn dns1123_label(s: &str) -> Result<(), String> {
    if s.len() > DNS1123_LABEL_MAX {
        return Err(format!(
            "must be no more than {DNS1123_LABEL_MAX} characters"
        ));
    }
    if !is_label(s) {
        return Err(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric \
                    characters or '-', and must start and end with an alphanumeric character"
                .into(),
        );
    }
    Ok(())
}

/// RFC 1123 subdomain: dot-separated labels, at most `max` characters overall.
pub fn dns1123_subdomain(s: &str, max: usize) -> Result<(), String> {
    if s.len() > max {
        return Err(format!("must be no more than {max} characters"));
    }
    if !s.split('.').all(is_label) {
        return Err(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric \
                    characters, '-' or '.', and must start and end with an alphanumeric character"
                .into(),
        );
    }
    Ok(())
}

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            alnum(first) && alnum(last) && b.iter().all(|c| alnum(c) || *c == b'-')
        }
        _ => false,
    }
}

/// IANA service name, as used for port names.
fn iana_svc_name(s: &str) -> Result<(), String> {
    if s.len() > IANA_SVC_NAME_MAX {
        return Err(format!(
            "must be no more than {IANA_SVC_NAME_MAX} characters"
        ));
    }
    if !s
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        return Err("must contain only lowercase alphanumeric characters or '-'".into());
    }
    if !s.bytes().any(|c| c.is_ascii_lowercase()) {
        return Err("must contain at least one letter".into());
    }
    if s.contains("--") {
        return Err("must not contain consecutive hyphens".into());
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err("must not begin or end with a hyphen".into());
    }
    Ok(())
}

/// Env var names: since RelaxedEnvironmentVariableValidation went GA (on in 1.36), any
/// printable ASCII except '=' is allowed.
fn env_var_name(s: &str) -> Result<(), String> {
    if s.bytes().all(|c| (b' '..=b'~').contains(&c) && c != b'=') {
        Ok(())
    } else {
        Err(
            "a valid environment variable name must consist only of printable ASCII \
             characters other than '='"
                .into(),
        )
    }
}

/// A parsed docker-style image reference: `[registry[:port]/]path[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference<'a> {
    /// Registry and path, e.g. `registry.k8s.io/pause`.
    pub name: &'a str,
    pub tag: Option<&'a str>,
    pub digest: Option<&'a str>,
}

impl<'a> ImageReference<'a> {
    /// Parses and checks a reference; the error says which part is wrong.
    pub fn parse(s: &'a str) -> Result<Self, String> {
        if s.trim() != s {
            return Err("must not have leading or trailing whitespace".into());
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d)),
            None => (s, None),
        };
        // A ':' after the last '/' starts the tag; one before it belongs to a registry port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if name.is_empty() {
            return Err("repository name is empty".into());
        }
        if name.len() > IMAGE_NAME_MAX {
            return Err(format!(
                "repository name must be no more than {IMAGE_NAME_MAX} characters"
            ));
        }
        let mut components: Vec<&str> = name.split('/').collect();
        if components.len() > 1
            && let Some(first) = components.first()
            && (first.contains(['.', ':'])
                || *first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()))
        {
            check_registry(first)?;
            components.remove(0);
        }
        for c in components {
            check_path_component(c)?;
        }
        if let Some(tag) = tag {
            check_tag(tag)?;
        }
        if let Some(digest) = digest {
            check_digest(digest)?;
        }
        Ok(Self { name, tag, digest })
    }
}

fn check_registry(registry: &str) -> Result<(), String> {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        // Bracketed IPv6 literal.
        let (ip, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("registry {registry:?} has an unclosed '['"))?;
        if ip.is_empty()
            || !ip
                .bytes()
                .all(|c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
        {
            return Err(format!("registry {registry:?} has an invalid IPv6 address"));
        }
        match after.strip_prefix(':') {
            Some(port) => (None, Some(port)),
            None if after.is_empty() => (None, None),
            None => return Err(format!("registry {registry:?} is malformed")),
        }
    } else {
        match registry.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(registry), None),
        }
    };
    if let Some(host) = host {
        let ok_part = |p: &str| {
            let b = p.as_bytes();
            matches!((b.first(), b.last()), (Some(f), Some(l)) if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric())
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        };
        if !host.split('.').all(ok_part) {
            return Err(format!("registry host {host:?} is not a valid host name"));
        }
    }
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|c| c.is_ascii_digit()))
    {
        return Err(format!("registry port {port:?} must be a number"));
    }
    Ok(())
}

/// `[a-z0-9]+` groups joined by `.`, `_`, `__` or runs of `-`.
fn check_path_component(c: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "path component {c:?} must be lowercase letters and digits, separated by '.', '_', '__' or '-'"
        ))
    };
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) if alnum(*f) && alnum(*l) => {}
        _ => return bad(),
    }
    let mut i = 0;
    while i < b.len() {
        let ch = b.get(i).copied().unwrap_or(b'a');
        if alnum(ch) {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__' or any number of '-'.
        let start = i;
        while i < b.len() && !b.get(i).copied().is_some_and(alnum) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return bad();
        }
    }
    Ok(())
}

fn check_tag(tag: &str) -> Result<(), String> {
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    let b = tag.as_bytes();
    let valid = b.first().is_some_and(|f| word(*f))
        && b.len() <= TAG_MAX
        && b.iter().all(|x| word(*x) || *x == b'.' || *x == b'-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "tag {tag:?} must be 1-{TAG_MAX} characters of [A-Za-z0-9_.-], not starting with '.' or '-'"
        ))
    }
}

fn check_digest(digest: &str) -> Result<(), String> {
    let (algo, hex) = digest
        .split_once(':')
        .ok_or_else(|| format!("digest {digest:?} must be <algorithm>:<hex>"))?;
    let algo_ok = !algo.is_empty()
        && algo.split(['+', '.', '_', '-']).all(|part| {
            part.as_bytes()
                .first()
                .is_some_and(|f| f.is_ascii_alphabetic())
                && part.bytes().all(|x| x.is_ascii_alphanumeric())
        });
    if !algo_ok {
        return Err(format!("digest algorithm {algo:?} is invalid"));
    }
    if hex.len() < 32 || !hex.bytes().all(|x| x.is_ascii_hexdigit()) {
        return Err(format!(
            "digest {digest:?} must have at least 32 hexadecimal characters after the algorithm"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ManifestErrorKind;
    use crate::manifest::load_manifest;
    use std::path::Path;

    /// Loads `web.yaml` with the given pod spec body (YAML, indented under `spec:`) and
    /// returns the full error message, or "ok".
    fn check(metadata: &str, spec: &str) -> String {
        let yaml = format!("apiVersion: v1\nkind: Pod\nmetadata:\n{metadata}\nspec:\n{spec}\n");
        match load_manifest(Path::new("web.yaml"), yaml.as_bytes(), "node1") {
            Ok(_) => "ok".into(),
            Err(e) => e.to_string(),
        }
    }

    const META: &str = "  name: web";
    const C: &str = "  containers:\n  - name: c\n    image: nginx:1.25";

    fn spec_check(spec: &str) -> String {
        check(META, spec)
    }

    /// The first container with extra fields appended.
    fn container_check(extra: &str) -> String {
        spec_check(&format!("{C}\n{extra}"))
    }

    #[test]
    fn valid_pod_passes() {
        let spec = format!(
            "{C}\n    ports: [{{name: http, containerPort: 80, hostPort: 8080, protocol: UDP}}]\n    env: [{{name: 'A.b-c', value: x}}]\n    resources: {{requests: {{cpu: 100m, memory: 64Mi}}, limits: {{cpu: '1', memory: 128Mi}}}}\n    volumeMounts: [{{name: data, mountPath: /data}}]\n    livenessProbe: {{tcpSocket: {{port: 80}}}}\n    lifecycle: {{preStop: {{sleep: {{seconds: 1}}}}}}\n  initContainers:\n  - {{name: side, image: busybox, restartPolicy: Always}}\n  volumes:\n  - {{name: data, hostPath: {{path: /srv, type: DirectoryOrCreate}}}}\n  - {{name: scratch}}"
        );
        assert_eq!(spec_check(&spec), "ok");
    }

    #[test]
    fn metadata_rules() {
        assert_eq!(
            check("  labels: {}", C),
            "web.yaml: metadata.name: required value"
        );
        assert_eq!(
            check("  name: Web_1", C),
            "web.yaml: metadata.name: invalid value \"Web_1-node1\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        );
        let long = "a".repeat(250);
        assert_eq!(
            check(&format!("  name: {long}"), C),
            "web.yaml: metadata.name: invalid value \"".to_string()
                + &long
                + "-node1\": must be no more than 253 characters"
        );
        assert_eq!(
            check("  name: web\n  namespace: kube.system", C),
            "web.yaml: metadata.namespace: invalid value \"kube.system\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
        );
    }

    #[test]
    fn container_presence_and_names() {
        assert_eq!(
            spec_check("  containers: []"),
            "web.yaml: spec.containers: at least one container is required"
        );
        assert_eq!(
            spec_check("  containers:\n  - {name: c, image: a}\n  - {name: c, image: b}"),
            "web.yaml: spec.containers[1].name: duplicate name \"c\""
        );
        assert_eq!(
            spec_check(
                "  initContainers: [{name: c, image: a}]\n  containers: [{name: c, image: b}]"
            ),
            "web.yaml: spec.containers[0].name: duplicate name \"c\""
        );
        assert_eq!(
            spec_check("  containers: [{name: C1, image: a}]"),
            "web.yaml: spec.containers[0].name: invalid value \"C1\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
        );
    }

    #[test]
    fn image_rules() {
        assert_eq!(
            spec_check("  containers: [{name: c}]"),
            "web.yaml: spec.containers[0].image: required value"
        );
        assert_eq!(
            spec_check("  containers: [{name: c, image: 'Nginx:1'}]"),
            "web.yaml: spec.containers[0].image: invalid image reference \"Nginx:1\": path component \"Nginx\" must be lowercase letters and digits, separated by '.', '_', '__' or '-'"
        );
        assert_eq!(
            spec_check("  containers: [{name: c, image: 'nginx:-bad'}]"),
            "web.yaml: spec.containers[0].image: invalid image reference \"nginx:-bad\": tag \"-bad\" must be 1-128 characters of [A-Za-z0-9_.-], not starting with '.' or '-'"
        );
        assert_eq!(
            spec_check("  containers: [{name: c, image: 'nginx@sha256:xyz'}]"),
            "web.yaml: spec.containers[0].image: invalid image reference \"nginx@sha256:xyz\": digest \"sha256:xyz\" must have at least 32 hexadecimal characters after the algorithm"
        );
    }

    #[test]
    fn policy_enums() {
        assert_eq!(
            spec_check(&format!("  restartPolicy: Sometimes\n{C}")),
            "web.yaml: spec.restartPolicy: unsupported value \"Sometimes\": must be one of \"Always\", \"OnFailure\", \"Never\""
        );
        assert_eq!(
            spec_check(&format!(
                "  initContainers: [{{name: i, image: a, restartPolicy: Never}}]\n{C}"
            )),
            "web.yaml: spec.initContainers[0].restartPolicy: unsupported value \"Never\": only \"Always\" is allowed on an init container"
        );
        assert_eq!(
            container_check("    restartPolicy: Maybe"),
            "web.yaml: spec.containers[0].restartPolicy: unsupported value \"Maybe\": must be one of \"Always\", \"OnFailure\", \"Never\""
        );
        assert_eq!(
            container_check("    imagePullPolicy: Sometimes"),
            "web.yaml: spec.containers[0].imagePullPolicy: unsupported value \"Sometimes\": must be one of \"Always\", \"IfNotPresent\", \"Never\""
        );
        assert_eq!(
            container_check("    terminationMessagePolicy: Stdout"),
            "web.yaml: spec.containers[0].terminationMessagePolicy: unsupported value \"Stdout\": must be one of \"File\", \"FallbackToLogsOnError\""
        );
    }

    #[test]
    fn port_rules() {
        assert_eq!(
            container_check("    ports: [{containerPort: 0}]"),
            "web.yaml: spec.containers[0].ports[0].containerPort: invalid value 0: must be between 1 and 65535, inclusive"
        );
        assert_eq!(
            container_check("    ports: [{containerPort: 80, hostPort: 70000}]"),
            "web.yaml: spec.containers[0].ports[0].hostPort: invalid value 70000: must be between 1 and 65535, inclusive"
        );
        assert_eq!(
            container_check("    ports: [{containerPort: 80, protocol: ICMP}]"),
            "web.yaml: spec.containers[0].ports[0].protocol: unsupported value \"ICMP\": must be one of \"TCP\", \"UDP\", \"SCTP\""
        );
        assert_eq!(
            container_check("    ports: [{containerPort: 80, name: '8080'}]"),
            "web.yaml: spec.containers[0].ports[0].name: invalid value \"8080\": must contain at least one letter"
        );
        assert_eq!(
            container_check("    ports: [{containerPort: 80, name: a-very-long-port-name}]"),
            "web.yaml: spec.containers[0].ports[0].name: invalid value \"a-very-long-port-name\": must be no more than 15 characters"
        );
        assert_eq!(
            container_check(
                "    ports: [{containerPort: 80, name: http}, {containerPort: 81, name: http}]"
            ),
            "web.yaml: spec.containers[0].ports[1].name: duplicate name \"http\""
        );
    }

    #[test]
    fn resource_rules() {
        assert_eq!(
            container_check("    resources: {limits: {memory: 12XB}}"),
            "web.yaml: spec.containers[0].resources.limits[memory]: quantity \"12XB\" has an unknown suffix \"XB\""
        );
        assert_eq!(
            container_check("    resources: {requests: {cpu: '2'}, limits: {cpu: 1500m}}"),
            "web.yaml: spec.containers[0].resources.requests[cpu]: invalid value \"2\": must be less than or equal to cpu limit of 1.5"
        );
        assert_eq!(
            container_check("    resources: {requests: {cpu: '-1'}}"),
            "web.yaml: spec.containers[0].resources.requests[cpu]: invalid value \"-1\": must be greater than or equal to 0"
        );
        // 1Gi is more than 1G: binary and decimal suffixes compare by value.
        assert_eq!(
            container_check("    resources: {requests: {memory: 1Gi}, limits: {memory: 1G}}"),
            "web.yaml: spec.containers[0].resources.requests[memory]: invalid value \"1073741824\": must be less than or equal to memory limit of 1000000000"
        );
    }

    #[test]
    fn volume_rules() {
        assert_eq!(
            container_check("    volumeMounts: [{name: missing, mountPath: /x}]"),
            "web.yaml: spec.containers[0].volumeMounts[0].name: not found: no volume named \"missing\" in spec.volumes"
        );
        assert_eq!(
            spec_check(&format!(
                "{C}\n    volumeMounts: [{{name: v, mountPath: rel/path}}]\n  volumes: [{{name: v}}]"
            )),
            "web.yaml: spec.containers[0].volumeMounts[0].mountPath: invalid value \"rel/path\": must be an absolute path"
        );
        assert_eq!(
            spec_check(&format!("{C}\n  volumes: [{{name: v}}, {{name: v}}]")),
            "web.yaml: spec.volumes[1].name: duplicate name \"v\""
        );
        assert_eq!(
            spec_check(&format!("{C}\n  volumes: [{{name: V_1}}]")),
            "web.yaml: spec.volumes[0].name: invalid value \"V_1\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
        );
        assert_eq!(
            spec_check(&format!(
                "{C}\n  volumes: [{{name: v, emptyDir: {{}}, hostPath: {{path: /x}}}}]"
            )),
            "web.yaml: spec.volumes[0]: may not specify more than 1 volume type (found 2)"
        );
        assert_eq!(
            spec_check(&format!(
                "{C}\n  volumes: [{{name: v, hostPath: {{path: x, type: Folder}}}}]"
            )),
            "web.yaml: spec.volumes[0].hostPath.path: invalid value \"x\": must be an absolute path; spec.volumes[0].hostPath.type: unsupported value \"Folder\": must be one of \"\", \"DirectoryOrCreate\", \"Directory\", \"FileOrCreate\", \"File\", \"Socket\", \"CharDevice\", \"BlockDevice\""
        );
    }

    #[test]
    fn env_rules() {
        assert_eq!(
            container_check("    env: [{name: 'A=B', value: x}]"),
            "web.yaml: spec.containers[0].env[0].name: invalid value \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='"
        );
        assert_eq!(
            container_check("    env: [{name: '', value: x}]"),
            "web.yaml: spec.containers[0].env[0].name: required value"
        );
    }

    #[test]
    fn handler_rules() {
        assert_eq!(
            container_check("    readinessProbe: {periodSeconds: 3}"),
            "web.yaml: spec.containers[0].readinessProbe: must specify a handler type"
        );
        assert_eq!(
            container_check("    livenessProbe: {exec: {command: [true]}, tcpSocket: {port: 80}}"),
            "web.yaml: spec.containers[0].livenessProbe: may not specify more than 1 handler type"
        );
        assert_eq!(
            container_check("    lifecycle: {postStart: {}}"),
            "web.yaml: spec.containers[0].lifecycle.postStart: must specify a handler type"
        );
    }

    #[test]
    fn all_errors_of_a_file_are_collected() {
        let err = load_manifest(
            Path::new("web.yaml"),
            b"apiVersion: v1\nkind: Pod\nmetadata: {namespace: Bad}\nspec:\n  containers: [{name: c}, {name: c, image: x}]\n",
            "node1",
        )
        .unwrap_err();
        let ManifestErrorKind::Invalid(fields) = &err.kind else {
            panic!("unexpected error {err}");
        };
        let paths: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            paths,
            [
                "metadata.name",
                "metadata.namespace",
                "spec.containers[0].image",
                "spec.containers[1].name"
            ]
        );
    }

    #[test]
    fn image_references() {
        let ok = [
            ("nginx", "nginx", None, None),
            ("nginx:1.25", "nginx", Some("1.25"), None),
            (
                "registry.k8s.io/pause:3.10",
                "registry.k8s.io/pause",
                Some("3.10"),
                None,
            ),
            (
                "localhost:5000/a/b_c__d-e--f:v1",
                "localhost:5000/a/b_c__d-e--f",
                Some("v1"),
                None,
            ),
            ("localhost/x", "localhost/x", None, None),
            ("[::1]:5000/x:t", "[::1]:5000/x", Some("t"), None),
            (
                "busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "busybox",
                None,
                Some("sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
            ),
        ];
        for (input, name, tag, digest) in ok {
            let r = ImageReference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!((r.name, r.tag, r.digest), (name, tag, digest), "{input}");
        }
        let bad = [
            ("Nginx", "path component \"Nginx\""),
            ("nginx:", "tag \"\""),
            ("nginx:.x", "tag \".x\""),
            ("nginx@sha256:abc", "at least 32 hexadecimal"),
            ("nginx@abc", "must be <algorithm>:<hex>"),
            ("a//b", "path component \"\""),
            ("a/b-", "path component \"b-\""),
            ("a/b...c", "path component \"b...c\""),
            ("reg-.io/x", "registry host"),
            ("reg.io:port/x", "registry port"),
            (" nginx", "whitespace"),
            (":tag", "repository name is empty"),
        ];
        for (input, want) in bad {
            let err = ImageReference::parse(input).unwrap_err();
            assert!(err.contains(want), "{input}: {err}");
        }
        let long_tag = format!("x:{}", "a".repeat(129));
        assert!(ImageReference::parse(&long_tag).is_err());
        assert!(ImageReference::parse(&format!("x:{}", "a".repeat(128))).is_ok());
    }

    #[test]
    fn names() {
        assert!(dns1123_label("a-1").is_ok());
        assert!(dns1123_label("-a").is_err());
        assert!(dns1123_label("A").is_err());
        assert!(dns1123_label(&"a".repeat(64)).is_err());
        assert!(dns1123_subdomain("a.b-c.d", 253).is_ok());
        assert!(dns1123_subdomain("a..b", 253).is_err());
        assert!(iana_svc_name("http-alt").is_ok());
        assert!(iana_svc_name("8080").is_err());
        assert!(iana_svc_name("a--b").is_err());
        assert!(env_var_name("MY.VAR-1 x").is_ok());
        assert!(env_var_name("A=B").is_err());
        assert!(env_var_name("tab\there").is_err());
    }
}
