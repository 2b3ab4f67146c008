//! Cooperative cancellation and progress reporting for long computations.
//!
//! The binding runs a computation on a worker thread and polls this from the Python thread:
//! Ctrl-C sets `cancel`, and a progress bar reads `done / total`. Each entry point counts one
//! unit of work (kernel entries, sampler steps, action evaluations, ...); a sub-computation that
//! counts another unit runs [`Control::quietly`].
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Control {
    cancel: AtomicBool,
    done: AtomicU64,
    total: AtomicU64,
    quiet: AtomicBool,
}

impl Control {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
    /// Returns `Err(Interrupted)` once cancelled; call it at natural checkpoints.
    pub fn checkpoint(&self) -> crate::Result<()> {
        if self.is_cancelled() {
            Err(crate::AkError::Interrupted)
        } else {
            Ok(())
        }
    }
    fn counting(&self) -> bool {
        !self.quiet.load(Ordering::Relaxed)
    }
    pub fn set_total(&self, total: u64) {
        if self.counting() {
            self.total.store(total, Ordering::Relaxed);
        }
    }
    /// Grows the total (for computations whose amount of work is only known as they go).
    pub fn add_total(&self, n: u64) {
        if self.counting() {
            self.total.fetch_add(n, Ordering::Relaxed);
        }
    }
    pub fn advance(&self, n: u64) {
        if self.counting() {
            self.done.fetch_add(n, Ordering::Relaxed);
        }
    }
    /// Runs `f` with progress counting off (cancellation still works): for a sub-computation
    /// whose own unit would mix with the caller's, e.g. the kernel entries of a predictor built
    /// after each saddle point of a path that counts action evaluations. Not reentrant across
    /// threads: call it from the thread that drives the computation.
    pub fn quietly<R>(&self, f: impl FnOnce() -> R) -> R {
        let was = self.quiet.swap(true, Ordering::Relaxed);
        let out = f();
        self.quiet.store(was, Ordering::Relaxed);
        out
    }
    pub fn progress(&self) -> (u64, u64) {
        (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }
}

/// A control that is never cancelled, for callers without a UI.
pub fn no_control() -> &'static Control {
    static NONE: std::sync::OnceLock<Control> = std::sync::OnceLock::new();
    NONE.get_or_init(Control::new)
}
