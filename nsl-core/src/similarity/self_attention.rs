use super::{InnerProduct, Similarity, Sphere};
use crate::nn::{BatchNorm, Cache, ConvOp, InferenceOp, Layer, Mode, NslConv, Padding, Relu};
use crate::{Backend, Gemm, Param, Rng, Role, Tensor, Window};

/// Self-attention as dynamic global neural similarity (paper Eq. 11, spec §7).
///
/// Used as the similarity of a 1×1 `C→C` [`NslConv`] whose kernel is the value projection:
/// `V = conv1×1(x, w)`, `G1 = ReLU(conv1×1(x) → C/8)`, `G2 = conv1×1(x) → C/8`,
/// `A = softmax_rows(G1 G2ᵀ)` (over keys, per image, `N×N` with `N = H·W`), and
///
/// `y = x + γ · A V`, with one scalar `γ` starting at 0 (no decay).
///
/// With `sphere = true` the three projections are cosine SphereConvs (SphereNet + attention);
/// otherwise plain (CNN + attention, an \[ASSUMPTION\] of spec §7).
pub struct SelfAttention<B: Backend> {
    pub g1: NslConv<B>,
    pub g2: NslConv<B>,
    g1_relu: Relu<B>,
    v: Box<dyn Similarity<B>>,
    pub gamma: Param<B>,
    cache: Cache<AttnCache<B>>,
}

struct AttnCache<B: Backend> {
    q: Tensor<B>,
    k: Tensor<B>,
    v: Tensor<B>,
    a: Tensor<B>,
    o: Tensor<B>,
    gamma: f32,
    dims: (usize, usize, usize, usize),
}

impl<B: Backend> SelfAttention<B> {
    /// Attention over `c` channels; `G1`/`G2` get L2 `weight_decay` and `orthogonality`.
    pub fn new(
        be: &B,
        rng: &mut Rng,
        name: &str,
        c: usize,
        sphere: bool,
        weight_decay: f32,
        orthogonality: f32,
    ) -> Self {
        let proj = |rng: &mut Rng, n: &str| {
            let sim: Box<dyn Similarity<B>> = if sphere { Box::new(Sphere::cosine()) } else { InnerProduct::boxed() };
            let mut conv = NslConv::new(
                be,
                rng,
                &format!("{name}.{n}"),
                (c, (c / 8).max(1)),
                (1, 1, Padding::Same),
                1.0,
                weight_decay,
                sim,
            );
            conv.weight.orthogonality = orthogonality;
            conv
        };
        let g1 = proj(rng, "g1");
        let g2 = proj(rng, "g2");
        let v: Box<dyn Similarity<B>> = if sphere { Box::new(Sphere::cosine()) } else { InnerProduct::boxed() };
        let gamma = Param::new(be, format!("{name}.gamma"), Role::AttentionScale, Tensor::zeros(be, &[1]));
        SelfAttention { g1, g2, g1_relu: Relu::new(), v, gamma, cache: Cache::default() }
    }
}

impl<B: Backend> Similarity<B> for SelfAttention<B> {
    fn name(&self) -> String {
        "self-attention (dynamic GNS)".into()
    }
    fn forward(&mut self, be: &B, g: &Window, x: &Tensor<B>, w: &Tensor<B>, mode: Mode) -> Tensor<B> {
        assert!(g.k == 1 && g.stride == 1, "self-attention is a 1x1 stride-1 similarity, got {g:?}");
        let (b, n, c) = (g.batch, g.h * g.w, g.c);
        assert_eq!(w.shape(), &[c, c], "self-attention needs a C→C value kernel");
        let q = self.g1.forward(be, x, mode);
        let q = self.g1_relu.forward(be, &q, mode);
        let k = self.g2.forward(be, x, mode);
        let c8 = k.shape()[3];
        let v = self.v.forward(be, g, x, w, mode);
        let mut s = Tensor::empty(be, &[b, n, n]);
        be.gemm(&Gemm::new(n, n, c8).tb().batched(b), q.buf(), k.buf(), s.buf_mut());
        let mut a = s.empty_like(be);
        be.softmax_rows(s.buf(), b * n, n, a.buf_mut());
        let mut o = Tensor::empty(be, &[b * n, c]);
        be.gemm(&Gemm::new(n, c, n).batched(b), a.buf(), v.buf(), o.buf_mut());
        let gamma = self.gamma.value.to_vec(be)[0];
        let mut y = x.duplicate(be).reshape(&[b * n, c]);
        be.axpy(gamma, o.buf(), y.buf_mut());
        if mode.record {
            self.cache.push(AttnCache { q, k, v, a, o, gamma, dims: (b, n, c, c8) });
        }
        y
    }
    fn backward(&mut self, be: &B, dy: &Tensor<B>, dw: &mut Tensor<B>) -> Tensor<B> {
        let AttnCache { q, k, v, a, o, gamma, dims: (b, n, c, c8) } = self.cache.pop("self-attention");
        let dgamma = be.dot(dy.buf(), o.buf());
        be.axpy(1.0, &be.upload(&[dgamma]), self.gamma.grad.buf_mut());
        let mut d_o = dy.duplicate(be);
        be.scale(gamma, d_o.buf_mut());
        // O = A V:  dA = dO Vᵀ,  dV = Aᵀ dO
        let mut da = a.empty_like(be);
        be.gemm(&Gemm::new(n, n, c).tb().batched(b), d_o.buf(), v.buf(), da.buf_mut());
        let mut dv = v.empty_like(be);
        be.gemm(&Gemm::new(n, c, n).ta().batched(b), a.buf(), d_o.buf(), dv.buf_mut());
        let mut ds = a.empty_like(be);
        be.softmax_rows_backward(a.buf(), da.buf(), b * n, n, ds.buf_mut());
        // S = Q Kᵀ:  dQ = dS K,  dK = dSᵀ Q
        let mut dq = q.empty_like(be);
        be.gemm(&Gemm::new(n, c8, n).batched(b), ds.buf(), k.buf(), dq.buf_mut());
        let mut dk = k.empty_like(be);
        be.gemm(&Gemm::new(n, c8, n).ta().batched(b), ds.buf(), q.buf(), dk.buf_mut());
        let mut dx = dy.duplicate(be);
        for part in [self.v.backward(be, &dv, dw), self.g2.backward(be, &dk), {
            let dq = self.g1_relu.backward(be, &dq);
            self.g1.backward(be, &dq)
        }] {
            be.axpy(1.0, part.buf(), dx.buf_mut());
        }
        dx
    }
    fn visit_params(&mut self, f: &mut dyn FnMut(&mut Param<B>)) {
        self.g1.visit_params(f);
        self.g2.visit_params(f);
        f(&mut self.gamma);
    }
    fn visit_batch_norms(&mut self, f: &mut dyn FnMut(&mut BatchNorm<B>)) {
        self.g1.visit_batch_norms(f);
        self.g2.visit_batch_norms(f);
    }
    fn inference_op(&mut self, be: &B, conv: ConvOp) -> Result<InferenceOp, String> {
        let as_conv = |op: InferenceOp| match op {
            InferenceOp::Conv(c) => Ok(c),
            other => Err(format!("self-attention projection is not a convolution: {other:?}")),
        };
        Ok(InferenceOp::SelfAttention {
            g1: as_conv(self.g1.inference_op(be)?)?,
            g2: as_conv(self.g2.inference_op(be)?)?,
            v: as_conv(self.v.inference_op(be, conv)?)?,
            gamma: self.gamma.value.to_vec(be)[0],
        })
    }
}
