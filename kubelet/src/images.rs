//! Making sure a container's image is on the node before it is created (the
//! Go kubelet's `images.imageManager` and `puller`).
//!
//! Like the Go kubelet: the reference is checked and given `:latest` when it
//! has neither tag nor digest, the pull policy decides whether to pull, and a
//! failed pull backs off (10 s doubling to 5 min). Unlike it, concurrent
//! requests for one image share a single PullImage call, and the backoff is
//! kept per image rather than per pod and image, so one bad image isn't
//! pulled again by every pod that names it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cri_client::RuntimeClient;
use cri_client::proto as pb;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::sync::Semaphore;

use api::{ImageRef, ImageRefError};

use crate::backoff::{Backoff, Nanos, now_nanos};
use crate::events::{EventType, ObjectRef, Recorder, go_duration, reasons};
use crate::{pod_ref, pod_uid};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(
        "Failed to apply default image tag {image:?}: couldn't parse image name {image:?}: {why}"
    )]
    InvalidName {
        image: String,
        #[source]
        why: ImageRefError,
    },
    #[error("Failed to inspect image {image:?}: {source}")]
    Inspect {
        image: String,
        #[source]
        source: cri_client::Error,
    },
    #[error("Container image {image:?} is not present with pull policy of Never")]
    NeverPull { image: String },
    #[error("Back-off pulling image {image:?}")]
    BackOff { image: String },
    #[error("Failed to pull image {image:?}: {source}")]
    Pull {
        image: String,
        #[source]
        source: Arc<cri_client::Error>,
    },
    #[error("Failed to pull image {image:?}: the pull task ended without a result")]
    PullAborted { image: String },
}

impl ImageError {
    /// The container's waiting reason, as the Go kubelet reports it.
    pub fn reason(&self) -> &'static str {
        match self {
            ImageError::InvalidName { .. } => "InvalidImageName",
            ImageError::Inspect { .. } => "ImageInspectError",
            ImageError::NeverPull { .. } => "ErrImageNeverPull",
            ImageError::BackOff { .. } => "ImagePullBackOff",
            ImageError::Pull { .. } | ImageError::PullAborted { .. } => "ErrImagePull",
        }
    }
}

/// Backoff entries older than this start over anyway (10 min).
const FORGET_AFTER_NANOS: Nanos = 600_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

/// The container's imagePullPolicy, or the API's default: Always for the
/// `latest` tag (also when the tag is implied), IfNotPresent otherwise.
pub fn pull_policy(c: &Container, r: &ImageRef) -> PullPolicy {
    match c.image_pull_policy.as_deref() {
        Some("Always") => PullPolicy::Always,
        Some("IfNotPresent") => PullPolicy::IfNotPresent,
        Some("Never") => PullPolicy::Never,
        None | Some("") if r.is_latest() => PullPolicy::Always,
        None | Some("") => PullPolicy::IfNotPresent,
        // API validation would refuse it; Go's shouldPullImage never pulls
        // for a policy it doesn't know, and neither does berth.
        Some(other) => {
            tracing::warn!(container = %c.name, policy = other, "unknown imagePullPolicy, not pulling");
            PullPolicy::Never
        }
    }
}

#[derive(Clone, Debug)]
enum PullFailure {
    Cri(Arc<cri_client::Error>),
    Aborted,
}

/// The image reference the runtime returned, and how long the PullImage call took.
type PullOutcome = Result<(String, Duration), PullFailure>;
type PullFuture = Shared<BoxFuture<'static, PullOutcome>>;

/// A pull under way, with how many syncs wait on it.
struct InFlight {
    pull: PullFuture,
    waiters: usize,
    abort: tokio::task::AbortHandle,
}

/// One sync's interest in a pull. Dropped unfinished (the sync was
/// cancelled), it gives the interest up; the last one gone cancels the pull,
/// as the Go kubelet's pull is cancelled with its pod worker's context.
struct PullInterest {
    inner: Arc<Inner>,
    image: String,
    finished: bool,
}

