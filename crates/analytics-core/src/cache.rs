//! The result cache's hit and miss counts, tallied per connection and written to the database in batches.
//!
//! Writing one row per cached call would give every cache hit a transaction id (and a commit record) of its own,
//! and is impossible in a READ ONLY transaction. So each connection keeps a tally in memory and writes it when it
//! writes anyway (a miss stores its result) or, on hits only, at most once per `FLUSH_EVERY` — and only in a
//! read-write transaction. Hits served in READ ONLY transactions are counted too: their tally is written by the
//! next read-write call on the same connection.

use std::collections::BTreeMap;

/// Longest time a connection that only serves hits keeps its tally unwritten.
pub const FLUSH_EVERY_MS: u64 = 10_000;

/// Hits and misses of one owner's calls of one function.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub hits: i64,
    pub misses: i64,
}

/// A connection's tally since it was last written, by (owner, function); sorted, so that batches insert in one order.
#[derive(Debug, Default)]
pub struct Tally {
    counts: BTreeMap<(String, String), Counts>,
    /// When the tally was last written (or the first call was counted), in ms of any monotonic clock.
    since_ms: Option<u64>,
}

impl Tally {
    /// Counts one call at `now_ms`; answers whether the tally is due to be written: on a miss (which writes its
    /// result anyway), or when the oldest unwritten count is `FLUSH_EVERY_MS` old.
    pub fn record(&mut self, owner: &str, function: &str, hit: bool, now_ms: u64) -> bool {
        let c = self.counts.entry((owner.to_string(), function.to_string())).or_default();
        if hit {
            c.hits += 1;
        } else {
            c.misses += 1;
        }
        let since = *self.since_ms.get_or_insert(now_ms);
        !hit || now_ms.saturating_sub(since) >= FLUSH_EVERY_MS
    }

    /// The unwritten counts, without clearing them (so a caller's statistics include their own latest calls).
    pub fn pending(&self) -> Vec<(String, String, Counts)> {
        self.counts.iter().map(|((o, f), c)| (o.clone(), f.clone(), *c)).collect()
    }

    /// Takes the unwritten counts for writing; the tally starts again at `now_ms`.
    pub fn drain(&mut self, now_ms: u64) -> Vec<(String, String, Counts)> {
        let out = self.pending();
        self.counts.clear();
        self.since_ms = Some(now_ms);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_miss_is_due_at_once_hits_only_after_the_interval() {
        let mut t = Tally::default();
        assert!(!t.record("a", "f", true, 1_000));
        assert!(!t.record("a", "f", true, 1_000 + FLUSH_EVERY_MS - 1));
        assert!(t.record("a", "f", true, 1_000 + FLUSH_EVERY_MS));
        assert!(t.record("b", "f", false, 2_000));
    }

    #[test]
    fn counts_are_kept_per_owner_and_function_until_drained() {
        let mut t = Tally::default();
        t.record("b", "f", true, 0);
        t.record("a", "g", false, 0);
        t.record("a", "g", true, 0);
        t.record("a", "f", true, 0);
        let p = t.pending();
        assert_eq!(
            p,
            vec![
                ("a".into(), "f".into(), Counts { hits: 1, misses: 0 }),
                ("a".into(), "g".into(), Counts { hits: 1, misses: 1 }),
                ("b".into(), "f".into(), Counts { hits: 1, misses: 0 }),
            ]
        );
        assert_eq!(t.drain(5), p);
        assert!(t.pending().is_empty());
        // the interval restarts at the drain
        assert!(!t.record("a", "f", true, 5 + FLUSH_EVERY_MS - 1));
        assert!(t.record("a", "f", true, 5 + FLUSH_EVERY_MS));
    }
}
