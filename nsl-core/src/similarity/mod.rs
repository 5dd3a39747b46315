//! The [`Similarity`] trait and every similarity of the paper.
//!
//! A similarity turns the inner product of a convolution, `wᵀx_p`, into `wᵀ M x_p`
//! (block-diagonal `M` with one shared `k²×k²` block `M_s`, paper Eq. 2). Static similarities
//! implement the small host-side [`SimilarityMatrix`] trait and get a backend-generic layer
//! through [`Static`]; dynamic ones predict `M` per position with a predictor network.
//!
//! Conventions: the kernel `w` is `[k²·C_in, C_out]` (row `t·C_in + c`); `M_s` is `k²×k²`
//! with rows indexing kernel taps and columns indexing patch taps (`ŵᵀ = wᵀ M_s`).

mod cholesky;
mod diagonal;
mod dynamic;
mod global_diagonal;
mod inner_product;
mod kernel_shape;
pub mod predictor;
mod self_attention;
mod sphere;
mod static_matrix;
mod unconstrained;

pub use cholesky::CholeskyPsd;
pub use diagonal::{Diagonal, DiagonalInit};
pub use dynamic::{Dynamic, DynamicKind};
pub use global_diagonal::GlobalDiagonal;
pub use inner_product::InnerProduct;
pub use kernel_shape::KernelShape;
pub use self_attention::SelfAttention;
pub use sphere::Sphere;
pub use static_matrix::{SimilarityMatrix, Static};
pub use unconstrained::Unconstrained;

use crate::backend::ConvScale;
use crate::nn::{BatchNorm, ConvOp, InferenceOp, Mode};
use crate::{Backend, Gemm, Param, Tensor, Window};

/// A learnable similarity inside a convolution.
///
/// `forward` computes `y[r, o] = f_M(w[:, o], x_r)` for every output position `r` of the
/// window `g` (`y` is `[g.rows(), C_out]`); with [`Mode::record`] it caches what `backward`
/// needs. `backward` takes `∂L/∂y`, **adds** `∂L/∂w` into `dw` and the similarity's own
/// parameter gradients into their `grad`, and returns `∂L/∂x` (shaped like `x`).
/// Caches must be dropped by `backward` (the optimiser then updates `w` in place).
pub trait Similarity<B: Backend>: Send {
    /// Short name, e.g. `static DNS`.
    fn name(&self) -> String;
    /// `y = f_M(w, x)` at every window position.
    fn forward(&mut self, be: &B, g: &Window, x: &Tensor<B>, w: &Tensor<B>, mode: Mode) -> Tensor<B>;
    /// `∂L/∂x` from `∂L/∂y`, accumulating `∂L/∂w` into `dw`.
    fn backward(&mut self, be: &B, dy: &Tensor<B>, dw: &mut Tensor<B>) -> Tensor<B>;
    /// Visit the similarity's own parameters (and predictor parameters).
    fn visit_params(&mut self, _f: &mut dyn FnMut(&mut Param<B>)) {}
    /// Visit the batch norms inside (a dynamic similarity's predictor), as
    /// [`crate::nn::Layer::visit_batch_norms`].
    fn visit_batch_norms(&mut self, _f: &mut dyn FnMut(&mut BatchNorm<B>)) {}
    /// For a static similarity, the plain kernel `ŵ` with `conv(x, ŵ) = f_M(w, x)` (paper §3.2).
    fn fold(&self, _be: &B, _w: &Tensor<B>) -> Option<Tensor<B>> {
        None
    }
    /// What the convolution `conv` (geometry and kernel `w`) computes with this similarity at
    /// inference. The default describes a static similarity by its folded kernel, and errs for
    /// any other.
    fn inference_op(&mut self, be: &B, conv: ConvOp) -> Result<InferenceOp, String> {
        let w = Tensor::from_vec(be, &[conv.k * conv.k * conv.c_in, conv.c_out], &conv.weight);
        let folded =
            self.fold(be, &w).ok_or_else(|| format!("a {} similarity has no inference description", self.name()))?;
        Ok(InferenceOp::Conv(ConvOp { weight: folded.to_vec(be), ..conv }))
    }
}

