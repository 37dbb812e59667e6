//! The standalone [`ObjectGetter`]: the ConfigMaps and Secrets written in the manifest
//! directory beside the static pods (`static_pods::Snapshot::config_maps` / `secrets`).
//!
//! The Go kubelet has no counterpart: its static pods may not reference API objects. Here
//! a static pod reads the objects of its own namespace, by name, exactly as it would read
//! them from the apiserver, and the messages of a missing object are the apiserver's.
//!
//! Feeding it: call [`StaticObjects::set_snapshot`] with every snapshot of the manifest
//! source, *before* handing that snapshot's pods on, so a pod's first sync already finds the
//! objects written beside it. [`StaticObjects::follow`] does the same from its own task,
//! for callers that do not need that ordering.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use futures_util::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::sync::watch;

use super::{ObjectError, ObjectGetter};

/// `(namespace, name)`.
type Key = (String, String);

#[derive(Default)]
struct Objects {
    config_maps: HashMap<Key, Arc<ConfigMap>>,
    secrets: HashMap<Key, Arc<Secret>>,
}

/// ConfigMaps and Secrets from the manifest directory, replaced whole on every update.
///
/// Lookups return the current object; a deleted one is `NotFound` from then on (a volume
/// that mounted it keeps its last content: that is the volume's decision). Registration is
/// a no-op: every object of the directory is always kept.
pub struct StaticObjects {
    objects: RwLock<Objects>,
    /// Bumped once per update that added, changed or removed an object.
    changes: watch::Sender<u64>,
}

impl Default for StaticObjects {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for StaticObjects {
    /// Counts only: Secrets have values to keep out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (config_maps, secrets) = self
            .objects
            .read()
            .map(|o| (o.config_maps.len(), o.secrets.len()))
            .unwrap_or_default();
        f.debug_struct("StaticObjects")
            .field("config_maps", &config_maps)
            .field("secrets", &secrets)
            .field("generation", &*self.changes.borrow())
            .finish()
    }
}

impl StaticObjects {
    /// No objects yet.
    pub fn new() -> Self {
        Self {
            objects: RwLock::new(Objects::default()),
            changes: watch::Sender::new(0),
        }
    }

    /// Replaces every object with these (the full set of the manifest directory). Returns
    /// whether anything was added, changed or removed; if so, [`ObjectGetter::changes`]
    /// receivers see a new value. Objects without a namespace count as `default`'s.
    pub fn set(&self, config_maps: &[Arc<ConfigMap>], secrets: &[Arc<Secret>]) -> bool {
        let next = Objects {
            config_maps: index(config_maps, |o| &o.metadata),
            secrets: index(secrets, |o| &o.metadata),
        };
        let changed = {
            // A poisoned lock only means a panic elsewhere mid-update; the maps are whole.
            let mut current = self.objects.write().unwrap_or_else(|e| e.into_inner());
            let changed = !same(&current.config_maps, &next.config_maps)
                || !same(&current.secrets, &next.secrets);
            if changed {
                *current = next;
            }
            changed
        };
        if changed {
            self.changes.send_modify(|generation| *generation += 1);
        }
        changed
    }

    /// [`set`](Self::set) from a snapshot of the manifest source.
    pub fn set_snapshot(&self, snapshot: &static_pods::Snapshot) -> bool {
        self.set(&snapshot.config_maps, &snapshot.secrets)
    }

