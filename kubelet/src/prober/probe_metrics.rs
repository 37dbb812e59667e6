//! The prober's Prometheus series, always on (Go's `ProberResults` and
//! `ProberDuration` in `prober_manager.go`), served on `/metrics/probes`:
//!
//! - `prober_probe_total{probe_type,result,container,pod,namespace,pod_uid}`,
//!   a counter per probe worker and result (`successful` or `failed`);
//! - `prober_probe_duration_seconds{probe_type,container,pod,namespace}`, a
//!   histogram of successful probes' durations (retries included), with
//!   client_golang's default buckets.
//!
//! A probe error has no result, as in Go: it is neither counted nor timed.
//! Go also has an `unknown` result, which only a probe that yields no
//! verdict without an error produces; berth's probes always give one, so
//! that series never appears.
//!
//! Series are keyed by pod, container name and probe type, as Go's workers
//! are, so they outlive a container restart (berth's workers, which are
//! per container instance, share them). They appear at a worker's first
//! result and are removed when the prober forgets the pod
//! ([`ProberMetrics::remove_pod`], from `ProbeManager::remove_pod`), as Go
//! deletes them when the pod's workers stop.
//!
//! Recording is a read-locked map lookup and an atomic add; the label sets
//! are built once per worker ([`WorkerSeries`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::results::ProbeType;

/// client_golang's `DefBuckets`, which Go's `ProberDuration` uses.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The labels of `prober_probe_total`, in the order Go writes them
/// (sorted by name).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub container: String,
    pub namespace: String,
    pub pod: String,
    pub pod_uid: String,
    pub probe_type: String,
    pub result: String,
}

/// The labels of `prober_probe_duration_seconds`, sorted by name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DurationLabels {
    pub container: String,
    pub namespace: String,
    pub pod: String,
    pub probe_type: String,
}

/// How one probe ended, for the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Successful,
    Failed,
}

type Durations = Family<DurationLabels, Histogram, fn() -> Histogram>;

fn new_histogram() -> Histogram {
    Histogram::new(DEFAULT_BUCKETS)
}

/// The prober's series. Clones share them.
#[derive(Clone, Debug)]
pub struct ProberMetrics {
    results: Family<ResultLabels, Counter>,
    durations: Durations,
    /// The workers' series by pod UID, to remove with the pod.
    by_pod: Arc<Mutex<HashMap<String, HashSet<DurationLabels>>>>,
}

impl Default for ProberMetrics {
    fn default() -> Self {
        ProberMetrics {
            results: Family::default(),
            durations: Family::new_with_constructor(new_histogram as fn() -> Histogram),
            by_pod: Arc::default(),
        }
    }
}

/// One worker's label sets, built when it starts.
#[derive(Clone, Debug)]
pub struct WorkerSeries {
    successful: ResultLabels,
    failed: ResultLabels,
    duration: DurationLabels,
}

impl ProberMetrics {
    /// Adds the two families to `registry` (the `/metrics/probes` one).
    /// `Registry` appends a period to help texts, so Go's are given
    /// without theirs.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "prober_probe",
            "[BETA] Cumulative number of a liveness, readiness or startup probe for a container by result",
            self.results.clone(),
        );
        registry.register(
            "prober_probe_duration_seconds",
            "[ALPHA] Duration in seconds for a probe response",
            self.durations.clone(),
        );
    }

    /// The series of a worker probing `container` of the pod.
    pub fn worker(
        &self,
        probe_type: ProbeType,
        container: &str,
        pod: &str,
        namespace: &str,
        pod_uid: &str,
    ) -> WorkerSeries {
        let duration = DurationLabels {
            container: container.to_string(),
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            probe_type: probe_type.to_string(),
        };
        let result = |r: &str| ResultLabels {
            container: duration.container.clone(),
            namespace: duration.namespace.clone(),
            pod: duration.pod.clone(),
            pod_uid: pod_uid.to_string(),
            probe_type: duration.probe_type.clone(),
            result: r.to_string(),
        };
        let series = WorkerSeries {
            successful: result("successful"),
            failed: result("failed"),
            duration: duration.clone(),
        };
        self.lock()
            .entry(pod_uid.to_string())
            .or_default()
            .insert(duration);
        series
    }

    /// Counts one probe result; a success's duration goes to the histogram.
    pub fn record(&self, series: &WorkerSeries, verdict: Verdict, took: Duration) {
        match verdict {
            Verdict::Successful => {
                self.results.get_or_create(&series.successful).inc();
                self.durations
                    .get_or_create(&series.duration)
                    .observe(took.as_secs_f64());
            }
            Verdict::Failed => {
                self.results.get_or_create(&series.failed).inc();
            }
        }
    }

    /// The pod is gone from the prober: drop every series of it.
    pub fn remove_pod(&self, pod_uid: &str) {
        let Some(workers) = self.lock().remove(pod_uid) else {
            return;
        };
        for d in workers {
            for result in ["successful", "failed"] {
                self.results.remove(&ResultLabels {
                    container: d.container.clone(),
                    namespace: d.namespace.clone(),
                    pod: d.pod.clone(),
                    pod_uid: pod_uid.to_string(),
                    probe_type: d.probe_type.clone(),
                    result: result.to_string(),
                });
            }
            self.durations.remove(&d);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashSet<DurationLabels>>> {
        self.by_pod.lock().unwrap_or_else(|e| e.into_inner())
    }
}
