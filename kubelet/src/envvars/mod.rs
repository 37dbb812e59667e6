//! A container's environment, as the Go kubelet builds it
//! (`makeEnvironmentVariables` in `kubelet_pods.go`).
//!
//! Two steps: [`EnvObjects::fetch`] reads every ConfigMap and Secret the
//! container references through an [`ObjectGetter`], once each, and the pure
//! [`build_env`] turns the pod, the facts of the node and those objects into
//! the variables. [`container_env`] does both.
//!
//! The rules are Go's:
//! - `envFrom` sources come first, in order, each key with its `prefix`;
//!   their values are taken as they are (no `$(VAR)` expansion). Keys that
//!   are not environment variable names are skipped and reported in
//!   [`ContainerEnv::invalid_keys`] (Go's `InvalidEnvironmentVariableNames`
//!   event).
//! - `env` follows; a literal value is `$(VAR)`-expanded over everything
//!   defined before it (envFrom included), and `valueFrom` reads a
//!   ConfigMap or Secret key, the downward API's `fieldRef`, or a
//!   `resourceFieldRef`.
//! - A later definition of a name replaces the earlier one's value and keeps
//!   its position.
//! - An `optional` reference whose object or key is missing defines nothing;
//!   a required one fails the container's start with Go's message.
//!
//! Secret values never appear in an error or in `Debug` output.

mod resource;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVar, EnvVarSource, Pod, Secret};

use crate::objects::{ObjectError, ObjectGetter};

pub use resource::resource_field_value;

/// The two kinds of object a container's environment can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    ConfigMap,
    Secret,
}

impl ObjectKind {
    /// The word the apiserver's errors use (`configmap "x" not found`).
    fn api_word(self) -> &'static str {
        match self {
            ObjectKind::ConfigMap => "configmap",
            ObjectKind::Secret => "secret",
        }
    }

    /// The field name the `InvalidEnvironmentVariableNames` message uses.
    fn env_from_word(self) -> &'static str {
        match self {
            ObjectKind::ConfigMap => "configMap",
            ObjectKind::Secret => "secret",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::ConfigMap => "ConfigMap",
            ObjectKind::Secret => "Secret",
        })
    }
}

/// Why a container's environment could not be built. The kubelet reports
/// these as the container's `CreateContainerConfigError`. None of them
/// carries a value read from a Secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvError {
    #[error(
        "env {name}: fieldRef {path:?} is not supported (use metadata.name, metadata.namespace, metadata.uid, metadata.labels['k'], metadata.annotations['k'], spec.nodeName, spec.serviceAccountName, status.podIP, status.podIPs, status.hostIP or status.hostIPs)"
    )]
    UnsupportedField { name: String, path: String },
    /// The object could not be read (missing and not optional, or its
    /// source did not answer); the getter's message, as Go passes it on.
    #[error(transparent)]
    Object(#[from] ObjectError),
    #[error("couldn't find key {key} in {kind} {namespace}/{name}")]
    MissingKey {
        kind: ObjectKind,
        key: String,
        namespace: String,
        name: String,
    },
    /// An environment variable must be text; the value itself is not shown.
    #[error("the value of key {key} in {kind} {namespace}/{name} is not valid UTF-8")]
    NotUtf8 {
        kind: ObjectKind,
        key: String,
        namespace: String,
        name: String,
    },
    #[error("unsupported container resource : {resource}")]
    UnsupportedResource { resource: String },
    #[error("container {name} not found")]
    ContainerNotFound { name: String },
    #[error("env {name}: invalid quantity {value:?} for {field}: {source}")]
    InvalidQuantity {
        name: String,
        field: String,
        value: String,
        source: api::QuantityError,
    },
    #[error("env {name}: fileKeyRef is not supported")]
    FileKeyRef { name: String },
}

/// What the downward API can read about the pod and the node at container
/// start.
#[derive(Clone, Debug, Default)]
pub struct PodFacts<'a> {
    pub node_name: &'a str,
    /// The pod's primary IP (`status.podIP`).
    pub pod_ip: &'a str,
    /// Every pod IP, primary first (`status.podIPs`); empty means just
    /// `pod_ip`.
    pub pod_ips: &'a [String],
    /// The node's primary IP (`status.hostIP`).
    pub host_ip: &'a str,
    /// Every node IP, primary first (`status.hostIPs`); empty means just
    /// `host_ip`.
    pub host_ips: &'a [String],
    /// The node's allocatable resources in nano-units, by resource name (as
    /// `nodestatus` computes them). A `resourceFieldRef` to a limit the
    /// container does not set reads these, as in Go; None reads 0.
    pub node_allocatable: Option<&'a BTreeMap<String, i128>>,
}