impl Drop for PullInterest {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut in_flight = self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(f) = in_flight.get_mut(&self.image) {
            f.waiters = f.waiters.saturating_sub(1);
            if f.waiters == 0 {
                tracing::info!(image = %self.image, "no pod waits for the pull any more: cancelling it");
                f.abort.abort();
                in_flight.remove(&self.image);
            }
        }
    }
}

#[derive(Default)]
struct PullBackoff {
    backoff: Backoff,
    failed_at: HashMap<String, Nanos>,
}

struct Inner {
    client: RuntimeClient,
    /// One pull at a time when set (the Go kubelet's serializeImagePulls).
    serial: Option<Semaphore>,
    in_flight: Mutex<HashMap<String, InFlight>>,
    backoff: Mutex<PullBackoff>,
}

/// Pulls images for containers, sharing concurrent pulls of one image.
#[derive(Clone)]
pub struct ImageManager {
    inner: Arc<Inner>,
    /// Pulling, Pulled, Failed, BackOff... about the container, as Go's
    /// image manager records them.
    recorder: Recorder,
}

impl std::fmt::Debug for ImageManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageManager")
            .field("serialize_pulls", &self.inner.serial.is_some())
            .finish_non_exhaustive()
    }
}

impl ImageManager {
    pub fn new(client: RuntimeClient, serialize_pulls: bool) -> Self {
        ImageManager {
            inner: Arc::new(Inner {
                client,
                serial: serialize_pulls.then(|| Semaphore::new(1)),
                in_flight: Mutex::new(HashMap::new()),
                backoff: Mutex::new(PullBackoff::default()),
            }),
            recorder: Recorder::disabled(),
        }
    }

    /// Records image events through `recorder` (none by default).
    pub fn with_recorder(mut self, recorder: Recorder) -> Self {
        self.recorder = recorder;
        self
    }