impl<B: Backend> Similarity<B> for Box<dyn Similarity<B>> {
    fn name(&self) -> String {
        (**self).name()
    }
    fn forward(&mut self, be: &B, g: &Window, x: &Tensor<B>, w: &Tensor<B>, mode: Mode) -> Tensor<B> {
        (**self).forward(be, g, x, w, mode)
    }
    fn backward(&mut self, be: &B, dy: &Tensor<B>, dw: &mut Tensor<B>) -> Tensor<B> {
        (**self).backward(be, dy, dw)
    }
    fn visit_params(&mut self, f: &mut dyn FnMut(&mut Param<B>)) {
        (**self).visit_params(f)
    }
    fn visit_batch_norms(&mut self, f: &mut dyn FnMut(&mut BatchNorm<B>)) {
        (**self).visit_batch_norms(f)
    }
    fn fold(&self, be: &B, w: &Tensor<B>) -> Option<Tensor<B>> {
        (**self).fold(be, w)
    }
    fn inference_op(&mut self, be: &B, conv: ConvOp) -> Result<InferenceOp, String> {
        (**self).inference_op(be, conv)
    }
}

// ---- building blocks shared by the similarities -------------------------------------------

/// im2col: the `[rows, k²·C]` patch matrix of `x` under window `g`.
pub fn unfold<B: Backend>(be: &B, g: &Window, x: &Tensor<B>) -> Tensor<B> {
    assert_eq!(x.numel(), g.input_len(), "input {:?} does not match window {g:?}", x.shape());
    let mut cols = Tensor::empty(be, &[g.rows(), g.patch_len()]);
    be.im2col(g, x.buf(), cols.buf_mut());
    cols
}

/// col2im: the gradient w.r.t. `x` (`[B, H, W, C]`) of a patch-matrix gradient.
pub fn unfold_backward<B: Backend>(be: &B, g: &Window, dcols: &Tensor<B>) -> Tensor<B> {
    let mut dx = Tensor::empty(be, &[g.batch, g.h, g.w, g.c]);
    be.col2im(g, dcols.buf(), dx.buf_mut());
    dx
}

/// `y = cols · w`: `[rows, K]·[K, O] → [rows, O]`.
pub fn patches_times_kernel<B: Backend>(be: &B, cols: &Tensor<B>, w: &Tensor<B>) -> Tensor<B> {
    let (rows, k) = (cols.shape()[0], cols.shape()[1]);
    let o = w.shape()[1];
    assert_eq!(w.shape()[0], k, "kernel {:?} does not match patches of length {k}", w.shape());
    let mut y = Tensor::empty(be, &[rows, o]);
    be.gemm(&Gemm::new(rows, o, k), cols.buf(), w.buf(), y.buf_mut());
    y
}

/// Backward of [`patches_times_kernel`]: `dw += colsᵀ·dy`, returns `dcols = dy·wᵀ`.
pub fn patches_times_kernel_backward<B: Backend>(
    be: &B,
    cols: &Tensor<B>,
    w: &Tensor<B>,
    dy: &Tensor<B>,
    dw: &mut Tensor<B>,
) -> Tensor<B> {
    let (rows, k) = (cols.shape()[0], cols.shape()[1]);
    let o = w.shape()[1];
    be.gemm(&Gemm::new(k, o, rows).ta().accumulate(), cols.buf(), dy.buf(), dw.buf_mut());
    let mut dcols = Tensor::empty(be, &[rows, k]);
    be.gemm(&Gemm::new(rows, k, o).tb(), dy.buf(), w.buf(), dcols.buf_mut());
    dcols
}

/// Plain convolution `y = im2col(x)·w` ([`Backend::conv2d`]), `[rows, C_out]`.
pub fn conv<B: Backend>(be: &B, g: &Window, x: &Tensor<B>, w: &Tensor<B>) -> Tensor<B> {
    conv_scaled(be, g, x, w, None)
}

/// Backward of [`conv`]: `dw += im2col(x)ᵀ·dy`, returns `dx = col2im(dy·wᵀ)`.
pub fn conv_backward<B: Backend>(
    be: &B,
    g: &Window,
    x: &Tensor<B>,
    w: &Tensor<B>,
    dy: &Tensor<B>,
    dw: &mut Tensor<B>,
) -> Tensor<B> {
    conv_scaled_backward(be, g, x, w, None, dy, dw).0
}

