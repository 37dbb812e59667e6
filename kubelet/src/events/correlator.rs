//! client-go's `EventCorrelator` (`tools/record/events_cache.go`): before an
//! event reaches the apiserver it is aggregated with similar ones, folded
//! into an earlier identical one (a PATCH of `count`), and rate limited per
//! source and involved object.
//!
//! The three stages run in Go's order: aggregate, observe, filter. The
//! filter sees the event last, so a throttled event still counts towards
//! aggregation and de-duplication, as in Go.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

/// Go's `maxLruCacheEntries`: the size of each of the three caches.
pub const MAX_LRU_CACHE_ENTRIES: usize = 4096;
/// Go's `defaultAggregateMaxEvents`: distinct messages before aggregation.
pub const AGGREGATE_MAX_EVENTS: usize = 10;
/// Go's `defaultAggregateIntervalInSeconds`.
pub const AGGREGATE_INTERVAL: SignedDuration = SignedDuration::from_secs(600);
/// Go's `defaultSpamBurst`: events a source may send about one object at once.
pub const SPAM_BURST: f64 = 25.0;
/// Go's `defaultSpamQPS`: one more event every five minutes.
pub const SPAM_QPS: f64 = 1.0 / 300.0;
/// The prefix of an aggregate event's message.
pub const AGGREGATE_MESSAGE_PREFIX: &str = "(combined from similar events): ";

/// The correlator's notion of now, injectable for tests.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// What to do with an event after correlation.
#[derive(Debug, Clone, PartialEq)]
pub enum Correlated {
    /// Throttled by the spam filter: not written.
    Skip,
    /// POST this new event.
    Create(Box<Event>),
    /// PATCH the existing event (named in `event`) with this strategic merge
    /// patch; `event` is the full object, created instead if the patch
    /// finds nothing.
    Patch {
        event: Box<Event>,
        patch: serde_json::Value,
    },
}

/// A bounded map that forgets its least recently used entry when full, as
/// groupcache's `lru.Cache` that client-go uses.
#[derive(Debug)]
pub struct Lru<V> {
    cap: usize,
    tick: u64,
    map: HashMap<String, (V, u64)>,
    order: BTreeMap<u64, String>,
}

