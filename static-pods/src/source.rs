//! Watching the manifest directory and publishing full snapshots of the desired static pods.
//!
//! Like Go's `file_linux.go`, an inotify watch on the directory drives rescans and a periodic
//! rescan (`file_check_frequency`) catches anything missed. Unlike Go, events only wake a
//! full rescan instead of being applied one by one: at once when every file written has been
//! closed (a manifest saved whole), after a short quiet period while one is still open, and
//! events during a scan fold into the next one, so bursts (editors, `mv`, many files) become
//! few snapshots.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::error::{ConfigError, ManifestError, ManifestErrorKind};
use crate::identity::{self, CONFIG_SEEN_ANNOTATION};
use crate::manifest::{DEFAULT_MAX_FILE_SIZE, ManifestObject, load_documents};
use crate::objects::RedactedSecret;
use api::names::{DNS1123_SUBDOMAIN_MAX, dns1123_subdomain};

/// The Go kubelet's default `fileCheckFrequency`.
pub const DEFAULT_FILE_CHECK_FREQUENCY: Duration = Duration::from_secs(20);
/// Quiet time that ends a burst of events.
const DEBOUNCE: Duration = Duration::from_millis(10);
/// A continuous stream of events still gets a rescan this often.
const MAX_DEBOUNCE: Duration = Duration::from_secs(1);
/// How often a missing directory is looked for (Go retries its watch every second).
const MISSING_DIR_RETRY: Duration = Duration::from_secs(1);

/// Settings of the manifest directory source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The manifest directory (`--pod-manifest-path`).
    pub path: PathBuf,
    /// This node's name; suffixed to pod names and hashed into UIDs.
    pub node_name: String,
    /// Period of the full rescan that backs up inotify.
    pub file_check_frequency: Duration,
    /// Files larger than this are refused without being read.
    pub max_file_size: u64,
}

impl Config {
    /// A config with the default check frequency (20 s) and size limit (10 MiB).
    pub fn new(path: impl Into<PathBuf>, node_name: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            node_name: node_name.into(),
            file_check_frequency: DEFAULT_FILE_CHECK_FREQUENCY,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.node_name.is_empty() {
            return Err(ConfigError::EmptyNodeName);
        }
        if dns1123_subdomain(&self.node_name.to_lowercase(), DNS1123_SUBDOMAIN_MAX).is_err() {
            return Err(ConfigError::InvalidNodeName(self.node_name.clone()));
        }
        if self.file_check_frequency.is_zero() {
            return Err(ConfigError::ZeroFileCheckFrequency);
        }
        if self.max_file_size == 0 {
            return Err(ConfigError::ZeroMaxFileSize);
        }
        Ok(())
    }
}

/// One static pod and the file it came from.
#[derive(Debug, Clone)]
pub struct StaticPod {
    pub path: PathBuf,
    /// Defaulted pod with name, UID, node name and `kubernetes.io/config.*` annotations set.
    /// Shared: while the file's content is unchanged every rescan hands out this same
    /// allocation, so snapshots, the watch channel and the kubelet all hold one copy.
    pub pod: Arc<Pod>,
}

impl PartialEq for StaticPod {
    fn eq(&self, other: &Self) -> bool {
        // Rescans reuse the Arc of an unchanged pod, so the pointer check settles the
        // common case without walking the whole pod.
        self.path == other.path && same_pod(&self.pod, &other.pod)
    }
}

impl StaticPod {
    /// The pod UID (stable across edits of the file).
    pub fn uid(&self) -> &str {
        self.pod.metadata.uid.as_deref().unwrap_or_default()
    }

    /// `namespace/name`.
    pub fn full_name(&self) -> String {
        full_name(&self.pod.metadata)
    }
}

/// The full desired set at one moment.
#[derive(Clone, Default)]
pub struct Snapshot {
    /// The static pods, sorted by file path, then in document order within a file.
    pub pods: Vec<StaticPod>,
    /// ConfigMaps for the static pods of their namespace (namespace defaulted to `default`),
    /// in the same order. An unchanged object keeps its `Arc` across snapshots; an edited
    /// one gets a new `Arc`; a deleted one is absent.
    pub config_maps: Vec<Arc<ConfigMap>>,
    /// Secrets, as `config_maps`: `stringData` already merged into `data`, `type` defaulted
    /// to `Opaque`. `Debug` prints their keys only.
    pub secrets: Vec<Arc<Secret>>,
    /// Files and documents that failed to load (the last valid object of a document may
    /// still be in the lists above), by path.
    pub errors: Vec<ManifestError>,
}