/// Keys of one `envFrom` source that were not environment variable names
/// and so were left out (Go records an `InvalidEnvironmentVariableNames`
/// warning event for each source with such keys).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidKeys {
    pub kind: ObjectKind,
    pub namespace: String,
    pub name: String,
    /// The keys with the source's prefix, sorted.
    pub keys: Vec<String>,
}

impl InvalidKeys {
    /// The event reason Go uses.
    pub const REASON: &'static str = "InvalidEnvironmentVariableNames";
}

impl fmt::Display for InvalidKeys {
    /// The event message, as Go words it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Keys [{}] from the EnvFrom {} {}/{} were skipped since they are considered invalid environment variable names.",
            self.keys.join(", "),
            self.kind.env_from_word(),
            self.namespace,
            self.name
        )
    }
}

/// A container's environment.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ContainerEnv {
    /// The variables in order of first definition.
    pub vars: Vec<(String, String)>,
    /// The envFrom keys that were skipped, one entry per source.
    pub invalid_keys: Vec<InvalidKeys>,
}

impl fmt::Debug for ContainerEnv {
    /// Names only: values may come from Secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContainerEnv")
            .field(
                "vars",
                &self
                    .vars
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("invalid_keys", &self.invalid_keys)
            .finish()
    }
}

/// The ConfigMaps and Secrets a container's environment references, each
/// read once: the object, or why it could not be read.
#[derive(Clone, Default)]
pub struct EnvObjects {
    config_maps: HashMap<String, Result<Arc<ConfigMap>, ObjectError>>,
    secrets: HashMap<String, Result<Arc<Secret>, ObjectError>>,
}

impl fmt::Debug for EnvObjects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvObjects")
            .field("config_maps", &self.config_maps.keys().collect::<Vec<_>>())
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl EnvObjects {
    /// Reads every object `container` references (envFrom and env) from
    /// the pod's namespace. Failures are kept, not returned: whether they
    /// matter depends on each reference's `optional`.
    pub async fn fetch(pod: &Pod, container: &Container, getter: &dyn ObjectGetter) -> Self {
        let namespace = pod_namespace(pod);
        let mut objects = EnvObjects::default();
        let (config_maps, secrets) = referenced_objects(container);
        for name in config_maps {
            if !objects.config_maps.contains_key(name) {
                let got = getter.get_config_map(namespace, name).await;
                objects.config_maps.insert(name.to_string(), got);
            }
        }
        for name in secrets {
            if !objects.secrets.contains_key(name) {
                let got = getter.get_secret(namespace, name).await;
                objects.secrets.insert(name.to_string(), got);
            }
        }
        objects
    }

    /// Sets what reading the ConfigMap `name` gave (for callers that read
    /// objects their own way, and tests).
    pub fn with_config_map(mut self, name: &str, got: Result<Arc<ConfigMap>, ObjectError>) -> Self {
        self.config_maps.insert(name.to_string(), got);
        self
    }

    /// Sets what reading the Secret `name` gave.
    pub fn with_secret(mut self, name: &str, got: Result<Arc<Secret>, ObjectError>) -> Self {
        self.secrets.insert(name.to_string(), got);
        self
    }
}

/// The ConfigMap and Secret names a container's environment references,
/// in order of appearance (duplicates included).
fn referenced_objects(container: &Container) -> (Vec<&str>, Vec<&str>) {
    let (mut config_maps, mut secrets) = (Vec::new(), Vec::new());
    for from in container.env_from.iter().flatten() {
        if let Some(r) = &from.config_map_ref {
            config_maps.push(r.name.as_str());
        } else if let Some(r) = &from.secret_ref {
            secrets.push(r.name.as_str());
        }
    }
    for var in container.env.iter().flatten() {
        let Some(src) = var.value_from.as_ref().filter(|_| literal(var).is_empty()) else {
            continue;
        };
        if let Some(r) = &src.config_map_key_ref {
            config_maps.push(r.name.as_str());
        } else if let Some(r) = &src.secret_key_ref {
            secrets.push(r.name.as_str());
        }
    }
    (config_maps, secrets)
}

