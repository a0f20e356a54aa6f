//! The process's one tokio runtime, started on first use and shared by every command,
//! the daemon and the jobs it runs, so that no code path can start a runtime inside
//! another (which tokio refuses with a panic).

use std::future::Future;
use std::sync::OnceLock;

use anyhow::{Result, anyhow};
use tokio::runtime::{Handle, Runtime};

static RUNTIME: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();

/// The shared runtime: two worker threads (collection is gentle, not parallel in bulk).
///
/// Fails when the runtime cannot be started (no threads or no epoll left).
pub fn get() -> Result<&'static Runtime> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("plcvault-io")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| anyhow!("cannot start the async runtime: {e}"))
}

/// A handle to the shared runtime.
///
/// Fails as `get` does.
pub fn handle() -> Result<Handle> {
    Ok(get()?.handle().clone())
}

/// Runs `fut` to completion on the shared runtime from synchronous code: a command's
/// thread, or a job the daemon runs on a blocking thread of the same runtime.
///
/// Fails as `get` does. Must not be called from inside an async task.
pub fn block_on<F: Future>(fut: F) -> Result<F::Output> {
    match Handle::try_current() {
        // A blocking thread of a runtime (a daemon job): drive the future there.
        Ok(h) => Ok(h.block_on(fut)),
        Err(_) => Ok(get()?.block_on(fut)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_on_a_blocking_thread_can_block_on_the_shared_runtime() {
        let v = block_on(async {
            tokio::task::spawn_blocking(|| block_on(async { 41 + 1 }).unwrap())
                .await
                .unwrap()
        })
        .unwrap();
        assert_eq!(v, 42);
        // The same runtime every time.
        assert!(std::ptr::eq(get().unwrap(), get().unwrap()));
    }
}