    /// Applies the current snapshot, then every new one, until the source stops.
    pub async fn follow(self: Arc<Self>, mut snapshots: watch::Receiver<static_pods::Snapshot>) {
        loop {
            {
                let snapshot = snapshots.borrow_and_update();
                self.set_snapshot(&snapshot);
            }
            if snapshots.changed().await.is_err() {
                return;
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Objects> {
        self.objects.read().unwrap_or_else(|e| e.into_inner())
    }

    fn config_map(&self, namespace: &str, name: &str) -> Result<Arc<ConfigMap>, ObjectError> {
        self.read()
            .config_maps
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
            .ok_or_else(|| not_found("configmap", namespace, name))
    }

    fn secret(&self, namespace: &str, name: &str) -> Result<Arc<Secret>, ObjectError> {
        self.read()
            .secrets
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
            .ok_or_else(|| not_found("secret", namespace, name))
    }
}

impl ObjectGetter for StaticObjects {
    fn get_config_map<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Arc<ConfigMap>, ObjectError>> {
        let result = self.config_map(namespace, name);
        Box::pin(async move { result })
    }

    fn get_secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Arc<Secret>, ObjectError>> {
        let result = self.secret(namespace, name);
        Box::pin(async move { result })
    }

    fn changes(&self) -> Option<watch::Receiver<u64>> {
        Some(self.changes.subscribe())
    }
}

fn not_found(kind: &'static str, namespace: &str, name: &str) -> ObjectError {
    ObjectError::NotFound {
        kind,
        namespace: namespace.to_string(),
        name: name.to_string(),
    }
}

fn index<T>(objects: &[Arc<T>], meta: impl Fn(&T) -> &ObjectMeta) -> HashMap<Key, Arc<T>> {
    objects
        .iter()
        .map(|o| {
            let m = meta(o);
            let namespace = match m.namespace.as_deref() {
                None | Some("") => api::defaults::DEFAULT_NAMESPACE,
                Some(ns) => ns,
            };
            let name = m.name.clone().unwrap_or_default();
            ((namespace.to_string(), name), Arc::clone(o))
        })
        .collect()
}

/// Same keys, each the same allocation or equal content.
fn same<T: PartialEq>(a: &HashMap<Key, Arc<T>>, b: &HashMap<Key, Arc<T>>) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(key, x)| b.get(key).is_some_and(|y| Arc::ptr_eq(x, y) || **x == **y))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;

    use super::*;

    fn meta(namespace: Option<&str>, name: &str) -> ObjectMeta {
        ObjectMeta {
            namespace: namespace.map(str::to_string),
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        }
    }

    fn cm(namespace: Option<&str>, name: &str, value: &str) -> Arc<ConfigMap> {
        Arc::new(ConfigMap {
            metadata: meta(namespace, name),
            data: Some(BTreeMap::from([("k".to_string(), value.to_string())])),
            ..ConfigMap::default()
        })
    }

    fn secret(namespace: Option<&str>, name: &str, value: &[u8]) -> Arc<Secret> {
        Arc::new(Secret {
            metadata: meta(namespace, name),
            data: Some(BTreeMap::from([(
                "k".to_string(),
                ByteString(value.to_vec()),
            )])),
            type_: Some("Opaque".to_string()),
            ..Secret::default()
        })
    }

    #[tokio::test]
    async fn lookups_by_namespace_and_name() {
        let objects = StaticObjects::new();
        let web = cm(Some("default"), "web", "1");
        let creds = secret(Some("kube-system"), "creds", b"pw");
        assert!(objects.set(
            &[Arc::clone(&web), cm(None, "implicit", "2")],
            &[Arc::clone(&creds)]
        ));

        let got = objects.get_config_map("default", "web").await.unwrap();
        assert!(Arc::ptr_eq(&got, &web));
        assert!(objects.get_config_map("default", "implicit").await.is_ok());
        let got = objects.get_secret("kube-system", "creds").await.unwrap();
        assert!(Arc::ptr_eq(&got, &creds));

        // Another namespace's object is not this pod's; kinds do not mix.
        let e = objects.get_secret("default", "creds").await.unwrap_err();
        assert!(e.is_not_found());
        assert_eq!(e.to_string(), "secret \"creds\" not found");
        let e = objects
            .get_config_map("kube-system", "creds")
            .await
            .unwrap_err();
        assert_eq!(
            e,
            ObjectError::NotFound {
                kind: "configmap",
                namespace: "kube-system".into(),
                name: "creds".into(),
            }
        );
        assert_eq!(e.to_string(), "configmap \"creds\" not found");

        let debug = format!("{objects:?}");
        assert!(!debug.contains("pw") && !debug.contains("112"), "{debug}");
    }

    #[tokio::test]
    async fn changes_bump_on_add_edit_and_delete_only() {
        let objects = StaticObjects::new();
        let mut changes = objects.changes().unwrap();
        assert_eq!(*changes.borrow_and_update(), 0);

        let a = cm(None, "a", "1");
        let s = secret(None, "s", b"x");
        assert!(objects.set(&[Arc::clone(&a)], &[Arc::clone(&s)]));
        assert!(changes.has_changed().unwrap());
        assert_eq!(*changes.borrow_and_update(), 1);

        // The same objects, or equal ones in new allocations: nothing to refresh.
        assert!(!objects.set(&[Arc::clone(&a)], &[Arc::clone(&s)]));
        assert!(!objects.set(&[cm(None, "a", "1")], &[secret(None, "s", b"x")]));
        assert!(!changes.has_changed().unwrap());

        // An edit.
        assert!(objects.set(&[cm(None, "a", "2")], &[Arc::clone(&s)]));
        assert_eq!(*changes.borrow_and_update(), 2);
        let got = objects.get_config_map("default", "a").await.unwrap();
        assert_eq!(got.data.as_ref().unwrap()["k"], "2");

        // A deletion: the object is gone from then on.
        assert!(objects.set(&[cm(None, "a", "2")], &[]));
        assert_eq!(*changes.borrow_and_update(), 3);
        assert!(
            objects
                .get_secret("default", "s")
                .await
                .unwrap_err()
                .is_not_found()
        );
    }

    #[tokio::test]
    async fn follows_the_manifest_source() {
        let (tx, rx) = watch::channel(static_pods::Snapshot::default());
        let objects = Arc::new(StaticObjects::new());
        let mut changes = objects.changes().unwrap();
        let task = tokio::spawn(Arc::clone(&objects).follow(rx));

        tx.send_modify(|s| s.config_maps = vec![cm(None, "a", "1")]);
        tokio::time::timeout(std::time::Duration::from_secs(5), changes.changed())
            .await
            .unwrap()
            .unwrap();
        assert!(objects.get_config_map("default", "a").await.is_ok());

        tx.send_modify(|s| s.config_maps.clear());
        tokio::time::timeout(std::time::Duration::from_secs(5), changes.changed())
            .await
            .unwrap()
            .unwrap();
        assert!(objects.get_config_map("default", "a").await.is_err());

        drop(tx);
        tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn a_snapshot_feeds_it_directly() {
        let snapshot = static_pods::Snapshot {
            secrets: vec![secret(Some("ns"), "s", b"x")],
            ..Default::default()
        };
        let objects = StaticObjects::default();
        assert!(objects.set_snapshot(&snapshot));
        assert!(!objects.set_snapshot(&snapshot));
        assert!(objects.secret("ns", "s").is_ok());
    }
}