    /// Makes sure the container's image is present, pulling it as its
    /// policy says. Returns the reference for CreateContainer: the image ID
    /// the runtime reports, as the Go kubelet passes it.
    pub async fn ensure_image(
        &self,
        pod: &Pod,
        c: &Container,
        sandbox: &pb::PodSandboxConfig,
    ) -> Result<String, ImageError> {
        let requested = c.image.as_deref().unwrap_or("");
        let target = ObjectRef::container(pod, &c.name);
        let warn = |e: ImageError, reason: &str| {
            self.recorder
                .event(&target, EventType::Warning, reason, e.to_string());
            e
        };
        let parsed = ImageRef::parse(requested)
            .map_err(|why| ImageError::InvalidName {
                image: requested.to_string(),
                why,
            })
            .map_err(|e| warn(e, reasons::FAILED_TO_INSPECT_IMAGE))?;
        let image = parsed.with_default_tag();
        let policy = pull_policy(c, &parsed);
        let spec = pb::ImageSpec {
            image: image.clone(),
            annotations: pod
                .metadata
                .annotations
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            user_specified_image: requested.to_string(),
            ..Default::default()
        };
        let pref = pod_ref(pod);
        let uid = pod_uid(pod);

        let present = self
            .inner
            .client
            .image_status(pb::ImageStatusRequest {
                image: Some(spec.clone()),
                verbose: false,
            })
            .await
            .map_err(|source| ImageError::Inspect {
                image: image.clone(),
                source,
            })
            .map_err(|e| warn(e, reasons::FAILED_TO_INSPECT_IMAGE))?
            .image
            .map(|i| i.id)
            .filter(|id| !id.is_empty());

        let pull = match (policy, &present) {
            (PullPolicy::Always, _) | (PullPolicy::IfNotPresent, None) => true,
            (PullPolicy::IfNotPresent | PullPolicy::Never, Some(_)) => false,
            (PullPolicy::Never, None) => {
                return Err(warn(
                    ImageError::NeverPull {
                        image: requested.to_string(),
                    },
                    reasons::ERR_IMAGE_NEVER_PULL_POLICY,
                ));
            }
        };
        if !pull {
            tracing::debug!(pod = %pref, uid = %uid, image = requested, "container image already present on machine");
            self.recorder.event(
                &target,
                EventType::Normal,
                reasons::PULLED_IMAGE,
                format!(
                    "Container image {requested:?} already present on machine and can be accessed by the pod"
                ),
            );
            return Ok(present.unwrap_or(image));
        }

        if self.backing_off(&image) {
            tracing::info!(pod = %pref, uid = %uid, image = requested, "back-off pulling image");
            let e = ImageError::BackOff {
                image: requested.to_string(),
            };
            // Go records the back-off as a Normal event.
            self.recorder.event(
                &target,
                EventType::Normal,
                reasons::BACK_OFF_PULL_IMAGE,
                e.to_string(),
            );
            return Err(e);
        }

        tracing::info!(pod = %pref, uid = %uid, image = requested, "pulling image");
        self.recorder.event(
            &target,
            EventType::Normal,
            reasons::PULLING_IMAGE,
            format!("Pulling image {requested:?}"),
        );
        let started = Instant::now();
        let (pull, mut interest) = self.shared_pull(&image, spec, sandbox.clone());
        let outcome = pull.await;
        interest.finished = true;
        match outcome {
            Ok((image_ref, pulled_in)) => {
                tracing::info!(
                    pod = %pref, uid = %uid, image = requested, image_ref = %image_ref,
                    duration = ?pulled_in, including_waiting = ?started.elapsed(),
                    "successfully pulled image"
                );
                let waited = started.elapsed();
                // The size is only for the event: ask only when it is sent.
                let pulled = if image_ref.is_empty() || self.recorder.is_enabled() {
                    let name = if image_ref.is_empty() {
                        &image
                    } else {
                        &image_ref
                    };
                    self.image_status(name).await
                } else {
                    None
                };
                if self.recorder.is_enabled() {
                    let size = pulled.as_ref().map_or(0, |p| p.1);
                    self.recorder.event(
                        &target,
                        EventType::Normal,
                        reasons::PULLED_IMAGE,
                        format!(
                            "Successfully pulled image {requested:?} in {} ({} including waiting). Image size: {size} bytes.",
                            go_duration(pulled_in),
                            go_duration(waited)
                        ),
                    );
                }
                if !image_ref.is_empty() {
                    return Ok(image_ref);
                }
                // Runtimes should return the reference; ask if one didn't.
                Ok(pulled.map(|p| p.0).unwrap_or(image))
            }
            Err(PullFailure::Cri(source)) => {
                tracing::warn!(pod = %pref, uid = %uid, image = requested, duration = ?started.elapsed(), "failed to pull image: {source}");
                Err(warn(
                    ImageError::Pull {
                        image: requested.to_string(),
                        source,
                    },
                    reasons::FAILED_TO_PULL_IMAGE,
                ))
            }
            Err(PullFailure::Aborted) => Err(ImageError::PullAborted {
                image: requested.to_string(),
            }),
        }
    }

    /// The image's ID and size, as the runtime reports them.
    async fn image_status(&self, image: &str) -> Option<(String, u64)> {
        self.inner
            .client
            .image_status(pb::ImageStatusRequest {
                image: Some(pb::ImageSpec {
                    image: image.to_string(),
                    ..Default::default()
                }),
                verbose: false,
            })
            .await
            .ok()?
            .image
            .map(|i| (i.id, i.size))
            .filter(|(id, _)| !id.is_empty())
    }

    fn backing_off(&self, image: &str) -> bool {
        let b = self.inner.backoff.lock().unwrap_or_else(|e| e.into_inner());
        b.failed_at
            .get(image)
            .is_some_and(|&at| b.backoff.remaining(image, at, now_nanos()).is_some())
    }