impl Snapshot {
    /// The ConfigMap `namespace/name`, if the directory defines it.
    pub fn config_map(&self, namespace: &str, name: &str) -> Option<&Arc<ConfigMap>> {
        self.config_maps
            .iter()
            .find(|o| is_named(&o.metadata, namespace, name))
    }

    /// The Secret `namespace/name`, if the directory defines it.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<&Arc<Secret>> {
        self.secrets
            .iter()
            .find(|o| is_named(&o.metadata, namespace, name))
    }
}

fn is_named(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    namespace: &str,
    name: &str,
) -> bool {
    meta.namespace.as_deref() == Some(namespace) && meta.name.as_deref() == Some(name)
}

impl PartialEq for Snapshot {
    fn eq(&self, other: &Self) -> bool {
        self.pods == other.pods
            && same_arcs(&self.config_maps, &other.config_maps)
            && same_arcs(&self.secrets, &other.secrets)
            && self.errors == other.errors
    }
}

/// Secret values stay out: Secrets print as [`RedactedSecret`].
impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("pods", &self.pods)
            .field("config_maps", &self.config_maps)
            .field(
                "secrets",
                &self
                    .secrets
                    .iter()
                    .map(|s| RedactedSecret(s))
                    .collect::<Vec<_>>(),
            )
            .field("errors", &self.errors)
            .finish()
    }
}

/// Element-wise, pointer equality first (unchanged objects share their allocation).
fn same_arcs<T: PartialEq>(a: &[Arc<T>], b: &[Arc<T>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| Arc::ptr_eq(x, y) || x == y)
}

/// What kind of object a document defines; with the full name, the identity that two
/// documents may not share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Pod,
    ConfigMap,
    Secret,
}

impl Kind {
    fn resource(self) -> &'static str {
        match self {
            Kind::Pod => "pod",
            Kind::ConfigMap => "configmap",
            Kind::Secret => "secret",
        }
    }
}

type Key = (Kind, String);

/// One accepted object, shared with the snapshots.
#[derive(Debug, Clone)]
enum Item {
    Pod(Arc<Pod>),
    ConfigMap(Arc<ConfigMap>),
    Secret(Arc<Secret>),
}

impl Item {
    fn key(&self) -> Key {
        match self {
            Item::Pod(p) => (Kind::Pod, full_name(&p.metadata)),
            Item::ConfigMap(c) => (Kind::ConfigMap, full_name(&c.metadata)),
            Item::Secret(s) => (Kind::Secret, full_name(&s.metadata)),
        }
    }

    /// `kind namespace/name`, plus the UID for pods; for logs.
    fn label(&self) -> String {
        match self {
            Item::Pod(p) => format!("pod {}", pod_label(p)),
            other => {
                let (kind, name) = other.key();
                format!("{} {name}", kind.resource())
            }
        }
    }
}

/// Per-file memory across scans.
#[derive(Debug, Default)]
struct FileState {
    /// The objects this file last produced that were accepted, by document position
    /// (0-based); pods with their first-seen time. The snapshots share these allocations.
    last_good: BTreeMap<usize, Item>,
    /// Current problems, kept to log only on change.
    errors: Vec<ManifestError>,
}

/// Reads the manifest directory and turns it into [`Snapshot`]s.
#[derive(Debug)]
pub struct StaticPodSource {
    config: Config,
    files: BTreeMap<PathBuf, FileState>,
    current: Snapshot,
    /// Last directory problem logged, to report it once rather than every scan.
    dir_problem: Option<String>,
}

impl StaticPodSource {
    /// Checks the config; nothing is read until [`scan`](Self::scan), [`run`](Self::run) or
    /// [`spawn`](Self::spawn).
    pub fn new(config: Config) -> crate::Result<Self> {
        config.validate()?;
        Ok(Self {
            config,
            files: BTreeMap::new(),
            current: Snapshot::default(),
            dir_problem: None,
        })
    }

