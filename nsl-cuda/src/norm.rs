//! Window L2 norm and batch normalisation (`kernels/norm.cu`; formulas on
//! [`nsl_core::Backend`]).
//!
//! Batch-norm statistics are `f64` column reductions with a fixed chunking
//! ([`ColReduce`]: 256 rows per partial, partials added in order), two passes (mean, then centred squares) like the CPU
//! backend; the per-channel constants are formed in `f64` and rounded to `f32` at the same
//! points as on the CPU. `window_norm_backward` is a gather (each input element sums
//! `dn[r]/n[r]` over the windows reading it), so it needs no atomics.

use nsl_core::{BatchNormDims, Window};

use crate::elementwise::ColReduce;
use crate::launch::{int, p, pm, Arg, Win};
use crate::{Cuda, CudaBuf};

/// See [`nsl_core::Backend::window_norm`].
pub(crate) fn window_norm(be: &Cuda, g: &Window, x: &CudaBuf, eps: f32, n: &mut CudaBuf) {
    be.launch_warps("nsl_window_norm", g.rows(), &[Arg::Win(Win::new(g)), Arg::F32(eps), p(x), p(n)]);
}

/// See [`nsl_core::Backend::window_norm_backward`] (accumulates into `dx`).
pub(crate) fn window_norm_backward(be: &Cuda, g: &Window, x: &CudaBuf, n: &CudaBuf, dn: &CudaBuf, dx: &mut CudaBuf) {
    be.launch_1d("nsl_window_norm_backward", g.input_len(), &[Arg::Win(Win::new(g)), p(x), p(n), p(dn), p(dx)]);
}

// Boilerplate: the three batch-norm ops take their `Kernels` methods' parameters (less
// `Checked`), so their parameter lists repeat each other's and `lib.rs`'s.

/// See [`nsl_core::Backend::batch_norm_train`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_norm_train(
    be: &Cuda,
    d: &BatchNormDims,
    x: &CudaBuf,
    gamma: &CudaBuf,
    beta: &CudaBuf,
    y: &mut CudaBuf,
    mean: &mut CudaBuf,
    var: &mut CudaBuf,
) {
    let op = "batch_norm_train";
    let (rows, c) = (d.rows, d.c);
    if c == 0 {
        return;
    }
    let inv_rows = 1.0 / rows.max(1) as f64;
    let cr = ColReduce::new(rows, c);
    let part = be.scratch::<f64>(op, cr.chunks * c);
    let sums = be.scratch::<f64>(op, c);
    let sq = be.scratch::<f64>(op, c);
    cr.partial(be, "nsl_bn_sum_partial", vec![p(x), pm(&part)]);
    be.launch_1d("nsl_col_final_f64", c, &[int(cr.chunks), int(c), pm(&part), pm(&sums)]);
    cr.partial(be, "nsl_bn_sq_partial", vec![Arg::F64(inv_rows), p(x), pm(&sums), pm(&part)]);
    be.launch_1d("nsl_col_final_f64", c, &[int(cr.chunks), int(c), pm(&part), pm(&sq)]);
    let scale = be.scratch::<f32>(op, c);
    be.launch_1d(
        "nsl_bn_finalize_train",
        c,
        &[int(c), Arg::F64(inv_rows), Arg::F32(d.eps), pm(&sums), pm(&sq), p(gamma), p(mean), p(var), pm(&scale)],
    );
    be.launch_1d("nsl_bn_affine", rows * c, &[int(rows * c), int(c), p(x), p(mean), pm(&scale), p(beta), p(y)]);
}

/// See [`nsl_core::Backend::batch_norm_eval`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_norm_eval(
    be: &Cuda,
    d: &BatchNormDims,
    x: &CudaBuf,
    gamma: &CudaBuf,
    beta: &CudaBuf,
    mean: &CudaBuf,
    var: &CudaBuf,
    y: &mut CudaBuf,
) {
    let op = "batch_norm_eval";
    let c = d.c;
    if c == 0 {
        return;
    }
    let scale = be.scratch::<f32>(op, c);
    be.launch_1d("nsl_bn_finalize_eval", c, &[int(c), Arg::F32(d.eps), p(gamma), p(var), pm(&scale)]);
    be.launch_1d("nsl_bn_affine", d.rows * c, &[int(d.rows * c), int(c), p(x), p(mean), pm(&scale), p(beta), p(y)]);
}

/// See [`nsl_core::Backend::batch_norm_backward`]: overwrites `dx`, accumulates `dgamma`,
/// `dbeta`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_norm_backward(
    be: &Cuda,
    d: &BatchNormDims,
    x: &CudaBuf,
    gamma: &CudaBuf,
    mean: &CudaBuf,
    var: &CudaBuf,
    dy: &CudaBuf,
    dx: &mut CudaBuf,
    dgamma: &mut CudaBuf,
    dbeta: &mut CudaBuf,
) {
    let op = "batch_norm_backward";
    let (rows, c) = (d.rows, d.c);
    if rows == 0 || c == 0 {
        return;
    }
    let cr = ColReduce::new(rows, c);
    let inv = be.scratch::<f64>(op, c);
    be.launch_1d("nsl_bn_inv", c, &[int(c), Arg::F32(d.eps), p(var), pm(&inv)]);
    let part_dy = be.scratch::<f64>(op, cr.chunks * c);
    let part_dyx = be.scratch::<f64>(op, cr.chunks * c);
    cr.partial(be, "nsl_bn_bwd_partial", vec![p(x), p(dy), p(mean), pm(&inv), pm(&part_dy), pm(&part_dyx)]);
    let sdy = be.scratch::<f64>(op, c);
    let sdyx = be.scratch::<f64>(op, c);
    be.launch_1d("nsl_col_final_f64", c, &[int(cr.chunks), int(c), pm(&part_dy), pm(&sdy)]);
    be.launch_1d("nsl_col_final_f64", c, &[int(cr.chunks), int(c), pm(&part_dyx), pm(&sdyx)]);
    let consts = be.scratch::<f32>(op, 4 * c); // [γ·inv | mean dy | mean dy·x̂ | inv]
    be.launch_1d(
        "nsl_bn_bwd_finalize",
        c,
        &[int(c), Arg::F64(rows as f64), pm(&sdy), pm(&sdyx), p(gamma), pm(&inv), p(dgamma), p(dbeta), pm(&consts)],
    );
    be.launch_1d("nsl_bn_bwd_dx", rows * c, &[int(rows * c), int(c), p(x), p(dy), p(mean), pm(&consts), p(dx)]);
}
