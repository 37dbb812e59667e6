//! What the configMap, secret, downwardAPI and projected volumes hold: the
//! payloads the Go kubelet's volume plugins build (`MakePayload` in
//! `pkg/volume/configmap` and `pkg/volume/secret`, `CollectData` in
//! `pkg/volume/downwardapi`, `collectData` in `pkg/volume/projected`),
//! ready for the [`AtomicWriter`](super::atomic_writer::AtomicWriter).
//!
//! Everything here is pure: objects and tokens are fetched by the caller
//! (asynchronously, through [`crate::objects::ObjectGetter`] and the
//! TokenRequest API) and handed in. Errors name the volume, the object and
//! the key, never a value.
//!
//! Where Go and the apiserver differ from what arrives here (objects from a
//! manifest directory were never validated by an apiserver), the apiserver's
//! rules are applied: a key in both `data` and `binaryData` is refused,
//! `stringData` is merged into a Secret's `data`, every path is validated
//! when the payload is built, and modes outside `0..=0o777` are refused.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, DownwardAPIVolumeFile, KeyToPath,
    ObjectFieldSelector, Pod, ProjectedVolumeSource, ResourceFieldSelector, Secret,
    SecretVolumeSource, ServiceAccountTokenProjection,
};

use super::atomic_writer::{self, AtomicWriteError, FileProjection};
use crate::objects::ObjectError;

mod downward;

pub use downward::format_map;

/// The default of every `defaultMode` (the API's `0644`), used when a pod
/// was not defaulted by an apiserver.
pub const DEFAULT_MODE: i32 = 0o644;
/// A projected token's mode when the volume's ownership is changed (Go
/// relies on the fsGroup pass to widen it to 0640).
pub const TOKEN_MODE_WITH_OWNER: u32 = 0o600;

/// Relative path → file, as the atomic writer takes it.
pub type Payload = BTreeMap<String, FileProjection>;

#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// A required object is missing (Go passes the apiserver's error on).
    #[error("volume {volume:?}: {kind} {name:?} not found")]
    NotFound {
        volume: String,
        kind: &'static str,
        name: String,
    },
    /// The object could not be read (not a plain not-found).
    #[error("volume {volume:?}: {source}")]
    Object {
        volume: String,
        #[source]
        source: ObjectError,
    },
    #[error("volume {volume:?}: a {kind} volume must name its {kind}")]
    NoName { volume: String, kind: &'static str },
    /// Go's texts: `configmap references non-existent config key: K`,
    /// `references non-existent secret key: K`.
    #[error("volume {volume:?}: {kind} {name:?} references non-existent {what} key: {key}")]
    MissingKey {
        volume: String,
        kind: &'static str,
        name: String,
        what: &'static str,
        key: String,
    },
    #[error("volume {volume:?}: configmap {name:?} has key {key:?} in both data and binaryData")]
    DuplicateKey {
        volume: String,
        name: String,
        key: String,
    },
    /// A key or item path the writer would refuse (`../x`, `/etc/passwd`).
    #[error("volume {volume:?}: {origin}: {source}")]
    InvalidPath {
        volume: String,
        /// `configmap "c" key "k"`, `downwardAPI item`, ...
        origin: String,
        #[source]
        source: AtomicWriteError,
    },
    #[error("volume {volume:?}: {origin}: mode {mode} is not between 0 and 0777 (octal)")]
    BadMode {
        volume: String,
        origin: String,
        mode: i32,
    },
    /// A downwardAPI item Go cannot resolve either (an unsupported field,
    /// an unknown container or resource, a bad quantity).
    #[error("volume {volume:?}: downwardAPI file {path:?}: {why}")]
    DownwardApi {
        volume: String,
        path: String,
        why: String,
    },
    #[error("volume {volume:?}: serviceAccountToken {path:?}: {why}")]
    Token {
        volume: String,
        path: String,
        why: String,
    },
    #[error("volume {volume:?}: {kind} projections are not supported")]
    Unsupported { volume: String, kind: &'static str },
    /// Every error of a projected volume's sources, as Go aggregates them.
    #[error("{}", join(.0))]
    Several(Vec<PayloadError>),
}

fn join(errors: &[PayloadError]) -> String {
    let parts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    format!("[{}]", parts.join(", "))
}

/// One of Go's aggregate errors: the error itself when there is one.
fn aggregate(mut errors: Vec<PayloadError>) -> Result<(), PayloadError> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(PayloadError::Several(errors)),
    }
}

