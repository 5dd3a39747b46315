use super::{conv_rows_scaled, conv_rows_scaled_backward, Similarity};
use crate::nn::{Cache, ConvOp, InferenceOp, Mode};
use crate::{Backend, Map, Tensor, Window};

/// SphereConv as a similarity (paper §3.1: `M = diag(1/(‖w‖‖x‖))`, spec §4 `cosine`):
/// `y[r,o] = (w_oᵀ x_r) / ‖x_r‖` (x-normalised, the NSL predictor's first layer), or
/// `/ (‖x_r‖·‖w_o‖)` with `normalize_w` (cosine SphereConv, SphereNet and the full-sphere predictor).
/// `‖x_r‖ = sqrt(Σ_window x² + eps)` over the zero-padded k×k×C window, `‖w_o‖ = sqrt(Σ w_o² + eps)`,
/// `eps = 1e-4` as in the code.
pub struct Sphere<B: Backend> {
    pub normalize_w: bool,
    pub eps: f32,
    cache: Cache<SphereCache<B>>,
}

struct SphereCache<B: Backend> {
    g: Window,
    x: Tensor<B>,
    w: Tensor<B>,
    out: Tensor<B>,
    nx: Tensor<B>,
    inv_nx: Tensor<B>,
    inv_nw: Option<Tensor<B>>,
}

impl<B: Backend> Sphere<B> {
    /// Only the input window is normalised (NSL predictor, spec §3.3).
    pub fn x_normalized() -> Self {
        Sphere { normalize_w: false, eps: 1e-4, cache: Cache::default() }
    }
    /// Cosine SphereConv: input window and filter normalised.
    pub fn cosine() -> Self {
        Sphere { normalize_w: true, eps: 1e-4, cache: Cache::default() }
    }
}

fn recip<B: Backend>(be: &B, x: &Tensor<B>) -> Tensor<B> {
    let mut y = x.empty_like(be);
    be.map(Map::Recip, x.buf(), y.buf_mut());
    y
}

impl<B: Backend> Similarity<B> for Sphere<B> {
    fn name(&self) -> String {
        if self.normalize_w { "sphere cos" } else { "sphere x-norm" }.into()
    }
    fn forward(&mut self, be: &B, g: &Window, x: &Tensor<B>, w: &Tensor<B>, mode: Mode) -> Tensor<B> {
        let (rows, o) = (g.rows(), w.shape()[1]);
        let mut nx = Tensor::zeros(be, &[rows]);
        be.window_norm(g, x.buf(), self.eps, nx.buf_mut());
        let inv_nx = recip(be, &nx);
        let mut out = conv_rows_scaled(be, g, x, w, &inv_nx);
        let inv_nw = self.normalize_w.then(|| {
            let mut sq = Tensor::zeros(be, &[o]);
            be.dot_cols(w.buf(), w.buf(), w.shape()[0], o, sq.buf_mut());
            let mut nw = sq.zeros_like(be);
            be.map(Map::SqrtEps(self.eps), sq.buf(), nw.buf_mut());
            let inv = recip(be, &nw);
            let mut scaled = out.empty_like(be);
            be.mul_cols(out.buf(), inv.buf(), rows, o, scaled.buf_mut());
            out = scaled;
            inv
        });
        if mode.record {
            self.cache.push(SphereCache { g: *g, x: x.clone(), w: w.clone(), out: out.clone(), nx, inv_nx, inv_nw });
        }
        out
    }
    /// A convolution divided by `‖x_p‖`, with `w_o/‖w_o‖` as its kernel when `normalize_w`.
    fn inference_op(&mut self, _be: &B, mut conv: ConvOp) -> Result<InferenceOp, String> {
        if self.normalize_w {
            let o = conv.c_out;
            for col in 0..o {
                let norm = (conv.weight.iter().skip(col).step_by(o).map(|v| v * v).sum::<f32>() + self.eps).sqrt();
                conv.weight.iter_mut().skip(col).step_by(o).for_each(|v| *v /= norm);
            }
        }
        Ok(InferenceOp::Conv(ConvOp { input_norm: Some(self.eps), ..conv }))
    }
    fn backward(&mut self, be: &B, dout: &Tensor<B>, dw: &mut Tensor<B>) -> Tensor<B> {
        let SphereCache { g, x, w, out, nx, inv_nx, inv_nw } = self.cache.pop("sphere conv");
        let (rows, o) = (g.rows(), w.shape()[1]);
        // ∂out/∂‖x_r‖ = −out/‖x_r‖  →  d‖x_r‖ = −Σ_o dout·out / ‖x_r‖
        let mut t = Tensor::zeros(be, &[rows]);
        be.dot_rows(dout.buf(), out.buf(), rows, o, t.buf_mut());
        let mut dnx = t.zeros_like(be);
        be.mul(t.buf(), inv_nx.buf(), dnx.buf_mut());
        be.scale(-1.0, dnx.buf_mut());
        // gradient of y = x·w: dout / ‖x_r‖ (/ ‖w_o‖), the row scale applied inside the conv
        let dy = match &inv_nw {
            None => dout.clone(),
            Some(inv_nw) => {
                let mut dy = dout.empty_like(be);
                be.mul_cols(dout.buf(), inv_nw.buf(), rows, o, dy.buf_mut());
                // d‖w_o‖ = −Σ_r dout·out / ‖w_o‖;  dW[:,o] += d‖w_o‖ · w[:,o] / ‖w_o‖
                let mut u = Tensor::zeros(be, &[o]);
                be.dot_cols(dout.buf(), out.buf(), rows, o, u.buf_mut());
                let mut coef = u.zeros_like(be);
                be.mul(u.buf(), inv_nw.buf(), coef.buf_mut());
                let mut coef2 = u.zeros_like(be);
                be.mul(coef.buf(), inv_nw.buf(), coef2.buf_mut());
                be.scale(-1.0, coef2.buf_mut());
                let mut dw_norm = w.zeros_like(be);
                be.mul_cols(w.buf(), coef2.buf(), w.shape()[0], o, dw_norm.buf_mut());
                be.axpy(1.0, dw_norm.buf(), dw.buf_mut());
                dy
            }
        };
        let mut dx = conv_rows_scaled_backward(be, &g, &x, &w, &inv_nx, &dy, dw);
        be.window_norm_backward(&g, x.buf(), nx.buf(), dnx.buf(), dx.buf_mut());
        dx
    }
}
