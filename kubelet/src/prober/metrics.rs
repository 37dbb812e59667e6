//! Probe latency for the probes benchmark: a fine log-scale histogram per
//! probe kind (successes and failures; probe errors are only counted),
//! cumulative since start, logged every
//! 10 s at debug under the `berth::probe_latency` target. Nothing is
//! recorded unless that target is enabled, so it costs nothing by default;
//! the probes benchmark turns it on and subtracts two snapshots. The
//! always-on Prometheus series (Go's `prober_probe_total` and
//! `prober_probe_duration_seconds`) are [`super::probe_metrics`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::worker::Action;

pub const TARGET: &str = "berth::probe_latency";

/// Each bucket is 5 % wider than the one before: bucket i holds durations
/// in [1.05^i, 1.05^(i+1)) µs; 380 buckets reach past 100 s.
const GROWTH: f64 = 1.05;
const BUCKETS: usize = 380;
const EVERY: Duration = Duration::from_secs(10);
const KINDS: [&str; 4] = ["exec", "http", "tcp", "grpc"];

/// How a timed probe attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    Success,
    Failure,
    /// A probe error (not counted by the worker, not in the histogram).
    Error,
}

#[derive(Debug)]
struct State {
    counts: Vec<[u64; BUCKETS]>,
    failures: [u64; 4],
    errors: [u64; 4],
    last_dump: Instant,
    dirty: bool,
}

#[derive(Debug, Default)]
pub struct Metrics {
    state: Mutex<Option<State>>,
}

/// The bucket of a duration.
pub fn bucket(d: Duration) -> usize {
    let us = d.as_secs_f64() * 1e6;
    if us < 1.0 {
        return 0;
    }
    ((us.ln() / GROWTH.ln()) as usize).min(BUCKETS - 1)
}

/// A representative duration of bucket `i` (its geometric middle).
pub fn bucket_value(i: usize) -> Duration {
    Duration::from_secs_f64(GROWTH.powf(i as f64 + 0.5) / 1e6)
}

impl Metrics {
    pub fn observe(&self, action: &Action, took: Duration, ended: Ended) {
        if !tracing::enabled!(target: TARGET, tracing::Level::DEBUG) {
            return;
        }
        let kind = match action {
            Action::Exec(_) => 0,
            Action::Http(_) => 1,
            Action::Tcp { .. } => 2,
            Action::Grpc { .. } => 3,
            _ => return,
        };
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let st = guard.get_or_insert_with(|| State {
            counts: vec![[0; BUCKETS]; KINDS.len()],
            failures: [0; 4],
            errors: [0; 4],
            last_dump: Instant::now(),
            dirty: false,
        });
        match ended {
            Ended::Success => st.counts[kind][bucket(took)] += 1,
            Ended::Failure => {
                st.counts[kind][bucket(took)] += 1;
                st.failures[kind] += 1;
            }
            Ended::Error => st.errors[kind] += 1,
        }
        st.dirty = true;
        if st.last_dump.elapsed() >= EVERY {
            st.last_dump = Instant::now();
            st.dirty = false;
            for (k, name) in KINDS.iter().enumerate() {
                let total: u64 = st.counts[k].iter().sum();
                if total == 0 && st.errors[k] == 0 {
                    continue;
                }
                let buckets = st.counts[k]
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| **n > 0)
                    .map(|(i, n)| format!("{i}:{n}"))
                    .collect::<Vec<_>>()
                    .join(",");
                tracing::debug!(target: TARGET, kind = %name, count = total, failures = st.failures[k], errors = st.errors[k], buckets = %buckets, "probe latency histogram");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_within_five_percent() {
        for us in [1u64, 7, 150, 999, 12_345, 1_000_000, 30_000_000] {
            let d = Duration::from_micros(us);
            let v = bucket_value(bucket(d));
            let ratio = v.as_secs_f64() / d.as_secs_f64();
            assert!((0.97..1.03).contains(&ratio), "{us} µs -> {v:?}");
        }
        assert_eq!(bucket(Duration::from_secs(1000)), BUCKETS - 1);
    }
}
