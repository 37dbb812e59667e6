//! The writer side of client-go's recorder (`recordToSink`, `recordEvent`
//! and `EventSinkImpl`): one task takes queued events, correlates them and
//! writes each to the apiserver, retrying while the apiserver is away.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::sync::mpsc;

use super::correlator::{Correlated, Correlator};
use crate::kubelet_node_status::ClientSource;

/// Go's `maxTriesPerEvent`.
pub const MAX_TRIES_PER_EVENT: usize = 12;
/// Go's `defaultSleepDuration` between tries.
pub const RETRY_SLEEP: Duration = Duration::from_secs(10);

/// Why a write failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    /// The apiserver answered with an error status: the event is dropped,
    /// as Go drops an event on a `StatusError`.
    #[error("the apiserver rejected the event ({code} {reason}): {message}")]
    Rejected {
        code: u16,
        reason: String,
        message: String,
    },
    /// No answer (connection, TLS, an unreadable response): worth a retry.
    #[error("writing the event failed: {0}")]
    Transport(String),
}

impl SinkError {
    fn is_not_found(&self) -> bool {
        matches!(self, SinkError::Rejected { code: 404, .. })
    }

    fn is_already_exists(&self) -> bool {
        matches!(self, SinkError::Rejected { code: 409, reason, .. } if reason == "AlreadyExists")
    }
}

impl From<kube::Error> for SinkError {
    fn from(e: kube::Error) -> Self {
        match e {
            kube::Error::Api(status) => SinkError::Rejected {
                code: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
            },
            other => SinkError::Transport(other.to_string()),
        }
    }
}

/// Where events are written: the apiserver, or a test double.
pub trait EventSink: Send + Sync {
    /// POST the event into its namespace; the server's copy on success.
    fn create<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<Event, SinkError>>;
    /// Strategic-merge PATCH of the named event; the server's copy.
    fn patch<'a>(
        &'a self,
        event: &'a Event,
        patch: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<Event, SinkError>>;
}

/// Writes core/v1 Events with the current client of a [`ClientSource`].
pub struct ApiSink {
    client: ClientSource,
}

impl ApiSink {
    pub fn new(client: ClientSource) -> Self {
        ApiSink { client }
    }

    fn api(&self, event: &Event) -> Api<Event> {
        let ns = event.metadata.namespace.as_deref().unwrap_or("default");
        Api::namespaced((self.client)(), ns)
    }
}

impl EventSink for ApiSink {
    fn create<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<Event, SinkError>> {
        Box::pin(async move {
            Ok(self
                .api(event)
                .create(&PostParams::default(), event)
                .await?)
        })
    }

    fn patch<'a>(
        &'a self,
        event: &'a Event,
        patch: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<Event, SinkError>> {
        Box::pin(async move {
            let name = event.metadata.name.as_deref().unwrap_or("");
            Ok(self
                .api(event)
                .patch(name, &PatchParams::default(), &Patch::Strategic(patch))
                .await?)
        })
    }
}

/// How the writer retries.
#[derive(Debug, Clone, Copy)]
pub struct SinkOptions {
    pub max_tries: usize,
    pub retry_sleep: Duration,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions {
            max_tries: MAX_TRIES_PER_EVENT,
            retry_sleep: RETRY_SLEEP,
        }
    }
}

/// Writes queued events until every sender is gone.
pub async fn run(
    mut rx: mpsc::Receiver<Event>,
    sink: Arc<dyn EventSink>,
    mut correlator: Correlator,
    options: SinkOptions,
) {
    while let Some(event) = rx.recv().await {
        record_to_sink(sink.as_ref(), &mut correlator, event, options).await;
    }
    tracing::debug!("event recorder closed");
}

/// Go's `recordToSink`: correlate, then write with bounded retries; the
/// first pause is randomised so nodes do not retry in step after an
/// apiserver outage.
pub async fn record_to_sink(
    sink: &dyn EventSink,
    correlator: &mut Correlator,
    event: Event,
    options: SinkOptions,
) {
    let (event, patch) = match correlator.correlate(event) {
        Correlated::Skip => return,
        Correlated::Create(e) => (*e, None),
        Correlated::Patch { event, patch } => (*event, Some(patch)),
    };
    let mut tries = 0;
    loop {
        if record_event(sink, correlator, &event, patch.as_ref()).await {
            return;
        }
        tries += 1;
        if tries >= options.max_tries {
            tracing::warn!(
                object = %object_of(&event),
                reason = event.reason.as_deref().unwrap_or(""),
                "unable to write event (retry limit exceeded)"
            );
            return;
        }
        let delay = if tries == 1 {
            options.retry_sleep.mul_f64(fastrand::f64())
        } else {
            options.retry_sleep
        };
        tokio::time::sleep(delay).await;
    }
}

