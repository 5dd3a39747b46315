use super::{conv, conv_backward, Similarity};
use crate::nn::{Cache, Mode};
use crate::{Backend, Tensor, Window};

/// The plain convolution, `f(w, x) = wᵀ x` (`M = I`).
pub struct InnerProduct<B: Backend> {
    cache: Cache<(Window, Tensor<B>, Tensor<B>)>,
}

impl<B: Backend> InnerProduct<B> {
    pub fn new() -> Self {
        InnerProduct { cache: Cache::default() }
    }
    /// Boxed, ready for [`crate::nn::NslConv::new`].
    pub fn boxed() -> Box<dyn Similarity<B>> {
        Box::new(Self::new())
    }
}

impl<B: Backend> Default for InnerProduct<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: Backend> Similarity<B> for InnerProduct<B> {
    fn name(&self) -> String {
        "conv".into()
    }
    fn forward(&mut self, be: &B, g: &Window, x: &Tensor<B>, w: &Tensor<B>, mode: Mode) -> Tensor<B> {
        let y = conv(be, g, x, w);
        if mode.record {
            self.cache.push((*g, x.clone(), w.clone()));
        }
        y
    }
    fn backward(&mut self, be: &B, dy: &Tensor<B>, dw: &mut Tensor<B>) -> Tensor<B> {
        let (g, x, w) = self.cache.pop("conv");
        conv_backward(be, &g, &x, &w, dy, dw)
    }
    fn fold(&self, be: &B, w: &Tensor<B>) -> Option<Tensor<B>> {
        Some(w.duplicate(be))
    }
}
