//! [`Kernels`]: what a backend implements. The formulas are on [`Backend`](super::Backend)'s methods of the
//! same names; a kernel receives arguments [`Backend`](super::Backend) has checked (lengths, labels, optimiser
//! constants), so it holds dispatch and arithmetic only.

use super::{
    conv2d_backward_unfused, conv2d_unfused, AdamStep, BackendError, BatchNormDims, ConvScale, CrossEntropy, Gemm, Map,
    Patch, SgdStep,
};
use crate::Window;

/// Proof that [`Backend`](super::Backend) checked a kernel's arguments. Only nsl-core can make one, so a kernel
/// cannot be called past the checks.
#[derive(Clone, Copy, Debug)]
pub struct Checked(pub(super) ());

/// A compute backend's storage and kernels. Implement this (every `Kernels` type is a
/// [`Backend`](super::Backend)); see each method's namesake on [`Backend`](super::Backend) for its formula and the checks its
/// arguments passed. Buffers are at least as long as the op's descriptor needs (longer is allowed
/// where [`Backend`](super::Backend) says so).
///
/// Implementations: `nsl_cpu::Cpu`, `nsl_cuda::Cuda` (feature `cuda`).
// Signature boilerplate: every method repeats `Backend`'s signature with a `Checked` proof in
// front; the formulas are written once, on `Backend`.
#[allow(clippy::too_many_arguments)]
pub trait Kernels: Clone + Send + Sync + std::fmt::Debug + 'static {
    /// A device buffer of `f32`.
    type Buf: Send + Sync;

    // ---- storage (nothing to check) ------------------------------------------------------
    fn name(&self) -> String;
    /// See [`Backend::numerics`]. Default: [`Kernels::name`].
    fn numerics(&self) -> String {
        self.name()
    }
    /// Waits until every kernel issued so far has finished. Default: nothing to wait for.
    fn synchronize(&self) {}
    /// The first device failure so far, if any (see [`BackendError`]). Default: a synchronous
    /// backend that cannot fail.
    fn status(&self) -> Result<(), BackendError> {
        Ok(())
    }
    fn zeros(&self, len: usize) -> Self::Buf;
    /// Default: [`Kernels::zeros`].
    fn alloc(&self, len: usize) -> Self::Buf {
        self.zeros(len)
    }
    fn upload(&self, data: &[f32]) -> Self::Buf;
    fn download(&self, buf: &Self::Buf) -> Vec<f32>;
    fn len(&self, buf: &Self::Buf) -> usize;

    // ---- kernels --------------------------------------------------------------------------
    fn copy(&self, _: Checked, src: &Self::Buf, dst: &mut Self::Buf);
    fn gemm(&self, _: Checked, g: &Gemm, a: &Self::Buf, b: &Self::Buf, c: &mut Self::Buf);
    fn fill(&self, _: Checked, x: &mut Self::Buf, value: f32);
    fn axpy(&self, _: Checked, alpha: f32, x: &Self::Buf, y: &mut Self::Buf);
    fn scale(&self, _: Checked, alpha: f32, x: &mut Self::Buf);
    fn mul(&self, _: Checked, a: &Self::Buf, b: &Self::Buf, out: &mut Self::Buf);
    fn map(&self, _: Checked, f: Map, x: &Self::Buf, out: &mut Self::Buf);
    fn dot(&self, _: Checked, a: &Self::Buf, b: &Self::Buf) -> f32;
    fn mul_rows(&self, _: Checked, x: &Self::Buf, s: &Self::Buf, rows: usize, cols: usize, out: &mut Self::Buf);
    fn mul_cols(&self, _: Checked, x: &Self::Buf, s: &Self::Buf, rows: usize, cols: usize, out: &mut Self::Buf);
    fn dot_rows(&self, _: Checked, a: &Self::Buf, b: &Self::Buf, rows: usize, cols: usize, out: &mut Self::Buf);
    fn dot_cols(&self, _: Checked, a: &Self::Buf, b: &Self::Buf, rows: usize, cols: usize, out: &mut Self::Buf);

    fn im2col(&self, _: Checked, g: &Window, x: &Self::Buf, cols: &mut Self::Buf);
    fn col2im(&self, _: Checked, g: &Window, dcols: &Self::Buf, dx: &mut Self::Buf);
    /// Default: [`conv2d_unfused`] (im2col, patch scale, GEMM, row scale).
    fn conv2d(
        &self,
        _: Checked,
        g: &Window,
        n: usize,
        x: &Self::Buf,
        w: &Self::Buf,
        scale: ConvScale<'_, Self::Buf>,
        y: &mut Self::Buf,
    ) {
        conv2d_unfused(self, g, n, x, w, scale, y)
    }
    /// `dscale` is given only with [`ConvScale::Taps`]. Default: [`conv2d_backward_unfused`].
    fn conv2d_backward(
        &self,
        _: Checked,
        g: &Window,
        n: usize,
        x: &Self::Buf,
        w: &Self::Buf,
        scale: ConvScale<'_, Self::Buf>,
        dy: &Self::Buf,
        dx: &mut Self::Buf,
        dw: &mut Self::Buf,
        dscale: Option<&mut Self::Buf>,
    ) {
        conv2d_backward_unfused(self, g, n, x, w, scale, dy, dx, dw, dscale)
    }
    fn patch_scale(&self, _: Checked, p: &Patch, cols: &Self::Buf, m: &Self::Buf, out: &mut Self::Buf);
    fn patch_scale_backward(
        &self,
        _: Checked,
        p: &Patch,
        cols: &Self::Buf,
        m: &Self::Buf,
        dout: &Self::Buf,
        dcols: &mut Self::Buf,
        dm: &mut Self::Buf,
    );
    fn patch_matmul(&self, _: Checked, p: &Patch, cols: &Self::Buf, m: &Self::Buf, out: &mut Self::Buf);
    fn patch_matmul_backward(
        &self,
        _: Checked,
        p: &Patch,
        cols: &Self::Buf,
        m: &Self::Buf,
        dout: &Self::Buf,
        dcols: &mut Self::Buf,
        dm: &mut Self::Buf,
    );
    fn window_norm(&self, _: Checked, g: &Window, x: &Self::Buf, eps: f32, n: &mut Self::Buf);
    fn window_norm_backward(
        &self,
        _: Checked,
        g: &Window,
        x: &Self::Buf,
        n: &Self::Buf,
        dn: &Self::Buf,
        dx: &mut Self::Buf,
    );

    /// With `d.relu`, a backend without a fused batch norm + ReLU may call
    /// [`super::batch_norm_relu_train_unfused`] (batch norm, then ReLU); likewise for eval and
    /// backward.
    fn batch_norm_train(
        &self,
        _: Checked,
        d: &BatchNormDims,
        x: &Self::Buf,
        gamma: &Self::Buf,
        beta: &Self::Buf,
        y: &mut Self::Buf,
        mean: &mut Self::Buf,
        var: &mut Self::Buf,
    );
    fn batch_norm_eval(
        &self,
        _: Checked,
        d: &BatchNormDims,
        x: &Self::Buf,
        gamma: &Self::Buf,
        beta: &Self::Buf,
        mean: &Self::Buf,
        var: &Self::Buf,
        y: &mut Self::Buf,
    );
    /// `y` (the forward's output) is given when `d.relu`.
    fn batch_norm_backward(
        &self,
        _: Checked,
        d: &BatchNormDims,
        x: &Self::Buf,
        gamma: &Self::Buf,
        beta: &Self::Buf,
        mean: &Self::Buf,
        var: &Self::Buf,
        y: Option<&Self::Buf>,
        dy: &Self::Buf,
        dx: &mut Self::Buf,
        dgamma: &mut Self::Buf,
        dbeta: &mut Self::Buf,
    );
    fn relu(&self, _: Checked, x: &Self::Buf, y: &mut Self::Buf);
    fn relu_backward(&self, _: Checked, y: &Self::Buf, dy: &Self::Buf, dx: &mut Self::Buf);
    fn max_pool(&self, _: Checked, g: &Window, x: &Self::Buf, y: &mut Self::Buf);
    fn max_pool_backward(
        &self,
        _: Checked,
        g: &Window,
        x: &Self::Buf,
        y: &Self::Buf,
        dy: &Self::Buf,
        dx: &mut Self::Buf,
    );
    fn softmax_rows(&self, _: Checked, x: &Self::Buf, rows: usize, cols: usize, y: &mut Self::Buf);
    fn softmax_rows_backward(
        &self,
        _: Checked,
        y: &Self::Buf,
        dy: &Self::Buf,
        rows: usize,
        cols: usize,
        dx: &mut Self::Buf,
    );
    /// `labels` are checked class indices (`< d.classes`), on the host.
    fn cross_entropy(
        &self,
        _: Checked,
        d: &CrossEntropy,
        logits: &Self::Buf,
        labels: &[u32],
        dlogits: &mut Self::Buf,
    ) -> f32;
    fn sgd_step(&self, _: Checked, s: &SgdStep, w: &mut Self::Buf, g: &Self::Buf, v: &mut Self::Buf);
    /// `s.t ≥ 1`; [`AdamStep::corrections`] gives the bias corrections.
    fn adam_step(
        &self,
        _: Checked,
        s: &AdamStep,
        w: &mut Self::Buf,
        g: &Self::Buf,
        m: &mut Self::Buf,
        v: &mut Self::Buf,
    );
}