    /// Runs the source on a new task. The receiver's first `changed()` fires after the first
    /// full scan (even of an empty or missing directory, so the source counts as seen, like
    /// Go's empty SET update); later ones only when the snapshot changes. The task ends when
    /// every receiver is dropped.
    pub fn spawn(self) -> (watch::Receiver<Snapshot>, JoinHandle<()>) {
        let (tx, rx) = watch::channel(Snapshot::default());
        let handle = tokio::spawn(self.run(tx));
        (rx, handle)
    }

    /// Watches and rescans until every receiver of `tx` is gone.
    pub async fn run(mut self, tx: watch::Sender<Snapshot>) {
        let wake = Arc::new(Wake::default());
        let mut dir_watch: Option<DirWatch> = None;
        let mut first = true;
        loop {
            // Watch before scanning so changes made during the scan trigger another one.
            let id = dir_identity(&self.config.path);
            if dir_watch.as_ref().map(|w| w.id) != id {
                dir_watch = id.and_then(|id| DirWatch::start(&self.config.path, id, &wake));
            }

            let scanned = tokio::task::spawn_blocking(move || {
                let snapshot = self.scan();
                (self, snapshot)
            })
            .await;
            let snapshot;
            (self, snapshot) = match scanned {
                Ok(pair) => pair,
                Err(e) => {
                    warn!(error = %e, "static pod scan task failed; stopping the source");
                    return;
                }
            };
            tx.send_if_modified(|cur| {
                let changed = first || *cur != snapshot;
                if changed {
                    *cur = snapshot;
                }
                changed
            });
            first = false;

            let period = if dir_watch.is_some() {
                self.config.file_check_frequency
            } else {
                self.config.file_check_frequency.min(MISSING_DIR_RETRY)
            };
            tokio::select! {
                () = tx.closed() => return,
                () = wake.notify.notified() => {
                    // Files closed after writing are complete: scan them at
                    // once. Only while one is still open for writing wait
                    // for its writes to settle.
                    if !wake.settled() {
                        debounce(&wake.notify).await;
                    }
                }
                () = tokio::time::sleep(period) => {}
            }
        }
    }

    /// Rescans the directory once and returns the resulting snapshot (also kept as current).
    pub fn scan(&mut self) -> Snapshot {
        let dir = self.config.path.clone();
        let names = match list_manifests(&dir) {
            Ok(names) => {
                if self.dir_problem.take().is_some() {
                    info!(path = %dir.display(), "static pod manifest directory is readable now");
                }
                names
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // Not fatal: the directory may be created later (Go behaves the same way).
                self.report_dir_problem(&dir, "does not exist yet; will keep checking");
                Vec::new()
            }
            Err(e) => {
                // A transient failure must not stop pods, so keep the last snapshot.
                self.report_dir_problem(&dir, &format!("cannot be read: {e}"));
                return self.current.clone();
            }
        };

        let now = jiff::Timestamp::now();
        let mut out = Collected::default();
        let mut present = BTreeMap::new();
        for name in names {
            let path = dir.join(&name);
            let outcome = read_manifest(&path, self.config.max_file_size).and_then(|bytes| {
                load_documents(
                    &path,
                    &bytes,
                    &self.config.node_name,
                    self.config.max_file_size,
                )
            });
            let state = present
                .entry(path.clone())
                .or_insert_with(|| self.files.remove(&path).unwrap_or_default());
            let errors = out.file(&path, state, outcome, now);
            // Logged once, when a problem appears.
            for (e, kept) in &errors {
                if !state.errors.contains(e) {
                    warn!(error = %e, kept = kept.as_deref(), "invalid static manifest");
                }
            }
            state.errors = errors.into_iter().map(|(e, _)| e).collect();
            out.errors.extend(state.errors.iter().cloned());
        }
        self.files = present;

        let snapshot = Snapshot {
            pods: out.pods,
            config_maps: out.config_maps,
            secrets: out.secrets,
            errors: out.errors,
        };
        log_changes(&self.current, &snapshot);
        // Cheap: the objects are shared; only the vectors, paths and errors are copied.
        self.current = snapshot.clone();
        snapshot
    }

