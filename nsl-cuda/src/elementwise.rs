//! Elementwise ops and simple reductions (`kernels/elementwise.cu`): `axpy`, `scale`, `mul`,
//! `map`, `dot`, `mul_rows`, `mul_cols`, `dot_rows`, `dot_cols`. `fill` is a `cuMemsetD32`
//! (in `lib.rs`).
//!
//! Reductions accumulate in `f64` like the CPU backend, with fixed reduction trees: `dot` uses
//! `min(ceil(n/2048), 1024)` block partials (a function of `n` only) summed by one block;
//! `dot_rows` one warp per row; `dot_cols` per-chunk partials ([`ColReduce`]) summed in chunk
//! order.

use nsl_core::Map;

use crate::launch::{blocks, int, p, pm, Arg};
use crate::{Cuda, CudaBuf};

/// The fixed chunking of a column reduction over `rows × cols` (see `col_partial` in
/// `kernels/common.cuh`): 256 rows per partial, more when needed to keep the grid's y
/// dimension within 65 535 — a function of `rows` only, so results are repeatable.
pub(crate) struct ColReduce {
    pub rows: usize,
    pub cols: usize,
    pub chunk: usize,
    /// Number of partials per column.
    pub chunks: usize,
}

impl ColReduce {
    pub(crate) fn new(rows: usize, cols: usize) -> Self {
        let chunk = rows.div_ceil(65_535).max(256);
        ColReduce { rows, cols, chunk, chunks: rows.div_ceil(chunk) }
    }

    /// The leading `rows, cols, chunk` arguments of a pass-1 kernel.
    pub(crate) fn args(&self) -> [Arg; 3] {
        [int(self.rows), int(self.cols), int(self.chunk)]
    }

    /// Launch pass 1 (`args` are the kernel's arguments after `rows, cols, chunk`).
    pub(crate) fn partial(&self, be: &Cuda, kernel: &'static str, args: Vec<Arg>) {
        let mut all: Vec<Arg> = self.args().into();
        all.extend(args);
        be.launch(kernel, (blocks(self.cols, 32), self.chunks as u32, 1), (32, 8, 1), 0, &all);
    }
}

/// See [`nsl_core::Backend::axpy`].
pub(crate) fn axpy(be: &Cuda, alpha: f32, x: &CudaBuf, y: &mut CudaBuf) {
    let n = y.len();
    be.launch_1d("nsl_axpy", n, &[int(n), Arg::F32(alpha), p(x), p(y)]);
}

/// See [`nsl_core::Backend::scale`].
pub(crate) fn scale(be: &Cuda, alpha: f32, x: &mut CudaBuf) {
    let n = x.len();
    be.launch_1d("nsl_scale", n, &[int(n), Arg::F32(alpha), p(x)]);
}

/// See [`nsl_core::Backend::mul`].
pub(crate) fn mul(be: &Cuda, a: &CudaBuf, b: &CudaBuf, out: &mut CudaBuf) {
    let n = out.len();
    be.launch_1d("nsl_mul", n, &[int(n), p(a), p(b), p(out)]);
}

/// See [`nsl_core::Backend::map`].
pub(crate) fn map(be: &Cuda, f: Map, x: &CudaBuf, out: &mut CudaBuf) {
    let (kind, p0, p1) = match f {
        Map::SqrtEps(eps) => (0, eps, 0.0),
        Map::Recip => (1, 0.0, 0.0),
        Map::Square => (2, 0.0, 0.0),
        Map::Sign => (3, 0.0, 0.0),
        Map::Affine(a, b) => (4, a, b),
    };
    let n = out.len();
    be.launch_1d("nsl_map", n, &[int(n), Arg::I32(kind), Arg::F32(p0), Arg::F32(p1), p(x), p(out)]);
}

/// See [`nsl_core::Backend::dot`]. Synchronises (the result goes to the host).
pub(crate) fn dot(be: &Cuda, a: &CudaBuf, b: &CudaBuf) -> f32 {
    let n = a.len();
    if n == 0 {
        return 0.0;
    }
    let parts = n.div_ceil(2048).min(1024);
    let part = be.scratch::<f64>("dot", parts);
    be.launch(
        "nsl_dot_partial",
        (parts as u32, 1, 1),
        (crate::launch::THREADS, 1, 1),
        0,
        &[int(n), p(a), p(b), pm(&part)],
    );
    let total = be.scratch::<f64>("dot", 1);
    be.launch("nsl_sum_f64", (1, 1, 1), (crate::launch::THREADS, 1, 1), 0, &[int(parts), pm(&part), pm(&total)]);
    be.download_mem("dot", &total, 1)[0] as f32
}

/// See [`nsl_core::Backend::mul_rows`].
pub(crate) fn mul_rows(be: &Cuda, x: &CudaBuf, s: &CudaBuf, rows: usize, cols: usize, out: &mut CudaBuf) {
    be.launch_1d("nsl_mul_rows", rows * cols, &[int(rows), int(cols), p(x), p(s), p(out)]);
}

/// See [`nsl_core::Backend::mul_cols`].
pub(crate) fn mul_cols(be: &Cuda, x: &CudaBuf, s: &CudaBuf, rows: usize, cols: usize, out: &mut CudaBuf) {
    be.launch_1d("nsl_mul_cols", rows * cols, &[int(rows), int(cols), p(x), p(s), p(out)]);
}

/// See [`nsl_core::Backend::dot_rows`].
pub(crate) fn dot_rows(be: &Cuda, a: &CudaBuf, b: &CudaBuf, rows: usize, cols: usize, out: &mut CudaBuf) {
    be.launch_warps("nsl_dot_rows", rows, &[int(rows), int(cols), p(a), p(b), p(out)]);
}

/// See [`nsl_core::Backend::dot_cols`].
pub(crate) fn dot_cols(be: &Cuda, a: &CudaBuf, b: &CudaBuf, rows: usize, cols: usize, out: &mut CudaBuf) {
    let op = "dot_cols";
    if cols == 0 {
        return;
    }
    let cr = ColReduce::new(rows, cols);
    let part = be.scratch::<f64>(op, cr.chunks * cols);
    cr.partial(be, "nsl_dot_cols_partial", vec![p(a), p(b), pm(&part)]);
    be.launch_1d("nsl_col_final_f32", cols, &[int(cr.chunks), int(cols), pm(&part), p(out)]);
}
