//! ReLU, max-pooling and row softmax (`kernels/activation.cu`; formulas on
//! [`nsl_core::Backend`]).
//!
//! Max-pool backward is a gather: each input element adds the `dy` of every window whose
//! first (row-major) maximum it is, in increasing output order — the CPU's scatter order — so
//! overlapping windows add up deterministically and without atomics. Softmax runs a warp per
//! row with the normaliser (and the backward's dot) summed in `f64`.

use nsl_core::Window;

use crate::launch::{int, p, Arg, Win};
use crate::{Cuda, CudaBuf};

/// See [`nsl_core::Backend::relu`].
pub(crate) fn relu(be: &Cuda, x: &CudaBuf, y: &mut CudaBuf) {
    let n = y.len();
    be.launch_1d("nsl_relu", n, &[int(n), p(x), p(y)]);
}

/// See [`nsl_core::Backend::relu_backward`].
pub(crate) fn relu_backward(be: &Cuda, y: &CudaBuf, dy: &CudaBuf, dx: &mut CudaBuf) {
    let n = dx.len();
    be.launch_1d("nsl_relu_backward", n, &[int(n), p(y), p(dy), p(dx)]);
}

/// See [`nsl_core::Backend::max_pool`].
pub(crate) fn max_pool(be: &Cuda, g: &Window, x: &CudaBuf, y: &mut CudaBuf) {
    be.launch_1d("nsl_max_pool", g.rows() * g.c, &[Arg::Win(Win::new(g)), p(x), p(y)]);
}

/// See [`nsl_core::Backend::max_pool_backward`] (overwrites `dx`).
pub(crate) fn max_pool_backward(be: &Cuda, g: &Window, x: &CudaBuf, y: &CudaBuf, dy: &CudaBuf, dx: &mut CudaBuf) {
    be.launch_1d("nsl_max_pool_backward", g.input_len(), &[Arg::Win(Win::new(g)), p(x), p(y), p(dy), p(dx)]);
}

/// See [`nsl_core::Backend::softmax_rows`].
pub(crate) fn softmax_rows(be: &Cuda, x: &CudaBuf, rows: usize, cols: usize, y: &mut CudaBuf) {
    if cols == 0 {
        return;
    }
    be.launch_warps("nsl_softmax_rows", rows, &[int(rows), int(cols), p(x), p(y)]);
}

/// See [`nsl_core::Backend::softmax_rows_backward`].
pub(crate) fn softmax_rows_backward(be: &Cuda, y: &CudaBuf, dy: &CudaBuf, rows: usize, cols: usize, dx: &mut CudaBuf) {
    if cols == 0 {
        return;
    }
    be.launch_warps("nsl_softmax_rows_backward", rows, &[int(rows), int(cols), p(y), p(dy), p(dx)]);
}