/// A mode from the API (`defaultMode`, an item's `mode`) as file bits.
fn file_mode(
    volume: &str,
    origin: impl FnOnce() -> String,
    mode: i32,
) -> Result<u32, PayloadError> {
    u32::try_from(mode)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| PayloadError::BadMode {
            volume: volume.to_string(),
            origin: origin(),
            mode,
        })
}

/// Validates `path` as the writer will and returns it cleaned, so two
/// spellings of one path (`a`, `./a`) are one entry, the later winning as
/// in Go's maps.
fn checked_path(
    volume: &str,
    origin: impl FnOnce() -> String,
    path: &str,
) -> Result<String, PayloadError> {
    atomic_writer::validate_path(path).map_err(|source| PayloadError::InvalidPath {
        volume: volume.to_string(),
        origin: origin(),
        source,
    })?;
    Ok(atomic_writer::clean(path))
}

/// The keys of a ConfigMap or Secret, with their bytes.
type Entries<'a> = BTreeMap<&'a str, &'a [u8]>;

/// What `MakePayload` shares between ConfigMaps and Secrets: every key
/// when there are no items, else each item's key at its path (a missing
/// key skipped when optional, an error otherwise).
struct Keyed<'a> {
    volume: &'a str,
    kind: &'static str,
    /// "config" or "secret", for Go's missing-key text.
    what: &'static str,
    name: &'a str,
    entries: Entries<'a>,
}

impl Keyed<'_> {
    fn origin(&self, key: &str) -> String {
        format!("{} {:?} key {key:?}", self.kind, self.name)
    }

    fn payload(
        &self,
        items: Option<&[KeyToPath]>,
        default_mode: i32,
        optional: bool,
        into: &mut Payload,
    ) -> Result<(), PayloadError> {
        let default = file_mode(
            self.volume,
            || format!("{} {:?} defaultMode", self.kind, self.name),
            default_mode,
        )?;
        match items {
            None | Some([]) => {
                for (key, data) in &self.entries {
                    let path = checked_path(self.volume, || self.origin(key), key)?;
                    into.insert(path, projection(data, default));
                }
            }
            Some(items) => {
                for item in items {
                    let Some(data) = self.entries.get(item.key.as_str()) else {
                        if optional {
                            continue;
                        }
                        return Err(PayloadError::MissingKey {
                            volume: self.volume.to_string(),
                            kind: self.kind,
                            name: self.name.to_string(),
                            what: self.what,
                            key: item.key.clone(),
                        });
                    };
                    let origin = || format!("{} path {:?}", self.origin(&item.key), item.path);
                    let path = checked_path(self.volume, origin, &item.path)?;
                    let mode = match item.mode {
                        Some(m) => file_mode(self.volume, origin, m)?,
                        None => default,
                    };
                    into.insert(path, projection(data, mode));
                }
            }
        }
        Ok(())
    }
}

fn projection(data: &[u8], mode: u32) -> FileProjection {
    FileProjection {
        data: data.to_vec(),
        mode,
        fs_user: None,
    }
}

fn config_map_entries<'a>(
    volume: &str,
    name: &str,
    cm: Option<&'a ConfigMap>,
) -> Result<Entries<'a>, PayloadError> {
    let mut entries: Entries<'a> = BTreeMap::new();
    let Some(cm) = cm else { return Ok(entries) };
    for (k, v) in cm.data.iter().flatten() {
        entries.insert(k, v.as_bytes());
    }
    for (k, v) in cm.binary_data.iter().flatten() {
        if entries.insert(k, &v.0).is_some() {
            return Err(PayloadError::DuplicateKey {
                volume: volume.to_string(),
                name: name.to_string(),
                key: k.clone(),
            });
        }
    }
    Ok(entries)
}

/// A Secret's keys: `data`, with `stringData` over it as the apiserver
/// merges them on write (an apiserver never returns `stringData`; a
/// manifest may carry it).
fn secret_entries(secret: Option<&Secret>) -> Entries<'_> {
    let mut entries: Entries<'_> = BTreeMap::new();
    let Some(secret) = secret else { return entries };
    for (k, v) in secret.data.iter().flatten() {
        entries.insert(k, &v.0);
    }
    for (k, v) in secret.string_data.iter().flatten() {
        entries.insert(k, v.as_bytes());
    }
    entries
}

