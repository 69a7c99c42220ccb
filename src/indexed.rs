//! A map whose hash table holds only positions, for module size.
//!
//! A `HashMap<K, V>` compiles hashbrown's table code (growing, rehashing, probing, removing,
//! dropping) anew for every `(K, V)` pair, about 2 KB of wasm each. [`IndexedMap`] keeps its
//! entries in a `Vec<(K, V)>` and hashes only `K → position`, so every map keyed by `String`
//! (or by `UserId`) shares one copy of the table code, whatever it holds, with the memory
//! tier's own index (`cache::bounded`). A lookup costs one more indirection than a
//! `HashMap`'s; a removal moves the last entry into the hole (`swap_remove`), so iteration
//! order is not insertion order.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

#[derive(Debug)]
pub struct IndexedMap<K, V> {
    index: HashMap<K, usize>,
    entries: Vec<(K, V)>,
}

impl<K, V> Default for IndexedMap<K, V> {
    fn default() -> Self {
        Self {
            index: HashMap::new(),
            entries: Vec::new(),
        }
    }
}

impl<K: Hash + Eq + Clone, V> IndexedMap<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let at = *self.index.get(key)?;
        self.entries.get(at).map(|(_, v)| v)
    }

    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let at = *self.index.get(key)?;
        self.entries.get_mut(at).map(|(_, v)| v)
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.index.contains_key(key)
    }

    /// Sets `key`'s value; the value it replaced, if any.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        if let Some(old) = self.get_mut(&key) {
            return Some(std::mem::replace(old, value));
        }
        self.index.insert(key.clone(), self.entries.len());
        self.entries.push((key, value));
        None
    }

    /// `key`'s value, made by `make` first when there is none.
    pub fn get_or_insert_with(&mut self, key: &K, make: impl FnOnce() -> V) -> &mut V {
        let at = match self.index.get(key) {
            Some(&at) => at,
            None => {
                let at = self.entries.len();
                self.index.insert(key.clone(), at);
                self.entries.push((key.clone(), make()));
                at
            }
        };
        &mut self.entries[at].1
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let at = self.index.remove(key)?;
        let (_, value) = self.entries.swap_remove(at);
        if let Some((moved, _)) = self.entries.get(at) {
            if let Some(slot) = self.index.get_mut::<K>(moved) {
                *slot = at;
            }
        }
        Some(value)
    }

    /// Keeps the entries `keep` says to keep.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        self.entries.retain_mut(|(k, v)| keep(k, v));
        self.index.clear();
        for (at, (k, _)) in self.entries.iter().enumerate() {
            self.index.insert(k.clone(), at);
        }
    }

    pub fn clear(&mut self) {
        self.index.clear();
        self.entries.clear();
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

impl<K: Hash + Eq + Clone + Borrow<Q>, Q: Hash + Eq + ?Sized, V> std::ops::Index<&Q>
    for IndexedMap<K, V>
{
    type Output = V;

    fn index(&self, key: &Q) -> &V {
        self.get(key).expect("no entry for this key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Xorshift;

    #[test]
    fn an_indexed_map_answers_as_a_hash_map_through_any_inserts_removals_and_retains() {
        let mut rng = Xorshift(0x1d3e_77a1);
        let mut ours: IndexedMap<String, u64> = IndexedMap::new();
        let mut model: HashMap<String, u64> = HashMap::new();
        for step in 0..20_000u64 {
            let key = format!("k{}", rng.next() % 64);
            match rng.next() % 10 {
                0..=3 => assert_eq!(ours.insert(key.clone(), step), model.insert(key, step)),
                4..=5 => assert_eq!(ours.remove(key.as_str()), model.remove(&key)),
                6 => {
                    *ours.get_or_insert_with(&key, || 0) += 1;
                    *model.entry(key).or_default() += 1;
                }
                7 if step % 50 == 7 => {
                    let cut = rng.next() % 8;
                    ours.retain(|_, v| *v % 8 != cut);
                    model.retain(|_, v| *v % 8 != cut);
                }
                8 if step % 500 == 8 => {
                    ours.clear();
                    model.clear();
                }
                _ => assert_eq!(ours.get(key.as_str()), model.get(&key)),
            }
            assert_eq!(ours.len(), model.len());
            assert_eq!(ours.is_empty(), model.is_empty());
        }
        let mut listed: Vec<(String, u64)> = ours.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let mut expected: Vec<(String, u64)> = model.into_iter().collect();
        listed.sort();
        expected.sort();
        assert_eq!(listed, expected);
        for (k, v) in &expected {
            assert_eq!(ours[k.as_str()], *v);
            assert!(ours.contains_key(k.as_str()));
        }
    }
}