impl<V> Lru<V> {
    pub fn new(cap: usize) -> Self {
        Lru {
            cap: cap.max(1),
            tick: 0,
            map: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn touch(&mut self, key: &str) -> Option<&mut V> {
        self.tick += 1;
        let tick = self.tick;
        let (value, used) = self.map.get_mut(key)?;
        self.order.remove(used);
        *used = tick;
        self.order.insert(tick, key.to_string());
        Some(value)
    }

    /// The entry, marked as just used.
    pub fn get(&mut self, key: &str) -> Option<&mut V> {
        self.touch(key)
    }

    /// Sets the entry, marked as just used, evicting the oldest when full.
    pub fn put(&mut self, key: String, value: V) {
        if let Some(slot) = self.touch(&key) {
            *slot = value;
            return;
        }
        if self.map.len() >= self.cap
            && let Some((_, oldest)) = self.order.pop_first()
        {
            self.map.remove(&oldest);
        }
        self.tick += 1;
        self.order.insert(self.tick, key.clone());
        self.map.insert(key, (value, self.tick));
    }
}

fn s(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

/// The source and the involved object, in the order of Go's keys; the
/// object's fieldPath only where `with_field_path` (the event key).
fn object_key(e: &Event, with_field_path: bool) -> String {
    let src = e.source.as_ref();
    let o = &e.involved_object;
    [
        src.and_then(|s| s.component.as_deref()).unwrap_or(""),
        src.and_then(|s| s.host.as_deref()).unwrap_or(""),
        s(&o.kind),
        s(&o.namespace),
        s(&o.name),
        if with_field_path {
            s(&o.field_path)
        } else {
            ""
        },
        s(&o.uid),
        s(&o.api_version),
    ]
    .concat()
}

/// Go's `getEventKey`: everything that makes two events identical.
pub fn event_key(e: &Event) -> String {
    [
        object_key(e, true).as_str(),
        s(&e.type_),
        s(&e.reason),
        s(&e.message),
    ]
    .concat()
}

/// Go's `getSpamKey`: the source and the involved object.
pub fn spam_key(e: &Event) -> String {
    object_key(e, false)
}

/// Go's `EventAggregatorByReasonFunc`: the group key (all but the message)
/// and the key within the group (the message).
pub fn aggregate_keys(e: &Event) -> (String, String) {
    let group = [
        spam_key(e).as_str(),
        s(&e.type_),
        s(&e.reason),
        s(&e.reporting_component),
        s(&e.reporting_instance),
    ]
    .concat();
    (group, s(&e.message).to_string())
}

/// A token bucket that starts full, refilled by the injected clock.
#[derive(Debug, Clone)]
struct TokenBucket {
    tokens: f64,
    last: Timestamp,
}

impl TokenBucket {
    fn try_accept(&mut self, now: Timestamp, burst: f64, qps: f64) -> bool {
        let elapsed = now.duration_since(self.last).as_secs_f64().max(0.0);
        self.tokens = (self.tokens + elapsed * qps).min(burst);
        if now > self.last {
            self.last = now;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug, Clone)]
struct AggregateRecord {
    messages: HashSet<String>,
    last: Timestamp,
}

/// What the logger remembers of an event it sent.
#[derive(Debug, Clone)]
struct EventLog {
    count: i32,
    first_timestamp: Option<Time>,
    name: String,
    resource_version: Option<String>,
}

impl EventLog {
    fn of(event: &Event) -> EventLog {
        EventLog {
            count: event.count.unwrap_or(0),
            first_timestamp: event.first_timestamp.clone(),
            name: event.metadata.name.clone().unwrap_or_default(),
            resource_version: event.metadata.resource_version.clone(),
        }
    }
}

/// Go's `EventCorrelator` with its default options.
pub struct Correlator {
    clock: Arc<dyn Clock>,
    aggregates: Lru<AggregateRecord>,
    observed: Lru<EventLog>,
    spam: Lru<TokenBucket>,
}

impl std::fmt::Debug for Correlator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Correlator")
            .field("aggregates", &self.aggregates.len())
            .field("observed", &self.observed.len())
            .field("spam", &self.spam.len())
            .finish()
    }
}

impl Default for Correlator {
    fn default() -> Self {
        Correlator::new(Arc::new(SystemClock))
    }
}

impl Correlator {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Correlator {
            clock,
            aggregates: Lru::new(MAX_LRU_CACHE_ENTRIES),
            observed: Lru::new(MAX_LRU_CACHE_ENTRIES),
            spam: Lru::new(MAX_LRU_CACHE_ENTRIES),
        }
    }

    /// Aggregates, de-duplicates and rate limits one event.
    pub fn correlate(&mut self, event: Event) -> Correlated {
        let (event, key) = self.aggregate(event);
        let (event, patch) = self.observe(event, key);
        if self.throttled(&event) {
            return Correlated::Skip;
        }
        match patch {
            Some(patch) => Correlated::Patch {
                event: Box::new(event),
                patch,
            },
            None => Correlated::Create(Box::new(event)),
        }
    }

    /// Remembers the server's copy of an event it accepted (its name,
    /// resourceVersion and count), as Go's `UpdateState`.
    pub fn update_state(&mut self, event: &Event) {
        self.observed.put(event_key(event), EventLog::of(event));
    }

    /// Go's `EventAggregate`: the event to send and its de-duplication key.
    /// From the tenth distinct message of one group within the interval on,
    /// the event becomes the group's aggregate, keyed by the group so later
    /// ones patch it.
    fn aggregate(&mut self, event: Event) -> (Event, String) {
        let now = self.clock.now();
        let key = event_key(&event);
        let (group, message) = aggregate_keys(&event);
        let fresh = || AggregateRecord {
            messages: HashSet::new(),
            last: now,
        };
        let mut record = match self.aggregates.get(&group) {
            Some(r) if now.duration_since(r.last) <= AGGREGATE_INTERVAL => r.clone(),
            _ => fresh(),
        };
        record.messages.insert(message);
        record.last = now;
        let distinct = record.messages.len();
        if distinct >= AGGREGATE_MAX_EVENTS {
            // Keep the set below the threshold, as Go's PopAny does, so
            // every further distinct message counts as the tenth.
            if let Some(any) = record.messages.iter().next().cloned() {
                record.messages.remove(&any);
            }
        }
        self.aggregates.put(group.clone(), record);
        if distinct < AGGREGATE_MAX_EVENTS {
            return (event, key);
        }
        let time = Time(now);
        let aggregate = Event {
            metadata: ObjectMeta {
                name: Some(event_name(s(&event.involved_object.name), now)),
                namespace: event.metadata.namespace.clone(),
                ..Default::default()
            },
            count: Some(1),
            first_timestamp: Some(time.clone()),
            last_timestamp: Some(time),
            involved_object: event.involved_object.clone(),
            message: Some(format!("{AGGREGATE_MESSAGE_PREFIX}{}", s(&event.message))),
            type_: event.type_.clone(),
            reason: event.reason.clone(),
            source: event.source.clone(),
            // Go's aggregate copies neither reportingComponent nor
            // reportingInstance; neither does this one.
            ..Default::default()
        };
        (aggregate, group)
    }

    /// Go's `eventObserve`: an event seen before under `key` becomes a
    /// patch of the existing object's count, lastTimestamp and message.
    fn observe(&mut self, mut event: Event, key: String) -> (Event, Option<serde_json::Value>) {
        let mut patch = None;
        if let Some(last) = self.observed.get(&key).filter(|l| l.count > 0) {
            event.metadata.name = Some(last.name.clone());
            event.metadata.resource_version = last.resource_version.clone();
            event.first_timestamp = last.first_timestamp.clone();
            event.count = Some(last.count.saturating_add(1));
            patch = Some(serde_json::json!({
                "count": event.count,
                "lastTimestamp": event.last_timestamp,
                "message": s(&event.message),
            }));
        }
        self.observed.put(key, EventLog::of(&event));
        (event, patch)
    }

    /// Go's `EventSourceObjectSpamFilter.Filter`: true when the source has
    /// used up its budget for this object.
    fn throttled(&mut self, event: &Event) -> bool {
        let now = self.clock.now();
        let key = spam_key(event);
        let accepted = match self.spam.get(&key) {
            Some(bucket) => bucket.try_accept(now, SPAM_BURST, SPAM_QPS),
            None => {
                let mut bucket = TokenBucket {
                    tokens: SPAM_BURST,
                    last: now,
                };
                let ok = bucket.try_accept(now, SPAM_BURST, SPAM_QPS);
                self.spam.put(key, bucket);
                ok
            }
        };
        !accepted
    }
}

/// client-go's event name: the object's name and the time in hexadecimal
/// Unix nanoseconds.
pub fn event_name(object_name: &str, at: Timestamp) -> String {
    format!("{object_name}.{:x}", at.as_nanosecond())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EventSource, ObjectReference};
    use std::sync::Mutex;