fn config_map_into(
    volume: &str,
    name: &str,
    items: Option<&[KeyToPath]>,
    optional: bool,
    cm: Option<&ConfigMap>,
    default_mode: i32,
    into: &mut Payload,
) -> Result<(), PayloadError> {
    if cm.is_none() && !optional {
        return Err(PayloadError::NotFound {
            volume: volume.to_string(),
            kind: "configmap",
            name: name.to_string(),
        });
    }
    let keyed = Keyed {
        volume,
        kind: "configmap",
        what: "config",
        name,
        entries: config_map_entries(volume, name, cm)?,
    };
    keyed.payload(items, default_mode, optional, into)
}

fn secret_into(
    volume: &str,
    name: &str,
    items: Option<&[KeyToPath]>,
    optional: bool,
    secret: Option<&Secret>,
    default_mode: i32,
    into: &mut Payload,
) -> Result<(), PayloadError> {
    if secret.is_none() && !optional {
        return Err(PayloadError::NotFound {
            volume: volume.to_string(),
            kind: "secret",
            name: name.to_string(),
        });
    }
    let keyed = Keyed {
        volume,
        kind: "secret",
        what: "secret",
        name,
        entries: secret_entries(secret),
    };
    keyed.payload(items, default_mode, optional, into)
}

/// A configMap volume's files. `cm` is None when the ConfigMap does not
/// exist: an empty volume when the source is optional, else an error (other
/// read errors are the caller's). Keys come from `data` and `binaryData`.
pub fn config_map_payload(
    volume: &str,
    source: &ConfigMapVolumeSource,
    cm: Option<&ConfigMap>,
) -> Result<Payload, PayloadError> {
    if source.name.is_empty() {
        return Err(PayloadError::NoName {
            volume: volume.to_string(),
            kind: "configmap",
        });
    }
    let mut payload = Payload::new();
    config_map_into(
        volume,
        &source.name,
        source.items.as_deref(),
        source.optional.unwrap_or(false),
        cm,
        source.default_mode.unwrap_or(DEFAULT_MODE),
        &mut payload,
    )?;
    Ok(payload)
}

/// A secret volume's files; `secret` is None when the Secret does not
/// exist, as for [`config_map_payload`].
pub fn secret_payload(
    volume: &str,
    source: &SecretVolumeSource,
    secret: Option<&Secret>,
) -> Result<Payload, PayloadError> {
    let name = source.secret_name.as_deref().unwrap_or_default();
    if name.is_empty() {
        return Err(PayloadError::NoName {
            volume: volume.to_string(),
            kind: "secret",
        });
    }
    let mut payload = Payload::new();
    secret_into(
        volume,
        name,
        source.items.as_deref(),
        source.optional.unwrap_or(false),
        secret,
        source.default_mode.unwrap_or(DEFAULT_MODE),
        &mut payload,
    )?;
    Ok(payload)
}

/// A downwardAPI volume's files (Go's `CollectData`): each item's fieldRef
/// (`metadata.name`, `.namespace`, `.uid`, `.labels`, `.annotations`, or
/// one label or annotation by `['key']`) or resourceFieldRef (a container's
/// requests or limits of cpu, memory, ephemeral-storage or hugepages, in
/// units of the divisor, rounded up; unset limits are the node's
/// allocatable). An item with neither is an empty file, as in Go. Every
/// item is tried; all failures are returned together.
pub fn downward_api_payload(
    volume: &str,
    items: &[DownwardAPIVolumeFile],
    default_mode: Option<i32>,
    pod: &Pod,
    node_allocatable: &BTreeMap<String, String>,
) -> Result<Payload, PayloadError> {
    let mut payload = Payload::new();
    downward_into(
        volume,
        items,
        default_mode.unwrap_or(DEFAULT_MODE),
        pod,
        node_allocatable,
        &mut payload,
    )?;
    Ok(payload)
}

