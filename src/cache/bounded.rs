//! A map bounded by a count and a total weight, evicting by CLOCK (second chance): the memory
//! tier's entries and the isolate's view of users' versions.
//!
//! Each entry carries a mark that [`Bounded::get`] sets ([`Bounded::peek`] does not), and so
//! does replacing it (a write is a use). When an insert takes the map past a bound, a hand
//! sweeps the entries in insertion order: a marked one loses its mark and stays, an unmarked
//! one is evicted. So an entry used since the hand last passed survives a sweep, and one
//! nobody asked for goes first — what an LRU does, at the cost of one flag per entry and no
//! list to reorder on every hit. New entries always go at the end of the order (a removed
//! one leaves a hole, squeezed out once holes are half the slots), so one inserted just now
//! is never the next the hand meets.

use std::borrow::Borrow;
use std::cell::Cell;
use std::collections::HashMap;
use std::hash::Hash;

struct Slot<K, V> {
    key: K,
    value: V,
    weight: u64,
    marked: Cell<bool>,
}

pub struct Bounded<K, V> {
    /// Where each key's entry is in `slots`.
    index: HashMap<K, usize>,
    /// The entries, in the order they were inserted (the hand's); `None` where one was removed.
    slots: Vec<Option<Slot<K, V>>>,
    /// The slot the hand looks at next.
    hand: usize,
    weight: u64,
    max_weight: u64,
    max_len: usize,
    weigh: fn(&K, &V) -> u64,
}

impl<K: Hash + Eq + Clone, V> Bounded<K, V> {
    /// At most `max_len` entries weighing at most `max_weight` together, each weighed by
    /// `weigh` when inserted.
    pub fn new(max_len: usize, max_weight: u64, weigh: fn(&K, &V) -> u64) -> Self {
        Self {
            index: HashMap::new(),
            slots: Vec::new(),
            hand: 0,
            weight: 0,
            max_weight,
            max_len: max_len.max(1),
            weigh,
        }
    }

    /// At most `max_len` entries, each weighing 1.
    pub fn with_len(max_len: usize) -> Self {
        Self::new(max_len, u64::MAX, |_, _| 1)
    }

