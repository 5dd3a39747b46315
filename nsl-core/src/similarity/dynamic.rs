use super::{patches_times_kernel, patches_times_kernel_backward, unfold, unfold_backward, Similarity};
use crate::nn::{Cache, Layer, Mode};
use crate::{Backend, Param, Tensor, Window};

/// Which structure the predicted similarity has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DynamicKind {
    /// Dynamic DNS: the predictor outputs `k²` values per position, `M_p = diag(m_p)`.
    Diagonal,
    /// Dynamic UNS: the predictor outputs `k²·k²` values per position, `M_p[a,q] = m_p[a·k² + q]`.
    Unconstrained,
}

/// Dynamic neural similarity (paper §3.3, spec §3.3–3.4): a predictor network maps the layer's
/// input map to a similarity per output position, `M_p = P(x)_p + I` (identity residual), and
///
/// `y[p,o] = Σ_c w_cᵀ M_p x_{p,c}`,
///
/// computed as im2col, the patch transform `x̃_p[:,c] = M_p x_p[:,c]` (a per-row scale for DNS),
/// then one GEMM with `w`. The predictor is any [`Layer`] from `[B,H,W,C_in]` to
/// `[B,H,W,k²]` (DNS) or `[B,H,W,k⁴]` (UNS); see [`crate::similarity::predictor`].
/// Requires stride 1 and SAME padding (one prediction per input pixel).
pub struct Dynamic<B: Backend> {
    pub kind: DynamicKind,
    pub predictor: Box<dyn Layer<B>>,
    /// Add `I` to the prediction (reference code: yes for both DNS and UNS; the paper's
    /// appendix says no for UNS).
    pub identity_residual: bool,
    cache: Cache<DynCache<B>>,
}

struct DynCache<B: Backend> {
    g: Window,
    cols: Tensor<B>,
    m: Tensor<B>,
    xt: Tensor<B>,
    w: Tensor<B>,
}

impl<B: Backend> Dynamic<B> {
    pub fn new(kind: DynamicKind, predictor: Box<dyn Layer<B>>) -> Self {
        Dynamic { kind, predictor, identity_residual: true, cache: Cache::default() }
    }
    /// Dynamic DNS with the given predictor.
    pub fn diagonal(predictor: impl Layer<B> + 'static) -> Self {
        Self::new(DynamicKind::Diagonal, Box::new(predictor))
    }
    /// Dynamic UNS with the given predictor.
    pub fn unconstrained(predictor: impl Layer<B> + 'static) -> Self {
        Self::new(DynamicKind::Unconstrained, Box::new(predictor))
    }
    /// Values the predictor must output per position for a window with `taps` taps.
    pub fn outputs_per_position(kind: DynamicKind, taps: usize) -> usize {
        match kind {
            DynamicKind::Diagonal => taps,
            DynamicKind::Unconstrained => taps * taps,
        }
    }
    /// `x̃ = M x` per row (without the residual).
    fn transform(&self, be: &B, g: &Window, cols: &Tensor<B>, m: &Tensor<B>) -> Tensor<B> {
        let mut xt = cols.empty_like(be);
        match self.kind {
            DynamicKind::Diagonal => be.patch_scale(g.rows(), g.taps(), g.c, cols.buf(), m.buf(), xt.buf_mut()),
            DynamicKind::Unconstrained => be.patch_matmul(g.rows(), g.taps(), g.c, cols.buf(), m.buf(), xt.buf_mut()),
        }
        xt
    }
}

impl<B: Backend> Similarity<B> for Dynamic<B> {
    fn name(&self) -> String {
        match self.kind {
            DynamicKind::Diagonal => "dynamic DNS",
            DynamicKind::Unconstrained => "dynamic UNS",
        }
        .into()
    }
    fn forward(&mut self, be: &B, g: &Window, x: &Tensor<B>, w: &Tensor<B>, mode: Mode) -> Tensor<B> {
        assert!(
            g.stride == 1 && g.ho == g.h && g.wo == g.w,
            "dynamic similarity needs a stride-1 SAME convolution (one prediction per pixel), got {g:?}"
        );
        let cols = unfold(be, g, x);
        let m = self.predictor.forward(be, x, mode);
        let per = Self::outputs_per_position(self.kind, g.taps());
        assert_eq!(
            m.numel(),
            g.rows() * per,
            "predictor {} output {:?} is not {per} values per position",
            self.predictor.name(),
            m.shape()
        );
        let mut xt = self.transform(be, g, &cols, &m);
        if self.identity_residual {
            be.axpy(1.0, cols.buf(), xt.buf_mut()); // (M + I) x = M x + x
        }
        let y = patches_times_kernel(be, &xt, w);
        if mode == Mode::Train {
            self.cache.push(DynCache { g: *g, cols, m, xt, w: w.clone() });
        }
        y
    }
    fn backward(&mut self, be: &B, dy: &Tensor<B>, dw: &mut Tensor<B>) -> Tensor<B> {
        let DynCache { g, cols, m, xt, w } = self.cache.pop("dynamic similarity");
        let dxt = patches_times_kernel_backward(be, &xt, &w, dy, dw);
        let mut dcols = cols.empty_like(be);
        let mut dm = m.empty_like(be);
        let (rows, taps) = (g.rows(), g.taps());
        match self.kind {
            DynamicKind::Diagonal => {
                be.patch_scale_backward(rows, taps, g.c, cols.buf(), m.buf(), dxt.buf(), dcols.buf_mut(), dm.buf_mut())
            }
            DynamicKind::Unconstrained => {
                be.patch_matmul_backward(rows, taps, g.c, cols.buf(), m.buf(), dxt.buf(), dcols.buf_mut(), dm.buf_mut())
            }
        }
        if self.identity_residual {
            be.axpy(1.0, dxt.buf(), dcols.buf_mut());
        }
        let mut dx = unfold_backward(be, &g, &dcols);
        let dx_pred = self.predictor.backward(be, &dm);
        be.axpy(1.0, dx_pred.buf(), dx.buf_mut());
        dx
    }
    fn visit_params(&mut self, f: &mut dyn FnMut(&mut Param<B>)) {
        self.predictor.visit_params(f);
    }
}