fn downward_into(
    volume: &str,
    items: &[DownwardAPIVolumeFile],
    default_mode: i32,
    pod: &Pod,
    node_allocatable: &BTreeMap<String, String>,
    into: &mut Payload,
) -> Result<(), PayloadError> {
    let default = file_mode(
        volume,
        || "downwardAPI defaultMode".to_string(),
        default_mode,
    )?;
    let mut errors = Vec::new();
    for item in items {
        let origin = || format!("downwardAPI item {:?}", item.path);
        let path = match checked_path(volume, origin, &item.path) {
            Ok(p) => p,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let mode = match item.mode.map(|m| file_mode(volume, origin, m)).transpose() {
            Ok(m) => m.unwrap_or(default),
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let value = match (&item.field_ref, &item.resource_field_ref) {
            (Some(ObjectFieldSelector { field_path, .. }), _) => {
                downward::field_value(pod, field_path)
            }
            (None, Some(r)) => resource_value(r, pod, node_allocatable),
            (None, None) => Ok(String::new()),
        };
        match value {
            Ok(v) => {
                into.insert(path, projection(v.as_bytes(), mode));
            }
            Err(why) => errors.push(PayloadError::DownwardApi {
                volume: volume.to_string(),
                path: item.path.clone(),
                why,
            }),
        }
    }
    aggregate(errors)
}

fn resource_value(
    r: &ResourceFieldSelector,
    pod: &Pod,
    node_allocatable: &BTreeMap<String, String>,
) -> Result<String, String> {
    let name = r.container_name.as_deref().unwrap_or_default();
    let container =
        find_container(pod, name).ok_or_else(|| format!("container {name} not found"))?;
    downward::container_resource_value(r, container, node_allocatable)
}

/// Go's `findContainerInPod`: app containers, then init containers.
fn find_container<'a>(pod: &'a Pod, name: &str) -> Option<&'a Container> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
}

/// What a projected volume reads besides the pod: its ConfigMaps, Secrets
/// and service-account tokens, fetched beforehand by the caller.
pub trait ProjectionInputs {
    /// The ConfigMap in the pod's namespace; a not-found error makes an
    /// optional source empty.
    fn config_map(&self, name: &str) -> Result<Arc<ConfigMap>, ObjectError>;
    fn secret(&self, name: &str) -> Result<Arc<Secret>, ObjectError>;
    /// The token for one serviceAccountToken source: a TokenRequest for
    /// the pod's service account with `audiences: [audience]` (none when
    /// the audience is empty: the apiserver's own), the source's
    /// `expirationSeconds` (the API's default is 3600) and the pod as its
    /// bound object. The error is a message.
    fn service_account_token(
        &self,
        source: &ServiceAccountTokenProjection,
    ) -> Result<String, String>;
}

/// [`ProjectionInputs`] from maps filled by an asynchronous fetch (see
/// [`projected_references`]); anything not fetched is unavailable.
#[derive(Default)]
pub struct FetchedInputs {
    /// For messages about objects that were not fetched.
    pub namespace: String,
    pub config_maps: BTreeMap<String, Result<Arc<ConfigMap>, ObjectError>>,
    pub secrets: BTreeMap<String, Result<Arc<Secret>, ObjectError>>,
    /// Keyed by the source's `path`.
    pub tokens: BTreeMap<String, Result<String, String>>,
}

impl FetchedInputs {
    fn not_fetched(&self, kind: &'static str, name: &str) -> ObjectError {
        ObjectError::Unavailable {
            kind,
            namespace: self.namespace.clone(),
            name: name.to_string(),
            message: "not fetched".to_string(),
        }
    }
}

impl ProjectionInputs for FetchedInputs {
    fn config_map(&self, name: &str) -> Result<Arc<ConfigMap>, ObjectError> {
        self.config_maps
            .get(name)
            .cloned()
            .unwrap_or_else(|| Err(self.not_fetched("configmap", name)))
    }

    fn secret(&self, name: &str) -> Result<Arc<Secret>, ObjectError> {
        self.secrets
            .get(name)
            .cloned()
            .unwrap_or_else(|| Err(self.not_fetched("secret", name)))
    }

    fn service_account_token(
        &self,
        source: &ServiceAccountTokenProjection,
    ) -> Result<String, String> {
        self.tokens
            .get(&source.path)
            .cloned()
            .unwrap_or_else(|| Err("token not fetched".to_string()))
    }
}

/// What a projected volume's sources refer to, for the caller to fetch.
#[derive(Debug, Default, PartialEq)]
pub struct ProjectedReferences<'a> {
    pub config_maps: Vec<&'a str>,
    pub secrets: Vec<&'a str>,
    pub tokens: Vec<&'a ServiceAccountTokenProjection>,
}

pub fn projected_references(source: &ProjectedVolumeSource) -> ProjectedReferences<'_> {
    let mut refs = ProjectedReferences::default();
    for s in source.sources.iter().flatten() {
        if let Some(cm) = &s.config_map {
            refs.config_maps.push(&cm.name);
        } else if let Some(secret) = &s.secret {
            refs.secrets.push(&secret.name);
        } else if let Some(token) = &s.service_account_token {
            refs.tokens.push(token);
        }
    }
    refs
}