    fn report_dir_problem(&mut self, dir: &Path, problem: &str) {
        if self.dir_problem.as_deref() != Some(problem) {
            warn!(path = %dir.display(), "static pod manifest directory {problem}");
            self.dir_problem = Some(problem.to_string());
        }
    }
}

/// A snapshot being assembled, file by file.
#[derive(Default)]
struct Collected {
    pods: Vec<StaticPod>,
    config_maps: Vec<Arc<ConfigMap>>,
    secrets: Vec<Arc<Secret>>,
    errors: Vec<ManifestError>,
    /// Which file defined each object first.
    taken: HashMap<Key, PathBuf>,
}

impl Collected {
    /// Adds what one file yields and updates its state; returns the file's errors, each
    /// with the object kept in its place, if any.
    fn file(
        &mut self,
        path: &Path,
        state: &mut FileState,
        outcome: Result<Vec<crate::DocumentResult>, ManifestError>,
        now: jiff::Timestamp,
    ) -> Vec<(ManifestError, Option<String>)> {
        let old = std::mem::take(&mut state.last_good);
        let mut errors = Vec::new();
        let docs = match outcome {
            Ok(docs) => docs,
            Err(e) => {
                // The whole file is unreadable: keep everything it last defined.
                let mut kept = Vec::new();
                for (i, item) in old {
                    if let Some(item) = self.claim(path, item) {
                        kept.push(item.label());
                        state.last_good.insert(i, item);
                    }
                }
                let kept = (!kept.is_empty()).then(|| kept.join(", "));
                errors.push((e, kept));
                return errors;
            }
        };

        let previous: HashMap<Key, &Item> = old.values().map(|item| (item.key(), item)).collect();
        let fresh: Vec<Result<Item, ManifestError>> = docs
            .into_iter()
            .map(|doc| doc.map(|object| intern(object, &previous, now)))
            .collect();
        let fresh_keys: HashSet<Key> = fresh
            .iter()
            .filter_map(|r| r.as_ref().ok().map(Item::key))
            .collect();
        let numbered = fresh.len() > 1;
        for (i, doc) in fresh.into_iter().enumerate() {
            let mut problem = None;
            let mut accepted = None;
            match doc {
                Ok(item) => {
                    let (kind, name) = item.key();
                    match self.taken.get(&(kind, name.clone())) {
                        Some(owner) => {
                            let kind = match kind {
                                Kind::Pod => ManifestErrorKind::DuplicatePod {
                                    pod: name,
                                    other: owner.clone(),
                                },
                                other => ManifestErrorKind::DuplicateObject {
                                    kind: other.resource(),
                                    name,
                                    other: owner.clone(),
                                },
                            };
                            problem = Some(
                                ManifestError::new(path, kind)
                                    .in_document(numbered.then_some(i + 1)),
                            );
                        }
                        None => accepted = self.claim(path, item),
                    }
                }
                Err(e) => problem = Some(e),
            }
            // Departure from Go, which drops the pod: a broken edit keeps the object this
            // document last defined, so a typo does not take a static pod (or what it
            // mounts) away. Not if another document of the file now defines it.
            let mut kept = None;
            if accepted.is_none()
                && let Some(prev) = old.get(&i)
                && !fresh_keys.contains(&prev.key())
            {
                accepted = self.claim(path, prev.clone());
                kept = accepted.as_ref().map(Item::label);
            }
            if let Some(item) = accepted {
                state.last_good.insert(i, item);
            }
            errors.extend(problem.map(|e| (e, kept)));
        }
        errors
    }

    /// Adds the object to the snapshot unless an earlier document took its identity.
    fn claim(&mut self, path: &Path, item: Item) -> Option<Item> {
        let key = item.key();
        if self.taken.contains_key(&key) {
            return None;
        }
        self.taken.insert(key, path.to_path_buf());
        match &item {
            Item::Pod(pod) => self.pods.push(StaticPod {
                path: path.to_path_buf(),
                pod: Arc::clone(pod),
            }),
            Item::ConfigMap(cm) => self.config_maps.push(Arc::clone(cm)),
            Item::Secret(secret) => self.secrets.push(Arc::clone(secret)),
        }
        Some(item)
    }
}

