//! One work queue for "do this to every item, on a few threads": each thread makes its own
//! state once (buffers, a decompressor), takes the next item, and results come back in
//! item order. Used by verify, restore, collect and drills instead of a hand-made queue in
//! each.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `work(state, item)` for every item on up to `threads` threads (at least one, at
/// most one per item), each thread starting from `init()`, and returns the results in
/// the order of `items`.
pub fn map_with<T, S, R, I, F>(items: &[T], threads: usize, init: I, work: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    I: Fn() -> S + Sync,
    F: Fn(&mut S, &T) -> R + Sync,
{
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, items.len().max(1)) {
            s.spawn(|| {
                let mut state = init();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = work(&mut state, item);
                    results.lock().expect("results lock")[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .expect("results lock")
        .into_iter()
        .map(|r| r.expect("every item was done"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_order_with_per_thread_state() {
        let items: Vec<u64> = (0..1000).collect();
        let out = map_with(
            &items,
            4,
            || 0u64,
            |seen, x| {
                *seen += 1;
                x * 2
            },
        );
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        assert!(map_with(&[] as &[u8], 4, || (), |_, _| 0).is_empty());
    }
}
