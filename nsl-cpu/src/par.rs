//! Parallel helpers with a fixed, size-only chunking (never dependent on the thread count).

use std::cell::RefCell;
use std::ops::{Add, AddAssign, Mul};

use rayon::prelude::*;

use crate::Cpu;

/// Most backward tasks of a convolution (each holds a private copy of `dw`).
pub(crate) const MAX_BACKWARD_TASKS: usize = 8;
/// Flops (rows·k²c·n) below which a convolution stays on the calling thread.
pub(crate) const PAR_MIN_FLOPS: usize = 1 << 20;

thread_local! {
    /// Per-thread scratch for tiles, grown on demand and kept (rayon's workers live on).
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `f` on `len` values of this thread's scratch (stale contents).
pub(crate) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < len {
            s.resize(len, 0.0);
        }
        f(&mut s[..len])
    })
}

/// `(images per task, tasks)` of a convolution backward over `batch` images and `flops`
/// multiply-adds: at most `max_tasks` (each holds a private copy of the weight gradient), none
/// smaller than [`PAR_MIN_FLOPS`]. It depends on the problem only, never on the thread count,
/// so summing per-task partials in task order is reproducible.
pub(crate) fn backward_tasks(batch: usize, flops: usize, max_tasks: usize) -> (usize, usize) {
    let tasks = batch.min(max_tasks).min(flops.div_ceil(PAR_MIN_FLOPS)).max(1);
    let imgs = batch.div_ceil(tasks);
    (imgs, batch.div_ceil(imgs))
}

/// Work (in elements touched) below which an op stays on the calling thread.
pub(crate) const PAR_MIN: usize = 1 << 15;
/// Elements per parallel task and per reduction chunk.
pub(crate) const CHUNK: usize = 1 << 14;

/// Rows per task so that a task covers about [`CHUNK`] elements of `row_work` each.
pub(crate) fn rows_per_task(row_work: usize) -> usize {
    (CHUNK / row_work.max(1)).max(1)
}