/// Wraps a freshly parsed object, handing out the previous allocation when the file's
/// content for it is unchanged, so an object is allocated once for as long as it stays the
/// same.
fn intern(object: ManifestObject, previous: &HashMap<Key, &Item>, now: jiff::Timestamp) -> Item {
    match object {
        ManifestObject::Pod(pod) => {
            let prev = match previous.get(&(Kind::Pod, full_name(&pod.metadata))) {
                Some(Item::Pod(p)) => Some(p),
                _ => None,
            };
            let pod = with_first_seen(*pod, prev.map(|p| &**p), now);
            Item::Pod(match prev {
                Some(old) if **old == pod => Arc::clone(old),
                _ => Arc::new(pod),
            })
        }
        ManifestObject::ConfigMap(cm) => {
            match previous.get(&(Kind::ConfigMap, full_name(&cm.metadata))) {
                Some(Item::ConfigMap(old)) if **old == cm => Item::ConfigMap(Arc::clone(old)),
                _ => Item::ConfigMap(Arc::new(cm)),
            }
        }
        ManifestObject::Secret(secret) => {
            match previous.get(&(Kind::Secret, full_name(&secret.metadata))) {
                Some(Item::Secret(old)) if **old == secret => Item::Secret(Arc::clone(old)),
                _ => Item::Secret(Arc::new(secret)),
            }
        }
    }
}

/// Pointer equality first: an unchanged pod is the same allocation.
fn same_pod(a: &Arc<Pod>, b: &Arc<Pod>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

fn full_name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

fn pod_label(pod: &Pod) -> String {
    format!(
        "{} ({})",
        full_name(&pod.metadata),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}

fn config_hash(pod: &Pod) -> Option<&String> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(identity::CONFIG_HASH_ANNOTATION)
}

/// Keeps the first-seen time of an unchanged pod so rescans do not make the snapshot flap.
fn with_first_seen(mut pod: Pod, previous: Option<&Pod>, now: jiff::Timestamp) -> Pod {
    let previous_seen = previous
        .filter(|old| config_hash(old) == config_hash(&pod))
        .and_then(|old| old.metadata.annotations.as_ref())
        .and_then(|a| a.get(CONFIG_SEEN_ANNOTATION))
        .cloned();
    match previous_seen {
        Some(seen) => {
            pod.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(CONFIG_SEEN_ANNOTATION.into(), seen);
        }
        None => identity::set_first_seen(&mut pod, now),
    }
    pod
}

fn log_changes(old: &Snapshot, new: &Snapshot) {
    let before: HashMap<String, &StaticPod> = old.pods.iter().map(|p| (p.full_name(), p)).collect();
    let after: HashSet<String> = new.pods.iter().map(StaticPod::full_name).collect();
    for p in &new.pods {
        match before.get(&p.full_name()) {
            None => {
                info!(path = %p.path.display(), pod = %p.full_name(), uid = %p.uid(), "static pod added")
            }
            Some(o) if !same_pod(&o.pod, &p.pod) => info!(
                path = %p.path.display(),
                pod = %p.full_name(),
                uid = %p.uid(),
                old_uid = %o.uid(),
                "static pod changed"
            ),
            Some(_) => {}
        }
    }
    for o in &old.pods {
        if !after.contains(&o.full_name()) {
            info!(path = %o.path.display(), pod = %o.full_name(), uid = o.uid(), "static pod removed");
        }
    }
    log_object_changes("configmap", &old.config_maps, &new.config_maps, |o| {
        &o.metadata
    });
    log_object_changes("secret", &old.secrets, &new.secrets, |o| &o.metadata);
}

/// Names only: a Secret's content never reaches the log.
fn log_object_changes<T: PartialEq>(
    kind: &str,
    old: &[Arc<T>],
    new: &[Arc<T>],
    meta: impl Fn(&T) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) {
    let before: HashMap<String, &Arc<T>> = old.iter().map(|o| (full_name(meta(o)), o)).collect();
    let after: HashSet<String> = new.iter().map(|o| full_name(meta(o))).collect();
    for o in new {
        let name = full_name(meta(o));
        match before.get(&name) {
            None => info!(kind, name, "static object added"),
            Some(prev) if !Arc::ptr_eq(prev, o) && ***prev != **o => {
                info!(kind, name, "static object changed");
            }
            Some(_) => {}
        }
    }
    for o in old {
        let name = full_name(meta(o));
        if !after.contains(&name) {
            warn!(
                kind,
                name, "static object removed; pods that use it keep its last content"
            );
        }
    }
}

/// Editor leftovers and hidden files that are never manifests: dotfiles (vim `.x.swp`, emacs
/// `.#x`), backups (`x~`), emacs autosaves (`#x#`), swap files and vim's `4913` write probe.
pub fn is_ignored_name(name: &str) -> bool {
    name.starts_with('.')
        || name.starts_with('#')
        || name.ends_with('~')
        || name.ends_with('#')
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name == "4913"
}

/// Whether a directory entry name is read as a manifest (`*.yaml`, `*.yml`, `*.json`).
/// Go reads every non-hidden file; Berth only reads manifest extensions.
pub fn is_manifest_name(name: &str) -> bool {
    if is_ignored_name(name) {
        return false;
    }
    match Path::new(name).extension() {
        Some(ext) => ["yaml", "yml", "json"]
            .iter()
            .any(|want| ext.eq_ignore_ascii_case(want)),
        None => false,
    }
}

/// Manifest file names in the directory, skipping directories (Go does not recurse either).
fn list_manifests(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            debug!(path = %entry.path().display(), "skipping non-UTF-8 file name");
            continue;
        };
        if !is_manifest_name(&name) {
            continue;
        }
        // Follows symlinks; a dangling one is reported when it is read.
        if fs::metadata(entry.path()).is_ok_and(|m| m.is_dir()) {
            debug!(path = %entry.path().display(), "not recursing into directory");
            continue;
        }
        names.push(name);
    }
    names.sort();
    Ok(names)
}

