//! A monotone priority queue with FIFO order among equal keys (a radix heap).
//!
//! The watershed's queue is monotone: every pushed priority is at least the last popped one
//! (skimage's rule that a pixel costs at least as much as the pixel it was reached from). A radix
//! heap then gives amortised O(log key range) operations without comparisons between items, and
//! pops equal keys in push order, which is exactly skimage's (value, age) order.
//! Hand-written: the radix-heap crates on crates.io are unmaintained and not FIFO on ties.

/// Items are `(key, payload)`; keys must never be below the last popped key.
pub struct RadixQueue {
    last: u64,
    /// Bucket 0 holds keys equal to `last`, read from `head` on (FIFO); bucket b > 0 holds keys
    /// whose highest bit differing from `last` is bit b − 1.
    buckets: Vec<Vec<(u64, u32)>>,
    head: usize,
    len: usize,
}

impl Default for RadixQueue {
    fn default() -> Self {
        RadixQueue::new()
    }
}

impl RadixQueue {
    pub fn new() -> RadixQueue {
        RadixQueue { last: 0, buckets: (0..65).map(|_| Vec::new()).collect(), head: 0, len: 0 }
    }

    /// Empties the queue for a new, independent flood, keeping the buckets' allocations (many
    /// small floods in a row then do not reallocate their buckets each time).
    pub fn reset(&mut self) {
        self.buckets.iter_mut().for_each(Vec::clear);
        self.last = 0;
        self.head = 0;
        self.len = 0;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn bucket(&self, key: u64) -> usize {
        (64 - (key ^ self.last).leading_zeros()) as usize
    }

    /// Pushes an item. Keys below the last popped key are raised to it (cannot happen for a
    /// monotone user; kept so a misuse degrades gracefully instead of corrupting the heap).
    #[inline]
    pub fn push(&mut self, key: u64, payload: u32) {
        let key = key.max(self.last);
        let b = self.bucket(key);
        self.buckets[b].push((key, payload));
        self.len += 1;
    }

    /// Pops the item with the smallest key; among equal keys, the one pushed first.
    #[inline]
    pub fn pop(&mut self) -> Option<(u64, u32)> {
        if self.len == 0 {
            return None;
        }
        if self.head == self.buckets[0].len() {
            self.buckets[0].clear();
            self.head = 0;
            // The smallest non-empty bucket holds the next key; all smaller buckets are empty, so
            // redistributing it keeps every bucket in push order.
            let i = (1..65).find(|&i| !self.buckets[i].is_empty())?;
            let items = std::mem::take(&mut self.buckets[i]);
            self.last = items.iter().map(|p| p.0).min()?;
            for &(k, v) in &items {
                let b = self.bucket(k);
                self.buckets[b].push((k, v));
            }
            // Give the allocation back so the bucket does not reallocate next time.
            let mut items = items;
            items.clear();
            if self.buckets[i].is_empty() {
                self.buckets[i] = items;
            }
        }
        let item = self.buckets[0][self.head];
        self.head += 1;
        self.len -= 1;
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_key_then_push_order_while_monotone() {
        let mut q = RadixQueue::new();
        let mut reference: Vec<(u64, u32)> = Vec::new();
        let mut x = 12345u64;
        let mut next = 0u32;
        let mut popped = Vec::new();
        let mut want = Vec::new();
        for round in 0..2000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let pushes = (x >> 60) as usize;
            let last = popped.last().map_or(0, |p: &(u64, u32)| p.0);
            for k in 0..pushes {
                let key = last + ((x >> ((8 + 4 * k) % 56)) % 7) * (1 + (round % 5)) as u64;
                q.push(key, next);
                reference.push((key, next));
                next += 1;
            }
            if let Some(p) = q.pop() {
                popped.push(p);
                // Reference: smallest key, then smallest payload (= push order).
                let (j, _) = reference.iter().enumerate().min_by_key(|(_, r)| (r.0, r.1)).unwrap();
                want.push(reference.remove(j));
            }
        }
        while let Some(p) = q.pop() {
            popped.push(p);
            let (j, _) = reference.iter().enumerate().min_by_key(|(_, r)| (r.0, r.1)).unwrap();
            want.push(reference.remove(j));
        }
        assert_eq!(popped, want);
        assert!(q.is_empty());
        // After a reset, keys below the previous floods' last key are accepted again.
        q.push(50, 1);
        q.reset();
        q.push(3, 7);
        q.push(1, 8);
        assert_eq!((q.pop(), q.pop(), q.pop()), (Some((1, 8)), Some((3, 7)), None));
    }
}
