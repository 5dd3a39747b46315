use super::{conv, conv_backward, Similarity};
use crate::nn::{Cache, Mode};
use crate::{Backend, Gemm, Param, Role, Tensor, Window};

/// A static similarity block `M_s(θ)` (`n×n`, `n = k²`), computed on the host from a few
/// learnable values θ. Implement this to add a new static similarity: [`Static`] turns it
/// into a [`Similarity`] on every backend (forward, backward, fold).
///
/// Rows of `M_s` index kernel taps, columns patch taps: `f(w, x_p) = Σ_c w_cᵀ M_s x_{p,c}`.
pub trait SimilarityMatrix: Send + 'static {
    /// Short name, e.g. `static DNS`.
    fn name(&self) -> String;
    /// Initial θ for an `n×n` block.
    fn init(&self, n: usize) -> Vec<f32>;
    /// `M_s(θ)`, `n×n` row-major.
    fn matrix(&self, theta: &[f32], n: usize) -> Vec<f32>;
    /// Chain rule: `dθ += (∂M_s/∂θ)ᵀ · dM` for an upstream `dM = ∂L/∂M_s`.
    fn matrix_backward(&self, theta: &[f32], n: usize, dm: &[f32], dtheta: &mut [f32]);
    /// Coupled L2 coefficient on θ (reference code: 5e-3 for UNS, 0 for DNS).
    fn weight_decay(&self) -> f32 {
        0.0
    }
}

/// A static similarity: `M_s(θ)` learned jointly with the kernel (paper §3.2).
///
/// Forward builds the effective kernel `ŵ = M_sᵀ W` (`W` viewed as `[k², C_in·C_out]`) and
/// runs a plain convolution; backward gives `dW = M_s·dŵ` and `dM_s = W·dŵᵀ`, which the
/// [`SimilarityMatrix`] maps to `dθ`. [`Similarity::fold`] returns `ŵ`.
pub struct Static<B: Backend, P: SimilarityMatrix> {
    pub matrix: P,
    pub theta: Param<B>,
    taps: usize,
    cache: Cache<StaticCache<B>>,
}

struct StaticCache<B: Backend> {
    g: Window,
    x: Tensor<B>,
    w: Tensor<B>,
    w_eff: Tensor<B>,
    m: Tensor<B>,
}

impl<B: Backend, P: SimilarityMatrix> Static<B, P> {
    /// A static similarity for a `k×k` kernel (`taps = k²`); its parameter is named `{name}.theta`.
    pub fn new(be: &B, name: &str, matrix: P, taps: usize) -> Self {
        let init = matrix.init(taps);
        let theta =
            Param::new(be, format!("{name}.theta"), Role::Similarity, Tensor::from_vec(be, &[init.len()], &init))
                .with_decay(matrix.weight_decay());
        Static { matrix, theta, taps, cache: Cache::default() }
    }
    /// Boxed, ready for [`crate::nn::NslConv::new`].
    pub fn boxed(be: &B, name: &str, matrix: P, taps: usize) -> Box<dyn Similarity<B>> {
        Box::new(Self::new(be, name, matrix, taps))
    }
    /// The current `M_s` on the device.
    pub fn current_matrix(&self, be: &B) -> Tensor<B> {
        let m = self.matrix.matrix(&self.theta.value.to_vec(be), self.taps);
        Tensor::from_vec(be, &[self.taps, self.taps], &m)
    }
    /// `ŵ = M_sᵀ W`.
    fn effective_kernel(&self, be: &B, m: &Tensor<B>, w: &Tensor<B>) -> Tensor<B> {
        let n = self.taps;
        assert_eq!(w.shape()[0] % n, 0, "kernel rows {} are not a multiple of {n} taps", w.shape()[0]);
        let rest = w.numel() / n;
        let mut w_eff = w.zeros_like(be);
        be.gemm(&Gemm::new(n, rest, n).ta(), m.buf(), w.buf(), w_eff.buf_mut());
        w_eff
    }
}

impl<B: Backend, P: SimilarityMatrix> Similarity<B> for Static<B, P> {
    fn name(&self) -> String {
        self.matrix.name()
    }
    fn forward(&mut self, be: &B, g: &Window, x: &Tensor<B>, w: &Tensor<B>, mode: Mode) -> Tensor<B> {
        assert_eq!(g.taps(), self.taps, "similarity built for {} taps used on a {}x{} window", self.taps, g.k, g.k);
        let m = self.current_matrix(be);
        let w_eff = self.effective_kernel(be, &m, w);
        let y = conv(be, g, x, &w_eff);
        if mode.record {
            self.cache.push(StaticCache { g: *g, x: x.clone(), w: w.clone(), w_eff, m });
        }
        y
    }
    fn backward(&mut self, be: &B, dy: &Tensor<B>, dw: &mut Tensor<B>) -> Tensor<B> {
        let StaticCache { g, x, w, w_eff, m } = self.cache.pop("static similarity");
        let n = self.taps;
        let rest = w.numel() / n;
        let mut dw_eff = w.zeros_like(be);
        let dx = conv_backward(be, &g, &x, &w_eff, dy, &mut dw_eff);
        // dW += M_s · dŵ
        be.gemm(&Gemm::new(n, rest, n).accumulate(), m.buf(), dw_eff.buf(), dw.buf_mut());
        // dM_s = W · dŵᵀ  → dθ
        let mut dm = be.zeros(n * n);
        be.gemm(&Gemm::new(n, n, rest).tb(), w.buf(), dw_eff.buf(), &mut dm);
        let theta = self.theta.value.to_vec(be);
        let mut dtheta = vec![0.0; theta.len()];
        self.matrix.matrix_backward(&theta, n, &be.download(&dm), &mut dtheta);
        be.axpy(1.0, &be.upload(&dtheta), self.theta.grad.buf_mut());
        dx
    }
    fn visit_params(&mut self, f: &mut dyn FnMut(&mut Param<B>)) {
        f(&mut self.theta);
    }
    fn fold(&self, be: &B, w: &Tensor<B>) -> Option<Tensor<B>> {
        Some(self.effective_kernel(be, &self.current_matrix(be), w))
    }
}