/// Go's `recordEvent`: true when the event was written or must be dropped,
/// false to retry.
async fn record_event(
    sink: &dyn EventSink,
    correlator: &mut Correlator,
    event: &Event,
    patch: Option<&serde_json::Value>,
) -> bool {
    // A patch of an event that expired (or was deleted) creates it anew.
    let patched = match patch {
        Some(p) => match sink.patch(event, p).await {
            Err(e) if e.is_not_found() => None,
            answered => Some(answered),
        },
        None => None,
    };
    let result = match patched {
        Some(answered) => answered,
        None => {
            let mut fresh = event.clone();
            fresh.metadata.resource_version = None;
            sink.create(&fresh).await
        }
    };
    let object = object_of(event);
    let reason = event.reason.as_deref().unwrap_or("");
    match result {
        Ok(stored) => {
            correlator.update_state(&stored);
            true
        }
        Err(e @ SinkError::Rejected { .. }) => {
            if e.is_already_exists() {
                tracing::debug!(object = %object, reason, "server rejected event (will not retry): {e}");
            } else {
                tracing::warn!(object = %object, reason, "server rejected event (will not retry): {e}");
            }
            true
        }
        Err(e) => {
            tracing::warn!(object = %object, reason, "unable to write event (may retry after sleeping): {e}");
            false
        }
    }
}

fn object_of(event: &Event) -> String {
    let o = &event.involved_object;
    format!(
        "{}/{}",
        o.namespace.as_deref().unwrap_or(""),
        o.name.as_deref().unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EventSource, ObjectReference};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use std::collections::VecDeque;
    use std::sync::Mutex;

    /// Records calls and answers from a script (then success).
    #[derive(Default)]
    struct FakeSink {
        calls: Mutex<Vec<(String, Event, Option<serde_json::Value>)>>,
        script: Mutex<VecDeque<SinkError>>,
    }

    impl FakeSink {
        fn answer(
            &self,
            verb: &str,
            e: &Event,
            p: Option<&serde_json::Value>,
        ) -> Result<Event, SinkError> {
            self.calls
                .lock()
                .unwrap()
                .push((verb.to_string(), e.clone(), p.cloned()));
            if let Some(err) = self.script.lock().unwrap().pop_front() {
                return Err(err);
            }
            let mut stored = e.clone();
            stored.metadata.resource_version = Some("7".into());
            Ok(stored)
        }
        fn verbs(&self) -> Vec<String> {
            self.calls
                .lock()
                .unwrap()
                .iter()
                .map(|c| c.0.clone())
                .collect()
        }
    }

    impl EventSink for FakeSink {
        fn create<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<Event, SinkError>> {
            Box::pin(async move { self.answer("create", event, None) })
        }
        fn patch<'a>(
            &'a self,
            event: &'a Event,
            patch: &'a serde_json::Value,
        ) -> BoxFuture<'a, Result<Event, SinkError>> {
            Box::pin(async move { self.answer("patch", event, Some(patch)) })
        }
    }

    fn event(message: &str) -> Event {
        let now = jiff::Timestamp::now();
        Event {
            metadata: ObjectMeta {
                name: Some(super::super::correlator::event_name("web", now)),
                namespace: Some("default".into()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("u1".into()),
                ..Default::default()
            },
            reason: Some("Pulled".into()),
            message: Some(message.into()),
            type_: Some("Normal".into()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some("n".into()),
            }),
            ..Default::default()
        }
    }

    fn fast() -> SinkOptions {
        SinkOptions {
            max_tries: 3,
            retry_sleep: Duration::from_millis(1),
        }
    }

    fn transport() -> SinkError {
        SinkError::Transport("connection refused".into())
    }

    fn rejected(code: u16, reason: &str) -> SinkError {
        SinkError::Rejected {
            code,
            reason: reason.into(),
            message: "no".into(),
        }
    }

    #[tokio::test]
    async fn duplicates_patch_and_a_vanished_event_is_created_again() {
        let sink = FakeSink::default();
        let mut c = Correlator::default();
        record_to_sink(&sink, &mut c, event("m"), fast()).await;
        record_to_sink(&sink, &mut c, event("m"), fast()).await;
        assert_eq!(sink.verbs(), ["create", "patch"]);
        let patch = sink.calls.lock().unwrap()[1].2.clone().unwrap();
        assert_eq!(patch["count"], 2);

        sink.script
            .lock()
            .unwrap()
            .push_back(rejected(404, "NotFound"));
        record_to_sink(&sink, &mut c, event("m"), fast()).await;
        assert_eq!(sink.verbs(), ["create", "patch", "patch", "create"]);
        let recreated = sink.calls.lock().unwrap()[3].1.clone();
        assert_eq!(recreated.count, Some(3));
        assert_eq!(recreated.metadata.resource_version, None);
    }

    #[tokio::test]
    async fn transport_errors_retry_a_bounded_number_of_times() {
        let sink = FakeSink::default();
        let mut c = Correlator::default();
        sink.script
            .lock()
            .unwrap()
            .extend([transport(), transport()]);
        record_to_sink(&sink, &mut c, event("a"), fast()).await;
        assert_eq!(sink.verbs(), ["create", "create", "create"]);

        let sink = FakeSink::default();
        sink.script
            .lock()
            .unwrap()
            .extend([transport(), transport(), transport(), transport()]);
        record_to_sink(&sink, &mut c, event("b"), fast()).await;
        assert_eq!(sink.verbs().len(), 3, "gives up after max_tries");
    }

    #[tokio::test]
    async fn a_rejected_event_is_not_retried() {
        let sink = FakeSink::default();
        let mut c = Correlator::default();
        sink.script
            .lock()
            .unwrap()
            .push_back(rejected(422, "Invalid"));
        record_to_sink(&sink, &mut c, event("a"), fast()).await;
        assert_eq!(sink.verbs(), ["create"]);
    }
}