    fn slot<Q>(&self, key: &Q) -> Option<&Slot<K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.slots.get(*self.index.get(key)?)?.as_ref()
    }

    /// The entry for `key`, marked as used: it survives the hand's next pass.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let slot = self.slot(key)?;
        slot.marked.set(true);
        Some(&slot.value)
    }

    /// The entry for `key`, without marking it used.
    pub fn peek<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.slot(key).map(|s| &s.value)
    }

    /// The entry for `key` to change in place, without marking it used (its weight is not
    /// weighed again: what changes this way must not change it).
    pub fn peek_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let at = *self.index.get(key)?;
        self.slots.get_mut(at)?.as_mut().map(|s| &mut s.value)
    }

    /// Inserts the entry for `key`, or replaces it where it stands (marked as used), then
    /// evicts until both bounds hold. An entry heavier than the whole weight bound is not kept
    /// (nor is the one it would replace).
    pub fn insert(&mut self, key: K, value: V) {
        let weight = (self.weigh)(&key, &value);
        if weight > self.max_weight {
            self.remove(&key);
            return;
        }
        let at = match self.index.get(&key).copied() {
            Some(at) => {
                if let Some(slot) = self.slots.get_mut(at).and_then(Option::as_mut) {
                    self.weight = self.weight - slot.weight + weight;
                    slot.value = value;
                    slot.weight = weight;
                    slot.marked.set(true);
                }
                at
            }
            None => {
                self.compact();
                self.slots.push(Some(Slot {
                    key: key.clone(),
                    value,
                    weight,
                    marked: Cell::new(false),
                }));
                let at = self.slots.len() - 1;
                self.index.insert(key, at);
                self.weight += weight;
                at
            }
        };
        self.evict(at);
    }

    /// Squeezes the holes out of `slots` once they are half of it, keeping the order and
    /// where the hand stands in it.
    fn compact(&mut self) {
        if self.slots.len() < 2 * self.index.len() + 16 {
            return;
        }
        let hand = self.hand.min(self.slots.len());
        self.hand = self.slots[..hand].iter().flatten().count();
        self.slots.retain(Option::is_some);
        for (at, slot) in self.slots.iter().enumerate() {
            if let Some(slot) = slot {
                if let Some(i) = self.index.get_mut(&slot.key) {
                    *i = at;
                }
            }
        }
    }

    /// Sweeps until both bounds hold, sparing `kept` (the entry just inserted) this time.
    fn evict(&mut self, kept: usize) {
        // Two full turns at most: the first clears every mark, the second finds an entry.
        let mut budget = 2 * self.slots.len();
        while (self.index.len() > self.max_len || self.weight > self.max_weight) && budget > 0 {
            budget -= 1;
            let at = self.hand % self.slots.len();
            self.hand = at + 1;
            let evict = match &self.slots[at] {
                Some(slot) if at != kept => !slot.marked.replace(false),
                _ => false,
            };
            if evict {
                self.take(at);
            }
        }
    }

    /// Empties slot `at`.
    fn take(&mut self, at: usize) -> Option<V> {
        let slot = self.slots.get_mut(at)?.take()?;
        self.index.remove(&slot.key);
        self.weight -= slot.weight;
        Some(slot.value)
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let at = *self.index.get(key)?;
        self.take(at)
    }

    /// Keeps only the entries `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        for at in 0..self.slots.len() {
            if matches!(&self.slots[at], Some(s) if !keep(&s.key, &s.value)) {
                self.take(at);
            }
        }
    }

    pub fn clear(&mut self) {
        self.index.clear();
        self.slots.clear();
        self.hand = 0;
        self.weight = 0;
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The weight of the entries held.
    pub fn weight(&self) -> u64 {
        self.weight
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.slots.iter().flatten().map(|s| (&s.key, &s.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_bounds_hold_after_every_insert() {
        let mut m = Bounded::new(5, 100, |_, v: &String| v.len() as u64);
        for i in 0..50 {
            m.insert(format!("k{i}"), "x".repeat(i % 40));
            assert!(m.len() <= 5, "{} entries", m.len());
            assert!(m.weight() <= 100, "{} weight", m.weight());
            assert_eq!(
                m.weight(),
                m.iter().map(|(_, v)| v.len() as u64).sum::<u64>()
            );
        }
    }

    #[test]
    fn an_entry_read_since_the_hand_passed_survives_and_an_unread_one_goes_first() {
        let mut m = Bounded::with_len(3);
        for k in ["a", "b", "c"] {
            m.insert(k.to_owned(), ());
        }
        assert!(m.get("a").is_some());
        m.insert("d".to_owned(), ());
        assert!(m.peek("a").is_some(), "read, so spared");
        assert!(m.peek("b").is_none(), "the oldest unread goes");
        assert!(m.peek("c").is_some() && m.peek("d").is_some());
    }

    #[test]
    fn an_entry_inserted_where_one_was_removed_is_not_the_next_the_hand_meets() {
        // a and b evicted, the hand past them; c removed, leaving a hole at the hand.
        let mut m = Bounded::with_len(3);
        for k in ["a", "b", "c", "d", "e"] {
            m.insert(k.to_owned(), ());
        }
        m.remove("c");
        m.insert("f".to_owned(), ());
        m.insert("g".to_owned(), ());
        assert!(m.peek("f").is_some(), "the newest but one stays");
        assert!(m.peek("d").is_none(), "the oldest unread goes");
    }

    #[test]
    fn replacing_an_entry_marks_it_used_and_keeps_its_place() {
        let mut m = Bounded::with_len(3);
        for k in ["a", "b", "c"] {
            m.insert(k.to_owned(), 0);
        }
        m.insert("a".to_owned(), 1);
        m.insert("d".to_owned(), 0);
        assert_eq!(
            m.peek("a"),
            Some(&1),
            "spared: written since the hand passed"
        );
        assert!(m.peek("b").is_none());
    }

    #[test]
    fn holes_are_squeezed_out_and_the_order_and_bounds_still_hold() {
        let mut m = Bounded::with_len(4);
        for round in 0..50 {
            for i in 0..4 {
                m.insert(format!("{round}:{i}"), i);
            }
            m.retain(|k, _| !k.ends_with(":1"));
            assert!(m.len() <= 4);
            // Squeezed at the next insert once holes are half the slots: never more than
            // about twice the bound.
            assert!(m.slots.len() <= 2 * 4 + 16 + 1, "{} slots", m.slots.len());
            for (k, at) in &m.index {
                assert_eq!(m.slots[*at].as_ref().map(|s| &s.key), Some(k));
            }
        }
    }

    #[test]
    fn a_peek_does_not_spare_an_entry() {
        let mut m = Bounded::with_len(2);
        m.insert("a".to_owned(), ());
        m.insert("b".to_owned(), ());
        assert!(m.peek("a").is_some());
        m.insert("c".to_owned(), ());
        assert!(m.peek("a").is_none());
    }

    #[test]
    fn replacing_an_entry_reweighs_it_and_removing_frees_its_weight() {
        let mut m = Bounded::new(10, 1_000, |_, v: &String| v.len() as u64);
        m.insert("a".to_owned(), "x".repeat(10));
        m.insert("a".to_owned(), "x".repeat(30));
        assert_eq!((m.len(), m.weight()), (1, 30));
        assert_eq!(m.remove("a").map(|v| v.len()), Some(30));
        assert_eq!((m.len(), m.weight()), (0, 0));
        assert!(m.is_empty());
    }

    #[test]
    fn an_entry_heavier_than_the_bound_is_not_kept() {
        let mut m = Bounded::new(10, 100, |_, v: &String| v.len() as u64);
        m.insert("a".to_owned(), "x".repeat(10));
        m.insert("a".to_owned(), "x".repeat(101));
        assert!(m.is_empty());
        assert_eq!(m.weight(), 0);
    }

    #[test]
    fn retain_and_clear_drop_what_they_say_and_slots_are_reused() {
        let mut m = Bounded::new(10, 1_000, |_, v: &String| v.len() as u64);
        for k in ["ada:1", "ada:2", "bob:1"] {
            m.insert(k.to_owned(), k.to_owned());
        }
        m.retain(|k, _| !k.starts_with("ada:"));
        assert_eq!(
            m.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["bob:1"]
        );
        m.insert("cy:1".to_owned(), "x".to_owned());
        assert_eq!(m.len(), 2);
        assert_eq!(m.weight(), 6);
        if let Some(v) = m.peek_mut("cy:1") {
            v.push('y');
        }
        assert_eq!(m.peek("cy:1").map(String::as_str), Some("xy"));
        m.clear();
        assert!(m.is_empty() && m.weight() == 0 && m.iter().next().is_none());
    }
}