/// Call `f(first_row, rows_of_out)` over `out` (rows of `row_len`), in parallel chunks of
/// rows when `work` is large enough. `f` must handle any number of whole rows.
pub(crate) fn rows_mut<F>(cpu: &Cpu, out: &mut [f32], row_len: usize, work: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync + Send,
{
    if out.is_empty() || row_len == 0 {
        return;
    }
    if work < PAR_MIN {
        f(0, out);
        return;
    }
    let rpt = rows_per_task(work.div_ceil(out.len() / row_len));
    cpu.install(|| out.par_chunks_mut(rpt * row_len).enumerate().for_each(|(i, o)| f(i * rpt, o)));
}

/// Like [`rows_mut`] with two outputs sharing the same rows (`len_a`, `len_b` per row).
#[allow(clippy::too_many_arguments)]
pub(crate) fn rows_mut2<F>(
    cpu: &Cpu,
    rows: usize,
    a: &mut [f32],
    len_a: usize,
    b: &mut [f32],
    len_b: usize,
    work: usize,
    f: F,
) where
    F: Fn(usize, &mut [f32], &mut [f32]) + Sync + Send,
{
    if rows == 0 {
        return;
    }
    let (a, b) = (&mut a[..rows * len_a], &mut b[..rows * len_b]);
    if work < PAR_MIN || len_a == 0 || len_b == 0 {
        f(0, a, b);
        return;
    }
    let rpt = rows_per_task(work.div_ceil(rows));
    cpu.install(|| {
        a.par_chunks_mut(rpt * len_a)
            .zip(b.par_chunks_mut(rpt * len_b))
            .enumerate()
            .for_each(|(i, (a, b))| f(i * rpt, a, b))
    });
}

/// `f(i)` for `i in 0..n`, in order, in parallel when `work` is large enough. Used for
/// reductions: the caller combines the partials sequentially, so the result does not depend
/// on scheduling.
pub(crate) fn map_collect<T, F>(cpu: &Cpu, n: usize, work: usize, f: F) -> Vec<T>
where
    T: Send,
    F: Fn(usize) -> T + Sync + Send,
{
    if work < PAR_MIN || n <= 1 {
        (0..n).map(f).collect()
    } else {
        cpu.install(|| (0..n).into_par_iter().map(f).collect())
    }
}

/// Elementwise: `f(x_chunk, y_chunk)` over equal-length slices.
pub(crate) fn zip_mut<F>(cpu: &Cpu, x: &[f32], y: &mut [f32], f: F)
where
    F: Fn(&[f32], &mut [f32]) + Sync + Send,
{
    if y.len() < PAR_MIN {
        f(x, y);
    } else {
        cpu.install(|| x.par_chunks(CHUNK).zip(y.par_chunks_mut(CHUNK)).for_each(|(x, y)| f(x, y)));
    }
}

/// Elementwise: `f(a_chunk, b_chunk, out_chunk)` over equal-length slices.
pub(crate) fn zip2_mut<F>(cpu: &Cpu, a: &[f32], b: &[f32], out: &mut [f32], f: F)
where
    F: Fn(&[f32], &[f32], &mut [f32]) + Sync + Send,
{
    if out.len() < PAR_MIN {
        f(a, b, out);
    } else {
        cpu.install(|| {
            a.par_chunks(CHUNK)
                .zip(b.par_chunks(CHUNK))
                .zip(out.par_chunks_mut(CHUNK))
                .for_each(|((a, b), o)| f(a, b, o))
        });
    }
}

/// Elementwise on one buffer in place.
pub(crate) fn each_mut<F>(cpu: &Cpu, x: &mut [f32], f: F)
where
    F: Fn(&mut [f32]) + Sync + Send,
{
    if x.len() < PAR_MIN {
        f(x);
    } else {
        cpu.install(|| x.par_chunks_mut(CHUNK).for_each(&f));
    }
}

/// Dot product of two equal-length slices accumulated in `T` (`f32`, or `f64` from widened
/// products) over 8 independent lanes, vectorisable and deterministic: the lanes are added as
/// `((a₀ + a₄) + (a₁ + a₅)) + ((a₂ + a₆) + (a₃ + a₇))`, then the tail of `len mod 8` products.
#[inline(always)]
fn dot_lanes<T>(a: &[f32], b: &[f32]) -> T
where
    T: From<f32> + Copy + Default + Add<Output = T> + AddAssign + Mul<Output = T>,
{
    let mut acc = [T::default(); 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += T::from(x[l]) * T::from(y[l]);
        }
    }
    let mut tail = T::default();
    for (&x, &y) in ra.iter().zip(rb) {
        tail += T::from(x) * T::from(y);
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// Dot product in `f64` over 8 lanes (see [`dot_lanes`]).
#[inline]
pub(crate) fn dot_f64(a: &[f32], b: &[f32]) -> f64 {
    dot_lanes(a, b)
}

/// Dot product in `f32` over 8 lanes (fast inner loops of short length).
#[inline]
pub(crate) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes(a, b)
}

/// Sum of squares in `f32` over 8 lanes.
#[inline]
pub(crate) fn sum_sq_f32(a: &[f32]) -> f32 {
    dot_f32(a, a)
}

/// `y += alpha·x`
#[inline]
pub(crate) fn axpy_slice(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += alpha * x;
    }
}

/// Split `out` into tasks of `rpt` rows of `row_len` and return `f(first_row, rows)` for each
/// task in order (in parallel when `work` is large enough). The chunking depends only on
/// `rpt`, so reductions over the returned partials are deterministic.
pub(crate) fn rows_map_collect<T, F>(
    cpu: &Cpu,
    out: &mut [f32],
    row_len: usize,
    rpt: usize,
    work: usize,
    f: F,
) -> Vec<T>
where
    T: Send,
    F: Fn(usize, &mut [f32]) -> T + Sync + Send,
{
    if out.is_empty() || row_len == 0 {
        return Vec::new();
    }
    let chunk = rpt.max(1) * row_len;
    if work < PAR_MIN {
        out.chunks_mut(chunk).enumerate().map(|(i, o)| f(i * rpt, o)).collect()
    } else {
        cpu.install(|| out.par_chunks_mut(chunk).enumerate().map(|(i, o)| f(i * rpt, o)).collect())
    }
}