    /// A clock the test moves by hand.
    struct FakeClock(Mutex<Timestamp>);

    impl FakeClock {
        fn new() -> Arc<Self> {
            Arc::new(FakeClock(Mutex::new(
                Timestamp::from_second(1_800_000_000).unwrap(),
            )))
        }
        fn step(&self, d: SignedDuration) {
            let mut t = self.0.lock().unwrap();
            *t = t.checked_add(d).unwrap();
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> Timestamp {
            *self.0.lock().unwrap()
        }
    }

    fn event(name: &str, reason: &str, message: &str, at: Timestamp) -> Event {
        Event {
            metadata: ObjectMeta {
                name: Some(event_name(name, at)),
                namespace: Some("default".into()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                api_version: Some("v1".into()),
                namespace: Some("default".into()),
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
                ..Default::default()
            },
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some("Normal".into()),
            count: Some(1),
            first_timestamp: Some(Time(at)),
            last_timestamp: Some(Time(at)),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some("node-a".into()),
            }),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some("node-a".into()),
            ..Default::default()
        }
    }

    /// Correlates, then plays the server: a create gets a resourceVersion
    /// and is fed back, as the sink does.
    fn send(c: &mut Correlator, e: Event) -> Correlated {
        let out = c.correlate(e);
        match &out {
            Correlated::Create(ev) | Correlated::Patch { event: ev, .. } => {
                let mut stored = (**ev).clone();
                stored.metadata.resource_version = Some("1".into());
                c.update_state(&stored);
            }
            Correlated::Skip => {}
        }
        out
    }

    #[test]
    fn identical_events_become_patches_of_the_first() {
        let clock = FakeClock::new();
        let mut c = Correlator::new(clock.clone());
        let first = event("web", "Pulling", "Pulling image \"nginx\"", clock.now());
        let Correlated::Create(created) = send(&mut c, first.clone()) else {
            panic!("first event must be created");
        };
        let first_name = created.metadata.name.clone().unwrap();
        for n in 2..=4 {
            clock.step(SignedDuration::from_secs(3));
            let again = event("web", "Pulling", "Pulling image \"nginx\"", clock.now());
            match send(&mut c, again) {
                Correlated::Patch { event, patch } => {
                    assert_eq!(event.metadata.name.as_deref(), Some(first_name.as_str()));
                    assert_eq!(event.count, Some(n));
                    assert_eq!(event.first_timestamp, first.first_timestamp);
                    assert_eq!(patch["count"], n);
                    assert_eq!(patch["message"], "Pulling image \"nginx\"");
                    assert_eq!(
                        patch["lastTimestamp"],
                        serde_json::to_value(Time(clock.now())).unwrap()
                    );
                    assert_eq!(patch.as_object().unwrap().len(), 3);
                }
                other => panic!("duplicate {n} must patch: {other:?}"),
            }
        }
        // Another reason is another event.
        let other = event("web", "Pulled", "done", clock.now());
        assert!(matches!(send(&mut c, other), Correlated::Create(_)));
    }