/// The container's environment: its objects read through `objects`, then
/// [`build_env`].
pub async fn container_env(
    pod: &Pod,
    container: &Container,
    facts: &PodFacts<'_>,
    objects: &dyn ObjectGetter,
) -> Result<ContainerEnv, EnvError> {
    let fetched = EnvObjects::fetch(pod, container, objects).await;
    build_env(pod, container, facts, &fetched)
}

/// `$(VAR)` expansion with Kubernetes' rules: a defined variable is
/// replaced, `$$` is an escaped `$`, and anything else (an undefined name,
/// an unterminated reference) is left exactly as written.
pub fn expand(input: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('(') {
            match tail.find(')') {
                Some(end) => {
                    let name = &tail[..end];
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &tail[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = tail;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Variables in order of first definition; a redefinition replaces the
/// value in place.
#[derive(Default)]
struct OrderedEnv {
    order: Vec<String>,
    vars: HashMap<String, String>,
}

impl OrderedEnv {
    fn set(&mut self, name: String, value: String) {
        if !self.vars.contains_key(&name) {
            self.order.push(name.clone());
        }
        self.vars.insert(name, value);
    }

    fn into_vars(mut self) -> Vec<(String, String)> {
        self.order
            .into_iter()
            .map(|k| {
                let v = self.vars.remove(&k).unwrap_or_default();
                (k, v)
            })
            .collect()
    }
}

/// The namespace a pod's objects are read from.
fn pod_namespace(pod: &Pod) -> &str {
    pod.metadata
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or("default")
}

fn literal(var: &EnvVar) -> &str {
    var.value.as_deref().unwrap_or_default()
}

/// Whether an envFrom key (with its prefix) can be a variable's name: the
/// apiserver's relaxed rule (printable ASCII but '='), and not empty. Keys
/// from the apiserver always pass; the check guards objects read from files.
fn valid_env_name(name: &str) -> bool {
    !name.is_empty() && api::names::env_var_name(name).is_ok()
}

/// The object `name` from `objects`, None when it is missing and the
/// reference is optional.
fn lookup<'o, T>(
    objects: &'o HashMap<String, Result<Arc<T>, ObjectError>>,
    kind: ObjectKind,
    namespace: &str,
    name: &str,
    optional: Option<bool>,
) -> Result<Option<&'o T>, EnvError> {
    let optional = optional == Some(true);
    match objects.get(name) {
        Some(Ok(o)) => Ok(Some(o)),
        Some(Err(e)) if e.is_not_found() && optional => Ok(None),
        Some(Err(e)) => Err(e.clone().into()),
        // Not fetched: as good as missing.
        None if optional => Ok(None),
        None => Err(ObjectError::NotFound {
            kind: kind.api_word(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
        .into()),
    }
}

/// A Secret's entries: `data`, with `stringData` over it as the apiserver
/// merges them on write (objects from files may still carry stringData).
fn secret_entries(secret: &Secret) -> BTreeMap<&str, &[u8]> {
    let mut entries: BTreeMap<&str, &[u8]> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.0.as_slice()))
        .collect();
    for (k, v) in secret.string_data.iter().flatten() {
        entries.insert(k.as_str(), v.as_bytes());
    }
    entries
}

fn secret_text(bytes: &[u8], key: &str, namespace: &str, name: &str) -> Result<String, EnvError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| EnvError::NotUtf8 {
        kind: ObjectKind::Secret,
        key: key.to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
    })
}

/// The container's environment from the pod, the node's facts and the
/// objects already read. Pure: no I/O.
pub fn build_env(
    pod: &Pod,
    container: &Container,
    facts: &PodFacts<'_>,
    objects: &EnvObjects,
) -> Result<ContainerEnv, EnvError> {
    let namespace = pod_namespace(pod);
    let mut env = OrderedEnv::default();
    let mut invalid_keys = Vec::new();

    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or_default();
        let (kind, name, entries) = if let Some(r) = &from.config_map_ref {
            let kind = ObjectKind::ConfigMap;
            let Some(cm) = lookup(&objects.config_maps, kind, namespace, &r.name, r.optional)?
            else {
                continue;
            };
            let entries: Vec<(&str, String)> = cm
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.clone()))
                .collect();
            (kind, &r.name, entries)
        } else if let Some(r) = &from.secret_ref {
            let kind = ObjectKind::Secret;
            let Some(secret) = lookup(&objects.secrets, kind, namespace, &r.name, r.optional)?
            else {
                continue;
            };
            let entries = secret_entries(secret)
                .into_iter()
                .map(|(k, v)| Ok((k, secret_text(v, k, namespace, &r.name)?)))
                .collect::<Result<Vec<_>, EnvError>>()?;
            (kind, &r.name, entries)
        } else {
            continue;
        };
        let mut skipped = Vec::new();
        for (key, value) in entries {
            let var = format!("{prefix}{key}");
            if valid_env_name(&var) {
                env.set(var, value);
            } else {
                skipped.push(var);
            }
        }
        if !skipped.is_empty() {
            skipped.sort();
            invalid_keys.push(InvalidKeys {
                kind,
                namespace: namespace.to_string(),
                name: name.clone(),
                keys: skipped,
            });
        }
    }

    for var in container.env.iter().flatten() {
        let value = match &var.value_from {
            Some(src) if literal(var).is_empty() => {
                match source_value(pod, container, facts, objects, namespace, var, src)? {
                    Some(v) => v,
                    None => continue,
                }
            }
            _ => expand(literal(var), &env.vars),
        };
        env.set(var.name.clone(), value);
    }

    Ok(ContainerEnv {
        vars: env.into_vars(),
        invalid_keys,
    })
}

