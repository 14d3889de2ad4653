//! Token and user rows cached on this node for the relay (the shared Redis copy is in
//! [`super::redis`]). Invalidation is immediate, here and through events on the other nodes;
//! the time-to-live is the safety net for an event that never arrived.

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Rows by key, each kept for the TTL less up to a quarter (see [`Jittered`]).
///
/// A load that was reading while the row was invalidated does not store what it read: the row
/// predates the edit behind the invalidation, and stored it would be served until it expired
/// (a revoked token accepted for up to a minute more). Loads take a [`RowCache::ticket`] before
/// reading and hand it to [`RowCache::store`].
pub struct RowCache<K, V> {
    rows: moka::sync::Cache<K, Arc<V>>,
    /// Invalidations so far (any key): a load stores only if none came while it read. They are
    /// rare (edits, bans, exhausted tokens), so counting them all costs a load nothing.
    invalidations: AtomicU64,
}

/// Taken before reading a row to store: see [`RowCache::store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

impl<K, V> RowCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// A cache of at most `capacity` rows (0 keeps none), each living about `ttl`.
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        RowCache {
            rows: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .expire_after(Jittered(ttl))
                .build(),
            invalidations: AtomicU64::new(0),
        }
    }

    pub fn get<Q>(&self, key: &Q) -> Option<Arc<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.rows.get(key)
    }

    /// Take this before reading a row from Redis or the database.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.invalidations.load(Ordering::SeqCst))
    }

    /// Stores `row`, read after `ticket` was taken, unless an invalidation came since. Checked
    /// again after the insert: an invalidation between the check and the insert would
    /// otherwise miss the row it was meant to drop.
    pub fn store(&self, key: K, row: Arc<V>, ticket: Ticket) {
        if self.ticket() != ticket {
            return;
        }
        self.rows.insert(key.clone(), row);
        if self.ticket() != ticket {
            self.rows.invalidate(&key);
        }
    }

    /// Drops `key`, and what loads reading now would store.
    pub fn invalidate<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.invalidations.fetch_add(1, Ordering::SeqCst);
        self.rows.invalidate(key);
    }

    /// Drops every row, and what loads reading now would store.
    pub fn invalidate_all(&self) {
        self.invalidations.fetch_add(1, Ordering::SeqCst);
        self.rows.invalidate_all();
    }
}

/// A cached row's lifetime: the TTL less up to a quarter, at random. Rows loaded together (a
/// restart's first burst, the benchmark's warm-up of 10,000 tokens) otherwise expired together,
/// and every request of the next moment went to Redis and the database at once.
struct Jittered(Duration);

impl Jittered {
    fn lifetime(&self) -> Duration {
        use rand::RngExt;
        self.0.mul_f64(rand::rng().random_range(0.75..=1.0))
    }
}

impl<K, V> moka::Expiry<K, V> for Jittered {
    fn expire_after_create(&self, _: &K, _: &V, _: Instant) -> Option<Duration> {
        Some(self.lifetime())
    }

    fn expire_after_update(
        &self,
        _: &K,
        _: &V,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.lifetime())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> RowCache<String, &'static str> {
        RowCache::new(100, Duration::from_secs(60))
    }

    /// Bug: a row read before an invalidation was stored after it, and served until it expired.
    #[test]
    fn a_row_read_before_an_invalidation_is_not_stored() {
        let c = cache();
        let ticket = c.ticket();
        // The load reads the enabled token; meanwhile an admin disables it.
        c.invalidate("k");
        c.store("k".into(), Arc::new("enabled"), ticket);
        assert_eq!(c.get("k"), None);
        // Another key's invalidation counts too (invalidations are rare; the next load stores).
        let ticket = c.ticket();
        c.invalidate("other");
        c.store("k".into(), Arc::new("enabled"), ticket);
        assert_eq!(c.get("k"), None);
        let ticket = c.ticket();
        c.invalidate_all();
        c.store("k".into(), Arc::new("enabled"), ticket);
        assert_eq!(c.get("k"), None);
    }

    #[test]
    fn a_load_with_no_invalidation_meanwhile_is_stored_and_invalidated_later() {
        let c = cache();
        let ticket = c.ticket();
        c.store("k".into(), Arc::new("v1"), ticket);
        assert_eq!(c.get("k").as_deref(), Some(&"v1"));
        c.invalidate("k");
        assert_eq!(c.get("k"), None);
        let ticket = c.ticket();
        c.store("k".into(), Arc::new("v2"), ticket);
        assert_eq!(c.get("k").as_deref(), Some(&"v2"));
        c.invalidate_all();
        assert_eq!(c.get("k"), None);
    }

    /// Invalidations racing stores from other threads: whatever the interleaving, once an
    /// invalidation has returned, no store whose ticket predates it leaves its row behind.
    #[test]
    fn racing_invalidations_never_leave_an_older_row() {
        let c = Arc::new(cache());
        for round in 0..200 {
            let ticket = c.ticket();
            let storer = {
                let c = c.clone();
                std::thread::spawn(move || c.store("k".into(), Arc::new("old"), ticket))
            };
            if round % 2 == 0 {
                std::thread::yield_now();
            }
            c.invalidate("k");
            storer.join().unwrap();
            assert_eq!(c.get("k"), None, "round {round}");
        }
    }

    /// Rows loaded in the same instant expire spread over the last quarter of the TTL.
    #[test]
    fn cached_rows_expire_spread_out() {
        use moka::Expiry;
        let ttl = Duration::from_secs(60);
        let expiry = Jittered(ttl);
        let now = Instant::now();
        let lifetimes: Vec<_> = (0..200)
            .map(|i| expiry.expire_after_create(&i, &(), now).unwrap())
            .collect();
        assert!(lifetimes.iter().all(|l| *l >= ttl * 3 / 4 && *l <= ttl));
        let (min, max) = (lifetimes.iter().min(), lifetimes.iter().max());
        assert!(
            max.unwrap().saturating_sub(*min.unwrap()) > ttl / 8,
            "{min:?}..{max:?}"
        );
        let updated = expiry.expire_after_update(&0, &(), now, Some(ttl / 100));
        assert!(
            updated.unwrap() >= ttl * 3 / 4,
            "an update starts a new lifetime"
        );
    }
}
