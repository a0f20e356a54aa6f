//! Gentle network access, shared by every network adapter: a rate cap on request starts,
//! one request in flight (the caller holds the only session), a timeout per attempt, and
//! retries with capped exponential backoff, on a new connection when the old one broke.
//! Fragile controllers fall over when flooded; this is the one place that decides how
//! hard plcvault knocks.

use std::time::Duration;

use tokio::time::Instant;

/// Spaces request starts at least `1 / max_per_second` apart.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: Option<Instant>,
}

impl Pacer {
    pub fn new(max_per_second: f64) -> Pacer {
        Pacer {
            interval: Duration::from_secs_f64(1.0 / max_per_second),
            next: None,
        }
    }

    /// Waits, blocking the thread, for the next free slot and takes it (for adapters whose
    /// client blocks, on the orchestrator's worker threads).
    pub fn wait_blocking(&mut self) {
        if let Some(next) = self.next {
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
        }
        self.next = Some(Instant::now() + self.interval);
    }

    /// Waits for the next free slot and takes it.
    pub async fn wait(&mut self) {
        if let Some(next) = self.next {
            tokio::time::sleep_until(next).await;
        }
        self.next = Some(Instant::now() + self.interval);
    }
}

/// How often and how patiently a failed request is tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Attempts after the first.
    pub retries: u32,
    /// The pause after the first failure; doubled after each further one.
    pub base: Duration,
    /// The longest pause.
    pub cap: Duration,
}

impl Backoff {
    pub fn new(retries: u32) -> Backoff {
        Backoff {
            retries,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
        }
    }

    /// The pause before attempt `attempt + 1` (0-based), never more than `cap`.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.cap)
    }
}

/// How an attempt failed.
#[derive(Debug)]
pub enum Failed<E> {
    /// The peer answered and said no (an exception, a refusal): trying again will not help.
    Final(E),
    /// No answer, a broken connection or garbage: worth another attempt, on a new
    /// connection (the attempt has dropped the old one).
    Retry(E),
}

/// The retries of one request. The caller's loop waits for its pacer slot, sends, and on
/// failure asks `after`, which sleeps the backoff and says go on, or hands back the error
/// to give up with:
///
/// ```text
/// let mut tries = Tries::new(backoff);
/// loop {
///     pacer.wait().await;
///     match conn.call(req.clone()).await {
///         Ok(r) => return Ok(r),
///         Err(f) => tries.after(f).await?,
///     }
/// }
/// ```
#[derive(Debug)]
pub struct Tries {
    backoff: Backoff,
    retried: u32,
}

impl Tries {
    pub fn new(backoff: Backoff) -> Tries {
        Tries {
            backoff,
            retried: 0,
        }
    }

    /// After a failed attempt: waits the backoff when another attempt is allowed.
    ///
    /// Fails with the error when it is final or the retries are used up.
    pub async fn after<E>(&mut self, failed: Failed<E>) -> Result<(), E> {
        match failed {
            Failed::Final(e) => Err(e),
            Failed::Retry(e) if self.retried >= self.backoff.retries => Err(e),
            Failed::Retry(_) => {
                tokio::time::sleep(self.backoff.delay(self.retried)).await;
                self.retried += 1;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pacer_spaces_request_starts() {
        let mut p = Pacer::new(10.0);
        let t0 = Instant::now();
        for _ in 0..5 {
            p.wait().await;
        }
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(400), "{took:?}");
        assert!(took < Duration::from_millis(500), "{took:?}");
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let b = Backoff::new(10);
        let d: Vec<u64> = (0..8).map(|i| b.delay(i).as_millis() as u64).collect();
        assert_eq!(d, vec![100, 200, 400, 800, 1600, 2000, 2000, 2000]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_at_the_limit_and_final_errors_stop_at_once() {
        let t0 = Instant::now();
        let mut tries = Tries::new(Backoff::new(2));
        assert_eq!(tries.after(Failed::Retry("a")).await, Ok(()));
        assert_eq!(tries.after(Failed::Retry("b")).await, Ok(()));
        assert_eq!(tries.after(Failed::Retry("c")).await, Err("c"));
        assert_eq!(t0.elapsed(), Duration::from_millis(300));
        let mut tries = Tries::new(Backoff::new(2));
        assert_eq!(tries.after(Failed::Final("no")).await, Err("no"));
    }
}