/// The value of one `valueFrom`; None when an optional reference found
/// nothing (the variable is then not defined at all).
fn source_value(
    pod: &Pod,
    container: &Container,
    facts: &PodFacts<'_>,
    objects: &EnvObjects,
    namespace: &str,
    var: &EnvVar,
    src: &EnvVarSource,
) -> Result<Option<String>, EnvError> {
    if let Some(f) = &src.field_ref {
        return field_value(pod, facts, &f.field_path)
            .map(Some)
            .ok_or_else(|| EnvError::UnsupportedField {
                name: var.name.clone(),
                path: f.field_path.clone(),
            });
    }
    if let Some(r) = &src.resource_field_ref {
        return resource_field_value(pod, container, r, facts.node_allocatable, &var.name)
            .map(Some);
    }
    if let Some(r) = &src.config_map_key_ref {
        let kind = ObjectKind::ConfigMap;
        let Some(cm) = lookup(&objects.config_maps, kind, namespace, &r.name, r.optional)? else {
            return Ok(None);
        };
        return match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
            Some(v) => Ok(Some(v.clone())),
            None if r.optional == Some(true) => Ok(None),
            None => Err(EnvError::MissingKey {
                kind,
                key: r.key.clone(),
                namespace: namespace.to_string(),
                name: r.name.clone(),
            }),
        };
    }
    if let Some(r) = &src.secret_key_ref {
        let kind = ObjectKind::Secret;
        let Some(secret) = lookup(&objects.secrets, kind, namespace, &r.name, r.optional)? else {
            return Ok(None);
        };
        return match secret_entries(secret).get(r.key.as_str()) {
            Some(v) => secret_text(v, &r.key, namespace, &r.name).map(Some),
            None if r.optional == Some(true) => Ok(None),
            None => Err(EnvError::MissingKey {
                kind,
                key: r.key.clone(),
                namespace: namespace.to_string(),
                name: r.name.clone(),
            }),
        };
    }
    if src.file_key_ref.is_some() {
        return Err(EnvError::FileKeyRef {
            name: var.name.clone(),
        });
    }
    // A valueFrom with no source: Go defines the variable, empty.
    Ok(Some(String::new()))
}

fn ip_list(primary: &str, all: &[String]) -> String {
    if all.is_empty() {
        primary.to_string()
    } else {
        all.join(",")
    }
}

fn field_value(pod: &Pod, facts: &PodFacts<'_>, path: &str) -> Option<String> {
    let meta = &pod.metadata;
    let bracketed = |prefix: &str| -> Option<String> {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(key.to_string())
    };
    Some(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => pod_namespace(pod).to_string(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => facts.node_name.to_string(),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" => facts
            .pod_ips
            .first()
            .map_or(facts.pod_ip, String::as_str)
            .to_string(),
        "status.podIPs" => ip_list(facts.pod_ip, facts.pod_ips),
        "status.hostIP" => facts
            .host_ips
            .first()
            .map_or(facts.host_ip, String::as_str)
            .to_string(),
        "status.hostIPs" => ip_list(facts.host_ip, facts.host_ips),
        _ => {
            if let Some(k) = bracketed("metadata.labels['") {
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get(&k).cloned())
                    .unwrap_or_default()
            } else if let Some(k) = bracketed("metadata.annotations['") {
                meta.annotations
                    .as_ref()
                    .and_then(|a| a.get(&k).cloned())
                    .unwrap_or_default()
            } else {
                return None;
            }
        }
    })
}