/// Reads a manifest, following symlinks, refusing non-regular and oversized files without
/// reading them whole.
fn read_manifest(path: &Path, max: u64) -> Result<Vec<u8>, ManifestError> {
    let err = |kind| ManifestError::new(path, kind);
    let read_err = |e: std::io::Error| err(ManifestErrorKind::Read(e.to_string()));
    let meta = fs::metadata(path).map_err(read_err)?;
    if !meta.is_file() {
        return Err(err(ManifestErrorKind::NotRegularFile));
    }
    if meta.len() > max {
        return Err(err(ManifestErrorKind::TooLarge {
            size: meta.len(),
            limit: max,
        }));
    }
    // O_NONBLOCK so a file swapped for a FIFO after the check cannot block the open;
    // the fstat below then rejects it.
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(err(ManifestErrorKind::NotRegularFile));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len().min(max)).unwrap_or(0));
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    let size = bytes.len() as u64;
    if size > max {
        // It grew after the size check.
        return Err(err(ManifestErrorKind::TooLarge { size, limit: max }));
    }
    Ok(bytes)
}

/// (device, inode) of the directory, following symlinks; changes when it is replaced.
fn dir_identity(path: &Path) -> Option<(u64, u64)> {
    fs::metadata(path)
        .ok()
        .filter(|m| m.is_dir())
        .map(|m| (m.dev(), m.ino()))
}

/// What the directory watch tells the scan loop.
#[derive(Default)]
struct Wake {
    notify: Notify,
    /// Manifests opened for writing and not closed yet.
    writing: std::sync::Mutex<HashSet<PathBuf>>,
}

impl Wake {
    /// No manifest is being written: a scan now reads whole files.
    fn settled(&self) -> bool {
        self.writing.lock().is_ok_and(|w| w.is_empty())
    }

    /// Notes what an event says about writes in progress; false if the
    /// event changes nothing the scan reads.
    fn note(&self, event: &notify::Event) -> bool {
        let opened = match event.kind {
            // A writer closed the file: it is complete.
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => false,
            // Our own reads show up as access events; they change nothing.
            EventKind::Access(_) => return false,
            EventKind::Create(_) | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => true,
            // Removed or renamed (an atomic replace lands whole).
            _ => false,
        };
        let manifests: Vec<&PathBuf> = event
            .paths
            .iter()
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_none_or(|n| !is_ignored_name(n) || n.starts_with(".."))
            })
            .collect();
        if let Ok(mut writing) = self.writing.lock() {
            for p in &manifests {
                if opened {
                    writing.insert(PathBuf::clone(p));
                } else {
                    writing.remove(*p);
                }
            }
        }
        event.paths.is_empty() || !manifests.is_empty()
    }
}

