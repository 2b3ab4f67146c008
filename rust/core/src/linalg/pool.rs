//! Reusable equal-length `f64` buffers for solvers that evaluate the same problem many times.
//!
//! A P x P buffer is one large allocation, which the allocator serves straight from the OS:
//! every evaluation that allocates afresh pays a page fault and a kernel page clear for each
//! 4 KiB it touches (at P = 2000 a kernel-renormalization evaluation touched ~250 MB of fresh
//! pages). A pool hands buffers back for reuse instead. It never holds more buffers than were
//! alive at once, so it does not raise the peak memory of the code that uses it.
use rayon::prelude::*;
use std::sync::Mutex;

/// A pool of buffers of one length.
#[derive(Debug)]
pub struct BufferPool {
    len: usize,
    free: Mutex<Vec<Vec<f64>>>,
}

impl BufferPool {
    pub fn new(len: usize) -> Self {
        BufferPool { len, free: Mutex::new(Vec::new()) }
    }

    /// The length of every buffer of the pool.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffers are empty (length 0).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A buffer of [`Self::len`] entries with **unspecified contents** (zeros, or what a
    /// previous user left): the caller must write every entry it reads.
    pub fn take(&self) -> Vec<f64> {
        let reused = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
        reused.unwrap_or_else(|| vec![0.0; self.len])
    }

    /// A buffer of zeros (a reused one is cleared in parallel chunks: the same result on any
    /// number of threads).
    pub fn take_zeroed(&self) -> Vec<f64> {
        let reused = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match reused {
            Some(mut v) => {
                v.par_chunks_mut(1 << 16).for_each(|c| c.fill(0.0));
                v
            }
            None => vec![0.0; self.len],
        }
    }

    /// Returns a buffer for reuse; one of another length is dropped.
    pub fn give(&self, v: Vec<f64>) {
        if v.len() == self.len {
            self.free.lock().unwrap_or_else(|e| e.into_inner()).push(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_returned_buffers_and_zeroes_on_request() {
        let pool = BufferPool::new(5);
        let mut a = pool.take();
        assert_eq!(a, vec![0.0; 5]);
        a.fill(3.0);
        let ptr = a.as_ptr();
        pool.give(a);
        let b = pool.take();
        assert_eq!(b.as_ptr(), ptr);
        assert_eq!(b, vec![3.0; 5]);
        pool.give(b);
        assert_eq!(pool.take_zeroed(), vec![0.0; 5]);
        pool.give(vec![1.0; 4]); // wrong length: dropped
        assert_eq!(pool.take(), vec![0.0; 5]);
    }
}
