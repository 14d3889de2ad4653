//! In-process quota balances for one node without Redis (`MEMORY_CACHE_ENABLED=true`): the same
//! rules as the Redis scripts (never below zero, versioned loads), under one short lock.
//!
//! Reservations live only here, never in the database; settlements reach the database through
//! the ledger writer. A crash therefore loses at most the movements still queued, which charges
//! the user less, never more (see docs/multi-node.md).

use std::sync::Mutex;

use rustc_hash::FxHashMap;

use super::redis::Reserve;

/// Fx-hashed: ids are database keys, and every relay request looks several up under the lock.
#[derive(Debug, Default)]
struct Inner {
    users: FxHashMap<i64, i64>,
    tokens: FxHashMap<i64, i64>,
    versions: FxHashMap<i64, u64>,
}

#[derive(Debug, Default)]
pub struct MemoryBalances {
    inner: Mutex<Inner>,
}

impl MemoryBalances {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied move (each is two plain
        // integer writes after the checks), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn version(&self, user_id: i64) -> u64 {
        self.lock().versions.get(&user_id).copied().unwrap_or(0)
    }

    /// Seeds a balance read from the database after [`MemoryBalances::version`] returned
    /// `version`; false when a change raced the read.
    pub fn load(&self, user_id: i64, token: Option<i64>, value: i64, version: u64) -> bool {
        let mut g = self.lock();
        if g.versions.get(&user_id).copied().unwrap_or(0) != version {
            return false;
        }
        match token {
            Some(t) => g.tokens.entry(t).or_insert(value),
            None => g.users.entry(user_id).or_insert(value),
        };
        true
    }

    /// A change already committed to the database.
    pub fn credit(&self, user_id: i64, token: Option<i64>, delta: i64) {
        let mut g = self.lock();
        *g.versions.entry(user_id).or_insert(0) += 1;
        let slot = match token {
            Some(t) => g.tokens.get_mut(&t),
            None => g.users.get_mut(&user_id),
        };
        if let Some(b) = slot {
            *b += delta;
        }
    }

    pub fn balance(&self, user_id: i64, token: Option<i64>) -> Option<i64> {
        let g = self.lock();
        match token {
            Some(t) => g.tokens.get(&t).copied(),
            None => g.users.get(&user_id).copied(),
        }
    }

    pub fn reserve(&self, user_id: i64, token: Option<i64>, amount: i64) -> Reserve {
        let mut g = self.lock();
        let Some(&u) = g.users.get(&user_id) else {
            return Reserve::Missing;
        };
        let t = match token {
            Some(t) => match g.tokens.get(&t) {
                Some(&v) => Some(v),
                None => return Reserve::Missing,
            },
            None => None,
        };
        if u < amount {
            return Reserve::UserShort;
        }
        if t.is_some_and(|t| t < amount) {
            return Reserve::TokenShort;
        }
        if let Some(b) = g.users.get_mut(&user_id) {
            *b -= amount;
        }
        if let Some(t) = token
            && let Some(b) = g.tokens.get_mut(&t)
        {
            *b -= amount;
        }
        Reserve::Ok
    }

    /// Settles a reservation of `reserved` at `price`; an excess is taken only as far as the
    /// balances go. Returns the charge, or `None` when a balance is missing.
    pub fn settle(
        &self,
        user_id: i64,
        token: Option<i64>,
        reserved: i64,
        price: i64,
    ) -> Option<i64> {
        let mut g = self.lock();
        let u = *g.users.get(&user_id)?;
        let t = match token {
            Some(t) => Some(*g.tokens.get(&t)?),
            None => None,
        };
        let mut delta = price - reserved;
        if delta > 0 {
            let room = t.map_or(u, |t| t.min(u)).max(0);
            delta = delta.min(room);
        }
        if let Some(b) = g.users.get_mut(&user_id) {
            *b -= delta;
        }
        if let Some(t) = token
            && let Some(b) = g.tokens.get_mut(&t)
        {
            *b -= delta;
        }
        Some(reserved + delta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_overdraws_and_loads_are_versioned() {
        let m = MemoryBalances::default();
        assert_eq!(m.reserve(1, Some(5), 10), Reserve::Missing);
        let v = m.version(1);
        assert!(m.load(1, None, 100, v));
        assert!(m.load(1, Some(5), 30, v));
        // A second load does not overwrite a live balance.
        assert!(m.load(1, None, 999, v));
        assert_eq!(m.balance(1, None), Some(100));
        assert_eq!(m.reserve(1, Some(5), 20), Reserve::Ok);
        assert_eq!(m.reserve(1, Some(5), 20), Reserve::TokenShort);
        assert_eq!(m.reserve(1, None, 100), Reserve::UserShort);
        // Charge 15 more than reserved: capped by the token's 10 left.
        assert_eq!(m.settle(1, Some(5), 20, 35), Some(30));
        assert_eq!(m.balance(1, Some(5)), Some(0));
        assert_eq!(m.balance(1, None), Some(70));
        // A change committed while a load was reading the database makes the load retry.
        let v = m.version(2);
        m.credit(2, None, 50);
        assert!(!m.load(2, None, 0, v));
        assert!(m.load(2, None, 50, m.version(2)));
        m.credit(2, None, 25);
        assert_eq!(m.balance(2, None), Some(75));
    }
}
