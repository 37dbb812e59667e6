//! The API objects pods read (the Go kubelet's `pkg/kubelet/configmap`,
//! `pkg/kubelet/secret` and their `util/manager`): ConfigMaps and Secrets
//! for volumes and environment variables, through one [`ObjectGetter`].
//!
//! Two getters exist: the apiserver's (joined mode: a watch of each object
//! the node's pods use) and the manifest directory's (standalone: the
//! ConfigMaps and Secrets written beside the static pods). A pod is
//! registered before its objects are read, so a getter knows what to keep.

pub mod apiserver;
pub mod static_objects;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};

pub use static_objects::StaticObjects;

/// Why an object could not be read. The messages follow the apiserver's
/// (`configmap "x" not found`), which the Go kubelet passes on.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ObjectError {
    #[error("{kind} \"{name}\" not found")]
    NotFound {
        /// "configmap" or "secret", as the apiserver names them.
        kind: &'static str,
        namespace: String,
        name: String,
    },
    /// The source could not answer (the apiserver is away, a watch has not
    /// synced in time); worth retrying.
    #[error("{kind} \"{namespace}/{name}\": {message}")]
    Unavailable {
        kind: &'static str,
        namespace: String,
        name: String,
        message: String,
    },
}

impl ObjectError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ObjectError::NotFound { .. })
    }
}

/// Where pods' ConfigMaps and Secrets come from.
pub trait ObjectGetter: Send + Sync {
    fn get_config_map<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Arc<ConfigMap>, ObjectError>>;

    fn get_secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Arc<Secret>, ObjectError>>;

    /// The pod will read the objects it references (volumes, env, envFrom,
    /// image pull secrets): keep them current. Idempotent.
    fn register_pod(&self, _pod: &Pod) {}

    /// The pod is gone: objects only it referenced may be dropped.
    fn unregister_pod(&self, _pod: &Pod) {}

    /// A receiver that changes whenever any object changes, so mounted
    /// volumes can be refreshed; None when objects never change.
    fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}

/// The getter with no objects: every ConfigMap and Secret is missing.
pub struct NoObjects;

impl ObjectGetter for NoObjects {
    fn get_config_map<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Arc<ConfigMap>, ObjectError>> {
        Box::pin(async move {
            Err(ObjectError::NotFound {
                kind: "configmap",
                namespace: namespace.to_string(),
                name: name.to_string(),
            })
        })
    }

    fn get_secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Arc<Secret>, ObjectError>> {
        Box::pin(async move {
            Err(ObjectError::NotFound {
                kind: "secret",
                namespace: namespace.to_string(),
                name: name.to_string(),
            })
        })
    }
}
