use super::{conv, conv_backward, Similarity};
use crate::nn::{Cache, Mode};
use crate::{Backend, Gemm, Param, Role, Tensor, Window};

/// Static global diagonal similarity (paper appendix B, GNS with diagonal `M_G`): a learned
/// spatial mask over the whole `H×W` input map, shared by every channel, applied before a plain
/// convolution: `y = conv(x ⊙ s, w)` with `(x ⊙ s)[b,p,c] = s_p · x[b,p,c]`. `s` starts at 1.
pub struct GlobalDiagonal<B: Backend> {
    pub mask: Param<B>,
    h: usize,
    w: usize,
    cache: Cache<GCache<B>>,
}

struct GCache<B: Backend> {
    g: Window,
    x: Tensor<B>,
    /// `x` with the mask applied (the convolution's input).
    xm: Tensor<B>,
    w: Tensor<B>,
    tiled: Tensor<B>,
}

impl<B: Backend> GlobalDiagonal<B> {
    /// A mask for `h×w` input maps, parameter `{name}.mask`.
    pub fn new(be: &B, name: &str, h: usize, w: usize) -> Self {
        let mask =
            Param::new(be, format!("{name}.mask"), Role::Similarity, Tensor::from_vec(be, &[h * w], &vec![1.0; h * w]));
        GlobalDiagonal { mask, h, w, cache: Cache::default() }
    }
    /// The mask repeated over the batch, `[B·H·W]` (a rank-1 GEMM `1_B · sᵀ`).
    fn tiled(&self, be: &B, batch: usize) -> Tensor<B> {
        let ones = be.upload(&vec![1.0; batch]);
        let mut t = Tensor::zeros(be, &[batch * self.h * self.w]);
        be.gemm(&Gemm::new(batch, self.h * self.w, 1), &ones, self.mask.value.buf(), t.buf_mut());
        t
    }
}

impl<B: Backend> Similarity<B> for GlobalDiagonal<B> {
    fn name(&self) -> String {
        "global DNS".into()
    }
    fn forward(&mut self, be: &B, g: &Window, x: &Tensor<B>, w: &Tensor<B>, mode: Mode) -> Tensor<B> {
        assert_eq!(
            (g.h, g.w),
            (self.h, self.w),
            "global mask built for {}x{} maps applied to {}x{}",
            self.h,
            self.w,
            g.h,
            g.w
        );
        let tiled = self.tiled(be, g.batch);
        let mut xm = x.empty_like(be);
        be.mul_rows(x.buf(), tiled.buf(), g.batch * g.h * g.w, g.c, xm.buf_mut());
        let y = conv(be, g, &xm, w);
        if mode.record {
            self.cache.push(GCache { g: *g, x: x.clone(), xm, w: w.clone(), tiled });
        }
        y
    }
    fn backward(&mut self, be: &B, dy: &Tensor<B>, dw: &mut Tensor<B>) -> Tensor<B> {
        let GCache { g, x, xm, w, tiled } = self.cache.pop("global DNS");
        let pixels = g.batch * g.h * g.w;
        let dxm = conv_backward(be, &g, &xm, &w, dy, dw);
        let mut dx = x.empty_like(be);
        be.mul_rows(dxm.buf(), tiled.buf(), pixels, g.c, dx.buf_mut());
        let mut per_pixel = be.zeros(pixels);
        be.dot_rows(x.buf(), dxm.buf(), pixels, g.c, &mut per_pixel);
        let ones = be.upload(&vec![1.0; g.batch]);
        be.gemm(&Gemm::new(1, self.h * self.w, g.batch).accumulate(), &ones, &per_pixel, self.mask.grad.buf_mut());
        dx
    }
    fn visit_params(&mut self, f: &mut dyn FnMut(&mut Param<B>)) {
        f(&mut self.mask);
    }
}
