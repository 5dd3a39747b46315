use super::Similarity;
use crate::nn::{BatchNorm, Cache, ConvOp, InferenceOp, Mode};
use crate::{Backend, Param, Role, Tensor, Window};

/// Joint kernel shape and similarity (paper Eq. 4): `M_s = D·R` with a static binary
/// `D = diag(1[D_r > α])` and any inner similarity `R` (static or dynamic).
///
/// `D` multiplies the kernel side: the inner similarity sees `ŵ[t,:] = d_t·w[t,:]`.
/// Forward and backward use only `D`; `D_r` takes the straight-through gradient
/// `∂L/∂D_r := ∂L/∂D = Σ_{c,o} w[t,c,o]·∂L/∂ŵ[t,c,o]` (paper Eq. 5). `D_r` has no decay.
///
/// Defaults are an \[ASSUMPTION\] (spec §5.2): `D_r = 1`, `α = 0.5` (starts as the plain NSN);
/// [`KernelShape::piggyback`] offers `D_r = 1e-2`, `α = 5e-3`.
pub struct KernelShape<B: Backend> {
    pub d_r: Param<B>,
    pub alpha: f32,
    pub inner: Box<dyn Similarity<B>>,
    taps: usize,
    cache: Cache<(Tensor<B>, Tensor<B>)>,
}

impl<B: Backend> KernelShape<B> {
    /// `D_r` filled with `d_r_init`, threshold `alpha`.
    pub fn new(be: &B, name: &str, taps: usize, inner: Box<dyn Similarity<B>>, d_r_init: f32, alpha: f32) -> Self {
        let d_r = Param::new(
            be,
            format!("{name}.d_r"),
            Role::ShapeMask,
            Tensor::from_vec(be, &[taps], &vec![d_r_init; taps]),
        );
        KernelShape { d_r, alpha, inner, taps, cache: Cache::default() }
    }
    /// The spec's default: `D_r = 1`, `α = 0.5`.
    pub fn code_default(be: &B, name: &str, taps: usize, inner: Box<dyn Similarity<B>>) -> Self {
        Self::new(be, name, taps, inner, 1.0, 0.5)
    }
    /// The Piggyback convention: `D_r = 1e-2`, `α = 5e-3`.
    pub fn piggyback(be: &B, name: &str, taps: usize, inner: Box<dyn Similarity<B>>) -> Self {
        Self::new(be, name, taps, inner, 1e-2, 5e-3)
    }
    /// The binary mask `D` on the host.
    pub fn mask(&self, be: &B) -> Vec<f32> {
        self.d_r.value.to_vec(be).iter().map(|&v| f32::from(v > self.alpha)).collect()
    }
    fn masked_kernel(&self, be: &B, d: &Tensor<B>, w: &Tensor<B>) -> Tensor<B> {
        let mut w_eff = w.zeros_like(be);
        be.mul_rows(w.buf(), d.buf(), self.taps, w.numel() / self.taps, w_eff.buf_mut());
        w_eff
    }
}

impl<B: Backend> Similarity<B> for KernelShape<B> {
    fn name(&self) -> String {
        format!("{} (J)", self.inner.name())
    }
    fn forward(&mut self, be: &B, g: &Window, x: &Tensor<B>, w: &Tensor<B>, mode: Mode) -> Tensor<B> {
        let d = Tensor::from_vec(be, &[self.taps], &self.mask(be));
        let w_eff = self.masked_kernel(be, &d, w);
        let y = self.inner.forward(be, g, x, &w_eff, mode);
        if mode.record {
            self.cache.push((w.clone(), d));
        }
        y
    }
    fn backward(&mut self, be: &B, dy: &Tensor<B>, dw: &mut Tensor<B>) -> Tensor<B> {
        let (w, d) = self.cache.pop("kernel shape");
        let rest = w.numel() / self.taps;
        let mut dw_eff = w.zeros_like(be);
        let dx = self.inner.backward(be, dy, &mut dw_eff);
        let mut dw_masked = w.zeros_like(be);
        be.mul_rows(dw_eff.buf(), d.buf(), self.taps, rest, dw_masked.buf_mut());
        be.axpy(1.0, dw_masked.buf(), dw.buf_mut());
        let mut dd = be.zeros(self.taps);
        be.dot_rows(w.buf(), dw_eff.buf(), self.taps, rest, &mut dd);
        be.axpy(1.0, &dd, self.d_r.grad.buf_mut());
        dx
    }
    fn visit_params(&mut self, f: &mut dyn FnMut(&mut Param<B>)) {
        f(&mut self.d_r);
        self.inner.visit_params(f);
    }
    fn visit_batch_norms(&mut self, f: &mut dyn FnMut(&mut BatchNorm<B>)) {
        self.inner.visit_batch_norms(f);
    }
    fn fold(&self, be: &B, w: &Tensor<B>) -> Option<Tensor<B>> {
        let d = Tensor::from_vec(be, &[self.taps], &self.mask(be));
        self.inner.fold(be, &self.masked_kernel(be, &d, w))
    }
    /// The inner similarity's description with the masked kernel `d_t·w[t, :]`.
    fn inference_op(&mut self, be: &B, mut conv: ConvOp) -> Result<InferenceOp, String> {
        let rest = conv.weight.len() / self.taps;
        for (rows, d) in conv.weight.chunks_mut(rest).zip(self.mask(be)) {
            rows.iter_mut().for_each(|v| *v *= d);
        }
        self.inner.inference_op(be, conv)
    }
}
