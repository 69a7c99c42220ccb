//! One stable sort for the whole crate, for module size. `slice::sort_by` is compiled anew
//! for every element type and comparator (driftsort with its merges and small sorts, about
//! 3 KB of wasm each); [`sort_by`] sorts positions with a `dyn` comparator instead, so the one
//! copy of driftsort in `stable_order` serves every caller, then moves the elements into
//! that order. The result is exactly `sort_by`'s: both are stable sorts by the same
//! comparisons, and `O(n log n)` like it.

use std::cmp::Ordering;

/// The positions `0..len` in stable sorted order under `cmp` (which compares two positions).
fn stable_order(len: usize, cmp: &dyn Fn(usize, usize) -> Ordering) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    order.sort_by(|&a, &b| cmp(a, b));
    order
}

/// `v.sort_by(cmp)`: the same order, without a copy of the sort for `T`.
pub fn sort_by<T>(v: &mut Vec<T>, cmp: impl Fn(&T, &T) -> Ordering) {
    if v.len() < 2 {
        return;
    }
    let order = stable_order(v.len(), &|a, b| cmp(&v[a], &v[b]));
    let mut slots: Vec<Option<T>> = std::mem::take(v).into_iter().map(Some).collect();
    // Each position is in `order` exactly once, so every slot is taken once.
    v.extend(order.iter().filter_map(|&i| slots[i].take()));
}

/// `v.sort_by_key(key)`.
pub fn sort_by_key<T, K: Ord>(v: &mut Vec<T>, key: impl Fn(&T) -> K) {
    sort_by(v, |a, b| key(a).cmp(&key(b)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_as_the_standard_stable_sort_does() {
        // Keys with many ties, so stability shows: each element is (key, original position).
        let mut seed = 0x2545_f491_u64;
        for len in [0usize, 1, 2, 3, 7, 20, 64, 300, 2000] {
            let v: Vec<(u8, usize)> = (0..len)
                .map(|i| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    ((seed % 5) as u8, i)
                })
                .collect();
            let cmp =
                |a: &(u8, usize), b: &(u8, usize)| (a.0 % 2).cmp(&(b.0 % 2)).then(b.0.cmp(&a.0));
            let mut expected = v.clone();
            expected.sort_by(cmp);
            let mut got = v.clone();
            sort_by(&mut got, cmp);
            assert_eq!(got, expected, "len {len}");
            let mut expected = v.clone();
            expected.sort_by_key(|e| e.0);
            let mut got = v;
            sort_by_key(&mut got, |e| e.0);
            assert_eq!(got, expected, "len {len}");
        }
    }
}