/// Convolution with its output rows scaled, `y[r,o] = q[r]·(im2col(x)·w)[r,o]`
/// ([`Backend::conv2d`] with [`ConvScale::Rows`]); `q` is `[rows]`.
pub fn conv_rows_scaled<B: Backend>(be: &B, g: &Window, x: &Tensor<B>, w: &Tensor<B>, q: &Tensor<B>) -> Tensor<B> {
    assert_eq!(q.numel(), g.rows(), "row scale {:?} is not one value per output row", q.shape());
    let n = w.shape()[1];
    let mut y = Tensor::empty(be, &[g.rows(), n]);
    be.conv2d(g, n, x.buf(), w.buf(), ConvScale::Rows(q.buf()), y.buf_mut());
    y
}

/// Backward of [`conv_rows_scaled`] for `x` and `w`: with `dy' = q ⊙ dy` (rows),
/// `dw += im2col(x)ᵀ·dy'`; returns `dx = col2im(dy'·wᵀ)`.
pub fn conv_rows_scaled_backward<B: Backend>(
    be: &B,
    g: &Window,
    x: &Tensor<B>,
    w: &Tensor<B>,
    q: &Tensor<B>,
    dy: &Tensor<B>,
    dw: &mut Tensor<B>,
) -> Tensor<B> {
    let n = w.shape()[1];
    let mut dx = Tensor::empty(be, &[g.batch, g.h, g.w, g.c]);
    let q = ConvScale::Rows(q.buf());
    be.conv2d_backward(g, n, x.buf(), w.buf(), q, dy.buf(), dx.buf_mut(), dw.buf_mut(), None);
    dx
}

/// Convolution of patches scaled per position and tap, `y = (s ⊙ im2col(x))·w` (the dynamic
/// DNS transform, [`Backend::conv2d`]); `s` is `[rows, k²]`.
pub fn conv_scaled<B: Backend>(be: &B, g: &Window, x: &Tensor<B>, w: &Tensor<B>, s: Option<&Tensor<B>>) -> Tensor<B> {
    assert_eq!(x.numel(), g.input_len(), "input {:?} does not match window {g:?}", x.shape());
    assert_eq!(
        w.shape()[0],
        g.patch_len(),
        "kernel {:?} does not match patches of length {}",
        w.shape(),
        g.patch_len()
    );
    if let Some(s) = s {
        assert_eq!(s.numel(), g.rows() * g.taps(), "patch scale {:?} is not rows × taps", s.shape());
    }
    let n = w.shape()[1];
    let mut y = Tensor::empty(be, &[g.rows(), n]);
    be.conv2d(g, n, x.buf(), w.buf(), taps(s), y.buf_mut());
    y
}

/// Backward of [`conv_scaled`]: `dw += (s ⊙ P)ᵀ·dy`; returns `dx = col2im(s ⊙ dy·wᵀ)` and, with
/// a scale, `ds[r,t] = Σ_c P[r,t,c]·(dy·wᵀ)[r,t,c]` (`P = im2col(x)`).
pub fn conv_scaled_backward<B: Backend>(
    be: &B,
    g: &Window,
    x: &Tensor<B>,
    w: &Tensor<B>,
    s: Option<&Tensor<B>>,
    dy: &Tensor<B>,
    dw: &mut Tensor<B>,
) -> (Tensor<B>, Option<Tensor<B>>) {
    let n = w.shape()[1];
    let mut dx = Tensor::empty(be, &[g.batch, g.h, g.w, g.c]);
    let mut ds = s.map(|s| s.empty_like(be));
    be.conv2d_backward(
        g,
        n,
        x.buf(),
        w.buf(),
        taps(s),
        dy.buf(),
        dx.buf_mut(),
        dw.buf_mut(),
        ds.as_mut().map(|d| d.buf_mut()),
    );
    (dx, ds)
}

/// A per-tap scale, or none.
fn taps<B: Backend>(s: Option<&Tensor<B>>) -> ConvScale<'_, B::Buf> {
    s.map_or(ConvScale::None, |s| ConvScale::Taps(s.buf()))
}