    #[test]
    fn the_tenth_distinct_message_becomes_the_aggregate() {
        let clock = FakeClock::new();
        let mut c = Correlator::new(clock.clone());
        for i in 1..=9 {
            let e = event(
                "web",
                "Unhealthy",
                &format!("probe failed {i}"),
                clock.now(),
            );
            match send(&mut c, e) {
                Correlated::Create(ev) => {
                    assert_eq!(
                        ev.message.as_deref(),
                        Some(format!("probe failed {i}").as_str())
                    )
                }
                other => panic!("event {i} must be created as is: {other:?}"),
            }
            clock.step(SignedDuration::from_secs(1));
        }
        let tenth = event("web", "Unhealthy", "probe failed 10", clock.now());
        let Correlated::Create(agg) = send(&mut c, tenth) else {
            panic!("the tenth must create the aggregate");
        };
        assert_eq!(
            agg.message.as_deref(),
            Some("(combined from similar events): probe failed 10")
        );
        assert_eq!(agg.count, Some(1));
        assert_eq!(agg.reason.as_deref(), Some("Unhealthy"));
        assert_eq!(agg.reporting_component, None);
        let agg_name = agg.metadata.name.clone().unwrap();
        assert!(agg_name.starts_with("web."));

        clock.step(SignedDuration::from_secs(1));
        let eleventh = event("web", "Unhealthy", "probe failed 11", clock.now());
        match send(&mut c, eleventh) {
            Correlated::Patch { event, patch } => {
                assert_eq!(event.metadata.name.as_deref(), Some(agg_name.as_str()));
                assert_eq!(event.count, Some(2));
                assert_eq!(
                    patch["message"],
                    "(combined from similar events): probe failed 11"
                );
            }
            other => panic!("the eleventh must patch the aggregate: {other:?}"),
        }
    }

    #[test]
    fn aggregation_restarts_after_the_interval() {
        let clock = FakeClock::new();
        let mut c = Correlator::new(clock.clone());
        for i in 1..=9 {
            send(
                &mut c,
                event("web", "BackOff", &format!("m{i}"), clock.now()),
            );
        }
        clock.step(AGGREGATE_INTERVAL + SignedDuration::from_secs(1));
        let late = event("web", "BackOff", "m10", clock.now());
        match send(&mut c, late) {
            Correlated::Create(ev) => assert_eq!(ev.message.as_deref(), Some("m10")),
            other => panic!("a late event starts a new group: {other:?}"),
        }
    }

    #[test]
    fn spam_filter_allows_a_burst_of_25_then_one_per_five_minutes() {
        let clock = FakeClock::new();
        let mut c = Correlator::new(clock.clone());
        // Distinct reasons, so neither aggregation nor de-duplication hides
        // the filter.
        for i in 0..25 {
            let e = event("web", &format!("R{i}"), "m", clock.now());
            assert!(!matches!(send(&mut c, e), Correlated::Skip), "event {i}");
        }
        let e = event("web", "R25", "m", clock.now());
        assert_eq!(send(&mut c, e), Correlated::Skip);
        // Another object has its own budget.
        let e = event("db", "R0", "m", clock.now());
        assert!(!matches!(send(&mut c, e), Correlated::Skip));

        clock.step(SignedDuration::from_secs(299));
        let e = event("web", "R26", "m", clock.now());
        assert_eq!(send(&mut c, e), Correlated::Skip);
        clock.step(SignedDuration::from_secs(1));
        let e = event("web", "R27", "m", clock.now());
        assert!(!matches!(send(&mut c, e), Correlated::Skip));
        let e = event("web", "R28", "m", clock.now());
        assert_eq!(send(&mut c, e), Correlated::Skip);
    }

    #[test]
    fn lru_forgets_the_least_recently_used() {
        let mut lru = Lru::new(2);
        lru.put("a".into(), 1);
        lru.put("b".into(), 2);
        assert_eq!(lru.get("a"), Some(&mut 1));
        lru.put("c".into(), 3);
        assert!(lru.get("b").is_none());
        assert_eq!(lru.get("a"), Some(&mut 1));
        assert_eq!(lru.get("c"), Some(&mut 3));
        lru.put("c".into(), 4);
        assert_eq!(lru.len(), 2);
        assert_eq!(lru.get("c"), Some(&mut 4));
    }

    #[test]
    fn event_names_are_hex_unix_nanos() {
        let at = Timestamp::new(1_700_000_000, 123).unwrap();
        assert_eq!(
            event_name("web", at),
            format!("web.{:x}", 1_700_000_000_000_000_123u64)
        );
    }
}
