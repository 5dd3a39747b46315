use super::{
    conv_scaled, conv_scaled_backward, patches_times_kernel, patches_times_kernel_backward, unfold, unfold_backward,
    Similarity,
};
use crate::backend::Patch;
use crate::nn::{BatchNorm, Cache, ConvOp, InferenceOp, Layer, Mode};
use crate::{Backend, Map, Param, Tensor, Window};

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
/// For DNS (`M_p = diag(s_p)`) one fused [`Backend::conv2d`] with the patch scale `s`; for UNS
/// im2col, the patch transform `x̃_p[:,c] = M_p x_p[:,c]`, then one GEMM with `w`. The predictor is any [`Layer`] from `[B,H,W,C_in]` to
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

enum DynCache<B: Backend> {
    /// DNS: the input and the patch scale `s = m (+ 1)`.
    Scaled { g: Window, x: Tensor<B>, s: Tensor<B>, w: Tensor<B> },
    /// UNS: the patches, the prediction and the transformed patches.
    Patches { g: Window, cols: Tensor<B>, m: Tensor<B>, xt: Tensor<B>, w: Tensor<B> },
}

impl<B: Backend> Dynamic<B> {
    pub fn new(kind: DynamicKind, predictor: Box<dyn Layer<B>>) -> Self {
        Dynamic { kind, predictor, identity_residual: true, cache: Cache::default() }
    }
    /// Values the predictor must output per position for a window with `taps` taps.
    pub fn outputs_per_position(kind: DynamicKind, taps: usize) -> usize {
        match kind {
            DynamicKind::Diagonal => taps,
            DynamicKind::Unconstrained => taps * taps,
        }
    }
    /// DNS forward: `y = (s ⊙ im2col(x))·w` with `s = m + 1` (identity residual) or `m`.
    fn forward_dns(&mut self, be: &B, g: &Window, x: &Tensor<B>, w: &Tensor<B>, m: Tensor<B>, mode: Mode) -> Tensor<B> {
        let s = if self.identity_residual {
            let mut s = m.empty_like(be);
            be.map(Map::Affine(1.0, 1.0), m.buf(), s.buf_mut()); // diag(m) + I = diag(m + 1)
            s
        } else {
            m
        };
        let y = conv_scaled(be, g, x, w, Some(&s));
        if mode.record {
            self.cache.push(DynCache::Scaled { g: *g, x: x.clone(), s, w: w.clone() });
        }
        y
    }
    /// UNS forward: `x̃ = M x (+ x)` per row, then `y = x̃·w`.
    fn forward_uns(&mut self, be: &B, g: &Window, x: &Tensor<B>, w: &Tensor<B>, m: Tensor<B>, mode: Mode) -> Tensor<B> {
        let cols = unfold(be, g, x);
        let mut xt = cols.empty_like(be);
        be.patch_matmul(&Patch::of(g), cols.buf(), m.buf(), xt.buf_mut());
        if self.identity_residual {
            be.axpy(1.0, cols.buf(), xt.buf_mut()); // (M + I) x = M x + x
        }
        let y = patches_times_kernel(be, &xt, w);
        if mode.record {
            self.cache.push(DynCache::Patches { g: *g, cols, m, xt, w: w.clone() });
        }
        y
    }
    /// UNS backward: `∂L/∂x` through the patches (without the predictor's share) and `∂L/∂M`.
    fn backward_uns(
        &self,
        be: &B,
        (g, cols, m, xt, w): (Window, Tensor<B>, Tensor<B>, Tensor<B>, Tensor<B>),
        dy: &Tensor<B>,
        dw: &mut Tensor<B>,
    ) -> (Tensor<B>, Tensor<B>) {
        let dxt = patches_times_kernel_backward(be, &xt, &w, dy, dw);
        let mut dcols = cols.empty_like(be);
        let mut dm = m.empty_like(be);
        be.patch_matmul_backward(&Patch::of(&g), cols.buf(), m.buf(), dxt.buf(), dcols.buf_mut(), dm.buf_mut());
        if self.identity_residual {
            be.axpy(1.0, dxt.buf(), dcols.buf_mut());
        }
        (unfold_backward(be, &g, &dcols), dm)
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
        let m = self.predictor.forward(be, x, mode);
        let per = Self::outputs_per_position(self.kind, g.taps());
        assert_eq!(
            m.numel(),
            g.rows() * per,
            "predictor {} output {:?} is not {per} values per position",
            self.predictor.name(),
            m.shape()
        );
        match self.kind {
            DynamicKind::Diagonal => self.forward_dns(be, g, x, w, m, mode),
            DynamicKind::Unconstrained => self.forward_uns(be, g, x, w, m, mode),
        }
    }
    fn backward(&mut self, be: &B, dy: &Tensor<B>, dw: &mut Tensor<B>) -> Tensor<B> {
        let (mut dx, dm) = match self.cache.pop("dynamic similarity") {
            DynCache::Scaled { g, x, s, w } => {
                let (dx, ds) = conv_scaled_backward(be, &g, &x, &w, Some(&s), dy, dw);
                (dx, ds.expect("a scaled convolution returns ds")) // ∂s/∂m = 1
            }
            DynCache::Patches { g, cols, m, xt, w } => self.backward_uns(be, (g, cols, m, xt, w), dy, dw),
        };
        let dx_pred = self.predictor.backward(be, &dm);
        be.axpy(1.0, dx_pred.buf(), dx.buf_mut());
        dx
    }
    fn visit_params(&mut self, f: &mut dyn FnMut(&mut Param<B>)) {
        self.predictor.visit_params(f);
    }
    fn visit_batch_norms(&mut self, f: &mut dyn FnMut(&mut BatchNorm<B>)) {
        self.predictor.visit_batch_norms(f);
    }
    fn inference_op(&mut self, be: &B, conv: ConvOp) -> Result<InferenceOp, String> {
        if conv.stride != 1 || conv.padding != crate::nn::Padding::Same {
            return Err("a dynamic similarity needs a stride-1 SAME convolution".into());
        }
        let predictor = self.predictor.inference_graph(be)?;
        Ok(InferenceOp::Dynamic { conv, kind: self.kind, identity_residual: self.identity_residual, predictor })
    }
}
