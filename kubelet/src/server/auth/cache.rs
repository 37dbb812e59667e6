//! A small TTL cache for review answers, bounded in entries so that a
//! client sending endless distinct tokens cannot grow it without limit.
//! Time is tokio's, so tests can move it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use tokio::time::Instant;

/// How many answers a cache keeps at most (Go's webhook caches keep a few
/// thousand too).
pub const DEFAULT_CAPACITY: usize = 4096;

pub struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> TtlCache<K, V> {
    pub fn new(capacity: usize) -> Self {
        TtlCache {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (V, Instant)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value, while it has not expired.
    pub fn get(&self, key: &K) -> Option<V> {
        let mut entries = self.lock();
        match entries.get(key) {
            Some((v, until)) if Instant::now() < *until => Some(v.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `value` for `ttl`; a zero TTL keeps nothing. When full, the
    /// expired entries go first, then the one closest to expiring.
    pub fn insert(&self, key: K, value: V, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (_, until)| *until > now);
            if entries.len() >= self.capacity
                && let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, (_, until))| *until)
                    .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(key, (value, now + ttl));
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One review per key at a time: callers asking the same question while it
/// is under way share its answer (a burst of requests with one new token
/// sends one TokenReview, as Go's cached authenticator does).
pub struct InFlight<K, V: Clone> {
    calls: Mutex<HashMap<K, Shared<BoxFuture<'static, V>>>>,
}

impl<K: Hash + Eq + Clone, V: Clone> Default for InFlight<K, V> {
    fn default() -> Self {
        InFlight {
            calls: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> InFlight<K, V> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Shared<BoxFuture<'static, V>>>> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The answer of the call under way for `key`, or of a new one `make`
    /// starts.
    pub async fn run(&self, key: K, make: impl FnOnce() -> BoxFuture<'static, V>) -> V {
        let call = self
            .lock()
            .entry(key.clone())
            .or_insert_with(|| make().shared())
            .clone();
        let answer = call.await;
        self.lock().remove(&key);
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn entries_expire_and_the_size_is_bounded() {
        let c = TtlCache::new(3);
        c.insert("a", 1, Duration::from_secs(10));
        c.insert("b", 2, Duration::from_secs(20));
        c.insert("z", 0, Duration::ZERO);
        assert_eq!(c.get(&"a"), Some(1));
        assert_eq!(c.get(&"z"), None);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(c.get(&"a"), None);
        assert_eq!(c.get(&"b"), Some(2));
        c.insert("c", 3, Duration::from_secs(30));
        c.insert("d", 4, Duration::from_secs(40));
        c.insert("e", 5, Duration::from_secs(50));
        // Full: "b" expired soonest and went.
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(&"b"), None);
        assert_eq!(c.get(&"e"), Some(5));
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_call() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let flight: Arc<InFlight<&str, usize>> = Arc::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let ask = |key: &'static str| {
            let (flight, calls) = (flight.clone(), calls.clone());
            async move {
                flight
                    .run(key, move || {
                        Box::pin(async move {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            calls.fetch_add(1, Ordering::SeqCst) + 1
                        })
                    })
                    .await
            }
        };
        let (a, b, c) = tokio::join!(ask("t"), ask("t"), ask("u"));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Once answered, a new question makes a new call.
        ask("t").await;
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
