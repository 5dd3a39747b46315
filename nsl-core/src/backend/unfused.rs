//! The fused ops composed of simpler ones: the default kernels of [`super::Kernels`], and the
//! references every fused kernel is tested against.

use super::{Backend, BatchNormDims, ConvScale, Gemm, Patch};
use crate::Window;

/// [`Backend::conv2d`] composed: `im2col`, then `patch_scale` for [`ConvScale::Taps`], then
/// `gemm`; for [`ConvScale::Rows`], the plain `conv2d` then `mul_rows`. Neither is
/// materialisation-free: a backend fuses them by overriding [`super::Kernels::conv2d`].
pub fn conv2d_unfused<B: Backend>(
    be: &B,
    g: &Window,
    n: usize,
    x: &B::Buf,
    w: &B::Buf,
    scale: ConvScale<'_, B::Buf>,
    y: &mut B::Buf,
) {
    let (rows, pl) = (g.rows(), g.patch_len());
    if let ConvScale::Rows(q) = scale {
        let mut raw = be.alloc(rows * n);
        be.conv2d(g, n, x, w, ConvScale::None, &mut raw);
        return be.mul_rows(&raw, q, rows, n, y);
    }
    let mut cols = be.alloc(rows * pl);
    be.im2col(g, x, &mut cols);
    if let ConvScale::Taps(s) = scale {
        let mut scaled = be.alloc(rows * pl);
        be.patch_scale(&Patch::of(g), &cols, s, &mut scaled);
        cols = scaled;
    }
    be.gemm(&Gemm::new(rows, n, pl), &cols, w, y);
}

/// [`Backend::conv2d_backward`] composed: with `P = im2col(x)` and `dP = dy·wᵀ`,
/// `dw += (s ⊙ P)ᵀ·dy`, `dx = col2im(s ⊙ dP)`, `ds = Σ_ch P ⊙ dP`; for [`ConvScale::Rows`],
/// the plain backward of `dy` with its rows times `q`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_unfused<B: Backend>(
    be: &B,
    g: &Window,
    n: usize,
    x: &B::Buf,
    w: &B::Buf,
    scale: ConvScale<'_, B::Buf>,
    dy: &B::Buf,
    dx: &mut B::Buf,
    dw: &mut B::Buf,
    dscale: Option<&mut B::Buf>,
) {
    let (rows, pl, taps) = (g.rows(), g.patch_len(), g.taps());
    if let ConvScale::Rows(q) = scale {
        let mut dy_q = be.alloc(rows * n);
        be.mul_rows(dy, q, rows, n, &mut dy_q);
        return be.conv2d_backward(g, n, x, w, ConvScale::None, &dy_q, dx, dw, None);
    }
    let mut cols = be.alloc(rows * pl);
    be.im2col(g, x, &mut cols);
    let mut dcols = be.alloc(rows * pl);
    be.gemm(&Gemm::new(rows, pl, n).tb(), dy, w, &mut dcols);
    if let ConvScale::Taps(s) = scale {
        let mut scaled = be.alloc(rows * pl);
        be.patch_scale(&Patch::of(g), &cols, s, &mut scaled);
        be.gemm(&Gemm::new(pl, n, rows).ta().accumulate(), &scaled, dy, dw);
        let mut ds_local;
        let ds = match dscale {
            Some(ds) => ds,
            None => {
                ds_local = be.alloc(rows * taps);
                &mut ds_local
            }
        };
        be.patch_scale_backward(&Patch::of(g), &cols, s, &dcols, &mut scaled, ds);
        dcols = scaled;
    } else {
        be.gemm(&Gemm::new(pl, n, rows).ta().accumulate(), &cols, dy, dw);
    }
    be.col2im(g, &dcols, dx);
}

// Signature boilerplate: the three batch norm + ReLU compositions below take their op's
// arguments (the same lists as `Backend`'s), run the plain op with one temporary and the ReLU.

/// [`Backend::batch_norm_train`] with `d.relu`, composed: the batch norm, then [`Backend::relu`].
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_relu_train_unfused<B: Backend>(
    be: &B,
    d: &BatchNormDims,
    x: &B::Buf,
    gamma: &B::Buf,
    beta: &B::Buf,
    y: &mut B::Buf,
    mean: &mut B::Buf,
    var: &mut B::Buf,
) {
    let mut t = be.alloc(d.rows * d.c);
    be.batch_norm_train(&BatchNormDims { relu: false, ..*d }, x, gamma, beta, &mut t, mean, var);
    be.relu(&t, y);
}

/// [`Backend::batch_norm_eval`] with `d.relu`, composed: the batch norm, then [`Backend::relu`].
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_relu_eval_unfused<B: Backend>(
    be: &B,
    d: &BatchNormDims,
    x: &B::Buf,
    gamma: &B::Buf,
    beta: &B::Buf,
    mean: &B::Buf,
    var: &B::Buf,
    y: &mut B::Buf,
) {
    let mut t = be.alloc(d.rows * d.c);
    be.batch_norm_eval(&BatchNormDims { relu: false, ..*d }, x, gamma, beta, mean, var, &mut t);
    be.relu(&t, y);
}

/// [`Backend::batch_norm_backward`] with `d.relu`, composed: [`Backend::relu_backward`] of `dy`
/// at the output `y`, then the batch norm's backward.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_relu_backward_unfused<B: Backend>(
    be: &B,
    d: &BatchNormDims,
    x: &B::Buf,
    gamma: &B::Buf,
    beta: &B::Buf,
    mean: &B::Buf,
    var: &B::Buf,
    y: &B::Buf,
    dy: &B::Buf,
    dx: &mut B::Buf,
    dgamma: &mut B::Buf,
    dbeta: &mut B::Buf,
) {
    let mut t = be.alloc(d.rows * d.c);
    be.relu_backward(y, dy, &mut t);
    let plain = BatchNormDims { relu: false, ..*d };
    be.batch_norm_backward(&plain, x, gamma, beta, mean, var, None, &t, dx, dgamma, dbeta);
}
