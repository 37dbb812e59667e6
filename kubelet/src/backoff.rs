//! Per-key exponential backoff for CrashLoopBackOff and ImagePullBackOff:
//! 10 s, doubling to 5 min; a key whose last failure is more than twice the
//! maximum (10 min) in the past starts again from 10 s. The same rules as
//! the Go kubelet's `flowcontrol.Backoff`.

use std::collections::HashMap;
use std::time::Duration;

/// Times are unix nanoseconds, the unit CRI reports container times in.
pub type Nanos = i64;

pub fn now_nanos() -> Nanos {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn nanos(d: Duration) -> Nanos {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    delay: Duration,
    last_update: Nanos,
}

#[derive(Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    entries: HashMap<String, Entry>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_secs(10), Duration::from_secs(300))
    }
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            entries: HashMap::new(),
        }
    }

    fn expired(&self, e: &Entry, at: Nanos) -> bool {
        at.saturating_sub(e.last_update) > nanos(self.max) * 2
    }

    /// Records a failure at `at`: the first is `initial`, each next one
    /// doubles, up to `max`.
    pub fn next(&mut self, key: &str, at: Nanos) {
        let fresh = Entry {
            delay: self.initial,
            last_update: at,
        };
        let entry = match self.entries.get(key) {
            Some(e) if !self.expired(e, at) => Entry {
                delay: (e.delay * 2).min(self.max),
                last_update: at,
            },
            _ => fresh,
        };
        self.entries.insert(key.to_string(), entry);
    }

    /// If the key failed at `since` and is still backing off at `now`, how
    /// long remains.
    pub fn remaining(&self, key: &str, since: Nanos, now: Nanos) -> Option<Duration> {
        let e = self.entries.get(key)?;
        if self.expired(e, now) {
            return None;
        }
        let until = since.saturating_add(nanos(e.delay));
        (now < until).then(|| Duration::from_nanos(u64::try_from(until - now).unwrap_or(0)))
    }

    /// The current delay for a key (for status messages).
    pub fn delay(&self, key: &str) -> Option<Duration> {
        self.entries.get(key).map(|e| e.delay)
    }

    pub fn reset(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Forgets keys that no longer matter (e.g. of deleted pods).
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.entries.retain(|k, _| keep(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Nanos = 1_000_000_000;

    #[test]
    fn doubles_to_the_cap() {
        let mut b = Backoff::default();
        let mut t = 1000 * S;
        let mut seen = Vec::new();
        for _ in 0..8 {
            b.next("k", t);
            seen.push(b.delay("k").unwrap().as_secs());
            t += 20 * S;
        }
        assert_eq!(seen, [10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn remaining_counts_from_the_failure() {
        let mut b = Backoff::default();
        b.next("k", 100 * S);
        assert_eq!(
            b.remaining("k", 100 * S, 104 * S),
            Some(Duration::from_secs(6))
        );
        assert_eq!(b.remaining("k", 100 * S, 110 * S), None);
        assert_eq!(b.remaining("other", 100 * S, 101 * S), None);
    }

    #[test]
    fn resets_after_ten_quiet_minutes() {
        let mut b = Backoff::default();
        b.next("k", 0);
        b.next("k", 10 * S);
        assert_eq!(b.delay("k").unwrap().as_secs(), 20);
        // A container that ran for over 10 minutes before failing again.
        b.next("k", 10 * S + 601 * S);
        assert_eq!(b.delay("k").unwrap().as_secs(), 10);
    }
}
