//! [`Iter`]: a cache's live entries in its policy's order.

use std::fmt;

use crate::slab::{NIL, Slab};

/// Iterator over a cache's live entries, in the policy's order (see each cache type).
///
/// Returned by [`Cache::iter`](crate::Cache::iter) on every single-owner cache. Entries whose
/// time-to-live ran out are skipped.
pub struct Iter<'a, K, V> {
    slab: &'a Slab<K, V>,
    cur: u32,
    then: u32,
    now: u64,
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.cur == NIL {
                if self.then == NIL {
                    return None;
                }
                self.cur = std::mem::replace(&mut self.then, NIL);
                continue;
            }
            let node = self.slab.node(self.cur);
            self.cur = self.slab.next(self.cur);
            if node.is_live(self.now) {
                return Some((&node.key, &node.value));
            }
        }
    }
}

impl<K, V> std::iter::FusedIterator for Iter<'_, K, V> {}

impl<K, V> fmt::Debug for Iter<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").finish_non_exhaustive()
    }
}

impl<'a, K, V> Iter<'a, K, V> {
    /// Walks from `cur`, then from `then`, skipping entries not live at `now`.
    pub(crate) fn new(slab: &'a Slab<K, V>, cur: u32, then: u32, now: u64) -> Self {
        Self {
            slab,
            cur,
            then,
            now,
        }
    }
}