    /// Joins the pull of `image` already under way, or starts one. The pull
    /// runs in its own task, shared by every sync that needs the image; it
    /// is cancelled when the last of them is.
    fn shared_pull(
        &self,
        image: &str,
        spec: pb::ImageSpec,
        sandbox: pb::PodSandboxConfig,
    ) -> (PullFuture, PullInterest) {
        let mut in_flight = self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let interest = PullInterest {
            inner: Arc::clone(&self.inner),
            image: image.to_string(),
            finished: false,
        };
        if let Some(f) = in_flight.get_mut(image) {
            f.waiters += 1;
            return (f.pull.clone(), interest);
        }
        let inner = Arc::clone(&self.inner);
        let key = image.to_string();
        let task = tokio::spawn(async move {
            let _permit = match &inner.serial {
                Some(s) => s.acquire().await.ok(),
                None => None,
            };
            let started = Instant::now();
            let result = inner
                .client
                .pull_image(pb::PullImageRequest {
                    image: Some(spec),
                    auth: None,
                    sandbox_config: Some(sandbox),
                })
                .await;
            let elapsed = started.elapsed();
            if result.is_err() {
                let mut b = inner.backoff.lock().unwrap_or_else(|e| e.into_inner());
                let now = now_nanos();
                b.backoff.next(&key, now);
                b.failed_at.insert(key.clone(), now);
            }
            // Forget failures older than the backoff's own memory (twice
            // its 5 min cap), so the table doesn't grow without end.
            {
                let mut b = inner.backoff.lock().unwrap_or_else(|e| e.into_inner());
                let now = now_nanos();
                let PullBackoff { backoff, failed_at } = &mut *b;
                failed_at.retain(|_, at| now.saturating_sub(*at) <= FORGET_AFTER_NANOS);
                backoff.retain(|k| failed_at.contains_key(k));
            }
            inner
                .in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
            result
                .map(|r| (r.image_ref, elapsed))
                .map_err(|e| PullFailure::Cri(Arc::new(e)))
        });
        let abort = task.abort_handle();
        let pull: PullFuture = async move { task.await.unwrap_or(Err(PullFailure::Aborted)) }
            .boxed()
            .shared();
        in_flight.insert(
            image.to_string(),
            InFlight {
                pull: pull.clone(),
                waiters: 1,
                abort,
            },
        );
        (pull, interest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tracing_subscriber::layer::{Context, SubscriberExt};

    fn container(v: serde_json::Value) -> Container {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn default_tag_and_policy_follow_the_api_defaults() {
        let digest = format!("sha256:{}", "0".repeat(64));
        let by_digest = format!("busybox@{digest}");
        let latest_and_digest = format!("busybox:latest@{digest}");
        for (image, tagged, policy) in [
            ("busybox", "busybox:latest", PullPolicy::Always),
            ("busybox:latest", "busybox:latest", PullPolicy::Always),
            (
                "localhost:5000/busybox",
                "localhost:5000/busybox:latest",
                PullPolicy::Always,
            ),
            ("busybox:1.36", "busybox:1.36", PullPolicy::IfNotPresent),
            (
                "localhost:5000/busybox:v1",
                "localhost:5000/busybox:v1",
                PullPolicy::IfNotPresent,
            ),
            (
                by_digest.as_str(),
                by_digest.as_str(),
                PullPolicy::IfNotPresent,
            ),
            (
                latest_and_digest.as_str(),
                latest_and_digest.as_str(),
                PullPolicy::Always,
            ),
        ] {
            let r = ImageRef::parse(image).unwrap();
            assert_eq!(r.with_default_tag(), tagged);
            let c = container(serde_json::json!({"name": "c", "image": image}));
            assert_eq!(pull_policy(&c, &r), policy, "{image}");
        }
        let r = ImageRef::parse("busybox").unwrap();
        for (set, want) in [
            ("Never", PullPolicy::Never),
            ("IfNotPresent", PullPolicy::IfNotPresent),
            ("Always", PullPolicy::Always),
        ] {
            let c = container(
                serde_json::json!({"name": "c", "image": "busybox", "imagePullPolicy": set}),
            );
            assert_eq!(pull_policy(&c, &r), want);
        }
    }

    #[test]
    fn reasons_match_the_go_kubelet() {
        let image = "x".to_string();
        assert_eq!(
            ImageError::NeverPull {
                image: image.clone()
            }
            .reason(),
            "ErrImageNeverPull"
        );
        assert_eq!(
            ImageError::BackOff {
                image: image.clone()
            }
            .reason(),
            "ImagePullBackOff"
        );
        assert_eq!(
            ImageError::InvalidName {
                image: image.clone(),
                why: ImageRefError::Empty
            }
            .reason(),
            "InvalidImageName"
        );
        assert_eq!(ImageError::PullAborted { image }.reason(), "ErrImagePull");
    }

    // ---- against the real containerd of tests/env/up ----

    /// Counts PullImage calls as the CRI client logs them.
    struct CountPulls(Arc<AtomicUsize>);

    struct Method(Option<String>);

    impl tracing::field::Visit for Method {
        fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
            if field.name() == "method" {
                self.0 = Some(value.to_string());
            }
        }
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            if field.name() == "method" {
                self.0 = Some(format!("{value:?}"));
            }
        }
    }

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountPulls {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            if event.metadata().target() != cri_client::client::TRACE_TARGET {
                return;
            }
            let mut m = Method(None);
            event.record(&mut m);
            if m.0.as_deref() == Some("PullImage") {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// Installs the counter for this test's thread. The tests run on tokio's
    /// current-thread runtime, so tasks they spawn are counted too.
    fn count_pulls() -> (Arc<AtomicUsize>, tracing::subscriber::DefaultGuard) {
        let n = Arc::new(AtomicUsize::new(0));
        let sub = tracing_subscriber::registry().with(CountPulls(Arc::clone(&n)));
        (n, tracing::subscriber::set_default(sub))
    }

    async fn manager(serialize: bool) -> ImageManager {
        let ep = std::env::var("BERTH_TEST_ENDPOINT")
            .unwrap_or_else(|_| "unix:///run/berth-test/containerd.sock".into());
        let timeouts = cri_client::client::Timeouts {
            call: Duration::from_secs(10),
            ..Default::default()
        };
        match RuntimeClient::connect(Some(&ep), timeouts).await {
            Ok(c) => ImageManager::new(c, serialize),
            Err(e) => panic!(
                "the test containerd is not reachable at {ep} ({e}); start it with tests/env/up"
            ),
        }
    }

    fn busybox() -> String {
        std::env::var("BERTH_TEST_BUSYBOX_IMAGE")
            .unwrap_or_else(|_| "localhost:5000/busybox:latest".into())
    }

    fn pod(uid: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("img-{uid}"), "namespace": "berth-test", "uid": uid},
            "spec": {"containers": []},
        }))
        .unwrap()
    }

    fn sandbox() -> pb::PodSandboxConfig {
        pb::PodSandboxConfig {
            metadata: Some(pb::PodSandboxMetadata {
                name: "images-test".into(),
                uid: "images-test".into(),
                namespace: "berth-test".into(),
                attempt: 0,
            }),
            ..Default::default()
        }
    }

    async fn status_id(m: &ImageManager, image: &str) -> Option<String> {
        m.image_status(image).await.map(|s| s.0)
    }

    #[tokio::test]
    async fn concurrent_always_pulls_share_one_pull_image_call() {
        let (pulls, _guard) = count_pulls();
        let m = manager(true).await;
        let c = container(
            serde_json::json!({"name": "c", "image": busybox(), "imagePullPolicy": "Always"}),
        );
        let sb = sandbox();
        let pods: Vec<Pod> = (0..5).map(|i| pod(&format!("always-{i}"))).collect();
        for round in 1..=2 {
            let results =
                futures_util::future::join_all(pods.iter().map(|p| m.ensure_image(p, &c, &sb)))
                    .await;
            let refs: Vec<String> = results.into_iter().map(|r| r.unwrap()).collect();
            assert!(refs[0].starts_with("sha256:"), "{refs:?}");
            assert!(refs.iter().all(|r| r == &refs[0]), "{refs:?}");
            assert_eq!(Some(refs[0].clone()), status_id(&m, &busybox()).await);
            // Always pulls again each round, but once for all five callers.
            assert_eq!(pulls.load(Ordering::SeqCst), round);
        }
        assert!(m.inner.in_flight.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn if_not_present_uses_the_present_image_without_pulling() {
        let m = manager(true).await;
        let sb = sandbox();
        let always = container(
            serde_json::json!({"name": "c", "image": busybox(), "imagePullPolicy": "Always"}),
        );
        let pulled = m.ensure_image(&pod("inp-0"), &always, &sb).await.unwrap();
        let (pulls, _guard) = count_pulls();
        for policy in ["IfNotPresent", "Never"] {
            let c = container(
                serde_json::json!({"name": "c", "image": busybox(), "imagePullPolicy": policy}),
            );
            assert_eq!(
                m.ensure_image(&pod("inp-1"), &c, &sb).await.unwrap(),
                pulled
            );
        }
        assert_eq!(pulls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn never_with_a_missing_image_is_err_image_never_pull() {
        let (pulls, _guard) = count_pulls();
        let m = manager(true).await;
        let c = container(
            serde_json::json!({"name": "c", "image": "localhost:5000/berth-absent:never", "imagePullPolicy": "Never"}),
        );
        let e = m
            .ensure_image(&pod("never"), &c, &sandbox())
            .await
            .unwrap_err();
        assert_eq!(e.reason(), "ErrImageNeverPull");
        assert_eq!(
            e.to_string(),
            "Container image \"localhost:5000/berth-absent:never\" is not present with pull policy of Never"
        );
        assert_eq!(pulls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_failed_pull_backs_off_without_calling_the_runtime() {
        let (pulls, _guard) = count_pulls();
        let m = manager(true).await;
        let c = container(serde_json::json!({"name": "c", "image": "localhost:5000/nope:1"}));
        let sb = sandbox();
        let e = m.ensure_image(&pod("nope"), &c, &sb).await.unwrap_err();
        assert_eq!(e.reason(), "ErrImagePull", "{e}");
        assert!(
            e.to_string()
                .starts_with("Failed to pull image \"localhost:5000/nope:1\": PullImage: "),
            "{e}"
        );
        // Another pod asking at once is told to wait, and nothing is pulled.
        let e = m.ensure_image(&pod("nope-2"), &c, &sb).await.unwrap_err();
        assert_eq!(e.reason(), "ImagePullBackOff");
        assert_eq!(
            e.to_string(),
            "Back-off pulling image \"localhost:5000/nope:1\""
        );
        assert_eq!(pulls.load(Ordering::SeqCst), 1);
        // Once the backoff has passed, the next call pulls again.
        {
            let mut b = m.inner.backoff.lock().unwrap();
            let at = b.failed_at.get_mut("localhost:5000/nope:1").unwrap();
            *at -= 11_000_000_000;
        }
        let e = m.ensure_image(&pod("nope"), &c, &sb).await.unwrap_err();
        assert_eq!(e.reason(), "ErrImagePull");
        assert_eq!(pulls.load(Ordering::SeqCst), 2);
        // ... and the delay has doubled.
        assert_eq!(
            m.inner
                .backoff
                .lock()
                .unwrap()
                .backoff
                .delay("localhost:5000/nope:1"),
            Some(Duration::from_secs(20))
        );
    }

    #[tokio::test]
    async fn serialized_pulls_wait_for_the_one_in_progress() {
        let (pulls, _guard) = count_pulls();
        let m = manager(true).await;
        let c = container(
            serde_json::json!({"name": "c", "image": busybox(), "imagePullPolicy": "Always"}),
        );
        // Hold the only pull slot, as a long pull of another image would.
        let permit = m.inner.serial.as_ref().unwrap().acquire().await.unwrap();
        let task = {
            let m = m.clone();
            tokio::spawn(async move { m.ensure_image(&pod("serial"), &c, &sandbox()).await })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!task.is_finished());
        assert_eq!(pulls.load(Ordering::SeqCst), 0);
        drop(permit);
        assert!(task.await.unwrap().unwrap().starts_with("sha256:"));
        assert_eq!(pulls.load(Ordering::SeqCst), 1);
        assert!(manager(false).await.inner.serial.is_none());
    }

    #[tokio::test]
    async fn invalid_names_fail_before_any_call() {
        let m = manager(true).await;
        let c = container(serde_json::json!({"name": "c", "image": "Not A/Valid:Image!"}));
        let e = m
            .ensure_image(&pod("bad"), &c, &sandbox())
            .await
            .unwrap_err();
        assert_eq!(e.reason(), "InvalidImageName");
        assert!(
            e.to_string()
                .starts_with("Failed to apply default image tag \"Not A/Valid:Image!\""),
            "{e}"
        );
        let c = container(serde_json::json!({"name": "c"}));
        let e = m
            .ensure_image(&pod("bad"), &c, &sandbox())
            .await
            .unwrap_err();
        assert_eq!(e.reason(), "InvalidImageName");
    }
}