/// The ownership the volume manager will apply to a volume (the pod's
/// fsGroup, and the user a projected token is chowned to).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VolumeOwnership {
    pub fs_user: Option<i64>,
    pub fs_group: Option<i64>,
}

/// A projected volume's files (Go's `collectData`): its sources in order,
/// each with the volume's `defaultMode`; a later source's file replaces an
/// earlier one at the same path, as in Go. Tokens get `defaultMode`, or
/// 0600 and `fs_user` as owner when the volume's ownership is set. Every
/// source is tried; all failures are returned together.
pub fn projected_payload(
    volume: &str,
    source: &ProjectedVolumeSource,
    pod: &Pod,
    node_allocatable: &BTreeMap<String, String>,
    ownership: VolumeOwnership,
    inputs: &dyn ProjectionInputs,
) -> Result<Payload, PayloadError> {
    let default_mode = source.default_mode.unwrap_or(DEFAULT_MODE);
    let mut payload = Payload::new();
    let mut errors = Vec::new();
    for s in source.sources.iter().flatten() {
        let mut part = Payload::new();
        let result = if let Some(p) = &s.secret {
            let optional = p.optional.unwrap_or(false);
            match fetched(volume, inputs.secret(&p.name), optional) {
                Ok(secret) => secret_into(
                    volume,
                    &p.name,
                    p.items.as_deref(),
                    optional,
                    Some(secret.as_deref().unwrap_or(&Secret::default())),
                    default_mode,
                    &mut part,
                ),
                Err(e) => Err(e),
            }
        } else if let Some(p) = &s.config_map {
            let optional = p.optional.unwrap_or(false);
            match fetched(volume, inputs.config_map(&p.name), optional) {
                Ok(cm) => config_map_into(
                    volume,
                    &p.name,
                    p.items.as_deref(),
                    optional,
                    Some(cm.as_deref().unwrap_or(&ConfigMap::default())),
                    default_mode,
                    &mut part,
                ),
                Err(e) => Err(e),
            }
        } else if let Some(p) = &s.downward_api {
            let items = p.items.as_deref().unwrap_or_default();
            downward_into(
                volume,
                items,
                default_mode,
                pod,
                node_allocatable,
                &mut part,
            )
        } else if let Some(token) = &s.service_account_token {
            token_into(volume, token, default_mode, ownership, inputs, &mut part)
        } else if s.cluster_trust_bundle.is_some() {
            Err(unsupported(volume, "clusterTrustBundle"))
        } else if s.pod_certificate.is_some() {
            Err(unsupported(volume, "podCertificate"))
        } else {
            Ok(())
        };
        match result {
            Ok(()) => payload.extend(part),
            Err(e) => errors.push(e),
        }
    }
    aggregate(errors)?;
    Ok(payload)
}

fn unsupported(volume: &str, kind: &'static str) -> PayloadError {
    PayloadError::Unsupported {
        volume: volume.to_string(),
        kind,
    }
}

/// An object for a projection: None when it is missing and optional (Go
/// then projects an empty object); other failures are errors.
fn fetched<T>(
    volume: &str,
    got: Result<Arc<T>, ObjectError>,
    optional: bool,
) -> Result<Option<Arc<T>>, PayloadError> {
    match got {
        Ok(o) => Ok(Some(o)),
        Err(e) if e.is_not_found() && optional => Ok(None),
        Err(e) => Err(PayloadError::Object {
            volume: volume.to_string(),
            source: e,
        }),
    }
}

fn token_into(
    volume: &str,
    token: &ServiceAccountTokenProjection,
    default_mode: i32,
    ownership: VolumeOwnership,
    inputs: &dyn ProjectionInputs,
    into: &mut Payload,
) -> Result<(), PayloadError> {
    let origin = || format!("serviceAccountToken path {:?}", token.path);
    let path = checked_path(volume, origin, &token.path)?;
    let mode = if ownership.fs_user.is_some() || ownership.fs_group.is_some() {
        TOKEN_MODE_WITH_OWNER
    } else {
        file_mode(volume, origin, default_mode)?
    };
    let value = inputs
        .service_account_token(token)
        .map_err(|why| PayloadError::Token {
            volume: volume.to_string(),
            path: token.path.clone(),
            why,
        })?;
    into.insert(
        path,
        FileProjection {
            data: value.into_bytes(),
            mode,
            fs_user: ownership.fs_user,
        },
    );
    Ok(())
}

#[cfg(test)]
mod tests;
