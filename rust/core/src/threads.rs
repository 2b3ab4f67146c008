//! One Rayon pool per requested size, created once and reused.
//!
//! Every parallel entry point of the core runs inside `with_threads(n, ..)`, so inner Rayon
//! loops and faer's `Par::rayon` use that pool (never the global one, never nested pools).
use faer::Par;
use rayon::ThreadPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

fn pools() -> &'static Mutex<HashMap<usize, Arc<ThreadPool>>> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<ThreadPool>>>> = OnceLock::new();
    POOLS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Number of threads used when the caller passes 0: `AK_NUM_THREADS`, else all cores.
pub fn default_threads() -> usize {
    std::env::var("AK_NUM_THREADS")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

fn pool(n: usize) -> Arc<ThreadPool> {
    let mut map = pools().lock().unwrap_or_else(|e| e.into_inner());
    map.entry(n)
        .or_insert_with(|| {
            Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .thread_name(|i| format!("ak-worker-{i}"))
                    .build()
                    .expect("failed to start the Rayon thread pool"),
            )
        })
        .clone()
}

/// Drops the cached pools (the binding calls this in a forked child: the parent's worker
/// threads do not exist there, so a pool inherited through `fork` would deadlock).
pub fn reset_after_fork() {
    if let Ok(mut map) = pools().try_lock() {
        // Leak instead of drop: joining threads that do not exist in the child would hang.
        for (_, p) in map.drain() {
            std::mem::forget(p);
        }
    }
}

/// Runs `f` on a pool of `n_threads` threads (0 = default); `f` gets the matching faer `Par`.
pub fn with_threads<R: Send>(n_threads: usize, f: impl FnOnce(Par) -> R + Send) -> R {
    let n = if n_threads == 0 {
        default_threads()
    } else {
        n_threads
    };
    let par = if n == 1 { Par::Seq } else { Par::rayon(n) };
    pool(n).install(|| f(par))
}