/// An inotify watch on the manifest directory that wakes the scan loop.
struct DirWatch {
    id: (u64, u64),
    _watcher: notify::RecommendedWatcher,
}

impl DirWatch {
    /// Starts watching; on failure logs and returns None so periodic rescans still run.
    fn start(path: &Path, id: (u64, u64), wake: &Arc<Wake>) -> Option<Self> {
        let wake = Arc::clone(wake);
        let handler = move |res: notify::Result<notify::Event>| match res {
            Ok(event) => {
                if wake.note(&event) {
                    wake.notify.notify_one();
                }
            }
            Err(e) => {
                warn!(error = %e, "static pod directory watch error; rescanning");
                wake.notify.notify_one();
            }
        };
        let mut watcher = match notify::recommended_watcher(handler) {
            Ok(w) => w,
            Err(e) => {
                warn!(error = %e, "cannot create inotify watcher; relying on periodic rescans");
                return None;
            }
        };
        if let Err(e) = watcher.watch(path, RecursiveMode::NonRecursive) {
            warn!(path = %path.display(), error = %e, "cannot watch static pod directory; relying on periodic rescans");
            return None;
        }
        debug!(path = %path.display(), "watching static pod manifest directory");
        Some(Self {
            id,
            _watcher: watcher,
        })
    }
}

/// Waits until events stop for [`DEBOUNCE`], or at most [`MAX_DEBOUNCE`].
async fn debounce(wake: &Notify) {
    let deadline = Instant::now() + MAX_DEBOUNCE;
    loop {
        tokio::select! {
            () = wake.notified() => {
                if Instant::now() >= deadline {
                    return;
                }
            }
            () = tokio::time::sleep(DEBOUNCE) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(name: &str, image: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: c\n    image: {image}\n"
        )
    }

    fn pod_of<'a>(s: &'a Snapshot, file: &str) -> &'a Arc<Pod> {
        &s.pods
            .iter()
            .find(|p| p.path.file_name().is_some_and(|n| n == file))
            .unwrap()
            .pod
    }

    #[test]
    fn rescans_share_unchanged_pods_and_replace_changed_ones() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.yaml"), manifest("a", "nginx:1.25")).unwrap();
        fs::write(dir.path().join("b.yaml"), manifest("b", "nginx:1.25")).unwrap();
        let mut source = StaticPodSource::new(Config::new(dir.path(), "node1")).unwrap();

        let first = source.scan();
        assert_eq!(first.pods.len(), 2);
        let again = source.scan();
        assert_eq!(again, first);
        for file in ["a.yaml", "b.yaml"] {
            assert!(
                Arc::ptr_eq(pod_of(&again, file), pod_of(&first, file)),
                "{file} was reallocated although it did not change"
            );
        }

        fs::write(dir.path().join("a.yaml"), manifest("a", "nginx:1.26")).unwrap();
        let edited = source.scan();
        assert_ne!(edited, first);
        let a = pod_of(&edited, "a.yaml");
        assert!(!Arc::ptr_eq(a, pod_of(&first, "a.yaml")));
        assert_eq!(
            a.spec.as_ref().unwrap().containers[0].image.as_deref(),
            Some("nginx:1.26")
        );
        assert!(Arc::ptr_eq(
            pod_of(&edited, "b.yaml"),
            pod_of(&first, "b.yaml")
        ));

        // The edited pod is then the one kept, and a broken edit keeps it too.
        assert!(Arc::ptr_eq(pod_of(&source.scan(), "a.yaml"), a));
        fs::write(dir.path().join("a.yaml"), "not: [a pod").unwrap();
        let broken = source.scan();
        assert_eq!(broken.errors.len(), 1);
        assert!(Arc::ptr_eq(pod_of(&broken, "a.yaml"), a));
    }
}
