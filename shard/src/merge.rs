//! Combining the answers of several shards: concatenation, k-way merge of sorted lists, top-k
//! and sums.

use std::cmp::Ordering;

/// All items of all lists, in list order.
#[must_use]
pub fn concat<T>(lists: Vec<Vec<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(lists.iter().map(Vec::len).sum());
    for list in lists {
        out.extend(list);
    }
    out
}

/// Merges lists that are each sorted by `cmp` into one sorted list (a cross-shard `ORDER BY`).
/// Stable: equal items keep list order. Each output item compares the heads of the `k` lists,
/// O(n·k) in all, which for the handful of shards one query spans beats a heap's bookkeeping.
///
/// # Examples
///
/// ```
/// use tierkit_shard::merge::merge_sorted_by;
///
/// let merged = merge_sorted_by(vec![vec![1, 4, 9], vec![2, 3, 10], vec![]], |a, b| a.cmp(b));
/// assert_eq!(merged, [1, 2, 3, 4, 9, 10]);
/// ```
pub fn merge_sorted_by<T>(lists: Vec<Vec<T>>, cmp: impl Fn(&T, &T) -> Ordering) -> Vec<T> {
    let total = lists.iter().map(Vec::len).sum();
    let mut iters: Vec<std::vec::IntoIter<T>> = lists.into_iter().map(Vec::into_iter).collect();
    let mut heads: Vec<Option<T>> = iters.iter_mut().map(Iterator::next).collect();
    let mut out = Vec::with_capacity(total);
    loop {
        let mut best: Option<usize> = None;
        for i in 0..heads.len() {
            let better = match (&heads[i], best.and_then(|b| heads[b].as_ref())) {
                (Some(item), Some(current)) => cmp(item, current) == Ordering::Less,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if better {
                best = Some(i);
            }
        }
        let Some(b) = best else { break };
        if let Some(item) = heads[b].take() {
            out.push(item);
        }
        heads[b] = iters[b].next();
    }
    out
}

/// Merges lists each sorted ascending.
#[must_use]
pub fn merge_sorted<T: Ord>(lists: Vec<Vec<T>>) -> Vec<T> {
    merge_sorted_by(lists, Ord::cmp)
}

/// The `k` largest items of all lists by `key`, largest first (a cross-shard `ORDER BY ... DESC
/// LIMIT k`); ties keep the earlier item. Keeps only the best `k` while scanning: O(n·k) worst
/// case, O(n) when most items lose to the current k-th.
///
/// # Examples
///
/// ```
/// use tierkit_shard::merge::top_k_by_key;
///
/// let top = top_k_by_key(vec![vec![("a", 5), ("b", 1)], vec![("c", 9)]], 2, |(_, n)| *n);
/// assert_eq!(top, [("c", 9), ("a", 5)]);
/// ```
pub fn top_k_by_key<T, K: Ord>(lists: Vec<Vec<T>>, k: usize, key: impl Fn(&T) -> K) -> Vec<T> {
    // Best first; a new item goes after every item with a key >= its own.
    let mut best: Vec<(K, T)> = Vec::with_capacity(k + 1);
    for item in lists.into_iter().flatten() {
        let kk = key(&item);
        if best.len() == k && best.last().is_none_or(|(last, _)| kk <= *last) {
            continue;
        }
        let at = best.partition_point(|(b, _)| *b >= kk);
        best.insert(at, (kk, item));
        best.truncate(k);
    }
    best.into_iter().map(|(_, item)| item).collect()
}

/// The sum of per-shard partial sums (a cross-shard `SUM` or `COUNT`).
pub fn sum<T: std::iter::Sum<T>>(parts: Vec<T>) -> T {
    parts.into_iter().sum()
}
