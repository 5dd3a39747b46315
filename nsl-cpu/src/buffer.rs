//! [`CpuBuf`]: a `Vec<f32>` whose storage goes back to a process-wide pool when dropped.
//!
//! A training step allocates the same large buffers (im2col patches, activations) every
//! iteration. Fresh allocations of that size come straight from the kernel as zero pages, and
//! faulting them in cost about 30% of a CNN-9 step. Recycling storage by exact length turns
//! that into a `memset`. Small buffers (< [`POOL_MIN`] elements) use the allocator directly;
//! the pool holds at most [`POOL_MAX_BYTES`] and drops storage beyond that.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

/// Buffers shorter than this are not pooled.
pub const POOL_MIN: usize = 16 * 1024;
/// Upper bound on the bytes held by the pool.
pub const POOL_MAX_BYTES: usize = 8 << 30;

struct Pool {
    free: HashMap<usize, Vec<Vec<f32>>>,
    bytes: usize,
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

fn with_pool<R>(f: impl FnOnce(&mut Pool) -> R) -> R {
    let mut guard = POOL.lock().unwrap_or_else(|p| p.into_inner());
    f(guard.get_or_insert_with(|| Pool { free: HashMap::new(), bytes: 0 }))
}

/// A CPU buffer of `f32`, read and written as a slice.
#[derive(Debug, PartialEq)]
pub struct CpuBuf {
    data: Vec<f32>,
}

impl CpuBuf {
    fn pooled(len: usize) -> Option<Vec<f32>> {
        if len < POOL_MIN {
            return None;
        }
        with_pool(|p| {
            let v = p.free.get_mut(&len)?.pop()?;
            p.bytes -= len * 4;
            Some(v)
        })
    }
    /// `len` zeros, reusing pooled storage of that length when there is some.
    pub fn zeros(len: usize) -> Self {
        match Self::pooled(len) {
            Some(mut data) => {
                data.fill(0.0);
                CpuBuf { data }
            }
            None => CpuBuf { data: vec![0.0; len] },
        }
    }
    /// `len` values left over from an earlier buffer (or zeros): for outputs that are overwritten.
    pub fn recycled(len: usize) -> Self {
        CpuBuf { data: Self::pooled(len).unwrap_or_else(|| vec![0.0; len]) }
    }
    /// A copy of `values`.
    pub fn from_slice(values: &[f32]) -> Self {
        let mut b = Self::recycled(values.len());
        b.data.copy_from_slice(values);
        b
    }
    /// Bytes currently held by the pool (for diagnostics).
    pub fn pooled_bytes() -> usize {
        with_pool(|p| p.bytes)
    }
    /// Release every pooled buffer to the allocator.
    pub fn trim_pool() {
        with_pool(|p| {
            p.free.clear();
            p.bytes = 0;
        })
    }
}

impl Drop for CpuBuf {
    fn drop(&mut self) {
        let len = self.data.len();
        if len >= POOL_MIN && self.data.capacity() == len {
            let data = std::mem::take(&mut self.data);
            with_pool(|p| {
                if p.bytes + len * 4 <= POOL_MAX_BYTES {
                    p.bytes += len * 4;
                    p.free.entry(len).or_default().push(data);
                }
            });
        }
    }
}

impl Clone for CpuBuf {
    fn clone(&self) -> Self {
        Self::from_slice(&self.data)
    }
}

impl Deref for CpuBuf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.data
    }
}

impl DerefMut for CpuBuf {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }
}
