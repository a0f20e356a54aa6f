//! One work queue for "do this to every item, on a few threads": each thread makes its own
//! state once (buffers, a decompressor), takes the next item, and results come back in
//! item order. Used by verify, restore, collect and drills instead of a hand-made queue in
//! each.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many threads to use, at most `wanted`: one when the process's address space is
/// capped (`ulimit -v`), since every thread's allocator arena reserves 64 MiB of it and a
/// bounded process must not run out because work was spread over cores.
pub fn threads(wanted: usize) -> usize {
    static CAPPED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let capped = *CAPPED.get_or_init(|| {
        std::fs::read_to_string("/proc/self/limits").is_ok_and(|t| {
            t.lines()
                .find(|l| l.starts_with("Max address space"))
                .is_some_and(|l| !l.contains("unlimited"))
        })
    });
    if capped { 1 } else { wanted.max(1) }
}

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
    let run = || {
        let mut state = init();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            let r = work(&mut state, item);
            results.lock().expect("results lock")[i] = Some(r);
        }
    };
    // Under an address-space cap, one thread whatever the caller asked (see `threads`).
    let threads = self::threads(threads);
    if threads <= 1 || items.len() <= 1 {
        run();
        return results
            .into_inner()
            .expect("results lock")
            .into_iter()
            .map(|r| r.expect("every item was done"))
            .collect();
    }
    std::thread::scope(|s| {
        let mut spawned = 0;
        for _ in 0..threads.clamp(1, items.len().max(1)) {
            // A process short of memory or threads works on with fewer, or on this one.
            if std::thread::Builder::new().spawn_scoped(s, run).is_err() {
                break;
            }
            spawned += 1;
        }
        if spawned == 0 {
            run();
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
